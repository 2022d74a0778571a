// The embedded store without its file, for tests that run on a paused tokio
// clock: the embedded store answers from its writer thread after an fsync,
// and a paused clock jumps to the next timer whenever every task waits on
// something outside the runtime, so timers would fire "early" while a
// commit is on disk. Here a transaction is evaluated and published in the
// caller's task, by the same code the embedded writer uses (writer::Batch,
// state::State), so it behaves the same minus durability.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::state::State;
use super::writer::Batch;
use crate::store::{
    Compare, KeyValue, Op, Revision, Snapshot, Store, StoreError, TxnOutcome, WatchStream,
    validate_txn,
};

pub struct MemoryStore {
    state: Mutex<State>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State::new(BTreeMap::new(), 0)),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        Ok(self.state().list(prefix))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.state().get(key))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        validate_txn(&compares, &ops)?;
        let mut state = self.state();
        let mut batch = Batch::new(state.revision());
        let outcome = batch.apply(&state, &compares, ops);
        batch.publish_to(&mut state);
        Ok(outcome)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        Ok(self.state().watch(prefix, after))
    }

    fn has_other_writers(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "memory (tests)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;
    use crate::store::suite;

    #[tokio::test]
    async fn the_store_suite_passes() {
        suite::run_all(Arc::new(MemoryStore::new()), "t/").await;
    }
}
