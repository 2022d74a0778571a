#![allow(clippy::unwrap_used)]
// Differential tests: every message our encoder writes is read back by the
// independent `bgp-rs` parser (GPL, dev-dependency only), which must see
// the same prefixes and attributes wherever it understands them.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use podroute_bgpd::wire::*;
use proptest::prelude::*;

fn read_with_bgp_rs(bytes: &[u8], four_octet_as: bool) -> bgp_rs::Message {
    let mut reader = bgp_rs::Reader::new(Cursor::new(bytes.to_vec()));
    reader.capabilities.FOUR_OCTET_ASN_SUPPORT = four_octet_as;
    let (header, message) = reader.read().unwrap();
    assert_eq!(usize::from(header.length), bytes.len());
    message
}

fn params(four_octet_as: bool) -> CodecParams {
    CodecParams {
        four_octet_as,
        ..CodecParams::default()
    }
}

fn their_prefix(encoding: &bgp_rs::NLRIEncoding) -> (IpNetwork, Option<u32>) {
    let (prefix, path_id) = match encoding {
        bgp_rs::NLRIEncoding::IP(prefix) => (prefix, None),
        bgp_rs::NLRIEncoding::IP_WITH_PATH_ID((prefix, id)) => (prefix, Some(*id)),
        other => panic!("unexpected NLRI encoding {other:?}"),
    };
    let (address, length): (IpAddr, u8) = prefix.into();
    (IpNetwork::new(address, length).unwrap(), path_id)
}

fn ours(nlri: &[Nlri]) -> Vec<(IpNetwork, Option<u32>)> {
    nlri.iter().map(|n| (n.prefix, n.path_id)).collect()
}

fn theirs(nlri: &[bgp_rs::NLRIEncoding]) -> Vec<(IpNetwork, Option<u32>)> {
    nlri.iter().map(their_prefix).collect()
}

fn flat_path(path: &AsPath) -> Vec<(bool, Vec<u32>)> {
    path.segments
        .iter()
        .flat_map(|segment| {
            let (is_set, asns) = match segment {
                AsSegment::Set(asns) => (true, asns),
                AsSegment::Sequence(asns) => (false, asns),
            };
            asns.chunks(255)
                .map(move |chunk| (is_set, chunk.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn their_path(path: &bgp_rs::ASPath) -> Vec<(bool, Vec<u32>)> {
    path.segments
        .iter()
        .map(|segment| match segment {
            bgp_rs::Segment::AS_SET(asns) => (true, asns.clone()),
            bgp_rs::Segment::AS_SEQUENCE(asns) => (false, asns.clone()),
        })
        .collect()
}

fn next_hop_bytes(next_hops: &[IpAddr]) -> Vec<u8> {
    next_hops
        .iter()
        .flat_map(|address| match address {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        })
        .collect()
}

/// Every attribute of ours that bgp-rs knows must be there, equal.
fn assert_same_update(update: &Update, bytes: &[u8], four_octet_as: bool) {
    let bgp_rs::Message::Update(their) = read_with_bgp_rs(bytes, four_octet_as) else {
        panic!("bgp-rs did not read an UPDATE");
    };
    assert_eq!(ours(&update.withdrawn), theirs(&their.withdrawn_routes));
    assert_eq!(ours(&update.nlri), theirs(&their.announced_routes));
    use bgp_rs::PathAttribute as T;
    for attribute in &update.attributes {
        let found = their.attributes.iter().any(|t| match (attribute, t) {
            (PathAttribute::Origin(o), T::ORIGIN(t)) => {
                matches!(
                    (o, t),
                    (Origin::Igp, bgp_rs::Origin::IGP)
                        | (Origin::Egp, bgp_rs::Origin::EGP)
                        | (Origin::Incomplete, bgp_rs::Origin::INCOMPLETE)
                )
            }
            // With a 2-octet peer the AS_PATH carries AS_TRANS: checked
            // below together with AS4_PATH.
            (PathAttribute::AsPath(p), T::AS_PATH(t)) => {
                flat_path(p) == their_path(t) || !four_octet_as
            }
            (PathAttribute::NextHop(n), T::NEXT_HOP(t)) => IpAddr::V4(*n) == *t,
            (PathAttribute::MultiExitDisc(m), T::MULTI_EXIT_DISC(t)) => m == t,
            (PathAttribute::LocalPref(l), T::LOCAL_PREF(t)) => l == t,
            (PathAttribute::AtomicAggregate, T::ATOMIC_AGGREGATOR) => true,
            (PathAttribute::Aggregator(a), T::AGGREGATOR((asn, address))) => {
                a.address == *address && (a.asn == *asn || !four_octet_as)
            }
            (PathAttribute::Communities(c), T::COMMUNITY(t)) => {
                c.iter().map(|c| c.0).collect::<Vec<_>>() == *t
            }
            (PathAttribute::OriginatorId(o), T::ORIGINATOR_ID(t)) => u32::from(*o) == *t,
            (PathAttribute::ClusterList(c), T::CLUSTER_LIST(t)) => {
                c.iter().map(|id| u32::from(*id)).collect::<Vec<_>>() == *t
            }
            (PathAttribute::MpReach(r), T::MP_REACH_NLRI(t)) => {
                t.afi as u16 == r.family.afi.0
                    && t.safi as u8 == r.family.safi.0
                    && t.next_hop == next_hop_bytes(&r.next_hops)
                    && ours(&r.nlri) == theirs(&t.announced_routes)
            }
            (PathAttribute::MpUnreach(u), T::MP_UNREACH_NLRI(t)) => {
                t.afi as u16 == u.family.afi.0
                    && t.safi as u8 == u.family.safi.0
                    && ours(&u.withdrawn) == theirs(&t.withdrawn_routes)
            }
            (PathAttribute::ExtendedCommunities(e), T::EXTENDED_COMMUNITIES(t)) => {
                e.iter()
                    .map(|c| u64::from_be_bytes(c.0))
                    .collect::<Vec<_>>()
                    == *t
            }
            (PathAttribute::LargeCommunities(l), T::LARGE_COMMUNITY(t)) => {
                l.iter()
                    .map(|c| (c.global_admin, c.local_data_1, c.local_data_2))
                    .collect::<Vec<_>>()
                    == *t
            }
            (PathAttribute::Unknown(_), _) => true,
            _ => false,
        });
        assert!(
            found,
            "bgp-rs read {attribute:?} differently: {:?}",
            their.attributes
        );
    }
    // A 2-octet session: AS_TRANS in AS_PATH, the real path in AS4_PATH.
    if !four_octet_as {
        for attribute in &update.attributes {
            let PathAttribute::AsPath(path) = attribute else {
                continue;
            };
            let needs_as4 = flat_path(path)
                .iter()
                .any(|(_, asns)| asns.iter().any(|&asn| asn > 65535));
            let as4 = their.attributes.iter().find_map(|t| match t {
                T::AS4_PATH(p) => Some(their_path(p)),
                _ => None,
            });
            let as_path = their.attributes.iter().find_map(|t| match t {
                T::AS_PATH(p) => Some(their_path(p)),
                _ => None,
            });
            if needs_as4 {
                assert_eq!(as4, Some(flat_path(path)));
                let trans: Vec<(bool, Vec<u32>)> = flat_path(path)
                    .into_iter()
                    .map(|(set, asns)| {
                        let asns = asns
                            .into_iter()
                            .map(|a| if a > 65535 { 23456 } else { a })
                            .collect();
                        (set, asns)
                    })
                    .collect();
                assert_eq!(as_path, Some(trans));
            } else {
                assert_eq!(as4, None);
                assert_eq!(as_path, Some(flat_path(path)));
            }
        }
    }
}

fn encode(message: &Message, params: &CodecParams) -> Vec<u8> {
    encode_message(message, params).unwrap().to_vec()
}

fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}

fn nlri(text: &str) -> Nlri {
    Nlri {
        path_id: None,
        prefix: net(text),
    }
}

fn path(asns: &[u32]) -> PathAttribute {
    PathAttribute::AsPath(AsPath {
        segments: vec![AsSegment::Sequence(asns.to_vec())],
    })
}

#[test]
fn open_reads_the_same() {
    let open = Open {
        my_as: 23456,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4200000001),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::Both,
            }]),
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: true,
                restart_time: 120,
                families: vec![],
            }),
            Capability::ExtendedMessage,
            Capability::EnhancedRouteRefresh,
        ],
    };
    let bytes = encode(&Message::Open(open.clone()), &params(false));
    let bgp_rs::Message::Open(their) = read_with_bgp_rs(&bytes, false) else {
        panic!()
    };
    assert_eq!(their.version, 4);
    assert_eq!(their.peer_asn, open.my_as);
    assert_eq!(their.hold_timer, open.hold_time);
    assert_eq!(their.identifier, u32::from(open.bgp_id));
    let their_capabilities: Vec<bgp_rs::OpenCapability> = their
        .parameters
        .iter()
        .flat_map(|p| match p {
            bgp_rs::OpenParameter::Capabilities(c) => c.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(their_capabilities.len(), open.capabilities.len());
    use bgp_rs::OpenCapability as T;
    for (ours, theirs) in open.capabilities.iter().zip(&their_capabilities) {
        let same = match (ours, theirs) {
            (Capability::Multiprotocol(f), T::MultiProtocol((afi, safi))) => {
                f.afi.0 == *afi as u16 && f.safi.0 == *safi as u8
            }
            (Capability::RouteRefresh, T::RouteRefresh) => true,
            (Capability::FourOctetAs(asn), T::FourByteASN(t)) => asn == t,
            (Capability::AddPath(families), T::AddPath(t)) => {
                families.len() == t.len()
                    && t.iter().all(|(afi, safi, direction)| {
                        *afi as u16 == 1 && *safi as u8 == 1 && *direction as u8 == 3
                    })
            }
            // What bgp-rs does not interpret it keeps as code + value.
            (
                ours,
                T::Unknown {
                    cap_code, value, ..
                },
            ) => {
                let probe = Open {
                    my_as: 1,
                    hold_time: 0,
                    bgp_id: Ipv4Addr::new(1, 1, 1, 1),
                    capabilities: vec![ours.clone()],
                };
                // Header 19 + fixed OPEN 10 + parameter header 2.
                let tlv = encode(&Message::Open(probe), &params(false))[31..].to_vec();
                tlv.first() == Some(cap_code) && tlv.get(2..) == Some(&value[..])
            }
            _ => false,
        };
        assert!(same, "{ours:?} vs {theirs:?}");
    }
}

#[test]
fn ipv4_update_reads_the_same_in_both_as_widths() {
    let update = Update {
        withdrawn: vec![nlri("10.9.0.0/16"), nlri("172.16.0.0/12")],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            path(&[65001, 4200000001, 65002]),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
            PathAttribute::MultiExitDisc(10),
            PathAttribute::LocalPref(100),
            PathAttribute::AtomicAggregate,
            PathAttribute::Aggregator(Aggregator {
                asn: 4200000001,
                address: Ipv4Addr::new(192, 0, 2, 9),
            }),
            PathAttribute::Communities(vec![Community(0xfde9_0001), Community(0xffff_ff01)]),
            PathAttribute::OriginatorId(Ipv4Addr::new(10, 0, 0, 7)),
            PathAttribute::ClusterList(vec![Ipv4Addr::new(10, 0, 0, 8)]),
            PathAttribute::ExtendedCommunities(vec![ExtendedCommunity([
                0, 2, 0xfd, 0xe9, 0, 0, 0, 1,
            ])]),
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 4200000001,
                local_data_1: 7,
                local_data_2: 9,
            }]),
        ],
        nlri: vec![
            nlri("10.1.0.0/16"),
            nlri("192.168.128.0/17"),
            nlri("203.0.113.7/32"),
        ],
        malformed: vec![],
    };
    for four in [true, false] {
        let bytes = encode(&Message::Update(update.clone()), &params(four));
        assert_same_update(&update, &bytes, four);
    }
}

#[test]
fn mp_reach_ipv6_and_withdrawals_read_the_same() {
    let update = Update {
        attributes: vec![
            PathAttribute::MpReach(MpReach {
                family: Family::IPV6_UNICAST,
                next_hops: vec!["2001:db8::1".parse().unwrap(), "fe80::1".parse().unwrap()],
                nlri: vec![nlri("2001:db8:100::/48"), nlri("2001:db8:200::/56")],
            }),
            PathAttribute::Origin(Origin::Incomplete),
            path(&[65001]),
        ],
        ..Update::default()
    };
    let bytes = encode(&Message::Update(update.clone()), &params(true));
    assert_same_update(&update, &bytes, true);

    let withdraw = Update {
        withdrawn: vec![nlri("10.1.0.0/16")],
        attributes: vec![PathAttribute::MpUnreach(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![nlri("2001:db8:100::/48")],
        })],
        ..Update::default()
    };
    let bytes = encode(&Message::Update(withdraw.clone()), &params(true));
    assert_same_update(&withdraw, &bytes, true);
}

#[test]
fn notification_keepalive_route_refresh_read_the_same() {
    let shutdown = Notification::administrative_shutdown("maintenance window");
    let bytes = encode(&Message::Notification(shutdown.clone()), &params(true));
    let bgp_rs::Message::Notification(their) = read_with_bgp_rs(&bytes, true) else {
        panic!()
    };
    assert_eq!((their.major_err_code, their.minor_err_code), (6, 2));
    assert_eq!(their.data, shutdown.data.to_vec());

    let bytes = encode(&Message::Keepalive, &params(true));
    assert!(matches!(
        read_with_bgp_rs(&bytes, true),
        bgp_rs::Message::KeepAlive
    ));

    for (subtype, value) in [
        (RouteRefreshSubtype::Request, 0),
        (RouteRefreshSubtype::BeginningOfRefresh, 1),
        (RouteRefreshSubtype::EndOfRefresh, 2),
    ] {
        let refresh = RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype,
        };
        let bytes = encode(&Message::RouteRefresh(refresh), &params(true));
        let bgp_rs::Message::RouteRefresh(their) = read_with_bgp_rs(&bytes, true) else {
            panic!()
        };
        assert_eq!(
            (their.afi as u16, their.safi as u8, their.subtype),
            (2, 1, value)
        );
    }
}

#[test]
fn bgp_rs_encoded_update_decodes_the_same() {
    // And the other way: bytes bgp-rs writes read alike with us.
    let their = bgp_rs::Update {
        withdrawn_routes: vec![],
        attributes: vec![
            bgp_rs::PathAttribute::ORIGIN(bgp_rs::Origin::EGP),
            bgp_rs::PathAttribute::AS_PATH(bgp_rs::ASPath {
                segments: vec![bgp_rs::Segment::AS_SEQUENCE(vec![65001, 65002])],
            }),
            bgp_rs::PathAttribute::NEXT_HOP("10.0.0.1".parse().unwrap()),
            bgp_rs::PathAttribute::COMMUNITY(vec![0x0001_0002]),
        ],
        announced_routes: vec![bgp_rs::NLRIEncoding::IP(
            ("10.1.0.0".parse().unwrap(), 16).into(),
        )],
    };
    let mut bytes = Vec::new();
    bgp_rs::Message::Update(their).encode(&mut bytes).unwrap();
    let Message::Update(update) = decode_message(Bytes::from(bytes), &params(false)).unwrap()
    else {
        panic!()
    };
    assert!(update.malformed.is_empty());
    assert_eq!(update.nlri, vec![nlri("10.1.0.0/16")]);
    assert_eq!(update.attributes[0], PathAttribute::Origin(Origin::Egp));
    assert_eq!(update.attributes[1], path(&[65001, 65002]));
    assert_eq!(
        update.attributes[3],
        PathAttribute::Communities(vec![Community(0x0001_0002)])
    );
}

// Random UPDATEs. Prefixes are at least /1: bgp-rs guesses ADD-PATH from
// the NLRI bytes and takes a /0 followed by more for a path identifier.

fn ipv4_prefix() -> impl Strategy<Value = IpNetwork> {
    (any::<u32>(), 1..=32u8).prop_map(|(address, length)| {
        let network = Ipv4Network::new(Ipv4Addr::from(address), length).unwrap();
        IpNetwork::V4(Ipv4Network::new(network.network(), length).unwrap())
    })
}

fn ipv6_prefix() -> impl Strategy<Value = IpNetwork> {
    (any::<u128>(), 1..=128u8).prop_map(|(address, length)| {
        let network = Ipv6Network::new(Ipv6Addr::from(address), length).unwrap();
        IpNetwork::V6(Ipv6Network::new(network.network(), length).unwrap())
    })
}

fn nlri_of(
    prefix: impl Strategy<Value = IpNetwork>,
    max: usize,
) -> impl Strategy<Value = Vec<Nlri>> {
    prop::collection::vec(
        prefix.prop_map(|prefix| Nlri {
            path_id: None,
            prefix,
        }),
        0..max,
    )
}

fn random_update() -> impl Strategy<Value = Update> {
    (
        nlri_of(ipv4_prefix(), 20),
        nlri_of(ipv4_prefix(), 20),
        prop::collection::vec(prop_oneof![1..65535u32, 65536..=u32::MAX], 1..20),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..10),
        prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..5),
        prop::option::of((any::<u128>(), nlri_of(ipv6_prefix(), 10))),
        nlri_of(ipv6_prefix(), 10),
    )
        .prop_map(
            |(withdrawn, nlri, asns, med, communities, large, reach, unreach)| {
                let mut attributes = vec![
                    PathAttribute::Origin(Origin::Igp),
                    path(&asns),
                    PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
                    PathAttribute::MultiExitDisc(med),
                ];
                if !communities.is_empty() {
                    attributes.push(PathAttribute::Communities(
                        communities.into_iter().map(Community).collect(),
                    ));
                }
                if !large.is_empty() {
                    attributes.push(PathAttribute::LargeCommunities(
                        large
                            .into_iter()
                            .map(|(g, a, b)| LargeCommunity {
                                global_admin: g,
                                local_data_1: a,
                                local_data_2: b,
                            })
                            .collect(),
                    ));
                }
                if let Some((next_hop, nlri)) = reach {
                    attributes.push(PathAttribute::MpReach(MpReach {
                        family: Family::IPV6_UNICAST,
                        next_hops: vec![IpAddr::V6(Ipv6Addr::from(next_hop))],
                        nlri,
                    }));
                }
                if !unreach.is_empty() {
                    attributes.push(PathAttribute::MpUnreach(MpUnreach {
                        family: Family::IPV6_UNICAST,
                        withdrawn: unreach,
                    }));
                }
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    malformed: vec![],
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_updates_read_the_same(update in random_update(), four in any::<bool>()) {
        let bytes = encode(&Message::Update(update.clone()), &params(four));
        assert_same_update(&update, &bytes, four);
        // And we read our own bytes back unchanged.
        let back = decode_message(Bytes::from(bytes), &params(four)).unwrap();
        prop_assert_eq!(back, Message::Update(update));
    }
}
