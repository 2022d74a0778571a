// Routing tables. For now the per-peer Adj-RIB-In (what each peer sent us,
// RFC 4271 §3.2), Adj-RIB-Out for the prefixes this speaker originates,
// and import/export route policy; the Loc-RIB and best path arrive with
// the RIB/FIB issue.

pub mod adj_in;
pub mod adj_out;
pub mod policy;
pub mod route;

pub use adj_in::{AdjRibIn, UpdateSummary};
pub use adj_out::{AdjRibOut, OutboundSession};
pub use route::{PathAttributes, Route};
