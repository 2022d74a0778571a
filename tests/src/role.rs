// What a node runs, told from its image as containerlab users name them:
// an FRR image runs zebra + bgpd (and what its `daemons` file enables), a
// BIRD image runs bird, a GoBGP image runs gobgpd, each with its own pid
// file, control socket and logs under the node's state folder, so any number
// of instances share this machine. Our own image runs our daemons.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::LabError;
use crate::netns;
use crate::topology::Node;

/// Where FRR's daemons live on Debian.
pub const FRR_DIR: &str = "/usr/lib/frr";
/// The FRR config a containerlab FRR node binds.
pub const FRR_CONF: &str = "/etc/frr/frr.conf";
/// FRR's list of enabled daemons (`bgpd=yes`).
pub const FRR_DAEMONS: &str = "/etc/frr/daemons";
/// Daemons podlab starts for FRR when no `daemons` file is bound.
pub const FRR_DEFAULT_DAEMONS: &[&str] = &["bgpd", "staticd"];
/// FRR daemons podlab knows how to start, in start order after zebra.
const FRR_KNOWN_DAEMONS: &[&str] = &[
    "mgmtd", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd", "ldpd", "nhrpd",
    "eigrpd", "babeld", "sharpd", "pbrd", "bfdd", "fabricd", "vrrpd", "pathd", "staticd",
];
/// How long a daemon gets to open its control socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Frr,
    Bird,
    Gobgp,
    /// Our own image. The daemons arrive with the BGP, IPAM and policy
    /// issues; until then such a node is a plain host.
    Podroute,
    /// A plain host: only its `exec` commands (and `cmd`, if any) run.
    Linux,
    Bridge,
}

/// A node's place on this machine while its lab is up.
#[derive(Debug, Clone)]
pub struct NodeRuntime {
    pub lab: String,
    pub netns: String,
    /// `/run/podlab/<lab>/<node>`: pid files, sockets, logs.
    pub state_dir: PathBuf,
}

impl Role {
    /// Tells the role from a container image name, e.g.
    /// `quay.io/frrouting/frr:8.4.1` → FRR.
    pub fn from_image(image: &str) -> Role {
        // Drop the digest and tag, then a leading registry host (it has a
        // `.` or `:`, or is localhost): what is left is the repository path.
        let image = image.split('@').next().unwrap_or(image);
        let mut parts: Vec<&str> = image.split('/').collect();
        if let Some(last) = parts.last_mut() {
            *last = last.split(':').next().unwrap_or(last);
        }
        if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
            parts.remove(0);
        }
        let name = parts.join("/").to_ascii_lowercase();
        if name.contains("podroute") {
            Role::Podroute
        } else if name.contains("frr") {
            Role::Frr
        } else if name.contains("bird") {
            Role::Bird
        } else if name.contains("gobgp") {
            Role::Gobgp
        } else {
            Role::Linux
        }
    }

    /// Checks the node's file settings for this role; the error is the
    /// sub-field (e.g. `.binds`) and the reason.
    pub fn check(&self, node: &Node) -> Result<(), (String, String)> {
        match self {
            Role::Frr => {
                if node.bind_for(FRR_CONF).is_none() {
                    return Err((
                        ".binds".into(),
                        format!("an FRR node needs a bind to {FRR_CONF}"),
                    ));
                }
                if let Some(daemons) = node.bind_for(FRR_DAEMONS) {
                    frr_daemons(daemons).map_err(|reason| (".binds".into(), reason))?;
                }
                Ok(())
            }
            Role::Bird => bird_conf(node).map(drop).ok_or_else(|| {
                (
                    ".binds".into(),
                    "a BIRD node needs a bind to a file named bird.conf (e.g. /etc/bird/bird.conf)"
                        .into(),
                )
            }),
            Role::Gobgp => gobgp_conf(node).map(drop).ok_or_else(|| {
                (
                    ".binds".into(),
                    "a GoBGP node needs `cmd: gobgpd -f /path/conf` with that path bound, \
                     or a bind to a file named gobgp*.{toml,yaml,yml,json}"
                        .into(),
                )
            }),
            Role::Podroute | Role::Linux | Role::Bridge => Ok(()),
        }
    }

    /// Checks that the programs this role runs are installed.
    pub fn preflight(&self, node: &Node) -> Result<(), LabError> {
        let need = |program: &str| -> Result<(), LabError> {
            let found = if program.starts_with('/') {
                Path::new(program).exists()
            } else {
                which(program).is_some()
            };
            if found {
                Ok(())
            } else {
                Err(LabError::MissingProgram {
                    node: node.name.clone(),
                    program: program.to_string(),
                    reason: "not found".into(),
                })
            }
        };
        match self {
            Role::Frr => {
                need(&format!("{FRR_DIR}/zebra"))?;
                for d in self.frr_daemon_list(node)? {
                    need(&format!("{FRR_DIR}/{d}"))?;
                }
                need("vtysh")
            }
            Role::Bird => need("bird").and_then(|_| need("birdc")),
            Role::Gobgp => need("gobgpd").and_then(|_| need("gobgp")),
            Role::Podroute | Role::Linux | Role::Bridge => Ok(()),
        }
    }

    /// Starts the node's daemons inside its namespace and waits until each
    /// answers on its control socket.
    pub fn start(&self, node: &Node, rt: &NodeRuntime) -> Result<(), LabError> {
        match self {
            Role::Frr => self.start_frr(node, rt),
            Role::Bird => start_bird(node, rt),
            Role::Gobgp => start_gobgp(node, rt),
            // A cluster node's `cmd` is the container's entry point under
            // real containerlab; here `labcluster` runs its daemons.
            Role::Podroute if crate::labcluster::is_cluster_node(node) => Ok(()),
            Role::Linux | Role::Podroute => match &node.cmd {
                Some(cmd) => spawn_detached(node, rt, "cmd", &["sh", "-c", cmd]),
                None => Ok(()),
            },
            Role::Bridge => Ok(()),
        }
    }

    /// Points a node's own CLI at this node's instance: `vtysh` gets
    /// `--vty_socket`, `birdc` gets `-s`, unless the caller gave one.
    pub fn rewrite_argv(&self, rt: &NodeRuntime, argv: &[String]) -> Vec<String> {
        let mut out = argv.to_vec();
        if let Some((flag, value)) = self.missing_socket_flag(rt, argv.iter().map(String::as_str)) {
            out.splice(1..1, [flag.to_string(), value]);
        }
        out
    }

    /// The socket flag and value a node CLI call lacks: none for other
    /// programs, other roles, or a call that names its socket already.
    fn missing_socket_flag<'a>(
        &self,
        rt: &NodeRuntime,
        mut words: impl Iterator<Item = &'a str>,
    ) -> Option<(&'static str, String)> {
        let first = words.next()?;
        let program = first.rsplit('/').next().unwrap_or(first);
        let (flag, value) = match (self, program) {
            (Role::Frr, "vtysh") => ("--vty_socket", frr_dir(rt)),
            (Role::Bird, "birdc" | "birdcl") => ("-s", bird_socket(rt)),
            _ => return None,
        };
        let given = words.any(|w| w == flag || w.starts_with(&format!("{flag}=")));
        (!given).then(|| (flag, value.display().to_string()))
    }

    /// Whether a shell line calls the CLI of a routing daemon, which then
    /// must already run.
    pub fn talks_to_daemon(line: &str) -> bool {
        let program = line.split_whitespace().next().unwrap_or("");
        let program = program.rsplit('/').next().unwrap_or(program);
        matches!(program, "vtysh" | "birdc" | "birdcl" | "gobgp")
    }

    /// The same for a shell command line, as `exec` entries are written.
    pub fn rewrite_shell(&self, rt: &NodeRuntime, line: &str) -> String {
        let trimmed = line.trim_start();
        match self.missing_socket_flag(rt, trimmed.split_whitespace()) {
            Some((flag, value)) => {
                let (program, rest) = trimmed
                    .split_once(char::is_whitespace)
                    .unwrap_or((trimmed, ""));
                format!("{program} {flag} {value} {rest}")
                    .trim_end()
                    .to_string()
            }
            None => line.to_string(),
        }
    }

    fn frr_daemon_list(&self, node: &Node) -> Result<Vec<String>, LabError> {
        match node.bind_for(FRR_DAEMONS) {
            Some(path) => frr_daemons(path).map_err(|reason| LabError::Node {
                lab: "(any)".into(),
                node: node.name.clone(),
                reason,
            }),
            None => Ok(FRR_DEFAULT_DAEMONS.iter().map(|d| d.to_string()).collect()),
        }
    }

    /// Starts zebra and the enabled daemons on a boot config that holds only
    /// the hostname, then pushes the node's frr.conf through vtysh, as FRR's
    /// own init does with an integrated config. Each daemon then gets exactly
    /// its own sections, and a config error fails `up` with FRR's message
    /// (read per daemon with `-f`, an unknown section's `exit` would silently
    /// end that daemon's config).
    fn start_frr(&self, node: &Node, rt: &NodeRuntime) -> Result<(), LabError> {
        let dir = frr_dir(rt);
        fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        let conf = node
            .bind_for(FRR_CONF)
            .ok_or_else(|| node_err(rt, node, format!("no bind to {FRR_CONF}")))?;
        let conf_text = fs::read_to_string(conf).map_err(|e| LabError::io(conf, e))?;
        // vtysh keeps `hostname` to itself, so the daemons get it at boot.
        let boot = dir.join("boot.conf");
        let boot_text = format!(
            "hostname {}\n",
            frr_hostname(&conf_text).unwrap_or(&node.name)
        );
        fs::write(&boot, boot_text).map_err(|e| LabError::io(&boot, e))?;
        // FRR drops to the frr user and must own its sockets' folder.
        netns::run(Command::new("chown").args(["-R", "frr:frr", &dir.display().to_string()]))?;

        let mut daemons = vec!["zebra".to_string()];
        daemons.extend(self.frr_daemon_list(node)?);
        let d = dir.display().to_string();
        for daemon in &daemons {
            let mut argv = vec![
                format!("{FRR_DIR}/{daemon}"),
                "-d".into(),
                "-f".into(),
                boot.display().to_string(),
                "-i".into(),
                format!("{d}/{daemon}.pid"),
                "-z".into(),
                format!("{d}/zserv.api"),
                "--vty_socket".into(),
                d.clone(),
                // No TCP vty: the Unix socket is enough and ports would clash.
                "-P".into(),
                "0".into(),
                "--log".into(),
                format!("file:{d}/{daemon}.log"),
            ];
            // Control sockets that default to a path every instance shares.
            match daemon.as_str() {
                "bfdd" => argv.extend(["--bfdctl".into(), format!("{d}/bfdd.sock")]),
                "ldpd" => argv.extend(["--ctl_socket".into(), format!("{d}/ldpd.sock")]),
                _ => {}
            }
            let mut cmd = netns::command_in(&rt.netns, &argv);
            cmd.envs(&node.env);
            netns::run(&mut cmd)?;
            let sock = dir.join(format!("{daemon}.vty"));
            netns::wait_until(
                &format!("{daemon} of node {} to open {}", node.name, sock.display()),
                START_TIMEOUT,
                || sock.exists(),
            )?;
        }
        let conf_path = conf.display().to_string();
        let push = ["vtysh", "--vty_socket", &d, "-f", &conf_path];
        netns::run(&mut netns::command_in(&rt.netns, &push))
            .map_err(|e| node_err(rt, node, format!("FRR refused {}: {e}", conf.display())))?;
        Ok(())
    }
}

/// The `hostname` an FRR config sets.
fn frr_hostname(conf: &str) -> Option<&str> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("hostname "))
        .map(str::trim)
        .find(|h| !h.is_empty())
}

/// The folder of a node's FRR instance: pid files, zserv.api, vty sockets.
pub fn frr_dir(rt: &NodeRuntime) -> PathBuf {
    rt.state_dir.join("frr")
}

/// A BIRD node's control socket.
pub fn bird_socket(rt: &NodeRuntime) -> PathBuf {
    rt.state_dir.join("bird.ctl")
}

/// Reads FRR's `daemons` file: the daemons set to `yes`, zebra excluded
/// (always started first), watchfrr and unknown ones refused.
pub fn frr_daemons(path: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enabled = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        let key = key.trim();
        // `bgpd_options`, `vtysh_enable`, `MAX_FDS`...: settings, not daemons.
        if value != "yes" || key.contains('_') || key.chars().any(|c| c.is_ascii_uppercase()) {
            continue;
        }
        if key == "zebra" {
            continue;
        }
        if !FRR_KNOWN_DAEMONS.contains(&key) {
            return Err(format!(
                "{} line {}: unknown FRR daemon `{key}`",
                path.display(),
                n + 1
            ));
        }
        enabled.push(key.to_string());
    }
    // Start in a fixed order whatever the file's order.
    enabled.sort_by_key(|d| FRR_KNOWN_DAEMONS.iter().position(|k| k == d));
    Ok(enabled)
}

fn bird_conf(node: &Node) -> Option<&Path> {
    node.binds
        .iter()
        .find(|b| b.container.rsplit('/').next() == Some("bird.conf"))
        .map(|b| b.host.as_path())
}

fn start_bird(node: &Node, rt: &NodeRuntime) -> Result<(), LabError> {
    let conf = bird_conf(node).ok_or_else(|| node_err(rt, node, "no bird.conf bind".into()))?;
    let sock = bird_socket(rt);
    let pid = rt.state_dir.join("bird.pid");
    let argv = [
        "bird".to_string(),
        "-c".into(),
        conf.display().to_string(),
        "-s".into(),
        sock.display().to_string(),
        "-P".into(),
        pid.display().to_string(),
    ];
    let mut cmd = netns::command_in(&rt.netns, &argv);
    cmd.envs(&node.env);
    netns::run(&mut cmd)?;
    netns::wait_until(
        &format!("bird of node {} to open {}", node.name, sock.display()),
        START_TIMEOUT,
        || sock.exists(),
    )
}

/// The GoBGP config file and its format (`toml`, `yaml`, `json`).
fn gobgp_conf(node: &Node) -> Option<(PathBuf, &'static str)> {
    // `cmd: gobgpd -f /etc/gobgp/gobgpd.toml` as containerlab labs write it.
    let from_cmd = node.cmd.as_deref().and_then(|cmd| {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "-f" || *w == "--config-file")
            .and_then(|i| words.get(i + 1))
            .map(|p| PathBuf::from(node.host_path_of(p)))
    });
    let path = from_cmd.or_else(|| {
        node.binds
            .iter()
            .find(|b| {
                b.container
                    .rsplit('/')
                    .next()
                    .is_some_and(|f| f.starts_with("gobgp"))
            })
            .map(|b| b.host.clone())
    })?;
    if !path.exists() {
        return None;
    }
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "yaml",
        Some("json") => "json",
        _ => "toml",
    };
    Some((path, format))
}

fn start_gobgp(node: &Node, rt: &NodeRuntime) -> Result<(), LabError> {
    let (conf, format) =
        gobgp_conf(node).ok_or_else(|| node_err(rt, node, "no GoBGP config".into()))?;
    let conf = conf.display().to_string();
    spawn_detached(
        node,
        rt,
        "gobgpd",
        &[
            "gobgpd",
            "-f",
            &conf,
            "-t",
            format,
            "--log-plain",
            // pprof would listen on the namespace's localhost:6060.
            "--pprof-disable",
        ],
    )?;
    // gobgpd has no control socket file: it is up when its API answers.
    netns::wait_until(
        &format!("gobgpd of node {} to answer on its API", node.name),
        START_TIMEOUT,
        || {
            netns::command_in(&rt.netns, &["gobgp", "global"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
    )
}

/// Starts a long-running program in the node's namespace, in a session of
/// its own (so it outlives podlab), with its output in `<name>.log`.
fn spawn_detached(
    node: &Node,
    rt: &NodeRuntime,
    name: &str,
    argv: &[&str],
) -> Result<(), LabError> {
    let log_path = rt.state_dir.join(format!("{name}.log"));
    let log = fs::File::create(&log_path).map_err(|e| LabError::io(&log_path, e))?;
    let err = log.try_clone().map_err(|e| LabError::io(&log_path, e))?;
    let mut full = vec!["setsid", "-f"];
    full.extend_from_slice(argv);
    let mut cmd = netns::command_in(&rt.netns, &full);
    cmd.envs(&node.env)
        .current_dir(&rt.state_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    let shown = netns::show(&cmd);
    let status = cmd.status().map_err(|e| LabError::Spawn {
        command: shown.clone(),
        reason: e.to_string(),
    })?;
    if !status.success() {
        return Err(LabError::Command {
            command: shown,
            status: status.to_string(),
            stderr: format!("see {}", log_path.display()),
        });
    }
    Ok(())
}

fn node_err(rt: &NodeRuntime, node: &Node, reason: String) -> LabError {
    LabError::Node {
        lab: rt.lab.clone(),
        node: node.name.clone(),
        reason,
    }
}

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Frr => "frr",
            Role::Bird => "bird",
            Role::Gobgp => "gobgp",
            Role::Podroute => "podroute",
            Role::Linux => "linux",
            Role::Bridge => "bridge",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_images() {
        for (image, role) in [
            ("quay.io/frrouting/frr:8.4.1", Role::Frr),
            ("frrouting/frr", Role::Frr),
            ("pierky/bird:2.0.12", Role::Bird),
            ("jauderho/gobgp:v3.10.0", Role::Gobgp),
            ("podroute:dev", Role::Podroute),
            (
                "registry.local:5000/podroute/node@sha256:abc",
                Role::Podroute,
            ),
            ("nicolaka/netshoot:latest", Role::Linux),
            // The registry host names neither FRR nor BIRD.
            ("frr.example:5000/alpine", Role::Linux),
        ] {
            assert_eq!(Role::from_image(image), role, "{image}");
        }
    }

    fn rt() -> NodeRuntime {
        NodeRuntime {
            lab: "l".into(),
            netns: "podlab-l-n".into(),
            state_dir: PathBuf::from("/run/podlab/l/n"),
        }
    }

    #[test]
    fn vtysh_is_pointed_at_the_node() {
        let argv = ["vtysh", "-c", "show bgp summary"].map(String::from);
        assert_eq!(
            Role::Frr.rewrite_argv(&rt(), &argv),
            [
                "vtysh",
                "--vty_socket",
                "/run/podlab/l/n/frr",
                "-c",
                "show bgp summary"
            ]
        );
        // An explicit socket is kept, and other roles and programs untouched.
        let explicit = ["vtysh", "--vty_socket", "/x"].map(String::from);
        assert_eq!(Role::Frr.rewrite_argv(&rt(), &explicit), explicit);
        assert_eq!(Role::Linux.rewrite_argv(&rt(), &argv), argv);
        let ping = ["ping", "-c1", "x"].map(String::from);
        assert_eq!(Role::Frr.rewrite_argv(&rt(), &ping), ping);
        assert!(Role::Frr.rewrite_argv(&rt(), &[]).is_empty());
    }

    #[test]
    fn birdc_and_shell_lines_are_pointed_at_the_node() {
        assert_eq!(
            Role::Bird.rewrite_shell(&rt(), "birdc show protocols"),
            "birdc -s /run/podlab/l/n/bird.ctl show protocols"
        );
        assert_eq!(
            Role::Frr.rewrite_shell(&rt(), "vtysh -c 'show ip route'"),
            "vtysh --vty_socket /run/podlab/l/n/frr -c 'show ip route'"
        );
        assert_eq!(
            Role::Frr.rewrite_shell(&rt(), "ip addr add 10.0.0.1/24 dev eth1"),
            "ip addr add 10.0.0.1/24 dev eth1"
        );
    }

    #[test]
    fn daemon_cli_lines_are_recognised() {
        assert!(Role::talks_to_daemon("vtysh -c 'show bgp summary'"));
        assert!(Role::talks_to_daemon(
            "  /usr/bin/gobgp global rib add 10.0.0.0/24"
        ));
        assert!(Role::talks_to_daemon("birdc show protocols"));
        assert!(!Role::talks_to_daemon("ip addr add 10.0.0.1/24 dev eth1"));
        assert!(!Role::talks_to_daemon(""));
    }

    #[test]
    fn hostname_from_frr_conf() {
        assert_eq!(
            frr_hostname("frr version 8.4\nhostname tor1\n!\n"),
            Some("tor1")
        );
        assert_eq!(frr_hostname("router bgp 1\n"), None);
    }

    #[test]
    fn frr_daemons_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemons");
        fs::write(
            &path,
            "# comment\nzebra=yes\nstaticd=yes\nbgpd=yes\nospfd=no\nbfdd=\"yes\"\n\
             vtysh_enable=yes\nbgpd_options=\"  -A 127.0.0.1\"\n",
        )
        .unwrap();
        assert_eq!(frr_daemons(&path).unwrap(), ["bgpd", "bfdd", "staticd"]);
        fs::write(&path, "bogusd=yes\n").unwrap();
        let err = frr_daemons(&path).unwrap_err();
        assert!(err.contains("line 1") && err.contains("bogusd"), "{err}");
    }
}
