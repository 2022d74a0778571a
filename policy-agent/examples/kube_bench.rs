// bench/kube's driver for the policy agent's Kubernetes source
// (podroute_policy::source::kube::run): Namespaces, Pods and NetworkPolicies
// watched into stores that keep only what the agent reads, against the same
// source keeping whole objects (run_unstripped), on a cluster served by the
// fake API server. A rebuild is a snapshot published. The measuring is in
// bench/kube/driver.rs; bench/kube/run.sh runs one point per process.

use std::sync::Arc;

use anyhow::Result;
use kube::Client;
use podroute_k8s::fake::FakeKind;
use podroute_policy::model::objects::Snapshot;
use podroute_policy::source::kube::{run, run_unstripped};
use tokio::sync::watch;

#[path = "../../bench/kube/driver.rs"]
mod driver;

use driver::{Scenario, Started, live_heap};

struct PolicyAgent;

impl Scenario for PolicyAgent {
    const NAME: &'static str = "policy agent";
    const KINDS: &'static [FakeKind] = &[
        FakeKind::NAMESPACES,
        FakeKind::PODS,
        FakeKind::NETWORK_POLICIES,
    ];

    fn start(client: Client, naive: bool) -> Started {
        let (tx, mut snapshots) = watch::channel::<Option<Arc<Snapshot>>>(None);
        if naive {
            tokio::spawn(run_unstripped(client, tx));
        } else {
            tokio::spawn(run(client, tx));
        }
        let held = snapshots.clone();
        let (bump, rebuilt) = watch::channel(0u64);
        tokio::spawn(async move {
            while snapshots.changed().await.is_ok() {
                bump.send_modify(|generation| *generation += 1);
            }
        });
        Started {
            rebuilt,
            published_bytes: Box::new(move || held.borrow().as_deref().map_or(0, heap_of)),
        }
    }
}

/// Heap bytes a clone of `value` takes (nothing else allocates meanwhile:
/// the source is idle when the driver asks).
fn heap_of<T: Clone>(value: &T) -> usize {
    let before = live_heap();
    let copy = value.clone();
    let after = live_heap();
    drop(copy);
    after.saturating_sub(before)
}

fn main() -> Result<()> {
    driver::main::<PolicyAgent>()
}
