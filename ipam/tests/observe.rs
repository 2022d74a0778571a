// podroute-ipamd's operator surface as a process: /metrics parsed strictly
// and checked against ipam/METRICS.md, counters and histograms that move
// with real Allocate and Release calls, pool gauges equal to Usage, the
// block watcher gauge, /livez and /readyz as documented (with etcd lost
// too), GetStatus, the metrics port's flags, and JSON logs whose state
// changes carry their fields.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Ipamd, run_to_exit, wait_for};
use podroute_ipam::test_support::EtcdServer;
use podroute_proto::common::v1::GetStatusRequest;
use podroute_proto::ipam::v1::{
    AllocateRequest, CreatePoolRequest, DeletePoolRequest, Pool, ReleaseRequest, UsageRequest,
    WatchNodeBlocksRequest,
};
use podroute_proto::metrics::Scrape;
use tonic::Code;

const NODES: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
";

const DEADLINE: Duration = Duration::from_secs(30);

fn request(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.into(),
        handle: handle.into(),
        pod_namespace: "default".into(),
        pod_name: handle.into(),
        ..Default::default()
    }
}

/// Every family METRICS.md's table documents, as written there (a counter
/// with its `_total`).
fn documented() -> BTreeSet<String> {
    let text = include_str!("../METRICS.md");
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("podroute_"))
        .map(str::to_owned)
        .collect()
}

/// The scrape's families as METRICS.md writes them, with their TYPE.
fn exposed(scrape: &Scrape) -> Vec<(String, String)> {
    scrape
        .types
        .iter()
        .map(|(family, kind)| (family.clone(), kind.clone()))
        .collect()
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .value(name, labels)
        .unwrap_or_else(|| panic!("no single sample {name} {labels:?}"))
}

/// Calls of `method` in its latency histogram.
fn timed(scrape: &Scrape, method: &str) -> f64 {
    value(
        scrape,
        "podroute_ipam_request_duration_seconds_count",
        &[("method", method)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_real_calls_and_match_the_docs() {
    let dir = tempfile::tempdir().unwrap();
    // A cool-down far longer than the test: the cooling figures cannot
    // change between the scrape and the Usage call.
    let ipamd = Ipamd::embedded(dir.path(), NODES, &["--release-cooldown", "3600"]).await;
    let mut client = ipamd.client().await;

    let before = ipamd.scrape().await;
    let documented = documented();
    for (name, kind) in exposed(&before) {
        assert!(
            documented.contains(&name),
            "{name} ({kind}) is not in METRICS.md"
        );
    }
    let names: BTreeSet<String> = exposed(&before).into_iter().map(|(n, _)| n).collect();
    for name in &documented {
        assert!(
            names.contains(name),
            "METRICS.md documents {name}: not exposed"
        );
    }
    for (family, kind) in [
        ("podroute_ipam_allocations_total", "counter"),
        ("podroute_ipam_releases_total", "counter"),
        ("podroute_ipam_conflicts_total", "counter"),
        ("podroute_ipam_retries_total", "counter"),
        ("podroute_ipam_requests_total", "counter"),
        ("podroute_ipam_request_duration_seconds", "histogram"),
        ("podroute_ipam_store_commit_duration_seconds", "histogram"),
        ("podroute_ipam_pool_allocated_addresses", "gauge"),
        ("podroute_ipam_node_block_watchers", "gauge"),
        ("podroute_build_info", "gauge"),
    ] {
        assert_eq!(
            before.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    assert_eq!(value(&before, "podroute_ipam_allocations_total", &[]), 0.0);
    // No sample names an address, a block or a handle.
    for sample in &before.samples {
        for label in sample.labels.keys() {
            assert!(
                [
                    "pool", "method", "code", "cause", "type", "reason", "le", "daemon", "version"
                ]
                .contains(&label.as_str()),
                "unexpected label {label} on {}",
                sample.name
            );
        }
    }

    // Two dual-stack pods, one repeat, one release, one address conflict.
    let a = client
        .allocate(request("n1", "pod-a"))
        .await
        .unwrap()
        .into_inner();
    client.allocate(request("n1", "pod-b")).await.unwrap();
    client.allocate(request("n1", "pod-a")).await.unwrap();
    let released = client
        .release(ReleaseRequest {
            handle: "pod-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.released, 2);
    let taken = AllocateRequest {
        addresses: vec![a.addresses[0].address.clone()],
        ..request("n1", "pod-c")
    };
    let refused = client.allocate(taken).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");

    let after = ipamd.scrape().await;
    let usage = client.usage(UsageRequest {}).await.unwrap().into_inner();
    assert_eq!(value(&after, "podroute_ipam_allocations_total", &[]), 4.0);
    assert_eq!(
        value(
            &after,
            "podroute_ipam_releases_total",
            &[("cause", "release")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "podroute_ipam_conflicts_total",
            &[("type", "address")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "podroute_ipam_requests_total",
            &[("method", "Allocate"), ("code", "OK")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "podroute_ipam_requests_total",
            &[("method", "Allocate"), ("code", "AlreadyExists")]
        ),
        1.0
    );
    assert_eq!(timed(&after, "Allocate") - timed(&before, "Allocate"), 4.0);
    assert_eq!(timed(&after, "Release") - timed(&before, "Release"), 1.0);
    assert!(
        value(
            &after,
            "podroute_ipam_store_commit_duration_seconds_count",
            &[]
        ) > value(
            &before,
            "podroute_ipam_store_commit_duration_seconds_count",
            &[]
        )
    );
    assert_eq!(value(&after, "podroute_ipam_handles", &[]), 1.0);
    assert_eq!(value(&after, "podroute_ipam_nodes", &[]), 1.0);

    // The pool gauges are the Usage figures.
    assert_eq!(usage.pools.len(), 2);
    for pool in &usage.pools {
        let by_pool = [("pool", pool.pool.as_str())];
        for (name, figure) in [
            ("podroute_ipam_pool_capacity_addresses", pool.capacity),
            ("podroute_ipam_pool_allocated_addresses", pool.allocated),
            ("podroute_ipam_pool_cooling_addresses", pool.cooling),
            ("podroute_ipam_pool_reserved_addresses", pool.reserved),
            ("podroute_ipam_pool_blocks", pool.blocks_total),
            ("podroute_ipam_pool_claimed_blocks", pool.blocks_claimed),
        ] {
            assert_eq!(
                value(&after, name, &by_pool),
                figure as f64,
                "{name} {by_pool:?}"
            );
        }
        assert_eq!(
            value(&after, "podroute_ipam_pool_disabled", &by_pool),
            f64::from(u8::from(pool.disabled))
        );
        assert_eq!((pool.allocated, pool.cooling), (1, 1), "{pool:?}");
    }

    // A node's bgpd watching its blocks is counted while the stream is open.
    let mut stream = client
        .watch_node_blocks(WatchNodeBlocksRequest { node: "n1".into() })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().expect("a first view");
    let watchers = |expected: f64| {
        let ipamd = &ipamd;
        move || async move {
            let scrape = ipamd.scrape().await;
            (value(&scrape, "podroute_ipam_node_block_watchers", &[]) == expected).then_some(())
        }
    };
    wait_for("the watcher to be counted", DEADLINE, watchers(1.0)).await;
    drop(stream);
    wait_for("the watcher to go", DEADLINE, watchers(0.0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_status_answer_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &[]).await;
    assert_eq!(ipamd.http_get("/livez").await, (200, "ok\n".to_owned()));
    assert_eq!(ipamd.http_get("/readyz").await, (200, "ok\n".to_owned()));

    let mut client = ipamd.client().await;
    client.allocate(request("n1", "pod-a")).await.unwrap();
    client
        .release(ReleaseRequest {
            handle: "pod-a".into(),
        })
        .await
        .unwrap();
    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let health = status.health.clone().unwrap();
    assert!(health.live && health.ready, "{health:?}");
    assert_eq!(health.reason, "");
    let metrics = ipamd.metrics_address().await;
    assert_eq!(health.metrics_address, metrics.to_string());
    assert!(
        metrics.ip().is_loopback() && metrics.port() != 0,
        "{metrics}"
    );
    let file = dir.path().join("data").join("ipam.redb");
    assert_eq!(status.store, format!("embedded {}", file.display()));
    assert_eq!((status.pools, status.nodes), (2, 1), "{status:?}");
    assert_eq!((status.allocations, status.releases), (2, 2), "{status:?}");
    // GetStatus itself is a counted call.
    let scrape = ipamd.scrape().await;
    assert!(timed(&scrape, "GetStatus") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off_and_a_taken_port_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let off = Ipamd::embedded(dir.path(), "", &["--metrics-listen", "off"]).await;
    let status = off
        .client()
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.health.unwrap().metrics_address, "");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let other = tempfile::tempdir().unwrap();
    let (exit, stderr) = run_to_exit(
        other.path(),
        &[
            "--data-dir".into(),
            other.path().join("data").display().to_string(),
            "--metrics-listen".into(),
            address.clone(),
        ],
    );
    assert!(!exit.success());
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_etcd_cannot_be_reached() {
    let mut etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let args = vec![
        "--store".to_owned(),
        "etcd".to_owned(),
        "--etcd-endpoints".to_owned(),
        etcd.endpoint(),
        "--data-dir".to_owned(),
        dir.path().join("unused").display().to_string(),
    ];
    let ipamd = Ipamd::start(dir.path(), "ipamd", &args).await;
    assert_eq!(ipamd.http_get("/readyz").await, (200, "ok\n".to_owned()));

    etcd.kill();
    let observed = &ipamd;
    let reason = wait_for("/readyz to say etcd is gone", DEADLINE, || async move {
        let (code, body) = observed.http_get("/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(
        reason.starts_with("the IPAM store has been unreachable for"),
        "{reason}"
    );
    assert_eq!(reason.lines().count(), 1, "{reason}");
    // Still live: a restart would not bring etcd back.
    assert_eq!(ipamd.http_get("/livez").await, (200, "ok\n".to_owned()));
    let status = ipamd
        .client()
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let health = status.health.unwrap();
    assert!(health.live && !health.ready, "{health:?}");
    assert!(health.reason.contains("unreachable"), "{health:?}");
    assert!(status.store.starts_with("etcd "), "{}", status.store);
    let scrape = ipamd.scrape().await;
    assert_eq!(value(&scrape, "podroute_ipam_store_reachable", &[]), 0.0);
    // Lost once, said once, however often the store is retried.
    let lost = ipamd
        .log()
        .lines()
        .filter(|l| l.contains("IPAM store unreachable"))
        .count();
    assert_eq!(lost, 1, "{}", ipamd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &["--log-format", "json"]).await;
    let mut client = ipamd.client().await;
    let pool = Pool {
        name: "extra".into(),
        cidr: "10.70.0.0/24".into(),
        block_size: 28,
        ..Default::default()
    };
    client
        .create_pool(CreatePoolRequest { pool: Some(pool) })
        .await
        .unwrap();
    let mut addresses = Vec::new();
    for i in 0..5 {
        // From the manifests' pools: "extra" stays free to delete.
        let from_manifests = AllocateRequest {
            pools: vec!["v4".into(), "v6".into()],
            ..request("n1", &format!("pod-{i}"))
        };
        let got = client.allocate(from_manifests).await.unwrap().into_inner();
        addresses.extend(got.addresses.into_iter().map(|a| a.address));
    }
    for i in 0..5 {
        client
            .release(ReleaseRequest {
                handle: format!("pod-{i}"),
            })
            .await
            .unwrap();
    }
    client
        .delete_pool(DeletePoolRequest {
            name: "extra".into(),
        })
        .await
        .unwrap();
    // A bad file is refused, once, with the reason.
    std::fs::write(
        dir.path().join("manifests.yaml"),
        "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: bad}\nspec: {cidr: nonsense}\n",
    )
    .unwrap();
    let logged = &ipamd;
    wait_for("the refusal to be logged", DEADLINE, || async move {
        logged.log().contains("manifests refused").then_some(())
    })
    .await;

    let log = ipamd.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let message = |e: &serde_json::Value| e["fields"]["message"].as_str().unwrap_or("").to_owned();
    for event in &events {
        assert!(event["timestamp"].is_string(), "{event}");
        assert!(event["level"].is_string(), "{event}");
        assert!(!message(event).is_empty(), "{event}");
    }
    let find = |text: &str, pool: &str| {
        events
            .iter()
            .find(|e| message(e) == text && e["fields"]["pool"] == pool)
            .unwrap_or_else(|| panic!("no {text:?} event for pool {pool}:\n{log}"))
    };
    assert_eq!(find("pool created", "v4")["fields"]["source"], "manifests");
    assert_eq!(
        find("pool created", "extra")["fields"]["cidr"],
        "10.70.0.0/24"
    );
    assert_eq!(find("pool deleted", "extra")["level"], "INFO");
    let loaded = events
        .iter()
        .find(|e| message(e) == "IPAM store loaded")
        .expect("store loaded event");
    assert!(
        loaded["fields"]["store"]
            .as_str()
            .is_some_and(|s| s.starts_with("embedded ")),
        "{loaded}"
    );
    let refused = events
        .iter()
        .find(|e| message(e).starts_with("manifests refused"))
        .expect("refused event");
    assert_eq!(refused["level"], "ERROR");
    assert!(
        refused["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nonsense")),
        "{refused}"
    );
    // Nothing per address at info. (A pool's first address is left out:
    // it is in the pool's CIDR, which pool events carry.)
    let bare: Vec<&str> = addresses
        .iter()
        .filter_map(|a| a.split('/').next())
        .filter(|a| !a.ends_with(".0") && !a.ends_with("::"))
        .collect();
    assert_eq!(bare.len(), 8, "{addresses:?}");
    for event in events.iter().filter(|e| e["level"] == "INFO") {
        let text = event.to_string();
        for address in &bare {
            assert!(!text.contains(address), "an address at info: {text}");
        }
    }
}
