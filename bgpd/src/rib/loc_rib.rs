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
/// Kept from a session that went down while the peer restarts (RFC 4724
/// §4.2): still used and exported until replaced or swept.
const STALE: u8 = 4;

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

    /// Held for a restarting peer (RFC 4724 §4.2) until it sends the
    /// prefix again or its stale paths are swept.
    pub fn stale(&self) -> bool {
        self.flags & STALE != 0
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
    /// Kept from a lost session while the peer restarts (RFC 4724 §4.2).
    pub stale: usize,
}

type Paths = SmallVec<[Path; 1]>;

/// A hash table in shards: growing one doubles only that shard, so a full
/// table's peak memory stays near its size instead of 1.5 times it.
#[derive(Debug)]
struct Sharded<K, V> {
    shards: Vec<HashMap<K, V, Hasher>>,
    hasher: Hasher,
}

const SHARDS: usize = 64;

impl<K: std::hash::Hash + Eq + Copy, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            hasher: Hasher::default(),
        }
    }

    fn shard(&self, key: &K) -> usize {
        use std::hash::BuildHasher;
        // The top bits: the shard's own table uses the low ones.
        (self.hasher.hash_one(key) >> 58) as usize % SHARDS
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    fn insert(&mut self, key: K, value: V) {
        let i = self.shard(&key);
        self.shards[i].insert(key, value);
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.shard(key);
        self.shards[i].remove(key)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.shards.iter_mut().flat_map(|s| s.iter_mut())
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

/// One family's prefixes. Most prefixes have one path: those are kept
/// apart with just that path (24 bytes a slot rather than 32), the others
/// with their list.
#[derive(Debug)]
struct Table<K> {
    one: Sharded<K, Path>,
    many: HashMap<K, Paths, Hasher>,
}

impl<K: std::hash::Hash + Eq + Copy> Table<K> {
    fn new() -> Self {
        Table {
            one: Sharded::new(),
            many: HashMap::default(),
        }
    }

    /// Takes the prefix's paths out (empty when it has none).
    fn take(&mut self, key: &K) -> Paths {
        if let Some(path) = self.one.remove(key) {
            let mut paths = Paths::new();
            paths.push(path);
            return paths;
        }
        self.many.remove(key).unwrap_or_default()
    }

    /// Puts them back; no paths, no prefix.
    fn put(&mut self, key: K, mut paths: Paths) {
        match paths.len() {
            0 => {}
            1 => {
                if let Some(path) = paths.pop() {
                    self.one.insert(key, path);
                }
            }
            _ => {
                self.many.insert(key, paths);
            }
        }
    }

    fn get(&self, key: &K) -> Option<&[Path]> {
        match self.one.get(key) {
            Some(path) => Some(std::slice::from_ref(path)),
            None => self.many.get(key).map(|p| p.as_slice()),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &[Path])> {
        let one = self.one.iter().map(|(k, p)| (k, std::slice::from_ref(p)));
        let many = self.many.iter().map(|(k, p)| (k, p.as_slice()));
        one.chain(many)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut [Path])> {
        let one = self
            .one
            .iter_mut()
            .map(|(k, p)| (k, std::slice::from_mut(p)));
        let many = self.many.iter_mut().map(|(k, p)| (k, p.as_mut_slice()));
        one.chain(many)
    }

    fn len(&self) -> usize {
        self.one.len() + self.many.len()
    }
}

#[derive(Debug)]
pub struct LocRib {
    v4: Table<Ipv4Network>,
    v6: Table<Ipv6Network>,
    max_paths: usize,
    counts: HashMap<PeerId, PeerCounts, Hasher>,
}

impl LocRib {
    /// `max_paths`: how many equal paths one prefix may use at once.
    pub fn new(max_paths: usize) -> LocRib {
        LocRib {
            v4: Table::new(),
            v6: Table::new(),
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
        let mut taken = match prefix {
            IpNetwork::V4(p) => self.v4.take(&p),
            IpNetwork::V6(p) => self.v6.take(&p),
        };
        let paths = &mut taken;
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
            (None, None) => {
                match prefix {
                    IpNetwork::V4(p) => self.v4.put(p, taken),
                    IpNetwork::V6(p) => self.v6.put(p, taken),
                }
                return None;
            }
        }
        rank(paths, max_paths, ctx, counts);
        let change = changed(prefix, &old, paths);
        match prefix {
            IpNetwork::V4(p) => self.v4.put(p, taken),
            IpNetwork::V6(p) => self.v6.put(p, taken),
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
        let has = |paths: &[Path]| paths.iter().any(|p| p.peer == peer);
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

    /// Marks every path of `peer` stale (its session was lost and it
    /// restarts, RFC 4724 §4.2); selection does not change. Returns how
    /// many paths are stale now.
    pub fn mark_stale(&mut self, peer: PeerId) -> usize {
        let mut marked = 0;
        let mut mark = |paths: &mut [Path]| {
            for p in paths.iter_mut().filter(|p| p.peer == peer && !p.stale()) {
                p.flags |= STALE;
                marked += 1;
            }
        };
        for (_, paths) in self.v4.iter_mut() {
            mark(paths);
        }
        for (_, paths) in self.v6.iter_mut() {
            mark(paths);
        }
        let c = self.counts.entry(peer).or_default();
        c.stale += marked;
        c.stale
    }

    /// Removes `peer`'s stale paths (of IPv4 prefixes only with
    /// `ipv4 == Some(true)`, IPv6 with `Some(false)`) from up to `limit`
    /// prefixes; true while it may have more. In pieces, as `remove_peer`.
    pub fn sweep_stale(
        &mut self,
        peer: PeerId,
        ipv4: Option<bool>,
        limit: usize,
        ctx: &impl RibContext,
    ) -> (Vec<Change>, bool) {
        let limit = limit.max(1);
        let has = |paths: &[Path]| paths.iter().any(|p| p.peer == peer && p.stale());
        let mut prefixes: Vec<IpNetwork> = Vec::new();
        if ipv4 != Some(false) {
            prefixes.extend(
                self.v4
                    .iter()
                    .filter(|(_, paths)| has(paths))
                    .map(|(p, _)| IpNetwork::V4(*p))
                    .take(limit),
            );
        }
        if ipv4 != Some(true) && prefixes.len() < limit {
            let room = limit - prefixes.len();
            prefixes.extend(
                self.v6
                    .iter()
                    .filter(|(_, paths)| has(paths))
                    .map(|(p, _)| IpNetwork::V6(*p))
                    .take(room),
            );
        }
        let more = prefixes.len() == limit;
        let changes = prefixes
            .into_iter()
            .filter_map(|prefix| self.update(prefix, peer, None, ctx))
            .collect();
        if self.counts(peer).received == 0 {
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
        let mut visit = |prefix: IpNetwork, paths: &mut [Path]| {
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
    }

    /// Every prefix with its paths, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNetwork, &[Path])> {
        let v4 = self.v4.iter().map(|(p, v)| (IpNetwork::V4(*p), v));
        let v6 = self.v6.iter().map(|(p, v)| (IpNetwork::V6(*p), v));
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

    /// Prefixes with at least one path: (IPv4, IPv6).
    pub fn len_by_family(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    /// Every peer's path counts (peers with no path left may be absent).
    pub fn all_counts(&self) -> impl Iterator<Item = (PeerId, PeerCounts)> + '_ {
        self.counts.iter().map(|(peer, counts)| (*peer, *counts))
    }
}

/// The selected (ECMP) paths of a prefix's paths: they lead, best first.
pub fn selected_paths(paths: &[Path]) -> &[Path] {
    let n = paths.iter().take_while(|p| p.selected()).count();
    &paths[..n]
}

fn selected(paths: &[Path]) -> SmallVec<[Path; 1]> {
    selected_paths(paths).iter().cloned().collect()
}

fn changed(prefix: IpNetwork, old: &[Path], paths: &[Path]) -> Option<Change> {
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
    add(&mut c.stale, path.stale());
}

/// Orders `paths`: selected (best first), other candidates, then paths
/// that are not candidates; marks the selected ones.
fn rank(
    paths: &mut [Path],
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
    paths.clone_from_slice(&reordered);
}

#[cfg(test)]
mod tests;
