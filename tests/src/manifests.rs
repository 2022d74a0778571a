// The Kubernetes objects a lab writes for its policy agents in place of an
// API server: a Pod as the API server shows it once running (labels, node,
// IPs, container ports), its Namespace, and files written so that a
// watching daemon never reads half of one.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::Path;

use serde_json::json;

use crate::error::LabError;

/// The label the API server puts on every Namespace (namespaceSelector
/// matches on it).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A container port: number and protocol (`TCP`, `UDP`, `SCTP`).
pub type ContainerPort<'a> = (u16, &'a str);

/// Pod `namespace/name` on `node`, Running with `ips` (the first is
/// podIP), one container with `ports`. JSON, which is YAML.
pub fn pod(
    namespace: &str,
    name: &str,
    node: &str,
    labels: &BTreeMap<String, String>,
    ports: &[ContainerPort<'_>],
    ips: &[IpAddr],
) -> String {
    let ports: Vec<_> = ports
        .iter()
        .map(|(port, protocol)| json!({"containerPort": port, "protocol": protocol}))
        .collect();
    let pod_ips: Vec<_> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    let pod_ip = ips.first().map(IpAddr::to_string).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "uid": format!("uid-{namespace}-{name}"),
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "podlab-probe", "ports": ports}],
        },
        "status": {"phase": "Running", "podIP": pod_ip, "podIPs": pod_ips},
    })
    .to_string()
}

/// Namespace `name` with the label the API server gives it.
pub fn namespace(name: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {NAMESPACE_NAME_LABEL: name}},
    })
    .to_string()
}

/// Writes `text` to `target` through `tmp` (on the same filesystem, outside
/// any watched folder) and a rename: a daemon watching `target`'s folder
/// sees the old file or the new one, never a partial one.
pub fn write_atomic(tmp: &Path, target: &Path, text: &str) -> Result<(), LabError> {
    fs::write(tmp, text).map_err(|e| LabError::io(tmp, e))?;
    fs::rename(tmp, target).map_err(|e| LabError::io(target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_as_the_api_server_shows_it() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let ip: IpAddr = "10.244.0.5".parse().unwrap();
        let text = pod(
            "shop",
            "web",
            "n1",
            &labels,
            &[(80, "TCP"), (53, "UDP")],
            &[ip],
        );
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(v["spec"]["nodeName"], "n1");
        assert_eq!(v["status"]["podIP"], "10.244.0.5");
        assert_eq!(v["status"]["podIPs"][0]["ip"], "10.244.0.5");
        let ports = &v["spec"]["containers"][0]["ports"];
        assert_eq!(ports[1]["containerPort"], 53);
        assert_eq!(ports[1]["protocol"], "UDP");
    }
}
