// podroute-ipamd's engine, between the gRPC front (grpc.rs) and a store:
// a mirror of the store kept current by its watch (mirror.rs), the single
// writer that plans and commits batches (writer.rs), a sweeper that returns
// empty blocks to their pools, and the node list (nodes.rs). Several ipamd
// replicas on one etcd each run all of this; the store's compare-and-swap
// keeps them from ever handing out one address twice.

pub mod auth;
pub mod grpc;
pub mod kube;
pub mod manifests;
mod mirror;
pub mod nodes;
pub mod observe;
pub mod stats;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use podroute_proto::observe::Uptime;
use tokio::sync::{RwLock, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use mirror::Mirror;
use nodes::NodeDirectory;
use stats::{ReleaseCause, Stats};
pub use writer::{Answer, Job};

use crate::allocator::{AllocError, AllocateRequest, Allocated, Settings};
use crate::model::{IpPool, PoolError};
use crate::store::{Revision, Store, StoreError, WatchMessage};

/// Commands waiting for the writer; callers wait when it is full.
const COMMAND_QUEUE: usize = 4096;
/// How long to wait before listing an unreachable store again.
const RELIST_BACKOFF: Duration = Duration::from_secs(1);
/// How long the engine has to answer the liveness check: its writer takes
/// a ping off its queue between batches, and the mirror can be read.
const LIVE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Alloc(#[from] AllocError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("the IPAM store is unavailable: {0}")]
    Unavailable(String),
    #[error("the IPAM store refused the write: {0}")]
    Store(String),
    #[error(
        "gave up after {attempts} attempts: other ipamd replicas kept changing the same records; retry"
    )]
    Contended { attempts: u32 },
    #[error("ipamd is stopping")]
    Stopping,
    /// Its source of pools has not given them, or refused the store: an
    /// allocation now could come from the wrong pool or the wrong store.
    #[error("ipamd is not ready: {0}")]
    NotReady(String),
    #[error("permission denied: {0}")]
    Denied(String),
    #[error(
        "the stored record {0} does not decode; `podctl ipam check` lists it, and it must be repaired or removed in the store"
    )]
    Unreadable(String),
}

impl ServiceError {
    fn from_store(error: &StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => ServiceError::Unavailable(reason.clone()),
            StoreError::Closed => ServiceError::Stopping,
            other => ServiceError::Store(other.to_string()),
        }
    }
}

/// Current Unix time in milliseconds (the pure core takes time as input).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One running IPAM engine. Cheap to clone; the tasks stop when the last
/// clone is dropped.
pub struct Ipamd<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Ipamd<S> {
    fn clone(&self) -> Self {
        Ipamd {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    store: Arc<S>,
    mirror: Arc<RwLock<Mirror>>,
    nodes: Arc<NodeDirectory>,
    settings: Settings,
    commands: mpsc::Sender<writer::Command>,
    changed: watch::Receiver<Revision>,
    fatal: watch::Receiver<Option<String>>,
    stats: Arc<Stats>,
    uptime: Arc<Uptime>,
    /// Why the pools' source is not ready yet (the Kubernetes source until
    /// its first complete list), or None.
    source_pending: std::sync::Mutex<Option<String>>,
    /// The writer, the store watch and the sweeper, by name for the
    /// liveness check.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl<S> Drop for Inner<S> {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}

impl<S: Store> Ipamd<S> {
    /// Loads the store into memory and starts the writer, the store watch
    /// and the sweeper. Fails when the store cannot be read (a corrupted
    /// file is reported, never reset).
    pub async fn start(
        store: S,
        settings: Settings,
        nodes: Arc<NodeDirectory>,
    ) -> Result<Self, StoreError> {
        Self::start_with(store, settings, nodes, Arc::default()).await
    }

    /// `start`, with the daemon's `uptime` (its start time and metrics
    /// address, which GetStatus reports).
    pub async fn start_with(
        store: S,
        settings: Settings,
        nodes: Arc<NodeDirectory>,
        uptime: Arc<Uptime>,
    ) -> Result<Self, StoreError> {
        let store = Arc::new(store);
        let snapshot = store.list("").await?;
        let revision = snapshot.revision;
        let mirror = Mirror::load(snapshot);
        if let Some((key, reason)) = mirror.unreadable().next() {
            tracing::error!(
                key,
                reason,
                "the store holds records that do not decode; `podctl ipam check` lists them"
            );
        }
        let mirror = Arc::new(RwLock::new(mirror));
        let (changed_tx, changed) = watch::channel(revision);
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let (fatal_tx, fatal) = watch::channel(None);
        let stats = Arc::new(Stats::default());
        let context = writer::WriterContext {
            store: store.clone(),
            mirror: mirror.clone(),
            nodes: nodes.clone(),
            settings: settings.clone(),
            changed: changed_tx.clone(),
            verify_reads: store.has_other_writers(),
            fatal: fatal_tx,
            clock: unix_ms,
            stats: stats.clone(),
        };
        let mut tasks = vec![("writer", tokio::spawn(writer::run(context, queue)))];
        tasks.push((
            "store watch",
            tokio::spawn(follow_store(
                store.clone(),
                mirror.clone(),
                changed_tx,
                stats.clone(),
            )),
        ));
        let sweep_period =
            Duration::from_millis((settings.empty_block_grace_ms / 4).clamp(1_000, 60_000));
        tasks.push((
            "sweeper",
            tokio::spawn(sweep_forever(commands.clone(), sweep_period)),
        ));
        Ok(Ipamd {
            inner: Arc::new(Inner {
                store,
                mirror,
                nodes,
                settings,
                commands,
                changed,
                fatal,
                stats,
                uptime,
                source_pending: std::sync::Mutex::new(None),
                tasks,
            }),
        })
    }

    /// Counters and histograms since start.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    pub fn uptime(&self) -> &Uptime {
        &self.inner.uptime
    }

    /// Live: every task of the engine still runs, the writer takes a ping
    /// off its queue and the mirror can be read, within LIVE_DEADLINE. An
    /// unreachable store does not make it not live (a restart would not
    /// bring the store back): see `ready`.
    pub async fn live(&self) -> Result<(), String> {
        if let Some((name, _)) = self.inner.tasks.iter().find(|(_, t)| t.is_finished()) {
            return Err(format!("the IPAM engine's {name} task has stopped"));
        }
        let answered = tokio::time::timeout(LIVE_DEADLINE, async {
            let pong = self.submit(Job::Ping).await;
            drop(self.inner.mirror.read().await);
            pong
        })
        .await;
        match answered {
            Ok(Ok(Answer::Alive)) => Ok(()),
            Ok(Ok(other)) => Err(unexpected(&other).to_string()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "the IPAM engine did not answer within {}s",
                LIVE_DEADLINE.as_secs()
            )),
        }
    }

    /// Ready: the store is loaded (an engine exists only then), can still
    /// be written, and answered at the last contact, and the pools' source
    /// has given its pools. An etcd that cannot be reached makes the
    /// replica not ready: it could only answer UNAVAILABLE, and other
    /// replicas may still reach etcd.
    pub fn ready(&self) -> Result<(), String> {
        if let Some(reason) = self.inner.fatal.borrow().as_ref() {
            return Err(format!("the IPAM store can no longer be written: {reason}"));
        }
        self.inner.stats.store_reachable()?;
        match self.source_pending().as_ref() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// Not ready, for `reason`, until called again with None: a source of
    /// pools that has not given them yet.
    pub fn set_source_pending(&self, reason: Option<String>) {
        *self.source_pending() = reason;
    }

    fn source_pending(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner
            .source_pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn nodes(&self) -> &NodeDirectory {
        &self.inner.nodes
    }

    pub fn store_description(&self) -> String {
        self.inner.store.describe()
    }

    /// Store revision of the last change seen; changes on every write.
    pub fn changes(&self) -> watch::Receiver<Revision> {
        self.inner.changed.clone()
    }

    /// Resolves with the reason when the store can no longer be written;
    /// the daemon then exits so its supervisor restarts it.
    pub async fn failed(&self) -> String {
        let mut fatal = self.inner.fatal.clone();
        loop {
            if let Some(reason) = fatal.borrow_and_update().clone() {
                return reason;
            }
            if fatal.changed().await.is_err() {
                return "the IPAM engine stopped".to_owned();
            }
        }
    }

    /// Runs `read` against the mirror.
    pub async fn read<R>(&self, read: impl FnOnce(&Mirror) -> R) -> R {
        let mirror = self.inner.mirror.read().await;
        read(&mirror)
    }

    pub async fn submit(&self, job: Job) -> Result<Answer, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(writer::Command::new(job, reply))
            .await
            .map_err(|_| ServiceError::Stopping)?;
        answer.await.map_err(|_| ServiceError::Stopping)?
    }

    pub async fn allocate(&self, request: AllocateRequest) -> Result<Vec<Allocated>, ServiceError> {
        // Readiness keeps the Service's traffic away meanwhile; this also
        // turns away callers that reach ipamd directly.
        if let Some(reason) = self.source_pending().clone() {
            return Err(ServiceError::NotReady(reason));
        }
        match self.submit(Job::Allocate(request)).await {
            Ok(Answer::Allocated(addresses)) => Ok(addresses),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => {
                if let ServiceError::Alloc(AllocError::AddressHeld { .. }) = error {
                    self.inner
                        .stats
                        .address_conflicts
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(error)
            }
        }
    }

    pub async fn release(&self, handle: &str) -> Result<Vec<IpAddr>, ServiceError> {
        self.release_as(handle, None).await
    }

    /// Releases `handle` only if it is `node`'s (None: any node's).
    pub async fn release_as(
        &self,
        handle: &str,
        node: Option<&str>,
    ) -> Result<Vec<IpAddr>, ServiceError> {
        self.release_with(handle, node, ReleaseCause::Release).await
    }

    /// Releases `handle` for `cause` (what its addresses count as).
    pub async fn release_for(
        &self,
        handle: &str,
        cause: ReleaseCause,
    ) -> Result<Vec<IpAddr>, ServiceError> {
        self.release_with(handle, None, cause).await
    }

    async fn release_with(
        &self,
        handle: &str,
        node: Option<&str>,
        cause: ReleaseCause,
    ) -> Result<Vec<IpAddr>, ServiceError> {
        let job = Job::Release {
            handle: handle.to_owned(),
            as_node: node.map(str::to_owned),
            cause,
        };
        match self.submit(job).await? {
            Answer::Released(addresses) => Ok(addresses),
            other => Err(unexpected(&other)),
        }
    }

    /// Releases every handle of `node` not in `valid`; returns the handles
    /// released and how many addresses they held.
    pub async fn garbage_collect(
        &self,
        node: &str,
        valid: &HashSet<String>,
        handle_prefix: &str,
    ) -> Result<(Vec<String>, usize), ServiceError> {
        let collected = self
            .garbage_collect_for(node, valid, handle_prefix, ReleaseCause::GarbageCollection)
            .await?;
        self.inner
            .stats
            .garbage_collections
            .fetch_add(1, Ordering::Relaxed);
        Ok(collected)
    }

    /// `garbage_collect` for `cause` (what the freed addresses count as;
    /// only `GarbageCollect` calls are counted as calls).
    pub async fn garbage_collect_for(
        &self,
        node: &str,
        valid: &HashSet<String>,
        handle_prefix: &str,
        cause: ReleaseCause,
    ) -> Result<(Vec<String>, usize), ServiceError> {
        let since_ms = unix_ms();
        let mut released = Vec::new();
        let mut addresses = 0;
        loop {
            let job = Job::GarbageCollect {
                node: node.to_owned(),
                valid: valid.clone(),
                handle_prefix: handle_prefix.to_owned(),
                since_ms,
                cause,
            };
            match self.submit(job).await? {
                Answer::Collected {
                    handles,
                    addresses: freed,
                    more,
                } => {
                    released.extend(handles);
                    addresses += freed;
                    if !more {
                        return Ok((released, addresses));
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Creates `pool`, or with `update` also changes an existing one.
    /// Returns whether anything changed.
    pub async fn put_pool(&self, pool: IpPool, update: bool) -> Result<bool, ServiceError> {
        let job = Job::PutPool {
            pool: Box::new(pool),
            update,
        };
        match self.submit(job).await? {
            Answer::Changed(changed) => Ok(changed),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes a pool no address of which is held; returns the number of
    /// empty blocks removed with it.
    pub async fn delete_pool(&self, name: &str) -> Result<usize, ServiceError> {
        match self.submit(Job::DeletePool(name.to_owned())).await? {
            Answer::Count(blocks) => Ok(blocks),
            other => Err(unexpected(&other)),
        }
    }

    /// Returns `node`'s empty blocks to their pools now, without waiting
    /// for their grace period (the node is gone); blocks with an address
    /// still cooling down stay. Returns the number of blocks returned.
    pub async fn return_node_blocks(&self, node: &str) -> Result<usize, ServiceError> {
        let mut returned = 0;
        loop {
            match self.submit(Job::ReturnNodeBlocks(node.to_owned())).await? {
                // A batch holds at most MAX_KEYS_PER_BATCH blocks: ask again
                // until nothing more goes.
                Answer::Count(0) => return Ok(returned),
                Answer::Count(blocks) => returned += blocks,
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Returns empty blocks past their grace period to their pools now.
    pub async fn sweep(&self) -> Result<usize, ServiceError> {
        match self.submit(Job::Sweep).await? {
            Answer::Count(blocks) => Ok(blocks),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(answer: &Answer) -> ServiceError {
    ServiceError::Store(format!("internal error: unexpected answer {answer:?}"))
}

/// Keeps the mirror current from the store's watch; relists when the watch
/// lost events or broke. The store going away and coming back is logged
/// once each, by `stats`; every retry in between is debug.
async fn follow_store<S: Store>(
    store: Arc<S>,
    mirror: Arc<RwLock<Mirror>>,
    changed: watch::Sender<Revision>,
    stats: Arc<Stats>,
) {
    loop {
        let after = mirror.read().await.watched_revision();
        match store.watch("", after).await {
            Ok(mut stream) => {
                while let Some(message) = stream.recv().await {
                    match message {
                        WatchMessage::Events { revision, events } => {
                            stats.store_answered();
                            mirror.write().await.apply_events(revision, events);
                            writer::advance(&changed, revision);
                        }
                        WatchMessage::Resync => break,
                    }
                }
            }
            Err(error) => store_trouble(&stats, &error, "cannot watch the store; retrying"),
        }
        // The watch ended: list everything again.
        loop {
            match store.list("").await {
                Ok(snapshot) => {
                    stats.store_answered();
                    stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    let revision = snapshot.revision;
                    *mirror.write().await = Mirror::load(snapshot);
                    writer::advance(&changed, revision);
                    changed.send_modify(|_| {});
                    tracing::info!(revision, "reloaded the store after a broken watch");
                    break;
                }
                Err(error) => {
                    store_trouble(&stats, &error, "cannot list the store; retrying");
                    tokio::time::sleep(RELIST_BACKOFF).await;
                }
            }
        }
    }
}

/// An unreachable store is logged once by `stats` (each retry is debug);
/// any other error, which retrying may not cure, is a warning every time.
fn store_trouble(stats: &Stats, error: &StoreError, what: &str) {
    if matches!(error, StoreError::Unavailable(_)) {
        stats.store_failed(error);
        tracing::debug!(%error, "{what}");
    } else {
        tracing::warn!(%error, "{what}");
    }
}

/// Asks the writer to sweep at a quarter of the grace period (at most a
/// minute), so an empty block returns to its pool soon after its grace.
async fn sweep_forever(commands: mpsc::Sender<writer::Command>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (reply, answer) = oneshot::channel();
        let command = writer::Command::new(Job::Sweep, reply);
        if commands.send(command).await.is_err() {
            return;
        }
        match answer.await {
            Ok(Ok(Answer::Count(swept))) if swept > 0 => {
                tracing::info!(blocks = swept, "returned empty blocks to their pools");
            }
            Ok(Err(error)) => tracing::warn!(%error, "sweeping empty blocks failed"),
            _ => {}
        }
    }
}
