// Pure allocation planning: given the State (the store as last seen) and a
// request, decide what to write, as one compare-and-swap store transaction (a
// Plan). Nothing here does I/O or reads the clock; the service commits the plan
// and, on a conflict, refreshes its State and plans again.
//
// Two replicas planning from the same State produce plans that compare the same
// revisions, so at most one commits: an address is never handed out twice.

mod allocate;
mod check;
mod pools;
mod release;
mod view;

#[cfg(test)]
mod model_test;
#[cfg(test)]
mod tests_allocate;
#[cfg(test)]
mod tests_check;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_robust;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::model::{Family, Record, RecordKey, State};

pub use crate::model::ErrorClass;
pub use allocate::{AllocError, Exhaustion, PoolFullness, plan_allocate};
pub use check::{CheckReport, Problem, ProblemKind, check};
pub use pools::{plan_create_pool, plan_delete_pool, plan_update_pool};
pub use release::{GcPlan, plan_gc, plan_release, plan_return_node_blocks, plan_sweep};
pub use view::{
    AddressInfo, BlockInfo, BorrowedAddress, NodeView, PoolUsage, block_info, list_blocks,
    node_view, show_address, usage,
};

/// Most writes one plan carries: etcd refuses transactions of more than 128 ops
/// (`--max-txn-ops`), and a plan's compares come back as reads on a conflict.
pub const MAX_PLAN_WRITES: usize = 100;

/// Allocator settings (ipamd flags / IPAMConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Never borrow from another node's block.
    pub strict_affinity: bool,
    /// A released address is not handed out again for this long.
    pub cooldown_ms: u64,
    /// An empty block stays affine this long before it returns to its pool.
    pub empty_block_grace_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            strict_affinity: false,
            cooldown_ms: 30_000,
            empty_block_grace_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllocateRequest {
    pub node: String,
    pub handle: String,
    pub pod_namespace: String,
    pub pod_name: String,
    /// Empty: every family the node's candidate pools offer. The family of an
    /// explicit address is always wanted.
    pub families: Vec<Family>,
    /// Pools to take from; empty: every enabled pool that selects the node.
    pub pools: Vec<String>,
    /// Exact addresses wanted, at most one per family.
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub address: IpAddr,
    pub family: Family,
    pub block: IpNetwork,
    pub pool: String,
    /// The block is affine to another node.
    pub borrowed: bool,
}

/// One atomic store transaction: every `compares` key must still be at its
/// revision (0 = absent); then `writes` apply (None = delete).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub compares: Vec<(RecordKey, i64)>,
    pub writes: Vec<(RecordKey, Option<Record>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// The handle already held every wanted family: nothing to write.
    Existing(Vec<Allocated>),
    /// Commit `plan`; then the handle holds `allocated` (every address it holds,
    /// old and new, IPv4 first).
    Plan {
        plan: Plan,
        allocated: Vec<Allocated>,
    },
}

impl Plan {
    /// Write `record`, provided its key is still at `revision` (0: absent).
    pub fn put(&mut self, record: Record, revision: i64) {
        let key = record.key();
        self.compares.push((key.clone(), revision));
        self.writes.push((key, Some(record)));
    }

    /// Delete `key`, provided it is still at `revision`.
    pub fn delete(&mut self, key: RecordKey, revision: i64) {
        self.compares.push((key.clone(), revision));
        self.writes.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Bring `state` up to date after this plan committed at `revision`.
    pub fn apply_to(&self, state: &mut State, revision: i64) {
        for (key, write) in &self.writes {
            match write {
                Some(record) => state.apply_record(record.clone(), revision),
                None => state.remove(key),
            }
        }
    }
}

impl fmt::Display for Plan {
    /// "put blocks/10.0.0.0-26, delete handles/h" for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, write)) in self.writes.iter().enumerate() {
            let verb = if write.is_some() { "put" } else { "delete" };
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{verb} {}", key.to_key())?;
        }
        Ok(())
    }
}
