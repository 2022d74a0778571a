// Never one address twice, never an acknowledged allocation lost: 32
// concurrent clients allocating and releasing against one ipamd on its
// embedded store, against three ipamd replicas on one real etcd (a pod's
// release going to another replica than its allocation), and through a
// kill -9 of ipamd in the middle of the load. The first two use a small
// pool of small blocks and no cool-down, so every address is handed out
// again moments after its release (borrowing is tested in daemon.rs and by
// the allocator's model test).
//
// PODROUTE_IPAM_LOAD_CYCLES sets the cycles per client: the full
// figure is 10,000 (run it with `--release`); the default keeps CI short.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{Ipamd, POOLS, wait_for};
use podroute_ipam::loadgen::{self, LoadConfig, LoadReport};
use podroute_ipam::test_support::EtcdServer;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, CheckRequest, ShowAddressRequest, UsageRequest};
use tonic::transport::Channel;

const CLIENTS: usize = 32;
const NODES: usize = 8;
/// Allocations each client keeps at the end, to look up afterwards.
const KEEP: usize = 3;

fn cycles(default: usize) -> usize {
    std::env::var("PODROUTE_IPAM_LOAD_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 1,024 addresses in 64 blocks of 16 for 8 nodes.
const CHURN_POOL: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: churn}
spec: {cidr: 10.128.0.0/22, blockSize: 28}
";

fn config(run_id: &str, cycles: usize) -> LoadConfig {
    LoadConfig {
        clients: CLIENTS,
        cycles,
        nodes: NODES,
        keep: KEEP,
        run_id: run_id.to_owned(),
        stop_on_error: false,
        pool: Some("churn".to_owned()),
    }
}

/// Allocations and releases the replicas' metrics count, summed: each
/// address is counted once, by the replica that committed it.
async fn counted(replicas: &[Ipamd]) -> (f64, f64) {
    let (mut allocations, mut releases) = (0.0, 0.0);
    for replica in replicas {
        let scrape = replica.scrape().await;
        allocations += scrape
            .value("podroute_ipam_allocations_total", &[])
            .unwrap();
        releases += scrape
            .value("podroute_ipam_releases_total", &[("cause", "release")])
            .unwrap();
    }
    (allocations, releases)
}

/// Every acknowledged allocation still held is in ipamd under its handle,
/// the v4 pool's usage counts exactly those, and Check finds nothing.
async fn assert_all_held(client: &mut IpamClient<Channel>, report: &LoadReport) {
    assert!(
        report.duplicates.is_empty(),
        "duplicates: {:?}",
        report.duplicates
    );
    for (handle, address) in &report.held {
        let shown = client
            .show_address(ShowAddressRequest {
                address: address.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            shown.allocated && &shown.handle == handle,
            "acknowledged {address} for {handle} is lost: {shown:?}"
        );
    }
    let check = client
        .check(CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

async fn allocated_in(client: &mut IpamClient<Channel>, pool: &str) -> u64 {
    let usage = client.usage(UsageRequest {}).await.unwrap().into_inner();
    usage
        .pools
        .iter()
        .find(|p| p.pool == pool)
        .map_or(0, |p| p.allocated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_32_clients_no_duplicates_no_loss() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), CHURN_POOL, &["--release-cooldown", "0"]).await;
    let report = loadgen::run(&[ipamd.channel().await], &config("emb", cycles(300))).await;
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert_eq!(report.allocations, (CLIENTS * cycles(300)) as u64);
    // One IPv4 address per allocation.
    assert_eq!(
        counted(std::slice::from_ref(&ipamd)).await,
        (report.allocations as f64, report.releases as f64)
    );
    let mut client = ipamd.client().await;
    assert_all_held(&mut client, &report).await;
    assert_eq!(
        allocated_in(&mut client, "churn").await,
        report.held.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_one_etcd_no_duplicates_no_loss() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("pools.yaml");
    std::fs::write(&manifests, format!("{POOLS}---\n{CHURN_POOL}")).unwrap();
    let mut replicas = Vec::new();
    for i in 0..3 {
        let args = vec![
            "--store".to_owned(),
            "etcd".to_owned(),
            "--etcd-endpoints".to_owned(),
            etcd.endpoint(),
            "--manifests".to_owned(),
            manifests.display().to_string(),
            "--release-cooldown".to_owned(),
            "0".to_owned(),
        ];
        replicas.push(Ipamd::start(dir.path(), &format!("replica{i}"), &args).await);
    }
    let mut channels = Vec::new();
    for replica in &replicas {
        channels.push(replica.channel().await);
    }
    let report = loadgen::run(&channels, &config("etcd", cycles(100))).await;
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    // Counted once each, whichever replica won, however often it retried.
    assert_eq!(
        counted(&replicas).await,
        (report.allocations as f64, report.releases as f64)
    );
    // Each replica sees what the others wrote.
    for replica in &replicas {
        let mut client = replica.client().await;
        let held = report.held.len() as u64;
        wait_for("the replica to catch up", Duration::from_secs(10), || {
            let mut client = client.clone();
            async move { (allocated_in(&mut client, "churn").await == held).then_some(()) }
        })
        .await;
        assert_all_held(&mut client, &report).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut ipamd = Ipamd::embedded(dir.path(), "", &[]).await;
    let channel = ipamd.channel().await;
    let load = LoadConfig {
        clients: 8,
        cycles: 100_000,
        nodes: 4,
        keep: 50,
        run_id: "crash".to_owned(),
        stop_on_error: true,
        pool: None,
    };
    let running = tokio::spawn(async move { loadgen::run(&[channel], &load).await });

    // Kill it once a good number of allocations are acknowledged.
    let client = ipamd.client().await;
    wait_for("allocations under way", Duration::from_secs(60), || {
        let mut client = client.clone();
        async move { (allocated_in(&mut client, "v4").await >= 300).then_some(()) }
    })
    .await;
    ipamd.kill9();
    let report = running.await.unwrap();
    assert!(!report.held.is_empty());
    assert!(
        !report.errors.is_empty(),
        "the load should have seen the crash"
    );

    ipamd.restart().await;
    let mut client = ipamd.client().await;
    assert_all_held(&mut client, &report).await;

    // New pods never get an address the crashed run still holds.
    let held: std::collections::HashSet<_> = report.held.values().copied().collect();
    for i in 0..200 {
        let answer = client
            .allocate(AllocateRequest {
                node: format!("n{}", i % 4),
                handle: format!("after-{i}"),
                families: vec![podroute_proto::common::v1::AddressFamily::Ipv4.into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let address: std::net::IpAddr = answer.addresses[0]
            .address
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(!held.contains(&address), "{address} handed out twice");
    }
}
