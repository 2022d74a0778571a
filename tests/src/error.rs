// Errors of the lab: each says what was being done and what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use crate::topology::TopologyError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Topology(#[from] TopologyError),

    #[error("invalid lab or node name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("lab {lab} is up from another file, {}; take it down first or use another --name", file.display())]
    Occupied { lab: String, file: PathBuf },

    #[error(
        "lab {lab} could not be fully removed (its state is kept for another `down`): {failures}"
    )]
    Teardown { lab: String, failures: String },

    #[error("podlab makes network namespaces and needs root; run it as root")]
    NotRoot,

    #[error("node {node} needs {program}, which is not installed ({reason}); run scripts/setup.sh")]
    MissingProgram {
        node: String,
        program: String,
        reason: String,
    },

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },

    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },

    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },

    #[error("lab {lab} has no node `{node}` (nodes: {known})")]
    UnknownNode {
        lab: String,
        node: String,
        known: String,
    },

    #[error("lab {lab}: node {node}: {reason}")]
    Node {
        lab: String,
        node: String,
        reason: String,
    },

    #[error("lab {lab} is not up; bring it up with `podlab up FILE`")]
    NotUp { lab: String },

    #[error(
        "lab {lab} has no cluster: none of its podroute nodes binds a folder to /etc/podroute, \
         or it was brought up without the daemons' binaries"
    )]
    NoCluster { lab: String },

    #[error("lab {lab}: {reason}")]
    Cluster { lab: String, reason: String },

    #[error("lab {lab}: pod {pod} exists already (on {node}); delete it first")]
    PodExists {
        lab: String,
        pod: String,
        node: String,
    },

    #[error("lab {lab} has no pod {pod}")]
    UnknownPod { lab: String, pod: String },

    #[error("{file}: document {doc}: {reason}")]
    Document {
        file: PathBuf,
        doc: usize,
        reason: String,
    },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: String,
    },
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> LabError {
        LabError::Io {
            path: path.into(),
            reason: err.to_string(),
        }
    }
}
