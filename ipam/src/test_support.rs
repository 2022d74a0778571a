// Test support: a real etcd (Debian's etcd-server) on loopback, with free ports
// and its data in a temporary directory, for the etcd store's tests and, with the
// "test-support" feature, for integration tests and benches. It panics with a
// clear message when etcd is missing: those tests must fail, never skip.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian's etcd-server puts the server.
pub const ETCD_BINARY: &str = "/usr/bin/etcd";
/// How long etcd may take to elect itself leader and answer /health.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// A port found free may be taken by someone else before etcd binds it.
const START_ATTEMPTS: usize = 3;
const MEMBER_NAME: &str = "podroute-test";

/// One etcd member; killed, and its data removed, on drop.
pub struct EtcdServer {
    child: Option<Child>,
    dir: TempDir,
    client_port: u16,
}

impl EtcdServer {
    /// Starts etcd and returns once it answers `/health`. Panics with the reason
    /// (and etcd's log) when it cannot.
    pub fn start() -> Self {
        assert!(
            Path::new(ETCD_BINARY).exists(),
            "{ETCD_BINARY} is missing: install the Debian package etcd-server \
             (scripts/setup.sh does) to run the etcd store tests"
        );
        let dir = tempfile::Builder::new()
            .prefix("podroute-etcd-")
            .tempdir()
            .expect("a temporary directory for etcd");
        let mut server = EtcdServer {
            child: None,
            dir,
            client_port: 0,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let peer_port = free_port();
            server.client_port = free_port();
            server.child = Some(spawn(server.dir.path(), server.client_port, peer_port));
            match server.wait_healthy() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = format!("{e}\n--- etcd log ---\n{}", server.log());
                    server.kill();
                    let _ = std::fs::remove_dir_all(server.dir.path().join("data"));
                }
            }
        }
        panic!("etcd did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// The client URL, e.g. "http://127.0.0.1:40123".
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Stops etcd at once (SIGKILL), for tests of a store that lost it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls `/health` until it says true, etcd exits, or the deadline passes.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("etcd exited with {status}"));
            }
            if health(self.client_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("etcd not healthy within {START_DEADLINE:?}"));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, client_port: u16, peer_port: u16) -> Child {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log = File::create(dir.join("etcd.log")).expect("etcd's log file");
    let log2 = log.try_clone().expect("etcd's log file");
    Command::new(ETCD_BINARY)
        .arg("--name")
        .arg(MEMBER_NAME)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("{MEMBER_NAME}={peer}")])
        .args(["--initial-cluster-state", "new"])
        .args(["--logger", "zap", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ETCD_BINARY}: {e}"))
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether etcd answers `GET /health` with `"health":"true"` (it does once it
/// has a leader).
fn health(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}
