// Runs the built podctl binary: against admin sockets in a temporary
// directory that are missing, stale, unreadable or another daemon's;
// against fake daemons of another version; against real podroute-bgpd
// speakers peering over the loopback in this process (every bgp command in
// table, JSON and YAML, coloured or not); `--watch` piped; where settings
// come from; and the completion scripts and man page.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Instant;

use common::{
    DEADLINE, FakeBgpd, FakePolicy, PEER_B, Pair, SILENT_PEER, json, podctl, podctl_command, serve,
    sockets, speaker, stderr, stdout, yaml,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A speaker with no peers that does not listen: what bgpd serves before
/// any peer is configured.
async fn lone_speaker() -> podroute_bgpd::speaker::Speaker {
    speaker_with("").await
}

/// The same, with `extra` added to the BGPConfiguration's spec.
async fn speaker_with(extra: &str) -> podroute_bgpd::speaker::Speaker {
    speaker(&format!(
        "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{asNumber: 65000, routerID: 192.0.2.1, listenPort: 0{extra}}}\n"
    ))
    .await
}

/// Each row's cell under `header` starts where the header does, after two
/// spaces.
fn assert_aligned(table: &str, header: &str) {
    let lines: Vec<&str> = table.lines().collect();
    let column = lines[0].find(header).unwrap();
    for line in &lines[1..] {
        assert_eq!(line.get(column - 2..column), Some("  "), "{table}");
        assert_ne!(line.get(column..=column), Some(" "), "{table}");
    }
}

fn strip_colour(text: &str) -> String {
    ["\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"]
        .iter()
        .fold(text.to_owned(), |t, code| t.replace(code, ""))
}

/// A table row's cells, split on runs of two or more spaces.
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn version_without_daemons_says_why_and_exits_0() {
    let s = sockets();
    let out = podctl(&s, &["version"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let podctl_line = text.lines().find(|l| l.starts_with("podctl ")).unwrap();
    assert!(podctl_line.contains(env!("CARGO_PKG_VERSION")), "{text}");
    for (daemon, path) in [
        ("podroute-bgpd", &s.bgpd),
        ("podroute-ipamd", &s.ipamd),
        ("podroute-policy-agent", &s.policy),
    ] {
        let expected = format!("is {daemon} running? socket {} not found", path.display());
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn a_stopped_daemon_is_named_with_its_socket() {
    let s = sockets();
    for (args, daemon, path) in [
        (&["bgp", "peers"][..], "podroute-bgpd", &s.bgpd),
        (&["bgp", "routes", "-o", "json"], "podroute-bgpd", &s.bgpd),
        (&["policy", "endpoints"], "podroute-policy-agent", &s.policy),
        (&["ipam", "pools", "-o", "yaml"], "podroute-ipamd", &s.ipamd),
    ] {
        let out = podctl(&s, args).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(stdout(&out), "");
        assert_eq!(
            stderr(&out),
            format!(
                "podctl: is {daemon} running? socket {} not found\n",
                path.display()
            )
        );
    }
}

#[tokio::test]
async fn stale_socket_is_called_stale() {
    let s = sockets();
    drop(std::os::unix::net::UnixListener::bind(&s.bgpd).unwrap());
    let out = podctl(&s, &["bgp", "peers"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "podctl: socket {} is stale: connection refused (podroute-bgpd exited without removing it?); start podroute-bgpd again\n",
            s.bgpd.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_podctl_may_not_open_says_run_as_root() {
    let s = sockets();
    // As the daemons leave it: a 0600 socket in a folder others can enter.
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = serve(&s.bgpd, lone_speaker_router().await).await;
    if !is_root() {
        // Its owner may open a 0600 socket: take that away too.
        std::fs::set_permissions(&s.bgpd, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let mut command = if is_root() {
        // Root opens any socket; run podctl as nobody instead.
        let mut c = tokio::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_podctl"),
        ]);
        c.env("PODCTL_CONFIG", "/dev/null");
        c
    } else {
        podctl_command()
    };
    let out = command
        .arg("--bgpd")
        .arg(&s.bgpd)
        .args(["bgp", "peers"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "podctl: permission denied on socket {}: admin sockets are mode 0600, run podctl as root (e.g. with sudo)\n",
            s.bgpd.display()
        )
    );
    server.stop().await.unwrap();
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

async fn lone_speaker_router() -> tonic::transport::server::Router {
    podroute_bgpd::admin::router(lone_speaker().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_daemons_socket_is_recognised_and_named() {
    let s = sockets();
    // The policy agent's service where bgpd's socket should be.
    let server = serve(&s.bgpd, FakePolicy.router()).await;
    let out = podctl(&s, &["bgp", "peers"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "podctl: socket {} does not serve podroute.bgpd.v1 (it is podroute-policy-agent 9.9.9-fake)\n",
            s.bgpd.display()
        )
    );
    server.stop().await.unwrap();

    // ipamd's real service: named too.
    let dir = tempfile::tempdir().unwrap();
    let store = podroute_ipam::store::EmbeddedStore::open(dir.path()).unwrap();
    let ipamd = podroute_ipam::service::Ipamd::start(
        store,
        podroute_ipam::allocator::Settings::default(),
        std::sync::Arc::default(),
    )
    .await
    .unwrap();
    let server = serve(&s.policy, podroute_ipam::admin::router(ipamd)).await;
    let out = podctl(&s, &["policy", "endpoints"]).await;
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "podctl: socket {} does not serve podroute.policy.v1 (it is podroute-ipamd ",
            s.policy.display()
        )),
        "{err}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_the_call_is_a_version_mismatch() {
    let s = sockets();
    let older = FakeBgpd {
        lacks_list_peers: true,
        version: "0.0.1".into(),
        ..FakeBgpd::default()
    };
    let server = serve(&s.bgpd, older.router()).await;
    let out = podctl(&s, &["bgp", "peers"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "podctl: podroute-bgpd at {} does not know this call: podctl {} speaks podroute.bgpd.v1, it is podroute-bgpd 0.0.1 speaking podroute.bgpd.v1; check `podctl version` and upgrade the older one\n",
            s.bgpd.display(),
            env!("CARGO_PKG_VERSION")
        )
    );
    // Other calls it has still work.
    let out = podctl(&s, &["bgp", "routes", "-o", "json"]).await;
    assert_eq!(json(&out)["routes"][0]["prefix"], "10.244.1.0/26");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_of_another_api_version_is_called_out() {
    let s = sockets();
    let newer = FakeBgpd {
        lacks_list_peers: true,
        version: "2.0.0".into(),
        api_version: "podroute.bgpd.v2".into(),
        ..FakeBgpd::default()
    };
    let server = serve(&s.bgpd, newer.router()).await;
    let out = podctl(&s, &["bgp", "peers"]).await;
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "does not know this call: podctl {} speaks podroute.bgpd.v1, it is podroute-bgpd 2.0.0 speaking podroute.bgpd.v2; check `podctl version`",
            env!("CARGO_PKG_VERSION")
        )),
        "{err}"
    );

    let out = podctl(&s, &["version", "-o", "json"]).await;
    let report = json(&out);
    let bgpd = &report["daemons"][0];
    assert_eq!(bgpd["api_version"], "podroute.bgpd.v2");
    assert_eq!(bgpd["expected_api_version"], "podroute.bgpd.v1");
    assert_eq!(bgpd["compatible"], false);
    assert!(
        bgpd["error"]
            .as_str()
            .unwrap()
            .starts_with("API mismatch: podctl "),
        "{bgpd}"
    );
    let out = podctl(&s, &["version"]).await;
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with("podroute-bgpd "))
        .unwrap()
        .to_owned();
    assert!(row.contains("API mismatch"), "{row}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_reports_each_daemon_in_every_format() {
    let s = sockets();
    let server = serve(&s.bgpd, lone_speaker_router().await).await;

    let out = podctl(&s, &["version"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]),
        ["COMPONENT", "VERSION", "API", "ENDPOINT", "STATUS"]
    );
    let bgpd = cells(
        lines
            .iter()
            .find(|l| l.starts_with("podroute-bgpd "))
            .unwrap(),
    );
    assert_eq!(
        bgpd,
        [
            "podroute-bgpd",
            env!("CARGO_PKG_VERSION"),
            "podroute.bgpd.v1",
            &format!("unix://{}", s.bgpd.display()),
            "ok"
        ]
    );

    let report = json(&podctl(&s, &["version", "-o", "json"]).await);
    assert_eq!(report["podctl"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["daemons"][0]["daemon"], "podroute-bgpd");
    assert_eq!(report["daemons"][0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["daemons"][0]["api_version"], "podroute.bgpd.v1");
    assert_eq!(report["daemons"][0]["compatible"], true);
    assert_eq!(report["daemons"][0]["error"], serde_json::Value::Null);
    assert!(
        report["daemons"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    let from_yaml = yaml(&podctl(&s, &["version", "-o", "yaml"]).await);
    assert_eq!(from_yaml, report);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bgp_command_against_peering_speakers() {
    let s = sockets();
    let pair = Pair::start(&s).await;

    // peers: the table, then JSON and YAML of the same shape.
    let out = podctl(&s, &["bgp", "peers"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(!text.contains('\x1b'), "piped output is plain: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        cells(lines[0]),
        [
            "PEER",
            "AS",
            "STATE",
            "UPTIME",
            "ACCEPTED/RECEIVED",
            "SENT",
            "BFD",
            "INFO"
        ],
        "{text}"
    );
    let b = cells(lines.iter().find(|l| l.starts_with(PEER_B)).unwrap());
    assert_eq!(b[..3], [PEER_B, "65000", "Established"], "{text}");
    assert!(b[3].ends_with('s'), "uptime as a duration: {text}");
    assert_eq!(b[4], "1/1", "{text}");
    assert_eq!(b[5..], ["1", "-", "rack 1"], "{text}");
    let silent = cells(lines.iter().find(|l| l.starts_with(SILENT_PEER)).unwrap());
    assert_ne!(silent[2], "Established", "{text}");
    assert_eq!(silent[3], "-", "{text}");
    assert_aligned(&text, "STATE");
    assert_aligned(&text, "UPTIME");

    let peers = json(&podctl(&s, &["bgp", "peers", "-o", "json"]).await);
    let b = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == PEER_B)
        .unwrap();
    assert_eq!(b["state"], "Established");
    assert_eq!(b["name"], "node-b");
    assert_eq!(b["asn"], 65000);
    assert_eq!(b["prefixes_accepted"], 1);
    assert_eq!(b["description"], "rack 1");
    assert_eq!(b["bfd"], serde_json::Value::Null);
    assert!(b["uptime_s"].is_u64());
    let from_yaml = yaml(&podctl(&s, &["bgp", "peers", "-o", "yaml"]).await);
    assert_eq!(from_yaml["peers"].as_array().unwrap().len(), 2);
    assert_eq!(from_yaml["peers"][0]["peer"], peers["peers"][0]["peer"]);
    assert_eq!(
        from_yaml["peers"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        peers["peers"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );

    // Coloured on request: Established green, the silent peer red, and
    // the columns still line up by what shows on screen.
    let out = podctl(&s, &["bgp", "peers", "--color", "always"]).await;
    let text = stdout(&out);
    assert!(text.contains("\x1b[32mEstablished\x1b[0m"), "{text:?}");
    assert!(text.contains("\x1b[31m"), "{text:?}");
    assert_aligned(&strip_colour(&text), "STATE");
    assert_aligned(&strip_colour(&text), "UPTIME");

    // peer: the detail, with durations in words and seconds in JSON.
    let out = podctl(&s, &["bgp", "peer", PEER_B]).await;
    let text = stdout(&out);
    assert!(
        text.contains("Peer:                 127.0.0.2 (node-b)"),
        "{text}"
    );
    assert!(
        text.contains("State:                Established for "),
        "{text}"
    );
    assert!(
        text.contains("Timers:               hold 90s, keepalive 30s"),
        "{text}"
    );
    let detail = json(&podctl(&s, &["bgp", "peer", PEER_B, "-o", "json"]).await);
    assert_eq!(detail["peer"], PEER_B);
    assert_eq!(detail["hold_time_s"], 90);
    assert_eq!(detail["keepalive_time_s"], 30);
    assert_eq!(detail["remote_id"], PEER_B);
    assert!(detail["messages_received"]["update"].as_u64().unwrap() >= 1);
    assert_eq!(detail["passive"], true);
    let detail_yaml = yaml(&podctl(&s, &["bgp", "peer", PEER_B, "-o", "yaml"]).await);
    assert_eq!(detail_yaml["hold_time_s"], 90);
    assert_eq!(detail_yaml["families"], detail["families"]);

    // routes: B's prefix learned, ours originated.
    let out = podctl(&s, &["bgp", "routes"]).await;
    let text = stdout(&out);
    let learned = cells(text.lines().find(|l| l.contains("10.244.2.0/26")).unwrap());
    assert_eq!(
        learned[..4],
        ["*>", "10.244.2.0/26", PEER_B, PEER_B],
        "{text}"
    );
    assert!(text.contains("10.244.1.0/26"), "{text}");
    let routes = json(&podctl(&s, &["bgp", "routes", "-o", "json"]).await);
    let learned = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == "10.244.2.0/26")
        .unwrap();
    assert_eq!(learned["peer"], PEER_B);
    assert_eq!(learned["local_pref"], 100);
    assert_eq!(learned["med"], serde_json::Value::Null);
    assert_eq!(
        yaml(&podctl(&s, &["bgp", "routes", "-o", "yaml"]).await),
        routes
    );

    // route: one prefix in detail.
    let out = podctl(&s, &["bgp", "route", "10.244.2.9"]).await;
    let text = stdout(&out);
    assert!(
        text.starts_with("10.244.2.0/26, the longest prefix covering 10.244.2.9: 1 path\n"),
        "{text}"
    );
    assert!(text.contains("Path 1: *> from 127.0.0.2\n"), "{text}");
    let route = json(&podctl(&s, &["bgp", "route", "10.244.2.9", "-o", "json"]).await);
    assert_eq!(route["query"], "10.244.2.9");
    assert_eq!(route["prefix"], "10.244.2.0/26");
    assert_eq!(route["paths"][0]["best"], true);
    assert_eq!(
        yaml(&podctl(&s, &["bgp", "route", "10.244.2.9", "-o", "yaml"]).await),
        route
    );

    pair.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_route_show_an_originated_prefix_as_the_only_path() {
    let s = sockets();
    let speaker = speaker_with(", originate: [10.244.1.0/26, \"fd00:10:244:1::/64\"]").await;
    let server = serve(&s.bgpd, podroute_bgpd::admin::router(speaker)).await;

    let out = podctl(&s, &["bgp", "routes"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let row = text
        .lines()
        .find(|l| l.contains("10.244.1.0/26"))
        .unwrap_or_else(|| panic!("no originated route in:\n{text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    // Status, prefix, next hop, peer, local pref, MED, origin, communities,
    // kernel (no FIB here).
    assert_eq!(
        words,
        ["*>", "10.244.1.0/26", "-", "local", "-", "-", "i", "-", "-"],
        "{text}"
    );
    assert!(text.contains("fd00:10:244:1::/64"), "{text}");

    let routes = json(&podctl(&s, &["bgp", "routes", "-6", "-o", "json"]).await);
    let routes = routes["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0]["prefix"], "fd00:10:244:1::/64");

    // An address inside the prefix finds it as the longest match.
    let json = json(
        &podctl(
            &s,
            &["bgp", "routes", "--prefix", "10.244.1.9", "-o", "json"],
        )
        .await,
    );
    let route = &json["routes"][0];
    assert_eq!(json["routes"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(route["prefix"], "10.244.1.0/26");
    assert_eq!(route["peer"], "");
    assert_eq!(route["best"], true);
    assert_eq!(route["origin"], "i");
    // This speaker runs without a FIB.
    assert_eq!(route["kernel"], "none");
    assert_eq!(route["reason"], "only path");

    let out = podctl(&s, &["bgp", "route", "192.0.2.0/24"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "no route for 192.0.2.0/24\n");

    let out = podctl(&s, &["bgp", "route", "nonsense"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not an IP prefix or address"),
        "{out:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_commands_in_every_format() {
    let s = sockets();
    let server = serve(&s.policy, FakePolicy.router()).await;

    let out = podctl(&s, &["policy", "endpoints"]).await;
    assert_eq!(
        stdout(&out),
        "POD        ADDRESSES   INGRESS   EGRESS  POLICIES\nshop/db-0  10.244.1.7  isolated  open    shop/db-from-api\n"
    );
    let endpoints = json(&podctl(&s, &["policy", "endpoints", "-o", "json"]).await);
    assert_eq!(endpoints["endpoints"][0]["pod"], "db-0");
    assert_eq!(endpoints["endpoints"][0]["ingress_isolated"], true);
    assert_eq!(
        yaml(&podctl(&s, &["policy", "endpoints", "-o", "yaml"]).await),
        endpoints
    );

    let explain = [
        "policy",
        "explain",
        "--from",
        "web/front-0",
        "--to",
        "shop/db-0",
        "--port",
        "5432",
    ];
    let out = podctl(&s, &explain).await;
    assert!(
        stdout(&out).starts_with("web/front-0 -> shop/db-0 5432/TCP: DENIED\n"),
        "{out:?}"
    );
    let out = podctl(&s, &[&explain[..], &["--color", "always"]].concat()).await;
    assert!(
        stdout(&out).starts_with("web/front-0 -> shop/db-0 5432/TCP: \x1b[31mDENIED\x1b[0m\n"),
        "{out:?}"
    );
    let verdict = json(&podctl(&s, &[&explain[..], &["-o", "json"]].concat()).await);
    assert_eq!(verdict["verdict"], "denied");
    assert_eq!(verdict["port"], 5432);
    assert_eq!(
        yaml(&podctl(&s, &[&explain[..], &["-o", "yaml"]].concat()).await),
        verdict
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_turns_colour_off_unless_forced() {
    let s = sockets();
    let server = serve(&s.policy, FakePolicy.router()).await;
    let explain = [
        "policy", "explain", "--from", "a/b", "--to", "c/d", "--port", "80",
    ];
    let run = |color: &'static str| {
        let policy = s.policy.clone();
        async move {
            podctl_command()
                .env("NO_COLOR", "1")
                .arg("--policy")
                .arg(policy)
                .args(explain)
                .args(["--color", color])
                .output()
                .await
                .unwrap()
        }
    };
    assert!(!stdout(&run("auto").await).contains('\x1b'));
    assert!(stdout(&run("always").await).contains("\x1b[31mDENIED"));
    server.stop().await.unwrap();
}

/// Reads lines from `reader` until `done` says the text so far is enough,
/// within DEADLINE.
async fn read_until<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    text: &mut String,
    done: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(text) {
        let mut line = String::new();
        let read = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            reader.read_line(&mut line),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out; so far:\n{text}"))
        .unwrap();
        assert!(read > 0, "output ended; so far:\n{text}");
        text.push_str(&line);
    }
}

/// JSON documents in `text`, as far as complete.
fn documents(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_piped_prints_snapshots_and_rides_out_a_restart() {
    let s = sockets();
    // No bgpd yet: the watch reports that on stderr and goes on.
    let mut child = podctl_command()
        .arg("--bgpd")
        .arg(&s.bgpd)
        .args(["bgp", "peers", "--watch", "0.2", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut errors = String::new();
    let not_running = format!(
        "podctl: is podroute-bgpd running? socket {} not found\n",
        s.bgpd.display()
    );
    read_until(&mut err, &mut errors, |t| t.lines().count() >= 2).await;
    assert!(
        errors.lines().all(|l| format!("{l}\n") == not_running),
        "{errors}"
    );

    // bgpd comes up: snapshots follow, a blank line between them.
    let server = serve(&s.bgpd, FakeBgpd::default().router()).await;
    let mut text = String::new();
    read_until(&mut out, &mut text, |t| documents(t).len() >= 2).await;
    child.kill().await.unwrap();
    let docs = documents(&text);
    assert_eq!(docs[0]["peers"][0]["peer"], "192.0.2.1", "{text}");
    assert_eq!(docs[0], docs[1]);
    assert!(text.starts_with("{\n"), "{text}");
    assert!(text.contains("}\n\n{\n"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_cleanly_on_ctrl_c() {
    let s = sockets();
    let server = serve(&s.bgpd, FakeBgpd::default().router()).await;
    let mut child = podctl_command()
        .arg("--bgpd")
        .arg(&s.bgpd)
        .args(["bgp", "peers", "--watch", "0.2"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    read_until(&mut out, &mut text, |t| t.matches("PEER ").count() >= 2).await;
    // Piped tables: no screen clearing, a blank line between snapshots.
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("\n\nPEER "), "{text}");
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn settings_come_from_flags_env_and_the_config_file_in_that_order() {
    let s = sockets();
    let from_file = s.dir.path().join("file.sock");
    let from_env = s.dir.path().join("env.sock");
    let config = s.dir.path().join("podctl.yaml");
    std::fs::write(
        &config,
        "bgpd: file.sock\npolicy: /nonexistent/policy.sock\n",
    )
    .unwrap();
    let run = |env: Vec<(&'static str, String)>, flags: Vec<String>| {
        let config = config.clone();
        async move {
            let out = podctl_command()
                .env("PODCTL_CONFIG", &config)
                .envs(env)
                .args(flags)
                .args(["bgp", "peers"])
                .output()
                .await
                .unwrap();
            stderr(&out)
        }
    };
    let not_found = |path: &std::path::Path| {
        format!(
            "podctl: is podroute-bgpd running? socket {} not found\n",
            path.display()
        )
    };
    // The file, its relative path taken from the file's folder.
    assert_eq!(run(vec![], vec![]).await, not_found(&from_file));
    // The older variable beats the file, the new one beats both.
    let legacy = s.dir.path().join("legacy.sock");
    assert_eq!(
        run(
            vec![("PODROUTE_BGPD_SOCKET", legacy.display().to_string())],
            vec![]
        )
        .await,
        not_found(&legacy)
    );
    assert_eq!(
        run(
            vec![
                ("PODROUTE_BGPD_SOCKET", legacy.display().to_string()),
                ("PODROUTE_BGPD", format!("unix://{}", from_env.display())),
            ],
            vec![]
        )
        .await,
        not_found(&from_env)
    );
    // The flag beats everything.
    let flag = s.dir.path().join("flag.sock");
    assert_eq!(
        run(
            vec![("PODROUTE_BGPD", from_env.display().to_string())],
            vec!["--bgpd".into(), flag.display().to_string()]
        )
        .await,
        not_found(&flag)
    );
    // A bad setting names where it came from and what to write.
    let err = run(vec![("PODROUTE_BGPD", "node-a:9651".into())], vec![]).await;
    assert_eq!(
        err,
        "podctl: --bgpd (or PODROUTE_BGPD): \"node-a:9651\": give the scheme: https://node-a:9651 (TLS), or a Unix socket path\n"
    );
    // A typo in the file is refused, with the file named.
    std::fs::write(&config, "bgdp: /x.sock\n").unwrap();
    let err = run(vec![], vec![]).await;
    assert!(
        err.starts_with(&format!(
            "podctl: config file {}: unknown field `bgdp`",
            config.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn completion_scripts_and_the_man_page() {
    let commands = [
        "version",
        "bgp",
        "peers",
        "peer",
        "routes",
        "route",
        "ipam",
        "pools",
        "blocks",
        "show",
        "usage",
        "check",
        "release",
        "pool",
        "create",
        "delete",
        "policy",
        "endpoints",
        "explain",
        "completion",
        "man",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let out = podctl_command()
            .args(["completion", shell])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let script = stdout(&out);
        for command in commands {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    // bash loads it and completes subcommands from it.
    let out = podctl_command()
        .args(["completion", "bash"])
        .output()
        .await
        .unwrap();
    let script_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script_file.path(), &out.stdout).unwrap();
    let completed = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(podctl bgp pe); COMP_CWORD=2; _podctl podctl pe bgp; echo \"${{COMPREPLY[@]}}\"",
            script_file.path().display()
        ))
        .output()
        .await
        .unwrap();
    assert!(completed.status.success(), "{completed:?}");
    let mut words: Vec<String> = stdout(&completed)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    words.sort();
    assert_eq!(words, ["peer", "peers"], "{completed:?}");

    let out = podctl_command().arg("man").output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = stdout(&out);
    assert!(page.contains(".TH podctl 1"), "{page}");
    for command in [
        "podctl bgp peers",
        "podctl bgp route",
        "podctl ipam pool create",
        "podctl policy explain",
        "podctl completion",
    ] {
        assert!(
            page.contains(&format!(".SS \"{command}\"")),
            "no {command} in the man page"
        );
    }
    for command in commands {
        assert!(page.contains(command), "man page lacks {command}");
    }
    // groff reads it without a warning.
    if let Ok(groff) = tokio::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        let mut groff = groff;
        use tokio::io::AsyncWriteExt;
        let mut stdin = groff.stdin.take().unwrap();
        stdin.write_all(page.as_bytes()).await.unwrap();
        drop(stdin);
        let checked = groff.wait_with_output().await.unwrap();
        assert!(checked.status.success(), "{checked:?}");
        assert_eq!(stderr(&checked), "", "groff warnings");
    }

    // Per-command pages for packagers.
    let dir = tempfile::tempdir().unwrap();
    let out = podctl_command()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "podctl.1",
        "podctl-bgp-peers.1",
        "podctl-ipam-pool-create.1",
    ] {
        assert!(dir.path().join(page).is_file(), "no {page}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_what_is_wrong_and_exits_1() {
    let s = sockets();
    let bgpd = serve(&s.bgpd, FakeBgpd::default().router()).await;
    let policy = serve(&s.policy, FakePolicy.router()).await;
    // No ipamd: status still shows the other two, and says why not ipamd.
    let out = podctl(&s, &["status"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text.starts_with("podroute on node node-a, AS 64512, router ID 192.0.2.254\n"),
        "{text}"
    );
    let daemons = &text[text.find("DAEMON").unwrap()..];
    let daemons = &daemons[..daemons.find("\n\n").unwrap() + 1];
    for column in ["STATE", "VERSION", "UPTIME", "METRICS"] {
        assert_aligned(daemons, column);
    }
    assert!(
        text.contains(&format!(
            "[podroute-ipamd] podroute-ipamd is unreachable: is podroute-ipamd running? socket {} not found",
            s.ipamd.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "[policy] 7 packets to shop/db-0 dropped (ingress): it is isolated by shop/db-from-api"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "      -> podctl policy explain --from SOURCE --to shop/db-0 --port PORT/TCP\n"
        ),
        "{text}"
    );
    // JSON and YAML: printed in full, then exit 1 for the problems.
    let out = podctl(&s, &["status", "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["daemons"][1]["state"], "unreachable");
    assert!(report["ipam"].is_null());
    assert_eq!(report["policy"]["denials"][0]["packets"], 7);
    let out = podctl(&s, &["status", "-o", "yaml"]).await;
    let yaml_report: serde_json::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    assert_eq!(yaml_report, report);

    // --watch, piped: snapshots one after another.
    let mut child = podctl_command()
        .arg("--bgpd")
        .arg(&s.bgpd)
        .arg("--ipamd")
        .arg(&s.ipamd)
        .arg("--policy")
        .arg(&s.policy)
        .args(["status", "--watch", "0.2", "-o", "json"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    read_until(&mut out, &mut text, |t| documents(t).len() >= 2).await;
    child.kill().await.unwrap();
    let docs = documents(&text);
    assert_eq!(docs[0]["node"], "node-a", "{text}");
    assert_eq!(docs[0]["problems"], docs[1]["problems"], "{text}");
    bgpd.stop().await.unwrap();
    policy.stop().await.unwrap();
}
