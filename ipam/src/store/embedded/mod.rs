// The embedded store: one redb file for a single podroute-ipamd, every record
// also kept in memory for reads, and transactions group-committed by one writer
// thread (writer.rs) so concurrent allocations share each fsync.

mod file;
#[cfg(test)]
mod memory;
mod state;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub use file::FILE_NAME;
#[cfg(test)]
pub use memory::MemoryStore;
use state::State;
use writer::{Request, Stats};

use super::{
    Compare, KeyValue, Op, Revision, Snapshot, Store, StoreError, TxnOutcome, WatchStream,
    validate_txn,
};

pub struct EmbeddedStore {
    path: PathBuf,
    state: Arc<RwLock<State>>,
    /// None only while dropping.
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
}

impl EmbeddedStore {
    /// Opens `<dir>/ipam.redb`, creating `dir` (mode 0700) and the file when missing.
    /// A damaged or foreign file is `Corrupt` and left as it is; a file another
    /// process has open is an `Io` error of kind `ResourceBusy`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let loaded = file::File::open(dir)?;
        let path = loaded.file.path().to_path_buf();
        let state = Arc::new(RwLock::new(State::new(loaded.kvs, loaded.revision)));
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (state, stats, file) = (state.clone(), stats.clone(), loaded.file);
            std::thread::Builder::new()
                .name("ipam-store".into())
                .spawn(move || writer::run(rx, file, state, stats))
                .map_err(|source| StoreError::Io {
                    path: path.clone(),
                    source,
                })?
        };
        Ok(EmbeddedStore {
            path,
            state,
            requests: Some(tx),
            writer: Some(writer),
            stats,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// redb commits (fsyncs) since open; with `txn_count`, shows how well group
    /// commit batches.
    pub fn commit_count(&self) -> u64 {
        self.stats.commits.load(Ordering::Relaxed)
    }

    /// Transactions answered (committed or conflicting) since open.
    pub fn txn_count(&self) -> u64 {
        self.stats.txns.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for EmbeddedStore {
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        Ok(self.state().list(prefix))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().get(key))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        validate_txn(&compares, &ops)?;
        let (reply, answer) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        requests
            .send(Request {
                compares,
                ops,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        Ok(state.watch(prefix, after))
    }

    /// The file is locked by this process: ipamd is its only writer.
    fn has_other_writers(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("embedded {}", self.path.display())
    }
}

impl Drop for EmbeddedStore {
    /// Lets the writer finish its batch and close the file, so the lock is free
    /// when the drop returns (a restart in the same process can reopen it).
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
