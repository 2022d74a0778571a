// ipamd's standalone source (ARCHITECTURE.md principle 5): a YAML file, or
// a directory of them, holding `IPPool` (podroute.io/v1) and `Node` (v1)
// documents separated by `---`. Pools are created or updated from it; a pool
// removed from the files is not deleted (deletion is refused while in use,
// so it is an explicit `podctl ipam pool delete`). Nodes give labels for
// pool selection and the list Check compares blocks with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::nodes::Labels;
use crate::model::{IpPool, KIND_IP_POOL};

#[derive(Debug, Default)]
pub struct Manifests {
    pub pools: Vec<IpPool>,
    /// None when the files hold no Node document (node list unknown).
    pub nodes: Option<BTreeMap<String, Labels>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, document {doc}: {reason}")]
    Invalid {
        path: PathBuf,
        doc: usize,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
struct NodeDoc {
    metadata: NodeMeta,
}

#[derive(Deserialize)]
struct NodeMeta {
    name: String,
    #[serde(default)]
    labels: Labels,
}

/// Reads `path`: one file, or every `*.yaml` / `*.yml` in a directory in
/// name order. Documents of other kinds are ignored (one folder may feed
/// several daemons).
pub fn load(path: &Path) -> Result<Manifests, ManifestError> {
    // A missing file fails below, when it is read, with its path.
    let files = podroute_proto::reload::yaml_files(path);
    let mut manifests = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        parse_into(&file, &text, &mut manifests)?;
    }
    Ok(manifests)
}

fn parse_into(file: &Path, text: &str, manifests: &mut Manifests) -> Result<(), ManifestError> {
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc = index + 1;
        let invalid = |reason: String| ManifestError::Invalid {
            path: file.to_owned(),
            doc,
            reason,
        };
        let value =
            serde_yaml_ng::Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let header: Header =
            serde_yaml_ng::from_value(value.clone()).map_err(|e| invalid(e.to_string()))?;
        match (header.api_version.as_str(), header.kind.as_str()) {
            (crate::model::API_VERSION, KIND_IP_POOL) => {
                let pool: IpPool =
                    serde_yaml_ng::from_value(value).map_err(|e| invalid(e.to_string()))?;
                if manifests.pools.iter().any(|p| p.name() == pool.name()) {
                    return Err(invalid(format!(
                        "IPPool {:?} is defined twice",
                        pool.name()
                    )));
                }
                manifests.pools.push(pool);
            }
            ("v1", "Node") => {
                let node: NodeDoc =
                    serde_yaml_ng::from_value(value).map_err(|e| invalid(e.to_string()))?;
                manifests
                    .nodes
                    .get_or_insert_with(BTreeMap::new)
                    .insert(node.metadata.name, node.metadata.labels);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: default-ipv4
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels:
    rack: r1
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata:
  name: tor
spec: {}
";

    #[test]
    fn reads_pools_and_nodes_and_skips_other_kinds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), DOCS).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let manifests = load(dir.path()).unwrap();
        assert_eq!(manifests.pools.len(), 1);
        assert_eq!(manifests.pools[0].name(), "default-ipv4");
        let nodes = manifests.nodes.unwrap();
        assert_eq!(nodes["n1"]["rack"], "r1");
    }

    #[test]
    fn no_node_documents_means_node_list_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pools.yaml");
        std::fs::write(&file, DOCS.split("---").next().unwrap()).unwrap();
        assert!(load(&file).unwrap().nodes.is_none());
    }

    #[test]
    fn a_bad_document_names_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pools.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: not-a-cidr}\n",
        )
        .unwrap();
        let error = load(&file).unwrap_err().to_string();
        assert!(error.contains("pools.yaml, document 2"), "{error}");
    }

    #[test]
    fn a_pool_defined_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pools.yaml");
        let pool = DOCS.split("---").next().unwrap();
        std::fs::write(&file, format!("{pool}---\n{pool}")).unwrap();
        let error = load(&file).unwrap_err().to_string();
        assert!(error.contains("defined twice"), "{error}");
    }
}
