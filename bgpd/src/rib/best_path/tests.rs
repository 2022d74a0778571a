use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::wire::{AsPath, AsSegment, Origin, PathAttribute};

/// A path described by the values best path looks at.
#[derive(Debug, Clone)]
struct P {
    local: bool,
    local_pref: Option<u32>,
    as_path: Vec<u32>,
    origin: Origin,
    med: Option<u32>,
    ebgp: bool,
    router_id: u8,
    originator_id: Option<u8>,
    cluster_list: usize,
    address: u8,
}

impl Default for P {
    fn default() -> P {
        P {
            local: false,
            local_pref: None,
            as_path: vec![65001],
            origin: Origin::Igp,
            med: None,
            ebgp: true,
            router_id: 9,
            originator_id: None,
            cluster_list: 0,
            address: 9,
        }
    }
}

impl P {
    fn build(&self) -> (PathAttributes, Source) {
        let mut attributes = vec![
            PathAttribute::Origin(self.origin),
            PathAttribute::AsPath(AsPath {
                segments: if self.as_path.is_empty() {
                    vec![]
                } else {
                    vec![AsSegment::Sequence(self.as_path.clone())]
                },
            }),
        ];
        if let Some(v) = self.local_pref {
            attributes.push(PathAttribute::LocalPref(v));
        }
        if let Some(v) = self.med {
            attributes.push(PathAttribute::MultiExitDisc(v));
        }
        if let Some(v) = self.originator_id {
            attributes.push(PathAttribute::OriginatorId(Ipv4Addr::new(10, 0, 0, v)));
        }
        if self.cluster_list > 0 {
            attributes.push(PathAttribute::ClusterList(vec![
                Ipv4Addr::new(1, 1, 1, 1);
                self.cluster_list
            ]));
        }
        let attrs = PathAttributes {
            attributes,
            next_hops: vec![],
        };
        let source = Source {
            local: self.local,
            ebgp: self.ebgp,
            router_id: Ipv4Addr::new(10, 0, 0, self.router_id),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, self.address)),
            rr_client: false,
        };
        (attrs, source)
    }
}

fn cmp(a: &P, b: &P) -> (Ordering, Step) {
    let (aa, sa) = a.build();
    let (ab, sb) = b.build();
    compare(
        &Candidate {
            attrs: &aa,
            source: &sa,
        },
        &Candidate {
            attrs: &ab,
            source: &sb,
        },
    )
}

/// For each step, `a` wins there although `b` is better at every later
/// step: the order of the tie-breakers is exactly the documented one.
#[test]
fn every_tie_breaker_in_order() {
    // `b` better than `a` at every step from 2 on, as the baseline.
    let b_all_later = P {
        local_pref: Some(100),
        as_path: vec![65001],
        origin: Origin::Igp,
        med: Some(0),
        ebgp: true,
        router_id: 1,
        cluster_list: 0,
        address: 1,
        ..P::default()
    };
    let worse_a = P {
        as_path: vec![65001, 65001, 65001],
        origin: Origin::Incomplete,
        med: Some(50),
        ebgp: false,
        router_id: 200,
        cluster_list: 3,
        address: 200,
        ..P::default()
    };
    let cases: Vec<(Step, P, P)> = vec![
        (
            Step::Local,
            P {
                local: true,
                local_pref: Some(10),
                ..worse_a.clone()
            },
            P {
                local_pref: Some(500),
                ..b_all_later.clone()
            },
        ),
        (
            Step::LocalPref,
            P {
                local_pref: Some(200),
                ..worse_a.clone()
            },
            b_all_later.clone(),
        ),
        (
            Step::AsPathLength,
            P {
                as_path: vec![65001],
                ..worse_a.clone()
            },
            P {
                as_path: vec![65001, 65001],
                ..b_all_later.clone()
            },
        ),
        (
            Step::Origin,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                ..worse_a.clone()
            },
            P {
                origin: Origin::Egp,
                ..b_all_later.clone()
            },
        ),
        (
            Step::Med,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                med: Some(5),
                ..worse_a.clone()
            },
            P {
                med: Some(10),
                ..b_all_later.clone()
            },
        ),
        (
            Step::Ebgp,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                med: Some(0),
                ebgp: true,
                ..worse_a.clone()
            },
            P {
                ebgp: false,
                ..b_all_later.clone()
            },
        ),
        (
            Step::RouterId,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                med: Some(0),
                ebgp: true,
                router_id: 1,
                ..worse_a.clone()
            },
            P {
                router_id: 2,
                ..b_all_later.clone()
            },
        ),
        (
            Step::ClusterList,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                med: Some(0),
                ebgp: true,
                router_id: 1,
                cluster_list: 1,
                ..worse_a.clone()
            },
            P {
                cluster_list: 2,
                ..b_all_later.clone()
            },
        ),
        (
            Step::PeerAddress,
            P {
                as_path: vec![65001],
                origin: Origin::Igp,
                med: Some(0),
                ebgp: true,
                router_id: 1,
                cluster_list: 0,
                address: 1,
                ..worse_a.clone()
            },
            P {
                address: 2,
                ..b_all_later.clone()
            },
        ),
    ];
    for (step, a, b) in cases {
        assert_eq!(cmp(&a, &b), (Ordering::Less, step), "{step:?}");
        assert_eq!(cmp(&b, &a), (Ordering::Greater, step), "{step:?} reversed");
    }
}

#[test]
fn absent_local_pref_counts_as_100_and_absent_med_as_0() {
    let explicit = P {
        local_pref: Some(100),
        med: Some(0),
        router_id: 2,
        ..P::default()
    };
    let absent = P {
        router_id: 1,
        ..P::default()
    };
    assert_eq!(cmp(&absent, &explicit), (Ordering::Less, Step::RouterId));
}

#[test]
fn med_is_ignored_between_different_neighbouring_ases() {
    let a = P {
        as_path: vec![65001],
        med: Some(500),
        router_id: 1,
        ..P::default()
    };
    let b = P {
        as_path: vec![65002],
        med: Some(1),
        router_id: 2,
        ..P::default()
    };
    assert_eq!(cmp(&a, &b), (Ordering::Less, Step::RouterId));
}

#[test]
fn originator_id_stands_in_for_router_id() {
    let reflected = P {
        ebgp: false,
        router_id: 1,
        originator_id: Some(50),
        ..P::default()
    };
    let direct = P {
        ebgp: false,
        router_id: 40,
        ..P::default()
    };
    assert_eq!(cmp(&direct, &reflected), (Ordering::Less, Step::RouterId));
}

#[test]
fn as_set_counts_as_one() {
    let (mut with_set, s1) = P {
        router_id: 2,
        ..P::default()
    }
    .build();
    with_set.attributes[1] = PathAttribute::AsPath(AsPath {
        segments: vec![
            AsSegment::Sequence(vec![65001]),
            AsSegment::Set(vec![1, 2, 3, 4]),
        ],
    });
    let (plain, s2) = P {
        as_path: vec![65001, 65003],
        router_id: 1,
        ..P::default()
    }
    .build();
    let (order, step) = compare(
        &Candidate {
            attrs: &with_set,
            source: &s1,
        },
        &Candidate {
            attrs: &plain,
            source: &s2,
        },
    );
    assert_eq!((order, step), (Ordering::Greater, Step::RouterId));
}

fn rank_of(paths: &[P], max_paths: usize) -> (Vec<u8>, usize) {
    let built: Vec<_> = paths.iter().map(P::build).collect();
    let candidates: Vec<Candidate<'_>> = built
        .iter()
        .map(|(attrs, source)| Candidate { attrs, source })
        .collect();
    let (ranked, n) = rank(&candidates, max_paths);
    let order = ranked
        .iter()
        .map(|&i| match candidates[i].source.address {
            IpAddr::V4(a) => a.octets()[3],
            IpAddr::V6(_) => 0,
        })
        .collect();
    (order, n)
}

#[test]
fn equal_paths_up_to_router_id_are_multipath() {
    let paths = [
        P {
            router_id: 3,
            address: 3,
            ..P::default()
        },
        P {
            router_id: 1,
            address: 1,
            ..P::default()
        },
        P {
            local_pref: Some(50),
            router_id: 0,
            address: 4,
            ..P::default()
        },
        P {
            as_path: vec![65002],
            router_id: 2,
            address: 2,
            ..P::default()
        },
    ];
    assert_eq!(rank_of(&paths, 8), (vec![1, 2, 3, 4], 3));
    assert_eq!(rank_of(&paths, 2), (vec![1, 2, 3, 4], 2));
    assert_eq!(rank_of(&paths, 1), (vec![1, 2, 3, 4], 1));
    assert_eq!(rank_of(&[], 8), (vec![], 0));
}

/// The classic MED cycle: A(AS1, MED 10) beats B(AS1, MED 20) by MED, B
/// beats C(AS2) by router ID, C beats A by router ID. Deterministic MED
/// ranks AS1's winner A against C, in any input order.
#[test]
fn deterministic_med_does_not_depend_on_arrival_order() {
    let a = P {
        as_path: vec![1],
        med: Some(10),
        router_id: 3,
        address: 1,
        ..P::default()
    };
    let b = P {
        as_path: vec![1],
        med: Some(20),
        router_id: 1,
        address: 2,
        ..P::default()
    };
    let c = P {
        as_path: vec![2],
        router_id: 2,
        address: 3,
        ..P::default()
    };
    let orders = [
        [a.clone(), b.clone(), c.clone()],
        [b.clone(), c.clone(), a.clone()],
        [c.clone(), a.clone(), b.clone()],
        [c, b, a],
    ];
    for paths in orders {
        let (order, _) = rank_of(&paths, 1);
        assert_eq!(order[0], 3, "{paths:?}");
    }
}

fn any_path() -> impl Strategy<Value = P> {
    (
        any::<bool>(),
        prop::option::of(prop_oneof![Just(50u32), Just(100), Just(200)]),
        prop::collection::vec(prop_oneof![Just(1u32), Just(2), Just(3)], 0..3),
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ],
        prop::option::of(0u32..3),
        any::<bool>(),
        0u8..4,
        prop::option::of(0u8..4),
        0usize..2,
    )
        .prop_map(|(local, lp, as_path, origin, med, ebgp, rid, orig, cl)| P {
            local,
            local_pref: lp,
            as_path,
            origin,
            med,
            ebgp,
            router_id: rid,
            originator_id: orig,
            cluster_list: cl,
            address: 0,
        })
}

proptest! {
    /// Whatever the order paths arrive in, the same one wins and the same
    /// ones are ECMP partners.
    #[test]
    fn rank_does_not_depend_on_input_order(
        mut paths in prop::collection::vec(any_path(), 1..6),
        rotate in 0usize..6,
    ) {
        for (i, p) in paths.iter_mut().enumerate() {
            p.address = i as u8 + 1;
        }
        let (order, n) = rank_of(&paths, 8);
        let mut rotated = paths.clone();
        rotated.rotate_left(rotate % paths.len());
        rotated.reverse();
        let (order2, n2) = rank_of(&rotated, 8);
        prop_assert_eq!(&order[..n], &order2[..n2]);
        // The winner is never beaten by a path of its own neighbouring AS.
        let best = &paths[usize::from(order[0]) - 1];
        for p in &paths {
            if p.as_path.first() == best.as_path.first() {
                prop_assert_ne!(cmp(p, best).0, Ordering::Less);
            }
        }
    }
}
