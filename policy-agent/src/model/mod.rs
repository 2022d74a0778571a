// The pure NetworkPolicy model: Kubernetes objects as the agent sees them,
// validated, and the reference evaluator that says what they allow. No I/O,
// no clock.

pub mod cluster;
pub mod evaluate;
pub mod objects;
#[cfg(test)]
pub(crate) mod test_fixtures;
