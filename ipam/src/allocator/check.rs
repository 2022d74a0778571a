// Consistency report, as `calicoctl ipam check`: cross-checks blocks against
// handles, pools and (when known) nodes, and lists every problem found with the
// address, block, handle or pool it is about. Reads everything once: O(records).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::Settings;
use crate::model::{Family, State, net};

/// A block empty this long past its grace period is reported as leaked (the
/// sweeper runs well within it).
pub const LEAK_MARGIN_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A block holds an allocation whose handle does not exist or does not list
    /// that address.
    AllocationWithoutHandle,
    /// A handle lists an address its block does not hold for it.
    HandleWithoutAllocation,
    /// A block is affine to a node that does not exist.
    BlockOfUnknownNode,
    /// An allocation is for a node that does not exist.
    AllocationOfUnknownNode,
    /// Two blocks, or two pools, overlap.
    Overlap,
    /// A block lies in no pool, or names a pool that does not hold it.
    BlockOutsidePool,
    /// One address is held twice.
    DuplicateAddress,
    /// An empty block kept past its grace period.
    LeakedEmptyBlock,
    /// A stored record that does not decode.
    UnreadableRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// An address, block, handle, pool or key.
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub pools_checked: u64,
    pub blocks_checked: u64,
    pub handles_checked: u64,
    pub allocations_checked: u64,
    /// False when no node list was given, so node checks were skipped.
    pub nodes_checked: bool,
}

pub fn check(
    state: &State,
    known_nodes: Option<&BTreeSet<String>>,
    settings: &Settings,
    now_ms: u64,
) -> CheckReport {
    let mut report = CheckReport {
        pools_checked: state.pool_count() as u64,
        blocks_checked: state.block_count() as u64,
        handles_checked: state.handle_count() as u64,
        nodes_checked: known_nodes.is_some(),
        ..CheckReport::default()
    };
    let mut problem = |kind, subject: String, detail: String| {
        report.problems.push(Problem {
            kind,
            subject,
            detail,
        });
    };

    // Pools with each other (few: pairwise).
    let pools: Vec<_> = state.pools().map(|p| &p.value).collect();
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            if net::overlaps(&a.spec.cidr, &b.spec.cidr) {
                problem(
                    ProblemKind::Overlap,
                    format!("pool {}", a.name()),
                    format!(
                        "pool {:?} ({}) overlaps pool {:?} ({})",
                        a.name(),
                        a.spec.cidr,
                        b.name(),
                        b.spec.cidr
                    ),
                );
            }
        }
    }

    // Blocks: overlaps (one sorted walk per family), pool, nodes, leaks.
    let mut reach: Option<(Family, u128, String)> = None;
    // Address → holders seen in blocks (handle, block).
    let mut held_by: HashMap<IpAddr, (String, String)> = HashMap::new();
    let mut allocations = 0u64;
    for block in state.blocks() {
        let b = &block.value;
        let cidr = b.cidr.to_string();
        let family = b.family();
        if let Some((f, end, other)) = &reach
            && *f == family
            && net::first(&b.cidr) <= *end
        {
            problem(
                ProblemKind::Overlap,
                format!("block {cidr}"),
                format!("block {cidr} overlaps block {other}"),
            );
        }
        if reach
            .as_ref()
            .is_none_or(|(f, end, _)| *f != family || net::last(&b.cidr) > *end)
        {
            reach = Some((family, net::last(&b.cidr), cidr.clone()));
        }

        match state.pool(&b.pool) {
            None => problem(
                ProblemKind::BlockOutsidePool,
                format!("block {cidr}"),
                format!("block {cidr} names pool {:?}, which does not exist", b.pool),
            ),
            Some(p) if !net::is_within(&b.cidr, &p.value.spec.cidr) => problem(
                ProblemKind::BlockOutsidePool,
                format!("block {cidr}"),
                format!(
                    "block {cidr} names pool {:?} ({}), which does not hold it",
                    b.pool, p.value.spec.cidr
                ),
            ),
            Some(_) => {}
        }

        if let (Some(nodes), Some(node)) = (known_nodes, &b.affinity)
            && !nodes.contains(node)
        {
            problem(
                ProblemKind::BlockOfUnknownNode,
                format!("block {cidr}"),
                format!("block {cidr} is affine to node {node:?}, which does not exist"),
            );
        }

        if b.allocations.is_empty() {
            let grace_end = b
                .empty_since_ms
                .map(|since| since.saturating_add(settings.empty_block_grace_ms));
            let cooling_end = b.last_cooling_until(settings.cooldown_ms).unwrap_or(0);
            match grace_end {
                None => problem(
                    ProblemKind::LeakedEmptyBlock,
                    format!("block {cidr}"),
                    format!(
                        "block {cidr} is empty but has no empty-since time, so it is never swept"
                    ),
                ),
                Some(end) if end.max(cooling_end).saturating_add(LEAK_MARGIN_MS) <= now_ms => {
                    problem(
                        ProblemKind::LeakedEmptyBlock,
                        format!("block {cidr}"),
                        format!(
                            "block {cidr} has been empty since {} ms, past its grace period",
                            b.empty_since_ms.unwrap_or(0)
                        ),
                    )
                }
                Some(_) => {}
            }
        }

        for (offset, a) in &b.allocations {
            allocations += 1;
            let Some(ip) = b.address(*offset) else {
                continue;
            };
            if let Some((other_handle, other_block)) =
                held_by.insert(ip, (a.handle.clone(), cidr.clone()))
            {
                problem(
                    ProblemKind::DuplicateAddress,
                    ip.to_string(),
                    format!(
                        "{ip} is held by handle {:?} in block {cidr} and by handle {other_handle:?} in block {other_block}",
                        a.handle
                    ),
                );
            }
            let listed = state
                .handle(&a.handle)
                .is_some_and(|h| h.value.addresses.iter().any(|x| x.address == ip));
            if !listed {
                let why = if state.handle(&a.handle).is_some() {
                    "does not list it"
                } else {
                    "does not exist"
                };
                problem(
                    ProblemKind::AllocationWithoutHandle,
                    ip.to_string(),
                    format!(
                        "{ip} in block {cidr} is held for handle {:?}, which {why}",
                        a.handle
                    ),
                );
            }
            if let Some(nodes) = known_nodes
                && !nodes.contains(&a.node)
            {
                problem(
                    ProblemKind::AllocationOfUnknownNode,
                    ip.to_string(),
                    format!(
                        "{ip} (handle {:?}) is allocated for node {:?}, which does not exist",
                        a.handle, a.node
                    ),
                );
            }
        }
    }

    // Handles: each listed address must be held for the handle, and listed once.
    let mut listed_by: HashMap<IpAddr, String> = HashMap::new();
    for h in state.handles() {
        let h = &h.value;
        for a in &h.addresses {
            if let Some(other) = listed_by.insert(a.address, h.handle.clone()) {
                let detail = if other == h.handle {
                    format!("handle {:?} lists {} twice", h.handle, a.address)
                } else {
                    format!(
                        "{} is listed by handles {other:?} and {:?}",
                        a.address, h.handle
                    )
                };
                problem(ProblemKind::DuplicateAddress, a.address.to_string(), detail);
            }
            let holder = state.block_containing(a.address).and_then(|b| {
                b.value
                    .offset_of(a.address)
                    .and_then(|o| b.value.allocations.get(&o))
            });
            match holder {
                Some(al) if al.handle == h.handle => {}
                Some(al) => problem(
                    ProblemKind::HandleWithoutAllocation,
                    format!("handle {}", h.handle),
                    format!(
                        "handle {:?} lists {}, but its block holds it for handle {:?}",
                        h.handle, a.address, al.handle
                    ),
                ),
                None => problem(
                    ProblemKind::HandleWithoutAllocation,
                    format!("handle {}", h.handle),
                    format!(
                        "handle {:?} lists {}, which no block holds",
                        h.handle, a.address
                    ),
                ),
            }
        }
    }

    for (key, reason) in state.unreadable() {
        problem(
            ProblemKind::UnreadableRecord,
            key.to_string(),
            reason.to_string(),
        );
    }
    report.allocations_checked = allocations;
    report
}
