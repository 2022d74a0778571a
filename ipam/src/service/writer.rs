// The one task of an ipamd that writes. It takes every command queued, plans
// them one after another against the mirror (each seeing the ones before
// it), and commits the lot as one store transaction: one fsync (or one etcd
// round) for many allocations, which is where the throughput comes from.
// While one batch commits, the next is planned and sent, from commands whose
// keys the first does not touch (other nodes' pods): it never depends on the
// first one's outcome, so the two commit independently. A conflict (another
// replica wrote a key we compared) undoes the batch, refreshes the mirror
// from the values the store reported, and plans those commands again.
// Replies wait for the commit, so nobody hears of an allocation that is not
// durable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{RwLock, mpsc, oneshot, watch};

use super::ServiceError;
use super::mirror::{Mirror, PENDING};
use super::nodes::NodeDirectory;
use super::stats::{ReleaseCause, Retry, Stats, Tally};
use crate::allocator::{self, AllocateOutcome, AllocateRequest, Allocated, Plan, Settings};
use crate::model::{IpPool, Record, RecordKey, State};
use crate::store::{Compare, Op, Revision, Store, StoreError, TxnOutcome};

/// etcd refuses transactions of more than 128 operations by default; a
/// batch stops taking commands once it touches this many keys.
const MAX_KEYS_PER_BATCH: usize = 100;
/// How long a command keeps retrying an unreachable store, or (after
/// GIVE_UP_AFTER_ATTEMPTS lost races) conflicts, before its caller gets
/// UNAVAILABLE (the CNI plugin then says "try again").
const RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// Batches committing at once: the second is planned while the first waits
/// for its fsync.
const MAX_IN_FLIGHT: usize = 2;
/// A command whose batches conflicted this often is committed on its own:
/// with replicas busy on the same nodes, a big batch may never find a
/// moment in which none of its keys changed; one pod's keys will.
const ALONE_AFTER_ATTEMPTS: u32 = 3;
/// Conflicts after which (and past RETRY_DEADLINE) a command gives up.
const GIVE_UP_AFTER_ATTEMPTS: u32 = 10;

pub type Reply = oneshot::Sender<Result<Answer, ServiceError>>;

/// A command and where its answer goes.
#[derive(Debug)]
pub struct Command {
    pub job: Job,
    pub reply: Reply,
    /// Transactions it was part of that conflicted or failed.
    attempts: u32,
    /// When it was first planned: retries stop after RETRY_DEADLINE.
    first_planned: Option<Instant>,
}

impl Command {
    pub fn new(job: Job, reply: Reply) -> Self {
        Command {
            job,
            reply,
            attempts: 0,
            first_planned: None,
        }
    }

    /// Jobs that may touch many keys run only when no batch is in flight.
    fn is_exclusive(&self) -> bool {
        !matches!(self.job, Job::Allocate(_) | Job::Release { .. })
    }

    /// The handle key an allocate or release reads, even when it writes
    /// nothing (an idempotent repeat answers from it).
    fn handle_key(&self) -> Option<String> {
        match &self.job {
            Job::Allocate(request) => Some(RecordKey::Handle(request.handle.clone()).to_key()),
            Job::Release { handle, .. } => Some(RecordKey::Handle(handle.clone()).to_key()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Job {
    Allocate(AllocateRequest),
    /// Release `handle`; with `as_node`, only if the handle is that node's
    /// (a node certificate's call).
    Release {
        handle: String,
        as_node: Option<String>,
        /// What the freed addresses are counted as.
        cause: ReleaseCause,
    },
    /// Release every allocation of `node` whose handle is not in `valid`,
    /// except handles created at or after `since_ms` (when the request
    /// arrived: a pod being added meanwhile is not garbage).
    GarbageCollect {
        node: String,
        valid: HashSet<String>,
        /// Only handles starting with this are collected ("" for all).
        handle_prefix: String,
        since_ms: u64,
        /// What the freed addresses are counted as.
        cause: ReleaseCause,
    },
    /// Return `node`'s empty blocks to their pools now, whatever their
    /// grace period (the node was deleted); blocks with an address still
    /// cooling down stay until it has cooled.
    ReturnNodeBlocks(String),
    /// Return empty blocks past their grace period to their pools.
    Sweep,
    /// Create, or update when `update` is set and a pool of that name exists.
    PutPool {
        pool: Box<IpPool>,
        update: bool,
    },
    /// Runs alone: it may need several transactions.
    DeletePool(String),
    /// Answered as soon as the writer takes it from its channel: proof
    /// that the writer's loop turns (the liveness probe).
    Ping,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Allocated(Vec<Allocated>),
    Released(Vec<IpAddr>),
    /// Handles released and addresses freed; `more` when the batch filled
    /// up before the node was clean (ask again).
    Collected {
        handles: Vec<String>,
        addresses: usize,
        more: bool,
    },
    /// Blocks swept or removed.
    Count(usize),
    /// Whether a pool write changed anything.
    Changed(bool),
    /// The answer to `Ping`.
    Alive,
}

/// Everything the writer reads besides its queue.
pub struct WriterContext<S> {
    pub store: Arc<S>,
    pub mirror: Arc<RwLock<Mirror>>,
    pub nodes: Arc<NodeDirectory>,
    pub settings: Settings,
    /// Told the store revision after every commit, so node watchers look.
    pub changed: watch::Sender<Revision>,
    /// Confirm answers read from the mirror (an idempotent repeat, an
    /// unknown handle) with a transaction: other replicas write too.
    pub verify_reads: bool,
    /// Set when the store can no longer be written (the daemon must stop).
    pub fatal: watch::Sender<Option<String>>,
    pub clock: fn() -> u64,
    pub stats: Arc<Stats>,
}

/// A batch sent to the store, waiting for its outcome.
struct InFlight {
    batch: Batch,
    taken: Vec<(Command, Outcome)>,
}

type Commit<'a> = BoxFuture<'a, (u64, Result<TxnOutcome, StoreError>)>;

/// Runs until every sender of `commands` is gone and all work is done.
pub async fn run<S: Store>(ctx: WriterContext<S>, mut commands: mpsc::Receiver<Command>) {
    let mut queue: VecDeque<Command> = VecDeque::new();
    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    let mut commits: FuturesUnordered<Commit<'_>> = FuturesUnordered::new();
    let mut next_id = 0u64;
    let mut open = true;
    loop {
        while let Ok(command) = commands.try_recv() {
            take(command, &mut queue);
        }
        // Plan and send while there is room and something can go.
        while in_flight.len() < MAX_IN_FLIGHT && !queue.is_empty() {
            if matches!(queue.front().map(|c| &c.job), Some(Job::DeletePool(_))) {
                if !in_flight.is_empty() {
                    break;
                }
                if let Some(Command {
                    job: Job::DeletePool(name),
                    reply,
                    ..
                }) = queue.pop_front()
                {
                    let result = delete_pool(&ctx, &name).await.map(Answer::Count);
                    drop(reply.send(result));
                }
                continue;
            }
            let busy: HashSet<String> = in_flight
                .values()
                .flat_map(|f| f.batch.keys.keys().cloned())
                .collect();
            let Some((batch, taken)) = plan_batch(&ctx, &mut queue, busy).await else {
                // Everything left waits for a batch in flight.
                break;
            };
            if batch.keys.is_empty() {
                // Nothing to write (idempotent repeats, errors): answer now.
                answer_all(taken);
                continue;
            }
            let (compares, ops) = batch.transaction();
            let id = next_id;
            next_id += 1;
            let store = &ctx.store;
            let stats = &ctx.stats;
            commits.push(Box::pin(async move {
                let started = Instant::now();
                let outcome = store.txn(compares, ops).await;
                stats.commit_duration.observe(started.elapsed());
                (id, outcome)
            }));
            in_flight.insert(id, InFlight { batch, taken });
        }
        if !open && queue.is_empty() && in_flight.is_empty() {
            return;
        }
        tokio::select! {
            Some((id, outcome)) = commits.next(), if !commits.is_empty() => {
                if let Some(flight) = in_flight.remove(&id) {
                    settle(&ctx, flight, outcome, &mut queue).await;
                }
            }
            command = commands.recv(), if open => match command {
                Some(command) => take(command, &mut queue),
                None => open = false,
            },
            // Closed and nothing in flight: what is queued was planned above.
            else => return,
        }
    }
}

/// Queues `command`, or answers it at once when it is a ping.
fn take(command: Command, queue: &mut VecDeque<Command>) {
    if matches!(command.job, Job::Ping) {
        drop(command.reply.send(Ok(Answer::Alive)));
    } else {
        queue.push_back(command);
    }
}

/// Takes queued commands into one batch, applying each plan to the mirror
/// tentatively. Commands that touch a key of a batch in flight (`busy`), or
/// a handle an earlier waiting command touches, stay queued in order; an
/// exclusive job waits until nothing is in flight, and nothing passes it.
/// None when nothing could be taken.
async fn plan_batch<S: Store>(
    ctx: &WriterContext<S>,
    queue: &mut VecDeque<Command>,
    mut busy: HashSet<String>,
) -> Option<(Batch, Vec<(Command, Outcome)>)> {
    let mut mirror = ctx.mirror.write().await;
    let now = (ctx.clock)();
    let idle = busy.is_empty();
    let mut batch = Batch::default();
    let mut taken = Vec::new();
    let mut waiting = VecDeque::new();
    while let Some(mut command) = queue.pop_front() {
        if matches!(command.job, Job::DeletePool(_)) || batch.keys.len() >= MAX_KEYS_PER_BATCH {
            queue.push_front(command);
            break;
        }
        if command.is_exclusive() && !(idle && taken.is_empty()) {
            // A barrier: what comes after it (an allocation from a pool
            // being created) must not overtake it.
            queue.push_front(command);
            break;
        }
        let alone = command.attempts >= ALONE_AFTER_ATTEMPTS;
        if alone && !taken.is_empty() {
            queue.push_front(command);
            break;
        }
        let handle = command.handle_key();
        if handle.as_ref().is_some_and(|h| busy.contains(h)) {
            // Later commands of the same handle keep their order behind it.
            busy.extend(handle);
            waiting.push_back(command);
            continue;
        }
        command.first_planned.get_or_insert_with(Instant::now);
        match plan_job(ctx, &mut mirror.state, &mut batch, &busy, &command.job, now) {
            Planned::Answer(outcome) => {
                let close = command.is_exclusive() || alone;
                taken.push((command, outcome));
                if close {
                    break;
                }
            }
            Planned::Wait => {
                busy.extend(handle);
                waiting.push_back(command);
            }
        }
    }
    for command in waiting.into_iter().rev() {
        queue.push_front(command);
    }
    (!taken.is_empty()).then_some((batch, taken))
}

/// Applies a batch's outcome: commit it into the mirror and answer, or undo
/// it and queue its commands again (at the front, in order).
async fn settle<S: Store>(
    ctx: &WriterContext<S>,
    flight: InFlight,
    outcome: Result<TxnOutcome, StoreError>,
    queue: &mut VecDeque<Command>,
) {
    let InFlight { batch, taken } = flight;
    let mut mirror = ctx.mirror.write().await;
    match &outcome {
        Ok(_) => ctx.stats.store_answered(),
        Err(error) => ctx.stats.store_failed(error),
    }
    let error = match outcome {
        Ok(TxnOutcome::Committed { revision }) => {
            ctx.stats.add(batch.tally);
            batch.commit(&mut mirror, revision);
            let held = mirror.take_held();
            mirror.replay(held);
            drop(mirror);
            advance(&ctx.changed, revision);
            answer_all(taken);
            return;
        }
        Ok(TxnOutcome::Conflict { current }) => {
            ctx.stats
                .transaction_conflicts
                .fetch_add(1, Ordering::Relaxed);
            batch.undo(&mut mirror.state);
            mirror.apply_current(current);
            None
        }
        Err(error) => {
            batch.undo(&mut mirror.state);
            Some(error)
        }
    };
    let pending = mirror.take_held();
    mirror.replay(pending);
    drop(mirror);
    // Readers (node views) saw the undone writes: let them look again.
    ctx.changed.send_modify(|_| {});
    if let Some(error) = &error
        && is_fatal(error)
    {
        tracing::error!(%error, "the store can no longer be written");
        ctx.fatal.send_replace(Some(error.to_string()));
    }
    let mut attempts = 0;
    let mut retried = 0;
    for (mut command, _) in taken.into_iter().rev() {
        command.attempts += 1;
        attempts = attempts.max(command.attempts);
        let expired = command
            .first_planned
            .is_some_and(|t| t.elapsed() > RETRY_DEADLINE);
        let failure = match &error {
            Some(e) if !retryable(e) => Some(ServiceError::from_store(e)),
            Some(e) if expired => Some(ServiceError::from_store(e)),
            // A command that mostly waited in the queue behind others is
            // not contended: only many lost races give up.
            None if expired && command.attempts >= GIVE_UP_AFTER_ATTEMPTS => {
                Some(ServiceError::Contended {
                    attempts: command.attempts,
                })
            }
            _ => None,
        };
        match failure {
            Some(failure) => {
                tracing::warn!(error = %failure, "giving up on a command");
                drop(command.reply.send(Err(failure)));
            }
            None => {
                retried += 1;
                queue.push_front(command);
            }
        }
    }
    // The store going away is logged once, by stats; each retry is debug.
    match &error {
        Some(error) => {
            ctx.stats.retried(Retry::Unavailable, retried);
            tracing::debug!(%error, attempts, "store write failed; retrying");
        }
        None => {
            ctx.stats.retried(Retry::Conflict, retried);
            tracing::debug!(attempts, "batch conflicted; planning again");
        }
    }
    // Let the other writer finish (or the store come back). A first
    // conflict is retried at once: the mirror already holds the new values.
    if error.is_some() || attempts > 1 {
        tokio::time::sleep(backoff(attempts)).await;
    }
}

type Outcome = Result<Answer, ServiceError>;

fn answer_all(taken: Vec<(Command, Outcome)>) {
    for (command, outcome) in taken {
        // A caller that went away (client timeout) has nothing to hear.
        drop(command.reply.send(outcome));
    }
}

/// What planning a job gave.
enum Planned {
    /// Part of the batch; answered once the batch is durable.
    Answer(Outcome),
    /// Its plan touches a key of a batch in flight: plan it again later.
    Wait,
}

/// Plans `job` on top of the batch so far, unless its plan touches a key in
/// `busy`.
fn plan_job<S>(
    ctx: &WriterContext<S>,
    state: &mut State,
    batch: &mut Batch,
    busy: &HashSet<String>,
    job: &Job,
    now: u64,
) -> Planned {
    if let Job::Allocate(request) = job {
        let handle = RecordKey::Handle(request.handle.clone());
        if state.is_unreadable(&handle) {
            return Planned::Answer(Err(ServiceError::Unreadable(handle.to_key())));
        }
        let labels = ctx.nodes.labels(&request.node);
        return match allocator::plan_allocate(state, request, &labels, &ctx.settings, now) {
            Ok(AllocateOutcome::Existing(addresses)) => {
                if ctx.verify_reads {
                    let revision = state.handle(&request.handle).map_or(0, |h| h.revision);
                    batch.touch(&handle, revision);
                }
                Planned::Answer(Ok(Answer::Allocated(addresses)))
            }
            Ok(AllocateOutcome::Plan { plan, allocated }) => {
                if touches(&plan, busy) {
                    return Planned::Wait;
                }
                if let Some(key) = unreadable_in(&plan, state) {
                    return Planned::Answer(Err(ServiceError::Unreadable(key)));
                }
                // The answer lists the handle's addresses held before too.
                let held = state
                    .handle(&request.handle)
                    .map_or(0, |h| h.value.addresses.len());
                batch.tally.allocated += count(allocated.len().saturating_sub(held));
                batch.add(state, plan);
                Planned::Answer(Ok(Answer::Allocated(allocated)))
            }
            Err(e) => Planned::Answer(Err(ServiceError::Alloc(e))),
        };
    }
    if let Job::Release {
        handle,
        as_node,
        cause,
    } = job
    {
        let key = RecordKey::Handle(handle.clone());
        if state.is_unreadable(&key) {
            return Planned::Answer(Err(ServiceError::Unreadable(key.to_key())));
        }
        if let (Some(node), Some(record)) = (as_node, state.handle(handle))
            && &record.value.node != node
        {
            return Planned::Answer(Err(ServiceError::Denied(format!(
                "handle {handle:?} belongs to node {:?}, not {node:?}",
                record.value.node
            ))));
        }
        let released = match allocator::plan_release(state, handle, &ctx.settings, now) {
            Some((plan, _)) if touches(&plan, busy) => return Planned::Wait,
            Some((plan, addresses)) => {
                if let Some(key) = unreadable_in(&plan, state) {
                    return Planned::Answer(Err(ServiceError::Unreadable(key)));
                }
                batch.tally.free(*cause, count(addresses.len()));
                batch.add(state, plan);
                addresses
            }
            None => {
                if ctx.verify_reads {
                    // Unknown here; make sure it is unknown in the store.
                    batch.touch(&key, 0);
                }
                Vec::new()
            }
        };
        return Planned::Answer(Ok(Answer::Released(released)));
    }
    // The rest run only when nothing is in flight (busy is empty).
    Planned::Answer(plan_exclusive(ctx, state, batch, job, now))
}

/// A key of `plan` whose stored value does not decode: writing it would
/// conflict forever (the mirror cannot say what is there).
fn unreadable_in(plan: &Plan, state: &State) -> Option<String> {
    plan.compares
        .iter()
        .map(|(key, _)| key)
        .chain(plan.writes.iter().map(|(key, _)| key))
        .find(|key| state.is_unreadable(key))
        .map(RecordKey::to_key)
}

fn touches(plan: &Plan, busy: &HashSet<String>) -> bool {
    !busy.is_empty()
        && plan
            .compares
            .iter()
            .map(|(key, _)| key)
            .chain(plan.writes.iter().map(|(key, _)| key))
            .any(|key| busy.contains(&key.to_key()))
}

/// Plans a job that may touch many keys (GC, sweep, pools).
fn plan_exclusive<S>(
    ctx: &WriterContext<S>,
    state: &mut State,
    batch: &mut Batch,
    job: &Job,
    now: u64,
) -> Outcome {
    match job {
        Job::GarbageCollect {
            node,
            valid,
            handle_prefix,
            since_ms,
            cause,
        } => {
            // Handles made since the request arrived count as valid.
            let mut valid = valid.clone();
            valid.extend(
                state
                    .handles_of_node(node)
                    .filter(|h| h.value.created_at_ms >= *since_ms)
                    .map(|h| h.value.handle.clone()),
            );
            let valid = &valid;
            let mut handles = Vec::new();
            let mut addresses = 0;
            let mut more = false;
            // Groups never share a key, but a handle whose block an earlier
            // group writes waits for the next round (on the tentative state).
            'rounds: loop {
                let groups =
                    allocator::plan_gc(state, node, valid, handle_prefix, &ctx.settings, now);
                let before = (handles.len(), addresses);
                if groups.is_empty() {
                    break;
                }
                for group in groups {
                    if batch.keys.len() + group.plan.writes.len() > MAX_KEYS_PER_BATCH {
                        more = true;
                        break 'rounds;
                    }
                    batch.add(state, group.plan);
                    batch.tally.free(*cause, count(group.released.len()));
                    handles.extend(group.handles);
                    addresses += group.released.len();
                }
                if (handles.len(), addresses) == before {
                    // Nothing came of the round: do not spin.
                    break;
                }
            }
            Ok(Answer::Collected {
                handles,
                addresses,
                more,
            })
        }
        Job::Sweep => {
            let mut swept = 0;
            for plan in allocator::plan_sweep(state, &ctx.settings, now) {
                if batch.keys.len() >= MAX_KEYS_PER_BATCH {
                    break;
                }
                batch.add(state, plan);
                batch.tally.swept += 1;
                swept += 1;
            }
            Ok(Answer::Count(swept))
        }
        Job::ReturnNodeBlocks(node) => {
            let mut returned = 0;
            for plan in allocator::plan_return_node_blocks(state, node, &ctx.settings, now) {
                if batch.keys.len() >= MAX_KEYS_PER_BATCH {
                    break;
                }
                batch.add(state, plan);
                batch.tally.swept += 1;
                returned += 1;
            }
            Ok(Answer::Count(returned))
        }
        Job::PutPool { pool, update } => {
            let planned = if *update && state.pool(pool.name()).is_some() {
                allocator::plan_update_pool(state, (**pool).clone())?
            } else {
                allocator::plan_create_pool(state, (**pool).clone())?
            };
            match planned {
                Some(plan) => {
                    batch.add(state, plan);
                    Ok(Answer::Changed(true))
                }
                None => Ok(Answer::Changed(false)),
            }
        }
        // Allocate and release are planned by plan_job; pool deletion runs
        // alone (see run).
        Job::Allocate(_) | Job::Release { .. } | Job::DeletePool(_) | Job::Ping => {
            Ok(Answer::Count(0))
        }
    }
}

async fn delete_pool<S: Store>(ctx: &WriterContext<S>, name: &str) -> Result<usize, ServiceError> {
    let first = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let plans = {
            let mirror = ctx.mirror.read().await;
            allocator::plan_delete_pool(&mirror.state, name)?
        };
        let blocks_removed = plans
            .iter()
            .flat_map(|p| &p.writes)
            .filter(|(key, value)| matches!(key, RecordKey::Block(_)) && value.is_none())
            .count();
        let mut conflicted = false;
        for plan in plans {
            let mut mirror = ctx.mirror.write().await;
            let mut batch = Batch::default();
            batch.add(&mut mirror.state, plan);
            let (compares, ops) = batch.transaction();
            let started = Instant::now();
            let outcome = ctx.store.txn(compares, ops).await;
            ctx.stats.commit_duration.observe(started.elapsed());
            match &outcome {
                Ok(_) => ctx.stats.store_answered(),
                Err(error) => ctx.stats.store_failed(error),
            }
            match outcome {
                Ok(TxnOutcome::Committed { revision }) => {
                    batch.commit(&mut mirror, revision);
                    advance(&ctx.changed, revision);
                }
                Ok(TxnOutcome::Conflict { current }) => {
                    ctx.stats
                        .transaction_conflicts
                        .fetch_add(1, Ordering::Relaxed);
                    batch.undo(&mut mirror.state);
                    mirror.apply_current(current);
                    ctx.stats.retried(Retry::Conflict, 1);
                    conflicted = true;
                    break;
                }
                Err(error) => {
                    batch.undo(&mut mirror.state);
                    if !retryable(&error) || first.elapsed() > RETRY_DEADLINE {
                        return Err(ServiceError::from_store(&error));
                    }
                    ctx.stats.retried(Retry::Unavailable, 1);
                    conflicted = true;
                    break;
                }
            }
        }
        if !conflicted {
            return Ok(blocks_removed);
        }
        if first.elapsed() > RETRY_DEADLINE {
            return Err(ServiceError::Contended { attempts: attempt });
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
}

/// Raises the revision watchers see, never lowers it (our commits and the
/// store watch report revisions in either order).
pub fn advance(changed: &watch::Sender<Revision>, revision: Revision) {
    changed.send_if_modified(|seen| {
        if revision > *seen {
            *seen = revision;
            true
        } else {
            false
        }
    });
}

/// A store that failed like this will not take writes again without a
/// restart (the embedded writer stops after a failed commit).
fn is_fatal(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Closed | StoreError::Io { .. } | StoreError::Corrupt { .. }
    )
}

fn retryable(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_))
}

/// 2, 4, 8 ... ms up to 250 ms, with jitter so replicas do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(7)).min(250);
    let jitter = u64::from(std::process::id() ^ attempt.wrapping_mul(2_654_435_761)) % base.max(1);
    Duration::from_millis(base + jitter)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The keys a batch read and wrote, with how to undo its tentative writes.
#[derive(Default)]
struct Batch {
    /// Key → (revision compared, final value; None = delete, or only read).
    keys: HashMap<String, BatchKey>,
    /// Key order of first touch, for a stable transaction.
    order: Vec<RecordKey>,
    /// State before each tentative write, newest last.
    undo: Vec<(RecordKey, Option<(Record, Revision)>)>,
    /// What it does, counted once it is durable.
    tally: Tally,
}

struct BatchKey {
    compare: Revision,
    write: Option<Option<Record>>,
}

impl Batch {
    /// Adds `plan` and applies its writes to `state` tentatively, so the
    /// next command of the batch plans on top of it.
    fn add(&mut self, state: &mut State, plan: Plan) {
        for (key, revision) in plan.compares {
            self.touch(&key, revision);
        }
        for (key, value) in plan.writes {
            let text = key.to_key();
            let revision = current(state, &key).map_or(0, |(_, r)| r);
            self.touch(&key, revision);
            self.undo.push((key.clone(), current(state, &key)));
            match &value {
                Some(record) => state.apply_record(record.clone(), PENDING),
                None => state.remove(&key),
            }
            if let Some(entry) = self.keys.get_mut(&text) {
                entry.write = Some(value);
            }
        }
    }

    /// Adds `key` to the batch; a key not written is only compared.
    fn touch(&mut self, key: &RecordKey, revision: Revision) {
        let text = key.to_key();
        // A key first seen by this batch compares its stored revision; one
        // already touched here is covered by that compare.
        if let std::collections::hash_map::Entry::Vacant(entry) = self.keys.entry(text) {
            entry.insert(BatchKey {
                compare: revision,
                write: None,
            });
            self.order.push(key.clone());
        }
    }

    fn transaction(&self) -> (Vec<Compare>, Vec<Op>) {
        let mut compares = Vec::with_capacity(self.order.len());
        let mut ops = Vec::with_capacity(self.order.len());
        for key in &self.order {
            let text = key.to_key();
            let Some(entry) = self.keys.get(&text) else {
                continue;
            };
            compares.push(Compare {
                key: text.clone(),
                mod_revision: entry.compare,
            });
            match &entry.write {
                Some(Some(record)) => ops.push(Op::Put {
                    key: text,
                    value: record.encode(),
                }),
                Some(None) => ops.push(Op::Delete { key: text }),
                None => {}
            }
        }
        (compares, ops)
    }

    /// The batch is durable at `revision`: give its writes their revision.
    fn commit(self, mirror: &mut Mirror, revision: Revision) {
        for key in self.order {
            let Some(entry) = self.keys.get(&key.to_key()) else {
                continue;
            };
            match &entry.write {
                Some(Some(record)) => mirror.committed_put(record.clone(), revision),
                Some(None) => mirror.committed_delete(&key, revision),
                None => {}
            }
        }
    }

    fn undo(self, state: &mut State) {
        for (key, previous) in self.undo.into_iter().rev() {
            match previous {
                Some((record, revision)) => state.apply_record(record, revision),
                None => state.remove(&key),
            }
        }
    }
}

/// The record `state` holds for `key`, with its revision.
fn current(state: &State, key: &RecordKey) -> Option<(Record, Revision)> {
    match key {
        RecordKey::Pool(name) => state
            .pool(name)
            .map(|v| (Record::Pool(v.value.clone()), v.revision)),
        RecordKey::Block(cidr) => state
            .block(cidr)
            .map(|v| (Record::Block(v.value.clone()), v.revision)),
        RecordKey::Handle(handle) => state
            .handle(handle)
            .map(|v| (Record::Handle(v.value.clone()), v.revision)),
    }
}
