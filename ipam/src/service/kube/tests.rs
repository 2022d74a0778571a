// The Kubernetes source against the fake API server (podroute_k8s::fake)
// and a real engine on the memory store, on a paused clock: the source's
// debounce, grace periods and status rounds and kube's backoff all run in
// virtual time, which moves only when every task is idle, so no outcome
// depends on speed. (The memory store answers in the caller's task; the
// embedded store's writer thread would let the clock jump during an fsync.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, StatusCode};
use podroute_k8s::fake::{DEADLINE, FakeApi, FakeKind};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::*;
use crate::allocator::{AllocError, AllocateRequest, Settings};
use crate::model::State;
use crate::service::nodes::NodeDirectory;
use crate::service::stats::ReleaseCause;
use crate::store::MemoryStore;

const IPPOOLS: FakeKind =
    FakeKind::cluster("/apis/podroute.io/v1/ippools", "podroute.io/v1", "IPPool");
const NODES_KIND: FakeKind = FakeKind::NODES;
const PODS_KIND: FakeKind = FakeKind::PODS;
const GRACE: Duration = Duration::from_secs(300);

// Objects as the API server returns them, with fields the source drops.

fn ippool(name: &str, cidr: &str, spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": "podroute.io/v1",
        "kind": "IPPool",
        "metadata": {
            "name": name,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
        "spec": {"cidr": cidr, "blockSize": 28},
    });
    if let (Some(fields), Some(target)) = (spec.as_object(), object["spec"].as_object_mut()) {
        target.extend(fields.clone());
    }
    object
}

fn node(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": "10.99.0.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]},
    })
}

fn pod(namespace: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "serve", "image": "registry.k8s.io/pause:3.10"}],
        },
        "status": {"phase": "Running", "podIPs": [{"ip": "10.1.0.1"}]},
    })
}

/// The engine, with addresses that need no cool-down (the engine's clock
/// is the wall clock, which a paused tokio clock does not move).
async fn engine() -> Ipamd<MemoryStore> {
    let settings = Settings {
        cooldown_ms: 0,
        ..Settings::default()
    };
    let nodes = Arc::new(NodeDirectory::default());
    Ipamd::start(MemoryStore::new(), settings, nodes)
        .await
        .unwrap()
}

struct Harness {
    api: FakeApi,
    ipamd: Ipamd<MemoryStore>,
    source: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.source.abort();
    }
}

/// The fake holding `objects`, and the source running against it.
async fn start(objects: &[(FakeKind, Value)], config: KubeConfig) -> Harness {
    let (api, client) = FakeApi::start(&[IPPOOLS, NODES_KIND, PODS_KIND]);
    for (kind, object) in objects {
        api.put(*kind, object.clone());
    }
    let ipamd = engine().await;
    let source = tokio::spawn(run(client, ipamd.clone(), config));
    Harness { api, ipamd, source }
}

fn config() -> KubeConfig {
    KubeConfig {
        pod_gc_grace: GRACE,
        ..KubeConfig::default()
    }
}

/// Lets the source and the fake handle everything they were sent and every
/// timer due within a second (the debounce) fire. How a test sees that
/// something did *not* happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Polls `done` every 100 ms of virtual time until it holds; panics after
/// DEADLINE.
async fn wait_until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let waited = tokio::time::timeout(DEADLINE, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {DEADLINE:?}");
}

async fn wait_state(ipamd: &Ipamd<MemoryStore>, what: &str, done: impl Fn(&State) -> bool) {
    wait_until(what, || ipamd.read(|mirror| done(&mirror.state))).await;
}

async fn wait_ready(ipamd: &Ipamd<MemoryStore>) {
    wait_until("ipamd ready", || std::future::ready(ipamd.ready().is_ok())).await;
}

fn request(node: &str, handle: &str, namespace: &str, pod: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.to_owned(),
        handle: handle.to_owned(),
        pod_namespace: namespace.to_owned(),
        pod_name: pod.to_owned(),
        ..AllocateRequest::default()
    }
}

async fn held(ipamd: &Ipamd<MemoryStore>, handle: &str) -> bool {
    ipamd
        .read(|mirror| mirror.state.handle(handle).is_some())
        .await
}

/// The reads of single pods (the live check before a release).
fn pod_reads(api: &FakeApi) -> Vec<podroute_k8s::fake::Seen> {
    api.all_requests()
        .into_iter()
        .filter(|seen| seen.path.starts_with("/api/v1/namespaces/") && seen.path.contains("/pods/"))
        .collect()
}

/// A client to the fake (`fake`, its own) whose pods watches fall behind
/// while the returned sender holds `true`: each event the API server sends
/// meanwhile waits, and they all arrive in order once it is `false` again.
/// A watch minutes behind the cluster (an overloaded API server, a slow
/// link) looks like this, with no error to tell.
fn lagging_pods_watch(fake: Client) -> (Client, watch::Sender<bool>) {
    use http_body_util::{BodyExt, StreamBody};

    let (lag, lagging) = watch::channel(false);
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (fake, lagging) = (fake.clone(), lagging.clone());
        async move {
            let uri = request.uri();
            let pods_watch = uri.path() == PODS_KIND.path
                && uri
                    .query()
                    .is_some_and(|query| query.contains("watch=true"));
            let response = fake.send(request).await?;
            if !pods_watch {
                return Ok::<_, kube::Error>(response.map(BodyExt::boxed_unsync));
            }
            let (parts, body) = response.into_parts();
            let frames = futures_util::stream::unfold(
                (body, lagging),
                |(mut body, mut lagging)| async move {
                    let frame = body.frame().await?;
                    // Passed on only while the watch keeps up.
                    let _ = lagging.wait_for(|lag| !*lag).await;
                    Some((frame, (body, lagging)))
                },
            );
            let body = StreamBody::new(frames).boxed_unsync();
            Ok(http::Response::from_parts(parts, body))
        }
    });
    (Client::new(service, "default"), lag)
}

fn status_patches(api: &FakeApi, pool: &str) -> Vec<podroute_k8s::fake::Seen> {
    let path = format!("/apis/podroute.io/v1/ippools/{pool}/status");
    api.requests(&path)
        .into_iter()
        .filter(|seen| seen.method == Method::PATCH)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pools_from_ippools_serve_allocations_once_everything_is_listed() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
    ];
    let (api, client) = FakeApi::start(&[IPPOOLS, NODES_KIND, PODS_KIND]);
    for (kind, object) in &objects {
        api.put(*kind, object.clone());
    }
    // The first pods list fails, the second waits.
    api.fail_lists(PODS_KIND, 1);
    api.hold_lists(PODS_KIND, true);
    let ipamd = engine().await;
    let source = tokio::spawn(run(client, ipamd.clone(), config()));

    api.wait_for_requests("pods listed twice", |api| api.lists(PODS_KIND) == 2)
        .await;
    settle().await;
    assert_eq!(ipamd.ready(), Err(NOT_LISTED.to_owned()));
    assert_eq!(ipamd.read(|m| m.state.pool_count()).await, 0);

    api.hold_lists(PODS_KIND, false);
    wait_ready(&ipamd).await;
    let pool = ipamd.read(|m| m.state.pool("p").cloned()).await.unwrap();
    assert_eq!(pool.value.spec.cidr.to_string(), "10.1.0.0/24");
    assert_eq!(pool.value.spec.block_size, Some(28));
    assert_eq!(ipamd.nodes().known(), Some(["n1".to_owned()].into()));
    let allocated = ipamd
        .allocate(request("n1", "h1", "web", "a"))
        .await
        .unwrap();
    assert_eq!(allocated[0].address.to_string(), "10.1.0.0");
    assert_eq!(allocated[0].pool, "p");

    // kube's list-then-watch for each kind, over all namespaces.
    for kind in [IPPOOLS, NODES_KIND, PODS_KIND] {
        api.wait_for_requests("watching", |api| api.watches(kind) == 1)
            .await;
        let requests = api.requests(kind.path);
        let list = requests.iter().find(|seen| seen.is_list()).unwrap();
        assert_eq!(list.param("limit"), Some("500"), "{list:?}");
        let watch = requests.iter().find(|seen| seen.is_watch()).unwrap();
        let listed_at = api.lists_answered(kind).last().unwrap().to_string();
        assert_eq!(watch.param("resourceVersion"), Some(listed_at.as_str()));
    }
    // Nothing but reads and the pool's status was asked of the API.
    for seen in api.all_requests() {
        assert!(
            seen.method == Method::GET
                || (seen.method == Method::PATCH && seen.path.ends_with("/status")),
            "{seen:?}"
        );
    }
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn a_bad_ippool_is_refused_and_the_others_apply() {
    let objects = [
        (IPPOOLS, ippool("good", "10.1.0.0/24", json!({}))),
        // A field only a newer CRD has: the object does not convert.
        (
            IPPOOLS,
            ippool("newer", "10.2.0.0/24", json!({"natOutgoing": true})),
        ),
        (IPPOOLS, ippool("host-bits", "10.3.0.1/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    let pools = |state: &State| -> Vec<String> {
        state.pools().map(|p| p.value.name().to_owned()).collect()
    };
    assert_eq!(h.ipamd.read(|m| pools(&m.state)).await, ["good"]);

    // One overlapping a stored pool is refused too; fixed, it applies.
    h.api
        .put(IPPOOLS, ippool("clash", "10.1.0.0/25", json!({})));
    settle().await;
    assert_eq!(h.ipamd.read(|m| pools(&m.state)).await, ["good"]);
    h.api
        .put(IPPOOLS, ippool("newer", "10.2.0.0/24", json!({})));
    h.api
        .put(IPPOOLS, ippool("clash", "10.4.0.0/24", json!({})));
    wait_state(&h.ipamd, "the fixed pools", |state| state.pool_count() == 3).await;
    assert_eq!(
        h.ipamd.read(|m| pools(&m.state)).await,
        ["clash", "good", "newer"]
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_watch_relists_and_changes_nothing() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (NODES_KIND, node("n2", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
        (PODS_KIND, pod("web", "b", "n2")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    for (node, handle, name) in [("n1", "ha", "a"), ("n2", "hb", "b")] {
        h.ipamd
            .allocate(request(node, handle, "web", name))
            .await
            .unwrap();
    }
    // The status shows the allocations before the relists start.
    wait_until("status written", || {
        std::future::ready(
            status_patches(&h.api, "p")
                .last()
                .is_some_and(|seen| seen.body.as_ref().unwrap()["status"]["allocated"] == 2),
        )
    })
    .await;
    settle().await;
    let revision = *h.ipamd.changes().borrow();
    let patches = status_patches(&h.api, "p").len();

    // Every watch gets 410 Gone; the relists wait, then answer the same.
    for kind in [IPPOOLS, NODES_KIND, PODS_KIND] {
        h.api.hold_lists(kind, true);
        h.api.expire_watches(kind);
    }
    h.api
        .wait_for_requests("relisting", |api| {
            [IPPOOLS, NODES_KIND, PODS_KIND]
                .iter()
                .all(|kind| api.lists(*kind) == 2)
        })
        .await;
    // Longer than the grace while the lists wait: nothing is judged.
    tokio::time::sleep(GRACE * 2).await;
    for kind in [IPPOOLS, NODES_KIND, PODS_KIND] {
        h.api.hold_lists(kind, false);
    }
    h.api
        .wait_for_requests("watching again", |api| {
            [IPPOOLS, NODES_KIND, PODS_KIND]
                .iter()
                .all(|kind| api.watches(*kind) == 2)
        })
        .await;
    tokio::time::sleep(GRACE * 2).await;
    assert_eq!(*h.ipamd.changes().borrow(), revision, "the store changed");
    assert!(held(&h.ipamd, "ha").await && held(&h.ipamd, "hb").await);
    assert_eq!(status_patches(&h.api, "p").len(), patches);
    assert!(h.ipamd.ready().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_nodes_labels_select_its_pools() {
    let objects = [
        (
            IPPOOLS,
            ippool(
                "rack1",
                "10.2.0.0/24",
                json!({"nodeSelector": "rack == 'r1'"}),
            ),
        ),
        (NODES_KIND, node("n1", json!({"rack": "r1"}))),
        (NODES_KIND, node("n2", json!({"rack": "r2"}))),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    let from_rack1 = h
        .ipamd
        .allocate(request("n1", "h1", "web", "a"))
        .await
        .unwrap();
    assert_eq!(from_rack1[0].pool, "rack1");
    let refused = h
        .ipamd
        .allocate(request("n2", "h2", "web", "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ServiceError::Alloc(AllocError::NoPoolForNode(_))),
        "{refused}"
    );

    // n2 moves to rack r1: the pool now serves it.
    h.api.put(NODES_KIND, node("n2", json!({"rack": "r1"})));
    wait_until("n2 relabelled", || async {
        h.ipamd.nodes().labels("n2").get("rack").map(String::as_str) == Some("r1")
    })
    .await;
    let now_served = h
        .ipamd
        .allocate(request("n2", "h2", "web", "b"))
        .await
        .unwrap();
    assert_eq!(now_served[0].pool, "rack1");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_node_gives_back_the_addresses_of_its_pods_gone_and_its_blocks() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (NODES_KIND, node("n2", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
        (PODS_KIND, pod("web", "b", "n1")),
        (PODS_KIND, pod("web", "c", "n2")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    for (node, handle, name) in [("n1", "ha", "a"), ("n1", "hb", "b"), ("n2", "hc", "c")] {
        h.ipamd
            .allocate(request(node, handle, "web", name))
            .await
            .unwrap();
    }
    // A standalone allocation on n1 goes too: the node is gone.
    h.ipamd
        .allocate(request("n1", "standalone", "", ""))
        .await
        .unwrap();

    h.api.delete(NODES_KIND, "", "n1");
    // n1's pods are still in the cluster (kubelet may still run them until
    // the controller-manager deletes them): they keep their addresses; the
    // standalone allocation goes at once.
    wait_state(&h.ipamd, "the standalone allocation released", |state| {
        state.handle("standalone").is_none()
    })
    .await;
    settle().await;
    assert!(
        held(&h.ipamd, "ha").await,
        "a pod still in the cluster keeps its address"
    );
    assert!(
        held(&h.ipamd, "hb").await,
        "a pod still in the cluster keeps its address"
    );

    // The pods go: their addresses and n1's block come back at once, with
    // no pod grace.
    h.api.delete(PODS_KIND, "web", "a");
    h.api.delete(PODS_KIND, "web", "b");
    wait_state(&h.ipamd, "n1's handles and blocks gone", |state| {
        state.handles_of_node("n1").count() == 0 && state.blocks_of_node("n1").count() == 0
    })
    .await;
    assert!(held(&h.ipamd, "hc").await, "n2's pod keeps its address");
    let stats = h.ipamd.stats();
    assert_eq!(stats.releases(ReleaseCause::NodeDeleted), 3);
    assert_eq!(stats.releases(ReleaseCause::PodGone), 0);
    assert_eq!(stats.blocks_returned.load(Ordering::Relaxed), 1);
    assert_eq!(h.ipamd.nodes().known(), Some(["n2".to_owned()].into()));
}

#[tokio::test(start_paused = true)]
async fn a_failing_node_list_deletes_nothing_until_a_complete_list_shows_the_node_gone() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    h.ipamd
        .allocate(request("n1", "ha", "web", "a"))
        .await
        .unwrap();
    // The nodes watch expires and its relists fail; n1 is deleted
    // meanwhile, so only a list can tell.
    h.api.fail_lists(NODES_KIND, 10);
    h.api.expire_watches(NODES_KIND);
    h.api.delete(NODES_KIND, "", "n1");
    // Its pod goes with it (well within the pod grace): only the node's
    // deletion may release the address, once it is known.
    h.api.delete(PODS_KIND, "web", "a");
    // (kube's watcher starts each relist afresh: its backoff stays near
    // its first step, 0.8 s and some jitter.)
    h.api
        .wait_for_requests("five failed relists", |api| api.lists(NODES_KIND) == 6)
        .await;
    settle().await;
    assert!(held(&h.ipamd, "ha").await, "released on a failed list");
    assert_eq!(h.api.lists_answered(NODES_KIND).len(), 1);

    // The next list is complete and lacks n1: now it is gone.
    wait_until("n1's handle released", || async {
        !held(&h.ipamd, "ha").await
    })
    .await;
    assert_eq!(h.api.lists_answered(NODES_KIND).len(), 2);
    assert_eq!(h.ipamd.stats().releases(ReleaseCause::NodeDeleted), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pod_gone_is_released_after_the_grace_and_a_pod_present_never() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
        (PODS_KIND, pod("web", "b", "n1")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    for (handle, name) in [("ha", "a"), ("hb", "b")] {
        h.ipamd
            .allocate(request("n1", handle, "web", name))
            .await
            .unwrap();
    }
    h.ipamd
        .allocate(request("n1", "standalone", "", ""))
        .await
        .unwrap();

    // Pod a is deleted (and its CNI DEL never came). The source sees it
    // within the debounce: its grace ends between GRACE and GRACE + 1 s
    // from now.
    h.api.delete(PODS_KIND, "web", "a");
    settle().await;
    tokio::time::sleep(GRACE - Duration::from_secs(2)).await;
    assert!(held(&h.ipamd, "ha").await, "released before the grace");
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_until("ha released", || async { !held(&h.ipamd, "ha").await }).await;
    assert_eq!(h.ipamd.stats().releases(ReleaseCause::PodGone), 1);

    tokio::time::sleep(GRACE * 3).await;
    assert!(held(&h.ipamd, "hb").await, "pod b is still there");
    assert!(held(&h.ipamd, "standalone").await, "no pod to judge it by");
    assert_eq!(h.ipamd.stats().releases(ReleaseCause::PodGone), 1);
    // The API server was asked about pod a, the one handle due, only.
    let reads: Vec<String> = pod_reads(&h.api)
        .into_iter()
        .map(|seen| seen.path)
        .collect();
    assert_eq!(reads, ["/api/v1/namespaces/web/pods/a"]);
}

#[tokio::test(start_paused = true)]
async fn a_pod_the_lagging_watch_cache_lacks_is_read_live_and_keeps_its_address() {
    let (api, fake) = FakeApi::start(&[IPPOOLS, NODES_KIND, PODS_KIND]);
    api.put(IPPOOLS, ippool("p", "10.1.0.0/24", json!({})));
    api.put(NODES_KIND, node("n1", json!({})));
    api.put(PODS_KIND, pod("web", "a", "n1"));
    let (client, lag) = lagging_pods_watch(fake);
    let ipamd = engine().await;
    let source = tokio::spawn(run(client, ipamd.clone(), config()));
    wait_ready(&ipamd).await;
    ipamd
        .allocate(request("n1", "ha", "web", "a"))
        .await
        .unwrap();

    // Pod a is deleted, and the cache hears of it at once. Then the watch
    // falls behind, and pod a is created again on n1 (a StatefulSet's pod
    // keeps its name): the cache misses it, the API server has it.
    api.delete(PODS_KIND, "web", "a");
    settle().await;
    lag.send_replace(true);
    api.put(PODS_KIND, pod("web", "a", "n1"));

    // Past the grace the handle is due by the cache, and the API server's
    // answer keeps it: one GET of the pod, a quorum read.
    tokio::time::sleep(GRACE + Duration::from_secs(2)).await;
    assert!(held(&ipamd, "ha").await, "released while its pod runs");
    let reads = pod_reads(&api);
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert_eq!(reads[0].method, Method::GET);
    assert_eq!(reads[0].path, "/api/v1/namespaces/web/pods/a");
    assert!(!reads[0].is_watch());
    assert_eq!(reads[0].param("resourceVersion"), None, "not a quorum read");
    // Its clock starts over: it is read again only a grace later.
    tokio::time::sleep(GRACE).await;
    assert!(held(&ipamd, "ha").await);
    assert_eq!(pod_reads(&api).len(), 2);

    // The watch catches up: the cache shows pod a, nothing more is read.
    lag.send_replace(false);
    tokio::time::sleep(GRACE * 3).await;
    assert!(held(&ipamd, "ha").await);
    assert_eq!(pod_reads(&api).len(), 2);
    assert_eq!(ipamd.stats().releases(ReleaseCause::PodGone), 0);

    // Deleted for good: the cache and the API server agree, released.
    api.delete(PODS_KIND, "web", "a");
    tokio::time::sleep(GRACE).await;
    wait_until("ha released", || async { !held(&ipamd, "ha").await }).await;
    assert_eq!(pod_reads(&api).len(), 3);
    assert_eq!(ipamd.stats().releases(ReleaseCause::PodGone), 1);
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn a_failed_live_read_keeps_the_handles_until_the_api_server_says_the_pods_are_gone() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
        (PODS_KIND, pod("web", "b", "n1")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    for (handle, name) in [("ha", "a"), ("hb", "b")] {
        h.ipamd
            .allocate(request("n1", handle, "web", name))
            .await
            .unwrap();
    }
    h.api.delete(PODS_KIND, "web", "a");
    h.api.delete(PODS_KIND, "web", "b");
    settle().await;
    // The first read of a pod answers 503.
    h.api.fail_requests(
        Method::GET,
        "/api/v1/namespaces/web/pods/",
        1,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    tokio::time::sleep(GRACE - Duration::from_secs(2)).await;
    assert!(pod_reads(&h.api).is_empty(), "read before the grace");
    h.api
        .wait_for_requests("the first live read", |api| !pod_reads(api).is_empty())
        .await;
    settle().await;
    // Both kept; the pass stopped at the failure (b was not read).
    assert!(held(&h.ipamd, "ha").await && held(&h.ipamd, "hb").await);
    let reads: Vec<String> = pod_reads(&h.api)
        .into_iter()
        .map(|seen| seen.path)
        .collect();
    assert_eq!(reads, ["/api/v1/namespaces/web/pods/a"]);

    // The next pass reads both again; the API server says 404: released.
    wait_until("both released", || async {
        !held(&h.ipamd, "ha").await && !held(&h.ipamd, "hb").await
    })
    .await;
    let reads: Vec<String> = pod_reads(&h.api)
        .into_iter()
        .map(|seen| seen.path)
        .collect();
    assert_eq!(
        reads,
        [
            "/api/v1/namespaces/web/pods/a",
            "/api/v1/namespaces/web/pods/a",
            "/api/v1/namespaces/web/pods/b",
        ]
    );
    assert_eq!(h.ipamd.stats().releases(ReleaseCause::PodGone), 2);
}

#[tokio::test(start_paused = true)]
async fn an_allocation_made_after_the_view_last_heard_is_not_collected() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    // Allocated for a pod the view has not shown: nothing has been heard
    // from the pods watch since (a stuck watch looks like this).
    h.ipamd
        .allocate(request("n1", "late", "web", "new"))
        .await
        .unwrap();
    tokio::time::sleep(GRACE * 3).await;
    assert!(
        held(&h.ipamd, "late").await,
        "judged by a view older than it"
    );

    // Any pod event later, the view is newer than the handle: it is
    // judged, and its pod is not there.
    h.api.put(PODS_KIND, pod("web", "other", "n1"));
    settle().await;
    assert!(held(&h.ipamd, "late").await);
    tokio::time::sleep(GRACE).await;
    wait_until("late released", || async { !held(&h.ipamd, "late").await }).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_pod_list_collects_nothing() {
    let grace = Duration::from_secs(20);
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
    ];
    let config = KubeConfig {
        pod_gc_grace: grace,
        ..KubeConfig::default()
    };
    let h = start(&objects, config).await;
    wait_ready(&h.ipamd).await;
    h.ipamd
        .allocate(request("n1", "ha", "web", "a"))
        .await
        .unwrap();
    h.api.delete(PODS_KIND, "web", "a");
    settle().await;
    // The pods watch expires right away and the relists fail, for longer
    // than the grace (each relist waits at least 0.8 s: kube's backoff).
    h.api.fail_lists(PODS_KIND, 40);
    h.api.expire_watches(PODS_KIND);
    let started = Instant::now();
    for failed in [10, 20, 30] {
        h.api
            .wait_for_requests("failing relists", |api| api.lists(PODS_KIND) == failed + 1)
            .await;
    }
    assert!(started.elapsed() > grace, "{:?}", started.elapsed());
    settle().await;
    assert!(
        held(&h.ipamd, "ha").await,
        "collected from a view being relisted"
    );
    assert_eq!(h.api.lists_answered(PODS_KIND).len(), 1);

    // The complete list still lacks pod a: gone all along, released.
    wait_until("ha released", || async { !held(&h.ipamd, "ha").await }).await;
    assert_eq!(h.api.lists_answered(PODS_KIND).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_pool_in_use_is_disabled_and_deleted_once_empty() {
    let objects = [
        (IPPOOLS, ippool("used", "10.1.0.0/24", json!({}))),
        (IPPOOLS, ippool("unused", "10.2.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    let allocated = h
        .ipamd
        .allocate(AllocateRequest {
            pools: vec!["used".to_owned()],
            ..request("n1", "ha", "web", "a")
        })
        .await
        .unwrap();
    assert_eq!(allocated[0].pool, "used");

    h.api.delete(IPPOOLS, "", "unused");
    h.api.delete(IPPOOLS, "", "used");
    wait_state(&h.ipamd, "unused deleted, used disabled", |state| {
        state.pool("unused").is_none()
            && state.pool("used").is_some_and(|pool| {
                pool.value.spec.disabled
                    && pool.value.metadata.labels.get(pools::DELETED_LABEL)
                        == Some(&"true".to_owned())
            })
    })
    .await;
    let refused = h
        .ipamd
        .allocate(request("n1", "hb", "web", "b"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ServiceError::Alloc(AllocError::NoPoolForNode(_))),
        "{refused}"
    );
    assert!(held(&h.ipamd, "ha").await, "the pool's addresses stay held");

    // Its last address released, the pool goes (and its empty block).
    h.ipamd.release("ha").await.unwrap();
    wait_state(&h.ipamd, "used deleted", |state| {
        state.pool("used").is_none() && state.block_count() == 0
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ippool_status_is_patched_when_its_figures_change_and_only_then() {
    let objects = [
        (IPPOOLS, ippool("p", "10.1.0.0/24", json!({}))),
        (NODES_KIND, node("n1", json!({}))),
        (PODS_KIND, pod("web", "a", "n1")),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    wait_until("the first status", || {
        std::future::ready(!status_patches(&h.api, "p").is_empty())
    })
    .await;
    let first = &status_patches(&h.api, "p")[0];
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        first.body,
        Some(json!({"status": {"capacity": 256, "allocated": 0, "blocks": 0}}))
    );
    let stored = h.api.object(IPPOOLS, "", "p").unwrap();
    assert_eq!(stored["status"]["capacity"], 256);
    assert_eq!(
        stored["spec"]["cidr"], "10.1.0.0/24",
        "the spec is untouched"
    );

    // Nothing changes: nothing is written, however long.
    tokio::time::sleep(status::INTERVAL * 10).await;
    assert_eq!(status_patches(&h.api, "p").len(), 1);

    // An allocation changes the figures; a failed patch is retried.
    h.api.fail_requests(
        Method::PATCH,
        "/apis/podroute.io/v1/ippools/p/status",
        1,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    h.ipamd
        .allocate(request("n1", "ha", "web", "a"))
        .await
        .unwrap();
    wait_until("the new status stored", || {
        std::future::ready(
            h.api.object(IPPOOLS, "", "p").unwrap()["status"]
                == json!({"capacity": 256, "allocated": 1, "blocks": 1}),
        )
    })
    .await;
    let patches = status_patches(&h.api, "p");
    assert_eq!(patches.len(), 3, "{patches:#?}");
    assert_eq!(patches[1].body, patches[2].body);
    tokio::time::sleep(status::INTERVAL * 10).await;
    assert_eq!(status_patches(&h.api, "p").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_source_finishes_deletions_and_leaves_other_stored_pools() {
    // The store as a previous ipamd left it: "old" was disabled for its
    // deleted IPPool while in use (now empty), "manual" was made with
    // podctl; neither has an object.
    let ipamd = engine().await;
    let stored = |name: &str, cidr: &str| {
        crate::model::IpPool::new(
            name,
            crate::model::IpPoolSpec {
                cidr: cidr.parse().unwrap(),
                block_size: Some(28),
                disabled: false,
                node_selector: String::new(),
                disable_bgp_export: false,
                reserved_cidrs: Vec::new(),
            },
        )
    };
    let mut old = stored("old", "10.5.0.0/24");
    old.spec.disabled = true;
    old.metadata
        .labels
        .insert(pools::DELETED_LABEL.to_owned(), "true".to_owned());
    ipamd.put_pool(old, false).await.unwrap();
    ipamd
        .put_pool(stored("manual", "10.6.0.0/24"), false)
        .await
        .unwrap();

    let (api, client) = FakeApi::start(&[IPPOOLS, NODES_KIND, PODS_KIND]);
    api.put(IPPOOLS, ippool("p", "10.1.0.0/24", json!({})));
    api.put(NODES_KIND, node("n1", json!({})));
    let source = tokio::spawn(run(client, ipamd.clone(), config()));
    wait_ready(&ipamd).await;
    wait_state(&ipamd, "old deleted", |state| state.pool("old").is_none()).await;
    let names: Vec<String> = ipamd
        .read(|m| m.state.pools().map(|p| p.value.name().to_owned()).collect())
        .await;
    assert_eq!(names, ["manual", "p"]);
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn an_empty_store_the_ippools_say_had_blocks_is_refused_until_their_status_is_cleared() {
    // ipamd moved to another node and opened an empty embedded store: the
    // pool's status (written by the ipamd before) says 3 blocks are claimed.
    let mut pool = ippool("p", "10.1.0.0/24", json!({}));
    pool["status"] = json!({"capacity": 256, "allocated": 5, "blocks": 3});
    let objects = [(IPPOOLS, pool), (NODES_KIND, node("n1", json!({})))];
    let h = start(&objects, config()).await;
    wait_until("the refusal", || {
        std::future::ready(
            h.ipamd
                .ready()
                .is_err_and(|reason| reason.contains("another store")),
        )
    })
    .await;
    settle().await;
    // Nothing applied, nothing written: no pool in the store, no status.
    let pools = h.ipamd.read(|mirror| mirror.state.pools().count()).await;
    assert_eq!(pools, 0);
    assert!(status_patches(&h.api, "p").is_empty());
    let reason = h.ipamd.ready().unwrap_err();
    assert!(reason.contains("kubectl patch ippool p"), "{reason}");
    // A caller that reaches ipamd directly (not through its Service) is
    // turned away too.
    let refused = h.ipamd.allocate(request("n1", "h1", "web", "a")).await;
    assert!(
        matches!(refused, Err(ServiceError::NotReady(ref reason)) if reason.contains("another store")),
        "{refused:?}"
    );

    // The operator started the store afresh on purpose and clears the status.
    let mut cleared = h.api.object(IPPOOLS, "", "p").unwrap();
    cleared.as_object_mut().unwrap().remove("status");
    h.api.put(IPPOOLS, cleared);
    wait_ready(&h.ipamd).await;
    wait_state(&h.ipamd, "the pool applied", |state| {
        state.pools().count() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_ipv6_pools_status_holds_only_numbers_the_api_keeps_exact() {
    // fd00:10:244::/56 holds 2^72 addresses: written as such, the API server
    // would refuse every patch (it accepts integers only up to 2^53 - 1).
    let objects = [
        (
            IPPOOLS,
            ippool("v6", "fd00:10:244::/56", json!({"blockSize": 122})),
        ),
        (NODES_KIND, node("n1", json!({}))),
    ];
    let h = start(&objects, config()).await;
    wait_ready(&h.ipamd).await;
    wait_until("the first status", || {
        std::future::ready(!status_patches(&h.api, "v6").is_empty())
    })
    .await;
    let body = status_patches(&h.api, "v6")[0].body.clone().unwrap();
    assert_eq!(
        body,
        json!({"status": {"capacity": status::MAX_STATUS_NUMBER, "allocated": 0, "blocks": 0}})
    );
    for field in ["capacity", "allocated", "blocks"] {
        let value = body["status"][field].as_u64().unwrap();
        assert!(
            value < 1 << 53,
            "{field} {value} is not exact as a JSON number"
        );
    }
}
