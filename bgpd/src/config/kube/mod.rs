// The cluster source (`podroute-bgpd --kube`): Nodes, BGPConfigurations and
// BGPPeers from the Kubernetes API (kube-runtime watchers into reflector
// stores, podroute_k8s::reflect), turned after each burst of changes into
// this node's configuration by the assembly a file goes through
// (config::assemble). Each object is converted and validated on its own:
// one that does not decode or does not validate is refused with its name,
// field and reason, and the others apply (ARCHITECTURE.md principle 6).
// When no configuration can be built at all (no BGPConfiguration
// "default", an invalid one, this node's Node missing), the running one
// stays. Nothing is published until every kind has been listed, and a
// rebuild that yields the running configuration (a relist after 410 Gone,
// a Node heartbeat) publishes nothing. Documented in bgpd/CONFIG.md, "In a
// cluster (--kube)"; the BGPPeer status writer is in status.rs.

mod convert;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, SelectAll};
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use podroute_k8s::reflect::{Progress, follow, watch_dynamic, watch_kind};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::crd::{BGPConfiguration, BGPPeer, DEFAULT_BGP_CONFIGURATION};
use super::schema::{BgpConfigurationSpec, BgpPeerSpec};
use super::{
    Config, ConfigError, DocRef, Documents, KIND_BGP_CONFIGURATION, KIND_BGP_PEER, KIND_NODE,
    Problem, cluster,
};

pub use convert::{IPV4_ADDRESS_KEY, IPV6_ADDRESS_KEY, ObjectError};

/// The least time between two rebuilds: a burst of watch events (the
/// initial lists, a rollout of node labels) becomes one rebuild and at
/// most one reload. An event after a quiet spell is rebuilt at once.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// How errors name the source (as a file's errors name the file).
pub const ORIGIN: &str = "Kubernetes";

/// Where a BGPPeer's relative `passwordFile` is read from on the node
/// (the DaemonSet mounts Secrets under it).
pub const PASSWORD_DIR: &str = "/etc/podroute";

/// The kinds watched, as logs and `Listed` name them.
const NODES: &str = "nodes";
const CONFIGURATIONS: &str = "bgpconfigurations";
const PEERS: &str = "bgppeers";
const KINDS: [&str; 3] = [NODES, CONFIGURATIONS, PEERS];

/// This node's configuration, as built from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub config: Config,
    /// The BGPPeer each peer comes from, by peer address; mesh peers are
    /// absent (they have no object to write a status to).
    pub peer_objects: BTreeMap<IpAddr, String>,
}

/// What the source publishes after each rebuild that changed something.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    /// The last configuration built; `None` until one could be. Replaced
    /// (a new `Arc`) only when it differs from the one before.
    pub config: Option<Arc<ClusterConfig>>,
    /// Refusals so far: an object's each time it is refused for a new
    /// reason, and each new reason no configuration could be built.
    pub refused_total: u64,
    /// The objects refused now (the rest applied), each with its reason.
    pub refused: Vec<String>,
    /// Why the last rebuild built nothing (the configuration before it
    /// stays); `None` when it built one.
    pub unbuilt: Option<String>,
}

impl SourceState {
    /// Everything wrong now, for GetStatus `config_error`; `None` when
    /// nothing is.
    pub fn problems(&self) -> Option<String> {
        let all: Vec<&str> = self
            .unbuilt
            .iter()
            .chain(&self.refused)
            .map(String::as_str)
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }

    fn same(&self, other: &SourceState) -> bool {
        let same_config = match (&self.config, &other.config) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_config
            && self.refused_total == other.refused_total
            && self.refused == other.refused
            && self.unbuilt == other.unbuilt
    }
}

/// The watched stores and the streams that keep them.
pub struct Source {
    builder: Builder,
    events: SelectAll<BoxStream<'static, Progress>>,
}

impl Source {
    /// Watches the cluster through `client` for node `node` (nothing
    /// happens until [`Source::run`]).
    pub fn new(client: Client, node: &str) -> Source {
        let (nodes, node_events) = watch_kind::<KubeNode>(
            NODES,
            Api::all(client.clone()),
            watcher::Config::default(),
            convert::strip_node,
        );
        let (configurations, configuration_events) = watch_dynamic(
            CONFIGURATIONS,
            &client,
            ApiResource::erase::<BGPConfiguration>(&()),
            watcher::Config::default(),
            convert::strip_configuration,
        );
        let (peers, peer_events) = watch_dynamic(
            PEERS,
            &client,
            ApiResource::erase::<BGPPeer>(&()),
            watcher::Config::default(),
            convert::strip_peer(node.to_owned()),
        );
        Source {
            builder: Builder {
                node: node.to_owned(),
                password_dir: PathBuf::from(PASSWORD_DIR),
                nodes,
                configurations,
                peers,
            },
            events: stream::select_all([node_events, configuration_events, peer_events]),
        }
    }

    /// Reads relative `passwordFile`s from `dir` instead of
    /// [`PASSWORD_DIR`].
    pub fn with_password_dir(mut self, dir: &Path) -> Source {
        self.builder.password_dir = dir.to_owned();
        self
    }

    /// The BGPPeers as watched (spec, and this node's status entries), for
    /// the status writer.
    pub fn peers(&self) -> Store<DynamicObject> {
        self.builder.peers.clone()
    }

    /// Follows the cluster and publishes on `tx` until every receiver is
    /// gone. API errors are logged and retried with kube's default backoff
    /// (0.8 s doubling to 30 s); the stores and the last configuration
    /// stay meanwhile.
    pub async fn run(self, tx: watch::Sender<SourceState>) {
        let Source { builder, events } = self;
        let mut tracker = Tracker::default();
        follow(events, &KINDS, DEBOUNCE, tx.closed(), || {
            let built = builder.build();
            tracker.publish(&tx, built);
            std::future::ready(())
        })
        .await;
    }
}

/// Why `kernel_table` could not say.
#[derive(Debug, thiserror::Error)]
pub enum KernelTableError {
    #[error("cannot list BGPConfigurations: {0}")]
    List(#[source] kube::Error),
    #[error("no BGPConfiguration named {DEFAULT_BGP_CONFIGURATION:?}")]
    NoDefault,
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error("{0}")]
    Invalid(String),
}

/// The kernel table BGPConfiguration "default" names (`--cleanup --kube`),
/// read with one list: bgpd's role may list and watch, not get.
pub async fn kernel_table(client: Client) -> Result<u32, KernelTableError> {
    let resource = ApiResource::erase::<BGPConfiguration>(&());
    let api = Api::<DynamicObject>::all_with(client, &resource);
    let list = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(KernelTableError::List)?;
    let default = list
        .items
        .iter()
        .find(|object| object.name_any() == DEFAULT_BGP_CONFIGURATION)
        .ok_or(KernelTableError::NoDefault)?;
    let (doc, resource) =
        convert::resource::<BgpConfigurationSpec>(KIND_BGP_CONFIGURATION, default)?;
    super::validate::bgp_configuration(resource)
        .map(|bgp| bgp.kernel_table)
        .map_err(|(field, problem)| KernelTableError::Invalid(format!("{doc}: {field}: {problem}")))
}

/// What a rebuild made of the stores.
#[derive(Debug)]
struct Built {
    /// The configuration, or why none could be built.
    result: Result<ClusterConfig, String>,
    /// Objects refused, by how errors name them (`BGPPeer "tor1"`), each
    /// with the whole error.
    refused: BTreeMap<String, String>,
    /// BGPConfigurations other than "default", which are not read.
    ignored: BTreeSet<String>,
}

struct Builder {
    node: String,
    password_dir: PathBuf,
    nodes: Store<KubeNode>,
    configurations: Store<DynamicObject>,
    peers: Store<DynamicObject>,
}

impl Builder {
    /// This node's configuration from the stores as they are now.
    fn build(&self) -> Built {
        let mut refused = BTreeMap::new();
        let mut kube_nodes = self.nodes.state();
        kube_nodes.sort_by_key(|node| node.name_any());
        let mut nodes = Vec::with_capacity(kube_nodes.len());
        for object in &kube_nodes {
            match convert::node(object) {
                Ok(node) => nodes.push(node),
                Err(error) => refuse(&mut refused, object_of(&error), error.to_string()),
            }
        }

        let mut ignored = BTreeSet::new();
        let mut default = None;
        for object in self.configurations.state() {
            if object.name_any() == DEFAULT_BGP_CONFIGURATION {
                default = Some(object);
            } else {
                ignored.insert(object.name_any());
            }
        }
        let unbuilt = |reason: String, refused| Built {
            result: Err(reason),
            refused,
            ignored: ignored.clone(),
        };
        let Some(default) = default else {
            let reason = format!(
                "no BGPConfiguration named {DEFAULT_BGP_CONFIGURATION:?} (it applies to every node)"
            );
            return unbuilt(reason, refused);
        };
        let bgp = match convert::resource::<BgpConfigurationSpec>(KIND_BGP_CONFIGURATION, &default)
        {
            Ok(bgp) => bgp,
            Err(error) => return unbuilt(error.to_string(), refused),
        };

        // The older of two BGPPeers for one address wins: a new object
        // cannot unseat a running session.
        let mut peer_objects = self.peers.state();
        peer_objects.sort_by(|a, b| {
            let key = |o: &DynamicObject| (o.metadata.creation_timestamp.clone(), o.name_any());
            key(a).cmp(&key(b))
        });
        let mut peers = Vec::with_capacity(peer_objects.len());
        for object in &peer_objects {
            match convert::resource::<BgpPeerSpec>(KIND_BGP_PEER, object) {
                Ok((doc, resource)) => peers.push(cluster::PeerDocument { doc, resource }),
                Err(error) => refuse(&mut refused, object_of(&error), error.to_string()),
            }
        }

        if !nodes.iter().any(|node| node.name == self.node) {
            let ours = convert::doc(KIND_NODE, &self.node).to_string();
            // This node refused is no refusal of one object among others.
            let reason = match refused.remove(&ours) {
                Some(reason) => reason,
                None => format!("no Node named {:?} (--node) in the cluster", self.node),
            };
            return unbuilt(reason, refused);
        }

        let mut documents = Documents { bgp, nodes, peers };
        let read_file = |path: &Path| std::fs::read_to_string(self.password_dir.join(path));
        loop {
            let error = match super::assemble(&documents, Some(&self.node), ORIGIN, &read_file) {
                Ok(assembled) => {
                    // Sessions between nodes (peerSelector) get no status:
                    // every node's sessions with every selected node would
                    // make the object grow as the square of the cluster,
                    // and each write a change sent to every node.
                    let between_nodes: BTreeSet<&str> = documents
                        .peers
                        .iter()
                        .filter(|peer| peer.resource.spec.peer_selector.is_some())
                        .map(|peer| peer.resource.metadata.name.as_str())
                        .collect();
                    let peer_objects = assembled
                        .peer_sources
                        .into_iter()
                        .filter_map(|(address, doc)| Some((address, doc.name?)))
                        .filter(|(_, name)| !between_nodes.contains(name.as_str()))
                        .collect();
                    return Built {
                        result: Ok(ClusterConfig {
                            config: assembled.config,
                            peer_objects,
                        }),
                        refused,
                        ignored: ignored.clone(),
                    };
                }
                Err(error) => error,
            };
            // Refuse the object at fault and try again without it; the
            // BGPConfiguration or this node at fault refuses the whole.
            let removed = match culprit(&error, &self.node) {
                Some(Culprit::Peer(name)) => {
                    let before = documents.peers.len();
                    documents
                        .peers
                        .retain(|peer| peer.resource.metadata.name != name);
                    refuse(
                        &mut refused,
                        &convert::doc(KIND_BGP_PEER, &name),
                        describe(&error),
                    );
                    documents.peers.len() < before
                }
                Some(Culprit::Node(name)) => {
                    let before = documents.nodes.len();
                    documents.nodes.retain(|node| node.name != name);
                    refuse(
                        &mut refused,
                        &convert::doc(KIND_NODE, &name),
                        describe(&error),
                    );
                    documents.nodes.len() < before
                }
                None => false,
            };
            if !removed {
                return unbuilt(describe(&error), refused);
            }
        }
    }
}

/// Records `object` as refused for `reason`.
fn refuse(refused: &mut BTreeMap<String, String>, object: &DocRef, reason: String) {
    refused.insert(object.to_string(), reason);
}

fn object_of(error: &ObjectError) -> &DocRef {
    match error {
        ObjectError::Decode { object, .. } | ObjectError::NodeAddress { object, .. } => object,
    }
}

/// The one object a refusal can be pinned on, so the rest can apply.
enum Culprit {
    Peer(String),
    /// Another node (this node's own problems refuse the whole).
    Node(String),
}

fn culprit(error: &ConfigError, local: &str) -> Option<Culprit> {
    let ConfigError::Invalid {
        location, problem, ..
    } = error
    else {
        return None;
    };
    // Two nodes of one AS with one router ID: the one that is not us goes
    // (we could never peer with it anyway).
    if let Problem::SameRouterId { node, other, .. } = problem {
        let theirs = if node == local { other } else { node };
        return Some(Culprit::Node(theirs.clone()));
    }
    let document = location.document.as_ref()?;
    let name = document.name.clone()?;
    match document.kind.as_deref() {
        Some(KIND_BGP_PEER) => Some(Culprit::Peer(name)),
        Some(KIND_NODE) if name != local => Some(Culprit::Node(name)),
        _ => None,
    }
}

/// An error as logged and shown: the object, the field and the reason
/// (without the source's name, which every one of them would repeat).
fn describe(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid {
            location, problem, ..
        } => format!("{location}{problem}"),
        other => other.to_string(),
    }
}

/// What the source has said so far, so each refusal is logged and counted
/// once, not at every rebuild.
#[derive(Default)]
struct Tracker {
    refused: BTreeMap<String, String>,
    refused_total: u64,
    unbuilt: Option<String>,
    ignored: BTreeSet<String>,
    built_once: bool,
}

impl Tracker {
    fn publish(&mut self, tx: &watch::Sender<SourceState>, built: Built) {
        if built.ignored != self.ignored {
            debug!(
                ignored = ?built.ignored,
                "BGPConfigurations other than {DEFAULT_BGP_CONFIGURATION:?} are not read"
            );
            self.ignored = built.ignored;
        }
        for (object, reason) in &built.refused {
            if self.refused.get(object) != Some(reason) {
                warn!(%object, error = %reason, "refused; the other objects apply");
                self.refused_total += 1;
            }
        }
        for object in self.refused.keys() {
            if !built.refused.contains_key(object) {
                info!(%object, "no longer refused");
            }
        }
        self.refused = built.refused;
        let config = match built.result {
            Ok(config) => {
                if self.unbuilt.take().is_some() || !self.built_once {
                    info!(
                        peers = config.config.peers.len(),
                        "configuration built from Kubernetes"
                    );
                }
                self.built_once = true;
                Some(config)
            }
            Err(reason) => {
                if self.unbuilt.as_ref() != Some(&reason) {
                    error!(
                        error = %reason,
                        "no configuration from Kubernetes; keeping the running one"
                    );
                    self.refused_total += 1;
                    self.unbuilt = Some(reason);
                }
                None
            }
        };
        tx.send_if_modified(|state| {
            let mut next = SourceState {
                config: state.config.clone(),
                refused_total: self.refused_total,
                refused: self.refused.values().cloned().collect(),
                unbuilt: self.unbuilt.clone(),
            };
            if let Some(config) = config
                && state.config.as_deref() != Some(&config)
            {
                next.config = Some(Arc::new(config));
            }
            if next.same(state) {
                return false;
            }
            *state = next;
            true
        });
    }
}

#[cfg(test)]
mod tests;
