// deploy/ checked without a cluster (none can run on this machine, nor a
// container engine): every manifest parsed into the typed Kubernetes
// objects with unknown fields refused, deploy/podroute.yaml equal to the
// CRDs plus the base, the overlays built (and compared with kustomize's
// own build where it is installed), and the cross-references a typo would
// break at install time: ServiceAccounts, RBAC, ConfigMap keys, Secrets,
// the one image, probe ports against the daemons' constants, the Service
// against ipamd's --listen, every container's arguments parsed by the very
// binary it runs, the privileges each container is given, the BGP and
// IPAM resources loaded by bgpd's and ipamd's own code, the Dockerfile,
// and podroute-create-defaults against a fake API server.
//
// The daemons' binaries must be built first (scripts/test.sh builds the
// workspace): cargo build -p podroute-bgpd -p podroute-ipam -p podroute-policy -p podroute-cni
// PODROUTE_BLESS=1 rewrites deploy/podroute.yaml from its sources.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "deploy/binaries.rs"]
mod binaries;
#[path = "deploy/builds.rs"]
mod builds;
#[path = "deploy/defaults.rs"]
mod defaults;
#[path = "deploy/docs.rs"]
mod docs;
#[path = "deploy/image.rs"]
mod image;
#[path = "deploy/kustomize.rs"]
mod kustomize;
#[path = "deploy/manifests.rs"]
mod manifests;
#[path = "deploy/rbac.rs"]
mod rbac;
#[path = "deploy/references.rs"]
mod references;
#[path = "deploy/resources.rs"]
mod resources;
#[path = "deploy/tables.rs"]
mod tables;
#[path = "deploy/typed.rs"]
mod typed;
#[path = "deploy/workloads.rs"]
mod workloads;
