// Calling a CNI plugin the way a container runtime does: a clean
// environment with CNI_* variables, the network configuration on stdin,
// the result (or the error JSON) on stdout. Shared by the CNI plugin's
// tests, the policy tests' labs, `pods::Ipamd` and podlab's lab pods.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::error::LabError;

/// Runs `cmd` (the plugin, or `ip netns exec NODE plugin`) as a runtime
/// would for `command` (ADD, DEL, CHECK, ...): only PATH, CNI_COMMAND,
/// CNI_PATH and `env` (CNI_CONTAINERID, CNI_NETNS, ...) in its
/// environment, `config` on stdin.
pub fn invoke(
    mut cmd: Command,
    command: &str,
    config: &str,
    env: &[(&str, String)],
) -> io::Result<Output> {
    let mut child = cmd
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/opt/cni/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.as_bytes())?;
    }
    child.wait_with_output()
}

/// The network configuration a node's runtime hands podroute-cni: ipamd at
/// `ipamd_endpoint` (`unix:///...`), this node's name.
pub fn conf(ipamd_endpoint: &str, node: &str) -> String {
    json!({
        "cniVersion": "1.1.0",
        "name": "podroute",
        "type": "podroute-cni",
        "ipamd": {"endpoint": ipamd_endpoint},
        "nodeName": node,
    })
    .to_string()
}

/// CNI_* for pod `namespace/name` whose network namespace is `pod_ns`
/// (also its container id, as the kubelet's sandbox id would be).
pub fn pod_env(pod_ns: &str, namespace: &str, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_CONTAINERID", pod_ns.to_owned()),
        ("CNI_NETNS", format!("/run/netns/{pod_ns}")),
        ("CNI_IFNAME", "eth0".to_owned()),
        (
            "CNI_ARGS",
            format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};\
                 K8S_POD_INFRA_CONTAINER_ID={pod_ns};K8S_POD_UID=uid-{namespace}-{name}"
            ),
        ),
    ]
}

/// `plugin` run inside node namespace `node_ns`, as that node's runtime
/// runs it.
pub fn in_node(plugin: &Path, node_ns: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", node_ns]).arg(plugin);
    cmd
}

/// Whether the plugin's STATUS says its ipamd answers: the plugin's own
/// view of readiness.
pub fn ready(plugin: &Path, ipamd_endpoint: &str) -> Result<bool, LabError> {
    let out = invoke(
        Command::new(plugin),
        "STATUS",
        &conf(ipamd_endpoint, "status"),
        &[],
    )
    .map_err(|e| LabError::io(plugin, e))?;
    Ok(out.status.success())
}

/// CNI ADD of pod `namespace/name` (network namespace `pod_ns`) on the node
/// whose namespace is `node_ns`; returns the pod's addresses.
pub fn add(
    plugin: &Path,
    node_ns: &str,
    conf: &str,
    pod_ns: &str,
    namespace: &str,
    name: &str,
) -> Result<Vec<IpAddr>, LabError> {
    let what = format!("podroute-cni ADD {namespace}/{name} in {node_ns}");
    let out = invoke(
        in_node(plugin, node_ns),
        "ADD",
        conf,
        &pod_env(pod_ns, namespace, name),
    )
    .map_err(|e| LabError::io(plugin, e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(LabError::Command {
            command: what,
            status: out.status.to_string(),
            stderr: format!("{stdout} {}", String::from_utf8_lossy(&out.stderr))
                .trim()
                .to_string(),
        });
    }
    let result: Value = serde_json::from_str(&stdout).map_err(|e| LabError::Command {
        command: what.clone(),
        status: "bad result".into(),
        stderr: format!("{e}: {stdout}"),
    })?;
    Ok(result_ips(&result))
}

/// CNI DEL of the pod `add` made: releases its addresses and removes its
/// host side.
pub fn del(
    plugin: &Path,
    node_ns: &str,
    conf: &str,
    pod_ns: &str,
    namespace: &str,
    name: &str,
) -> Result<(), LabError> {
    let out = invoke(
        in_node(plugin, node_ns),
        "DEL",
        conf,
        &pod_env(pod_ns, namespace, name),
    )
    .map_err(|e| LabError::io(plugin, e))?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: format!("podroute-cni DEL {namespace}/{name} in {node_ns}"),
            status: out.status.to_string(),
            stderr: format!(
                "{} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        });
    }
    Ok(())
}

/// The addresses of a CNI result's `ips`, in its order.
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_a_result() {
        let result = json!({"ips": [
            {"address": "10.244.0.5/32"},
            {"address": "fd00::5/128"},
            {"address": "garbage"},
        ]});
        let ips: Vec<String> = result_ips(&result).iter().map(IpAddr::to_string).collect();
        assert_eq!(ips, ["10.244.0.5", "fd00::5"]);
    }
}
