// The one task of an ipamd that writes. It takes every command queued, plans
// them one after another against the mirror (each seeing the ones before
// it), and commits the lot as one store transaction: one fsync (or one etcd
// round) for many allocations, which is where the throughput comes from.
// A conflict (another replica wrote a key we compared) undoes the batch,
// refreshes the mirror from the values the store reported, and plans again.
// Replies wait for the commit, so nobody hears of an allocation that is not
// durable.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, mpsc, oneshot, watch};

use super::ServiceError;
use super::mirror::Mirror;
use super::nodes::NodeDirectory;
use crate::allocator::{self, AllocateOutcome, AllocateRequest, Allocated, Plan, Settings};
use crate::model::{IpPool, Record, RecordKey, State};
use crate::store::{Compare, Op, Revision, Store, StoreError, TxnOutcome};

/// etcd refuses transactions of more than 128 operations by default; a
/// batch stops taking commands once it touches this many keys.
const MAX_KEYS_PER_BATCH: usize = 100;
/// How long one batch keeps retrying conflicts and an unreachable store
/// before its callers get UNAVAILABLE (the CNI plugin then says "try again").
const RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// Revision given to a key written by the batch being planned.
const PENDING: Revision = Revision::MAX;

pub type Reply = oneshot::Sender<Result<Answer, ServiceError>>;

/// A command and where its answer goes.
#[derive(Debug)]
pub struct Command {
    pub job: Job,
    pub reply: Reply,
}

#[derive(Debug, Clone)]
pub enum Job {
    Allocate(AllocateRequest),
    Release(String),
    /// Release every allocation of `node` whose handle is not in `valid`.
    GarbageCollect {
        node: String,
        valid: HashSet<String>,
    },
    /// Return empty blocks past their grace period to their pools.
    Sweep,
    /// Create, or update when `update` is set and a pool of that name exists.
    PutPool {
        pool: Box<IpPool>,
        update: bool,
    },
    /// Runs alone: it may need several transactions.
    DeletePool(String),
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
}

/// Everything the writer reads besides its queue.
pub struct WriterContext<S> {
    pub store: Arc<S>,
    pub mirror: Arc<RwLock<Mirror>>,
    pub nodes: Arc<NodeDirectory>,
    pub settings: Settings,
    /// Told the store revision after every commit, so node watchers look.
    pub changed: watch::Sender<Revision>,
    pub clock: fn() -> u64,
}

/// Runs until every sender of `commands` is gone.
pub async fn run<S: Store>(ctx: WriterContext<S>, mut commands: mpsc::Receiver<Command>) {
    let mut queue: VecDeque<Command> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match commands.recv().await {
                Some(command) => queue.push_back(command),
                None => return,
            }
        }
        while let Ok(command) = commands.try_recv() {
            queue.push_back(command);
        }
        if let Some(Command {
            job: Job::DeletePool(_),
            ..
        }) = queue.front()
        {
            if let Some(Command {
                job: Job::DeletePool(name),
                reply,
            }) = queue.pop_front()
            {
                let result = delete_pool(&ctx, &name).await.map(Answer::Count);
                drop(reply.send(result));
            }
            continue;
        }
        run_batch(&ctx, &mut queue).await;
    }
}

/// Plans and commits as many queued commands as fit one transaction.
async fn run_batch<S: Store>(ctx: &WriterContext<S>, queue: &mut VecDeque<Command>) {
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut mirror = ctx.mirror.write().await;
    loop {
        attempt += 1;
        let now = (ctx.clock)();
        let mut batch = Batch::default();
        let mut taken = Vec::new();
        while let Some(command) = queue.pop_front() {
            if matches!(command.job, Job::DeletePool(_)) {
                queue.push_front(command);
                break;
            }
            if batch.keys.len() >= MAX_KEYS_PER_BATCH {
                queue.push_front(command);
                break;
            }
            let answer = plan_job(ctx, &mut mirror.state, &mut batch, &command.job, now);
            taken.push((command, answer));
        }
        if batch.keys.is_empty() {
            // Nothing to write (idempotent repeats, errors): answer now.
            answer_all(taken);
            return;
        }
        let (compares, ops) = batch.transaction();
        let outcome = ctx.store.txn(compares, ops).await;
        match outcome {
            Ok(TxnOutcome::Committed { revision }) => {
                batch.commit(&mut mirror, revision);
                drop(mirror);
                ctx.changed.send_replace(revision);
                answer_all(taken);
                return;
            }
            Ok(TxnOutcome::Conflict { current }) => {
                batch.undo(&mut mirror.state);
                mirror.apply_current(current);
                tracing::debug!(attempt, "batch conflicted; planning again");
            }
            Err(error) => {
                batch.undo(&mut mirror.state);
                if !retryable(&error) || started.elapsed() > RETRY_DEADLINE {
                    let error = ServiceError::from_store(&error);
                    tracing::warn!(%error, attempt, "batch failed");
                    fail_all(taken, &error);
                    return;
                }
                tracing::warn!(%error, attempt, "store write failed; retrying");
            }
        }
        if started.elapsed() > RETRY_DEADLINE {
            fail_all(taken, &ServiceError::Contended { attempts: attempt });
            return;
        }
        // Plan again from the same commands; let the other writer finish.
        for (command, _) in taken.into_iter().rev() {
            queue.push_front(command);
        }
        drop(mirror);
        tokio::time::sleep(backoff(attempt)).await;
        mirror = ctx.mirror.write().await;
    }
}

type Outcome = Result<Answer, ServiceError>;

fn answer_all(taken: Vec<(Command, Outcome)>) {
    for (command, outcome) in taken {
        // A caller that went away (client timeout) has nothing to hear.
        drop(command.reply.send(outcome));
    }
}

fn fail_all(taken: Vec<(Command, Outcome)>, error: &ServiceError) {
    for (command, _) in taken {
        drop(command.reply.send(Err(error.clone())));
    }
}

/// Plans `job` on top of the batch so far; its answer is sent once the batch
/// is durable.
fn plan_job<S>(
    ctx: &WriterContext<S>,
    state: &mut State,
    batch: &mut Batch,
    job: &Job,
    now: u64,
) -> Outcome {
    match job {
        Job::Allocate(request) => {
            let labels = ctx.nodes.labels(&request.node);
            match allocator::plan_allocate(state, request, &labels, &ctx.settings, now)? {
                AllocateOutcome::Existing(addresses) => Ok(Answer::Allocated(addresses)),
                AllocateOutcome::Plan { plan, allocated } => {
                    batch.add(state, plan);
                    Ok(Answer::Allocated(allocated))
                }
            }
        }
        Job::Release(handle) => {
            let released = match allocator::plan_release(state, handle, &ctx.settings, now) {
                Some((plan, addresses)) => {
                    batch.add(state, plan);
                    addresses
                }
                None => Vec::new(),
            };
            Ok(Answer::Released(released))
        }
        Job::GarbageCollect { node, valid } => {
            let mut handles = Vec::new();
            let mut addresses = 0;
            let mut more = false;
            // Groups never share a key, but a handle whose block an earlier
            // group writes waits for the next round (on the tentative state).
            'rounds: loop {
                let groups = allocator::plan_gc(state, node, valid, &ctx.settings, now);
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
                swept += 1;
            }
            Ok(Answer::Count(swept))
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
        // Never planned in a batch (run takes it alone).
        Job::DeletePool(_) => Ok(Answer::Count(0)),
    }
}

async fn delete_pool<S: Store>(ctx: &WriterContext<S>, name: &str) -> Result<usize, ServiceError> {
    let started = Instant::now();
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
            match ctx.store.txn(compares, ops).await {
                Ok(TxnOutcome::Committed { revision }) => {
                    batch.commit(&mut mirror, revision);
                    ctx.changed.send_replace(revision);
                }
                Ok(TxnOutcome::Conflict { current }) => {
                    batch.undo(&mut mirror.state);
                    mirror.apply_current(current);
                    conflicted = true;
                    break;
                }
                Err(error) => {
                    batch.undo(&mut mirror.state);
                    if !retryable(&error) || started.elapsed() > RETRY_DEADLINE {
                        return Err(ServiceError::from_store(&error));
                    }
                    conflicted = true;
                    break;
                }
            }
        }
        if !conflicted {
            return Ok(blocks_removed);
        }
        if started.elapsed() > RETRY_DEADLINE {
            return Err(ServiceError::Contended { attempts: attempt });
        }
        tokio::time::sleep(backoff(attempt)).await;
    }
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

/// The keys a batch read and wrote, with how to undo its tentative writes.
#[derive(Default)]
struct Batch {
    /// Key → (revision compared, final value; None = delete, or only read).
    keys: HashMap<String, BatchKey>,
    /// Key order of first touch, for a stable transaction.
    order: Vec<RecordKey>,
    /// State before each tentative write, newest last.
    undo: Vec<(RecordKey, Option<(Record, Revision)>)>,
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
