// podroute-ipamd for the run, and the "confd" loops: per node, watch
// WatchNodeBlocks(node) and, on every new list, render the node's blocks for
// its speaker and make it reread them. For BIRD that is Calico's path (confd
// renders bird.cfg from the datastore, then `birdc configure`); changes that
// arrive while a render runs are taken together by the next one, as confd's
// template resource does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, WatchNodeBlocksRequest};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::daemons::Setup;
use crate::kernel::Prefix;
use crate::mesh::Mesh;

/// How long ipamd gets to open its socket.
const IPAMD_START: Duration = Duration::from_secs(20);

/// podroute-ipamd on its embedded store, in the host's namespace; the
/// speakers reach its Unix socket by path.
pub struct Ipamd {
    child: Child,
    pub socket: PathBuf,
    client: IpamClient<Channel>,
}

impl Ipamd {
    pub async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Ipamd> {
        let pools = dir.join("pools.yaml");
        std::fs::write(
            &pools,
            "# Every allocation from `bench` claims a fresh /32 block for its node.\n\
             apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: bench}\n\
             spec: {cidr: 10.96.0.0/20, blockSize: 32}\n---\n\
             # The GR measurement's pods.\n\
             apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: pods}\n\
             spec: {cidr: 10.97.0.0/24, blockSize: 26}\n",
        )?;
        let socket = dir.join("ipamd.sock");
        let log = std::fs::File::create(dir.join("ipamd.log"))?;
        let child = Command::new(binary)
            .arg("--admin-socket")
            .arg(&socket)
            .arg("--data-dir")
            .arg(dir.join("ipam"))
            .arg("--manifests")
            .arg(&pools)
            .args(["--log-level", "warn", "--metrics-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .context("starting podroute-ipamd")?;
        let until = Instant::now() + IPAMD_START;
        let channel = loop {
            if let Ok(channel) = podroute_proto::admin_socket::connect_unix(&socket).await {
                break channel;
            }
            anyhow::ensure!(
                Instant::now() < until,
                "podroute-ipamd did not answer on {}",
                socket.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Ipamd {
            child,
            socket,
            client: IpamClient::new(channel),
        })
    }

    /// One address for `node` from `pool`: the new block (from a /32 pool
    /// always a fresh one), the address, and when the answer arrived.
    pub async fn allocate(
        &self,
        node: &str,
        pool: &str,
        handle: &str,
    ) -> anyhow::Result<(Prefix, Prefix, Instant)> {
        let answer = self
            .client
            .clone()
            .allocate(AllocateRequest {
                node: node.to_string(),
                handle: handle.to_string(),
                pod_namespace: "bench".into(),
                pod_name: handle.to_string(),
                pools: vec![pool.to_string()],
                ..Default::default()
            })
            .await?
            .into_inner();
        let at = Instant::now();
        let first = answer
            .addresses
            .first()
            .context("Allocate answered no address")?;
        let block = Prefix::parse(&first.block).context("a block that is not an IPv4 prefix")?;
        let address = Prefix::parse(&first.address)
            .or_else(|| Prefix::parse(&format!("{}/32", first.address)))
            .context("an address that is not IPv4")?;
        Ok((block, address, at))
    }

    pub fn client(&self) -> IpamClient<Channel> {
        self.client.clone()
    }
}

impl Drop for Ipamd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The confd loops of every node; aborted on drop.
pub struct Confd {
    tasks: Vec<JoinHandle<()>>,
    /// The speakers' pids, for SIGHUP (per-node podroute files); updated on a restart.
    pub pids: Arc<Mutex<Vec<Option<u32>>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Confd {
    pub fn start(
        setup: Arc<Setup>,
        mesh: Arc<Mesh>,
        ipamd: &Ipamd,
        pids: Vec<Option<u32>>,
    ) -> Confd {
        let pids = Arc::new(Mutex::new(pids));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for node in 0..mesh.nodes.len() {
            let (tx, rx) = watch::channel(None::<Vec<Prefix>>);
            let mut client = ipamd.client();
            let name = mesh.nodes[node].name.clone();
            let errors2 = errors.clone();
            tasks.push(tokio::spawn(async move {
                let stream = client
                    .watch_node_blocks(WatchNodeBlocksRequest { node: name.clone() })
                    .await;
                let mut stream = match stream {
                    Ok(s) => s.into_inner(),
                    Err(e) => return note(&errors2, format!("WatchNodeBlocks({name}): {e}")),
                };
                loop {
                    match stream.message().await {
                        Ok(Some(update)) => {
                            let blocks = update
                                .blocks
                                .iter()
                                .filter(|b| !b.disable_bgp_export)
                                .filter_map(|b| Prefix::parse(&b.cidr))
                                .collect();
                            let _ = tx.send(Some(blocks));
                        }
                        Ok(None) => {
                            return note(&errors2, format!("WatchNodeBlocks({name}) ended"));
                        }
                        Err(e) => return note(&errors2, format!("WatchNodeBlocks({name}): {e}")),
                    }
                }
            }));
            let (setup2, mesh2, pids2, errors2) =
                (setup.clone(), mesh.clone(), pids.clone(), errors.clone());
            tasks.push(tokio::spawn(render_loop(
                setup2, mesh2, node, rx, pids2, errors2,
            )));
        }
        Confd {
            tasks,
            pids,
            errors,
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for Confd {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn render_loop(
    setup: Arc<Setup>,
    mesh: Arc<Mesh>,
    node: usize,
    mut rx: watch::Receiver<Option<Vec<Prefix>>>,
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    while rx.changed().await.is_ok() {
        let Some(blocks) = rx.borrow_and_update().clone() else {
            continue;
        };
        let pid = pids.lock().ok().and_then(|p| p[node]);
        if let Err(e) = setup.publish_blocks(&mesh, node, &blocks, pid).await {
            note(&errors, format!("{e:#}"));
        }
    }
}

fn note(errors: &Mutex<Vec<String>>, error: String) {
    eprintln!("converge_bench: {error}");
    if let Ok(mut e) = errors.lock() {
        e.push(error);
    }
}
