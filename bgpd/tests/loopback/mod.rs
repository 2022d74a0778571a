// podroute-bgpd run on the loopback for tests that need no namespaces:
// started from a configuration text, killed (with its log printed on
// failure) when dropped, and asked through its admin socket.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podroute_proto::admin_socket::connect_unix;
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{GetPeerRequest, ListRoutesRequest, Peer, RouteDirection};

pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct Bgpd {
    child: Child,
    log: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Bgpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!(
                "--- podroute-bgpd log ({}) ---\n{log}",
                self.config.display()
            );
        }
    }
}

impl Bgpd {
    /// Starts bgpd with `config` (YAML documents) and waits for its socket.
    pub fn start(config: &str) -> Bgpd {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("bgpd.yaml");
        std::fs::write(&config_path, config).unwrap();
        let socket = dir.path().join("bgpd.sock");
        let log = dir.path().join("bgpd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_podroute-bgpd"))
            .arg("--config")
            .arg(&config_path)
            .arg("--admin-socket")
            .arg(&socket)
            // The host's routing table is not ours to change.
            .arg("--no-kernel")
            // Nor the host's metrics port: tests run side by side.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--log-level", "podroute_bgpd=debug,info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut bgpd = Bgpd {
            child,
            log,
            config: config_path,
            socket,
            _dir: dir,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        // A bgpd that exits (a port taken, a refused configuration) is
        // reported at once with its log, not after the deadline.
        wait_until("bgpd's admin socket", || {
            assert!(bgpd.is_running(), "podroute-bgpd exited:\n{}", bgpd.log());
            bgpd.socket.exists()
        });
        bgpd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn peer(&self, address: IpAddr) -> Peer {
        self.runtime.block_on(async {
            let channel = connect_unix(&self.socket).await.unwrap();
            BgpAdminClient::new(channel)
                .get_peer(GetPeerRequest {
                    address: address.to_string(),
                })
                .await
                .unwrap()
                .into_inner()
        })
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.runtime.block_on(async {
            let channel = connect_unix(&self.socket).await.unwrap();
            BgpAdminClient::new(channel)
                .list_peers(podroute_proto::bgpd::v1::ListPeersRequest {})
                .await
                .unwrap()
                .into_inner()
                .peers
        })
    }

    /// Prefixes received from `address`.
    pub fn received(&self, address: IpAddr) -> Vec<String> {
        self.runtime.block_on(async {
            let channel = connect_unix(&self.socket).await.unwrap();
            BgpAdminClient::new(channel)
                .list_routes(ListRoutesRequest {
                    peer: address.to_string(),
                    direction: RouteDirection::Received.into(),
                    ..ListRoutesRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .routes
                .into_iter()
                .map(|r| r.prefix)
                .collect()
        })
    }
}

pub fn free_port() -> u16 {
    podroute_proto::test_port::unused_port()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
