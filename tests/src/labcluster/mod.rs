// A lab that behaves like a small cluster without Kubernetes. A topology's
// podroute nodes that bind a folder to /etc/podroute are its cluster nodes:
// `podlab up` starts one podroute-ipamd (on the node labelled role: ipamd)
// and on every other cluster node podroute-bgpd and podroute-policy-agent,
// detached, with their configs in the lab's state folder (daemons.rs).
// `LabCluster` is the handle on such a lab, in-process or re-opened by name:
// pods made by the real CNI plugin (pods.rs), manifests applied (apply.rs),
// podctl against a node. The layout is /work/issue11-plan.md's contract.

mod apply;
mod daemons;
mod pods;
pub mod spec;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::lab::{self, Lab, state_dir};
use crate::role::{Role, which};
use crate::topology::Node;
use crate::{cmdline, netns};

pub use apply::{Destination, Document, parse_documents, read_documents};
pub use daemons::{ClusterPlan, NodeDaemon, start};
pub use pods::LabPod;
pub use spec::{PortSpec, Protocol, parse_labels};

/// The container path a cluster node binds its podroute config folder to.
pub const CONFIG_BIND: &str = "/etc/podroute";
/// The node label that marks the lab's ipamd node.
pub const IPAMD_LABEL: (&str, &str) = ("role", "ipamd");

/// Whether `node` is a cluster node: our image, with a config folder bound
/// to /etc/podroute.
pub fn is_cluster_node(node: &Node) -> bool {
    node.role == Role::Podroute && node.bind_for(CONFIG_BIND).is_some()
}

/// What `up` recorded about the cluster, in `cluster/cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClusterInfo {
    ipamd_node: String,
    /// The nodes running bgpd and the policy agent (pods go there).
    nodes: Vec<String>,
    /// The binaries folder the daemons were started from.
    binaries: PathBuf,
}

/// The files of a lab's cluster under /run/podlab/<lab>/.
#[derive(Debug, Clone)]
pub struct ClusterPaths {
    pub lab: String,
    pub root: PathBuf,
}

impl ClusterPaths {
    pub fn new(lab: &str) -> ClusterPaths {
        ClusterPaths {
            lab: lab.to_string(),
            root: state_dir(lab),
        }
    }

    /// `cluster/`.
    pub fn cluster(&self) -> PathBuf {
        self.root.join("cluster")
    }
    fn info(&self) -> PathBuf {
        self.cluster().join("cluster.json")
    }
    /// `cluster/bgpd.yaml`, every node's bgpd config.
    pub fn bgpd_config(&self) -> PathBuf {
        self.cluster().join("bgpd.yaml")
    }
    /// `cluster/bgp/`: bgpd.yaml's documents, one per file.
    pub fn bgp_documents(&self) -> PathBuf {
        self.cluster().join("bgp")
    }
    /// `cluster/ipam/`, ipamd's --manifests.
    pub fn ipam(&self) -> PathBuf {
        self.cluster().join("ipam")
    }
    /// `cluster/manifests/`, the policy agents' --manifests.
    pub fn manifests(&self) -> PathBuf {
        self.cluster().join("manifests")
    }
    /// `cluster/pods/`: one `<namespace>.<name>.json` per pod.
    pub fn pods(&self) -> PathBuf {
        self.cluster().join("pods")
    }
    /// Where files are written before being renamed into a watched folder.
    pub fn tmp(&self) -> PathBuf {
        self.cluster().join("tmp")
    }
    pub fn ipamd_socket(&self) -> PathBuf {
        self.cluster().join("ipamd.sock")
    }
    pub fn ipamd_endpoint(&self) -> String {
        format!("unix://{}", self.ipamd_socket().display())
    }
    /// `<node>/<daemon>.<ext>` for bgpd and policy; ipamd's are in cluster/.
    pub fn node_file(&self, node: &str, daemon: &str, ext: &str) -> PathBuf {
        self.root.join(node).join(format!("{daemon}.{ext}"))
    }
    pub fn bgpd_socket(&self, node: &str) -> PathBuf {
        self.node_file(node, "bgpd", "sock")
    }
    pub fn policy_socket(&self, node: &str) -> PathBuf {
        self.node_file(node, "policy", "sock")
    }
}

/// A binary of ours: in `dir` (target/debug, or where podlab runs from),
/// else on PATH.
pub fn find_binary(dir: &Path, name: &str) -> Result<PathBuf, LabError> {
    let local = dir.join(name);
    if local.is_file() {
        return Ok(local);
    }
    which(name).ok_or_else(|| LabError::MissingProgram {
        node: "(cluster)".into(),
        program: name.to_string(),
        reason: format!(
            "not in {} nor on PATH; build it (cargo build -p podroute-bgpd -p podroute-ipam \
             -p podroute-policy -p podroute-cni -p podctl)",
            dir.display()
        ),
    })
}

/// The handle on a lab's cluster. It owns no process: the daemons belong
/// to the lab and go with it; this reads and writes the state folder.
#[derive(Debug, Clone)]
pub struct LabCluster {
    paths: ClusterPaths,
    info: ClusterInfo,
    binaries: PathBuf,
}

impl LabCluster {
    /// The cluster of lab `lab`, which is up; tools (podctl, podlab,
    /// podroute-cni) come from `binaries`, else PATH.
    pub fn open(lab: &str, binaries: impl Into<PathBuf>) -> Result<LabCluster, LabError> {
        lab::check_lab_name(lab)?;
        if !lab::is_up(lab) {
            return Err(LabError::NotUp {
                lab: lab.to_string(),
            });
        }
        let paths = ClusterPaths::new(lab);
        let text = match fs::read_to_string(paths.info()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LabError::NoCluster {
                    lab: lab.to_string(),
                });
            }
            Err(e) => return Err(LabError::io(paths.info(), e)),
        };
        let info: ClusterInfo = serde_json::from_str(&text).map_err(|e| LabError::Io {
            path: paths.info(),
            reason: e.to_string(),
        })?;
        Ok(LabCluster {
            paths,
            info,
            binaries: binaries.into(),
        })
    }

    /// The cluster of `lab` (brought up with `LabOptions::binaries`).
    pub fn from_lab(lab: &Lab, binaries: impl Into<PathBuf>) -> Result<LabCluster, LabError> {
        LabCluster::open(lab.name(), binaries)
    }

    pub fn name(&self) -> &str {
        &self.paths.lab
    }

    pub fn paths(&self) -> &ClusterPaths {
        &self.paths
    }

    /// The nodes that run bgpd and the policy agent, where pods go.
    pub fn nodes(&self) -> &[String] {
        &self.info.nodes
    }

    pub fn ipamd_node(&self) -> &str {
        &self.info.ipamd_node
    }

    /// A tool of ours: from this handle's folder, else the one the daemons
    /// were started from, else PATH.
    pub fn binary(&self, name: &str) -> Result<PathBuf, LabError> {
        find_binary(&self.binaries, name).or_else(|_| find_binary(&self.info.binaries, name))
    }

    /// Fails unless `node` is a cluster node (the ipamd node included).
    pub(crate) fn check_node(&self, node: &str) -> Result<(), LabError> {
        if node == self.info.ipamd_node || self.info.nodes.iter().any(|n| n == node) {
            return Ok(());
        }
        let mut known = self.info.nodes.clone();
        known.push(self.info.ipamd_node.clone());
        Err(LabError::UnknownNode {
            lab: self.name().to_string(),
            node: node.to_string(),
            known: known.join(", "),
        })
    }

    /// podctl with `--bgpd`, `--ipamd` and `--policy` of `node` (any
    /// cluster node; the ipamd node has no bgpd or agent) and `args`.
    pub fn podctl_command(
        &self,
        node: &str,
        args: &[impl AsRef<str>],
    ) -> Result<Command, LabError> {
        self.check_node(node)?;
        Ok(cmdline::podctl(
            &self.binary("podctl")?,
            &self.paths.bgpd_socket(node),
            &self.paths.ipamd_socket(),
            &self.paths.policy_socket(node),
            args,
        ))
    }

    /// Runs podctl (see `podctl_command`) and returns its output.
    pub fn podctl(&self, node: &str, args: &[impl AsRef<str>]) -> Result<Output, LabError> {
        let mut cmd = self.podctl_command(node, args)?;
        cmd.stdin(Stdio::null());
        let shown = netns::show(&cmd);
        cmd.output().map_err(|e| LabError::Spawn {
            command: shown,
            reason: e.to_string(),
        })
    }

    /// Applies every document of `file` (see apply.rs); returns them.
    /// Nothing is written unless every document is valid.
    pub fn apply(&self, file: &Path) -> Result<Vec<Document>, LabError> {
        let docs = read_documents(file)?;
        apply::write_documents(&self.paths, &docs)?;
        Ok(docs)
    }

    /// Removes the documents `file` names (kind, namespace, name); returns
    /// each with whether it was there.
    pub fn delete(&self, file: &Path) -> Result<Vec<(Document, bool)>, LabError> {
        let docs = read_documents(file)?;
        let found = apply::remove_documents(&self.paths, &docs)?;
        Ok(docs.into_iter().zip(found).collect())
    }

    /// Whether pod `from` connects to pod `to` on TCP `port` within
    /// `timeout` (`podlab probe connect` in `from`'s namespace).
    pub fn connects(
        &self,
        from: &str,
        to: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<bool, LabError> {
        let from = self.pod(from)?;
        let to = self.pod(to)?;
        let ip = to.ip().ok_or_else(|| LabError::Cluster {
            lab: self.name().to_string(),
            reason: format!("pod {} has no address", to.id()),
        })?;
        let target = format!("tcp:{}", std::net::SocketAddr::new(ip, port));
        let argv = [
            self.binary("podlab")?.display().to_string(),
            "probe".into(),
            "connect".into(),
            "--timeout-ms".into(),
            timeout.as_millis().to_string(),
            target,
        ];
        let out = netns::run(&mut netns::command_in(&from.netns, &argv))?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("\"ok\":true"))
    }
}

/// Labels as `k=v,k=v`, for tables.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
