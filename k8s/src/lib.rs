// podroute's Kubernetes plumbing, shared by the daemons that read the
// cluster (bgpd: Nodes, BGPConfiguration, BGPPeers; ipamd: IPPools, Nodes,
// Pods; the policy agent: Pods, Namespaces, NetworkPolicies): the API
// client, watched reflector stores that are rebuilt from only after a
// complete list, and (feature `fake`) a fake API server for their tests.

mod client;
pub mod reflect;

#[cfg(feature = "fake")]
pub mod fake;

pub use client::{ClientError, client};
