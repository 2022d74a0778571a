// The cluster's daemons, started by `up`: podroute-ipamd in the ipamd
// node's namespace, podroute-bgpd and podroute-policy-agent in every other
// cluster node's. Each is detached (its own session, so it outlives
// podlab), writes its pid file and log beside its admin socket, and lives
// in its node's namespace, so `down` stops it with the namespace. `up`
// returns once every admin socket answers, or fails with the log's end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::apply::{self, Document};
use super::{ClusterInfo, ClusterPaths, IPAMD_LABEL, LabCluster, find_binary, is_cluster_node};
use crate::error::LabError;
use crate::lab::{Lab, tail};
use crate::topology::Topology;
use crate::{cmdline, cni, netns};

/// How long a daemon gets to serve its admin socket (two busy cores,
/// debug builds).
const START: Duration = Duration::from_secs(60);
/// The config files a cluster node's /etc/podroute holds.
const BGPD_FILE: &str = "bgpd.yaml";
const POOLS_FILE: &str = "pools.yaml";

/// What `up` will start, checked before the lab is made.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub ipamd_node: String,
    /// Nodes that run bgpd and the policy agent.
    pub nodes: Vec<String>,
    /// The bound /etc/podroute folder.
    pub config: PathBuf,
    pub binaries: PathBuf,
    documents: Vec<Document>,
}

impl ClusterPlan {
    /// The cluster `topology` asks for, with binaries from `binaries` (else
    /// PATH), or None when it has no cluster node. Refuses a lab without
    /// exactly one ipamd node, cluster nodes binding different folders,
    /// config files that do not check, and missing binaries.
    pub fn from_topology(
        topology: &Topology,
        binaries: &Path,
    ) -> Result<Option<ClusterPlan>, LabError> {
        let cluster: Vec<_> = topology
            .nodes
            .values()
            .filter(|n| is_cluster_node(n))
            .collect();
        let Some(first) = cluster.first() else {
            return Ok(None);
        };
        let err = |reason: String| LabError::Cluster {
            lab: topology.name.clone(),
            reason,
        };
        let ipamd: Vec<&str> = cluster
            .iter()
            .filter(|n| n.labels.get(IPAMD_LABEL.0).map(String::as_str) == Some(IPAMD_LABEL.1))
            .map(|n| n.name.as_str())
            .collect();
        let [ipamd_node] = ipamd.as_slice() else {
            return Err(err(format!(
                "a lab with cluster nodes (binding {}) needs exactly one of them labelled \
                 {}: {}, found {}",
                super::CONFIG_BIND,
                IPAMD_LABEL.0,
                IPAMD_LABEL.1,
                if ipamd.is_empty() {
                    "none".to_string()
                } else {
                    ipamd.join(", ")
                }
            )));
        };
        let config = first
            .bind_for(super::CONFIG_BIND)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if let Some(other) = cluster
            .iter()
            .find(|n| n.bind_for(super::CONFIG_BIND) != Some(config.as_path()))
        {
            return Err(err(format!(
                "cluster nodes bind different folders to {}: {} binds {}, {} binds {}",
                super::CONFIG_BIND,
                first.name,
                config.display(),
                other.name,
                other
                    .bind_for(super::CONFIG_BIND)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        }
        let mut documents = Vec::new();
        for file in [BGPD_FILE, POOLS_FILE] {
            let path = config.join(file);
            if !path.is_file() {
                return Err(err(format!(
                    "{} is missing: a cluster's config folder holds {BGPD_FILE} and {POOLS_FILE}",
                    path.display()
                )));
            }
            documents.extend(apply::read_documents(&path)?);
        }
        for program in [
            "podroute-ipamd",
            "podroute-bgpd",
            "podroute-policy-agent",
            "podroute-cni",
        ] {
            find_binary(binaries, program)?;
        }
        Ok(Some(ClusterPlan {
            ipamd_node: ipamd_node.to_string(),
            nodes: cluster
                .iter()
                .map(|n| n.name.clone())
                .filter(|n| n != ipamd_node)
                .collect(),
            config,
            binaries: binaries.to_path_buf(),
            documents,
        }))
    }
}

/// Writes the cluster's configs into the state folder and starts its
/// daemons in `lab`; returns once each serves its admin socket.
pub fn start(lab: &Lab, plan: &ClusterPlan) -> Result<(), LabError> {
    let paths = ClusterPaths::new(lab.name());
    for dir in [
        paths.cluster(),
        paths.bgp_documents(),
        paths.ipam(),
        paths.manifests(),
        paths.pods(),
        paths.tmp(),
    ] {
        fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    }
    apply::write_documents(&paths, &plan.documents)?;
    // bgpd.yaml exists even when the folder held no BGP document.
    apply::render_bgpd(&paths)?;
    let info = ClusterInfo {
        ipamd_node: plan.ipamd_node.clone(),
        nodes: plan.nodes.clone(),
        binaries: plan.binaries.clone(),
    };
    let text = serde_json::to_string_pretty(&info).map_err(|e| LabError::Io {
        path: paths.info(),
        reason: e.to_string(),
    })?;
    crate::manifests::write_atomic(&paths.tmp().join("cluster.json.tmp"), &paths.info(), &text)?;

    let bin = |name: &str| find_binary(&plan.binaries, name);
    let cluster = paths.cluster();
    let mut ipamd_argv = vec![bin("podroute-ipamd")?.display().to_string()];
    ipamd_argv.extend(cmdline::ipamd_args(
        &paths.ipamd_socket(),
        &cluster.join("ipamd"),
        &paths.ipam(),
    ));
    let ipamd = Daemon {
        what: format!("podroute-ipamd on {}", plan.ipamd_node),
        socket: Some(paths.ipamd_socket()),
        log: cluster.join("ipamd.log"),
        pid: cluster.join("ipamd.pid"),
    };
    ipamd.spawn(&lab.netns(&plan.ipamd_node)?, &ipamd_argv)?;
    // bgpd follows ipamd's block stream from its start: ipamd first.
    let plugin = bin("podroute-cni")?;
    ipamd.wait(lab.name(), || {
        cni::ready(&plugin, &paths.ipamd_endpoint()).unwrap_or(false)
    })?;

    let mut started = Vec::new();
    for node in &plan.nodes {
        let ns = lab.netns(node)?;
        for daemon in [NodeDaemon::Bgpd, NodeDaemon::Policy] {
            let (d, argv) = node_daemon(&paths, &plan.binaries, node, daemon)?;
            d.spawn(&ns, &argv)?;
            started.push(d);
        }
    }
    // All started, then waited for: they start side by side.
    for d in &started {
        d.wait(lab.name(), || d.socket.as_ref().is_some_and(|s| s.exists()))?;
    }
    Ok(())
}

/// The daemons a cluster node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeDaemon {
    Bgpd,
    Policy,
}

impl NodeDaemon {
    /// Its name in the state folder's file names and on podlab's command
    /// line.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeDaemon::Bgpd => "bgpd",
            NodeDaemon::Policy => "policy",
        }
    }
}

impl std::str::FromStr for NodeDaemon {
    type Err = LabError;

    fn from_str(s: &str) -> Result<NodeDaemon, LabError> {
        match s {
            "bgpd" => Ok(NodeDaemon::Bgpd),
            "policy" | "policy-agent" => Ok(NodeDaemon::Policy),
            other => Err(LabError::InvalidArgument {
                what: "daemon",
                value: other.into(),
                reason: "a node runs bgpd and policy (the policy agent)".into(),
            }),
        }
    }
}

/// `daemon` of cluster node `node`: its files and its command line, the
/// same at `up` and at a restart.
pub(super) fn node_daemon(
    paths: &ClusterPaths,
    binaries: &Path,
    node: &str,
    daemon: NodeDaemon,
) -> Result<(Daemon, Vec<String>), LabError> {
    let argv = match daemon {
        NodeDaemon::Bgpd => {
            let mut argv = vec![
                find_binary(binaries, "podroute-bgpd")?
                    .display()
                    .to_string(),
            ];
            argv.extend(cmdline::bgpd_args(
                &paths.bgpd_config(),
                node,
                &paths.ipamd_endpoint(),
                &paths.bgpd_socket(node),
            ));
            argv
        }
        NodeDaemon::Policy => {
            let mut argv = vec![
                find_binary(binaries, "podroute-policy-agent")?
                    .display()
                    .to_string(),
            ];
            argv.extend(cmdline::policy_agent_args(
                node,
                &paths.manifests(),
                &paths.policy_socket(node),
            ));
            argv
        }
    };
    let name = daemon.as_str();
    let d = Daemon {
        what: format!("{} on {node}", argv[0].rsplit('/').next().unwrap_or(name)),
        socket: Some(paths.node_file(node, name, "sock")),
        log: paths.node_file(node, name, "log"),
        pid: paths.node_file(node, name, "pid"),
    };
    Ok((d, argv))
}

/// How long a stopped daemon gets to exit.
const STOP: Duration = Duration::from_secs(10);

impl LabCluster {
    /// Sends `signal` (a name kill(1) takes: TERM, KILL, HUP...) to
    /// `daemon` on `node` and, unless it is HUP, waits until it has exited.
    /// SIGKILL is a crash: the kernel routes and rules it made stay, as
    /// they do when a real node's daemon dies.
    pub fn stop_daemon(
        &self,
        node: &str,
        daemon: NodeDaemon,
        signal: &str,
    ) -> Result<(), LabError> {
        let (d, _) = self.node_daemon(node, daemon)?;
        let pid = read_pid(&d.pid)
            .filter(|_| alive(&d.pid))
            .ok_or_else(|| LabError::Cluster {
                lab: self.name().to_string(),
                reason: format!("{} is not running", d.what),
            })?;
        let signal = signal.trim_start_matches("SIG");
        netns::run(
            std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]),
        )?;
        if signal == "HUP" {
            return Ok(());
        }
        netns::wait_until(&format!("{} to exit", d.what), STOP, || !alive(&d.pid))
    }

    /// Starts `daemon` on `node` again with the command line `up` gave it
    /// and waits for its admin socket.
    pub fn start_daemon(&self, node: &str, daemon: NodeDaemon) -> Result<(), LabError> {
        let (d, argv) = self.node_daemon(node, daemon)?;
        if read_pid(&d.pid).is_some() && alive(&d.pid) {
            return Err(LabError::Cluster {
                lab: self.name().to_string(),
                reason: format!("{} is running already", d.what),
            });
        }
        // A killed daemon leaves its socket file: readiness is a new one.
        if let Some(socket) = &d.socket {
            let _ = fs::remove_file(socket);
        }
        let _ = fs::remove_file(&d.pid);
        d.spawn(&crate::lab::node_runtime(self.name(), node).netns, &argv)?;
        d.wait(self.name(), || {
            d.socket.as_ref().is_some_and(|s| s.exists())
        })
    }

    fn node_daemon(
        &self,
        node: &str,
        daemon: NodeDaemon,
    ) -> Result<(Daemon, Vec<String>), LabError> {
        if !self.nodes().iter().any(|n| n == node) {
            self.check_node(node)?;
            return Err(LabError::Cluster {
                lab: self.name().to_string(),
                reason: format!(
                    "{node} runs ipamd only; bgpd and the policy agent run on {}",
                    self.nodes().join(", ")
                ),
            });
        }
        node_daemon(self.paths(), &self.info.binaries, node, daemon)
    }
}

fn read_pid(pid_file: &Path) -> Option<u32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// One detached daemon's files.
pub(super) struct Daemon {
    pub what: String,
    /// Its admin socket, if it serves one.
    pub socket: Option<PathBuf>,
    pub log: PathBuf,
    pub pid: PathBuf,
}

impl Daemon {
    /// Starts `argv` in namespace `ns`, detached: `setsid -f` forks it into
    /// a session of its own, a shell writes its pid and execs it.
    pub fn spawn(&self, ns: &str, argv: &[String]) -> Result<(), LabError> {
        spawn_detached(ns, argv, &self.log, &self.pid)
    }

    /// Polls `ready` until it holds; fails at once when the process has
    /// exited, or after START, with the end of its log.
    pub fn wait(&self, lab: &str, mut ready: impl FnMut() -> bool) -> Result<(), LabError> {
        let until = Instant::now() + START;
        loop {
            if ready() {
                return Ok(());
            }
            let state = if !alive(&self.pid) {
                "exited"
            } else if Instant::now() >= until {
                "did not answer within a minute"
            } else {
                std::thread::sleep(netns::POLL_INTERVAL);
                continue;
            };
            return Err(LabError::Cluster {
                lab: lab.to_string(),
                reason: match &self.socket {
                    Some(socket) => format!(
                        "{} {state} (no {}): {}",
                        self.what,
                        socket.display(),
                        tail(&self.log)
                    ),
                    None => format!("{} {state}: {}", self.what, tail(&self.log)),
                },
            });
        }
    }
}

/// Starts `argv` in namespace `ns` so that it outlives us: its own
/// session, stdin closed, stdout and stderr appended to `log`, its pid in
/// `pid_file`. The environment is PATH (and RUST_LOG) only: a caller's
/// NODE_NAME, KUBECONFIG or PODROUTE_* must not reach the daemon.
pub fn spawn_detached(
    ns: &str,
    argv: &[String],
    log: &Path,
    pid_file: &Path,
) -> Result<(), LabError> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(log, e))?;
    let mut full = vec![
        "setsid".to_string(),
        "-f".into(),
        "sh".into(),
        "-c".into(),
        // $0 is the pid file, "$@" the daemon: its pid is the shell's.
        r#"echo $$ > "$0" && exec "$@""#.into(),
        pid_file.display().to_string(),
    ];
    full.extend(argv.iter().cloned());
    let mut cmd = netns::command_in(ns, &full);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(level) = std::env::var_os("RUST_LOG") {
        cmd.env("RUST_LOG", level);
    }
    let shown = netns::show(&cmd);
    let status = cmd.status().map_err(|e| LabError::Spawn {
        command: shown.clone(),
        reason: e.to_string(),
    })?;
    if !status.success() {
        return Err(LabError::Command {
            command: shown,
            status: status.to_string(),
            stderr: tail(log),
        });
    }
    Ok(())
}

/// Whether the process of `pid_file` runs. No pid file yet counts as
/// running: the shell may not have written it.
pub fn alive(pid_file: &Path) -> bool {
    match fs::read_to_string(pid_file) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid),
            Err(_) => true,
        },
        Err(_) => true,
    }
}

/// A detached daemon that exited is reparented and reaped, but be sure.
fn zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}
