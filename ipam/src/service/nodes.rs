// The nodes ipamd knows: their labels choose pools (IPPool.nodeSelector),
// and their names let Check tell a block of a deleted node. Standalone they
// come from `Node` manifests; in a cluster the Kubernetes source fills the
// same directory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Default)]
pub struct NodeDirectory {
    /// None until a source has told us the node list.
    nodes: RwLock<Option<BTreeMap<String, Labels>>>,
}

impl NodeDirectory {
    /// Replaces the node list.
    pub fn set(&self, nodes: BTreeMap<String, Labels>) {
        if let Ok(mut guard) = self.nodes.write() {
            *guard = Some(nodes);
        }
    }

    /// A node's labels; none for a node we do not know (only pools without
    /// a nodeSelector then select it).
    pub fn labels(&self, node: &str) -> Labels {
        self.nodes
            .read()
            .ok()
            .and_then(|guard| guard.as_ref().and_then(|nodes| nodes.get(node).cloned()))
            .unwrap_or_default()
    }

    /// The known node names, or None when no source gave a list.
    pub fn known(&self) -> Option<BTreeSet<String>> {
        self.nodes
            .read()
            .ok()
            .and_then(|guard| guard.as_ref().map(|nodes| nodes.keys().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_set_then_labels_by_node() {
        let directory = NodeDirectory::default();
        assert_eq!(directory.known(), None);
        assert!(directory.labels("n1").is_empty());
        let labels: Labels = [("rack".to_owned(), "r1".to_owned())].into();
        directory.set([("n1".to_owned(), labels.clone())].into());
        assert_eq!(directory.labels("n1"), labels);
        assert!(directory.labels("n2").is_empty());
        assert_eq!(directory.known(), Some(["n1".to_owned()].into()));
    }
}
