// The behaviour every Store must show, as one suite run against the embedded
// store and a real etcd. Each case works under its own key prefix and asserts
// only relative revisions, so the cases can share one etcd.
#![allow(clippy::unwrap_used)] // a test suite: a failed unwrap is a failed test

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Compare, KeyValue, MAX_TXN_OPS, Op, Revision, Store, StoreError, TxnOutcome, WatchEvent,
    WatchMessage, WatchStream,
};

/// Longest wait for an expected watch event.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

/// The cases, by name, for stores that run them one after another (etcd).
pub const CASES: &[&str] = &[
    "put_get_list",
    "compares",
    "revisions_increase",
    "deletes",
    "watch_in_order",
    "watch_from_the_past",
    "concurrent_txns_on_one_key",
    "txn_limits",
];

/// Runs every case, each under `<prefix><case>/`.
pub async fn run_all<S: Store>(store: Arc<S>, prefix: &str) {
    for case in CASES {
        eprintln!("store suite: {case} on {}", store.describe());
        run(case, store.clone(), &format!("{prefix}{case}/")).await;
    }
}

/// Runs one case by name.
pub async fn run<S: Store>(case: &str, store: Arc<S>, p: &str) {
    match case {
        "put_get_list" => put_get_list(&*store, p).await,
        "compares" => compares(&*store, p).await,
        "revisions_increase" => revisions_increase(&*store, p).await,
        "deletes" => deletes(&*store, p).await,
        "watch_in_order" => watch_in_order(&*store, p).await,
        "watch_from_the_past" => watch_from_the_past(&*store, p).await,
        "concurrent_txns_on_one_key" => concurrent_txns_on_one_key(store, p).await,
        "txn_limits" => txn_limits(&*store, p).await,
        other => panic!("no store suite case {other:?}"),
    }
}

pub async fn put_get_list<S: Store>(s: &S, p: &str) {
    let rev = commit(
        s,
        vec![],
        vec![put(p, "a/1", "x"), put(p, "a/2", "y"), put(p, "b/1", "z")],
    )
    .await;
    assert_eq!(
        s.get(&k(p, "a/1")).await.unwrap(),
        Some(kv(p, "a/1", "x", rev))
    );
    assert_eq!(s.get(&k(p, "a/3")).await.unwrap(), None);
    let snap = s.list(&k(p, "a/")).await.unwrap();
    assert!(
        snap.revision >= rev,
        "list at {} before the txn at {rev}",
        snap.revision
    );
    assert_eq!(
        snap.kvs,
        vec![kv(p, "a/1", "x", rev), kv(p, "a/2", "y", rev)]
    );
    let all = s.list(p).await.unwrap();
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, [k(p, "a/1"), k(p, "a/2"), k(p, "b/1")]);
    assert!(s.list(&k(p, "c/")).await.unwrap().kvs.is_empty());
}

pub async fn compares<S: Store>(s: &S, p: &str) {
    // Absent key: compare with 0 holds once.
    let rev = commit(s, vec![cmp(p, "k", 0)], vec![put(p, "k", "1")]).await;
    let current = conflict(s, vec![cmp(p, "k", 0)], vec![put(p, "k", "2")]).await;
    assert_eq!(current, vec![(k(p, "k"), Some(kv(p, "k", "1", rev)))]);
    // Present key: its own revision holds, any other does not.
    let rev2 = commit(s, vec![cmp(p, "k", rev)], vec![put(p, "k", "2")]).await;
    let current = conflict(s, vec![cmp(p, "k", rev)], vec![put(p, "k", "3")]).await;
    assert_eq!(current, vec![(k(p, "k"), Some(kv(p, "k", "2", rev2)))]);
    // A failed compare writes nothing, and every compared key comes back, in order.
    let current = conflict(
        s,
        vec![cmp(p, "k", rev2), cmp(p, "absent", 7), cmp(p, "other", 0)],
        vec![put(p, "k", "4"), put(p, "new", "n")],
    )
    .await;
    assert_eq!(
        current,
        vec![
            (k(p, "k"), Some(kv(p, "k", "2", rev2))),
            (k(p, "absent"), None),
            (k(p, "other"), None),
        ]
    );
    assert_eq!(s.get(&k(p, "new")).await.unwrap(), None);
    assert_eq!(
        s.get(&k(p, "k")).await.unwrap(),
        Some(kv(p, "k", "2", rev2))
    );
}

pub async fn revisions_increase<S: Store>(s: &S, p: &str) {
    let r1 = commit(s, vec![], vec![put(p, "a", "1")]).await;
    let r2 = commit(s, vec![], vec![put(p, "b", "1")]).await;
    let r3 = commit(s, vec![], vec![put(p, "a", "2")]).await;
    assert!(r1 < r2 && r2 < r3, "revisions {r1} {r2} {r3}");
    assert_eq!(s.get(&k(p, "a")).await.unwrap(), Some(kv(p, "a", "2", r3)));
    assert_eq!(s.get(&k(p, "b")).await.unwrap(), Some(kv(p, "b", "1", r2)));
    assert!(s.list(p).await.unwrap().revision >= r3);
    // A txn that changes nothing commits without a new revision for our keys.
    let r4 = commit(s, vec![cmp(p, "a", r3)], vec![del(p, "absent")]).await;
    assert!(r4 >= r3);
    assert_eq!(s.get(&k(p, "a")).await.unwrap(), Some(kv(p, "a", "2", r3)));
}

pub async fn deletes<S: Store>(s: &S, p: &str) {
    let rev = commit(s, vec![], vec![put(p, "d", "1"), put(p, "e", "1")]).await;
    let rev2 = commit(s, vec![cmp(p, "d", rev)], vec![del(p, "d")]).await;
    assert!(rev2 > rev);
    assert_eq!(s.get(&k(p, "d")).await.unwrap(), None);
    let keys: Vec<String> = s
        .list(p)
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, [k(p, "e")]);
    // Deleted means absent: 0 holds, the old revision does not.
    let current = conflict(s, vec![cmp(p, "d", rev)], vec![del(p, "d")]).await;
    assert_eq!(current, vec![(k(p, "d"), None)]);
    commit(s, vec![cmp(p, "d", 0)], vec![put(p, "d", "again")]).await;
}

pub async fn watch_in_order<S: Store>(s: &S, p: &str) {
    let rev0 = commit(s, vec![], vec![put(p, "w/0", "before")]).await;
    let mut stream = s.watch(&k(p, "w/"), rev0).await.unwrap();
    let expected = write_watched(s, p).await;
    assert_eq!(collect(&mut stream, expected.len()).await, expected);
}

pub async fn watch_from_the_past<S: Store>(s: &S, p: &str) {
    let rev0 = commit(s, vec![], vec![put(p, "w/0", "before")]).await;
    let expected = write_watched(s, p).await;
    // Started after the writes, from before them: sees them all, nothing older.
    let mut stream = s.watch(&k(p, "w/"), rev0).await.unwrap();
    assert_eq!(collect(&mut stream, expected.len()).await, expected);
    // From the middle: only what came after.
    let after = expected[2].revision();
    let mut stream = s.watch(&k(p, "w/"), after).await.unwrap();
    assert_eq!(collect(&mut stream, 2).await, expected[3..]);
}

pub async fn concurrent_txns_on_one_key<S: Store>(store: Arc<S>, p: &str) {
    const TASKS: usize = 16;
    const ATTEMPTS: usize = 10;
    let key = k(p, "counter");
    let rev = commit(&*store, vec![], vec![put(p, "counter", "0")]).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let (mut value, mut rev) = (0u64, rev);
            let mut won = Vec::new();
            for _ in 0..ATTEMPTS {
                let ops = vec![Op::Put {
                    key: key.clone(),
                    value: (value + 1).to_string().into_bytes(),
                }];
                let compare = Compare {
                    key: key.clone(),
                    mod_revision: rev,
                };
                match store.txn(vec![compare], ops).await.unwrap() {
                    TxnOutcome::Committed { revision } => {
                        won.push(revision);
                        (value, rev) = (value + 1, revision);
                    }
                    // Retry from what the conflict says is there now.
                    TxnOutcome::Conflict { current } => {
                        let kv = current[0].1.clone().expect("the counter exists");
                        value = String::from_utf8(kv.value).unwrap().parse().unwrap();
                        rev = kv.mod_revision;
                    }
                }
            }
            won
        }));
    }
    let mut revisions = HashSet::new();
    for task in tasks {
        for revision in task.await.unwrap() {
            // Two winners at one revision would mean both compares held.
            assert!(revisions.insert(revision), "revision {revision} won twice");
        }
    }
    let kv = store.get(&key).await.unwrap().unwrap();
    let count: usize = String::from_utf8(kv.value).unwrap().parse().unwrap();
    assert_eq!(count, revisions.len(), "counter vs committed txns");
    // Each conflict is another task's commit, so at least one commit per round.
    assert!(count >= ATTEMPTS, "only {count} commits");
}

pub async fn txn_limits<S: Store>(s: &S, p: &str) {
    let puts = |n: usize| -> Vec<Op> { (0..n).map(|i| put(p, &format!("m/{i}"), "v")).collect() };
    assert!(matches!(
        s.txn(vec![], puts(MAX_TXN_OPS + 1)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        s.list(p).await.unwrap().kvs.is_empty(),
        "a refused txn wrote"
    );
    commit(s, vec![], puts(MAX_TXN_OPS)).await;
    assert_eq!(s.list(p).await.unwrap().kvs.len(), MAX_TXN_OPS);
    let compares: Vec<Compare> = (0..=MAX_TXN_OPS)
        .map(|i| cmp(p, &format!("c/{i}"), 0))
        .collect();
    assert!(matches!(
        s.txn(compares, vec![]).await,
        Err(StoreError::Invalid(_))
    ));
    let twice = vec![put(p, "x", "1"), del(p, "x")];
    assert!(matches!(
        s.txn(vec![], twice).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Writes under `<p>w/` (and once outside it) and returns the events a watcher of
/// `<p>w/` must see, in order.
async fn write_watched<S: Store>(s: &S, p: &str) -> Vec<WatchEvent> {
    let r1 = commit(s, vec![], vec![put(p, "w/1", "one")]).await;
    let r2 = commit(
        s,
        vec![],
        vec![put(p, "w/2", "two"), put(p, "w/3", "three")],
    )
    .await;
    commit(s, vec![], vec![put(p, "x", "not watched")]).await;
    let r3 = commit(s, vec![], vec![del(p, "w/1")]).await;
    let r4 = commit(s, vec![], vec![put(p, "w/2", "two again")]).await;
    vec![
        WatchEvent::Put(kv(p, "w/1", "one", r1)),
        WatchEvent::Put(kv(p, "w/2", "two", r2)),
        WatchEvent::Put(kv(p, "w/3", "three", r2)),
        WatchEvent::Delete {
            key: k(p, "w/1"),
            mod_revision: r3,
        },
        WatchEvent::Put(kv(p, "w/2", "two again", r4)),
    ]
}

/// The next `n` events of `stream`, checking each message's revision.
pub async fn collect(stream: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let mut last: Revision = 0;
    while events.len() < n {
        let message = tokio::time::timeout(WATCH_DEADLINE, stream.recv())
            .await
            .unwrap_or_else(|_| panic!("no watch event within {WATCH_DEADLINE:?}; got {events:?}"));
        match message {
            Some(WatchMessage::Events {
                revision,
                events: batch,
            }) => {
                assert!(!batch.is_empty(), "empty Events message");
                assert_eq!(revision, batch[batch.len() - 1].revision());
                assert!(revision > last, "message revisions {last} then {revision}");
                last = revision;
                events.extend(batch);
            }
            other => panic!("watch gave {other:?} after {events:?}"),
        }
    }
    events
}

pub async fn commit<S: Store>(s: &S, compares: Vec<Compare>, ops: Vec<Op>) -> Revision {
    match s.txn(compares, ops).await.unwrap() {
        TxnOutcome::Committed { revision } => revision,
        other => panic!("expected a commit, got {other:?}"),
    }
}

async fn conflict<S: Store>(
    s: &S,
    compares: Vec<Compare>,
    ops: Vec<Op>,
) -> Vec<(String, Option<KeyValue>)> {
    match s.txn(compares, ops).await.unwrap() {
        TxnOutcome::Conflict { current } => current,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn k(p: &str, key: &str) -> String {
    format!("{p}{key}")
}

fn kv(p: &str, key: &str, value: &str, mod_revision: Revision) -> KeyValue {
    KeyValue {
        key: k(p, key),
        value: value.as_bytes().to_vec(),
        mod_revision,
    }
}

fn put(p: &str, key: &str, value: &str) -> Op {
    Op::Put {
        key: k(p, key),
        value: value.as_bytes().to_vec(),
    }
}

fn del(p: &str, key: &str) -> Op {
    Op::Delete { key: k(p, key) }
}

fn cmp(p: &str, key: &str, mod_revision: Revision) -> Compare {
    Compare {
        key: k(p, key),
        mod_revision,
    }
}
