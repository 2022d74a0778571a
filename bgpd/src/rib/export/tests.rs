use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;

use super::*;
use crate::wire::AsSegment;
use crate::wire::RawAttribute;

const LOCAL_AS: u32 = 65000;

fn target(ebgp: bool) -> ExportTarget<'static> {
    ExportTarget {
        local_as: LOCAL_AS,
        ebgp,
        self_next_hops: Some(vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]),
        next_hop_self: ebgp,
        policy: None,
        rr_client: false,
        cluster_id: CLUSTER_ID,
    }
}

const CLUSTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const SENDER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 7);

fn ibgp(from_client: bool) -> Learned {
    Learned::Ibgp {
        from_client,
        sender: SENDER,
    }
}

fn client(yes: bool) -> ExportTarget<'static> {
    ExportTarget {
        rr_client: yes,
        ..target(false)
    }
}

/// An iBGP-learned path without reflection attributes.
fn ibgp_attrs() -> PathAttributes {
    PathAttributes {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::LocalPref(100),
        ],
        next_hops: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))],
    }
}

fn originator(attrs: &PathAttributes) -> Option<Ipv4Addr> {
    attrs.originator_id()
}

fn cluster_list(attrs: &PathAttributes) -> Option<Vec<Ipv4Addr>> {
    attrs.attributes.iter().find_map(|a| match a {
        PathAttribute::ClusterList(ids) => Some(ids.clone()),
        _ => None,
    })
}

fn learned_attrs() -> PathAttributes {
    PathAttributes {
        attributes: vec![
            PathAttribute::Origin(Origin::Egp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(vec![65001, 65002])],
            }),
            PathAttribute::MultiExitDisc(50),
            PathAttribute::LocalPref(300),
            PathAttribute::OriginatorId(Ipv4Addr::new(1, 1, 1, 1)),
            PathAttribute::ClusterList(vec![Ipv4Addr::new(2, 2, 2, 2)]),
            PathAttribute::Unknown(RawAttribute {
                flags: 0xc0,
                type_code: 99,
                value: Bytes::from_static(b"x"),
            }),
            PathAttribute::Unknown(RawAttribute {
                flags: 0x80,
                type_code: 98,
                value: Bytes::from_static(b"y"),
            }),
        ],
        next_hops: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))],
    }
}

fn prefix() -> IpNetwork {
    "10.244.0.0/26".parse().expect("prefix")
}

#[test]
fn own_prefixes_go_to_ebgp_peers_with_our_as_and_next_hop() {
    let local = PathAttributes {
        attributes: vec![PathAttribute::Origin(Origin::Igp)],
        next_hops: vec![],
    };
    let out = export(&target(true), &prefix(), &local, Learned::Local).expect("exported");
    assert_eq!(
        out.attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(vec![LOCAL_AS])]
            }),
        ]
    );
    assert_eq!(out.next_hops, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
}

#[test]
fn own_prefixes_go_to_ibgp_peers_with_local_pref_and_our_next_hop() {
    let local = PathAttributes {
        attributes: vec![PathAttribute::Origin(Origin::Igp)],
        next_hops: vec![],
    };
    let out = export(&target(false), &prefix(), &local, Learned::Local).expect("exported");
    assert!(
        out.attributes
            .contains(&PathAttribute::AsPath(AsPath::default()))
    );
    assert!(out.attributes.contains(&PathAttribute::LocalPref(100)));
    assert_eq!(out.next_hops, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
}

#[test]
fn learned_routes_are_not_exported_to_ebgp_without_a_policy() {
    // RFC 8212.
    assert!(export(&target(true), &prefix(), &learned_attrs(), Learned::Ebgp).is_none());
    assert!(export(&target(true), &prefix(), &learned_attrs(), ibgp(false)).is_none());
}

#[test]
fn ibgp_learned_routes_are_not_sent_to_ibgp_peers() {
    assert!(export(&target(false), &prefix(), &learned_attrs(), ibgp(false)).is_none());
}

#[test]
fn reflection_from_a_client_goes_to_every_ibgp_peer() {
    // RFC 4456 §6: clients and non-clients alike (the sender itself is
    // skipped by the peer task).
    for target in [client(true), client(false)] {
        let out = export(&target, &prefix(), &ibgp_attrs(), ibgp(true)).expect("reflected");
        assert_eq!(originator(&out), Some(SENDER));
        assert_eq!(cluster_list(&out), Some(vec![CLUSTER_ID]));
        // The next hop is left alone, even with next-hop-self set.
        assert_eq!(out.next_hops, ibgp_attrs().next_hops);
    }
    let nhs = ExportTarget {
        next_hop_self: true,
        ..client(true)
    };
    let out = export(&nhs, &prefix(), &ibgp_attrs(), ibgp(true)).expect("reflected");
    assert_eq!(out.next_hops, ibgp_attrs().next_hops);
}

#[test]
fn reflection_from_a_non_client_goes_to_clients_only() {
    let out = export(&client(true), &prefix(), &ibgp_attrs(), ibgp(false)).expect("to a client");
    assert_eq!(originator(&out), Some(SENDER));
    assert_eq!(cluster_list(&out), Some(vec![CLUSTER_ID]));
    assert!(export(&client(false), &prefix(), &ibgp_attrs(), ibgp(false)).is_none());
}

#[test]
fn reflection_keeps_the_originator_and_prepends_the_cluster_id() {
    // learned_attrs carries ORIGINATOR_ID 1.1.1.1 and CLUSTER_LIST [2.2.2.2].
    let out = export(&client(true), &prefix(), &learned_attrs(), ibgp(true)).expect("reflected");
    assert_eq!(originator(&out), Some(Ipv4Addr::new(1, 1, 1, 1)));
    assert_eq!(
        cluster_list(&out),
        Some(vec![CLUSTER_ID, Ipv4Addr::new(2, 2, 2, 2)])
    );
    let once = |kind: fn(&PathAttribute) -> bool| out.attributes.iter().filter(|a| kind(a)).count();
    assert_eq!(once(|a| matches!(a, PathAttribute::OriginatorId(_))), 1);
    assert_eq!(once(|a| matches!(a, PathAttribute::ClusterList(_))), 1);
}

#[test]
fn ebgp_and_local_routes_go_to_clients_and_non_clients_without_reflection_attributes() {
    for target in [client(true), client(false)] {
        let local = PathAttributes {
            attributes: vec![PathAttribute::Origin(Origin::Igp)],
            next_hops: vec![],
        };
        let out = export(&target, &prefix(), &local, Learned::Local).expect("own route");
        assert_eq!((originator(&out), cluster_list(&out)), (None, None));
        let out = export(&target, &prefix(), &ibgp_attrs(), Learned::Ebgp).expect("eBGP route");
        assert_eq!((originator(&out), cluster_list(&out)), (None, None));
    }
}

#[test]
fn reflection_attributes_never_go_to_ebgp_peers() {
    let policy = crate::config::RoutePolicy {
        default_action: Some(crate::config::PolicyAction::Accept),
        rules: vec![],
    };
    let ebgp = ExportTarget {
        policy: Some(&policy),
        ..target(true)
    };
    for learned in [ibgp(true), ibgp(false), Learned::Ebgp] {
        let out = export(&ebgp, &prefix(), &learned_attrs(), learned).expect("accepted");
        assert_eq!((originator(&out), cluster_list(&out)), (None, None));
    }
}

#[test]
fn ebgp_learned_routes_go_to_ibgp_peers_unchanged_but_for_carriers() {
    let out = export(&target(false), &prefix(), &learned_attrs(), Learned::Ebgp)
        .expect("eBGP-learned goes to iBGP");
    // Next hop kept (no next-hop-self), LOCAL_PREF and MED kept, unknown
    // optional transitive passed with the partial bit, non-transitive gone.
    assert_eq!(out.next_hops, vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))]);
    assert!(out.attributes.contains(&PathAttribute::LocalPref(300)));
    assert!(out.attributes.contains(&PathAttribute::MultiExitDisc(50)));
    assert!(out.attributes.iter().any(|a| matches!(
        a,
        PathAttribute::Unknown(RawAttribute {
            flags: 0xe0,
            type_code: 99,
            ..
        })
    )));
    assert!(!out.attributes.iter().any(|a| a.type_code() == 98));
    // Reflection attributes from outside the AS are not passed on.
    assert_eq!((originator(&out), cluster_list(&out)), (None, None));
    let with_self = ExportTarget {
        next_hop_self: true,
        ..target(false)
    };
    let out = export(&with_self, &prefix(), &learned_attrs(), Learned::Ebgp).expect("exported");
    assert_eq!(out.next_hops, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
}

#[test]
fn a_session_without_a_next_hop_of_the_family_cannot_carry_own_routes() {
    let no_nh = ExportTarget {
        self_next_hops: None,
        ..target(true)
    };
    let local = PathAttributes {
        attributes: vec![PathAttribute::Origin(Origin::Igp)],
        next_hops: vec![],
    };
    assert!(export(&no_nh, &prefix(), &local, Learned::Local).is_none());
}

#[test]
fn prepend_starts_a_sequence_before_a_set_or_a_full_sequence() {
    let set_first = AsPath {
        segments: vec![AsSegment::Set(vec![1, 2])],
    };
    assert_eq!(
        prepend(&set_first, 9).segments,
        vec![AsSegment::Sequence(vec![9]), AsSegment::Set(vec![1, 2])]
    );
    let full = AsPath {
        segments: vec![AsSegment::Sequence(vec![1; 255])],
    };
    assert_eq!(prepend(&full, 9).segments.len(), 2);
    let short = AsPath {
        segments: vec![AsSegment::Sequence(vec![1])],
    };
    assert_eq!(
        prepend(&short, 9).segments,
        vec![AsSegment::Sequence(vec![9, 1])]
    );
}

#[test]
fn well_known_communities_stop_exports() {
    use crate::wire::Community;
    let with = |c: u32| {
        let mut attrs = learned_attrs();
        attrs
            .attributes
            .push(PathAttribute::Communities(vec![Community(c)]));
        attrs
    };
    let ibgp = target(false);
    let ebgp_all = ExportTarget {
        policy: None,
        ..target(true)
    };
    // NO_ADVERTISE: to nobody.
    assert!(export(&ibgp, &prefix(), &with(0xFFFF_FF02), Learned::Ebgp).is_none());
    // NO_EXPORT: inside the AS only; our own prefixes likewise.
    assert!(export(&ibgp, &prefix(), &with(0xFFFF_FF01), Learned::Ebgp).is_some());
    assert!(export(&ebgp_all, &prefix(), &with(0xFFFF_FF01), Learned::Local).is_none());
    assert!(export(&ebgp_all, &prefix(), &with(0xFFFF_FF03), Learned::Local).is_none());
    assert!(export(&ebgp_all, &prefix(), &with(65000 << 16 | 1), Learned::Local).is_some());
}
