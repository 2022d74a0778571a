// Cluster topologies end to end, podroute-bgpd on every node, each started
// with the same Node documents and its own --node, announcing the blocks a
// real podroute-ipamd gives its node, with a pod on every node made by the
// real CNI plugin: a route reflector with six clients on one L2 segment
// (bgpd/tests/labs/rr.clab.yml; RFC 4456), and a four-node node-to-node
// mesh over IPv4 and IPv6 (bgpd/tests/labs/mesh.clab.yml) where the lower
// address of each pair connects, so every session comes up once, without
// collisions. Each checks the sessions, the kernel routes of every node and
// that every pod reaches every other. Needs root.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;
use podroute_lab::pods::{Ipamd, Pod};
use podroute_lab::{Lab, LabOptions, netns};
use podroute_proto::bgpd::v1::RouteDirection;
use podroute_proto::common::v1::AddressFamily;

use common::{BGPD, Bgpd, CONVERGE, established, wait_seen};

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
    common::kernel_routes(lab, node, family)
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

/// Dual-stack pools: IPv4 /26 and IPv6 /122 blocks.
const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: v4}
spec: {cidr: 10.240.0.0/16, blockSize: 26}
---
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: v6}
spec: {cidr: \"fd00:240::/48\", blockSize: 122}
";

/// A lab ipamd serving POOLS, and the `--ipamd` argument for bgpd.
fn lab_ipamd(dir: &Path) -> Ipamd {
    let bin_dir = Path::new(BGPD).parent().unwrap();
    Ipamd::start(bin_dir, &dir.join("ipamd"), POOLS).unwrap()
}

/// The block (of POOLS' block sizes) that holds `ip`.
fn block_of(ip: IpAddr) -> String {
    let len = if ip.is_ipv4() { 26 } else { 122 };
    let net = IpNetwork::new(ip, len).unwrap();
    IpNetwork::new(net.network(), len).unwrap().to_string()
}

/// Every pod reaches every other pod, over IPv4 and, with `v6`, IPv6.
fn pods_reach_each_other(lab: &Lab, pods: &[Pod], v6: bool) {
    for from in pods {
        for to in pods {
            if from.id == to.id {
                continue;
            }
            for target in [to.v4.map(IpAddr::V4), to.v6.filter(|_| v6).map(IpAddr::V6)]
                .into_iter()
                .flatten()
            {
                let what = format!("{} on {} to ping {target} ({})", from.id, from.node, to.id);
                lab.wait_for(CONVERGE, &what, |_| {
                    netns::command_in(
                        &from.netns,
                        &["ping", "-n", "-c", "1", "-W", "1", &target.to_string()],
                    )
                    .output()
                    .is_ok_and(|o| o.status.success())
                })
                .unwrap();
            }
        }
    }
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
    let dir = tempfile::tempdir().unwrap();
    let ipamd = lab_ipamd(dir.path());
    let endpoint = ipamd.endpoint();
    let yaml = config(mesh_off, &[], &nodes, peers);
    let rr = Bgpd::start_yaml(&lab, "rr", &yaml, &["--node", "rr", "--ipamd", &endpoint]);
    let clients: Vec<Bgpd> = (1..=6)
        .map(|i| {
            let name = format!("c{i}");
            Bgpd::start_yaml(&lab, &name, &yaml, &["--node", &name, "--ipamd", &endpoint])
        })
        .collect();
    let pods: Vec<Pod> = (1..=6)
        .map(|i| {
            ipamd
                .add_pod(&lab, &format!("c{i}"), "default", &format!("p{i}"))
                .unwrap()
        })
        .collect();
    let client_block = |i: usize| block_of(IpAddr::V4(pods[i - 1].v4.unwrap()));

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
    // The reflector's sessions are IPv4 only, and so are the routes.
    pods_reach_each_other(&lab, &pods, false);
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
    let dir = tempfile::tempdir().unwrap();
    let ipamd = lab_ipamd(dir.path());
    let endpoint = ipamd.endpoint();
    // One configuration for every node, as a cluster has.
    let yaml = config("", &[], &nodes, "");
    let speakers: Vec<Bgpd> = (1..=4)
        .map(|i| {
            let name = format!("n{i}");
            Bgpd::start_yaml(&lab, &name, &yaml, &["--node", &name, "--ipamd", &endpoint])
        })
        .collect();
    let pods: Vec<Pod> = (1..=4)
        .map(|i| {
            ipamd
                .add_pod(&lab, &format!("n{i}"), "default", &format!("p{i}"))
                .unwrap()
        })
        .collect();
    let blocks = |i: usize| {
        let pod = &pods[i - 1];
        vec![
            block_of(IpAddr::V4(pod.v4.unwrap())),
            block_of(IpAddr::V6(pod.v6.unwrap())),
        ]
    };
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
    // Six pairs, two families, each session configured on both ends and
    // passive on the higher address's side: only the lower one connects,
    // so the two can never collide (RFC 4271 §6.8).
    let sessions: usize = speakers.iter().map(|s| s.peers().unwrap().len()).sum();
    assert_eq!(sessions, 6 * 2 * 2);
    for (i, speaker) in (1..=4).zip(&speakers) {
        for p in speaker.peers().unwrap() {
            let theirs: IpAddr = p.address.parse().unwrap();
            let ours: IpAddr = if theirs.is_ipv4() { v4(i) } else { v6(i) }
                .parse()
                .unwrap();
            assert_eq!(
                p.passive,
                ours > theirs,
                "n{i}: the session with {theirs} must be passive exactly when our address is the higher"
            );
        }
    }
    pods_reach_each_other(&lab, &pods, true);
}
