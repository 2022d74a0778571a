// A block: one slice of a pool, affine to one node, holding the allocations made
// from it (by offset from the block's first address) and the released addresses
// still cooling down. The pure per-block operations live here; deciding which
// block to use is the allocator's job.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::{Family, net};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRecord {
    pub cidr: IpNetwork,
    /// Name of the pool the block was carved from.
    pub pool: String,
    /// The node the block is affine to.
    #[serde(default)]
    pub affinity: Option<String>,
    /// Offset in the block → who holds that address.
    #[serde(default)]
    pub allocations: BTreeMap<u32, Allocation>,
    /// Offset → when it was released (Unix ms); not handed out again until the
    /// cool-down has passed.
    #[serde(default)]
    pub cooling: BTreeMap<u32, u64>,
    /// When the last allocation left (Unix ms); None while any is held.
    #[serde(default)]
    pub empty_since_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub handle: String,
    /// Node of the pod: differs from the block's affinity when borrowed.
    pub node: String,
    #[serde(default)]
    pub pod_namespace: String,
    #[serde(default)]
    pub pod_name: String,
    pub allocated_at_ms: u64,
}

/// Offsets are u32: a block never holds more addresses than that (validation caps
/// blocks at 4096 addresses; a foreign record of a larger block is only used up to
/// this many).
const MAX_OFFSETS: u128 = 1 << 32;

impl BlockRecord {
    /// A block just claimed for `node`, holding nothing yet.
    pub fn claimed(cidr: IpNetwork, pool: &str, node: &str) -> Self {
        Self {
            cidr,
            pool: pool.to_string(),
            affinity: Some(node.to_string()),
            allocations: BTreeMap::new(),
            cooling: BTreeMap::new(),
            empty_since_ms: None,
        }
    }

    pub fn family(&self) -> Family {
        Family::of_net(&self.cidr)
    }

    /// Addresses in the block.
    pub fn capacity(&self) -> u128 {
        net::size(&self.cidr)
    }

    /// Offsets that can be used: the capacity, at most 2^32.
    fn offset_limit(&self) -> u128 {
        self.capacity().min(MAX_OFFSETS)
    }

    pub fn address(&self, offset: u32) -> Option<IpAddr> {
        if u128::from(offset) >= self.capacity() {
            return None;
        }
        net::from_u128(self.family(), net::first(&self.cidr) + u128::from(offset))
    }

    pub fn offset_of(&self, ip: IpAddr) -> Option<u32> {
        if Family::of_ip(ip) != self.family() {
            return None;
        }
        let n = net::to_u128(ip);
        if n < net::first(&self.cidr) || n > net::last(&self.cidr) {
            return None;
        }
        u32::try_from(n - net::first(&self.cidr)).ok()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.offset_of(ip).is_some()
    }

    pub fn is_affine_to(&self, node: &str) -> bool {
        self.affinity.as_deref() == Some(node)
    }

    /// When the address at `offset` may be handed out again, if it is cooling down.
    pub fn cooling_until(&self, offset: u32, cooldown_ms: u64) -> Option<u64> {
        self.cooling
            .get(&offset)
            .map(|at| at.saturating_add(cooldown_ms))
    }

    pub fn is_cooling(&self, offset: u32, cooldown_ms: u64, now_ms: u64) -> bool {
        self.cooling_until(offset, cooldown_ms)
            .is_some_and(|until| until > now_ms)
    }

    /// Released addresses still cooling down (and not taken again explicitly).
    pub fn cooling_count(&self, cooldown_ms: u64, now_ms: u64) -> u64 {
        self.cooling
            .iter()
            .filter(|(o, at)| {
                at.saturating_add(cooldown_ms) > now_ms && !self.allocations.contains_key(o)
            })
            .count() as u64
    }

    /// The earliest time a cooling address is free again, if any is cooling.
    pub fn first_free_again(&self, cooldown_ms: u64, now_ms: u64) -> Option<u64> {
        self.cooling
            .iter()
            .filter(|(o, _)| !self.allocations.contains_key(o))
            .map(|(_, at)| at.saturating_add(cooldown_ms))
            .filter(|until| *until > now_ms)
            .min()
    }

    /// The time the last cooling entry expires (for leak detection).
    pub fn last_cooling_until(&self, cooldown_ms: u64) -> Option<u64> {
        self.cooling
            .values()
            .map(|at| at.saturating_add(cooldown_ms))
            .max()
    }

    /// Every usable offset is allocated (a cheap test before searching).
    pub fn is_full(&self) -> bool {
        self.allocations.len() as u128 >= self.offset_limit()
    }

    /// Allocations made for pods of other nodes (borrowed from this block).
    pub fn borrowed_by_others(&self) -> u64 {
        self.allocations
            .values()
            .filter(|a| !self.is_affine_to(&a.node))
            .count() as u64
    }

    /// The lowest offset that is not allocated, not cooling down and not in
    /// `reserved` (merged, sorted, inclusive address-number ranges, as
    /// `net::merged_ranges` gives). O(allocations + cooling + reserved ranges).
    pub fn first_usable(
        &self,
        reserved: &[(u128, u128)],
        cooldown_ms: u64,
        now_ms: u64,
    ) -> Option<u32> {
        let base = net::first(&self.cidr);
        let limit = self.offset_limit();
        let mut allocated = self.allocations.keys().map(|o| u128::from(*o)).peekable();
        let mut cooling = self
            .cooling
            .iter()
            .filter(|(_, at)| at.saturating_add(cooldown_ms) > now_ms)
            .map(|(o, _)| u128::from(*o))
            .peekable();
        // Reserved ranges as offsets in this block.
        let last = base + (limit - 1);
        let mut reserved = reserved
            .iter()
            .filter(|(s, e)| *e >= base && *s <= last)
            .map(|(s, e)| (s.max(&base) - base, e.min(&last) - base))
            .peekable();
        let mut c: u128 = 0;
        'search: while c < limit {
            while let Some(o) = allocated.next_if(|o| *o <= c) {
                if o == c {
                    c += 1;
                    continue 'search;
                }
            }
            while let Some(o) = cooling.next_if(|o| *o <= c) {
                if o == c {
                    c += 1;
                    continue 'search;
                }
            }
            while let Some((_, e)) = reserved.next_if(|(s, _)| *s <= c) {
                if e >= c {
                    c = e + 1;
                    continue 'search;
                }
            }
            return u32::try_from(c).ok();
        }
        None
    }

    /// Record an allocation at `offset`: it stops cooling and the block is in use.
    pub fn allocate(&mut self, offset: u32, allocation: Allocation) {
        self.allocations.insert(offset, allocation);
        self.cooling.remove(&offset);
        self.empty_since_ms = None;
    }

    /// Free the address at `offset` if `handle` holds it: it cools down from `now`,
    /// and the block's empty time starts when it was the last. False (nothing
    /// changed) when the address is not held by `handle`.
    pub fn release(&mut self, offset: u32, handle: &str, now_ms: u64) -> bool {
        if self
            .allocations
            .get(&offset)
            .is_none_or(|a| a.handle != handle)
        {
            return false;
        }
        self.allocations.remove(&offset);
        self.cooling.insert(offset, now_ms);
        if self.allocations.is_empty() {
            self.empty_since_ms = Some(now_ms);
        }
        true
    }

    /// Drop cooling entries whose cool-down is over (done whenever the block is
    /// written anyway, so records stay small).
    pub fn prune_cooling(&mut self, cooldown_ms: u64, now_ms: u64) {
        self.cooling
            .retain(|_, at| at.saturating_add(cooldown_ms) > now_ms);
    }

    /// Problems that make a stored record unusable: the allocator relies on every
    /// offset lying inside the block.
    pub fn validate(&self) -> Result<(), String> {
        if !net::is_network_address(&self.cidr) {
            return Err(format!("block CIDR {} has host bits set", self.cidr));
        }
        let limit = self.offset_limit();
        if let Some(o) = self
            .allocations
            .keys()
            .chain(self.cooling.keys())
            .find(|o| u128::from(**o) >= limit)
        {
            return Err(format!("offset {o} is outside the block {}", self.cidr));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str) -> BlockRecord {
        BlockRecord::claimed(cidr.parse().unwrap(), "p", "n1")
    }

    fn alloc(handle: &str, node: &str) -> Allocation {
        Allocation {
            handle: handle.into(),
            node: node.into(),
            pod_namespace: "ns".into(),
            pod_name: "pod".into(),
            allocated_at_ms: 1,
        }
    }

    fn ranges(nets: &[&str], b: &BlockRecord) -> Vec<(u128, u128)> {
        let nets: Vec<IpNetwork> = nets.iter().map(|n| n.parse().unwrap()).collect();
        net::merged_ranges(&nets, b.family(), 0, u128::MAX)
    }

    #[test]
    fn addresses_and_offsets() {
        let b = block("10.0.0.64/26");
        assert_eq!(b.capacity(), 64);
        assert_eq!(b.address(0), Some("10.0.0.64".parse().unwrap()));
        assert_eq!(b.address(63), Some("10.0.0.127".parse().unwrap()));
        assert_eq!(b.address(64), None);
        assert_eq!(b.offset_of("10.0.0.70".parse().unwrap()), Some(6));
        assert_eq!(b.offset_of("10.0.0.128".parse().unwrap()), None);
        assert_eq!(b.offset_of("fd00::1".parse().unwrap()), None);
        let b6 = block("fd00::40/122");
        assert_eq!(b6.address(1), Some("fd00::41".parse().unwrap()));
        assert_eq!(b6.offset_of("fd00::7f".parse().unwrap()), Some(63));
        // A huge foreign block: offsets stop at 2^32, nothing overflows.
        let huge = block("::/0");
        assert_eq!(huge.address(u32::MAX), Some("::ffff:ffff".parse().unwrap()));
        assert_eq!(huge.offset_of("ffff::".parse().unwrap()), None);
        assert_eq!(huge.first_usable(&[], 0, 0), Some(0));
        assert!(!huge.is_full());
    }

    #[test]
    fn first_usable_skips_allocated_cooling_and_reserved() {
        let mut b = block("10.0.0.0/28");
        assert_eq!(b.first_usable(&[], 1000, 0), Some(0));
        b.allocate(0, alloc("h0", "n1"));
        b.allocate(1, alloc("h1", "n1"));
        assert_eq!(b.first_usable(&[], 1000, 0), Some(2));
        b.cooling.insert(2, 500);
        assert_eq!(b.first_usable(&[], 1000, 1000), Some(3));
        // Cool-down over at released + cooldown.
        assert_eq!(b.first_usable(&[], 1000, 1500), Some(2));
        let r = ranges(&["10.0.0.2/31", "10.0.0.4/30", "10.1.0.0/16"], &b);
        assert_eq!(b.first_usable(&r, 1000, 0), Some(8));
        let all = ranges(&["10.0.0.0/24"], &b);
        assert_eq!(b.first_usable(&all, 1000, 0), None);
        // A reservation starting inside, before a gap.
        let r = ranges(&["10.0.0.3/32"], &b);
        assert_eq!(b.first_usable(&r, 1000, 1000), Some(4));
    }

    #[test]
    fn full_block_has_nothing_usable() {
        let mut b = block("10.0.0.0/30");
        for o in 0..4 {
            assert_eq!(b.first_usable(&[], 0, 0), Some(o));
            b.allocate(o, alloc(&format!("h{o}"), "n1"));
        }
        assert!(b.is_full());
        assert_eq!(b.first_usable(&[], 0, 0), None);
    }

    #[test]
    fn release_cools_and_marks_empty() {
        let mut b = block("10.0.0.0/30");
        b.allocate(1, alloc("h1", "n2"));
        b.allocate(2, alloc("h2", "n1"));
        assert_eq!(b.borrowed_by_others(), 1);
        assert!(!b.release(1, "other", 10), "only the holder releases");
        assert!(!b.release(3, "h1", 10));
        assert!(b.release(1, "h1", 10));
        assert_eq!(b.cooling.get(&1), Some(&10));
        assert_eq!(b.empty_since_ms, None);
        assert!(b.release(2, "h2", 20));
        assert_eq!(b.empty_since_ms, Some(20));
        assert_eq!(b.cooling_count(100, 50), 2);
        assert_eq!(b.first_free_again(100, 50), Some(110));
        assert_eq!(b.last_cooling_until(100), Some(120));
        assert!(b.is_cooling(1, 100, 109));
        assert!(!b.is_cooling(1, 100, 110));
        b.prune_cooling(100, 115);
        assert_eq!(b.cooling.keys().collect::<Vec<_>>(), vec![&2]);
        // An explicit allocation takes a cooling address and ends its cool-down.
        b.allocate(2, alloc("h3", "n1"));
        assert!(b.cooling.is_empty());
        assert_eq!(b.empty_since_ms, None);
    }

    #[test]
    fn validate_catches_offsets_outside() {
        let mut b = block("10.0.0.0/30");
        b.validate().unwrap();
        b.allocations.insert(4, alloc("h", "n1"));
        assert!(b.validate().unwrap_err().contains("offset 4"));
        let mut b = block("10.0.0.0/30");
        b.cooling.insert(9, 0);
        assert!(b.validate().is_err());
        let b = block("10.0.0.1/30");
        assert!(b.validate().unwrap_err().contains("host bits"));
    }
}
