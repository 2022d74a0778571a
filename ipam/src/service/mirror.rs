// Each ipamd keeps the whole IPAM keyspace decoded in memory (a `State`):
// plans are made against it, reads are answered from it. The store stays
// the truth: every write compares revisions, so a stale mirror costs a
// retry, never a duplicate. The mirror follows the store's watch; our own
// commits are applied at once, and tombstones keep an older watch event from
// bringing back a key we have already seen deleted.

use std::collections::HashMap;

use crate::model::{Record, RecordKey, State};
use crate::store::{KeyValue, Revision, Snapshot, WatchEvent};

/// Revision of a key written by a batch not committed yet.
pub const PENDING: Revision = Revision::MAX;

#[derive(Debug, Default)]
pub struct Mirror {
    /// Watch events for keys a batch in flight holds at PENDING, replayed
    /// once that batch commits or is undone (so a newer value another
    /// replica wrote is not lost under ours).
    held: HashMap<String, WatchEvent>,
    pub state: State,
    /// Deleted keys and the revision they were deleted at, until the watch
    /// has passed that revision.
    tombstones: HashMap<String, Revision>,
    /// Highest store revision the watch has delivered.
    watched: Revision,
    /// Revisions of the keys whose stored value does not decode (the State
    /// lists them with the reason; Check reports them, the allocator keeps
    /// away from them).
    unreadable: HashMap<String, Revision>,
}

impl Mirror {
    /// A mirror of `snapshot`, taken at `snapshot.revision`.
    pub fn load(snapshot: Snapshot) -> Self {
        let mut mirror = Mirror {
            watched: snapshot.revision,
            ..Mirror::default()
        };
        for kv in snapshot.kvs {
            mirror.put(kv);
        }
        mirror
    }

    pub fn watched_revision(&self) -> Revision {
        self.watched
    }

    pub fn unreadable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.state.unreadable()
    }

    /// Applies watch events up to `revision`.
    pub fn apply_events(&mut self, revision: Revision, events: Vec<WatchEvent>) {
        for event in events {
            match event {
                WatchEvent::Put(kv) => self.put(kv),
                WatchEvent::Delete { key, mod_revision } => self.delete(&key, mod_revision),
            }
        }
        self.watched = self.watched.max(revision);
        let watched = self.watched;
        self.tombstones
            .retain(|_, deleted_at| *deleted_at > watched);
    }

    /// Values a failed transaction reported as current: newer than what we
    /// hold, unless the watch already brought something newer still.
    pub fn apply_current(&mut self, current: Vec<(String, Option<KeyValue>)>) {
        for (key, value) in current {
            match value {
                Some(kv) => self.put(kv),
                None => {
                    // Absent now: whatever we hold for it is older.
                    if let Some(parsed) = RecordKey::parse(&key) {
                        self.state.remove(&parsed);
                    }
                    self.unreadable.remove(&key);
                }
            }
        }
    }

    /// Our own committed write of `record` at `revision`.
    pub fn committed_put(&mut self, record: Record, revision: Revision) {
        self.unreadable.remove(&record.key().to_key());
        self.state.apply_record(record, revision);
    }

    /// Our own committed delete of `key` at `revision`.
    pub fn committed_delete(&mut self, key: &RecordKey, revision: Revision) {
        let text = key.to_key();
        self.state.remove(key);
        self.unreadable.remove(&text);
        if revision > self.watched {
            self.tombstones.insert(text, revision);
        }
    }

    /// The revision the mirror holds for `key` (0 when absent), as a plan
    /// compares it.
    pub fn revision_of(&self, key: &RecordKey) -> Revision {
        let text = key.to_key();
        if let Some(revision) = self.unreadable.get(&text) {
            return *revision;
        }
        match key {
            RecordKey::Pool(name) => self.state.pool(name).map(|v| v.revision),
            RecordKey::Block(cidr) => self.state.block(cidr).map(|v| v.revision),
            RecordKey::Handle(handle) => self.state.handle(handle).map(|v| v.revision),
        }
        .unwrap_or(0)
    }

    /// Held events, for `replay` after a batch settled.
    pub fn take_held(&mut self) -> Vec<WatchEvent> {
        self.held.drain().map(|(_, event)| event).collect()
    }

    pub fn replay(&mut self, events: Vec<WatchEvent>) {
        for event in events {
            match event {
                WatchEvent::Put(kv) => self.put(kv),
                WatchEvent::Delete { key, mod_revision } => self.delete(&key, mod_revision),
            }
        }
    }

    fn is_pending(&self, key: &str) -> bool {
        RecordKey::parse(key).is_some_and(|parsed| self.revision_of(&parsed) == PENDING)
    }

    fn hold(&mut self, event: WatchEvent) {
        let key = match &event {
            WatchEvent::Put(kv) => kv.key.clone(),
            WatchEvent::Delete { key, .. } => key.clone(),
        };
        let newer = self
            .held
            .get(&key)
            .is_none_or(|held| held_revision(held) < held_revision(&event));
        if newer {
            self.held.insert(key, event);
        }
    }

    fn put(&mut self, kv: KeyValue) {
        if self.is_pending(&kv.key) {
            self.hold(WatchEvent::Put(kv));
            return;
        }
        if let Some(&deleted_at) = self.tombstones.get(&kv.key) {
            if kv.mod_revision <= deleted_at {
                return;
            }
            self.tombstones.remove(&kv.key);
        }
        let Some(key) = RecordKey::parse(&kv.key) else {
            // Not an IPAM key (another tool's key under our prefix): ignore.
            return;
        };
        if self.revision_of(&key) >= kv.mod_revision {
            return;
        }
        match self.state.apply_put(&kv.key, &kv.value, kv.mod_revision) {
            Ok(()) => {
                self.unreadable.remove(&kv.key);
            }
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "stored record does not decode");
                self.unreadable.insert(kv.key, kv.mod_revision);
            }
        }
    }

    fn delete(&mut self, key: &str, mod_revision: Revision) {
        if self.is_pending(key) {
            self.hold(WatchEvent::Delete {
                key: key.to_owned(),
                mod_revision,
            });
            return;
        }
        if let Some(parsed) = RecordKey::parse(key) {
            if self.revision_of(&parsed) > mod_revision {
                return;
            }
            self.state.remove(&parsed);
        }
        self.unreadable.remove(key);
        if mod_revision > self.watched {
            self.tombstones.insert(key.to_owned(), mod_revision);
        }
    }
}

fn held_revision(event: &WatchEvent) -> Revision {
    match event {
        WatchEvent::Put(kv) => kv.mod_revision,
        WatchEvent::Delete { mod_revision, .. } => *mod_revision,
    }
}
