// Pods on lab nodes, made the way a cluster makes them: one podroute-ipamd
// for the lab (in the caller's own namespace, on a Unix socket, as it runs
// off-node in a cluster) and the real CNI plugin, run in a node's namespace
// exactly as a container runtime calls it. The pod's namespace belongs to
// the lab, so tearing the lab down removes it.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Lab, LabError, cmdline, cni, netns};

/// How long ipamd gets to answer after it starts.
const IPAMD_START: Duration = Duration::from_secs(30);

/// A running podroute-ipamd; killed when dropped.
pub struct Ipamd {
    binary: PathBuf,
    cni: PathBuf,
    dir: PathBuf,
    pools: PathBuf,
    child: Option<Child>,
}

/// A pod made by the CNI plugin.
#[derive(Debug, Clone)]
pub struct Pod {
    /// `namespace/name`.
    pub id: String,
    /// The lab node it runs on.
    pub node: String,
    /// Its network namespace.
    pub netns: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Pod {
    /// Its IPv4 address, else its IPv6 one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.v4.map(IpAddr::V4).or_else(|| self.v6.map(IpAddr::V6))
    }
}

impl Ipamd {
    /// Starts `bin_dir/podroute-ipamd` with its data, socket and log in
    /// `dir`, serving the IPPools of `pools_yaml`, with no release
    /// cool-down; returns once the CNI plugin (`bin_dir/podroute-cni`)
    /// reports it ready.
    pub fn start(bin_dir: &Path, dir: &Path, pools_yaml: &str) -> Result<Ipamd, LabError> {
        fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        let pools = dir.join("pools.yaml");
        fs::write(&pools, pools_yaml).map_err(|e| LabError::io(&pools, e))?;
        let mut ipamd = Ipamd {
            binary: bin_dir.join("podroute-ipamd"),
            cni: bin_dir.join("podroute-cni"),
            dir: dir.to_owned(),
            pools,
            child: None,
        };
        ipamd.restart()?;
        Ok(ipamd)
    }

    /// Its Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("ipamd.sock")
    }

    /// The endpoint as the CNI plugin and podroute-bgpd take it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("ipamd.log")).unwrap_or_default()
    }

    /// Kills it (SIGKILL) and waits for it; its store stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again, on the same store) and waits until it answers.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.kill();
        let log_path = self.dir.join("ipamd.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| LabError::io(&log_path, e))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(cmdline::ipamd_args(
            &self.socket(),
            &self.dir.join("store"),
            &self.pools,
        ))
        // It runs in the caller's namespace, often the host's, beside
        // other tests' ipamds: a free port, never the default 9642.
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let child = cmd.spawn().map_err(|e| LabError::Spawn {
            command: netns::show(&cmd),
            reason: e.to_string(),
        })?;
        self.child = Some(child);
        let until = Instant::now() + IPAMD_START;
        loop {
            if cni::ready(&self.cni, &self.endpoint())? {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                return Err(LabError::Spawn {
                    command: self.binary.display().to_string(),
                    reason: format!("exited ({exit}): {}", self.log()),
                });
            }
            if Instant::now() >= until {
                return Err(LabError::Timeout {
                    what: format!("podroute-ipamd to answer; log:\n{}", self.log()),
                    waited: IPAMD_START,
                });
            }
            std::thread::sleep(netns::POLL_INTERVAL);
        }
    }

    /// The CNI network configuration for `node`.
    pub fn cni_conf(&self, node: &str) -> String {
        cni::conf(&self.endpoint(), node)
    }

    /// Creates pod `namespace/name` on lab node `node`: a namespace of the
    /// lab's own, wired by the CNI plugin's ADD run in the node's
    /// namespace with the pod's identity in CNI_ARGS.
    pub fn add_pod(
        &self,
        lab: &Lab,
        node: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Pod, LabError> {
        let node_ns = lab.netns(node)?;
        let pod_ns = lab.add_namespace(&format!("pod-{namespace}-{name}"))?;
        let ips = cni::add(
            &self.cni,
            &node_ns,
            &self.cni_conf(node),
            &pod_ns,
            namespace,
            name,
        )?;
        Ok(Pod {
            id: format!("{namespace}/{name}"),
            node: node.to_owned(),
            netns: pod_ns,
            v4: ips.iter().find_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            }),
            v6: ips.iter().find_map(|a| match a {
                IpAddr::V6(a) => Some(*a),
                IpAddr::V4(_) => None,
            }),
        })
    }

    /// Deletes `pod` as a runtime does: CNI DEL (which releases its
    /// addresses), then its namespace.
    pub fn delete_pod(&self, lab: &Lab, pod: &Pod) -> Result<(), LabError> {
        let node_ns = lab.netns(&pod.node)?;
        let (namespace, name) = pod.id.split_once('/').unwrap_or(("default", &pod.id));
        cni::del(
            &self.cni,
            &node_ns,
            &self.cni_conf(&pod.node),
            &pod.netns,
            namespace,
            name,
        )?;
        netns::remove(&pod.netns, Duration::from_secs(2))
    }
}

impl Drop for Ipamd {
    fn drop(&mut self) {
        self.kill();
    }
}
