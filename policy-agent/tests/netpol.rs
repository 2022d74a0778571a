// The Kubernetes e2e NetworkPolicy cases (test/e2e/network/netpol), with
// real packets: pods a, b, c in namespaces x, y, z made by the CNI plugin on
// two nodes, each node running podroute-policy-agent on the manifests
// folder. For each case every pod probes every other on TCP and UDP 80 and
// 81, and the whole matrix must equal what the reference evaluator decides
// for the same manifests. Each test is one lab running several cases in
// turn, so the moves between cases (a policy added, changed, deleted) are
// tested as well.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{Family, Lab, PORTS, Protocol};
use podroute_policy::model::cluster::{Cluster, Protocol as PolicyProtocol};
use podroute_policy::model::evaluate::{Flow, evaluate};
use podroute_policy::source::manifests;

/// How long a matrix may take to become the expected one: the agents poll
/// the folder every second, then program.
const CONVERGE: Duration = Duration::from_secs(30);

fn xyz_lab() -> Lab {
    xyz_lab_with(&[])
}

/// The x/y/z lab, its agents started with `agent_args`.
fn xyz_lab_with(agent_args: &[&str]) -> Lab {
    let mut lab = common::xyz_lab();
    let mut args = vec!["--log-level", "debug"];
    args.extend(agent_args);
    lab.start_agents(&args);
    lab
}

fn all_probes() -> Vec<(Protocol, u16)> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .flat_map(|p| PORTS.map(|port| (p, port)))
        .collect()
}

/// The matrix the reference evaluator expects from what the manifests
/// folder holds now.
fn expected(lab: &Lab, family: Family) -> common::Matrix {
    let snapshot = manifests::load(&lab.manifests_dir()).unwrap();
    let (cluster, problems) = Cluster::build(&snapshot);
    assert!(problems.is_empty(), "{problems:?}");
    lab.matrix(family, &all_probes(), |from, to, protocol, port| {
        allowed(&cluster, from.ip(family), to.ip(family), protocol, port)
    })
}

fn allowed(
    cluster: &Cluster,
    source: std::net::IpAddr,
    destination: std::net::IpAddr,
    protocol: Protocol,
    port: u16,
) -> bool {
    let protocol = match protocol {
        Protocol::Tcp => PolicyProtocol::Tcp,
        Protocol::Udp => PolicyProtocol::Udp,
    };
    evaluate(
        cluster,
        &Flow {
            source,
            destination,
            protocol,
            port,
        },
    )
    .allowed()
}

/// Replaces the lab's policies with `policies` (name, spec in namespace),
/// then waits until the probed matrix equals the evaluator's, on each of
/// `families`. Returns the number of blocked cells on the first family, so
/// a case can assert that it blocked something.
fn case(lab: &Lab, title: &str, policies: &[(&str, &str, &str)], families: &[Family]) -> usize {
    eprintln!("case: {title}");
    replace_policies(lab, policies);
    let mut blocked = None;
    for family in families {
        let want = expected(lab, *family);
        let got = lab.wait_for_matrix(&want, CONVERGE);
        blocked.get_or_insert(got.cells.values().filter(|ok| !**ok).count());
    }
    blocked.unwrap_or(0)
}

/// Replaces the lab's NetworkPolicy files with `policies`.
fn replace_policies(lab: &Lab, policies: &[(&str, &str, &str)]) {
    for entry in std::fs::read_dir(lab.manifests_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_prefix("policy-") {
            lab.delete_yaml(&format!("policy-{}", stem.trim_end_matches(".yaml")));
        }
    }
    for (namespace, name, spec) in policies {
        lab.apply_yaml(
            &format!("policy-{namespace}-{name}"),
            &format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
            ),
        );
    }
}

const DENY_INGRESS: &str = "  podSelector: {}\n  policyTypes: [Ingress]\n";
const DENY_ALL: &str = "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n";
const BOTH: [Family; 2] = [Family::V4, Family::V6];
const V4: [Family; 1] = [Family::V4];

#[test]
fn ingress_selectors_stacking_and_deletion() {
    let lab = xyz_lab();
    assert_eq!(case(&lab, "no policy", &[], &V4), 0);
    // 8 sources x 4 probes into each of x's 3 pods.
    assert_eq!(
        case(
            &lab,
            "default deny ingress in x",
            &[("x", "deny", DENY_INGRESS)],
            &BOTH
        ),
        3 * 8 * 4
    );
    let from_b = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {pod: b}\n";
    assert!(
        case(
            &lab,
            "x/a from pod b of x only",
            &[("x", "allow-b", from_b)],
            &V4
        ) > 0
    );
    let from_y = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n";
    case(
        &lab,
        "x/a from namespace y",
        &[("x", "allow-y", from_y)],
        &BOTH,
    );
    let and = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n      podSelector:\n        matchLabels: {pod: c}\n";
    case(&lab, "x/a from y/c only (AND)", &[("x", "and", and)], &V4);
    let or = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n    - podSelector:\n        matchLabels: {pod: c}\n";
    case(&lab, "x/a from y or x/c (OR)", &[("x", "or", or)], &V4);
    let expressions = "  podSelector:\n    matchExpressions:\n    - {key: pod, operator: In, values: [a, b]}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchExpressions:\n        - {key: ns, operator: NotIn, values: [x, y]}\n    - podSelector:\n        matchExpressions:\n        - {key: pod, operator: DoesNotExist}\n";
    case(
        &lab,
        "matchExpressions: x/a, x/b from z only",
        &[("x", "expr", expressions)],
        &V4,
    );
    let allow_all = "  podSelector: {}\n  ingress:\n  - {}\n";
    assert_eq!(
        case(
            &lab,
            "allow-all precedes deny-all",
            &[("x", "deny", DENY_INGRESS), ("x", "allow-all", allow_all)],
            &V4
        ),
        0
    );
    assert!(
        case(
            &lab,
            "stacked: deny all ingress plus allow from y",
            &[("x", "deny", DENY_INGRESS), ("x", "allow-y", from_y)],
            &V4,
        ) > 0
    );
    assert_eq!(
        case(&lab, "policies deleted: all open again", &[], &BOTH),
        0
    );
}

#[test]
fn egress_ip_blocks_and_both_directions() {
    let lab = xyz_lab();
    let denied = case(
        &lab,
        "default deny all in x",
        &[("x", "deny-all", DENY_ALL)],
        &BOTH,
    );
    // x's 3 pods lose all they send (3 x 8 x 4) and all they receive from
    // outside x (3 x 6 x 4); x to x is counted once.
    assert_eq!(denied, 3 * 8 * 4 + 3 * 6 * 4);
    let egress_to_y = "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n";
    case(
        &lab,
        "egress of x to y only",
        &[("x", "to-y", egress_to_y)],
        &BOTH,
    );
    // The block holds every pod but y/b (IPv4) and the IPv6 pool but y/b.
    let yb = lab.pod("y/b");
    let block = format!(
        "  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.240.0.0/16\n        except: [{}/32]\n    - ipBlock:\n        cidr: 'fd00:240::/48'\n        except: ['{}/128']\n",
        yb.v4, yb.v6
    );
    case(
        &lab,
        "egress to an ipBlock with except",
        &[("x", "block", &block)],
        &BOTH,
    );
    let both = "  podSelector:\n    matchLabels: {pod: a}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: z}\n  egress:\n  - to:\n    - podSelector:\n        matchLabels: {pod: b}\n      namespaceSelector: {}\n    ports:\n    - {port: 80, protocol: TCP}\n";
    case(
        &lab,
        "ingress and egress together",
        &[("x", "both", both)],
        &V4,
    );
    let egress_named = "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports:\n    - {port: serve-81-udp, protocol: UDP}\n";
    case(
        &lab,
        "egress to a named port",
        &[("x", "named", egress_named)],
        &BOTH,
    );
}

#[test]
fn ports_ranges_named_ports_and_protocols() {
    let lab = xyz_lab();
    let named =
        "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: serve-81-udp, protocol: UDP}\n";
    case(
        &lab,
        "ingress to a named port",
        &[("x", "named", named)],
        &V4,
    );
    let range =
        "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, endPort: 81, protocol: TCP}\n";
    case(
        &lab,
        "ingress to a TCP port range",
        &[("x", "range", range)],
        &BOTH,
    );
    let udp_only = "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, protocol: UDP}\n";
    let blocked = case(
        &lab,
        "a UDP-only policy still isolates TCP",
        &[("x", "udp", udp_only)],
        &V4,
    );
    // Into x's pods only UDP 80 passes: 3 of 4 probes blocked.
    assert_eq!(blocked, 3 * 8 * 3);
    // No SCTP in this kernel's probes: the rule must still be accepted by
    // iptables, and isolate TCP and UDP.
    let sctp = "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, protocol: SCTP}\n";
    assert_eq!(
        case(&lab, "an SCTP-only policy", &[("x", "sctp", sctp)], &V4),
        3 * 8 * 4
    );
    let rules = lab.node_exec("n1", &["iptables-save", "-t", "filter"]);
    assert!(rules.contains("-p sctp -m sctp --dport 80"), "{rules}");
}

#[test]
fn relabels_updates_restarts_and_cut_flows() {
    let mut lab = xyz_lab();
    let from_env = "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {env: trusted}\n    - podSelector:\n        matchLabels: {role: friend}\n";
    case(
        &lab,
        "x from trusted namespaces or friends",
        &[("x", "p", from_env)],
        &V4,
    );
    lab.set_namespace_labels("z", &[("ns", "z"), ("env", "trusted")]);
    case(
        &lab,
        "namespace z relabelled trusted",
        &[("x", "p", from_env)],
        &V4,
    );
    lab.set_pod_labels("x/b", &[("pod", "b"), ("role", "friend")]);
    case(
        &lab,
        "pod x/b relabelled friend",
        &[("x", "p", from_env)],
        &BOTH,
    );
    let updated = from_env.replace("env: trusted", "ns: y");
    case(
        &lab,
        "the policy updated in place",
        &[("x", "p", &updated)],
        &V4,
    );

    // A crash leaves the rules in force: with the agents dead, a deny
    // written meanwhile changes nothing; the restarted agents program it.
    lab.kill_agents();
    let in_force = expected(&lab, Family::V4);
    let deny = [("x", "deny", DENY_INGRESS)];
    replace_policies(&lab, &deny);
    assert_ne!(
        expected(&lab, Family::V4),
        in_force,
        "the deny changes the expectation"
    );
    let got = lab.probe_matrix(&all_probes(), Family::V4);
    assert!(
        got == in_force,
        "agents dead, rules changed:\n{}",
        got.diff(&in_force)
    );
    lab.start_agents(&[]);
    case(&lab, "agents restarted: the deny is programmed", &deny, &V4);
    case(
        &lab,
        "back to the updated policy",
        &[("x", "p", &updated)],
        &V4,
    );

    // An established UDP flow, y/a to x/a port 80, from a fixed source
    // port: allowed now, and the same flow again after a deny must fail,
    // because the agent cut its conntrack entry.
    let ya_netns = lab.pod("y/a").netns.clone();
    let podlab = common::sibling_binary("podlab");
    let target = format!("udp:{}:80", lab.pod("x/a").v4);
    let flow = || {
        let out = common::exec_in(
            &ya_netns,
            &[
                podlab.to_str().unwrap(),
                "probe",
                "connect",
                "--timeout-ms",
                "800",
                "--source-port",
                "40123",
                &target,
            ],
        );
        out.contains("\"ok\":true")
    };
    let until = std::time::Instant::now() + CONVERGE;
    while !flow() {
        assert!(
            std::time::Instant::now() < until,
            "y/a never reached x/a udp/80"
        );
    }
    // n1 tracks it as a replied flow: what the deny must cut.
    let tracked = lab.node_exec(
        "n1",
        &[
            "conntrack",
            "-L",
            "-p",
            "udp",
            "--sport",
            "40123",
            "--dport",
            "80",
        ],
    );
    assert!(
        tracked.contains("sport=40123") && !tracked.contains("UNREPLIED"),
        "{tracked}"
    );
    case(
        &lab,
        "deny ingress to x",
        &[("x", "deny", DENY_INGRESS)],
        &V4,
    );
    podctl_tells_why(&lab);
    // Each try refreshes the flow's conntrack entry, so only the agent's
    // cut can make it fail; it runs right after the apply, so poll. The
    // sweep deletes every denied flow of the lab (over a hundred here),
    // which took 8 s on a loaded 2-core machine: the same deadline as the
    // matrix.
    let until = std::time::Instant::now() + CONVERGE;
    while flow() {
        assert!(
            std::time::Instant::now() < until,
            "the established flow y/a -> x/a udp/80 still passes after the deny\n\
             n1's conntrack:\n{}\nn1's agent:\n{}",
            lab.node_exec("n1", &["conntrack", "-L", "-p", "udp", "--dport", "80"]),
            lab.log("agent-n1.log")
        );
    }
}

#[test]
fn a_resync_heals_what_someone_else_removed() {
    let lab = xyz_lab_with(&["--resync-interval", "2"]);
    case(
        &lab,
        "default deny ingress in x",
        &[("x", "deny", DENY_INGRESS)],
        &BOTH,
    );
    // Someone deletes our FORWARD hooks on n1 (both families): x's pods on
    // n1 open up until the next resync reads the kernel and puts them back.
    for program in ["iptables", "ip6tables"] {
        let rules = lab.node_exec("n1", &[&format!("{program}-save"), "-t", "filter"]);
        let hook = rules
            .lines()
            .find(|l| l.starts_with("-A FORWARD") && l.contains("-j PODROUTE-FORWARD"))
            .unwrap()
            .to_owned();
        let mut argv = vec![program, "-w", "10", "-D"];
        argv.extend(
            hook.trim_start_matches("-A ")
                .split(' ')
                .map(|w| w.trim_matches('"')),
        );
        // The comment has spaces: pass it as one word.
        let comment_at = argv.iter().position(|w| *w == "--comment").unwrap() + 1;
        let comment = hook.split('"').nth(1).unwrap();
        let end = argv.iter().position(|w| *w == "-j").unwrap();
        argv.splice(comment_at..end, [comment]);
        lab.node_exec("n1", &argv);
        let after = lab.node_exec("n1", &[&format!("{program}-save"), "-t", "filter"]);
        // Either it is gone, or the agent already put it back.
        assert!(after.matches("-j PODROUTE-FORWARD").count() <= 1, "{after}");
    }
    case(
        &lab,
        "healed by the resync",
        &[("x", "deny", DENY_INGRESS)],
        &BOTH,
    );
    // The first programming inserted the hooks; a later pass, reading the
    // kernel, inserted them again.
    let log = lab.log("agent-n1.log");
    let inserting: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("policy programmed") && !l.contains("hooks_changed=0"))
        .collect();
    assert!(inserting.len() >= 2, "{log}");
    assert!(inserting[1].contains("kernel_read=true"), "{log}");
}

/// `podctl policy` against n1's agent: its endpoints in JSON, and an
/// explanation naming the denying policy, in both output forms.
fn podctl_tells_why(lab: &Lab) {
    let podctl = common::sibling_binary("podctl");
    let socket = lab.dir().join("n1.sock");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&podctl)
            .arg("--policy")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let endpoints: serde_json::Value =
        serde_json::from_str(&run(&["policy", "endpoints", "-o", "json"])).unwrap();
    let on_n1: Vec<String> = lab
        .pods()
        .filter(|p| p.node == "n1")
        .map(|p| p.id.clone())
        .collect();
    let listed: Vec<String> = endpoints["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["namespace"].as_str().unwrap(),
                e["pod"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, on_n1);
    let xa = endpoints["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["namespace"] == "x" && e["pod"] == "a")
        .unwrap();
    assert_eq!(xa["ingress_isolated"], true);
    assert_eq!(xa["egress_isolated"], false);
    assert_eq!(xa["policies"][0], "x/deny");

    let text = run(&[
        "policy", "explain", "--from", "y/a", "--to", "x/a", "--port", "80/TCP",
    ]);
    assert!(text.starts_with("y/a -> x/a 80/TCP: DENIED\n"), "{text}");
    assert!(
        text.contains("ingress of x/a (node n1): denied: isolated by x/deny"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&[
        "policy", "explain", "--from", "x/a", "--to", "y/a", "--port", "81/UDP", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(json["verdict"], "allowed", "{json}");
}
