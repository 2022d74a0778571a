// The driver of bench/policy: NetworkPolicy programming at thousands of pods
// (issue 7's benchmark). Generates, deterministically, a cluster of wire
// objects (Namespaces, Pods with labels and named container ports,
// NetworkPolicies of every kind the API has), then times what the agent does
// with them: Cluster::build → compile → render → Applier::apply into a fresh
// network namespace, first programming, one pod's label change and a resync.
// A naive renderer (one allow rule per peer address × port per local pod, no
// ipsets, the whole ruleset rewritten with iptables-restore on every change)
// runs in a second namespace as the baseline. Prints a markdown report.
//
//   policy_bench [--pods 5000] [--scales 2500,10000] [--namespaces 100]
//                [--policies 1000] [--reps 3] [--change-reps 9]
//                [--naive-reps 3] [--prefix NAME] [--commit REV] [--out FILE]
//                [--keep]
//
// Run as root (network namespaces, iptables, ipset); bench/policy does.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipnetwork::IpNetwork;
use podroute_cni::args::fnv1a64;
use podroute_labels::{LabelSelector, LabelSelectorOperator as Operator, LabelSelectorRequirement};
use podroute_policy::agent::cut_denied_flows;
use podroute_policy::apply::{Applier, ApplyReport, Runner};
use podroute_policy::compile::{Compiled, compile, interface_of};
use podroute_policy::model::cluster::{
    Cluster, Direction, NAMESPACE_NAME_LABEL, Peer, Pod, PortMatch, Protocol,
};
use podroute_policy::model::evaluate::{Flow, evaluate};
use podroute_policy::model::objects::{
    Container, ContainerPort, EgressRule, IngressRule, IntOrString, IpBlock, NamespaceObject,
    NetworkPolicyObject, NetworkPolicySpec, ObjectMeta, PodIp, PodObject, PodSpec, PodStatus,
    PolicyPeer, PolicyPort, Snapshot,
};
use podroute_policy::render::{RenderOptions, render};

/// The node whose rules are programmed; every other node only hosts peers.
const LOCAL_NODE: &str = "node-000";
/// Pods per other node (the local node has one per namespace).
const PODS_PER_NODE: usize = 100;
/// Pods of a namespace cycle through these deployments (ten slots, so a
/// namespace of ten pods or more has every app).
const APP_SLOTS: [&str; 10] = [
    "frontend", "api", "worker", "frontend", "api", "db", "worker", "frontend", "api", "cache",
];
/// Namespaces 0..3 are the cluster's own services.
const SPECIAL_NAMESPACES: [&str; 3] = ["kube-system", "monitoring", "ingress-nginx"];
/// Policy templates per namespace; policy k goes to namespace k % N with
/// template (k / N) % TEMPLATES.
const TEMPLATES: usize = 10;
/// The namespace of the label-change scenarios: its local pod is an `api`
/// pod (slot 1) and it has remote `worker` pods (slot 2).
const SCENARIO_NAMESPACE: usize = 11;
const NAIVE_PREFIX: &str = "NAIVE-";
const OURS_PREFIX: &str = "PODROUTE-";
const OUR_SETS: &str = "podroute-";

struct Options {
    pods: usize,
    scales: Vec<usize>,
    namespaces: usize,
    policies: usize,
    reps: usize,
    change_reps: usize,
    naive_reps: usize,
    prefix: String,
    commit: String,
    out: Option<PathBuf>,
    /// Keep the 5,000-pod namespaces (podroute's and the naive one's).
    keep: bool,
}

fn main() -> Result<()> {
    let options = parse_args()?;
    ensure!(
        is_root(),
        "run as root: it makes network namespaces and programs iptables and ipset in them"
    );
    cleanup_on_signal();
    let started_at = utc_now();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());

    let mut report = Report::default();
    let exec_overhead = netns_exec_overhead(&options)?;

    // The main size: everything measured.
    progress(&format!("generating {} pods", options.pods));
    let mut snapshot = generate(&options, options.pods)?;
    let main = measure_main(&options, &mut snapshot)?;

    // Other sizes: podroute's first programming and what the rules count.
    let mut scales = Vec::new();
    for &pods in &options.scales {
        progress(&format!("generating {pods} pods"));
        let snapshot = generate(&options, pods)?;
        scales.push(measure_scale(&options, &snapshot, pods)?);
    }
    scales.push(main.scale.clone());
    scales.sort_by_key(|s| s.pods);

    report.write(&options, &main, &scales, &started_at, &load, exec_overhead);
    print!("{}", report.text);
    if let Some(out) = &options.out {
        std::fs::write(out, &report.text).with_context(|| format!("writing {}", out.display()))?;
        progress(&format!("written to {}", out.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Measurements

/// podroute's stages of one pass, snapshot to kernel.
#[derive(Debug, Clone, Copy, Default)]
struct Stages {
    build: Duration,
    compile: Duration,
    render: Duration,
    apply: Duration,
}

impl Stages {
    fn total(&self) -> Duration {
        self.build + self.compile + self.render + self.apply
    }
}

/// The naive renderer's stages of one pass.
#[derive(Debug, Clone, Copy, Default)]
struct NaiveStages {
    build: Duration,
    generate: Duration,
    restore: Duration,
}

impl NaiveStages {
    fn total(&self) -> Duration {
        self.build + self.generate + self.restore
    }
}

/// What iptables-save and ipset save show of one program's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KernelCounts {
    rules_v4: usize,
    rules_v6: usize,
    chains_v4: usize,
    chains_v6: usize,
    sets: usize,
    members: usize,
}

impl KernelCounts {
    fn rules(&self) -> usize {
        self.rules_v4 + self.rules_v6
    }
    fn chains(&self) -> usize {
        self.chains_v4 + self.chains_v6
    }
}

/// One label change, timed both ways.
struct ChangeResult {
    what: String,
    podroute: Vec<Stages>,
    /// The apply reports of the change (not the revert) and of the revert.
    podroute_reports: Vec<ApplyReport>,
    /// The agent's conntrack sweep after each pass (not in `podroute`: it
    /// runs once the rules are in).
    sweep: Vec<Duration>,
    naive: Vec<NaiveStages>,
}

#[derive(Clone)]
struct ScaleResult {
    pods: usize,
    podroute_first: Vec<Stages>,
    podroute: KernelCounts,
    /// Rules the naive renderer writes (IPv4; it has no IPv6 here).
    naive_rules: usize,
    naive_first: Duration,
}

struct MainResult {
    scale: ScaleResult,
    /// Local pods isolated for ingress and for egress.
    isolated: (usize, usize),
    /// Distinct policies that isolate a local pod, and their directions.
    compiled_policies: (usize, usize),
    compiled_sets: usize,
    first_report: ApplyReport,
    changes: Vec<ChangeResult>,
    resync: Vec<Stages>,
    resync_report: ApplyReport,
    naive_first: Vec<NaiveStages>,
    naive: KernelCounts,
    flows_checked: usize,
}

fn measure_main(options: &Options, snapshot: &mut Snapshot) -> Result<MainResult> {
    let pods = options.pods;
    // First programming, each time into an empty namespace; the last one
    // stays for the changes.
    let mut first = Vec::new();
    let mut last = None;
    for rep in 0..options.reps {
        progress(&format!(
            "podroute: first programming, {pods} pods ({}/{})",
            rep + 1,
            options.reps
        ));
        let ns = Netns::new(&format!("{}-pr{rep}", options.prefix))?;
        let mut applier = Applier::new(Runner::in_netns(&ns.name));
        let (stages, report, compiled) = podroute_pass(snapshot, &mut applier, true)?;
        first.push(stages);
        last = Some((ns, applier, report, compiled));
    }
    let Some((ns, mut applier, first_report, compiled)) = last else {
        bail!("--reps must be at least 1");
    };
    let counts = kernel_counts(&ns.name, OURS_PREFIX, OUR_SETS)?;
    check_counts(&counts, &first_report)?;

    // The naive baseline, first programming, each into an empty namespace.
    let mut naive_first = Vec::new();
    let mut naive_last = None;
    for rep in 0..options.naive_reps.max(1) {
        progress(&format!(
            "naive: first programming, {pods} pods ({}/{})",
            rep + 1,
            options.naive_reps.max(1)
        ));
        let naive_ns = Netns::new(&format!("{}-nv{rep}", options.prefix))?;
        let mut state = NaiveState::default();
        let stages = naive_pass(snapshot, &naive_ns.name, &mut state)?;
        naive_first.push(stages);
        naive_last = Some((naive_ns, state));
    }
    let Some((naive_ns, mut naive_state)) = naive_last else {
        bail!("no naive run");
    };
    let naive_counts = kernel_counts(&naive_ns.name, NAIVE_PREFIX, "naive-")?;

    // The two must mean the same, or the baseline is no baseline.
    progress("checking podroute's rules against the naive ones and the reference evaluator");
    let flows_checked = cross_check(snapshot, &compiled)?;

    // One pod's label change, there and back, timed each way.
    let scenarios = scenarios(snapshot)?;
    let mut changes = Vec::new();
    for scenario in &scenarios {
        progress(&format!("one change: {}", scenario.what));
        let mut result = ChangeResult {
            what: scenario.what.clone(),
            podroute: Vec::new(),
            podroute_reports: Vec::new(),
            sweep: Vec::new(),
            naive: Vec::new(),
        };
        for rep in 0..options.change_reps {
            scenario.set(snapshot, rep % 2 == 0)?;
            let (stages, report, compiled) = podroute_pass(snapshot, &mut applier, false)?;
            scenario.check(&report)?;
            result.podroute.push(stages);
            let started = Instant::now();
            cut_denied_flows(applier.runner(), &compiled).context("the conntrack sweep")?;
            result.sweep.push(started.elapsed());
            if rep < 2 {
                result.podroute_reports.push(report);
            }
        }
        // Back to the cluster as generated, whatever the count.
        scenario.set(snapshot, false)?;
        podroute_pass(snapshot, &mut applier, false)?;
        for rep in 0..options.naive_reps {
            scenario.set(snapshot, rep % 2 == 0)?;
            let stages = naive_pass(snapshot, &naive_ns.name, &mut naive_state)?;
            result.naive.push(stages);
        }
        scenario.set(snapshot, false)?;
        naive_pass(snapshot, &naive_ns.name, &mut naive_state)?;
        changes.push(result);
    }

    // A periodic resync with nothing changed: the kernel read back.
    progress("podroute: resync with no change");
    let mut resync = Vec::new();
    let mut resync_report = ApplyReport::default();
    for _ in 0..options.change_reps {
        let (stages, report, _) = podroute_pass(snapshot, &mut applier, true)?;
        ensure!(
            !report.wrote_anything(),
            "a resync with nothing changed wrote something: {report:?}"
        );
        resync.push(stages);
        resync_report = report;
    }
    // After all the changes the kernel must hold what it held at first.
    ensure!(
        kernel_counts(&ns.name, OURS_PREFIX, OUR_SETS)? == counts,
        "podroute's objects differ after the changes were reverted"
    );
    let (mut ns, mut naive_ns) = (ns, naive_ns);
    ns.keep = options.keep;
    naive_ns.keep = options.keep;

    let naive_rules = naive_counts.rules();
    Ok(MainResult {
        scale: ScaleResult {
            pods,
            podroute_first: first,
            podroute: counts,
            naive_rules,
            naive_first: median(naive_first.iter().map(NaiveStages::total)),
        },
        isolated: (
            compiled
                .endpoints
                .iter()
                .filter(|e| e.ingress.is_some())
                .count(),
            compiled
                .endpoints
                .iter()
                .filter(|e| e.egress.is_some())
                .count(),
        ),
        compiled_policies: (
            compiled
                .policies
                .keys()
                .map(|(key, _)| key)
                .collect::<BTreeSet<_>>()
                .len(),
            compiled.policies.len(),
        ),
        compiled_sets: compiled.sets.len(),
        first_report,
        changes,
        resync,
        resync_report,
        naive_first,
        naive: naive_counts,
        flows_checked,
    })
}

fn measure_scale(options: &Options, snapshot: &Snapshot, pods: usize) -> Result<ScaleResult> {
    let mut first = Vec::new();
    let mut counts = None;
    for rep in 0..options.reps {
        progress(&format!(
            "podroute: first programming, {pods} pods ({}/{})",
            rep + 1,
            options.reps
        ));
        let ns = Netns::new(&format!("{}-s{pods}-{rep}", options.prefix))?;
        let mut applier = Applier::new(Runner::in_netns(&ns.name));
        let (stages, report, _) = podroute_pass(snapshot, &mut applier, true)?;
        first.push(stages);
        let c = kernel_counts(&ns.name, OURS_PREFIX, OUR_SETS)?;
        check_counts(&c, &report)?;
        counts = Some(c);
    }
    let Some(counts) = counts else {
        bail!("--reps must be at least 1");
    };
    progress(&format!("naive: first programming, {pods} pods"));
    let ns = Netns::new(&format!("{}-s{pods}-nv", options.prefix))?;
    let stages = naive_pass(snapshot, &ns.name, &mut NaiveState::default())?;
    let naive = kernel_counts(&ns.name, NAIVE_PREFIX, "naive-")?;
    Ok(ScaleResult {
        pods,
        podroute_first: first,
        podroute: counts,
        naive_rules: naive.rules(),
        naive_first: stages.total(),
    })
}

/// One agent pass: validate, compile, render, apply.
fn podroute_pass(
    snapshot: &Snapshot,
    applier: &mut Applier,
    read_kernel: bool,
) -> Result<(Stages, ApplyReport, Compiled)> {
    let t0 = Instant::now();
    let (cluster, problems) = Cluster::build(snapshot);
    let t1 = Instant::now();
    ensure!(
        problems.is_empty(),
        "the generated cluster has refused objects: {}",
        problems[0]
    );
    let compiled = compile(&cluster, LOCAL_NODE);
    let t2 = Instant::now();
    let dataplane = render(&compiled, &RenderOptions::default());
    let t3 = Instant::now();
    let report = applier
        .apply(&dataplane, read_kernel)
        .context("podroute's apply")?;
    let t4 = Instant::now();
    Ok((
        Stages {
            build: t1 - t0,
            compile: t2 - t1,
            render: t3 - t2,
            apply: t4 - t3,
        },
        report,
        compiled,
    ))
}

/// The applier's own count must be what the kernel shows.
fn check_counts(counts: &KernelCounts, report: &ApplyReport) -> Result<()> {
    ensure!(
        counts.rules() == report.rules && counts.members == report.set_members,
        "iptables-save/ipset save show {} rules and {} set members, the applier reports {} and {}",
        counts.rules(),
        counts.members,
        report.rules,
        report.set_members
    );
    Ok(())
}

/// A label change of one pod, and what podroute's apply must then do.
struct Scenario {
    what: String,
    pod: usize,
    key: &'static str,
    before: String,
    after: String,
    /// A remote pod: only set members may change. A local pod: its chains.
    local: bool,
}

impl Scenario {
    fn set(&self, snapshot: &mut Snapshot, changed: bool) -> Result<()> {
        let pod = snapshot
            .pods
            .get_mut(self.pod)
            .context("scenario pod index")?;
        let value = if changed { &self.after } else { &self.before };
        pod.metadata
            .labels
            .insert(self.key.to_owned(), value.clone());
        Ok(())
    }

    /// The change must be a change, of the kind the scenario claims.
    fn check(&self, report: &ApplyReport) -> Result<()> {
        if self.local {
            ensure!(
                report.chains_written > 0,
                "{}: no chain rewritten: {report:?}",
                self.what
            );
        } else {
            ensure!(
                report.sets_swapped > 0
                    && report.chains_written + report.chains_deleted + report.hooks_changed == 0,
                "{}: expected set members only to change: {report:?}",
                self.what
            );
        }
        Ok(())
    }
}

fn scenarios(snapshot: &Snapshot) -> Result<Vec<Scenario>> {
    let namespace = namespace_name(SCENARIO_NAMESPACE);
    let find = |local: bool, app: &str| {
        snapshot.pods.iter().position(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && (p.spec.node_name.as_deref() == Some(LOCAL_NODE)) == local
                && p.metadata.labels.get("app").map(String::as_str) == Some(app)
        })
    };
    let remote = find(false, "worker").context("no remote worker pod in the scenario namespace")?;
    let local = find(true, "api").context("no local api pod in the scenario namespace")?;
    let name = |i: usize| -> String { snapshot.pods[i].metadata.name.clone() };
    Ok(vec![
        Scenario {
            what: format!(
                "remote pod {namespace}/{} app=worker → frontend: joins the peer set of a local pod's policy",
                name(remote)
            ),
            pod: remote,
            key: "app",
            before: "worker".into(),
            after: "frontend".into(),
            local: false,
        },
        Scenario {
            what: format!(
                "local pod {namespace}/{} app=api → frontend: other policies select it",
                name(local)
            ),
            pod: local,
            key: "app",
            before: "api".into(),
            after: "frontend".into(),
            local: true,
        },
    ])
}

// ---------------------------------------------------------------------------
// The cluster

fn namespace_name(i: usize) -> String {
    match SPECIAL_NAMESPACES.get(i) {
        Some(name) => (*name).to_owned(),
        None => format!("app-{i:03}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The cluster with `pods` pods. Each namespace's pods cycle through the
/// app slots; namespace i's pod in slot i % 10 runs on this node, so the
/// local pods (and the policies that select them) are the same at every
/// size: a bigger cluster only adds peers on other nodes.
fn generate(options: &Options, pods: usize) -> Result<Snapshot> {
    let n = options.namespaces;
    ensure!(
        n > SCENARIO_NAMESPACE && n <= 250,
        "--namespaces must be between {} and 250",
        SCENARIO_NAMESPACE + 1
    );
    ensure!(
        pods >= APP_SLOTS.len() * n,
        "at least {} pods for {n} namespaces (ten per namespace)",
        APP_SLOTS.len() * n
    );
    let remote_nodes = (pods - n).div_ceil(PODS_PER_NODE);
    ensure!(
        remote_nodes < 255,
        "at most {} pods (addresses are 10.244.<node>.<pod>)",
        n + 254 * PODS_PER_NODE
    );
    let mut snapshot = Snapshot::default();
    let mut remote = 0usize;
    for i in 0..n {
        let ns = namespace_name(i);
        let ns_labels = match i {
            0 => labels(&[("role", "system")]),
            1 => labels(&[("role", "monitoring")]),
            2 => labels(&[("role", "ingress")]),
            _ => labels(&[
                ("team", &format!("t{}", i % 10)),
                ("env", ["prod", "staging", "dev"][i % 3]),
            ]),
        };
        snapshot.namespaces.push(NamespaceObject {
            metadata: ObjectMeta {
                name: ns.clone(),
                labels: ns_labels,
                ..ObjectMeta::default()
            },
        });
        let count = pods / n + usize::from(i < pods % n);
        for j in 0..count {
            let local = j == i % APP_SLOTS.len();
            let (node, address) = if local {
                (0, Ipv4Addr::new(10, 244, 0, (i + 2) as u8))
            } else {
                let node = 1 + remote / PODS_PER_NODE;
                let slot = remote % PODS_PER_NODE;
                remote += 1;
                (node, Ipv4Addr::new(10, 244, node as u8, (slot + 2) as u8))
            };
            snapshot.pods.push(pod(i, &ns, j, node, address));
        }
    }
    for k in 0..options.policies {
        let i = k % n;
        let template = (k / n) % TEMPLATES;
        let variant = k / (n * TEMPLATES);
        snapshot
            .policies
            .push(policy(i, &namespace_name(i), template, variant));
    }
    Ok(snapshot)
}

fn port(name: &str, number: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: (protocol != "TCP").then(|| protocol.to_owned()),
    }
}

fn pod(i: usize, ns: &str, j: usize, node: usize, address: Ipv4Addr) -> PodObject {
    let (app, mut pod_labels, ports) = match i {
        0 => (
            "coredns",
            labels(&[("k8s-app", "kube-dns")]),
            vec![
                port("dns", 53, "UDP"),
                port("dns-tcp", 53, "TCP"),
                port("metrics", 9153, "TCP"),
            ],
        ),
        1 => (
            "prometheus",
            labels(&[("app", "prometheus"), ("tier", "monitoring")]),
            vec![port("web", 9090, "TCP")],
        ),
        2 => (
            "ingress-nginx",
            labels(&[("app", "ingress-nginx"), ("tier", "web")]),
            vec![
                port("http", 80, "TCP"),
                port("https", 443, "TCP"),
                port("metrics", 10254, "TCP"),
            ],
        ),
        _ => {
            let app = APP_SLOTS[j % APP_SLOTS.len()];
            let (tier, ports) = match app {
                "frontend" => (
                    "web",
                    vec![port("http", 8080, "TCP"), port("metrics", 9090, "TCP")],
                ),
                "api" => (
                    "backend",
                    vec![
                        port("http", 8080, "TCP"),
                        port("grpc", 9000, "TCP"),
                        port("metrics", 9090, "TCP"),
                    ],
                ),
                "worker" => ("backend", vec![port("metrics", 9090, "TCP")]),
                "db" => (
                    "data",
                    vec![port("postgres", 5432, "TCP"), port("metrics", 9187, "TCP")],
                ),
                _ => (
                    "data",
                    vec![port("redis", 6379, "TCP"), port("metrics", 9121, "TCP")],
                ),
            };
            let version = if j % 4 == 3 { "v2" } else { "v1" };
            (
                app,
                labels(&[("app", app), ("tier", tier), ("version", version)]),
                ports,
            )
        }
    };
    let template_hash = format!("{:010x}", fnv1a64(format!("{ns}/{app}").as_bytes()) >> 24);
    pod_labels.insert("pod-template-hash".into(), template_hash.clone());
    let ip = address.to_string();
    PodObject {
        metadata: ObjectMeta {
            name: format!("{app}-{template_hash}-{j:05}"),
            namespace: Some(ns.to_owned()),
            labels: pod_labels,
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            node_name: Some(format!("node-{node:03}")),
            host_network: false,
            containers: vec![Container {
                name: app.to_owned(),
                ports,
            }],
        },
        status: PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.clone()),
            pod_ips: vec![PodIp { ip }],
        },
    }
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    }
}

fn expression(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![LabelSelectorRequirement {
            key: key.to_owned(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }],
    }
}

fn pods_peer(pods: LabelSelector) -> PolicyPeer {
    PolicyPeer {
        pod_selector: Some(pods),
        ..PolicyPeer::default()
    }
}

fn namespaces_peer(namespaces: LabelSelector) -> PolicyPeer {
    PolicyPeer {
        namespace_selector: Some(namespaces),
        ..PolicyPeer::default()
    }
}

fn both_peer(namespaces: LabelSelector, pods: LabelSelector) -> PolicyPeer {
    PolicyPeer {
        pod_selector: Some(pods),
        namespace_selector: Some(namespaces),
        ip_block: None,
    }
}

fn block_peer(cidr: &str, except: &[&str]) -> PolicyPeer {
    PolicyPeer {
        ip_block: Some(IpBlock {
            cidr: cidr.to_owned(),
            except: except.iter().map(|e| (*e).to_owned()).collect(),
        }),
        ..PolicyPeer::default()
    }
}

fn number(protocol: &str, port: i32) -> PolicyPort {
    PolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

fn named(name: &str) -> PolicyPort {
    PolicyPort {
        protocol: None,
        port: Some(IntOrString::String(name.to_owned())),
        end_port: None,
    }
}

fn range(first: i32, last: i32) -> PolicyPort {
    PolicyPort {
        protocol: Some("TCP".into()),
        port: Some(IntOrString::Int(first)),
        end_port: Some(last),
    }
}

fn ingress(from: Vec<PolicyPeer>, ports: Vec<PolicyPort>) -> IngressRule {
    IngressRule { from, ports }
}

fn egress(to: Vec<PolicyPeer>, ports: Vec<PolicyPort>) -> EgressRule {
    EgressRule { to, ports }
}

/// Policy template `t` of namespace `i`: between them every kind of peer
/// and port the API has (but SCTP, which this kernel lacks).
fn policy(i: usize, ns: &str, t: usize, variant: usize) -> NetworkPolicyObject {
    let types = |t: &[&str]| Some(t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let team = format!("t{}", i % 10);
    let (name, spec) = match t {
        // Default deny (ingress; every other namespace both ways). The
        // cluster's own namespaces allow all ingress instead (an empty rule).
        0 if i < SPECIAL_NAMESPACES.len() => (
            "allow-all-ingress",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                ingress: vec![IngressRule::default()],
                ..NetworkPolicySpec::default()
            },
        ),
        0 => (
            "default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: if i.is_multiple_of(2) {
                    types(&["Ingress"])
                } else {
                    types(&["Ingress", "Egress"])
                },
                ..NetworkPolicySpec::default()
            },
        ),
        // DNS egress to kube-dns pods in kube-system: pod AND namespace.
        1 => (
            "allow-dns",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: types(&["Egress"]),
                egress: vec![egress(
                    vec![both_peer(
                        selector(&[(NAMESPACE_NAME_LABEL, "kube-system")]),
                        selector(&[("k8s-app", "kube-dns")]),
                    )],
                    vec![number("UDP", 53), number("TCP", 53)],
                )],
                ..NetworkPolicySpec::default()
            },
        ),
        // From the ingress controllers' namespace, on a named port.
        2 => (
            "frontend-from-ingress",
            NetworkPolicySpec {
                pod_selector: Some(selector(&[("app", "frontend")])),
                ingress: vec![ingress(
                    vec![namespaces_peer(selector(&[("role", "ingress")]))],
                    vec![named("http"), number("TCP", 8443)],
                )],
                ..NetworkPolicySpec::default()
            },
        ),
        // From the same app and its frontend, named ports; some
        // namespaces add an endPort range.
        3 => {
            let mut rules = vec![ingress(
                vec![
                    pods_peer(selector(&[("app", "frontend")])),
                    pods_peer(selector(&[("app", "api")])),
                ],
                vec![named("http"), named("grpc")],
            )];
            if i.is_multiple_of(3) {
                rules.push(ingress(
                    vec![pods_peer(selector(&[("tier", "backend")]))],
                    vec![range(8000, 8100)],
                ));
            }
            (
                "api-from-frontend",
                NetworkPolicySpec {
                    pod_selector: Some(selector(&[("app", "api")])),
                    ingress: rules,
                    ..NetworkPolicySpec::default()
                },
            )
        }
        // matchExpressions In; egress to its own kind (replication).
        4 => (
            "db-from-backend",
            NetworkPolicySpec {
                pod_selector: Some(selector(&[("app", "db")])),
                policy_types: types(&["Ingress", "Egress"]),
                ingress: vec![ingress(
                    vec![pods_peer(expression(
                        "app",
                        Operator::In,
                        &["api", "worker"],
                    ))],
                    vec![number("TCP", 5432)],
                )],
                egress: vec![egress(
                    vec![pods_peer(selector(&[("app", "db")]))],
                    vec![number("TCP", 5432)],
                )],
            },
        ),
        // Allow from the same app on every port; from the backend tier on a
        // named port.
        5 => (
            "cache-same-app",
            NetworkPolicySpec {
                pod_selector: Some(selector(&[("app", "cache")])),
                ingress: vec![
                    ingress(vec![pods_peer(selector(&[("app", "cache")]))], vec![]),
                    ingress(
                        vec![pods_peer(selector(&[("tier", "backend")]))],
                        vec![named("redis")],
                    ),
                ],
                ..NetworkPolicySpec::default()
            },
        ),
        // Scraping: every pod with an app label, from prometheus in the
        // monitoring namespace (pod AND namespace), named port `metrics`
        // (a different number per app).
        6 => (
            "metrics-scrape",
            NetworkPolicySpec {
                pod_selector: Some(expression("app", Operator::Exists, &[])),
                ingress: vec![ingress(
                    vec![both_peer(
                        selector(&[("role", "monitoring")]),
                        selector(&[("app", "prometheus")]),
                    )],
                    vec![named("metrics")],
                )],
                ..NetworkPolicySpec::default()
            },
        ),
        // From the team's namespaces but not dev ones: a namespaceSelector
        // with matchLabels and NotIn.
        7 => {
            let mut namespaces = selector(&[("team", &team)]);
            namespaces.match_expressions.push(LabelSelectorRequirement {
                key: "env".into(),
                operator: Operator::NotIn,
                values: vec!["dev".into()],
            });
            (
                "team-access",
                NetworkPolicySpec {
                    pod_selector: Some(selector(&[("app", "api")])),
                    ingress: vec![ingress(
                        vec![namespaces_peer(namespaces)],
                        vec![number("TCP", 8080)],
                    )],
                    ..NetworkPolicySpec::default()
                },
            )
        }
        // ipBlocks with except: the corporate network but not the pod and
        // service ranges; a per-namespace partner network.
        8 => {
            let partner = format!("192.168.{}.0/24", i % 256);
            let partner_except = format!("192.168.{}.128/26", i % 256);
            (
                "external-web",
                NetworkPolicySpec {
                    pod_selector: Some(expression("tier", Operator::In, &["web"])),
                    ingress: vec![ingress(
                        vec![
                            block_peer("10.0.0.0/8", &["10.244.0.0/16", "10.96.0.0/12"]),
                            block_peer(&partner, &[&partner_except]),
                        ],
                        vec![number("TCP", 443), named("http")],
                    )],
                    ..NetworkPolicySpec::default()
                },
            )
        }
        // Egress of workers: to the data tier on numbered and named ports,
        // to the internet but the metadata service and the private range
        // on 443 and the NodePort range, to the team's namespaces' http.
        _ => (
            "worker-egress",
            NetworkPolicySpec {
                pod_selector: Some(selector(&[("app", "worker")])),
                policy_types: types(&["Egress"]),
                egress: vec![
                    egress(
                        vec![
                            pods_peer(selector(&[("app", "db")])),
                            pods_peer(selector(&[("app", "cache")])),
                        ],
                        vec![number("TCP", 5432), named("redis")],
                    ),
                    egress(
                        vec![block_peer(
                            "0.0.0.0/0",
                            &["169.254.169.254/32", "10.0.0.0/8"],
                        )],
                        vec![number("TCP", 443), range(30000, 32767)],
                    ),
                    egress(
                        vec![namespaces_peer(selector(&[("team", &team)]))],
                        vec![named("http")],
                    ),
                ],
                ..NetworkPolicySpec::default()
            },
        ),
    };
    let name = if variant == 0 {
        name.to_owned()
    } else {
        format!("{name}-{variant}")
    };
    NetworkPolicyObject {
        metadata: ObjectMeta {
            name,
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        spec,
    }
}

// ---------------------------------------------------------------------------
// The naive renderer: what a first NetworkPolicy controller does. For each
// local pod and direction it isolates, a chain with one allow rule per peer
// address (or ipBlock CIDR, excepts cut out) × port, named ports resolved
// to numbers; no ipsets; every change rewrites the whole ruleset with one
// iptables-restore (IPv4 only: the generated pods have no IPv6).

/// One allow rule: the peer (source for ingress, destination for egress),
/// protocol and destination ports; None matches any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NaiveRule {
    peer: Option<IpNetwork>,
    protocol: Option<Protocol>,
    ports: Option<(u16, u16)>,
}

impl NaiveRule {
    fn matches(&self, peer: IpAddr, protocol: Protocol, port: u16) -> bool {
        self.peer.is_none_or(|net| net.contains(peer))
            && self.protocol.is_none_or(|p| p == protocol)
            && self
                .ports
                .is_none_or(|(first, last)| (first..=last).contains(&port))
    }
}

struct NaiveChain {
    name: String,
    interface: String,
    direction: Direction,
    rules: Vec<NaiveRule>,
}

#[derive(Default)]
struct NaiveState {
    /// Chains in the kernel, to delete the ones no longer wanted.
    chains: BTreeSet<String>,
    hooked: bool,
}

fn naive_chains(cluster: &Cluster, node: &str) -> Vec<NaiveChain> {
    let mut chains = Vec::new();
    for pod in cluster.pods().filter(|p| p.node.as_deref() == Some(node)) {
        let interface = interface_of(pod);
        for direction in [Direction::Egress, Direction::Ingress] {
            let policies = cluster.isolating(pod, direction);
            if policies.is_empty() {
                continue;
            }
            let mut rules = Vec::new();
            let mut seen = HashSet::new();
            for policy in policies {
                for rule in policy.rules(direction).unwrap_or_default() {
                    for r in naive_rules(cluster, pod, direction, rule) {
                        if seen.insert(r.clone()) {
                            rules.push(r);
                        }
                    }
                }
            }
            let tag = match direction {
                Direction::Ingress => "I",
                Direction::Egress => "E",
            };
            chains.push(NaiveChain {
                name: format!("{NAIVE_PREFIX}{tag}-{:016x}", fnv1a64(interface.as_bytes())),
                interface: interface.clone(),
                direction,
                rules,
            });
        }
    }
    chains
}

/// Where a rule's peers are: any address, networks, or pods.
enum NaivePeer<'a> {
    Any,
    Net(IpNetwork),
    Pod(&'a Pod),
}

fn naive_rules(
    cluster: &Cluster,
    local: &Pod,
    direction: Direction,
    rule: &podroute_policy::model::cluster::Rule,
) -> Vec<NaiveRule> {
    let mut peers = Vec::new();
    if rule.peers.is_empty() {
        peers.push(NaivePeer::Any);
    }
    for peer in &rule.peers {
        match peer {
            Peer::Pods { namespaces, pods } => peers.extend(
                cluster
                    .peer_pods(namespaces, &pods.selector)
                    .map(NaivePeer::Pod),
            ),
            Peer::Block(block) if block.cidr.is_ipv4() => peers.extend(
                subtract(block.cidr, &block.except)
                    .into_iter()
                    .map(NaivePeer::Net),
            ),
            Peer::Block(_) => {}
        }
    }
    let v4 = |pod: &Pod| {
        pod.addresses
            .iter()
            .find(|a| a.is_ipv4())
            .and_then(|a| IpNetwork::new(*a, 32).ok())
    };
    let mut out = Vec::new();
    for peer in &peers {
        let net = match peer {
            NaivePeer::Any => None,
            NaivePeer::Net(net) => Some(*net),
            NaivePeer::Pod(pod) => match v4(pod) {
                Some(net) => Some(net),
                None => continue,
            },
        };
        if rule.ports.is_empty() {
            out.push(NaiveRule {
                peer: net,
                protocol: None,
                ports: None,
            });
        }
        for spec in &rule.ports {
            let protocol = Some(spec.protocol);
            match &spec.port {
                PortMatch::All => out.push(NaiveRule {
                    peer: net,
                    protocol,
                    ports: None,
                }),
                PortMatch::Range { first, last } => out.push(NaiveRule {
                    peer: net,
                    protocol,
                    ports: Some((*first, *last)),
                }),
                // A named port is the destination pod's number: ours for
                // ingress; each peer pod's for egress, and for a peer that
                // is a network, each pod in it that has the name.
                PortMatch::Named(name) => {
                    let numbers = |pod: &Pod| -> Vec<u16> {
                        pod.named_ports
                            .iter()
                            .filter(|p| p.name == *name && p.protocol == spec.protocol)
                            .map(|p| p.port)
                            .collect()
                    };
                    match (direction, peer) {
                        (Direction::Ingress, _) => {
                            for n in numbers(local) {
                                out.push(NaiveRule {
                                    peer: net,
                                    protocol,
                                    ports: Some((n, n)),
                                });
                            }
                        }
                        (Direction::Egress, NaivePeer::Pod(pod)) => {
                            for n in numbers(pod) {
                                out.push(NaiveRule {
                                    peer: net,
                                    protocol,
                                    ports: Some((n, n)),
                                });
                            }
                        }
                        (Direction::Egress, _) => {
                            for pod in cluster.pods() {
                                let Some(address) = v4(pod) else { continue };
                                if net.is_some_and(|n| !n.contains(address.ip())) {
                                    continue;
                                }
                                for n in numbers(pod) {
                                    out.push(NaiveRule {
                                        peer: Some(address),
                                        protocol,
                                        ports: Some((n, n)),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `net` without the `except` networks, as the fewest CIDRs.
fn subtract(net: IpNetwork, except: &[IpNetwork]) -> Vec<IpNetwork> {
    let bits: u8 = if net.is_ipv4() { 32 } else { 128 };
    let value = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    };
    let address = |v: u128| -> IpAddr {
        if bits == 32 {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(v.into())
        }
    };
    fn walk(base: u128, prefix: u8, bits: u8, except: &[(u128, u8)], out: &mut Vec<(u128, u8)>) {
        let size = |p: u8| -> u128 {
            if bits - p >= 128 {
                u128::MAX
            } else {
                (1u128 << (bits - p)) - 1
            }
        };
        let last = base | size(prefix);
        // An except covering this whole block: nothing left.
        if except
            .iter()
            .any(|(e, p)| *p <= prefix && base & !size(*p) == *e)
        {
            return;
        }
        // No except inside: the block whole.
        if !except
            .iter()
            .any(|(e, p)| *p > prefix && *e >= base && *e <= last)
        {
            out.push((base, prefix));
            return;
        }
        let half = 1u128 << (bits - prefix - 1);
        walk(base, prefix + 1, bits, except, out);
        walk(base + half, prefix + 1, bits, except, out);
    }
    let except: Vec<(u128, u8)> = except
        .iter()
        .map(|e| (value(e.network()), e.prefix()))
        .collect();
    let mut out = Vec::new();
    walk(value(net.network()), net.prefix(), bits, &except, &mut out);
    out.into_iter()
        .filter_map(|(base, prefix)| IpNetwork::new(address(base), prefix).ok())
        .collect()
}

fn naive_script(chains: &[NaiveChain], state: &NaiveState) -> String {
    let forward = format!("{NAIVE_PREFIX}FORWARD");
    let mut script = String::from("*filter\n");
    let _ = writeln!(script, ":{forward} - [0:0]");
    let wanted: BTreeSet<&str> = chains.iter().map(|c| c.name.as_str()).collect();
    for name in wanted.iter().copied().chain(
        state
            .chains
            .iter()
            .map(String::as_str)
            .filter(|c| !wanted.contains(c)),
    ) {
        let _ = writeln!(script, ":{name} - [0:0]");
    }
    // Egress of the source first, then ingress of the destination; an
    // allowed packet returns here and goes on.
    for direction in [Direction::Egress, Direction::Ingress] {
        for chain in chains.iter().filter(|c| c.direction == direction) {
            let side = if direction == Direction::Egress {
                "-i"
            } else {
                "-o"
            };
            let _ = writeln!(
                script,
                "-A {forward} {side} {} -j {}",
                chain.interface, chain.name
            );
        }
    }
    for chain in chains {
        let _ = writeln!(
            script,
            "-A {} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            chain.name
        );
        let side = if chain.direction == Direction::Egress {
            "-d"
        } else {
            "-s"
        };
        for rule in &chain.rules {
            let mut line = format!("-A {}", chain.name);
            if let Some(net) = rule.peer {
                let _ = write!(line, " {side} {net}");
            }
            if let Some(protocol) = rule.protocol {
                let p = protocol.name();
                let _ = write!(line, " -p {p}");
                if let Some((first, last)) = rule.ports {
                    if first == last {
                        let _ = write!(line, " -m {p} --dport {first}");
                    } else {
                        let _ = write!(line, " -m {p} --dport {first}:{last}");
                    }
                }
            }
            line.push_str(" -j RETURN\n");
            script.push_str(&line);
        }
        let _ = writeln!(script, "-A {} -j DROP", chain.name);
    }
    if !state.hooked {
        let _ = writeln!(script, "-I FORWARD 1 -j {forward}");
    }
    for stale in state.chains.iter().filter(|c| !wanted.contains(c.as_str())) {
        let _ = writeln!(script, "-X {stale}");
    }
    script.push_str("COMMIT\n");
    script
}

/// One naive pass: validate, generate the whole ruleset, restore it.
fn naive_pass(snapshot: &Snapshot, netns: &str, state: &mut NaiveState) -> Result<NaiveStages> {
    let t0 = Instant::now();
    let (cluster, _) = Cluster::build(snapshot);
    let t1 = Instant::now();
    let chains = naive_chains(&cluster, LOCAL_NODE);
    let script = naive_script(&chains, state);
    let t2 = Instant::now();
    Runner::in_netns(netns)
        .run(
            "iptables-restore",
            &["-w", "10", "--noflush"],
            Some(&script),
        )
        .context("the naive renderer's iptables-restore")?;
    let t3 = Instant::now();
    state.chains = chains.iter().map(|c| c.name.clone()).collect();
    state.hooked = true;
    Ok(NaiveStages {
        build: t1 - t0,
        generate: t2 - t1,
        restore: t3 - t2,
    })
}

/// Sampled flows to and from every local endpoint, judged three ways:
/// podroute's compiled rules (the dataplane's twin), the naive rules, and
/// the reference evaluator. Returns how many flows agreed; fails on the
/// first disagreement.
fn cross_check(snapshot: &Snapshot, compiled: &Compiled) -> Result<usize> {
    let (cluster, _) = Cluster::build(snapshot);
    let chains = naive_chains(&cluster, LOCAL_NODE);
    let by_interface: BTreeMap<(&str, Direction), &NaiveChain> = chains
        .iter()
        .map(|c| ((c.interface.as_str(), c.direction), c))
        .collect();
    // A deterministic sample of pods, plus addresses in and out of the
    // generated ipBlocks.
    let all: Vec<&Pod> = cluster.pods().collect();
    let mut peers: Vec<IpAddr> = (0..60)
        .filter_map(|k| all.get((k * 7919) % all.len()))
        .filter_map(|p| p.addresses.first().copied())
        .collect();
    for text in [
        "10.1.2.3",
        "10.96.0.10",
        "10.244.200.1",
        "192.168.11.5",
        "192.168.11.130",
        "192.168.12.200",
        "169.254.169.254",
        "8.8.8.8",
    ] {
        peers.push(text.parse().context("a sample address")?);
    }
    let ports: Vec<(Protocol, u16)> = [
        53, 80, 443, 5432, 6379, 8050, 8080, 8443, 9000, 9090, 9121, 9153, 9187, 10254, 31000, 22,
    ]
    .iter()
    .map(|p| (Protocol::Tcp, *p))
    .chain([(Protocol::Udp, 53), (Protocol::Udp, 8080)])
    .collect();
    let mut checked = 0;
    for endpoint in &compiled.endpoints {
        let Some(own) = endpoint.addresses.first().copied() else {
            continue;
        };
        for direction in [Direction::Ingress, Direction::Egress] {
            let naive = by_interface.get(&(endpoint.interface.as_str(), direction));
            for &peer in &peers {
                if peer == own {
                    continue;
                }
                for &(protocol, port) in &ports {
                    let flow = match direction {
                        Direction::Ingress => Flow {
                            source: peer,
                            destination: own,
                            protocol,
                            port,
                        },
                        Direction::Egress => Flow {
                            source: own,
                            destination: peer,
                            protocol,
                            port,
                        },
                    };
                    let ours = compiled.allows(endpoint, direction, &flow);
                    let theirs = naive
                        .is_none_or(|c| c.rules.iter().any(|r| r.matches(peer, protocol, port)));
                    let decision = evaluate(&cluster, &flow);
                    let truth = match direction {
                        Direction::Ingress => decision.ingress.allows(),
                        Direction::Egress => decision.egress.allows(),
                    };
                    ensure!(
                        ours == truth && theirs == truth,
                        "{} {direction} {flow:?}: reference evaluator {truth}, podroute {ours}, naive {theirs}",
                        endpoint.key
                    );
                    checked += 1;
                }
            }
        }
    }
    Ok(checked)
}

// ---------------------------------------------------------------------------
// The kernel

/// Our objects in a namespace, from iptables-save, ip6tables-save and
/// ipset save: chains named with `chains`, rules in them, and rules in
/// built-in chains that jump to them (hooks).
fn kernel_counts(netns: &str, chains: &str, sets: &str) -> Result<KernelCounts> {
    let runner = Runner::in_netns(netns);
    let mut counts = KernelCounts::default();
    for (program, rules, declared) in [
        ("iptables-save", &mut counts.rules_v4, &mut counts.chains_v4),
        (
            "ip6tables-save",
            &mut counts.rules_v6,
            &mut counts.chains_v6,
        ),
    ] {
        let out = runner.run(program, &["-t", "filter"], None)?;
        let hook = format!("-j {chains}");
        for line in out.stdout.lines() {
            if line.starts_with(&format!(":{chains}")) {
                *declared += 1;
            } else if let Some(rule) = line.strip_prefix("-A ")
                && (rule.starts_with(chains) || rule.contains(&hook))
            {
                *rules += 1;
            }
        }
    }
    let out = runner.run("ipset", &["save"], None)?;
    for line in out.stdout.lines() {
        if line.starts_with(&format!("create {sets}")) {
            counts.sets += 1;
        } else if line.starts_with(&format!("add {sets}")) {
            counts.members += 1;
        }
    }
    Ok(counts)
}

/// Namespaces this run made, for the signal handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A fresh network namespace, deleted on drop (and by the signal handler
/// on Ctrl-C); its iptables rules and ipsets go with it.
struct Netns {
    name: String,
    /// Left in place at the end (`--keep`), for a look by hand.
    keep: bool,
}

impl Netns {
    fn new(name: &str) -> Result<Netns> {
        // Held while the namespace is made, so a Ctrl-C now either comes
        // before it exists or sees it listed.
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        ip(&["netns", "add", name])?;
        live.push(name.to_owned());
        drop(live);
        let ns = Netns {
            name: name.to_owned(),
            keep: false,
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if self.keep && !std::thread::panicking() {
            progress(&format!("kept network namespace {}", self.name));
        } else if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("policy_bench: {e:#}");
        }
        live.retain(|n| *n != self.name);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// On SIGINT, SIGTERM or SIGHUP: delete this run's namespaces and exit.
fn cleanup_on_signal() {
    std::thread::spawn(|| {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            eprintln!("policy_bench: no signal handler; bench/policy cleans up after a Ctrl-C");
            return;
        };
        let caught = runtime.block_on(async {
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return false;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            true
        });
        if caught {
            let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            for name in live.iter() {
                let _ = ip(&["netns", "del", name]);
            }
            eprintln!("policy_bench: interrupted; namespaces removed");
            std::process::exit(130);
        }
    });
}

/// What `ip netns exec` costs per command here (each kernel command of
/// both programs pays it; an agent on the host does not).
fn netns_exec_overhead(options: &Options) -> Result<Duration> {
    let ns = Netns::new(&format!("{}-x", options.prefix))?;
    let mut samples = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        Runner::in_netns(&ns.name).run("true", &[], None)?;
        let through = started.elapsed();
        let started = Instant::now();
        Runner::host().run("true", &[], None)?;
        samples.push(through.saturating_sub(started.elapsed()));
    }
    Ok(median(samples.into_iter()))
}

fn is_root() -> bool {
    // /proc/self/status: "Uid: real effective saved fs".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// The report

#[derive(Default)]
struct Report {
    text: String,
}

fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = values.collect();
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        thousands(ms.round() as usize)
    } else {
        format!("{ms:.1}")
    }
}

fn ratio(naive: f64, ours: f64) -> String {
    if ours <= 0.0 {
        "—".into()
    } else {
        format!("{:.1}x", naive / ours)
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

fn describe(report: &ApplyReport) -> String {
    let mut parts = Vec::new();
    for (n, what, done) in [
        (report.chains_written, "chain", "written"),
        (report.chains_deleted, "chain", "deleted"),
        (report.hooks_changed, "hook", "changed"),
        (report.sets_created, "set", "created"),
        (report.sets_swapped, "set", "swapped"),
        (report.sets_destroyed, "set", "destroyed"),
    ] {
        match n {
            0 => {}
            1 => parts.push(format!("1 {what} {done}")),
            n => parts.push(format!("{} {what}s {done}", thousands(n))),
        }
    }
    if parts.is_empty() {
        "nothing written".into()
    } else {
        parts.join(", ")
    }
}

impl Report {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
    }

    fn write(
        &mut self,
        options: &Options,
        main: &MainResult,
        scales: &[ScaleResult],
        started_at: &str,
        load: &str,
        exec_overhead: Duration,
    ) {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into());
        let version = |program: &str, arg: &str| -> String {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|| "?".into())
        };
        let n = options.namespaces;
        let p = options.pods;
        let s = &main.scale;
        self.line(&format!(
            "# bench/policy {started_at}, {cores} cores, kernel {kernel}, podroute {}",
            options.commit
        ));
        self.line("");
        self.line(&format!(
            "{} pods in {n} namespaces ({n} on this node, one per namespace; {} on {} others), \
             {} NetworkPolicies, IPv4 pods. On this node {} pods are isolated for ingress and \
             {} for egress, by {} of the policies ({} policy directions, {} address sets). \
             {}; {}. Load average at the start: {load}.",
            thousands(p),
            thousands(p - n),
            (p - n).div_ceil(PODS_PER_NODE),
            thousands(options.policies),
            main.isolated.0,
            main.isolated.1,
            main.compiled_policies.0,
            main.compiled_policies.1,
            main.compiled_sets,
            version("iptables", "--version"),
            version("ipset", "--version"),
        ));
        self.line("");
        self.line(&format!(
            "Times are medians (podroute: first programming of {} runs, each into an empty \
             network namespace; changes and resyncs of {} runs. Naive: {} runs). Every command \
             runs through `ip netns exec`, which costs {} ms each here and an agent on the host \
             does not pay.",
            options.reps,
            options.change_reps,
            options.naive_reps,
            ms(exec_overhead)
        ));
        self.line("");

        // Main table.
        self.line(&format!(
            "## {} pods, {} policies",
            thousands(p),
            thousands(options.policies)
        ));
        self.line("");
        self.line("| measure | podroute | naive | naive/podroute |");
        self.line("|---|---|---|---|");
        let first = median(s.podroute_first.iter().map(Stages::total));
        let naive_first = median(main.naive_first.iter().map(NaiveStages::total));
        self.line(&format!(
            "| first programming, total ms | {} | {} | {} |",
            ms(first),
            ms(naive_first),
            ratio(naive_first.as_secs_f64(), first.as_secs_f64())
        ));
        let stage = |f: fn(&Stages) -> Duration| median(s.podroute_first.iter().map(f));
        let naive_stage = |f: fn(&NaiveStages) -> Duration| median(main.naive_first.iter().map(f));
        self.line(&format!(
            "| · validate (Cluster::build) ms | {} | {} | |",
            ms(stage(|s| s.build)),
            ms(naive_stage(|s| s.build))
        ));
        self.line(&format!(
            "| · compile + render / naive: generate ms | {} + {} | {} | |",
            ms(stage(|s| s.compile)),
            ms(stage(|s| s.render)),
            ms(naive_stage(|s| s.generate))
        ));
        self.line(&format!(
            "| · apply / naive: iptables-restore ms | {} | {} | |",
            ms(stage(|s| s.apply)),
            ms(naive_stage(|s| s.restore))
        ));
        self.line(&format!(
            "| · what podroute's first apply wrote | {} | | |",
            describe(&main.first_report)
        ));
        for change in &main.changes {
            let ours = median(change.podroute.iter().map(Stages::total));
            let theirs = median(change.naive.iter().map(NaiveStages::total));
            self.line(&format!(
                "| one change, ms: {} | {} | {} | {} |",
                change.what,
                ms(ours),
                if change.naive.is_empty() {
                    "—".into()
                } else {
                    ms(theirs)
                },
                ratio(theirs.as_secs_f64(), ours.as_secs_f64())
            ));
            let st = |f: fn(&Stages) -> Duration| median(change.podroute.iter().map(f));
            let naive_restore = median(change.naive.iter().map(|s| s.restore));
            self.line(&format!(
                "| · validate / compile / render / apply ms | {} / {} / {} / {} | restore {} | |",
                ms(st(|s| s.build)),
                ms(st(|s| s.compile)),
                ms(st(|s| s.render)),
                ms(st(|s| s.apply)),
                ms(naive_restore)
            ));
            let wrote: Vec<String> = change.podroute_reports.iter().map(describe).collect();
            self.line(&format!(
                "| · what podroute's apply wrote (change; revert) | {} | the whole ruleset | |",
                wrote.join("; ")
            ));
            self.line(&format!(
                "| · then the agent's conntrack sweep (empty table here), not included above, ms | {} | | |",
                ms(median(change.sweep.iter().copied()))
            ));
        }
        let resync = median(main.resync.iter().map(Stages::total));
        let resync_apply = median(main.resync.iter().map(|s| s.apply));
        self.line(&format!(
            "| periodic resync, no change (kernel read back), ms | {} (apply {}; {}) | | |",
            ms(resync),
            ms(resync_apply),
            describe(&main.resync_report)
        ));
        let ours = &s.podroute;
        let theirs = &main.naive;
        self.line(&format!(
            "| iptables rules, ours: IPv4 + IPv6 = total | {} + {} = {} | {} + {} = {} | {} |",
            thousands(ours.rules_v4),
            thousands(ours.rules_v6),
            thousands(ours.rules()),
            thousands(theirs.rules_v4),
            thousands(theirs.rules_v6),
            thousands(theirs.rules()),
            ratio(theirs.rules() as f64, ours.rules() as f64)
        ));
        self.line(&format!(
            "| iptables chains, ours: IPv4 + IPv6 | {} + {} | {} + {} | |",
            thousands(ours.chains_v4),
            thousands(ours.chains_v6),
            thousands(theirs.chains_v4),
            thousands(theirs.chains_v6)
        ));
        self.line(&format!(
            "| ipsets / members | {} / {} | {} / {} | |",
            ours.sets,
            thousands(ours.members),
            theirs.sets,
            theirs.members
        ));
        self.line("");
        self.line(&format!(
            "Rules are counted in `iptables-save -t filter` / `ip6tables-save -t filter` of each \
             program's namespace: rules in its own chains and its jumps from built-in chains. \
             Checked before timing: podroute's compiled rules, the naive rules and the \
             reference evaluator agree on {} sampled flows (every local pod, both directions, \
             sampled peers and ports).",
            thousands(main.flows_checked)
        ));
        self.line("");

        // Scale table.
        self.line(&format!(
            "## Rules against cluster size (same {} policies, same {n} local pods)",
            thousands(options.policies)
        ));
        self.line("");
        self.line(
            "| pods | podroute rules | chains | ipsets | set members | podroute first programming ms | naive rules | naive first programming ms | naive/podroute rules |",
        );
        self.line("|---|---|---|---|---|---|---|---|---|");
        for scale in scales {
            let first = median(scale.podroute_first.iter().map(Stages::total));
            self.line(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(scale.pods),
                thousands(scale.podroute.rules()),
                thousands(scale.podroute.chains()),
                scale.podroute.sets,
                thousands(scale.podroute.members),
                ms(first),
                thousands(scale.naive_rules),
                ms(scale.naive_first),
                ratio(scale.naive_rules as f64, scale.podroute.rules() as f64)
            ));
        }
        self.line("");

        // Goals.
        let change_worst = main
            .changes
            .iter()
            .map(|c| median(c.podroute.iter().map(Stages::total)))
            .max()
            .unwrap_or_default();
        let rule_counts: BTreeSet<usize> = scales.iter().map(|s| s.podroute.rules()).collect();
        let sizes: Vec<String> = scales.iter().map(|s| thousands(s.pods)).collect();
        let counts: Vec<String> = scales
            .iter()
            .map(|s| thousands(s.podroute.rules()))
            .collect();
        self.line("## Goals (issue 7)");
        self.line("");
        self.line("| goal | measured | |");
        self.line("|---|---|---|");
        self.line(&format!(
            "| first programming under 1 s ({} pods, {} policies) | {} ms | {} |",
            thousands(p),
            thousands(options.policies),
            ms(first),
            met(first < Duration::from_secs(1))
        ));
        self.line(&format!(
            "| one pod's label change in the kernel under 100 ms | {} ms (the slower of the two changes) | {} |",
            ms(change_worst),
            met(change_worst < Duration::from_millis(100))
        ));
        self.line(&format!(
            "| rule count independent of the number of pods | {} rules at {} pods | {} |",
            counts.join(" / "),
            sizes.join(" / "),
            met(rule_counts.len() == 1)
        ));
        self.line("");
        self.line("## Anchors (cited, not measured here)");
        self.line("");
        self.line(
            "- kube-router, cloudnativelabs/kube-router#945 (2020): its policy controller \
             turns each NetworkPolicy rule into at least one iptables rule; a cluster with \
             10,000+ NetworkPolicy rules had hundreds of thousands of iptables rules per node \
             (675,056 rules in 71,326 chains) and one sync lasted several hours.",
        );
        self.line(
            "- Calico: ~3 s dataplane applies at ~3,500 pods, as issue 7 cites it; the \
             setting of projectcalico/felix#2032 (10 nodes, ~1,000 namespaces, ~3,500 pods, \
             ~12,000 policy objects, ~14,000 filter chains per node).",
        );
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn progress(what: &str) {
    eprintln!("policy_bench: {what}");
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn parse_args() -> Result<Options> {
    let mut options = Options {
        pods: 5000,
        scales: vec![2500, 10_000],
        namespaces: 100,
        policies: 1000,
        reps: 3,
        change_reps: 9,
        naive_reps: 3,
        prefix: format!("ppb{}", std::process::id()),
        commit: "?".into(),
        out: None,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--keep" {
            options.keep = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let count = |v: &str| -> Result<usize> {
            v.parse()
                .with_context(|| format!("{flag}: {v:?} is not a count"))
        };
        match flag.as_str() {
            "--pods" => options.pods = count(&value)?,
            "--scales" => {
                options.scales = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(count)
                    .collect::<Result<_>>()?;
            }
            "--namespaces" => options.namespaces = count(&value)?,
            "--policies" => options.policies = count(&value)?,
            "--reps" => options.reps = count(&value)?,
            "--change-reps" => options.change_reps = count(&value)?,
            "--naive-reps" => options.naive_reps = count(&value)?,
            "--prefix" => options.prefix = value,
            "--commit" => options.commit = value,
            "--out" => options.out = Some(PathBuf::from(value)),
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(options.reps >= 1, "--reps must be at least 1");
    ensure!(options.change_reps >= 1, "--change-reps must be at least 1");
    ensure!(
        !options.prefix.is_empty() && options.prefix.len() <= 12,
        "--prefix: 1 to 12 characters (namespace names get suffixes)"
    );
    options.scales.retain(|s| *s != options.pods);
    Ok(options)
}
