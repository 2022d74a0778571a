// Every document as the typed object its kind names: the Kubernetes kinds
// as k8s-openapi's types, ours as the types the daemons read. k8s-openapi
// ignores fields it does not know, so a document is also written back from
// its typed form and compared: a field lost on the way is one Kubernetes
// would not know either (a typo, a wrong level), and is named.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use podroute_bgpd::config::crd::{BGPConfiguration, BGPPeer};
use podroute_ipam::model::crd::IPPool;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::docs::Doc;

/// One parsed document. Parsing is the check for most kinds; the tests read
/// the fields of some.
#[allow(dead_code)]
#[allow(clippy::large_enum_variant)] // a few dozen per test run
#[derive(Debug, Clone)]
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Service(Service),
    DaemonSet(Box<DaemonSet>),
    Deployment(Box<Deployment>),
    Crd(Box<CustomResourceDefinition>),
    IpPool(Box<IPPool>),
    BgpConfiguration(Box<BGPConfiguration>),
    BgpPeer(Box<BGPPeer>),
}

/// A typed document with where it came from.
#[derive(Debug, Clone)]
pub struct Typed {
    pub doc: Doc,
    pub object: Object,
}

/// A pod template, with its workload.
pub struct Workload<'a> {
    /// "DaemonSet podroute-system/podroute-node".
    pub id: String,
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: BTreeMap<String, String>,
    pub spec: &'a PodSpec,
}

impl Typed {
    /// The pod template of a DaemonSet or Deployment.
    pub fn workload(&self) -> Option<Workload<'_>> {
        let (template, namespace) = match &self.object {
            Object::DaemonSet(d) => (Some(&d.spec.template), d.metadata.namespace.as_deref()),
            Object::Deployment(d) => (Some(&d.spec.template), d.metadata.namespace.as_deref()),
            _ => return None,
        };
        let template = template?;
        Some(Workload {
            id: self.doc.id(),
            name: self.doc.name(),
            namespace: namespace.unwrap_or("default"),
            labels: template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            spec: template.spec.as_ref()?,
        })
    }
}

/// `doc` as its kind's type, or every reason it is not one.
pub fn parse(doc: &Doc) -> Result<Typed, String> {
    let object = match (doc.api_version(), doc.kind()) {
        ("v1", "Namespace") => Object::Namespace(k8s(doc)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(k8s(doc)?),
        ("v1", "ConfigMap") => Object::ConfigMap(k8s(doc)?),
        ("v1", "Service") => Object::Service(k8s(doc)?),
        ("apps/v1", "DaemonSet") => Object::DaemonSet(Box::new(k8s(doc)?)),
        ("apps/v1", "Deployment") => Object::Deployment(Box::new(k8s(doc)?)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => Object::ClusterRole(k8s(doc)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(k8s(doc)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(k8s(doc)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(k8s(doc)?),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => Object::Crd(Box::new(k8s(doc)?)),
        // Our kinds, as the CRD types (kube's CustomResource derive over
        // the specs the daemons read, which refuse unknown fields).
        ("podroute.io/v1", "IPPool") => Object::IpPool(Box::new(k8s(doc)?)),
        ("podroute.io/v1", "BGPConfiguration") => Object::BgpConfiguration(Box::new(k8s(doc)?)),
        ("podroute.io/v1", "BGPPeer") => Object::BgpPeer(Box::new(k8s(doc)?)),
        (api_version, kind) => {
            return Err(format!(
                "{}: apiVersion {api_version:?} kind {kind:?}: not a kind deploy/ is expected to hold (extend tests/tests/deploy/typed.rs)",
                doc.origin
            ));
        }
    };
    Ok(Typed {
        doc: doc.clone(),
        object,
    })
}

/// Through the type and back: every field of the document must survive
/// with its value.
fn k8s<T: DeserializeOwned + Serialize>(doc: &Doc) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.value.clone())
        .map_err(|e| format!("{} ({}): {e}", doc.origin, doc.id()))?;
    let back = serde_json::to_value(&typed)
        .map_err(|e| format!("{} ({}): cannot write it back: {e}", doc.origin, doc.id()))?;
    let mut lost = Vec::new();
    compare(&doc.value, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(typed)
    } else {
        Err(format!(
            "{} ({}): not in the type, so the API would drop or refuse it:\n  {}",
            doc.origin,
            doc.id(),
            lost.join("\n  ")
        ))
    }
}

/// Paths of `original` that `back` lacks or holds differently.
pub fn compare(original: &Value, back: &Value, at: &str, out: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (key, value) in o {
                let here = format!("{at}.{key}");
                match b.get(key) {
                    None if value.is_null() => {}
                    None => out.push(format!("{here}: unknown field")),
                    Some(other) => compare(value, other, &here, out),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (value, other)) in o.iter().zip(b).enumerate() {
                compare(value, other, &format!("{at}[{i}]"), out);
            }
        }
        (o, b) if o == b => {}
        // 4294967295.0 and 4294967295 are one number to the API server.
        (Value::Number(o), Value::Number(b)) if o.as_f64() == b.as_f64() => {}
        (o, b) => out.push(format!("{at}: {o} reads back as {b}")),
    }
}
