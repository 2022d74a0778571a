// podroute-policy: the per-node NetworkPolicy agent.
//
//   source  → Snapshot (manifests folder or Kubernetes API)
//   model   → validated Cluster; the reference evaluator
//   compile → per local endpoint, the isolating policies and their rules
//   render  → iptables chains and ipsets (Dataplane)
//   apply   → the kernel, diffed and written atomically
//   agent   → the reconcile loop; admin → the gRPC admin API
//   observe → /metrics, /livez, /readyz and GetStatus

pub mod admin;
pub mod agent;
pub mod apply;
pub mod compile;
pub mod model;
pub mod observe;
pub mod render;
pub mod source;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-policy-agent";
