// Where the agent's view of the cluster comes from. Each source publishes
// `model::objects::Snapshot`s on a watch channel (None until its first
// complete view); the rest of the agent never knows which source it runs on.

pub mod kube;
