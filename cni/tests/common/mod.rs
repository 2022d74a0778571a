// A node for CNI tests: its own network namespace (an uplink with a default
// route, the node's addresses on lo), a real podroute-ipamd on a Unix socket
// in a temporary folder, pod namespaces, and the plugin run exactly as a
// runtime runs it (CNI_* environment, config on stdin) inside the node's
// namespace. Everything is removed on drop, also when a test fails.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use podroute_lab::netns;
use serde_json::{Value, json};

pub const CNI: &str = env!("CARGO_BIN_EXE_podroute-cni");
/// The node's own addresses (on its lo), what pods ping.
pub const NODE_V4: &str = "192.0.2.10";
pub const NODE_V6: &str = "2001:db8::10";
/// The uplink's MTU: pods must get it when the config sets none.
pub const UPLINK_MTU: u32 = 1450;
pub const NODE_NAME: &str = "node-a";
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: v4
spec:
  cidr: 10.96.0.0/16
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

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The podroute-ipamd binary, built beside this crate's binary by a
/// workspace build.
pub fn ipamd_binary() -> PathBuf {
    let path = Path::new(CNI).with_file_name("podroute-ipamd");
    assert!(
        path.exists(),
        "{} not found: build the workspace (cargo build --workspace) first",
        path.display()
    );
    path
}

/// A node namespace, its ipamd and its pods.
pub struct Node {
    pub ns: String,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    ipamd: Option<Child>,
    pods: Vec<String>,
}

impl Node {
    /// A node whose ipamd serves `POOLS`.
    pub fn start() -> Node {
        Node::with_pools(POOLS)
    }

    pub fn with_pools(pools: &str) -> Node {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("pcni-{}-{n}-node", std::process::id());
        netns::add(&ns).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ipamd.sock");
        let mut node = Node {
            ns,
            dir,
            socket,
            ipamd: None,
            pods: Vec::new(),
        };
        node.setup_namespace();
        std::fs::write(node.dir.path().join("pools.yaml"), pools).unwrap();
        node.start_ipamd();
        node
    }

    fn setup_namespace(&self) {
        let ns = self.ns.as_str();
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &format!("{NODE_V4}/32"), "dev", "lo"],
            vec!["addr", "add", &format!("{NODE_V6}/128"), "dev", "lo"],
            // No dummy driver on every kernel: a veth pair stands in for
            // the uplink.
            vec![
                "link", "add", "uplink0", "mtu", "1450", "type", "veth", "peer", "name", "uplink1",
                "mtu", "1450",
            ],
            vec!["link", "set", "uplink0", "up"],
            vec!["link", "set", "uplink1", "up"],
            vec!["route", "add", "default", "dev", "uplink0"],
        ] {
            let mut full = vec!["-n", ns];
            full.extend(args.iter().copied());
            netns::ip(&full).unwrap();
        }
    }

    pub fn start_ipamd(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ipamd.log"))
            .unwrap();
        let child = Command::new(ipamd_binary())
            .arg("--admin-socket")
            .arg(&self.socket)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--manifests")
            .arg(self.dir.path().join("pools.yaml"))
            .arg("--release-cooldown")
            .arg("0")
            // Started in the test's (the host's) namespace beside other
            // tests' ipamds: a free metrics port, never the default 9642.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.ipamd = Some(child);
        // Ready when STATUS says so: the plugin's own view of ipamd.
        let until = Instant::now() + DEADLINE;
        while !self.cni("STATUS", &self.conf("1.1.0", json!({})), &[]).ok {
            assert!(
                Instant::now() < until,
                "ipamd did not start:\n{}",
                self.ipamd_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop_ipamd(&mut self) {
        if let Some(mut child) = self.ipamd.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    pub fn ipamd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ipamd.log")).unwrap_or_default()
    }

    /// A network configuration for this node, with `extra` fields merged.
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        let mut conf = json!({
            "cniVersion": version,
            "name": "podnet",
            "type": "podroute-cni",
            "ipamd": {"endpoint": format!("unix://{}", self.socket.display())},
            "nodeName": NODE_NAME,
        });
        if let (Some(base), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        conf
    }

    /// A new, empty pod namespace; returns its name.
    pub fn pod_namespace(&mut self, tag: &str) -> String {
        let name = format!("{}-{tag}", self.ns.trim_end_matches("-node"));
        netns::add(&name).unwrap();
        self.pods.push(name.clone());
        name
    }

    /// Runs the plugin in the node's namespace with `command`, `conf` on
    /// stdin, and `env` (CNI_COMMAND and CNI_PATH added).
    pub fn cni(&self, command: &str, conf: &Value, env: &[(&str, String)]) -> CniRun {
        run_cni(&self.ns, command, &conf.to_string(), env)
    }

    /// ADD/DEL/CHECK environment for pod `pod_ns` (a namespace name) as
    /// Kubernetes pod `namespace/name` with container `container`.
    pub fn pod_env(
        &self,
        pod_ns: &str,
        container: &str,
        namespace: &str,
        name: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_CONTAINERID", container.to_owned()),
            ("CNI_NETNS", format!("/run/netns/{pod_ns}")),
            ("CNI_IFNAME", "eth0".to_owned()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID=uid-{name}"
                ),
            ),
        ]
    }

    /// `ip ARGS` in the node's namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.ns.as_str()];
        full.extend(args);
        netns::ip(&full).unwrap()
    }

    /// Names of the links in the node's namespace.
    pub fn links(&self) -> Vec<String> {
        links_in(&self.ns)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_ipamd();
        for pod in self.pods.drain(..) {
            let _ = netns::remove(&pod, Duration::from_secs(2));
        }
        let _ = netns::remove(&self.ns, Duration::from_secs(2));
    }
}

/// What one plugin run printed and how it exited.
#[derive(Debug)]
pub struct CniRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CniRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts an error result with `code` and returns its msg.
    pub fn error(&self, code: u64) -> String {
        assert!(
            !self.ok,
            "expected error {code}, got success: {}",
            self.stdout
        );
        let json = self.json();
        assert_eq!(json["code"], code, "{json}");
        json["msg"].as_str().unwrap().to_owned()
    }

    pub fn success(&self) -> &Self {
        assert!(self.ok, "plugin failed: {} {}", self.stdout, self.stderr);
        self
    }
}

/// Runs the plugin in `ns` the way a runtime does.
pub fn run_cni(ns: &str, command: &str, stdin: &str, env: &[(&str, String)]) -> CniRun {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, CNI]);
    run_command(cmd, command, stdin, env)
}

/// Runs the plugin binary at `path` in the test's own namespace (only for
/// commands that change nothing: VERSION).
pub fn run_cni_binary(path: &Path, command: &str, stdin: &str) -> CniRun {
    run_command(Command::new(path), command, stdin, &[])
}

fn run_command(cmd: Command, command: &str, stdin: &str, env: &[(&str, String)]) -> CniRun {
    let Output {
        status,
        stdout,
        stderr,
    } = podroute_lab::cni::invoke(cmd, command, stdin, env).unwrap();
    CniRun {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Link names in namespace `ns`.
pub fn links_in(ns: &str) -> Vec<String> {
    let out = netns::ip(&["-n", ns, "-o", "link", "show"]).unwrap();
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `argv` in `ns`; Ok(stdout) when it exits 0.
pub fn exec_in(ns: &str, argv: &[&str]) -> Result<String, String> {
    let out = netns::command_in(ns, argv).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{argv:?} in {ns}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// One ping from `ns` to `target` (a 2 s deadline per try), retried until
/// `DEADLINE`.
pub fn ping(ns: &str, target: &str) -> Result<(), String> {
    let until = Instant::now() + DEADLINE;
    loop {
        match exec_in(ns, &["ping", "-c", "1", "-W", "2", target]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= until => return Err(e),
            Err(_) => {}
        }
    }
}

/// The pod address (without prefix) of family `v` (4 or 6) in an ADD result.
pub fn address_of(result: &Value, v: u8) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let address = ip["address"].as_str()?;
        let plain = address.split('/').next()?;
        let is_v6 = plain.contains(':');
        ((v == 6) == is_v6).then(|| plain.to_owned())
    })
}
