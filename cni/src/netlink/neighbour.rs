// Neighbour entries over rtnetlink (RTM_NEWNEIGH/GETNEIGH, rtnetlink(7),
// arp(7), RFC 4861): the pod's permanent ARP / NDP entry for its gateway, so
// it never has to resolve the fixed gateway address through the veth.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};

use super::address::family_of;
use super::{Mac, Netlink, NetlinkError};

/// A neighbour entry: the IP address, its link-layer address when known,
/// and whether it is NUD_PERMANENT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<Mac>,
    pub permanent: bool,
}

impl Netlink {
    /// NUD_PERMANENT entry ip → mac on `index`, replacing any other.
    pub fn replace_permanent_neighbour(
        &mut self,
        index: u32,
        ip: IpAddr,
        mac: Mac,
    ) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::from(ip)),
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
        ];
        self.request(
            &|| format!("replace neighbour {ip} on link #{index}"),
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Neighbour entries on `index`, IPv4 and IPv6; none when the link does
    /// not exist.
    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>, NetlinkError> {
        let mut msg = NeighbourMessage::default();
        // Strict dump checking filters by NDA_IFINDEX in the kernel.
        msg.attributes = vec![NeighbourAttribute::IfIndex(index)];
        let answers = self.dump(
            &|| format!("list neighbours of link #{index}"),
            RouteNetlinkMessage::GetNeighbour(msg),
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewNeighbour(msg) if msg.header.ifindex == index => {
                    neighbour_from(&msg)
                }
                _ => None,
            })
            .collect())
    }
}

/// A dumped entry with an IP destination.
fn neighbour_from(msg: &NeighbourMessage) -> Option<Neighbour> {
    let mut ip = None;
    let mut mac = None;
    for attribute in &msg.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                ip = Some(IpAddr::V4(*v4))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                ip = Some(IpAddr::V6(*v6))
            }
            NeighbourAttribute::LinkLayerAddress(address) => {
                mac = Mac::try_from(address.as_slice()).ok()
            }
            _ => {}
        }
    }
    Some(Neighbour {
        ip: ip?,
        mac,
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumped_entries() {
        let mut msg = NeighbourMessage::default();
        msg.header.state = NeighbourState::Permanent;
        msg.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::from(
                "169.254.1.1".parse::<IpAddr>().unwrap(),
            )),
            NeighbourAttribute::LinkLayerAddress(vec![0xee; 6]),
        ];
        assert_eq!(
            neighbour_from(&msg),
            Some(Neighbour {
                ip: "169.254.1.1".parse().unwrap(),
                mac: Some([0xee; 6]),
                permanent: true,
            })
        );
        // An incomplete entry has no link-layer address yet.
        msg.header.state = NeighbourState::Incomplete;
        msg.attributes.truncate(1);
        let entry = neighbour_from(&msg).unwrap();
        assert_eq!((entry.mac, entry.permanent), (None, false));
        // Without a destination there is nothing to report.
        msg.attributes.clear();
        assert_eq!(neighbour_from(&msg), None);
    }
}
