// The shared store suite against a real etcd (/usr/bin/etcd on loopback), and
// what is etcd's own: the key prefix, compaction and a lost etcd turning into
// Resync, connection errors into Unavailable.

use std::sync::Arc;
use std::time::Duration;

use super::{DEFAULT_KEY_PREFIX, EtcdStore, EtcdTls};
use crate::store::suite::{self, commit};
use crate::store::{Op, Store, StoreError, WatchMessage};
use crate::test_support::EtcdServer;

/// Longest wait for a watch to notice compaction or a dead etcd.
const NOTICE_DEADLINE: Duration = Duration::from_secs(30);

async fn store(etcd: &EtcdServer, prefix: &str) -> EtcdStore {
    EtcdStore::connect(vec![etcd.endpoint()], prefix.into(), None)
        .await
        .unwrap()
}

async fn raw_client(etcd: &EtcdServer) -> etcd_client::Client {
    etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap()
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

async fn next_message(stream: &mut crate::store::WatchStream) -> Option<WatchMessage> {
    tokio::time::timeout(NOTICE_DEADLINE, stream.recv())
        .await
        .expect("the watch noticed nothing in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_real_etcd() {
    let etcd = EtcdServer::start();
    let store = Arc::new(store(&etcd, DEFAULT_KEY_PREFIX).await);
    suite::run_all(store, "suite/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_under_the_prefix_and_come_back_without_it() {
    let etcd = EtcdServer::start();
    let a = store(&etcd, "/a/").await;
    let b = store(&etcd, "/b/").await;
    let rev = commit(&a, vec![], vec![put("pools/p", "1")]).await;
    let raw = raw_client(&etcd)
        .await
        .get("/a/pools/p", None)
        .await
        .unwrap();
    assert_eq!(raw.kvs()[0].value(), b"1");
    assert_eq!(raw.kvs()[0].mod_revision(), rev);
    let listed = a.list("").await.unwrap().kvs;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "pools/p");
    assert!(b.list("").await.unwrap().kvs.is_empty());
    assert_eq!(b.get("pools/p").await.unwrap(), None);
    assert!(a.describe().contains(&etcd.endpoint()), "{}", a.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reads_pages_at_one_revision() {
    let etcd = EtcdServer::start();
    let s = store(&etcd, DEFAULT_KEY_PREFIX).await;
    // More keys than one page, so the list pages.
    let total = super::LIST_PAGE as usize * 2 + 17;
    let keys: Vec<String> = (0..total).map(|i| format!("blocks/{i:05}")).collect();
    for chunk in keys.chunks(crate::store::MAX_TXN_OPS) {
        let ops = chunk.iter().map(|k| put(k, "v")).collect();
        commit(&s, vec![], ops).await;
    }
    let snap = s.list("blocks/").await.unwrap();
    let listed: Vec<String> = snap.kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(listed, keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_history_resyncs() {
    let etcd = EtcdServer::start();
    let s = store(&etcd, DEFAULT_KEY_PREFIX).await;
    let old = commit(&s, vec![], vec![put("k", "1")]).await;
    commit(&s, vec![], vec![put("k", "2")]).await;
    let now = commit(&s, vec![], vec![put("k", "3")]).await;
    raw_client(&etcd).await.compact(now, None).await.unwrap();
    let mut stream = s.watch("", old).await.unwrap();
    assert!(matches!(
        next_message(&mut stream).await,
        Some(WatchMessage::Resync)
    ));
    assert!(next_message(&mut stream).await.is_none());
    // Relisting and watching from the list's revision works again.
    let snap = s.list("").await.unwrap();
    let mut stream = s.watch("", snap.revision).await.unwrap();
    let rev = commit(&s, vec![], vec![put("k", "4")]).await;
    let events = suite::collect(&mut stream, 1).await;
    assert_eq!(events[0].revision(), rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_etcd_resyncs_watches_and_fails_requests_as_unavailable() {
    let mut etcd = EtcdServer::start();
    let s = store(&etcd, DEFAULT_KEY_PREFIX).await;
    let rev = commit(&s, vec![], vec![put("k", "1")]).await;
    let mut stream = s.watch("", rev).await.unwrap();
    etcd.kill();
    assert!(matches!(
        next_message(&mut stream).await,
        Some(WatchMessage::Resync)
    ));
    assert!(next_message(&mut stream).await.is_none());
    match s.get("k").await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("etcd"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        s.txn(vec![], vec![put("k", "2")]).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        s.watch("", rev).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn bad_configuration_is_invalid() {
    let none = EtcdStore::connect(vec![], DEFAULT_KEY_PREFIX.into(), None).await;
    assert!(matches!(none, Err(StoreError::Invalid(_))), "{none:?}");
    let tls = EtcdTls {
        ca_pem: Vec::new(),
        identity: None,
    };
    let plain_with_tls = EtcdStore::connect(
        vec!["http://127.0.0.1:2379".into()],
        DEFAULT_KEY_PREFIX.into(),
        Some(tls),
    )
    .await;
    assert!(
        matches!(plain_with_tls, Err(StoreError::Invalid(_))),
        "{plain_with_tls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let etcd = EtcdServer::start_tls();
    let pem = etcd.tls().unwrap();
    let s = EtcdStore::connect(
        vec![etcd.endpoint()],
        DEFAULT_KEY_PREFIX.into(),
        Some(pem.etcd_tls()),
    )
    .await
    .unwrap();
    let rev = commit(&s, vec![], vec![put("k", "1")]).await;
    assert_eq!(s.get("k").await.unwrap().unwrap().mod_revision, rev);
    // Without a client certificate etcd refuses the handshake.
    let anonymous = EtcdTls {
        ca_pem: pem.ca.clone(),
        identity: None,
    };
    let s = EtcdStore::connect(
        vec![etcd.endpoint()],
        DEFAULT_KEY_PREFIX.into(),
        Some(anonymous),
    )
    .await
    .unwrap();
    assert!(matches!(s.get("k").await, Err(StoreError::Unavailable(_))));
}
