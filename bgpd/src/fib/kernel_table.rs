// The kernel's own routes (every protocol but ours) in the FIB's table and
// the local table, their nexthop objects and link states, and longest-prefix
// match over them: how a BGP next hop that is not on a connected subnet is
// resolved recursively (BIRD's `gateway recursive`, FRR's nexthop tracking).
// Pure: the monitor fills it from netlink, tests fill it by hand.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::ResolvedNextHop;

impl std::fmt::Display for RouteTarget {
    /// "a blackhole or unreachable route", "a route via 192.0.2.9", ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Unreachable => f.write_str("a blackhole or unreachable route"),
            RouteTarget::Local => f.write_str("a local route"),
            RouteTarget::Nexthop(id) => write!(f, "a route over nexthop object {id}"),
            RouteTarget::Paths(paths) => match paths.iter().find_map(|(gw, _)| *gw) {
                Some(gateway) => write!(f, "a route via {gateway}"),
                None => f.write_str("a route to a device"),
            },
        }
    }
}

/// Where a kernel route sends packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Over these paths: a path without a gateway is on-link (a connected
    /// route), so the resolved gateway is the looked-up address itself.
    Paths(Vec<(Option<IpAddr>, u32)>),
    /// Over nexthop object `id`.
    Nexthop(u32),
    /// Blackhole, unreachable, prohibit, throw: nothing to resolve through.
    Unreachable,
    /// An address of this host (the local table): a next hop that is
    /// ourselves is no next hop.
    Local,
}

/// A nexthop object of another program (FRR's zebra uses them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelNexthop {
    Single {
        gateway: Option<IpAddr>,
        ifindex: u32,
    },
    Group(Vec<u32>),
    Blackhole,
}

/// Routes by prefix length, longest first; for each, by masked address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PrefixTable {
    by_len: BTreeMap<std::cmp::Reverse<u8>, HashMap<u128, (u32, RouteTarget)>>,
}

impl PrefixTable {
    fn insert(&mut self, key: u128, len: u8, metric: u32, target: RouteTarget) {
        let routes = self.by_len.entry(std::cmp::Reverse(len)).or_default();
        match routes.get(&key) {
            // The kernel uses the lowest metric.
            Some((m, _)) if *m <= metric => {}
            _ => {
                routes.insert(key, (metric, target));
            }
        }
    }

    /// Matching routes, longest prefix first.
    fn matches(&self, addr: u128, bits: u8) -> impl Iterator<Item = (u8, &RouteTarget)> {
        self.by_len.iter().filter_map(move |(len, routes)| {
            routes
                .get(&mask(addr, len.0, bits))
                .map(|(_, target)| (len.0, target))
        })
    }

    fn len(&self) -> usize {
        self.by_len.values().map(HashMap::len).sum()
    }
}

/// A snapshot of the kernel for next-hop resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    resolve_via_default: bool,
    v4: PrefixTable,
    v6: PrefixTable,
    local_v4: PrefixTable,
    local_v6: PrefixTable,
    nexthops: HashMap<u32, KernelNexthop>,
    /// Links that are down (admin down or no carrier).
    down: std::collections::HashSet<u32>,
}

impl KernelTable {
    pub fn new(resolve_via_default: bool) -> KernelTable {
        KernelTable {
            resolve_via_default,
            ..KernelTable::default()
        }
    }

    /// Adds a route of the FIB's table; of several for one prefix the lowest
    /// metric counts.
    pub fn insert_route(&mut self, prefix: IpNetwork, metric: u32, target: RouteTarget) {
        let (key, len) = key(prefix);
        match prefix {
            IpNetwork::V4(_) => self.v4.insert(key, len, metric, target),
            IpNetwork::V6(_) => self.v6.insert(key, len, metric, target),
        }
    }

    /// Adds a route of the local table (looked up first, as the kernel's
    /// rule 0 does).
    pub fn insert_local(&mut self, prefix: IpNetwork, target: RouteTarget) {
        let (key, len) = key(prefix);
        match prefix {
            IpNetwork::V4(_) => self.local_v4.insert(key, len, 0, target),
            IpNetwork::V6(_) => self.local_v6.insert(key, len, 0, target),
        }
    }

    pub fn insert_nexthop(&mut self, id: u32, nexthop: KernelNexthop) {
        self.nexthops.insert(id, nexthop);
    }

    /// Records whether link `ifindex` can carry traffic; paths over a link
    /// that cannot are skipped.
    pub fn set_link(&mut self, ifindex: u32, up: bool) {
        if up {
            self.down.remove(&ifindex);
        } else {
            self.down.insert(ifindex);
        }
    }

    /// Another program's route for exactly `prefix` in the FIB's table, with
    /// its metric (the lowest of several).
    pub fn exact(&self, prefix: IpNetwork) -> Option<(u32, &RouteTarget)> {
        let (key, len) = key(prefix);
        let table = match prefix {
            IpNetwork::V4(_) => &self.v4,
            IpNetwork::V6(_) => &self.v6,
        };
        table
            .by_len
            .get(&std::cmp::Reverse(len))?
            .get(&key)
            .map(|(metric, target)| (*metric, target))
    }

    /// Routes known (FIB table and local table).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len() + self.local_v4.len() + self.local_v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next hops the kernel would use for `addr`: the gateways of the
    /// longest matching usable route, or `addr` itself on the link of a
    /// connected route. None when the best match drops the packet, when
    /// `addr` is one of ours, when nothing matches, or when only the
    /// default route matches and resolving through it is off. Sorted,
    /// deduplicated.
    pub fn resolve(&self, addr: IpAddr) -> Option<Vec<ResolvedNextHop>> {
        let (raw, bits, local, routes) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32, &self.local_v4, &self.v4),
            IpAddr::V6(a) => (u128::from(a), 128, &self.local_v6, &self.v6),
        };
        if local.matches(raw, bits).next().is_some() {
            return None;
        }
        for (len, target) in routes.matches(raw, bits) {
            if len == 0 && !self.resolve_via_default {
                return None;
            }
            match target {
                RouteTarget::Unreachable | RouteTarget::Local => return None,
                RouteTarget::Paths(paths) => {
                    let hops = self.usable(addr, paths.iter().copied());
                    if !hops.is_empty() {
                        return Some(hops);
                    }
                }
                RouteTarget::Nexthop(id) => match self.nexthop_paths(*id) {
                    None => return None,
                    Some(paths) => {
                        let hops = self.usable(addr, paths.into_iter());
                        if !hops.is_empty() {
                            return Some(hops);
                        }
                    }
                },
            }
            // Every path's link is down: the kernel would skip this route.
        }
        None
    }

    /// Paths of nexthop object `id`; None for a blackhole or unknown id.
    fn nexthop_paths(&self, id: u32) -> Option<Vec<(Option<IpAddr>, u32)>> {
        match self.nexthops.get(&id)? {
            KernelNexthop::Blackhole => None,
            KernelNexthop::Single { gateway, ifindex } => Some(vec![(*gateway, *ifindex)]),
            KernelNexthop::Group(members) => Some(
                members
                    .iter()
                    .filter_map(|m| match self.nexthops.get(m)? {
                        KernelNexthop::Single { gateway, ifindex } => Some((*gateway, *ifindex)),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }

    fn usable(
        &self,
        addr: IpAddr,
        paths: impl Iterator<Item = (Option<IpAddr>, u32)>,
    ) -> Vec<ResolvedNextHop> {
        let mut hops: Vec<ResolvedNextHop> = paths
            .filter(|(_, ifindex)| *ifindex != 0 && !self.down.contains(ifindex))
            .map(|(gateway, ifindex)| ResolvedNextHop {
                gateway: gateway.unwrap_or(addr),
                ifindex,
            })
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }
}

fn key(prefix: IpNetwork) -> (u128, u8) {
    match prefix {
        IpNetwork::V4(n) => (
            mask(u128::from(u32::from(n.network())), n.prefix(), 32),
            n.prefix(),
        ),
        IpNetwork::V6(n) => (mask(u128::from(n.network()), n.prefix(), 128), n.prefix()),
    }
}

/// `addr` (of `bits` bits) with everything after the first `len` bits zero.
fn mask(addr: u128, len: u8, bits: u8) -> u128 {
    let host = u32::from(bits.saturating_sub(len));
    if host >= 128 {
        0
    } else {
        addr & !((1u128 << host) - 1)
    }
}

#[cfg(test)]
mod tests;
