// The custom resources of a cluster (API group podroute.io, version v1,
// cluster-scoped): BGPConfiguration and BGPPeer, derived by kube's
// CustomResource from the same spec types the standalone YAML is read into
// (schema.rs), so the CRD schema in deploy/crds/ and the file format cannot
// drift apart (tests/tests/crds.rs checks the YAML against these). A
// BGPPeer's status holds each node's session with it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::schema::{BGPConfiguration, BGPPeer};

/// The BGPConfiguration that applies to every node.
pub const DEFAULT_BGP_CONFIGURATION: &str = "default";

/// `status` of a BGPPeer: the sessions it makes, one per node and peer
/// address (a `peerSelector` makes one per selected node). Each node's
/// bgpd writes only its own entries, by server-side apply with a field
/// manager of its own, so nodes never overwrite each other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerStatus {
    #[serde(default)]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["node", "peerIP"]
    ))]
    pub nodes: Vec<PeerSessionStatus>,
}

/// One node's session with one address of a BGPPeer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerSessionStatus {
    /// The node whose bgpd has this session.
    pub node: String,
    /// The peer's address.
    #[serde(rename = "peerIP")]
    pub peer_ip: String,
    /// RFC 4271 state: Idle, Connect, Active, OpenSent, OpenConfirm,
    /// Established.
    pub state: String,
    /// When the session entered this state (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why the session last went down, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Prefixes the peer sent that import policy accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_accepted: Option<u64>,
    /// Prefixes this node advertises to the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_advertised: Option<u64>,
}

/// The CRDs bgpd reads, as deploy/crds/ holds them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![BGPConfiguration::crd(), BGPPeer::crd()]
}
