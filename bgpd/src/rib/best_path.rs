// Best path selection: RFC 4271 §9.1.2.2 with the tie-breakers most
// implementations add after it (RFC 4456 §9 for reflected routes). The
// order, first difference wins:
//
//   1. locally originated over learned;
//   2. highest LOCAL_PREF (absent: 100);
//   3. shortest AS_PATH (an AS_SET counts as one);
//   4. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//   5. lowest MED, only between paths from the same neighbouring AS
//      (absent: 0), decided per neighbouring AS first ("deterministic MED")
//      so the result does not depend on arrival order;
//   6. eBGP-learned over iBGP-learned;
//      -- paths equal up to here are equal-cost multipath (ECMP) candidates;
//   7. lowest router ID of the sender, or its ORIGINATOR_ID when present;
//   8. shortest CLUSTER_LIST;
//   9. lowest peer address.
//
// Paths whose next hop does not resolve are not candidates at all
// (RFC 4271 §9.1.2.1); the Loc-RIB filters them before calling here.

use std::cmp::{Ordering, Reverse};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::wire::Origin;

use super::route::PathAttributes;

/// RFC 4271 §5.1.5: what an absent LOCAL_PREF counts as.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Where a path came from, as best path selection needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Originated by this speaker (no peer).
    pub local: bool,
    pub ebgp: bool,
    pub router_id: Ipv4Addr,
    pub address: IpAddr,
    /// An iBGP peer that is our route reflector client (RFC 4456).
    pub rr_client: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub attrs: &'a PathAttributes,
    pub source: &'a Source,
}

/// The step of the order above at which two paths differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Local,
    LocalPref,
    AsPathLength,
    Origin,
    Med,
    Ebgp,
    RouterId,
    ClusterList,
    PeerAddress,
    /// Indistinguishable (the same peer's path, compared with itself).
    Equal,
}

impl Step {
    /// Whether paths first differing here are still ECMP peers.
    pub fn multipath(self) -> bool {
        self >= Step::RouterId
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Local => "locally originated",
            Step::LocalPref => "higher local preference",
            Step::AsPathLength => "shorter AS path",
            Step::Origin => "lower origin",
            Step::Med => "lower MED from the same neighbouring AS",
            Step::Ebgp => "eBGP over iBGP",
            Step::RouterId => "lower router ID",
            Step::ClusterList => "shorter cluster list",
            Step::PeerAddress => "lower peer address",
            Step::Equal => "equal",
        })
    }
}

/// The comparison key of one path; smaller is better. MED is zeroed when
/// comparing paths from different neighbouring ASes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    learned: bool,
    local_pref: Reverse<u32>,
    as_path_len: usize,
    origin: u8,
    med: u32,
    ibgp: bool,
    router_id: Ipv4Addr,
    cluster_list_len: usize,
    address: IpAddr,
}

impl Candidate<'_> {
    fn key(&self, with_med: bool) -> Key {
        let a = self.attrs;
        Key {
            learned: !self.source.local,
            local_pref: Reverse(a.local_pref().unwrap_or(DEFAULT_LOCAL_PREF)),
            as_path_len: a.as_path_len(),
            origin: match a.origin() {
                Some(Origin::Igp) => 0,
                Some(Origin::Egp) => 1,
                // RFC 4271 makes ORIGIN mandatory; a path without one is
                // the least preferred.
                Some(Origin::Incomplete) | None => 2,
            },
            med: if with_med { a.med().unwrap_or(0) } else { 0 },
            ibgp: !self.source.ebgp && !self.source.local,
            router_id: a.originator_id().unwrap_or(self.source.router_id),
            cluster_list_len: a.cluster_list_len(),
            address: self.source.address,
        }
    }

    fn same_neighbour_as(&self, other: &Candidate<'_>) -> bool {
        self.attrs.neighbour_as() == other.attrs.neighbour_as()
    }
}

/// Compares two paths by the order above; `Less` means `a` is better.
/// Returns the step that decided.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> (Ordering, Step) {
    let with_med = a.same_neighbour_as(b);
    let (ka, kb) = (a.key(with_med), b.key(with_med));
    let steps = [
        (ka.learned.cmp(&kb.learned), Step::Local),
        (ka.local_pref.cmp(&kb.local_pref), Step::LocalPref),
        (ka.as_path_len.cmp(&kb.as_path_len), Step::AsPathLength),
        (ka.origin.cmp(&kb.origin), Step::Origin),
        (ka.med.cmp(&kb.med), Step::Med),
        (ka.ibgp.cmp(&kb.ibgp), Step::Ebgp),
        (ka.router_id.cmp(&kb.router_id), Step::RouterId),
        (
            ka.cluster_list_len.cmp(&kb.cluster_list_len),
            Step::ClusterList,
        ),
        (ka.address.cmp(&kb.address), Step::PeerAddress),
    ];
    steps
        .into_iter()
        .find(|(o, _)| o.is_ne())
        .unwrap_or((Ordering::Equal, Step::Equal))
}

/// Ranks `candidates`: their indexes best first, and how many lead as
/// ECMP paths (at least 1 when any exist, at most `max_paths`). The order
/// is a total one, so it does not depend on the input order: the winner of
/// each neighbouring AS (with MED) is found first, the winners compete
/// without MED, the winner's ECMP partners follow, then the rest, both by
/// the same order without MED.
pub fn rank(candidates: &[Candidate<'_>], max_paths: usize) -> (Vec<usize>, usize) {
    let Some(best) = (0..candidates.len())
        .filter(|&i| {
            // A neighbouring AS's winner: no path of the same AS beats it.
            let c = &candidates[i];
            candidates
                .iter()
                .filter(|o| o.same_neighbour_as(c))
                .all(|o| o.key(true) >= c.key(true))
        })
        .min_by_key(|&i| candidates[i].key(false))
    else {
        return (Vec::new(), 0);
    };
    let winner = &candidates[best];
    let mut rest: Vec<usize> = (0..candidates.len()).filter(|&i| i != best).collect();
    rest.sort_by_key(|&i| {
        let partner = compare(winner, &candidates[i]).1.multipath();
        (!partner, candidates[i].key(false))
    });
    let partners = rest
        .iter()
        .take_while(|&&i| compare(winner, &candidates[i]).1.multipath())
        .count();
    let mut order = Vec::with_capacity(candidates.len());
    order.push(best);
    order.extend(rest);
    (order, 1 + partners.min(max_paths.saturating_sub(1)))
}

#[cfg(test)]
mod tests;
