// podroute-bgpd: the per-node BGP speaker. Layers, from the wire up:
// wire/ (the message codec), session/ (the pure RFC 4271 FSM, and in
// session/transport the TCP sockets with MD5, GTSM and TTL), config/ (YAML
// resources and reload diffs), rib/ (Loc-RIB, best path, policy, export,
// Adj-RIB-Out: pure), speaker/ (one task per peer driving the FSM, the RIB
// task, the listener, reloads), fib/ (kernel routes over rtnetlink),
// origin (the node's IPAM blocks from podroute-ipamd), malloc (allocator
// settings), admin (the gRPC admin API) and observe (/metrics, /livez,
// /readyz and the admin API's GetStatus).

pub mod admin;
pub mod bfd;
pub mod config;
pub mod fib;
pub mod malloc;
pub mod observe;
pub mod origin;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;

/// Name this daemon reports in `GetVersion`.
pub const DAEMON_NAME: &str = "podroute-bgpd";
