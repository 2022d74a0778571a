// Release, garbage collection, the empty-block sweep and pool management.

use std::collections::HashSet;

use super::testutil::*;
use super::*;
use crate::model::{Allocation, BlockRecord, PoolError, Record, RecordKey};

const NOW: u64 = 1_000_000;

fn settings() -> Settings {
    Settings::default()
}

#[test]
fn release_frees_cools_and_deletes_the_handle() {
    let mut db = Db::with_pools(
        settings(),
        &[pool("v4", "10.0.0.0/24", 28), pool("v6", "fd00::/64", 122)],
    );
    db.alloc("n1", "a", NOW);
    db.alloc("n1", "b", NOW);
    let (plan, freed) = plan_release(&db.state, "a", &db.settings, NOW + 10).unwrap();
    assert_eq!(freed, vec![ip("10.0.0.0"), ip("fd00::")]);
    // Both blocks and the handle, each compared.
    assert_eq!(plan.writes.len(), 3);
    assert_eq!(plan.compares.len(), 3);
    assert!(db.commit(&plan));
    assert!(db.state.handle("a").is_none());
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert!(!b.allocations.contains_key(&0));
    assert_eq!(b.cooling.get(&0), Some(&(NOW + 10)));
    assert_eq!(b.empty_since_ms, None, "b still holds an address");

    db.release("b", NOW + 20);
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert_eq!(b.empty_since_ms, Some(NOW + 20));
    // Releasing again, or an unknown handle, is nothing to do.
    assert!(plan_release(&db.state, "b", &db.settings, NOW).is_none());
    assert!(plan_release(&db.state, "never", &db.settings, NOW).is_none());
    db.assert_clean(NOW);
}

#[test]
fn release_prunes_expired_cooling_entries() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    for h in ["a", "b", "c"] {
        db.alloc1("n1", h, NOW);
    }
    db.release("a", NOW);
    db.release("b", NOW + 40_000);
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert_eq!(b.cooling.keys().copied().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn release_leaves_addresses_held_by_other_handles_alone() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    db.alloc1("n1", "b", NOW);
    // A damaged handle listing b's address as its own.
    let mut forged = db.state.handle("a").unwrap().value.clone();
    forged.handle = "forged".into();
    forged.addresses[0].address = ip("10.0.0.1");
    db.put_raw(Record::Handle(forged));
    let (plan, freed) = plan_release(&db.state, "forged", &db.settings, NOW).unwrap();
    assert!(freed.is_empty());
    assert_eq!(plan.writes.len(), 1, "only the handle goes: {plan}");
    assert!(db.commit(&plan));
    db.assert_clean(NOW);
}

#[test]
fn gc_releases_the_nodes_handles_not_in_the_list() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    for h in ["a", "b", "c"] {
        db.alloc1("n1", h, NOW);
    }
    db.alloc1("n2", "x", NOW);
    let released = db.gc("n1", &["b"], NOW);
    assert_eq!(released, vec!["a", "c"]);
    assert!(db.state.handle("b").is_some());
    assert!(db.state.handle("x").is_some(), "other nodes are untouched");
    assert_eq!(db.gc("n1", &["b"], NOW), Vec::<String>::new());
    db.assert_clean(NOW);
}

#[test]
fn gc_finds_borrowed_and_orphaned_allocations() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/29", 30)]);
    db.alloc1("n1", "a0", NOW);
    db.alloc1("n2", "b0", NOW);
    for i in 1..4 {
        db.alloc1("n1", &format!("a{i}"), NOW);
    }
    let borrowed = db.alloc1("n1", "a4", NOW);
    assert!(borrowed.borrowed);
    // An allocation of n1 whose handle record is gone.
    let cidr = "10.0.0.4/30".parse().unwrap();
    let mut block = db.state.block(&cidr).unwrap().value.clone();
    block.allocate(
        3,
        Allocation {
            handle: "orphan".into(),
            node: "n1".into(),
            pod_namespace: String::new(),
            pod_name: String::new(),
            allocated_at_ms: 0,
        },
    );
    db.put_raw(Record::Block(block));

    let valid: HashSet<String> = ["a0", "a1", "a2", "a3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let plans = plan_gc(&db.state, "n1", &valid, "", &db.settings, NOW);
    // Both live in one block: one plan writes it once, and deletes a4's handle
    // (the orphan has none).
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].handles, vec!["a4", "orphan"]);
    assert_eq!(plans[0].released, vec![ip("10.0.0.5"), ip("10.0.0.7")]);
    assert_eq!(plans[0].plan.writes.len(), 2, "{}", plans[0].plan);
    assert!(db.commit(&plans[0].plan));
    assert!(plan_gc(&db.state, "n1", &valid, "", &db.settings, NOW).is_empty());
    db.assert_clean(NOW);
}

#[test]
fn gc_of_many_handles_splits_into_independent_plans() {
    // 300 stale handles in /28 blocks of one node: 19 blocks + 300 handle deletes.
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/16", 28)]);
    for i in 0..300 {
        db.alloc1("n1", &format!("h{i:03}"), NOW);
    }
    db.alloc1("n1", "keep", NOW);
    let valid: HashSet<String> = ["keep".to_string()].into();
    let first = plan_gc(&db.state, "n1", &valid, "", &db.settings, NOW);
    assert!(first.len() > 1);
    assert!(first.iter().all(|p| p.plan.writes.len() <= MAX_PLAN_WRITES));
    let released = db.gc("n1", &["keep"], NOW);
    assert_eq!(released.len(), 300);
    assert_eq!(db.state.handle_count(), 1);
    assert_eq!(db.state.handles_of_node("n1").count(), 1);
    db.assert_clean(NOW);
}

#[test]
fn sweep_returns_empty_blocks_after_the_grace_period() {
    let s = settings();
    let mut db = Db::with_pools(s.clone(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    db.alloc1("n2", "b", NOW);
    db.release("a", NOW);
    let grace_end = NOW + s.empty_block_grace_ms;
    assert_eq!(db.sweep(grace_end - 1), 0, "still in its grace period");
    assert_eq!(db.sweep(grace_end), 1);
    assert!(db.state.block(&"10.0.0.0/28".parse().unwrap()).is_none());
    assert_eq!(db.state.blocks_of_node("n1").count(), 0);
    // The block is free again: the next node claims it.
    assert_eq!(
        db.alloc1("n3", "c", grace_end).block,
        "10.0.0.0/28".parse().unwrap()
    );
    db.assert_clean(grace_end);
}

#[test]
fn sweep_waits_for_cooling_addresses() {
    let s = Settings {
        cooldown_ms: 600_000,
        ..settings()
    };
    let mut db = Db::with_pools(s, &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    db.release("a", NOW);
    assert_eq!(db.sweep(NOW + 300_000), 0, "its address is still cooling");
    assert_eq!(db.sweep(NOW + 600_000), 1);
}

#[test]
fn sweep_marks_an_empty_block_without_an_empty_time() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.0.0.0/28".parse().unwrap(),
        "p",
        "n1",
    )));
    assert_eq!(db.sweep(NOW), 1);
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert_eq!(b.empty_since_ms, Some(NOW));
    assert_eq!(db.sweep(NOW + 300_000), 1);
    assert_eq!(db.state.block_count(), 0);
}

#[test]
fn a_deleted_nodes_empty_blocks_return_at_once_once_cooled() {
    // Two blocks of 16: n1 fills the first and starts the second, from
    // which n2's pod then borrows.
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/27", 28)]);
    for i in 0..17 {
        db.alloc1("n1", &format!("pod{i}"), NOW);
    }
    let borrowed = db.alloc1("n2", "borrower", NOW);
    assert!(borrowed.borrowed, "{borrowed:?}");
    let cooled_at = NOW + db.settings.cooldown_ms;
    // Nothing goes while n1's pods hold addresses.
    assert!(plan_return_node_blocks(&db.state, "n1", &db.settings, NOW).is_empty());
    db.gc("n1", &[], NOW);
    // Empty now, but the released addresses are cooling down.
    assert!(plan_return_node_blocks(&db.state, "n1", &db.settings, NOW).is_empty());
    let plans = plan_return_node_blocks(&db.state, "n1", &db.settings, cooled_at);
    // The block n2 borrows from stays; the other goes, long before the grace.
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert!(cooled_at < NOW + db.settings.empty_block_grace_ms);
    for plan in &plans {
        assert!(db.commit(plan));
    }
    let left: Vec<_> = db
        .state
        .blocks_of_node("n1")
        .map(|b| b.value.cidr)
        .collect();
    assert_eq!(left, [borrowed.block], "n2 still holds an address in it");
    // Another node's empty blocks are not touched.
    db.alloc1("n3", "c", NOW);
    db.release("c", NOW);
    assert!(
        plan_return_node_blocks(&db.state, "n1", &db.settings, cooled_at).is_empty(),
        "n3's block is not n1's"
    );
}

#[test]
fn sweep_loses_to_an_allocation_made_meanwhile() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    db.release("a", NOW);
    let later = NOW + 400_000;
    let plans = plan_sweep(&db.state, &db.settings, later);
    assert_eq!(plans.len(), 1);
    db.alloc1("n1", "b", later);
    assert!(!db.commit(&plans[0]), "the block's revision moved");
    assert_eq!(db.state.block_count(), 1);
}

#[test]
fn create_pool_rules() {
    let mut db = Db::new(settings());
    let p = pool("p", "10.0.0.0/16", 26);
    let mut unset = p.clone();
    unset.spec.block_size = None;
    let plan = plan_create_pool(&db.state, unset.clone()).unwrap().unwrap();
    assert_eq!(plan.compares, vec![(RecordKey::Pool("p".into()), 0)]);
    assert!(db.commit(&plan));
    // Stored with its block size written out; re-creating it is a no-op.
    assert_eq!(db.state.pool("p").unwrap().value.spec.block_size, Some(26));
    assert_eq!(plan_create_pool(&db.state, unset), Ok(None));
    assert_eq!(plan_create_pool(&db.state, p.clone()), Ok(None));
    let mut other_spec = p.clone();
    other_spec.spec.disabled = true;
    let e = plan_create_pool(&db.state, other_spec).unwrap_err();
    assert_eq!(e, PoolError::Exists("p".into()));
    assert_eq!(e.class(), ErrorClass::AlreadyExists);
    let e = plan_create_pool(&db.state, pool("q", "10.0.128.0/17", 26)).unwrap_err();
    assert!(matches!(e, PoolError::Overlaps { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::InvalidArgument);
    let e = plan_create_pool(&db.state, pool("r", "10.1.0.0/24", 20)).unwrap_err();
    assert!(matches!(e, PoolError::BlockLargerThanPool { .. }), "{e}");
    db.create_pool(pool("v6", "fd00::/64", 122));
    assert_eq!(db.state.pool_count(), 2);
}

#[test]
fn update_pool_rules() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    assert_eq!(
        plan_update_pool(&db.state, pool("nope", "10.9.0.0/24", 28)),
        Err(PoolError::NotFound("nope".into()))
    );
    // Without blocks everything may change.
    let plan = plan_update_pool(&db.state, pool("p", "10.0.0.0/23", 27))
        .unwrap()
        .unwrap();
    assert!(db.commit(&plan));
    assert_eq!(
        plan_update_pool(&db.state, pool("p", "10.0.0.0/23", 27)),
        Ok(None)
    );
    db.alloc1("n1", "a", NOW);
    let e = plan_update_pool(&db.state, pool("p", "10.0.0.0/22", 27)).unwrap_err();
    assert_eq!(
        e,
        PoolError::CidrFixed {
            name: "p".into(),
            blocks: 1
        }
    );
    assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    let e = plan_update_pool(&db.state, pool("p", "10.0.0.0/23", 28)).unwrap_err();
    assert!(matches!(e, PoolError::BlockSizeFixed { .. }), "{e}");
    // Other fields still may.
    let mut p = pool("p", "10.0.0.0/23", 27);
    p.spec.disabled = true;
    p.spec.reserved_cidrs = vec!["10.0.1.0/24".parse().unwrap()];
    let plan = plan_update_pool(&db.state, p).unwrap().unwrap();
    assert!(db.commit(&plan));
    assert!(db.state.pool("p").unwrap().value.spec.disabled);
}

#[test]
fn a_claim_stops_a_pool_change_planned_before_it() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    let resize = plan_update_pool(&db.state, pool("p", "10.0.0.0/24", 27))
        .unwrap()
        .unwrap();
    let delete = plan_delete_pool(&db.state, "p").unwrap();
    db.alloc1("n1", "a", NOW);
    assert!(
        !db.commit(&resize),
        "blockSize must not change under a claimed block"
    );
    assert!(
        !db.commit(&delete[0]),
        "the pool must not go under a claimed block"
    );
    assert_eq!(db.state.pool("p").unwrap().value.block_prefix(), 28);
}

#[test]
fn delete_pool_rules() {
    let mut db = Db::with_pools(
        settings(),
        &[pool("p", "10.0.0.0/16", 28), pool("q", "10.1.0.0/16", 28)],
    );
    assert_eq!(
        plan_delete_pool(&db.state, "nope"),
        Err(PoolError::NotFound("nope".into()))
    );
    for i in 0..3 {
        db.alloc1(&format!("n{i}"), &format!("h{i}"), NOW);
    }
    let e = plan_delete_pool(&db.state, "p").unwrap_err();
    assert_eq!(
        e,
        PoolError::InUse {
            name: "p".into(),
            allocated: 3
        }
    );
    assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    for i in 0..3 {
        db.release(&format!("h{i}"), NOW);
    }
    let plans = plan_delete_pool(&db.state, "p").unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].writes.len(), 4, "three empty blocks and the pool");
    assert!(db.commit(&plans[0]));
    assert!(db.state.pool("p").is_none());
    assert_eq!(db.state.block_count(), 0);
    // A pool without blocks goes in one write.
    let plans = plan_delete_pool(&db.state, "q").unwrap();
    assert_eq!(plans[0].writes.len(), 1);
}

#[test]
fn deleting_a_pool_with_many_blocks_is_chunked() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/16", 28)]);
    for i in 0..150u32 {
        let cidr = format!("10.0.{}.{}/28", i / 16, (i % 16) * 16);
        let mut b = BlockRecord::claimed(cidr.parse().unwrap(), "p", "n1");
        b.empty_since_ms = Some(0);
        db.put_raw(Record::Block(b));
    }
    let plans = plan_delete_pool(&db.state, "p").unwrap();
    assert_eq!(plans.len(), 2);
    assert!(plans.iter().all(|p| p.writes.len() <= MAX_PLAN_WRITES));
    assert!(plans.iter().all(|p| {
        p.compares
            .iter()
            .any(|(k, _)| *k == RecordKey::Pool("p".into()))
    }));
    assert_eq!(
        plans[1].writes.last().unwrap().0,
        RecordKey::Pool("p".into())
    );
    for p in &plans {
        assert!(db.commit(p));
    }
    assert_eq!(db.state.block_count(), 0);
    assert_eq!(db.state.pool_count(), 0);
}

#[test]
fn gc_with_a_handle_prefix_collects_only_that_networks_handles() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/16", 26)]);
    db.alloc1("n1", "podnet.c1.eth0", NOW);
    db.alloc1("n1", "podnet.c2.eth0", NOW);
    db.alloc1("n1", "other.c3.net1", NOW);
    let valid: HashSet<String> = ["podnet.c1.eth0".to_string()].into();
    let plans = plan_gc(&db.state, "n1", &valid, "podnet.", &db.settings, NOW);
    let collected: Vec<&String> = plans.iter().flat_map(|p| &p.handles).collect();
    assert_eq!(collected, vec!["podnet.c2.eth0"]);
    for plan in &plans {
        assert!(db.commit(&plan.plan));
    }
    assert!(db.state.handle("other.c3.net1").is_some());
    assert!(db.state.handle("podnet.c1.eth0").is_some());
    assert!(db.state.handle("podnet.c2.eth0").is_none());
}
