// ipamd's Kubernetes source (`podroute-ipamd --kube`, ARCHITECTURE.md
// principle 5): IPPools become the engine's pools (pools.rs), Nodes its node
// directory, and a deleted Node gives back its addresses and blocks
// (nodes.rs); an allocation whose pod has been gone for longer than a grace
// period is released (pod_gc.rs); each IPPool's status shows its usage
// (status.rs). Three watched reflector stores (podroute_k8s::reflect) feed
// one reconciler task, which acts only once every kind has been listed
// completely; ipam/README.md ("In a cluster") says what each event does.

mod nodes;
mod pod_gc;
mod pools;
mod status;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodStatus};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store as Reflected;
use kube::runtime::watcher::{self, ListSemantic};
use kube::{Api, Client};
use podroute_k8s::reflect::{Progress, follow, keep_identity, watch_dynamic, watch_kind};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::info;

use super::{Ipamd, ServiceError};
use crate::model::crd::IPPool;
use crate::store::{Revision, Store};

pub use podroute_k8s::{ClientError, client};

/// `--pod-gc-grace`'s default: how long a pod must have been gone before
/// its addresses are released (Calico's kube-controllers wait as long).
pub const DEFAULT_POD_GC_GRACE: Duration = Duration::from_secs(300);
/// The longest `--pod-gc-grace` ipamd takes (30 days): longer would be no
/// collection at all, better said by a flag of its own.
pub const MAX_POD_GC_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);
/// What /readyz says until the first complete list has been applied.
pub const NOT_LISTED: &str =
    "waiting for the first complete list of IPPools, Nodes and Pods from Kubernetes";
/// The least time between two reconciles: a burst of watch events (the
/// initial list of every pod, a rollout) becomes one pass.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// A pass also runs this often without any event: a deleted pool waiting
/// for its addresses, a deleted node's blocks waiting for their addresses
/// to cool down, and writes that failed are retried.
const TICK: Duration = Duration::from_secs(10);

/// An engine error that says only "not now": the store is unreachable (the
/// engine logs that once, and /readyz shows it), or ipamd is stopping. The
/// source retries at its next pass without a warning of its own.
fn waits_for_store(error: &ServiceError) -> bool {
    matches!(
        error,
        ServiceError::Unavailable(_) | ServiceError::Stopping | ServiceError::Contended { .. }
    )
}

/// Logs a failed write of the source: at `debug` when it only waits for
/// the store, else as a warning.
fn log_failure(error: &ServiceError, what: &str) {
    if waits_for_store(error) {
        tracing::debug!(%error, "{what}; retrying when the store answers");
    } else {
        tracing::warn!(%error, "{what}; retrying");
    }
}

/// The kinds watched, as `Progress::kind` names them.
const POOLS: &str = "ippools";
const NODES: &str = "nodes";
const PODS: &str = "pods";
const KINDS: [&str; 3] = [POOLS, NODES, PODS];

#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// A pod gone for this long releases its addresses.
    pub pod_gc_grace: Duration,
    /// How often IPPool status is brought up to date (at most one patch
    /// per pool each time).
    pub status_interval: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            pod_gc_grace: DEFAULT_POD_GC_GRACE,
            status_interval: status::INTERVAL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// An IPPool object that does not read as our IPPool (a field of a
    /// newer CRD, a wrong type).
    #[error("IPPool {name:?} does not read as a podroute.io/v1 IPPool: {source}")]
    Convert {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    /// An IPPool the engine refuses (an invalid spec, an overlap with
    /// another pool, a cidr or blockSize changed while blocks exist).
    #[error("IPPool {name:?}: {source}")]
    Refused {
        name: String,
        #[source]
        source: ServiceError,
    },
}

/// Follows the cluster through `client` into `ipamd` until the watch
/// streams end (kube's watchers retry forever, so only a bug ends them).
/// API errors are logged and retried with kube's default backoff; what
/// was applied stays meanwhile. ipamd is not ready
/// from this call until the first complete list of every kind has been
/// applied.
pub fn run<S: Store>(
    client: Client,
    ipamd: Ipamd<S>,
    config: KubeConfig,
) -> impl Future<Output = ()> + Send {
    ipamd.set_source_pending(Some(NOT_LISTED.to_owned()));
    follow_cluster(client, ipamd, config)
}

async fn follow_cluster<S: Store>(client: Client, ipamd: Ipamd<S>, config: KubeConfig) {
    let resource = ApiResource::erase::<IPPool>(&());
    let pools_api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let views = Arc::new(Views::new(ipamd.changes()));
    // Untyped: one pool a newer CRD wrote must not hide the others
    // (pools.rs converts each on its own).
    let (pools, pool_events) = watch_dynamic(POOLS, &client, resource, watch_config(), strip_pool);
    let (nodes, node_events) =
        watch_kind::<Node>(NODES, Api::all(client.clone()), watch_config(), strip_node);
    let (pods, pod_events) =
        watch_kind::<Pod>(PODS, Api::all(client.clone()), watch_config(), strip_pod);
    let events = stream::select_all(
        [pool_events, node_events, pod_events].map(|events| views.clone().track(events)),
    );
    let stores = Stores { pools, nodes, pods };
    // Bumped after each burst of changes once every kind is listed.
    let (changed_tx, changed) = watch::channel(0u64);
    let live = pod_gc::LiveCheck::new(client);
    let reconciler = Reconciler::new(ipamd.clone(), stores.clone(), views, live, &config);
    let (guard_ipamd, guard_pools) = (ipamd.clone(), stores.pools.clone());
    let status = status::StatusWriter::new(pools_api, ipamd, stores.pools, config.status_interval);
    let followed = follow(events, &KINDS, DEBOUNCE, std::future::pending(), || {
        changed_tx.send_modify(|generation| *generation += 1);
        std::future::ready(())
    });
    let guarded = async {
        // Nothing is applied nor written until the store is the cluster's.
        if !same_store(&guard_ipamd, &guard_pools, changed.clone()).await {
            return;
        }
        tokio::select! {
            () = reconciler.run(changed.clone()) => {}
            () = status.run(changed) => {}
        }
    };
    tokio::select! {
        () = followed => {}
        () = guarded => {}
    }
}

/// Every watcher's settings. Relists are quorum reads (kube-runtime's
/// default, said here so a change of default cannot pass unseen): a relist
/// served from an API server's cache (`ListSemantic::Any`) may be older
/// than what the store already showed, bringing back deleted nodes and
/// pods or hiding new ones, and deleted nodes and pod GC act on it.
fn watch_config() -> watcher::Config {
    watcher::Config::default().list_semantic(ListSemantic::MostRecent)
}

/// Waits until the IPPools are listed and agree that this store can be
/// the cluster's: a store without any block while an IPPool's status says
/// blocks are claimed is another store than the one that claimed them
/// (the embedded store's hostPath on another node, after ipamd moved), and
/// handing out addresses from it would give pods addresses in use. Until
/// then ipamd stays not ready (so its Service sends it nothing) and says
/// why; clearing the pools' status (a store deliberately started afresh)
/// lets it go on. False when the source ends first.
async fn same_store<S: Store>(
    ipamd: &Ipamd<S>,
    pools: &Reflected<DynamicObject>,
    mut changed: watch::Receiver<u64>,
) -> bool {
    let mut reported = None;
    loop {
        if changed
            .wait_for(|generation| *generation > 0)
            .await
            .is_err()
        {
            return false;
        }
        changed.borrow_and_update();
        let stored = ipamd.read(|mirror| mirror.state.block_count()).await;
        let Some(reason) = store_mismatch(stored, &pools.state()) else {
            if reported.is_some() {
                info!("the IPPools no longer claim blocks this store lacks; going on");
                ipamd.set_source_pending(Some(NOT_LISTED.to_owned()));
            }
            return true;
        };
        if reported.as_ref() != Some(&reason) {
            tracing::error!(%reason, "refusing to serve from this store");
            reported = Some(reason.clone());
        }
        ipamd.set_source_pending(Some(reason));
        if changed.changed().await.is_err() {
            return false;
        }
    }
}

/// Why a store holding `stored_blocks` blocks is not the cluster's, judged
/// by the IPPools' status (what the last ipamd wrote).
fn store_mismatch(stored_blocks: usize, pools: &[Arc<DynamicObject>]) -> Option<String> {
    if stored_blocks > 0 {
        return None;
    }
    let claimed: Vec<(String, u64)> = pools
        .iter()
        .filter_map(|pool| {
            let blocks = pool.data.get("status")?.get("blocks")?.as_u64()?;
            (blocks > 0).then(|| (pool.metadata.name.clone().unwrap_or_default(), blocks))
        })
        .collect();
    let (name, blocks) = claimed.first()?;
    Some(format!(
        "the store holds no block, but IPPool {name:?} says {blocks} are claimed: this ipamd \
         opened another store than the cluster's (an embedded store on another node?); \
         move ipamd back to its store's node, or if the store was started afresh on purpose, \
         clear the pools' status (kubectl patch ippool {name} --subresource status --type merge \
         -p '{{\"status\":null}}')"
    ))
}

/// The three watched stores.
#[derive(Clone)]
struct Stores {
    pools: Reflected<DynamicObject>,
    nodes: Reflected<Node>,
    pods: Reflected<Pod>,
}

/// How current a kind's store is, as far as the source can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct View {
    /// The store holds a complete list and no relist has begun since (a
    /// 410 Gone, or a list that failed): it holds the cluster's objects,
    /// less what the watch has not delivered yet.
    complete: bool,
    /// The IPAM store's revision when the store last took an event or a
    /// list. A handle written after it may lack its pod only because the
    /// view has not caught up, so it is not judged by this view.
    heard_at: Revision,
}

/// Every kind's `View`, kept from the items of its watch stream.
struct Views {
    kinds: Mutex<BTreeMap<&'static str, View>>,
    /// The IPAM store's revision.
    revision: watch::Receiver<Revision>,
}

impl Views {
    fn new(revision: watch::Receiver<Revision>) -> Self {
        Views {
            kinds: Mutex::new(BTreeMap::new()),
            revision,
        }
    }

    /// `events`, noting each item before it is passed on.
    fn track(
        self: Arc<Self>,
        events: BoxStream<'static, Progress>,
    ) -> BoxStream<'static, Progress> {
        events.inspect(move |progress| self.note(progress)).boxed()
    }

    fn note(&self, progress: &Progress) {
        let revision = *self.revision.borrow();
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let view = kinds.entry(progress.kind).or_default();
        match &progress.outcome {
            Ok(list_done) => {
                view.complete |= *list_done;
                view.heard_at = revision;
            }
            // The watcher lists again after these: until that list is
            // complete, the store may miss any change since the last one.
            Err(_) if relists(progress) => view.complete = false,
            // A watch that failed to start or broke resumes from where it
            // was: nothing is lost.
            Err(_) => {}
        }
    }

    fn get(&self, kind: &'static str) -> View {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds.get(kind).copied().unwrap_or_default()
    }
}

/// Whether the watcher relists after this error (kube-runtime's watcher
/// starts over after a failed list, a missing resourceVersion and 410
/// Gone; other watch errors resume from the last version).
fn relists(progress: &Progress) -> bool {
    match &progress.outcome {
        Err(watcher::Error::InitialListFailed(_) | watcher::Error::NoResourceVersion) => true,
        Err(watcher::Error::WatchError(status)) => status.code == 410,
        _ => false,
    }
}

/// The task that applies the stores to the engine.
struct Reconciler<S: Store> {
    ipamd: Ipamd<S>,
    stores: Stores,
    views: Arc<Views>,
    pools: pools::PoolSync,
    nodes: nodes::NodeSync,
    pod_gc: pod_gc::PodGc,
    /// Reads each pod due for collection from the API server first.
    live: pod_gc::LiveCheck,
    /// The first pass has run (ipamd is ready since).
    listed: bool,
}

impl<S: Store> Reconciler<S> {
    fn new(
        ipamd: Ipamd<S>,
        stores: Stores,
        views: Arc<Views>,
        live: pod_gc::LiveCheck,
        config: &KubeConfig,
    ) -> Self {
        Reconciler {
            ipamd,
            stores,
            views,
            pools: pools::PoolSync::default(),
            nodes: nodes::NodeSync::default(),
            pod_gc: pod_gc::PodGc::new(config.pod_gc_grace),
            live,
            listed: false,
        }
    }

    /// A pass after every burst of changes and every TICK (sooner when a
    /// pod's grace ends), once every kind has been listed.
    async fn run(mut self, mut changed: watch::Receiver<u64>) {
        if changed
            .wait_for(|generation| *generation > 0)
            .await
            .is_err()
        {
            return;
        }
        loop {
            changed.borrow_and_update();
            self.pass().await;
            let now = Instant::now();
            let wake = self
                .pod_gc
                .next_deadline(now)
                .map_or(now + TICK, |deadline| deadline.min(now + TICK));
            tokio::select! {
                seen = changed.changed() => if seen.is_err() { return },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn pass(&mut self) {
        // Nodes first: the pools' nodeSelectors match their labels.
        let pods_complete = self.views.get(PODS).complete;
        self.nodes
            .sync(
                &self.ipamd,
                &self.stores.nodes,
                &self.stores.pods,
                pods_complete,
            )
            .await;
        self.pools.sync(&self.ipamd, &self.stores.pools).await;
        let known_nodes = self.nodes.known();
        let view = self.views.get(PODS);
        let pods = self.stores.pods.clone();
        let unbacked = self
            .ipamd
            .read(|mirror| pod_gc::unbacked(&mirror.state, &pods, known_nodes))
            .await;
        let due = self.pod_gc.evaluate(unbacked, view, Instant::now());
        // The cache may lag behind the cluster: the API server has the
        // last word on each handle due (one GET each, and none when none
        // is due).
        let confirmed = self.live.confirm(due, known_nodes).await;
        self.pod_gc.seen_live(&confirmed.present, Instant::now());
        pod_gc::release(&self.ipamd, &confirmed.gone).await;
        if !self.listed {
            self.listed = true;
            self.ipamd.set_source_pending(None);
            info!(
                pools = self.stores.pools.state().len(),
                nodes = self.stores.nodes.state().len(),
                pods = self.stores.pods.state().len(),
                "Kubernetes objects listed"
            );
        }
    }
}

// Strippers: the stores hold every Node and Pod of the cluster, so each
// keeps only what this source reads (and the metadata the reflector keys
// on). The Node's and Pod's are public (hidden) for bench/kube, which
// measures these stores against stores of whole objects.

fn strip_pool(pool: &mut DynamicObject) {
    keep_identity(&mut pool.metadata);
}

#[doc(hidden)]
pub fn strip_node(node: &mut Node) {
    keep_identity(&mut node.metadata);
    node.metadata.deletion_timestamp = None;
    node.spec = None;
    node.status = None;
}

#[doc(hidden)]
pub fn strip_pod(pod: &mut Pod) {
    keep_identity(&mut pod.metadata);
    pod.metadata.labels = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        pod_ips: status.pod_ips,
        ..PodStatus::default()
    });
}
