// Connection collision resolution, RFC 4271 §6.8 with the RFC 6286 §2.3
// tie-break: of two connections with one peer, the one opened by the
// speaker with the higher BGP Identifier (compared as unsigned 32-bit
// integers; on a tie, the higher AS number) survives.

use std::net::Ipv4Addr;

use super::Direction;

/// Which connection survives a collision between our outgoing connection
/// and the peer's incoming one.
pub(crate) fn survivor(
    local_id: Ipv4Addr,
    local_as: u32,
    remote_id: Ipv4Addr,
    remote_as: u32,
) -> Direction {
    let local = (u32::from(local_id), local_as);
    let remote = (u32::from(remote_id), remote_as);
    if local > remote {
        Direction::Outgoing
    } else {
        Direction::Incoming
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_identifier_keeps_its_connection() {
        let low = Ipv4Addr::new(10, 0, 0, 1);
        let high = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(survivor(low, 65001, high, 65001), Direction::Incoming);
        assert_eq!(survivor(high, 65001, low, 65001), Direction::Outgoing);
    }

    #[test]
    fn identifiers_compare_as_unsigned_integers() {
        // 200.0.0.1 > 100.0.0.1 as u32, though a signed compare would flip it.
        let big = Ipv4Addr::new(200, 0, 0, 1);
        let small = Ipv4Addr::new(100, 0, 0, 1);
        assert_eq!(survivor(big, 1, small, 1), Direction::Outgoing);
    }

    #[test]
    fn equal_identifiers_fall_back_to_the_as_number() {
        let id = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(survivor(id, 65002, id, 65001), Direction::Outgoing);
        assert_eq!(survivor(id, 65001, id, 65002), Direction::Incoming);
    }
}
