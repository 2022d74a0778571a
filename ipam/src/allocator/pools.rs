// Pool management plans: create (idempotent for an identical spec), update
// (cidr and blockSize fixed once blocks exist), delete (refused while any
// address is held; empty blocks go with the pool). Every plan compares the
// pool's revision, and a block claim rewrites its pool, so none of these can
// commit over a claim it did not see.

use super::{MAX_PLAN_WRITES, Plan};
use crate::model::{IpPool, PoolError, Record, RecordKey, State, validate_pool};

/// None: an identical pool exists already (nothing to write). The pool is stored
/// with its block size written out.
pub fn plan_create_pool(state: &State, pool: IpPool) -> Result<Option<Plan>, PoolError> {
    let pool = pool.normalized();
    let others: Vec<&IpPool> = state.pools().map(|p| &p.value).collect();
    validate_pool(&pool, &others)?;
    if let Some(existing) = state.pool(pool.name()) {
        return if existing.value.same_spec(&pool) {
            Ok(None)
        } else {
            Err(PoolError::Exists(pool.name().to_string()))
        };
    }
    let mut plan = Plan::default();
    plan.put(Record::Pool(pool), 0);
    Ok(Some(plan))
}

/// Replace an existing pool's spec and labels. None: nothing changes.
pub fn plan_update_pool(state: &State, pool: IpPool) -> Result<Option<Plan>, PoolError> {
    let pool = pool.normalized();
    let name = pool.name().to_string();
    let existing = state
        .pool(&name)
        .ok_or_else(|| PoolError::NotFound(name.clone()))?;
    let others: Vec<&IpPool> = state.pools().map(|p| &p.value).collect();
    validate_pool(&pool, &others)?;
    let blocks = state.blocks_of_pool(&name).count();
    if blocks > 0 {
        let old = existing.value.clone().normalized();
        if old.spec.cidr != pool.spec.cidr {
            return Err(PoolError::CidrFixed { name, blocks });
        }
        if old.block_prefix() != pool.block_prefix() {
            return Err(PoolError::BlockSizeFixed { name, blocks });
        }
    }
    if existing.value == pool {
        return Ok(None);
    }
    let mut plan = Plan::default();
    plan.put(Record::Pool(pool), existing.revision);
    Ok(Some(plan))
}

/// Plans to commit in order: block deletes in chunks, the pool delete in the
/// last. Refused while any address of the pool is held. Each plan compares the
/// pool's revision, so a block claimed meanwhile stops the rest (plan again).
pub fn plan_delete_pool(state: &State, name: &str) -> Result<Vec<Plan>, PoolError> {
    let pool = state
        .pool(name)
        .ok_or_else(|| PoolError::NotFound(name.to_string()))?;
    let allocated: usize = state
        .blocks_of_pool(name)
        .map(|b| b.value.allocations.len())
        .sum();
    if allocated > 0 {
        return Err(PoolError::InUse {
            name: name.to_string(),
            allocated: allocated as u64,
        });
    }
    let pool_key = RecordKey::Pool(name.to_string());
    let blocks: Vec<(RecordKey, i64)> = state
        .blocks_of_pool(name)
        .map(|b| (RecordKey::Block(b.value.cidr), b.revision))
        .collect();
    // One write of each plan is kept for the pool (the last plan deletes it).
    let mut plans: Vec<Plan> = blocks
        .chunks(MAX_PLAN_WRITES - 1)
        .map(|chunk| {
            let mut plan = Plan::default();
            plan.compares.push((pool_key.clone(), pool.revision));
            for (key, revision) in chunk {
                plan.delete(key.clone(), *revision);
            }
            plan
        })
        .collect();
    match plans.last_mut() {
        Some(last) => {
            // Its compare on the pool is already there.
            last.writes.push((pool_key, None));
        }
        None => {
            let mut plan = Plan::default();
            plan.delete(pool_key, pool.revision);
            plans.push(plan);
        }
    }
    Ok(plans)
}
