// Adj-RIB-In for one peer (RFC 4271 §3.2, §9.1): the routes it sent,
// applied UPDATE by UPDATE, with RFC 7606 treat-as-withdraw honoured and
// RFC 4271 §9.1.2 AS-path loop detection deciding which are accepted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::wire::{ErrorAction, Family, Nlri, PathAttribute, Safi, Update};

use super::route::{PathAttributes, Route};

/// What one UPDATE changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    pub announced: usize,
    pub withdrawn: usize,
    /// The UPDATE was an End-of-RIB marker (RFC 4724 §2) for this family.
    pub end_of_rib: Option<Family>,
    /// RFC 7606: an attribute error turned the announcements into
    /// withdrawals.
    pub treated_as_withdraw: bool,
    /// Announcements of families not negotiated, ignored.
    pub ignored: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    path: Arc<PathAttributes>,
    /// Passed loop detection (and, later, import policy).
    accepted: bool,
}

#[derive(Debug, Clone)]
pub struct AdjRibIn {
    local_as: u32,
    routes: HashMap<Nlri, Entry>,
    accepted: usize,
}

impl AdjRibIn {
    pub fn new(local_as: u32) -> AdjRibIn {
        AdjRibIn {
            local_as,
            routes: HashMap::new(),
            accepted: 0,
        }
    }

    /// Applies one UPDATE received on a session that negotiated `families`.
    pub fn apply(&mut self, update: &Update, families: &[Family]) -> UpdateSummary {
        let mut summary = UpdateSummary::default();
        if let Some(family) = update.end_of_rib_family() {
            summary.end_of_rib = Some(family);
            return summary;
        }
        summary.treated_as_withdraw = update
            .malformed
            .iter()
            .any(|m| m.action == ErrorAction::TreatAsWithdraw);

        for nlri in &update.withdrawn {
            summary.withdrawn += self.remove(nlri);
        }
        let mut attributes = Vec::with_capacity(update.attributes.len());
        let mut next_hop = None;
        let mut mp_reach = None;
        for attribute in &update.attributes {
            match attribute {
                // Only families we hold: an IPv4 multicast withdrawal must
                // not remove the unicast route of the same prefix.
                PathAttribute::MpUnreach(unreach)
                    if families.contains(&unreach.family)
                        && unreach.family.safi == Safi::UNICAST =>
                {
                    for nlri in &unreach.withdrawn {
                        summary.withdrawn += self.remove(nlri);
                    }
                }
                PathAttribute::MpUnreach(_) => {}
                PathAttribute::MpReach(reach) => mp_reach = Some(reach),
                PathAttribute::NextHop(address) => next_hop = Some(IpAddr::V4(*address)),
                other => attributes.push(other.clone()),
            }
        }

        let announced = update
            .nlri
            .iter()
            .map(|n| {
                (
                    n,
                    Family::IPV4_UNICAST,
                    next_hop.into_iter().collect::<Vec<_>>(),
                )
            })
            .chain(mp_reach.into_iter().flat_map(|reach| {
                reach
                    .nlri
                    .iter()
                    .map(move |n| (n, reach.family, reach.next_hops.clone()))
            }));
        let mut shared: HashMap<Vec<IpAddr>, Arc<PathAttributes>> = HashMap::new();
        for (nlri, family, next_hops) in announced {
            if summary.treated_as_withdraw {
                summary.withdrawn += self.remove(nlri);
                continue;
            }
            if !families.contains(&family) || family.safi != Safi::UNICAST {
                summary.ignored += 1;
                continue;
            }
            let path = shared
                .entry(next_hops.clone())
                .or_insert_with(|| {
                    Arc::new(PathAttributes {
                        attributes: attributes.clone(),
                        next_hops,
                    })
                })
                .clone();
            let accepted = !path.as_path_contains(self.local_as);
            self.insert(*nlri, Entry { path, accepted });
            summary.announced += 1;
        }
        summary
    }

    /// Number of routes held.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Routes that passed loop detection.
    pub fn accepted(&self) -> usize {
        self.accepted
    }

    /// Routes, optionally of one address family, sorted by prefix.
    pub fn routes(&self, ipv4: Option<bool>) -> Vec<(Route, bool)> {
        let mut out: Vec<(Route, bool)> = self
            .routes
            .iter()
            .filter(|(n, _)| ipv4.is_none_or(|v4| n.prefix.is_ipv4() == v4))
            .map(|(nlri, e)| {
                (
                    Route {
                        nlri: *nlri,
                        path: e.path.clone(),
                    },
                    e.accepted,
                )
            })
            .collect();
        out.sort_by_key(|(r, _)| (r.nlri.prefix.is_ipv6(), r.nlri.prefix, r.nlri.path_id));
        out
    }

    /// Forgets everything (the session went down).
    pub fn clear(&mut self) {
        self.routes.clear();
        self.accepted = 0;
    }

    fn insert(&mut self, nlri: Nlri, entry: Entry) {
        if entry.accepted {
            self.accepted += 1;
        }
        if let Some(old) = self.routes.insert(nlri, entry)
            && old.accepted
        {
            self.accepted -= 1;
        }
    }

    fn remove(&mut self, nlri: &Nlri) -> usize {
        match self.routes.remove(nlri) {
            Some(old) => {
                if old.accepted {
                    self.accepted -= 1;
                }
                1
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::wire::{AsPath, AsSegment, MalformedAttribute, MpReach, MpUnreach, Origin};

    use super::*;

    fn nlri(s: &str) -> Nlri {
        Nlri {
            path_id: None,
            prefix: s.parse().unwrap(),
        }
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
    fn ipv4_nlri_and_mp_reach_are_stored_with_their_next_hops() {
        let mut rib = AdjRibIn::new(65001);
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        attributes.push(PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec!["fd00::1".parse().unwrap()],
            nlri: vec![nlri("fd00:244::/64")],
        }));
        let update = Update {
            attributes,
            nlri: vec![nlri("10.244.0.0/26"), nlri("10.244.0.64/26")],
            ..Update::default()
        };
        let summary = rib.apply(&update, &BOTH);
        assert_eq!(summary.announced, 3);
        assert_eq!((rib.len(), rib.accepted()), (3, 3));
        let routes = rib.routes(None);
        assert_eq!(routes[0].0.nlri, nlri("10.244.0.0/26"));
        assert_eq!(
            routes[0].0.path.next_hops,
            ["10.0.0.1".parse::<IpAddr>().unwrap()]
        );
        // The two IPv4 prefixes share one attribute set.
        assert!(Arc::ptr_eq(&routes[0].0.path, &routes[1].0.path));
        assert_eq!(
            routes[2].0.path.next_hops,
            ["fd00::1".parse::<IpAddr>().unwrap()]
        );
        // MP attributes are not kept among the path attributes.
        assert_eq!(routes[2].0.path.attributes, attrs(&[65000]));
        assert_eq!(rib.routes(Some(false)).len(), 1);
    }

    #[test]
    fn withdrawals_remove_from_both_carriers() {
        let mut rib = AdjRibIn::new(65001);
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        attributes.push(PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec!["fd00::1".parse().unwrap()],
            nlri: vec![nlri("fd00:244::/64")],
        }));
        rib.apply(
            &Update {
                attributes,
                nlri: vec![nlri("10.244.0.0/26")],
                ..Update::default()
            },
            &BOTH,
        );
        let withdraw = Update {
            withdrawn: vec![nlri("10.244.0.0/26"), nlri("10.9.9.0/24")],
            attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("fd00:244::/64")],
            })],
            ..Update::default()
        };
        let summary = rib.apply(&withdraw, &BOTH);
        assert_eq!(summary.withdrawn, 2, "the unknown prefix is not counted");
        assert!(rib.is_empty());
        assert_eq!(rib.accepted(), 0);
    }

    #[test]
    fn treat_as_withdraw_removes_what_the_update_announces() {
        let mut rib = AdjRibIn::new(65001);
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        let good = Update {
            attributes: attributes.clone(),
            nlri: vec![nlri("10.244.0.0/26")],
            ..Update::default()
        };
        rib.apply(&good, &BOTH);
        let bad = Update {
            malformed: vec![MalformedAttribute {
                type_code: 1,
                action: ErrorAction::TreatAsWithdraw,
                reason: "bad ORIGIN".into(),
            }],
            ..good
        };
        let summary = rib.apply(&bad, &BOTH);
        assert!(summary.treated_as_withdraw);
        assert_eq!((summary.announced, summary.withdrawn), (0, 1));
        assert!(rib.is_empty());
    }

    #[test]
    fn a_path_through_our_own_as_is_held_but_not_accepted() {
        let mut rib = AdjRibIn::new(65001);
        let mut attributes = attrs(&[65000, 65001, 65002]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        rib.apply(
            &Update {
                attributes,
                nlri: vec![nlri("10.1.0.0/16")],
                ..Update::default()
            },
            &BOTH,
        );
        assert_eq!((rib.len(), rib.accepted()), (1, 0));
        assert!(!rib.routes(None)[0].1);
        // Re-announced without the loop it becomes accepted, counted once.
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::NextHop(Ipv4Addr::new(10, 0, 0, 1)));
        rib.apply(
            &Update {
                attributes,
                nlri: vec![nlri("10.1.0.0/16")],
                ..Update::default()
            },
            &BOTH,
        );
        assert_eq!((rib.len(), rib.accepted()), (1, 1));
    }

    #[test]
    fn families_not_negotiated_are_ignored_and_end_of_rib_is_recognised() {
        let mut rib = AdjRibIn::new(65001);
        let mut attributes = attrs(&[65000]);
        attributes.push(PathAttribute::MpReach(MpReach {
            family: Family::IPV6_UNICAST,
            next_hops: vec!["fd00::1".parse().unwrap()],
            nlri: vec![nlri("fd00:244::/64")],
        }));
        let summary = rib.apply(
            &Update {
                attributes,
                ..Update::default()
            },
            &[Family::IPV4_UNICAST],
        );
        assert_eq!((summary.announced, summary.ignored), (0, 1));
        assert!(rib.is_empty());

        let eor = rib.apply(&Update::end_of_rib(Family::IPV6_UNICAST), &BOTH);
        assert_eq!(eor.end_of_rib, Some(Family::IPV6_UNICAST));
        let eor = rib.apply(&Update::default(), &BOTH);
        assert_eq!(eor.end_of_rib, Some(Family::IPV4_UNICAST));
    }
}
