// The configuration documents as written: Kubernetes-style resources
// (apiVersion podroute.io/v1, kinds BGPConfiguration and BGPPeer) exactly as
// serde reads them, with every optional field still an Option. validate.rs
// turns them into the resolved types of mod.rs. Documented in bgpd/CONFIG.md.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Serialize};

/// One typed document.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
}

/// The part of Kubernetes' ObjectMeta we read. Other metadata fields (uid,
/// resourceVersion, ...) are ignored so `kubectl get -o yaml` output loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// `kind: BGPConfiguration`: the speaker itself. In a cluster, the one
/// named `default` applies to every node (the node's AS, router ID and
/// route reflector role come from its Node).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, CustomResource)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Each printcolumn repeats `type_ =`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "podroute.io",
    version = "v1",
    kind = "BGPConfiguration",
    plural = "bgpconfigurations",
    shortname = "bgpconfig",
    category = "podroute",
    doc = "podroute-bgpd's cluster-wide BGP settings (bgpd/CONFIG.md); the one named default applies",
    printcolumn(name = "AS", type_ = "string", json_path = ".spec.asNumber"),
    printcolumn(
        name = "Mesh",
        type_ = "boolean",
        json_path = ".spec.nodeToNodeMeshEnabled"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct BgpConfigurationSpec {
    pub as_number: AsNumber,
    /// Optional with `--node` and Node documents (the node's router ID).
    #[serde(rename = "routerID")]
    pub router_id: Option<Ipv4Addr>,
    /// Every pair of Node documents peers (default true).
    pub node_to_node_mesh_enabled: Option<bool>,
    pub listen_port: Option<u16>,
    pub listen_addresses: Option<Vec<IpAddr>>,
    /// Prefixes as strings: parsed in validation so a non-canonical one gets
    /// its canonical form as a hint.
    pub originate: Option<Vec<String>>,
    pub hold_time: Option<u16>,
    pub keepalive_time: Option<u16>,
    pub connect_retry_time: Option<u16>,
    /// Wider than the 1..=64 allowed so an out-of-range value gets our
    /// message rather than serde's.
    pub max_paths: Option<u32>,
    pub kernel_table: Option<u32>,
    /// Cluster defaults for peers without a policy of their own.
    pub import_policy: Option<RoutePolicySpec>,
    pub export_policy: Option<RoutePolicySpec>,
    #[serde(rename = "routeReflectorClusterID")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    pub graceful_restart: Option<GracefulRestartSpec>,
    pub bfd: Option<BfdSpec>,
}

/// `gracefulRestart` (RFC 4724). Numbers wider than stored so an
/// out-of-range value gets our message rather than serde's.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GracefulRestartSpec {
    pub enabled: Option<bool>,
    /// Seconds.
    pub restart_time: Option<u32>,
    /// Seconds.
    pub stale_routes_time: Option<u32>,
}

/// `bfd` (RFC 5880): intervals in milliseconds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdSpec {
    pub enabled: Option<bool>,
    pub min_rx: Option<u32>,
    pub min_tx: Option<u32>,
    pub multiplier: Option<u32>,
}

/// `kind: Node`: a cluster member, standing in for a Kubernetes Node.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

/// `kind: BGPPeer`: one neighbour, or with `peerSelector` a set of nodes.
/// Its status lists each node's session with it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, CustomResource)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Each printcolumn repeats `type_ =`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "podroute.io",
    version = "v1",
    kind = "BGPPeer",
    plural = "bgppeers",
    shortname = "bgpp",
    category = "podroute",
    status = "crate::config::crd::BgpPeerStatus",
    doc = "A BGP neighbour of podroute-bgpd: a router (peerIP, asNumber) or other nodes (peerSelector), on the nodes node or nodeSelector picks (bgpd/CONFIG.md)",
    printcolumn(name = "Peer IP", type_ = "string", json_path = ".spec.peerIP"),
    printcolumn(name = "AS", type_ = "string", json_path = ".spec.asNumber"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(
        name = "Node Selector",
        type_ = "string",
        json_path = ".spec.nodeSelector",
        priority = 1
    ),
    printcolumn(
        name = "Peer Selector",
        type_ = "string",
        json_path = ".spec.peerSelector",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct BgpPeerSpec {
    /// Only on this node (Calico's BGPPeer.node).
    pub node: Option<String>,
    /// Only on nodes whose labels match (text label selector).
    pub node_selector: Option<String>,
    /// Peer with every other node whose labels match; exclusive with
    /// peerIP and asNumber.
    pub peer_selector: Option<String>,
    #[serde(rename = "peerIP")]
    pub peer_ip: Option<IpAddr>,
    pub as_number: Option<AsNumber>,
    pub source_address: Option<IpAddr>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub hold_time: Option<u16>,
    pub keepalive_time: Option<u16>,
    pub connect_retry_time: Option<u16>,
    pub passive: Option<bool>,
    /// Wider than the 1..=255 allowed so an out-of-range value gets our
    /// message rather than serde's.
    pub ebgp_multihop: Option<u32>,
    pub ttl_security: Option<u32>,
    pub families: Option<Vec<String>>,
    pub description: Option<String>,
    pub shutdown: Option<bool>,
    pub shutdown_message: Option<String>,
    pub port: Option<u16>,
    pub next_hop_self: Option<bool>,
    pub import_policy: Option<RoutePolicySpec>,
    pub export_policy: Option<RoutePolicySpec>,
    pub max_prefix: Option<MaxPrefixSpec>,
    pub graceful_restart: Option<GracefulRestartSpec>,
    pub bfd: Option<BfdSpec>,
    pub route_reflector_client: Option<bool>,
}

/// `importPolicy` / `exportPolicy`: ordered rules, then a default.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePolicySpec {
    pub default_action: Option<ActionSpec>,
    pub rules: Option<Vec<PolicyRuleSpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionSpec {
    Accept,
    Reject,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRuleSpec {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<PolicyMatchSpec>,
    pub set: Option<PolicySetSpec>,
    pub action: Option<ActionSpec>,
}

/// Conditions as written; communities and prefixes stay strings so
/// validation can name the bad entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMatchSpec {
    pub prefixes: Option<Vec<PrefixMatchSpec>>,
    pub communities: Option<Vec<String>>,
    pub large_communities: Option<Vec<String>>,
    pub as_path: Option<String>,
    pub next_hop: Option<Vec<String>>,
}

/// A prefix-list entry: `"10.1.0.0/16"` or `{prefix: 10.0.0.0/8, ge: 24,
/// le: 26}`. Lengths are wider than u8 so 300 gets our message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMatchSpec {
    pub prefix: String,
    pub ge: Option<u32>,
    pub le: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySetSpec {
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub add_communities: Option<Vec<String>>,
    pub remove_communities: Option<Vec<String>>,
    pub add_large_communities: Option<Vec<String>>,
    pub remove_large_communities: Option<Vec<String>>,
    pub prepend: Option<PrependSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrependSpec {
    pub count: Option<u32>,
    pub as_number: Option<AsNumber>,
}

/// `maxPrefix`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxPrefixSpec {
    pub limit: u32,
    pub warning_percent: Option<u32>,
    pub action: Option<MaxPrefixActionSpec>,
    pub restart_after: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaxPrefixActionSpec {
    Warn,
    Teardown,
}

impl Serialize for PrefixMatchSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.ge, self.le) {
            (None, None) => s.serialize_str(&self.prefix),
            _ => PrefixRangeRef {
                prefix: &self.prefix,
                ge: self.ge,
                le: self.le,
            }
            .serialize(s),
        }
    }
}

#[derive(Serialize)]
struct PrefixRangeRef<'a> {
    prefix: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ge: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    le: Option<u32>,
}

impl JsonSchema for PrefixMatchSpec {
    fn schema_name() -> Cow<'static, str> {
        "PrefixMatch".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // A string or an object: a structural schema cannot say "one of" for
    // those, so the API server keeps the value as written and bgpd
    // validates it (and names the bad entry).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A prefix (\"10.0.0.0/8\", exact match) or {prefix, ge, le} (lengths from ge to le)",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// The long form of a prefix-list entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixRangeSpec {
    prefix: String,
    ge: Option<u32>,
    le: Option<u32>,
}

impl<'de> Deserialize<'de> for PrefixMatchSpec {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PrefixMatchVisitor)
    }
}

/// A string or a map; by hand rather than `#[serde(untagged)]`, whose
/// error ("did not match any variant") would hide what is wrong.
struct PrefixMatchVisitor;

impl<'de> Visitor<'de> for PrefixMatchVisitor {
    type Value = PrefixMatchSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a prefix (\"10.0.0.0/8\") or {prefix, ge, le}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PrefixMatchSpec, E> {
        Ok(PrefixMatchSpec {
            prefix: v.to_owned(),
            ge: None,
            le: None,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<PrefixMatchSpec, A::Error> {
        let range = PrefixRangeSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(PrefixMatchSpec {
            prefix: range.prefix,
            ge: range.ge,
            le: range.le,
        })
    }
}

/// An AS number as written: a plain integer (`65001`, `4200000001`, or the
/// same quoted) or asdot (`"64086.59905"`, RFC 5396). Unquoted asdot is
/// refused because YAML reads it as a float and `65000.100` would silently
/// become `65000.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsNumber(pub u32);

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AsNumberVisitor)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl JsonSchema for AsNumber {
    fn schema_name() -> Cow<'static, str> {
        "AsNumber".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An AS number: an integer up to 4294967295, or asdot \"high.low\" quoted (RFC 5396)",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            ],
        })
    }
}

struct AsNumberVisitor;

impl Visitor<'_> for AsNumberVisitor {
    type Value = AsNumber;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AS number: an integer up to 4294967295 or quoted asdot \"high.low\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
        u32::try_from(v)
            .map(AsNumber)
            .map_err(|_| E::custom(format!("AS number {v} does not fit in 32 bits")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("AS number {v} is negative")))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AsNumber, E> {
        Err(E::custom(format!(
            "AS number {v} looks like asdot; quote it (\"high.low\") so YAML keeps it as written"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
        parse_as_number(v).map(AsNumber).map_err(E::custom)
    }
}

/// `"65001"` or asdot `"1.10"` (RFC 5396 §1: high and low 16-bit halves).
pub(crate) fn parse_as_number(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not an AS number (integer or asdot \"high.low\")");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('.') {
        None if digits(text) => text.parse::<u32>().map_err(|_| bad()),
        Some((high, low)) if digits(high) && digits(low) => {
            let high: u16 = high.parse().map_err(|_| bad())?;
            let low: u16 = low.parse().map_err(|_| bad())?;
            Ok(u32::from(high) << 16 | u32::from(low))
        }
        _ => Err(bad()),
    }
}
