// A route as the RIBs hold it: prefix (with its ADD-PATH id), the path
// attributes other than the MP_REACH/MP_UNREACH carriers, and next hops
// taken from NEXT_HOP or MP_REACH_NLRI (RFC 4760 §3). Attribute sets are
// shared between the prefixes of one UPDATE.

use std::net::IpAddr;
use std::sync::Arc;

use crate::wire::{AsSegment, Nlri, Origin, PathAttribute};

/// The attributes of a path, shared by every prefix announced with them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// Every attribute except NEXT_HOP, MP_REACH_NLRI and MP_UNREACH_NLRI,
    /// in the order received.
    pub attributes: Vec<PathAttribute>,
    /// One next hop, or for IPv6 a global and a link-local one.
    pub next_hops: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub nlri: Nlri,
    pub path: Arc<PathAttributes>,
}

impl PathAttributes {
    pub fn origin(&self) -> Option<Origin> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::Origin(o) => Some(*o),
            _ => None,
        })
    }

    pub fn as_path(&self) -> Option<&crate::wire::AsPath> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::AsPath(p) => Some(p),
            _ => None,
        })
    }

    /// Whether `asn` appears anywhere in the AS_PATH (RFC 4271 §9.1.2 loop
    /// detection).
    pub fn as_path_contains(&self, asn: u32) -> bool {
        self.as_path().is_some_and(|p| {
            p.segments.iter().any(|s| match s {
                AsSegment::Sequence(v) | AsSegment::Set(v) => v.contains(&asn),
            })
        })
    }
}
