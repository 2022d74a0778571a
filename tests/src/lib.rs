// podroute-lab: brings containerlab topologies up as network namespaces and
// veth pairs on this machine, with no Docker, and runs the routers and hosts
// in them. The binary `podlab` is the command line; integration tests use
// `Lab` directly, which tears the lab down when dropped. `labcluster` makes
// a lab with podroute cluster nodes a small cluster without Kubernetes
// (ipamd, bgpd and the policy agent started at `up`; pods by the real CNI
// plugin, manifests applied, podctl per node), `cluster` is the in-process
// equivalent the end-to-end tests build from code. `probe` is the
// reachability probe (`podlab probe`) the policy tests run in pods.

pub mod cluster;
pub mod cmdline;
pub mod cni;
pub mod error;
pub mod lab;
pub mod labcluster;
pub mod manifests;
pub mod netns;
pub mod pods;
pub mod probe;
pub mod role;
pub mod status;
pub mod topology;

pub use error::LabError;
pub use lab::{DownOutcome, Lab, LabOptions};
pub use labcluster::{LabCluster, LabPod, PortSpec};
pub use role::Role;
pub use status::{LabStatus, lab_status};
pub use topology::{Topology, TopologyError};
