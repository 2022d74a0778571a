// podroute's gRPC admin APIs: the code tonic/prost generate from proto/*.proto
// (see build.rs), the default socket paths, and the Unix-socket plumbing every
// daemon and podctl share (admin_socket, shutdown).
//
// Module paths mirror the protobuf packages (`podroute.bgpd.v1` →
// `podroute_proto::bgpd::v1`) so the generated cross-package references resolve.

pub mod admin_socket;
pub mod daemon;
pub mod ipamd_client;
pub mod metrics;
pub mod observe;
pub mod reload;
pub mod shutdown;
pub mod test_port;

pub mod common {
    pub mod v1 {
        tonic::include_proto!("podroute.common.v1");
    }
}

pub mod ipam {
    pub mod v1 {
        tonic::include_proto!("podroute.ipam.v1");
    }
}

pub mod bgpd {
    pub mod v1 {
        tonic::include_proto!("podroute.bgpd.v1");
    }
}

pub mod policy {
    pub mod v1 {
        tonic::include_proto!("podroute.policy.v1");
    }
}

/// Default admin socket of podroute-bgpd.
pub const BGPD_SOCKET: &str = "/run/podroute/bgpd.sock";
/// Default admin socket of podroute-ipamd.
pub const IPAMD_SOCKET: &str = "/run/podroute/ipamd.sock";
/// Default admin socket of podroute-policy-agent.
pub const POLICY_SOCKET: &str = "/run/podroute/policy.sock";

/// Protobuf package names, reported as `VersionInfo.api_version`.
pub const BGPD_API: &str = "podroute.bgpd.v1";
pub const IPAM_API: &str = "podroute.ipam.v1";
pub const POLICY_API: &str = "podroute.policy.v1";

/// The `VersionInfo` a daemon answers `GetVersion` with.
pub fn version_info(daemon: &str, version: &str, api_version: &str) -> common::v1::VersionInfo {
    common::v1::VersionInfo {
        daemon: daemon.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
    }
}
