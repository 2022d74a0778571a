// What an ipamd counts as it works, for /metrics and GetStatus: counters and
// histograms kept where the work happens (atomics, no lock on the hot path),
// and whether the store answered at the last contact. Gauges (pool usage,
// records) are not kept here: they are read from the mirror at scrape time,
// so they can never drift from what the admin API shows. ipam/METRICS.md
// documents every family written from these.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use podroute_proto::metrics::Histogram;
use tonic::Code;

use crate::store::StoreError;

/// The Ipam service's RPCs, the `method` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    GetVersion,
    GetStatus,
    Allocate,
    Release,
    GarbageCollect,
    ListPools,
    CreatePool,
    DeletePool,
    ListBlocks,
    WatchNodeBlocks,
    Usage,
    Check,
    ShowAddress,
}

impl Method {
    pub const ALL: [Method; 13] = [
        Method::GetVersion,
        Method::GetStatus,
        Method::Allocate,
        Method::Release,
        Method::GarbageCollect,
        Method::ListPools,
        Method::CreatePool,
        Method::DeletePool,
        Method::ListBlocks,
        Method::WatchNodeBlocks,
        Method::Usage,
        Method::Check,
        Method::ShowAddress,
    ];

    /// The RPC's name in ipam.proto.
    pub fn name(self) -> &'static str {
        match self {
            Method::GetVersion => "GetVersion",
            Method::GetStatus => "GetStatus",
            Method::Allocate => "Allocate",
            Method::Release => "Release",
            Method::GarbageCollect => "GarbageCollect",
            Method::ListPools => "ListPools",
            Method::CreatePool => "CreatePool",
            Method::DeletePool => "DeletePool",
            Method::ListBlocks => "ListBlocks",
            Method::WatchNodeBlocks => "WatchNodeBlocks",
            Method::Usage => "Usage",
            Method::Check => "Check",
            Method::ShowAddress => "ShowAddress",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// gRPC status codes in wire order (0 OK .. 16 Unauthenticated), named as
/// gRPC's own documentation and grpc-go name them (the `code` label).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// Calls of one RPC: how long each took, and how each ended.
#[derive(Debug)]
pub struct MethodStats {
    pub duration: Histogram,
    codes: [AtomicU64; CODE_NAMES.len()],
}

impl Default for MethodStats {
    fn default() -> Self {
        MethodStats {
            duration: Histogram::latency(),
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl MethodStats {
    /// (code name, calls that ended with it), codes seen at least once.
    pub fn codes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CODE_NAMES
            .iter()
            .zip(&self.codes)
            .map(|(name, count)| (*name, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
    }
}

/// What freed addresses: the `cause` label of the releases counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCause {
    /// A `Release` call (CNI DEL, `podctl ipam release`).
    Release,
    /// A `GarbageCollect` call (CNI GC).
    GarbageCollection,
    /// The Kubernetes source: the handle's pod was gone for longer than
    /// `--pod-gc-grace`.
    PodGone,
    /// The Kubernetes source: the handle's node was deleted.
    NodeDeleted,
}

impl ReleaseCause {
    pub const ALL: [ReleaseCause; 4] = [
        ReleaseCause::Release,
        ReleaseCause::GarbageCollection,
        ReleaseCause::PodGone,
        ReleaseCause::NodeDeleted,
    ];

    /// The `cause` label's value.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseCause::Release => "release",
            ReleaseCause::GarbageCollection => "garbage_collection",
            ReleaseCause::PodGone => "pod_gc",
            ReleaseCause::NodeDeleted => "node_deleted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the writer's committed batches did, added to the counters only once
/// the batch is durable (a batch undone after a conflict is planned again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Addresses newly allocated (an idempotent repeat is none).
    pub allocated: u64,
    /// Addresses freed, by cause.
    pub freed: [u64; ReleaseCause::ALL.len()],
    /// Empty blocks returned to their pools.
    pub swept: u64,
}

impl Tally {
    pub fn free(&mut self, cause: ReleaseCause, addresses: u64) {
        if let Some(count) = self.freed.get_mut(cause.index()) {
            *count += addresses;
        }
    }
}

/// Why a command was planned and sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Its transaction failed a compare: another replica wrote first.
    Conflict,
    /// The store did not answer (etcd unreachable, timeout, no leader).
    Unavailable,
}

#[derive(Debug)]
pub struct Stats {
    /// Counted per address: a dual-stack pod is two.
    pub allocated: AtomicU64,
    /// Addresses freed, by cause (`releases`).
    freed: [AtomicU64; ReleaseCause::ALL.len()],
    /// GarbageCollect calls that completed.
    pub garbage_collections: AtomicU64,
    pub blocks_returned: AtomicU64,
    /// Store transactions that failed a compare.
    pub transaction_conflicts: AtomicU64,
    /// Allocate calls refused because the address asked for is held by
    /// another handle (ALREADY_EXISTS).
    pub address_conflicts: AtomicU64,
    pub retries_conflict: AtomicU64,
    pub retries_unavailable: AtomicU64,
    /// Full reloads of the mirror after the store's watch lost events.
    pub resyncs: AtomicU64,
    /// One store transaction: an fsync (embedded) or an etcd round trip.
    pub commit_duration: Histogram,
    /// WatchNodeBlocks streams open now.
    watchers: AtomicU64,
    requests: [MethodStats; Method::ALL.len()],
    /// Fast path of `store`: true while the store answers.
    reachable: AtomicBool,
    store: Mutex<StoreContact>,
}

/// The store's state at the last contact.
#[derive(Debug)]
struct StoreContact {
    reachable: bool,
    /// When it last changed.
    since: Instant,
    /// Why it is unreachable.
    error: String,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            allocated: AtomicU64::new(0),
            freed: std::array::from_fn(|_| AtomicU64::new(0)),
            garbage_collections: AtomicU64::new(0),
            blocks_returned: AtomicU64::new(0),
            transaction_conflicts: AtomicU64::new(0),
            address_conflicts: AtomicU64::new(0),
            retries_conflict: AtomicU64::new(0),
            retries_unavailable: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            commit_duration: Histogram::latency(),
            watchers: AtomicU64::new(0),
            requests: std::array::from_fn(|_| MethodStats::default()),
            // The engine starts only once the store has been read.
            reachable: AtomicBool::new(true),
            store: Mutex::new(StoreContact {
                reachable: true,
                since: Instant::now(),
                error: String::new(),
            }),
        }
    }
}

impl Stats {
    pub fn add(&self, tally: Tally) {
        self.allocated.fetch_add(tally.allocated, Ordering::Relaxed);
        for (counter, freed) in self.freed.iter().zip(tally.freed) {
            counter.fetch_add(freed, Ordering::Relaxed);
        }
        self.blocks_returned
            .fetch_add(tally.swept, Ordering::Relaxed);
    }

    /// Addresses freed by `cause` since start.
    pub fn releases(&self, cause: ReleaseCause) -> u64 {
        self.freed
            .get(cause.index())
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Addresses freed since start, whatever freed them.
    pub fn releases_total(&self) -> u64 {
        ReleaseCause::ALL
            .iter()
            .map(|cause| self.releases(*cause))
            .sum()
    }

    pub fn retried(&self, why: Retry, commands: u64) {
        let counter = match why {
            Retry::Conflict => &self.retries_conflict,
            Retry::Unavailable => &self.retries_unavailable,
        };
        counter.fetch_add(commands, Ordering::Relaxed);
    }

    /// Records one call of `method` that took `elapsed` and ended with `code`.
    pub fn request(&self, method: Method, code: Code, elapsed: Duration) {
        let Some(stats) = self.requests.get(method.index()) else {
            return;
        };
        stats.duration.observe(elapsed);
        if let Some(count) = stats.codes.get(code as usize) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn method(&self, method: Method) -> Option<&MethodStats> {
        self.requests.get(method.index())
    }

    /// Counts a WatchNodeBlocks stream until the guard is dropped.
    pub fn watching(self: &Arc<Self>) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(self.clone())
    }

    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The store answered (a commit, a conflict, a list, a watch event).
    /// Logs once when it comes back.
    pub fn store_answered(&self) {
        if self.reachable.load(Ordering::Relaxed) {
            return;
        }
        let mut contact = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if !contact.reachable {
            let down_for = contact.since.elapsed();
            contact.reachable = true;
            contact.since = Instant::now();
            contact.error.clear();
            self.reachable.store(true, Ordering::Relaxed);
            tracing::info!(
                down_for_seconds = down_for.as_secs(),
                "IPAM store reachable again"
            );
        }
    }

    /// A store request failed. Only `Unavailable` says the store is out of
    /// reach (other errors are refusals or a damaged file). Logs once when
    /// it goes.
    pub fn store_failed(&self, error: &StoreError) {
        let StoreError::Unavailable(reason) = error else {
            return;
        };
        let mut contact = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if contact.reachable {
            contact.reachable = false;
            contact.since = Instant::now();
            self.reachable.store(false, Ordering::Relaxed);
            tracing::warn!(%error, "IPAM store unreachable; allocations wait and retry");
        }
        contact.error.clone_from(reason);
    }

    /// Ok while the store answers; else since when and why not.
    pub fn store_reachable(&self) -> Result<(), String> {
        if self.reachable.load(Ordering::Relaxed) {
            return Ok(());
        }
        let contact = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if contact.reachable {
            return Ok(());
        }
        Err(format!(
            "the IPAM store has been unreachable for {}s: {}",
            contact.since.elapsed().as_secs(),
            contact.error
        ))
    }
}

/// One open WatchNodeBlocks stream.
#[derive(Debug)]
pub struct WatcherGuard(Arc<Stats>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_method_and_code() {
        let stats = Stats::default();
        stats.request(Method::Allocate, Code::Ok, Duration::from_millis(1));
        stats.request(
            Method::Allocate,
            Code::ResourceExhausted,
            Duration::from_millis(2),
        );
        stats.request(Method::Release, Code::Ok, Duration::from_millis(1));
        let allocate = stats.method(Method::Allocate).expect("known method");
        let codes: Vec<_> = allocate.codes().collect();
        assert_eq!(codes, [("OK", 1), ("ResourceExhausted", 1)]);
        assert_eq!(allocate.duration.snapshot().count, 2);
        assert_eq!(
            stats.method(Method::Usage).expect("known").codes().count(),
            0
        );
    }

    #[test]
    fn method_names_and_codes_line_up() {
        for (i, method) in Method::ALL.iter().enumerate() {
            assert_eq!(method.index(), i, "{method:?}");
        }
        assert_eq!(CODE_NAMES[Code::Unavailable as usize], "Unavailable");
        assert_eq!(
            CODE_NAMES[Code::Unauthenticated as usize],
            "Unauthenticated"
        );
    }

    #[test]
    fn releases_are_counted_by_cause() {
        let stats = Stats::default();
        let mut tally = Tally::default();
        tally.free(ReleaseCause::PodGone, 2);
        tally.free(ReleaseCause::NodeDeleted, 3);
        tally.free(ReleaseCause::PodGone, 1);
        stats.add(tally);
        assert_eq!(stats.releases(ReleaseCause::PodGone), 3);
        assert_eq!(stats.releases(ReleaseCause::NodeDeleted), 3);
        assert_eq!(stats.releases(ReleaseCause::Release), 0);
        assert_eq!(stats.releases_total(), 6);
        for (i, cause) in ReleaseCause::ALL.iter().enumerate() {
            assert_eq!(cause.index(), i, "{cause:?}");
        }
    }

    #[test]
    fn the_store_goes_and_comes_back() {
        let stats = Stats::default();
        assert_eq!(stats.store_reachable(), Ok(()));
        // A refusal says nothing about reachability.
        stats.store_failed(&StoreError::Invalid("too many ops".into()));
        assert_eq!(stats.store_reachable(), Ok(()));
        stats.store_failed(&StoreError::Unavailable("etcd: connection refused".into()));
        let why = stats.store_reachable().expect_err("unreachable");
        assert!(why.contains("connection refused"), "{why}");
        stats.store_answered();
        assert_eq!(stats.store_reachable(), Ok(()));
    }

    #[test]
    fn watchers_are_counted_while_open() {
        let stats = Arc::new(Stats::default());
        let first = stats.watching();
        let second = stats.watching();
        assert_eq!(stats.watchers(), 2);
        drop(first);
        assert_eq!(stats.watchers(), 1);
        drop(second);
        assert_eq!(stats.watchers(), 0);
    }
}
