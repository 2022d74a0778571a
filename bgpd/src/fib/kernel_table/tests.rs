// Longest-prefix match and next-hop resolution over a hand-built table.

use std::net::{IpAddr, Ipv6Addr};

use super::*;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hop(gateway: &str, ifindex: u32) -> ResolvedNextHop {
    ResolvedNextHop {
        gateway: ip(gateway),
        ifindex,
    }
}

/// A host with 192.0.2.1/24 on link 2, 198.51.100.1/24 on link 3, a static
/// route to 10.0.0.0/8 via 192.0.2.254 and a default via 198.51.100.254.
fn host(resolve_via_default: bool) -> KernelTable {
    let mut t = KernelTable::new(resolve_via_default);
    t.insert_route(net("192.0.2.0/24"), 0, RouteTarget::Paths(vec![(None, 2)]));
    t.insert_route(
        net("198.51.100.0/24"),
        0,
        RouteTarget::Paths(vec![(None, 3)]),
    );
    t.insert_route(
        net("10.0.0.0/8"),
        0,
        RouteTarget::Paths(vec![(Some(ip("192.0.2.254")), 2)]),
    );
    t.insert_route(
        net("0.0.0.0/0"),
        0,
        RouteTarget::Paths(vec![(Some(ip("198.51.100.254")), 3)]),
    );
    t.insert_local(net("192.0.2.1/32"), RouteTarget::Local);
    t.insert_local(net("198.51.100.1/32"), RouteTarget::Local);
    t
}

#[test]
fn connected_next_hop_resolves_to_itself_on_its_link() {
    let t = host(false);
    assert_eq!(t.resolve(ip("192.0.2.7")), Some(vec![hop("192.0.2.7", 2)]));
    assert_eq!(
        t.resolve(ip("198.51.100.9")),
        Some(vec![hop("198.51.100.9", 3)])
    );
}

#[test]
fn recursive_next_hop_resolves_to_the_gateway() {
    let t = host(false);
    assert_eq!(
        t.resolve(ip("10.20.30.40")),
        Some(vec![hop("192.0.2.254", 2)])
    );
}

#[test]
fn longest_prefix_wins() {
    let mut t = host(false);
    t.insert_route(
        net("10.20.0.0/16"),
        0,
        RouteTarget::Paths(vec![(Some(ip("198.51.100.7")), 3)]),
    );
    assert_eq!(
        t.resolve(ip("10.20.30.40")),
        Some(vec![hop("198.51.100.7", 3)])
    );
    assert_eq!(
        t.resolve(ip("10.21.0.1")),
        Some(vec![hop("192.0.2.254", 2)])
    );
    // Of two routes for one prefix the lower metric counts.
    t.insert_route(net("10.20.0.0/16"), 100, RouteTarget::Unreachable);
    assert_eq!(
        t.resolve(ip("10.20.30.40")),
        Some(vec![hop("198.51.100.7", 3)])
    );
    t.insert_route(net("10.20.0.0/16"), 0, RouteTarget::Unreachable);
    assert_eq!(
        t.resolve(ip("10.20.30.40")),
        Some(vec![hop("198.51.100.7", 3)])
    );
}

#[test]
fn default_route_only_when_allowed() {
    assert_eq!(host(false).resolve(ip("203.0.113.5")), None);
    assert_eq!(
        host(true).resolve(ip("203.0.113.5")),
        Some(vec![hop("198.51.100.254", 3)])
    );
}

#[test]
fn blackhole_unreachable_and_own_addresses_do_not_resolve() {
    let mut t = host(true);
    t.insert_route(net("10.66.0.0/16"), 0, RouteTarget::Unreachable);
    assert_eq!(t.resolve(ip("10.66.1.1")), None);
    // Our own address is no next hop, even inside a connected subnet.
    assert_eq!(t.resolve(ip("192.0.2.1")), None);
}

#[test]
fn multipath_and_nexthop_objects() {
    let mut t = host(false);
    t.insert_route(
        net("172.16.0.0/12"),
        0,
        RouteTarget::Paths(vec![
            (Some(ip("198.51.100.2")), 3),
            (Some(ip("192.0.2.2")), 2),
            (Some(ip("192.0.2.2")), 2),
        ]),
    );
    // Sorted, deduplicated.
    assert_eq!(
        t.resolve(ip("172.16.1.1")),
        Some(vec![hop("192.0.2.2", 2), hop("198.51.100.2", 3)])
    );
    t.insert_nexthop(
        1,
        KernelNexthop::Single {
            gateway: Some(ip("192.0.2.3")),
            ifindex: 2,
        },
    );
    t.insert_nexthop(
        2,
        KernelNexthop::Single {
            gateway: Some(ip("198.51.100.3")),
            ifindex: 3,
        },
    );
    t.insert_nexthop(3, KernelNexthop::Group(vec![1, 2]));
    t.insert_nexthop(4, KernelNexthop::Blackhole);
    t.insert_route(net("10.1.0.0/16"), 0, RouteTarget::Nexthop(3));
    t.insert_route(net("10.2.0.0/16"), 0, RouteTarget::Nexthop(4));
    t.insert_route(net("10.3.0.0/16"), 0, RouteTarget::Nexthop(99));
    assert_eq!(
        t.resolve(ip("10.1.0.1")),
        Some(vec![hop("192.0.2.3", 2), hop("198.51.100.3", 3)])
    );
    assert_eq!(t.resolve(ip("10.2.0.1")), None);
    assert_eq!(t.resolve(ip("10.3.0.1")), None);
}

#[test]
fn paths_over_down_links_are_skipped() {
    let mut t = host(false);
    t.insert_route(
        net("10.20.0.0/16"),
        0,
        RouteTarget::Paths(vec![(Some(ip("198.51.100.7")), 3)]),
    );
    t.set_link(3, false);
    // Falls back to the less specific route over link 2.
    assert_eq!(
        t.resolve(ip("10.20.0.1")),
        Some(vec![hop("192.0.2.254", 2)])
    );
    assert_eq!(t.resolve(ip("198.51.100.9")), None);
    t.set_link(3, true);
    assert_eq!(
        t.resolve(ip("10.20.0.1")),
        Some(vec![hop("198.51.100.7", 3)])
    );
}

#[test]
fn ipv6_lookups() {
    let mut t = KernelTable::new(false);
    t.insert_route(
        net("2001:db8::/64"),
        256,
        RouteTarget::Paths(vec![(None, 5)]),
    );
    t.insert_route(
        net("2001:db8:ff::/48"),
        1024,
        RouteTarget::Paths(vec![(Some(ip("fe80::1")), 5)]),
    );
    t.insert_local(net("2001:db8::1/128"), RouteTarget::Local);
    assert_eq!(
        t.resolve(ip("2001:db8::2")),
        Some(vec![hop("2001:db8::2", 5)])
    );
    assert_eq!(
        t.resolve(ip("2001:db8:ff:1::9")),
        Some(vec![hop("fe80::1", 5)])
    );
    assert_eq!(t.resolve(ip("2001:db8::1")), None);
    assert_eq!(t.resolve(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
    // Families do not mix.
    assert_eq!(t.resolve(ip("192.0.2.1")), None);
    assert_eq!(t.len(), 3);
    assert!(!t.is_empty());
}

#[test]
fn mask_edges() {
    assert_eq!(mask(0xffff_ffff, 0, 32), 0);
    assert_eq!(mask(0xffff_ffff, 32, 32), 0xffff_ffff);
    assert_eq!(mask(0xffff_ffff, 24, 32), 0xffff_ff00);
    assert_eq!(mask(u128::MAX, 0, 128), 0);
    assert_eq!(mask(u128::MAX, 128, 128), u128::MAX);
}

#[test]
fn exact_finds_another_programs_route_for_a_prefix() {
    let mut table = KernelTable::new(false);
    let block = net("10.244.0.64/26");
    table.insert_route(net("10.244.0.0/16"), 0, RouteTarget::Unreachable);
    assert_eq!(
        table.exact(block),
        None,
        "a covering route is not the same prefix"
    );
    let via = RouteTarget::Paths(vec![(Some(ip("192.0.2.9")), 2)]);
    table.insert_route(block, 20, via.clone());
    table.insert_route(block, 0, RouteTarget::Unreachable);
    let (metric, target) = table.exact(block).expect("found");
    assert_eq!(metric, 0, "the lowest metric counts");
    assert_eq!(target.to_string(), "a blackhole or unreachable route");
    assert_eq!(via.to_string(), "a route via 192.0.2.9");
}
