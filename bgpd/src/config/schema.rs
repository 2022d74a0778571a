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
    /// This speaker's AS: an integer or quoted asdot ("64086.59905"). In a
    /// cluster, a node's podroute.io/as-number label or annotation wins.
    pub as_number: AsNumber,
    /// BGP Identifier. Optional with nodes (a node's podroute.io/router-id
    /// annotation, else its first IPv4 address).
    #[serde(rename = "routerID")]
    pub router_id: Option<Ipv4Addr>,
    /// Every pair of nodes peers (default true).
    pub node_to_node_mesh_enabled: Option<bool>,
    /// TCP port for incoming sessions (default 179; 0: do not listen).
    pub listen_port: Option<u16>,
    /// Local addresses to listen on (default 0.0.0.0 and ::).
    pub listen_addresses: Option<Vec<IpAddr>>,
    /// Prefixes announced besides the IPAM blocks, each blackholed locally;
    /// canonical (host bits zero).
    // Strings: parsed in validation so a non-canonical one gets its
    // canonical form as a hint.
    pub originate: Option<Vec<String>>,
    /// Default hold time in seconds (90): 0 (none) or at least 3.
    pub hold_time: Option<u16>,
    /// Default keepalive interval in seconds (holdTime / 3).
    pub keepalive_time: Option<u16>,
    /// Default seconds between connection attempts (5).
    pub connect_retry_time: Option<u16>,
    /// ECMP width, 1 to 64 (8): equal best paths installed as one
    /// multipath route.
    // Wider than allowed so an out-of-range value gets our message rather
    // than serde's.
    pub max_paths: Option<u32>,
    /// Kernel routing table for our routes (254, main); not 0 or 255.
    pub kernel_table: Option<u32>,
    /// Import policy for every peer that has none of its own.
    pub import_policy: Option<RoutePolicySpec>,
    /// Export policy for every peer that has none of its own.
    pub export_policy: Option<RoutePolicySpec>,
    /// CLUSTER_ID when reflecting (RFC 4456). Not with nodes: a node's
    /// podroute.io/route-reflector-cluster-id makes it a reflector.
    #[serde(rename = "routeReflectorClusterID")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// Graceful restart for every peer (on; 120 s restart, 360 s stale).
    pub graceful_restart: Option<GracefulRestartSpec>,
    /// BFD for every peer without its own (off).
    pub bfd: Option<BfdSpec>,
}

/// `gracefulRestart` (RFC 4724).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GracefulRestartSpec {
    /// Advertise the capability and help the peer restart (default true).
    pub enabled: Option<bool>,
    /// Seconds, 1 to 4095: how long peers keep our routes while we restart
    /// (120).
    // Numbers wider than stored so an out-of-range value gets our message
    // rather than serde's.
    pub restart_time: Option<u32>,
    /// Seconds a restarted peer's stale routes wait for its End-of-RIB
    /// (360).
    pub stale_routes_time: Option<u32>,
}

/// `bfd` (RFC 5880): intervals in milliseconds.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdSpec {
    /// false turns off a BFD inherited from the BGPConfiguration (default
    /// true when bfd is given).
    pub enabled: Option<bool>,
    /// Required Min RX Interval, 10 to 60000 ms (300).
    pub min_rx: Option<u32>,
    /// Desired Min TX Interval, 10 to 60000 ms (300).
    pub min_tx: Option<u32>,
    /// Detect Mult, 2 to 255 (3): down after this many intervals without a
    /// packet.
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
        name = "Sessions",
        type_ = "string",
        json_path = ".status.nodes[*].state",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct BgpPeerSpec {
    /// Only on this node.
    pub node: Option<String>,
    /// Only on nodes whose labels match ("rack=r1", "rack in (r1,r2)",
    /// "all()"). Exclusive with node.
    pub node_selector: Option<String>,
    /// Peer with every other node whose labels match, in its AS. Exclusive
    /// with peerIP and asNumber.
    pub peer_selector: Option<String>,
    /// The neighbour's address, IPv4 or IPv6; unique across peers.
    #[serde(rename = "peerIP")]
    pub peer_ip: Option<IpAddr>,
    /// The neighbour's AS (ours makes the session iBGP).
    pub as_number: Option<AsNumber>,
    /// Local address to connect from (default: the kernel's choice).
    pub source_address: Option<IpAddr>,
    /// TCP MD5 key (RFC 2385), 1 to 80 bytes. Prefer passwordFile with a
    /// mounted Secret.
    pub password: Option<String>,
    /// Read the TCP MD5 key from this file (relative paths: the config
    /// file's folder). Exclusive with password.
    pub password_file: Option<PathBuf>,
    /// Hold time in seconds (the BGPConfiguration's).
    pub hold_time: Option<u16>,
    /// Keepalive interval in seconds (holdTime / 3).
    pub keepalive_time: Option<u16>,
    /// Seconds between connection attempts (the BGPConfiguration's).
    pub connect_retry_time: Option<u16>,
    /// Never connect; only accept.
    pub passive: Option<bool>,
    /// TTL, 1 to 255, for an eBGP peer not directly connected. Exclusive
    /// with ttlSecurity.
    // Wider than allowed so an out-of-range value gets our message rather
    // than serde's.
    pub ebgp_multihop: Option<u32>,
    /// GTSM (RFC 5082): the most hops away the peer may be, 1 to 255.
    pub ttl_security: Option<u32>,
    /// Address families: ipv4-unicast, ipv6-unicast (the family of peerIP).
    pub families: Option<Vec<String>>,
    /// Free text shown by podctl bgp peers.
    pub description: Option<String>,
    /// Administratively down.
    pub shutdown: Option<bool>,
    /// Sent in the Cease NOTIFICATION when shut down (RFC 9003, at most 255
    /// bytes).
    pub shutdown_message: Option<String>,
    /// Remote TCP port (179).
    pub port: Option<u16>,
    /// Announce with our address as next hop (eBGP true, iBGP false).
    pub next_hop_self: Option<bool>,
    /// What to accept from this peer (the BGPConfiguration's; without
    /// either, eBGP rejects all and iBGP accepts all).
    pub import_policy: Option<RoutePolicySpec>,
    /// What to announce to this peer (the BGPConfiguration's).
    pub export_policy: Option<RoutePolicySpec>,
    /// Limit on the prefixes accepted from this peer.
    pub max_prefix: Option<MaxPrefixSpec>,
    /// Graceful restart with this peer; missing fields from the
    /// BGPConfiguration's.
    pub graceful_restart: Option<GracefulRestartSpec>,
    /// BFD with this peer; missing fields from the BGPConfiguration's.
    pub bfd: Option<BfdSpec>,
    /// Reflect routes to and from this iBGP peer (RFC 4456).
    pub route_reflector_client: Option<bool>,
}

/// `importPolicy` / `exportPolicy`: ordered rules, then a default.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePolicySpec {
    /// What happens to a route no rule decides (eBGP: reject, iBGP:
    /// accept, RFC 8212).
    pub default_action: Option<ActionSpec>,
    /// Tried in order; the first whose match holds applies.
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
    /// Shown in logs and podctl.
    pub name: Option<String>,
    /// Every condition given must hold (none: every route).
    #[serde(rename = "match")]
    pub matches: Option<PolicyMatchSpec>,
    /// Changes made to a matching route.
    pub set: Option<PolicySetSpec>,
    /// accept or reject; none: apply set and go on to the next rule.
    pub action: Option<ActionSpec>,
}

/// Conditions as written; communities and prefixes stay strings so
/// validation can name the bad entry.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyMatchSpec {
    /// The route's prefix is one of these.
    pub prefixes: Option<Vec<PrefixMatchSpec>>,
    /// The route carries one of these communities ("65000:100",
    /// "no-export").
    pub communities: Option<Vec<String>>,
    /// The route carries one of these large communities ("65000:1:2").
    pub large_communities: Option<Vec<String>>,
    /// A regular expression over the AS path ("^65001_", "_65002$").
    pub as_path: Option<String>,
    /// The next hop is in one of these prefixes.
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
    /// LOCAL_PREF (iBGP).
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    pub add_communities: Option<Vec<String>>,
    pub remove_communities: Option<Vec<String>>,
    pub add_large_communities: Option<Vec<String>>,
    pub remove_large_communities: Option<Vec<String>>,
    /// Prepend an AS to the path, count times.
    pub prepend: Option<PrependSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrependSpec {
    /// 1 to 32 (1).
    pub count: Option<u32>,
    /// The AS to prepend (ours).
    pub as_number: Option<AsNumber>,
}

/// `maxPrefix`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxPrefixSpec {
    /// Most prefixes accepted (after import policy).
    pub limit: u32,
    /// Warn at this share of limit, 1 to 100 (75).
    pub warning_percent: Option<u32>,
    /// Beyond limit: warn, or teardown the session (teardown).
    pub action: Option<MaxPrefixActionSpec>,
    /// With teardown: reconnect after this many seconds (60; 0: stay down).
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
            // Not anyOf [{minimum, maximum}, {pattern}]: a structural
            // schema's anyOf branches carry no type, so each passes every
            // value of the other type. CEL sees the value's type.
            "x-kubernetes-validations": [{
                "rule": "type(self) == int ? (self >= 0 && self <= 4294967295) : self.matches('^[0-9]+(\\\\.[0-9]+)?$')",
                "message": "an AS number: an integer from 0 to 4294967295, or asdot \"high.low\"",
            }],
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
