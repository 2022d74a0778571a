// Test support: a real etcd (Debian's etcd-server) on loopback, with free ports
// and its data in a temporary directory, plain or with mutual TLS (certificates
// made by the openssl command), for the etcd store's tests and, with the
// "test-support" feature, for integration tests and benches. It panics with a
// clear message when etcd is missing: those tests must fail, never skip.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::store::{EtcdIdentity, EtcdTls};

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
    tls: Option<TlsPem>,
}

/// PEM text a client of a TLS etcd needs: the CA, and a certificate it accepts.
#[derive(Clone)]
pub struct TlsPem {
    pub ca: Vec<u8>,
    pub client_cert: Vec<u8>,
    pub client_key: Vec<u8>,
}

impl TlsPem {
    pub fn etcd_tls(&self) -> EtcdTls {
        EtcdTls {
            ca_pem: self.ca.clone(),
            identity: Some(EtcdIdentity {
                cert_pem: self.client_cert.clone(),
                key_pem: self.client_key.clone(),
            }),
        }
    }
}

impl EtcdServer {
    /// Starts a plain-HTTP etcd and returns once it answers `/health`. Panics with
    /// the reason (and etcd's log) when it cannot.
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// As `start`, with TLS and client certificates required, as a production
    /// etcd runs; `tls()` has what a client needs.
    pub fn start_tls() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        assert!(
            Path::new(ETCD_BINARY).exists(),
            "{ETCD_BINARY} is missing: install the Debian package etcd-server \
             (scripts/setup.sh does) to run the etcd store tests"
        );
        let dir = tempfile::Builder::new()
            .prefix("podroute-etcd-")
            .tempdir()
            .expect("a temporary directory for etcd");
        let tls = tls.then(|| make_certs(dir.path()));
        let mut server = EtcdServer {
            child: None,
            dir,
            client_port: 0,
            tls,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let (peer_port, health_port) = (free_port(), free_port());
            server.client_port = free_port();
            server.child = Some(server.spawn(peer_port, health_port));
            match server.wait_healthy(health_port) {
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

    /// The client URL, e.g. "http://127.0.0.1:40123" ("https://" with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// What a client needs to reach a `start_tls` etcd.
    pub fn tls(&self) -> Option<&TlsPem> {
        self.tls.as_ref()
    }

    /// Stops etcd at once (SIGKILL), for tests of a store that lost it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    fn spawn(&self, peer_port: u16, health_port: u16) -> Child {
        let dir = self.dir.path();
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{peer_port}");
        // /health on a plain port whatever the client side speaks.
        let metrics = format!("http://127.0.0.1:{health_port}");
        let log = File::create(dir.join("etcd.log")).expect("etcd's log file");
        let log2 = log.try_clone().expect("etcd's log file");
        let mut cmd = Command::new(ETCD_BINARY);
        cmd.arg("--name")
            .arg(MEMBER_NAME)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("{MEMBER_NAME}={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--listen-metrics-urls", &metrics])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if self.tls.is_some() {
            cmd.arg("--cert-file")
                .arg(dir.join("server.pem"))
                .arg("--key-file")
                .arg(dir.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(dir.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run {ETCD_BINARY}: {e}"))
    }

    /// Polls `/health` until it says true, etcd exits, or the deadline passes.
    fn wait_healthy(&mut self, health_port: u16) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("etcd exited with {status}"));
            }
            if health(health_port) {
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

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    podroute_proto::test_port::unused_port()
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

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate,
/// written into `dir` (ca.pem, server.pem/key, client.pem/key).
fn make_certs(dir: &Path) -> TlsPem {
    const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!("req -x509 -days 2 -subj /CN=podroute-test-ca {EC} -keyout ca.key -out ca.pem"),
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let ext = format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n");
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("an openssl extension file");
        openssl(
            dir,
            &format!("req -subj /CN={name} {EC} -keyout {name}.key -out {name}.csr"),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -days 2 -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                 -extfile {name}.ext -out {name}.pem"
            ),
        );
    }
    let read = |f: &str| std::fs::read(dir.join(f)).expect("a certificate openssl wrote");
    TlsPem {
        ca: read("ca.pem"),
        client_cert: read("client.pem"),
        client_key: read("client.key"),
    }
}

/// Runs `openssl` in `dir` with `args` (split at whitespace: none has a space).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed for the TLS etcd): {e}"));
    assert!(
        out.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
