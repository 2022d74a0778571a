// Property tests: every message we can build survives encode → decode in
// each CodecParams mode, and no byte string makes the decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

use super::*;
use crate::wire::*;

fn ipv4_prefix() -> impl Strategy<Value = IpNetwork> {
    (any::<u32>(), 0..=32u8).prop_map(|(address, length)| {
        let network = Ipv4Network::new(Ipv4Addr::from(address), length).unwrap();
        IpNetwork::V4(Ipv4Network::new(network.network(), length).unwrap())
    })
}

fn ipv6_prefix() -> impl Strategy<Value = IpNetwork> {
    (any::<u128>(), 0..=128u8).prop_map(|(address, length)| {
        let network = Ipv6Network::new(Ipv6Addr::from(address), length).unwrap();
        IpNetwork::V6(Ipv6Network::new(network.network(), length).unwrap())
    })
}

fn nlri_list(family: Family, add_path: bool, max: usize) -> BoxedStrategy<Vec<Nlri>> {
    let prefix = if family.afi == Afi::IPV4 {
        ipv4_prefix().boxed()
    } else {
        ipv6_prefix().boxed()
    };
    let path_id = if add_path {
        any::<u32>().prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    };
    prop::collection::vec(
        (path_id, prefix).prop_map(|(path_id, prefix)| Nlri { path_id, prefix }),
        0..=max,
    )
    .boxed()
}

fn asn() -> impl Strategy<Value = u32> {
    prop_oneof![1..65535u32, any::<u32>(), Just(u32::from(iana::AS_TRANS))]
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let segment = prop_oneof![
        prop::collection::vec(asn(), 1..8).prop_map(AsSegment::Sequence),
        prop::collection::vec(asn(), 1..4).prop_map(AsSegment::Set),
    ];
    prop::collection::vec(segment, 0..4).prop_map(|segments| AsPath { segments })
}

fn unicast_family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)]
}

fn mp_reach(add_path: bool) -> impl Strategy<Value = MpReach> {
    unicast_family().prop_flat_map(move |family| {
        let v6 = any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)));
        let next_hops = if family.afi == Afi::IPV4 {
            prop_oneof![
                any::<u32>().prop_map(|a| vec![IpAddr::V4(Ipv4Addr::from(a))]),
                v6.clone().prop_map(|a| vec![a]),
            ]
            .boxed()
        } else {
            prop_oneof![
                v6.clone().prop_map(|a| vec![a]),
                (v6.clone(), v6).prop_map(|(a, b)| vec![a, b]),
            ]
            .boxed()
        };
        (next_hops, nlri_list(family, add_path, 8)).prop_map(move |(next_hops, nlri)| MpReach {
            family,
            next_hops,
            nlri,
        })
    })
}

fn mp_unreach(add_path: bool) -> impl Strategy<Value = MpUnreach> {
    unicast_family().prop_flat_map(move |family| {
        nlri_list(family, add_path, 8).prop_map(move |withdrawn| MpUnreach { family, withdrawn })
    })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

/// Optional attributes, each at most once, in a fixed order.
fn other_attributes(add_path: bool) -> impl Strategy<Value = Vec<PathAttribute>> {
    (
        (
            prop::option::of(any::<u32>().prop_map(PathAttribute::MultiExitDisc)),
            prop::option::of(any::<u32>().prop_map(PathAttribute::LocalPref)),
            prop::option::of(Just(PathAttribute::AtomicAggregate)),
            prop::option::of(
                (asn(), ipv4()).prop_map(|(asn, address)| {
                    PathAttribute::Aggregator(Aggregator { asn, address })
                }),
            ),
            prop::option::of(
                prop::collection::vec(any::<u32>().prop_map(Community), 1..10)
                    .prop_map(PathAttribute::Communities),
            ),
            prop::option::of(ipv4().prop_map(PathAttribute::OriginatorId)),
            prop::option::of(
                prop::collection::vec(ipv4(), 1..5).prop_map(PathAttribute::ClusterList),
            ),
        ),
        (
            prop::option::of(mp_reach(add_path).prop_map(PathAttribute::MpReach)),
            prop::option::of(mp_unreach(add_path).prop_map(PathAttribute::MpUnreach)),
            prop::option::of(
                prop::collection::vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 1..5)
                    .prop_map(PathAttribute::ExtendedCommunities),
            ),
            prop::option::of(
                prop::collection::vec(
                    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, a, b)| {
                        LargeCommunity {
                            global_admin: g,
                            local_data_1: a,
                            local_data_2: b,
                        }
                    }),
                    1..5,
                )
                .prop_map(PathAttribute::LargeCommunities),
            ),
            prop::option::of(
                (
                    prop::sample::select(vec![0x80u8, 0xa0, 0xc0, 0xe0]),
                    33..=255u8,
                    prop::collection::vec(any::<u8>(), 0..300),
                )
                    .prop_map(|(flags, type_code, value)| {
                        PathAttribute::Unknown(RawAttribute {
                            flags,
                            type_code,
                            value: Bytes::from(value),
                        })
                    }),
            ),
        ),
    )
        .prop_map(|((a, b, c, d, e, f, g), (h, i, j, k, l))| {
            [h, i, a, b, c, d, e, f, g, j, k, l]
                .into_iter()
                .flatten()
                .collect()
        })
}

fn update(add_path: bool) -> impl Strategy<Value = Update> {
    (
        nlri_list(Family::IPV4_UNICAST, add_path, 10),
        nlri_list(Family::IPV4_UNICAST, add_path, 10),
        prop::sample::select(vec![Origin::Igp, Origin::Egp, Origin::Incomplete]),
        as_path(),
        ipv4(),
        other_attributes(add_path),
        any::<bool>(),
    )
        .prop_map(
            |(withdrawn, nlri, origin, path, next_hop, others, with_mandatory)| {
                let announces = !nlri.is_empty()
                    || others
                        .iter()
                        .any(|a| matches!(a, PathAttribute::MpReach(r) if !r.nlri.is_empty()));
                let mut attributes = Vec::new();
                if announces || with_mandatory {
                    attributes.push(PathAttribute::Origin(origin));
                    attributes.push(PathAttribute::AsPath(path));
                    attributes.push(PathAttribute::NextHop(next_hop));
                }
                attributes.extend(others);
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    malformed: Vec::new(),
                }
            },
        )
}

fn any_family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family::new(Afi(afi), Safi(safi)))
}

fn capability() -> impl Strategy<Value = Capability> {
    let known = [1u8, 2, 5, 6, 64, 65, 69, 70];
    prop_oneof![
        any_family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        prop::collection::vec(
            (any_family(), any::<u16>()).prop_map(|(family, afi)| ExtendedNextHop {
                family,
                next_hop_afi: Afi(afi),
            }),
            0..3
        )
        .prop_map(Capability::ExtendedNextHop),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            any::<bool>(),
            0..=4095u16,
            prop::collection::vec(
                (any_family(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
                    GracefulRestartFamily {
                        family,
                        forwarding_preserved,
                    }
                }),
                0..3
            )
        )
            .prop_map(|(restarting, notification, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restarting,
                    notification,
                    restart_time,
                    families,
                })
            }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        prop::collection::vec(
            (
                any_family(),
                prop_oneof![
                    Just(AddPathMode::Receive),
                    Just(AddPathMode::Send),
                    Just(AddPathMode::Both),
                    (4..=255u8).prop_map(AddPathMode::Other),
                    Just(AddPathMode::Other(0)),
                ]
            )
                .prop_map(|(family, mode)| AddPathFamily { family, mode }),
            0..3
        )
        .prop_map(Capability::AddPath),
        Just(Capability::EnhancedRouteRefresh),
        (
            any::<u8>().prop_filter("known code", move |c| !known.contains(c)),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(code, value)| Capability::Unknown {
                code,
                value: Bytes::from(value)
            }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3..=u16::MAX],
        (1..=u32::MAX).prop_map(Ipv4Addr::from),
        prop::collection::vec(capability(), 0..10),
    )
        .prop_map(|(my_as, hold_time, bgp_id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
}

fn message(add_path: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(add_path).prop_map(Message::Update),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(
                |(code, subcode, data)| Message::Notification(Notification::new(
                    code,
                    subcode,
                    Bytes::from(data)
                ))
            ),
        Just(Message::Keepalive),
        (
            any_family(),
            prop_oneof![
                Just(RouteRefreshSubtype::Request),
                Just(RouteRefreshSubtype::BeginningOfRefresh),
                Just(RouteRefreshSubtype::EndOfRefresh),
                (3..=255u8).prop_map(RouteRefreshSubtype::Reserved),
            ]
        )
            .prop_map(|(family, subtype)| Message::RouteRefresh(RouteRefresh { family, subtype })),
    ]
}

fn params(four_octet_as: bool, add_path: bool, extended_message: bool) -> CodecParams {
    let families = if add_path {
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    } else {
        vec![]
    };
    CodecParams {
        four_octet_as,
        extended_message,
        add_path_receive: families.clone(),
        add_path_send: families,
    }
}

/// RFC 6793 §4.2.3: an AGGREGATOR that is not AS_TRANS voids AS4_PATH, so
/// such an UPDATE cannot survive a 2-octet session unchanged.
fn survives_two_octet(message: &Message) -> bool {
    let Message::Update(update) = message else {
        return true;
    };
    let small_aggregator = update.attributes.iter().any(|a| {
        matches!(a, PathAttribute::Aggregator(g) if g.asn != u32::from(iana::AS_TRANS) && g.asn <= 65535)
    });
    let big_asn = update.attributes.iter().any(|a| match a {
        PathAttribute::AsPath(path) => path.segments.iter().any(|s| {
            let (AsSegment::Set(asns) | AsSegment::Sequence(asns)) = s;
            asns.iter().any(|&asn| asn > 65535)
        }),
        _ => false,
    });
    !(small_aggregator && big_asn)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip_four_octet(
        (add_path, message) in any::<bool>().prop_flat_map(|add_path| (Just(add_path), message(add_path))),
        extended in any::<bool>(),
    ) {
        let params = params(true, add_path, extended);
        let bytes = encode_message(&message, &params).unwrap();
        let back = decode_message(bytes.freeze(), &params).unwrap();
        prop_assert_eq!(back, message);
    }

    #[test]
    fn roundtrip_two_octet(message in message(false)) {
        prop_assume!(survives_two_octet(&message));
        let params = params(false, false, false);
        let bytes = encode_message(&message, &params).unwrap();
        let back = decode_message(bytes.freeze(), &params).unwrap();
        prop_assert_eq!(back, message);
    }

    #[test]
    fn roundtrip_two_octet_add_path(message in message(true)) {
        prop_assume!(survives_two_octet(&message));
        let params = params(false, true, true);
        let bytes = encode_message(&message, &params).unwrap();
        let back = decode_message(bytes.freeze(), &params).unwrap();
        prop_assert_eq!(back, message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        four in any::<bool>(),
        add_path in any::<bool>(),
    ) {
        let params = params(four, add_path, true);
        let _ = decode_message(Bytes::from(bytes.clone()), &params);
        let mut codec = BgpCodec::with_params(params);
        let mut buffer = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec.decode(&mut buffer) {}
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        message_type in 1..=5u8,
        body in prop::collection::vec(any::<u8>(), 0..300),
        four in any::<bool>(),
        add_path in any::<bool>(),
    ) {
        let params = params(four, add_path, false);
        let _ = decode_message(frame(message_type, &body), &params);
    }

    #[test]
    fn mutated_updates_never_panic(
        message in update(true).prop_map(Message::Update),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        four in any::<bool>(),
    ) {
        let params = params(four, true, true);
        let mut bytes = encode_message(&message, &params).unwrap().to_vec();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            // Keep the header intact so the body parsers are exercised.
            if at >= 19 {
                bytes[at] = value;
            }
        }
        if let Ok(Message::Update(update)) = decode_message(Bytes::from(bytes), &params) {
            // Whatever decoded must encode again.
            let _ = encode_message(&Message::Update(update), &params);
        }
    }
}
