// Errors from loading a configuration file. Every error names the file, and
// where it can, the document (index and `kind "name"`) and the field path,
// so an operator finds the line to fix without reading our source
// (ARCHITECTURE.md principle 6: a bad file is refused and loses nothing).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// YAML syntax or a type mismatch; serde_yaml_ng's message carries the
    /// line and column.
    #[error("{origin}: {document}: {source}")]
    Yaml {
        origin: String,
        document: DocRef,
        source: serde_yaml_ng::Error,
    },
    /// The documents parse but say something we refuse.
    #[error("{origin}: {location}{problem}")]
    Invalid {
        origin: String,
        /// Boxed: keeps `Result<_, ConfigError>` small on the happy path.
        location: Box<Location>,
        problem: Problem,
    },
}

/// Where in a file a [`Problem`] sits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The document's 1-based index, counting every `---` section.
    pub document: Option<DocRef>,
    /// Dotted field path such as `spec.holdTime`, or empty for the whole
    /// document or file.
    pub field: String,
}

/// A document: its index and, when it parsed that far, its kind and name.
/// An object from the Kubernetes API has index 0 (there is no file), and
/// is shown by its kind and name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRef {
    pub index: usize,
    pub kind: Option<String>,
    pub name: Option<String>,
}

/// What is wrong, independent of where.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("apiVersion {0:?} is not supported (expected \"{api}\")", api = super::API_VERSION)]
    ApiVersion(String),
    #[error("kind {0:?} is not supported (expected BGPConfiguration, BGPPeer or Node)")]
    UnknownKind(String),
    #[error("is required (BGPConfiguration, BGPPeer or Node)")]
    MissingKind,
    #[error("no BGPConfiguration document (exactly one is required)")]
    NoBgpConfiguration,
    #[error("a second BGPConfiguration (the first is document {first}; exactly one is allowed)")]
    SecondBgpConfiguration { first: usize },
    #[error("AS {0} is reserved and cannot be used (RFC 7607, RFC 6793 §9)")]
    ReservedAs(u32),
    #[error("{0} is not a valid BGP Identifier (RFC 6286 §2.1: non-zero)")]
    RouterId(std::net::Ipv4Addr),
    #[error("{0} is not allowed (0 or at least 3, RFC 4271 §4.2)")]
    HoldTime(u16),
    #[error("{keepalive} must be less than holdTime {hold} (RFC 4271 §10 suggests a third)")]
    KeepaliveNotBelowHold { keepalive: u16, hold: u16 },
    #[error("{0} is not allowed when holdTime is 0 (no KEEPALIVEs are sent, RFC 4271 §4.4)")]
    KeepaliveWithoutHold(u16),
    #[error("0 is only allowed together with holdTime 0 (RFC 4271 §4.4)")]
    KeepaliveZero,
    #[error("must be at least 1 second")]
    ZeroSeconds,
    #[error("port 0 cannot be connected to")]
    ZeroPort,
    #[error("{given} has host bits set; write the canonical form {canonical}")]
    NotCanonical { given: String, canonical: String },
    #[error("{given:?} is not an IP prefix: {reason}")]
    BadPrefix { given: String, reason: String },
    #[error("{0} is listed twice")]
    Duplicate(String),
    /// `first` is boxed, here and below: it keeps `Problem` small.
    #[error("peer {address} is already defined by {first}")]
    DuplicatePeer { address: IpAddr, first: Box<DocRef> },
    #[error("peer {address} (node {node:?}) is already defined by {first}")]
    DuplicateNodePeer {
        address: IpAddr,
        node: String,
        first: Box<DocRef>,
    },
    #[error("{0} cannot be a BGP peer (unspecified, multicast or broadcast address)")]
    PeerAddress(IpAddr),
    #[error("{source_address} is not of the same address family as peerIP {peer}")]
    SourceFamily {
        source_address: IpAddr,
        peer: IpAddr,
    },
    #[error("password and passwordFile are mutually exclusive")]
    PasswordAndFile,
    #[error("a TCP MD5 key must be 1 to {max} bytes long, not {len} (RFC 2385, Linux TCP_MD5SIG_MAXKEYLEN)", max = crate::session::transport::MD5_MAX_KEY_LEN)]
    PasswordLength { len: usize },
    #[error("cannot read password file {}: {source}", path.display())]
    PasswordFile { path: PathBuf, source: io::Error },
    #[error("ebgpMultihop and ttlSecurity are mutually exclusive (GTSM fixes the TTL at 255)")]
    MultihopAndTtlSecurity,
    #[error("ebgpMultihop applies to eBGP peers only; this peer's asNumber {0} is our own (iBGP)")]
    MultihopOnIbgp(u32),
    #[error("{0} is out of range (1 to 255 hops)")]
    Hops(u32),
    #[error("unknown family {0:?} (expected ipv4-unicast or ipv6-unicast)")]
    UnknownFamily(String),
    #[error("must list at least one family")]
    NoFamily,
    #[error("is {len} bytes long; at most {max} fit in the NOTIFICATION (RFC 9003 §2)", max = super::SHUTDOWN_MESSAGE_MAX)]
    ShutdownMessageLength { len: usize },
    #[error("{0} is out of range (1 to {max} equal paths)", max = super::MAX_PATHS_LIMIT)]
    MaxPaths(u32),
    #[error("table {0} cannot be used (0 is RT_TABLE_UNSPEC, 255 the kernel's local table)")]
    KernelTable(u32),
    #[error("must list at least one entry (leave the field out to match any)")]
    EmptyList,
    #[error("{value} is longer than an {family} prefix can be (at most {max})")]
    PrefixLengthTooLong {
        value: u32,
        family: &'static str,
        max: u8,
    },
    #[error("{value} is shorter than the prefix's own length {len} (ge and le count from it)")]
    PrefixLengthTooShort { value: u32, len: u8 },
    #[error("ge {ge} is greater than le {le}")]
    GeAboveLe { ge: u8, le: u8 },
    #[error(
        "{0:?} is not a community: write \"A:B\" (each 0 to 65535) or no-export, no-advertise, no-export-subconfed (RFC 1997)"
    )]
    Community(String),
    #[error("{0:?} is not a large community: write \"A:B:C\" (each 0 to 4294967295, RFC 8092)")]
    LargeCommunity(String),
    #[error("{given:?} is not a valid regular expression: {reason}")]
    AsPathRegex { given: String, reason: String },
    #[error("{0} is out of range (1 to {max})", max = super::MAX_PREPEND_COUNT)]
    PrependCount(u32),
    #[error("a rule must have `set` or `action` (this one does nothing)")]
    RuleDoesNothing,
    #[error("must be at least 1")]
    ZeroLimit,
    #[error("{0} is out of range (1 to 100)")]
    WarningPercent(u32),
    #[error("applies to action teardown only (action warn never takes the session down)")]
    RestartAfterWithWarn,
    #[error("{0} is out of range (1 to {max} seconds, RFC 4724 §3)", max = super::MAX_RESTART_TIME)]
    RestartTime(u32),
    #[error("{0} ms is out of range ({min} to {max} ms)", min = super::BFD_INTERVAL_MS_RANGE.start(), max = super::BFD_INTERVAL_MS_RANGE.end())]
    BfdInterval(u32),
    #[error("{0} is out of range (2 to 255)")]
    BfdMultiplier(u32),
    #[error("applies to iBGP peers only (RFC 4456); this peer's asNumber {0} is not our own")]
    ReflectorClientOnEbgp(u32),
    #[error("is required{0}")]
    Required(&'static str),
    #[error("is required without Node documents (with them, the node's router ID is used: its {key} annotation or first IPv4 address)", key = super::cluster::ROUTER_ID_KEY)]
    RouterIdRequired,
    #[error("node {node:?} has no router ID: give it an IPv4 address or a {key} annotation, or set BGPConfiguration routerID", key = super::cluster::ROUTER_ID_KEY)]
    NodeWithoutRouterId { node: String },
    #[error(
        "cannot be set with Node documents: a reflector is a Node labelled podroute.io/route-reflector-cluster-id"
    )]
    ClusterIdWithNodes,
    #[error("node {node:?} has router ID {router_id}, as node {other:?} of the same AS: they could never peer; give one a {key} annotation", key = super::cluster::ROUTER_ID_KEY)]
    SameRouterId {
        node: String,
        other: String,
        router_id: std::net::Ipv4Addr,
    },
    #[error(
        "the file has Node documents ({nodes}); pass --node NAME (or set NODE_NAME) to say which node this speaker is"
    )]
    NodeNotGiven { nodes: String },
    #[error("--node {name:?}: no Node document has this name (Nodes: {nodes})")]
    NoSuchNode { name: String, nodes: String },
    #[error("needs Node documents (and --node); this file has none")]
    NeedsNodes,
    #[error("{0:?} is not an AS number (integer or asdot \"high.low\")")]
    NodeAsNumber(String),
    #[error("{0:?} is not an IPv4 address")]
    NodeIpv4(String),
    #[error("must list at least one address")]
    NodeWithoutAddress,
    #[error("Node {name:?} is already defined by document {first}")]
    DuplicateNode { name: String, first: usize },
    #[error(
        "is exclusive with {0} (the peers are the selected nodes, at their addresses, in their AS)"
    )]
    PeerSelectorWith(&'static str),
    #[error("node and nodeSelector are mutually exclusive")]
    NodeAndNodeSelector,
    #[error(transparent)]
    Selector(#[from] podroute_labels::SelectorError),
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index == 0 {
            // An API object: `BGPPeer "tor1"`.
            return match (&self.kind, &self.name) {
                (Some(kind), Some(name)) => write!(f, "{kind} {name:?}"),
                (Some(kind), None) => f.write_str(kind),
                (None, Some(name)) => write!(f, "{name:?}"),
                (None, None) => f.write_str("an object"),
            };
        }
        write!(f, "document {}", self.index)?;
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name:?})"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, Some(name)) => write!(f, " ({name:?})"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Display for Location {
    /// A prefix for the problem: `document 2 (BGPPeer "tor1"): spec.holdTime: `,
    /// or nothing for a file-wide problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(doc) = &self.document {
            write!(f, "{doc}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        Ok(())
    }
}
