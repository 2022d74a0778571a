// podroute-policy: the per-node NetworkPolicy agent. `model` holds the pure
// Kubernetes policy model (label selectors so far); `admin` the gRPC admin
// service. The compiler and the iptables/ipset renderer arrive with the
// policy issue.

pub mod admin;
pub mod model;
pub mod render;
pub mod source;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-policy-agent";
