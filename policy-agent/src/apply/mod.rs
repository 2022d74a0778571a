// Programs a rendered `Dataplane` into the kernel through the iptables,
// ipset and conntrack tools.

pub mod conntrack;
pub mod runner;

pub use conntrack::{ConntrackError, ConntrackFlow};
pub use runner::{CommandOutput, RunError, Runner};
