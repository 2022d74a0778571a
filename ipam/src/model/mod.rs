// The IPAM data model: the records kept in the store (pools, blocks, handles) and
// `State`, the whole keyspace decoded with the indexes the allocator needs (a
// node's blocks, a node's handles, a pool's blocks) so the hot path never scans
// everything. The service keeps one State as its mirror of the store.

mod block;
pub mod crd;
mod keys;
pub mod net;
mod pool;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

pub use block::{Allocation, BlockRecord};
pub use keys::{
    BLOCKS_PREFIX, HANDLES_PREFIX, POOLS_PREFIX, Record, RecordError, RecordKey, decode,
};
pub use podroute_labels::{Selector, SelectorError};
pub use pool::{
    BLOCK_SIZE_RANGE_V4, BLOCK_SIZE_RANGE_V6, DEFAULT_BLOCK_SIZE_V4, DEFAULT_BLOCK_SIZE_V6, IpPool,
    IpPoolSpec, ObjectMeta, PoolError, validate_pool,
};

pub const API_VERSION: &str = "podroute.io/v1";
pub const KIND_IP_POOL: &str = "IPPool";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn of_net(net: &IpNetwork) -> Self {
        match net {
            IpNetwork::V4(_) => Family::V4,
            IpNetwork::V6(_) => Family::V6,
        }
    }
}

/// How a refused request should be reported: the service maps each class onto
/// its gRPC status code (the names are those codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    ResourceExhausted,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Who holds which addresses: one per pod interface (the CNI handle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleRecord {
    pub handle: String,
    pub node: String,
    #[serde(default)]
    pub pod_namespace: String,
    #[serde(default)]
    pub pod_name: String,
    pub addresses: Vec<HandleAddress>,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleAddress {
    pub address: IpAddr,
    pub block: IpNetwork,
    pub pool: String,
    /// The block was affine to another node when the address was taken.
    pub borrowed: bool,
}

impl HandleRecord {
    /// The address this handle holds in `family`, if any.
    pub fn address_of(&self, family: Family) -> Option<&HandleAddress> {
        self.addresses
            .iter()
            .find(|a| Family::of_ip(a.address) == family)
    }
}

/// A record and the store revision it was last written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: i64,
}

/// The whole IPAM keyspace decoded, with indexes.
#[derive(Debug, Clone, Default)]
pub struct State {
    pools: BTreeMap<String, Versioned<IpPool>>,
    /// Parsed nodeSelector per pool; None when it does not parse (selects no node).
    selectors: HashMap<String, Option<Selector>>,
    /// By CIDR: per family in address order, which the free-block search walks.
    blocks: BTreeMap<IpNetwork, Versioned<BlockRecord>>,
    handles: BTreeMap<String, Versioned<HandleRecord>>,
    node_blocks: HashMap<String, BTreeSet<IpNetwork>>,
    node_handles: HashMap<String, BTreeSet<String>>,
    pool_blocks: HashMap<String, BTreeSet<IpNetwork>>,
    /// Key → why it could not be used.
    unreadable: BTreeMap<String, String>,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// By name.
    pub fn pools(&self) -> impl Iterator<Item = &Versioned<IpPool>> {
        self.pools.values()
    }

    pub fn pool(&self, name: &str) -> Option<&Versioned<IpPool>> {
        self.pools.get(name)
    }

    /// The pool's parsed nodeSelector; None when the pool is unknown or its
    /// selector does not parse.
    pub fn pool_selector(&self, name: &str) -> Option<&Selector> {
        self.selectors.get(name).and_then(Option::as_ref)
    }

    /// The pool whose CIDR holds `ip` (pools do not overlap; the first by name if
    /// they do).
    pub fn pool_containing(&self, ip: IpAddr) -> Option<&Versioned<IpPool>> {
        self.pools.values().find(|p| p.value.spec.cidr.contains(ip))
    }

    /// By CIDR: IPv4 first, each family in address order.
    pub fn blocks(&self) -> impl Iterator<Item = &Versioned<BlockRecord>> {
        self.blocks.values()
    }

    pub fn block(&self, cidr: &IpNetwork) -> Option<&Versioned<BlockRecord>> {
        self.blocks.get(cidr)
    }

    /// The block holding `ip`. Blocks do not overlap, so it is the one starting
    /// last at or before `ip`.
    pub fn block_containing(&self, ip: IpAddr) -> Option<&Versioned<BlockRecord>> {
        let family = Family::of_ip(ip);
        let upper = IpNetwork::new(ip, net::family_bits(family)).ok()?;
        self.blocks
            .range(..=upper)
            .next_back()
            .map(|(_, b)| b)
            .filter(|b| b.value.contains(ip))
    }

    /// Every block sharing an address with `range`, in address order (a larger
    /// block starting before `range` included). O(log n + blocks in range).
    pub fn blocks_overlapping(
        &self,
        range: &IpNetwork,
    ) -> impl Iterator<Item = &Versioned<BlockRecord>> {
        let family = Family::of_net(range);
        let (lo, hi) = (net::first(range), net::last(range));
        let lo_key = net::key_at(family, lo);
        let before = lo_key.and_then(|k| {
            self.blocks
                .range(..k)
                .next_back()
                .map(|(_, b)| b)
                .filter(|b| net::overlaps(&b.value.cidr, range))
        });
        let within = lo_key.into_iter().flat_map(move |k| {
            self.blocks
                .range(k..)
                .take_while(move |(c, _)| Family::of_net(c) == family && net::first(c) <= hi)
                .map(|(_, b)| b)
        });
        before.into_iter().chain(within)
    }

    pub fn handle(&self, handle: &str) -> Option<&Versioned<HandleRecord>> {
        self.handles.get(handle)
    }

    /// By handle name.
    pub fn handles(&self) -> impl Iterator<Item = &Versioned<HandleRecord>> {
        self.handles.values()
    }

    /// Blocks affine to `node`, by CIDR.
    pub fn blocks_of_node(&self, node: &str) -> impl Iterator<Item = &Versioned<BlockRecord>> {
        self.node_blocks
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|c| self.blocks.get(c))
    }

    /// Handles of pods on `node`, by name.
    pub fn handles_of_node(&self, node: &str) -> impl Iterator<Item = &Versioned<HandleRecord>> {
        self.node_handles
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|h| self.handles.get(h))
    }

    /// Blocks whose record names `pool`, by CIDR.
    pub fn blocks_of_pool(&self, pool: &str) -> impl Iterator<Item = &Versioned<BlockRecord>> {
        self.pool_blocks
            .get(pool)
            .into_iter()
            .flatten()
            .filter_map(|c| self.blocks.get(c))
    }

    pub fn pool_count(&self) -> usize {
        self.pools.len()
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn handle_count(&self) -> usize {
        self.handles.len()
    }

    /// Nodes with at least one block affine to them.
    pub fn node_count(&self) -> usize {
        self.node_blocks.len()
    }

    /// Apply one stored key as read from the store. An unknown key or an
    /// undecodable value is an error for the caller to report; the key is then
    /// listed by `unreadable()` (and any record it held before is dropped).
    pub fn apply_put(&mut self, key: &str, value: &[u8], revision: i64) -> Result<(), RecordError> {
        let Some(record_key) = RecordKey::parse(key) else {
            let e = RecordError::UnknownKey(key.to_string());
            self.unreadable.insert(key.to_string(), e.to_string());
            return Err(e);
        };
        match decode(&record_key, value) {
            Ok(record) => {
                self.apply_record(record, revision);
                Ok(())
            }
            Err(e) => {
                self.remove(&record_key);
                self.unreadable.insert(key.to_string(), e.to_string());
                Err(e)
            }
        }
    }

    pub fn apply_delete(&mut self, key: &str) {
        match RecordKey::parse(key) {
            Some(record_key) => self.remove(&record_key),
            None => {
                self.unreadable.remove(key);
            }
        }
    }

    /// Apply a record we wrote ourselves (after our own commit at `revision`).
    pub fn apply_record(&mut self, record: Record, revision: i64) {
        let key = record.key();
        self.remove(&key);
        match record {
            Record::Pool(pool) => {
                let name = pool.name().to_string();
                self.selectors
                    .insert(name.clone(), Selector::parse(&pool.spec.node_selector).ok());
                self.pools.insert(
                    name,
                    Versioned {
                        value: pool,
                        revision,
                    },
                );
            }
            Record::Block(block) => {
                let cidr = block.cidr;
                if let Some(node) = &block.affinity {
                    self.node_blocks
                        .entry(node.clone())
                        .or_default()
                        .insert(cidr);
                }
                self.pool_blocks
                    .entry(block.pool.clone())
                    .or_default()
                    .insert(cidr);
                self.blocks.insert(
                    cidr,
                    Versioned {
                        value: block,
                        revision,
                    },
                );
            }
            Record::Handle(handle) => {
                self.node_handles
                    .entry(handle.node.clone())
                    .or_default()
                    .insert(handle.handle.clone());
                self.handles.insert(
                    handle.handle.clone(),
                    Versioned {
                        value: handle,
                        revision,
                    },
                );
            }
        }
    }

    /// Forget the record at `key` (deleted, or unreadable now).
    pub fn remove(&mut self, key: &RecordKey) {
        self.unreadable.remove(&key.to_key());
        match key {
            RecordKey::Pool(name) => {
                self.pools.remove(name);
                self.selectors.remove(name);
            }
            RecordKey::Block(cidr) => {
                if let Some(old) = self.blocks.remove(cidr) {
                    if let Some(node) = &old.value.affinity {
                        remove_from_index(&mut self.node_blocks, node, cidr);
                    }
                    remove_from_index(&mut self.pool_blocks, &old.value.pool, cidr);
                }
            }
            RecordKey::Handle(handle) => {
                if let Some(old) = self.handles.remove(handle) {
                    remove_from_index(&mut self.node_handles, &old.value.node, handle);
                }
            }
        }
    }

    /// Keys that could not be used, and why.
    pub fn unreadable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.unreadable
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_unreadable(&self, key: &RecordKey) -> bool {
        !self.unreadable.is_empty() && self.unreadable.contains_key(&key.to_key())
    }
}

fn remove_from_index<K: Ord + ?Sized, T: Ord + std::borrow::Borrow<K>>(
    index: &mut HashMap<String, BTreeSet<T>>,
    owner: &str,
    item: &K,
) {
    if let Some(set) = index.get_mut(owner) {
        set.remove(item);
        if set.is_empty() {
            index.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, cidr: &str) -> IpPool {
        IpPool::new(
            name,
            IpPoolSpec {
                cidr: cidr.parse().unwrap(),
                block_size: Some(28),
                disabled: false,
                node_selector: String::new(),
                disable_bgp_export: false,
                reserved_cidrs: vec![],
            },
        )
    }

    fn block(cidr: &str, pool: &str, node: &str) -> BlockRecord {
        BlockRecord::claimed(cidr.parse().unwrap(), pool, node)
    }

    fn handle(name: &str, node: &str) -> HandleRecord {
        HandleRecord {
            handle: name.into(),
            node: node.into(),
            pod_namespace: String::new(),
            pod_name: String::new(),
            addresses: vec![],
            created_at_ms: 0,
        }
    }

    fn cidrs<'a>(it: impl Iterator<Item = &'a Versioned<BlockRecord>>) -> Vec<String> {
        it.map(|b| b.value.cidr.to_string()).collect()
    }

    #[test]
    fn indexes_follow_puts_and_deletes() {
        let mut s = State::new();
        s.apply_record(Record::Pool(pool("p", "10.0.0.0/24")), 1);
        s.apply_record(Record::Block(block("10.0.0.16/28", "p", "n1")), 2);
        s.apply_record(Record::Block(block("10.0.0.0/28", "p", "n1")), 3);
        s.apply_record(Record::Block(block("10.0.0.32/28", "p", "n2")), 4);
        s.apply_record(Record::Handle(handle("h1", "n1")), 5);
        assert_eq!(
            cidrs(s.blocks_of_node("n1")),
            ["10.0.0.0/28", "10.0.0.16/28"]
        );
        assert_eq!(cidrs(s.blocks_of_pool("p")).len(), 3);
        assert_eq!(s.handles_of_node("n1").count(), 1);
        assert_eq!(
            s.block(&"10.0.0.0/28".parse().unwrap()).unwrap().revision,
            3
        );

        // Re-affining a block moves it between node indexes.
        s.apply_record(Record::Block(block("10.0.0.0/28", "p", "n2")), 6);
        assert_eq!(cidrs(s.blocks_of_node("n1")), ["10.0.0.16/28"]);
        assert_eq!(
            cidrs(s.blocks_of_node("n2")),
            ["10.0.0.0/28", "10.0.0.32/28"]
        );
        // So does moving a handle.
        s.apply_record(Record::Handle(handle("h1", "n2")), 7);
        assert_eq!(s.handles_of_node("n1").count(), 0);
        assert_eq!(s.handles_of_node("n2").count(), 1);

        s.apply_delete("blocks/10.0.0.16-28");
        s.apply_delete("handles/h1");
        assert_eq!(s.blocks_of_node("n1").count(), 0);
        assert_eq!(s.handles_of_node("n2").count(), 0);
        assert!(
            !s.node_blocks.contains_key("n1"),
            "empty index entries are dropped"
        );
        assert_eq!(s.block_count(), 2);
        assert_eq!(s.handle_count(), 0);
    }

    #[test]
    fn block_lookups_by_address_and_range() {
        let mut s = State::new();
        for (c, n) in [
            ("10.0.0.0/28", "n1"),
            ("10.0.0.32/28", "n2"),
            ("10.0.1.0/24", "n3"),
            ("fd00::/122", "n1"),
        ] {
            s.apply_record(Record::Block(block(c, "p", n)), 1);
        }
        let at = |ip: &str| {
            s.block_containing(ip.parse().unwrap())
                .map(|b| b.value.cidr.to_string())
        };
        assert_eq!(at("10.0.0.15").as_deref(), Some("10.0.0.0/28"));
        assert_eq!(at("10.0.0.16"), None);
        assert_eq!(at("10.0.0.33").as_deref(), Some("10.0.0.32/28"));
        assert_eq!(at("10.0.1.255").as_deref(), Some("10.0.1.0/24"));
        assert_eq!(at("fd00::3f").as_deref(), Some("fd00::/122"));
        assert_eq!(at("fd00::40"), None);
        assert_eq!(at("0.0.0.0"), None);

        let over = |r: &str| cidrs(s.blocks_overlapping(&r.parse().unwrap()));
        assert_eq!(over("10.0.0.0/26"), ["10.0.0.0/28", "10.0.0.32/28"]);
        // A larger block that starts before the range.
        assert_eq!(over("10.0.1.128/25"), ["10.0.1.0/24"]);
        assert_eq!(
            over("10.0.0.0/16"),
            ["10.0.0.0/28", "10.0.0.32/28", "10.0.1.0/24"]
        );
        assert_eq!(over("0.0.0.0/0").len(), 3);
        assert_eq!(over("::/0"), ["fd00::/122"]);
        assert!(over("10.0.0.16/28").is_empty());
    }

    #[test]
    fn unreadable_records_are_tracked_and_forgotten() {
        let mut s = State::new();
        s.apply_record(Record::Block(block("10.0.0.0/28", "p", "n1")), 1);
        let e = s
            .apply_put("blocks/10.0.0.0-28", b"garbage", 2)
            .unwrap_err();
        assert!(matches!(e, RecordError::Undecodable { .. }));
        assert!(s.block(&"10.0.0.0/28".parse().unwrap()).is_none());
        assert!(s.blocks_of_node("n1").next().is_none());
        assert!(s.is_unreadable(&RecordKey::Block("10.0.0.0/28".parse().unwrap())));
        assert!(s.apply_put("weird/key", b"{}", 3).is_err());
        assert_eq!(s.unreadable().count(), 2);
        // A good value replaces the bad one; a delete forgets an unknown key.
        let good = Record::Block(block("10.0.0.0/28", "p", "n1")).encode();
        s.apply_put("blocks/10.0.0.0-28", &good, 4).unwrap();
        s.apply_delete("weird/key");
        assert_eq!(s.unreadable().count(), 0);
        assert_eq!(
            s.block(&"10.0.0.0/28".parse().unwrap()).unwrap().revision,
            4
        );
    }

    #[test]
    fn pools_and_their_selectors() {
        let mut s = State::new();
        let mut p = pool("p", "10.0.0.0/24");
        p.spec.node_selector = "zone=a".into();
        let bytes = Record::Pool(p).encode();
        s.apply_put("pools/p", &bytes, 1).unwrap();
        assert!(s.pool_selector("p").is_some());
        assert_eq!(
            s.pool_containing("10.0.0.9".parse().unwrap())
                .unwrap()
                .value
                .name(),
            "p"
        );
        assert!(s.pool_containing("10.0.1.9".parse().unwrap()).is_none());
        s.apply_delete("pools/p");
        assert!(s.pool("p").is_none() && s.pool_selector("p").is_none());
        assert_eq!(s.pool_count(), 0);
    }
}
