// The evaluator against the NetworkPolicy API's documented meaning, case by
// case. Each case names the rule of the API it pins.

use std::net::IpAddr;

use super::*;
use crate::model::cluster::Protocol;
use crate::model::test_fixtures::{cluster, xyz_with, xyz_yaml};

fn address(cluster: &Cluster, who: &str) -> IpAddr {
    if let Ok(ip) = who.parse() {
        return ip;
    }
    let (ns, name) = who.split_once('/').expect("ns/pod");
    let pod = cluster.pod(&ObjectKey::new(ns, name)).expect("pod exists");
    pod.addresses[0]
}

fn flow(cluster: &Cluster, from: &str, to: &str, port: u16, protocol: Protocol) -> Flow {
    Flow {
        source: address(cluster, from),
        destination: address(cluster, to),
        protocol,
        port,
    }
}

fn allowed(cluster: &Cluster, from: &str, to: &str, port: u16, protocol: Protocol) -> bool {
    evaluate(cluster, &flow(cluster, from, to, port, protocol)).allowed()
}

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

#[test]
fn without_policies_everything_is_allowed() {
    let c = cluster(&xyz_yaml());
    let decision = evaluate(&c, &flow(&c, "x/a", "y/b", 80, TCP));
    assert_eq!(decision.egress, Verdict::NotIsolated);
    assert_eq!(decision.ingress, Verdict::NotIsolated);
    assert!(decision.allowed());
}

#[test]
fn default_deny_ingress_isolates_only_its_namespace() {
    let c = xyz_with(&policy(
        "x",
        "deny",
        "  podSelector: {}\n  policyTypes: [Ingress]\n",
    ));
    assert!(!allowed(&c, "y/a", "x/b", 80, TCP));
    assert!(!allowed(&c, "x/a", "x/b", 80, TCP));
    assert!(allowed(&c, "x/a", "y/b", 80, TCP), "egress is not isolated");
    assert!(allowed(&c, "y/a", "z/b", 81, UDP));
    let decision = evaluate(&c, &flow(&c, "y/a", "x/b", 80, TCP));
    assert_eq!(
        decision.ingress,
        Verdict::Denied {
            isolating: vec![ObjectKey::new("x", "deny")]
        }
    );
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() {
    // No policyTypes and no egress rules: Ingress only.
    let c = xyz_with(&policy("x", "p", "  podSelector: {}\n  ingress: []\n"));
    assert!(!allowed(&c, "y/a", "x/a", 80, TCP));
    assert!(allowed(&c, "x/a", "y/a", 80, TCP));
    // Egress rules present: Egress too.
    let c = xyz_with(&policy(
        "x",
        "p",
        "  podSelector: {}\n  egress:\n  - ports: [{port: 81}]\n",
    ));
    assert!(!allowed(&c, "x/a", "y/a", 80, TCP));
    assert!(allowed(&c, "x/a", "y/a", 81, TCP));
    assert!(
        !allowed(&c, "y/a", "x/a", 80, TCP),
        "and ingress, with no rules"
    );
}

#[test]
fn an_empty_rule_allows_everything() {
    let c = xyz_with(&policy(
        "x",
        "all",
        "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - {}\n  egress:\n  - {}\n",
    ));
    assert!(allowed(&c, "y/a", "x/a", 1234, UDP));
    assert!(allowed(&c, "x/a", "203.0.113.9", 443, TCP));
}

#[test]
fn pod_selector_peers_are_in_the_policy_namespace() {
    let c = xyz_with(&policy(
        "x",
        "from-b",
        "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {pod: b}\n",
    ));
    assert!(allowed(&c, "x/b", "x/a", 80, TCP));
    assert!(
        !allowed(&c, "y/b", "x/a", 80, TCP),
        "same labels, other namespace"
    );
    assert!(!allowed(&c, "x/c", "x/a", 80, TCP));
    assert!(allowed(&c, "y/b", "x/b", 80, TCP), "x/b is not selected");
}

#[test]
fn namespace_and_pod_selector_in_one_peer_are_anded_in_two_peers_ored() {
    let and = xyz_with(&policy(
        "x",
        "and",
        "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n      podSelector:\n        matchLabels: {pod: c}\n",
    ));
    assert!(allowed(&and, "y/c", "x/a", 80, TCP));
    assert!(!allowed(&and, "y/b", "x/a", 80, TCP));
    assert!(!allowed(&and, "z/c", "x/a", 80, TCP));
    let or = xyz_with(&policy(
        "x",
        "or",
        "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n    - podSelector:\n        matchLabels: {pod: c}\n",
    ));
    assert!(allowed(&or, "y/b", "x/a", 80, TCP));
    assert!(allowed(&or, "x/c", "x/a", 80, TCP));
    assert!(!allowed(&or, "z/c", "x/a", 80, TCP));
    assert!(!allowed(&or, "x/b", "x/a", 80, TCP));
}

#[test]
fn namespaces_are_matched_by_their_name_label() {
    let c = xyz_with(&policy(
        "x",
        "by-name",
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchExpressions:\n        - {key: kubernetes.io/metadata.name, operator: NotIn, values: [y]}\n",
    ));
    assert!(allowed(&c, "z/b", "x/a", 80, TCP));
    assert!(allowed(&c, "x/b", "x/a", 80, TCP));
    assert!(!allowed(&c, "y/b", "x/a", 80, TCP));
}

#[test]
fn numeric_ranges_named_ports_and_protocols() {
    let c = xyz_with(&policy(
        "x",
        "ports",
        "  podSelector: {}\n  ingress:\n  - ports:\n    - {port: 80, endPort: 81, protocol: UDP}\n    - {port: serve-81-tcp}\n",
    ));
    assert!(allowed(&c, "y/a", "x/a", 80, UDP));
    assert!(allowed(&c, "y/a", "x/a", 81, UDP));
    assert!(!allowed(&c, "y/a", "x/a", 82, UDP));
    assert!(
        allowed(&c, "y/a", "x/a", 81, TCP),
        "named port resolves to 81/TCP"
    );
    assert!(
        !allowed(&c, "y/a", "x/a", 80, TCP),
        "a UDP rule still isolates TCP"
    );
}

#[test]
fn a_named_port_resolves_on_the_destination_pod_for_egress() {
    let mut yaml = xyz_yaml();
    // A pod whose `web` is 8080: the name means a different number on it.
    yaml.push_str(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: y}\nspec:\n  nodeName: n2\n  containers:\n  - name: c\n    ports: [{name: web, containerPort: 8080}]\nstatus: {podIP: 10.0.9.9}\n",
    );
    yaml.push_str(&policy(
        "x",
        "egress-web",
        "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: web}]\n",
    ));
    let c = cluster(&yaml);
    assert!(allowed(&c, "x/a", "y/w", 8080, TCP));
    assert!(!allowed(&c, "x/a", "y/w", 80, TCP));
    assert!(
        !allowed(&c, "x/a", "y/a", 8080, TCP),
        "y/a has no port named web"
    );
    assert!(
        !allowed(&c, "x/a", "198.51.100.1", 8080, TCP),
        "a named port never matches a destination that is no pod"
    );
}

#[test]
fn ip_blocks_with_except() {
    let c = xyz_with(&policy(
        "x",
        "block",
        "  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/16\n        except: [10.0.1.0/24]\n",
    ));
    assert!(
        allowed(&c, "x/a", "z/b", 80, TCP),
        "10.0.2.2 is in the block"
    );
    assert!(!allowed(&c, "x/a", "y/b", 80, TCP), "10.0.1.2 is excepted");
    assert!(!allowed(&c, "x/a", "10.1.0.1", 80, TCP));
    assert!(
        allowed(&c, "x/a", "10.0.200.1", 80, TCP),
        "need not be a pod"
    );
    assert!(
        !allowed(&c, "x/a", "fd00::21", 80, TCP),
        "an IPv4 block never holds IPv6"
    );
}

#[test]
fn several_policies_are_a_union_and_precedence_is_allow() {
    let c = xyz_with(&format!(
        "{}{}",
        policy("x", "deny", "  podSelector: {}\n  policyTypes: [Ingress]\n"),
        policy(
            "x",
            "allow-y",
            "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n",
        ),
    ));
    assert!(allowed(&c, "y/b", "x/a", 80, TCP));
    assert!(!allowed(&c, "z/b", "x/a", 80, TCP));
    let decision = evaluate(&c, &flow(&c, "y/b", "x/a", 80, TCP));
    assert_eq!(
        decision.ingress,
        Verdict::Allowed {
            policy: ObjectKey::new("x", "allow-y"),
            rule: 0
        }
    );
}

#[test]
fn a_policy_selecting_no_pods_changes_nothing() {
    let c = xyz_with(&policy(
        "x",
        "nobody",
        "  podSelector:\n    matchLabels: {pod: nobody}\n  policyTypes: [Ingress, Egress]\n",
    ));
    assert!(allowed(&c, "y/b", "x/a", 80, TCP));
    assert!(allowed(&c, "x/a", "y/b", 80, TCP));
}

#[test]
fn both_sides_must_allow() {
    let c = xyz_with(&format!(
        "{}{}",
        policy(
            "x",
            "egress-deny",
            "  podSelector: {}\n  policyTypes: [Egress]\n"
        ),
        policy(
            "y",
            "ingress-all",
            "  podSelector: {}\n  ingress:\n  - {}\n"
        ),
    ));
    let decision = evaluate(&c, &flow(&c, "x/a", "y/a", 80, TCP));
    assert!(!decision.egress.allows());
    assert!(decision.ingress.allows());
    assert!(!decision.allowed());
}

#[test]
fn ipv6_addresses_decide_like_ipv4() {
    let c = xyz_with(&policy(
        "x",
        "from-y",
        "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n",
    ));
    assert!(allowed(&c, "fd00::11", "fd00::1", 80, TCP), "y/a to x/a");
    assert!(!allowed(&c, "fd00::21", "fd00::1", 80, TCP), "z/a to x/a");
}

#[test]
fn a_pod_cannot_block_access_to_itself() {
    let c = xyz_with(&policy(
        "x",
        "deny",
        "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n",
    ));
    let decision = evaluate(&c, &flow(&c, "x/a", "x/a", 80, TCP));
    assert_eq!(decision.ingress, Verdict::Itself);
    assert!(decision.allowed());
    assert!(!allowed(&c, "x/a", "x/b", 80, TCP));
}
