// Watched stores of several kinds, and the loop that turns their changes
// into rebuilds of whatever a daemon derives from them. A kind's store is
// kept by kube-runtime's watcher and reflector (list, then watch from the
// list's resourceVersion; on 410 Gone or a broken watch, list again with
// backoff). Nothing is rebuilt until every kind has completed one list, and
// a relist swaps a store only when the new list is complete, so a daemon
// never acts on a partial cluster; on API errors the stores keep what they
// had, and so does the daemon.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// One item of a kind's watch stream, after the reflector has applied it
/// to the store.
#[derive(Debug)]
pub struct Progress {
    /// The kind's name in logs (e.g. "pods").
    pub kind: &'static str,
    /// `Ok(true)` at the end of a (re)list, `Ok(false)` for any other
    /// change, `Err` when the API failed (the watcher retries).
    pub outcome: Result<bool, watcher::Error>,
}

/// A store of `K` kept by a watcher of `api`, and the stream that drives
/// it (nothing happens until the stream is polled). `strip` trims each
/// object before it is stored, so a store of every Pod in a cluster holds
/// only the fields the daemon reads.
pub fn watch_kind<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    strip: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, BoxStream<'static, Progress>)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Eq + std::hash::Hash,
{
    watch_with(kind, api, K::DynamicType::default(), config, strip)
}

/// As [`watch_kind`], for objects kept untyped. Our custom resources are
/// watched this way: a typed watcher fails a whole list when one object
/// does not decode (a field only a newer CRD has), and one bad object must
/// not hide the others, so each is converted on its own when it is read.
pub fn watch_dynamic(
    kind: &'static str,
    client: &Client,
    resource: ApiResource,
    config: watcher::Config,
    strip: impl FnMut(&mut DynamicObject) + Send + 'static,
) -> (Store<DynamicObject>, BoxStream<'static, Progress>) {
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    watch_with(kind, api, resource, config, strip)
}

fn watch_with<K>(
    kind: &'static str,
    api: Api<K>,
    dynamic_type: K::DynamicType,
    config: watcher::Config,
    strip: impl FnMut(&mut K) + Send + 'static,
) -> (Store<K>, BoxStream<'static, Progress>)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    let writer = Writer::new(dynamic_type);
    let store = writer.as_reader();
    let events = watcher::watcher(api, config)
        .default_backoff()
        .modify(strip)
        .reflect(writer)
        .map(move |item| Progress {
            kind,
            outcome: item.map(|event| matches!(event, Event::InitDone)),
        })
        .boxed();
    (store, events)
}

/// Trims `meta` to what a reflector keys on and a daemon reads: name,
/// namespace, labels, deletion time, resourceVersion and uid. Stores of
/// every Pod or Node of a cluster keep little else (a Pod's managedFields
/// and annotations alone can be kilobytes).
pub fn keep_identity(meta: &mut ObjectMeta) {
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        labels: meta.labels.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        resource_version: meta.resource_version.take(),
        uid: meta.uid.take(),
        ..ObjectMeta::default()
    };
}

/// Which kinds have completed a list at least once.
#[derive(Debug)]
pub struct Listed {
    kinds: BTreeMap<&'static str, bool>,
}

impl Listed {
    pub fn new(kinds: &[&'static str]) -> Self {
        Listed {
            kinds: kinds.iter().map(|kind| (*kind, false)).collect(),
        }
    }

    /// Records one item; true when the stores may have changed. Errors are
    /// logged here: an expired watch at debug (it is routine), others as
    /// warnings.
    pub fn note(&mut self, progress: Progress) -> bool {
        match progress.outcome {
            Ok(list_done) => {
                if list_done {
                    self.kinds.insert(progress.kind, true);
                }
                true
            }
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                debug!(kind = progress.kind, "watch expired; relisting");
                false
            }
            Err(error) => {
                warn!(kind = progress.kind, %error, "watch failed; retrying after backoff");
                false
            }
        }
    }

    /// Every kind has been listed once.
    pub fn all(&self) -> bool {
        self.kinds.values().all(|listed| *listed)
    }
}

/// Drives `events` (every kind's stream, merged) and calls `rebuild` after
/// each burst of changes once every kind in `kinds` has been listed. A
/// burst (an initial list of thousands of objects, a rollout) becomes one
/// rebuild: after a rebuild the next waits until `debounce` has passed,
/// while an event after a quiet spell is rebuilt at once. Returns when
/// `closed` completes, or when the streams end (kube's watchers retry
/// forever, so that is a bug and logged as one).
pub async fn follow<F, R>(
    mut events: SelectAll<BoxStream<'static, Progress>>,
    kinds: &[&'static str],
    debounce: Duration,
    closed: impl Future<Output = ()>,
    mut rebuild: R,
) where
    R: FnMut() -> F,
    F: Future<Output = ()>,
{
    let mut listed = Listed::new(kinds);
    tokio::pin!(closed);
    // Long enough ago that the first event is rebuilt at once.
    let mut last_built = Instant::now()
        .checked_sub(debounce)
        .unwrap_or_else(Instant::now);
    loop {
        let first = tokio::select! {
            () = &mut closed => return,
            next = events.next() => next,
        };
        let Some(first) = first else {
            error!("Kubernetes watch streams ended");
            return;
        };
        let mut changed = listed.note(first);
        let deadline = (last_built + debounce).max(Instant::now());
        loop {
            tokio::select! {
                () = &mut closed => return,
                () = tokio::time::sleep_until(deadline) => break,
                next = events.next() => match next {
                    Some(progress) => changed |= listed.note(progress),
                    None => {
                        error!("Kubernetes watch streams ended");
                        return;
                    }
                },
            }
        }
        if !changed || !listed.all() {
            continue;
        }
        last_built = Instant::now();
        rebuild().await;
    }
}
