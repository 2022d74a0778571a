// The Kubernetes source: watches Namespaces, Pods and NetworkPolicies in all
// namespaces (kube-runtime watchers into reflector stores) and publishes a
// `Snapshot` of the three, converted to the agent's wire types, after each
// burst of changes. Nothing is published until all three kinds have been
// listed once, and a relist (watch expired, 410 Gone) swaps a store only when
// the new list is complete, so the agent never sees a partial cluster: until
// then the rules it programmed stay as they are.

use std::sync::Arc;
use std::time::Duration;

use ::kube::runtime::reflector::Store;
use ::kube::runtime::watcher;
use ::kube::{Api, Client, Resource, ResourceExt};
use futures_util::stream;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodStatus};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use podroute_k8s::reflect::{follow, keep_identity, watch_kind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{debug, error, info};

use crate::model::objects::{NamespaceObject, NetworkPolicyObject, PodObject, Snapshot};

pub use podroute_k8s::{ClientError, client};

/// The least time between two snapshots: a burst of watch events (an
/// initial list of thousands of pods, a rollout) becomes one snapshot and
/// one kernel update instead of one per object. An event after a quiet
/// spell is published at once, so a lone change pays no wait.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// An object the API server sent does not fit the agent's wire types.
    #[error("{kind} {object}: {source}")]
    Convert {
        kind: &'static str,
        /// `namespace/name`, or `name` for a Namespace.
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Watches the cluster through `client` and publishes on `tx` until every
/// receiver is gone. API errors are logged and retried with kube's default
/// backoff (0.8 s doubling to 30 s); the last snapshot stays published
/// meanwhile.
pub async fn run(client: Client, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    follow_cluster(client, tx, strip_namespace, strip_pod, strip_policy).await;
}

/// [`run`] with stores of whole objects, as a source written without
/// strippers would keep them: the baseline bench/kube measures the stores'
/// memory against. Not for the agent.
#[doc(hidden)]
pub async fn run_unstripped(client: Client, tx: watch::Sender<Option<Arc<Snapshot>>>) {
    follow_cluster(
        client,
        tx,
        |_: &mut Namespace| {},
        |_: &mut Pod| {},
        |_: &mut NetworkPolicy| {},
    )
    .await;
}

async fn follow_cluster(
    client: Client,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    strip_namespace: impl FnMut(&mut Namespace) + Send + 'static,
    strip_pod: impl FnMut(&mut Pod) + Send + 'static,
    strip_policy: impl FnMut(&mut NetworkPolicy) + Send + 'static,
) {
    let (namespaces, namespace_events) = watch_kind::<Namespace>(
        Kind::Namespaces.name(),
        Api::all(client.clone()),
        watcher::Config::default(),
        strip_namespace,
    );
    let (pods, pod_events) = watch_kind::<Pod>(
        Kind::Pods.name(),
        Api::all(client.clone()),
        watcher::Config::default(),
        strip_pod,
    );
    let (policies, policy_events) = watch_kind::<NetworkPolicy>(
        Kind::Policies.name(),
        Api::all(client),
        watcher::Config::default(),
        strip_policy,
    );
    let stores = Stores {
        namespaces,
        pods,
        policies,
    };
    let events = stream::select_all([namespace_events, pod_events, policy_events]);
    let kinds = [Kind::Namespaces, Kind::Pods, Kind::Policies].map(Kind::name);
    let mut published_once = false;
    follow(events, &kinds, DEBOUNCE, tx.closed(), || {
        match stores.snapshot() {
            Ok(snapshot) => {
                if !published_once {
                    info!(
                        namespaces = snapshot.namespaces.len(),
                        pods = snapshot.pods.len(),
                        policies = snapshot.policies.len(),
                        "Kubernetes objects listed"
                    );
                    published_once = true;
                }
                publish(&tx, snapshot);
            }
            // Publishing without the object would drop its rules (or its
            // pod) silently; keeping the last view is the lesser harm, and
            // the next change retries.
            Err(error) => error!(%error, "not publishing: an object does not convert"),
        }
        std::future::ready(())
    })
    .await;
}

/// The three kinds the source watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Namespaces,
    Pods,
    Policies,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Namespaces => "namespaces",
            Kind::Pods => "pods",
            Kind::Policies => "networkpolicies",
        }
    }
}

struct Stores {
    namespaces: Store<Namespace>,
    pods: Store<Pod>,
    policies: Store<NetworkPolicy>,
}

impl Stores {
    /// The stores' contents in wire form, each kind sorted by namespace and
    /// name so that equal views compare equal.
    fn snapshot(&self) -> Result<Snapshot, KubeSourceError> {
        let mut namespaces: Vec<NamespaceObject> = convert_all(Kind::Namespaces, &self.namespaces)?;
        let mut pods: Vec<PodObject> = convert_all(Kind::Pods, &self.pods)?;
        let mut policies: Vec<NetworkPolicyObject> = convert_all(Kind::Policies, &self.policies)?;
        namespaces.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods.sort_by(|a, b| {
            (a.metadata.namespace_or_default(), &a.metadata.name)
                .cmp(&(b.metadata.namespace_or_default(), &b.metadata.name))
        });
        policies.sort_by(|a, b| {
            (a.metadata.namespace_or_default(), &a.metadata.name)
                .cmp(&(b.metadata.namespace_or_default(), &b.metadata.name))
        });
        Ok(Snapshot {
            namespaces,
            pods,
            policies,
        })
    }
}

/// Replaces the published snapshot unless it is the same view.
fn publish(tx: &watch::Sender<Option<Arc<Snapshot>>>, snapshot: Snapshot) {
    tx.send_if_modified(|current| {
        if current.as_deref() == Some(&snapshot) {
            return false;
        }
        debug!(
            namespaces = snapshot.namespaces.len(),
            pods = snapshot.pods.len(),
            policies = snapshot.policies.len(),
            "publishing snapshot"
        );
        *current = Some(Arc::new(snapshot));
        true
    });
}

fn convert_all<K, W>(kind: Kind, store: &Store<K>) -> Result<Vec<W>, KubeSourceError>
where
    K: Resource<DynamicType = ()> + Serialize + Clone,
    W: DeserializeOwned,
{
    store
        .state()
        .iter()
        .map(|object| convert(kind, object.as_ref()))
        .collect()
}

/// A k8s-openapi object in the agent's wire form. Both follow the API's
/// JSON, so the JSON value is the bridge.
fn convert<K, W>(kind: Kind, object: &K) -> Result<W, KubeSourceError>
where
    K: Resource + Serialize,
    W: DeserializeOwned,
{
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|source| KubeSourceError::Convert {
            kind: kind.name(),
            object: match object.namespace() {
                Some(namespace) => format!("{namespace}/{}", object.name_any()),
                None => object.name_any(),
            },
            source,
        })
}

// Strippers: the stores hold every object of the cluster, so each keeps only
// what `model::objects` reads (and the metadata the reflector keys on). A
// field read there must be kept here; the tests compare the conversions of
// stripped and whole objects.

fn strip_namespace(namespace: &mut Namespace) {
    keep_identity(&mut namespace.metadata);
    namespace.spec = None;
    namespace.status = None;
}

fn strip_pod(pod: &mut Pod) {
    keep_identity(&mut pod.metadata);
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        host_network: spec.host_network,
        containers: spec
            .containers
            .into_iter()
            .map(|container| Container {
                name: container.name,
                ports: container.ports,
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        pod_ips: status.pod_ips,
        ..PodStatus::default()
    });
}

fn strip_policy(policy: &mut NetworkPolicy) {
    keep_identity(&mut policy.metadata);
}

#[cfg(test)]
mod tests;
