// Network namespaces, veths and processes in them, through iproute2's `ip`.
// Shelling out keeps the lab's kernel changes exactly the commands an
// engineer would type, and every failure carries the command and its stderr.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::error::LabError;

/// How often waits look again. Waits always have a deadline too.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `cmd` and fails with its stderr unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let shown = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Spawn {
            command: shown.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// `ip ARGS...`, failing on a non-zero exit.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    let out = run(Command::new("ip").args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command that runs `argv` inside namespace `ns`.
pub fn command_in(ns: &str, argv: &[impl AsRef<str>]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]);
    cmd.args(argv.iter().map(|a| a.as_ref()));
    cmd
}

/// Every namespace name `ip netns` knows.
pub fn list() -> Result<Vec<String>, LabError> {
    let out = ip(&["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

pub fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

pub fn add(ns: &str) -> Result<(), LabError> {
    ip(&["netns", "add", ns]).map(drop)
}

/// Pids of every process whose network namespace is `ns`.
pub fn pids(ns: &str) -> Result<Vec<u32>, LabError> {
    let out = ip(&["netns", "pids", ns])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Stops every process in `ns` (TERM, then KILL after `grace`) and deletes
/// the namespace, which also destroys the veths in it.
pub fn remove(ns: &str, grace: Duration) -> Result<(), LabError> {
    if !exists(ns) {
        return Ok(());
    }
    for signal in ["-TERM", "-KILL"] {
        let until = Instant::now() + grace;
        let mut signalled = std::collections::BTreeSet::new();
        loop {
            let live = pids(ns)?;
            if live.is_empty() {
                return ip(&["netns", "del", ns]).map(drop);
            }
            if Instant::now() >= until {
                break;
            }
            let fresh: Vec<String> = live
                .iter()
                .filter(|p| signalled.insert(**p))
                .map(u32::to_string)
                .collect();
            if !fresh.is_empty() {
                // A process may exit between listing and signalling: not an error.
                let _ = Command::new("kill")
                    .arg(signal)
                    .args(&fresh)
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    Err(LabError::Timeout {
        what: format!("processes {:?} in namespace {ns} to exit", pids(ns)?),
        waited: grace * 2,
    })
}

/// Polls `condition` until it holds or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        if condition() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(LabError::Timeout {
                what: what.to_string(),
                waited: timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The command as a person would type it, for messages.
pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
