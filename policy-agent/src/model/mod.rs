// The pure NetworkPolicy model: Kubernetes objects as the agent sees them and
// the rules that decide which pods they select. No I/O, no clock.

pub mod objects;
pub mod selector;
