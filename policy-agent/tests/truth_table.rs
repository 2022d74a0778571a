// NetworkPolicy truth tables, as the upstream e2e suite checks them: pods
// a, b, c in namespaces x, y, z spread over two nodes, every pod probed from
// every other pod on TCP and UDP ports 80 and 81, over IPv4 and IPv6, and
// the whole matrix compared with what the policies allow. These first
// cases run without the agent: they prove the lab reaches everything, and
// that a dropped flow shows in the matrix.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{Family, Lab, PORTS, Protocol, xyz_lab};
use podroute_policy::model::objects::{NamespaceObject, PodObject};

/// How long a matrix may take to become the expected one.
const CONVERGE: Duration = Duration::from_secs(30);

/// The manifests folder holds what the agents must see: every namespace
/// with its labels, every pod with its node, labels, named ports and IPs.
fn manifests_describe_the_lab(lab: &Lab) {
    let read = |name: &str| {
        std::fs::read_to_string(lab.manifests_dir().join(format!("{name}.yaml"))).unwrap()
    };
    for ns in ["x", "y", "z"] {
        let object: NamespaceObject =
            serde_yaml_ng::from_str(&read(&format!("namespace-{ns}"))).unwrap();
        assert_eq!(object.metadata.name, ns);
        assert_eq!(object.metadata.labels["ns"], ns);
        assert_eq!(object.metadata.labels["kubernetes.io/metadata.name"], ns);
    }
    for pod in lab.pods() {
        let text = read(&format!("pod-{}-{}", pod.namespace, pod.name));
        let object: PodObject = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            object.metadata.namespace.as_deref(),
            Some(pod.namespace.as_str())
        );
        assert_eq!(object.metadata.labels, pod.labels);
        assert_eq!(object.spec.node_name.as_deref(), Some(pod.node.as_str()));
        assert_eq!(object.status.phase.as_deref(), Some("Running"));
        let ips: Vec<&str> = object
            .status
            .pod_ips
            .iter()
            .map(|ip| ip.ip.as_str())
            .collect();
        assert_eq!(ips, [pod.v4.to_string(), pod.v6.to_string()]);
        let ports: Vec<(&str, i32, &str)> = object
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.container_port,
                    p.protocol.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("serve-80-tcp", 80, "TCP"),
                ("serve-80-udp", 80, "UDP"),
                ("serve-81-tcp", 81, "TCP"),
                ("serve-81-udp", 81, "UDP"),
            ],
            "{text}"
        );
    }
}

/// TCP and UDP on both ports.
fn all_probes() -> Vec<(Protocol, u16)> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .flat_map(|p| PORTS.map(|port| (p, port)))
        .collect()
}

#[test]
fn no_policy_everything_reaches_everything() {
    let lab = xyz_lab();
    manifests_describe_the_lab(&lab);
    for family in [Family::V4, Family::V6] {
        let expected = lab.matrix(family, &all_probes(), |_, _, _, _| true);
        assert_eq!(expected.cells.len(), 9 * 8 * 4);
        lab.wait_for_matrix(&expected, CONVERGE);
    }
}

#[test]
fn a_dropped_packet_shows_in_the_matrix() {
    let lab = xyz_lab();
    // x/a is on n1 and y/a on n2: n1 forwards the flow, so a DROP there
    // blocks exactly that cell. One per family, on different probes.
    let (from, to) = (lab.pod("x/a"), lab.pod("y/a"));
    assert_eq!((from.node.as_str(), to.node.as_str()), ("n1", "n2"));
    let v4_rule = [
        "-s",
        &from.v4.to_string(),
        "-d",
        &to.v4.to_string(),
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "DROP",
    ]
    .map(str::to_owned);
    let v6_rule = [
        "-s",
        &from.v6.to_string(),
        "-d",
        &to.v6.to_string(),
        "-p",
        "udp",
        "--dport",
        "81",
        "-j",
        "DROP",
    ]
    .map(str::to_owned);
    for (program, rule) in [("iptables", &v4_rule), ("ip6tables", &v6_rule)] {
        let mut argv = vec![program, "-w", "10", "-I", "FORWARD"];
        argv.extend(rule.iter().map(String::as_str));
        lab.node_exec("n1", &argv);
    }

    let (from, to) = (from.id.clone(), to.id.clone());
    for (family, blocked) in [
        (Family::V4, (Protocol::Tcp, 80)),
        (Family::V6, (Protocol::Udp, 81)),
    ] {
        let expected = lab.matrix(family, &all_probes(), |f, t, protocol, port| {
            !(f.id == from && t.id == to && (protocol, port) == blocked)
        });
        let got = lab.wait_for_matrix(&expected, CONVERGE);
        assert_eq!(got.get(&from, &to, blocked.0, blocked.1), Some(false));
        // The reverse flow is not blocked: only the one cell is.
        assert_eq!(got.get(&to, &from, blocked.0, blocked.1), Some(true));
        assert_eq!(got.cells.values().filter(|ok| !**ok).count(), 1);
    }
}

/// The diff a failing `wait_for_matrix` prints: a grid with the wrong cells
/// in upper case, then one line per difference.
#[test]
fn a_matrix_diff_marks_the_wrong_cells() {
    let mut expected = common::Matrix::new(Family::V4);
    let mut got = common::Matrix::new(Family::V4);
    for (from, to) in [("x/a", "x/b"), ("x/b", "x/a")] {
        expected.set(from, to, Protocol::Tcp, 80, true);
        got.set(from, to, Protocol::Tcp, 80, true);
    }
    expected.set("x/a", "y/c", Protocol::Tcp, 80, true);
    got.set("x/a", "y/c", Protocol::Tcp, 80, false);
    got.set("y/c", "x/a", Protocol::Tcp, 80, true);
    expected.set("y/c", "x/a", Protocol::Tcp, 80, false);
    assert_eq!(got.differences(&expected).len(), 2);
    let text = got.diff(&expected).to_string();
    let grid: Vec<&str> = text.lines().take(5).collect();
    assert_eq!(
        grid,
        [
            "tcp/80 IPv4 (rows: from, columns: to)",
            "    x/a x/b y/c",
            "x/a   -   .   X",
            "x/b   .   -   -",
            "y/c   O   -   -",
        ],
        "{text}"
    );
    assert!(
        text.contains("x/a -> y/c tcp/80: blocked, expected open"),
        "{text}"
    );
    assert!(
        text.contains("y/c -> x/a tcp/80: open, expected blocked"),
        "{text}"
    );
    assert!(got.to_string().contains("x/a   -   .   x"), "{got}");
}
