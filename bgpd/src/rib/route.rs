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

    pub fn local_pref(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::LocalPref(v) => Some(*v),
            _ => None,
        })
    }

    pub fn med(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::MultiExitDisc(v) => Some(*v),
            _ => None,
        })
    }

    pub fn originator_id(&self) -> Option<std::net::Ipv4Addr> {
        self.attributes.iter().find_map(|a| match a {
            PathAttribute::OriginatorId(v) => Some(*v),
            _ => None,
        })
    }

    pub fn cluster_list_len(&self) -> usize {
        self.attributes
            .iter()
            .find_map(|a| match a {
                PathAttribute::ClusterList(v) => Some(v.len()),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// RFC 4271 §9.1.2.2 (a): an AS_SET counts as one, whatever its size.
    pub fn as_path_len(&self) -> usize {
        self.as_path().map_or(0, |p| {
            p.segments
                .iter()
                .map(|s| match s {
                    AsSegment::Sequence(v) => v.len(),
                    AsSegment::Set(_) => 1,
                })
                .sum()
        })
    }

    /// The AS the path entered through: the first AS of the AS_PATH
    /// (RFC 4271 §9.1.2.2 (c)); None for a path from our own AS.
    pub fn neighbour_as(&self) -> Option<u32> {
        self.as_path()
            .and_then(|p| p.segments.first())
            .and_then(|s| match s {
                AsSegment::Sequence(v) => v.first().copied(),
                AsSegment::Set(_) => None,
            })
    }
}
