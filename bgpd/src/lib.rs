// podroute-bgpd: the per-node BGP speaker. For now the crate holds the admin
// gRPC service, the wire codec, the configuration (config/) and the TCP
// transport (transport/); the session FSM, RIB, FIB and BFD layers described
// in ARCHITECTURE.md arrive with the BGP issue as src/session, ...

pub mod admin;
pub mod config;
pub mod transport;
pub mod wire;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-bgpd";
