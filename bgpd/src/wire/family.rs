// Address families: AFI (IANA "Address Family Numbers") and SAFI (IANA
// "SAFI Values", RFC 4760 §6). Unknown values are representable so a
// capability or MP attribute for a family we do not speak can be kept and
// shown rather than rejected.

use std::fmt;

/// Address Family Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// An (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    };
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
    };

    pub const fn new(afi: Afi, safi: Safi) -> Family {
        Family { afi, safi }
    }
}

impl fmt::Display for Family {
    /// `ipv4-unicast`, `ipv6-unicast`, or `afi-25/safi-70` for others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Family::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family {
                afi: Afi::IPV4,
                safi: Safi::MULTICAST,
            } => f.write_str("ipv4-multicast"),
            Family {
                afi: Afi::IPV6,
                safi: Safi::MULTICAST,
            } => f.write_str("ipv6-multicast"),
            Family { afi, safi } => write!(f, "afi-{}/safi-{}", afi.0, safi.0),
        }
    }
}
