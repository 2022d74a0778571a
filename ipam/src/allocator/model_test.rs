// Property test of the allocator against a simple model (issue 5): random runs
// of allocate (4 nodes, 50 handles, families, explicit addresses, pool hints),
// racing allocations planned from one State, release, GC, sweep, pool disable/
// enable and time passing, committed by the in-memory applier. After every step
// the invariants below hold; pools are tiny so claiming, borrowing, cool-down
// and exhaustion all happen.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::testutil::*;
use super::*;
use crate::model::{Family, IpPool, net};

const NODES: usize = 4;
const HANDLES: usize = 50;
const START: u64 = 1_000_000;

/// a: 16 v4 addresses in four /30 blocks; b: 16 v4 (2 reserved) for zone a
/// only; c: 16 v6 addresses in /126 blocks. 50 handles overfill them.
fn pools() -> Vec<IpPool> {
    let a = pool("a", "10.0.0.0/28", 30);
    let mut b = pool("b", "10.1.0.0/28", 30);
    b.spec.reserved_cidrs = vec!["10.1.0.0/31".parse().unwrap()];
    b.spec.node_selector = "zone=a".into();
    let c = pool("c", "fd00::/124", 126);
    vec![a, b, c]
}

fn node(i: usize) -> String {
    format!("n{i}")
}

fn handle(i: usize) -> String {
    format!("h{i:02}")
}

#[derive(Debug, Clone)]
struct AllocOp {
    node: usize,
    handle: usize,
    /// 0: every family, 1: v4, 2: v6, 3: both listed.
    families: u8,
    /// (pool index, offset in pool)
    explicit: Option<(usize, u32)>,
    hint: Option<usize>,
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(AllocOp),
    /// Two allocations planned from the same State, committed one after the
    /// other (as two ipamd replicas would).
    Race(AllocOp, AllocOp),
    Release(usize),
    Gc {
        node: usize,
        valid: u64,
    },
    Sweep,
    Advance(u64),
    TogglePool(usize),
}

fn alloc_op() -> impl Strategy<Value = AllocOp> {
    (
        // Mostly the handle's own node; sometimes another (HandleOnOtherNode).
        prop::option::weighted(0.1, 0..NODES),
        0..HANDLES,
        0u8..4,
        prop::option::weighted(0.15, (0usize..3, 0u32..16)),
        prop::option::weighted(0.15, 0usize..3),
    )
        .prop_map(|(node, handle, families, explicit, hint)| AllocOp {
            node: node.unwrap_or(handle % NODES),
            handle,
            families,
            explicit,
            hint,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => alloc_op().prop_map(Op::Allocate),
        2 => (alloc_op(), alloc_op()).prop_map(|(a, b)| Op::Race(a, b)),
        5 => (0..HANDLES).prop_map(Op::Release),
        1 => (0..NODES, any::<u64>()).prop_map(|(node, valid)| Op::Gc { node, valid }),
        1 => Just(Op::Sweep),
        2 => (0u64..120_000).prop_map(Op::Advance),
        // Small steps land near the end of a cool-down or grace period.
        2 => (0u64..3_000).prop_map(Op::Advance),
        1 => (0usize..3).prop_map(Op::TogglePool),
    ]
}

/// What the model remembers.
struct Model {
    now: u64,
    /// Handle → (node, addresses), as acknowledged.
    handles: HashMap<String, (String, BTreeSet<IpAddr>)>,
    /// Address → when it was last released.
    released_at: HashMap<IpAddr, u64>,
}

fn labels_of(i: usize) -> BTreeMap<String, String> {
    let zone = if i < 2 { "a" } else { "b" };
    [("zone".to_string(), zone.to_string())].into()
}

fn request(o: &AllocOp) -> AllocateRequest {
    let pools = pools();
    let mut r = req(&node(o.node), &handle(o.handle));
    r.families = match o.families {
        1 => vec![Family::V4],
        2 => vec![Family::V6],
        3 => vec![Family::V4, Family::V6],
        _ => vec![],
    };
    if let Some((p, offset)) = o.explicit {
        let cidr = &pools[p].spec.cidr;
        let n = net::first(cidr) + u128::from(offset) % net::size(cidr);
        r.addresses = vec![net::from_u128(Family::of_net(cidr), n).unwrap()];
    }
    if let Some(p) = o.hint {
        r.pools = vec![pools[p].name().to_string()];
    }
    r
}

/// Every address of `family` the request could still get: free, not reserved,
/// not cooling, in a candidate pool (and, with strictAffinity, in the node's
/// blocks or an unclaimed block). Brute force over the tiny pools.
fn usable_exists(db: &Db, r: &AllocateRequest, family: Family, now: u64) -> bool {
    let labels = db.labels_of(&r.node);
    for p in db.state.pools() {
        let p = &p.value;
        let selected = db
            .state
            .pool_selector(p.name())
            .is_some_and(|s| s.matches(&labels));
        let hinted = r.pools.is_empty() || r.pools.iter().any(|n| n == p.name());
        if p.family() != family || p.spec.disabled || !selected || !hinted {
            continue;
        }
        let cidr = &p.spec.cidr;
        for n in net::first(cidr)..=net::last(cidr) {
            let ip = net::from_u128(family, n).unwrap();
            if p.spec.reserved_cidrs.iter().any(|c| c.contains(ip)) {
                continue;
            }
            match db.state.block_containing(ip) {
                None => return true,
                Some(b) => {
                    let b = &b.value;
                    let o = b.offset_of(ip).unwrap();
                    let mine = b.is_affine_to(&r.node);
                    if b.allocations.contains_key(&o)
                        || b.is_cooling(o, db.settings.cooldown_ms, now)
                        || (db.settings.strict_affinity && !mine)
                    {
                        continue;
                    }
                    return true;
                }
            }
        }
    }
    false
}

/// Plan `o`; on success commit (unless `plan_only`), check idempotence and the
/// cool-down, and update the model.
fn run_alloc(db: &mut Db, m: &mut Model, o: &AllocOp) -> Result<(), TestCaseError> {
    let r = request(o);
    let labels = db.labels_of(&r.node);
    match plan_allocate(&db.state, &r, &labels, &db.settings, m.now) {
        Ok(AllocateOutcome::Existing(got)) => {
            let (n, held) = m
                .handles
                .get(&r.handle)
                .ok_or_else(|| TestCaseError::fail("Existing for an unknown handle"))?;
            prop_assert_eq!(n, &r.node);
            let got: BTreeSet<IpAddr> = got.iter().map(|a| a.address).collect();
            prop_assert_eq!(&got, held);
        }
        Ok(AllocateOutcome::Plan { plan, allocated }) => {
            prop_assert!(db.commit(&plan), "a fresh plan must commit: {}", plan);
            accept(db, m, &r, &allocated)?;
        }
        Err(e) => judge_error(db, m, &r, &e)?,
    }
    Ok(())
}

/// Checks on a committed allocation, then the model update.
fn accept(
    db: &Db,
    m: &mut Model,
    r: &AllocateRequest,
    allocated: &[Allocated],
) -> Result<(), TestCaseError> {
    let before = m
        .handles
        .get(&r.handle)
        .map(|(_, a)| a.clone())
        .unwrap_or_default();
    let got: BTreeSet<IpAddr> = allocated.iter().map(|a| a.address).collect();
    prop_assert!(got.is_superset(&before), "an allocation lost an address");
    for a in allocated {
        if before.contains(&a.address) || r.addresses.contains(&a.address) {
            continue;
        }
        if let Some(at) = m.released_at.get(&a.address) {
            prop_assert!(
                at + db.settings.cooldown_ms <= m.now,
                "{} reused {} ms after its release",
                a.address,
                m.now - at
            );
        }
        if db.settings.strict_affinity {
            prop_assert!(!a.borrowed, "borrowed under strictAffinity");
        }
    }
    let labels = db.labels_of(&r.node);
    // Idempotent: the same request now gets the same addresses and writes nothing.
    match plan_allocate(&db.state, r, &labels, &db.settings, m.now) {
        Ok(AllocateOutcome::Existing(again)) => prop_assert_eq!(&again, &allocated.to_vec()),
        other => prop_assert!(false, "re-allocate gave {:?}", other),
    }
    m.handles.insert(r.handle.clone(), (r.node.clone(), got));
    Ok(())
}

/// A refusal must be one the request deserves.
fn judge_error(
    db: &Db,
    m: &Model,
    r: &AllocateRequest,
    e: &AllocError,
) -> Result<(), TestCaseError> {
    match e {
        AllocError::Exhausted(x) => {
            prop_assert!(
                !usable_exists(db, r, x.family, m.now),
                "Exhausted while an address was usable: {}",
                e
            );
            prop_assert!(e.to_string().contains("exhausted") || x.strict_affinity);
        }
        AllocError::HandleOnOtherNode { node, .. } => {
            prop_assert_eq!(&m.handles[&r.handle].0, node);
        }
        AllocError::AddressHeld { ip, handle } => {
            prop_assert!(m.handles[handle].1.contains(ip));
        }
        AllocError::AddressInOtherNodesBlock { .. } => prop_assert!(db.settings.strict_affinity),
        AllocError::NoPoolForFamily { .. }
        | AllocError::NoPoolForNode(_)
        | AllocError::PoolDisabled(_)
        | AllocError::PoolNotForNode { .. }
        | AllocError::AddressReserved { .. }
        | AllocError::AddressNotInPool(_)
        | AllocError::AddressOutsideRequestedPools { .. }
        | AllocError::HandleHasOtherAddress { .. } => {}
        other => prop_assert!(false, "unexpected refusal: {}", other),
    }
    Ok(())
}

fn forget_released(m: &mut Model, handles: &[String], freed: &[IpAddr]) {
    for h in handles {
        m.handles.remove(h);
    }
    for ip in freed {
        m.released_at.insert(*ip, m.now);
    }
}

fn step(db: &mut Db, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Allocate(o) => run_alloc(db, m, o)?,
        Op::Race(a, b) => {
            let (ra, rb) = (request(a), request(b));
            let plan = |db: &Db, r: &AllocateRequest| {
                plan_allocate(&db.state, r, &db.labels_of(&r.node), &db.settings, m.now)
            };
            let (pa, pb) = (plan(db, &ra), plan(db, &rb));
            for (r, outcome) in [(&ra, pa), (&rb, pb)] {
                if let Ok(AllocateOutcome::Plan { plan, allocated }) = outcome
                    && db.commit(&plan)
                {
                    accept(db, m, r, &allocated)?;
                }
            }
        }
        Op::Release(h) => {
            let h = handle(*h);
            let freed = db.release(&h, m.now);
            let held = m
                .handles
                .get(&h)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            prop_assert_eq!(freed.iter().copied().collect::<BTreeSet<_>>(), held);
            forget_released(m, &[h], &freed);
        }
        Op::Gc { node: n, valid } => {
            let valid: HashSet<String> = (0..HANDLES)
                .filter(|i| valid & (1 << i) != 0)
                .map(handle)
                .collect();
            let n = node(*n);
            loop {
                let plans = plan_gc(&db.state, &n, &valid, "", &db.settings, m.now);
                if plans.is_empty() {
                    break;
                }
                for p in plans {
                    prop_assert!(db.commit(&p.plan), "GC plans must not conflict");
                    forget_released(m, &p.handles, &p.released);
                }
            }
            for (h, (hn, _)) in &m.handles {
                prop_assert!(hn != &n || valid.contains(h), "GC kept {}", h);
            }
        }
        Op::Sweep => {
            db.sweep(m.now);
            let report = check(&db.state, None, &db.settings, m.now);
            prop_assert!(
                !report
                    .problems
                    .iter()
                    .any(|p| p.kind == ProblemKind::LeakedEmptyBlock),
                "a leak right after a sweep: {:?}",
                report.problems
            );
        }
        Op::Advance(ms) => m.now += ms,
        Op::TogglePool(p) => {
            let name = pools()[*p].name().to_string();
            let mut pool = db.state.pool(&name).unwrap().value.clone();
            pool.spec.disabled = !pool.spec.disabled;
            let plan = plan_update_pool(&db.state, pool).unwrap().unwrap();
            prop_assert!(db.commit(&plan));
        }
    }
    Ok(())
}

fn invariants(db: &Db, m: &Model) -> Result<(), TestCaseError> {
    let s = &db.state;
    // No address held twice; each inside its block and pool, not reserved,
    // listed by its handle; nothing borrowed under strictAffinity.
    let mut held: HashMap<IpAddr, String> = HashMap::new();
    let mut per_pool: BTreeMap<String, u64> = BTreeMap::new();
    for b in s.blocks() {
        let b = &b.value;
        let pool = &s.pool(&b.pool).unwrap().value;
        prop_assert!(net::is_within(&b.cidr, &pool.spec.cidr));
        prop_assert_eq!(b.cidr.prefix(), pool.block_prefix());
        for (o, a) in &b.allocations {
            let ip = b.address(*o).unwrap();
            prop_assert!(
                held.insert(ip, a.handle.clone()).is_none(),
                "{} held twice",
                ip
            );
            prop_assert!(!pool.spec.reserved_cidrs.iter().any(|c| c.contains(ip)));
            let h = s.handle(&a.handle);
            prop_assert!(h.is_some_and(|h| h.value.addresses.iter().any(|x| x.address == ip)));
            prop_assert_eq!(&h.unwrap().value.node, &a.node);
            if db.settings.strict_affinity {
                prop_assert!(b.is_affine_to(&a.node), "{} borrowed", ip);
            }
            *per_pool.entry(b.pool.clone()).or_default() += 1;
        }
    }
    // Handles ↔ allocations, and the model.
    let mut listed = 0;
    for h in s.handles() {
        let h = &h.value;
        for a in &h.addresses {
            listed += 1;
            prop_assert_eq!(held.get(&a.address), Some(&h.handle));
        }
        let (n, addrs) = m
            .handles
            .get(&h.handle)
            .ok_or_else(|| TestCaseError::fail(format!("unacknowledged handle {}", h.handle)))?;
        prop_assert_eq!(n, &h.node);
        let mine: BTreeSet<IpAddr> = h.addresses.iter().map(|a| a.address).collect();
        prop_assert_eq!(&mine, addrs);
    }
    prop_assert_eq!(listed, held.len());
    prop_assert_eq!(s.handle_count(), m.handles.len());
    // Counts add up: usage equals the sum over blocks.
    for u in usage(s, m.now, &db.settings) {
        prop_assert_eq!(u.allocated, per_pool.get(&u.pool).copied().unwrap_or(0));
        prop_assert_eq!(u.blocks_claimed as usize, s.blocks_of_pool(&u.pool).count());
        prop_assert!(u.allocated + u.cooling <= u.capacity);
    }
    // The indexes match a scan.
    for i in 0..NODES {
        let n = node(i);
        let indexed: Vec<_> = s.blocks_of_node(&n).map(|b| b.value.cidr).collect();
        let scanned: Vec<_> = s
            .blocks()
            .filter(|b| b.value.is_affine_to(&n))
            .map(|b| b.value.cidr)
            .collect();
        prop_assert_eq!(indexed, scanned);
        let indexed: Vec<_> = s
            .handles_of_node(&n)
            .map(|h| h.value.handle.clone())
            .collect();
        let scanned: Vec<_> = s
            .handles()
            .filter(|h| h.value.node == n)
            .map(|h| h.value.handle.clone())
            .collect();
        prop_assert_eq!(indexed, scanned);
    }
    // And check agrees (leaks aside: sweeps run when the run says so).
    let known: BTreeSet<String> = (0..NODES).map(node).collect();
    let report = check(s, Some(&known), &db.settings, m.now);
    let problems: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind != ProblemKind::LeakedEmptyBlock)
        .collect();
    prop_assert!(problems.is_empty(), "check: {:?}", problems);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn allocator_keeps_its_invariants(
        strict in any::<bool>(),
        cooldown_ms in prop_oneof![Just(0u64), Just(30_000u64), Just(200_000u64)],
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let settings = Settings {
            strict_affinity: strict,
            cooldown_ms,
            empty_block_grace_ms: 300_000,
        };
        let mut db = Db::with_pools(settings, &pools());
        for i in 0..NODES {
            db.labels.insert(node(i), labels_of(i));
        }
        let mut m = Model { now: START, handles: HashMap::new(), released_at: HashMap::new() };
        for op in &ops {
            step(&mut db, &mut m, op)?;
            invariants(&db, &m)?;
        }
    }
}
