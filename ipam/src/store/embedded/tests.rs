// The shared store suite on the embedded store, and what only it promises:
// restarts keep everything, a damaged or foreign file is refused untouched, a
// locked file gives a clear error, concurrent transactions share commits.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::join_all;

use super::{EmbeddedStore, FILE_NAME};
use crate::store::suite::{self, commit};
use crate::store::{Op, Store, StoreError, TxnOutcome, WatchMessage};

macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
                suite::run(stringify!($case), store, "t/").await;
            }
        )*

        #[test]
        fn every_suite_case_runs() {
            assert_eq!(suite::CASES, [$(stringify!($case)),*]);
        }
    };
}

suite_cases!(
    put_get_list,
    compares,
    revisions_increase,
    deletes,
    watch_in_order,
    watch_from_the_past,
    concurrent_txns_on_one_key,
    txn_limits,
);

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn reopen_keeps_records_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (before, rev) = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        commit(&store, vec![], vec![put("a", "1"), put("b", "2")]).await;
        commit(&store, vec![], vec![put("a", "3")]).await;
        let rev = commit(&store, vec![], vec![Op::Delete { key: "b".into() }]).await;
        (store.list("").await.unwrap().kvs, rev)
    };
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let snap = store.list("").await.unwrap();
    assert_eq!((snap.revision, &snap.kvs), (rev, &before));
    assert_eq!(commit(&store, vec![], vec![put("c", "4")]).await, rev + 1);
}

#[tokio::test]
async fn creates_the_directory_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/ipam");
    let store = EmbeddedStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(store.path(), path.join(FILE_NAME));
    assert_eq!(
        store.describe(),
        format!("embedded {}", path.join(FILE_NAME).display())
    );
}

fn assert_corrupt_untouched(dir: &Path, content: &[u8]) {
    let file = dir.join(FILE_NAME);
    std::fs::write(&file, content).unwrap();
    match EmbeddedStore::open(dir) {
        Err(e @ StoreError::Corrupt { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&file.display().to_string()), "{text}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        content,
        "the file was changed"
    );
}

#[test]
fn garbage_file_is_corrupt_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic noise, larger than redb's header.
    let noise: Vec<u8> = (0u32..16384)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_corrupt_untouched(dir.path(), &noise);
    assert_corrupt_untouched(dir.path(), b"not a database\n");
}

#[test]
fn damaged_store_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let big = "x".repeat(20_000);
        commit(&store, vec![], vec![put("a", &big), put("b", &big)]).await;
    });
    let file = dir.path().join(FILE_NAME);
    let mut bytes = std::fs::read(&file).unwrap();
    // Flip bytes past the header, where the committed pages are.
    for b in bytes.iter_mut().skip(4096) {
        *b ^= 0x5a;
    }
    assert_corrupt_untouched(dir.path(), &bytes);
}

#[test]
fn foreign_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE_NAME);
    {
        let db = redb::Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
        txn.open_table(table).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Corrupt { path, reason }) => {
            assert_eq!(path, file);
            assert!(reason.contains("another program"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn second_open_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = EmbeddedStore::open(dir.path()).unwrap();
    match EmbeddedStore::open(dir.path()) {
        Err(StoreError::Io { path, source }) => {
            assert_eq!(path, dir.path().join(FILE_NAME));
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy);
            assert!(source.to_string().contains("another process"), "{source}");
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_txns_share_commits() {
    const TXNS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // All queued at once: the writer takes whatever waits while it fsyncs.
    let outcomes =
        join_all((0..TXNS).map(|i| store.txn(vec![], vec![put(&format!("k/{i}"), "v")]))).await;
    let revisions: HashSet<i64> = outcomes
        .into_iter()
        .map(|o| match o.unwrap() {
            TxnOutcome::Committed { revision } => revision,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(revisions.len(), TXNS);
    assert_eq!(store.txn_count(), TXNS as u64);
    assert!(
        store.commit_count() < TXNS as u64 / 2,
        "{} commits for {TXNS} txns",
        store.commit_count()
    );
    assert_eq!(store.list("k/").await.unwrap().kvs.len(), TXNS);
}

#[tokio::test]
async fn slow_watcher_gets_resync() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let mut stream = store.watch("", 0).await.unwrap();
    for i in 0..super::state::WATCH_QUEUE * 2 {
        commit(&store, vec![], vec![put("k", &i.to_string())]).await;
    }
    let mut messages = Vec::new();
    while let Some(m) = stream.recv().await {
        messages.push(m);
    }
    assert!(
        matches!(messages.last(), Some(WatchMessage::Resync)),
        "{messages:?}"
    );
    assert_eq!(messages.len(), super::state::WATCH_QUEUE);
}

#[tokio::test]
async fn watch_from_before_the_open_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        commit(&store, vec![], vec![put("k", "1")]).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let mut stream = store.watch("", 0).await.unwrap();
    assert!(matches!(stream.recv().await, Some(WatchMessage::Resync)));
    assert!(stream.recv().await.is_none());
    // From the present on, it works.
    let mut stream = store.watch("", 1).await.unwrap();
    commit(&store, vec![], vec![put("k", "2")]).await;
    assert_eq!(suite::collect(&mut stream, 1).await.len(), 1);
}
