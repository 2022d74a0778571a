// `podlab apply` and `podlab delete`: multi-document YAML files routed by
// kind to the daemon that reads them. Namespaces and NetworkPolicies go to
// the policy agents' manifests folder, IPPools (and core/v1 Nodes, whose
// labels pools select on) to ipamd's folder, BGPConfiguration, BGPPeer and
// podroute.io/v1 Node to the cluster's bgpd.yaml. Every document of a file
// is checked before anything is written; every file is written whole
// (beside, then renamed), so a watching daemon never reads half of one.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::ClusterPaths;
use crate::error::LabError;
use crate::manifests::{NAMESPACE_NAME_LABEL, write_atomic};

/// The daemon that reads a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Destination {
    /// `cluster/manifests/`, the policy agents' view of the cluster.
    Manifests,
    /// `cluster/ipam/`, ipamd's pools.
    Ipam,
    /// `cluster/bgpd.yaml`, every node's bgpd.
    Bgp,
}

/// A document checked for applying.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub api_version: String,
    pub kind: String,
    /// NetworkPolicy only (default `default`).
    pub namespace: Option<String>,
    pub name: String,
    pub destination: Destination,
    pub value: Value,
}

/// The kinds a lab takes: apiVersion, kind, where it goes, namespaced.
const KINDS: &[(&str, &str, Destination, bool)] = &[
    ("v1", "Namespace", Destination::Manifests, false),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Destination::Manifests,
        true,
    ),
    ("podroute.io/v1", "IPPool", Destination::Ipam, false),
    ("v1", "Node", Destination::Ipam, false),
    (
        "podroute.io/v1",
        "BGPConfiguration",
        Destination::Bgp,
        false,
    ),
    ("podroute.io/v1", "BGPPeer", Destination::Bgp, false),
    ("podroute.io/v1", "Node", Destination::Bgp, false),
];

/// bgpd.yaml lists its documents in this order, then by name.
const BGP_ORDER: &[&str] = &["BGPConfiguration", "Node", "BGPPeer"];

impl Document {
    /// `Kind namespace/name` or `Kind name`, for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// Its file in its destination folder: `Kind[.namespace].name.yaml`.
    /// Kinds, namespaces and names hold no `/`, and kinds and namespaces
    /// no `.`, so two documents never share a file.
    pub fn file_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}.{ns}.{}.yaml", self.kind, self.name),
            None => format!("{}.{}.yaml", self.kind, self.name),
        }
    }

    fn yaml(&self) -> Result<String, String> {
        serde_yaml_ng::to_string(&self.value).map_err(|e| e.to_string())
    }
}

/// Reads and checks every document of `file`.
pub fn read_documents(file: &Path) -> Result<Vec<Document>, LabError> {
    let text = fs::read_to_string(file).map_err(|e| LabError::io(file, e))?;
    parse_documents(file, &text)
}

/// Checks every document of `text` (read from `file`): a kind the lab
/// takes, with its apiVersion, a valid metadata.name (and namespace), and
/// no document twice. Empty documents are skipped.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, LabError> {
    let mut docs: Vec<Document> = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let doc = index + 1;
        let invalid = |reason: String| LabError::Document {
            file: file.to_path_buf(),
            doc,
            reason,
        };
        let value = Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let checked = check_document(value).map_err(invalid)?;
        if let Some(first) = docs.iter().position(|d| {
            (&d.api_version, &d.kind, &d.namespace, &d.name)
                == (
                    &checked.api_version,
                    &checked.kind,
                    &checked.namespace,
                    &checked.name,
                )
        }) {
            return Err(invalid(format!(
                "{} is also document {} of this file",
                checked.describe(),
                first + 1
            )));
        }
        docs.push(checked);
    }
    Ok(docs)
}

fn check_document(mut value: Value) -> Result<Document, String> {
    if !value.is_object() {
        return Err("not a mapping (apiVersion, kind, metadata, ...)".into());
    }
    let text = |v: &Value, field: &str| -> Result<String, String> {
        match v.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{field} is not a string")),
            None => Err(format!("no {field}")),
        }
    };
    let api_version = text(&value, "apiVersion")?;
    let kind = text(&value, "kind")?;
    let Some(&(_, _, destination, namespaced)) = KINDS
        .iter()
        .find(|(api, k, _, _)| *api == api_version && *k == kind)
    else {
        if kind == "Pod" {
            return Err("a Pod cannot be applied: make pods with `podlab pod create`".into());
        }
        let known: Vec<String> = KINDS
            .iter()
            .map(|(a, k, _, _)| format!("{a} {k}"))
            .collect();
        return Err(match KINDS.iter().find(|(_, k, _, _)| *k == kind) {
            Some((api, _, _, _)) => format!("kind {kind} is apiVersion {api}, not {api_version}"),
            None => format!(
                "kind {kind} cannot be applied to a lab (it takes {})",
                known.join(", ")
            ),
        });
    };
    let metadata = value
        .get("metadata")
        .filter(|m| m.is_object())
        .ok_or_else(|| format!("{kind} has no metadata"))?;
    let name = text(metadata, "name").map_err(|e| format!("{kind}: metadata: {e}"))?;
    if !podroute_labels::is_dns_subdomain(&name) {
        return Err(format!(
            "{kind} {name:?}: metadata.name must be lower case letters, digits, `-` and `.`"
        ));
    }
    let namespace = if namespaced {
        let ns = match metadata.get("namespace") {
            None => "default".to_string(),
            Some(_) => text(metadata, "namespace").map_err(|e| format!("{kind}: metadata: {e}"))?,
        };
        super::spec::check_dns_label("namespace", &ns)
            .map_err(|e| format!("{kind} {name}: {e}"))?;
        Some(ns)
    } else {
        if metadata.get("namespace").is_some() {
            return Err(format!(
                "{kind} {name} is not namespaced: remove metadata.namespace"
            ));
        }
        None
    };
    if let Some(ns) = &namespace
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
    {
        // Filled in as the API server would: the agents read it.
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    if kind == "Namespace" {
        // The API server labels every Namespace with its name;
        // namespaceSelectors in policies rely on it.
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .ok_or("metadata is not a mapping")?;
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        match labels.as_object_mut() {
            Some(labels) => {
                labels.insert(NAMESPACE_NAME_LABEL.into(), Value::String(name.clone()));
            }
            None => {
                return Err(format!(
                    "Namespace {name}: metadata.labels is not a mapping"
                ));
            }
        }
    }
    Ok(Document {
        api_version,
        kind,
        namespace,
        name,
        destination,
        value,
    })
}

/// Writes every document to its destination; bgpd.yaml is rebuilt once
/// if any BGP document was among them.
pub fn write_documents(paths: &ClusterPaths, docs: &[Document]) -> Result<(), LabError> {
    for doc in docs {
        let yaml = doc.yaml().map_err(|reason| LabError::Cluster {
            lab: paths.lab.clone(),
            reason: format!("{}: {reason}", doc.describe()),
        })?;
        write_atomic(
            &paths.tmp().join(format!("{}.tmp", doc.file_name())),
            &folder(paths, doc.destination).join(doc.file_name()),
            &yaml,
        )?;
    }
    if docs.iter().any(|d| d.destination == Destination::Bgp) {
        render_bgpd(paths)?;
    }
    Ok(())
}

/// Removes every document's file; returns for each whether it was there.
pub fn remove_documents(paths: &ClusterPaths, docs: &[Document]) -> Result<Vec<bool>, LabError> {
    let mut found = Vec::new();
    for doc in docs {
        let path = folder(paths, doc.destination).join(doc.file_name());
        match fs::remove_file(&path) {
            Ok(()) => found.push(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => found.push(false),
            Err(e) => return Err(LabError::io(&path, e)),
        }
    }
    if docs.iter().any(|d| d.destination == Destination::Bgp) {
        render_bgpd(paths)?;
    }
    Ok(found)
}

/// Where a destination's documents are kept. BGP documents are kept one
/// per file in `cluster/bgp/` and joined into bgpd.yaml, bgpd's one file.
fn folder(paths: &ClusterPaths, destination: Destination) -> PathBuf {
    match destination {
        Destination::Manifests => paths.manifests(),
        Destination::Ipam => paths.ipam(),
        Destination::Bgp => paths.bgp_documents(),
    }
}

/// bgpd.yaml from the documents in `cluster/bgp/`: BGPConfiguration, then
/// Nodes, then BGPPeers, each by name.
pub fn render_bgpd(paths: &ClusterPaths) -> Result<(), LabError> {
    let dir = paths.bgp_documents();
    let mut files: Vec<(usize, String, PathBuf)> = fs::read_dir(&dir)
        .map_err(|e| LabError::io(&dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let kind = name.split('.').next()?;
            let order = BGP_ORDER
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(BGP_ORDER.len());
            Some((order, name, p))
        })
        .collect();
    files.sort();
    let mut text = String::from(
        "# Written by podlab from the topology's podroute/bgpd.yaml and `podlab apply`;\n\
         # change it with `podlab apply` / `podlab delete`.\n",
    );
    for (_, _, path) in files {
        let doc = fs::read_to_string(&path).map_err(|e| LabError::io(&path, e))?;
        text.push_str("---\n");
        text.push_str(&doc);
        if !doc.ends_with('\n') {
            text.push('\n');
        }
    }
    write_atomic(
        &paths.tmp().join("bgpd.yaml.tmp"),
        &paths.bgpd_config(),
        &text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>, String> {
        parse_documents(Path::new("x.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn routes_documents_by_kind() {
        let docs = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n---\n\
             ---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec: {podSelector: {}}\n---\n\
             apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: extra}\nspec: {cidr: 10.99.0.0/16}\n---\n\
             apiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 10.0.0.1, asNumber: 65000}\n---\n\
             apiVersion: podroute.io/v1\nkind: Node\nmetadata: {name: n9}\nspec: {addresses: [10.0.0.9]}\n",
        )
        .unwrap();
        let got: Vec<(String, Destination, String)> = docs
            .iter()
            .map(|d| (d.describe(), d.destination, d.file_name()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Namespace shop".into(),
                    Destination::Manifests,
                    "Namespace.shop.yaml".into()
                ),
                (
                    "NetworkPolicy shop/deny".into(),
                    Destination::Manifests,
                    "NetworkPolicy.shop.deny.yaml".into()
                ),
                (
                    "NetworkPolicy default/deny".into(),
                    Destination::Manifests,
                    "NetworkPolicy.default.deny.yaml".into()
                ),
                (
                    "IPPool extra".into(),
                    Destination::Ipam,
                    "IPPool.extra.yaml".into()
                ),
                (
                    "BGPPeer tor".into(),
                    Destination::Bgp,
                    "BGPPeer.tor.yaml".into()
                ),
                ("Node n9".into(), Destination::Bgp, "Node.n9.yaml".into()),
            ]
        );
        // What the API server fills in.
        assert_eq!(
            docs[0].value["metadata"]["labels"][NAMESPACE_NAME_LABEL],
            "shop"
        );
        assert_eq!(docs[2].value["metadata"]["namespace"], "default");
    }

    #[test]
    fn refuses_what_it_cannot_apply() {
        for (text, reason) in [
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n",
                "document 1: kind Deployment cannot be applied to a lab",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
                "podlab pod create",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\n",
                "document 2: Namespace has no metadata",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n",
                "metadata: no name",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: ../etc}\n",
                "metadata.name must be",
            ),
            (
                "apiVersion: podroute.io/v1alpha1\nkind: IPPool\nmetadata: {name: a}\n",
                "kind IPPool is apiVersion podroute.io/v1, not podroute.io/v1alpha1",
            ),
            (
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: Bad}\n",
                "namespace",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n",
                "not namespaced",
            ),
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
                "document 2: Namespace a is also document 1",
            ),
            ("- a\n- b\n", "not a mapping"),
            ("kind: [\n", "document 1"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.starts_with("x.yaml: document"), "{err}");
        }
    }
}
