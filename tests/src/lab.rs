// A topology brought up on this machine: one network namespace per node,
// veth pairs per link, each node's daemons started, its `exec` run. `Lab` is
// what tests hold: dropping it tears everything down, even when a test
// panics. Everything the lab makes is named from the lab's name, so two labs
// never collide, and nothing is made in the host's own namespace.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::labcluster;
use crate::netns;
use crate::role::{NodeRuntime, Role};
use crate::topology::{Endpoint, Node, NodeKind, Topology};

/// Where labs keep pid files, sockets, logs and what they created.
pub const STATE_ROOT: &str = "/run/podlab";
/// How long processes get to exit on SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to bring a topology up.
#[derive(Debug, Clone, Default)]
pub struct LabOptions {
    /// Run under this name instead of the file's `name` (tests use unique
    /// names so that parallel runs never meet).
    pub name: Option<String>,
    /// Where podroute's binaries are (target/debug): with it, a topology's
    /// cluster nodes (`labcluster`) get their daemons at `up`; without it
    /// they stay plain hosts, for tests that start daemons themselves.
    pub binaries: Option<PathBuf>,
}

impl LabOptions {
    /// A lab name no other test or process on this machine is using:
    /// `<prefix><pid>x<n>`.
    pub fn unique(prefix: &str) -> LabOptions {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        LabOptions {
            name: Some(format!("{prefix}{}x{n}", std::process::id())),
            binaries: None,
        }
    }

    /// The same, starting cluster daemons from `dir`.
    pub fn with_binaries(mut self, dir: impl Into<PathBuf>) -> LabOptions {
        self.binaries = Some(dir.into());
        self
    }
}

/// A lab that is up. Dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    topology: Topology,
    name: String,
    torn_down: bool,
}

/// What `down` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownOutcome {
    Removed,
    NotUp,
}

/// What a lab has created, kept in `<state>/state.json` so that `down`
/// removes exactly that even if the topology file changed meanwhile.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LabRecord {
    name: String,
    file: PathBuf,
    namespaces: Vec<String>,
}

impl Lab {
    /// Brings up the topology in `path` under its own name.
    pub fn up(path: impl AsRef<Path>) -> Result<Lab, LabError> {
        Lab::up_with(path, LabOptions::default())
    }

    pub fn up_with(path: impl AsRef<Path>, options: LabOptions) -> Result<Lab, LabError> {
        let topology = Topology::load(path.as_ref())?;
        Lab::start(topology, options)
    }

    /// Brings up a checked topology. A stale copy of the same lab is removed
    /// first; on any failure what was made is removed again.
    pub fn start(topology: Topology, options: LabOptions) -> Result<Lab, LabError> {
        require_root()?;
        let name = options.name.unwrap_or_else(|| topology.name.clone());
        check_lab_name(&name)?;
        for node in topology.nodes.values() {
            node.role.preflight(node)?;
        }
        // Checked before anything is made: a cluster that cannot start
        // must not leave a half lab.
        let cluster = match &options.binaries {
            Some(dir) => labcluster::ClusterPlan::from_topology(&topology, dir)?,
            None => None,
        };
        // Same name, same file: a stale copy to replace. Another file's lab
        // under this name is someone's running lab: leave it alone.
        if let Some(record) = read_record(&name)
            && record.file != topology.file
            && record.namespaces.iter().any(|ns| netns::exists(ns))
        {
            return Err(LabError::Occupied {
                lab: name,
                file: record.file,
            });
        }
        teardown(&name, topology.nodes.keys())?;
        let state_dir = state_dir(&name);
        fs::create_dir_all(&state_dir).map_err(|e| LabError::io(&state_dir, e))?;
        // From here on, an error drops `lab`, which removes what was made.
        let lab = Lab {
            topology,
            name,
            torn_down: false,
        };
        lab.build()?;
        if let Some(plan) = cluster {
            labcluster::start(&lab, &plan)?;
        }
        Ok(lab)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Makes a namespace of the lab's own beyond its nodes (a pod's),
    /// named `<lab prefix><suffix>` and recorded so that tearing the lab
    /// down removes it too. Returns its name.
    pub fn add_namespace(&self, suffix: &str) -> Result<String, LabError> {
        check_lab_name(suffix)?;
        add_lab_namespace(&self.name, suffix)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The network namespace of `node`.
    pub fn netns(&self, node: &str) -> Result<String, LabError> {
        self.runtime(node).map(|rt| rt.netns)
    }

    /// Where `node` lives on this machine.
    pub fn runtime(&self, node: &str) -> Result<NodeRuntime, LabError> {
        if !self.topology.nodes.contains_key(node) {
            return Err(LabError::UnknownNode {
                lab: self.name.clone(),
                node: node.to_string(),
                known: self
                    .topology
                    .nodes
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(node_runtime(&self.name, node))
    }

    /// A command that runs `argv` in `node`, with the node's `env`, and its
    /// own CLI (`vtysh`, `birdc`) pointed at the node's daemons.
    pub fn command(&self, node: &str, argv: &[impl AsRef<str>]) -> Result<Command, LabError> {
        let rt = self.runtime(node)?;
        let n = &self.topology.nodes[node];
        let argv: Vec<String> = argv.iter().map(|a| a.as_ref().to_string()).collect();
        let argv = n.role.rewrite_argv(&rt, &argv);
        let mut cmd = netns::command_in(&rt.netns, &argv);
        cmd.envs(&n.env);
        Ok(cmd)
    }

    /// Runs `argv` in `node` and returns its output, whatever its exit status.
    pub fn exec_output(&self, node: &str, argv: &[impl AsRef<str>]) -> Result<Output, LabError> {
        let mut cmd = self.command(node, argv)?;
        let shown = netns::show(&cmd);
        cmd.output().map_err(|e| LabError::Spawn {
            command: shown,
            reason: e.to_string(),
        })
    }

    /// Runs `argv` in `node` and returns its stdout; a non-zero exit is an
    /// error carrying stderr.
    pub fn exec(&self, node: &str, argv: &[impl AsRef<str>]) -> Result<String, LabError> {
        let out = netns::run(&mut self.command(node, argv)?)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Polls `condition` until it holds or `timeout` passes.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&Lab) -> bool,
    ) -> Result<(), LabError> {
        netns::wait_until(what, timeout, || condition(self))
    }

    /// Tears the lab down now, reporting any failure (Drop only logs it).
    pub fn down(mut self) -> Result<(), LabError> {
        self.torn_down = true;
        teardown(&self.name, self.topology.nodes.keys()).map(drop)
    }

    fn build(&self) -> Result<(), LabError> {
        let topo = &self.topology;
        let mut record = LabRecord {
            name: self.name.clone(),
            file: topo.file.clone(),
            namespaces: Vec::new(),
        };
        for node in topo.nodes.values() {
            let rt = node_runtime(&self.name, &node.name);
            netns::add(&rt.netns)?;
            record.namespaces.push(rt.netns.clone());
            write_record(&record)?;
            fs::create_dir_all(&rt.state_dir).map_err(|e| LabError::io(&rt.state_dir, e))?;
            netns::ip(&["-n", &rt.netns, "link", "set", "lo", "up"])?;
            // Every node routes: hosts forward for pods, routers for transit.
            let mut sysctls = vec![
                "net.ipv4.ip_forward=1".to_string(),
                "net.ipv6.conf.all.forwarding=1".to_string(),
            ];
            sysctls.extend(node.sysctls.iter().map(|(k, v)| format!("{k}={v}")));
            let mut argv = vec!["sysctl".to_string(), "-qw".to_string()];
            argv.extend(sysctls);
            netns::run(&mut netns::command_in(&rt.netns, &argv))?;
            if node.kind == NodeKind::Bridge {
                netns::ip(&["-n", &rt.netns, "link", "add", &node.name, "type", "bridge"])?;
                netns::ip(&["-n", &rt.netns, "link", "set", &node.name, "up"])?;
            }
        }
        for link in &topo.links {
            self.add_link(&link.a, &link.b, link.mtu)?;
        }
        // A node's exec lines up to its first call of a daemon's CLI run
        // before the daemons start (so the addresses they bind exist), the
        // rest after (so `vtysh`, `birdc` or `gobgp` find them running).
        let split = |exec: &[String]| {
            exec.iter()
                .position(|l| Role::talks_to_daemon(l))
                .unwrap_or(exec.len())
        };
        for node in topo.nodes.values() {
            self.run_exec(node, &node.exec[..split(&node.exec)])?;
        }
        for node in topo.nodes.values() {
            let rt = node_runtime(&self.name, &node.name);
            node.role.start(node, &rt)?;
        }
        for node in topo.nodes.values() {
            self.run_exec(node, &node.exec[split(&node.exec)..])?;
        }
        Ok(())
    }

    /// Runs exec lines with their output in the node's `exec.log`, not in
    /// pipes: a line that leaves something running in the background
    /// (`iperf3 -s &`) would hold a pipe open and hang `up`.
    fn run_exec(&self, node: &Node, lines: &[String]) -> Result<(), LabError> {
        let rt = node_runtime(&self.name, &node.name);
        let log_path = rt.state_dir.join("exec.log");
        for line in lines {
            let line = node.role.rewrite_shell(&rt, line);
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| LabError::io(&log_path, e))?;
            let err = log.try_clone().map_err(|e| LabError::io(&log_path, e))?;
            let status = netns::command_in(&rt.netns, &["sh", "-c", &line])
                .envs(&node.env)
                .stdin(std::process::Stdio::null())
                .stdout(log)
                .stderr(err)
                .status();
            let failure = match status {
                Ok(s) if s.success() => continue,
                Ok(s) => format!("{s}: {}", tail(&log_path)),
                Err(e) => e.to_string(),
            };
            return Err(LabError::Node {
                lab: self.name.clone(),
                node: node.name.clone(),
                reason: format!("exec `{line}` failed ({failure})"),
            });
        }
        Ok(())
    }

    /// Makes the veth pair directly inside the two namespaces: its ends
    /// never exist in the host's namespace, so names cannot clash there.
    fn add_link(&self, a: &Endpoint, b: &Endpoint, mtu: Option<u32>) -> Result<(), LabError> {
        let ns_a = node_runtime(&self.name, &a.node).netns;
        let ns_b = node_runtime(&self.name, &b.node).netns;
        netns::ip(&[
            "-n",
            &ns_a,
            "link",
            "add",
            &a.interface,
            "type",
            "veth",
            "peer",
            "name",
            &b.interface,
            "netns",
            &ns_b,
        ])?;
        for (ns, end) in [(&ns_a, a), (&ns_b, b)] {
            if let Some(mtu) = mtu {
                netns::ip(&[
                    "-n",
                    ns,
                    "link",
                    "set",
                    &end.interface,
                    "mtu",
                    &mtu.to_string(),
                ])?;
            }
            if let Some(mac) = &end.mac {
                netns::ip(&["-n", ns, "link", "set", &end.interface, "address", mac])?;
            }
            let node = &self.topology.nodes[&end.node];
            if node.kind == NodeKind::Bridge {
                netns::ip(&[
                    "-n",
                    ns,
                    "link",
                    "set",
                    &end.interface,
                    "master",
                    &node.name,
                ])?;
            }
            for addr in &end.addresses {
                let addr = addr.to_string();
                let mut args = vec!["-n", ns, "addr", "add", &addr, "dev", &end.interface];
                // Usable at once: a daemon binding it must not meet DAD's
                // tentative state.
                if addr.contains(':') {
                    args.push("nodad");
                }
                netns::ip(&args)?;
            }
            netns::ip(&["-n", ns, "link", "set", &end.interface, "up"])?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        if let Err(e) = teardown(&self.name, self.topology.nodes.keys()) {
            eprintln!("podlab: tearing down lab {}: {e}", self.name);
        }
    }
}

/// Removes lab `name`: the namespaces its record says it made and those of
/// `nodes`, whichever exist. Every namespace is tried even if one fails; the
/// state folder goes only when all did.
pub fn teardown<'a>(
    name: &str,
    nodes: impl IntoIterator<Item = &'a String>,
) -> Result<DownOutcome, LabError> {
    check_lab_name(name)?;
    let prefix = Topology::netns_prefix(name);
    let dir = state_dir(name);
    let mut namespaces: BTreeSet<String> = read_record(name)
        .map(|r| r.namespaces.into_iter().collect())
        .unwrap_or_default();
    // A record is a file anyone may have edited: only this lab's names.
    namespaces.retain(|ns| ns.starts_with(&prefix));
    for node in nodes {
        check_lab_name(node)?;
        namespaces.insert(Topology::netns_name(name, node));
    }
    let live: Vec<&String> = namespaces.iter().filter(|ns| netns::exists(ns)).collect();
    if live.is_empty() && !dir.exists() {
        return Ok(DownOutcome::NotUp);
    }
    let mut failures = Vec::new();
    for ns in live {
        if let Err(e) = netns::remove(ns, STOP_GRACE) {
            failures.push(e.to_string());
        }
    }
    if !failures.is_empty() {
        return Err(LabError::Teardown {
            lab: name.to_string(),
            failures: failures.join("; "),
        });
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    }
    Ok(DownOutcome::Removed)
}

/// Makes namespace `<lab prefix><suffix>` for lab `lab`, which is up,
/// recorded so that tearing the lab down removes it (a pod's namespace).
/// `suffix` is letters, digits, `-` and `_` (longer than node names may
/// be: no socket path is made from it). Returns its name.
pub fn add_lab_namespace(lab: &str, suffix: &str) -> Result<String, LabError> {
    check_namespace_suffix(suffix)?;
    let ns = Topology::netns_name(lab, suffix);
    // Recorded before it exists: a crash in between leaves a name that
    // teardown skips, never a namespace nobody removes.
    update_record(lab, |record| {
        if !record.namespaces.contains(&ns) {
            record.namespaces.push(ns.clone());
        }
    })?;
    netns::add(&ns)?;
    netns::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    Ok(ns)
}

/// Removes namespace `ns` of lab `lab` (its processes first) and drops it
/// from the lab's record.
pub fn remove_lab_namespace(lab: &str, ns: &str) -> Result<(), LabError> {
    if !ns.starts_with(&Topology::netns_prefix(lab)) {
        return Err(LabError::InvalidName {
            name: ns.to_string(),
            reason: format!("not a namespace of lab {lab}"),
        });
    }
    netns::remove(ns, STOP_GRACE)?;
    update_record(lab, |record| record.namespaces.retain(|n| n != ns))
}

/// Whether lab `name` is up: its record exists and names a live namespace.
pub fn is_up(name: &str) -> bool {
    read_record(name).is_some_and(|r| r.namespaces.iter().any(|ns| netns::exists(ns)))
}

/// The topology file lab `name` was brought up from.
pub fn lab_file(name: &str) -> Option<PathBuf> {
    read_record(name).map(|r| r.file)
}

/// The labs that are up from topology file `file` (an absolute path).
pub fn labs_from_file(file: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(STATE_ROOT) else {
        return Vec::new();
    };
    let mut labs: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| check_lab_name(name).is_ok())
        .filter(|name| read_record(name).is_some_and(|r| r.file == file) && is_up(name))
        .collect();
    labs.sort();
    labs
}

/// Pod namespaces hold a Kubernetes namespace and name: up to 63 each.
const MAX_NAMESPACE_SUFFIX_LEN: usize = 160;

fn check_namespace_suffix(suffix: &str) -> Result<(), LabError> {
    let ok = !suffix.is_empty()
        && suffix.len() <= MAX_NAMESPACE_SUFFIX_LEN
        && suffix.starts_with(|c: char| c.is_ascii_alphanumeric())
        && suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidName {
            name: suffix.to_string(),
            reason: format!(
                "a namespace suffix is 1 to {MAX_NAMESPACE_SUFFIX_LEN} letters, digits, `-` and `_`"
            ),
        })
    }
}

/// Lab and node names become paths under STATE_ROOT that `down` deletes:
/// only checked names, so no `..` or `/` ever reaches a path.
pub fn check_lab_name(name: &str) -> Result<(), LabError> {
    crate::topology::check_name(name).map_err(|reason| LabError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// The last lines of a log, for an error message.
pub(crate) fn tail(path: &Path) -> String {
    const TAIL_LINES: usize = 5;
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
    if tail.is_empty() {
        format!("no output; see {}", path.display())
    } else {
        format!("{tail}; see {}", path.display())
    }
}

/// The state folder of lab `name`.
pub fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

/// Where `node` of lab `lab` lives.
pub fn node_runtime(lab: &str, node: &str) -> NodeRuntime {
    NodeRuntime {
        lab: lab.to_string(),
        netns: Topology::netns_name(lab, node),
        state_dir: state_dir(lab).join(node),
    }
}

fn read_record(name: &str) -> Option<LabRecord> {
    let text = fs::read_to_string(state_dir(name).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Read-modify-write of lab `name`'s record under a lock: podlab calls
/// for one lab may run at once (pods created in parallel).
fn update_record(name: &str, change: impl FnOnce(&mut LabRecord)) -> Result<(), LabError> {
    let lock_path = state_dir(name).join("lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| LabError::io(&lock_path, e))?;
    lock.lock().map_err(|e| LabError::io(&lock_path, e))?;
    let mut record = read_record(name).ok_or_else(|| LabError::NotUp {
        lab: name.to_string(),
    })?;
    change(&mut record);
    write_record(&record)
}

fn write_record(record: &LabRecord) -> Result<(), LabError> {
    let path = state_dir(&record.name).join("state.json");
    let text = serde_json::to_string_pretty(record).map_err(|e| LabError::Io {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // Written beside and renamed: a reader never sees half a record.
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LabError::io(&path, e))
}

/// Fails early, before anything is made, when not root.
pub fn require_root() -> Result<(), LabError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    match euid {
        Some("0") => Ok(()),
        _ => Err(LabError::NotRoot),
    }
}
