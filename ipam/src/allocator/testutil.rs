// Test support: a tiny in-memory store that commits plans the way the real
// stores do (every compare must hold, then all writes apply at one new
// revision), and helpers to build pools and requests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use super::*;
use crate::model::{IpPool, IpPoolSpec, Record, RecordKey, State};

pub fn pool(name: &str, cidr: &str, block_size: u8) -> IpPool {
    IpPool::new(
        name,
        IpPoolSpec {
            cidr: cidr.parse().unwrap(),
            block_size: Some(block_size),
            disabled: false,
            node_selector: String::new(),
            disable_bgp_export: false,
            reserved_cidrs: vec![],
        },
    )
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn req(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.into(),
        handle: handle.into(),
        pod_namespace: "default".into(),
        pod_name: format!("pod-{handle}"),
        ..AllocateRequest::default()
    }
}

pub fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Current revision of a key in `state` (0: absent).
pub fn revision_of(state: &State, key: &RecordKey) -> i64 {
    match key {
        RecordKey::Pool(n) => state.pool(n).map_or(0, |v| v.revision),
        RecordKey::Block(c) => state.block(c).map_or(0, |v| v.revision),
        RecordKey::Handle(h) => state.handle(h).map_or(0, |v| v.revision),
    }
}

/// A State plus the revision counter of a store.
pub struct Db {
    pub state: State,
    pub revision: i64,
    pub settings: Settings,
    pub labels: HashMap<String, BTreeMap<String, String>>,
}

impl Db {
    pub fn new(settings: Settings) -> Self {
        Self {
            state: State::new(),
            revision: 0,
            settings,
            labels: HashMap::new(),
        }
    }

    pub fn with_pools(settings: Settings, pools: &[IpPool]) -> Self {
        let mut db = Self::new(settings);
        for p in pools {
            db.create_pool(p.clone());
        }
        db
    }

    /// Commit like a store: false (nothing written) when a compare fails.
    pub fn commit(&mut self, plan: &Plan) -> bool {
        if plan
            .compares
            .iter()
            .any(|(key, rev)| revision_of(&self.state, key) != *rev)
        {
            return false;
        }
        // etcd refuses a txn writing one key twice; compares come back one each.
        let keys: HashSet<&RecordKey> = plan.writes.iter().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), plan.writes.len(), "a key written twice: {plan}");
        let compared: HashSet<&RecordKey> = plan.compares.iter().map(|(k, _)| k).collect();
        assert_eq!(compared.len(), plan.compares.len(), "a key compared twice");
        // Every put's key must be compared (no blind writes).
        for (key, _) in &plan.writes {
            assert!(
                plan.compares.iter().any(|(k, _)| k == key),
                "write of {} without a compare",
                key.to_key()
            );
        }
        self.revision += 1;
        plan.apply_to(&mut self.state, self.revision);
        true
    }

    pub fn create_pool(&mut self, p: IpPool) {
        let plan = plan_create_pool(&self.state, p).unwrap().unwrap();
        assert!(self.commit(&plan));
    }

    pub fn put_raw(&mut self, record: Record) {
        self.revision += 1;
        self.state.apply_record(record, self.revision);
    }

    pub fn labels_of(&self, node: &str) -> BTreeMap<String, String> {
        self.labels.get(node).cloned().unwrap_or_default()
    }

    pub fn allocate_req(
        &mut self,
        r: &AllocateRequest,
        now: u64,
    ) -> Result<Vec<Allocated>, AllocError> {
        let labels = self.labels_of(&r.node);
        match plan_allocate(&self.state, r, &labels, &self.settings, now)? {
            AllocateOutcome::Existing(a) => Ok(a),
            AllocateOutcome::Plan { plan, allocated } => {
                assert!(self.commit(&plan), "fresh plan conflicted: {plan}");
                Ok(allocated)
            }
        }
    }

    /// Allocate families for (node, handle); panics on error.
    pub fn alloc(&mut self, node: &str, handle: &str, now: u64) -> Vec<Allocated> {
        self.allocate_req(&req(node, handle), now)
            .unwrap_or_else(|e| panic!("allocate {node}/{handle}: {e}"))
    }

    /// The one address allocated (single-family setups).
    pub fn alloc1(&mut self, node: &str, handle: &str, now: u64) -> Allocated {
        let mut a = self.alloc(node, handle, now);
        assert_eq!(a.len(), 1, "{a:?}");
        a.remove(0)
    }

    pub fn release(&mut self, handle: &str, now: u64) -> Vec<IpAddr> {
        match plan_release(&self.state, handle, &self.settings, now) {
            None => Vec::new(),
            Some((plan, freed)) => {
                assert!(self.commit(&plan));
                freed
            }
        }
    }

    pub fn gc(&mut self, node: &str, valid: &[&str], now: u64) -> Vec<String> {
        let valid: HashSet<String> = valid.iter().map(|s| s.to_string()).collect();
        let mut released = Vec::new();
        loop {
            let plans = plan_gc(&self.state, node, &valid, "", &self.settings, now);
            if plans.is_empty() {
                return released;
            }
            for p in plans {
                assert!(self.commit(&p.plan), "GC plans must not conflict");
                released.extend(p.handles);
            }
        }
    }

    pub fn sweep(&mut self, now: u64) -> usize {
        let plans = plan_sweep(&self.state, &self.settings, now);
        let n = plans.len();
        for p in plans {
            assert!(self.commit(&p));
        }
        n
    }

    /// No problem at all, with every node known.
    pub fn assert_clean(&self, now: u64) {
        let nodes: BTreeSet<String> = self
            .state
            .blocks()
            .filter_map(|b| b.value.affinity.clone())
            .chain(self.state.handles().map(|h| h.value.node.clone()))
            .collect();
        let report = check(&self.state, Some(&nodes), &self.settings, now);
        let real: Vec<_> = report
            .problems
            .iter()
            .filter(|p| p.kind != ProblemKind::LeakedEmptyBlock)
            .collect();
        assert!(real.is_empty(), "check found problems: {real:#?}");
    }
}
