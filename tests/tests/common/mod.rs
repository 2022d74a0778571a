// Helpers shared by the lab's integration tests.

#![allow(dead_code)]
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use podroute_lab::lab::state_dir;
use podroute_lab::netns;

/// A path in the repository, from this crate's folder.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// The interfaces named like a lab's link ends (`eth1`, `eth2`, ...) in the
/// host's namespace, to prove a lab adds none there. Only those names: other
/// tests may add host links of their own meanwhile.
pub fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("eth") && n != "eth0")
        .collect();
    names.sort();
    names
}

/// No namespace, live process or state folder of lab `name` is left.
pub fn assert_lab_gone(name: &str) {
    let prefix = format!("podlab-{name}-");
    let left: Vec<String> = netns::list()
        .unwrap()
        .into_iter()
        .filter(|ns| ns.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    assert!(!state_dir(name).exists(), "state folder left behind");
    // Every daemon the lab started names the lab's state folder in its
    // command line (FRR, BIRD) or runs in it (gobgpd, cmd); none may still run.
    let dir = state_dir(name);
    let marker = format!("{}/", dir.display());
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if cmdline.contains(&marker) || cwd.starts_with(&dir) {
            live.push(cmdline);
        }
    }
    assert!(live.is_empty(), "processes left behind: {live:?}");
}

/// Pings `target` from `node` until one answer or the deadline: addresses
/// that FRR's zebra configures arrive asynchronously.
pub fn wait_ping(lab: &podroute_lab::Lab, node: &str, target: &str) {
    lab.wait_for(
        std::time::Duration::from_secs(10),
        &format!("{node} to ping {target}"),
        |lab| {
            lab.exec(node, &["ping", "-c", "1", "-W", "1", target])
                .is_ok()
        },
    )
    .unwrap();
}

/// Tears lab `name` down when dropped: a lab started through the podlab
/// command is not a `Lab` value, so a failing test would leave it up.
pub struct DownOnDrop(pub String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let none: [String; 0] = [];
        if let Err(e) = podroute_lab::lab::teardown(&self.0, &none) {
            eprintln!("tearing down {}: {e}", self.0);
        }
    }
}

/// Copies folder `from` into `to`, recursively (a lab's bind files).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The folder cargo put podlab in (target/debug), where the daemons a lab's
/// cluster runs must be too.
pub fn bin_dir() -> PathBuf {
    let podlab = PathBuf::from(env!("CARGO_BIN_EXE_podlab"));
    let dir = podlab.parent().unwrap().to_path_buf();
    for program in [
        "podroute-bgpd",
        "podroute-ipamd",
        "podroute-policy-agent",
        "podroute-cni",
        "podctl",
    ] {
        assert!(
            dir.join(program).is_file(),
            "{} not found: cargo build -p podroute-bgpd -p podroute-ipam -p podroute-policy \
             -p podroute-cni -p podctl first",
            dir.join(program).display()
        );
    }
    dir
}
