// Path attributes (RFC 4271 §4.3, §5) as typed values, with the ones later
// RFCs added: COMMUNITIES (RFC 1997), ORIGINATOR_ID/CLUSTER_LIST (RFC 4456),
// MP_REACH/MP_UNREACH_NLRI (RFC 4760), EXTENDED COMMUNITIES (RFC 4360),
// LARGE_COMMUNITY (RFC 8092). Unknown attributes keep flags and bytes.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;

use super::family::Family;
use super::message::Nlri;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    /// One address, or for IPv6 a global and a link-local one (RFC 2545
    /// §3). An IPv4 family may carry IPv6 next hops (RFC 8950).
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<Nlri>,
}

/// RFC 4760 §4 MP_UNREACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Nlri>,
}

/// An attribute as it was on the wire (extended-length flag aside, which
/// the encoder sets from the value's length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Bytes,
}

impl AsPath {
    /// RFC 4271 §5.1.2: `count` copies of `asn` go first, into the leading
    /// AS_SEQUENCE when it has room for them, else into a new one (the path
    /// starts with an AS_SET, is empty, or its first sequence is full).
    pub fn prepend(&mut self, asn: u32, count: usize) {
        let copies = std::iter::repeat_n(asn, count);
        match self.segments.first_mut() {
            Some(AsSegment::Sequence(asns))
                if asns.len() + count <= super::iana::MAX_AS_SEGMENT_LEN =>
            {
                asns.splice(0..0, copies);
            }
            _ => self
                .segments
                .insert(0, AsSegment::Sequence(copies.collect())),
        }
    }
}

impl PathAttribute {
    /// The attribute type code (IANA "BGP Path Attributes").
    pub fn type_code(&self) -> u8 {
        use super::iana::attr_type;
        match self {
            PathAttribute::Origin(_) => attr_type::ORIGIN,
            PathAttribute::AsPath(_) => attr_type::AS_PATH,
            PathAttribute::NextHop(_) => attr_type::NEXT_HOP,
            PathAttribute::MultiExitDisc(_) => attr_type::MULTI_EXIT_DISC,
            PathAttribute::LocalPref(_) => attr_type::LOCAL_PREF,
            PathAttribute::AtomicAggregate => attr_type::ATOMIC_AGGREGATE,
            PathAttribute::Aggregator(_) => attr_type::AGGREGATOR,
            PathAttribute::Communities(_) => attr_type::COMMUNITIES,
            PathAttribute::OriginatorId(_) => attr_type::ORIGINATOR_ID,
            PathAttribute::ClusterList(_) => attr_type::CLUSTER_LIST,
            PathAttribute::MpReach(_) => attr_type::MP_REACH_NLRI,
            PathAttribute::MpUnreach(_) => attr_type::MP_UNREACH_NLRI,
            PathAttribute::ExtendedCommunities(_) => attr_type::EXTENDED_COMMUNITIES,
            PathAttribute::LargeCommunities(_) => attr_type::LARGE_COMMUNITY,
            PathAttribute::Unknown(raw) => raw.type_code,
        }
    }

    /// The attribute as it goes to the next peer (RFC 4271 §5, §9.1.4):
    /// known attributes unchanged, unknown ones per `RawAttribute::pass_on`.
    pub fn pass_on(&self) -> Option<PathAttribute> {
        match self {
            PathAttribute::Unknown(raw) => raw.pass_on().map(PathAttribute::Unknown),
            known => Some(known.clone()),
        }
    }
}

impl RawAttribute {
    pub fn is_optional(&self) -> bool {
        self.flags & super::iana::attr_flag::OPTIONAL != 0
    }

    pub fn is_transitive(&self) -> bool {
        self.flags & super::iana::attr_flag::TRANSITIVE != 0
    }

    /// RFC 4271 §5: an unrecognized optional transitive attribute travels
    /// on with the Partial bit set; an unrecognized optional
    /// non-transitive one is dropped (`None`), as is a well-known one we do
    /// not know (the decoder refuses those anyway).
    pub fn pass_on(&self) -> Option<RawAttribute> {
        if self.is_optional() && self.is_transitive() {
            Some(RawAttribute {
                flags: self.flags | super::iana::attr_flag::PARTIAL,
                type_code: self.type_code,
                value: self.value.clone(),
            })
        } else {
            None
        }
    }
}
