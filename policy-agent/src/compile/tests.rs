// The compiler against the reference evaluator: for random clusters, every
// flow between pods (and to and from addresses outside) is allowed by the
// compiled rules of the two nodes exactly when the evaluator allows it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use podroute_labels::{LabelSelector, LabelSelectorOperator as Operator, LabelSelectorRequirement};
use proptest::prelude::*;

use super::*;
use crate::model::evaluate::evaluate;
use crate::model::objects::{
    Container, ContainerPort, EgressRule, IngressRule, IntOrString, IpBlock, NamespaceObject,
    NetworkPolicyObject, NetworkPolicySpec, ObjectMeta, PodIp, PodObject, PodSpec, PodStatus,
    PolicyPeer, PolicyPort, Snapshot,
};
use crate::model::test_fixtures::xyz_with;

const NODES: [&str; 2] = ["n1", "n2"];
const NAMESPACES: [&str; 3] = ["ns0", "ns1", "ns2"];

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::of(prop::sample::select(vec!["web", "db", "api"])),
        prop::option::of(prop::sample::select(vec!["f", "b"])),
    )
        .prop_map(|(app, tier)| {
            let mut l = BTreeMap::new();
            if let Some(app) = app {
                l.insert("app".to_owned(), app.to_owned());
            }
            if let Some(tier) = tier {
                l.insert("tier".to_owned(), tier.to_owned());
            }
            l
        })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::default()),
        prop::sample::select(vec!["web", "db", "api"]).prop_map(|app| LabelSelector {
            match_labels: labels(&[("app", app)]),
            ..LabelSelector::default()
        }),
        (
            prop::sample::select(vec!["app", "tier", "env"]),
            prop::sample::select(vec![
                Operator::In,
                Operator::NotIn,
                Operator::Exists,
                Operator::DoesNotExist
            ]),
            prop::sample::subsequence(vec!["web", "db", "f", "a", "ns1"], 1..3),
        )
            .prop_map(|(key, operator, values)| LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![LabelSelectorRequirement {
                    key: key.to_owned(),
                    operator,
                    values: match operator {
                        Operator::In | Operator::NotIn => {
                            values.iter().map(|v| (*v).to_owned()).collect()
                        }
                        _ => Vec::new(),
                    },
                }],
            }),
    ]
}

fn peer() -> impl Strategy<Value = PolicyPeer> {
    let block = (
        prop::sample::select(vec![
            "10.0.0.0/28",
            "10.0.0.0/24",
            "0.0.0.0/0",
            "fd00::/120",
            "::/0",
        ]),
        any::<bool>(),
    )
        .prop_map(|(cidr, with_except)| {
            let except = match (with_except, cidr) {
                (true, "10.0.0.0/28") => vec!["10.0.0.4/30".to_owned()],
                (true, "10.0.0.0/24") => vec!["10.0.0.0/29".to_owned(), "10.0.0.8/32".to_owned()],
                (true, "0.0.0.0/0") => vec!["10.0.0.0/28".to_owned(), "128.0.0.0/1".to_owned()],
                (true, "fd00::/120") => vec!["fd00::/126".to_owned()],
                _ => Vec::new(),
            };
            PolicyPeer {
                ip_block: Some(IpBlock {
                    cidr: cidr.to_owned(),
                    except,
                }),
                ..PolicyPeer::default()
            }
        });
    prop_oneof![
        selector().prop_map(|s| PolicyPeer {
            pod_selector: Some(s),
            ..PolicyPeer::default()
        }),
        selector().prop_map(|s| PolicyPeer {
            namespace_selector: Some(s),
            ..PolicyPeer::default()
        }),
        (selector(), selector()).prop_map(|(p, n)| PolicyPeer {
            pod_selector: Some(p),
            namespace_selector: Some(n),
            ip_block: None,
        }),
        block,
    ]
}

fn port() -> impl Strategy<Value = PolicyPort> {
    let protocol = prop::option::of(prop::sample::select(vec!["TCP", "UDP", "SCTP"]));
    (
        protocol,
        prop_oneof![
            Just((None, None)),
            Just((Some(IntOrString::Int(80)), None)),
            Just((Some(IntOrString::Int(50)), Some(81))),
            Just((Some(IntOrString::String("http".into())), None)),
            Just((Some(IntOrString::String("dns".into())), None)),
        ],
    )
        .prop_map(|(protocol, (port, end_port))| PolicyPort {
            protocol: protocol.map(str::to_owned),
            port,
            end_port,
        })
}

fn rule() -> impl Strategy<Value = (Vec<PolicyPeer>, Vec<PolicyPort>)> {
    (
        prop::collection::vec(peer(), 0..3),
        prop::collection::vec(port(), 0..3),
    )
}

fn policy(index: usize) -> impl Strategy<Value = NetworkPolicyObject> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        selector(),
        prop::sample::select(vec![
            None,
            Some(vec!["Ingress"]),
            Some(vec!["Egress"]),
            Some(vec!["Ingress", "Egress"]),
        ]),
        prop::collection::vec(rule(), 0..3),
        prop::collection::vec(rule(), 0..3),
    )
        .prop_map(
            move |(ns, pod_selector, types, ingress, egress)| NetworkPolicyObject {
                metadata: ObjectMeta {
                    name: format!("p{index}"),
                    namespace: Some(ns.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: NetworkPolicySpec {
                    pod_selector: Some(pod_selector),
                    policy_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
                    ingress: ingress
                        .into_iter()
                        .map(|(from, ports)| IngressRule { from, ports })
                        .collect(),
                    egress: egress
                        .into_iter()
                        .map(|(to, ports)| EgressRule { to, ports })
                        .collect(),
                },
            },
        )
}

fn pod(index: usize) -> impl Strategy<Value = PodObject> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        label_set(),
        prop::sample::select(NODES.to_vec()),
        prop::sample::select(vec![(true, false), (false, true), (true, true)]),
        prop::sample::subsequence(
            vec![
                ("http", 80, "TCP"),
                ("http", 8080, "TCP"),
                ("dns", 53, "UDP"),
                ("dns", 53, "TCP"),
            ],
            0..3,
        ),
        // Mostly running pods; some on the host network, finished, without
        // an address yet, or being deleted with their address reused.
        prop::sample::select(vec![
            "run", "run", "run", "run", "host", "done", "none", "deleting",
        ]),
        0..10usize,
    )
        .prop_map(move |(ns, labels, node, (v4, v6), ports, state, reuse)| {
            // A deleting pod's address may be a running pod's too.
            let at = if state == "deleting" { reuse } else { index } + 1;
            let mut ips = Vec::new();
            if v4 && state != "none" {
                ips.push(PodIp {
                    ip: format!("10.0.0.{at}"),
                });
            }
            if v6 && state != "none" {
                ips.push(PodIp {
                    ip: format!("fd00::{at:x}"),
                });
            }
            // One name per pod: a name appears at most once per protocol.
            let mut seen = Vec::new();
            let ports = ports
                .into_iter()
                .filter(|(name, _, proto)| {
                    let fresh = !seen.contains(&(*name, *proto));
                    seen.push((*name, *proto));
                    fresh
                })
                .map(|(name, number, proto)| ContainerPort {
                    name: Some(name.to_owned()),
                    container_port: number,
                    protocol: Some(proto.to_owned()),
                })
                .collect();
            PodObject {
                metadata: ObjectMeta {
                    name: format!("pod{index}"),
                    namespace: Some(ns.to_owned()),
                    labels,
                    deletion_timestamp: (state == "deleting")
                        .then(|| "2026-11-21T10:00:00Z".to_owned()),
                },
                spec: PodSpec {
                    node_name: Some(node.to_owned()),
                    host_network: state == "host",
                    containers: vec![Container {
                        name: "c".into(),
                        ports,
                    }],
                },
                status: PodStatus {
                    phase: Some(
                        if state == "done" {
                            "Succeeded"
                        } else {
                            "Running"
                        }
                        .into(),
                    ),
                    pod_ip: None,
                    pod_ips: ips,
                },
            }
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let namespaces = prop::collection::vec(label_set(), 3).prop_map(|sets| {
        sets.into_iter()
            .zip(NAMESPACES)
            .map(|(mut labels, name)| {
                if name == "ns1" {
                    labels.insert("env".into(), "a".into());
                }
                NamespaceObject {
                    metadata: ObjectMeta {
                        name: name.to_owned(),
                        labels,
                        ..ObjectMeta::default()
                    },
                }
            })
            .collect::<Vec<_>>()
    });
    let pods = (0..8usize).map(pod).collect::<Vec<_>>();
    let policies = (0..4usize).map(policy).collect::<Vec<_>>();
    (namespaces, pods, policies, 0..=4usize).prop_map(|(namespaces, pods, policies, n)| Snapshot {
        namespaces,
        pods,
        policies: policies.into_iter().take(n).collect(),
    })
}

/// The local endpoint of `compiled` holding `address`.
fn endpoint_at(compiled: &Compiled, address: IpAddr) -> Option<&Endpoint> {
    compiled
        .endpoints
        .iter()
        .find(|e| e.addresses.contains(&address))
}

/// Whether the two nodes' compiled rules let `flow` through: the source's
/// node judges egress, the destination's ingress, as the dataplane does.
fn dataplane_allows(compiled: &[Compiled], flow: &Flow) -> bool {
    let egress = compiled
        .iter()
        .find_map(|c| endpoint_at(c, flow.source).map(|e| c.allows(e, Direction::Egress, flow)))
        .unwrap_or(true);
    let ingress = compiled
        .iter()
        .find_map(|c| {
            endpoint_at(c, flow.destination).map(|e| c.allows(e, Direction::Ingress, flow))
        })
        .unwrap_or(true);
    egress && ingress
}

fn every_flow(addresses: &[IpAddr]) -> Vec<Flow> {
    let mut flows = Vec::new();
    for &source in addresses {
        for &destination in addresses {
            if source == destination || source.is_ipv4() != destination.is_ipv4() {
                continue;
            }
            for protocol in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                for port in [53, 80, 81, 8080] {
                    flows.push(Flow {
                        source,
                        destination,
                        protocol,
                        port,
                    });
                }
            }
        }
    }
    flows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn compiled_rules_agree_with_the_reference_evaluator(snapshot in snapshot()) {
        let (cluster, problems) = Cluster::build(&snapshot);
        // Only reused addresses may be refused; anything else means the
        // generator made an invalid object.
        prop_assert!(
            problems.iter().all(|p| p.reason.contains("which keeps it")),
            "generator made invalid objects: {problems:?}"
        );
        let compiled: Vec<Compiled> = NODES.iter().map(|n| compile(&cluster, n)).collect();
        let mut addresses: Vec<IpAddr> =
            cluster.pods().flat_map(|p| p.addresses.iter().copied()).collect();
        // Addresses of pods that take no part (host network, finished).
        for object in &snapshot.pods {
            for ip in &object.status.pod_ips {
                if let Ok(address) = ip.ip.parse() && !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        // Outside the cluster: inside a block, in an except, and far away.
        for outside in ["10.0.0.12", "10.0.0.200", "192.0.2.1", "fd00::ff", "2001:db8::1"] {
            addresses.push(outside.parse().unwrap());
        }
        for flow in every_flow(&addresses) {
            let expected = evaluate(&cluster, &flow);
            prop_assert_eq!(
                dataplane_allows(&compiled, &flow),
                expected.allowed(),
                "flow {:?}: evaluator says {:?}",
                flow,
                expected
            );
        }
    }
}

#[test]
fn rules_and_sets_grow_with_policies_not_with_pods() {
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-y, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n    ports: [{port: serve-80-tcp}]\n";
    let compiled = compile(&xyz_with(policy), "n2");
    // x/b and x/c are on n2 and share the policy's single chain.
    assert_eq!(compiled.policies.len(), 1);
    let isolated: Vec<String> = compiled
        .endpoints
        .iter()
        .filter(|e| e.ingress.is_some())
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(isolated, vec!["x/b", "x/c"]);
    let rule = &compiled.policies.values().next().unwrap().rules[0];
    assert_eq!(rule.peers.as_ref().unwrap().len(), 1, "one pod set");
    assert_eq!(compiled.sets.len(), 2, "pods of y, and serve-80-tcp");
    let pods = &compiled.sets[&rule.peers.as_ref().unwrap()[0]];
    // y's three pods, both families.
    assert!(matches!(pods, SetContent::Pods(m) if m.len() == 6));
}

#[test]
fn set_identities_follow_meaning_not_membership() {
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {pod: b}\n";
    let yaml = format!("{}---\n{policy}", crate::model::test_fixtures::xyz_yaml());
    let before = compile(&crate::model::test_fixtures::cluster(&yaml), "n1");
    // x/c takes the label pod=b: the set gains members, keeps its name.
    let mut snapshot = Snapshot::from_yaml(&yaml).unwrap();
    let c = snapshot
        .pods
        .iter_mut()
        .find(|p| p.metadata.name == "c" && p.metadata.namespace.as_deref() == Some("x"))
        .unwrap();
    c.metadata.labels.insert("pod".into(), "b".into());
    let after = compile(&Cluster::build(&snapshot).0, "n1");
    assert_eq!(
        before.sets.keys().collect::<Vec<_>>(),
        after.sets.keys().collect::<Vec<_>>()
    );
    assert_eq!(before.policies, after.policies, "chains unchanged");
    assert_ne!(before.sets, after.sets);
    // The same policy twice under another name shares the set.
    let twice = format!("{yaml}---\n{}", policy.replace("name: p,", "name: q,"));
    let shared = compile(&crate::model::test_fixtures::cluster(&twice), "n1");
    assert_eq!(shared.sets.len(), 1);
    assert_eq!(shared.policies.len(), 2);
}

#[test]
fn endpoints_are_this_nodes_pods_named_by_their_cni_interface() {
    let compiled = compile(&xyz_with(""), "n1");
    let keys: Vec<String> = compiled
        .endpoints
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(keys, vec!["x/a", "y/a", "z/a"]);
    assert_eq!(
        compiled.endpoints[0].interface,
        host_veth_name(Some(("x", "a")), "ignored", "eth0")
    );
    assert!(
        compiled
            .endpoints
            .iter()
            .all(|e| e.ingress.is_none() && e.egress.is_none())
    );
}

#[test]
fn colliding_set_meanings_get_distinct_identities() {
    let mut sets = SetRegistry::default();
    let empty = || SetContent::Pods(std::collections::BTreeSet::new());
    // Something else already holds the identity "b" hashes to.
    let b_hash = fnv1a64(b"b") >> (64 - SET_HASH_BITS);
    let squatter = SetId {
        kind: SetKind::Pods,
        hash: b_hash,
    };
    sets.meanings.insert(squatter, "squatter".into());
    let b = sets.id(SetKind::Pods, "b".into(), empty);
    assert_ne!(b, squatter);
    assert!(b.hash < 1 << SET_HASH_BITS);
    assert_eq!(sets.id(SetKind::Pods, "b".into(), empty), b, "stable");
    assert_eq!(sets.meanings[&squatter], "squatter");
}
