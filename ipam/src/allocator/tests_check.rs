// check() on hand-made broken states (one per problem kind), and the read-only
// views: usage, block listings, a node's view, show_address.

use std::collections::BTreeSet;

use super::testutil::*;
use super::*;
use crate::model::{Allocation, BlockRecord, HandleAddress, HandleRecord, Record};

const NOW: u64 = 10_000_000;

fn settings() -> Settings {
    Settings::default()
}

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn kinds(report: &CheckReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

fn only(db: &Db, known: Option<&BTreeSet<String>>) -> Problem {
    let report = check(&db.state, known, &db.settings, NOW);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    report.problems[0].clone()
}

fn alloc(handle: &str, node: &str) -> Allocation {
    Allocation {
        handle: handle.into(),
        node: node.into(),
        pod_namespace: String::new(),
        pod_name: String::new(),
        allocated_at_ms: NOW,
    }
}

/// n1 holds h1 (10.0.0.0) and h2 (10.0.0.1) in 10.0.0.0/28.
fn healthy() -> Db {
    let mut db = Db::with_pools(settings(), &[pool("p", "10.0.0.0/24", 28)]);
    db.alloc1("n1", "h1", NOW);
    db.alloc1("n1", "h2", NOW);
    db
}

fn block_of(db: &Db, cidr: &str) -> BlockRecord {
    db.state
        .block(&cidr.parse().unwrap())
        .unwrap()
        .value
        .clone()
}

#[test]
fn a_healthy_state_has_no_problem_and_counts_add_up() {
    let db = healthy();
    let report = check(&db.state, Some(&nodes(&["n1"])), &db.settings, NOW);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(
        (
            report.pools_checked,
            report.blocks_checked,
            report.handles_checked,
            report.allocations_checked
        ),
        (1, 1, 2, 2)
    );
    assert!(report.nodes_checked);
    assert!(!check(&db.state, None, &db.settings, NOW).nodes_checked);
}

#[test]
fn allocation_without_handle() {
    let mut db = healthy();
    let mut b = block_of(&db, "10.0.0.0/28");
    b.allocate(5, alloc("ghost", "n1"));
    db.put_raw(Record::Block(b));
    let p = only(&db, None);
    assert_eq!(p.kind, ProblemKind::AllocationWithoutHandle);
    assert_eq!(p.subject, "10.0.0.5");
    assert!(
        p.detail.contains("\"ghost\", which does not exist"),
        "{}",
        p.detail
    );
}

#[test]
fn handle_without_allocation() {
    let mut db = healthy();
    let mut h = db.state.handle("h1").unwrap().value.clone();
    h.addresses.push(HandleAddress {
        address: ip("10.0.0.9"),
        block: "10.0.0.0/28".parse().unwrap(),
        pool: "p".into(),
        borrowed: false,
    });
    db.put_raw(Record::Handle(h));
    let p = only(&db, None);
    assert_eq!(p.kind, ProblemKind::HandleWithoutAllocation);
    assert_eq!(p.subject, "handle h1");
    assert!(
        p.detail.contains("10.0.0.9, which no block holds"),
        "{}",
        p.detail
    );
}

#[test]
fn handle_listing_an_address_held_for_another() {
    let mut db = healthy();
    let mut h = db.state.handle("h1").unwrap().value.clone();
    h.addresses[0].address = ip("10.0.0.1");
    db.put_raw(Record::Handle(h));
    let report = check(&db.state, None, &db.settings, NOW);
    let mut k = kinds(&report);
    k.sort();
    // h1's own 10.0.0.0 is now unlisted, 10.0.0.1 is listed by h1 and h2.
    assert_eq!(
        k,
        vec![
            ProblemKind::AllocationWithoutHandle,
            ProblemKind::HandleWithoutAllocation,
            ProblemKind::DuplicateAddress
        ]
    );
}

#[test]
fn unknown_nodes_only_when_nodes_are_known() {
    let mut db = healthy();
    assert!(
        check(&db.state, None, &db.settings, NOW)
            .problems
            .is_empty()
    );
    let report = check(&db.state, Some(&nodes(&["n2"])), &db.settings, NOW);
    let mut k = kinds(&report);
    k.sort();
    assert_eq!(
        k,
        vec![
            ProblemKind::BlockOfUnknownNode,
            ProblemKind::AllocationOfUnknownNode,
            ProblemKind::AllocationOfUnknownNode
        ]
    );
    // A borrowed allocation of a gone node, in a known node's block.
    let mut b = block_of(&db, "10.0.0.0/28");
    b.allocate(7, alloc("gone-pod", "gone"));
    db.put_raw(Record::Block(b));
    db.put_raw(Record::Handle(HandleRecord {
        handle: "gone-pod".into(),
        node: "gone".into(),
        pod_namespace: String::new(),
        pod_name: String::new(),
        addresses: vec![HandleAddress {
            address: ip("10.0.0.7"),
            block: "10.0.0.0/28".parse().unwrap(),
            pool: "p".into(),
            borrowed: true,
        }],
        created_at_ms: 0,
    }));
    let p = only(&db, Some(&nodes(&["n1"])));
    assert_eq!(p.kind, ProblemKind::AllocationOfUnknownNode);
    assert!(p.detail.contains("\"gone\""), "{}", p.detail);
}

#[test]
fn overlapping_blocks_and_pools() {
    let mut db = healthy();
    // A /29 inside the /28 (a block record from another block size).
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.0.0.8/29".parse().unwrap(),
        "p",
        "n1",
    )));
    let report = check(&db.state, None, &db.settings, NOW);
    let overlap: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Overlap)
        .collect();
    assert_eq!(overlap.len(), 1, "{report:#?}");
    assert!(
        overlap[0]
            .detail
            .contains("10.0.0.8/29 overlaps block 10.0.0.0/28")
    );

    // Pools cannot be created overlapping; a stored pair can still be found.
    let mut db = Db::with_pools(settings(), &[pool("a", "10.0.0.0/16", 28)]);
    db.put_raw(Record::Pool(pool("b", "10.0.1.0/24", 28)));
    let p = only(&db, None);
    assert_eq!(p.kind, ProblemKind::Overlap);
    assert_eq!(p.subject, "pool a");
}

#[test]
fn block_outside_its_pool() {
    let mut db = healthy();
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.9.0.0/28".parse().unwrap(),
        "p",
        "n1",
    )));
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.0.0.16/28".parse().unwrap(),
        "deleted",
        "n1",
    )));
    let report = check(&db.state, None, &db.settings, NOW);
    let outside: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::BlockOutsidePool)
        .map(|p| p.subject.as_str())
        .collect();
    assert_eq!(outside, vec!["block 10.0.0.16/28", "block 10.9.0.0/28"]);
}

#[test]
fn duplicate_address_in_two_handles() {
    let mut db = healthy();
    let mut h = db.state.handle("h1").unwrap().value.clone();
    h.handle = "copy".into();
    db.put_raw(Record::Handle(h));
    let report = check(&db.state, None, &db.settings, NOW);
    let mut k = kinds(&report);
    k.sort();
    assert_eq!(
        k,
        vec![
            ProblemKind::HandleWithoutAllocation,
            ProblemKind::DuplicateAddress
        ]
    );
    let dup = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::DuplicateAddress)
        .unwrap();
    assert_eq!(dup.subject, "10.0.0.0");
}

#[test]
fn duplicate_address_in_overlapping_blocks() {
    let mut db = healthy();
    let mut b = BlockRecord::claimed("10.0.0.0/30".parse().unwrap(), "p", "n1");
    b.allocate(0, alloc("h1", "n1"));
    db.put_raw(Record::Block(b));
    let report = check(&db.state, None, &db.settings, NOW);
    assert!(
        kinds(&report).contains(&ProblemKind::DuplicateAddress),
        "{report:#?}"
    );
    assert!(kinds(&report).contains(&ProblemKind::Overlap));
}

#[test]
fn leaked_empty_blocks() {
    let mut db = healthy();
    db.release("h1", 0);
    db.release("h2", 0);
    let s = settings();
    let due = s.empty_block_grace_ms + check::LEAK_MARGIN_MS;
    let at = |now| check(&db.state, None, &db.settings, now);
    assert!(
        at(s.empty_block_grace_ms + check::LEAK_MARGIN_MS - 1)
            .problems
            .is_empty()
    );
    assert_eq!(
        kinds(&at(due)),
        vec![ProblemKind::LeakedEmptyBlock],
        "past grace + margin"
    );
    // An empty block with no empty time is reported at once.
    let mut db = healthy();
    db.put_raw(Record::Block(BlockRecord::claimed(
        "10.0.0.16/28".parse().unwrap(),
        "p",
        "n1",
    )));
    let p = only(&db, None);
    assert_eq!(p.kind, ProblemKind::LeakedEmptyBlock);
    assert!(p.detail.contains("never swept"), "{}", p.detail);
}

#[test]
fn unreadable_records() {
    let mut db = healthy();
    db.state.apply_put("handles/bad", b"{", 50).unwrap_err();
    let p = only(&db, None);
    assert_eq!(p.kind, ProblemKind::UnreadableRecord);
    assert_eq!(p.subject, "handles/bad");
}

#[test]
fn usage_adds_up_blocks() {
    let mut p = pool("p", "10.0.0.0/24", 28);
    p.spec.reserved_cidrs = vec!["10.0.0.248/29".parse().unwrap()];
    p.spec.disabled = false;
    let mut db = Db::with_pools(settings(), &[p, pool("v6", "fd00::/120", 122)]);
    db.alloc("n1", "a", NOW);
    db.alloc("n1", "b", NOW);
    db.alloc("n2", "c", NOW);
    db.release("b", NOW);
    let u = usage(&db.state, NOW, &db.settings);
    assert_eq!(u.len(), 2);
    let v4 = &u[0];
    assert_eq!(v4.pool, "p");
    assert_eq!((v4.capacity, v4.reserved), (248, 8));
    assert_eq!((v4.allocated, v4.cooling), (2, 1));
    assert_eq!((v4.blocks_total, v4.blocks_claimed), (16, 2));
    let v6 = &u[1];
    assert_eq!(
        (
            v6.capacity,
            v6.allocated,
            v6.blocks_total,
            v6.blocks_claimed
        ),
        (256, 2, 4, 2)
    );
    // After the cool-down nothing is cooling.
    let later = usage(&db.state, NOW + 30_000, &db.settings);
    assert_eq!(later[0].cooling, 0);
}

#[test]
fn node_view_lists_blocks_and_borrowed_addresses() {
    let mut p = pool("p", "10.0.0.0/29", 30);
    p.spec.disable_bgp_export = true;
    let mut db = Db::with_pools(settings(), &[p]);
    db.alloc1("n1", "a0", NOW);
    db.alloc1("n2", "b0", NOW);
    for i in 1..4 {
        db.alloc1("n1", &format!("a{i}"), NOW);
    }
    db.alloc1("n1", "a4", NOW);
    let v = node_view(&db.state, "n1", &db.settings, NOW);
    assert_eq!(v.blocks.len(), 1);
    assert_eq!(v.blocks[0].cidr, "10.0.0.0/30".parse().unwrap());
    assert_eq!((v.blocks[0].allocated, v.blocks[0].capacity), (4, 4));
    assert!(v.blocks[0].disable_bgp_export);
    assert_eq!(v.borrowed.len(), 1);
    let b = &v.borrowed[0];
    assert_eq!(b.address, ip("10.0.0.5"));
    assert_eq!(b.block_node.as_deref(), Some("n2"));
    assert_eq!(b.handle, "a4");
    let v2 = node_view(&db.state, "n2", &db.settings, NOW);
    assert!(v2.borrowed.is_empty());
    assert_eq!(v2.blocks[0].borrowed_by_others, 1);
    assert_eq!(list_blocks(&db.state, None, &db.settings, NOW).len(), 2);
    assert_eq!(
        list_blocks(&db.state, Some("n9"), &db.settings, NOW).len(),
        0
    );
}

#[test]
fn show_address_explains_each_case() {
    let mut p = pool("p", "10.0.0.0/24", 28);
    p.spec.reserved_cidrs = vec!["10.0.0.255/32".parse().unwrap()];
    let mut db = Db::with_pools(settings(), &[p]);
    db.alloc1("n1", "a", NOW);
    db.alloc1("n1", "b", NOW);
    db.release("a", NOW);
    let s = db.settings.clone();

    let held = show_address(&db.state, ip("10.0.0.1"), &s, NOW);
    assert_eq!(held.pool.as_deref(), Some("p"));
    assert_eq!(held.block, Some("10.0.0.0/28".parse().unwrap()));
    assert_eq!(held.block_node.as_deref(), Some("n1"));
    let a = held.allocation.unwrap();
    assert_eq!(
        (a.handle.as_str(), a.node.as_str(), a.pod_name.as_str()),
        ("b", "n1", "pod-b")
    );
    assert!(!held.borrowed && !held.reserved);

    let cooling = show_address(&db.state, ip("10.0.0.0"), &s, NOW + 1);
    assert!(cooling.allocation.is_none());
    assert_eq!(cooling.cooling_until_ms, Some(NOW + 30_000));
    let cooled = show_address(&db.state, ip("10.0.0.0"), &s, NOW + 30_000);
    assert_eq!(cooled.cooling_until_ms, None);

    let reserved = show_address(&db.state, ip("10.0.0.255"), &s, NOW);
    assert!(reserved.reserved && reserved.block.is_none());
    let unclaimed = show_address(&db.state, ip("10.0.0.77"), &s, NOW);
    assert_eq!(
        (unclaimed.pool.as_deref(), unclaimed.block),
        (Some("p"), None)
    );
    let nowhere = show_address(&db.state, ip("192.0.2.1"), &s, NOW);
    assert_eq!((nowhere.pool, nowhere.block), (None, None));
}
