// Adj-RIB-Out for one established session (RFC 4271 §3.2, §9.2): what we
// advertised to the peer, what should change, and the UPDATEs that carry
// the change, prefixes with the same attributes packed together up to the
// peer's message size. IPv4 over an IPv6 session goes in MP_REACH_NLRI
// with an IPv6 next hop (RFC 8950). Attributes come from rib/export.rs.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::wire::{AsSegment, Family, MpReach, MpUnreach, Nlri, PathAttribute, Update};

use super::route::{PathAttributes, Route};

/// Message header (19) and the two length fields of an UPDATE (4).
const UPDATE_OVERHEAD: usize = 23;

/// What the outbound side needs to know about an established session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSession {
    pub local_as: u32,
    /// The peer is in another AS.
    pub ebgp: bool,
    /// Our end of the TCP connection: the next hop we announce.
    pub local_address: IpAddr,
    /// Families both sides negotiated.
    pub families: Vec<Family>,
    /// RFC 8950 negotiated for IPv4 unicast with IPv6 next hops.
    pub ipv4_over_ipv6: bool,
    /// Largest message the peer accepts (RFC 8654).
    pub max_message_len: usize,
}

#[derive(Debug, Clone)]
pub struct AdjRibOut {
    session: OutboundSession,
    advertised: HashMap<IpNetwork, Arc<PathAttributes>, foldhash::fast::RandomState>,
    /// Changes not yet turned into UPDATEs; None withdraws.
    pending: BTreeMap<IpNetwork, Option<Arc<PathAttributes>>>,
}

/// How a prefix travels to this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Carrier {
    /// RFC 4271 NLRI field with NEXT_HOP.
    Ipv4Classic,
    /// MP_REACH_NLRI of this family.
    Mp(Family),
}

impl AdjRibOut {
    pub fn new(session: OutboundSession) -> AdjRibOut {
        AdjRibOut {
            session,
            advertised: HashMap::default(),
            pending: BTreeMap::new(),
        }
    }

    /// Records what the peer should have for `prefix` (None: nothing).
    /// Prefixes the session cannot carry are ignored.
    pub fn set(&mut self, prefix: IpNetwork, attrs: Option<Arc<PathAttributes>>) {
        if self.carrier(&prefix).is_none() {
            return;
        }
        let unchanged = match (&attrs, self.advertised.get(&prefix)) {
            (Some(new), Some(old)) => Arc::ptr_eq(new, old) || new == old,
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            self.pending.remove(&prefix);
        } else {
            self.pending.insert(prefix, attrs);
        }
    }

    /// The UPDATEs for every change recorded since the last call
    /// (withdrawals first), and records them as advertised.
    pub fn take_updates(&mut self) -> Vec<Update> {
        // Keyed by the interned set's address: equal sets are one set.
        type Group = (Arc<PathAttributes>, Vec<Nlri>);
        let mut announce: BTreeMap<(Carrier, *const PathAttributes), Group> = BTreeMap::new();
        let mut withdraw: BTreeMap<Carrier, Vec<Nlri>> = BTreeMap::new();
        for (prefix, attrs) in std::mem::take(&mut self.pending) {
            let Some(carrier) = self.carrier(&prefix) else {
                continue;
            };
            match attrs {
                Some(attrs) => {
                    announce
                        .entry((carrier, Arc::as_ptr(&attrs)))
                        .or_insert_with(|| (attrs.clone(), Vec::new()))
                        .1
                        .push(nlri(prefix));
                    self.advertised.insert(prefix, attrs);
                }
                None => {
                    if self.advertised.remove(&prefix).is_some() {
                        withdraw.entry(carrier).or_default().push(nlri(prefix));
                    }
                }
            }
        }
        let mut updates = Vec::new();
        let room = self
            .session
            .max_message_len
            .saturating_sub(UPDATE_OVERHEAD + 32);
        for (carrier, prefixes) in withdraw {
            for chunk in chunks(&prefixes, room) {
                updates.push(withdrawal(carrier, chunk.to_vec()));
            }
        }
        for ((carrier, _), (path, prefixes)) in announce {
            let room = self
                .session
                .max_message_len
                .saturating_sub(UPDATE_OVERHEAD + attributes_size(&path));
            // Attributes too large for any message to carry even one prefix
            // (RFC 4271 §9.2): not sent, said once per UPDATE.
            if room < 17 {
                tracing::warn!(
                    prefixes = prefixes.len(),
                    "attributes too large for an UPDATE; withdrawn instead"
                );
                for n in &prefixes {
                    self.advertised.remove(&n.prefix);
                }
                // The peer may hold an older version: a withdrawal of what
                // it does not have is harmless.
                let room = self
                    .session
                    .max_message_len
                    .saturating_sub(UPDATE_OVERHEAD + 32);
                for chunk in chunks(&prefixes, room) {
                    updates.push(withdrawal(carrier, chunk.to_vec()));
                }
                continue;
            }
            for chunk in chunks(&prefixes, room) {
                updates.push(announcement(carrier, &path, chunk.to_vec()));
            }
        }
        updates
    }

    /// Everything advertised of one address family again (the peer asked
    /// for a route refresh, RFC 2918).
    pub fn readvertise(&mut self, ipv4: bool) -> Vec<Update> {
        let again: Vec<(IpNetwork, Arc<PathAttributes>)> = self
            .advertised
            .iter()
            .filter(|(p, _)| p.is_ipv4() == ipv4)
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (prefix, attrs) in again {
            self.advertised.remove(&prefix);
            self.pending.insert(prefix, Some(attrs));
        }
        self.take_updates()
    }

    /// End-of-RIB markers (RFC 4724 §2), one per negotiated family, sent
    /// after the initial advertisement.
    pub fn end_of_rib(&self) -> Vec<Update> {
        self.session
            .families
            .iter()
            .map(|f| Update::end_of_rib(*f))
            .collect()
    }

    pub fn session(&self) -> &OutboundSession {
        &self.session
    }

    pub fn len(&self) -> usize {
        self.advertised.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advertised.is_empty()
    }

    /// What we advertise, optionally of one address family.
    pub fn routes(&self, ipv4: Option<bool>) -> Vec<Route> {
        let mut routes: Vec<Route> = self
            .advertised
            .iter()
            .filter(|(p, _)| ipv4.is_none_or(|v4| p.is_ipv4() == v4))
            .map(|(p, path)| Route {
                nlri: nlri(*p),
                path: path.clone(),
            })
            .collect();
        routes.sort_by_key(|r| r.nlri.prefix);
        routes
    }

    /// Our session address as next hop for `prefix`; for IPv6 prefixes over
    /// an IPv4 session, its IPv4-mapped form (RFC 4291 §2.5.5.2), as FRR
    /// and BIRD send. None when the session cannot carry the prefix.
    pub fn self_next_hops(&self, prefix: &IpNetwork) -> Option<Vec<IpAddr>> {
        self.carrier(prefix)?;
        match (prefix, self.session.local_address) {
            (IpNetwork::V6(_), IpAddr::V4(v4)) => Some(vec![IpAddr::V6(v4.to_ipv6_mapped())]),
            (IpNetwork::V4(_), IpAddr::V6(v6)) if v6 == Ipv6Addr::UNSPECIFIED => None,
            (_, local) => Some(vec![local]),
        }
    }

    fn carrier(&self, prefix: &IpNetwork) -> Option<Carrier> {
        let families = &self.session.families;
        match prefix {
            IpNetwork::V4(_) if families.contains(&Family::IPV4_UNICAST) => {
                if self.session.local_address.is_ipv4() {
                    Some(Carrier::Ipv4Classic)
                } else if self.session.ipv4_over_ipv6 {
                    Some(Carrier::Mp(Family::IPV4_UNICAST))
                } else {
                    None
                }
            }
            IpNetwork::V6(_) if families.contains(&Family::IPV6_UNICAST) => {
                Some(Carrier::Mp(Family::IPV6_UNICAST))
            }
            _ => None,
        }
    }
}

/// Splits `prefixes` into runs whose NLRI encoding fits in `room` bytes.
fn chunks(prefixes: &[Nlri], room: usize) -> Vec<&[Nlri]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, n) in prefixes.iter().enumerate() {
        let size = 1 + usize::from(n.prefix.prefix()).div_ceil(8);
        if used + size > room && i > start {
            chunks.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += size;
    }
    if start < prefixes.len() {
        chunks.push(&prefixes[start..]);
    }
    chunks
}

/// An upper bound on the encoded size of `path`'s attributes with its
/// next hop carrier (NEXT_HOP, or MP_REACH_NLRI without its NLRI), counting
/// AS numbers twice for a 2-octet peer's AS_PATH plus AS4_PATH.
fn attributes_size(path: &PathAttributes) -> usize {
    const HEADER: usize = 4;
    let value = |a: &PathAttribute| match a {
        PathAttribute::AsPath(p) => p
            .segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) | AsSegment::Set(v) => 2 + 8 * v.len(),
            })
            .sum(),
        PathAttribute::Communities(c) => 4 * c.len(),
        PathAttribute::ExtendedCommunities(c) => 8 * c.len(),
        PathAttribute::LargeCommunities(c) => 12 * c.len(),
        PathAttribute::ClusterList(c) => 4 * c.len(),
        PathAttribute::Unknown(raw) => raw.value.len(),
        PathAttribute::MpReach(_) | PathAttribute::MpUnreach(_) => 0,
        // ORIGIN, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR
        // (and its AS4 twin), ORIGINATOR_ID.
        _ => 16,
    };
    let attributes: usize = path.attributes.iter().map(|a| HEADER + value(a)).sum();
    // MP_REACH_NLRI: AFI, SAFI, length, reserved and up to two next hops.
    let carrier = HEADER + 5 + 16 * path.next_hops.len().max(1);
    attributes + carrier
}

fn nlri(prefix: IpNetwork) -> Nlri {
    Nlri {
        path_id: None,
        prefix,
    }
}

fn announcement(carrier: Carrier, path: &PathAttributes, prefixes: Vec<Nlri>) -> Update {
    let mut attributes = path.attributes.clone();
    match carrier {
        Carrier::Ipv4Classic => {
            if let Some(IpAddr::V4(hop)) = path.next_hops.first() {
                attributes.push(PathAttribute::NextHop(*hop));
            }
            Update {
                attributes,
                nlri: prefixes,
                ..Update::default()
            }
        }
        Carrier::Mp(family) => {
            attributes.insert(
                0,
                PathAttribute::MpReach(MpReach {
                    family,
                    next_hops: path.next_hops.clone(),
                    nlri: prefixes,
                }),
            );
            Update {
                attributes,
                ..Update::default()
            }
        }
    }
}

fn withdrawal(carrier: Carrier, prefixes: Vec<Nlri>) -> Update {
    match carrier {
        Carrier::Ipv4Classic => Update {
            withdrawn: prefixes,
            ..Update::default()
        },
        Carrier::Mp(family) => Update {
            attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                family,
                withdrawn: prefixes,
            })],
            ..Update::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::rib::attrs::AttrInterner;
    use crate::rib::export::{ExportTarget, Learned, export};
    use crate::wire::{AsPath, AsSegment, Origin};

    impl AdjRibOut {
        /// Advertises exactly `originate`, as our own prefixes.
        fn sync(&mut self, originate: &[IpNetwork]) -> Vec<Update> {
            let mut interner = AttrInterner::new();
            let wanted: BTreeSet<IpNetwork> = originate.iter().copied().collect();
            let gone: Vec<IpNetwork> = self
                .advertised
                .keys()
                .filter(|p| !wanted.contains(p))
                .copied()
                .collect();
            for p in gone {
                self.set(p, None);
            }
            let local = PathAttributes {
                attributes: vec![PathAttribute::Origin(Origin::Igp)],
                next_hops: vec![],
            };
            for p in &wanted {
                let target = ExportTarget {
                    local_as: self.session.local_as,
                    ebgp: self.session.ebgp,
                    self_next_hops: self.self_next_hops(p),
                    next_hop_self: self.session.ebgp,
                    policy: None,
                    rr_client: false,
                    cluster_id: std::net::Ipv4Addr::UNSPECIFIED,
                };
                let attrs = export(&target, p, &local, Learned::Local);
                self.set(*p, attrs.map(|a| interner.intern_owned(a)));
            }
            self.take_updates()
        }
    }

    fn session(local: &str, ebgp: bool) -> OutboundSession {
        OutboundSession {
            local_as: 4_200_000_001,
            ebgp,
            local_address: local.parse().unwrap(),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            ipv4_over_ipv6: false,
            max_message_len: 4096,
        }
    }

    fn prefixes(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn ebgp_over_ipv4_announces_ipv4_classically_and_ipv6_in_mp_reach() {
        let mut out = AdjRibOut::new(session("10.0.1.1", true));
        let updates = out.sync(&prefixes(&["10.244.1.0/26", "fd00:244:1::/64"]));
        assert_eq!(updates.len(), 2);
        let v4 = &updates[0];
        assert_eq!(v4.nlri, [nlri("10.244.1.0/26".parse().unwrap())]);
        assert_eq!(
            v4.attributes,
            [
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::AsPath(AsPath {
                    segments: vec![AsSegment::Sequence(vec![4_200_000_001])]
                }),
                PathAttribute::NextHop(Ipv4Addr::new(10, 0, 1, 1)),
            ]
        );
        let PathAttribute::MpReach(reach) = &updates[1].attributes[0] else {
            panic!("IPv6 goes in MP_REACH: {:?}", updates[1]);
        };
        assert_eq!(reach.family, Family::IPV6_UNICAST);
        assert_eq!(
            reach.next_hops,
            ["::ffff:10.0.1.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(out.len(), 2);
        // Nothing changed: nothing to send.
        assert!(
            out.sync(&prefixes(&["10.244.1.0/26", "fd00:244:1::/64"]))
                .is_empty()
        );
    }

    #[test]
    fn ibgp_sends_local_pref_and_no_as() {
        let mut out = AdjRibOut::new(session("10.0.1.1", false));
        let updates = out.sync(&prefixes(&["10.244.1.0/26"]));
        assert!(
            updates[0]
                .attributes
                .contains(&PathAttribute::LocalPref(100))
        );
        assert!(
            updates[0]
                .attributes
                .contains(&PathAttribute::AsPath(AsPath::default()))
        );
    }

    #[test]
    fn removed_prefixes_are_withdrawn_by_their_carrier() {
        let mut out = AdjRibOut::new(session("10.0.1.1", true));
        out.sync(&prefixes(&[
            "10.244.1.0/26",
            "10.244.2.0/26",
            "fd00:244:1::/64",
        ]));
        let updates = out.sync(&prefixes(&["10.244.2.0/26"]));
        assert_eq!(updates.len(), 2);
        assert_eq!(
            updates[0].withdrawn,
            [nlri("10.244.1.0/26".parse().unwrap())]
        );
        assert_eq!(
            updates[1].attributes,
            [PathAttribute::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![nlri("fd00:244:1::/64".parse().unwrap())],
            })]
        );
        assert_eq!(out.routes(None).len(), 1);
    }

    #[test]
    fn ipv4_over_ipv6_needs_extended_next_hop() {
        let mut out = AdjRibOut::new(session("fd00::1", true));
        let updates = out.sync(&prefixes(&["10.244.1.0/26", "fd00:244:1::/64"]));
        assert_eq!(updates.len(), 1, "IPv4 cannot be carried: {updates:?}");
        assert_eq!(out.routes(Some(true)).len(), 0);

        let mut out = AdjRibOut::new(OutboundSession {
            ipv4_over_ipv6: true,
            ..session("fd00::1", true)
        });
        let updates = out.sync(&prefixes(&["10.244.1.0/26"]));
        let PathAttribute::MpReach(reach) = &updates[0].attributes[0] else {
            panic!("{updates:?}");
        };
        assert_eq!(reach.family, Family::IPV4_UNICAST);
        assert_eq!(reach.next_hops, ["fd00::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn families_not_negotiated_are_not_sent() {
        let mut out = AdjRibOut::new(OutboundSession {
            families: vec![Family::IPV4_UNICAST],
            ..session("10.0.1.1", true)
        });
        let updates = out.sync(&prefixes(&["10.244.1.0/26", "fd00:244:1::/64"]));
        assert_eq!(updates.len(), 1);
        assert_eq!(out.end_of_rib().len(), 1);
    }

    #[test]
    fn many_prefixes_are_split_to_fit_the_message_size() {
        let mut out = AdjRibOut::new(session("10.0.1.1", true));
        let many: Vec<IpNetwork> = (0..2000u32)
            .map(|i| {
                IpNetwork::V4(
                    ipnetwork::Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24)
                        .unwrap(),
                )
            })
            .collect();
        let updates = out.sync(&many);
        assert!(updates.len() > 1);
        let total: usize = updates.iter().map(|u| u.nlri.len()).sum();
        assert_eq!(total, 2000);
        for u in &updates {
            assert!(u.nlri.len() * 4 <= 4096 - UPDATE_OVERHEAD);
        }
    }

    /// Many prefixes with large attributes (a long AS path, 200
    /// communities) still go out in UPDATEs that encode within 4096 bytes,
    /// toward a 2-octet-AS peer too (AS4_PATH doubles the path).
    #[test]
    fn large_attributes_shrink_the_nlri_share() {
        use crate::wire::codec::encode_message;
        use crate::wire::{AsPath, Community, Message, Origin};
        let mut out = AdjRibOut::new(session("10.0.1.1", false));
        let attrs = Arc::new(PathAttributes {
            attributes: vec![
                PathAttribute::Origin(Origin::Igp),
                PathAttribute::AsPath(AsPath {
                    segments: vec![AsSegment::Sequence(
                        (4_200_000_000..4_200_000_100).collect(),
                    )],
                }),
                PathAttribute::Communities((0..200).map(Community).collect()),
                PathAttribute::LocalPref(100),
            ],
            next_hops: vec!["10.0.1.1".parse().unwrap()],
        });
        for i in 0..3000u32 {
            let prefix = IpNetwork::V4(
                ipnetwork::Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap(),
            );
            out.set(prefix, Some(attrs.clone()));
        }
        let updates = out.take_updates();
        let total: usize = updates.iter().map(|u| u.nlri.len()).sum();
        assert_eq!(total, 3000);
        for params in [
            crate::wire::CodecParams::default(),
            crate::wire::CodecParams {
                four_octet_as: true,
                ..Default::default()
            },
        ] {
            for u in &updates {
                let bytes = encode_message(&Message::Update(u.clone()), &params).unwrap();
                assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
            }
        }
    }

    /// Attributes no message can carry are not advertised: the prefix is
    /// withdrawn in case the peer has an older version.
    #[test]
    fn attributes_too_large_for_any_message_are_left_out() {
        use crate::wire::Community;
        let mut out = AdjRibOut::new(session("10.0.1.1", false));
        let attrs = Arc::new(PathAttributes {
            attributes: vec![PathAttribute::Communities(
                (0..1100).map(Community).collect(),
            )],
            next_hops: vec!["10.0.1.1".parse().unwrap()],
        });
        out.set("10.9.0.0/24".parse().unwrap(), Some(attrs));
        let updates = out.take_updates();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].withdrawn.len(), 1, "{updates:?}");
        assert!(updates[0].nlri.is_empty());
        assert!(out.is_empty());
    }
}
