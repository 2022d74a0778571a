// Adj-RIB-Out for one established session: which originated prefixes we
// advertise to the peer, with which attributes (RFC 4271 §5.1: ORIGIN,
// AS_PATH with our AS prepended toward eBGP peers, NEXT_HOP = our end of
// the session, LOCAL_PREF toward iBGP peers), and the UPDATEs that move the
// peer from what it has to what it should have. IPv4 over an IPv6 session
// goes in MP_REACH_NLRI with an IPv6 next hop (RFC 8950).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use ipnetwork::IpNetwork;

use crate::wire::{
    AsPath, AsSegment, Family, MpReach, MpUnreach, Nlri, Origin, PathAttribute, Update,
};

use super::route::{PathAttributes, Route};

/// RFC 4271 §5.1.5: the LOCAL_PREF we send iBGP peers (the common default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Room left in a message for everything but the NLRI: header, the two
/// length fields, and our few attributes with MP_REACH's next hops.
const NON_NLRI_BUDGET: usize = 160;

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
    advertised: BTreeMap<IpNetwork, Arc<PathAttributes>>,
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
            advertised: BTreeMap::new(),
        }
    }

    /// The UPDATEs that bring the peer from what we advertised so far to
    /// `originate` (prefixes it cannot carry are left out), and records
    /// the new state.
    pub fn sync(&mut self, originate: &[IpNetwork]) -> Vec<Update> {
        let mut wanted: BTreeMap<IpNetwork, Arc<PathAttributes>> = BTreeMap::new();
        let mut shared: BTreeMap<Carrier, Arc<PathAttributes>> = BTreeMap::new();
        for prefix in originate {
            let Some(carrier) = self.carrier(prefix) else {
                continue;
            };
            let Some(next_hops) = self.next_hops(prefix) else {
                continue;
            };
            let path = shared
                .entry(carrier)
                .or_insert_with(|| Arc::new(self.path(next_hops)))
                .clone();
            wanted.insert(*prefix, path);
        }

        let mut announce: BTreeMap<Carrier, Vec<Nlri>> = BTreeMap::new();
        let mut withdraw: BTreeMap<Carrier, Vec<Nlri>> = BTreeMap::new();
        for (prefix, path) in &wanted {
            if self.advertised.get(prefix) != Some(path)
                && let Some(carrier) = self.carrier(prefix)
            {
                announce.entry(carrier).or_default().push(nlri(*prefix));
            }
        }
        for prefix in self.advertised.keys() {
            if !wanted.contains_key(prefix)
                && let Some(carrier) = self.carrier(prefix)
            {
                withdraw.entry(carrier).or_default().push(nlri(*prefix));
            }
        }

        let mut updates = Vec::new();
        for (carrier, prefixes) in withdraw {
            for chunk in self.chunks(&prefixes) {
                updates.push(withdrawal(carrier, chunk.to_vec()));
            }
        }
        for (carrier, prefixes) in announce {
            let Some(path) = shared.get(&carrier) else {
                continue;
            };
            for chunk in self.chunks(&prefixes) {
                updates.push(announcement(carrier, path, chunk.to_vec()));
            }
        }
        self.advertised = wanted;
        updates
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
        self.advertised
            .iter()
            .filter(|(p, _)| ipv4.is_none_or(|v4| p.is_ipv4() == v4))
            .map(|(p, path)| Route {
                nlri: nlri(*p),
                path: path.clone(),
            })
            .collect()
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

    /// Our session address; for IPv6 prefixes over an IPv4 session, its
    /// IPv4-mapped form (RFC 4291 §2.5.5.2), as FRR and BIRD send.
    fn next_hops(&self, prefix: &IpNetwork) -> Option<Vec<IpAddr>> {
        match (prefix, self.session.local_address) {
            (IpNetwork::V6(_), IpAddr::V4(v4)) => Some(vec![IpAddr::V6(v4.to_ipv6_mapped())]),
            (IpNetwork::V4(_), IpAddr::V6(v6)) if v6 == Ipv6Addr::UNSPECIFIED => None,
            (_, local) => Some(vec![local]),
        }
    }

    fn path(&self, next_hops: Vec<IpAddr>) -> PathAttributes {
        let mut attributes = vec![PathAttribute::Origin(Origin::Igp)];
        let segments = if self.session.ebgp {
            vec![AsSegment::Sequence(vec![self.session.local_as])]
        } else {
            Vec::new()
        };
        attributes.push(PathAttribute::AsPath(AsPath { segments }));
        if !self.session.ebgp {
            attributes.push(PathAttribute::LocalPref(DEFAULT_LOCAL_PREF));
        }
        PathAttributes {
            attributes,
            next_hops,
        }
    }

    fn chunks<'a>(&self, prefixes: &'a [Nlri]) -> Vec<&'a [Nlri]> {
        let budget = self.session.max_message_len.saturating_sub(NON_NLRI_BUDGET);
        let mut chunks = Vec::new();
        let mut start = 0;
        let mut used = 0;
        for (i, n) in prefixes.iter().enumerate() {
            let size = 1 + usize::from(n.prefix.prefix()).div_ceil(8);
            if used + size > budget && i > start {
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
    use std::net::Ipv4Addr;

    use super::*;

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
            assert!(u.nlri.len() * 4 <= 4096 - NON_NLRI_BUDGET);
        }
    }
}
