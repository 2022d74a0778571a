// rtnetlink route messages, encoded and decoded by hand: the FIB writes and
// dumps hundreds of thousands of them, so no per-message allocation. Layouts
// from linux/netlink.h (nlmsghdr, nlmsgerr), linux/rtnetlink.h (rtmsg,
// rtattr, rtnexthop) and linux/if_link.h (ifinfomsg).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CAPPED, NLM_F_REQUEST};

use super::ResolvedNextHop;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
/// NLM_F_ACK_TLVS: an error message carries extended-ack attributes.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// NLMSGERR_ATTR_MSG: the extended ack's text (linux/netlink.h).
const NLMSGERR_ATTR_MSG: u16 = 1;

pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;

const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_VIA: u16 = 18;
const RTA_NH_ID: u16 = 30;

pub(crate) const RTN_UNICAST: u8 = 1;
pub(crate) const RTN_LOCAL: u8 = 2;
pub(crate) const RTN_BLACKHOLE: u8 = 6;
const RT_SCOPE_UNIVERSE: u8 = 0;
/// Scope of a delete request: matches a route of any scope (as `ip route del`).
const RT_SCOPE_NOWHERE: u8 = 255;
/// rtm_table when the id only fits RTA_TABLE.
const RT_TABLE_UNSPEC: u8 = 0;
/// RTNH_F_DEAD: a path whose link is gone.
pub(crate) const RTNH_F_DEAD: u8 = 1;
const IFF_UP: u32 = 0x1;
/// IFF_LOWER_UP: carrier (linux/if.h).
const IFF_LOWER_UP: u32 = 0x10000;

pub(crate) const AF_INET: u8 = libc::AF_INET as u8;
pub(crate) const AF_INET6: u8 = libc::AF_INET6 as u8;
pub(crate) const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;

/// A decoding failure: the kernel sent something shorter than its layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink message: {0}")]
pub struct Malformed(pub(crate) &'static str);

/// The fields of an nlmsghdr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
}

/// The messages in one datagram, each as its header and payload.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<(Header, &[u8]), Malformed>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() < NLMSG_HDRLEN {
            buf = &[];
            return Some(Err(Malformed("truncated nlmsghdr")));
        }
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err(Malformed("nlmsg_len out of range")));
        }
        let header = Header {
            ty: u16_at(buf, 4),
            flags: u16_at(buf, 6),
            seq: u32_at(buf, 8),
        };
        let payload = &buf[NLMSG_HDRLEN..len];
        buf = &buf[align(len).min(buf.len())..];
        Some(Ok((header, payload)))
    })
}

/// An NLMSG_ERROR payload: errno 0 is an ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorMsg {
    /// Positive errno, 0 for an ack.
    pub(crate) errno: i32,
    /// The sequence number of the request it answers.
    pub(crate) seq: u32,
    /// The kernel's extended-ack text, if any.
    pub(crate) text: Option<String>,
}

pub(crate) fn parse_error(header: &Header, payload: &[u8]) -> Result<ErrorMsg, Malformed> {
    if payload.len() < 4 + NLMSG_HDRLEN {
        return Err(Malformed("short nlmsgerr"));
    }
    let errno = (u32_at(payload, 0) as i32).saturating_neg();
    let orig_len = u32_at(payload, 4) as usize;
    let seq = u32_at(payload, 12);
    let mut text = None;
    if header.flags & NLM_F_ACK_TLVS != 0 {
        // Without NETLINK_CAP_ACK the original request follows its header.
        let skip = if header.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align(orig_len)
        };
        if let Some(tlvs) = payload.get(4 + skip..) {
            for (ty, value) in attributes(tlvs) {
                if ty == NLMSGERR_ATTR_MSG {
                    let s = value.split(|b| *b == 0).next().unwrap_or_default();
                    text = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
        }
    }
    Ok(ErrorMsg { errno, seq, text })
}

/// A netlink message being appended to a buffer.
pub(crate) struct MsgBuilder<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> MsgBuilder<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        MsgBuilder { buf, start }
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        self
    }

    pub(crate) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        put_attr(self.buf, ty, data);
        self
    }

    pub(crate) fn attr_u32(&mut self, ty: u16, value: u32) -> &mut Self {
        self.attr(ty, &value.to_ne_bytes())
    }

    /// Starts a nested attribute; close it with `end_nest`.
    fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    pub(crate) fn finish(self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// Sets `flag` in the header of the message that starts at `at` in `buf`.
pub(crate) fn add_flag(buf: &mut [u8], at: usize, flag: u16) {
    let flags = u16_at(buf, at + 6) | flag;
    buf[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
}

/// Where and how our routes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteKey {
    pub(crate) table: u32,
    pub(crate) protocol: u8,
    pub(crate) metric: u32,
}

/// What a route message points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via<'a> {
    Blackhole,
    NhId(u32),
    Hops(&'a [ResolvedNextHop]),
}

/// RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE: creates the route or
/// replaces ours (same prefix, table, tos and metric). The kernel's replace
/// does not look at the protocol: a route of another program with exactly
/// our metric for the same prefix would be replaced, which is why our metric
/// is not the 0 that `ip route add` uses.
pub(crate) fn new_route(
    buf: &mut Vec<u8>,
    seq: u32,
    key: RouteKey,
    prefix: IpNetwork,
    via: Via<'_>,
) {
    let flags = netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE;
    let kind = match via {
        Via::Blackhole => RTN_BLACKHOLE,
        _ => RTN_UNICAST,
    };
    let mut m = MsgBuilder::new(buf, RTM_NEWROUTE, flags, seq);
    m.bytes(&rtmsg(prefix, key, RT_SCOPE_UNIVERSE, kind));
    put_route_key(&mut m, prefix, key);
    match via {
        Via::Blackhole => {}
        Via::NhId(id) => {
            m.attr_u32(RTA_NH_ID, id);
        }
        Via::Hops([hop]) => {
            put_gateway(&mut m, prefix, hop.gateway);
            if hop.ifindex != 0 {
                m.attr_u32(RTA_OIF, hop.ifindex);
            }
        }
        Via::Hops(hops) => {
            let nest = m.nest(RTA_MULTIPATH);
            for hop in hops {
                // struct rtnexthop: len, flags, hops (weight - 1), ifindex.
                let at = m.buf.len();
                m.bytes(&[0, 0, 0, 0]).bytes(&hop.ifindex.to_ne_bytes());
                put_gateway(&mut m, prefix, hop.gateway);
                let len = (m.buf.len() - at) as u16;
                m.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
            }
            m.end_nest(nest);
        }
    }
    m.finish();
}

/// RTM_DELROUTE for our route of `prefix`: the kernel matches protocol,
/// table and metric, so a route of anyone else is never deleted.
pub(crate) fn del_route(buf: &mut Vec<u8>, seq: u32, key: RouteKey, prefix: IpNetwork) {
    let mut m = MsgBuilder::new(buf, RTM_DELROUTE, 0, seq);
    m.bytes(&rtmsg(prefix, key, RT_SCOPE_NOWHERE, 0));
    put_route_key(&mut m, prefix, key);
    m.finish();
}

/// RTM_GETROUTE dump of both families in `table`, only `protocol` if not 0
/// (needs NETLINK_GET_STRICT_CHK on the socket).
pub(crate) fn dump_routes(buf: &mut Vec<u8>, seq: u32, table: u32, protocol: u8) {
    let mut m = MsgBuilder::new(buf, RTM_GETROUTE, netlink_packet_core::NLM_F_DUMP, seq);
    m.bytes(&[
        AF_UNSPEC,
        0,
        0,
        0,
        table_byte(table),
        protocol,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    m.attr_u32(RTA_TABLE, table);
    m.finish();
}

/// RTM_GETLINK dump.
pub(crate) fn dump_links(buf: &mut Vec<u8>, seq: u32) {
    let mut m = MsgBuilder::new(buf, RTM_GETLINK, netlink_packet_core::NLM_F_DUMP, seq);
    m.bytes(&[0; IFINFOMSG_LEN]);
    m.finish();
}

fn rtmsg(prefix: IpNetwork, key: RouteKey, scope: u8, kind: u8) -> [u8; RTMSG_LEN] {
    let family = match prefix {
        IpNetwork::V4(_) => AF_INET,
        IpNetwork::V6(_) => AF_INET6,
    };
    [
        family,
        prefix.prefix(),
        0,
        0,
        table_byte(key.table),
        key.protocol,
        scope,
        kind,
        0,
        0,
        0,
        0,
    ]
}

fn put_route_key(m: &mut MsgBuilder<'_>, prefix: IpNetwork, key: RouteKey) {
    m.attr_u32(RTA_TABLE, key.table);
    match prefix {
        IpNetwork::V4(n) => m.attr(RTA_DST, &n.network().octets()),
        IpNetwork::V6(n) => m.attr(RTA_DST, &n.network().octets()),
    };
    m.attr_u32(RTA_PRIORITY, key.metric);
}

/// RTA_GATEWAY for a gateway of the route's family, RTA_VIA otherwise
/// (an IPv4 route over an IPv6 next hop, RFC 8950).
fn put_gateway(m: &mut MsgBuilder<'_>, prefix: IpNetwork, gateway: IpAddr) {
    match (prefix, gateway) {
        (IpNetwork::V4(_), IpAddr::V4(g)) => m.attr(RTA_GATEWAY, &g.octets()),
        (IpNetwork::V6(_), IpAddr::V6(g)) => m.attr(RTA_GATEWAY, &g.octets()),
        (_, IpAddr::V4(g)) => {
            let mut via = u16::from(AF_INET).to_ne_bytes().to_vec();
            via.extend_from_slice(&g.octets());
            m.attr(RTA_VIA, &via)
        }
        (_, IpAddr::V6(g)) => {
            let mut via = u16::from(AF_INET6).to_ne_bytes().to_vec();
            via.extend_from_slice(&g.octets());
            m.attr(RTA_VIA, &via)
        }
    };
}

fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC)
}

/// One path of a kernel route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathInfo {
    pub(crate) gateway: Option<IpAddr>,
    pub(crate) ifindex: u32,
    pub(crate) flags: u8,
}

/// A kernel route, as much of it as the FIB looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteInfo {
    pub(crate) prefix: IpNetwork,
    pub(crate) table: u32,
    pub(crate) protocol: u8,
    pub(crate) kind: u8,
    pub(crate) metric: u32,
    pub(crate) nh_id: Option<u32>,
    /// From RTA_GATEWAY/RTA_VIA and RTA_OIF, or RTA_MULTIPATH.
    pub(crate) paths: Vec<PathInfo>,
}

/// rtm_protocol and the table of a route message, read without decoding it,
/// so that dumps and notifications of our own routes are skipped cheaply.
pub(crate) fn route_protocol_table(payload: &[u8]) -> Option<(u8, u32)> {
    if payload.len() < RTMSG_LEN {
        return None;
    }
    let mut table = u32::from(payload[4]);
    for (ty, value) in attributes(&payload[RTMSG_LEN..]) {
        if ty == RTA_TABLE && value.len() >= 4 {
            table = u32_at(value, 0);
        }
    }
    Some((payload[5], table))
}

/// Decodes an RTM_NEWROUTE payload; None for a family the FIB ignores.
pub(crate) fn parse_route(payload: &[u8]) -> Result<Option<RouteInfo>, Malformed> {
    if payload.len() < RTMSG_LEN {
        return Err(Malformed("short rtmsg"));
    }
    let family = payload[0];
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let dst_len = payload[1];
    let mut info = RouteInfo {
        prefix: default_prefix(family),
        table: u32::from(payload[4]),
        protocol: payload[5],
        kind: payload[7],
        metric: 0,
        nh_id: None,
        paths: Vec::new(),
    };
    let mut single = PathInfo {
        gateway: None,
        ifindex: 0,
        flags: payload[8],
    };
    for (ty, value) in attributes(&payload[RTMSG_LEN..]) {
        match ty {
            RTA_DST => {
                let addr = parse_addr(family, value).ok_or(Malformed("bad RTA_DST"))?;
                info.prefix =
                    IpNetwork::new(addr, dst_len).map_err(|_| Malformed("bad prefix length"))?;
            }
            RTA_TABLE if value.len() >= 4 => info.table = u32_at(value, 0),
            RTA_PRIORITY if value.len() >= 4 => info.metric = u32_at(value, 0),
            RTA_NH_ID if value.len() >= 4 => info.nh_id = Some(u32_at(value, 0)),
            RTA_OIF if value.len() >= 4 => single.ifindex = u32_at(value, 0),
            RTA_GATEWAY => single.gateway = parse_addr(family, value),
            RTA_VIA => single.gateway = parse_via(value),
            RTA_MULTIPATH => info.paths = parse_multipath(family, value)?,
            _ => {}
        }
    }
    if info.paths.is_empty() && (single.gateway.is_some() || single.ifindex != 0) {
        info.paths.push(single);
    }
    if info.prefix.prefix() != dst_len {
        // A default route has no RTA_DST.
        info.prefix = IpNetwork::new(info.prefix.network(), dst_len)
            .map_err(|_| Malformed("bad prefix length"))?;
    }
    Ok(Some(info))
}

fn parse_multipath(family: u8, mut value: &[u8]) -> Result<Vec<PathInfo>, Malformed> {
    let mut paths = Vec::new();
    while value.len() >= 8 {
        let len = usize::from(u16_at(value, 0));
        if len < 8 || len > value.len() {
            return Err(Malformed("bad rtnexthop length"));
        }
        let mut path = PathInfo {
            gateway: None,
            ifindex: u32_at(value, 4),
            flags: value[2],
        };
        for (ty, v) in attributes(&value[8..len]) {
            match ty {
                RTA_GATEWAY => path.gateway = parse_addr(family, v),
                RTA_VIA => path.gateway = parse_via(v),
                _ => {}
            }
        }
        paths.push(path);
        value = &value[align(len).min(value.len())..];
    }
    Ok(paths)
}

/// A link's index and whether it can carry traffic (up, with carrier).
pub(crate) fn parse_link(payload: &[u8]) -> Result<(u32, bool), Malformed> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(Malformed("short ifinfomsg"));
    }
    let flags = u32_at(payload, 8);
    Ok((
        u32_at(payload, 4),
        flags & IFF_UP != 0 && flags & IFF_LOWER_UP != 0,
    ))
}

pub(crate) fn parse_addr(family: u8, value: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => <[u8; 4]>::try_from(value.get(..4)?)
            .ok()
            .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        AF_INET6 => <[u8; 16]>::try_from(value.get(..16)?)
            .ok()
            .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

fn parse_via(value: &[u8]) -> Option<IpAddr> {
    let family = u8::try_from(u16_at(value.get(..2)?, 0)).ok()?;
    parse_addr(family, &value[2..])
}

fn default_prefix(family: u8) -> IpNetwork {
    if family == AF_INET6 {
        IpNetwork::V6(ipnetwork::Ipv6Network::from(Ipv6Addr::UNSPECIFIED))
    } else {
        IpNetwork::V4(ipnetwork::Ipv4Network::from(Ipv4Addr::UNSPECIFIED))
    }
}

/// The rtattrs (or nlattrs) in `buf`: type (without the nested/byte-order
/// bits) and value. Stops at the first malformed one.
pub(crate) fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16_at(buf, 0));
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16_at(buf, 2) & 0x3fff;
        let value = &buf[4..len];
        buf = &buf[align(len).min(buf.len())..];
        Some((ty, value))
    })
}

pub(crate) fn put_attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align(buf.len()), 0);
}

pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Callers check the length first.
pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests;
