// The Loc-RIB (RFC 4271 §3.2): per prefix, every path a peer sent us (the
// peers' Adj-RIBs-In after import policy live here, one entry per prefix
// rather than one table per peer) plus the paths we originate, ranked by
// best path selection, with the leading equal-cost paths marked selected.
// Each change of a prefix's selected set comes out as a `Change` for the
// FIB and the Adj-RIBs-Out. Pure: the caller supplies peers and next hop
// reachability through `RibContext`.

use std::collections::HashMap;
use std::sync::Arc;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use smallvec::SmallVec;

use super::best_path::{self, Candidate, Source};
use super::route::PathAttributes;

/// A peer as the RIB knows it: an index the speaker hands out per session.
pub type PeerId = u32;
/// The paths this speaker originates.
pub const LOCAL_PEER: PeerId = 0;

type Hasher = foldhash::fast::RandomState;

/// One path for a prefix. 16 bytes: a full table is mostly these.
#[derive(Debug, Clone)]
pub struct Path {
    pub attrs: Arc<PathAttributes>,
    pub peer: PeerId,
    flags: u8,
}

const ACCEPTED: u8 = 1;
const SELECTED: u8 = 2;

impl Path {
    pub fn new(peer: PeerId, attrs: Arc<PathAttributes>, accepted: bool) -> Path {
        Path {
            attrs,
            peer,
            flags: if accepted { ACCEPTED } else { 0 },
        }
    }

    /// Passed loop detection and import policy.
    pub fn accepted(&self) -> bool {
        self.flags & ACCEPTED != 0
    }

    /// One of the prefix's best (ECMP) paths.
    pub fn selected(&self) -> bool {
        self.flags & SELECTED != 0
    }

    fn same(&self, other: &Path) -> bool {
        self.peer == other.peer && Arc::ptr_eq(&self.attrs, &other.attrs)
    }
}

/// What the Loc-RIB needs to know beyond its paths.
pub trait RibContext {
    /// The path's sender; None when the peer is gone (its paths are then
    /// not candidates).
    fn source(&self, peer: PeerId) -> Option<&Source>;
    /// Whether the path's next hop resolves (RFC 4271 §9.1.2.1).
    fn reachable(&self, path: &Path) -> bool;
}

/// A prefix whose selected paths changed.
#[derive(Debug, Clone)]
pub struct Change {
    pub prefix: IpNetwork,
    /// Best first; empty when the prefix has no usable path any more.
    pub selected: SmallVec<[Path; 1]>,
}

/// Paths per peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Held: everything the peer announced that we keep.
    pub received: usize,
    pub accepted: usize,
    /// Among the selected paths of their prefix.
    pub selected: usize,
}

type Paths = SmallVec<[Path; 1]>;

#[derive(Debug)]
pub struct LocRib {
    v4: HashMap<Ipv4Network, Paths, Hasher>,
    v6: HashMap<Ipv6Network, Paths, Hasher>,
    max_paths: usize,
    counts: HashMap<PeerId, PeerCounts, Hasher>,
}

impl LocRib {
    /// `max_paths`: how many equal paths one prefix may use at once.
    pub fn new(max_paths: usize) -> LocRib {
        LocRib {
            v4: HashMap::default(),
            v6: HashMap::default(),
            max_paths: max_paths.max(1),
            counts: HashMap::default(),
        }
    }

    pub fn max_paths(&self) -> usize {
        self.max_paths
    }

    /// Changes the ECMP width; the caller reselects everything after.
    pub fn set_max_paths(&mut self, max_paths: usize) {
        self.max_paths = max_paths.max(1);
    }

    /// Sets (Some) or removes (None) `peer`'s path for `prefix`.
    pub fn update(
        &mut self,
        prefix: IpNetwork,
        peer: PeerId,
        path: Option<Path>,
        ctx: &impl RibContext,
    ) -> Option<Change> {
        let max_paths = self.max_paths;
        let counts = &mut self.counts;
        let paths = match prefix {
            IpNetwork::V4(p) => {
                let slot = self.v4.entry(p);
                if path.is_none() && matches!(slot, std::collections::hash_map::Entry::Vacant(_)) {
                    return None;
                }
                slot.or_default()
            }
            IpNetwork::V6(p) => {
                let slot = self.v6.entry(p);
                if path.is_none() && matches!(slot, std::collections::hash_map::Entry::Vacant(_)) {
                    return None;
                }
                slot.or_default()
            }
        };
        let old = selected(paths);
        let position = paths.iter().position(|p| p.peer == peer);
        match (position, path) {
            (Some(i), Some(mut new)) => {
                count(counts, &paths[i], -1);
                new.flags &= ACCEPTED;
                count(counts, &new, 1);
                paths[i] = new;
            }
            (None, Some(mut new)) => {
                new.flags &= ACCEPTED;
                count(counts, &new, 1);
                paths.push(new);
            }
            (Some(i), None) => {
                count(counts, &paths[i], -1);
                paths.remove(i);
            }
            (None, None) => return None,
        }
        rank(paths, max_paths, ctx, counts);
        let change = changed(prefix, &old, paths);
        if paths.is_empty() {
            self.remove_prefix(prefix);
        }
        change
    }

    /// Removes `peer`'s paths (its session went down) from up to `limit`
    /// prefixes; true while it has more. In pieces, so a full table's
    /// withdrawal never holds every change in memory at once.
    pub fn remove_peer(
        &mut self,
        peer: PeerId,
        limit: usize,
        ctx: &impl RibContext,
    ) -> (Vec<Change>, bool) {
        let has = |paths: &Paths| paths.iter().any(|p| p.peer == peer);
        let v4 = self
            .v4
            .iter()
            .filter(|(_, paths)| has(paths))
            .map(|(p, _)| IpNetwork::V4(*p));
        let v6 = self
            .v6
            .iter()
            .filter(|(_, paths)| has(paths))
            .map(|(p, _)| IpNetwork::V6(*p));
        let prefixes: Vec<IpNetwork> = v4.chain(v6).take(limit.max(1)).collect();
        let changes = prefixes
            .into_iter()
            .filter_map(|prefix| self.update(prefix, peer, None, ctx))
            .collect();
        let more = self.counts(peer).received > 0;
        if !more {
            self.counts.remove(&peer);
        }
        (changes, more)
    }

    /// Ranks again every prefix with a path for which `affected` holds:
    /// after a next hop's reachability or a peer's session changed.
    pub fn reselect(
        &mut self,
        ctx: &impl RibContext,
        affected: impl Fn(&Path) -> bool,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let max_paths = self.max_paths;
        let counts = &mut self.counts;
        let mut visit = |prefix: IpNetwork, paths: &mut Paths| {
            if paths.iter().any(&affected) {
                let old = selected(paths);
                rank(paths, max_paths, ctx, counts);
                changes.extend(changed(prefix, &old, paths));
            }
        };
        for (p, paths) in self.v4.iter_mut() {
            visit(IpNetwork::V4(*p), paths);
        }
        for (p, paths) in self.v6.iter_mut() {
            visit(IpNetwork::V6(*p), paths);
        }
        changes
    }

    /// A prefix's paths, selected ones first, best first.
    pub fn get(&self, prefix: &IpNetwork) -> Option<&[Path]> {
        match prefix {
            IpNetwork::V4(p) => self.v4.get(p),
            IpNetwork::V6(p) => self.v6.get(p),
        }
        .map(|p| p.as_slice())
    }

    /// Every prefix with its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNetwork, &[Path])> {
        let v4 = self
            .v4
            .iter()
            .map(|(p, v)| (IpNetwork::V4(*p), v.as_slice()));
        let v6 = self
            .v6
            .iter()
            .map(|(p, v)| (IpNetwork::V6(*p), v.as_slice()));
        v4.chain(v6)
    }

    /// Prefixes with at least one path.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn counts(&self, peer: PeerId) -> PeerCounts {
        self.counts.get(&peer).copied().unwrap_or_default()
    }

    fn remove_prefix(&mut self, prefix: IpNetwork) {
        match prefix {
            IpNetwork::V4(p) => self.v4.remove(&p),
            IpNetwork::V6(p) => self.v6.remove(&p),
        };
    }
}

fn selected(paths: &Paths) -> SmallVec<[Path; 1]> {
    paths.iter().take_while(|p| p.selected()).cloned().collect()
}

fn changed(prefix: IpNetwork, old: &[Path], paths: &Paths) -> Option<Change> {
    let new = selected(paths);
    let same = old.len() == new.len() && old.iter().zip(&new).all(|(a, b)| a.same(b));
    (!same).then_some(Change {
        prefix,
        selected: new,
    })
}

fn count(counts: &mut HashMap<PeerId, PeerCounts, Hasher>, path: &Path, delta: isize) {
    let c = counts.entry(path.peer).or_default();
    let add = |v: &mut usize, on: bool| {
        if on {
            *v = v.saturating_add_signed(delta);
        }
    };
    add(&mut c.received, true);
    add(&mut c.accepted, path.accepted());
    add(&mut c.selected, path.selected());
}

/// Orders `paths`: selected (best first), other candidates, then paths
/// that are not candidates; marks the selected ones.
fn rank(
    paths: &mut Paths,
    max_paths: usize,
    ctx: &impl RibContext,
    counts: &mut HashMap<PeerId, PeerCounts, Hasher>,
) {
    for p in paths.iter_mut().filter(|p| p.selected()) {
        p.flags &= !SELECTED;
        let c = counts.entry(p.peer).or_default();
        c.selected = c.selected.saturating_sub(1);
    }
    let eligible = |p: &Path| p.accepted() && ctx.source(p.peer).is_some() && ctx.reachable(p);
    // The common case: one path.
    if paths.len() == 1 {
        if eligible(&paths[0]) {
            paths[0].flags |= SELECTED;
            counts.entry(paths[0].peer).or_default().selected += 1;
        }
        return;
    }
    let sources: Vec<(usize, Source)> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| eligible(p))
        .filter_map(|(i, p)| ctx.source(p.peer).map(|s| (i, *s)))
        .collect();
    let candidates: Vec<Candidate<'_>> = sources
        .iter()
        .map(|(i, source)| Candidate {
            attrs: &paths[*i].attrs,
            source,
        })
        .collect();
    let (order, n) = best_path::rank(&candidates, max_paths);
    let mut reordered: Paths = SmallVec::with_capacity(paths.len());
    let mut taken = vec![false; paths.len()];
    for (position, &c) in order.iter().enumerate() {
        let i = sources[c].0;
        let mut p = paths[i].clone();
        if position < n {
            p.flags |= SELECTED;
            counts.entry(p.peer).or_default().selected += 1;
        }
        taken[i] = true;
        reordered.push(p);
    }
    drop(candidates);
    for (i, p) in paths.iter().enumerate() {
        if !taken[i] {
            reordered.push(p.clone());
        }
    }
    *paths = reordered;
}

#[cfg(test)]
mod tests;
