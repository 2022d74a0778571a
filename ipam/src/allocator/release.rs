// Giving addresses back: release by handle (CNI DEL), garbage collection of a
// node's handles that CNI no longer knows (CNI 1.1 GC), and the sweep that
// returns blocks empty past their grace period to their pool. A released address
// cools down before it is handed out again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{MAX_PLAN_WRITES, Plan, Settings};
use crate::model::{BlockRecord, Record, RecordKey, State};

/// Free every address `handle` holds and delete the handle; None when the
/// handle is unknown (CNI DEL may be repeated: nothing to do). The addresses
/// returned are those actually freed (an address the handle lists but its block
/// does not hold for it is only dropped from the handle).
pub fn plan_release(
    state: &State,
    handle: &str,
    settings: &Settings,
    now_ms: u64,
) -> Option<(Plan, Vec<IpAddr>)> {
    let record = state.handle(handle)?;
    let targets: Vec<IpAddr> = record.value.addresses.iter().map(|a| a.address).collect();
    // A handle lists one address per family: one plan holds it all.
    let mut plans = release_addresses(state, handle, &targets, usize::MAX, settings, now_ms);
    let (mut plan, freed) = plans.pop().unwrap_or_default();
    plan.delete(RecordKey::Handle(handle.to_string()), record.revision);
    Some((plan, freed))
}

/// What one GC plan releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPlan {
    pub handles: Vec<String>,
    pub plan: Plan,
    /// Addresses freed.
    pub released: Vec<IpAddr>,
}

/// Release every allocation of `node` whose handle starts with `handle_prefix`
/// and is not in `valid`: the node's handles, and allocations for `node` in
/// any block whose handle record is gone.
/// Handles are grouped into plans of at most MAX_PLAN_WRITES writes; no two
/// plans share a key, so all of them can commit. A handle needing a block an
/// earlier plan already writes is left for the next call: call again after
/// committing, until it returns nothing.
pub fn plan_gc(
    state: &State,
    node: &str,
    valid: &HashSet<String>,
    handle_prefix: &str,
    settings: &Settings,
    now_ms: u64,
) -> Vec<GcPlan> {
    let collectable = |handle: &str| handle.starts_with(handle_prefix) && !valid.contains(handle);
    // Handle → addresses to free.
    let mut doomed: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for h in state.handles_of_node(node) {
        if collectable(&h.value.handle) {
            doomed
                .entry(h.value.handle.clone())
                .or_default()
                .extend(h.value.addresses.iter().map(|a| a.address));
        }
    }
    // Orphans: allocations for this node whose handle record is missing (or is
    // this node's and being released anyway). GC is rare: one pass over blocks.
    for block in state.blocks() {
        let b = &block.value;
        for (offset, a) in &b.allocations {
            if a.node != node || !collectable(&a.handle) {
                continue;
            }
            if state
                .handle(&a.handle)
                .is_some_and(|h| h.value.node != node)
            {
                continue;
            }
            if let Some(ip) = b.address(*offset) {
                doomed.entry(a.handle.clone()).or_default().insert(ip);
            }
        }
    }

    let mut out = Vec::new();
    let mut used: BTreeSet<IpNetwork> = BTreeSet::new();
    let mut cur = GcBuilder::default();
    for (handle, addresses) in doomed {
        // (block, offset, address) held for this handle.
        let touches: Vec<(IpNetwork, u32, IpAddr)> = addresses
            .iter()
            .filter_map(|ip| {
                let b = &state.block_containing(*ip)?.value;
                let offset = b.offset_of(*ip)?;
                (b.allocations.get(&offset)?.handle == handle).then_some((b.cidr, offset, *ip))
            })
            .collect();
        let blocks: BTreeSet<IpNetwork> = touches.iter().map(|t| t.0).collect();
        let record = state
            .handle(&handle)
            .filter(|h| h.value.node == node)
            .map(|h| h.revision);
        let new_writes = blocks
            .iter()
            .filter(|b| !cur.blocks.contains_key(*b))
            .count()
            + usize::from(record.is_some());
        if cur.writes() + new_writes > MAX_PLAN_WRITES {
            cur.finish(&mut out, &mut used, settings, now_ms);
        }
        if blocks.iter().any(|b| used.contains(b)) {
            continue;
        }
        if blocks.len() + usize::from(record.is_some()) > MAX_PLAN_WRITES {
            // A damaged handle spread over too many blocks: free part of it in a
            // plan of its own; the next call frees the rest and deletes it.
            let first: BTreeSet<IpNetwork> = blocks.iter().take(MAX_PLAN_WRITES).copied().collect();
            let part = touches.into_iter().filter(|t| first.contains(&t.0));
            cur.add(state, &handle, part, None, now_ms);
            cur.finish(&mut out, &mut used, settings, now_ms);
            continue;
        }
        cur.add(state, &handle, touches.into_iter(), record, now_ms);
    }
    cur.finish(&mut out, &mut used, settings, now_ms);
    out
}

/// The GC plan being filled.
#[derive(Default)]
struct GcBuilder {
    blocks: BTreeMap<IpNetwork, (BlockRecord, i64)>,
    handle_deletes: Vec<(String, i64)>,
    handles: Vec<String>,
    released: Vec<IpAddr>,
}

impl GcBuilder {
    fn writes(&self) -> usize {
        self.blocks.len() + self.handle_deletes.len()
    }

    fn add(
        &mut self,
        state: &State,
        handle: &str,
        touches: impl Iterator<Item = (IpNetwork, u32, IpAddr)>,
        record_revision: Option<i64>,
        now_ms: u64,
    ) {
        for (cidr, offset, ip) in touches {
            let Some(current) = state.block(&cidr) else {
                continue;
            };
            let (block, _) = self
                .blocks
                .entry(cidr)
                .or_insert_with(|| (current.value.clone(), current.revision));
            if block.release(offset, handle, now_ms) {
                self.released.push(ip);
            }
        }
        if let Some(revision) = record_revision {
            self.handle_deletes.push((handle.to_string(), revision));
        }
        self.handles.push(handle.to_string());
    }

    fn finish(
        &mut self,
        out: &mut Vec<GcPlan>,
        used: &mut BTreeSet<IpNetwork>,
        settings: &Settings,
        now_ms: u64,
    ) {
        let done = std::mem::take(self);
        if done.handles.is_empty() {
            return;
        }
        let mut plan = Plan::default();
        for (cidr, (mut block, revision)) in done.blocks {
            used.insert(cidr);
            block.prune_cooling(settings.cooldown_ms, now_ms);
            plan.put(Record::Block(block), revision);
        }
        for (handle, revision) in done.handle_deletes {
            plan.delete(RecordKey::Handle(handle), revision);
        }
        if !plan.is_empty() {
            out.push(GcPlan {
                handles: done.handles,
                plan,
                released: done.released,
            });
        }
    }
}

/// Delete every block with no allocations whose grace period is over and none of
/// whose released addresses is still cooling down: one plan per block, comparing
/// its revision (an allocation made meanwhile keeps it). An empty block with no
/// empty time (a damaged record) gets one now, so it is swept later.
pub fn plan_sweep(state: &State, settings: &Settings, now_ms: u64) -> Vec<Plan> {
    let mut plans = Vec::new();
    for block in state.blocks() {
        let b = &block.value;
        if !b.allocations.is_empty() {
            continue;
        }
        let key = RecordKey::Block(b.cidr);
        let mut plan = Plan::default();
        match b.empty_since_ms {
            None => {
                let mut marked = b.clone();
                marked.empty_since_ms = Some(now_ms);
                plan.put(Record::Block(marked), block.revision);
            }
            Some(since) => {
                let grace_over = since.saturating_add(settings.empty_block_grace_ms) <= now_ms;
                let cooling = b.cooling_count(settings.cooldown_ms, now_ms) > 0;
                if !grace_over || cooling {
                    continue;
                }
                plan.delete(key, block.revision);
            }
        }
        plans.push(plan);
    }
    plans
}

/// Delete every empty block affine to `node`, at once (a node that left the
/// cluster has no use for them: its grace period is waived), except blocks
/// with a released address still cooling down, which stay until it has
/// cooled (a new owner must not hand it out sooner), and blocks other nodes'
/// pods still borrow from. One plan per block, comparing its revision.
pub fn plan_return_node_blocks(
    state: &State,
    node: &str,
    settings: &Settings,
    now_ms: u64,
) -> Vec<Plan> {
    state
        .blocks_of_node(node)
        .filter(|block| {
            block.value.allocations.is_empty()
                && block.value.cooling_count(settings.cooldown_ms, now_ms) == 0
        })
        .map(|block| {
            let mut plan = Plan::default();
            plan.delete(RecordKey::Block(block.value.cidr), block.revision);
            plan
        })
        .collect()
}

/// Plans that remove `handle`'s allocations at `addresses` from their blocks
/// (only where the block holds them for that handle), at most `per_plan` blocks a
/// plan. Empty when nothing is held.
fn release_addresses(
    state: &State,
    handle: &str,
    addresses: &[IpAddr],
    per_plan: usize,
    settings: &Settings,
    now_ms: u64,
) -> Vec<(Plan, Vec<IpAddr>)> {
    let mut touched: BTreeMap<IpNetwork, (BlockRecord, i64, Vec<IpAddr>)> = BTreeMap::new();
    for ip in addresses {
        let Some(block) = state.block_containing(*ip) else {
            continue;
        };
        let Some(offset) = block.value.offset_of(*ip) else {
            continue;
        };
        let entry = touched
            .entry(block.value.cidr)
            .or_insert_with(|| (block.value.clone(), block.revision, Vec::new()));
        if entry.0.release(offset, handle, now_ms) {
            entry.2.push(*ip);
        }
    }
    let per_plan = per_plan.max(1);
    let mut plans: Vec<(Plan, Vec<IpAddr>)> = Vec::new();
    let changed = touched
        .into_values()
        .filter(|(_, _, freed)| !freed.is_empty());
    for (i, (mut block, revision, freed)) in changed.enumerate() {
        if i % per_plan == 0 {
            plans.push((Plan::default(), Vec::new()));
        }
        if let Some((plan, freed_here)) = plans.last_mut() {
            block.prune_cooling(settings.cooldown_ms, now_ms);
            plan.put(Record::Block(block), revision);
            freed_here.extend(freed);
        }
    }
    plans
}
