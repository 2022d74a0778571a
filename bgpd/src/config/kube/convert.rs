// From the Kubernetes API's objects to the documents config::assemble
// reads, one object at a time: a Node's name, labels, podroute.io
// annotations and addresses (InternalIP, or an address annotation); a
// BGPConfiguration's or BGPPeer's spec, decoded on its own from the
// untyped object so that one object this bgpd cannot read is refused alone
// instead of failing the whole list. The strippers keep only what the
// conversions read, so the stores stay small in a large cluster.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node as KubeNode, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta as KubeMeta;
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::cluster::Node;
use crate::config::schema::{ObjectMeta, Resource};
use crate::config::{API_VERSION, DocRef, KIND_NODE};

/// Annotation: the node's IPv4 address for BGP, instead of its first
/// InternalIP of that family (`10.0.0.1`, or Calico's `10.0.0.1/24`).
pub const IPV4_ADDRESS_KEY: &str = "podroute.io/ipv4-address";
/// Annotation: the node's IPv6 address for BGP, likewise.
pub const IPV6_ADDRESS_KEY: &str = "podroute.io/ipv6-address";
/// The only annotations a Node keeps in the store: every key the cluster
/// resolution reads (config::cluster) has this prefix.
const ANNOTATION_PREFIX: &str = "podroute.io/";
/// NodeAddress.type of the address other nodes reach it at.
const INTERNAL_IP: &str = "InternalIP";

/// An object refused on its own; the others still apply.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object does not decode into the spec this bgpd knows (an
    /// unknown field from a newer CRD, a value of the wrong type).
    #[error("{object}: {field}: {message}")]
    Decode {
        object: DocRef,
        /// Dotted path such as `spec.importPolicy.rules[0]`.
        field: String,
        message: String,
    },
    /// A Node without an address we can peer with.
    #[error("{object}: {field}: {message}")]
    NodeAddress {
        object: DocRef,
        field: String,
        message: String,
    },
}

/// How an API object is named in errors: `BGPPeer "tor1"`.
pub fn doc(kind: &str, name: &str) -> DocRef {
    DocRef {
        index: 0,
        kind: Some(kind.to_owned()),
        name: Some(name.to_owned()),
    }
}

/// A Kubernetes Node as a cluster member: its addresses are the
/// annotations' if set, else the first InternalIP of each family.
pub fn node(object: &KubeNode) -> Result<Node, ObjectError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let labels = object.metadata.labels.clone().unwrap_or_default();
    let annotations: BTreeMap<String, String> = object
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let object_doc = doc(KIND_NODE, &name);
    let internal: Vec<IpAddr> = object
        .status
        .iter()
        .flat_map(|status| status.addresses.iter().flatten())
        .filter(|address| address.type_ == INTERNAL_IP)
        .filter_map(|address| address.address.parse::<IpAddr>().ok())
        .map(|address| address.to_canonical())
        .collect();
    let mut addresses = Vec::new();
    for (key, v4) in [(IPV4_ADDRESS_KEY, true), (IPV6_ADDRESS_KEY, false)] {
        let chosen = match annotations.get(key) {
            Some(text) => {
                Some(
                    annotated_address(text, v4).ok_or_else(|| ObjectError::NodeAddress {
                        object: object_doc.clone(),
                        field: format!("metadata.annotations[\"{key}\"]"),
                        message: format!(
                            "{text:?} is not an {} address (\"ADDRESS\" or \"ADDRESS/LENGTH\")",
                            if v4 { "IPv4" } else { "IPv6" }
                        ),
                    })?,
                )
            }
            None => internal.iter().copied().find(|a| a.is_ipv4() == v4),
        };
        addresses.extend(chosen);
    }
    if addresses.is_empty() {
        return Err(ObjectError::NodeAddress {
            object: object_doc,
            field: "status.addresses".into(),
            message: format!(
                "no InternalIP address (and no {IPV4_ADDRESS_KEY} or {IPV6_ADDRESS_KEY} annotation)"
            ),
        });
    }
    Ok(Node {
        doc: object_doc,
        name,
        labels,
        annotations,
        addresses,
    })
}

/// `10.0.0.1` or `10.0.0.1/24` of the family asked for.
fn annotated_address(text: &str, v4: bool) -> Option<IpAddr> {
    let address = text.split_once('/').map_or(text, |(address, _)| address);
    let address = address.trim().parse::<IpAddr>().ok()?.to_canonical();
    (address.is_ipv4() == v4 && !address.is_unspecified()).then_some(address)
}

/// The object's `spec` as the typed resource the file format reads (its
/// name kept; labels and annotations are not read for these kinds).
pub fn resource<S: DeserializeOwned>(
    kind: &str,
    object: &DynamicObject,
) -> Result<(DocRef, Resource<S>), ObjectError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let object_doc = doc(kind, &name);
    let decode = |field: String, message: String| ObjectError::Decode {
        object: object_doc.clone(),
        field,
        message,
    };
    let Some(spec) = object.data.get("spec").filter(|spec| !spec.is_null()) else {
        return Err(decode("spec".into(), "is required".into()));
    };
    let spec = decode_spec::<S>(spec).map_err(|(path, message)| {
        let field = match path {
            Some(path) => format!("spec.{path}"),
            None => "spec".to_owned(),
        };
        decode(field, message)
    })?;
    let resource = Resource {
        api_version: API_VERSION.into(),
        kind: kind.to_owned(),
        metadata: ObjectMeta {
            name,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec,
    };
    Ok((object_doc, resource))
}

/// Decodes a spec through the YAML deserializer the files use, for its
/// errors: they name the path of the offending field (serde_json's do not).
/// The position in the YAML text made here means nothing to a user, so it
/// is cut off. Errors: (path inside the spec, if any; message).
fn decode_spec<S: DeserializeOwned>(spec: &Value) -> Result<S, (Option<String>, String)> {
    let text = serde_yaml_ng::to_string(spec).map_err(|e| (None, e.to_string()))?;
    S::deserialize(serde_yaml_ng::Deserializer::from_str(&text)).map_err(|error| {
        let mut message = error.to_string();
        if let Some(location) = error.location() {
            let at = format!(" at line {} column {}", location.line(), location.column());
            if let Some(cut) = message.strip_suffix(&at) {
                message = cut.to_owned();
            }
        }
        // "importPolicy.rules[0]: unknown field ..." (the spec's own level
        // has no path).
        match message.split_once(": ") {
            Some((path, rest)) if is_path(path) => (Some(path.to_owned()), rest.to_owned()),
            _ => (None, message),
        }
    })
}

/// A serde_yaml_ng path: field names, dots and `[i]` indexes.
fn is_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'))
}

// Strippers.

/// Keeps a Node's name, labels, podroute.io annotations and InternalIP
/// addresses (and what the reflector keys on).
pub fn strip_node(node: &mut KubeNode) {
    let meta = &mut node.metadata;
    let annotations = meta.annotations.take().map(|annotations| {
        annotations
            .into_iter()
            .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
            .collect::<BTreeMap<_, _>>()
    });
    *meta = KubeMeta {
        name: meta.name.take(),
        labels: meta.labels.take(),
        annotations: annotations.filter(|a| !a.is_empty()),
        resource_version: meta.resource_version.take(),
        uid: meta.uid.take(),
        ..KubeMeta::default()
    };
    node.spec = None;
    node.status = node.status.take().map(|status| NodeStatus {
        addresses: status.addresses.map(|addresses| {
            addresses
                .into_iter()
                .filter(|a| a.type_ == INTERNAL_IP)
                .collect::<Vec<NodeAddress>>()
        }),
        ..NodeStatus::default()
    });
}

/// Keeps a BGPConfiguration's name and spec.
pub fn strip_configuration(object: &mut DynamicObject) {
    strip_meta(&mut object.metadata);
    let spec = object.data.get_mut("spec").map(Value::take);
    object.data = match spec {
        Some(spec) => serde_json::json!({ "spec": spec }),
        None => serde_json::json!({}),
    };
}

/// Keeps a BGPPeer's name, creation time (the older of two BGPPeers with
/// one address wins), spec, and `node`'s own entries of its status (what
/// the status writer compares with).
pub fn strip_peer(node: String) -> impl FnMut(&mut DynamicObject) + Send + 'static {
    move |object: &mut DynamicObject| {
        strip_meta(&mut object.metadata);
        let spec = object.data.get_mut("spec").map(Value::take);
        let ours: Vec<Value> = object
            .data
            .pointer_mut("/status/nodes")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry.get("node").and_then(Value::as_str) == Some(node.as_str()))
            .collect();
        let mut data = serde_json::Map::new();
        if let Some(spec) = spec {
            data.insert("spec".into(), spec);
        }
        if !ours.is_empty() {
            data.insert("status".into(), serde_json::json!({ "nodes": ours }));
        }
        object.data = Value::Object(data);
    }
}

fn strip_meta(meta: &mut KubeMeta) {
    *meta = KubeMeta {
        name: meta.name.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        resource_version: meta.resource_version.take(),
        uid: meta.uid.take(),
        ..KubeMeta::default()
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::config::schema::BgpPeerSpec;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let peer = object(json!({
            "apiVersion": "podroute.io/v1", "kind": "BGPPeer",
            "metadata": {"name": "tor1"},
            "spec": {"peerIP": "10.0.0.254", "asNumber": 65000, "fooBar": 1},
        }));
        let error = resource::<BgpPeerSpec>("BGPPeer", &peer).unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.starts_with("BGPPeer \"tor1\": spec: unknown field `fooBar`"),
            "{shown}"
        );
        assert!(!shown.contains(" at line "), "{shown}");

        let nested = object(json!({
            "metadata": {"name": "tor2"},
            "spec": {"peerIP": "10.0.0.254", "asNumber": 65000,
                     "importPolicy": {"rules": [{"action": "accept", "weight": 3}]}},
        }));
        let shown = resource::<BgpPeerSpec>("BGPPeer", &nested)
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with(
                "BGPPeer \"tor2\": spec.importPolicy.rules[0]: unknown field `weight`"
            ),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_value_is_named_with_its_path() {
        let peer = object(json!({
            "metadata": {"name": "tor1"},
            "spec": {"peerIP": "10.0.0.254", "asNumber": 5_000_000_000_u64},
        }));
        let shown = resource::<BgpPeerSpec>("BGPPeer", &peer)
            .unwrap_err()
            .to_string();
        assert_eq!(
            shown,
            "BGPPeer \"tor1\": spec.asNumber: AS number 5000000000 does not fit in 32 bits"
        );
        let missing = object(json!({"metadata": {"name": "tor1"}}));
        let shown = resource::<BgpPeerSpec>("BGPPeer", &missing)
            .unwrap_err()
            .to_string();
        assert_eq!(shown, "BGPPeer \"tor1\": spec: is required");
    }

    #[test]
    fn a_quoted_as_number_stays_a_string() {
        // asdot, and digits the API server keeps as a string.
        let peer = object(json!({
            "metadata": {"name": "tor1"},
            "spec": {"peerIP": "10.0.0.254", "asNumber": "1.10"},
        }));
        let (_, resource) = resource::<BgpPeerSpec>("BGPPeer", &peer).unwrap();
        assert_eq!(resource.spec.as_number.map(|a| a.0), Some(65546));
    }

    fn kube_node(value: Value) -> KubeNode {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_node_peers_at_its_first_internal_ip_of_each_family() {
        let n1 = kube_node(json!({
            "metadata": {"name": "n1", "labels": {"rack": "r1"}},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "InternalIP", "address": "10.0.0.101"},
                {"type": "InternalIP", "address": "fd00::1"},
            ]},
        }));
        let node = node(&n1).unwrap();
        assert_eq!(
            node.addresses,
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
        assert_eq!(node.labels["rack"], "r1");
    }

    #[test]
    fn address_annotations_win_and_are_checked() {
        let n1 = kube_node(json!({
            "metadata": {"name": "n1", "annotations": {
                IPV4_ADDRESS_KEY: "192.0.2.1/24", IPV6_ADDRESS_KEY: "fd00:1::1"}},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
        }));
        let addresses = node(&n1).unwrap().addresses;
        assert_eq!(
            addresses,
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "fd00:1::1".parse().unwrap()
            ]
        );
        let bad = kube_node(json!({
            "metadata": {"name": "n2", "annotations": {IPV4_ADDRESS_KEY: "fd00::2"}},
        }));
        let shown = node(&bad).unwrap_err().to_string();
        assert_eq!(
            shown,
            "Node \"n2\": metadata.annotations[\"podroute.io/ipv4-address\"]: \
             \"fd00::2\" is not an IPv4 address (\"ADDRESS\" or \"ADDRESS/LENGTH\")"
        );
        let bare = kube_node(json!({"metadata": {"name": "n3"}}));
        let shown = node(&bare).unwrap_err().to_string();
        assert!(
            shown.starts_with("Node \"n3\": status.addresses: no InternalIP address"),
            "{shown}"
        );
    }

    #[test]
    fn a_stripped_node_converts_as_the_whole_one() {
        let whole = kube_node(json!({
            "metadata": {"name": "n1", "uid": "u1", "resourceVersion": "7",
                "labels": {"rack": "r1"},
                "annotations": {"podroute.io/as-number": "65010",
                                "node.alpha.kubernetes.io/ttl": "0"},
                "managedFields": [{"manager": "kubelet"}]},
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1"},
                              {"type": "InternalIP", "address": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "capacity": {"cpu": "2"},
            },
        }));
        let mut stripped = whole.clone();
        strip_node(&mut stripped);
        assert_eq!(node(&stripped).unwrap(), node(&whole).unwrap());
        let annotations = stripped.metadata.annotations.unwrap();
        assert_eq!(annotations.len(), 1, "{annotations:?}");
        assert!(stripped.metadata.managed_fields.is_none());
        assert!(stripped.spec.is_none());
    }

    #[test]
    fn a_stripped_peer_keeps_its_spec_and_this_nodes_status() {
        let mut peer = object(json!({
            "apiVersion": "podroute.io/v1", "kind": "BGPPeer",
            "metadata": {"name": "tor1", "uid": "u", "resourceVersion": "3",
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"peerIP": "10.0.0.254", "asNumber": 65000},
            "status": {"nodes": [
                {"node": "n1", "peerIP": "10.0.0.254", "state": "Established"},
                {"node": "n2", "peerIP": "10.0.0.254", "state": "Active"},
            ]},
        }));
        strip_peer("n1".into())(&mut peer);
        assert_eq!(
            peer.data,
            json!({
                "spec": {"peerIP": "10.0.0.254", "asNumber": 65000},
                "status": {"nodes": [{"node": "n1", "peerIP": "10.0.0.254", "state": "Established"}]},
            })
        );
        assert!(peer.metadata.annotations.is_none());
        assert!(peer.metadata.creation_timestamp.is_some());
    }
}
