// Captures written out by hand: each decodes to the expected message and
// re-encodes to the same bytes.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::*;

fn net(text: &str) -> ipnetwork::IpNetwork {
    text.parse().unwrap()
}

fn nlri(text: &str) -> Nlri {
    Nlri {
        path_id: None,
        prefix: net(text),
    }
}

#[test]
fn frr_style_open_one_capability_per_parameter() {
    // FRR puts each capability in its own Capabilities parameter.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0059 01
        04 fde9 00b4 0a000001 3c
        02 06 01 04 0001 00 01
        02 02 80 00
        02 02 02 00
        02 02 46 00
        02 06 41 04 0000fde9
        02 06 45 04 0001 01 01
        02 08 49 06 04 66727231 00
        02 04 40 02 4078
        02 02 47 00
        02 02 06 00");
    let message = decode_message(Bytes::from(bytes.clone()), &two_octet()).unwrap();
    let Message::Open(open) = &message else {
        panic!("{message:?}");
    };
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 180);
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Unknown {
                code: 128,
                value: Bytes::new()
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::Receive,
            }]),
            Capability::Unknown {
                code: 73,
                value: Bytes::from_static(b"\x04frr1\x00")
            },
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: true,
                restart_time: 120,
                families: vec![],
            }),
            Capability::Unknown {
                code: 71,
                value: Bytes::new()
            },
            Capability::ExtendedMessage,
        ]
    );
    let shown: Vec<String> = open.capabilities.iter().map(|c| c.to_string()).collect();
    assert_eq!(shown[6], "unknown(code 73, 6 bytes)");
    // We pack capabilities into one parameter: same message, other bytes.
    let ours = encode_message(&message, &two_octet()).unwrap();
    assert_eq!(ours.len(), bytes.len() - 2 * 9);
    assert_eq!(
        decode_message(ours.freeze(), &two_octet()).unwrap(),
        message
    );
}

#[test]
fn bird_style_open_all_capabilities_in_one_parameter() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0041 01
        04 5ba0 00f0 c0000201 24
        02 22
           01 04 0002 00 01
           02 00
           40 06 8078 0002 01 80
           41 04 fa56ea01
           46 00
           06 00
           05 06 0001 0001 0002");
    let Message::Open(open) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    assert_eq!(open.my_as, 23456);
    assert_eq!(open.hold_time, 240);
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: Family::IPV6_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
            Capability::FourOctetAs(4200000001),
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop(vec![ExtendedNextHop {
                family: Family::IPV4_UNICAST,
                next_hop_afi: Afi::IPV6,
            }]),
        ]
    );
}

#[test]
fn open_with_rfc9072_extended_parameters() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, length 0x0009, then one
    // Capabilities parameter with a 2-octet length.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0029 01
        04 fde9 005a 0a000001 ff ff 0009
        02 0006 41 04 0000fde9");
    let message = decode_message(Bytes::from(bytes), &two_octet()).unwrap();
    let Message::Open(open) = message else {
        panic!()
    };
    assert_eq!(open.capabilities, vec![Capability::FourOctetAs(65001)]);
}

#[test]
fn open_without_parameters() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 001d 01 04 fde9 0000 0a000001 00");
    let Message::Open(open) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    assert_eq!(open.hold_time, 0);
    assert!(open.capabilities.is_empty());
}

#[test]
fn ipv4_update_with_rfc4271_attributes() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0045 02
        0000 0027
        40 01 01 00
        40 02 04 02 01 fde9
        40 03 04 0a000001
        80 04 04 00000064
        40 05 04 000000c8
        c0 08 04 fde90064
        10 0a01 18 c0a800");
    let Message::Update(update) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    assert!(update.malformed.is_empty());
    assert!(update.withdrawn.is_empty());
    assert_eq!(
        update.nlri,
        vec![nlri("10.1.0.0/16"), nlri("192.168.0.0/24")]
    );
    assert_eq!(
        update.attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(vec![65001])]
            }),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
            PathAttribute::MultiExitDisc(100),
            PathAttribute::LocalPref(200),
            PathAttribute::Communities(vec![Community(0xfde9_0064)]),
        ]
    );
    assert!(!update.is_end_of_rib());
}

#[test]
fn ipv6_mp_reach_with_link_local_and_large_communities() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0069 02
        0000 0052
        40 01 01 00
        40 02 06 02 01 fa56ea01
        80 0e 33 0002 01 20
           20010db8000000000000000000000001
           fe800000000000000000000000000001
           00
           20 20010db8
           40 20010db800010000
        c0 20 0c fa56ea01 00000001 00000002");
    let Message::Update(update) = decode_exact(&bytes, &four_octet()) else {
        panic!()
    };
    assert!(update.malformed.is_empty(), "{:?}", update.malformed);
    assert_eq!(
        update.attributes[2],
        PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec![
                "2001:db8::1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse::<IpAddr>().unwrap()
            ],
            nlri: vec![nlri("2001:db8::/32"), nlri("2001:db8:1::/64")],
        })
    );
    assert_eq!(
        update.attributes[3],
        PathAttribute::LargeCommunities(vec![LargeCommunity {
            global_admin: 4200000001,
            local_data_1: 1,
            local_data_2: 2,
        }])
    );
}

#[test]
fn rfc8950_ipv4_nlri_with_ipv6_next_hop() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0041 02
        0000 002a
        40 01 01 02
        40 02 00
        80 0e 19 0001 01 10 20010db8000000000000000000000001 00 18 0a0001
        80 04 04 00000000");
    let Message::Update(update) = decode_exact(&bytes, &four_octet()) else {
        panic!()
    };
    assert!(update.malformed.is_empty());
    assert_eq!(
        update.attributes[0],
        PathAttribute::Origin(Origin::Incomplete)
    );
    assert_eq!(
        update.attributes[1],
        PathAttribute::AsPath(AsPath::default())
    );
    let PathAttribute::MpReach(reach) = &update.attributes[2] else {
        panic!()
    };
    assert_eq!(reach.family, Family::IPV4_UNICAST);
    assert_eq!(
        reach.next_hops,
        vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(reach.nlri, vec![nlri("10.0.1.0/24")]);
}

#[test]
fn withdrawals_in_both_places() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0026 02
        0002 08 0a
        000d
        80 0f 0a 0002 01 30 20010db80001");
    let Message::Update(update) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    assert_eq!(update.withdrawn, vec![nlri("10.0.0.0/8")]);
    assert_eq!(
        update.attributes,
        vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![nlri("2001:db8:1::/48")],
        })]
    );
    assert!(update.malformed.is_empty());
}

#[test]
fn end_of_rib_markers() {
    let ipv4 = hex("ffffffffffffffffffffffffffffffff 0017 02 0000 0000");
    let Message::Update(update) = decode_exact(&ipv4, &two_octet()) else {
        panic!()
    };
    assert_eq!(update.end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(update, Update::end_of_rib(Family::IPV4_UNICAST));

    let ipv6 = hex("ffffffffffffffffffffffffffffffff 001d 02 0000 0006 80 0f 03 0002 01");
    let Message::Update(update) = decode_exact(&ipv6, &two_octet()) else {
        panic!()
    };
    assert!(update.is_end_of_rib());
    assert_eq!(update.end_of_rib_family(), Some(Family::IPV6_UNICAST));
    assert_eq!(update, Update::end_of_rib(Family::IPV6_UNICAST));
    let bytes = encode_message(&Message::Update(update), &two_octet()).unwrap();
    assert_eq!(&bytes[..], &ipv6[..]);
}

#[test]
fn attributes_only_update_is_fine() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 001b 02 0000 0004 40 01 01 00");
    let Message::Update(update) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    assert!(update.malformed.is_empty());
    assert!(!update.is_end_of_rib());
}

#[test]
fn add_path_ipv4_nlri_and_ipv6_mp() {
    let params = CodecParams {
        four_octet_as: true,
        add_path_receive: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        add_path_send: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        ..CodecParams::default()
    };
    let bytes = hex("ffffffffffffffffffffffffffffffff 0046 02
        0000 001f
        40 01 01 00
        40 02 00
        40 03 04 0a000001
        80 0f 0e 0002 01 00000002 30 20010db80001
        00000001 18 0a0001
        00000007 18 0a0001");
    let Message::Update(update) = decode_exact(&bytes, &params) else {
        panic!()
    };
    assert_eq!(
        update.nlri,
        vec![
            Nlri {
                path_id: Some(1),
                prefix: net("10.0.1.0/24")
            },
            Nlri {
                path_id: Some(7),
                prefix: net("10.0.1.0/24")
            },
        ]
    );
    let PathAttribute::MpUnreach(unreach) = &update.attributes[3] else {
        panic!()
    };
    assert_eq!(unreach.withdrawn[0].path_id, Some(2));
    // Without ADD-PATH the same bytes mean other prefixes: 0.0.0.0/0 ...
    assert!(decode_message(Bytes::from(bytes), &four_octet()).is_err());
}

#[test]
fn rfc6793_old_speaker_mixed_path_is_merged() {
    // An old speaker (65010) sent: AS_PATH 65010 23456 65001 23456, AS4_PATH
    // 4200000001 65001 4200000002, AGGREGATOR 23456/10.0.0.9 and
    // AS4_AGGREGATOR 4200000001/10.0.0.9.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0056 02
        0000 003d
        40 01 01 00
        40 02 0a 02 04 fdf2 5ba0 fde9 5ba0
        40 03 04 0a000001
        c0 07 06 5ba0 0a000009
        c0 11 0e 02 03 fa56ea01 0000fde9 fa56ea02
        c0 12 08 fa56ea01 0a000009
        08 0a");
    let message = decode_message(Bytes::from(bytes), &two_octet()).unwrap();
    let Message::Update(update) = &message else {
        panic!()
    };
    assert!(update.malformed.is_empty(), "{:?}", update.malformed);
    assert_eq!(
        update.attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(vec![
                    65010, 4200000001, 65001, 4200000002
                ])]
            }),
            PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)),
            PathAttribute::Aggregator(Aggregator {
                asn: 4200000001,
                address: Ipv4Addr::new(10, 0, 0, 9)
            }),
        ]
    );
    // And back to an old speaker: AS_TRANS where needed, AS4_PATH and
    // AS4_AGGREGATOR after the attributes they complete.
    let ours = encode_message(&message, &two_octet()).unwrap();
    assert_eq!(
        &ours[..],
        &hex("ffffffffffffffffffffffffffffffff 005a 02
            0000 0041
            40 01 01 00
            40 02 0a 02 04 fdf2 5ba0 fde9 5ba0
            c0 11 12 02 04 0000fdf2 fa56ea01 0000fde9 fa56ea02
            40 03 04 0a000001
            c0 07 06 5ba0 0a000009
            c0 12 08 fa56ea01 0a000009
            08 0a")[..]
    );
    assert_eq!(
        decode_message(ours.freeze(), &two_octet()).unwrap(),
        message
    );
}

#[test]
fn rfc6793_aggregator_from_an_old_speaker_voids_as4_attributes() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0036 02
        0000 001d
        40 01 01 00
        40 02 04 02 01 5ba0
        c0 07 06 fdf2 0a000009
        c0 11 06 02 01 fa56ea01
        08 0a");
    let Message::Update(update) = decode_message(Bytes::from(bytes), &two_octet()).unwrap() else {
        panic!()
    };
    assert_eq!(
        update.attributes[1],
        PathAttribute::AsPath(AsPath {
            segments: vec![AsSegment::Sequence(vec![23456])]
        })
    );
}

#[test]
fn two_octet_path_without_big_asns_has_no_as4_path() {
    let update = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(vec![65001, 23456])],
            }),
            PathAttribute::Aggregator(Aggregator {
                asn: 65001,
                address: Ipv4Addr::new(10, 0, 0, 9),
            }),
        ],
        ..Update::default()
    };
    let bytes = encode_message(&Message::Update(update), &two_octet()).unwrap();
    assert_eq!(
        &bytes[19..],
        &hex("0000 0016 40 01 01 00 40 02 06 02 02 fde9 5ba0 c0 07 06 fde9 0a000009")[..]
    );
}

#[test]
fn extended_length_attributes() {
    let communities: Vec<Community> = (0..100).map(Community).collect();
    let update = Update {
        attributes: vec![PathAttribute::Communities(communities.clone())],
        ..Update::default()
    };
    let bytes = encode_message(&Message::Update(update.clone()), &two_octet()).unwrap();
    // flags: optional, transitive, extended length; length 400 = 0x0190.
    assert_eq!(&bytes[23..27], &[0xd0, 0x08, 0x01, 0x90]);
    let back = decode_message(bytes.freeze(), &two_octet()).unwrap();
    assert_eq!(back, Message::Update(update));
    // A short value sent with the extended length bit still decodes.
    let sent = hex("ffffffffffffffffffffffffffffffff 001c 02 0000 0005 50 01 0001 00");
    let Message::Update(update) = decode_message(Bytes::from(sent), &two_octet()).unwrap() else {
        panic!()
    };
    assert_eq!(update.attributes, vec![PathAttribute::Origin(Origin::Igp)]);
}

#[test]
fn unknown_attributes_are_kept_and_passed_on_with_partial() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 0023 02
        0000 000c
        c0 63 03 010203
        80 64 03 040506");
    let Message::Update(update) = decode_exact(&bytes, &two_octet()) else {
        panic!()
    };
    let PathAttribute::Unknown(transitive) = &update.attributes[0] else {
        panic!()
    };
    assert_eq!(transitive.flags, 0xc0);
    assert_eq!(&transitive.value[..], &[1, 2, 3]);
    assert_eq!(transitive.pass_on().unwrap().flags, 0xe0);
    assert_eq!(update.attributes[1].pass_on(), None);
    assert_eq!(
        update.attributes[0].pass_on().map(|a| a.type_code()),
        Some(0x63)
    );
}

#[test]
fn other_attributes() {
    let bytes = hex("ffffffffffffffffffffffffffffffff 004a 02
        0000 0033
        40 06 00
        c0 07 08 fa56ea01 0a000009
        80 09 04 0a000002
        80 0a 08 0a000003 0a000004
        c0 10 10 0002fde900000064 0102030405060708");
    let Message::Update(update) = decode_exact(&bytes, &four_octet()) else {
        panic!()
    };
    assert_eq!(
        update.attributes,
        vec![
            PathAttribute::AtomicAggregate,
            PathAttribute::Aggregator(Aggregator {
                asn: 4200000001,
                address: Ipv4Addr::new(10, 0, 0, 9)
            }),
            PathAttribute::OriginatorId(Ipv4Addr::new(10, 0, 0, 2)),
            PathAttribute::ClusterList(vec![
                Ipv4Addr::new(10, 0, 0, 3),
                Ipv4Addr::new(10, 0, 0, 4)
            ]),
            PathAttribute::ExtendedCommunities(vec![
                ExtendedCommunity([0, 2, 0xfd, 0xe9, 0, 0, 0, 0x64]),
                ExtendedCommunity([1, 2, 3, 4, 5, 6, 7, 8]),
            ]),
        ]
    );
}

#[test]
fn notification_keepalive_route_refresh() {
    let hold = hex("ffffffffffffffffffffffffffffffff 0015 03 04 00");
    assert_eq!(
        decode_exact(&hold, &two_octet()),
        Message::Notification(Notification::hold_timer_expired())
    );
    let shutdown = hex("ffffffffffffffffffffffffffffffff 0021 03 06 02 0b 6d61696e74656e616e6365");
    let Message::Notification(notification) = decode_exact(&shutdown, &two_octet()) else {
        panic!()
    };
    assert_eq!(
        notification.shutdown_message().as_deref(),
        Some("maintenance")
    );
    assert_eq!(
        notification,
        Notification::administrative_shutdown("maintenance")
    );

    let keepalive = hex("ffffffffffffffffffffffffffffffff 0013 04");
    assert_eq!(decode_exact(&keepalive, &two_octet()), Message::Keepalive);

    let refresh = hex("ffffffffffffffffffffffffffffffff 0017 05 0001 00 01");
    assert_eq!(
        decode_exact(&refresh, &two_octet()),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: RouteRefreshSubtype::Request,
        })
    );
    let begin = hex("ffffffffffffffffffffffffffffffff 0017 05 0002 01 01");
    assert_eq!(
        decode_exact(&begin, &two_octet()),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: RouteRefreshSubtype::BeginningOfRefresh,
        })
    );
    let end = hex("ffffffffffffffffffffffffffffffff 0017 05 0002 02 01");
    let Message::RouteRefresh(refresh) = decode_exact(&end, &two_octet()) else {
        panic!()
    };
    assert_eq!(refresh.subtype, RouteRefreshSubtype::EndOfRefresh);
    let reserved = hex("ffffffffffffffffffffffffffffffff 0017 05 0002 07 01");
    let Message::RouteRefresh(refresh) = decode_exact(&reserved, &two_octet()) else {
        panic!()
    };
    assert_eq!(refresh.subtype, RouteRefreshSubtype::Reserved(7));
}
