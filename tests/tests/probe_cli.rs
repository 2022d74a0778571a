// `podlab probe` as the truth-table lab runs it: `serve` in a namespace of
// its own (ports 80 and 81 on the IPv4 and IPv6 wildcards), `connect` from
// the same namespace over loopback, one JSON line per target in order; a
// bad target is refused before anything is probed.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use podroute_lab::netns;
use serde_json::Value;

const PODLAB: &str = env!("CARGO_BIN_EXE_podlab");

/// A namespace with loopback up, and a server in it; both gone on drop.
struct Ns {
    name: String,
    server: Option<Child>,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        let ns = Ns {
            name: format!("plp{}-{tag}", std::process::id()),
            server: None,
        };
        netns::add(&ns.name).unwrap();
        netns::ip(&["-n", &ns.name, "link", "set", "lo", "up"]).unwrap();
        ns
    }

    fn podlab(&self, args: &[&str]) -> Command {
        let mut cmd = netns::command_in(&self.name, &[PODLAB]);
        cmd.args(args);
        cmd
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = netns::remove(&self.name, Duration::from_secs(2));
    }
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn serve_answers_and_connect_prints_one_line_per_target() {
    let mut ns = Ns::new("serve");
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("serve.out");
    let child = ns
        .podlab(&["probe", "serve", "--ports", "81,80,80"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ns.server = Some(child);
    netns::wait_until(
        "the probe server to listen",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .ends_with('\n')
        },
    )
    .unwrap();
    let ready: Value =
        serde_json::from_str(std::fs::read_to_string(&out_path).unwrap().trim()).unwrap();
    // Duplicates dropped; both protocols on both wildcards.
    assert_eq!(
        ready["listening"],
        serde_json::json!([
            "tcp:0.0.0.0:80",
            "tcp:0.0.0.0:81",
            "tcp:[::]:80",
            "tcp:[::]:81",
            "udp:0.0.0.0:80",
            "udp:0.0.0.0:81",
            "udp:[::]:80",
            "udp:[::]:81",
        ])
    );

    let targets = [
        ("tcp:127.0.0.1:80", true),
        ("udp:127.0.0.1:81", true),
        ("tcp:[::1]:81", true),
        ("udp:[::1]:80", true),
        // Nothing listens on 82: refused, at once.
        ("tcp:127.0.0.1:82", false),
        ("udp:[::1]:82", false),
    ];
    let mut args = vec!["probe", "connect", "--timeout-ms", "5000"];
    args.extend(targets.iter().map(|(t, _)| *t));
    let out = ns.podlab(&args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let got = lines(&out);
    assert_eq!(got.len(), targets.len(), "{got:?}");
    for (line, (target, ok)) in got.iter().zip(targets) {
        assert_eq!(line["target"], target, "{line}");
        assert_eq!(line["ok"], ok, "{line}");
        assert_eq!(line.get("error").is_some(), !ok, "{line}");
    }
}

#[test]
fn a_bad_target_is_refused_before_probing() {
    let out = Command::new(PODLAB)
        .args(["probe", "connect", "tcp:127.0.0.1:80", "sctp:10.0.0.1:80"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown protocol \"sctp\" (tcp or udp)"),
        "{stderr}"
    );
}
