// What the session FSM needs from a peer's configuration, with the
// defaults podroute uses: hold time 90 s (RFC 4271 §10), keepalive a third
// of it, connect retry 5 s, IPv4 and IPv6 unicast (RFC 4760).

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{ExtendedNextHop, Family, GracefulRestart};

/// RFC 4271 §10 suggested HoldTime.
pub const DEFAULT_HOLD_TIME: u16 = 90;

/// Our ConnectRetryTime. RFC 4271 §10 suggests 120 s, which is minutes of
/// black-holed pod traffic after a node restart when the restarted side is
/// passive or its first SYN is lost. A SYN every 5 s to a configured peer
/// costs nothing, and collisions this makes likelier are resolved by §6.8.
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    /// Our BGP Identifier.
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce (RFC 4271 §6.2 Bad Peer AS otherwise).
    pub remote_as: u32,
    /// Seconds, offered in OPEN: 0 (no keepalives, no hold timer) or at
    /// least 3 (RFC 4271 §4.2); 1 and 2 are sent as 3.
    pub hold_time: u16,
    /// Seconds between KEEPALIVEs; `None` means a third of the negotiated
    /// hold time. Never more than a third of it (RFC 4271 §10).
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    /// Never connect out; wait for the peer (RFC 4271 §8.1.1 PassiveTcpEstablishment).
    pub passive: bool,
    /// Families advertised with Multiprotocol capabilities (RFC 4760).
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// Advertised in OPEN (RFC 4724); the restart procedures come later.
    pub graceful_restart: Option<GracefulRestart>,
}

impl SessionConfig {
    /// A configuration with podroute's defaults for everything but the
    /// identities.
    pub fn new(local_as: u32, local_id: Ipv4Addr, remote_as: u32) -> SessionConfig {
        SessionConfig {
            local_as,
            local_id,
            remote_as,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive_time: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            route_refresh: true,
            enhanced_route_refresh: true,
            extended_message: true,
            extended_next_hop: Vec::new(),
            graceful_restart: None,
        }
    }

    /// iBGP (RFC 4271 §3): both ends in the same AS.
    pub fn is_internal(&self) -> bool {
        self.local_as == self.remote_as
    }
}
