// Interface addresses over rtnetlink (RTM_NEWADDR/GETADDR, rtnetlink(7)):
// the pod's /32 and /128 and the host veth's fe80 address, IPv6 ones without
// duplicate address detection (IFA_F_NODAD) so they are usable at once.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};

impl Netlink {
    /// Adds `addr` (e.g. 10.0.0.5/32) to link `index`. `nodad` sets
    /// IFA_F_NODAD (IPv6). An address that is already there is Ok.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpNetwork,
        nodad: bool,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(addr.ip());
        msg.header.prefix_len = addr.prefix();
        msg.header.scope = AddressScope::Universe;
        msg.header.index = index;
        if nodad {
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
        // As iproute2 does: IFA_LOCAL is the address, IFA_ADDRESS the same
        // (it would be the peer's on a point-to-point link).
        msg.attributes = vec![
            AddressAttribute::Local(addr.ip()),
            AddressAttribute::Address(addr.ip()),
        ];
        if nodad {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.request(
            &|| format!("add address {addr} to link #{index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The addresses of link `index`, IPv4 and IPv6; none when the link
    /// does not exist.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
        let mut msg = AddressMessage::default();
        // Strict dump checking filters by interface in the kernel, which
        // answers ENODEV for a missing one (neighbour dumps just find none).
        msg.header.index = index;
        let answers = match self.dump(
            &|| format!("list addresses of link #{index}"),
            RouteNetlinkMessage::GetAddress(msg),
        ) {
            Ok(answers) => answers,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewAddress(msg) if msg.header.index == index => {
                    address_from(&msg)
                }
                _ => None,
            })
            .collect())
    }
}

pub(crate) fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The interface's own address: IFA_LOCAL, else IFA_ADDRESS (IPv6 only
/// sends that one).
fn address_from(msg: &AddressMessage) -> Option<IpNetwork> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    IpNetwork::new(local.or(address)?, msg.header.prefix_len).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wins_over_peer() {
        let mut msg = AddressMessage::default();
        msg.header.prefix_len = 32;
        msg.attributes = vec![
            AddressAttribute::Address("10.0.0.2".parse().unwrap()),
            AddressAttribute::Local("10.0.0.1".parse().unwrap()),
        ];
        assert_eq!(address_from(&msg), Some("10.0.0.1/32".parse().unwrap()));

        msg.header.prefix_len = 64;
        msg.attributes = vec![AddressAttribute::Address("fe80::1".parse().unwrap())];
        assert_eq!(address_from(&msg), Some("fe80::1/64".parse().unwrap()));

        // A prefix longer than the address allows is dropped, not a panic.
        msg.header.prefix_len = 200;
        assert_eq!(address_from(&msg), None);
        msg.attributes.clear();
        assert_eq!(address_from(&msg), None);
    }
}
