// plan_allocate: one address per wanted family for a handle (issue 5 rules).
// Order per family: the node's own blocks (pool name order, then address order);
// else claim the first free block of a candidate pool; else, unless
// strictAffinity, borrow from another node's block; else Exhausted. Explicit
// addresses skip the search (and the cool-down). An existing handle gets its
// addresses back; only families it lacks are allocated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{AllocateOutcome, AllocateRequest, Allocated, ErrorClass, Plan, Settings};
use crate::model::{
    Allocation, BlockRecord, Family, HandleAddress, HandleRecord, IpPool, Record, RecordKey, State,
    Versioned, net,
};

/// Longest handle and node name (a DNS subdomain's limit, as CNI handles use).
const MAX_NAME_LEN: usize = 253;

/// Why an allocation was refused. `class()` gives the gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("handle {0:?} is not 1 to 253 characters of letters, digits and \".-_:\"")]
    InvalidHandle(String),
    #[error("node name {0:?} is not 1 to 253 characters without spaces or control characters")]
    InvalidNode(String),
    /// The handle exists for a pod of another node.
    #[error("handle {handle:?} belongs to node {node:?}")]
    HandleOnOtherNode { handle: String, node: String },
    /// A requested pool does not exist.
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    /// A requested pool, or the pool of an explicit address, is disabled.
    #[error("pool {0:?} is disabled")]
    PoolDisabled(String),
    /// A requested pool, or the pool of an explicit address, does not select the node.
    #[error("pool {pool:?} does not select node {node:?} (its nodeSelector)")]
    PoolNotForNode { pool: String, node: String },
    #[error("address {0} is in no pool")]
    AddressNotInPool(IpAddr),
    /// Pools were requested and the explicit address is in none of them.
    #[error("address {ip} is in pool {pool:?}, which is not among the requested pools")]
    AddressOutsideRequestedPools { ip: IpAddr, pool: String },
    #[error("address {ip} is in a reserved range of pool {pool:?}")]
    AddressReserved { ip: IpAddr, pool: String },
    /// The explicit address is held by another handle.
    #[error("address {ip} is already held by handle {handle:?}")]
    AddressHeld { ip: IpAddr, handle: String },
    /// The explicit address lies in another node's block and strictAffinity forbids
    /// borrowing.
    #[error(
        "address {ip} is in block {block} of node {owner:?}, and strictAffinity forbids borrowing it"
    )]
    AddressInOtherNodesBlock {
        ip: IpAddr,
        block: IpNetwork,
        owner: String,
    },
    /// The handle already holds another address of the explicit address's family.
    #[error("handle {handle:?} already holds {held}, not the requested {requested}")]
    HandleHasOtherAddress {
        handle: String,
        held: IpAddr,
        requested: IpAddr,
    },
    /// The handle lists an address its block does not hold for it (a damaged
    /// store); it is not handed out until repaired.
    #[error(
        "handle {handle:?} lists {ip} but no block holds it for the handle (see podctl ipam check; release the handle to repair)"
    )]
    HandleInconsistent { handle: String, ip: IpAddr },
    #[error(
        "no enabled {family} pool selects node {node:?} (among the requested pools, if any were named)"
    )]
    NoPoolForFamily { family: Family, node: String },
    #[error("no enabled pool selects node {0:?}")]
    NoPoolForNode(String),
    #[error("{0}")]
    Exhausted(Exhaustion),
    #[error("two {family} addresses requested ({first} and {second}): at most one per family")]
    TwoAddressesOneFamily {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },
    /// The block an explicit address needs cannot be used: it overlaps another
    /// block, names another pool, or its record is unreadable.
    #[error("address {ip} cannot be taken: {reason}")]
    BlockConflict { ip: IpAddr, reason: String },
}

impl AllocError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AllocError::InvalidHandle(_)
            | AllocError::InvalidNode(_)
            | AllocError::AddressNotInPool(_)
            | AllocError::AddressOutsideRequestedPools { .. }
            | AllocError::AddressReserved { .. }
            | AllocError::TwoAddressesOneFamily { .. } => ErrorClass::InvalidArgument,
            AllocError::UnknownPool(_) => ErrorClass::NotFound,
            AllocError::AddressHeld { .. } => ErrorClass::AlreadyExists,
            AllocError::HandleOnOtherNode { .. }
            | AllocError::PoolDisabled(_)
            | AllocError::PoolNotForNode { .. }
            | AllocError::AddressInOtherNodesBlock { .. }
            | AllocError::HandleHasOtherAddress { .. }
            | AllocError::HandleInconsistent { .. }
            | AllocError::NoPoolForFamily { .. }
            | AllocError::NoPoolForNode(_)
            | AllocError::BlockConflict { .. } => ErrorClass::FailedPrecondition,
            AllocError::Exhausted(_) => ErrorClass::ResourceExhausted,
        }
    }
}

/// No address of `family` left for `node` in any candidate pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhaustion {
    pub family: Family,
    pub node: String,
    /// Borrowing was not tried: other nodes' blocks may still have room.
    pub strict_affinity: bool,
    pub pools: Vec<PoolFullness>,
    pub now_ms: u64,
}

/// How full one pool is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFullness {
    pub pool: String,
    pub cidr: IpNetwork,
    /// Addresses in the pool minus reserved ones.
    pub capacity: u128,
    pub allocated: u128,
    pub cooling: u128,
    /// When the first cooling address can be handed out again.
    pub free_again_at_ms: Option<u64>,
}

impl fmt::Display for Exhaustion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no {} address left for node {:?}: ",
            self.family, self.node
        )?;
        for (i, p) in self.pools.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if self.strict_affinity {
                write!(
                    f,
                    "pool {:?} ({}) has no free block left and strictAffinity forbids borrowing from other nodes' blocks",
                    p.pool, p.cidr
                )?;
            } else {
                write!(f, "pool {:?} ({}) is exhausted", p.pool, p.cidr)?;
            }
            write!(
                f,
                ": {} of {} addresses in use, {} cooling down",
                p.allocated, p.capacity, p.cooling
            )?;
            if let Some(at) = p.free_again_at_ms {
                // Whole seconds, rounded up: "free again in 0 s" would mislead.
                let secs = at.saturating_sub(self.now_ms).div_ceil(1000);
                write!(f, " (the first is free again in {secs} s)")?;
            }
        }
        Ok(())
    }
}

pub fn plan_allocate(
    state: &State,
    req: &AllocateRequest,
    node_labels: &BTreeMap<String, String>,
    settings: &Settings,
    now_ms: u64,
) -> Result<AllocateOutcome, AllocError> {
    validate_handle(&req.handle)?;
    validate_node(&req.node)?;
    let explicit = explicit_by_family(&req.addresses)?;

    let existing = state.handle(&req.handle);
    if let Some(h) = existing {
        check_existing(state, &h.value, req, &explicit)?;
    }
    let held: BTreeSet<Family> = existing
        .map(|h| {
            h.value
                .addresses
                .iter()
                .map(|a| Family::of_ip(a.address))
                .collect()
        })
        .unwrap_or_default();

    let candidates = candidate_pools(state, req, node_labels);
    let mut wanted: BTreeSet<Family> = req.families.iter().copied().collect();
    if wanted.is_empty()
        && let Ok(pools) = &candidates
    {
        wanted.extend(pools.iter().map(|p| p.value.family()));
    }
    wanted.extend(explicit.keys());
    let missing: Vec<Family> = wanted.difference(&held).copied().collect();

    // Idempotent: a retried request gets what the handle holds, even if its pools
    // have been disabled since.
    if let Some(h) = existing
        && missing.is_empty()
    {
        return Ok(AllocateOutcome::Existing(held_addresses(state, &h.value)));
    }
    let candidates = candidates?;
    if wanted.is_empty() {
        return Err(AllocError::NoPoolForNode(req.node.clone()));
    }

    let mut plan = Plan::default();
    let mut new_addresses = Vec::new();
    for family in missing {
        let pools: Vec<&Versioned<IpPool>> = candidates
            .iter()
            .copied()
            .filter(|p| p.value.family() == family)
            .collect();
        let choice = match explicit.get(&family) {
            Some(ip) => choose_explicit(state, req, node_labels, &pools, *ip, settings)?,
            None if pools.is_empty() => {
                return Err(AllocError::NoPoolForFamily {
                    family,
                    node: req.node.clone(),
                });
            }
            None => choose_auto(state, &req.node, &pools, family, settings, now_ms)?,
        };
        new_addresses.push(commit_choice(&mut plan, req, choice, settings, now_ms));
    }

    let handle = build_handle(existing, req, new_addresses, now_ms);
    let allocated = handle
        .addresses
        .iter()
        .map(|a| Allocated {
            address: a.address,
            family: Family::of_ip(a.address),
            block: a.block,
            pool: a.pool.clone(),
            borrowed: a.borrowed,
        })
        .collect();
    plan.put(Record::Handle(handle), existing.map_or(0, |h| h.revision));
    Ok(AllocateOutcome::Plan { plan, allocated })
}

/// Where one new address comes from.
struct Choice {
    pool: IpPool,
    pool_revision: i64,
    /// The block as it is now (None: claimed by this plan) and its revision.
    block: Option<(BlockRecord, i64)>,
    cidr: IpNetwork,
    offset: u32,
    address: IpAddr,
}

fn validate_handle(handle: &str) -> Result<(), AllocError> {
    let ok = !handle.is_empty()
        && handle.len() <= MAX_NAME_LEN
        && handle
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AllocError::InvalidHandle(handle.to_string()))
    }
}

fn validate_node(node: &str) -> Result<(), AllocError> {
    let ok = !node.is_empty()
        && node.len() <= MAX_NAME_LEN
        && !node.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(AllocError::InvalidNode(node.to_string()))
    }
}

fn explicit_by_family(addresses: &[IpAddr]) -> Result<BTreeMap<Family, IpAddr>, AllocError> {
    let mut by_family = BTreeMap::new();
    for ip in addresses {
        let family = Family::of_ip(*ip);
        if let Some(first) = by_family.insert(family, *ip)
            && first != *ip
        {
            return Err(AllocError::TwoAddressesOneFamily {
                family,
                first,
                second: *ip,
            });
        }
    }
    Ok(by_family)
}

/// An existing handle must be this node's, hold what it lists, and not hold
/// another address of an explicitly requested family.
fn check_existing(
    state: &State,
    handle: &HandleRecord,
    req: &AllocateRequest,
    explicit: &BTreeMap<Family, IpAddr>,
) -> Result<(), AllocError> {
    if handle.node != req.node {
        return Err(AllocError::HandleOnOtherNode {
            handle: req.handle.clone(),
            node: handle.node.clone(),
        });
    }
    for a in &handle.addresses {
        let held = state.block_containing(a.address).is_some_and(|b| {
            b.value
                .offset_of(a.address)
                .and_then(|o| b.value.allocations.get(&o))
                .is_some_and(|al| al.handle == handle.handle)
        });
        if !held {
            return Err(AllocError::HandleInconsistent {
                handle: handle.handle.clone(),
                ip: a.address,
            });
        }
    }
    for (family, ip) in explicit {
        if let Some(held) = handle.address_of(*family)
            && held.address != *ip
        {
            return Err(AllocError::HandleHasOtherAddress {
                handle: handle.handle.clone(),
                held: held.address,
                requested: *ip,
            });
        }
    }
    Ok(())
}

fn held_addresses(state: &State, handle: &HandleRecord) -> Vec<Allocated> {
    let mut out: Vec<Allocated> = handle
        .addresses
        .iter()
        .map(|a| Allocated {
            address: a.address,
            family: Family::of_ip(a.address),
            block: a.block,
            pool: a.pool.clone(),
            // As now: the block's affinity decides (checked to exist above).
            borrowed: state
                .block_containing(a.address)
                .map_or(a.borrowed, |b| !b.value.is_affine_to(&handle.node)),
        })
        .collect();
    out.sort_by_key(|a| a.family);
    out
}

/// Enabled pools selecting the node, narrowed to the requested ones; by name.
/// A requested pool that is unknown, disabled or not for this node is an error.
fn candidate_pools<'s>(
    state: &'s State,
    req: &AllocateRequest,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<&'s Versioned<IpPool>>, AllocError> {
    for name in &req.pools {
        let pool = state
            .pool(name)
            .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
        pool_usable_by(state, &pool.value, &req.node, labels)?;
    }
    Ok(state
        .pools()
        .filter(|p| req.pools.is_empty() || req.pools.iter().any(|n| n == p.value.name()))
        .filter(|p| pool_usable_by(state, &p.value, &req.node, labels).is_ok())
        .collect())
}

fn pool_usable_by(
    state: &State,
    pool: &IpPool,
    node: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), AllocError> {
    if pool.spec.disabled {
        return Err(AllocError::PoolDisabled(pool.name().to_string()));
    }
    if !state
        .pool_selector(pool.name())
        .is_some_and(|s| s.matches(labels))
    {
        return Err(AllocError::PoolNotForNode {
            pool: pool.name().to_string(),
            node: node.to_string(),
        });
    }
    Ok(())
}

/// The pool's reserved ranges, merged, as address numbers.
pub(super) fn reserved_ranges(pool: &IpPool) -> Vec<(u128, u128)> {
    let cidr = &pool.spec.cidr;
    net::merged_ranges(
        &pool.spec.reserved_cidrs,
        pool.family(),
        net::first(cidr),
        net::last(cidr),
    )
}

/// A block the allocator may take addresses from for `pool`: it names the pool
/// and lies inside it (a damaged record that does not is left alone).
fn block_in_pool(block: &BlockRecord, pool: &IpPool) -> bool {
    block.pool == pool.name() && net::is_within(&block.cidr, &pool.spec.cidr)
}

fn choose_explicit(
    state: &State,
    req: &AllocateRequest,
    labels: &BTreeMap<String, String>,
    candidates: &[&Versioned<IpPool>],
    ip: IpAddr,
    settings: &Settings,
) -> Result<Choice, AllocError> {
    let pool = state
        .pool_containing(ip)
        .ok_or(AllocError::AddressNotInPool(ip))?;
    if !candidates
        .iter()
        .any(|c| c.value.name() == pool.value.name())
    {
        // Say why it is not a candidate.
        pool_usable_by(state, &pool.value, &req.node, labels)?;
        return Err(AllocError::AddressOutsideRequestedPools {
            ip,
            pool: pool.value.name().to_string(),
        });
    }
    let n = net::to_u128(ip);
    if reserved_ranges(&pool.value)
        .iter()
        .any(|(s, e)| *s <= n && n <= *e)
    {
        return Err(AllocError::AddressReserved {
            ip,
            pool: pool.value.name().to_string(),
        });
    }
    let conflict = |reason: String| AllocError::BlockConflict { ip, reason };

    if let Some(block) = state.block_containing(ip) {
        let b = &block.value;
        if !block_in_pool(b, &pool.value) {
            return Err(conflict(format!(
                "its block {} belongs to pool {:?}, not {:?}",
                b.cidr,
                b.pool,
                pool.value.name()
            )));
        }
        let offset = b
            .offset_of(ip)
            .ok_or_else(|| conflict(format!("it is beyond the usable part of block {}", b.cidr)))?;
        if let Some(holder) = b.allocations.get(&offset)
            && holder.handle != req.handle
        {
            return Err(AllocError::AddressHeld {
                ip,
                handle: holder.handle.clone(),
            });
        }
        if settings.strict_affinity && !b.is_affine_to(&req.node) {
            return Err(AllocError::AddressInOtherNodesBlock {
                ip,
                block: b.cidr,
                owner: b.affinity.clone().unwrap_or_default(),
            });
        }
        return Ok(Choice {
            pool: pool.value.clone(),
            pool_revision: pool.revision,
            block: Some((b.clone(), block.revision)),
            cidr: b.cidr,
            offset,
            address: ip,
        });
    }

    // No block holds it yet: claim the pool's block around it for this node.
    let cidr = net::network_of(ip, pool.value.block_prefix())
        .filter(|c| net::is_within(c, &pool.value.spec.cidr))
        .ok_or_else(|| {
            conflict(format!(
                "pool {:?} has no valid block size",
                pool.value.name()
            ))
        })?;
    if state.is_unreadable(&RecordKey::Block(cidr)) {
        return Err(conflict(format!(
            "the record of its block {cidr} is unreadable"
        )));
    }
    if let Some(other) = state.blocks_overlapping(&cidr).next() {
        return Err(conflict(format!(
            "its block {cidr} would overlap the existing block {}",
            other.value.cidr
        )));
    }
    let claimed = BlockRecord::claimed(cidr, pool.value.name(), &req.node);
    let offset = claimed
        .offset_of(ip)
        .ok_or_else(|| conflict(format!("it is beyond the usable part of block {cidr}")))?;
    Ok(Choice {
        pool: pool.value.clone(),
        pool_revision: pool.revision,
        block: None,
        cidr,
        offset,
        address: ip,
    })
}

fn choose_auto(
    state: &State,
    node: &str,
    pools: &[&Versioned<IpPool>],
    family: Family,
    settings: &Settings,
    now_ms: u64,
) -> Result<Choice, AllocError> {
    let cooldown = settings.cooldown_ms;
    let reserved: Vec<Vec<(u128, u128)>> =
        pools.iter().map(|p| reserved_ranges(&p.value)).collect();
    let from_block = |pool: &Versioned<IpPool>, block: &Versioned<BlockRecord>, offset| {
        Some(Choice {
            pool: pool.value.clone(),
            pool_revision: pool.revision,
            block: Some((block.value.clone(), block.revision)),
            cidr: block.value.cidr,
            offset,
            address: block.value.address(offset)?,
        })
    };

    // (a) The node's own blocks.
    for (pool, reserved) in pools.iter().zip(&reserved) {
        for block in state.blocks_of_node(node) {
            let b = &block.value;
            if !block_in_pool(b, &pool.value) || b.is_full() {
                continue;
            }
            if let Some(choice) = b
                .first_usable(reserved, cooldown, now_ms)
                .and_then(|o| from_block(pool, block, o))
            {
                return Ok(choice);
            }
        }
    }
    // (b) Claim a free block.
    for (pool, reserved) in pools.iter().zip(&reserved) {
        if let Some(cidr) = first_free_block(state, &pool.value, reserved) {
            let claimed = BlockRecord::claimed(cidr, pool.value.name(), node);
            if let Some(offset) = claimed.first_usable(reserved, cooldown, now_ms)
                && let Some(address) = claimed.address(offset)
            {
                return Ok(Choice {
                    pool: pool.value.clone(),
                    pool_revision: pool.revision,
                    block: None,
                    cidr,
                    offset,
                    address,
                });
            }
        }
    }
    // (c) Borrow from another node's block.
    if !settings.strict_affinity {
        for (pool, reserved) in pools.iter().zip(&reserved) {
            for block in state.blocks_overlapping(&pool.value.spec.cidr) {
                let b = &block.value;
                if b.is_affine_to(node) || !block_in_pool(b, &pool.value) || b.is_full() {
                    continue;
                }
                if let Some(choice) = b
                    .first_usable(reserved, cooldown, now_ms)
                    .and_then(|o| from_block(pool, block, o))
                {
                    return Ok(choice);
                }
            }
        }
    }
    // (d) Nothing left.
    Err(AllocError::Exhausted(Exhaustion {
        family,
        node: node.to_string(),
        strict_affinity: settings.strict_affinity,
        pools: pools
            .iter()
            .zip(&reserved)
            .map(|(p, r)| pool_fullness(state, &p.value, r, settings, now_ms))
            .collect(),
        now_ms,
    }))
}

/// The lowest block of `pool` that no existing block overlaps, that is not wholly
/// reserved and whose key is readable. Walks the existing blocks of the pool's
/// range in address order, so it costs O(existing blocks + reserved ranges), never
/// O(blocks the pool could hold) (an IPv6 /48 holds 2^74 /122 blocks).
pub(super) fn first_free_block(
    state: &State,
    pool: &IpPool,
    reserved: &[(u128, u128)],
) -> Option<IpNetwork> {
    let family = pool.family();
    let prefix = pool.block_prefix();
    let cidr = &pool.spec.cidr;
    if prefix < cidr.prefix() || prefix > net::family_bits(family) {
        return None;
    }
    let mask = net::host_mask(family, prefix);
    let (lo, hi) = (net::first(cidr), net::last(cidr));
    // Next block start at or after `n`, if still inside the pool.
    let align_up = |n: u128| {
        n.checked_add(mask)
            .map(|x| x & !mask)
            .filter(|start| *start <= hi)
    };
    let mut existing = state
        .blocks_overlapping(cidr)
        .map(|b| (net::first(&b.value.cidr), net::last(&b.value.cidr)))
        .peekable();
    let mut reserved = reserved.iter().copied().peekable();
    let mut c = lo;
    loop {
        // Blocks are aligned inside an aligned pool: c + mask <= hi.
        let end = c + mask;
        while existing.next_if(|(_, e)| *e < c).is_some() {}
        if let Some(&(s, e)) = existing.peek()
            && s <= end
        {
            c = align_up(e.checked_add(1)?)?;
            continue;
        }
        while reserved.next_if(|(_, e)| *e < c).is_some() {}
        if let Some(&(s, e)) = reserved.peek()
            && s <= c
            && e >= end
        {
            // Wholly reserved: go on with the block holding the first address after
            // the range (it may be partly reserved only).
            c = e.checked_add(1)? & !mask;
            if c > hi {
                return None;
            }
            continue;
        }
        let candidate = IpNetwork::new(net::from_u128(family, c)?, prefix).ok()?;
        if state.is_unreadable(&RecordKey::Block(candidate)) {
            c = align_up(end.checked_add(1)?)?;
            continue;
        }
        return Some(candidate);
    }
}

/// Capacity and use of `pool`, for the exhaustion message and Usage.
pub(super) fn pool_fullness(
    state: &State,
    pool: &IpPool,
    reserved: &[(u128, u128)],
    settings: &Settings,
    now_ms: u64,
) -> PoolFullness {
    let mut allocated = 0u128;
    let mut cooling = 0u128;
    let mut free_again_at_ms: Option<u64> = None;
    for block in state.blocks_overlapping(&pool.spec.cidr) {
        let b = &block.value;
        if b.pool != pool.name() {
            continue;
        }
        allocated += b.allocations.len() as u128;
        cooling += u128::from(b.cooling_count(settings.cooldown_ms, now_ms));
        if let Some(at) = b.first_free_again(settings.cooldown_ms, now_ms) {
            free_again_at_ms = Some(free_again_at_ms.map_or(at, |m| m.min(at)));
        }
    }
    PoolFullness {
        pool: pool.name().to_string(),
        cidr: pool.spec.cidr,
        capacity: net::size(&pool.spec.cidr).saturating_sub(net::ranges_len(reserved)),
        allocated,
        cooling,
        free_again_at_ms,
    }
}

/// Add the chosen address to the plan (the block write, and for a claim the pool
/// touch) and return the handle's record of it.
fn commit_choice(
    plan: &mut Plan,
    req: &AllocateRequest,
    choice: Choice,
    settings: &Settings,
    now_ms: u64,
) -> HandleAddress {
    let (mut block, revision) = match choice.block {
        Some((block, revision)) => (block, revision),
        None => {
            // A claim rewrites its pool unchanged: the pool's revision moves, so a
            // DeletePool or a blockSize change planned before this claim cannot
            // commit after it (they compare the pool's revision).
            plan.put(Record::Pool(choice.pool.clone()), choice.pool_revision);
            (
                BlockRecord::claimed(choice.cidr, choice.pool.name(), &req.node),
                0,
            )
        }
    };
    block.allocate(
        choice.offset,
        Allocation {
            handle: req.handle.clone(),
            node: req.node.clone(),
            pod_namespace: req.pod_namespace.clone(),
            pod_name: req.pod_name.clone(),
            allocated_at_ms: now_ms,
        },
    );
    block.prune_cooling(settings.cooldown_ms, now_ms);
    let borrowed = !block.is_affine_to(&req.node);
    plan.put(Record::Block(block), revision);
    HandleAddress {
        address: choice.address,
        block: choice.cidr,
        pool: choice.pool.name().to_string(),
        borrowed,
    }
}

fn build_handle(
    existing: Option<&Versioned<HandleRecord>>,
    req: &AllocateRequest,
    new_addresses: Vec<HandleAddress>,
    now_ms: u64,
) -> HandleRecord {
    let mut handle = match existing {
        Some(h) => h.value.clone(),
        None => HandleRecord {
            handle: req.handle.clone(),
            node: req.node.clone(),
            pod_namespace: req.pod_namespace.clone(),
            pod_name: req.pod_name.clone(),
            addresses: Vec::new(),
            created_at_ms: now_ms,
        },
    };
    handle.addresses.extend(new_addresses);
    handle.addresses.sort_by_key(|a| Family::of_ip(a.address));
    handle
}
