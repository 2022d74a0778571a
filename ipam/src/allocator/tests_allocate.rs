// plan_allocate, rule by rule (issue 5): validation, claim, borrow, strict
// affinity, explicit addresses, hints, reserved ranges, cool-down, dual stack,
// idempotence, exhaustion messages, and pools too large to enumerate.

use super::testutil::*;
use super::*;
use crate::model::{BlockRecord, Family, HandleAddress, HandleRecord, Record, RecordKey};

const NOW: u64 = 1_000_000;

fn settings() -> Settings {
    Settings::default()
}

fn strict() -> Settings {
    Settings {
        strict_affinity: true,
        ..Settings::default()
    }
}

fn err(db: &Db, r: &AllocateRequest) -> AllocError {
    plan_allocate(&db.state, r, &db.labels_of(&r.node), &db.settings, NOW).unwrap_err()
}

#[test]
fn handles_and_nodes_are_validated() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    for bad in ["", "has space", "a/b", "é", &"h".repeat(254)] {
        let e = err(&db, &req("n1", bad));
        assert!(matches!(e, AllocError::InvalidHandle(_)), "{bad:?}: {e}");
        assert_eq!(e.class(), ErrorClass::InvalidArgument);
    }
    for bad in ["", "a b", "tab\t", &"n".repeat(254)] {
        assert!(matches!(
            err(&db, &req(bad, "h")),
            AllocError::InvalidNode(_)
        ));
    }
    let good = format!("k8s-pod-network.{}:eth0_1", "a".repeat(200));
    db.alloc1("n1", &good, NOW);
}

#[test]
fn first_allocation_claims_a_block_and_later_ones_fill_it() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    let pool_rev = db.state.pool("p").unwrap().revision;
    let labels = no_labels();
    let outcome = plan_allocate(&db.state, &req("n1", "h0"), &labels, &db.settings, NOW).unwrap();
    let AllocateOutcome::Plan { plan, allocated } = outcome else {
        panic!("expected a plan")
    };
    assert_eq!(allocated.len(), 1);
    let a = &allocated[0];
    assert_eq!(a.address, ip("10.0.0.0"));
    assert_eq!(a.block, "10.0.0.0/28".parse().unwrap());
    assert_eq!(
        (a.pool.as_str(), a.borrowed, a.family),
        ("p", false, Family::V4)
    );
    let block_key = RecordKey::Block(a.block);
    // The claim compares the block absent, touches the pool, creates the handle.
    assert!(plan.compares.contains(&(block_key.clone(), 0)));
    assert!(
        plan.compares
            .contains(&(RecordKey::Pool("p".into()), pool_rev))
    );
    assert!(plan.compares.contains(&(RecordKey::Handle("h0".into()), 0)));
    assert_eq!(plan.writes.len(), 3);
    assert!(db.commit(&plan));
    let block = &db.state.block(&a.block).unwrap().value;
    assert_eq!(block.affinity.as_deref(), Some("n1"));
    assert_eq!(block.allocations[&0].handle, "h0");
    assert_eq!(block.allocations[&0].pod_name, "pod-h0");

    // The next ones fill the same block without touching the pool.
    for i in 1..16 {
        let a = db.alloc1("n1", &format!("h{i}"), NOW);
        assert_eq!(a.block, "10.0.0.0/28".parse().unwrap());
        assert_eq!(a.address, ip(&format!("10.0.0.{i}")));
    }
    let r = req("n1", "h16");
    let AllocateOutcome::Plan { plan, allocated } =
        plan_allocate(&db.state, &r, &labels, &db.settings, NOW).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        allocated[0].address,
        ip("10.0.0.16"),
        "a full block claims the next"
    );
    assert!(db.commit(&plan));
    let a = db.alloc1("n1", "h17", NOW);
    assert_eq!(a.address, ip("10.0.0.17"));
    db.assert_clean(NOW);
}

#[test]
fn each_node_claims_its_own_blocks() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    assert_eq!(
        db.alloc1("n1", "a", NOW).block,
        "10.0.0.0/28".parse().unwrap()
    );
    assert_eq!(
        db.alloc1("n2", "b", NOW).block,
        "10.0.0.16/28".parse().unwrap()
    );
    assert_eq!(db.alloc1("n1", "c", NOW).address, ip("10.0.0.1"));
    assert_eq!(
        db.alloc1("n3", "d", NOW).block,
        "10.0.0.32/28".parse().unwrap()
    );
    assert_eq!(db.state.blocks_of_node("n2").count(), 1);
    db.assert_clean(NOW);
}

/// Pool 10.0.0.0/29 in two /30 blocks: n1 holds one, n2 the other.
fn two_node_db(s: Settings) -> Db {
    let mut db = Db::with_pools(s, &[pool("p", "10.0.0.0/29", 30)]);
    db.alloc1("n1", "a0", NOW);
    db.alloc1("n2", "b0", NOW);
    for i in 1..4 {
        db.alloc1("n1", &format!("a{i}"), NOW);
    }
    db
}

#[test]
fn borrows_from_another_nodes_block_when_no_block_is_free() {
    let mut db = two_node_db(settings());
    let a = db.alloc1("n1", "a4", NOW);
    assert_eq!(a.address, ip("10.0.0.5"));
    assert_eq!(a.block, "10.0.0.4/30".parse().unwrap());
    assert!(a.borrowed);
    let block = &db.state.block(&a.block).unwrap().value;
    assert_eq!(
        block.affinity.as_deref(),
        Some("n2"),
        "borrowing keeps the affinity"
    );
    assert_eq!(block.allocations[&1].node, "n1");
    let h = &db.state.handle("a4").unwrap().value;
    assert!(h.addresses[0].borrowed);
    // The owner still gets the rest of its block.
    let b = db.alloc1("n2", "b1", NOW);
    assert_eq!((b.address, b.borrowed), (ip("10.0.0.6"), false));
    // The idempotent answer reports the borrow too.
    assert_eq!(db.alloc("n1", "a4", NOW), vec![a]);
    db.assert_clean(NOW);
}

#[test]
fn strict_affinity_never_borrows() {
    let mut db = two_node_db(strict());
    let e = err(&db, &req("n1", "a4"));
    assert_eq!(e.class(), ErrorClass::ResourceExhausted);
    let text = e.to_string();
    assert!(
        text.contains("strictAffinity forbids borrowing")
            && text.contains("5 of 8 addresses in use"),
        "{text}"
    );
    // n2 still has room in its own block.
    assert!(!db.alloc1("n2", "b1", NOW).borrowed);
}

#[test]
fn exhaustion_names_the_pool_and_how_full_it_is() {
    let mut db = Db::with_pools(settings(), &[pool("default-ipv4", "10.244.0.0/30", 30)]);
    for i in 0..4 {
        db.alloc1("n1", &format!("h{i}"), NOW);
    }
    let e = err(&db, &req("n2", "x"));
    assert_eq!(
        e.to_string(),
        "no IPv4 address left for node \"n2\": pool \"default-ipv4\" (10.244.0.0/30) is exhausted: 4 of 4 addresses in use, 0 cooling down"
    );
}

#[test]
fn exhausted_with_only_cooling_addresses_says_when_one_is_free() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/30", 30)]);
    for i in 0..4 {
        db.alloc1("n1", &format!("h{i}"), NOW);
    }
    db.release("h1", NOW);
    db.release("h2", NOW + 5_000);
    let at = NOW + 12_300;
    let e = plan_allocate(&db.state, &req("n1", "x"), &no_labels(), &db.settings, at).unwrap_err();
    // Cool-down 30 s from NOW: free again at NOW + 30 s, 17.7 s from `at` → 18 s.
    assert_eq!(
        e.to_string(),
        "no IPv4 address left for node \"n1\": pool \"p\" (10.0.0.0/30) is exhausted: 2 of 4 addresses in use, 2 cooling down (the first is free again in 18 s)"
    );
    let AllocError::Exhausted(x) = e else {
        panic!()
    };
    assert_eq!(x.pools[0].free_again_at_ms, Some(NOW + 30_000));
    // Once the cool-down is over, the first released address is handed out.
    let a = db.allocate_req(&req("n1", "x"), NOW + 30_000).unwrap();
    assert_eq!(a[0].address, ip("10.0.0.1"));
}

#[test]
fn released_addresses_are_not_reused_during_the_cooldown() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    for i in 0..3 {
        db.alloc1("n1", &format!("h{i}"), NOW);
    }
    assert_eq!(db.release("h0", NOW), vec![ip("10.0.0.0")]);
    assert_eq!(db.alloc1("n1", "x1", NOW + 1).address, ip("10.0.0.3"));
    assert_eq!(db.alloc1("n1", "x2", NOW + 29_999).address, ip("10.0.0.4"));
    assert_eq!(db.alloc1("n1", "x3", NOW + 30_000).address, ip("10.0.0.0"));
    // Writing the block dropped the expired cooling entry.
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert!(b.cooling.is_empty());
}

#[test]
fn reserved_ranges_are_never_handed_out() {
    let mut p = pool("p", "10.0.0.0/24", 28);
    // The whole first block, the start of the second, one address later on.
    p.spec.reserved_cidrs = vec![
        "10.0.0.0/28".parse().unwrap(),
        "10.0.0.16/30".parse().unwrap(),
        "10.0.0.21/32".parse().unwrap(),
    ];
    let mut db = Db::with_pools(settings(), &[p]);
    let a = db.alloc1("n1", "h0", NOW);
    assert_eq!(
        a.block,
        "10.0.0.16/28".parse().unwrap(),
        "a wholly reserved block is skipped"
    );
    assert_eq!(a.address, ip("10.0.0.20"));
    assert_eq!(db.alloc1("n1", "h1", NOW).address, ip("10.0.0.22"));
    let e = err(
        &db,
        &AllocateRequest {
            addresses: vec![ip("10.0.0.21")],
            ..req("n1", "x")
        },
    );
    assert!(matches!(e, AllocError::AddressReserved { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::InvalidArgument);
}

#[test]
fn reserved_ranges_spanning_many_blocks_are_jumped_over() {
    // A /9 of a /8 pool reserved: the claim lands right after it, at once.
    let mut p = pool("big", "10.0.0.0/8", 26);
    p.spec.reserved_cidrs = vec!["10.0.0.0/9".parse().unwrap()];
    let mut db = Db::with_pools(settings(), &[p]);
    let a = db.alloc1("n1", "h", NOW);
    assert_eq!(a.address, ip("10.128.0.0"));
    let u = usage(&db.state, NOW, &db.settings);
    assert_eq!(u[0].capacity, 1 << 23);
    assert_eq!(u[0].reserved, 1 << 23);
    assert_eq!(u[0].blocks_total, 1 << 18);
}

#[test]
fn free_block_search_walks_existing_blocks_only() {
    // An IPv6 /48 holds 2^74 blocks of /122: the search must not count them.
    let mut db = Db::with_pools(settings(), &[pool("v6", "fd00:1::/48", 122)]);
    for i in 0..200 {
        let a = db.alloc("n1", &format!("h{i}"), NOW);
        assert_eq!(a[0].family, Family::V6);
    }
    // 200 addresses in /122 blocks of 64: 4 blocks, in order.
    let blocks: Vec<String> = db
        .state
        .blocks()
        .map(|b| b.value.cidr.to_string())
        .collect();
    assert_eq!(
        blocks,
        [
            "fd00:1::/122",
            "fd00:1::40/122",
            "fd00:1::80/122",
            "fd00:1::c0/122"
        ]
    );
    // Holes between existing blocks are found first.
    db.put_raw(Record::Block(BlockRecord::claimed(
        "fd00:1::200/122".parse().unwrap(),
        "v6",
        "n9",
    )));
    let a = db.alloc1("n2", "x", NOW);
    assert_eq!(a.block, "fd00:1::100/122".parse().unwrap());
    let u = usage(&db.state, NOW, &db.settings);
    assert_eq!(u[0].capacity, u64::MAX, "2^80 addresses saturate");
    assert_eq!(u[0].blocks_total, u64::MAX);
    assert_eq!(u[0].blocks_claimed, 6);
}

#[test]
fn pools_at_the_edges_of_the_address_space() {
    let mut db = Db::with_pools(
        settings(),
        &[
            pool("top4", "255.255.255.0/25", 26),
            pool("top6", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff80/121", 122),
        ],
    );
    let mut r = req("n1", "a");
    r.pools = vec!["top4".into(), "top6".into()];
    let a = db.allocate_req(&r, NOW).unwrap();
    assert_eq!(a[0].address, ip("255.255.255.0"));
    assert_eq!(a[1].address, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff80"));
    r.handle = "b".into();
    r.node = "n2".into();
    let b = db.allocate_req(&r, NOW).unwrap();
    assert_eq!(b[0].block, "255.255.255.64/26".parse().unwrap());
    assert_eq!(
        b[1].block,
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffc0/122"
            .parse()
            .unwrap()
    );
    // Both pools' blocks are claimed: n3 borrows; the search ends without overflow.
    r.handle = "c".into();
    r.node = "n3".into();
    let c = db.allocate_req(&r, NOW).unwrap();
    assert!(c.iter().all(|a| a.borrowed));

    let mut db = Db::with_pools(
        settings(),
        &[pool("all6", "::/0", 116), pool("all4", "0.0.0.0/0", 20)],
    );
    let got = db.alloc("n1", "d", NOW);
    assert_eq!((got[0].address, got[1].address), (ip("0.0.0.0"), ip("::")));
    let u = usage(&db.state, NOW, &db.settings);
    assert_eq!(u[0].capacity, 1 << 32);
    assert_eq!(u[0].blocks_total, 1 << 20);
    assert_eq!(u[1].capacity, u64::MAX);
}

#[test]
fn explicit_address_in_the_nodes_block_or_a_new_block() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    let mut r = req("n1", "b");
    r.addresses = vec![ip("10.0.0.9")];
    let got = db.allocate_req(&r, NOW).unwrap();
    assert_eq!((got[0].address, got[0].borrowed), (ip("10.0.0.9"), false));
    // Its block does not exist: it is claimed for the node.
    let mut r = req("n1", "c");
    r.addresses = vec![ip("10.0.0.200")];
    let got = db.allocate_req(&r, NOW).unwrap();
    assert_eq!(got[0].block, "10.0.0.192/28".parse().unwrap());
    let b = &db.state.block(&got[0].block).unwrap().value;
    assert_eq!(b.affinity.as_deref(), Some("n1"));
    assert_eq!(b.allocations[&8].handle, "c");
    // Automatic allocation carries on from the lowest free address.
    assert_eq!(db.alloc1("n1", "d", NOW).address, ip("10.0.0.1"));
    // Idempotent with the same explicit address.
    assert_eq!(db.allocate_req(&r, NOW).unwrap(), got);
    db.assert_clean(NOW);
}

#[test]
fn explicit_address_in_another_nodes_block_is_borrowed() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n2", "x", NOW);
    let mut r = req("n1", "b");
    r.addresses = vec![ip("10.0.0.5")];
    let got = db.allocate_req(&r, NOW).unwrap();
    assert!(got[0].borrowed);
    db.assert_clean(NOW);

    let mut db = Db::with_pools(strict(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n2", "x", NOW);
    let e = err(&db, &r);
    assert!(
        matches!(&e, AllocError::AddressInOtherNodesBlock { owner, .. } if owner == "n2"),
        "{e}"
    );
}

#[test]
fn explicit_address_ignores_the_cooldown_but_not_holders() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "a", NOW);
    db.alloc1("n1", "b", NOW);
    db.release("a", NOW);
    let mut r = req("n1", "sts-0");
    r.addresses = vec![ip("10.0.0.0")];
    assert_eq!(
        db.allocate_req(&r, NOW + 1).unwrap()[0].address,
        ip("10.0.0.0")
    );
    let b = &db
        .state
        .block(&"10.0.0.0/28".parse().unwrap())
        .unwrap()
        .value;
    assert!(b.cooling.is_empty(), "taking it ends its cool-down");

    r.handle = "other".into();
    let e = err(&db, &r);
    assert_eq!(
        e,
        AllocError::AddressHeld {
            ip: ip("10.0.0.0"),
            handle: "sts-0".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::AlreadyExists);
}

#[test]
fn explicit_address_outside_usable_pools() {
    let mut off = pool("off", "10.1.0.0/24", 28);
    off.spec.disabled = true;
    let mut zoned = pool("zoned", "10.2.0.0/24", 28);
    zoned.spec.node_selector = "zone=a".into();
    let db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28), off, zoned]);
    let with = |addr: &str, pools: &[&str]| {
        let mut r = req("n1", "h");
        r.addresses = vec![ip(addr)];
        r.pools = pools.iter().map(|s| s.to_string()).collect();
        err(&db, &r)
    };
    assert_eq!(
        with("10.9.0.1", &[]),
        AllocError::AddressNotInPool(ip("10.9.0.1"))
    );
    assert_eq!(
        with("10.1.0.1", &[]),
        AllocError::PoolDisabled("off".into())
    );
    assert_eq!(
        with("10.2.0.1", &[]),
        AllocError::PoolNotForNode {
            pool: "zoned".into(),
            node: "n1".into()
        }
    );
    let e = with("10.0.0.1", &["zoned"]);
    assert!(matches!(e, AllocError::PoolNotForNode { .. }), "{e}");
    let mut db2 = Db::with_pools(
        settings(),
        &[pool("p", "10.0.0.0/24", 28), pool("q", "10.3.0.0/24", 28)],
    );
    let mut r = req("n1", "h");
    r.addresses = vec![ip("10.0.0.1")];
    r.pools = vec!["q".into()];
    assert_eq!(
        err(&db2, &r),
        AllocError::AddressOutsideRequestedPools {
            ip: ip("10.0.0.1"),
            pool: "p".into()
        }
    );
    r.pools = vec!["p".into()];
    db2.allocate_req(&r, NOW).unwrap();
}

#[test]
fn at_most_one_explicit_address_per_family() {
    let db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    let mut r = req("n1", "h");
    r.addresses = vec![ip("10.0.0.1"), ip("10.0.0.2")];
    assert!(matches!(
        err(&db, &r),
        AllocError::TwoAddressesOneFamily {
            family: Family::V4,
            ..
        }
    ));
    // The same address twice is one request.
    let mut db = db;
    r.addresses = vec![ip("10.0.0.1"), ip("10.0.0.1")];
    assert_eq!(db.allocate_req(&r, NOW).unwrap().len(), 1);
}

#[test]
fn explicit_address_whose_block_would_overlap_another() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    // A leftover /29 (another block size) where the /28 would go.
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.0.0.40/29".parse().unwrap(),
        "p",
        "n2",
    )));
    let mut r = req("n1", "h");
    r.addresses = vec![ip("10.0.0.33")];
    let e = err(&db, &r);
    assert!(
        matches!(e, AllocError::BlockConflict { .. }) && e.to_string().contains("10.0.0.40/29"),
        "{e}"
    );
    // The automatic search skips it too.
    for i in 0..2 {
        db.alloc1(&format!("m{i}"), &format!("x{i}"), NOW);
    }
    assert_eq!(
        db.alloc1("m2", "x2", NOW).block,
        "10.0.0.48/28".parse().unwrap()
    );
}

#[test]
fn pool_hints_choose_and_are_checked() {
    let mut off = pool("off", "10.1.0.0/24", 28);
    off.spec.disabled = true;
    let mut zoned = pool("zoned", "10.2.0.0/24", 28);
    zoned.spec.node_selector = "zone=a".into();
    let mut db = Db::with_pools(
        settings(),
        &[
            pool("a", "10.0.0.0/24", 28),
            pool("b", "10.3.0.0/24", 28),
            off,
            zoned,
        ],
    );
    let mut r = req("n1", "h");
    r.pools = vec!["b".into()];
    assert_eq!(db.allocate_req(&r, NOW).unwrap()[0].pool, "b");
    assert_eq!(
        db.alloc1("n2", "plain", NOW).pool,
        "a",
        "without hints: by name"
    );
    // n1's own block in b comes before claiming a block of a.
    assert_eq!(db.alloc1("n1", "plain1", NOW).pool, "b");

    let hinted = |name: &str| {
        let mut r = req("n1", "x");
        r.pools = vec![name.to_string()];
        err(&db, &r)
    };
    assert_eq!(hinted("nope"), AllocError::UnknownPool("nope".into()));
    assert_eq!(hinted("nope").class(), ErrorClass::NotFound);
    assert_eq!(hinted("off"), AllocError::PoolDisabled("off".into()));
    assert_eq!(hinted("off").class(), ErrorClass::FailedPrecondition);
    assert!(matches!(hinted("zoned"), AllocError::PoolNotForNode { .. }));
    db.labels
        .insert("n1".into(), [("zone".to_string(), "a".to_string())].into());
    let mut r = req("n1", "z");
    r.pools = vec!["zoned".into()];
    assert_eq!(db.allocate_req(&r, NOW).unwrap()[0].pool, "zoned");
}

#[test]
fn node_selectors_and_disabled_pools_limit_the_candidates() {
    let mut zoned = pool("zoned", "10.2.0.0/24", 28);
    zoned.spec.node_selector = "zone in (a)".into();
    let mut off = pool("off", "fd00::/64", 122);
    off.spec.disabled = true;
    let mut db = Db::with_pools(settings(), &[zoned, off]);
    assert_eq!(
        err(&db, &req("n1", "h")),
        AllocError::NoPoolForNode("n1".into())
    );
    let mut r = req("n1", "h");
    r.families = vec![Family::V6];
    assert_eq!(
        err(&db, &r),
        AllocError::NoPoolForFamily {
            family: Family::V6,
            node: "n1".into()
        }
    );
    db.labels
        .insert("n1".into(), [("zone".to_string(), "a".to_string())].into());
    assert_eq!(db.alloc1("n1", "h", NOW).pool, "zoned");
}

#[test]
fn dual_stack_gives_one_address_per_family() {
    let mut db = Db::with_pools(
        settings(),
        &[pool("v4", "10.0.0.0/24", 28), pool("v6", "fd00::/64", 122)],
    );
    let got = db.alloc("n1", "h", NOW);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].family, got[0].address),
        (Family::V4, ip("10.0.0.0"))
    );
    assert_eq!((got[1].family, got[1].address), (Family::V6, ip("fd00::")));
    let h = &db.state.handle("h").unwrap().value;
    assert_eq!(h.addresses.len(), 2);

    let mut r = req("n1", "only6");
    r.families = vec![Family::V6];
    let got = db.allocate_req(&r, NOW).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].address, ip("fd00::1"));

    // A handle holding IPv4 gets only its missing IPv6, in the same transaction
    // as the handle update; the answer lists both.
    let mut r = req("n1", "partial");
    r.families = vec![Family::V4];
    let v4 = db.allocate_req(&r, NOW).unwrap();
    r.families = vec![Family::V4, Family::V6];
    let AllocateOutcome::Plan { plan, allocated } =
        plan_allocate(&db.state, &r, &no_labels(), &db.settings, NOW).unwrap()
    else {
        panic!("expected a plan")
    };
    assert_eq!(plan.writes.len(), 2, "one block and the handle: {plan}");
    let handle_rev = db.state.handle("partial").unwrap().revision;
    assert!(
        plan.compares
            .contains(&(RecordKey::Handle("partial".into()), handle_rev))
    );
    assert_eq!(allocated[0], v4[0]);
    assert_eq!(allocated[1].address, ip("fd00::2"));
    assert!(db.commit(&plan));
    assert_eq!(db.state.handle("partial").unwrap().value.addresses.len(), 2);
    db.assert_clean(NOW);
}

#[test]
fn explicit_address_brings_its_family() {
    let mut db = Db::with_pools(
        settings(),
        &[pool("v4", "10.0.0.0/24", 28), pool("v6", "fd00::/64", 122)],
    );
    let mut r = req("n1", "h");
    r.families = vec![Family::V4];
    r.addresses = vec![ip("fd00::77")];
    let got = db.allocate_req(&r, NOW).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].address, ip("fd00::77"));
}

#[test]
fn allocate_is_idempotent() {
    let mut db = Db::with_pools(
        settings(),
        &[pool("v4", "10.0.0.0/24", 28), pool("v6", "fd00::/64", 122)],
    );
    let first = db.alloc("n1", "h", NOW);
    let again = plan_allocate(
        &db.state,
        &req("n1", "h"),
        &no_labels(),
        &db.settings,
        NOW + 5,
    )
    .unwrap();
    assert_eq!(again, AllocateOutcome::Existing(first.clone()));
    // Even with its pools disabled since (a retried CNI ADD).
    let mut p = db.state.pool("v4").unwrap().value.clone();
    p.spec.disabled = true;
    let plan = plan_update_pool(&db.state, p).unwrap().unwrap();
    assert!(db.commit(&plan));
    assert_eq!(db.alloc("n1", "h", NOW), first);

    let e = err(&db, &req("n2", "h"));
    assert_eq!(
        e,
        AllocError::HandleOnOtherNode {
            handle: "h".into(),
            node: "n1".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    let mut r = req("n1", "h");
    r.addresses = vec![ip("fd00::9")];
    assert!(matches!(
        err(&db, &r),
        AllocError::HandleHasOtherAddress { .. }
    ));
}

#[test]
fn a_handle_whose_address_is_not_held_is_refused() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "other", NOW);
    db.put_raw(Record::Handle(HandleRecord {
        handle: "broken".into(),
        node: "n1".into(),
        pod_namespace: String::new(),
        pod_name: String::new(),
        addresses: vec![HandleAddress {
            address: ip("10.0.0.0"),
            block: "10.0.0.0/28".parse().unwrap(),
            pool: "p".into(),
            borrowed: false,
        }],
        created_at_ms: 0,
    }));
    let e = err(&db, &req("n1", "broken"));
    assert!(matches!(e, AllocError::HandleInconsistent { .. }), "{e}");
}

#[test]
fn an_unreadable_block_key_is_never_claimed() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.state
        .apply_put("blocks/10.0.0.0-28", b"garbage", 99)
        .unwrap_err();
    assert_eq!(
        db.alloc1("n1", "h", NOW).block,
        "10.0.0.16/28".parse().unwrap()
    );
    let mut r = req("n1", "x");
    r.addresses = vec![ip("10.0.0.3")];
    assert!(matches!(err(&db, &r), AllocError::BlockConflict { .. }));
}

#[test]
fn blocks_of_other_pools_or_outside_the_pool_are_not_used() {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    // A damaged block of n1 naming pool p but lying outside it.
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.9.0.0/28".parse().unwrap(),
        "p",
        "n1",
    )));
    assert_eq!(
        db.alloc1("n1", "h", NOW).block,
        "10.0.0.0/28".parse().unwrap()
    );
}
