// Where the agent's view of the cluster comes from: a folder of manifests,
// or the Kubernetes API. Each publishes whole `Snapshot`s on a watch
// channel, `None` until its first complete view; the agent never knows
// which source it has (ARCHITECTURE.md principle 5).

pub mod kube;
pub mod manifests;
