// Cluster topology with Calico's semantics: Node documents (later also
// Kubernetes Nodes), the node-to-node mesh, BGPPeers scoped to nodes by
// `node`/`nodeSelector` and aimed at nodes by `peerSelector`, and route
// reflector roles (RFC 4456) by node cluster ID, resolved into one node's
// plain list of peers. Pure over plain structs (files are read only through
// the `read_file` closure, for `passwordFile`), so any source of nodes can
// use it. Documented in bgpd/CONFIG.md ("Node" and after).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use podroute_labels::Selector;

use super::schema::{AsNumber, BgpPeerSpec, Resource};
use super::validate::{self, Invalid};
use super::{Assembled, BgpConfiguration, Config, DocRef, PeerConfig, Problem};

/// Label or annotation (the annotation wins): the node's AS number.
pub const AS_NUMBER_KEY: &str = "podroute.io/as-number";
/// Annotation: the node's BGP Identifier.
pub const ROUTER_ID_KEY: &str = "podroute.io/router-id";
/// Label or annotation (the annotation wins): the node is a route reflector
/// with this CLUSTER_ID (RFC 4456 §7).
pub const CLUSTER_ID_KEY: &str = "podroute.io/route-reflector-cluster-id";

/// A cluster member (`kind: Node`, or a Kubernetes Node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Where the node was defined, for errors.
    pub doc: DocRef,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// IPv4 and/or IPv6; the first of each family is the node's address in
    /// that family.
    pub addresses: Vec<IpAddr>,
}

/// A BGPPeer document as written (with its `node`, `nodeSelector`,
/// `peerSelector`).
#[derive(Debug, Clone)]
pub struct PeerDocument {
    pub doc: DocRef,
    pub resource: Resource<BgpPeerSpec>,
}

/// Everything one node's configuration is made of.
pub struct Cluster<'a> {
    /// The validated BGPConfiguration; its `router_id` is unspecified when
    /// the document sets none.
    pub bgp: &'a BgpConfiguration,
    pub bgp_doc: &'a DocRef,
    /// `nodeToNodeMeshEnabled`.
    pub mesh: bool,
    pub nodes: &'a [Node],
    pub peers: &'a [PeerDocument],
}

/// A problem and where: the document (if any) and the field.
pub type ResolveError = Box<(Option<DocRef>, String, Problem)>;

/// The configuration of node `local`: its BGPConfiguration (AS, router ID,
/// cluster ID from the node) and every peer that applies to it, with the
/// BGPPeer document each peer comes from (mesh peers: none).
pub fn resolve(
    cluster: &Cluster<'_>,
    local: &str,
    read_file: &impl Fn(&Path) -> io::Result<String>,
) -> Result<Assembled, ResolveError> {
    let facts = node_facts(cluster)?;
    same_router_id(&facts, local)?;
    let Some(me) = facts.iter().find(|f| f.node.name == local) else {
        let problem = Problem::NoSuchNode {
            name: local.to_owned(),
            nodes: node_names(cluster.nodes),
        };
        return Err(Box::new((None, String::new(), problem)));
    };
    let mut bgp = cluster.bgp.clone();
    bgp.as_number = me.as_number;
    bgp.router_id = match me.router_id {
        Some(id) => id,
        None => {
            let problem = Problem::NodeWithoutRouterId {
                node: me.node.name.clone(),
            };
            return Err(Box::new((
                Some(me.node.doc.clone()),
                "spec.addresses".into(),
                problem,
            )));
        }
    };
    // Only a reflector node has a cluster ID (its label): a global one
    // would make every client drop what the reflector sends (RFC 4456 §8).
    if cluster.bgp.cluster_id.is_some() {
        return Err(Box::new((
            Some(cluster.bgp_doc.clone()),
            "spec.routeReflectorClusterID".into(),
            Problem::ClusterIdWithNodes,
        )));
    }
    bgp.cluster_id = me.cluster_id;

    // Mesh first: an explicit BGPPeer for the same address replaces it.
    let mut peers: BTreeMap<IpAddr, (Option<DocRef>, PeerConfig)> = BTreeMap::new();
    if cluster.mesh {
        for other in facts.iter().filter(|f| f.node.name != local) {
            for (mine, theirs) in shared_families(me.node, other.node) {
                let spec = node_session(BgpPeerSpec::default(), me, other, mine, theirs);
                let peer = validate::peer(
                    &bgp,
                    named(&format!("mesh-{}", other.node.name), spec),
                    read_file,
                )
                .map_err(|(field, problem)| {
                    Box::new((Some(cluster.bgp_doc.clone()), field, problem))
                })?;
                peers.insert(peer.address, (None, peer));
            }
        }
    }
    for document in cluster.peers {
        let doc = &document.doc;
        let invalid = |(field, problem): Invalid| Box::new((Some(doc.clone()), field, problem));
        let spec = &document.resource.spec;
        let scope = scope(spec).map_err(invalid)?;
        let name = &document.resource.metadata.name;
        let mut add = |peer: PeerConfig, node: Option<&str>| -> Result<(), ResolveError> {
            if let Some((Some(first), _)) = peers.get(&peer.address) {
                let problem = match node {
                    None => Problem::DuplicatePeer {
                        address: peer.address,
                        first: Box::new(first.clone()),
                    },
                    Some(node) => Problem::DuplicateNodePeer {
                        address: peer.address,
                        node: node.to_owned(),
                        first: Box::new(first.clone()),
                    },
                };
                let field = if node.is_some() {
                    "spec.peerSelector"
                } else {
                    "spec.peerIP"
                };
                return Err(Box::new((Some(doc.clone()), field.into(), problem)));
            }
            peers.insert(peer.address, (Some(doc.clone()), peer));
            Ok(())
        };
        match target(spec).map_err(invalid)? {
            None => {
                if scope.applies(me.node) {
                    let resource = document.resource.clone();
                    let peer = validate::peer(&bgp, resource, read_file).map_err(invalid)?;
                    add(peer, None)?;
                }
            }
            Some(selector) => {
                for other in facts.iter().filter(|f| f.node.name != local) {
                    // Both ends of a node-to-node peering must know it:
                    // Calico's reverse peering.
                    let selected = (scope.applies(me.node) && selector.matches(&other.node.labels))
                        || (scope.applies(other.node) && selector.matches(&me.node.labels));
                    if !selected {
                        continue;
                    }
                    for (mine, theirs) in shared_families(me.node, other.node) {
                        let mut spec = spec.clone();
                        spec.node = None;
                        spec.node_selector = None;
                        spec.peer_selector = None;
                        let spec = node_session(spec, me, other, mine, theirs);
                        let mut resource = document.resource.clone();
                        resource.metadata.name = format!("{name}-{}", other.node.name);
                        resource.spec = spec;
                        let peer = validate::peer(&bgp, resource, read_file).map_err(invalid)?;
                        add(peer, Some(&other.node.name))?;
                    }
                }
            }
        }
    }
    let mut configs = BTreeMap::new();
    let mut peer_sources = BTreeMap::new();
    for (address, (doc, peer)) in peers {
        configs.insert(address, peer);
        if let Some(doc) = doc {
            peer_sources.insert(address, doc);
        }
    }
    Ok(Assembled {
        config: super::settle_cluster_id(Config {
            bgp,
            peers: configs,
        }),
        peer_sources,
    })
}

/// Refuses a BGPPeer's `node`, `nodeSelector` and `peerSelector` in a file
/// without Node documents.
pub(super) fn refuse_node_fields(spec: &BgpPeerSpec) -> Result<(), Invalid> {
    for (set, field) in [
        (spec.node.is_some(), "spec.node"),
        (spec.node_selector.is_some(), "spec.nodeSelector"),
        (spec.peer_selector.is_some(), "spec.peerSelector"),
    ] {
        if set {
            return Err((field.into(), Problem::NeedsNodes));
        }
    }
    Ok(())
}

/// Checks the Node documents themselves: unique names, at least one
/// address.
pub(super) fn check_nodes(nodes: &[Node]) -> Result<(), ResolveError> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for node in nodes {
        if let Some(first) = seen.insert(&node.name, node.doc.index) {
            let problem = Problem::DuplicateNode {
                name: node.name.clone(),
                first,
            };
            return Err(Box::new((
                Some(node.doc.clone()),
                "metadata.name".into(),
                problem,
            )));
        }
        if node.addresses.is_empty() {
            let problem = Problem::NodeWithoutAddress;
            return Err(Box::new((
                Some(node.doc.clone()),
                "spec.addresses".into(),
                problem,
            )));
        }
    }
    Ok(())
}

/// A node with what its labels and annotations say.
struct NodeFacts<'a> {
    node: &'a Node,
    as_number: u32,
    /// None: no annotation, no IPv4 address and no BGPConfiguration routerID.
    router_id: Option<Ipv4Addr>,
    cluster_id: Option<Ipv4Addr>,
}

impl NodeFacts<'_> {
    fn ibgp_with(&self, other: &NodeFacts<'_>) -> bool {
        self.as_number == other.as_number
    }
}

/// Two nodes of one AS with one router ID could never peer (RFC 6286 §2.2:
/// the OPEN is refused as Bad BGP Identifier); IPv6-only nodes that all
/// fall back to the BGPConfiguration's routerID are the usual cause. The
/// local node refuses when it is one of them.
fn same_router_id(facts: &[NodeFacts<'_>], local: &str) -> Result<(), ResolveError> {
    let mut seen: BTreeMap<(u32, Ipv4Addr), &str> = BTreeMap::new();
    for f in facts {
        let Some(id) = f.router_id else { continue };
        // Only the two nodes concerned refuse: the others peer with both.
        if let Some(first) = seen.insert((f.as_number, id), &f.node.name)
            && (first == local || f.node.name == local)
        {
            return Err(Box::new((
                Some(f.node.doc.clone()),
                "metadata.annotations".into(),
                Problem::SameRouterId {
                    node: f.node.name.clone(),
                    other: first.to_owned(),
                    router_id: id,
                },
            )));
        }
    }
    Ok(())
}

fn node_facts<'a>(cluster: &Cluster<'a>) -> Result<Vec<NodeFacts<'a>>, ResolveError> {
    check_nodes(cluster.nodes)?;
    let default_router_id = Some(cluster.bgp.router_id).filter(|id| *id != Ipv4Addr::UNSPECIFIED);
    cluster
        .nodes
        .iter()
        .map(|node| {
            let bad = |field: String, problem: Problem| {
                Box::new((Some(node.doc.clone()), field, problem))
            };
            let as_number = match label_or_annotation(node, AS_NUMBER_KEY) {
                None => cluster.bgp.as_number,
                Some((field, text)) => super::schema::parse_as_number(text)
                    .map_err(|_| Problem::NodeAsNumber(text.to_owned()))
                    .and_then(validate::as_number)
                    .map_err(|p| bad(field, p))?,
            };
            let router_id = match node.annotations.get(ROUTER_ID_KEY) {
                Some(text) => {
                    Some(ipv4(text).map_err(|p| bad(annotation_field(ROUTER_ID_KEY), p))?)
                }
                None => node
                    .addresses
                    .iter()
                    .find_map(|a| match a {
                        IpAddr::V4(v4) => Some(*v4),
                        IpAddr::V6(_) => None,
                    })
                    .or(default_router_id),
            };
            let cluster_id = label_or_annotation(node, CLUSTER_ID_KEY)
                .map(|(field, text)| ipv4(text).map_err(|p| bad(field, p)))
                .transpose()?;
            Ok(NodeFacts {
                node,
                as_number,
                router_id,
                cluster_id,
            })
        })
        .collect()
}

fn label_or_annotation<'n>(node: &'n Node, key: &str) -> Option<(String, &'n str)> {
    if let Some(v) = node.annotations.get(key) {
        return Some((annotation_field(key), v));
    }
    node.labels
        .get(key)
        .map(|v| (format!("metadata.labels[\"{key}\"]"), v.as_str()))
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[\"{key}\"]")
}

fn ipv4(text: &str) -> Result<Ipv4Addr, Problem> {
    text.parse::<Ipv4Addr>()
        .ok()
        .filter(|a| !a.is_unspecified())
        .ok_or_else(|| Problem::NodeIpv4(text.to_owned()))
}

fn node_names(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which nodes a BGPPeer applies to.
enum Scope {
    All,
    Node(String),
    Selector(Selector),
}

impl Scope {
    fn applies(&self, node: &Node) -> bool {
        match self {
            Scope::All => true,
            Scope::Node(name) => *name == node.name,
            Scope::Selector(selector) => selector.matches(&node.labels),
        }
    }
}

fn scope(spec: &BgpPeerSpec) -> Result<Scope, Invalid> {
    match (&spec.node, &spec.node_selector) {
        (Some(_), Some(_)) => Err(("spec.nodeSelector".into(), Problem::NodeAndNodeSelector)),
        (Some(node), None) => Ok(Scope::Node(node.clone())),
        (None, Some(text)) => Selector::parse(text)
            .map(Scope::Selector)
            .map_err(|e| ("spec.nodeSelector".into(), Problem::Selector(e))),
        (None, None) => Ok(Scope::All),
    }
}

/// The peerSelector, or None for a peerIP peer.
fn target(spec: &BgpPeerSpec) -> Result<Option<Selector>, Invalid> {
    let Some(text) = &spec.peer_selector else {
        return Ok(None);
    };
    if spec.peer_ip.is_some() {
        return Err((
            "spec.peerSelector".into(),
            Problem::PeerSelectorWith("peerIP"),
        ));
    }
    if spec.as_number.is_some() {
        return Err((
            "spec.peerSelector".into(),
            Problem::PeerSelectorWith("asNumber"),
        ));
    }
    Selector::parse(text)
        .map(Some)
        .map_err(|e| ("spec.peerSelector".into(), Problem::Selector(e)))
}

/// One session per address family both nodes have: (our address, theirs).
fn shared_families(a: &Node, b: &Node) -> Vec<(IpAddr, IpAddr)> {
    let first = |node: &Node, v4: bool| node.addresses.iter().copied().find(|x| x.is_ipv4() == v4);
    [true, false]
        .into_iter()
        .filter_map(|v4| Some((first(a, v4)?, first(b, v4)?)))
        .collect()
}

/// `spec` aimed at `other` at `theirs`: its AS, our address as source,
/// passive when ours is the higher address (the lower one connects, so the
/// two never collide), a client of ours when we reflect and it is not in
/// our cluster. Values the spec sets itself stay.
fn node_session(
    mut spec: BgpPeerSpec,
    me: &NodeFacts<'_>,
    other: &NodeFacts<'_>,
    mine: IpAddr,
    theirs: IpAddr,
) -> BgpPeerSpec {
    spec.peer_ip = Some(theirs);
    spec.as_number = Some(AsNumber(other.as_number));
    spec.source_address = spec.source_address.or(Some(mine));
    spec.passive = Some(spec.passive.unwrap_or(false) || mine > theirs);
    if spec.route_reflector_client.is_none() {
        let client =
            me.ibgp_with(other) && me.cluster_id.is_some() && other.cluster_id != me.cluster_id;
        spec.route_reflector_client = Some(client);
    }
    spec
}

fn named(name: &str, spec: BgpPeerSpec) -> Resource<BgpPeerSpec> {
    Resource {
        api_version: super::API_VERSION.into(),
        kind: super::KIND_BGP_PEER.into(),
        metadata: super::schema::ObjectMeta {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec,
    }
}

#[cfg(test)]
mod tests;
