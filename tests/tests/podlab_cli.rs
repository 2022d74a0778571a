// The podlab command line as a person uses it: bad topology files are
// refused with the file, the field and the reason and nothing is created;
// `down` on a lab that is not up says so and succeeds; `exec` reaches the
// node's FRR through vtysh and passes the command's exit status on.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{DownOnDrop, assert_lab_gone, copy_dir, host_links, repo_path};
use podroute_lab::LabOptions;

fn podlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podlab"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of two-node-tor under a unique name, with `edit` applied, in a
/// temporary folder next to a copy of its bind files.
fn topology_copy(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> String {
    let src = repo_path("containerlab");
    copy_dir(&src.join("two-node-tor"), &dir.join("two-node-tor"));
    copy_dir(&src.join("podroute-lab"), &dir.join("podroute-lab"));
    let text = fs::read_to_string(src.join("two-node-tor.clab.yml"))
        .unwrap()
        .replace("name: two-node-tor", &format!("name: {name}"));
    let path = dir.join("lab.clab.yml");
    fs::write(&path, edit(text)).unwrap();
    path.display().to_string()
}

/// What is wrong, how to break the file, the field named, the reason given.
type BadCase = (
    &'static str,
    fn(String) -> String,
    &'static str,
    &'static str,
);

#[test]
fn bad_topologies_are_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let name = LabOptions::unique("tcb").name.unwrap();
    let host_before = host_links();
    let cases: [BadCase; 4] = [
        (
            "unknown node",
            |t| t.replace(r#""tor:eth2", "n2:eth1""#, r#""tor:eth2", "n9:eth1""#),
            "topology.links[1].endpoints[1]",
            "unknown node `n9`",
        ),
        (
            "duplicate endpoint",
            |t| t.replace(r#""tor:eth2", "n2:eth1""#, r#""tor:eth1", "n2:eth1""#),
            "topology.links[1].endpoints",
            "duplicate endpoint tor:eth1",
        ),
        (
            "missing bind file",
            |t| t.replace("tor/daemons:", "tor/no-such-file:"),
            "topology.nodes.tor.binds[1]",
            "does not exist",
        ),
        (
            "YAML error",
            |t| t.replace("  links:", "  links: [\n"),
            "line ",
            "invalid YAML",
        ),
    ];
    for (what, edit, field, reason) in cases {
        let file = topology_copy(dir.path(), &name, edit);
        let out = podlab(&["up", &file]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{what}: up should fail");
        assert!(
            stderr.contains(&file) && stderr.contains(field) && stderr.contains(reason),
            "{what}: stderr should name {file}, {field} and `{reason}`: {stderr}"
        );
        assert_lab_gone(&name);
        assert_eq!(host_links(), host_before, "{what}");
    }
}

#[test]
fn down_on_a_lab_that_is_not_up_says_so_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let name = LabOptions::unique("tcd").name.unwrap();
    let file = topology_copy(dir.path(), &name, |t| t);
    let out = podlab(&["down", &file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("is not up"), "{stdout}");
}

#[test]
fn up_exec_status_down_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let name = LabOptions::unique("tcu").name.unwrap();
    let file = topology_copy(dir.path(), &name, |t| t);
    let _guard = DownOnDrop(name.clone());

    let out = podlab(&["up", &file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("lab {name}")) && stdout.contains("zebra"),
        "{stdout}"
    );

    // vtysh reaches this lab's ToR without being told where its sockets are.
    let out = podlab(&[
        "exec",
        &file,
        "tor",
        "--",
        "vtysh",
        "-c",
        "show bgp summary",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("local AS number 65000"), "{stdout}");

    // The command's exit status comes back.
    let out = podlab(&["exec", &file, "n1", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    let out = podlab(&["status", &file, "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["up"], true);
    // tor, n1, n2 and the lab's ipamd.
    assert_eq!(status["nodes"].as_array().unwrap().len(), 4);

    // A broken file must not keep a lab from coming down.
    let good = fs::read_to_string(&file).unwrap();
    fs::write(&file, good.replace("tor/daemons:", "gone:")).unwrap();
    let out = podlab(&["down", &file]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("is down"), "{stdout}");
    assert_lab_gone(&name);

    fs::write(&file, good).unwrap();
    let out = podlab(&["exec", &file, "n1", "--", "true"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("not up"), "{stderr}");
}

#[test]
fn names_that_would_escape_the_state_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = topology_copy(dir.path(), "tcn", |t| t);
    for bad in ["..", "/etc", "a/../..", ""] {
        for cmd in ["up", "down", "status"] {
            let out = podlab(&[cmd, &file, "--name", bad]);
            let (_, stderr) = text(&out);
            assert!(!out.status.success(), "{cmd} --name {bad:?} should fail");
            assert!(stderr.contains("invalid lab or node name"), "{stderr}");
        }
    }
    assert!(std::path::Path::new("/etc/hostname").exists());
    // A file whose own name is bad (so it no longer loads) cannot steer
    // `down` outside the state folder either.
    let evil = dir.path().join("evil.clab.yml");
    fs::write(
        &evil,
        "name: ../../etc\ntopology: {nodes: {a: {kind: linux}}}\n",
    )
    .unwrap();
    let out = podlab(&["down", &evil.display().to_string()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid lab or node name"), "{stderr}");
    assert!(std::path::Path::new("/etc/hostname").exists());
}
