// The benchmark's cluster: N node namespaces on one L2 bridge (a bridge in
// its own namespace, one veth per node), 10.0.0.K/24 on node K's eth0, and
// pod-like namespaces behind a node (a /32 from IPAM, a link-local gateway,
// a host route on the node, as podroute-cni wires a pod). Dropping the Mesh
// stops every process in its namespaces and deletes them.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use podroute_lab::netns;

/// Gateway address a pod sees on its link (as podroute-cni sets it up).
const POD_GATEWAY: &str = "169.254.1.1";
/// How long stopped processes get before SIGKILL when a mesh is removed.
const STOP_GRACE: Duration = Duration::from_millis(300);

pub struct Node {
    pub name: String,
    pub ns: String,
    pub addr: Ipv4Addr,
}

impl Node {
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.ns)
    }
}

pub struct Mesh {
    pub prefix: String,
    pub nodes: Vec<Node>,
    bridge: String,
    pods: Mutex<Vec<String>>,
}

impl Mesh {
    /// Creates `count` nodes named n1.. in namespaces `<prefix>-n1`...
    pub fn create(prefix: &str, count: usize) -> anyhow::Result<Mesh> {
        let mut mesh = Mesh {
            prefix: prefix.to_string(),
            nodes: Vec::new(),
            bridge: format!("{prefix}-br"),
            pods: Mutex::new(Vec::new()),
        };
        netns::add(&mesh.bridge)?;
        ip(&["-n", &mesh.bridge, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &mesh.bridge, "link", "set", "br0", "up"])?;
        for k in 1..=count {
            let index = u8::try_from(k).context("too many nodes")?;
            let node = Node {
                name: format!("n{k}"),
                ns: format!("{prefix}-n{k}"),
                addr: Ipv4Addr::new(10, 0, 0, index),
            };
            netns::add(&node.ns)?;
            mesh.nodes.push(node);
            let node = &mesh.nodes[k - 1];
            let port = format!("p{k}");
            ip(&[
                "-n",
                &mesh.bridge,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &node.ns,
            ])?;
            ip(&[
                "-n",
                &mesh.bridge,
                "link",
                "set",
                &port,
                "master",
                "br0",
                "up",
            ])?;
            ip(&["-n", &node.ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &node.ns,
                "addr",
                "add",
                &format!("{}/24", node.addr),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &node.ns, "link", "set", "eth0", "up"])?;
            sysctl(&node.ns, "net.ipv4.ip_forward=1")?;
            sysctl(&node.ns, "net.ipv4.conf.all.rp_filter=0")?;
        }
        Ok(mesh)
    }

    /// Indexes of every node but `node`.
    pub fn others(&self, node: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|n| *n != node).collect()
    }

    /// A pod namespace `<prefix>-<name>` behind node `node` with `addr`.
    pub fn add_pod(&self, node: usize, name: &str, addr: Ipv4Addr) -> anyhow::Result<String> {
        let ns = format!("{}-{name}", self.prefix);
        let node_ns = self.nodes[node].ns.clone();
        netns::add(&ns)?;
        if let Ok(mut pods) = self.pods.lock() {
            pods.push(ns.clone());
        }
        let host = format!("v{name}");
        ip(&[
            "-n", &node_ns, "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(&[
            "-n",
            &node_ns,
            "addr",
            "add",
            &format!("{POD_GATEWAY}/32"),
            "dev",
            &host,
        ])?;
        ip(&["-n", &node_ns, "link", "set", &host, "up"])?;
        ip(&[
            "-n",
            &node_ns,
            "route",
            "add",
            &format!("{addr}/32"),
            "dev",
            &host,
        ])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            POD_GATEWAY,
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            POD_GATEWAY,
            "dev",
            "eth0",
        ])?;
        Ok(ns)
    }

    /// Sets node `node`'s only link down or up.
    pub fn set_link(&self, node: usize, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.nodes[node].ns, "link", "set", "eth0", state])?;
        Ok(())
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let pods = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        let all = pods
            .iter()
            .chain(self.nodes.iter().map(|n| &n.ns))
            .chain(std::iter::once(&self.bridge));
        for ns in all {
            if let Err(e) = netns::remove(ns, STOP_GRACE) {
                eprintln!("converge_bench: removing {ns}: {e}");
            }
        }
    }
}

pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    Ok(netns::ip(args)?)
}

fn sysctl(ns: &str, setting: &str) -> anyhow::Result<()> {
    netns::run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", setting]))?;
    Ok(())
}
