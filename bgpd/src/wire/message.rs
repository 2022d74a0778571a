// The five BGP messages as typed values: OPEN (RFC 4271 §4.2, RFC 5492),
// UPDATE (§4.3, with RFC 4760 MP attributes), NOTIFICATION (§4.5),
// KEEPALIVE (§4.4) and ROUTE-REFRESH (RFC 2918, RFC 7313).
//
// These are the logical messages: AS numbers are always 4 octets wide.
// When the session has not negotiated 4-octet AS, the codec translates to
// and from AS_TRANS + AS4_PATH/AS4_AGGREGATOR (RFC 6793 §4.2) itself.

use std::net::Ipv4Addr;

use bytes::Bytes;
use ipnetwork::IpNetwork;

use super::attribute::PathAttribute;
use super::capability::Capability;
use super::family::Family;

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// RFC 4271 §4.2 OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet "My Autonomous System" field as sent: AS_TRANS when the
    /// speaker's AS does not fit (the real one is in `Capability::FourOctetAs`).
    pub my_as: u16,
    /// Seconds; 0 or at least 3 (RFC 4271 §4.2).
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities from every Capabilities optional parameter, in order.
    pub capabilities: Vec<Capability>,
}

/// One NLRI entry: a prefix and, when ADD-PATH (RFC 7911) is negotiated
/// for its family in this direction, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nlri {
    pub path_id: Option<u32>,
    /// Host bits beyond the prefix length are always zero.
    pub prefix: IpNetwork,
}

/// RFC 4271 §4.3 UPDATE. IPv4 unicast may travel in `withdrawn`/`nlri`
/// or in MP_REACH/MP_UNREACH attributes; other families only in the latter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<Nlri>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Nlri>,
    /// Attribute errors handled per RFC 7606 while decoding (empty on
    /// messages we build). Any `TreatAsWithdraw` means every prefix this
    /// UPDATE announces must be handled as withdrawn.
    pub malformed: Vec<MalformedAttribute>,
}

/// An attribute error that did not reset the session (RFC 7606 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedAttribute {
    pub type_code: u8,
    pub action: super::error::ErrorAction,
    /// Human-readable reason, for logs and the admin API.
    pub reason: String,
}

/// RFC 4271 §4.5 NOTIFICATION.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

/// RFC 2918 ROUTE-REFRESH, with the RFC 7313 §3.2 message subtype carried
/// in the octet RFC 2918 reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RouteRefreshSubtype,
}

/// RFC 7313 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRefreshSubtype {
    /// 0: a plain RFC 2918 request.
    Request,
    /// 1: Beginning of Route Refresh.
    BeginningOfRefresh,
    /// 2: End of Route Refresh.
    EndOfRefresh,
    /// 3..=255 (RFC 7313 §5: ignore on receipt).
    Reserved(u8),
}
