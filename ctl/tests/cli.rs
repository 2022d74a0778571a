// Runs the built podctl binary against admin sockets in a temporary
// directory: none at all, a stale one, the wrong daemon's, and a real
// podroute-bgpd admin service running in this test process.

use std::path::{Path, PathBuf};
use std::process::Output;

use podroute_proto::admin_socket::BackgroundServer;
use tokio::process::Command;
use tonic::transport::server::Router;

struct Sockets {
    _dir: tempfile::TempDir,
    bgpd: PathBuf,
    ipamd: PathBuf,
    policy: PathBuf,
}

fn sockets() -> Sockets {
    let dir = tempfile::tempdir().expect("tempdir");
    Sockets {
        bgpd: dir.path().join("bgpd.sock"),
        ipamd: dir.path().join("ipamd.sock"),
        policy: dir.path().join("policy.sock"),
        _dir: dir,
    }
}

/// Runs podctl with the three socket flags pointing into `s` plus `args`.
async fn podctl(s: &Sockets, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podctl"))
        .env_remove("PODROUTE_BGPD_SOCKET")
        .env_remove("PODROUTE_IPAMD_SOCKET")
        .env_remove("PODROUTE_POLICY_SOCKET")
        .arg("--bgpd")
        .arg(&s.bgpd)
        .arg("--ipamd")
        .arg(&s.ipamd)
        .arg("--policy")
        .arg(&s.policy)
        .args(args)
        .output()
        .await
        .expect("run podctl")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A speaker with no peers that does not listen: what bgpd serves before
/// any peer is configured.
async fn speaker() -> podroute_bgpd::speaker::Speaker {
    speaker_with("").await
}

/// The same, with `extra` added to the BGPConfiguration's spec.
async fn speaker_with(extra: &str) -> podroute_bgpd::speaker::Speaker {
    let yaml = format!(
        "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{asNumber: 65000, routerID: 192.0.2.1, listenPort: 0{extra}}}\n"
    );
    let yaml = yaml.as_str();
    let config = podroute_bgpd::config::parse(yaml, "test", |_| unreachable!()).expect("config");
    podroute_bgpd::speaker::Speaker::start(config)
        .await
        .expect("speaker")
}

async fn serve(path: &Path, router: Router) -> BackgroundServer {
    BackgroundServer::start(path, router)
        .await
        .expect("serve admin socket")
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
async fn stale_socket_is_called_stale() {
    let s = sockets();
    drop(std::os::unix::net::UnixListener::bind(&s.bgpd).unwrap());
    let out = podctl(&s, &["version"]).await;
    let text = stdout(&out);
    assert!(
        text.contains(&format!("socket {} is stale", s.bgpd.display())),
        "{text}"
    );
}

#[tokio::test]
async fn socket_path_comes_from_the_environment() {
    let s = sockets();
    let out = Command::new(env!("CARGO_BIN_EXE_podctl"))
        .env("PODROUTE_BGPD_SOCKET", &s.bgpd)
        .args(["bgp", "peers"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "is podroute-bgpd running? socket {} not found",
            s.bgpd.display()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_peers_from_a_running_bgpd() {
    let s = sockets();
    let server = serve(&s.bgpd, podroute_bgpd::admin::router(speaker().await)).await;

    let out = podctl(&s, &["version"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let bgpd_line = text
        .lines()
        .find(|l| l.starts_with("podroute-bgpd "))
        .unwrap_or_else(|| panic!("no bgpd row in:\n{text}"));
    assert!(bgpd_line.contains(env!("CARGO_PKG_VERSION")), "{bgpd_line}");
    assert!(bgpd_line.contains("podroute.bgpd.v1"), "{bgpd_line}");
    assert!(bgpd_line.trim_end().ends_with("ok"), "{bgpd_line}");

    let out = podctl(&s, &["version", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["podctl"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["daemons"][0]["daemon"], "podroute-bgpd");
    assert_eq!(json["daemons"][0]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["daemons"][0]["apiVersion"], "podroute.bgpd.v1");
    assert!(json["daemons"][0].get("error").is_none());
    assert!(
        json["daemons"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );

    let out = podctl(&s, &["bgp", "peers"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "no BGP peers\n");
    let out = podctl(&s, &["bgp", "peers", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, serde_json::json!({"peers": []}));

    server.stop().await.expect("server result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_daemons_socket_is_recognised() {
    let s = sockets();
    // ipamd's service where bgpd's socket should be.
    let dir = tempfile::tempdir().unwrap();
    let store = podroute_ipam::store::EmbeddedStore::open(dir.path()).unwrap();
    let ipamd = podroute_ipam::service::Ipamd::start(
        store,
        podroute_ipam::allocator::Settings::default(),
        std::sync::Arc::default(),
    )
    .await
    .unwrap();
    let server = serve(&s.bgpd, podroute_ipam::admin::router(ipamd)).await;
    let out = podctl(&s, &["bgp", "peers"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "socket {} does not serve podroute.bgpd.v1",
            s.bgpd.display()
        )),
        "{err}"
    );
    server.stop().await.expect("server result");
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
    let cells: Vec<&str> = row.split_whitespace().collect();
    // Status, prefix, next hop, peer, local pref, MED, origin, communities,
    // kernel (no FIB here).
    assert_eq!(
        cells,
        ["*>", "10.244.1.0/26", "-", "local", "-", "-", "i", "-", "-"],
        "{text}"
    );
    assert!(text.contains("fd00:10:244:1::/64"), "{text}");

    let out = podctl(&s, &["bgp", "routes", "-6", "-o", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let routes = json["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 1, "{json}");
    assert_eq!(routes[0]["prefix"], "fd00:10:244:1::/64");

    // An address inside the prefix finds it as the longest match.
    let out = podctl(
        &s,
        &["bgp", "routes", "--prefix", "10.244.1.9", "-o", "json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let route = &json["routes"][0];
    assert_eq!(json["routes"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(route["prefix"], "10.244.1.0/26");
    assert_eq!(route["peer"], "");
    assert_eq!(route["best"], true);
    assert_eq!(route["accepted"], true);
    assert_eq!(route["multipath"], true);
    assert_eq!(route["reachable"], true);
    assert_eq!(route["origin"], "i");
    // This speaker runs without a FIB.
    assert_eq!(route["kernel"], "none");
    assert_eq!(route["reason"], "only path");

    let out = podctl(&s, &["bgp", "route", "10.244.1.0/26"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("10.244.1.0/26: 1 path\n"), "{text}");
    assert!(text.contains("Path 1: *> from local\n"), "{text}");
    assert!(text.contains("  Reason:             only path\n"), "{text}");

    let out = podctl(&s, &["bgp", "route", "10.244.1.0/26", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["prefix"], "10.244.1.0/26");
    assert_eq!(json["paths"][0]["reason"], "only path");
    assert_eq!(json["paths"][0]["best"], true);

    let out = podctl(&s, &["bgp", "route", "192.0.2.0/24"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "no route for 192.0.2.0/24\n");

    let out = podctl(&s, &["bgp", "route", "nonsense"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an IP prefix or address"), "{err}");

    server.stop().await.expect("server result");
}
