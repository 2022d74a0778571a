// Runs the real podroute-ipamd binary for integration tests: its own folder
// (store, socket, manifests, log), killed on drop, waited for by polling
// the admin socket with a deadline. Tests run in the host's network
// namespace, side by side: each ipamd serves its metrics on a port of its
// own (127.0.0.1:0, found with GetStatus), never on the default 9642.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podroute_proto::admin_socket::connect_unix;
use podroute_proto::common::v1::{GetStatusRequest, GetVersionRequest};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::metrics::Scrape;
use tonic::transport::Channel;

pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// A free port for this ipamd's metrics unless a test picks its own.
const METRICS_ANY_PORT: [&str; 2] = ["--metrics-listen", "127.0.0.1:0"];

/// `args` with a metrics address of their own, unless they name one.
fn with_metrics_port(args: &[String]) -> Vec<String> {
    let mut all = args.to_vec();
    if !args.iter().any(|a| a.starts_with("--metrics-listen")) {
        all.extend(METRICS_ANY_PORT.iter().map(|a| (*a).to_owned()));
    }
    all
}

pub const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: v4
spec:
  cidr: 10.96.0.0/12
  blockSize: 26
---
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: v6
spec:
  cidr: fd00:10:96::/108
  blockSize: 122
";

/// One ipamd process.
pub struct Ipamd {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
}

impl Ipamd {
    /// Starts ipamd with `args` plus its socket in `dir`; waits until it
    /// answers.
    pub async fn start(dir: &Path, name: &str, args: &[String]) -> Ipamd {
        let mut ipamd = Ipamd {
            child: None,
            socket: dir.join(format!("{name}.sock")),
            log: dir.join(format!("{name}.log")),
            args: args.to_vec(),
        };
        ipamd.spawn();
        ipamd.wait_ready().await;
        ipamd
    }

    /// An embedded-store ipamd on `dir/data` with `POOLS` (plus `extra`
    /// manifests) and the given extra flags.
    pub async fn embedded(dir: &Path, extra_manifests: &str, flags: &[&str]) -> Ipamd {
        let manifests = dir.join("manifests.yaml");
        std::fs::write(&manifests, format!("{POOLS}---\n{extra_manifests}")).unwrap();
        let mut args = vec![
            "--data-dir".to_owned(),
            dir.join("data").display().to_string(),
            "--manifests".to_owned(),
            manifests.display().to_string(),
        ];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        Ipamd::start(dir, "ipamd", &args).await
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_podroute-ipamd"))
            .arg("--admin-socket")
            .arg(&self.socket)
            .arg("--log-level")
            .arg("info")
            .args(with_metrics_port(&self.args))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("ipamd exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(channel) = connect_unix(&self.socket).await
                && IpamClient::new(channel)
                    .get_version(GetVersionRequest {})
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ipamd did not answer within {START_DEADLINE:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn channel(&self) -> Channel {
        connect_unix(&self.socket).await.unwrap()
    }

    pub async fn client(&self) -> IpamClient<Channel> {
        IpamClient::new(self.channel().await)
    }

    /// Where it serves /metrics, /livez and /readyz (from GetStatus).
    pub async fn metrics_address(&self) -> SocketAddr {
        let status = self
            .client()
            .await
            .get_status(GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        let health = status.health.expect("GetStatus has a health");
        health
            .metrics_address
            .parse()
            .unwrap_or_else(|_| panic!("bad metrics address {:?}", health.metrics_address))
    }

    /// GET `path` on its metrics port: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let address = self.metrics_address().await;
        podroute_proto::observe::http_get(address, path)
            .await
            .unwrap()
    }

    /// /metrics, parsed strictly (every sample under a TYPE).
    pub async fn scrape(&self) -> Scrape {
        let (code, text) = self.http_get("/metrics").await;
        assert_eq!(code, 200, "{text}");
        podroute_proto::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts the same ipamd again (after kill9).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Ipamd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs ipamd to completion with `args` and returns its exit status and
/// stderr (for start-up refusals).
pub fn run_to_exit(dir: &Path, args: &[String]) -> (std::process::ExitStatus, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_podroute-ipamd"))
        .arg("--admin-socket")
        .arg(dir.join("refused.sock"))
        .args(with_metrics_port(args))
        .output()
        .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `probe` until it returns Some, or panics after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
