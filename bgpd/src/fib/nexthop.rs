// Nexthop objects (Linux 5.3+, linux/nexthop.h): RTM_NEWNEXTHOP,
// RTM_DELNEXTHOP and RTM_GETNEXTHOP with struct nhmsg and NHA_* attributes.
// netlink-packet-route has no nexthop messages, so they are coded here. A
// route then carries only RTA_NH_ID: 500,000 routes over one next hop share
// one object, and moving them is one object per next hop, not per route.

use std::net::IpAddr;

use super::ResolvedNextHop;
use super::message::{self, AF_INET, AF_INET6, AF_UNSPEC, Malformed, MsgBuilder};

pub(crate) const RTM_NEWNEXTHOP: u16 = 104;
pub(crate) const RTM_DELNEXTHOP: u16 = 105;
pub(crate) const RTM_GETNEXTHOP: u16 = 106;

const NHMSG_LEN: usize = 8;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
/// struct nexthop_grp: id (u32), weight - 1 (u8), two reserved (u8, u16).
const NEXTHOP_GRP_LEN: usize = 8;

/// What a nexthop object forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NexthopKind {
    /// A gateway (or, with None, the link itself) on a link.
    Single {
        gateway: Option<IpAddr>,
        ifindex: u32,
    },
    /// An ECMP group of other objects' ids.
    Group(Vec<u32>),
    Blackhole,
}

/// A decoded RTM_NEWNEXTHOP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NexthopInfo {
    pub(crate) id: u32,
    pub(crate) protocol: u8,
    pub(crate) kind: NexthopKind,
}

/// Creates object `id` for one gateway; NLM_F_EXCL so that an id another
/// program took is an error (EEXIST), never a silent takeover.
pub(crate) fn new_single(buf: &mut Vec<u8>, seq: u32, protocol: u8, id: u32, hop: ResolvedNextHop) {
    let (family, addr) = match hop.gateway {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    };
    let mut m = MsgBuilder::new(buf, RTM_NEWNEXTHOP, create_flags(), seq);
    m.bytes(&nhmsg(family, protocol));
    m.attr_u32(NHA_ID, id);
    m.attr_u32(NHA_OIF, hop.ifindex);
    m.attr(NHA_GATEWAY, &addr);
    m.finish();
}

/// Creates group `id` of equal-weight members.
pub(crate) fn new_group(buf: &mut Vec<u8>, seq: u32, protocol: u8, id: u32, members: &[u32]) {
    let mut group = Vec::with_capacity(members.len() * NEXTHOP_GRP_LEN);
    for member in members {
        group.extend_from_slice(&member.to_ne_bytes());
        group.extend_from_slice(&[0; 4]);
    }
    let mut m = MsgBuilder::new(buf, RTM_NEWNEXTHOP, create_flags(), seq);
    m.bytes(&nhmsg(AF_UNSPEC, protocol));
    m.attr_u32(NHA_ID, id);
    m.attr(NHA_GROUP, &group);
    m.finish();
}

pub(crate) fn del(buf: &mut Vec<u8>, seq: u32, id: u32) {
    let mut m = MsgBuilder::new(buf, RTM_DELNEXTHOP, 0, seq);
    m.bytes(&nhmsg(AF_UNSPEC, 0));
    m.attr_u32(NHA_ID, id);
    m.finish();
}

pub(crate) fn dump(buf: &mut Vec<u8>, seq: u32) {
    let mut m = MsgBuilder::new(buf, RTM_GETNEXTHOP, netlink_packet_core::NLM_F_DUMP, seq);
    m.bytes(&nhmsg(AF_UNSPEC, 0));
    m.finish();
}

pub(crate) fn parse(payload: &[u8]) -> Result<NexthopInfo, Malformed> {
    if payload.len() < NHMSG_LEN {
        return Err(Malformed("short nhmsg"));
    }
    let family = payload[0];
    let protocol = payload[2];
    let mut id = None;
    let mut gateway = None;
    let mut ifindex = 0;
    let mut group = None;
    let mut blackhole = false;
    for (ty, value) in message::attributes(&payload[NHMSG_LEN..]) {
        match ty {
            NHA_ID if value.len() >= 4 => id = Some(message::u32_at(value, 0)),
            NHA_OIF if value.len() >= 4 => ifindex = message::u32_at(value, 0),
            NHA_GATEWAY => gateway = message::parse_addr(family, value),
            NHA_BLACKHOLE => blackhole = true,
            NHA_GROUP => {
                group = Some(
                    value
                        .chunks_exact(NEXTHOP_GRP_LEN)
                        .map(|g| message::u32_at(g, 0))
                        .collect(),
                )
            }
            _ => {}
        }
    }
    let kind = match (group, blackhole) {
        (Some(members), _) => NexthopKind::Group(members),
        (None, true) => NexthopKind::Blackhole,
        (None, false) => NexthopKind::Single { gateway, ifindex },
    };
    Ok(NexthopInfo {
        id: id.ok_or(Malformed("nexthop without NHA_ID"))?,
        protocol,
        kind,
    })
}

fn create_flags() -> u16 {
    netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL
}

/// struct nhmsg: family, scope, protocol, reserved, flags (u32).
fn nhmsg(family: u8, protocol: u8) -> [u8; NHMSG_LEN] {
    [family, 0, protocol, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn payload(buf: &[u8]) -> &[u8] {
        &buf[message::NLMSG_HDRLEN..]
    }

    #[test]
    fn single_round_trips() {
        let mut buf = Vec::new();
        let hop = ResolvedNextHop {
            gateway: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            ifindex: 7,
        };
        new_single(&mut buf, 9, 210, 42, hop);
        let (header, body) = message::messages(&buf).next().unwrap().unwrap();
        assert_eq!(header.ty, RTM_NEWNEXTHOP);
        assert_eq!(header.seq, 9);
        assert_eq!(
            parse(body).unwrap(),
            NexthopInfo {
                id: 42,
                protocol: 210,
                kind: NexthopKind::Single {
                    gateway: Some(hop.gateway),
                    ifindex: 7
                }
            }
        );
        assert_eq!(payload(&buf)[0], AF_INET);
    }

    #[test]
    fn group_round_trips() {
        let mut buf = Vec::new();
        new_group(&mut buf, 1, 210, 100, &[42, 43]);
        let (_, body) = message::messages(&buf).next().unwrap().unwrap();
        assert_eq!(parse(body).unwrap().kind, NexthopKind::Group(vec![42, 43]));
        // nhmsg family of a group is AF_UNSPEC.
        assert_eq!(body[0], AF_UNSPEC);
    }

    #[test]
    fn parse_needs_an_id() {
        let mut buf = Vec::new();
        del(&mut buf, 1, 5);
        let (header, body) = message::messages(&buf).next().unwrap().unwrap();
        assert_eq!(header.ty, RTM_DELNEXTHOP);
        assert_eq!(parse(body).unwrap().id, 5);
        assert!(parse(&body[..NHMSG_LEN]).is_err());
        assert!(parse(&body[..3]).is_err());
    }
}
