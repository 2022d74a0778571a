// Address arithmetic shared by the model and the allocator. Both families are
// handled as u128 numbers (an IPv4 address is its u32 value), so a network is an
// inclusive range [first, last]; nothing here can overflow or panic, whatever the
// prefix (an IPv6 /0 ends at u128::MAX).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use super::Family;

/// The address as a number.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` with number `n`; None when `n` does not fit the family.
pub fn from_u128(family: Family, n: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(n).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// Bits in an address of `family`.
pub fn family_bits(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

/// Mask of the host part of a network of `prefix` in `family` (all ones when the
/// prefix is 0 or out of range).
pub fn host_mask(family: Family, prefix: u8) -> u128 {
    let host_bits = family_bits(family).saturating_sub(prefix);
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// First address of the network (host bits cleared), as a number.
pub fn first(net: &IpNetwork) -> u128 {
    to_u128(net.ip()) & !host_mask(Family::of_net(net), net.prefix())
}

/// Last address of the network, as a number.
pub fn last(net: &IpNetwork) -> u128 {
    first(net) | host_mask(Family::of_net(net), net.prefix())
}

/// Number of addresses in the network, saturating at u128::MAX (an IPv6 /0).
pub fn size(net: &IpNetwork) -> u128 {
    host_mask(Family::of_net(net), net.prefix()).saturating_add(1)
}

/// Number of addresses in a network of `prefix` in `family`, saturating.
pub fn size_of_prefix(family: Family, prefix: u8) -> u128 {
    host_mask(family, prefix).saturating_add(1)
}

/// The network of `prefix` holding `ip` (host bits cleared); None for a prefix too
/// long for the family.
pub fn network_of(ip: IpAddr, prefix: u8) -> Option<IpNetwork> {
    let family = Family::of_ip(ip);
    if prefix > family_bits(family) {
        return None;
    }
    let start = to_u128(ip) & !host_mask(family, prefix);
    IpNetwork::new(from_u128(family, start)?, prefix).ok()
}

/// True when the network's address has no host bits set.
pub fn is_network_address(net: &IpNetwork) -> bool {
    to_u128(net.ip()) & host_mask(Family::of_net(net), net.prefix()) == 0
}

/// `inner` lies wholly inside `outer` (same family).
pub fn is_within(inner: &IpNetwork, outer: &IpNetwork) -> bool {
    Family::of_net(inner) == Family::of_net(outer)
        && first(inner) >= first(outer)
        && last(inner) <= last(outer)
}

/// The two networks share at least one address.
pub fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    Family::of_net(a) == Family::of_net(b) && first(a) <= last(b) && first(b) <= last(a)
}

/// The smallest possible map key among networks starting at address number `n`
/// (prefix 0 sorts first): a lower bound for range walks over sorted networks.
pub fn key_at(family: Family, n: u128) -> Option<IpNetwork> {
    IpNetwork::new(from_u128(family, n)?, 0).ok()
}

/// Sorted, merged, inclusive ranges covered by `nets` clipped to [lo, hi].
pub fn merged_ranges<'a>(
    nets: impl IntoIterator<Item = &'a IpNetwork>,
    family: Family,
    lo: u128,
    hi: u128,
) -> Vec<(u128, u128)> {
    let mut ranges: Vec<(u128, u128)> = nets
        .into_iter()
        .filter(|n| Family::of_net(n) == family)
        .filter_map(|n| {
            let (s, e) = (first(n).max(lo), last(n).min(hi));
            (s <= e).then_some((s, e))
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            // Adjacent or overlapping: one range (s - 1 cannot underflow: s > prev start).
            Some(prev) if s <= prev.1.saturating_add(1) => prev.1 = prev.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Total addresses in merged ranges, saturating.
pub fn ranges_len(ranges: &[(u128, u128)]) -> u128 {
    ranges.iter().fold(0u128, |acc, (s, e)| {
        acc.saturating_add((e - s).saturating_add(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_of_both_families_and_extremes() {
        assert_eq!(first(&net("10.0.0.0/8")), 0x0a00_0000);
        assert_eq!(last(&net("10.0.0.0/8")), 0x0aff_ffff);
        assert_eq!(size(&net("0.0.0.0/0")), 1 << 32);
        assert_eq!(last(&net("::/0")), u128::MAX);
        assert_eq!(size(&net("::/0")), u128::MAX);
        assert_eq!(size(&net("fd00::/122")), 64);
        assert_eq!(size(&net("fd00::1/128")), 1);
        // Host bits in the text do not move the range.
        assert_eq!(first(&net("10.0.0.77/24")), 0x0a00_0000);
        assert!(!is_network_address(&net("10.0.0.77/24")));
        assert!(is_network_address(&net("::/0")));
    }

    #[test]
    fn containment_and_overlap() {
        assert!(is_within(&net("10.0.1.0/26"), &net("10.0.0.0/16")));
        assert!(!is_within(&net("10.0.0.0/16"), &net("10.0.1.0/26")));
        assert!(!is_within(&net("::/128"), &net("0.0.0.0/0")));
        assert!(overlaps(&net("10.0.0.0/8"), &net("10.1.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/25"), &net("10.0.0.128/25")));
    }

    #[test]
    fn network_of_addresses() {
        let ip: IpAddr = "10.244.3.77".parse().unwrap();
        assert_eq!(network_of(ip, 26), Some(net("10.244.3.64/26")));
        assert_eq!(network_of(ip, 33), None);
        let ip6: IpAddr = "fd00::1:ff".parse().unwrap();
        assert_eq!(network_of(ip6, 122), Some(net("fd00::1:c0/122")));
        assert_eq!(network_of(ip6, 0), Some(net("::/0")));
    }

    #[test]
    fn merging_ranges() {
        let nets = [
            net("10.0.0.0/30"),
            net("10.0.0.4/30"),
            net("10.0.0.16/28"),
            net("fd00::/64"),
        ];
        let r = merged_ranges(&nets, Family::V4, 0x0a00_0000, 0x0a00_00ff);
        assert_eq!(
            r,
            vec![(0x0a00_0000, 0x0a00_0007), (0x0a00_0010, 0x0a00_001f)]
        );
        assert_eq!(ranges_len(&r), 24);
        let clipped = merged_ranges(&nets, Family::V4, 0x0a00_0002, 0x0a00_0011);
        assert_eq!(
            clipped,
            vec![(0x0a00_0002, 0x0a00_0007), (0x0a00_0010, 0x0a00_0011)]
        );
    }
}
