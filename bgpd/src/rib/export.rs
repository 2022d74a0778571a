// What a Loc-RIB best path becomes on its way to one peer (RFC 4271 §5.1,
// §9.1.3, §9.2): which paths may go at all (iBGP-learned ones go to iBGP
// peers only by route reflection, RFC 4456 §6, with ORIGINATOR_ID and
// CLUSTER_LIST added as §8 says), the export policy (default per RFC 8212: nothing to eBGP
// peers but our own prefixes), and the attribute changes a hop makes:
// our AS prepended and our address as next hop toward eBGP peers,
// LOCAL_PREF only inside the AS, MED not carried into another AS, the
// RFC 1997 well-known communities honoured,
// reflection attributes not leaving the AS, unknown optional transitive
// attributes passed on with the partial bit.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::wire::{AsPath, Community, Origin, PathAttribute};

use super::best_path::DEFAULT_LOCAL_PREF;

/// RFC 1997 well-known communities.
const NO_EXPORT: Community = Community(0xFFFF_FF01);
const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
use super::policy::{self, Direction, PolicyContext, Verdict};
use super::route::PathAttributes;
use crate::config::RoutePolicy;

/// How the path reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Originated here.
    Local,
    Ebgp,
    Ibgp {
        /// The sending peer is our route reflector client.
        from_client: bool,
        /// The sending peer's BGP Identifier: the ORIGINATOR_ID when we
        /// reflect a path that carries none.
        sender: Ipv4Addr,
    },
}

/// The receiving peer, as export needs it.
#[derive(Debug, Clone)]
pub struct ExportTarget<'a> {
    pub local_as: u32,
    pub ebgp: bool,
    /// Our next hop(s) toward this peer for the prefix's family (None: the
    /// session cannot carry a next hop of this family).
    pub self_next_hops: Option<Vec<IpAddr>>,
    /// Send our address as next hop (default: toward eBGP peers only);
    /// our own prefixes always carry it.
    pub next_hop_self: bool,
    pub policy: Option<&'a RoutePolicy>,
    /// The receiving peer is our route reflector client (RFC 4456).
    pub rr_client: bool,
    /// Our CLUSTER_ID: the configured one, else the router ID (RFC 4456
    /// §7); prepended to the CLUSTER_LIST of what we reflect.
    pub cluster_id: Ipv4Addr,
}

/// The attributes to advertise `prefix` with, or None to not advertise it.
pub fn export(
    target: &ExportTarget<'_>,
    prefix: &IpNetwork,
    attrs: &PathAttributes,
    learned: Learned,
) -> Option<PathAttributes> {
    // RFC 4456 §6: from a client to every iBGP peer, from a non-client
    // to clients only; without reflection iBGP paths stay (RFC 4271 §9.2).
    let reflected_from = match learned {
        Learned::Ibgp {
            from_client,
            sender,
        } if !target.ebgp => {
            if !from_client && !target.rr_client {
                return None;
            }
            Some(sender)
        }
        _ => None,
    };
    let ctx = PolicyContext {
        local_as: target.local_as,
        ebgp: target.ebgp,
    };
    // Our own prefixes always go out unless a rule says otherwise (the
    // RFC 8212 exception); learned ones follow the policy or its default.
    let verdict = if learned == Learned::Local {
        policy::evaluate_originated(target.policy, &ctx, prefix, attrs)
    } else {
        policy::evaluate(target.policy, &ctx, prefix, attrs, Direction::Export)
    };
    let filtered = match verdict {
        Verdict::Accept(changed) => changed,
        Verdict::Reject => return None,
    };
    if let Some(reason) = well_known_stop(filtered.as_ref().unwrap_or(attrs), target.ebgp) {
        tracing::trace!(%prefix, reason, "not exported");
        return None;
    }
    let policy_set_med = filtered
        .as_ref()
        .is_some_and(|f| f.med().is_some() && f.med() != attrs.med());
    let source = filtered.as_ref().unwrap_or(attrs);

    let mut attributes = Vec::with_capacity(source.attributes.len() + 2);
    let mut has_origin = false;
    let mut has_as_path = false;
    for a in &source.attributes {
        match a {
            PathAttribute::Origin(_) => {
                has_origin = true;
                attributes.push(a.clone());
            }
            PathAttribute::AsPath(path) => {
                has_as_path = true;
                attributes.push(PathAttribute::AsPath(if target.ebgp {
                    prepend(path, target.local_as)
                } else {
                    path.clone()
                }));
            }
            PathAttribute::LocalPref(_) if target.ebgp => {}
            // RFC 4271 §5.1.4: a MED from a neighbouring AS stays in our
            // AS; one our policy set may go out.
            PathAttribute::MultiExitDisc(_)
                if target.ebgp && learned == Learned::Ebgp && !policy_set_med => {}
            // RFC 4456 §8: reflection attributes never leave the AS.
            // RFC 4456 §8: reflection attributes never leave the AS, and
            // from an eBGP peer they are not ours to pass on (RFC 7606 §7.9).
            PathAttribute::OriginatorId(_) | PathAttribute::ClusterList(_)
                if target.ebgp || learned == Learned::Ebgp => {}
            // RFC 4456 §8: our CLUSTER_ID goes in front.
            PathAttribute::ClusterList(ids) if reflected_from.is_some() => {
                let mut ids = ids.clone();
                ids.insert(0, target.cluster_id);
                attributes.push(PathAttribute::ClusterList(ids));
            }
            // Carriers are rebuilt per peer by the Adj-RIB-Out.
            PathAttribute::NextHop(_) | PathAttribute::MpReach(_) | PathAttribute::MpUnreach(_) => {
            }
            other => attributes.extend(other.pass_on()),
        }
    }
    if !has_origin {
        attributes.insert(0, PathAttribute::Origin(Origin::Igp));
    }
    if !has_as_path {
        let empty = AsPath::default();
        attributes.insert(
            1,
            PathAttribute::AsPath(if target.ebgp {
                prepend(&empty, target.local_as)
            } else {
                empty
            }),
        );
    }
    if !target.ebgp && source.local_pref().is_none() {
        attributes.push(PathAttribute::LocalPref(DEFAULT_LOCAL_PREF));
    }
    if let Some(sender) = reflected_from {
        if source.originator_id().is_none() {
            attributes.push(PathAttribute::OriginatorId(sender));
        }
        if !attributes
            .iter()
            .any(|a| matches!(a, PathAttribute::ClusterList(_)))
        {
            attributes.push(PathAttribute::ClusterList(vec![target.cluster_id]));
        }
    }

    // A reflector leaves the next hop alone (RFC 4456 §10).
    let own_next_hop =
        (target.next_hop_self && reflected_from.is_none()) || learned == Learned::Local;
    let next_hops = if own_next_hop || source.next_hops.is_empty() {
        target.self_next_hops.clone()?
    } else {
        source.next_hops.clone()
    };
    Some(PathAttributes {
        attributes,
        next_hops,
    })
}

/// RFC 1997: NO_ADVERTISE goes to no peer; NO_EXPORT and
/// NO_EXPORT_SUBCONFED (no confederations here) stay inside the AS.
fn well_known_stop(attrs: &PathAttributes, ebgp: bool) -> Option<&'static str> {
    let communities = attrs.attributes.iter().find_map(|a| match a {
        PathAttribute::Communities(c) => Some(c),
        _ => None,
    })?;
    if communities.contains(&NO_ADVERTISE) {
        return Some("NO_ADVERTISE");
    }
    if ebgp && (communities.contains(&NO_EXPORT) || communities.contains(&NO_EXPORT_SUBCONFED)) {
        return Some("NO_EXPORT");
    }
    None
}

/// RFC 4271 §5.1.2: our AS goes first.
fn prepend(path: &AsPath, asn: u32) -> AsPath {
    let mut path = path.clone();
    path.prepend(asn, 1);
    path
}

#[cfg(test)]
mod tests;
