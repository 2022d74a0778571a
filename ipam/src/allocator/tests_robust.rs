// Nothing panics on any input: States built from arbitrary (unvalidated) pools,
// blocks and handles, with absurd CIDRs and block sizes of both families, go
// through every planner and view; arbitrary keys, values and selector texts go
// through the decoders.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use proptest::prelude::*;

use super::testutil::*;
use super::*;
use crate::model::{
    Allocation, BlockRecord, Family, HandleAddress, HandleRecord, IpPool, Record, RecordKey,
    Selector, State, decode, net,
};

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|n| IpAddr::V4(n.into())),
        // Mostly near the ends and near fd00:: so pools and blocks meet.
        prop_oneof![
            any::<u128>(),
            (0u128..4096).prop_map(|n| (0xfd00u128 << 112) + n),
            (0u128..4096).prop_map(|n| u128::MAX - n),
        ]
        .prop_map(|n| IpAddr::V6(n.into())),
        (0u32..4096).prop_map(|n| IpAddr::V4((0x0a00_0000 + n).into())),
    ]
}

/// Any network, host bits and all (prefix clamped into the family).
fn any_net() -> impl Strategy<Value = IpNetwork> {
    (any_ip(), any::<u8>()).prop_map(|(ip, p)| {
        let bits = net::family_bits(Family::of_ip(ip));
        IpNetwork::new(ip, p % (bits + 1)).unwrap()
    })
}

fn any_pool() -> impl Strategy<Value = IpPool> {
    (
        0usize..3,
        any_net(),
        prop::option::of(any::<u8>()),
        any::<bool>(),
        prop::collection::vec(any_net(), 0..3),
    )
        .prop_map(|(i, cidr, block_size, disabled, reserved)| {
            let mut p = pool(&format!("p{i}"), "10.0.0.0/8", 26);
            p.spec.cidr = cidr;
            p.spec.block_size = block_size;
            p.spec.disabled = disabled;
            p.spec.reserved_cidrs = reserved;
            p
        })
}

fn any_block() -> impl Strategy<Value = BlockRecord> {
    (
        any_net(),
        0usize..4,
        prop::option::of(0usize..3),
        prop::collection::btree_map(0u32..70, (0usize..6, 0usize..3), 0..6),
        prop::collection::btree_map(0u32..70, any::<u64>(), 0..4),
        prop::option::of(any::<u64>()),
    )
        .prop_map(
            |(cidr, pool, node, allocations, cooling, empty)| BlockRecord {
                cidr,
                pool: format!("p{pool}"),
                affinity: node.map(|n| format!("n{n}")),
                allocations: allocations
                    .into_iter()
                    .map(|(o, (h, n))| {
                        (
                            o,
                            Allocation {
                                handle: format!("h{h}"),
                                node: format!("n{n}"),
                                pod_namespace: String::new(),
                                pod_name: String::new(),
                                allocated_at_ms: 0,
                            },
                        )
                    })
                    .collect(),
                cooling,
                empty_since_ms: empty,
            },
        )
}

fn any_handle() -> impl Strategy<Value = HandleRecord> {
    (
        0usize..6,
        0usize..3,
        prop::collection::vec((any_ip(), any_net(), any::<bool>()), 0..3),
    )
        .prop_map(|(h, n, addresses)| HandleRecord {
            handle: format!("h{h}"),
            node: format!("n{n}"),
            pod_namespace: String::new(),
            pod_name: String::new(),
            addresses: addresses
                .into_iter()
                .map(|(address, block, borrowed)| HandleAddress {
                    address,
                    block,
                    pool: "p0".into(),
                    borrowed,
                })
                .collect(),
            created_at_ms: 0,
        })
}

fn any_request() -> impl Strategy<Value = AllocateRequest> {
    (
        0usize..3,
        0usize..6,
        prop::collection::vec(prop_oneof![Just(Family::V4), Just(Family::V6)], 0..3),
        prop::collection::vec(0usize..4, 0..2),
        prop::collection::vec(any_ip(), 0..3),
    )
        .prop_map(|(n, h, families, pools, addresses)| AllocateRequest {
            node: format!("n{n}"),
            handle: format!("h{h}"),
            pod_namespace: String::new(),
            pod_name: String::new(),
            families,
            pools: pools.into_iter().map(|p| format!("p{p}")).collect(),
            addresses,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn planners_and_views_never_panic(
        pools in prop::collection::vec(any_pool(), 0..4),
        blocks in prop::collection::vec(any_block(), 0..6),
        handles in prop::collection::vec(any_handle(), 0..4),
        requests in prop::collection::vec(any_request(), 1..4),
        probe in any_ip(),
        strict in any::<bool>(),
        now in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
    ) {
        let mut state = State::new();
        let mut revision = 0;
        for r in pools.iter().cloned().map(Record::Pool)
            .chain(blocks.into_iter().map(Record::Block))
            .chain(handles.into_iter().map(Record::Handle))
        {
            revision += 1;
            // Stored records go through the key text and back.
            let key = r.key().to_key();
            if let Some(parsed) = RecordKey::parse(&key) {
                prop_assert_eq!(&parsed, &r.key());
            }
            state.apply_record(r, revision);
        }
        let settings = Settings { strict_affinity: strict, cooldown_ms: 30_000, empty_block_grace_ms: 300_000 };
        let labels = no_labels();
        for r in &requests {
            if let Ok(AllocateOutcome::Plan { plan, .. }) = plan_allocate(&state, r, &labels, &settings, now) {
                for (_, w) in &plan.writes {
                    if let Some(rec) = w {
                        let _ = decode(&rec.key(), &rec.encode());
                    }
                }
                revision += 1;
                plan.apply_to(&mut state, revision);
            }
            let _ = plan_release(&state, &r.handle, &settings, now);
            let _ = plan_gc(&state, &r.node, &HashSet::new(), "", &settings, now);
        }
        let _ = plan_sweep(&state, &settings, now);
        let nodes: BTreeSet<String> = ["n0".to_string()].into();
        let _ = check(&state, Some(&nodes), &settings, now);
        let _ = usage(&state, now, &settings);
        let _ = node_view(&state, "n0", &settings, now);
        let _ = show_address(&state, probe, &settings, now);
        for p in &pools {
            let _ = plan_create_pool(&state, p.clone());
            let _ = plan_update_pool(&state, p.clone());
            let _ = plan_delete_pool(&state, p.name());
        }
    }

    #[test]
    fn decoders_never_panic(key in "\\PC{0,40}", value in prop::collection::vec(any::<u8>(), 0..64), sel in "\\PC{0,30}") {
        let mut state = State::new();
        let _ = state.apply_put(&key, &value, 1);
        for prefix in ["pools/", "blocks/", "handles/"] {
            let k = format!("{prefix}{key}");
            if let Some(parsed) = RecordKey::parse(&k) {
                prop_assert_eq!(parsed.to_key(), k.clone());
                let _ = decode(&parsed, &value);
            }
        }
        if let Ok(s) = Selector::parse(&sel) {
            prop_assert_eq!(Selector::parse(&s.to_string()), Ok(s));
        }
    }
}
