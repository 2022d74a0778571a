// Tests for cluster resolution: mesh, joins and leaves, ToR peering by
// nodeSelector, per-node peers, route reflector roles and the errors.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::config::{Config, ConfigError, PeerConfig, Problem, diff, parse_for};
use crate::session::transport::TtlMode;
use crate::wire::Family;

fn no_files(path: &Path) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{} not in test", path.display()),
    ))
}

fn global(extra: &str) -> String {
    format!(
        "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n  asNumber: 65001\n{extra}"
    )
}

/// A Node document; `meta` is extra metadata lines (labels, annotations).
fn node(name: &str, addresses: &[&str], meta: &str) -> String {
    format!(
        "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata:\n  name: {name}\n{meta}spec:\n  addresses: [{}]\n",
        addresses
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn bgp_peer(name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

fn four_nodes() -> String {
    [
        node("n1", &["10.0.0.1", "fd00::1"], ""),
        node("n2", &["10.0.0.2", "fd00::2"], ""),
        node("n3", &["10.0.0.3", "fd00::3"], ""),
        node("n4", &["10.0.0.4"], ""),
    ]
    .concat()
}

fn resolve(text: &str, node: &str) -> Config {
    match parse_for(text, "cluster.yaml", Some(node), no_files) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config for {node}, got: {e}"),
    }
}

fn error(text: &str, node: Option<&str>) -> (String, String, Problem) {
    match parse_for(text, "cluster.yaml", node, no_files) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e @ ConfigError::Invalid { .. }) => {
            let shown = e.to_string();
            let ConfigError::Invalid {
                location, problem, ..
            } = e
            else {
                unreachable!()
            };
            (location.field, shown, problem)
        }
        Err(other) => panic!("expected Invalid, got {other}"),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn peer<'c>(config: &'c Config, address: &str) -> &'c PeerConfig {
    match config.peers.get(&ip(address)) {
        Some(peer) => peer,
        None => panic!("no peer {address} in {:?}", config.peers.keys()),
    }
}

/// (address, name, passive) of every peer, by address.
fn summary(config: &Config) -> Vec<(IpAddr, String, bool)> {
    config
        .peers
        .values()
        .map(|p| (p.address, p.name.clone(), p.passive))
        .collect()
}

#[test]
fn four_node_mesh_lower_address_initiates_one_session_per_shared_family() {
    let text = global("") + &four_nodes();
    let n1 = resolve(&text, "n1");
    assert_eq!(n1.bgp.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(n1.bgp.as_number, 65001);
    let expect = |list: &[(&str, &str, bool)]| -> Vec<(IpAddr, String, bool)> {
        let mut v: Vec<_> = list
            .iter()
            .map(|(a, n, p)| (ip(a), n.to_string(), *p))
            .collect();
        v.sort();
        v
    };
    // n1 has the lowest addresses: it connects to everyone.
    assert_eq!(
        summary(&n1),
        expect(&[
            ("10.0.0.2", "mesh-n2", false),
            ("10.0.0.3", "mesh-n3", false),
            ("10.0.0.4", "mesh-n4", false),
            ("fd00::2", "mesh-n2", false),
            ("fd00::3", "mesh-n3", false),
        ])
    );
    let n2 = resolve(&text, "n2");
    assert_eq!(
        summary(&n2),
        expect(&[
            ("10.0.0.1", "mesh-n1", true),
            ("10.0.0.3", "mesh-n3", false),
            ("10.0.0.4", "mesh-n4", false),
            ("fd00::1", "mesh-n1", true),
            ("fd00::3", "mesh-n3", false),
        ])
    );
    // n4 has no IPv6 address: IPv4 sessions only, all passive.
    let n4 = resolve(&text, "n4");
    assert_eq!(
        summary(&n4),
        expect(&[
            ("10.0.0.1", "mesh-n1", true),
            ("10.0.0.2", "mesh-n2", true),
            ("10.0.0.3", "mesh-n3", true),
        ])
    );
    // Each session carries its own family, from the node's own address,
    // iBGP (same AS), no reflection.
    let v6 = peer(&n2, "fd00::3");
    assert_eq!(v6.families, [Family::IPV6_UNICAST].into());
    assert_eq!(v6.source_address, Some(ip("fd00::2")));
    assert_eq!(v6.as_number, 65001);
    assert_eq!(v6.ttl, TtlMode::OsDefault);
    assert!(!v6.route_reflector_client);
    assert_eq!(
        peer(&n2, "10.0.0.3").families,
        [Family::IPV4_UNICAST].into()
    );
    // Every pair is configured on both ends, exactly one end active.
    let configs: Vec<(&str, Config)> = ["n1", "n2", "n3", "n4"]
        .iter()
        .map(|n| (*n, resolve(&text, n)))
        .collect();
    for (a, ca) in &configs {
        for (b, cb) in &configs {
            for (address, p) in &ca.peers {
                if p.name != format!("mesh-{b}") {
                    continue;
                }
                let back = cb
                    .peers
                    .values()
                    .find(|q| {
                        q.name == format!("mesh-{a}") && q.address.is_ipv4() == address.is_ipv4()
                    })
                    .unwrap_or_else(|| panic!("{b} has no session back to {a}"));
                assert_ne!(p.passive, back.passive, "{a} <-> {b} {address}");
            }
        }
    }
}

#[test]
fn joins_and_leaves_change_only_their_own_sessions() {
    let three = global("")
        + &[
            node("n1", &["10.0.0.1", "fd00::1"], ""),
            node("n2", &["10.0.0.2", "fd00::2"], ""),
            node("n3", &["10.0.0.3", "fd00::3"], ""),
        ]
        .concat();
    let four = global("") + &four_nodes();
    let before = resolve(&three, "n2");
    let after = resolve(&four, "n2");
    let joined = diff(&before, &after);
    assert_eq!(joined.peers_added, [ip("10.0.0.4")]);
    assert!(joined.peers_removed.is_empty());
    assert!(joined.peers_changed.is_empty() && joined.peers_updated.is_empty());
    assert!(!joined.global.restart_all);
    assert_eq!(joined.peers_unchanged.len(), 4);

    let left = diff(&after, &before);
    assert_eq!(left.peers_removed, [ip("10.0.0.4")]);
    assert!(left.peers_added.is_empty() && left.peers_changed.is_empty());
    assert!(!left.global.restart_all);
}

#[test]
fn tor_peering_by_node_selector_with_the_node_as_from_a_label() {
    let rack =
        |r: &str, asn: &str| format!("  labels: {{rack: {r}, podroute.io/as-number: \"{asn}\"}}\n");
    let text = global("  nodeToNodeMeshEnabled: false\n")
        + &node("n1", &["10.0.1.1"], &rack("r1", "65011"))
        + &node("n2", &["10.0.1.2"], &rack("r1", "65012"))
        + &node("n3", &["10.0.2.1"], &rack("r2", "65021"))
        // The annotation wins over the label.
        + &node(
            "n4",
            &["10.0.2.2"],
            &(rack("r2", "65022") + "  annotations: {podroute.io/as-number: \"1.10\"}\n"),
        )
        + &bgp_peer("tor-r1a", "nodeSelector: rack=r1\npeerIP: 10.0.1.254\nasNumber: 65100")
        + &bgp_peer("tor-r1b", "nodeSelector: rack == r1\npeerIP: 10.0.1.253\nasNumber: 65100")
        + &bgp_peer("tor-r2", "nodeSelector: rack=r2\npeerIP: 10.0.2.254\nasNumber: 65200");
    let n1 = resolve(&text, "n1");
    assert_eq!(n1.bgp.as_number, 65011);
    assert_eq!(
        summary(&n1),
        [
            (ip("10.0.1.253"), "tor-r1b".to_string(), false),
            (ip("10.0.1.254"), "tor-r1a".to_string(), false)
        ]
    );
    let tor = peer(&n1, "10.0.1.254");
    assert!(tor.is_ebgp(n1.bgp.as_number));
    assert_eq!(tor.ttl, TtlMode::Hops(1));
    assert_eq!(resolve(&text, "n2").bgp.as_number, 65012);
    let n4 = resolve(&text, "n4");
    assert_eq!(n4.bgp.as_number, 1 << 16 | 10);
    assert_eq!(
        n4.peers.keys().copied().collect::<Vec<_>>(),
        [ip("10.0.2.254")]
    );
}

#[test]
fn node_scoped_peers_apply_to_that_node_only() {
    let text = global("  nodeToNodeMeshEnabled: false\n")
        + &four_nodes()
        + &bgp_peer("n1-only", "node: n1\npeerIP: 192.0.2.1\nasNumber: 65100")
        + &bgp_peer("everyone", "peerIP: 192.0.2.2\nasNumber: 65100");
    let n1 = resolve(&text, "n1");
    assert_eq!(
        n1.peers.keys().copied().collect::<Vec<_>>(),
        [ip("192.0.2.1"), ip("192.0.2.2")]
    );
    assert_eq!(peer(&n1, "192.0.2.1").name, "n1-only");
    let n2 = resolve(&text, "n2");
    assert_eq!(
        n2.peers.keys().copied().collect::<Vec<_>>(),
        [ip("192.0.2.2")]
    );
}

#[test]
fn explicit_bgp_peers_replace_the_mesh_session_to_the_same_address() {
    let text = global("")
        + &four_nodes()
        + &bgp_peer(
            "to-n3",
            "node: n1\npeerIP: 10.0.0.3\nasNumber: 65001\nholdTime: 9",
        );
    let n1 = resolve(&text, "n1");
    let p = peer(&n1, "10.0.0.3");
    assert_eq!((p.name.as_str(), p.hold_time), ("to-n3", 9));
    assert_eq!(peer(&n1, "fd00::3").name, "mesh-n3");
    assert_eq!(n1.peers.len(), 5);
}

fn reflector_cluster(second_reflector: &str) -> String {
    let rr = |id: &str| format!("  labels: {{podroute.io/route-reflector-cluster-id: {id}}}\n");
    global("  nodeToNodeMeshEnabled: false\n")
        + &node("rr1", &["10.0.0.10"], &rr("10.0.0.100"))
        + &node("rr2", &["10.0.0.11"], &rr(second_reflector))
        + &node("c1", &["10.0.0.1"], "")
        + &node("c2", &["10.0.0.2"], "")
        + &node("c3", &["10.0.0.3"], "")
        + &bgp_peer(
            "to-rr",
            "peerSelector: podroute.io/route-reflector-cluster-id",
        )
}

#[test]
fn route_reflectors_and_their_clients() {
    let text = reflector_cluster("10.0.0.100");
    let rr1 = resolve(&text, "rr1");
    assert_eq!(rr1.bgp.cluster_id, Some(Ipv4Addr::new(10, 0, 0, 100)));
    assert_eq!(rr1.bgp.router_id, Ipv4Addr::new(10, 0, 0, 10));
    let roles: Vec<(String, bool, bool)> = rr1
        .peers
        .values()
        .map(|p| (p.name.clone(), p.route_reflector_client, p.passive))
        .collect();
    // Clients (lower addresses) connect to the reflector; the other
    // reflector of the same cluster is no client.
    assert_eq!(
        roles,
        [
            ("to-rr-c1".to_string(), true, true),
            ("to-rr-c2".to_string(), true, true),
            ("to-rr-c3".to_string(), true, true),
            ("to-rr-rr2".to_string(), false, false),
        ]
    );
    let c2 = resolve(&text, "c2");
    assert_eq!(c2.bgp.cluster_id, None);
    let roles: Vec<(String, bool, bool)> = c2
        .peers
        .values()
        .map(|p| (p.name.clone(), p.route_reflector_client, p.passive))
        .collect();
    assert_eq!(
        roles,
        [
            ("to-rr-rr1".to_string(), false, false),
            ("to-rr-rr2".to_string(), false, false),
        ]
    );
    // Reflectors of different clusters are clients of each other.
    let text = reflector_cluster("10.0.0.200");
    let rr1 = resolve(&text, "rr1");
    assert!(peer(&rr1, "10.0.0.11").route_reflector_client);
    let rr2 = resolve(&text, "rr2");
    assert_eq!(rr2.bgp.cluster_id, Some(Ipv4Addr::new(10, 0, 0, 200)));
    assert!(peer(&rr2, "10.0.0.10").route_reflector_client);
}

#[test]
fn router_id_from_annotation_address_or_configuration() {
    let text = global("  routerID: 192.0.2.99\n")
        + &node(
            "a",
            &["10.0.0.1"],
            "  annotations: {podroute.io/router-id: 192.0.2.1}\n",
        )
        + &node("b", &["fd00::2", "10.0.0.2"], "")
        + &node("c", &["fd00::3"], "");
    assert_eq!(
        resolve(&text, "a").bgp.router_id,
        Ipv4Addr::new(192, 0, 2, 1)
    );
    assert_eq!(
        resolve(&text, "b").bgp.router_id,
        Ipv4Addr::new(10, 0, 0, 2)
    );
    assert_eq!(
        resolve(&text, "c").bgp.router_id,
        Ipv4Addr::new(192, 0, 2, 99)
    );
    // Without routerID an IPv6-only node has none.
    let text = global("") + &node("a", &["10.0.0.1"], "") + &node("c", &["fd00::3"], "");
    let (field, shown, problem) = error(&text, Some("c"));
    assert_eq!(field, "spec.addresses");
    assert!(
        matches!(problem, Problem::NodeWithoutRouterId { .. }),
        "{shown}"
    );
}

#[test]
fn errors_name_the_document_and_field() {
    let nodes = global("") + &four_nodes();
    let (_, shown, problem) = error(&nodes, Some("n9"));
    assert!(matches!(problem, Problem::NoSuchNode { .. }));
    assert!(
        shown.contains("--node \"n9\"") && shown.contains("n1, n2, n3, n4"),
        "{shown}"
    );

    let (_, shown, problem) = error(&nodes, None);
    assert!(matches!(problem, Problem::NodeNotGiven { .. }));
    assert!(shown.contains("pass --node NAME"), "{shown}");

    let bad_as = global("")
        + &node(
            "n1",
            &["10.0.0.1"],
            "  labels: {podroute.io/as-number: lots}\n",
        );
    let (field, shown, problem) = error(&bad_as, Some("n1"));
    assert_eq!(field, "metadata.labels[\"podroute.io/as-number\"]");
    assert!(matches!(problem, Problem::NodeAsNumber(_)));
    assert!(shown.contains("document 2 (Node \"n1\")"), "{shown}");

    let both = nodes.clone() + &bgp_peer("x", "peerSelector: rack=r1\npeerIP: 10.9.9.9");
    let (field, shown, problem) = error(&both, Some("n1"));
    assert_eq!(field, "spec.peerSelector");
    assert!(matches!(problem, Problem::PeerSelectorWith("peerIP")));
    assert!(shown.contains("BGPPeer \"x\""), "{shown}");
    let with_as = nodes.clone() + &bgp_peer("x", "peerSelector: rack=r1\nasNumber: 65001");
    assert!(matches!(
        error(&with_as, Some("n1")).2,
        Problem::PeerSelectorWith("asNumber")
    ));
    let neither = nodes.clone() + &bgp_peer("x", "node: n1");
    assert_eq!(error(&neither, Some("n1")).0, "spec.peerIP");
    let bad_selector = nodes.clone()
        + &bgp_peer(
            "x",
            "nodeSelector: \"rack in (\"\npeerIP: 10.9.9.9\nasNumber: 65001",
        );
    let (field, _, problem) = error(&bad_selector, Some("n1"));
    assert_eq!(field, "spec.nodeSelector");
    assert!(matches!(problem, Problem::Selector(_)));

    let no_address = global("") + &node("n1", &[], "");
    let (field, _, problem) = error(&no_address, Some("n1"));
    assert_eq!(field, "spec.addresses");
    assert!(matches!(problem, Problem::NodeWithoutAddress));

    let twice = global("") + &node("n1", &["10.0.0.1"], "") + &node("n1", &["10.0.0.2"], "");
    let (field, shown, problem) = error(&twice, Some("n1"));
    assert_eq!(field, "metadata.name");
    assert!(matches!(problem, Problem::DuplicateNode { first: 2, .. }));
    assert!(shown.contains("document 3"), "{shown}");

    // Without Node documents: routerID is required and node fields refused.
    let (field, _, problem) = error(&global(""), None);
    assert_eq!(field, "spec.routerID");
    assert!(matches!(problem, Problem::RouterIdRequired));
    let single = global("  routerID: 10.0.0.1\n")
        + &bgp_peer(
            "x",
            "nodeSelector: rack=r1\npeerIP: 10.9.9.9\nasNumber: 65001",
        );
    let (field, _, problem) = error(&single, None);
    assert_eq!(field, "spec.nodeSelector");
    assert!(matches!(problem, Problem::NeedsNodes));
    // --node without Node documents is a single speaker with that name.
    let single = global("  routerID: 10.0.0.1\n");
    assert!(parse_for(&single, "x", Some("n1"), no_files).is_ok());
}

/// The text of the first ```yaml block after `heading` in CONFIG.md.
fn config_md_yaml(heading: &str) -> &'static str {
    let doc = include_str!("../../../CONFIG.md");
    let section = &doc[doc.find(heading).expect("the section")..];
    let start = section.find("```yaml\n").expect("an example") + "```yaml\n".len();
    let example = &section[start..];
    &example[..example.find("```").expect("the example's end")]
}

#[test]
fn config_md_cluster_examples_are_valid() {
    let nodes = config_md_yaml("\n## Node\n");
    let node1 = resolve(nodes, "node1");
    assert_eq!(node1.bgp.router_id, Ipv4Addr::new(10, 0, 1, 1));
    assert_eq!(
        node1.peers.keys().copied().collect::<Vec<_>>(),
        [ip("10.0.1.2"), ip("10.0.2.3"), ip("fd00:1::2")]
    );
    assert_eq!(resolve(nodes, "node3").peers.len(), 2);

    let reflectors = config_md_yaml("\n## Route reflectors\n");
    let rr1 = resolve(reflectors, "rr1");
    assert_eq!(rr1.bgp.cluster_id, Some(Ipv4Addr::new(10, 0, 0, 100)));
    assert!(rr1.peers.values().all(|p| p.route_reflector_client));
    assert_eq!(rr1.peers.len(), 2);
    let node1 = resolve(reflectors, "node1");
    assert_eq!(
        node1.peers.keys().copied().collect::<Vec<_>>(),
        [ip("10.0.0.10")]
    );

    let tor = config_md_yaml("\n## Peering with top-of-rack routers\n");
    let node1 = resolve(tor, "node1");
    assert_eq!(node1.bgp.as_number, 65011);
    assert_eq!(
        node1.peers.keys().copied().collect::<Vec<_>>(),
        [ip("10.0.1.253"), ip("10.0.1.254"), ip("192.0.2.1")]
    );
    let node3 = resolve(tor, "node3");
    assert_eq!(node3.bgp.as_number, 65021);
    assert_eq!(
        node3.peers.keys().copied().collect::<Vec<_>>(),
        [ip("10.0.2.254")]
    );
}

#[test]
fn a_global_cluster_id_is_refused_with_node_documents() {
    // Every node would inherit it and drop what its reflector sends.
    let text = reflector_cluster("10.0.0.100").replace(
        "  nodeToNodeMeshEnabled: false\n",
        "  nodeToNodeMeshEnabled: false\n  routeReflectorClusterID: 10.0.0.100\n",
    );
    let (field, shown, problem) = error(&text, Some("c1"));
    assert_eq!(field, "spec.routeReflectorClusterID");
    assert!(matches!(problem, Problem::ClusterIdWithNodes), "{shown}");
}

#[test]
fn two_nodes_of_one_as_with_one_router_id_are_refused() {
    // IPv6-only nodes fall back to the BGPConfiguration's routerID.
    let text = global("  routerID: 10.9.9.9\n")
        + &node("n1", &["fd00::1"], "")
        + &node("n2", &["fd00::2"], "");
    let (field, shown, problem) = error(&text, Some("n1"));
    assert_eq!(field, "metadata.annotations");
    assert!(matches!(problem, Problem::SameRouterId { .. }), "{shown}");
    assert!(shown.contains("n2") && shown.contains("n1"), "{shown}");
    // A third node peers with both: it does not refuse.
    let third = text.clone() + &node("n3", &["fd00::3", "10.0.0.3"], "");
    assert_eq!(resolve(&third, "n3").peers.len(), 2);
    // An annotation sets them apart.
    let text = global("  routerID: 10.9.9.9\n")
        + &node("n1", &["fd00::1"], "")
        + &node(
            "n2",
            &["fd00::2"],
            "  annotations: {podroute.io/router-id: 10.9.9.10}\n",
        );
    assert_eq!(
        resolve(&text, "n1").bgp.router_id,
        Ipv4Addr::new(10, 9, 9, 9)
    );
}
