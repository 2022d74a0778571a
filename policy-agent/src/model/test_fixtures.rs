// Clusters for unit tests, written as the YAML an operator would write.

use super::cluster::Cluster;
use super::objects::Snapshot;

/// Namespaces x, y, z (label ns=<name>), pods a, b, c in each (label
/// pod=<name>), x/a, y/a, z/a on node n1 and the others on n2. Addresses:
/// 10.0.<ns index>.<pod index> and fd00::<ns><pod>. Every pod serves
/// `serve-80-tcp` (80/TCP), `serve-80-udp` (80/UDP), `serve-81-tcp` and
/// `serve-81-udp`, as the upstream e2e pods do.
pub fn xyz_yaml() -> String {
    let mut yaml = String::new();
    for (n, ns) in ["x", "y", "z"].iter().enumerate() {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    ns: {ns}\n"
        ));
        for (p, pod) in ["a", "b", "c"].iter().enumerate() {
            let node = if *pod == "a" { "n1" } else { "n2" };
            yaml.push_str(&format!(
                "---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: {ns}
  labels:
    pod: {pod}
spec:
  nodeName: {node}
  containers:
  - name: c
    ports:
    - {{name: serve-80-tcp, containerPort: 80}}
    - {{name: serve-80-udp, containerPort: 80, protocol: UDP}}
    - {{name: serve-81-tcp, containerPort: 81}}
    - {{name: serve-81-udp, containerPort: 81, protocol: UDP}}
status:
  phase: Running
  podIPs:
  - ip: 10.0.{n}.{p1}
  - ip: fd00::{n}{p1}
",
                p1 = p + 1
            ));
        }
    }
    yaml
}

/// A cluster of `yaml`; panics if anything is refused.
pub fn cluster(yaml: &str) -> Cluster {
    let snapshot = Snapshot::from_yaml(yaml).expect("test YAML parses");
    let (cluster, problems) = Cluster::build(&snapshot);
    assert!(problems.is_empty(), "refused: {problems:?}");
    cluster
}

/// The xyz cluster plus `policies`.
pub fn xyz_with(policies: &str) -> Cluster {
    cluster(&format!("{}---\n{policies}", xyz_yaml()))
}
