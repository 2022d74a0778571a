// podroute-policy: the per-node NetworkPolicy agent. `model` holds the pure
// Kubernetes policy model (label selectors so far); `admin` the gRPC admin
// service; `render` the kernel objects we want and `apply` the code that
// programs them. The compiler arrives with the policy issue.

pub mod admin;
pub mod apply;
pub mod model;
pub mod render;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-policy-agent";
