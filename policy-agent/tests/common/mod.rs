// The truth-table lab: two node namespaces joined by a veth, one real
// podroute-ipamd, pods wired by the real CNI plugin exactly as a runtime
// calls it, a `podlab probe serve` in every pod, and a manifests folder
// describing the same cluster for the policy agents. `probe_matrix` probes
// every pod from every other pod at once; `wait_for_matrix` polls until the
// matrix is the expected one. Everything (processes, namespaces, the temp
// folder) goes on drop, also when a test fails.
//
// Binaries are found beside the test executable in target/debug: build
// them first with `cargo build -p podroute-ipam -p podroute-cni -p podroute-lab`.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use podroute_lab::netns;
pub use podroute_lab::probe::Protocol;
use podroute_lab::probe::Target;
use serde_json::{Value, json};

pub const AGENT: &str = env!("CARGO_BIN_EXE_podroute-policy-agent");
/// The two nodes, as named in `spec.nodeName` and to the agents.
pub const NODES: [&str; 2] = ["n1", "n2"];
/// Each node's address on the link between them, by node.
const LINK_V4: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const LINK_V6: [&str; 2] = ["2001:db8::1", "2001:db8::2"];
/// The ports every pod serves unless told otherwise (the upstream e2e's).
pub const PORTS: [u16; 2] = [80, 81];
/// Per probe: long enough for a first packet's ARP/ND on a busy 2-core
/// machine, short enough that a blocked cell costs little. A flow is
/// either answered or dropped; the timeout only bounds the wait.
pub const PROBE_TIMEOUT_MS: u64 = 800;
/// How long setup steps (ipamd up, a probe server bound) may take.
pub const SETUP_DEADLINE: Duration = Duration::from_secs(30);
/// Grace a process gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Differences a failed comparison lists one per line (the grid shows all).
const MAX_LISTED: usize = 40;

const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: v4
spec:
  cidr: 10.240.0.0/16
---
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: v6
spec:
  cidr: fd00:240::/48
";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One pod of the lab.
#[derive(Debug)]
pub struct Pod {
    /// "namespace/name": the key in a `Matrix`.
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Its network namespace, `<prefix>-<namespace>-<name>`.
    pub netns: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub v4: IpAddr,
    pub v6: IpAddr,
}

impl Pod {
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// (from "ns/pod", to "ns/pod", protocol, port).
pub type Cell = (String, String, Protocol, u16);

/// Which flows of one family got through: one cell per ordered pair of
/// distinct pods and probed (protocol, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub family: Family,
    pub cells: BTreeMap<Cell, bool>,
}

/// `got` against `expected`, printed as a grid marking the differences.
pub struct MatrixDiff<'a> {
    pub got: &'a Matrix,
    pub expected: &'a Matrix,
}

/// The lab. Drop removes all of it.
pub struct Lab {
    /// `pt<pid>-<n>`: the start of every namespace name of this lab.
    pub prefix: String,
    dir: tempfile::TempDir,
    /// Every namespace made, pods first, so drop removes all.
    namespaces_made: Vec<String>,
    /// Node namespaces, by node name.
    nodes: BTreeMap<String, String>,
    ipamd: Option<Child>,
    servers: Vec<Child>,
    agents: Vec<Child>,
    pods: BTreeMap<String, Pod>,
    /// Kubernetes namespaces and their labels (without the automatic
    /// `kubernetes.io/metadata.name`).
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// A sibling binary of the test executable (target/debug/NAME).
pub fn sibling_binary(name: &str) -> PathBuf {
    let path = Path::new(AGENT).with_file_name(name);
    assert!(
        path.exists(),
        "{} not found: build it first (cargo build -p podroute-ipam -p podroute-cni -p podroute-lab)",
        path.display()
    );
    path
}

impl Lab {
    /// Two nodes joined by a veth, forwarding on, and an ipamd serving a
    /// dual-stack pool pair. No pods yet.
    pub fn new() -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab {
            prefix: format!("pt{}-{n}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
            namespaces_made: Vec::new(),
            nodes: BTreeMap::new(),
            ipamd: None,
            servers: Vec::new(),
            agents: Vec::new(),
            pods: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        };
        fs::create_dir(lab.manifests_dir()).unwrap();
        lab.make_nodes();
        lab.start_ipamd();
        lab
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The folder the agents read (`--manifests`).
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// The network namespace of node `node` ("n1" or "n2").
    pub fn node_ns(&self, node: &str) -> &str {
        self.nodes
            .get(node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    pub fn pod(&self, id: &str) -> &Pod {
        self.pods.get(id).unwrap_or_else(|| panic!("no pod {id}"))
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// Runs `argv` in node `node`'s namespace; its stdout, or a panic
    /// with its stderr.
    pub fn node_exec(&self, node: &str, argv: &[&str]) -> String {
        exec_in(self.node_ns(node), argv)
    }

    fn make_nodes(&mut self) {
        let names: Vec<String> = NODES
            .iter()
            .map(|node| format!("{}-{node}", self.prefix))
            .collect();
        for (node, ns) in NODES.iter().zip(&names) {
            // Recorded only once made: drop must never remove a namespace
            // that was someone else's.
            netns::add(ns).unwrap();
            self.namespaces_made.push(ns.clone());
            self.nodes.insert((*node).to_owned(), ns.clone());
            // No DAD on the link: its link-local addresses, which neighbour
            // discovery between the nodes needs, are usable at once instead
            // of after a second or two of tentative state.
            exec_in(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ],
            );
            netns::ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
        }
        netns::ip(&[
            "-n", &names[0], "link", "add", "to-n2", "type", "veth", "peer", "name", "to-n1",
            "netns", &names[1],
        ])
        .unwrap();
        for (i, (ns, dev)) in names.iter().zip(["to-n2", "to-n1"]).enumerate() {
            let v4 = format!("{}/24", LINK_V4[i]);
            let v6 = format!("{}/64", LINK_V6[i]);
            netns::ip(&["-n", ns, "addr", "add", &v4, "dev", dev]).unwrap();
            netns::ip(&["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]).unwrap();
            netns::ip(&["-n", ns, "link", "set", dev, "up"]).unwrap();
        }
        // IPv6 starts on a link only once the kernel has seen its carrier
        // come up, which it may note up to a second late; until then the
        // link has no link-local address and neighbour discovery between
        // the nodes goes unanswered. Wait for both ends.
        for (ns, dev) in names.iter().zip(["to-n2", "to-n1"]) {
            netns::wait_until(
                &format!("a link-local address on {dev} in {ns}"),
                SETUP_DEADLINE,
                || {
                    netns::ip(&[
                        "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
                    ])
                    .is_ok_and(|out| out.contains("fe80") && !out.contains("tentative"))
                },
            )
            .unwrap();
        }
    }

    fn ipamd_socket(&self) -> PathBuf {
        self.dir.path().join("ipamd.sock")
    }

    fn start_ipamd(&mut self) {
        let pools = self.dir.path().join("pools.yaml");
        fs::write(&pools, POOLS).unwrap();
        let log = fs::File::create(self.dir.path().join("ipamd.log")).unwrap();
        // ipamd listens only on its Unix socket, so it can run in the test's
        // own namespace, as it runs off-node in a cluster.
        let child = Command::new(sibling_binary("podroute-ipamd"))
            .arg("--admin-socket")
            .arg(self.ipamd_socket())
            .arg("--data-dir")
            .arg(self.dir.path().join("ipamd"))
            .arg("--manifests")
            .arg(&pools)
            .args(["--release-cooldown", "0"])
            // The test's namespace is the host's: a free metrics port.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.ipamd = Some(child);
        // Ready when the plugin's STATUS says so: the plugin's own view.
        let until = Instant::now() + SETUP_DEADLINE;
        loop {
            let status = self.cni(NODES[0], "STATUS", &[]);
            if status.status.success() {
                break;
            }
            if let Some(exit) = self.ipamd.as_mut().unwrap().try_wait().unwrap() {
                panic!("ipamd exited ({exit}):\n{}", self.log("ipamd.log"));
            }
            assert!(
                Instant::now() < until,
                "ipamd not ready after {SETUP_DEADLINE:?}:\n{}",
                self.log("ipamd.log")
            );
            std::thread::sleep(netns::POLL_INTERVAL);
        }
    }

    /// A file of the lab's folder (a log), or "" when absent.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn cni_conf(&self, node: &str) -> Value {
        json!({
            "cniVersion": "1.1.0",
            "name": "podroute",
            "type": "podroute-cni",
            "ipamd": {"endpoint": format!("unix://{}", self.ipamd_socket().display())},
            "nodeName": node,
        })
    }

    /// Runs the plugin in `node`'s namespace the way a runtime does:
    /// CNI_* in a clean environment, the configuration on stdin.
    fn cni(&self, node: &str, command: &str, env: &[(&str, String)]) -> std::process::Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.node_ns(node)])
            .arg(sibling_binary("podroute-cni"));
        podroute_lab::cni::invoke(cmd, command, &self.cni_conf(node).to_string(), env).unwrap()
    }

    /// Declares Kubernetes namespace `name` with `labels` (plus
    /// `kubernetes.io/metadata.name`, as the API server adds) and writes
    /// its manifest; again, it replaces the labels. `add_pod` declares a
    /// missing namespace with no labels.
    pub fn set_namespace_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        let labels = to_map(labels);
        self.namespaces.insert(name.to_owned(), labels.clone());
        let mut all = labels;
        all.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": all},
        });
        self.write_manifest(&format!("namespace-{name}"), &manifest);
    }

    /// Creates pod `ns/name` on `node`: its namespace wired by the CNI
    /// plugin (pod identity in CNI_ARGS, so the host veth gets its name
    /// from it), routes to its addresses on the other node, a probe server
    /// answering on `ports` (TCP and UDP), and its Pod manifest.
    pub fn add_pod(
        &mut self,
        node: &str,
        ns: &str,
        name: &str,
        labels: &[(&str, &str)],
        ports: &[u16],
    ) -> &Pod {
        let id = format!("{ns}/{name}");
        assert!(!self.pods.contains_key(&id), "pod {id} exists already");
        let node_index = NODES
            .iter()
            .position(|n| *n == node)
            .unwrap_or_else(|| panic!("no node {node}"));
        if !self.namespaces.contains_key(ns) {
            self.set_namespace_labels(ns, &[]);
        }

        let pod_ns = format!("{}-{ns}-{name}", self.prefix);
        netns::add(&pod_ns).unwrap();
        self.namespaces_made.insert(0, pod_ns.clone());
        netns::ip(&["-n", &pod_ns, "link", "set", "lo", "up"]).unwrap();
        let container = pod_ns.clone();
        let env = [
            ("CNI_CONTAINERID", container.clone()),
            ("CNI_NETNS", format!("/run/netns/{pod_ns}")),
            ("CNI_IFNAME", "eth0".to_owned()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container};K8S_POD_UID=uid-{ns}-{name}"
                ),
            ),
        ];
        let out = self.cni(node, "ADD", &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "CNI ADD of {id} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_str(&stdout).unwrap();
        let v4 = address_of(&result, Family::V4).unwrap_or_else(|| panic!("no IPv4: {result}"));
        let v6 = address_of(&result, Family::V6).unwrap_or_else(|| panic!("no IPv6: {result}"));

        // The other node reaches the pod through this node's link address,
        // as a BGP route would make it.
        let other = self.nodes[NODES[1 - node_index]].clone();
        let v4_route = format!("{v4}/32");
        let v6_route = format!("{v6}/128");
        netns::ip(&[
            "-n",
            &other,
            "route",
            "add",
            &v4_route,
            "via",
            LINK_V4[node_index],
        ])
        .unwrap();
        netns::ip(&[
            "-n",
            &other,
            "-6",
            "route",
            "add",
            &v6_route,
            "via",
            LINK_V6[node_index],
        ])
        .unwrap();

        self.start_server(&pod_ns, ports);
        let pod = Pod {
            id: id.clone(),
            namespace: ns.to_owned(),
            name: name.to_owned(),
            node: node.to_owned(),
            netns: pod_ns,
            labels: to_map(labels),
            ports: ports.to_vec(),
            v4,
            v6,
        };
        self.write_pod_manifest(&pod);
        self.pods.insert(id.clone(), pod);
        &self.pods[&id]
    }

    /// Replaces pod `id`'s labels (in its manifest too).
    pub fn set_pod_labels(&mut self, id: &str, labels: &[(&str, &str)]) {
        let pod = self
            .pods
            .get_mut(id)
            .unwrap_or_else(|| panic!("no pod {id}"));
        pod.labels = to_map(labels);
        let pod = &self.pods[id];
        self.write_pod_manifest(pod);
    }

    /// `podlab probe serve` in `pod_ns`, waited for until it has bound
    /// every socket.
    fn start_server(&mut self, pod_ns: &str, ports: &[u16]) {
        let out_path = self.dir.path().join(format!("{pod_ns}.serve.out"));
        let err_path = self.dir.path().join(format!("{pod_ns}.serve.log"));
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let child = netns::command_in(pod_ns, &[sibling_binary("podlab").to_str().unwrap()])
            .args(["probe", "serve", "--ports", &ports.join(",")])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        self.servers.push(child);
        let until = Instant::now() + SETUP_DEADLINE;
        // It prints one line once every socket is bound.
        while !fs::read_to_string(&out_path)
            .unwrap_or_default()
            .starts_with("{\"listening\"")
        {
            let child = self.servers.last_mut().unwrap();
            if let Some(exit) = child.try_wait().unwrap() {
                panic!(
                    "probe server in {pod_ns} exited ({exit}): {}",
                    fs::read_to_string(&err_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < until,
                "probe server in {pod_ns} not listening after {SETUP_DEADLINE:?}"
            );
            std::thread::sleep(netns::POLL_INTERVAL);
        }
    }

    /// Writes manifest `name`.yaml into the manifests folder, atomically
    /// (written beside it, then renamed in), so a watcher never reads half
    /// a file. Names `namespace-*` and `pod-*` are the harness's own.
    pub fn apply_yaml(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!("{name}.yaml.tmp"));
        fs::write(&tmp, yaml).unwrap();
        fs::rename(&tmp, self.manifests_dir().join(format!("{name}.yaml"))).unwrap();
    }

    /// Removes manifest `name`.yaml.
    pub fn delete_yaml(&self, name: &str) {
        fs::remove_file(self.manifests_dir().join(format!("{name}.yaml"))).unwrap();
    }

    fn write_manifest(&self, name: &str, manifest: &Value) {
        self.apply_yaml(name, &serde_yaml_ng::to_string(manifest).unwrap());
    }

    /// The pod as the API server would return it: containers with the
    /// upstream e2e's port names (`serve-80-tcp`, ...), Running, its IPs.
    fn write_pod_manifest(&self, pod: &Pod) {
        let containers: Vec<Value> = pod
            .ports
            .iter()
            .flat_map(|port| {
                [Protocol::Tcp, Protocol::Udp].map(|protocol| {
                    json!({
                        "name": format!("cont-{port}-{protocol}"),
                        "image": "podlab-probe",
                        "ports": [{
                            "name": format!("serve-{port}-{protocol}"),
                            "containerPort": port,
                            "protocol": protocol.to_string().to_uppercase(),
                        }],
                    })
                })
            })
            .collect();
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "namespace": pod.namespace,
                "labels": pod.labels,
                "uid": format!("uid-{}-{}", pod.namespace, pod.name),
            },
            "spec": {"nodeName": pod.node, "containers": containers},
            "status": {
                "phase": "Running",
                "podIP": pod.v4.to_string(),
                "podIPs": [{"ip": pod.v4.to_string()}, {"ip": pod.v6.to_string()}],
            },
        });
        self.write_manifest(&format!("pod-{}-{}", pod.namespace, pod.name), &manifest);
    }

    /// Starts `podroute-policy-agent` in each node's namespace on the
    /// manifests folder, with `extra_args`, and waits until each serves its
    /// admin socket. Stopped on drop.
    pub fn start_agents(&mut self, extra_args: &[&str]) {
        let manifests = self.manifests_dir();
        for node in NODES {
            self.start_agent(node, &manifests, extra_args);
        }
    }

    /// Starts `podroute-policy-agent` in node `node`'s namespace on
    /// `manifests` (which need not exist yet), with `extra_args`, and waits
    /// until it serves its admin socket, `<lab>/<node>.sock`; it logs to
    /// `agent-<node>.log`. In the node's namespace, its metrics port is the
    /// default one on that namespace's loopback, which no other lab shares.
    /// Stopped on drop.
    pub fn start_agent(&mut self, node: &str, manifests: &Path, extra_args: &[&str]) {
        let socket = self.agent_socket(node);
        let log_name = format!("agent-{node}.log");
        let log = fs::File::create(self.dir.path().join(&log_name)).unwrap();
        let child = netns::command_in(self.node_ns(node), &[AGENT])
            .args(["--node", node, "--manifests"])
            .arg(manifests)
            .arg("--admin-socket")
            .arg(&socket)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents.push(child);
        let until = Instant::now() + SETUP_DEADLINE;
        while !socket.exists() {
            let child = self.agents.last_mut().unwrap();
            if let Some(exit) = child.try_wait().unwrap() {
                panic!("agent on {node} exited ({exit}):\n{}", self.log(&log_name));
            }
            assert!(
                Instant::now() < until,
                "agent on {node} has no admin socket after {SETUP_DEADLINE:?}:\n{}",
                self.log(&log_name)
            );
            std::thread::sleep(netns::POLL_INTERVAL);
        }
    }

    /// The admin socket of node `node`'s agent.
    pub fn agent_socket(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("{node}.sock"))
    }

    /// Kills every agent at once (SIGKILL, as a crash would) and waits for
    /// them: what they programmed stays in the kernel.
    pub fn kill_agents(&mut self) {
        for mut child in self.agents.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A matrix over this lab's pods with `value` for each cell.
    pub fn matrix(
        &self,
        family: Family,
        probes: &[(Protocol, u16)],
        mut value: impl FnMut(&Pod, &Pod, Protocol, u16) -> bool,
    ) -> Matrix {
        let mut matrix = Matrix::new(family);
        for from in self.pods.values() {
            for to in self.pods.values().filter(|to| to.id != from.id) {
                for &(protocol, port) in probes {
                    let ok = value(from, to, protocol, port);
                    matrix.set(&from.id, &to.id, protocol, port, ok);
                }
            }
        }
        matrix
    }

    /// Probes every (protocol, port) of `probes` from every pod to every
    /// other pod over `family`: all sources at once, each running one
    /// `podlab probe connect` with all its targets.
    pub fn probe_matrix(&self, probes: &[(Protocol, u16)], family: Family) -> Matrix {
        let podlab = sibling_binary("podlab");
        let podlab = podlab.to_str().unwrap();
        let timeout = PROBE_TIMEOUT_MS.to_string();
        let mut running = Vec::new();
        for from in self.pods.values() {
            // What each printed target means.
            let mut cells: HashMap<String, Cell> = HashMap::new();
            for to in self.pods.values().filter(|to| to.id != from.id) {
                for &(protocol, port) in probes {
                    let target = Target {
                        protocol,
                        addr: SocketAddr::new(to.ip(family), port),
                    };
                    cells.insert(
                        target.to_string(),
                        (from.id.clone(), to.id.clone(), protocol, port),
                    );
                }
            }
            if cells.is_empty() {
                continue;
            }
            let child = netns::command_in(
                &from.netns,
                &[podlab, "probe", "connect", "--timeout-ms", &timeout],
            )
            .args(cells.keys())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            running.push((from, cells, child));
        }
        let mut matrix = Matrix::new(family);
        for (from, mut cells, child) in running {
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "probe connect from {} failed: {}",
                from.id,
                String::from_utf8_lossy(&out.stderr)
            );
            for line in stdout.lines() {
                let outcome: Value = serde_json::from_str(line).unwrap();
                let target = outcome["target"].as_str().unwrap();
                let cell = cells
                    .remove(target)
                    .unwrap_or_else(|| panic!("{} probed {target}, never asked", from.id));
                matrix.cells.insert(cell, outcome["ok"].as_bool().unwrap());
            }
            assert!(
                cells.is_empty(),
                "{}: no outcome for {:?}",
                from.id,
                cells.keys()
            );
        }
        matrix
    }

    /// Probes (the expected matrix's family and probes) until the result
    /// equals `expected`; panics with the differences once `deadline` has
    /// passed. Returns the matching matrix.
    pub fn wait_for_matrix(&self, expected: &Matrix, deadline: Duration) -> Matrix {
        let probes: Vec<(Protocol, u16)> = expected.probes().into_iter().collect();
        let start = Instant::now();
        for round in 1.. {
            let got = self.probe_matrix(&probes, expected.family);
            if got == *expected {
                // Shown with --nocapture or on a later failure: how long
                // convergence took, for whoever tunes the deadlines.
                eprintln!(
                    "{} matrix as expected after {round} probe round(s), {:?}",
                    expected.family,
                    start.elapsed()
                );
                return got;
            }
            if start.elapsed() >= deadline {
                // The agents' last words usually say why.
                let mut logs = String::new();
                for node in NODES {
                    let log = self.log(&format!("agent-{node}.log"));
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    logs.push_str(&format!("--- agent on {node}, last lines:\n"));
                    for line in tail.iter().rev() {
                        logs.push_str(line);
                        logs.push('\n');
                    }
                }
                panic!(
                    "{} matrix still differs after {deadline:?} ({round} probe rounds):\n{}\n{logs}",
                    expected.family,
                    got.diff(expected)
                );
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// Stops `child`: SIGTERM, and SIGKILL if it is still there after
    /// `STOP_GRACE`. Errors are ignored: it runs in drop.
    fn stop(child: &mut Child) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + STOP_GRACE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(netns::POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.agents.iter_mut().chain(&mut self.servers) {
            Lab::stop(child);
        }
        // Pods first (their veths go with them), then the nodes; each
        // remove also stops anything still running inside.
        for ns in &self.namespaces_made {
            if let Err(e) = netns::remove(ns, Duration::from_secs(2)) {
                eprintln!("lab drop: {e}");
            }
        }
        if let Some(child) = self.ipamd.as_mut() {
            Lab::stop(child);
        }
    }
}

impl Matrix {
    pub fn new(family: Family) -> Matrix {
        Matrix {
            family,
            cells: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, from: &str, to: &str, protocol: Protocol, port: u16, ok: bool) {
        self.cells
            .insert((from.to_owned(), to.to_owned(), protocol, port), ok);
    }

    pub fn get(&self, from: &str, to: &str, protocol: Protocol, port: u16) -> Option<bool> {
        self.cells
            .get(&(from.to_owned(), to.to_owned(), protocol, port))
            .copied()
    }

    /// The (protocol, port) pairs probed.
    pub fn probes(&self) -> BTreeSet<(Protocol, u16)> {
        self.cells
            .keys()
            .map(|(_, _, p, port)| (*p, *port))
            .collect()
    }

    /// Cells where `self` and `expected` differ: (cell, got, expected).
    pub fn differences(&self, expected: &Matrix) -> Vec<(Cell, Option<bool>, Option<bool>)> {
        let keys: BTreeSet<&Cell> = self.cells.keys().chain(expected.cells.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let (got, want) = (self.cells.get(key), expected.cells.get(key));
                (got != want).then(|| (key.clone(), got.copied(), want.copied()))
            })
            .collect()
    }

    pub fn diff<'a>(&'a self, expected: &'a Matrix) -> MatrixDiff<'a> {
        MatrixDiff {
            got: self,
            expected,
        }
    }
}

impl fmt::Display for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_grids(f, self, None)?;
        writeln!(f, "(. open, x blocked, - same pod or not probed)")
    }
}

impl fmt::Display for MatrixDiff<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_grids(f, self.got, Some(self.expected))?;
        writeln!(
            f,
            "(. open, x blocked, as expected; O open but expected blocked; X blocked but expected open; ? probed on one side only; - same pod or not probed)"
        )?;
        let show = |v: Option<bool>| match v {
            Some(true) => "open",
            Some(false) => "blocked",
            None => "not probed",
        };
        let differences = self.got.differences(self.expected);
        for ((from, to, protocol, port), got, want) in differences.iter().take(MAX_LISTED) {
            writeln!(
                f,
                "  {from} -> {to} {protocol}/{port}: {}, expected {}",
                show(*got),
                show(*want)
            )?;
        }
        if differences.len() > MAX_LISTED {
            writeln!(f, "  ... and {} more", differences.len() - MAX_LISTED)?;
        }
        Ok(())
    }
}

/// One grid per (protocol, port): a row per source pod, a column per
/// destination; with `expected`, differences stand out in upper case.
fn write_grids(f: &mut fmt::Formatter<'_>, got: &Matrix, expected: Option<&Matrix>) -> fmt::Result {
    let all = || {
        got.cells
            .keys()
            .chain(expected.into_iter().flat_map(|e| e.cells.keys()))
    };
    let pods: BTreeSet<&str> = all()
        .flat_map(|(from, to, _, _)| [from.as_str(), to.as_str()])
        .collect();
    let probes: BTreeSet<(Protocol, u16)> = all().map(|(_, _, p, port)| (*p, *port)).collect();
    let width = pods.iter().map(|p| p.len()).max().unwrap_or(0);
    for (protocol, port) in probes {
        writeln!(
            f,
            "{protocol}/{port} {} (rows: from, columns: to)",
            got.family
        )?;
        write!(f, "{:width$}", "")?;
        for to in &pods {
            write!(f, " {to:>width$}")?;
        }
        writeln!(f)?;
        for from in &pods {
            write!(f, "{from:width$}")?;
            for to in &pods {
                let key = ((*from).to_owned(), (*to).to_owned(), protocol, port);
                let g = got.cells.get(&key).copied();
                let mark = match expected.map(|e| e.cells.get(&key).copied()) {
                    None => match g {
                        Some(true) => ".",
                        Some(false) => "x",
                        None => "-",
                    },
                    Some(e) => match (g, e) {
                        (Some(true), Some(true)) => ".",
                        (Some(false), Some(false)) => "x",
                        (Some(true), Some(false)) => "O",
                        (Some(false), Some(true)) => "X",
                        (None, None) => "-",
                        _ => "?",
                    },
                };
                write!(f, " {mark:>width$}")?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}

/// The pod address of `family` in an ADD result.
fn address_of(result: &Value, family: Family) -> Option<IpAddr> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let address = ip["address"].as_str()?;
        let ip: IpAddr = address.split('/').next()?.parse().ok()?;
        (ip.is_ipv6() == (family == Family::V6)).then_some(ip)
    })
}

fn to_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs `argv` in `ns`; its stdout, or a panic naming the command.
pub fn exec_in(ns: &str, argv: &[&str]) -> String {
    let out =
        netns::run(&mut netns::command_in(ns, argv)).unwrap_or_else(|e| panic!("in {ns}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces x, y, z (labelled `ns: <name>`) with pods a, b, c (labelled
/// `pod: <name>`), alternating between the nodes so each node holds pods
/// of every namespace.
pub fn xyz_lab() -> Lab {
    let mut lab = Lab::new();
    for ns in ["x", "y", "z"] {
        lab.set_namespace_labels(ns, &[("ns", ns)]);
    }
    let mut i = 0;
    for ns in ["x", "y", "z"] {
        for pod in ["a", "b", "c"] {
            lab.add_pod(NODES[i % 2], ns, pod, &[("pod", pod)], &PORTS);
            i += 1;
        }
    }
    lab
}
