// podroute-ipam: pod address management. The pure core (model: pools,
// blocks, handles; allocator: what to write for each request) knows nothing
// of I/O; stores keep the records with compare-and-swap (an embedded file or
// etcd); the service runs the engine behind podroute-ipamd's gRPC API.

pub mod admin;
pub mod allocator;
#[cfg(feature = "test-support")]
pub mod loadgen;
pub mod model;
pub mod service;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod tls;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-ipamd";
