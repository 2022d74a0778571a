// The arguments of podroute's daemons and tools as the labs run them,
// in one place so the in-process `cluster::Cluster`, `pods::Ipamd` and
// podlab's lab cluster start them alike, and how such processes are
// started with their output in a log and stopped.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::netns;

/// Variables that would point podctl elsewhere than the lab's sockets.
const PODCTL_ENV: &[&str] = &[
    "PODROUTE_BGPD",
    "PODROUTE_IPAMD",
    "PODROUTE_POLICY",
    "PODROUTE_BGPD_SOCKET",
    "PODROUTE_IPAMD_SOCKET",
    "PODROUTE_POLICY_SOCKET",
    "PODCTL_CONFIG",
];

/// podroute-bgpd's arguments for `node` of a cluster file, announcing the blocks
/// ipamd at `ipamd_endpoint` gives the node.
pub fn bgpd_args(config: &Path, node: &str, ipamd_endpoint: &str, socket: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        show(config),
        "--node".into(),
        node.into(),
        "--ipamd".into(),
        ipamd_endpoint.into(),
        "--admin-socket".into(),
        show(socket),
    ]
}

/// podroute-policy-agent's arguments for `node`, reading the cluster from the
/// manifests folder `manifests`.
pub fn policy_agent_args(node: &str, manifests: &Path, socket: &Path) -> Vec<String> {
    vec![
        "--node".into(),
        node.into(),
        "--manifests".into(),
        show(manifests),
        "--admin-socket".into(),
        show(socket),
    ]
}

/// podroute-ipamd's arguments: an embedded store in `data_dir`, pools from
/// `manifests` (a file or a folder), released addresses reusable at once
/// (labs create and delete pods quickly and count what is free).
pub fn ipamd_args(socket: &Path, data_dir: &Path, manifests: &Path) -> Vec<String> {
    vec![
        "--admin-socket".into(),
        show(socket),
        "--data-dir".into(),
        show(data_dir),
        "--manifests".into(),
        show(manifests),
        "--release-cooldown".into(),
        "0".into(),
    ]
}

/// `podlab probe serve`'s arguments: serve `ports` (TCP and UDP each).
pub fn probe_serve_args(ports: &[u16]) -> Vec<String> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    vec![
        "probe".into(),
        "serve".into(),
        "--ports".into(),
        ports.join(","),
    ]
}

/// podctl against one node's daemons and the cluster's ipamd; `args`
/// follow the socket flags. The caller's PODROUTE_* and PODCTL_CONFIG are
/// removed: they must not redirect it to another cluster.
pub fn podctl(
    binary: &Path,
    bgpd: &Path,
    ipamd: &Path,
    policy: &Path,
    args: &[impl AsRef<str>],
) -> Command {
    let mut cmd = Command::new(binary);
    for var in PODCTL_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--bgpd")
        .arg(bgpd)
        .arg("--ipamd")
        .arg(ipamd)
        .arg("--policy")
        .arg(policy)
        .args(args.iter().map(AsRef::as_ref));
    cmd
}

/// Starts `cmd` with stdin closed, stdout discarded and stderr appended to
/// `log` (the daemons log to stderr).
pub fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child, LabError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(log, e))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
    cmd.spawn().map_err(|e| LabError::Spawn {
        command: netns::show(&cmd),
        reason: e.to_string(),
    })
}

/// SIGTERM, then SIGKILL after `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(netns::POLL_INTERVAL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn show(path: &Path) -> String {
    path.display().to_string()
}
