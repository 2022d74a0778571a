use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::wire::{AsPath, AsSegment, Origin, PathAttribute};

#[derive(Default)]
struct Ctx {
    sources: HashMap<PeerId, Source>,
    unreachable: HashSet<IpAddr>,
}

impl Ctx {
    fn with_peers(n: u32) -> Ctx {
        let mut ctx = Ctx::default();
        ctx.sources.insert(
            LOCAL_PEER,
            Source {
                local: true,
                ebgp: false,
                router_id: Ipv4Addr::new(10, 0, 0, 100),
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                rr_client: false,
            },
        );
        for i in 1..=n {
            ctx.sources.insert(
                i,
                Source {
                    local: false,
                    ebgp: true,
                    router_id: Ipv4Addr::new(10, 0, 0, i as u8),
                    address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)),
                    rr_client: false,
                },
            );
        }
        ctx
    }
}

impl RibContext for Ctx {
    fn source(&self, peer: PeerId) -> Option<&Source> {
        self.sources.get(&peer)
    }

    fn reachable(&self, path: &Path) -> bool {
        path.attrs
            .next_hops
            .first()
            .is_none_or(|nh| !self.unreachable.contains(nh))
    }
}

fn attrs(as_path: &[u32], next_hop: u8) -> Arc<PathAttributes> {
    Arc::new(PathAttributes {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(as_path.to_vec())],
            }),
        ],
        next_hops: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, next_hop))],
    })
}

fn prefix(s: &str) -> IpNetwork {
    s.parse().expect("prefix")
}

fn peers_of(change: &Change) -> Vec<PeerId> {
    change.selected.iter().map(|p| p.peer).collect()
}

#[test]
fn announce_replace_and_withdraw() {
    let ctx = Ctx::with_peers(1);
    let mut rib = LocRib::new(8);
    let p = prefix("10.1.0.0/24");
    let a = attrs(&[65001], 1);
    let change = rib
        .update(p, 1, Some(Path::new(1, a.clone(), true)), &ctx)
        .expect("new prefix is a change");
    assert_eq!(peers_of(&change), vec![1]);
    // The same attributes again change nothing.
    assert!(
        rib.update(p, 1, Some(Path::new(1, a, true)), &ctx)
            .is_none()
    );
    let b = attrs(&[65001, 65009], 1);
    let change = rib
        .update(p, 1, Some(Path::new(1, b.clone(), true)), &ctx)
        .expect("new attributes are a change");
    assert!(Arc::ptr_eq(&change.selected[0].attrs, &b));
    let change = rib.update(p, 1, None, &ctx).expect("withdrawal");
    assert!(change.selected.is_empty());
    assert!(rib.is_empty());
    // Withdrawing what is not there changes nothing.
    assert!(rib.update(p, 1, None, &ctx).is_none());
    assert_eq!(rib.counts(1), PeerCounts::default());
}

#[test]
fn equal_paths_are_selected_together_up_to_max_paths() {
    let ctx = Ctx::with_peers(3);
    let mut rib = LocRib::new(2);
    let p = prefix("10.2.0.0/24");
    rib.update(p, 3, Some(Path::new(3, attrs(&[65003], 3), true)), &ctx);
    rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    let change = rib
        .update(p, 2, Some(Path::new(2, attrs(&[65002], 2), true)), &ctx)
        .expect("a second lowest router ID joins the selection");
    // Lowest router IDs first, capped at two.
    assert_eq!(peers_of(&change), vec![1, 2]);
    let all: Vec<_> = rib.get(&p).expect("paths").iter().map(|p| p.peer).collect();
    assert_eq!(all, vec![1, 2, 3]);
    assert_eq!(rib.counts(3).selected, 0);
    assert_eq!(rib.counts(1).selected, 1);
    // Losing one selected path brings in the next.
    let change = rib.update(p, 1, None, &ctx).expect("change");
    assert_eq!(peers_of(&change), vec![2, 3]);
}

#[test]
fn a_longer_path_is_not_a_multipath_partner() {
    let ctx = Ctx::with_peers(2);
    let mut rib = LocRib::new(8);
    let p = prefix("10.3.0.0/24");
    rib.update(
        p,
        1,
        Some(Path::new(1, attrs(&[65001, 65100], 1), true)),
        &ctx,
    );
    let change = rib
        .update(p, 2, Some(Path::new(2, attrs(&[65002], 2), true)), &ctx)
        .expect("the shorter path wins");
    assert_eq!(peers_of(&change), vec![2]);
}

#[test]
fn rejected_paths_are_held_counted_and_never_selected() {
    let ctx = Ctx::with_peers(1);
    let mut rib = LocRib::new(8);
    let p = prefix("10.4.0.0/24");
    assert!(
        rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), false)), &ctx)
            .is_none()
    );
    assert_eq!(
        rib.counts(1),
        PeerCounts {
            received: 1,
            accepted: 0,
            selected: 0,
            stale: 0
        }
    );
    assert_eq!(rib.len(), 1);
    let change = rib
        .update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx)
        .expect("accepted now");
    assert_eq!(peers_of(&change), vec![1]);
    assert_eq!(
        rib.counts(1),
        PeerCounts {
            received: 1,
            accepted: 1,
            selected: 1,
            stale: 0
        }
    );
}

#[test]
fn unreachable_next_hops_are_not_candidates_until_they_resolve() {
    let mut ctx = Ctx::with_peers(2);
    ctx.unreachable
        .insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let mut rib = LocRib::new(8);
    let p = prefix("10.5.0.0/24");
    assert!(
        rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx)
            .is_none()
    );
    let change = rib
        .update(
            p,
            2,
            Some(Path::new(2, attrs(&[65001, 65002], 2), true)),
            &ctx,
        )
        .expect("the reachable path");
    assert_eq!(peers_of(&change), vec![2]);
    ctx.unreachable.clear();
    let changes = rib.reselect(&ctx, |path| {
        path.attrs.next_hops.first() == Some(&IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
    });
    assert_eq!(changes.len(), 1);
    assert_eq!(peers_of(&changes[0]), vec![1]);
}

#[test]
fn originated_paths_win_over_learned_ones() {
    let ctx = Ctx::with_peers(1);
    let mut rib = LocRib::new(8);
    let p = prefix("10.6.0.0/26");
    rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    let local = Arc::new(PathAttributes {
        attributes: vec![PathAttribute::Origin(Origin::Igp)],
        next_hops: vec![],
    });
    let change = rib
        .update(
            p,
            LOCAL_PEER,
            Some(Path::new(LOCAL_PEER, local, true)),
            &ctx,
        )
        .expect("local wins");
    assert_eq!(peers_of(&change), vec![LOCAL_PEER]);
}

#[test]
fn removing_a_peer_withdraws_all_its_paths() {
    let ctx = Ctx::with_peers(2);
    let mut rib = LocRib::new(8);
    for i in 0..100u8 {
        let p = prefix(&format!("10.7.{i}.0/24"));
        rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
        if i % 2 == 0 {
            rib.update(p, 2, Some(Path::new(2, attrs(&[65001, 1], 2), true)), &ctx);
        }
    }
    let v6 = prefix("2001:db8::/64");
    rib.update(v6, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    assert_eq!(rib.counts(1).received, 101);
    let mut changes = Vec::new();
    loop {
        let (some, more) = rib.remove_peer(1, 30, &ctx);
        assert!(some.len() <= 30);
        changes.extend(some);
        if !more {
            break;
        }
    }
    assert_eq!(changes.len(), 101);
    let moved = changes.iter().filter(|c| peers_of(c) == vec![2]).count();
    let gone = changes.iter().filter(|c| c.selected.is_empty()).count();
    assert_eq!((moved, gone), (50, 51));
    assert_eq!(rib.len(), 50);
    assert_eq!(rib.counts(1), PeerCounts::default());
    assert_eq!(rib.counts(2).selected, 50);
}

#[test]
fn a_peer_without_a_source_has_no_candidates() {
    let mut ctx = Ctx::with_peers(2);
    let mut rib = LocRib::new(8);
    let p = prefix("10.8.0.0/24");
    rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    rib.update(p, 2, Some(Path::new(2, attrs(&[65002], 2), true)), &ctx);
    ctx.sources.remove(&1);
    let changes = rib.reselect(&ctx, |path| path.peer == 1);
    assert_eq!(changes.len(), 1);
    assert_eq!(peers_of(&changes[0]), vec![2]);
}

/// A full table is mostly these: keep a single-path prefix inline.
#[test]
fn a_prefix_with_one_path_needs_no_heap() {
    assert_eq!(std::mem::size_of::<Path>(), 16);
    assert!(std::mem::size_of::<Paths>() <= 24);
    let mut paths = Paths::new();
    paths.push(Path::new(1, attrs(&[1], 1), true));
    assert!(!paths.spilled());
}

// ---- graceful restart (RFC 4724 §4.2) ----

#[test]
fn stale_paths_stay_selected_until_replaced_or_swept() {
    let ctx = Ctx::with_peers(2);
    let mut rib = LocRib::new(8);
    let a = prefix("10.8.0.0/26");
    let b = prefix("10.8.0.64/26");
    let v6 = prefix("2001:db8:8::/64");
    for p in [a, b, v6] {
        rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    }
    // Marking changes no selection: the kernel and the peers keep them.
    assert_eq!(rib.mark_stale(1), 3);
    assert_eq!(rib.counts(1).stale, 3);
    assert_eq!(rib.counts(1).selected, 3);
    assert!(rib.get(&a).unwrap()[0].stale() && rib.get(&a).unwrap()[0].selected());
    // Marking twice counts nothing twice.
    assert_eq!(rib.mark_stale(1), 3);

    // The peer sends `a` again: fresh, no longer stale.
    rib.update(a, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
    assert!(!rib.get(&a).unwrap()[0].stale());
    assert_eq!(rib.counts(1).stale, 2);

    // End-of-RIB for IPv4: the IPv4 stale path goes, IPv6 stays.
    let (changes, _) = rib.sweep_stale(1, Some(true), 100, &ctx);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].prefix, b);
    assert!(changes[0].selected.is_empty());
    assert!(rib.get(&b).is_none());
    assert!(rib.get(&a).is_some());
    assert_eq!(rib.counts(1).stale, 1);
    assert!(rib.get(&v6).unwrap()[0].stale());

    let (changes, _) = rib.sweep_stale(1, None, 100, &ctx);
    assert_eq!(changes.len(), 1);
    assert_eq!(rib.counts(1).stale, 0);
    assert_eq!(rib.counts(1).received, 1);
}

#[test]
fn sweeping_goes_in_chunks_and_leaves_other_peers_alone() {
    let ctx = Ctx::with_peers(2);
    let mut rib = LocRib::new(8);
    for i in 0..10u8 {
        let p = prefix(&format!("10.9.{i}.0/24"));
        rib.update(p, 1, Some(Path::new(1, attrs(&[65001], 1), true)), &ctx);
        rib.update(p, 2, Some(Path::new(2, attrs(&[65002, 1], 2), true)), &ctx);
    }
    rib.mark_stale(1);
    let mut rounds = 0;
    let mut changed = 0;
    loop {
        rounds += 1;
        let (changes, more) = rib.sweep_stale(1, None, 3, &ctx);
        // Peer 1's shorter path was best: peer 2's takes over.
        for c in &changes {
            assert_eq!(peers_of(c), vec![2]);
        }
        changed += changes.len();
        if !more {
            break;
        }
    }
    assert_eq!(changed, 10);
    assert!(rounds >= 4, "in chunks of 3: {rounds} rounds");
    assert_eq!(rib.counts(1), PeerCounts::default());
    assert_eq!(rib.counts(2).received, 10);
    assert_eq!(rib.len(), 10);
}
