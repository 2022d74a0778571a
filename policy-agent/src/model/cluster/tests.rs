// Validation as the API server does it, and the defaults it applies.

use super::*;
use crate::model::test_fixtures::{cluster, xyz_yaml};

fn problems(yaml: &str) -> Vec<String> {
    let snapshot = Snapshot::from_yaml(yaml).unwrap();
    Cluster::build(&snapshot)
        .1
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn policy_spec(spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: x}}\nspec:\n{spec}"
    )
}

#[test]
fn bad_policies_are_refused_with_field_and_reason() {
    let cases = [
        (
            "  ingress:\n  - from: [{}]\n",
            "spec.ingress[0].from[0]: must specify",
        ),
        (
            "  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n",
            "may not be combined",
        ),
        (
            "  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}\n",
            "spec.egress[0].to[0].ipBlock.except[0]: 11.0.0.0/16 is not strictly within 10.0.0.0/8",
        ),
        (
            "  ingress:\n  - from:\n    - ipBlock: {cidr: nonsense}\n",
            "is not a CIDR",
        ),
        (
            "  ingress:\n  - ports: [{port: 90, endPort: 80}]\n",
            "endPort: 80 is less than port 90",
        ),
        (
            "  ingress:\n  - ports: [{port: http, endPort: 80}]\n",
            "named port",
        ),
        ("  ingress:\n  - ports: [{endPort: 80}]\n", "requires port"),
        (
            "  ingress:\n  - ports: [{port: 70000}]\n",
            "70000 is not a port",
        ),
        (
            "  ingress:\n  - ports: [{port: 80, protocol: ICMP}]\n",
            "unsupported protocol",
        ),
        (
            "  ingress:\n  - ports: [{port: Not_A_Name}]\n",
            "is not a port name",
        ),
        ("  policyTypes: [Inbound]\n", "spec.policyTypes[0]"),
        (
            "  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}\n",
            "10.0.0.0/8 is not strictly within 10.0.0.0/8",
        ),
        (
            "  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.1}\n",
            "is not a CIDR (address/prefix)",
        ),
        (
            "  ingress:\n  - ports: [{port: \"8080\"}]\n",
            "\"8080\" is not a port name",
        ),
        (
            "  podSelector:\n    matchExpressions: [{key: a, operator: In}]\n",
            "spec.podSelector.matchExpressions[0].values",
        ),
    ];
    for (spec, expected) in cases {
        let found = problems(&policy_spec(spec));
        assert_eq!(found.len(), 1, "{spec}: {found:?}");
        assert!(
            found[0].starts_with("NetworkPolicy x/p: ") && found[0].contains(expected),
            "{spec}: {found:?} lacks {expected:?}"
        );
    }
}

#[test]
fn a_refused_policy_leaves_the_others() {
    let yaml = format!(
        "{}---\n{}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: good, namespace: x}}\nspec:\n  podSelector: {{}}\n",
        xyz_yaml(),
        policy_spec("  policyTypes: [Inbound]\n")
    );
    let (cluster, problems) = Cluster::build(&Snapshot::from_yaml(&yaml).unwrap());
    assert_eq!(problems.len(), 1);
    assert!(cluster.policy(&ObjectKey::new("x", "good")).is_some());
    assert!(cluster.policy(&ObjectKey::new("x", "p")).is_none());
}

#[test]
fn defaults_and_normal_forms() {
    let c = cluster(&policy_spec(
        "  ingress:\n  - from:\n    - ipBlock: {cidr: 10.1.2.3/16}\n    ports: [{port: 8080}, {}]\n",
    ));
    let p = c.policy(&ObjectKey::new("x", "p")).unwrap();
    assert!(
        p.pod_selector.matches_everything(),
        "absent podSelector is {{}}"
    );
    assert!(p.egress.is_none());
    let rule = &p.ingress.as_ref().unwrap()[0];
    assert_eq!(
        rule.peers[0],
        Peer::Block(IpBlockSpec {
            cidr: "10.1.0.0/16".parse().unwrap(),
            except: vec![]
        })
    );
    assert_eq!(
        rule.ports,
        vec![
            PortSpec {
                protocol: Protocol::Tcp,
                port: PortMatch::Range {
                    first: 8080,
                    last: 8080
                }
            },
            PortSpec {
                protocol: Protocol::Tcp,
                port: PortMatch::All
            }
        ]
    );
}

#[test]
fn namespaces_carry_their_name_label_even_without_an_object() {
    let c = cluster("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {team: t}}\n");
    assert_eq!(
        c.namespace_labels("x"),
        Labels::from([
            ("kubernetes.io/metadata.name".into(), "x".into()),
            ("team".into(), "t".into())
        ])
    );
    assert_eq!(
        c.namespace_labels("ghost"),
        Labels::from([("kubernetes.io/metadata.name".into(), "ghost".into())])
    );
}

#[test]
fn pods_without_their_own_address_take_no_part() {
    let c = cluster(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: host}\nspec: {hostNetwork: true}\nstatus: {podIP: 192.0.2.1}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: done}\nstatus: {phase: Succeeded, podIP: 10.0.0.1}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: pending}\nstatus: {phase: Pending}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: live}\nstatus: {phase: Running, podIP: 10.0.0.1}\n",
    );
    let names: Vec<String> = c.pods().map(|p| p.key.to_string()).collect();
    assert_eq!(names, vec!["default/live"]);
    assert_eq!(
        c.pod_at("10.0.0.1".parse().unwrap()).unwrap().key.name,
        "live"
    );
}

#[test]
fn bad_pods_are_refused() {
    let found = problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nstatus: {podIP: banana}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: r}\nspec:\n  containers: [{name: c, ports: [{containerPort: 0}]}]\nstatus: {podIP: 10.0.0.3}\n",
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("at most one address per family"));
    assert!(found[1].contains("\"banana\" is not an IP address"));
    assert!(found[2].contains("containerPort: must be 1-65535"));
}

#[test]
fn two_pods_claiming_one_address_leave_it_to_the_live_one() {
    // p is being deleted; q, listed after it, got its address.
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, deletionTimestamp: '2026-11-21T10:00:00Z'}\nstatus: {podIPs: [{ip: 10.0.0.1}, {ip: 'fd00::1'}]}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nstatus: {podIP: 10.0.0.1}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: r}\nstatus: {podIP: 10.0.0.1}\n";
    let (cluster, problems) = Cluster::build(&Snapshot::from_yaml(yaml).unwrap());
    let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().all(|p| p.contains("also pod default/q's")),
        "{found:?}"
    );
    let holder = |ip: &str| {
        cluster
            .pod_at(ip.parse().unwrap())
            .map(|p| p.key.name.clone())
    };
    assert_eq!(holder("10.0.0.1").as_deref(), Some("q"));
    // p keeps only what nobody else holds; r, with nothing left, is out.
    let p = cluster.pod(&ObjectKey::new("default", "p")).unwrap();
    assert_eq!(
        p.addresses,
        vec!["fd00::1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(cluster.pod(&ObjectKey::new("default", "r")).is_none());
}

#[test]
fn objects_defined_twice_keep_the_first() {
    let found = problems(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {v: '1'}}\nstatus: {podIP: 10.0.0.1}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {v: '2'}}\nstatus: {podIP: 10.0.0.2}\n\
---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("Namespace x: defined twice"), "{found:?}");
    assert!(
        found[1].contains("Pod default/p: defined twice"),
        "{found:?}"
    );
}
