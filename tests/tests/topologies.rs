// The containerlab topologies under containerlab/, checked as others will
// use them: each file loads in podlab with nothing ignored, every config a
// node binds exists, each podroute cluster file is accepted by bgpd's own
// loader for every node in it and agrees with the lab's addressing, each
// pool file by ipamd's loader, and the containerlab entry points are valid
// POSIX sh. The bring-up tests further down start each lab for real.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo_path;
use podroute_lab::topology::Node;
use podroute_lab::{Role, Topology};

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

/// Every address the lab configures, per node: on link ends, in `ip addr
/// add` exec lines, and in an FRR node's `ip address` lines (zebra sets
/// those).
fn lab_addresses(topo: &Topology) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut out: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for link in &topo.links {
        for end in [&link.a, &link.b] {
            out.entry(end.node.clone())
                .or_default()
                .extend(end.addresses.iter().map(|a| a.ip()));
        }
    }
    let address_of = |word: &str| word.split('/').next().unwrap().parse::<IpAddr>().unwrap();
    for node in topo.nodes.values() {
        let set = out.entry(node.name.clone()).or_default();
        for line in &node.exec {
            if let Some(rest) = line.trim().strip_prefix("ip addr add ") {
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
                // Binds stay inside the lab's own folder, so a copy of
                // containerlab/ deploys anywhere.
                assert!(
                    bind.host
                        .starts_with(repo_path(&format!("containerlab/{name}"))),
                    "{name}: {}: {} is outside containerlab/{name}/",
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
                Some(format!("{PODROUTE_DIR}/{script}").as_str()),
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
        for file in ["bgpd.yaml", "pools.yaml", "node.sh", "ipamd.sh"] {
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
fn entry_points_are_valid_sh_and_the_same_in_every_lab() {
    let reference = |file: &str| {
        fs::read_to_string(repo_path(&format!(
            "containerlab/leaf-spine/podroute/{file}"
        )))
        .unwrap()
    };
    for name in TOPOLOGIES {
        for file in ["node.sh", "ipamd.sh"] {
            let path = repo_path(&format!("containerlab/{name}/podroute/{file}"));
            let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{} is not executable", path.display());
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                reference(file),
                "{}: differs from leaf-spine's",
                path.display()
            );
        }
    }
}
