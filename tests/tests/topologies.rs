// The containerlab topologies under containerlab/, checked as others will
// use them: each file loads in podlab with nothing ignored, every config a
// node binds exists, every link is in a form real containerlab reads, each
// podroute cluster file is accepted by bgpd's own loader for every node in
// it and agrees with the addresses the lab's exec lines and FRR configs
// set, each pool file by ipamd's loader, and the containerlab entry points
// are valid POSIX sh. The bring-up tests further down start each lab for real with
// `podlab up` and wait for every BGP session it is built for (and, in
// interop, the routes both ways). They need root and the daemons built
// beside podlab (cargo build -p podroute-bgpd -p podroute-ipam -p
// podroute-policy -p podroute-cni -p podctl), as `cargo test --workspace`
// builds them.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin_dir, repo_path};
use podroute_lab::topology::Node;
use podroute_lab::{LabOptions, Role, Topology};

/// The topologies the demo, the end-to-end tests and the benchmark build on.
const TOPOLOGIES: [&str; 5] = [
    "interop",
    "leaf-spine",
    "mesh",
    "route-reflector",
    "two-node-tor",
];
/// Where a cluster node (and the ipamd node) finds its podroute files.
const PODROUTE_DIR: &str = "/etc/podroute";
/// The folder the containers of one lab share under real containerlab.
const SHARED_DIR: &str = "/run/podroute-lab";
/// Where the cluster nodes find the entry points all labs share.
const ENTRY_DIR: &str = "/usr/local/lib/podroute-lab";

fn topology_file(name: &str) -> PathBuf {
    repo_path(&format!("containerlab/{name}.clab.yml"))
}

fn load(name: &str) -> Topology {
    Topology::load(&topology_file(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// A podroute node that podlab runs as a member of the lab's cluster.
fn is_cluster_node(node: &Node) -> bool {
    node.role == Role::Podroute
        && node.bind_for(PODROUTE_DIR).is_some()
        && node.labels.get("role").map(String::as_str) != Some("ipamd")
}

/// Every address the lab configures, per node: in `ip addr add` exec lines
/// (hosts, under real containerlab as under podlab) and in an FRR node's
/// `ip address` lines (zebra sets those). Links carry none (see
/// `links_are_in_a_form_real_containerlab_reads`).
fn lab_addresses(topo: &Topology) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut out: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    let address_of = |word: &str| word.split('/').next().unwrap().parse::<IpAddr>().unwrap();
    for node in topo.nodes.values() {
        let set = out.entry(node.name.clone()).or_default();
        for line in &node.exec {
            let line = line.trim();
            if let Some(rest) = line
                .strip_prefix("ip addr add ")
                .or_else(|| line.strip_prefix("ip address add "))
            {
                set.insert(address_of(rest.split_whitespace().next().unwrap()));
            }
        }
        if let Some(conf) = node.bind_for("/etc/frr/frr.conf") {
            for line in fs::read_to_string(conf).unwrap().lines() {
                if let Some(rest) = line.trim().strip_prefix("ip address ") {
                    set.insert(address_of(rest.trim()));
                }
            }
        }
    }
    out
}

/// The `Node` documents of a cluster file: name and addresses.
fn cluster_nodes(path: &Path) -> BTreeMap<String, Vec<IpAddr>> {
    let text = fs::read_to_string(path).unwrap();
    let mut nodes = BTreeMap::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document).unwrap();
        if value["kind"].as_str() != Some("Node") {
            continue;
        }
        let name = value["metadata"]["name"].as_str().unwrap().to_string();
        let addresses = value["spec"]["addresses"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().parse().unwrap())
            .collect();
        nodes.insert(name, addresses);
    }
    nodes
}

/// The `user` a node runs as under containerlab: its own, else its kind's
/// (podlab keeps no such field: it runs everything as root).
fn user_of(lab: &str, node: &str) -> Option<String> {
    let text = fs::read_to_string(topology_file(lab)).unwrap();
    let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let topology = &file["topology"];
    let own = &topology["nodes"][node];
    let kind = own["kind"].as_str().unwrap_or("linux");
    [
        &own["user"],
        &topology["kinds"][kind]["user"],
        &topology["defaults"]["user"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(str::to_string))
}

#[test]
fn every_topology_loads_with_nothing_ignored() {
    let mut found: Vec<String> = fs::read_dir(repo_path("containerlab"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".clab.yml").map(str::to_string)
        })
        .collect();
    found.sort();
    assert_eq!(found, TOPOLOGIES, "containerlab/*.clab.yml");
    for name in TOPOLOGIES {
        let topo = load(name);
        assert_eq!(topo.name, name, "the lab is named after its file");
        assert!(topo.warnings.is_empty(), "{name}: {:?}", topo.warnings);
        for node in topo.nodes.values() {
            for bind in &node.binds {
                assert!(
                    bind.host.exists(),
                    "{name}: {}: {} missing",
                    node.name,
                    bind.host.display()
                );
                // Binds stay inside the lab's own folder or the entry
                // points every lab shares, so a copy of containerlab/
                // deploys anywhere.
                assert!(
                    bind.host
                        .starts_with(repo_path(&format!("containerlab/{name}")))
                        || bind.host == repo_path("containerlab/podroute-lab"),
                    "{name}: {}: {} is outside containerlab/{name}/ and containerlab/podroute-lab/",
                    node.name,
                    bind.host.display()
                );
            }
            if let Some(conf) = node.bind_for("/etc/frr/frr.conf") {
                let text = fs::read_to_string(conf).unwrap();
                assert!(
                    text.lines()
                        .any(|l| l.trim() == format!("hostname {}", node.name)),
                    "{name}: {}: frr.conf names another host",
                    node.name
                );
            }
        }
    }
}

/// Real containerlab reads a link without `type` in the brief form, whose
/// endpoints are `"node:interface"` strings; endpoints as maps need `type:
/// veth`. Addresses on links (`ipv4:` on an endpoint or the link) are not
/// set by every containerlab release, so the labs set them in `exec` lines
/// and FRR configs instead.
#[test]
fn links_are_in_a_form_real_containerlab_reads() {
    for name in TOPOLOGIES {
        let text = fs::read_to_string(topology_file(name)).unwrap();
        let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let links = file["topology"]["links"].as_sequence().unwrap();
        for (i, link) in links.iter().enumerate() {
            let at = format!("{name}: topology.links[{i}]");
            let endpoints = link["endpoints"].as_sequence().unwrap();
            assert_eq!(endpoints.len(), 2, "{at}: two endpoints");
            match link["type"].as_str() {
                None => {
                    for end in endpoints {
                        let brief = end.as_str().and_then(|e| e.split_once(':'));
                        assert!(
                            brief.is_some_and(|(n, i)| !n.is_empty() && !i.is_empty()),
                            "{at}: without `type`, an endpoint is \"node:interface\", not {end:?}"
                        );
                    }
                }
                Some("veth") => {
                    for end in endpoints {
                        assert!(
                            end.as_str().is_none()
                                && end["node"].is_string()
                                && end["interface"].is_string(),
                            "{at}: with `type: veth`, an endpoint is {{node, interface}}, not {end:?}"
                        );
                    }
                }
                Some(other) => panic!("{at}: link type {other}: the labs use veth"),
            }
            for family in ["ipv4", "ipv6"] {
                assert!(
                    link.get(family).is_none() && endpoints.iter().all(|e| e.get(family).is_none()),
                    "{at}: {family} on a link: set it in the node's exec or FRR config"
                );
            }
        }
        // What podlab read agrees: no address comes from a link.
        for link in &load(name).links {
            for end in [&link.a, &link.b] {
                assert!(end.addresses.is_empty(), "{name}: {end:?}");
            }
        }
    }
}

#[test]
fn cluster_nodes_and_ipamd_follow_the_contract() {
    for name in TOPOLOGIES {
        let topo = load(name);
        let cluster: Vec<&Node> = topo.nodes.values().filter(|n| is_cluster_node(n)).collect();
        assert!(!cluster.is_empty(), "{name}: no podroute cluster node");
        let ipamd: Vec<&Node> = topo
            .nodes
            .values()
            .filter(|n| n.labels.get("role").map(String::as_str) == Some("ipamd"))
            .collect();
        assert_eq!(
            ipamd.len(),
            1,
            "{name}: exactly one node labelled role: ipamd"
        );
        assert_eq!(
            ipamd[0].role,
            Role::Podroute,
            "{name}: ipamd runs our image"
        );
        let folder = cluster[0].bind_for(PODROUTE_DIR).unwrap();
        for node in cluster.iter().chain(&ipamd) {
            // One config folder and one shared folder for the whole lab.
            assert_eq!(
                node.bind_for(PODROUTE_DIR),
                Some(folder),
                "{name}: {}",
                node.name
            );
            let shared = node
                .bind_for(SHARED_DIR)
                .unwrap_or_else(|| panic!("{name}: {} does not bind {SHARED_DIR}", node.name));
            assert!(
                shared.join(".gitkeep").exists(),
                "{name}: {}",
                shared.display()
            );
            let script = if node.labels.get("role").map(String::as_str) == Some("ipamd") {
                "ipamd.sh"
            } else {
                "node.sh"
            };
            assert_eq!(
                node.cmd.as_deref(),
                Some(format!("{ENTRY_DIR}/{script}").as_str()),
                "{name}: {}",
                node.name
            );
            // Every lab binds the one copy of the entry points.
            assert_eq!(
                node.bind_for(ENTRY_DIR).map(|p| p.canonicalize().unwrap()),
                Some(
                    repo_path("containerlab/podroute-lab")
                        .canonicalize()
                        .unwrap()
                ),
                "{name}: {}",
                node.name
            );
            // The image's default user cannot configure the network.
            assert_eq!(
                user_of(name, &node.name).as_deref(),
                Some("root"),
                "{name}: {}",
                node.name
            );
        }
        for file in ["bgpd.yaml", "pools.yaml"] {
            assert!(folder.join(file).is_file(), "{name}: {file} missing");
        }
    }
}

#[test]
fn cluster_files_load_for_every_node_and_match_the_lab() {
    for name in TOPOLOGIES {
        let topo = load(name);
        let addresses = lab_addresses(&topo);
        let all: BTreeSet<IpAddr> = addresses.values().flatten().copied().collect();
        let cluster: BTreeMap<&str, &Node> = topo
            .nodes
            .values()
            .filter(|n| is_cluster_node(n))
            .map(|n| (n.name.as_str(), n))
            .collect();
        let file = cluster
            .values()
            .next()
            .unwrap()
            .bind_for(PODROUTE_DIR)
            .unwrap()
            .join("bgpd.yaml");
        let documents = cluster_nodes(&file);
        assert_eq!(
            documents.keys().map(String::as_str).collect::<Vec<_>>(),
            cluster.keys().copied().collect::<Vec<_>>(),
            "{name}: one Node document per cluster node"
        );
        for (node, node_addresses) in &documents {
            for address in node_addresses {
                assert!(
                    addresses[node].contains(address),
                    "{name}: Node {node} has {address}, the lab gives it {:?}",
                    addresses[node]
                );
            }
            let config = podroute_bgpd::config::load_for(&file, Some(node))
                .unwrap_or_else(|e| panic!("{name}: --node {node}: {e}"));
            assert!(!config.peers.is_empty(), "{name}: {node} has no session");
            for peer in config.peers.values() {
                assert!(
                    all.contains(&peer.address),
                    "{name}: {node}'s peer {} is nowhere in the lab",
                    peer.address
                );
                // BFD on every session but toward GoBGP, which has none.
                let owner = addresses
                    .iter()
                    .find(|(_, set)| set.contains(&peer.address))
                    .map(|(n, _)| &topo.nodes[n]);
                let gobgp = owner.is_some_and(|n| n.role == Role::Gobgp);
                assert_eq!(
                    peer.bfd.is_some(),
                    !gobgp,
                    "{name}: {node}'s session with {}: BFD",
                    peer.address
                );
            }
        }
    }
}

#[test]
fn pool_files_load_in_ipamd() {
    for name in TOPOLOGIES {
        let path = repo_path(&format!("containerlab/{name}/podroute/pools.yaml"));
        let manifests = podroute_ipam::service::manifests::load(&path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let pools: Vec<String> = manifests
            .pools
            .iter()
            .map(|p| format!("{} /{:?}", p.spec.cidr, p.spec.block_size))
            .collect();
        assert_eq!(pools, ["10.244.0.0/16 /Some(26)"], "{name}");
    }
}

#[test]
fn entry_points_are_valid_sh() {
    for file in ["node.sh", "ipamd.sh"] {
        let path = repo_path(&format!("containerlab/podroute-lab/{file}"));
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", path.display());
    }
}

// ---------------------------------------------------------------------------
// Bring-up: each lab up for real through the podlab command (which starts
// bgpd, the policy agent and ipamd on it), every BGP session it is built
// for Established on both ends.

/// How long a lab gets for all its sessions: FRR's connect timers and
/// podroute's connectRetryTime are 1 s, so this is slack for a loaded
/// machine, not an expectation.
const SESSIONS_UP: Duration = Duration::from_secs(60);
/// Between two looks at a lab.
const POLL: Duration = Duration::from_millis(500);

/// A lab brought up by `podlab up` under a unique name, brought down by
/// `podlab down` when dropped, also when the test fails.
struct UpLab {
    name: String,
    file: String,
}

impl UpLab {
    fn up(topology: &str, prefix: &str) -> UpLab {
        // podlab runs the daemons from its own folder: say so if one is missing.
        bin_dir();
        let name = LabOptions::unique(prefix).name.unwrap();
        let file = topology_file(topology).display().to_string();
        let lab = UpLab { name, file };
        let out = podlab(&["up", &lab.file, "--name", &lab.name]);
        assert!(
            out.status.success(),
            "podlab up {topology}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// A command's standard output in `node`, or None if it failed.
    fn exec(&self, node: &str, argv: &[&str]) -> Option<String> {
        let mut args = vec!["exec", "--name", &self.name, &self.file, node, "--"];
        args.extend_from_slice(argv);
        let out = podlab(&args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// podctl on `node` (its daemons' sockets), JSON output.
    fn podctl(&self, node: &str, argv: &[&str]) -> Option<serde_json::Value> {
        let mut args = vec!["podctl", self.name.as_str(), node, "--", "-o", "json"];
        args.extend_from_slice(argv);
        let out = podlab(&args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The peers of `node`'s podroute-bgpd that are Established.
    fn podroute_established(&self, node: &str) -> BTreeSet<String> {
        let Some(peers) = self.podctl(node, &["bgp", "peers"]) else {
            return BTreeSet::new();
        };
        peers["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["state"] == "Established")
            .filter_map(|p| p["peer"].as_str().map(str::to_string))
            .collect()
    }

    /// The neighbours of FRR node `node` that are Established.
    fn frr_established(&self, node: &str) -> BTreeSet<String> {
        let Some(text) = self.exec(node, &["vtysh", "-c", "show bgp summary json"]) else {
            return BTreeSet::new();
        };
        let summary: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        summary["ipv4Unicast"]["peers"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, p)| p["state"] == "Established")
            .map(|(address, _)| address.clone())
            .collect()
    }

    /// Waits until `check` holds, or fails naming `what` and the last
    /// thing seen.
    fn wait<T: std::fmt::Debug>(&self, what: &str, mut check: impl FnMut() -> (bool, T)) {
        let deadline = Instant::now() + SESSIONS_UP;
        loop {
            let (ok, seen) = check();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lab {}: {what} within {SESSIONS_UP:?}; last seen: {seen:?}",
                self.name
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `node`'s podroute-bgpd has exactly `peers` Established.
    fn wait_podroute(&self, node: &str, peers: &[&str]) {
        let want: BTreeSet<String> = peers.iter().map(|p| p.to_string()).collect();
        self.wait(&format!("{node}'s sessions with {peers:?}"), || {
            let seen = self.podroute_established(node);
            (seen == want, seen)
        });
    }

    /// Waits until FRR node `node` has exactly `peers` Established.
    fn wait_frr(&self, node: &str, peers: &[&str]) {
        let want: BTreeSet<String> = peers.iter().map(|p| p.to_string()).collect();
        self.wait(&format!("{node}'s sessions with {peers:?}"), || {
            let seen = self.frr_established(node);
            (seen == want, seen)
        });
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        let out = podlab(&["down", &self.file, "--name", &self.name]);
        if !out.status.success() {
            eprintln!(
                "podlab down {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn podlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_podlab"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn two_node_tor_sessions_come_up() {
    let lab = UpLab::up("two-node-tor", "tt2");
    lab.wait_podroute("n1", &["10.0.1.1"]);
    lab.wait_podroute("n2", &["10.0.2.1"]);
    lab.wait_frr("tor", &["10.0.1.2", "10.0.2.2"]);
}

#[test]
fn leaf_spine_sessions_come_up() {
    let lab = UpLab::up("leaf-spine", "tls");
    for (node, leaves) in [
        ("n1", ["10.1.0.1", "10.1.0.2"]),
        ("n2", ["10.1.0.1", "10.1.0.2"]),
        ("n3", ["10.2.0.1", "10.2.0.2"]),
        ("n4", ["10.2.0.1", "10.2.0.2"]),
    ] {
        lab.wait_podroute(node, &leaves);
    }
    // Leaf L of spine S is 10.254.SL.2; a leaf's nodes are .11 and .12
    // of its rack's LAN.
    for (leaf, l, rack) in [
        ("leaf1a", 1, 1),
        ("leaf1b", 2, 1),
        ("leaf2a", 3, 2),
        ("leaf2b", 4, 2),
    ] {
        let peers = [
            format!("10.254.1{l}.1"),
            format!("10.254.2{l}.1"),
            format!("10.{rack}.0.11"),
            format!("10.{rack}.0.12"),
        ];
        lab.wait_frr(leaf, &peers.iter().map(String::as_str).collect::<Vec<_>>());
        // BFD with both nodes of the rack, which the demo's restart relies on.
        let nodes: BTreeSet<String> = peers[2..].iter().cloned().collect();
        lab.wait(&format!("{leaf}'s BFD with {nodes:?}"), || {
            let text = lab
                .exec(leaf, &["vtysh", "-c", "show bfd peers json"])
                .unwrap_or_default();
            let list: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let up: BTreeSet<String> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["status"] == "up")
                .filter_map(|p| p["peer"].as_str().map(str::to_string))
                .collect();
            (up == nodes, text)
        });
    }
    for s in [1, 2] {
        let peers: Vec<String> = (1..=4).map(|l| format!("10.254.{s}{l}.2")).collect();
        lab.wait_frr(
            &format!("spine{s}"),
            &peers.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
}

#[test]
fn mesh_sessions_come_up() {
    let lab = UpLab::up("mesh", "tms");
    let all = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    for (i, node) in ["n1", "n2", "n3", "n4"].into_iter().enumerate() {
        let others: Vec<&str> = all.iter().copied().filter(|a| *a != all[i]).collect();
        lab.wait_podroute(node, &others);
    }
}

#[test]
fn route_reflector_sessions_come_up() {
    let lab = UpLab::up("route-reflector", "trr");
    let clients: Vec<String> = (11..=16).map(|i| format!("10.0.0.{i}")).collect();
    let mut rr1: Vec<&str> = clients.iter().map(String::as_str).collect();
    let mut rr2 = rr1.clone();
    rr1.push("10.0.0.2");
    rr2.push("10.0.0.1");
    lab.wait_podroute("rr1", &rr1);
    lab.wait_podroute("rr2", &rr2);
    for i in 1..=6 {
        lab.wait_podroute(&format!("c{i}"), &["10.0.0.1", "10.0.0.2"]);
    }
}

#[test]
fn interop_sessions_come_up_and_routes_cross() {
    let lab = UpLab::up("interop", "tio");
    lab.wait_podroute("n1", &["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    lab.wait_frr("frr", &["10.0.0.1"]);
    lab.wait("bird's session with n1", || {
        let out = lab.exec("bird", &["birdc", "show", "protocols", "n1"]);
        let ok = out.as_deref().is_some_and(|o| o.contains("Established"));
        (ok, out)
    });
    lab.wait("gobgp's session with n1", || {
        let out = lab.exec("gobgp", &["gobgp", "neighbor", "10.0.0.1"]);
        let ok = out
            .as_deref()
            .is_some_and(|o| o.to_ascii_lowercase().contains("bgp state = established"));
        (ok, out)
    });

    // n1 installs the three peers' prefixes into its kernel.
    lab.wait("n1's routes to the three peers' prefixes", || {
        let routes = lab
            .exec("n1", &["ip", "route", "show", "proto", "podroute"])
            .unwrap_or_default();
        let ok = [
            ("192.0.2.0/24 ", "via 10.0.0.2 "),
            ("198.51.100.0/24 ", "via 10.0.0.3 "),
            ("203.0.113.0/24 ", "via 10.0.0.4 "),
        ]
        .iter()
        .all(|(prefix, via)| {
            routes
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains(via))
        });
        (ok, routes)
    });

    // A pod on n1 gives it a block, which all three peers then receive.
    let out = podlab(&[
        "pod",
        "create",
        &lab.name,
        "--node",
        "n1",
        "--namespace",
        "x",
        "--name",
        "a",
    ]);
    assert!(
        out.status.success(),
        "pod create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ip: std::net::Ipv4Addr = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pod IP in {}", String::from_utf8_lossy(&out.stdout)));
    let block = ipnetwork::Ipv4Network::new(ip, 26).unwrap();
    let block = format!("{}/26", block.network());
    lab.wait(&format!("frr to receive {block}"), || {
        let out = lab.exec(
            "frr",
            &["vtysh", "-c", &format!("show ip route {block} json")],
        );
        let ok = out.as_deref().is_some_and(|o| o.contains("10.0.0.1"));
        (ok, out)
    });
    lab.wait(&format!("bird to receive {block}"), || {
        let out = lab.exec("bird", &["birdc", "show", "route", "for", &ip.to_string()]);
        let ok = out
            .as_deref()
            .is_some_and(|o| o.contains(&block) && o.contains("10.0.0.1"));
        (ok, out)
    });
    lab.wait(&format!("gobgp to receive {block}"), || {
        let out = lab.exec("gobgp", &["gobgp", "global", "rib", "-a", "ipv4"]);
        let ok = out.as_deref().is_some_and(|o| {
            o.lines()
                .any(|l| l.contains(&block) && l.contains("10.0.0.1"))
        });
        (ok, out)
    });
}
