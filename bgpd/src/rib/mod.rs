// Routing tables. For now the per-peer Adj-RIB-In (what each peer sent us,
// RFC 4271 §3.2) and Adj-RIB-Out for the prefixes this speaker originates;
// the Loc-RIB, best path and policy arrive with the RIB/FIB issue.

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
