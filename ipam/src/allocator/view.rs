// Read-only views for the API: per-pool usage, block listings, a node's blocks
// and borrowed addresses (what bgpd announces), and who holds one address. They
// mirror the proto messages; counts saturate at u64::MAX (an IPv6 pool can hold
// more addresses than that).

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::Settings;
use super::allocate::{pool_fullness, reserved_ranges};
use crate::model::{Allocation, BlockRecord, State, net};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub pool: String,
    pub cidr: IpNetwork,
    pub disabled: bool,
    /// Addresses in the pool minus reserved ones.
    pub capacity: u64,
    pub allocated: u64,
    pub cooling: u64,
    pub reserved: u64,
    /// Blocks the pool can hold, and blocks claimed.
    pub blocks_total: u64,
    pub blocks_claimed: u64,
}

/// One block, as ListBlocks and WatchNodeBlocks show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub cidr: IpNetwork,
    pub pool: String,
    /// Node the block is affine to.
    pub node: Option<String>,
    pub capacity: u64,
    pub allocated: u64,
    pub cooling: u64,
    pub borrowed_by_others: u64,
    /// Copied from the pool (false when the pool is gone).
    pub disable_bgp_export: bool,
    pub empty_since_ms: Option<u64>,
}

/// An address a node's pod holds in a block affine to another node (or none):
/// the node announces it as a host route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowedAddress {
    pub address: IpAddr,
    pub block: IpNetwork,
    pub pool: String,
    pub block_node: Option<String>,
    pub handle: String,
    pub disable_bgp_export: bool,
}

/// What one node announces: its blocks and the addresses it borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node: String,
    pub blocks: Vec<BlockInfo>,
    pub borrowed: Vec<BorrowedAddress>,
}

/// Who holds an address, or why it is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressInfo {
    pub address: IpAddr,
    /// None: in no pool.
    pub pool: Option<String>,
    /// None: its block is not claimed.
    pub block: Option<IpNetwork>,
    pub block_node: Option<String>,
    /// The holder (handle, node, pod, time), when allocated.
    pub allocation: Option<Allocation>,
    /// Held by a pod of another node than the block's.
    pub borrowed: bool,
    pub reserved: bool,
    /// When a released address may be handed out again, while it cools down.
    pub cooling_until_ms: Option<u64>,
}

fn sat(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub fn usage(state: &State, now_ms: u64, settings: &Settings) -> Vec<PoolUsage> {
    state
        .pools()
        .map(|p| {
            let pool = &p.value;
            let reserved = reserved_ranges(pool);
            let full = pool_fullness(state, pool, &reserved, settings, now_ms);
            let block_prefix = pool.block_prefix();
            let blocks_total = if block_prefix >= pool.spec.cidr.prefix() {
                // 2^(block prefix - pool prefix), saturating.
                net::size_of_prefix(pool.family(), pool.spec.cidr.prefix())
                    / net::size_of_prefix(pool.family(), block_prefix).max(1)
            } else {
                0
            };
            PoolUsage {
                pool: pool.name().to_string(),
                cidr: pool.spec.cidr,
                disabled: pool.spec.disabled,
                capacity: sat(full.capacity),
                allocated: sat(full.allocated),
                cooling: sat(full.cooling),
                reserved: sat(net::ranges_len(&reserved)),
                blocks_total: sat(blocks_total),
                blocks_claimed: state.blocks_of_pool(pool.name()).count() as u64,
            }
        })
        .collect()
}

pub fn block_info(
    state: &State,
    block: &BlockRecord,
    settings: &Settings,
    now_ms: u64,
) -> BlockInfo {
    BlockInfo {
        cidr: block.cidr,
        pool: block.pool.clone(),
        node: block.affinity.clone(),
        capacity: sat(block.capacity()),
        allocated: block.allocations.len() as u64,
        cooling: block.cooling_count(settings.cooldown_ms, now_ms),
        borrowed_by_others: block.borrowed_by_others(),
        disable_bgp_export: state
            .pool(&block.pool)
            .is_some_and(|p| p.value.spec.disable_bgp_export),
        empty_since_ms: block.empty_since_ms,
    }
}

/// Every block, or those affine to `node`; by CIDR.
pub fn list_blocks(
    state: &State,
    node: Option<&str>,
    settings: &Settings,
    now_ms: u64,
) -> Vec<BlockInfo> {
    match node {
        Some(node) => state
            .blocks_of_node(node)
            .map(|b| block_info(state, &b.value, settings, now_ms))
            .collect(),
        None => state
            .blocks()
            .map(|b| block_info(state, &b.value, settings, now_ms))
            .collect(),
    }
}

/// The node's affine blocks and the addresses its pods hold in other blocks
/// (found through the node's handles: O(its blocks + its handles)).
pub fn node_view(state: &State, node: &str, settings: &Settings, now_ms: u64) -> NodeView {
    let mut borrowed = Vec::new();
    for h in state.handles_of_node(node) {
        for a in &h.value.addresses {
            let Some(block) = state.block_containing(a.address) else {
                continue;
            };
            let b = &block.value;
            let holds = b
                .offset_of(a.address)
                .and_then(|o| b.allocations.get(&o))
                .is_some_and(|al| al.handle == h.value.handle);
            if holds && !b.is_affine_to(node) {
                borrowed.push(BorrowedAddress {
                    address: a.address,
                    block: b.cidr,
                    pool: b.pool.clone(),
                    block_node: b.affinity.clone(),
                    handle: h.value.handle.clone(),
                    disable_bgp_export: state
                        .pool(&b.pool)
                        .is_some_and(|p| p.value.spec.disable_bgp_export),
                });
            }
        }
    }
    borrowed.sort_by_key(|b| b.address);
    NodeView {
        node: node.to_string(),
        blocks: list_blocks(state, Some(node), settings, now_ms),
        borrowed,
    }
}

pub fn show_address(state: &State, ip: IpAddr, settings: &Settings, now_ms: u64) -> AddressInfo {
    let pool = state.pool_containing(ip);
    let n = net::to_u128(ip);
    let reserved = pool.is_some_and(|p| {
        reserved_ranges(&p.value)
            .iter()
            .any(|(s, e)| *s <= n && n <= *e)
    });
    let block = state.block_containing(ip).map(|b| &b.value);
    let offset = block.and_then(|b| b.offset_of(ip));
    let allocation = block
        .zip(offset)
        .and_then(|(b, o)| b.allocations.get(&o))
        .cloned();
    let cooling_until_ms = match (block, offset) {
        (Some(b), Some(o))
            if allocation.is_none() && b.is_cooling(o, settings.cooldown_ms, now_ms) =>
        {
            b.cooling_until(o, settings.cooldown_ms)
        }
        _ => None,
    };
    AddressInfo {
        address: ip,
        pool: pool
            .map(|p| p.value.name().to_string())
            .or_else(|| block.map(|b| b.pool.clone())),
        block: block.map(|b| b.cidr),
        block_node: block.and_then(|b| b.affinity.clone()),
        borrowed: match (block, &allocation) {
            (Some(b), Some(a)) => !b.is_affine_to(&a.node),
            _ => false,
        },
        allocation,
        reserved,
        cooling_until_ms,
    }
}
