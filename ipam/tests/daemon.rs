// podroute-ipamd as a process, through its gRPC API: dual-stack allocation,
// idempotence, release, garbage collection, the node block stream, pools,
// check and show, and refusing to start on a damaged store.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{Ipamd, run_to_exit, wait_for};
use podroute_proto::common::v1::AddressFamily;
use podroute_proto::ipam::v1::{
    AllocateRequest, CheckRequest, CreatePoolRequest, DeletePoolRequest, GarbageCollectRequest,
    ListBlocksRequest, ListPoolsRequest, NodeBlocks, Pool, ProblemKind, ReleaseRequest,
    ShowAddressRequest, UsageRequest, WatchNodeBlocksRequest,
};
use tonic::Code;

fn request(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.into(),
        handle: handle.into(),
        pod_namespace: "default".into(),
        pod_name: handle.into(),
        ..Default::default()
    }
}

/// The first view from `stream` that `wanted` accepts, within 5 s.
async fn next_view(
    stream: &mut tonic::Streaming<NodeBlocks>,
    wanted: impl Fn(&NodeBlocks) -> bool,
) -> NodeBlocks {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let view = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("no such view within 5 s")
            .unwrap()
            .expect("the stream ended");
        if wanted(&view) {
            return view;
        }
    }
}

const NODES: &str = "\
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocates_dual_stack_idempotently_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &[]).await;
    let mut client = ipamd.client().await;

    let pools = client
        .list_pools(ListPoolsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = pools.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["v4", "v6"]);

    // No family asked: one of each the pools offer.
    let first = client
        .allocate(request("n1", "net.c1.eth0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.addresses.len(), 2, "{first:?}");
    assert_eq!(first.addresses[0].address, "10.96.0.0/32");
    assert_eq!(first.addresses[0].block, "10.96.0.0/26");
    assert_eq!(first.addresses[0].family, i32::from(AddressFamily::Ipv4));
    assert!(
        first.addresses[1].address.starts_with("fd00:10:96::"),
        "{first:?}"
    );
    assert!(!first.addresses[0].borrowed);

    // A CNI retry gets the same answer, and nothing more is held.
    let again = client
        .allocate(request("n1", "net.c1.eth0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.addresses, first.addresses);
    let second = client
        .allocate(AllocateRequest {
            families: vec![AddressFamily::Ipv4.into()],
            ..request("n1", "net.c2.eth0")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.addresses.len(), 1);
    assert_eq!(second.addresses[0].address, "10.96.0.1/32");

    // The same handle from another node is refused.
    let status = client
        .allocate(request("n2", "net.c1.eth0"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let shown = client
        .show_address(ShowAddressRequest {
            address: "10.96.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(shown.allocated);
    assert_eq!(shown.handle, "net.c1.eth0");
    assert_eq!(shown.node, "n1");
    assert_eq!(shown.block_node, "n1");

    let released = client
        .release(ReleaseRequest {
            handle: "net.c1.eth0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.released, 2);
    // Repeated: not an error, nothing released.
    let released = client
        .release(ReleaseRequest {
            handle: "net.c1.eth0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.released, 0);

    // Cooling down: the next pod does not get 10.96.0.0 back.
    let third = client
        .allocate(AllocateRequest {
            families: vec![AddressFamily::Ipv4.into()],
            ..request("n1", "net.c3.eth0")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(third.addresses[0].address, "10.96.0.2/32");
    let shown = client
        .show_address(ShowAddressRequest {
            address: "10.96.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!shown.allocated);
    assert!(shown.cooling_until_unix_ms > 0, "{shown:?}");

    let check = client
        .check(CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(check.problems.is_empty(), "{check:?}");
    assert!(check.nodes_checked);
    assert_eq!(check.handles_checked, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_keeps_only_valid_handles_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &[]).await;
    let mut client = ipamd.client().await;
    for (node, handle) in [("n1", "a"), ("n1", "b"), ("n1", "c"), ("n2", "d")] {
        client.allocate(request(node, handle)).await.unwrap();
    }
    let gc = client
        .garbage_collect(GarbageCollectRequest {
            node: "n1".into(),
            valid_handles: vec!["b".into()],
            handle_prefix: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut released = gc.released_handles.clone();
    released.sort();
    assert_eq!(released, ["a", "c"]);
    assert_eq!(gc.released_addresses, 4);
    for (handle, held) in [("a", false), ("b", true), ("c", false), ("d", true)] {
        let again = client
            .release(ReleaseRequest {
                handle: handle.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.released > 0, held, "{handle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_block_stream_follows_claims_borrowing_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    // A pool of two /30 blocks, no cool-down, no grace: every state change
    // shows at once.
    let tiny = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: tiny}
spec: {cidr: 10.200.0.0/29, blockSize: 30}
";
    let ipamd = Ipamd::embedded(
        dir.path(),
        &format!("{NODES}---\n{tiny}"),
        &["--release-cooldown", "0", "--empty-block-grace", "0"],
    )
    .await;
    let mut client = ipamd.client().await;
    let only_tiny = |node: &str, handle: &str| AllocateRequest {
        pools: vec!["tiny".into()],
        families: vec![AddressFamily::Ipv4.into()],
        ..request(node, handle)
    };

    let mut stream = client
        .watch_node_blocks(WatchNodeBlocksRequest { node: "n2".into() })
        .await
        .unwrap()
        .into_inner();
    let empty = stream.message().await.unwrap().unwrap();
    assert!(
        empty.blocks.is_empty() && empty.borrowed.is_empty(),
        "{empty:?}"
    );

    // n1 takes both blocks; n2 then must borrow.
    for i in 0..8 {
        client
            .allocate(only_tiny("n1", &format!("n1-{i}")))
            .await
            .unwrap();
    }
    client
        .release(ReleaseRequest {
            handle: "n1-7".into(),
        })
        .await
        .unwrap();
    let borrowed = client
        .allocate(only_tiny("n2", "n2-0"))
        .await
        .unwrap()
        .into_inner();
    assert!(borrowed.addresses[0].borrowed, "{borrowed:?}");
    assert_eq!(borrowed.addresses[0].address, "10.200.0.7/32");

    let view = next_view(&mut stream, |v| !v.borrowed.is_empty()).await;
    assert!(view.blocks.is_empty());
    assert_eq!(view.borrowed[0].address, "10.200.0.7");
    assert_eq!(view.borrowed[0].block_node, "n1");

    // Every address is held now: the error names the pool.
    let status = client.allocate(only_tiny("n2", "n2-1")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("tiny"), "{}", status.message());

    // n2's pod goes: its view is empty again.
    client
        .release(ReleaseRequest {
            handle: "n2-0".into(),
        })
        .await
        .unwrap();
    next_view(&mut stream, |v| v.borrowed.is_empty()).await;

    // n1's pods all go: with no grace, the sweeper returns both blocks.
    for i in 0..7 {
        client
            .release(ReleaseRequest {
                handle: format!("n1-{i}"),
            })
            .await
            .unwrap();
    }
    wait_for(
        "the blocks to return to the pool",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            async move {
                let blocks = client
                    .list_blocks(ListBlocksRequest { node: "n1".into() })
                    .await
                    .ok()?
                    .into_inner();
                blocks.blocks.iter().all(|b| b.pool != "tiny").then_some(())
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_managed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &[]).await;
    let mut client = ipamd.client().await;
    let pool = |name: &str, cidr: &str| Pool {
        name: name.into(),
        cidr: cidr.into(),
        block_size: 28,
        ..Default::default()
    };

    let overlapping = client
        .create_pool(CreatePoolRequest {
            pool: Some(pool("x", "10.96.1.0/24")),
        })
        .await
        .unwrap_err();
    assert_eq!(overlapping.code(), Code::InvalidArgument);
    assert!(
        overlapping.message().contains("v4"),
        "{}",
        overlapping.message()
    );
    let not_network = client
        .create_pool(CreatePoolRequest {
            pool: Some(pool("x", "10.50.0.1/24")),
        })
        .await
        .unwrap_err();
    assert_eq!(not_network.code(), Code::InvalidArgument);

    client
        .create_pool(CreatePoolRequest {
            pool: Some(pool("extra", "10.50.0.0/24")),
        })
        .await
        .unwrap();
    let held = client
        .allocate(AllocateRequest {
            pools: vec!["extra".into()],
            families: vec![AddressFamily::Ipv4.into()],
            ..request("n1", "in-extra")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.addresses[0].pool, "extra");

    let refused = client
        .delete_pool(DeletePoolRequest {
            name: "extra".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    client
        .release(ReleaseRequest {
            handle: "in-extra".into(),
        })
        .await
        .unwrap();
    let deleted = client
        .delete_pool(DeletePoolRequest {
            name: "extra".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.blocks_removed, 1);

    let usage = client.usage(UsageRequest {}).await.unwrap().into_inner();
    let v4 = usage.pools.iter().find(|p| p.pool == "v4").unwrap();
    assert_eq!(v4.capacity, 1 << 20);

    // A block of a node the cluster no longer has.
    client.allocate(request("gone", "orphan")).await.unwrap();
    let check = client
        .check(CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = check.problems.iter().map(|p| p.kind).collect();
    assert!(
        kinds.contains(&i32::from(ProblemKind::BlockOfUnknownNode)),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("ipam.redb");
    let garbage = vec![0x5au8; 64 * 1024];
    std::fs::write(&file, &garbage).unwrap();
    let (status, stderr) = run_to_exit(
        dir.path(),
        &["--data-dir".into(), data.display().to_string()],
    );
    assert!(!status.success());
    assert!(stderr.contains("ipam.redb"), "{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the file was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_manifest_at_start_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("pools.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/24, blockSize: 20}\n",
    )
    .unwrap();
    let (status, stderr) = run_to_exit(
        dir.path(),
        &[
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--manifests".into(),
            manifests.display().to_string(),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("pools.yaml"), "{stderr}");
    assert!(stderr.contains("\"p\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_reapplied_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let ipamd = Ipamd::embedded(dir.path(), NODES, &[]).await;
    let manifests = dir.path().join("manifests.yaml");
    let mut text = std::fs::read_to_string(&manifests).unwrap();
    text.push_str(
        "---\napiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: late}\nspec: {cidr: 10.70.0.0/24}\n",
    );
    std::fs::write(&manifests, text).unwrap();
    let client = ipamd.client().await;
    wait_for("the new pool", Duration::from_secs(10), || {
        let mut client = client.clone();
        async move {
            let pools = client
                .list_pools(ListPoolsRequest {})
                .await
                .ok()?
                .into_inner();
            pools.pools.iter().any(|p| p.name == "late").then_some(())
        }
    })
    .await;
}
