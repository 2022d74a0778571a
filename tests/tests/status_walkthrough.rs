// `podctl status` alone tells why a pod on one node cannot reach a pod on
// another: a three-node cluster (bgpd in a Node mesh, the policy agent,
// ipamd, pods by the real CNI plugin) is broken three ways, and each time the
// status of the right node names the cause: the BGP session down and the
// pod block it carried missing; another program's route shadowing ours in
// the kernel; a NetworkPolicy dropping the packets, with its name. Between
// breaks the status is clean again and the pods connect. Run with
// `--nocapture` to see every screen. Needs root.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use podroute_lab::cluster::{Binaries, Cluster, ClusterPod};
use serde_json::Value;

/// Sessions up and routes exchanged on two busy cores.
const CONVERGE: Duration = Duration::from_secs(60);
/// One TCP connection attempt.
const CONNECT: Duration = Duration::from_millis(1500);
/// Polling interval.
const POLL: Duration = Duration::from_millis(200);

/// `podctl status -o json` on `node`: (exit code, the report).
fn status_json(cluster: &Cluster, node: &str) -> (i32, Value) {
    let json = cluster.podctl(node, &["status", "-o", "json"]).unwrap();
    let report: Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "podctl status -o json on {node}: {e}: {}{}",
            String::from_utf8_lossy(&json.stdout),
            String::from_utf8_lossy(&json.stderr)
        )
    });
    (json.status.code().unwrap_or(-1), report)
}

/// `podctl status` on `node` as a table: (exit code, text).
fn status_table(cluster: &Cluster, node: &str) -> (i32, String) {
    let table = cluster.podctl(node, &["status"]).unwrap();
    (
        table.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&table.stdout).into_owned(),
    )
}

fn problems(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "[{}] {}",
                p["area"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Polls `node`'s status until `done` holds for its problem list; prints
/// and returns the table then. Fails with the last screen.
fn wait_status(
    cluster: &Cluster,
    node: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> (String, Value) {
    let until = Instant::now() + CONVERGE;
    loop {
        let (code, report) = status_json(cluster, node);
        let found = problems(&report);
        if done(&found) {
            // The exit status says whether problems were listed.
            assert_eq!(code, i32::from(!found.is_empty()), "{report}");
            // The table, taken just after, says the same (unless things
            // moved in between: then look again).
            let (table_code, table) = status_table(cluster, node);
            let same = table_code == code
                && report["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|p| table.contains(p["message"].as_str().unwrap_or("?")))
                && table.contains("No problems found.") == found.is_empty();
            if same {
                println!("$ podctl status   # on {node}: {what}\n{table}");
                return (table, report);
            }
        }
        assert!(
            Instant::now() < until,
            "{node}: {what}: not seen in {CONVERGE:?}; last status:\n{report:#}\nbgpd log:\n{}",
            cluster.log(node, "bgpd")
        );
        std::thread::sleep(POLL);
    }
}

fn wait_clean(cluster: &Cluster, node: &str) -> (String, Value) {
    wait_status(cluster, node, "healthy", <[String]>::is_empty)
}

fn wait_connects(cluster: &Cluster, from: &ClusterPod, to: &ClusterPod, port: u16, expected: bool) {
    let until = Instant::now() + CONVERGE;
    while cluster.connects(from, to, port, CONNECT).unwrap() != expected {
        assert!(
            Instant::now() < until,
            "{} -> {}:{port} never {}",
            from.id(),
            to.id(),
            if expected { "connected" } else { "failed" }
        );
        std::thread::sleep(POLL);
    }
}

fn block_of(cluster: &Cluster, node: &str) -> String {
    let (_, report) = wait_clean(cluster, node);
    report["ipam"]["node_blocks"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{node} has no block: {report}"))
        .to_string()
}

#[test]
fn status_alone_explains_why_a_pod_cannot_reach_another() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_podlab")).parent().unwrap();
    // Without graceful restart a stopped bgpd's routes go at once, as
    // after a crash that outlasts the restart time.
    let mut cluster = Cluster::start(
        Binaries::new(bin_dir),
        "stw",
        3,
        "  gracefulRestart: {enabled: false}\n",
    )
    .unwrap();
    let web = cluster
        .add_pod("n1", "shop", "web", &[("app", "web")], &[])
        .unwrap();
    let db = cluster
        .add_pod("n2", "shop", "db", &[("app", "db")], &[5432])
        .unwrap();
    let cache = cluster
        .add_pod("n3", "shop", "cache", &[("app", "cache")], &[6379])
        .unwrap();

    // All well: every daemon ready, both sessions up, no problem.
    let (table, report) = wait_clean(&cluster, "n1");
    assert!(
        table.contains("BGP: 2 of 2 sessions Established"),
        "{table}"
    );
    for daemon in report["daemons"].as_array().unwrap() {
        assert_eq!(daemon["state"], "ready", "{report}");
    }
    wait_connects(&cluster, &web, &db, 5432, true);
    wait_connects(&cluster, &web, &cache, 6379, true);
    let db_block = block_of(&cluster, "n2");
    let cache_block = block_of(&cluster, "n3");

    // 1. n2's bgpd stops: web cannot reach db. n1's status names the
    // session and the block that went with it.
    cluster.stop_bgpd("n2");
    let session = format!("[bgp] session with {} (", cluster.address("n2"));
    let missing = format!("[routing] no route to {db_block} (pods of node n2)");
    wait_status(&cluster, "n1", "n2's bgpd stopped", |p| {
        p.iter().any(|m| m.starts_with(&session)) && p.iter().any(|m| m.starts_with(&missing))
    });
    wait_connects(&cluster, &web, &db, 5432, false);
    cluster.start_bgpd("n2").unwrap();
    wait_clean(&cluster, "n1");
    wait_connects(&cluster, &web, &db, 5432, true);

    // 2. Someone else's route for n3's block (a leftover of a previous
    // CNI, an admin's blackhole) wins over ours in n1's kernel.
    let static_route = |verb: &str| {
        let argv = [
            "ip",
            "route",
            verb,
            "blackhole",
            &cache_block,
            "proto",
            "static",
        ];
        cluster.lab().exec("n1", &argv).unwrap();
    };
    static_route("add");
    let shadowed = format!(
        "[routing] {cache_block} via {} is in the kernel",
        cluster.address("n3")
    );
    let (_, report) = wait_status(&cluster, "n1", "a static route over n3's block", |p| {
        p.iter().any(|m| m.starts_with(&shadowed))
    });
    assert!(
        problems(&report).iter().any(|m| m.contains("blackhole")),
        "{report}"
    );
    wait_connects(&cluster, &web, &cache, 6379, false);
    static_route("del");
    wait_clean(&cluster, "n1");
    wait_connects(&cluster, &web, &cache, 6379, true);

    // 3. A NetworkPolicy lets only the api pods reach db: web is refused,
    // n1 is clean, and n2's status names the policy.
    cluster
        .apply(
            "policy-db",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-from-api, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: api}}}]\n    ports: [{port: 5432, protocol: TCP}]\n",
        )
        .unwrap();
    wait_connects(&cluster, &web, &db, 5432, false);
    wait_clean(&cluster, "n1");
    let dropped = "dropped (ingress): it is isolated by shop/db-from-api";
    let (_, report) = wait_status(&cluster, "n2", "a policy isolates db", |p| {
        p.iter()
            .any(|m| m.starts_with("[policy]") && m.contains("to shop/db") && m.contains(dropped))
    });
    let denial = &report["policy"]["denials"][0];
    assert_eq!(denial["pod"], "shop/db", "{report}");
    assert!(denial["packets"].as_u64().unwrap_or(0) > 0, "{report}");
    // The hint's command gives the verdict for this very connection.
    let explain = cluster
        .podctl(
            "n2",
            &[
                "policy", "explain", "--from", "shop/web", "--to", "shop/db", "--port", "5432/TCP",
            ],
        )
        .unwrap();
    let explained = String::from_utf8_lossy(&explain.stdout);
    println!("$ podctl policy explain --from shop/web --to shop/db --port 5432/TCP\n{explained}");
    assert!(explained.contains("db-from-api"), "{explained}");
}

/// Runs `podctl ARGS` on `node` in table and JSON form; both must succeed
/// (exit `code`), the table be non-empty and the JSON parse. Returns it.
fn both_forms(cluster: &Cluster, node: &str, args: &[&str], code: i32) -> Value {
    let table = cluster.podctl(node, args).unwrap();
    assert_eq!(
        table.status.code(),
        Some(code),
        "podctl {args:?}: {}{}",
        String::from_utf8_lossy(&table.stdout),
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(!table.stdout.is_empty(), "podctl {args:?} printed nothing");
    let json = cluster
        .podctl(node, &[args, &["-o", "json"]].concat())
        .unwrap();
    assert_eq!(
        json.status.code(),
        Some(code),
        "podctl {args:?} -o json: {json:?}"
    );
    serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "podctl {args:?} -o json: {e}: {}",
            String::from_utf8_lossy(&json.stdout)
        )
    })
}

#[test]
fn every_podctl_command_against_a_running_cluster() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_podlab")).parent().unwrap();
    let mut cluster = Cluster::start(Binaries::new(bin_dir), "stc", 2, "").unwrap();
    let web = cluster
        .add_pod("n1", "shop", "web", &[("app", "web")], &[])
        .unwrap();
    let db = cluster
        .add_pod("n2", "shop", "db", &[("app", "db")], &[5432])
        .unwrap();
    cluster
        .apply(
            "policy-db",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-from-web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: web}}}]\n",
        )
        .unwrap();
    wait_clean(&cluster, "n2");
    wait_connects(&cluster, &web, &db, 5432, true);
    let n2 = cluster.address("n2").to_string();
    let db_ip = db.ip().to_string();
    let db_block = block_of(&cluster, "n2");

    let version = both_forms(&cluster, "n1", &["version"], 0);
    for daemon in version["daemons"].as_array().unwrap() {
        assert_eq!(daemon["compatible"], true, "{version}");
    }
    let status = both_forms(&cluster, "n1", &["status"], 0);
    assert_eq!(status["bgp"]["sessions_established"], 1, "{status}");

    let peers = both_forms(&cluster, "n1", &["bgp", "peers"], 0);
    assert_eq!(peers["peers"][0]["peer"], n2.as_str(), "{peers}");
    assert_eq!(peers["peers"][0]["state"], "Established", "{peers}");
    let peer = both_forms(&cluster, "n1", &["bgp", "peer", &n2], 0);
    assert!(
        peer["messages_received"]["update"].as_u64().unwrap_or(0) > 0,
        "{peer}"
    );
    let routes = both_forms(&cluster, "n1", &["bgp", "routes"], 0);
    let learned = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == db_block.as_str())
        .unwrap_or_else(|| panic!("{db_block} not in {routes}"));
    assert_eq!(learned["kernel"], "installed", "{routes}");
    let route = both_forms(&cluster, "n1", &["bgp", "route", &db_ip], 0);
    assert_eq!(route["prefix"], db_block.as_str(), "{route}");

    let pools = both_forms(&cluster, "n1", &["ipam", "pools"], 0);
    assert_eq!(pools["pools"][0]["name"], "default-ipv4", "{pools}");
    let blocks = both_forms(&cluster, "n1", &["ipam", "blocks"], 0);
    assert_eq!(blocks["blocks"].as_array().unwrap().len(), 2, "{blocks}");
    let usage = both_forms(&cluster, "n1", &["ipam", "usage"], 0);
    assert_eq!(usage["pools"][0]["allocated"], 2, "{usage}");
    let show = both_forms(&cluster, "n1", &["ipam", "show", "--ip", &db_ip], 0);
    assert_eq!(show["block"], db_block.as_str(), "{show}");
    both_forms(&cluster, "n1", &["ipam", "check"], 0);
    // Pools change: each form creates and deletes its own.
    for form in [&[][..], &["-o", "json"][..]] {
        for args in [
            &["ipam", "pool", "create", "spare", "--cidr", "10.245.0.0/16"][..],
            &["ipam", "pool", "delete", "spare"][..],
        ] {
            let out = cluster.podctl("n1", &[args, form].concat()).unwrap();
            assert!(out.status.success(), "podctl {args:?} {form:?}: {out:?}");
            if !form.is_empty() {
                let _: Value = serde_json::from_slice(&out.stdout).unwrap();
            }
        }
    }
    let gone = cluster
        .podctl("n1", &["ipam", "pool", "delete", "spare"])
        .unwrap();
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    let release = both_forms(
        &cluster,
        "n1",
        &["ipam", "release", "--handle", "no-such-pod"],
        0,
    );
    assert_eq!(release["released"], 0, "{release}");

    let endpoints = both_forms(&cluster, "n2", &["policy", "endpoints"], 0);
    assert_eq!(endpoints["endpoints"][0]["pod"], "db", "{endpoints}");
    assert_eq!(
        endpoints["endpoints"][0]["ingress_isolated"], true,
        "{endpoints}"
    );
    let explain = both_forms(
        &cluster,
        "n2",
        &[
            "policy", "explain", "--from", "shop/web", "--to", "shop/db", "--port", "5432/TCP",
        ],
        0,
    );
    assert_eq!(explain["verdict"], "allowed", "{explain}");
    assert_eq!(explain["policies"][0], "shop/db-from-web", "{explain}");
}
