// Where IPAM records live: a small etcd-style key-value interface (keys, values,
// one global revision per committed transaction, compare-on-revision
// transactions, prefix watches) with two implementations, an embedded redb file
// for single-server setups and etcd for HA. The allocator plans transactions;
// the store only makes them atomic and durable.

mod embedded;
mod etcd;
#[cfg(any(test, feature = "test-support"))]
pub mod suite;
#[cfg(test)]
mod throughput;

use std::collections::HashSet;
use std::path::PathBuf;

#[cfg(test)]
pub use embedded::MemoryStore;
pub use embedded::{EmbeddedStore, FILE_NAME};
pub use etcd::{DEFAULT_KEY_PREFIX, EtcdIdentity, EtcdStore, EtcdTls};

/// etcd-style: global, increases by one per committed transaction that changed
/// something; 0 means "absent" in a `Compare`.
pub type Revision = i64;

/// Most puts and deletes, and most compares, in one transaction: etcd's default
/// `--max-txn-ops`. Both stores refuse more, so behaviour does not depend on the store.
pub const MAX_TXN_OPS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: Revision,
}

/// Holds when `key`'s mod_revision equals `mod_revision` (0: the key must be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub mod_revision: Revision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every key written got `revision` as its mod_revision. A transaction that
    /// changed nothing (no ops, or only deletes of absent keys) does not bump the
    /// revision and reports the current one, as etcd does.
    Committed { revision: Revision },
    /// Some compare failed; nothing was written. `current` holds the present value
    /// of every compared key (None when absent), in the order of the compares.
    Conflict {
        current: Vec<(String, Option<KeyValue>)>,
    },
}

/// Every key under a prefix, sorted by key, as of `revision`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: Revision,
    pub kvs: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put(KeyValue),
    /// `mod_revision` is the revision of the deleting transaction.
    Delete {
        key: String,
        mod_revision: Revision,
    },
}

impl WatchEvent {
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

#[derive(Debug)]
pub enum WatchMessage {
    /// Events of one or more committed txns, in revision order; `revision` is the
    /// highest revision covered (the last event's).
    Events {
        revision: Revision,
        events: Vec<WatchEvent>,
    },
    /// Events were lost (slow reader, etcd compaction, broken stream): list again,
    /// then watch from the snapshot's revision + 1. The stream ends after it.
    Resync,
}

/// Ends after a `Resync`, or when the store goes away.
pub type WatchStream = tokio::sync::mpsc::Receiver<WatchMessage>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying (etcd unreachable, leader election, timeout). A transaction
    /// that failed this way may or may not have been applied: retry it as is, its
    /// compares make that safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The embedded file is damaged or not ours: never reset it.
    #[error("store file {path} is corrupted: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// Includes the embedded file being locked by another process
    /// (`io::ErrorKind::ResourceBusy`).
    #[error("store file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request the store refuses (too many ops in one txn, ...).
    #[error("store refused the request: {0}")]
    Invalid(String),
    #[error("store is closed")]
    Closed,
}

pub trait Store: Send + Sync + 'static {
    /// Every key starting with `prefix` at one revision.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Snapshot, StoreError>> + Send;
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send;
    /// Atomic: all compares hold → all ops applied durably (fsync'd / quorum) before Ok.
    /// At most `MAX_TXN_OPS` compares and `MAX_TXN_OPS` ops, each key written once.
    fn txn(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> impl Future<Output = Result<TxnOutcome, StoreError>> + Send;
    /// Changes under `prefix` with revision > `after`.
    fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;
    /// For logs and podctl: "embedded /var/lib/podroute/ipam/ipam.redb",
    /// "etcd http://127.0.0.1:2379".
    fn describe(&self) -> String;

    /// Whether other processes may write to this store (etcd, shared by
    /// replicas). When they may, an answer read from one's own copy of the
    /// data is confirmed by a transaction comparing what it read.
    fn has_other_writers(&self) -> bool {
        true
    }
}

/// Enum dispatch so the daemon picks a store at run time.
#[derive(Debug)]
pub enum AnyStore {
    Embedded(EmbeddedStore),
    Etcd(EtcdStore),
}

impl Store for AnyStore {
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.list(prefix).await,
            AnyStore::Etcd(s) => s.list(prefix).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.get(key).await,
            AnyStore::Etcd(s) => s.get(key).await,
        }
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.txn(compares, ops).await,
            AnyStore::Etcd(s) => s.txn(compares, ops).await,
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        match self {
            AnyStore::Embedded(s) => s.watch(prefix, after).await,
            AnyStore::Etcd(s) => s.watch(prefix, after).await,
        }
    }

    fn has_other_writers(&self) -> bool {
        match self {
            AnyStore::Embedded(s) => s.has_other_writers(),
            AnyStore::Etcd(s) => s.has_other_writers(),
        }
    }

    fn describe(&self) -> String {
        match self {
            AnyStore::Embedded(s) => s.describe(),
            AnyStore::Etcd(s) => s.describe(),
        }
    }
}

/// The checks both stores make before a transaction, so they refuse the same
/// requests (etcd would refuse these too, after a round trip).
fn validate_txn(compares: &[Compare], ops: &[Op]) -> Result<(), StoreError> {
    if compares.len() > MAX_TXN_OPS || ops.len() > MAX_TXN_OPS {
        return Err(StoreError::Invalid(format!(
            "a transaction holds at most {MAX_TXN_OPS} compares and {MAX_TXN_OPS} ops, \
             got {} and {}",
            compares.len(),
            ops.len()
        )));
    }
    if let Some(c) = compares.iter().find(|c| c.mod_revision < 0) {
        return Err(StoreError::Invalid(format!(
            "compare on {:?} with negative revision {}",
            c.key, c.mod_revision
        )));
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        if !seen.insert(op.key()) {
            return Err(StoreError::Invalid(format!(
                "key {:?} written twice in one transaction",
                op.key()
            )));
        }
    }
    Ok(())
}
