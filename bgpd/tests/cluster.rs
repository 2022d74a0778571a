// Cluster topologies end to end, podroute-bgpd on every node, each started
// with the same Node documents and its own --node: a route reflector with
// six clients on one L2 segment (bgpd/tests/labs/rr.clab.yml; RFC 4456),
// and a four-node node-to-node mesh over IPv4 and IPv6
// (bgpd/tests/labs/mesh.clab.yml) where the lower address of each pair
// connects, so every session comes up once, without collisions.
// Needs root.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use podroute_lab::{Lab, LabOptions};
use podroute_proto::bgpd::v1::RouteDirection;
use podroute_proto::common::v1::AddressFamily;

use common::{Bgpd, CONVERGE, established, wait_seen};

const RR_TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/rr.clab.yml");
const MESH_TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/mesh.clab.yml");

const RR_CLUSTER_ID: &str = "10.34.0.100";

/// A node of the lab: name, addresses, extra metadata lines.
struct NodeDoc {
    name: String,
    addresses: Vec<String>,
    meta: String,
}

/// The shared documents (Nodes, BGPPeers) with this node's own
/// BGPConfiguration (its `originate`; everything else is the same on
/// every node).
fn config(bgp_extra: &str, originate: &[String], nodes: &[NodeDoc], peers: &str) -> String {
    let mut y = String::new();
    let originate: Vec<String> = originate.iter().map(|p| format!("{p:?}")).collect();
    writeln!(
        y,
        "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n  \
         asNumber: 65001\n  connectRetryTime: 1\n  originate: [{}]\n{bgp_extra}",
        originate.join(", ")
    )
    .unwrap();
    for n in nodes {
        let addresses: Vec<String> = n.addresses.iter().map(|a| format!("{a:?}")).collect();
        writeln!(
            y,
            "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata:\n  name: {}\n{}spec:\n  addresses: [{}]",
            n.name,
            n.meta,
            addresses.join(", ")
        )
        .unwrap();
    }
    y + peers
}

/// `(destination, gateway)` of every route of ours in `node`'s main table,
/// for one family ("-4" or "-6"); blackholes have gateway "blackhole".
fn kernel(lab: &Lab, node: &str, family: &str) -> BTreeSet<(String, String)> {
    let out = lab
        .exec(
            node,
            &[
                "ip", "-j", family, "route", "show", "table", "main", "proto", "podroute",
            ],
        )
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
    json.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let gateway = match r["type"].as_str() {
                Some("blackhole") => "blackhole".to_string(),
                _ => r["gateway"].as_str().unwrap_or("?").to_string(),
            };
            (r["dst"].as_str().unwrap_or_default().to_string(), gateway)
        })
        .collect()
}

fn wait_kernel(lab: &Lab, node: &str, family: &str, expected: &BTreeSet<(String, String)>) {
    let what = format!("{node}: kernel routes of ours ({family}) to be {expected:?}");
    wait_seen(
        lab,
        CONVERGE,
        &what,
        |lab| kernel(lab, node, family),
        |r| r == expected,
    );
}

/// Every peer of `bgpd` is `expected` (addresses), each Established, and
/// each came up exactly once.
fn wait_sessions_once(lab: &Lab, bgpd: &Bgpd, expected: &BTreeSet<String>) {
    let what = format!("{}: sessions with {expected:?} Established", bgpd.node);
    let peers = wait_seen(
        lab,
        CONVERGE,
        &what,
        |_| bgpd.peers(),
        |p| {
            p.as_ref().is_ok_and(|p| {
                p.iter().map(|p| p.address.clone()).collect::<BTreeSet<_>>() == *expected
                    && p.iter().all(established)
            })
        },
    )
    .unwrap();
    for p in &peers {
        assert_eq!(
            p.established_transitions, 1,
            "{}: the session with {} came up more than once: {p:#?}",
            bgpd.node, p.address
        );
    }
}

fn client_block(i: usize) -> String {
    format!("10.234.{i}.0/26")
}

fn client_address(i: usize) -> String {
    format!("10.34.0.{i}")
}

#[test]
fn a_reflector_gives_six_clients_each_others_routes() {
    let lab = Lab::up_with(RR_TOPOLOGY, LabOptions::unique("crr")).unwrap();
    let mut nodes = vec![NodeDoc {
        name: "rr".into(),
        addresses: vec!["10.34.0.10".into()],
        meta: format!("  labels: {{podroute.io/route-reflector-cluster-id: {RR_CLUSTER_ID}}}\n"),
    }];
    nodes.extend((1..=6).map(|i| NodeDoc {
        name: format!("c{i}"),
        addresses: vec![client_address(i)],
        meta: String::new(),
    }));
    // Clients peer with the reflectors only (Calico's recipe): no mesh, one
    // BGPPeer selecting the reflectors; the reflector learns its clients
    // from the same document (reverse peering).
    let peers = "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {name: rr}\nspec:\n  \
                 peerSelector: podroute.io/route-reflector-cluster-id\n";
    let mesh_off = "  nodeToNodeMeshEnabled: false\n";
    let rr = Bgpd::start_yaml(
        &lab,
        "rr",
        &config(mesh_off, &[], &nodes, peers),
        &["--node", "rr"],
    );
    let clients: Vec<Bgpd> = (1..=6)
        .map(|i| {
            let name = format!("c{i}");
            let yaml = config(mesh_off, &[client_block(i)], &nodes, peers);
            Bgpd::start_yaml(&lab, &name, &yaml, &["--node", &name])
        })
        .collect();

    let all_clients: BTreeSet<String> = (1..=6).map(client_address).collect();
    wait_sessions_once(&lab, &rr, &all_clients);
    for (i, client) in (1..=6).zip(&clients) {
        wait_sessions_once(&lab, client, &BTreeSet::from(["10.34.0.10".to_string()]));
        // Every other client's block, straight through that client (the
        // reflector leaves the next hop alone); our own as a blackhole.
        let expected: BTreeSet<(String, String)> = (1..=6)
            .map(|j| {
                let gateway = if j == i {
                    "blackhole".to_string()
                } else {
                    client_address(j)
                };
                (client_block(j), gateway)
            })
            .collect();
        wait_kernel(&lab, &client.node, "-4", &expected);
    }
    let expected: BTreeSet<(String, String)> = (1..=6)
        .map(|j| (client_block(j), client_address(j)))
        .collect();
    wait_kernel(&lab, "rr", "-4", &expected);

    // What the reflector sent: ORIGINATOR_ID of the client that sent it,
    // our cluster ID in the CLUSTER_LIST.
    let c1 = &clients[0];
    let route = c1
        .routes("10.34.0.10", RouteDirection::Received, AddressFamily::Ipv4)
        .unwrap()
        .into_iter()
        .find(|r| r.prefix == client_block(2))
        .unwrap();
    assert_eq!(route.originator_id, client_address(2), "{route:#?}");
    assert_eq!(route.cluster_list, [RR_CLUSTER_ID], "{route:#?}");
    assert_eq!(route.next_hops, [client_address(2)], "{route:#?}");
    // c1's own block came back from no one: the reflector does not send a
    // client's routes back to it.
    let own = c1.received("10.34.0.10", &client_block(1)).unwrap();
    assert!(own.is_none(), "reflected back to its sender: {own:#?}");
}

#[test]
fn a_four_node_mesh_from_node_documents_comes_up_once_per_pair_and_family() {
    let lab = Lab::up_with(MESH_TOPOLOGY, LabOptions::unique("cmesh")).unwrap();
    let v4 = |i: usize| format!("10.35.0.{i}");
    let v6 = |i: usize| format!("fd00:35::{i}");
    let nodes: Vec<NodeDoc> = (1..=4)
        .map(|i| NodeDoc {
            name: format!("n{i}"),
            addresses: vec![v4(i), v6(i)],
            meta: String::new(),
        })
        .collect();
    let blocks = |i: usize| vec![format!("10.235.{i}.0/26"), format!("fd00:235:{i}::/64")];
    let speakers: Vec<Bgpd> = (1..=4)
        .map(|i| {
            let name = format!("n{i}");
            let yaml = config("", &blocks(i), &nodes, "");
            Bgpd::start_yaml(&lab, &name, &yaml, &["--node", &name])
        })
        .collect();
    for (i, speaker) in (1..=4).zip(&speakers) {
        let others: BTreeSet<String> = (1..=4)
            .filter(|&j| j != i)
            .flat_map(|j| [v4(j), v6(j)])
            .collect();
        wait_sessions_once(&lab, speaker, &others);
        for (family, address, index) in [("-4", &v4 as &dyn Fn(usize) -> String, 0), ("-6", &v6, 1)]
        {
            let expected: BTreeSet<(String, String)> = (1..=4)
                .map(|j| {
                    let gateway = if j == i {
                        "blackhole".to_string()
                    } else {
                        address(j)
                    };
                    (blocks(j)[index].clone(), gateway)
                })
                .collect();
            wait_kernel(&lab, &speaker.node, family, &expected);
        }
    }
    // Six pairs, two families: each session configured on both ends, one
    // of them passive, so no connection collision happened (RFC 4271
    // §6.8) — the counts above would show a second Established otherwise.
    let sessions: usize = speakers.iter().map(|s| s.peers().unwrap().len()).sum();
    assert_eq!(sessions, 6 * 2 * 2);
}
