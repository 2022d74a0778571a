// Path attributes (RFC 4271 §4.3, §5) as typed values, with the ones later
// RFCs added: COMMUNITIES (RFC 1997), ORIGINATOR_ID/CLUSTER_LIST (RFC 4456),
// MP_REACH/MP_UNREACH_NLRI (RFC 4760), EXTENDED COMMUNITIES (RFC 4360),
// LARGE_COMMUNITY (RFC 8092). Unknown attributes keep flags and bytes.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;

use super::family::Family;
use super::message::Nlri;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathAttribute {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator(Aggregator),
    Communities(Vec<Community>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<Ipv4Addr>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    ExtendedCommunities(Vec<ExtendedCommunity>),
    LargeCommunities(Vec<LargeCommunity>),
    /// An attribute we do not interpret, kept with its flags so an optional
    /// transitive one can be passed on with the partial bit set.
    Unknown(RawAttribute),
}

/// RFC 4271 §5.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

/// RFC 4271 §4.3 AS_PATH with 4-octet AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

/// RFC 4271 §5.1.7 (4-octet AS form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// RFC 1997: high 16 bits AS, low 16 bits value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

/// RFC 4360: eight octets, type and subtype first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

/// RFC 8092 §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

/// RFC 4760 §3 MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub family: Family,
    /// One address, or for IPv6 a global and a link-local one (RFC 2545
    /// §3). An IPv4 family may carry IPv6 next hops (RFC 8950).
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<Nlri>,
}

/// RFC 4760 §4 MP_UNREACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

/// An attribute as it was on the wire (extended-length flag aside, which
/// the encoder sets from the value's length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Bytes,
}
