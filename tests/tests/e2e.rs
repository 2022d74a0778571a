// End to end on the containerlab topologies a user runs first, brought up
// by podlab with every daemon of ours: `leaf-spine` (two FRR spines, two
// racks of two FRR leaves and two podroute nodes, an external client) and
// `mesh` (four nodes, iBGP node-to-node mesh). On each:
// - every pod reaches every other pod (no policy), and the external client
//   reaches the pods through the spines;
// - every pod address comes from a block affine to its node, and every
//   block is in every other node's kernel (and the spines');
// - 100 pods made and deleted over the nodes leave `podctl ipam check`
//   clean and no route behind;
// - a node that fails has its blocks withdrawn everywhere;
// - the NetworkPolicy truth table: pods x/a..z/c spread over the nodes
//   (across racks), each case's probe matrix equal to what the policy
//   agent's reference evaluator decides for the same manifests.
// Needs root and the daemons built beside podlab (see common::bin_dir).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use podroute_lab::labcluster::{LabPod, PortSpec};
use podroute_lab::{Lab, LabCluster, LabOptions};
use podroute_policy::model::cluster::{Cluster, Protocol as PolicyProtocol};
use podroute_policy::model::evaluate::{Flow, evaluate};
use podroute_policy::source::manifests;
use serde_json::Value;

use common::{bin_dir, repo_path};

/// Sessions, blocks, routes and rules settle within this, on two busy
/// cores with debug builds.
const CONVERGE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(300);
/// How long one probe may take.
const PROBE_TIMEOUT_MS: &str = "1500";
const PODLAB: &str = env!("CARGO_BIN_EXE_podlab");

/// A topology of containerlab/ up with its cluster; torn down on drop.
struct Fabric {
    cluster: LabCluster,
    lab: Lab,
    /// The routers that must carry every pod block (the spines), if any.
    routers: Vec<&'static str>,
    /// BGP sessions each node has when all is up.
    sessions_per_node: usize,
}

impl Fabric {
    fn up(topology: &str, prefix: &str, routers: &[&'static str], sessions: usize) -> Fabric {
        let lab = Lab::up_with(
            repo_path(&format!("containerlab/{topology}.clab.yml")),
            LabOptions::unique(prefix).with_binaries(bin_dir()),
        )
        .unwrap();
        let cluster = LabCluster::from_lab(&lab, bin_dir()).unwrap();
        let fabric = Fabric {
            cluster,
            lab,
            routers: routers.to_vec(),
            sessions_per_node: sessions,
        };
        fabric.wait_sessions();
        fabric
    }

    fn nodes(&self) -> Vec<String> {
        self.cluster.nodes().to_vec()
    }

    /// Every node has all its sessions Established.
    fn wait_sessions(&self) {
        for node in self.nodes() {
            wait(&format!("{node}'s BGP sessions"), || {
                let peers = self.podctl_json(&node, &["bgp", "peers"])?;
                let up = peers["peers"].as_array().map_or(0, |p| {
                    p.iter().filter(|p| p["state"] == "Established").count()
                });
                if up >= self.sessions_per_node {
                    Ok(())
                } else {
                    Err(peers.to_string())
                }
            });
        }
    }

    fn podctl_json(&self, node: &str, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cluster.podctl(node, &all).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "podctl {all:?} on {node}: {e}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn create(&self, node: &str, namespace: &str, name: &str, labels: &[(&str, &str)]) -> LabPod {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ports: Vec<PortSpec> = ["80/TCP", "81/TCP", "80/UDP"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        self.cluster
            .create_pod(node, namespace, name, &labels, &ports)
            .unwrap()
    }

    /// Probes every target from pod `from` at once: one result per target.
    fn probe(&self, from: &LabPod, targets: &[String]) -> Vec<bool> {
        let mut argv = vec![
            PODLAB.to_string(),
            "probe".into(),
            "connect".into(),
            "--timeout-ms".into(),
            PROBE_TIMEOUT_MS.into(),
        ];
        argv.extend(targets.iter().cloned());
        let out = self.cluster.pod_exec(&from.id(), &argv).unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(lines.len(), targets.len(), "{lines:?}");
        lines.iter().map(|l| l["ok"] == true).collect()
    }

    /// `ip route` of a lab node (a node or a router), one route per line.
    fn routes(&self, node: &str) -> String {
        self.lab.exec(node, &["ip", "-4", "route", "show"]).unwrap()
    }

    /// The blocks ipamd has, by node.
    fn blocks(&self) -> BTreeMap<String, Vec<IpNetwork>> {
        let json = self
            .podctl_json(&self.nodes()[0], &["ipam", "blocks"])
            .unwrap();
        let mut by_node: BTreeMap<String, Vec<IpNetwork>> = BTreeMap::new();
        for block in json["blocks"].as_array().unwrap() {
            by_node
                .entry(block["node"].as_str().unwrap().to_string())
                .or_default()
                .push(block["cidr"].as_str().unwrap().parse().unwrap());
        }
        by_node
    }

    /// Addresses allocated in every block, as ipamd counts them.
    fn allocated(&self) -> usize {
        let json = self
            .podctl_json(&self.nodes()[0], &["ipam", "blocks"])
            .unwrap();
        json["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["allocated"].as_u64().unwrap() as usize)
            .sum()
    }

    fn ipam_check_clean(&self) -> Result<(), String> {
        let out = self
            .cluster
            .podctl(&self.nodes()[0], &["ipam", "check"])
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// Polls `check` until Ok, failing with `what` and the last error after
/// CONVERGE.
fn wait<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + CONVERGE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= until => {
                panic!("{what}: not after {CONVERGE:?}: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn tcp(pod: &LabPod, port: u16) -> String {
    format!("tcp:{}:{port}", pod.ip().unwrap())
}

/// Whether `route_table` (ip route output) has a route for exactly `block`.
fn has_route(route_table: &str, block: &IpNetwork) -> bool {
    let want = block.to_string();
    route_table
        .lines()
        .any(|l| l.split_whitespace().next() == Some(want.as_str()))
}

/// Two pods per node, every pod reaching every other; addresses from the
/// node's own blocks, every block in every other node's kernel and on the
/// routers; an external host, if any, reaches a pod.
fn reachability_and_blocks(f: &Fabric, external: Option<&str>) -> Vec<LabPod> {
    let mut pods = Vec::new();
    for node in f.nodes() {
        for i in 0..2 {
            pods.push(f.create(&node, "reach", &format!("{node}-{i}"), &[("app", "reach")]));
        }
    }
    // All pairs, both directions, TCP: each source probes all others at once.
    for from in &pods {
        let targets: Vec<String> = pods
            .iter()
            .filter(|p| p.id() != from.id())
            .map(|p| tcp(p, 80))
            .collect();
        wait(&format!("{} to reach every pod", from.id()), || {
            let got = f.probe(from, &targets);
            let failed: Vec<&String> = targets
                .iter()
                .zip(&got)
                .filter(|(_, ok)| !**ok)
                .map(|(t, _)| t)
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!("unreachable: {failed:?}"))
            }
        });
    }

    let blocks = f.blocks();
    for pod in &pods {
        let ip = pod.ip().unwrap();
        let own = blocks.get(&pod.node).cloned().unwrap_or_default();
        assert!(
            own.iter().any(|b| b.contains(ip)),
            "{} ({ip}) is in none of {}'s blocks {own:?}",
            pod.id(),
            pod.node
        );
    }
    for (owner, owned) in &blocks {
        for block in owned {
            for node in f.nodes().iter().filter(|n| *n != owner) {
                wait(&format!("{owner}'s {block} in {node}'s kernel"), || {
                    let table = f.routes(node);
                    let line = table
                        .lines()
                        .find(|l| l.starts_with(&format!("{block} ")))
                        .unwrap_or("");
                    if line.contains("proto podroute") {
                        Ok(())
                    } else {
                        Err(table)
                    }
                });
            }
            for router in &f.routers {
                wait(&format!("{owner}'s {block} on {router}"), || {
                    let table = f.routes(router);
                    if has_route(&table, block) {
                        Ok(())
                    } else {
                        Err(table)
                    }
                });
            }
        }
    }
    if let Some(host) = external {
        let target = pods.last().unwrap().ip().unwrap().to_string();
        wait(&format!("{host} to ping {target}"), || {
            f.lab
                .exec(host, &["ping", "-c", "1", "-W", "1", &target])
                .map(drop)
                .map_err(|e| e.to_string())
        });
    }
    pods
}

/// 100 pods over the nodes, made side by side (one thread per node), then
/// deleted: IPAM is consistent and every node's kernel is back to what it
/// was, with no route to a deleted pod anywhere.
fn bulk_create_and_delete(f: &Fabric) {
    let nodes = f.nodes();
    let before: BTreeMap<String, BTreeSet<String>> = nodes
        .iter()
        .map(|n| (n.clone(), host_routes(&f.routes(n))))
        .collect();
    let per_node = 100 / nodes.len();
    let made: Vec<LabPod> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    (0..per_node)
                        .map(|i| f.create(node, "bulk", &format!("{node}-{i}"), &[("app", "bulk")]))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(made.len(), per_node * nodes.len());
    let addresses: BTreeSet<IpAddr> = made.iter().map(|p| p.ip().unwrap()).collect();
    assert_eq!(addresses.len(), made.len(), "an address handed out twice");
    f.ipam_check_clean().unwrap();
    assert_eq!(f.allocated(), f.cluster.pods().unwrap().len());

    std::thread::scope(|s| {
        for chunk in made.chunks(made.len().div_ceil(nodes.len())) {
            s.spawn(move || {
                for pod in chunk {
                    f.cluster.delete_pod(&pod.id()).unwrap();
                }
            });
        }
    });
    f.ipam_check_clean().unwrap();
    assert_eq!(f.allocated(), f.cluster.pods().unwrap().len());
    for node in &nodes {
        wait(&format!("{node}'s pod routes back to before"), || {
            let now = host_routes(&f.routes(node));
            if now == before[node] {
                Ok(())
            } else {
                Err(format!("before {:?}, now {now:?}", before[node]))
            }
        });
        let table = f.routes(node);
        for address in &addresses {
            let host = format!("{address} ");
            assert!(
                !table.lines().any(|l| l.starts_with(&host)),
                "{node} still routes deleted pod {address}:\n{table}"
            );
        }
    }
    for address in &addresses {
        let out = f
            .podctl_json(&nodes[0], &["ipam", "show", "--ip", &address.to_string()])
            .unwrap();
        assert_ne!(out["state"], "allocated", "{address}: {out}");
    }
}

/// The /32 routes of a node's table: one per local pod.
fn host_routes(table: &str) -> BTreeSet<String> {
    table
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|d| !d.contains('/') && d != "default")
        })
        .map(|l| l.to_string())
        .collect()
}

/// `victim` fails (its fabric link goes down): its blocks leave every other
/// node's kernel and the routers' tables.
fn node_failure_withdraws_its_blocks(f: &Fabric, victim: &str) {
    let blocks = f.blocks();
    let gone = blocks.get(victim).cloned().unwrap_or_default();
    assert!(!gone.is_empty(), "{victim} holds no block: {blocks:?}");
    f.lab
        .exec(victim, &["ip", "link", "set", "eth1", "down"])
        .unwrap();
    let mut watchers: Vec<String> = f.nodes().into_iter().filter(|n| n != victim).collect();
    watchers.extend(f.routers.iter().map(|r| r.to_string()));
    for node in &watchers {
        for block in &gone {
            wait(&format!("{victim}'s {block} withdrawn from {node}"), || {
                let table = f.routes(node);
                if has_route(&table, block) {
                    Err(table)
                } else {
                    Ok(())
                }
            });
        }
    }
}

// ---- NetworkPolicy truth table ------------------------------------------

const PROBES: [(PolicyProtocol, u16); 3] = [
    (PolicyProtocol::Tcp, 80),
    (PolicyProtocol::Tcp, 81),
    (PolicyProtocol::Udp, 80),
];

/// Namespaces x, y, z (labelled ns=<name>) with pods a, b, c (labelled
/// pod=<name>), dealt over the nodes in turn so each rack holds pods of
/// every namespace.
fn xyz(f: &Fabric) -> Vec<LabPod> {
    let dir = tempfile::tempdir().unwrap();
    let namespaces = dir.path().join("namespaces.yaml");
    let docs: Vec<String> = ["x", "y", "z"]
        .iter()
        .map(|ns| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels: {{ns: {ns}, kubernetes.io/metadata.name: {ns}}}\n"
            )
        })
        .collect();
    std::fs::write(&namespaces, docs.join("---\n")).unwrap();
    f.cluster.apply(&namespaces).unwrap();
    let nodes = f.nodes();
    let mut pods = Vec::new();
    let mut i = 0;
    for ns in ["x", "y", "z"] {
        for pod in ["a", "b", "c"] {
            pods.push(f.create(&nodes[i % nodes.len()], ns, pod, &[("pod", pod)]));
            i += 1;
        }
    }
    pods
}

fn target(pod: &LabPod, protocol: PolicyProtocol, port: u16) -> String {
    let scheme = match protocol {
        PolicyProtocol::Udp => "udp",
        _ => "tcp",
    };
    format!("{scheme}:{}:{port}", pod.ip().unwrap())
}

/// (from, to, probe index) -> allowed.
type Matrix = BTreeMap<(String, String, usize), bool>;

/// What the reference evaluator decides for the manifests the agents read.
fn expected(f: &Fabric, pods: &[LabPod]) -> Matrix {
    let snapshot = manifests::load(&f.cluster.paths().manifests()).unwrap();
    let (cluster, problems) = Cluster::build(&snapshot);
    assert!(problems.is_empty(), "{problems:?}");
    let mut m = Matrix::new();
    for from in pods {
        for to in pods.iter().filter(|p| p.id() != from.id()) {
            for (i, (protocol, port)) in PROBES.iter().enumerate() {
                let flow = Flow {
                    source: from.ip().unwrap(),
                    destination: to.ip().unwrap(),
                    protocol: *protocol,
                    port: *port,
                };
                m.insert((from.id(), to.id(), i), evaluate(&cluster, &flow).allowed());
            }
        }
    }
    m
}

fn probed(f: &Fabric, pods: &[LabPod]) -> Matrix {
    let mut m = Matrix::new();
    for from in pods {
        let cells: Vec<(String, usize, String)> = pods
            .iter()
            .filter(|p| p.id() != from.id())
            .flat_map(|to| {
                PROBES
                    .iter()
                    .enumerate()
                    .map(|(i, (protocol, port))| (to.id(), i, target(to, *protocol, *port)))
            })
            .collect();
        let targets: Vec<String> = cells.iter().map(|(_, _, t)| t.clone()).collect();
        for ((to, i, _), ok) in cells.into_iter().zip(f.probe(from, &targets)) {
            m.insert((from.id(), to, i), ok);
        }
    }
    m
}

/// Replaces the lab's NetworkPolicies with `policies` (namespace, name,
/// spec), then waits until the probed matrix is the evaluator's. Returns
/// how many cells are blocked.
fn case(f: &Fabric, pods: &[LabPod], title: &str, policies: &[(&str, &str, &str)]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let manifests = f.cluster.paths().manifests();
    for entry in std::fs::read_dir(&manifests).unwrap().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("NetworkPolicy.")
        {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    if !policies.is_empty() {
        let docs: Vec<String> = policies
            .iter()
            .map(|(ns, name, spec)| {
                format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
                )
            })
            .collect();
        let file = dir.path().join("policies.yaml");
        std::fs::write(&file, docs.join("---\n")).unwrap();
        f.cluster.apply(&file).unwrap();
    }
    let want = expected(f, pods);
    let blocked = want.values().filter(|ok| !**ok).count();
    wait(&format!("case {title}: the matrix"), || {
        let got = probed(f, pods);
        let wrong: Vec<String> = want
            .iter()
            .filter(|(cell, ok)| got.get(*cell) != Some(ok))
            .map(|((from, to, i), ok)| format!("{from} -> {to} {:?}: want {ok}", PROBES[*i]))
            .collect();
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{} wrong cells: {wrong:?}", wrong.len()))
        }
    });
    eprintln!("case {title}: {blocked} blocked cells as expected");
    blocked
}

const DENY_INGRESS: &str = "  podSelector: {}\n  policyTypes: [Ingress]\n";
const DENY_EGRESS: &str = "  podSelector: {}\n  policyTypes: [Egress]\n";

fn truth_table(f: &Fabric) {
    let pods = xyz(f);
    assert_eq!(case(f, &pods, "no policy", &[]), 0);
    // 6 sources outside x and 2 inside, 3 probes, into each of x's 3 pods.
    assert_eq!(
        case(
            f,
            &pods,
            "default deny ingress in x",
            &[("x", "deny", DENY_INGRESS)]
        ),
        3 * 8 * 3
    );
    let from_b = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {pod: b}\n";
    assert!(case(f, &pods, "x/a from x/b only", &[("x", "allow-b", from_b)]) > 0);
    let from_y = "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n";
    assert!(
        case(
            f,
            &pods,
            "x/a from namespace y only",
            &[("x", "from-y", from_y)]
        ) > 0
    );
    let port_81 = "  podSelector: {}\n  ingress:\n  - ports:\n    - {protocol: TCP, port: 81}\n";
    assert!(case(f, &pods, "x on TCP 81 only", &[("x", "port-81", port_81)]) > 0);
    let y_b_from_z_c = "  podSelector:\n    matchLabels: {pod: b}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: z}\n      podSelector:\n        matchLabels: {pod: c}\n";
    assert!(
        case(
            f,
            &pods,
            "y/b from z/c only (namespace and pod selector together)",
            &[("y", "z-c", y_b_from_z_c)]
        ) > 0
    );
    let to_x_only = "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {ns: x}\n";
    assert!(
        case(
            f,
            &pods,
            "z may send to x only, and policies stack",
            &[("z", "to-x", to_x_only), ("x", "deny", DENY_INGRESS)]
        ) > 0
    );
    assert!(
        case(
            f,
            &pods,
            "default deny egress in y",
            &[("y", "deny-out", DENY_EGRESS)]
        ) > 0
    );
    assert_eq!(case(f, &pods, "every policy deleted", &[]), 0);
}

#[test]
fn leaf_spine_routes_pods_across_racks() {
    let f = Fabric::up("leaf-spine", "e2els", &["spine1", "spine2"], 2);
    reachability_and_blocks(&f, Some("ext"));
    bulk_create_and_delete(&f);
    node_failure_withdraws_its_blocks(&f, "n4");
}

#[test]
fn leaf_spine_enforces_network_policy_across_racks() {
    let f = Fabric::up("leaf-spine", "e2elp", &["spine1", "spine2"], 2);
    truth_table(&f);
}

#[test]
fn mesh_routes_pods_between_all_nodes() {
    let f = Fabric::up("mesh", "e2ems", &[], 3);
    reachability_and_blocks(&f, None);
    bulk_create_and_delete(&f);
    node_failure_withdraws_its_blocks(&f, "n4");
}

#[test]
fn mesh_enforces_network_policy() {
    let f = Fabric::up("mesh", "e2emp", &[], 3);
    truth_table(&f);
}
