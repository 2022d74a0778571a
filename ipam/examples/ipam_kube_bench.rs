// bench/kube's driver for ipamd's Kubernetes stores: Pods and Nodes watched
// with ipamd's own strippers (podroute_ipam::service::kube::{strip_pod,
// strip_node}) and rebuilt from by podroute_k8s::reflect::follow with
// ipamd's debounce, against the same watchers keeping whole objects, on a
// cluster served by the fake API server. The rebuild reads what ipamd's
// reconcile pass reads of these two stores: every node's name and labels
// (the node directory, nodes.rs) and, for each pod, the pod's node by its
// key (pod_gc.rs looks up each handle's pod so; one handle per pod). The
// engine's part of the pass (the IPAM state, releases, IPPools) is not
// here. The measuring is in bench/kube/driver.rs; bench/kube/run.sh runs
// one point per process.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use futures_util::stream;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use podroute_ipam::service::kube::{strip_node, strip_pod};
use podroute_k8s::fake::FakeKind;
use podroute_k8s::reflect::{follow, watch_kind};
use tokio::sync::watch;

#[path = "../../bench/kube/driver.rs"]
mod driver;

use driver::{Scenario, Started};

/// ipamd's (ipam/src/service/kube/mod.rs, DEBOUNCE): a lone change after a
/// quiet spell is rebuilt at once all the same.
const DEBOUNCE: Duration = Duration::from_millis(500);
const KINDS: [&str; 2] = ["nodes", "pods"];

type Strip<K> = Box<dyn FnMut(&mut K) + Send>;

struct Ipamd;

impl Scenario for Ipamd {
    const NAME: &'static str = "ipamd (Pods, Nodes)";
    const KINDS: &'static [FakeKind] = &[FakeKind::NODES, FakeKind::PODS];

    fn start(client: Client, naive: bool) -> Started {
        let (strip_nodes, strip_pods): (Strip<Node>, Strip<Pod>) = if naive {
            (Box::new(|_| {}), Box::new(|_| {}))
        } else {
            (Box::new(strip_node), Box::new(strip_pod))
        };
        let config = watcher::Config::default();
        let (nodes, node_events) = watch_kind::<Node>(
            KINDS[0],
            Api::all(client.clone()),
            config.clone(),
            strip_nodes,
        );
        let (pods, pod_events) = watch_kind::<Pod>(KINDS[1], Api::all(client), config, strip_pods);
        let (bump, rebuilt) = watch::channel(0u64);
        tokio::spawn(async move {
            let events = stream::select_all([node_events, pod_events]);
            follow(events, &KINDS, DEBOUNCE, std::future::pending(), || {
                let directory: BTreeMap<String, BTreeMap<String, String>> = nodes
                    .state()
                    .iter()
                    .map(|node| (node.name_any(), node.labels().clone()))
                    .collect();
                let mut on_known_nodes = 0usize;
                for pod in pods.state() {
                    let (Some(name), Some(namespace)) = (
                        pod.metadata.name.as_deref(),
                        pod.metadata.namespace.as_deref(),
                    ) else {
                        continue;
                    };
                    let key = ObjectRef::<Pod>::new(name).within(namespace);
                    let node = pods
                        .get(&key)
                        .and_then(|found| found.spec.as_ref()?.node_name.clone());
                    if node.is_some_and(|node| directory.contains_key(&node)) {
                        on_known_nodes += 1;
                    }
                }
                std::hint::black_box(on_known_nodes);
                bump.send_modify(|generation| *generation += 1);
                std::future::ready(())
            })
            .await;
        });
        Started {
            rebuilt,
            published_bytes: Box::new(|| 0),
        }
    }
}

fn main() -> Result<()> {
    driver::main::<Ipamd>()
}
