// The Kubernetes objects the agent reads, in their wire form: the subset of
// core/v1 Namespace and Pod and networking.k8s.io/v1 NetworkPolicy that
// NetworkPolicy semantics depend on, with the API's own camelCase names.
// Fields we do not use are ignored, so a real API object (or `kubectl get
// -o yaml`) parses. Both sources produce these: the manifests folder by
// parsing YAML, the Kubernetes watchers by converting kube's objects.
// `cluster` validates them into the model the compiler works on.

use std::collections::BTreeMap;

use podroute_labels::{LabelSelector, null_as_default};
use serde::{Deserialize, Serialize};

pub const KIND_NAMESPACE: &str = "Namespace";
pub const KIND_POD: &str = "Pod";
pub const KIND_NETWORK_POLICY: &str = "NetworkPolicy";
pub const API_CORE_V1: &str = "v1";
pub const API_NETWORKING_V1: &str = "networking.k8s.io/v1";

/// The namespace of an object whose metadata names none (kubectl's rule).
pub const DEFAULT_NAMESPACE: &str = "default";

/// meta/v1 ObjectMeta, the fields we read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Set while the object is being deleted. A pod being deleted keeps its
    /// address until it is gone, so it still counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
}

impl ObjectMeta {
    /// The namespace, `default` when unset.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// core/v1 Namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
}

/// core/v1 Pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub host_network: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<ContainerPort>,
}

/// core/v1 ContainerPort. `protocol` defaults to TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Pending, Running, Succeeded, Failed, Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(rename = "podIP", default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs", default, deserialize_with = "null_as_default")]
    pub pod_ips: Vec<PodIp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

/// networking.k8s.io/v1 NetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkPolicySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Required by the API; `{}` selects every pod of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// "Ingress" and/or "Egress". Absent: Ingress, plus Egress when `egress`
    /// has rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ingress: Vec<IngressRule>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub egress: Vec<EgressRule>,
}

/// An ingress rule: empty or absent `from` means every source; empty or
/// absent `ports` means every port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default, deserialize_with = "null_as_default")]
    pub from: Vec<PolicyPeer>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default, deserialize_with = "null_as_default")]
    pub to: Vec<PolicyPeer>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<PolicyPort>,
}

/// One peer: exactly one of `ipBlock` or a selector pair must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPeer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub except: Vec<String>,
}

/// A port: protocol defaults to TCP; no `port` means all ports of the
/// protocol; `endPort` makes `port`..=`endPort` a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

/// util/intstr IntOrString: a port number or a port name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

/// Everything a source knows at one moment: the level the agent reconciles
/// to. Objects are in no particular order; `cluster::Cluster::build` keys
/// them by namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub namespaces: Vec<NamespaceObject>,
    pub pods: Vec<PodObject>,
    pub policies: Vec<NetworkPolicyObject>,
}

/// Why a YAML document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {reason}")]
pub struct ParseError {
    /// 1-based, in the text.
    pub document: usize,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

impl Snapshot {
    /// Adds the Namespaces, Pods and NetworkPolicies of a multi-document
    /// YAML text (a `kind: List` is not read). Documents of other kinds are
    /// skipped: one folder may feed several daemons. On error nothing of
    /// this text is added.
    pub fn add_yaml(&mut self, text: &str) -> Result<(), ParseError> {
        let mut added = Snapshot::default();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let invalid = |reason: String| ParseError {
                document: index + 1,
                reason,
            };
            let value =
                serde_yaml_ng::Value::deserialize(document).map_err(|e| invalid(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let header: Header =
                serde_yaml_ng::from_value(value.clone()).map_err(|e| invalid(e.to_string()))?;
            let typed = |e: serde_yaml_ng::Error| invalid(format!("{}: {e}", header.kind));
            match (header.api_version.as_str(), header.kind.as_str()) {
                (API_CORE_V1, KIND_NAMESPACE) => added
                    .namespaces
                    .push(serde_yaml_ng::from_value(value).map_err(typed)?),
                (API_CORE_V1, KIND_POD) => added
                    .pods
                    .push(serde_yaml_ng::from_value(value).map_err(typed)?),
                (API_NETWORKING_V1, KIND_NETWORK_POLICY) => added
                    .policies
                    .push(serde_yaml_ng::from_value(value).map_err(typed)?),
                _ => {}
            }
        }
        self.namespaces.append(&mut added.namespaces);
        self.pods.append(&mut added.pods);
        self.policies.append(&mut added.policies);
        Ok(())
    }

    /// A snapshot of one YAML text (tests and tools).
    pub fn from_yaml(text: &str) -> Result<Snapshot, ParseError> {
        let mut snapshot = Snapshot::default();
        snapshot.add_yaml(text)?;
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_from_the_kubernetes_docs_parses() {
        let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
      endPort: 6000
    - port: http
"#;
        let policy: NetworkPolicyObject = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(policy.metadata.name, "test-network-policy");
        assert_eq!(policy.spec.ingress[0].from.len(), 3);
        let block = policy.spec.ingress[0].from[0].ip_block.as_ref().unwrap();
        assert_eq!(block.except, vec!["172.17.1.0/24"]);
        assert_eq!(
            policy.spec.ingress[0].ports[0].port,
            Some(IntOrString::Int(6379))
        );
        assert_eq!(policy.spec.egress[0].ports[0].end_port, Some(6000));
        assert_eq!(
            policy.spec.egress[0].ports[1].port,
            Some(IntOrString::String("http".into()))
        );
    }

    #[test]
    fn a_pod_as_the_api_returns_it_parses_ignoring_unused_fields() {
        let json = r#"{
          "apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": "a", "namespace": "x", "labels": {"pod": "a"},
                       "uid": "1234", "resourceVersion": "77"},
          "spec": {"nodeName": "n1", "containers": [
              {"name": "c", "image": "agnhost", "ports": [
                  {"name": "serve-80", "containerPort": 80},
                  {"containerPort": 81, "protocol": "UDP"}]}]},
          "status": {"phase": "Running", "podIP": "10.244.0.5",
                     "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
                     "conditions": []}
        }"#;
        let pod: PodObject = serde_json::from_str(json).unwrap();
        assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
        assert_eq!(
            pod.spec.containers[0].ports[1].protocol.as_deref(),
            Some("UDP")
        );
        assert_eq!(pod.status.pod_ips.len(), 2);
        assert!(!pod.spec.host_network);
    }

    #[test]
    fn nulls_read_as_absent() {
        let yaml = "spec:\n  podSelector: {}\n  ingress:\n  - from: null\n    ports: null\n";
        let policy: NetworkPolicyObject = serde_yaml_ng::from_str(yaml).unwrap();
        assert!(policy.spec.ingress[0].from.is_empty());
        assert!(policy.spec.ingress[0].ports.is_empty());
        assert_eq!(policy.metadata.namespace_or_default(), "default");
    }
}
