// Capabilities advertised in OPEN (RFC 5492): multiprotocol (RFC 4760),
// route refresh (RFC 2918), extended next hop (RFC 8950), extended message
// (RFC 8654), graceful restart (RFC 4724), 4-octet AS (RFC 6793), ADD-PATH
// (RFC 7911), enhanced route refresh (RFC 7313). Unknown ones are kept.

use bytes::Bytes;

use super::family::{Afi, Family};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol(Family),
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHop>),
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    AddPath(Vec<AddPathFamily>),
    EnhancedRouteRefresh,
    /// Any other capability, code and value as received.
    Unknown {
        code: u8,
        value: Bytes,
    },
}

/// RFC 8950 §3: NLRI of `family` may carry a next hop of `next_hop_afi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    pub family: Family,
    pub next_hop_afi: Afi,
}

/// RFC 4724 §3.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit (RFC 8538 §2): graceful notification supported.
    pub notification: bool,
    /// Seconds, 12 bits (0..=4095).
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// F bit: forwarding state was preserved.
    pub forwarding_preserved: bool,
}

/// RFC 7911 §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    pub family: Family,
    pub mode: AddPathMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive,
    Send,
    Both,
    /// A value outside 1..=3 (RFC 7911 §4: ignore the family).
    Other(u8),
}
