// Capabilities advertised in OPEN (RFC 5492): multiprotocol (RFC 4760),
// route refresh (RFC 2918), extended next hop (RFC 8950), extended message
// (RFC 8654), graceful restart (RFC 4724), 4-octet AS (RFC 6793), ADD-PATH
// (RFC 7911), enhanced route refresh (RFC 7313). Unknown ones are kept.

use std::fmt;

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

impl fmt::Display for Capability {
    /// One line for operators: `4-octet-as(4200000001)`,
    /// `multiprotocol(ipv6-unicast)`, `unknown(code 73, 5 bytes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Multiprotocol(family) => write!(f, "multiprotocol({family})"),
            Capability::RouteRefresh => f.write_str("route-refresh"),
            Capability::ExtendedNextHop(entries) => {
                f.write_str("extended-next-hop(")?;
                for (i, entry) in entries.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(
                        f,
                        "{separator}{} via {}",
                        entry.family,
                        afi_name(entry.next_hop_afi)
                    )?;
                }
                f.write_str(")")
            }
            Capability::ExtendedMessage => f.write_str("extended-message"),
            Capability::GracefulRestart(restart) => {
                write!(f, "graceful-restart(time {}s", restart.restart_time)?;
                if restart.restarting {
                    f.write_str(", restarting")?;
                }
                if restart.notification {
                    f.write_str(", notification")?;
                }
                for family in &restart.families {
                    write!(f, ", {}", family.family)?;
                    if family.forwarding_preserved {
                        f.write_str(" forwarding-preserved")?;
                    }
                }
                f.write_str(")")
            }
            Capability::FourOctetAs(asn) => write!(f, "4-octet-as({asn})"),
            Capability::AddPath(families) => {
                f.write_str("add-path(")?;
                for (i, entry) in families.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    let mode = match entry.mode {
                        AddPathMode::Receive => "receive".to_string(),
                        AddPathMode::Send => "send".to_string(),
                        AddPathMode::Both => "send/receive".to_string(),
                        AddPathMode::Other(mode) => format!("mode {mode}"),
                    };
                    write!(f, "{separator}{} {mode}", entry.family)?;
                }
                f.write_str(")")
            }
            Capability::EnhancedRouteRefresh => f.write_str("enhanced-route-refresh"),
            Capability::Unknown { code, value } => {
                write!(f, "unknown(code {code}, {} bytes)", value.len())
            }
        }
    }
}

fn afi_name(afi: Afi) -> String {
    match afi {
        Afi::IPV4 => "ipv4".to_string(),
        Afi::IPV6 => "ipv6".to_string(),
        Afi(other) => format!("afi-{other}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::wire::family::Safi;

    #[test]
    fn display_names_capabilities_for_operators() {
        let shown = |c: Capability| c.to_string();
        assert_eq!(
            shown(Capability::FourOctetAs(4200000001)),
            "4-octet-as(4200000001)"
        );
        assert_eq!(
            shown(Capability::Multiprotocol(Family::IPV6_UNICAST)),
            "multiprotocol(ipv6-unicast)"
        );
        assert_eq!(
            shown(Capability::Unknown {
                code: 73,
                value: Bytes::from_static(b"host1")
            }),
            "unknown(code 73, 5 bytes)"
        );
        assert_eq!(shown(Capability::RouteRefresh), "route-refresh");
        assert_eq!(
            shown(Capability::ExtendedNextHop(vec![ExtendedNextHop {
                family: Family::IPV4_UNICAST,
                next_hop_afi: Afi::IPV6,
            }])),
            "extended-next-hop(ipv4-unicast via ipv6)"
        );
        assert_eq!(
            shown(Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: true,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            })),
            "graceful-restart(time 120s, restarting, notification, ipv4-unicast forwarding-preserved)"
        );
        assert_eq!(
            shown(Capability::AddPath(vec![
                AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    mode: AddPathMode::Both,
                },
                AddPathFamily {
                    family: Family::new(Afi(25), Safi(70)),
                    mode: AddPathMode::Other(9),
                },
            ])),
            "add-path(ipv4-unicast send/receive, afi-25/safi-70 mode 9)"
        );
    }
}
