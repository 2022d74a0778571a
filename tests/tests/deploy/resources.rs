// Our resources (the default IPPool and BGPConfiguration, the overlays'
// BGPPeers) loaded by ipamd's and bgpd's own code, and resolved for sample
// nodes into the sessions each node gets.

use std::collections::BTreeSet;
use std::path::Path;

use crate::builds::{build, builds};
use crate::docs;
use crate::docs::deploy;
use crate::tables::{MESH_NODES, RR_NODES, SampleNode, TOR_NODES};

fn node_documents(nodes: &[SampleNode]) -> String {
    let mut text = String::new();
    for (name, address, labels, annotations) in nodes {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{}}}, annotations: {{{}}}}}\nspec: {{addresses: [{address}]}}\n",
            map(labels),
            map(annotations)
        ));
    }
    text
}

/// Per node, the addresses of the peers it gets.
type Sessions = &'static [(&'static str, &'static [&'static str])];

#[test]
fn bgp_resources_resolve_for_sample_nodes() {
    // (build, nodes, node -> the peer addresses it gets).
    let cases: [(&str, &[SampleNode], Sessions); 5] = [
        (
            "deploy/podroute.yaml",
            &MESH_NODES,
            &[
                ("node-a", &["10.0.0.2", "10.0.0.3"]),
                ("node-c", &["10.0.0.1", "10.0.0.2"]),
            ],
        ),
        (
            "overlays/mesh",
            &MESH_NODES,
            &[("node-b", &["10.0.0.1", "10.0.0.3"])],
        ),
        (
            "overlays/etcd",
            &MESH_NODES,
            &[("node-b", &["10.0.0.1", "10.0.0.3"])],
        ),
        (
            "overlays/tor",
            &TOR_NODES,
            &[
                ("node-a", &["10.0.1.253", "10.0.1.254"]),
                ("node-c", &["10.0.2.253", "10.0.2.254"]),
            ],
        ),
        (
            "overlays/route-reflector",
            &RR_NODES,
            &[
                ("node-a", &["10.0.0.101", "10.0.0.102"]),
                ("rr-1", &["10.0.0.1", "10.0.0.102", "10.0.0.2"]),
            ],
        ),
    ];
    for (name, nodes, expected) in cases {
        let build = build(name);
        let defaults = build
            .config_map("podroute-defaults")
            .unwrap()
            .data
            .clone()
            .unwrap();
        let mut text = defaults["bgpconfigurations.default.yaml"].clone();
        let peers = deploy().join(name).join("bgppeers.yaml");
        if name.starts_with("overlays/") && peers.exists() {
            text.push_str("---\n");
            text.push_str(&std::fs::read_to_string(&peers).unwrap());
        }
        text.push_str(&node_documents(nodes));
        // passwordFiles must be in a folder bgpd has mounted.
        let (_, node) = build
            .workloads()
            .find(|(_, w)| w.name == "podroute-node")
            .unwrap();
        let bgpd = node
            .spec
            .containers
            .iter()
            .find(|c| c.name == "bgpd")
            .unwrap();
        let mounts: Vec<String> = bgpd
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect();
        let read = |path: &Path| {
            if mounts.iter().any(|m| path.starts_with(m)) {
                Ok("sample-key\n".to_owned())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is in no folder bgpd mounts", path.display()),
                ))
            }
        };
        for (node_name, peers) in expected {
            let config = podroute_bgpd::config::parse_for(&text, name, Some(node_name), read)
                .unwrap_or_else(|e| panic!("{name}, node {node_name}: {e}"));
            let got: BTreeSet<String> = config.peers.keys().map(ToString::to_string).collect();
            let peers: BTreeSet<String> = peers.iter().map(|p| (*p).to_owned()).collect();
            assert_eq!(got, peers, "{name}: the peers of {node_name}");
            for peer in config.peers.values().filter(|p| p.name.starts_with("tor-")) {
                assert!(
                    peer.password.is_some() && peer.bfd.is_some(),
                    "{name}: {} has MD5 and BFD",
                    peer.name
                );
            }
        }
    }
}

#[test]
fn the_default_pool_is_valid() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let defaults = build
            .config_map("podroute-defaults")
            .unwrap()
            .data
            .clone()
            .unwrap();
        for (key, text) in &defaults {
            let docs = docs::parse(text, key).unwrap();
            let [doc] = &docs[..] else {
                panic!("{key}: one document per key");
            };
            // <resource>.<name>.yaml names the document.
            let (resource, name) = key.strip_suffix(".yaml").unwrap().split_once('.').unwrap();
            assert_eq!(doc.name(), name, "{key}");
            assert_eq!(format!("{}s", doc.kind().to_lowercase()), resource, "{key}");
            if doc.kind() == "IPPool" {
                let pool: podroute_ipam::model::IpPool =
                    serde_json::from_value(doc.value.clone()).unwrap();
                podroute_ipam::model::validate_pool(&pool, &[]).unwrap();
                assert_eq!(pool.block_prefix(), 26);
            }
        }
    }
}
