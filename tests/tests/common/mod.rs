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

/// The host namespace's interface names, to prove a lab adds none.
pub fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
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
    // command line; none may still run.
    let marker = format!("{}/", state_dir(name).display());
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&marker) {
            live.push(cmdline);
        }
    }
    assert!(live.is_empty(), "processes left behind: {live:?}");
}
