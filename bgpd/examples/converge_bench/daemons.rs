// The speakers under test, one per node: podroute-bgpd (on the shared
// cluster.yaml with --node/--ipamd, or on per-node files with a BGPPeer per
// other node and `originate` kept by the driver's confd loop) and BIRD 2 set
// up as Calico's bird.cfg template sets it (iBGP full mesh, graceful restart,
// kernel protocol with `scan time 2`, connect delay 2 s, retry 5 s, error
// wait 5-30 s, the node's blocks as blackhole statics from an included file).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{ListPeersRequest, SessionState};
use tokio::process::{Child, Command};

use crate::kernel::Prefix;
use crate::mesh::Mesh;

/// Our AS and BIRD's: one iBGP mesh.
const ASN: u32 = 64512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// podroute-bgpd --config cluster.yaml --node nK --ipamd unix://...
    Cluster,
    /// podroute-bgpd on per-node BGPPeer files; the driver's confd loop
    /// writes the node's blocks into `originate` and sends SIGHUP.
    Peers,
    /// BIRD 2 with the anchor confd loop.
    Bird,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Cluster => "podroute (cluster.yaml, --ipamd)",
            Kind::Peers => "podroute (per-node BGPPeers, originate via file + SIGHUP)",
            Kind::Bird => "anchor: BIRD 2 + confd emulation (watch, render, birdc configure)",
        }
    }
}

/// What the speakers are started with.
pub struct Setup {
    pub kind: Kind,
    pub bgpd: PathBuf,
    pub ipamd_socket: PathBuf,
    pub bfd: bool,
    pub dir: PathBuf,
}

/// One node's speaker.
pub struct Daemon {
    pub node: usize,
    child: Option<Child>,
    socket: PathBuf,
}

impl Setup {
    /// Writes the configuration files for every node.
    pub fn write_configs(&self, mesh: &Mesh) -> anyhow::Result<()> {
        match self.kind {
            Kind::Cluster => fs::write(self.cluster_file(), self.cluster_yaml(mesh))?,
            Kind::Peers => {
                for node in 0..mesh.nodes.len() {
                    self.write_peers_config(mesh, node, &[])?;
                }
            }
            Kind::Bird => {
                for node in 0..mesh.nodes.len() {
                    fs::write(
                        self.node_file(mesh, node, "conf"),
                        self.bird_conf(mesh, node),
                    )?;
                    self.write_bird_blocks(mesh, node, &[])?;
                }
            }
        }
        Ok(())
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.dir.join("cluster.yaml")
    }

    pub fn node_file(&self, mesh: &Mesh, node: usize, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", mesh.nodes[node].name))
    }

    /// Starts node `node`'s speaker (logs append to `<node>.log`).
    pub fn start(&self, mesh: &Mesh, node: usize) -> anyhow::Result<Daemon> {
        let n = &mesh.nodes[node];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_file(mesh, node, "log"))?;
        let socket = self.node_file(mesh, node, "sock");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &n.ns]);
        match self.kind {
            Kind::Cluster | Kind::Peers => {
                let config = match self.kind {
                    Kind::Cluster => self.cluster_file(),
                    _ => self.node_file(mesh, node, "yaml"),
                };
                cmd.arg(&self.bgpd)
                    .arg("--config")
                    .arg(config)
                    .arg("--admin-socket")
                    .arg(&socket)
                    .args(["--log-level", "info", "--node", &n.name]);
                if self.kind == Kind::Cluster {
                    cmd.arg("--ipamd")
                        .arg(format!("unix://{}", self.ipamd_socket.display()));
                }
            }
            Kind::Bird => {
                // -R: graceful restart recovery after start, as calico-node starts BIRD.
                cmd.args(["bird", "-R", "-f", "-c"])
                    .arg(self.node_file(mesh, node, "conf"))
                    .arg("-s")
                    .arg(&socket)
                    .arg("-P")
                    .arg(self.node_file(mesh, node, "pid"));
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the speaker of {}", n.name))?;
        Ok(Daemon {
            node,
            child: Some(child),
            socket,
        })
    }

    /// Renders a node's blocks for its speaker and makes it reread them
    /// (the confd loops; not used by Kind::Cluster).
    pub async fn publish_blocks(
        &self,
        mesh: &Mesh,
        node: usize,
        blocks: &[Prefix],
        daemon_pid: Option<u32>,
    ) -> anyhow::Result<()> {
        match self.kind {
            Kind::Cluster => Ok(()),
            Kind::Peers => {
                self.write_peers_config(mesh, node, blocks)?;
                if let Some(pid) = daemon_pid {
                    let status = Command::new("kill")
                        .args(["-HUP", &pid.to_string()])
                        .status()
                        .await?;
                    anyhow::ensure!(status.success(), "kill -HUP {pid}");
                }
                Ok(())
            }
            Kind::Bird => {
                self.write_bird_blocks(mesh, node, blocks)?;
                let out = Command::new("birdc")
                    .arg("-s")
                    .arg(self.node_file(mesh, node, "sock"))
                    .arg("configure")
                    .output()
                    .await?;
                let text = String::from_utf8_lossy(&out.stdout);
                anyhow::ensure!(
                    out.status.success() && text.contains("Reconfigur"),
                    "birdc configure on {}: {text}",
                    mesh.nodes[node].name
                );
                Ok(())
            }
        }
    }

    fn cluster_yaml(&self, mesh: &Mesh) -> String {
        let mut y = String::from(
            "# converge_bench: one BGPConfiguration and every node; the node-to-node\n\
             # mesh is on by default.\n\
             apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n",
        );
        let _ = writeln!(y, "  asNumber: {ASN}");
        if self.bfd {
            y.push_str("  bfd: {minRx: 300, minTx: 300, multiplier: 3}\n");
        }
        for n in &mesh.nodes {
            let _ = write!(
                y,
                "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata:\n  name: {}\n  labels: {{bench: converge}}\nspec: {{addresses: [{}]}}\n",
                n.name, n.addr
            );
        }
        y
    }

    fn write_peers_config(
        &self,
        mesh: &Mesh,
        node: usize,
        blocks: &[Prefix],
    ) -> anyhow::Result<()> {
        let me = &mesh.nodes[node];
        let mut y = String::from(
            "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n",
        );
        let _ = writeln!(y, "  asNumber: {ASN}\n  routerID: {}", me.addr);
        let list: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
        let _ = writeln!(y, "  originate: [{}]", list.join(", "));
        if self.bfd {
            y.push_str("  bfd: {minRx: 300, minTx: 300, multiplier: 3}\n");
        }
        for other in mesh.nodes.iter().filter(|o| o.name != me.name) {
            // The mesh's rule: the lower address connects, the higher listens.
            let passive = other.addr < me.addr;
            let _ = write!(
                y,
                "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {}}}\nspec: {{peerIP: {}, asNumber: {ASN}, passive: {passive}}}\n",
                other.name, other.addr
            );
        }
        write_atomic(&self.node_file(mesh, node, "yaml"), &y)
    }

    fn bird_conf(&self, mesh: &Mesh, node: usize) -> String {
        let me = &mesh.nodes[node];
        let mut c = String::new();
        let _ = writeln!(
            c,
            "# converge_bench: {} as Calico's bird.cfg template sets a node up.",
            me.name
        );
        let _ = writeln!(c, "router id {};", me.addr);
        let _ = writeln!(
            c,
            "log \"{}\" all;",
            self.node_file(mesh, node, "bird.log").display()
        );
        c.push_str(
            "protocol device { scan time 2; }\n\
             protocol direct { ipv4; interface -\"v*\", \"eth0\"; }\n\
             protocol kernel {\n  ipv4 { import none; export filter { if source = RTS_STATIC || source = RTS_BGP then accept; reject; }; };\n  persist;\n  scan time 2;\n  graceful restart;\n  merge paths on;\n}\n",
        );
        let _ = writeln!(
            c,
            "include \"{}\";",
            self.node_file(mesh, node, "blocks").display()
        );
        if self.bfd {
            // Calico's template says `multihop` for every BGP peer, so BIRD's BFD
            // sessions are multihop ones: they take the `multihop` options.
            c.push_str(
                "protocol bfd {\n  debug { states };\n  interface \"eth0\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n  multihop { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n}\n",
            );
        }
        let _ = writeln!(
            c,
            "template bgp mesh {{\n  local {} as {ASN};\n  source address {};",
            me.addr, me.addr
        );
        c.push_str(
            "  debug { states };\n  multihop;\n  ipv4 { gateway recursive; import all; export filter { if source = RTS_STATIC then accept; reject; }; add paths on; };\n  graceful restart;\n  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n",
        );
        if self.bfd {
            c.push_str("  bfd on;\n");
        }
        c.push_str("}\n");
        for other in mesh.nodes.iter().filter(|o| o.name != me.name) {
            let _ = write!(
                c,
                "protocol bgp {} from mesh {{ neighbor {} as {ASN};",
                other.name, other.addr
            );
            // Calico's mesh: the higher address connects, the lower listens
            // ("Mesh is unidirectional, peer will connect to us").
            if other.addr > me.addr {
                c.push_str(" passive on;");
            }
            c.push_str(" }\n");
        }
        c
    }

    fn write_bird_blocks(&self, mesh: &Mesh, node: usize, blocks: &[Prefix]) -> anyhow::Result<()> {
        let mut c = String::from("protocol static blocks {\n  ipv4;\n");
        for b in blocks {
            let _ = writeln!(c, "  route {b} blackhole;");
        }
        c.push_str("}\n");
        write_atomic(&self.node_file(mesh, node, "blocks"), &c)
    }
}

impl Daemon {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Sessions Established, and whether the daemon still runs.
    /// Sessions Established; fails if the daemon stopped.
    pub async fn established(&mut self, kind: Kind) -> anyhow::Result<usize> {
        self.count(kind, false).await
    }

    /// BFD sessions Up at the configured 300 ms interval (BFD starts slow,
    /// at 1 s, and only moves to its timers once Up).
    pub async fn bfd_up(&mut self, kind: Kind) -> anyhow::Result<usize> {
        self.count(kind, true).await
    }

    async fn count(&mut self, kind: Kind, bfd: bool) -> anyhow::Result<usize> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            anyhow::bail!("the speaker of node {} exited: {status}", self.node + 1);
        }
        match kind {
            Kind::Bird => {
                let out = Command::new("birdc")
                    .arg("-s")
                    .arg(&self.socket)
                    .args(if bfd {
                        &["show", "bfd", "sessions"][..]
                    } else {
                        &["show", "protocols"][..]
                    })
                    .output()
                    .await?;
                let text = String::from_utf8_lossy(&out.stdout);
                Ok(text
                    .lines()
                    .filter(|l| {
                        if bfd {
                            l.contains(" Up ") && l.contains(" 0.300 ")
                        } else {
                            l.contains(" BGP ") && l.contains("Established")
                        }
                    })
                    .count())
            }
            Kind::Cluster | Kind::Peers => {
                let Ok(channel) = podroute_proto::admin_socket::connect_unix(&self.socket).await
                else {
                    return Ok(0);
                };
                let peers = BgpAdminClient::new(channel)
                    .list_peers(ListPeersRequest {})
                    .await?
                    .into_inner()
                    .peers;
                Ok(peers
                    .iter()
                    .filter(|p| {
                        if bfd {
                            p.bfd
                                .as_ref()
                                .is_some_and(|b| b.state == "up" && b.tx_interval_ms == 300)
                        } else {
                            p.state == SessionState::Established as i32
                        }
                    })
                    .count())
            }
        }
    }
}

/// Writes through a temporary file and a rename, as confd does: a reader
/// never sees half a file.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// How often session states are looked at while waiting for them.
pub const STATE_POLL: Duration = Duration::from_millis(10);
