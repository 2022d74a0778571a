// The embedded store's in-memory side: every durable record (reads never touch
// the file), the current revision, recent events so a watch can start a little in
// the past (list, then watch from the list's revision), and the live watchers.
// Only the writer thread changes it, after the file commit returned.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;

use tokio::sync::mpsc;

use crate::store::{KeyValue, Revision, Snapshot, WatchEvent, WatchMessage, WatchStream};

/// Events kept for watches that start in the past. A watch from further back gets
/// `Resync`; callers list first and watch from the list's revision, so a few
/// transactions' worth is what matters.
const HISTORY_EVENTS: usize = 8192;
/// Messages a watcher may have queued; one more and it gets `Resync` instead
/// (small in tests so they can fill it).
pub(super) const WATCH_QUEUE: usize = if cfg!(test) { 8 } else { 256 };

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub value: Vec<u8>,
    pub mod_revision: Revision,
}

pub(super) struct State {
    kvs: BTreeMap<String, Entry>,
    revision: Revision,
    history: VecDeque<WatchEvent>,
    /// Every event with a revision above this one is in `history`.
    history_floor: Revision,
    watchers: Vec<Watcher>,
}

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<WatchMessage>,
}

impl State {
    pub(super) fn new(kvs: BTreeMap<String, Entry>, revision: Revision) -> Self {
        State {
            kvs,
            revision,
            history: VecDeque::new(),
            // Events from before the open are gone.
            history_floor: revision,
            watchers: Vec::new(),
        }
    }

    pub(super) fn revision(&self) -> Revision {
        self.revision
    }

    pub(super) fn entry(&self, key: &str) -> Option<&Entry> {
        self.kvs.get(key)
    }

    pub(super) fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).map(|e| key_value(key, e))
    }

    pub(super) fn list(&self, prefix: &str) -> Snapshot {
        let kvs = self
            .kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| key_value(k, e))
            .collect();
        Snapshot {
            revision: self.revision,
            kvs,
        }
    }

    /// Makes a committed batch visible: its final values (None: deleted), its
    /// events in revision order, and the revision it reached.
    pub(super) fn publish(
        &mut self,
        writes: HashMap<String, Option<Entry>>,
        events: Vec<WatchEvent>,
        revision: Revision,
    ) {
        for (key, entry) in writes {
            match entry {
                Some(entry) => {
                    self.kvs.insert(key, entry);
                }
                None => {
                    self.kvs.remove(&key);
                }
            }
        }
        self.revision = revision;
        self.watchers
            .retain(|w| offer(&w.tx, matching(&events, &w.prefix, Revision::MIN)));
        self.history.extend(events);
        while self.history.len() > HISTORY_EVENTS {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.revision();
            }
        }
    }

    /// A watcher of `prefix` that first gets the kept events after `after`, then
    /// every later one; `Resync` at once when events after `after` are gone.
    pub(super) fn watch(&mut self, prefix: &str, after: Revision) -> WatchStream {
        // Watchers dropped by their owner go here, for a store that sees no writes.
        self.watchers.retain(|w| !w.tx.is_closed());
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        if after < self.history_floor {
            let _ = tx.try_send(WatchMessage::Resync);
            return rx;
        }
        if offer(&tx, matching(&self.history, prefix, after)) {
            self.watchers.push(Watcher {
                prefix: prefix.to_string(),
                tx,
            });
        }
        rx
    }
}

fn key_value(key: &str, e: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: e.value.clone(),
        mod_revision: e.mod_revision,
    }
}

/// The events under `prefix` with revision > `after`, as one message (None if none).
fn matching<'a>(
    events: impl IntoIterator<Item = &'a WatchEvent>,
    prefix: &str,
    after: Revision,
) -> Option<WatchMessage> {
    let events: Vec<WatchEvent> = events
        .into_iter()
        .filter(|e| e.revision() > after && e.key().starts_with(prefix))
        .cloned()
        .collect();
    let revision = events.last()?.revision();
    Some(WatchMessage::Events { revision, events })
}

/// Queues `msg` for a watcher without blocking the writer; false when the watcher
/// is finished: receiver gone, or too far behind (then its last slot gets `Resync`).
fn offer(tx: &mpsc::Sender<WatchMessage>, msg: Option<WatchMessage>) -> bool {
    if tx.is_closed() {
        return false;
    }
    let Some(msg) = msg else { return true };
    // The writer is the only sender, so a free slot seen here stays free.
    if tx.capacity() <= 1 {
        let _ = tx.try_send(WatchMessage::Resync);
        return false;
    }
    tx.try_send(msg).is_ok()
}
