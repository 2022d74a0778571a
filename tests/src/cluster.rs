// A small cluster without Kubernetes: a lab of nodes on one L2 segment, each
// running podroute-bgpd (node-to-node mesh from Node documents, announcing
// the blocks ipamd gives it) and podroute-policy-agent (on a manifests
// folder standing in for the API server), one podroute-ipamd for all, pods
// made by the real CNI plugin with a `podlab probe serve` in each. What
// `podctl` is run against in the end-to-end tests. Dropping it stops every
// process and tears the lab down, also when a test fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::pods::{Ipamd, Pod};
use crate::{Lab, LabError, LabOptions, cmdline, manifests, netns};

/// How long a daemon gets to serve its admin socket after it starts.
const START: Duration = Duration::from_secs(30);
/// Grace a daemon gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The cluster's AS (iBGP mesh).
pub const ASN: u32 = 64_512;
/// Pod addresses: IPv4 /26 blocks.
const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: default-ipv4}
spec: {cidr: 10.244.0.0/16, blockSize: 26}
";

/// The binaries a cluster runs, all from one folder (target/debug).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn new(dir: impl Into<PathBuf>) -> Binaries {
        Binaries { dir: dir.into() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One node's daemons.
struct NodeDaemons {
    bgpd: Option<Child>,
    policy: Option<Child>,
}

/// A pod of the cluster, with what the manifests say about it.
#[derive(Debug, Clone)]
pub struct ClusterPod {
    pub pod: Pod,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<u16>,
}

impl ClusterPod {
    pub fn ip(&self) -> IpAddr {
        self.pod.ip().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// `namespace/name`.
    pub fn id(&self) -> &str {
        &self.pod.id
    }
}

pub struct Cluster {
    // Field order is drop order: processes first, then the lab (its
    // namespaces), then the folder.
    nodes: BTreeMap<String, NodeDaemons>,
    servers: Vec<Child>,
    ipamd: Ipamd,
    pods: BTreeMap<String, ClusterPod>,
    lab: Lab,
    binaries: Binaries,
    addresses: BTreeMap<String, String>,
    bgp_extra: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Brings up `nodes` nodes (n1, n2, ...; 10.77.0.N/24 on one bridge)
    /// with ipamd, and bgpd and the policy agent on every node; returns
    /// once every daemon serves its admin socket. `bgp_extra` is more of
    /// the BGPConfiguration's spec, each line indented two spaces.
    pub fn start(
        binaries: Binaries,
        prefix: &str,
        nodes: usize,
        bgp_extra: &str,
    ) -> Result<Cluster, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("podroute-cluster")
            .tempdir()
            .map_err(|e| LabError::io(Path::new("/tmp"), e))?;
        let mut topology = String::from(
            "name: cluster\ntopology:\n  kinds:\n    linux: {image: podroute/node:dev}\n  nodes:\n    lan: {kind: bridge}\n",
        );
        let mut links = String::from("  links:\n");
        let mut addresses = BTreeMap::new();
        for n in 1..=nodes {
            let _ = writeln!(topology, "    n{n}: {{kind: linux}}");
            let _ = writeln!(
                links,
                "    - endpoints: [{{node: n{n}, interface: eth1, ipv4: 10.77.0.{n}/24}}, {{node: lan, interface: n{n}}}]"
            );
            addresses.insert(format!("n{n}"), format!("10.77.0.{n}"));
        }
        topology.push_str(&links);
        let topology_file = dir.path().join("cluster.clab.yml");
        write(&topology_file, &topology)?;
        let lab = Lab::up_with(&topology_file, LabOptions::unique(prefix))?;
        for node in addresses.keys() {
            lab.exec(node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        }
        let ipamd = Ipamd::start(&binaries.dir, &dir.path().join("ipamd"), POOLS)?;
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            servers: Vec::new(),
            ipamd,
            pods: BTreeMap::new(),
            lab,
            binaries,
            addresses,
            bgp_extra: bgp_extra.to_string(),
            dir,
        };
        let manifests = cluster.manifests_dir();
        fs::create_dir_all(&manifests).map_err(|e| LabError::io(&manifests, e))?;
        write(&cluster.bgpd_config(), &cluster.bgp_yaml())?;
        let names: Vec<String> = cluster.addresses.keys().cloned().collect();
        for node in &names {
            let node_dir = cluster.node_dir(node);
            fs::create_dir_all(&node_dir).map_err(|e| LabError::io(&node_dir, e))?;
            cluster.nodes.insert(
                node.clone(),
                NodeDaemons {
                    bgpd: None,
                    policy: None,
                },
            );
            cluster.start_bgpd(node)?;
            cluster.start_policy(node)?;
        }
        Ok(cluster)
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    pub fn ipamd(&self) -> &Ipamd {
        &self.ipamd
    }

    /// Node names, n1 first.
    pub fn node_names(&self) -> Vec<String> {
        self.addresses.keys().cloned().collect()
    }

    /// A node's address on the segment.
    pub fn address(&self, node: &str) -> &str {
        self.addresses.get(node).map_or("", String::as_str)
    }

    /// The folder the policy agents read as their cluster view.
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node)
    }

    fn bgpd_config(&self) -> PathBuf {
        self.dir.path().join("bgpd.yaml")
    }

    pub fn bgpd_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("bgpd.sock")
    }

    pub fn policy_socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("policy.sock")
    }

    /// The cluster's BGP configuration, the same file on every node: the
    /// mesh from Node documents.
    fn bgp_yaml(&self) -> String {
        let mut y = format!(
            "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n  asNumber: {ASN}\n  connectRetryTime: 1\n{}",
            self.bgp_extra
        );
        for (node, address) in &self.addresses {
            let _ = write!(
                y,
                "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata: {{name: {node}}}\nspec: {{addresses: [\"{address}\"]}}\n"
            );
        }
        y
    }

    /// Starts (or restarts) podroute-bgpd on `node` and waits for its
    /// admin socket.
    pub fn start_bgpd(&mut self, node: &str) -> Result<(), LabError> {
        self.stop_bgpd(node);
        let socket = self.bgpd_socket(node);
        let log = self.node_dir(node).join("bgpd.log");
        let mut argv = vec![self.binary("podroute-bgpd")];
        argv.extend(cmdline::bgpd_args(
            &self.bgpd_config(),
            node,
            &self.ipamd.endpoint(),
            &socket,
        ));
        let cmd = netns::command_in(&self.lab.netns(node)?, &argv);
        let child = cmdline::spawn_logged(cmd, &log)?;
        self.daemons(node)?.bgpd = Some(child);
        self.wait_socket(node, &socket, &log, |d| &mut d.bgpd)
    }

    /// Starts (or restarts) podroute-policy-agent on `node` on the
    /// manifests folder and waits for its admin socket.
    pub fn start_policy(&mut self, node: &str) -> Result<(), LabError> {
        if let Some(mut child) = self.daemons(node)?.policy.take() {
            cmdline::stop(&mut child, STOP_GRACE);
        }
        let socket = self.policy_socket(node);
        let log = self.node_dir(node).join("policy.log");
        let mut argv = vec![self.binary("podroute-policy-agent")];
        argv.extend(cmdline::policy_agent_args(
            node,
            &self.manifests_dir(),
            &socket,
        ));
        argv.extend(["--resync-interval".to_string(), "5".to_string()]);
        let cmd = netns::command_in(&self.lab.netns(node)?, &argv);
        let child = cmdline::spawn_logged(cmd, &log)?;
        self.daemons(node)?.policy = Some(child);
        self.wait_socket(node, &socket, &log, |d| &mut d.policy)
    }

    /// Stops `node`'s bgpd (SIGTERM, as systemd or the kubelet would).
    pub fn stop_bgpd(&mut self, node: &str) {
        if let Some(daemons) = self.nodes.get_mut(node)
            && let Some(mut child) = daemons.bgpd.take()
        {
            cmdline::stop(&mut child, STOP_GRACE);
        }
    }

    /// The end of a daemon's log ("bgpd" or "policy"), for failure messages.
    pub fn log(&self, node: &str, daemon: &str) -> String {
        let text = fs::read_to_string(self.node_dir(node).join(format!("{daemon}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    fn binary(&self, name: &str) -> String {
        self.binaries.path(name).display().to_string()
    }

    fn daemons(&mut self, node: &str) -> Result<&mut NodeDaemons, LabError> {
        self.nodes
            .get_mut(node)
            .ok_or_else(|| LabError::UnknownNode {
                lab: self.lab.name().to_string(),
                node: node.to_string(),
                known: self
                    .addresses
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn wait_socket(
        &mut self,
        node: &str,
        socket: &Path,
        log: &Path,
        child: fn(&mut NodeDaemons) -> &mut Option<Child>,
    ) -> Result<(), LabError> {
        let until = Instant::now() + START;
        while !socket.exists() {
            if let Some(c) = child(self.daemons(node)?).as_mut()
                && let Ok(Some(exit)) = c.try_wait()
            {
                return Err(LabError::Spawn {
                    command: format!("daemon on {node}"),
                    reason: format!(
                        "exited ({exit}): {}",
                        fs::read_to_string(log).unwrap_or_default()
                    ),
                });
            }
            if Instant::now() >= until {
                return Err(LabError::Timeout {
                    what: format!("{} on {node}", socket.display()),
                    waited: START,
                });
            }
            std::thread::sleep(netns::POLL_INTERVAL);
        }
        Ok(())
    }

    /// Makes pod `namespace/name` on `node` through the CNI plugin, starts
    /// a `podlab probe serve` on `ports` in it, and publishes its Pod (and
    /// its Namespace) manifest to the policy agents.
    pub fn add_pod(
        &mut self,
        node: &str,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[u16],
    ) -> Result<ClusterPod, LabError> {
        let pod = self.ipamd.add_pod(&self.lab, node, namespace, name)?;
        let pod = ClusterPod {
            pod,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: ports.to_vec(),
        };
        if !ports.is_empty() {
            self.start_server(&pod)?;
        }
        self.apply(
            &format!("namespace-{namespace}"),
            &manifests::namespace(namespace),
        )?;
        let ports: Vec<_> = ports.iter().map(|p| (*p, "TCP")).collect();
        let ips: Vec<IpAddr> = pod.pod.ip().into_iter().collect();
        self.apply(
            &format!("pod-{namespace}-{name}"),
            &manifests::pod(namespace, name, node, &pod.labels, &ports, &ips),
        )?;
        self.pods.insert(pod.id().to_string(), pod.clone());
        Ok(pod)
    }

    pub fn pod(&self, id: &str) -> Option<&ClusterPod> {
        self.pods.get(id)
    }

    fn start_server(&mut self, pod: &ClusterPod) -> Result<(), LabError> {
        let out_path = self.dir.path().join(format!("{}.serve.out", pod.pod.netns));
        let out = fs::File::create(&out_path).map_err(|e| LabError::io(&out_path, e))?;
        let mut argv = vec![self.binary("podlab")];
        argv.extend(cmdline::probe_serve_args(&pod.ports));
        let mut cmd = netns::command_in(&pod.pod.netns, &argv);
        cmd.stdin(Stdio::null()).stdout(out).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| LabError::Spawn {
            command: netns::show(&cmd),
            reason: e.to_string(),
        })?;
        self.servers.push(child);
        // It prints one line once every socket is bound.
        netns::wait_until("the pod's probe server to listen", START, || {
            fs::read_to_string(&out_path)
                .unwrap_or_default()
                .starts_with("{\"listening\"")
        })
    }

    /// Writes manifest `name`.yaml into the agents' folder, atomically
    /// (written beside it, then renamed in).
    pub fn apply(&self, name: &str, yaml: &str) -> Result<(), LabError> {
        let tmp = self.dir.path().join(format!("{name}.yaml.tmp"));
        write(&tmp, yaml)?;
        let target = self.manifests_dir().join(format!("{name}.yaml"));
        fs::rename(&tmp, &target).map_err(|e| LabError::io(&target, e))
    }

    /// Removes manifest `name`.yaml.
    pub fn remove(&self, name: &str) -> Result<(), LabError> {
        let target = self.manifests_dir().join(format!("{name}.yaml"));
        fs::remove_file(&target).map_err(|e| LabError::io(&target, e))
    }

    /// Whether a TCP connection from `from` to `to`:`port` is accepted
    /// within `timeout` (`podlab probe connect` in `from`'s namespace).
    pub fn connects(
        &self,
        from: &ClusterPod,
        to: &ClusterPod,
        port: u16,
        timeout: Duration,
    ) -> Result<bool, LabError> {
        let target = format!("tcp:{}", SocketAddr::new(to.ip(), port));
        let timeout_ms = timeout.as_millis().to_string();
        let mut cmd = netns::command_in(&from.pod.netns, &[self.binary("podlab")]);
        cmd.args(["probe", "connect", "--timeout-ms", &timeout_ms, &target]);
        let out = netns::run(&mut cmd)?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.contains("\"ok\":true"))
    }

    /// Runs podctl against `node`'s daemons and the cluster's ipamd.
    pub fn podctl(&self, node: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut cmd = cmdline::podctl(
            &self.binaries.path("podctl"),
            &self.bgpd_socket(node),
            &self.ipamd.socket(),
            &self.policy_socket(node),
            args,
        );
        cmd.stdin(Stdio::null());
        cmd.output().map_err(|e| LabError::Spawn {
            command: format!("podctl {}", args.join(" ")),
            reason: e.to_string(),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for daemons in self.nodes.values_mut() {
            for child in [daemons.bgpd.as_mut(), daemons.policy.as_mut()]
                .into_iter()
                .flatten()
            {
                cmdline::stop(child, STOP_GRACE);
            }
        }
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        // Rules, ipsets and routes live in the node namespaces, which the
        // lab removes next.
    }
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    fs::write(path, text).map_err(|e| LabError::io(path, e))
}
