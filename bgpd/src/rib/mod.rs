// Routing tables (RFC 4271 §3.2) and what moves routes between them:
// UPDATEs read into paths (inbound), the Loc-RIB holding every peer's paths
// per prefix (loc_rib) ranked by best path selection (best_path), shared
// attribute sets (attrs), import/export route policy (policy), what a best
// path becomes toward one peer (export) and each peer's Adj-RIB-Out.

pub mod adj_out;
pub mod attrs;
pub mod best_path;
pub mod export;
pub mod inbound;
pub mod loc_rib;
pub mod policy;
pub mod route;

pub use adj_out::{AdjRibOut, OutboundSession};
pub use route::{PathAttributes, Route};
