// The hand encoder checked against netlink-packet-route's decoder, and the
// hand decoder against messages netlink-packet-route encodes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop, RouteProtocol,
    RouteScope, RouteType,
};

use super::*;

const KEY: RouteKey = RouteKey {
    table: 254,
    protocol: 210,
    metric: 20,
};

fn hop(last: u8, ifindex: u32) -> ResolvedNextHop {
    ResolvedNextHop {
        gateway: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
        ifindex,
    }
}

/// The one message in `buf`, decoded by netlink-packet-route.
fn decode(buf: &[u8]) -> (Header, RouteMessage) {
    let mut msgs = messages(buf);
    let (header, payload) = msgs.next().unwrap().unwrap();
    assert!(msgs.next().is_none());
    let msg = RouteMessage::parse(payload).unwrap();
    (header, msg)
}

#[test]
fn new_route_over_a_nexthop_object() {
    let mut buf = Vec::new();
    new_route(
        &mut buf,
        7,
        KEY,
        "10.1.2.0/24".parse().unwrap(),
        Via::NhId(42),
    );
    let (header, msg) = decode(&buf);
    assert_eq!(header.ty, RTM_NEWROUTE);
    assert_eq!(header.seq, 7);
    assert_eq!(header.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
    assert_eq!(msg.header.address_family, AddressFamily::Inet);
    assert_eq!(msg.header.destination_prefix_length, 24);
    assert_eq!(msg.header.table, 254);
    assert_eq!(msg.header.protocol, RouteProtocol::Other(210));
    assert_eq!(msg.header.scope, RouteScope::Universe);
    assert_eq!(msg.header.kind, RouteType::Unicast);
    assert_eq!(
        msg.attributes,
        vec![
            RouteAttribute::Table(254),
            RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 1, 2, 0))),
            RouteAttribute::Priority(20),
            RouteAttribute::NhId(42),
        ]
    );
    // And our own decoder reads it back.
    let (_, payload) = messages(&buf).next().unwrap().unwrap();
    let info = parse_route(payload).unwrap().unwrap();
    assert_eq!(info.prefix, "10.1.2.0/24".parse().unwrap());
    assert_eq!(
        (info.protocol, info.table, info.metric, info.nh_id),
        (210, 254, 20, Some(42))
    );
    assert_eq!(route_protocol_table(payload), Some((210, 254)));
}

#[test]
fn blackhole_and_large_table_ids() {
    let mut buf = Vec::new();
    let key = RouteKey { table: 1000, ..KEY };
    new_route(
        &mut buf,
        1,
        key,
        "10.0.0.0/16".parse().unwrap(),
        Via::Blackhole,
    );
    let (_, msg) = decode(&buf);
    assert_eq!(msg.header.kind, RouteType::BlackHole);
    // A table id over 255 only fits RTA_TABLE.
    assert_eq!(msg.header.table, RouteHeader::RT_TABLE_UNSPEC);
    assert!(msg.attributes.contains(&RouteAttribute::Table(1000)));
    let (_, payload) = messages(&buf).next().unwrap().unwrap();
    assert_eq!(route_protocol_table(payload), Some((210, 1000)));
}

#[test]
fn gateway_routes_single_and_multipath() {
    let mut buf = Vec::new();
    new_route(
        &mut buf,
        1,
        KEY,
        "10.0.0.0/24".parse().unwrap(),
        Via::Hops(&[hop(1, 3)]),
    );
    let (_, msg) = decode(&buf);
    assert!(
        msg.attributes
            .contains(&RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                192, 0, 2, 1
            ))))
    );
    assert!(msg.attributes.contains(&RouteAttribute::Oif(3)));

    let mut buf = Vec::new();
    let hops = [hop(1, 3), hop(2, 4)];
    new_route(
        &mut buf,
        1,
        KEY,
        "10.0.0.0/24".parse().unwrap(),
        Via::Hops(&hops),
    );
    let (_, msg) = decode(&buf);
    let paths: Vec<&RouteNextHop> = msg
        .attributes
        .iter()
        .filter_map(|a| match a {
            RouteAttribute::MultiPath(p) => Some(p.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[1].interface_index, 4);
    assert_eq!(
        paths[1].attributes,
        vec![RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
            192, 0, 2, 2
        )))]
    );
    let (_, payload) = messages(&buf).next().unwrap().unwrap();
    let info = parse_route(payload).unwrap().unwrap();
    let ours: Vec<(Option<IpAddr>, u32)> =
        info.paths.iter().map(|p| (p.gateway, p.ifindex)).collect();
    assert_eq!(
        ours,
        vec![(Some(hops[0].gateway), 3), (Some(hops[1].gateway), 4)]
    );
}

#[test]
fn ipv4_route_over_ipv6_gateway_uses_rta_via() {
    let mut buf = Vec::new();
    let gw = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
    let hops = [ResolvedNextHop {
        gateway: gw,
        ifindex: 2,
    }];
    new_route(
        &mut buf,
        1,
        KEY,
        "10.0.0.0/24".parse().unwrap(),
        Via::Hops(&hops),
    );
    let (_, payload) = messages(&buf).next().unwrap().unwrap();
    let info = parse_route(payload).unwrap().unwrap();
    assert_eq!(info.paths[0].gateway, Some(gw));
}

#[test]
fn delete_matches_protocol_table_and_metric() {
    let mut buf = Vec::new();
    del_route(&mut buf, 5, KEY, "2001:db8::/48".parse().unwrap());
    let (header, msg) = decode(&buf);
    assert_eq!(header.ty, RTM_DELROUTE);
    assert_eq!(msg.header.address_family, AddressFamily::Inet6);
    assert_eq!(msg.header.protocol, RouteProtocol::Other(210));
    assert_eq!(msg.header.scope, RouteScope::NoWhere);
    assert!(msg.attributes.contains(&RouteAttribute::Priority(20)));
    assert!(
        msg.attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet6(
                "2001:db8::".parse().unwrap()
            )))
    );
}

#[test]
fn decodes_what_netlink_packet_route_encodes() {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet6;
    msg.header.destination_prefix_length = 64;
    msg.header.table = 254;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Destination(RouteAddress::Inet6("2001:db8:1::".parse().unwrap())),
        RouteAttribute::Gateway(RouteAddress::Inet6("fe80::1".parse().unwrap())),
        RouteAttribute::Oif(9),
        RouteAttribute::Priority(1024),
    ];
    let mut payload = vec![0; msg.buffer_len()];
    msg.emit(&mut payload);
    let info = parse_route(&payload).unwrap().unwrap();
    assert_eq!(info.prefix, "2001:db8:1::/64".parse().unwrap());
    assert_eq!(
        (info.protocol, info.metric, info.kind),
        (4, 1024, RTN_UNICAST)
    );
    assert_eq!(
        info.paths,
        vec![PathInfo {
            gateway: Some("fe80::1".parse().unwrap()),
            ifindex: 9,
            flags: 0
        }]
    );
    // A default route has no RTA_DST.
    let mut default = RouteMessage::default();
    default.header.address_family = AddressFamily::Inet;
    let mut payload = vec![0; default.buffer_len()];
    default.emit(&mut payload);
    assert_eq!(
        parse_route(&payload).unwrap().unwrap().prefix,
        "0.0.0.0/0".parse().unwrap()
    );
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(parse_route(&[2, 24]).is_err());
    // Another family is skipped.
    assert_eq!(parse_route(&[7; 12]).unwrap(), None);
    assert!(messages(&[1, 2, 3]).next().unwrap().is_err());
    let mut bad_len = vec![0u8; 16];
    bad_len[0] = 200;
    assert!(messages(&bad_len).next().unwrap().is_err());
    // Truncated attributes stop the walk.
    assert_eq!(attributes(&[8, 0, 1, 0, 1]).count(), 0);
    let mut mp = vec![0u8; 12];
    mp[0] = AF_INET;
    put_attr(&mut mp, RTA_MULTIPATH, &[200, 0, 0, 0, 0, 0, 0, 0]);
    assert!(parse_route(&mp).is_err());
}

#[test]
fn errors_and_acks_are_matched_by_sequence() {
    // An NLMSG_ERROR answering seq 77 with ENETUNREACH and an extended ack.
    let mut buf = Vec::new();
    let mut m = MsgBuilder::new(&mut buf, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 77);
    m.bytes(&(-libc::ENETUNREACH).to_ne_bytes());
    m.bytes(&[36, 0, 0, 0, 24, 0, 0, 0, 77, 0, 0, 0, 0, 0, 0, 0]);
    m.attr(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0");
    m.finish();
    let (header, payload) = messages(&buf).next().unwrap().unwrap();
    assert_eq!(
        parse_error(&header, payload).unwrap(),
        ErrorMsg {
            errno: libc::ENETUNREACH,
            seq: 77,
            text: Some("Nexthop has invalid gateway".into())
        }
    );
    assert!(parse_error(&header, &payload[..10]).is_err());
}

#[test]
fn batches_carry_one_ack_flag_on_the_last_message() {
    let mut buf = Vec::new();
    new_route(
        &mut buf,
        1,
        KEY,
        "10.0.0.0/24".parse().unwrap(),
        Via::NhId(1),
    );
    let last = buf.len();
    del_route(&mut buf, 2, KEY, "10.0.1.0/24".parse().unwrap());
    add_flag(&mut buf, last, netlink_packet_core::NLM_F_ACK);
    let flags: Vec<u16> = messages(&buf).map(|m| m.unwrap().0.flags).collect();
    assert_eq!(flags[0] & netlink_packet_core::NLM_F_ACK, 0);
    assert_ne!(flags[1] & netlink_packet_core::NLM_F_ACK, 0);
}
