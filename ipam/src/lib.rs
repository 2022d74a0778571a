// podroute-ipam: pod address management. For now the crate holds the admin
// gRPC service of podroute-ipamd; the block allocator and its stores arrive
// with the IPAM issue.

pub mod admin;
pub mod allocator;
pub mod model;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-ipamd";
