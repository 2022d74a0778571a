// The engine against a real embedded store wrapped so a test can count
// transactions, make the store unavailable, and let a second engine (a
// replica) write just before this one commits: batching, conflict replans
// and retries, deterministically.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::*;
use crate::model::{IpPool, IpPoolSpec, RecordKey};
use crate::store::{
    Compare, EmbeddedStore, KeyValue, Op, Snapshot, TxnOutcome, WatchEvent, WatchStream,
};

#[derive(Clone)]
struct Shared {
    inner: Arc<EmbeddedStore>,
    /// Runs before the next transaction (another replica's write).
    hook: Arc<Mutex<Option<BoxFuture<'static, ()>>>>,
    txns: Arc<AtomicUsize>,
    conflicts: Arc<AtomicUsize>,
    /// The next this many transactions fail as unreachable.
    unavailable: Arc<AtomicUsize>,
    /// When set, transactions wait here in pairs: two must be in flight at
    /// once for either to proceed.
    pairs: Arc<Mutex<Option<Arc<tokio::sync::Barrier>>>>,
    /// Transactions begun (before waiting for a pair).
    entered: Arc<AtomicUsize>,
    /// Whether engines must confirm what they read from their mirror.
    other_writers: bool,
}

impl Shared {
    fn new(dir: &std::path::Path) -> Shared {
        Shared {
            inner: Arc::new(EmbeddedStore::open(dir).unwrap()),
            hook: Arc::default(),
            txns: Arc::default(),
            conflicts: Arc::default(),
            unavailable: Arc::default(),
            pairs: Arc::default(),
            entered: Arc::default(),
            other_writers: false,
        }
    }

    /// The same store for another engine, with counters of its own.
    /// This store as one of several replicas' (they confirm reads).
    fn with_other_writers(mut self) -> Shared {
        self.other_writers = true;
        self
    }

    fn replica(&self) -> Shared {
        Shared {
            other_writers: true,
            inner: self.inner.clone(),
            hook: Arc::default(),
            txns: Arc::default(),
            conflicts: Arc::default(),
            unavailable: Arc::default(),
            pairs: Arc::default(),
            entered: Arc::default(),
        }
    }
}

impl Store for Shared {
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Snapshot, StoreError>> + Send {
        self.inner.list(prefix)
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send {
        self.inner.get(key)
    }

    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send {
        let this = self.clone();
        async move {
            let hook = this.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook.await;
            }
            this.entered.fetch_add(1, Ordering::SeqCst);
            let pair = this.pairs.lock().unwrap().clone();
            if let Some(pair) = pair {
                pair.wait().await;
            }
            this.txns.fetch_add(1, Ordering::SeqCst);
            let failing = this.unavailable.load(Ordering::SeqCst);
            if failing > 0 {
                this.unavailable.store(failing - 1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("test: store unreachable".into()));
            }
            let outcome = this.inner.txn(compares, ops).await;
            if let Ok(TxnOutcome::Conflict { .. }) = outcome {
                this.conflicts.fetch_add(1, Ordering::SeqCst);
            }
            outcome
        }
    }

    fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send {
        self.inner.watch(prefix, after)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn has_other_writers(&self) -> bool {
        self.other_writers
    }
}

fn pool() -> IpPool {
    IpPool::new(
        "p".to_owned(),
        IpPoolSpec {
            cidr: "10.1.0.0/24".parse().unwrap(),
            block_size: Some(28),
            disabled: false,
            node_selector: String::new(),
            disable_bgp_export: false,
            reserved_cidrs: Vec::new(),
        },
    )
}

fn request(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.to_owned(),
        handle: handle.to_owned(),
        ..AllocateRequest::default()
    }
}

async fn engine(store: Shared) -> Ipamd<Shared> {
    Ipamd::start(store, Settings::default(), Arc::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());
    let before = store.txns.load(Ordering::SeqCst);

    let requests = (0..40).map(|i| ipamd.allocate(request("n1", &format!("h{i}"))));
    let results = futures_util::future::join_all(requests).await;
    let mut addresses: Vec<_> = results.into_iter().map(|r| r.unwrap()[0].address).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 40, "an address was handed out twice");
    let txns = store.txns.load(Ordering::SeqCst) - before;
    assert!(
        txns < 40,
        "{txns} transactions for 40 allocations: no batching"
    );

    // Repeats, also in one batch, get the same answers and write nothing.
    let before = store.txns.load(Ordering::SeqCst);
    let again = (0..40).map(|i| ipamd.allocate(request("n1", &format!("h{i}"))));
    let again: Vec<_> = futures_util::future::join_all(again).await;
    let mut repeated: Vec<_> = again.into_iter().map(|r| r.unwrap()[0].address).collect();
    repeated.sort();
    assert_eq!(repeated, addresses);
    assert_eq!(store.txns.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_batch_commits_while_the_first_waits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());
    ipamd.allocate(request("n1", "a0")).await.unwrap();
    ipamd.allocate(request("n2", "b0")).await.unwrap();

    // Each transaction now waits for a second one: only a writer that
    // sends n2's batch while n1's is in flight gets through.
    *store.pairs.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(2)));
    let entered = store.entered.load(Ordering::SeqCst);
    let first = tokio::spawn({
        let ipamd = ipamd.clone();
        async move { ipamd.allocate(request("n1", "a1")).await }
    });
    // n1's batch is in flight, held at the barrier.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.entered.load(Ordering::SeqCst) == entered {
        assert!(
            std::time::Instant::now() < deadline,
            "n1's batch never reached the store"
        );
        tokio::task::yield_now().await;
    }
    let second = ipamd.allocate(request("n2", "b1"));
    let both = futures_util::future::join(first, second);
    let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
        .await
        .expect("the second batch was not sent while the first was in flight");
    let a = a.unwrap();
    *store.pairs.lock().unwrap() = None;
    assert_ne!(a.unwrap()[0].address, b.unwrap()[0].address);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_writing_first_makes_us_plan_again() {
    let dir = tempfile::tempdir().unwrap();
    let ours = Shared::new(dir.path()).with_other_writers();
    let theirs = ours.replica();
    let us = engine(ours.clone()).await;
    let them = engine(theirs).await;
    assert!(us.put_pool(pool(), false).await.unwrap());
    us.allocate(request("n1", "first")).await.unwrap();
    // The replica has seen both writes.
    let mut changes = them.changes();
    let target = *us.changes().borrow();
    while *changes.borrow_and_update() < target {
        changes.changed().await.unwrap();
    }

    // Just before our commit, the replica allocates on the same node from
    // the same state: it wins the offset we planned.
    let replica = them.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    *ours.hook.lock().unwrap() = Some(Box::pin(async move {
        let got = replica.allocate(request("n1", "theirs")).await.unwrap();
        let _ = tx.send(got[0].address);
    }));
    let mine = us.allocate(request("n1", "mine")).await.unwrap()[0].address;
    let theirs = rx.await.unwrap();
    assert_ne!(mine, theirs);
    assert!(
        ours.conflicts.load(Ordering::SeqCst) >= 1,
        "no conflict was provoked"
    );
    // What the store saw is what the metrics say.
    let scrape = scrape_of(&us).await;
    let conflicts = scrape
        .value("podroute_ipam_conflicts_total", &[("type", "transaction")])
        .unwrap();
    assert_eq!(conflicts, ours.conflicts.load(Ordering::SeqCst) as f64);
    let retries = scrape
        .value("podroute_ipam_retries_total", &[("reason", "conflict")])
        .unwrap();
    assert!(retries >= 1.0, "{retries}");

    let report = us
        .read(|m| crate::allocator::check(&m.state, None, &Settings::default(), unix_ms()))
        .await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());
    store.unavailable.store(3, Ordering::SeqCst);
    let got = ipamd.allocate(request("n1", "h")).await.unwrap();
    assert_eq!(got[0].address.to_string(), "10.1.0.0");
    assert_eq!(store.unavailable.load(Ordering::SeqCst), 0);
}

#[test]
fn the_mirror_ignores_events_older_than_what_it_holds() {
    let record = crate::model::Record::Pool(pool());
    let key = record.key().to_key();
    let put = |revision| KeyValue {
        key: key.clone(),
        value: record.encode(),
        mod_revision: revision,
    };
    let mut mirror = Mirror::load(Snapshot {
        revision: 1,
        kvs: Vec::new(),
    });
    // Our own delete at 7, then the watch delivers the older put of 5.
    mirror.committed_put(record.clone(), 5);
    mirror.committed_delete(&record.key(), 7);
    mirror.apply_events(5, vec![WatchEvent::Put(put(5))]);
    assert!(mirror.state.pool("p").is_none(), "a deleted pool came back");
    // A newer put is taken.
    mirror.apply_events(9, vec![WatchEvent::Put(put(9))]);
    assert_eq!(mirror.state.pool("p").map(|p| p.revision), Some(9));
    // A conflict's current values win over what we held.
    mirror.apply_current(vec![(key.clone(), None)]);
    assert!(mirror.state.pool("p").is_none());
    // An undecodable value is listed, keeps its revision, and is reported.
    mirror.apply_events(
        10,
        vec![WatchEvent::Put(KeyValue {
            key: key.clone(),
            value: b"{not json".to_vec(),
            mod_revision: 10,
        })],
    );
    assert_eq!(mirror.revision_of(&record.key()), 10);
    assert_eq!(mirror.unreadable().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_handle_is_refused_and_stalls_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let garbage = Op::Put {
        key: RecordKey::Handle("broken".to_owned()).to_key(),
        value: b"{not json".to_vec(),
    };
    store.inner.txn(Vec::new(), vec![garbage]).await.unwrap();
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());

    let refused = ipamd.allocate(request("n1", "broken")).await.unwrap_err();
    assert!(matches!(refused, ServiceError::Unreadable(_)), "{refused}");
    assert!(refused.to_string().contains("handles/broken"), "{refused}");
    let refused = ipamd.release("broken").await.unwrap_err();
    assert!(matches!(refused, ServiceError::Unreadable(_)), "{refused}");
    // Everyone else goes on, at once.
    let fine = ipamd.allocate(request("n1", "fine")).await.unwrap();
    assert_eq!(fine[0].address.to_string(), "10.1.0.0");
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 0);
}

/// The engine's /metrics text, parsed strictly.
async fn scrape_of<S: Store>(ipamd: &Ipamd<S>) -> podroute_proto::metrics::Scrape {
    let text = ipamd.metrics().await;
    podroute_proto::metrics::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

/// Waits (polling the clock) until a handle made now is older than
/// `unix_ms()`, so a GarbageCollect call sees it as made before it.
async fn next_millisecond() {
    let now = unix_ms();
    while unix_ms() <= now {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_durable_work_and_status_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());
    let mut held = Vec::new();
    for handle in ["h1", "h2", "h3"] {
        held.push(ipamd.allocate(request("n1", handle)).await.unwrap()[0].address);
    }
    // An idempotent repeat allocates nothing new.
    ipamd.allocate(request("n1", "h1")).await.unwrap();
    assert_eq!(ipamd.release("h2").await.unwrap().len(), 1);
    assert!(ipamd.release("unknown").await.unwrap().is_empty());
    next_millisecond().await;
    let valid: HashSet<String> = ["h1".to_owned()].into();
    let (collected, addresses) = ipamd.garbage_collect("n1", &valid, "").await.unwrap();
    assert_eq!((collected, addresses), (vec!["h3".to_owned()], 1));
    // Asking for h1's address for another pod is an address conflict.
    let taken = AllocateRequest {
        addresses: vec![held[0]],
        ..request("n1", "other")
    };
    let refused = ipamd.allocate(taken).await.unwrap_err();
    assert!(
        matches!(refused, ServiceError::Alloc(AllocError::AddressHeld { .. })),
        "{refused}"
    );

    let scrape = scrape_of(&ipamd).await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .value(name, labels)
            .unwrap_or_else(|| panic!("no single {name} {labels:?}"))
    };
    assert_eq!(value("podroute_ipam_allocations_total", &[]), 3.0);
    assert_eq!(
        value("podroute_ipam_releases_total", &[("cause", "release")]),
        1.0
    );
    assert_eq!(
        value(
            "podroute_ipam_releases_total",
            &[("cause", "garbage_collection")]
        ),
        1.0
    );
    assert_eq!(value("podroute_ipam_garbage_collections_total", &[]), 1.0);
    assert_eq!(
        value("podroute_ipam_conflicts_total", &[("type", "address")]),
        1.0
    );
    assert_eq!(
        value("podroute_ipam_conflicts_total", &[("type", "transaction")]),
        0.0
    );
    assert_eq!(value("podroute_ipam_handles", &[]), 1.0);
    assert_eq!(value("podroute_ipam_nodes", &[]), 1.0);
    assert_eq!(value("podroute_ipam_store_reachable", &[]), 1.0);
    assert_eq!(
        value("podroute_ipam_store_revision", &[]),
        *ipamd.changes().borrow() as f64
    );
    // Every transaction was timed.
    assert_eq!(
        value("podroute_ipam_store_commit_duration_seconds_count", &[]),
        store.txns.load(Ordering::SeqCst) as f64
    );
    // The pool gauges are the Usage figures.
    let usage = ipamd
        .read(|m| crate::allocator::usage(&m.state, unix_ms(), &Settings::default()))
        .await;
    let p = &usage[0];
    let pool = [("pool", "p")];
    assert_eq!(
        value("podroute_ipam_pool_capacity_addresses", &pool),
        p.capacity as f64
    );
    assert_eq!(
        value("podroute_ipam_pool_allocated_addresses", &pool),
        p.allocated as f64
    );
    assert_eq!(p.allocated, 1);
    assert_eq!(
        value("podroute_ipam_pool_cooling_addresses", &pool),
        p.cooling as f64
    );
    assert_eq!(
        value("podroute_ipam_pool_blocks", &pool),
        p.blocks_total as f64
    );
    assert_eq!(
        value("podroute_ipam_pool_claimed_blocks", &pool),
        p.blocks_claimed as f64
    );

    let status = ipamd.status().await;
    let health = status.health.unwrap();
    assert!(health.live && health.ready, "{health:?}");
    assert!(health.reason.is_empty(), "{health:?}");
    assert_eq!(status.store, store.describe());
    assert_eq!((status.pools, status.nodes), (1, 1));
    assert_eq!((status.allocations, status.releases), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_makes_the_engine_not_ready_but_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let ipamd = engine(store.clone()).await;
    assert!(ipamd.put_pool(pool(), false).await.unwrap());
    assert_eq!(ipamd.ready(), Ok(()));
    store.unavailable.store(usize::MAX, Ordering::SeqCst);
    let waiting = tokio::spawn({
        let ipamd = ipamd.clone();
        async move { ipamd.allocate(request("n1", "h")).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reason = loop {
        if let Err(reason) = ipamd.ready() {
            break reason;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still ready with the store unreachable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(reason.contains("test: store unreachable"), "{reason}");
    assert_eq!(ipamd.live().await, Ok(()));
    let scrape = scrape_of(&ipamd).await;
    assert_eq!(
        scrape.value("podroute_ipam_store_reachable", &[]),
        Some(0.0)
    );
    let status = ipamd.status().await.health.unwrap();
    assert!(status.live && !status.ready, "{status:?}");
    assert_eq!(status.reason, reason);

    store.unavailable.store(0, Ordering::SeqCst);
    waiting.await.unwrap().unwrap();
    assert_eq!(ipamd.ready(), Ok(()));
    let scrape = scrape_of(&ipamd).await;
    assert_eq!(
        scrape.value("podroute_ipam_store_reachable", &[]),
        Some(1.0)
    );
    let retries = scrape
        .value(
            "podroute_ipam_retries_total",
            &[("reason", "store_unavailable")],
        )
        .unwrap();
    assert!(retries >= 1.0, "{retries}");
    assert_eq!(
        scrape.value("podroute_ipam_allocations_total", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_says_loading_until_the_engine_runs() {
    use podroute_proto::observe::Observe;
    let dir = tempfile::tempdir().unwrap();
    let store = Shared::new(dir.path());
    let uptime = Arc::new(podroute_proto::observe::Uptime::new());
    let observer = observe::Observer::new(uptime.clone(), store.describe());
    let reason = observer.ready().await.unwrap_err();
    assert!(reason.starts_with("loading the IPAM store"), "{reason}");
    assert!(reason.contains(&store.describe()), "{reason}");
    assert_eq!(observer.live().await, Ok(()));
    let early = podroute_proto::metrics::parse(&observer.metrics().await).unwrap();
    assert!(early.types.contains_key("podroute_build_info"));
    assert!(!early.types.contains_key("podroute_ipam_allocations_total"));

    let ipamd = Ipamd::start_with(store, Settings::default(), Arc::default(), uptime)
        .await
        .unwrap();
    observer.loaded(ipamd);
    assert_eq!(observer.ready().await, Ok(()));
    assert_eq!(observer.live().await, Ok(()));
    let loaded = podroute_proto::metrics::parse(&observer.metrics().await).unwrap();
    assert_eq!(
        loaded
            .types
            .get("podroute_ipam_allocations_total")
            .map(String::as_str),
        Some("counter")
    );
}
