// Reading one received UPDATE into RIB terms (RFC 4271 §9, RFC 4760):
// which prefixes it withdraws and which it announces with which shared
// attribute set, honouring RFC 7606 treat-as-withdraw, ignoring families
// the session did not negotiate, and noting an AS-path loop (RFC 4271
// §9.1.2: such paths are held but not used), and a route reflection loop
// (RFC 4456 §8: our own ORIGINATOR_ID, or our CLUSTER_ID in the
// CLUSTER_LIST), held the same way. Pure; the peer task applies
// the hijack guard and import policy to what this returns.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::wire::{ErrorAction, Family, PathAttribute, Safi, Update};

use super::route::PathAttributes;

#[derive(Debug, Default)]
pub struct Inbound {
    pub withdrawn: Vec<IpNetwork>,
    /// Prefixes with their attributes; one allocation per next hop set.
    pub announced: Vec<(IpNetwork, Arc<PathAttributes>)>,
    /// The AS_PATH holds our own AS, or the path came back to us through
    /// route reflection.
    pub looped: bool,
    /// RFC 7606: an attribute error turned the announcements into
    /// withdrawals.
    pub treated_as_withdraw: bool,
    /// Announcements of families not negotiated, ignored.
    pub ignored: usize,
    /// The UPDATE was an End-of-RIB marker (RFC 4724 §2) for this family.
    pub end_of_rib: Option<Family>,
}

impl Inbound {
    /// RFC 4456 §8: a path whose ORIGINATOR_ID is our router ID, or whose
    /// CLUSTER_LIST holds our cluster ID, came back to us: it is looped.
    pub fn check_reflection_loop(&mut self, router_id: Ipv4Addr, cluster_id: Option<Ipv4Addr>) {
        // Every announced prefix shares the attributes: one check does.
        let Some((_, attrs)) = self.announced.first() else {
            return;
        };
        // Our own route came back (RFC 4456 §8, for every iBGP speaker);
        // or, on a reflector, it went round our cluster.
        let back = attrs.originator_id() == Some(router_id)
            || cluster_id.is_some_and(|id| {
                attrs.attributes.iter().any(|a| match a {
                    PathAttribute::ClusterList(ids) => ids.contains(&id),
                    _ => false,
                })
            });
        self.looped |= back;
    }

    /// From an eBGP peer, ORIGINATOR_ID and CLUSTER_LIST mean nothing and
    /// are dropped (RFC 7606 §7.9, §7.10), so they neither steer best path
    /// selection nor make a path look looped.
    pub fn strip_reflection_attributes(&mut self) {
        let has = |attrs: &PathAttributes| {
            attrs.attributes.iter().any(|a| {
                matches!(
                    a,
                    PathAttribute::OriginatorId(_) | PathAttribute::ClusterList(_)
                )
            })
        };
        let mut last: Option<(Arc<PathAttributes>, Arc<PathAttributes>)> = None;
        for (_, attrs) in &mut self.announced {
            if !has(attrs) {
                continue;
            }
            let stripped = match &last {
                Some((seen, stripped)) if Arc::ptr_eq(seen, attrs) => stripped.clone(),
                _ => {
                    let mut copy = PathAttributes::clone(attrs);
                    copy.attributes.retain(|a| {
                        !matches!(
                            a,
                            PathAttribute::OriginatorId(_) | PathAttribute::ClusterList(_)
                        )
                    });
                    let copy = Arc::new(copy);
                    last = Some((attrs.clone(), copy.clone()));
                    copy
                }
            };
            *attrs = stripped;
        }
    }
}

/// Reads `update`, received on a session that negotiated `families`, by a
/// speaker in `local_as`.
pub fn read(update: Update, families: &[Family], local_as: u32) -> Inbound {
    let mut inbound = Inbound::default();
    if let Some(family) = update.end_of_rib_family() {
        inbound.end_of_rib = Some(family);
        return inbound;
    }
    inbound.treated_as_withdraw = update
        .malformed
        .iter()
        .any(|m| m.action == ErrorAction::TreatAsWithdraw);
    let unicast = |f: &Family| families.contains(f) && f.safi == Safi::UNICAST;

    inbound
        .withdrawn
        .extend(update.withdrawn.iter().map(|n| n.prefix));
    let mut attributes = Vec::with_capacity(update.attributes.len());
    let mut next_hop = None;
    let mut reach = None;
    for attribute in update.attributes {
        match attribute {
            // Only families we hold: an IPv4 multicast withdrawal must not
            // remove the unicast route of the same prefix.
            PathAttribute::MpUnreach(unreach) if unicast(&unreach.family) => {
                inbound
                    .withdrawn
                    .extend(unreach.withdrawn.iter().map(|n| n.prefix));
            }
            PathAttribute::MpUnreach(_) => {}
            PathAttribute::MpReach(r) => reach = Some(r),
            PathAttribute::NextHop(address) => next_hop = Some(IpAddr::V4(address)),
            other => attributes.push(other),
        }
    }

    let mut announced: Vec<(IpNetwork, Vec<IpAddr>)> = Vec::new();
    if unicast(&Family::IPV4_UNICAST) {
        let hops: Vec<IpAddr> = next_hop.into_iter().collect();
        announced.extend(update.nlri.iter().map(|n| (n.prefix, hops.clone())));
    } else {
        inbound.ignored += update.nlri.len();
    }
    if let Some(reach) = reach {
        if unicast(&reach.family) {
            announced.extend(
                reach
                    .nlri
                    .iter()
                    .map(|n| (n.prefix, reach.next_hops.clone())),
            );
        } else {
            inbound.ignored += reach.nlri.len();
        }
    }
    if inbound.treated_as_withdraw {
        inbound
            .withdrawn
            .extend(announced.into_iter().map(|(p, _)| p));
        return inbound;
    }
    let mut shared: Vec<Arc<PathAttributes>> = Vec::new();
    for (prefix, hops) in announced {
        let attrs = match shared.iter().find(|a| a.next_hops == hops) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(PathAttributes {
                    attributes: attributes.clone(),
                    next_hops: hops,
                });
                shared.push(a.clone());
                a
            }
        };
        inbound.announced.push((prefix, attrs));
    }
    // Every announced prefix shares the attributes: one check does.
    inbound.looped = shared.first().is_some_and(|a| a.as_path_contains(local_as));
    inbound
}

#[cfg(test)]
mod tests {
    use crate::wire::{AsPath, AsSegment, MalformedAttribute, MpReach, MpUnreach, Nlri, Origin};

    use super::*;

    fn nlri(s: &str) -> Nlri {
        Nlri {
            path_id: None,
            prefix: s.parse().expect("prefix"),
        }
    }

    fn prefix(s: &str) -> IpNetwork {
        s.parse().expect("prefix")
    }

    fn attrs(path: &[u32]) -> Vec<PathAttribute> {
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath {
                segments: vec![AsSegment::Sequence(path.to_vec())],
            }),
        ]
    }

    const BOTH: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

    #[test]
    fn ipv4_nlri_and_mp_reach_come_with_their_next_hops() {
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        attributes.push(PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec!["fd00::1".parse().expect("address")],
            nlri: vec![nlri("fd00:244::/64")],
        }));
        let update = Update {
            attributes,
            nlri: vec![nlri("10.244.0.0/26"), nlri("10.244.0.64/26")],
            ..Update::default()
        };
        let inbound = read(update, &BOTH, 65001);
        let routes = &inbound.announced;
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].0, prefix("10.244.0.0/26"));
        assert_eq!(
            routes[0].1.next_hops,
            ["10.0.0.1".parse::<IpAddr>().expect("address")]
        );
        // The two IPv4 prefixes share one attribute set.
        assert!(Arc::ptr_eq(&routes[0].1, &routes[1].1));
        assert_eq!(
            routes[2].1.next_hops,
            ["fd00::1".parse::<IpAddr>().expect("address")]
        );
        // MP attributes are not kept among the path attributes.
        assert_eq!(routes[2].1.attributes, attrs(&[65000]));
        assert!(!inbound.looped);
    }

    #[test]
    fn withdrawals_come_from_both_carriers() {
        let withdraw = Update {
            withdrawn: vec![nlri("10.244.0.0/26")],
            attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("fd00:244::/64")],
            })],
            ..Update::default()
        };
        let inbound = read(withdraw, &BOTH, 65001);
        assert_eq!(
            inbound.withdrawn,
            [prefix("10.244.0.0/26"), prefix("fd00:244::/64")]
        );
        assert!(inbound.announced.is_empty());
    }

    #[test]
    fn treat_as_withdraw_withdraws_what_the_update_announces() {
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        let bad = Update {
            attributes,
            nlri: vec![nlri("10.244.0.0/26")],
            malformed: vec![MalformedAttribute {
                type_code: 1,
                action: ErrorAction::TreatAsWithdraw,
                reason: "bad ORIGIN".into(),
            }],
            ..Update::default()
        };
        let inbound = read(bad, &BOTH, 65001);
        assert!(inbound.treated_as_withdraw);
        assert_eq!(inbound.withdrawn, [prefix("10.244.0.0/26")]);
        assert!(inbound.announced.is_empty());
    }

    #[test]
    fn a_path_through_our_own_as_is_marked_looped() {
        let mut attributes = attrs(&[65000, 65001, 65002]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        let update = Update {
            attributes,
            nlri: vec![nlri("10.1.0.0/16")],
            ..Update::default()
        };
        let inbound = read(update.clone(), &BOTH, 65001);
        assert!(inbound.looped);
        assert_eq!(inbound.announced.len(), 1);
        assert!(!read(update, &BOTH, 65009).looped);
    }

    #[test]
    fn a_reflected_path_that_came_back_is_marked_looped() {
        let me = Ipv4Addr::new(10, 0, 0, 1);
        let cluster = Ipv4Addr::new(10, 0, 0, 100);
        let looped = |cluster_id: Option<Ipv4Addr>, extra: Vec<PathAttribute>| {
            let mut attributes = attrs(&[]);
            attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 2)));
            attributes.extend(extra);
            let update = Update {
                attributes,
                nlri: vec![nlri("10.244.0.0/26")],
                ..Update::default()
            };
            let mut inbound = read(update, &BOTH, 65001);
            inbound.check_reflection_loop(me, cluster_id);
            inbound.looped
        };
        let read_with = |extra: Vec<PathAttribute>| looped(Some(cluster), extra);
        assert!(!read_with(vec![]));
        assert!(read_with(vec![PathAttribute::OriginatorId(me)]));
        assert!(!read_with(vec![PathAttribute::OriginatorId(
            Ipv4Addr::new(10, 0, 0, 9)
        )]));
        assert!(read_with(vec![PathAttribute::ClusterList(vec![
            Ipv4Addr::new(10, 0, 0, 200),
            cluster
        ])]));
        assert!(!read_with(vec![PathAttribute::ClusterList(vec![
            Ipv4Addr::new(10, 0, 0, 200)
        ])]));
        // A speaker that does not reflect (no cluster ID) ignores
        // CLUSTER_LIST, even one holding its router ID, but still its own
        // ORIGINATOR_ID.
        let not_reflector = |extra: Vec<PathAttribute>| looped(None, extra);
        assert!(!not_reflector(vec![PathAttribute::ClusterList(vec![
            me, cluster
        ])]));
        assert!(not_reflector(vec![PathAttribute::OriginatorId(me)]));
    }

    #[test]
    fn reflection_attributes_from_ebgp_are_dropped() {
        let mut attributes = attrs(&[65002]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 2)));
        attributes.push(PathAttribute::OriginatorId(Ipv4Addr::new(10, 0, 0, 9)));
        attributes.push(PathAttribute::ClusterList(vec![Ipv4Addr::new(
            10, 0, 0, 100,
        )]));
        let update = Update {
            attributes,
            nlri: vec![nlri("10.244.0.0/26"), nlri("10.244.0.64/26")],
            ..Update::default()
        };
        let mut inbound = read(update, &BOTH, 65001);
        inbound.strip_reflection_attributes();
        for (_, attrs) in &inbound.announced {
            assert!(attrs.originator_id().is_none());
            assert!(
                !attrs
                    .attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::ClusterList(_))),
                "{attrs:?}"
            );
            assert!(
                attrs
                    .attributes
                    .iter()
                    .any(|a| matches!(a, PathAttribute::AsPath(_)))
            );
        }
        // Still one attribute set for both prefixes.
        assert!(Arc::ptr_eq(
            &inbound.announced[0].1,
            &inbound.announced[1].1
        ));
    }

    #[test]
    fn families_not_negotiated_are_ignored_and_end_of_rib_is_recognised() {
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec!["fd00::1".parse().expect("address")],
            nlri: vec![nlri("fd00:244::/64")],
        }));
        let update = Update {
            attributes,
            ..Update::default()
        };
        let inbound = read(update, &[Family::IPV4_UNICAST], 65001);
        assert_eq!((inbound.announced.len(), inbound.ignored), (0, 1));

        let eor = read(Update::end_of_rib(Family::IPV6_UNICAST), &BOTH, 65001);
        assert_eq!(eor.end_of_rib, Some(Family::IPV6_UNICAST));
        let eor = read(Update::default(), &BOTH, 65001);
        assert_eq!(eor.end_of_rib, Some(Family::IPV4_UNICAST));
    }
}
