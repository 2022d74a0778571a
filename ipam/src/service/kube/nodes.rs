// Nodes from the cluster: their labels fill the engine's node directory
// (pools' nodeSelector, and the node list `podctl ipam check` compares
// blocks with), and a Node deleted from the cluster gives everything back:
// every allocation of the node whose pod is gone is released (a pod still
// in the cluster keeps its address: kubelet may still run it until the
// controller-manager deletes it, and a pod's address must never be handed
// out twice), and its empty blocks return to their pools at once, not after
// --empty-block-grace (blocks with an address still cooling down follow
// when it has cooled; blocks other nodes' pods borrow from stay theirs).
//
// A node counts as deleted only when it leaves a store that held it: the
// reflector store changes on a DELETED event of a running watch or on a
// complete relist, never on a list that failed, so a partial view cannot
// delete anything. Nodes missing from the first list are left alone (the
// CNI plugin may know its node by another name); their pods' handles are
// still collected once the pods are gone (pod_gc.rs), and their empty
// blocks after the grace.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store as Reflected};
use tracing::{debug, info};

use super::log_failure;

use crate::allocator;
use crate::model::HandleRecord;
use crate::service::nodes::Labels;
use crate::service::stats::ReleaseCause;
use crate::service::{Ipamd, unix_ms};
use crate::store::Store;

#[derive(Debug, Default)]
pub struct NodeSync {
    /// The node names of the last pass.
    known: BTreeSet<String>,
    /// A pass has run: `known` is a complete list.
    listed: bool,
    /// What the directory was last set to.
    directory: Option<BTreeMap<String, Labels>>,
    /// Deleted nodes whose allocations or blocks are not all back yet.
    departed: BTreeMap<String, Departed>,
}

#[derive(Debug, Default)]
struct Departed {
    /// Its allocations have been collected once.
    collected: bool,
}

impl NodeSync {
    /// The Kubernetes nodes as of the last pass.
    pub fn known(&self) -> &BTreeSet<String> {
        &self.known
    }

    /// Applies the store: the directory, then what deleted nodes leave.
    /// `pods` is the pod store, and `pods_complete` whether it holds a
    /// complete list: a deleted node's addresses are released only then,
    /// and only those of pods gone.
    pub async fn sync<S: Store>(
        &mut self,
        ipamd: &Ipamd<S>,
        nodes: &Reflected<Node>,
        pods: &Reflected<Pod>,
        pods_complete: bool,
    ) {
        let directory: BTreeMap<String, Labels> = nodes
            .state()
            .iter()
            .map(|node| (node.name_any(), node.labels().clone()))
            .collect();
        let current: BTreeSet<String> = directory.keys().cloned().collect();
        if self.listed {
            for gone in self.known.difference(&current) {
                info!(node = %gone, "node deleted from the cluster: releasing the addresses of its pods as they go, and returning its blocks");
                self.departed.insert(gone.clone(), Departed::default());
            }
        }
        self.departed.retain(|node, _| {
            let back = current.contains(node);
            if back {
                info!(node = %node, "deleted node is back in the cluster");
            }
            !back
        });
        if self.directory.as_ref() != Some(&directory) {
            if !self.listed {
                info!(nodes = directory.len(), "node list loaded");
            }
            ipamd.nodes().set(directory.clone());
            self.directory = Some(directory);
        }
        self.known = current;
        self.listed = true;
        if !pods_complete {
            return;
        }
        let departed: Vec<String> = self.departed.keys().cloned().collect();
        for node in departed {
            if self.give_back(ipamd, &node, pods).await {
                self.departed.remove(&node);
            }
        }
    }

    /// Releases `node`'s allocations and returns its empty blocks; true
    /// when nothing of it is left. Failures are retried next pass, and so
    /// is a handle made in the very millisecond of a collection (which
    /// GarbageCollect leaves alone, as it would a pod being added).
    async fn give_back<S: Store>(
        &mut self,
        ipamd: &Ipamd<S>,
        node: &str,
        pods: &Reflected<Pod>,
    ) -> bool {
        let Some(departed) = self.departed.get_mut(node) else {
            return true;
        };
        let (handles, valid) = ipamd
            .read(|mirror| {
                let state = &mirror.state;
                let valid: HashSet<String> = state
                    .handles_of_node(node)
                    .filter(|handle| still_there(&handle.value, node, pods))
                    .map(|handle| handle.value.handle.clone())
                    .collect();
                (state.handles_of_node(node).count(), valid)
            })
            .await;
        if handles > valid.len() || !departed.collected {
            match ipamd
                .garbage_collect_for(node, &valid, "", ReleaseCause::NodeDeleted)
                .await
            {
                Ok((handles, addresses)) => {
                    departed.collected = true;
                    if !handles.is_empty() {
                        info!(
                            node,
                            handles = handles.len(),
                            addresses,
                            "released the addresses of a deleted node"
                        );
                    }
                }
                Err(error) => {
                    log_failure(
                        &error,
                        &format!("cannot release the addresses of deleted node {node:?}"),
                    );
                    return false;
                }
            }
        }
        let settings = ipamd.settings().clone();
        let now = unix_ms();
        let (returnable, blocks, handles) = ipamd
            .read(|mirror| {
                let state = &mirror.state;
                (
                    allocator::plan_return_node_blocks(state, node, &settings, now).len(),
                    state.blocks_of_node(node).count(),
                    state.handles_of_node(node).count(),
                )
            })
            .await;
        let mut left = blocks;
        if returnable > 0 {
            match ipamd.return_node_blocks(node).await {
                Ok(returned) => {
                    info!(
                        node,
                        blocks = returned,
                        "returned the blocks of a deleted node to their pools"
                    );
                    left = left.saturating_sub(returned);
                }
                Err(error) => {
                    log_failure(
                        &error,
                        &format!("cannot return the blocks of deleted node {node:?}"),
                    );
                    return false;
                }
            }
        }
        if left > 0 {
            debug!(
                node,
                blocks = left,
                "a deleted node's blocks wait: addresses cooling down or borrowed by other nodes' pods"
            );
        }
        left == 0 && handles == 0
    }
}

/// Whether `handle` of deleted node `node` belongs to a pod still in the
/// cluster on that node (or not yet on any): it keeps its address until the
/// pod object goes.
fn still_there(handle: &HandleRecord, node: &str, pods: &Reflected<Pod>) -> bool {
    if handle.pod_namespace.is_empty() || handle.pod_name.is_empty() {
        return false;
    }
    let key = ObjectRef::new(&handle.pod_name).within(&handle.pod_namespace);
    pods.get(&key).is_some_and(|pod| {
        let bound = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
        bound.is_none_or(|bound| bound.is_empty() || bound == node)
    })
}
