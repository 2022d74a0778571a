// The IPPool custom resource (API group podroute.io, version v1,
// cluster-scoped), derived by kube's CustomResource from the same
// `IpPoolSpec` the standalone manifests are read into, so the CRD schema in
// deploy/crds/ and the file format cannot drift apart (tests/tests/crds.rs
// checks the YAML against this). Its status is ipamd's usage of the pool.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pool::ObjectMeta;
use super::{API_VERSION, IpPool, KIND_IP_POOL};

pub use super::pool::IPPool;

/// `status` of an IPPool, written by ipamd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolStatus {
    /// Addresses the pool can hand out (its size less reserved ones), at
    /// most 2^53 - 1 (the largest integer the API keeps exact; an IPv6
    /// pool's is larger and shows as that).
    pub capacity: u64,
    /// Addresses held by pods.
    pub allocated: u64,
    /// Blocks claimed by nodes.
    pub blocks: u64,
}

impl From<&IPPool> for IpPool {
    /// The pool as ipamd validates and stores it (metadata it does not
    /// keep is dropped).
    fn from(resource: &IPPool) -> IpPool {
        IpPool {
            api_version: API_VERSION.to_owned(),
            kind: KIND_IP_POOL.to_owned(),
            metadata: ObjectMeta {
                name: resource.name_any(),
                labels: resource.labels().clone(),
            },
            spec: resource.spec.clone(),
        }
    }
}

/// The CRDs ipamd reads, as deploy/crds/ holds them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![IPPool::crd()]
}
