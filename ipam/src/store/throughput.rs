// Throughput of single-key transactions from many concurrent tasks, on both
// stores: the numbers that decide how the service batches allocations. Ignored
// by default; run with
//   cargo test --release -p podroute-ipam --lib throughput -- --ignored --nocapture

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::suite::commit;
use super::{Compare, DEFAULT_KEY_PREFIX, EmbeddedStore, EtcdStore, Op, Store, TxnOutcome};
use crate::test_support::EtcdServer;

const RUN: Duration = Duration::from_secs(3);
const TASK_COUNTS: [usize; 3] = [1, 8, 32];

/// Transactions per second with `tasks` tasks, each putting its own key in a
/// loop with a compare on that key's revision (as an allocation does).
async fn measure<S: Store>(store: Arc<S>, tasks: usize, run: &str) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let key = format!("bench/{run}/{t}");
        handles.push(tokio::spawn(async move {
            let mut rev = 0;
            let mut done = 0u64;
            while start.elapsed() < RUN {
                let compares = vec![Compare {
                    key: key.clone(),
                    mod_revision: rev,
                }];
                let ops = vec![Op::Put {
                    key: key.clone(),
                    value: vec![b'x'; 200],
                }];
                match store.txn(compares, ops).await.unwrap() {
                    TxnOutcome::Committed { revision } => rev = revision,
                    other => panic!("{other:?}"),
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run with --ignored --nocapture"]
async fn embedded_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    commit(&*store, vec![], vec![]).await;
    for tasks in TASK_COUNTS {
        let (txns0, commits0) = (store.txn_count(), store.commit_count());
        let rate = measure(store.clone(), tasks, &format!("t{tasks}")).await;
        let txns = store.txn_count() - txns0;
        let commits = store.commit_count() - commits0;
        eprintln!(
            "embedded: {tasks:>2} tasks: {rate:>8.0} txn/s, {:.1} txns per fsync'd commit",
            txns as f64 / commits.max(1) as f64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run with --ignored --nocapture"]
async fn etcd_throughput() {
    let etcd = EtcdServer::start();
    let store = Arc::new(
        EtcdStore::connect(vec![etcd.endpoint()], DEFAULT_KEY_PREFIX.into(), None)
            .await
            .unwrap(),
    );
    for tasks in TASK_COUNTS {
        let rate = measure(store.clone(), tasks, &format!("t{tasks}")).await;
        eprintln!("etcd:     {tasks:>2} tasks: {rate:>8.0} txn/s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures the open (integrity check + load) of a large store"]
async fn embedded_open_time() {
    const RECORDS: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let keys: Vec<String> = (0..RECORDS).map(|i| format!("blocks/{i:06}")).collect();
        for chunk in keys.chunks(super::MAX_TXN_OPS) {
            let ops = chunk
                .iter()
                .map(|k| Op::Put {
                    key: k.clone(),
                    value: vec![b'x'; 2048],
                })
                .collect();
            commit(&store, vec![], ops).await;
        }
    }
    let size = std::fs::metadata(dir.path().join(super::FILE_NAME))
        .unwrap()
        .len();
    let start = Instant::now();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    eprintln!(
        "embedded: open of {RECORDS} records ({} MiB): {:?}",
        size >> 20,
        start.elapsed()
    );
    assert_eq!(store.list("").await.unwrap().kvs.len(), RECORDS);
}
