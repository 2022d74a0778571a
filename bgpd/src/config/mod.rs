// podroute-bgpd's configuration: the BGPConfiguration and BGPPeer resources
// (API group podroute.io, ARCHITECTURE.md principle 4) read from a YAML file
// of `---` separated documents, validated, with every default applied, so
// the rest of the daemon reads plain values. Timers follow RFC 4271 §4.2,
// §4.4 and §10; MD5 RFC 2385; GTSM RFC 5082. Schema: bgpd/CONFIG.md.

pub mod cluster;
pub mod crd;
mod diff;
mod error;
pub mod kube;
pub mod schema;
mod validate;
mod validate_policy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde::Deserialize;

pub use crate::rib::policy::AsPathRegex;
use crate::session::transport::TtlMode;
use crate::wire::{Community, Family, LargeCommunity};

pub use diff::{ConfigChange, GlobalChange, diff};
pub use error::{ConfigError, DocRef, Location, Problem};
pub use podroute_proto::reload::{ReloadTrigger, watch};

/// The only apiVersion we read.
pub const API_VERSION: &str = "podroute.io/v1";
pub const KIND_BGP_CONFIGURATION: &str = "BGPConfiguration";
pub const KIND_BGP_PEER: &str = "BGPPeer";
pub const KIND_NODE: &str = "Node";

/// RFC 4271 §8.2.1 (IANA registered port).
pub const BGP_PORT: u16 = 179;
/// RFC 4271 §10 suggests 90 seconds.
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// RFC 4271 §10 suggests 120 s; pods wait on the routes, so we retry sooner,
/// as Calico's BIRD config does (5 s).
pub const DEFAULT_CONNECT_RETRY_TIME: u16 = 5;
/// A hold time of 1 or 2 seconds is refused: RFC 4271 §4.2.
pub const MIN_HOLD_TIME: u16 = 3;
/// RFC 9003 §2: the Shutdown Communication is at most 255 octets of UTF-8.
pub const SHUTDOWN_MESSAGE_MAX: usize = 255;
/// RFC 4271 §5.1.3 / common practice: an eBGP peer is one hop away unless
/// multihop says otherwise.
pub const EBGP_DEFAULT_TTL: u8 = 1;
/// ECMP width when `maxPaths` is not set (issue 4: default 8).
pub const DEFAULT_MAX_PATHS: usize = 8;
/// Upper bound of `maxPaths`: more equal paths than this is a mistake, and
/// a multipath route of 64 next hops still fits one netlink message.
pub const MAX_PATHS_LIMIT: usize = 64;
/// RT_TABLE_MAIN (linux/rtnetlink.h), where `ip route` looks by default.
pub const DEFAULT_KERNEL_TABLE: u32 = 254;
/// RT_TABLE_UNSPEC and RT_TABLE_LOCAL (linux/rtnetlink.h): not a table we
/// may program (the local table holds the kernel's own local routes).
pub const RESERVED_KERNEL_TABLES: [u32; 2] = [0, 255];
/// maxPrefix `warningPercent` default, as FRR and Cisco IOS.
pub const DEFAULT_MAX_PREFIX_WARNING_PERCENT: u8 = 75;
/// maxPrefix `restartAfter` default in seconds.
pub const DEFAULT_MAX_PREFIX_RESTART_AFTER: u32 = 60;
/// Upper bound of a prepend's `count`: beyond it a path is only longer,
/// and very long paths are filtered by many networks anyway.
pub const MAX_PREPEND_COUNT: u8 = 32;
/// RFC 1997 well-known communities, by the names written in policies.
/// RFC 4724 §3: the Restart Time field has 12 bits.
pub const MAX_RESTART_TIME: u16 = 4095;
/// Restart time advertised and assumed when not set, in seconds (FRR's and
/// BIRD's default).
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// How long a helper keeps a restarted peer's stale routes waiting for its
/// End-of-RIB, in seconds (FRR's `stalepath-time` default).
pub const DEFAULT_STALE_ROUTES_TIME: u32 = 360;
/// BFD intervals when not set, in milliseconds, and the detect multiplier
/// (the 300 ms x 3, also FRR bfdd's default).
pub const DEFAULT_BFD_INTERVAL_MS: u32 = 300;
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;
/// Bounds of a BFD interval in milliseconds: below 10 ms a software
/// implementation cannot keep up (FRR's floor); above a minute BFD is no
/// faster than the hold timer.
pub const BFD_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u32> = 10..=60_000;
pub const WELL_KNOWN_COMMUNITIES: [(&str, Community); 3] = [
    ("no-export", Community(0xFFFF_FF01)),
    ("no-advertise", Community(0xFFFF_FF02)),
    ("no-export-subconfed", Community(0xFFFF_FF03)),
];

/// A validated configuration: one speaker and its peers, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bgp: BgpConfiguration,
    /// Keyed by peer address, which is unique.
    pub peers: BTreeMap<IpAddr, PeerConfig>,
}

/// The speaker (`kind: BGPConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfiguration {
    /// metadata.name.
    pub name: String,
    pub as_number: u32,
    pub router_id: Ipv4Addr,
    /// TCP port to accept sessions on; `None` when listenPort is 0 (only
    /// outgoing connections).
    pub listen_port: Option<u16>,
    /// Addresses to listen on; `0.0.0.0` and `::` when the file lists none.
    pub listen_addresses: Vec<IpAddr>,
    /// Prefixes announced in standalone mode, canonical (host bits zero).
    pub originate: BTreeSet<IpNetwork>,
    /// Defaults for peers that do not set their own, in seconds.
    pub hold_time: u16,
    pub keepalive_time: u16,
    pub connect_retry_time: u16,
    /// ECMP width: at most this many equal best paths are installed as one
    /// multipath kernel route; 1..=MAX_PATHS_LIMIT.
    pub max_paths: usize,
    /// Kernel routing table our routes go into.
    pub kernel_table: u32,
    /// Cluster defaults, already copied into every peer without its own
    /// (see [`PeerConfig::import_policy`]); kept here for display.
    pub import_policy: Option<RoutePolicy>,
    pub export_policy: Option<RoutePolicy>,
    /// RFC 4456 CLUSTER_ID when this speaker reflects routes between its
    /// route reflector clients; `None`: the router ID stands in (RFC 4456
    /// §7) if any peer is a client.
    pub cluster_id: Option<Ipv4Addr>,
    /// Cluster default for peers without a `gracefulRestart` of their own;
    /// `None` when disabled.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Cluster default for peers without a `bfd` of their own; `None`: no
    /// BFD.
    pub bfd: Option<BfdConfig>,
}

/// Graceful restart (RFC 4724) with one peer: we advertise the capability
/// and act as helper when the peer restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartConfig {
    /// Seconds the peer may keep our routes while we restart (the
    /// capability's Restart Time); 1..=MAX_RESTART_TIME.
    pub restart_time: u16,
    /// After the peer's session is back, how long its stale routes wait for
    /// its End-of-RIB before they are swept.
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            restart_time: DEFAULT_RESTART_TIME,
            stale_routes_time: Duration::from_secs(DEFAULT_STALE_ROUTES_TIME.into()),
        }
    }
}

/// Asynchronous single-hop BFD (RFC 5880, 5881) bound to a peer's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BfdConfig {
    /// Required Min RX Interval we announce.
    pub min_rx: Duration,
    /// Desired Min TX Interval we announce.
    pub min_tx: Duration,
    /// Detect Mult: missed packets before the session is declared down.
    pub multiplier: u8,
}

impl Default for BfdConfig {
    fn default() -> Self {
        let interval = Duration::from_millis(DEFAULT_BFD_INTERVAL_MS.into());
        BfdConfig {
            min_rx: interval,
            min_tx: interval,
            multiplier: DEFAULT_BFD_MULTIPLIER,
        }
    }
}

/// One neighbour (`kind: BGPPeer`), with the speaker's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// metadata.name.
    pub name: String,
    pub address: IpAddr,
    /// Remote TCP port to connect to.
    pub port: u16,
    pub as_number: u32,
    /// Local address to connect from; `None` lets the kernel choose.
    pub source_address: Option<IpAddr>,
    /// TCP MD5 key (RFC 2385); `None` for no authentication.
    pub password: Option<Password>,
    /// Seconds; 0 disables the hold timer and keepalives.
    pub hold_time: u16,
    /// Seconds; 0 exactly when `hold_time` is 0.
    pub keepalive_time: u16,
    pub connect_retry_time: u16,
    /// Never connect, only accept.
    pub passive: bool,
    /// How the session's TTL is set and checked (eBGP 1 hop, multihop, GTSM
    /// or the OS default for iBGP).
    pub ttl: TtlMode,
    /// Families to negotiate (RFC 4760); never empty.
    pub families: BTreeSet<Family>,
    pub description: String,
    /// Administratively down, with the RFC 9003 message to send if any.
    pub shutdown: Option<Shutdown>,
    /// Rewrite the next hop to our own address when advertising to this
    /// peer; `None` when not set: [`PeerConfig::next_hop_self`] gives the
    /// default (eBGP yes, iBGP no).
    pub next_hop_self: Option<bool>,
    /// The peer's own `importPolicy`, else the BGPConfiguration's; `None`
    /// when neither sets one: the RFC 8212 default (eBGP reject, iBGP
    /// accept), as `rib::policy::evaluate(None, ..)` applies it.
    pub import_policy: Option<RoutePolicy>,
    /// As `import_policy`, for what we advertise to the peer.
    pub export_policy: Option<RoutePolicy>,
    pub max_prefix: Option<MaxPrefix>,
    /// The peer's own `gracefulRestart`, field by field over the
    /// BGPConfiguration's; `None` when disabled.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// The peer's own `bfd`, else the BGPConfiguration's; `None`: no BFD.
    pub bfd: Option<BfdConfig>,
    /// An iBGP peer we reflect routes to and from (RFC 4456).
    pub route_reflector_client: bool,
}

/// An import or export policy: rules in order, the first `accept` or
/// `reject` decides; a rule without an action applies its `set` and
/// evaluation continues with the changed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    /// For a route no rule decided; `None`: reject on eBGP sessions
    /// (RFC 8212), accept on iBGP ones.
    pub default_action: Option<PolicyAction>,
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    /// For logs and `podctl`; `rules[i]` when not set.
    pub name: String,
    pub matches: PolicyMatch,
    pub set: PolicySet,
    /// `None`: apply `set` and go on with the next rule.
    pub action: Option<PolicyAction>,
}

/// Conditions of a rule: every one that is set must hold (AND); within a
/// list any entry will do (OR). All unset: the rule matches every route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyMatch {
    /// `None`: any prefix.
    pub prefixes: Option<Vec<PrefixMatch>>,
    /// Any of these on the route.
    pub communities: Option<Vec<Community>>,
    pub large_communities: Option<Vec<LargeCommunity>>,
    pub as_path: Option<AsPathRegex>,
    /// Any of the route's next hops inside any of these.
    pub next_hop: Option<Vec<IpNetwork>>,
}

/// A prefix-list entry: routes inside `prefix` whose length is in
/// `ge..=le` (both resolved: without ge/le, exactly the prefix's length;
/// ge alone up to the family's maximum; le alone from the prefix's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixMatch {
    pub prefix: IpNetwork,
    pub ge: u8,
    pub le: u8,
}

/// Changes a rule makes to a matching route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// Ignored in export policies toward eBGP peers, which never receive
    /// LOCAL_PREF (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    /// Removals are applied before additions.
    pub add_communities: Vec<Community>,
    pub remove_communities: Vec<Community>,
    pub add_large_communities: Vec<LargeCommunity>,
    pub remove_large_communities: Vec<LargeCommunity>,
    pub prepend: Option<Prepend>,
}

/// Put `count` copies of an AS in front of the AS_PATH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prepend {
    /// 1..=MAX_PREPEND_COUNT.
    pub count: u8,
    /// `None`: our own AS.
    pub as_number: Option<u32>,
}

/// Maximum number of prefixes accepted from a peer (after import policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaxPrefix {
    pub limit: u32,
    /// Log a warning once the count reaches this share of `limit`; 1..=100.
    pub warning_percent: u8,
    pub action: MaxPrefixAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxPrefixAction {
    /// Log only; routes beyond the limit are still accepted.
    Warn,
    /// Send a Cease NOTIFICATION, subcode 1 "Maximum Number of Prefixes
    /// Reached" (RFC 4486 §4), and stay down for `restart_after`; `None`
    /// (`restartAfter: 0`): until the configuration changes.
    Teardown { restart_after: Option<Duration> },
}

impl MaxPrefix {
    /// The prefix count at which to warn: `warning_percent` of `limit`,
    /// rounded up, at least 1.
    pub fn warning_threshold(&self) -> u32 {
        let threshold = (u64::from(self.limit) * u64::from(self.warning_percent)).div_ceil(100);
        u32::try_from(threshold).unwrap_or(self.limit).max(1)
    }
}

/// Administrative shutdown of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    /// Sent in the Cease NOTIFICATION (RFC 9003); empty for none.
    pub message: String,
}

/// A TCP MD5 key. Debug and Display never show it, so configs can be
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The key itself, for the socket option.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl PeerConfig {
    /// True when the peer is in another AS than `local_as`.
    pub fn is_ebgp(&self, local_as: u32) -> bool {
        self.as_number != local_as
    }

    /// Whether to advertise ourselves as the next hop: as configured, else
    /// toward eBGP peers only (RFC 4271 §5.1.3).
    pub fn next_hop_self(&self, local_as: u32) -> bool {
        self.next_hop_self.unwrap_or(self.is_ebgp(local_as))
    }
}

/// Reads and validates the file at `path`, for a speaker that is no
/// particular Node. A relative `passwordFile` is taken relative to the
/// directory of `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_for(path, None)
}

/// Reads and validates the file at `path` and resolves it for Node `node`
/// (`--node`): its AS, router ID and cluster ID, its mesh and BGPPeer
/// sessions (see [`cluster::resolve`]).
pub fn load_for(path: &Path, node: Option<&str>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("")).to_owned();
    parse_for(&text, &path.display().to_string(), node, |file| {
        std::fs::read_to_string(dir.join(file))
    })
}

/// Parses and validates `text`, naming it `origin` in errors. `read_file`
/// reads a `passwordFile`; tests pass a closure over a map.
pub fn parse(
    text: &str,
    origin: &str,
    read_file: impl Fn(&Path) -> io::Result<String>,
) -> Result<Config, ConfigError> {
    parse_for(text, origin, None, read_file)
}

/// As [`parse`], for Node `node`.
pub fn parse_for(
    text: &str,
    origin: &str,
    node: Option<&str>,
    read_file: impl Fn(&Path) -> io::Result<String>,
) -> Result<Config, ConfigError> {
    let invalid = |document: Option<DocRef>, field: &str, problem: Problem| {
        invalid_in(origin, document, field, problem)
    };

    // Pass 1: kind and apiVersion of every document, leniently, to pick the
    // typed resource and to name documents in errors.
    let mut kinds: Vec<Option<(DocRef, &'static str)>> = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let yaml = |source| ConfigError::Yaml {
            origin: origin.to_owned(),
            document: DocRef {
                index,
                kind: None,
                name: None,
            },
            source,
        };
        let value = serde_yaml_ng::Value::deserialize(document).map_err(yaml)?;
        if value.is_null() {
            // An empty document, e.g. after a trailing `---`.
            kinds.push(None);
            continue;
        }
        let text_at = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let doc = DocRef {
            index,
            kind: text_at("kind"),
            name: value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        };
        match text_at("apiVersion") {
            Some(v) if v == API_VERSION => {}
            Some(v) => return Err(invalid(Some(doc), "apiVersion", Problem::ApiVersion(v))),
            // Missing: the typed pass reports it with its line.
            None => {}
        }
        let kind = match doc.kind.as_deref() {
            Some(KIND_BGP_CONFIGURATION) => KIND_BGP_CONFIGURATION,
            Some(KIND_BGP_PEER) => KIND_BGP_PEER,
            Some(KIND_NODE) => KIND_NODE,
            Some(other) => {
                let problem = Problem::UnknownKind(other.to_owned());
                return Err(invalid(Some(doc), "kind", problem));
            }
            None => return Err(invalid(Some(doc), "kind", Problem::MissingKind)),
        };
        kinds.push(Some((doc, kind)));
    }

    // Pass 2: the typed resources. Deserializing from the whole text again
    // keeps serde's line and column numbers exact.
    let mut bgp: Option<(DocRef, schema::Resource<schema::BgpConfigurationSpec>)> = None;
    let mut peers = Vec::new();
    let mut nodes = Vec::new();
    let documents = serde_yaml_ng::Deserializer::from_str(text);
    for (document, kind) in documents.zip(kinds) {
        let Some((doc, kind)) = kind else { continue };
        let yaml = |source| ConfigError::Yaml {
            origin: origin.to_owned(),
            document: doc.clone(),
            source,
        };
        if kind == KIND_BGP_CONFIGURATION {
            let resource = schema::Resource::deserialize(document).map_err(yaml)?;
            if let Some((first, _)) = &bgp {
                let problem = Problem::SecondBgpConfiguration { first: first.index };
                return Err(invalid(Some(doc), "", problem));
            }
            bgp = Some((doc, resource));
        } else if kind == KIND_NODE {
            let resource: schema::Resource<schema::NodeSpec> =
                schema::Resource::deserialize(document).map_err(yaml)?;
            nodes.push(cluster::Node {
                doc,
                name: resource.metadata.name,
                labels: resource.metadata.labels,
                annotations: resource.metadata.annotations,
                addresses: resource
                    .spec
                    .addresses
                    .iter()
                    .map(|a| a.to_canonical())
                    .collect(),
            });
        } else {
            let resource: schema::Resource<schema::BgpPeerSpec> =
                schema::Resource::deserialize(document).map_err(yaml)?;
            peers.push((doc, resource));
        }
    }

    let Some(bgp) = bgp else {
        return Err(invalid(None, "", Problem::NoBgpConfiguration));
    };
    let peers = peers
        .into_iter()
        .map(|(doc, resource)| cluster::PeerDocument { doc, resource })
        .collect();
    let documents = Documents { bgp, nodes, peers };
    assemble(&documents, node, origin, &read_file).map(|assembled| assembled.config)
}

/// The resources a configuration is made of, from whichever source: a
/// file's documents or the Kubernetes API's objects (config/kube/).
#[derive(Debug, Clone)]
pub struct Documents {
    /// The BGPConfiguration, and where it was defined.
    pub bgp: (DocRef, schema::Resource<schema::BgpConfigurationSpec>),
    pub nodes: Vec<cluster::Node>,
    pub peers: Vec<cluster::PeerDocument>,
}

/// A validated configuration and, for each of its peers that a BGPPeer
/// made, that BGPPeer (mesh sessions have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub config: Config,
    pub peer_sources: BTreeMap<IpAddr, DocRef>,
}

/// Validates `documents` and resolves them for Node `node`: with Node
/// documents, its AS, router ID, cluster ID, mesh and BGPPeer sessions
/// (see [`cluster::resolve`]); without, a single speaker (`routerID`
/// required). Errors name `origin`, the document and the field.
pub fn assemble(
    documents: &Documents,
    node: Option<&str>,
    origin: &str,
    read_file: &impl Fn(&Path) -> io::Result<String>,
) -> Result<Assembled, ConfigError> {
    let invalid = |document: Option<DocRef>, field: &str, problem: Problem| {
        invalid_in(origin, document, field, problem)
    };
    let (bgp_doc, bgp_resource) = &documents.bgp;
    let mesh = bgp_resource.spec.node_to_node_mesh_enabled.unwrap_or(true);
    let router_id_given = bgp_resource.spec.router_id.is_some();
    let bgp = validate::bgp_configuration(bgp_resource.clone())
        .map_err(|(field, problem)| invalid(Some(bgp_doc.clone()), &field, problem))?;

    let nodes = &documents.nodes;
    if !nodes.is_empty() {
        cluster::check_nodes(nodes).map_err(|e| invalid(e.0, &e.1, e.2))?;
        let Some(node) = node else {
            let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            let problem = Problem::NodeNotGiven {
                nodes: names.join(", "),
            };
            return Err(invalid(None, "", problem));
        };
        let input = cluster::Cluster {
            bgp: &bgp,
            bgp_doc,
            mesh,
            nodes,
            peers: &documents.peers,
        };
        return cluster::resolve(&input, node, read_file).map_err(|e| invalid(e.0, &e.1, e.2));
    }
    // A single speaker: no Node documents (a --node name is then only this
    // node's name for IPAM).
    if !router_id_given {
        return Err(invalid(
            Some(bgp_doc.clone()),
            "spec.routerID",
            Problem::RouterIdRequired,
        ));
    }
    let mut by_address: BTreeMap<IpAddr, (DocRef, PeerConfig)> = BTreeMap::new();
    for cluster::PeerDocument { doc, resource } in &documents.peers {
        cluster::refuse_node_fields(&resource.spec)
            .map_err(|(field, problem)| invalid(Some(doc.clone()), &field, problem))?;
        let peer = validate::peer(&bgp, resource.clone(), read_file)
            .map_err(|(field, problem)| invalid(Some(doc.clone()), &field, problem))?;
        if let Some((first, _)) = by_address.get(&peer.address) {
            let problem = Problem::DuplicatePeer {
                address: peer.address,
                first: Box::new(first.clone()),
            };
            return Err(invalid(Some(doc.clone()), "spec.peerIP", problem));
        }
        by_address.insert(peer.address, (doc.clone(), peer));
    }
    let mut peers = BTreeMap::new();
    let mut peer_sources = BTreeMap::new();
    for (address, (doc, peer)) in by_address {
        peers.insert(address, peer);
        peer_sources.insert(address, doc);
    }
    Ok(Assembled {
        config: settle_cluster_id(Config { bgp, peers }),
        peer_sources,
    })
}

/// A problem at `field` of `document` (none: the whole) of `origin`.
fn invalid_in(
    origin: &str,
    document: Option<DocRef>,
    field: &str,
    problem: Problem,
) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_owned(),
        location: Box::new(Location {
            document,
            field: field.to_owned(),
        }),
        problem,
    }
}

/// A speaker with route reflector clients and no `routeReflectorClusterID`
/// uses its router ID (RFC 4456 §7). After this, `bgp.cluster_id` is set
/// exactly when the speaker reflects: only then does it check CLUSTER_LIST
/// for loops (RFC 4456 §8).
fn settle_cluster_id(mut config: Config) -> Config {
    if config.bgp.cluster_id.is_none() && config.peers.values().any(|p| p.route_reflector_client) {
        config.bgp.cluster_id = Some(config.bgp.router_id);
    }
    config
}

#[cfg(test)]
mod tests;
