// podroute-bgpd: the per-node BGP speaker. For now the crate holds the admin
// gRPC service; the wire codec, session FSM, RIB, FIB and BFD layers described
// in ARCHITECTURE.md arrive with the BGP issue as src/wire, src/session, ...

pub mod admin;
pub mod transport;
pub mod wire;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-bgpd";
