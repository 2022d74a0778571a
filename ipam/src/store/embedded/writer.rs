// Group commit: one thread takes every queued transaction, evaluates them in
// order against memory plus the batch's earlier writes, writes the whole batch in
// one redb transaction (one fsync), then publishes it to memory and watchers, and
// only then answers the callers. Many concurrent allocations thus share one disk
// flush, and nobody sees data that is not on disk yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, mpsc};

use tokio::sync::oneshot;

use super::file::File;
use super::state::{Entry, State};
use crate::store::{Compare, KeyValue, Op, Revision, StoreError, TxnOutcome, WatchEvent};

/// Most transactions in one commit, so the first of a long queue does not wait for
/// all of it (each holds at most 128 ops).
const MAX_BATCH: usize = 512;

pub(super) struct Request {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
    pub reply: oneshot::Sender<Result<TxnOutcome, StoreError>>,
}

/// Counters the store exposes (tests check batching with them, not with timing).
#[derive(Default)]
pub(super) struct Stats {
    pub commits: AtomicU64,
    pub txns: AtomicU64,
}

/// The writer thread's loop; returns when every sender is gone, or after a
/// failed commit (memory and file may then disagree, so nothing more is written:
/// later transactions get `Closed`, reads keep serving the last durable state).
pub(super) fn run(
    requests: mpsc::Receiver<Request>,
    file: File,
    state: Arc<RwLock<State>>,
    stats: Arc<Stats>,
) {
    while let Ok(first) = requests.recv() {
        let mut queue = vec![first];
        while queue.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(r) => queue.push(r),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(queue.len());
        let batch = {
            let state = state.read().unwrap_or_else(PoisonError::into_inner);
            let mut batch = Batch::new(state.revision());
            for r in queue {
                replies.push((r.reply, batch.apply(&state, &r.compares, r.ops)));
            }
            batch
        };
        if batch.revision != batch.base {
            if let Err(e) = file.commit(&batch.writes, batch.revision) {
                tracing::error!(error = %e, "store commit failed; refusing further writes");
                for (reply, _) in replies {
                    let _ = reply.send(Err(copy_error(&e)));
                }
                return;
            }
            stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .txns
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        batch.publish_to(&mut state.write().unwrap_or_else(PoisonError::into_inner));
        for (reply, outcome) in replies {
            // A caller that gave up waiting is not an error: the txn is durable.
            let _ = reply.send(Ok(outcome));
        }
    }
}

/// The transactions of one commit, evaluated in order.
pub(super) struct Batch {
    /// Final value per key written (None: deleted).
    writes: HashMap<String, Option<Entry>>,
    events: Vec<WatchEvent>,
    /// Revision before the batch.
    base: Revision,
    /// Revision after the transactions applied so far.
    revision: Revision,
}

impl Batch {
    pub(super) fn new(base: Revision) -> Self {
        Batch {
            writes: HashMap::new(),
            events: Vec::new(),
            base,
            revision: base,
        }
    }

    fn entry<'a>(&'a self, state: &'a State, key: &str) -> Option<&'a Entry> {
        match self.writes.get(key) {
            Some(written) => written.as_ref(),
            None => state.entry(key),
        }
    }

    fn mod_revision(&self, state: &State, key: &str) -> Revision {
        self.entry(state, key).map_or(0, |e| e.mod_revision)
    }

    pub(super) fn apply(
        &mut self,
        state: &State,
        compares: &[Compare],
        ops: Vec<Op>,
    ) -> TxnOutcome {
        if compares
            .iter()
            .any(|c| self.mod_revision(state, &c.key) != c.mod_revision)
        {
            let current = compares
                .iter()
                .map(|c| {
                    let kv = self.entry(state, &c.key).map(|e| KeyValue {
                        key: c.key.clone(),
                        value: e.value.clone(),
                        mod_revision: e.mod_revision,
                    });
                    (c.key.clone(), kv)
                })
                .collect();
            return TxnOutcome::Conflict { current };
        }
        // Keys are unique within a txn (validated), so presence is as before it.
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| match op {
                Op::Put { .. } => true,
                Op::Delete { key } => self.entry(state, key).is_some(),
            })
            .collect();
        if ops.is_empty() {
            // Changed nothing: etcd does not bump the revision either.
            return TxnOutcome::Committed {
                revision: self.revision,
            };
        }
        self.revision += 1;
        let revision = self.revision;
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    let entry = Entry {
                        value: value.clone(),
                        mod_revision: revision,
                    };
                    self.writes.insert(key.clone(), Some(entry));
                    self.events.push(WatchEvent::Put(KeyValue {
                        key,
                        value,
                        mod_revision: revision,
                    }));
                }
                Op::Delete { key } => {
                    self.writes.insert(key.clone(), None);
                    self.events.push(WatchEvent::Delete {
                        key,
                        mod_revision: revision,
                    });
                }
            }
        }
        TxnOutcome::Committed { revision }
    }
}

impl Batch {
    /// Makes the batch visible in memory and to watchers (once durable).
    pub(super) fn publish_to(self, state: &mut State) {
        state.publish(self.writes, self.events, self.revision);
    }
}

/// One error per waiting caller (StoreError is not Clone: it holds an io::Error).
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io { path, source } => StoreError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StoreError::Corrupt { path, reason } => StoreError::Corrupt {
            path: path.clone(),
            reason: reason.clone(),
        },
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
        StoreError::Closed => StoreError::Closed,
    }
}
