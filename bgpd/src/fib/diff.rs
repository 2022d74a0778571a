// The reconcile diff: our routes read back from the kernel at a resync are
// stale candidates; a Set identical to the kernel's route is not rewritten,
// a different one replaces it, and whatever is left at sync_done is deleted.
// Pure; the writer feeds it decoded dumps.

use std::collections::HashMap;

use ipnetwork::IpNetwork;

use super::ResolvedNextHop;
use super::message::{RTN_BLACKHOLE, RTN_UNICAST, RouteInfo, Via};

/// What one of our kernel routes points at, enough to compare with a Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaleRoute {
    Blackhole,
    NhId(u32),
    /// Gateways and links, sorted.
    Hops(Vec<ResolvedNextHop>),
    /// Anything we would not have written: always rewritten.
    Other,
}

impl StaleRoute {
    pub(crate) fn from_kernel(route: &RouteInfo) -> StaleRoute {
        match route.kind {
            RTN_BLACKHOLE => StaleRoute::Blackhole,
            RTN_UNICAST => {
                if let Some(id) = route.nh_id {
                    return StaleRoute::NhId(id);
                }
                let hops: Option<Vec<ResolvedNextHop>> = route
                    .paths
                    .iter()
                    .map(|p| {
                        p.gateway.map(|gateway| ResolvedNextHop {
                            gateway,
                            ifindex: p.ifindex,
                        })
                    })
                    .collect();
                match hops {
                    Some(mut hops) if !hops.is_empty() => {
                        hops.sort();
                        hops.dedup();
                        StaleRoute::Hops(hops)
                    }
                    _ => StaleRoute::Other,
                }
            }
            _ => StaleRoute::Other,
        }
    }

    /// Whether writing `via` would leave the kernel's route as it is.
    pub(crate) fn same(&self, via: &Via<'_>) -> bool {
        match (self, via) {
            (StaleRoute::Blackhole, Via::Blackhole) => true,
            (StaleRoute::NhId(a), Via::NhId(b)) => a == b,
            (StaleRoute::Hops(a), Via::Hops(b)) => a[..] == b[..],
            _ => false,
        }
    }
}

/// Our routes the kernel holds that the RIB has not set since the resync.
#[derive(Debug, Default)]
pub(crate) struct Stale {
    routes: HashMap<IpNetwork, StaleRoute>,
    /// Ours with another metric (an older configuration): always deleted.
    extra: Vec<(IpNetwork, u32)>,
}

impl Stale {
    /// Adds a route of ours from the dump; `our_object(id)` tells whether a
    /// nexthop id is one of our objects (a route over anyone else's is
    /// rewritten).
    pub(crate) fn add(&mut self, route: &RouteInfo, metric: u32, our_object: impl Fn(u32) -> bool) {
        if route.metric != metric {
            self.extra.push((route.prefix, route.metric));
            return;
        }
        let mut stale = StaleRoute::from_kernel(route);
        if matches!(stale, StaleRoute::NhId(id) if !our_object(id)) {
            stale = StaleRoute::Other;
        }
        self.routes.insert(route.prefix, stale);
    }

    pub(crate) fn remove(&mut self, prefix: &IpNetwork) -> Option<StaleRoute> {
        self.routes.remove(prefix)
    }

    pub(crate) fn len(&self) -> usize {
        self.routes.len() + self.extra.len()
    }

    /// What to delete: prefixes with our metric, and (prefix, metric) pairs.
    pub(crate) fn into_parts(self) -> (Vec<IpNetwork>, Vec<(IpNetwork, u32)>) {
        (self.routes.into_keys().collect(), self.extra)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::message::PathInfo;
    use super::*;

    fn hop(last: u8, ifindex: u32) -> ResolvedNextHop {
        ResolvedNextHop {
            gateway: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
            ifindex,
        }
    }

    fn kernel(
        prefix: &str,
        kind: u8,
        metric: u32,
        nh_id: Option<u32>,
        paths: &[ResolvedNextHop],
    ) -> RouteInfo {
        RouteInfo {
            prefix: prefix.parse().unwrap(),
            table: 254,
            protocol: 210,
            kind,
            metric,
            nh_id,
            paths: paths
                .iter()
                .map(|h| PathInfo {
                    gateway: Some(h.gateway),
                    ifindex: h.ifindex,
                    flags: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn identical_routes_are_recognised() {
        let nh = kernel("10.0.0.0/24", RTN_UNICAST, 20, Some(7), &[]);
        assert!(StaleRoute::from_kernel(&nh).same(&Via::NhId(7)));
        assert!(!StaleRoute::from_kernel(&nh).same(&Via::NhId(8)));
        assert!(!StaleRoute::from_kernel(&nh).same(&Via::Blackhole));

        let bh = kernel("10.0.0.0/24", RTN_BLACKHOLE, 20, None, &[]);
        assert!(StaleRoute::from_kernel(&bh).same(&Via::Blackhole));

        // Multipath paths come back in kernel order; compared sorted.
        let mp = kernel(
            "10.0.0.0/24",
            RTN_UNICAST,
            20,
            None,
            &[hop(2, 3), hop(1, 3)],
        );
        assert!(StaleRoute::from_kernel(&mp).same(&Via::Hops(&[hop(1, 3), hop(2, 3)])));
        assert!(!StaleRoute::from_kernel(&mp).same(&Via::Hops(&[hop(1, 3)])));
        // A legacy gateway route differs from a nexthop-object one: rewritten.
        assert!(!StaleRoute::from_kernel(&mp).same(&Via::NhId(1)));
    }

    #[test]
    fn odd_routes_are_always_rewritten() {
        let unreachable = kernel("10.0.0.0/24", 7, 20, None, &[]);
        assert_eq!(StaleRoute::from_kernel(&unreachable), StaleRoute::Other);
        let mut dev_only = kernel("10.0.0.0/24", RTN_UNICAST, 20, None, &[]);
        dev_only.paths.push(PathInfo {
            gateway: None,
            ifindex: 2,
            flags: 0,
        });
        assert_eq!(StaleRoute::from_kernel(&dev_only), StaleRoute::Other);
        assert!(!StaleRoute::Other.same(&Via::Blackhole));
    }

    #[test]
    fn stale_set_tracks_what_was_not_set_again() {
        let mut stale = Stale::default();
        stale.add(
            &kernel("10.0.0.0/24", RTN_UNICAST, 20, Some(1), &[]),
            20,
            |_| true,
        );
        stale.add(
            &kernel("10.0.1.0/24", RTN_UNICAST, 20, Some(99), &[]),
            20,
            |id| id == 1,
        );
        stale.add(
            &kernel("10.0.2.0/24", RTN_BLACKHOLE, 20, None, &[]),
            20,
            |_| true,
        );
        stale.add(
            &kernel("10.0.3.0/24", RTN_BLACKHOLE, 30, None, &[]),
            20,
            |_| true,
        );
        assert_eq!(stale.len(), 4);
        // Over someone else's object: never taken as identical.
        assert_eq!(
            stale.remove(&"10.0.1.0/24".parse().unwrap()),
            Some(StaleRoute::Other)
        );
        assert_eq!(
            stale.remove(&"10.0.0.0/24".parse().unwrap()),
            Some(StaleRoute::NhId(1))
        );
        assert_eq!(stale.remove(&"10.0.0.0/24".parse().unwrap()), None);
        let (routes, extra) = stale.into_parts();
        assert_eq!(routes, vec!["10.0.2.0/24".parse::<IpNetwork>().unwrap()]);
        assert_eq!(extra, vec![("10.0.3.0/24".parse().unwrap(), 30)]);
    }
}
