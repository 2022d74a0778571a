// Reaching the podroute daemons over their admin sockets, with the reason in
// words when one cannot be reached: not running (no socket), permission
// denied (the socket is root's, mode 0600), stale socket, wrong daemon,
// no answer in time.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use podroute_proto::admin_socket::{AdminSocketError, connect_unix};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

/// How long podctl waits for a daemon to connect and answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Bgpd,
    Ipamd,
    Policy,
}

/// Why a daemon call failed, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error("is {daemon} running? socket {} not found", path.display())]
    NotRunning { daemon: &'static str, path: PathBuf },
    #[error(
        "permission denied on socket {}: admin sockets are mode 0600, run podctl as root (e.g. with sudo)",
        path.display()
    )]
    PermissionDenied { path: PathBuf },
    #[error(
        "socket {} is stale: connection refused ({daemon} exited without removing it?)",
        path.display()
    )]
    Stale { daemon: &'static str, path: PathBuf },
    #[error("socket {} does not serve {api} (another daemon's socket?)", path.display())]
    WrongService { api: &'static str, path: PathBuf },
    #[error("{daemon} did not answer on {} within {}s", path.display(), CALL_TIMEOUT.as_secs())]
    Timeout { daemon: &'static str, path: PathBuf },
    #[error("{daemon} on {} answered {:?}: {}", path.display(), status.code(), status.message())]
    Rpc {
        daemon: &'static str,
        path: PathBuf,
        status: Status,
    },
    #[error("cannot reach {daemon}: {source}")]
    Connect {
        daemon: &'static str,
        source: AdminSocketError,
    },
}

impl Daemon {
    pub const ALL: [Daemon; 3] = [Daemon::Bgpd, Daemon::Ipamd, Daemon::Policy];

    /// The daemon's binary name.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Bgpd => "podroute-bgpd",
            Daemon::Ipamd => "podroute-ipamd",
            Daemon::Policy => "podroute-policy-agent",
        }
    }

    /// The protobuf package its admin API is.
    pub fn api(self) -> &'static str {
        match self {
            Daemon::Bgpd => podroute_proto::BGPD_API,
            Daemon::Ipamd => podroute_proto::IPAM_API,
            Daemon::Policy => podroute_proto::POLICY_API,
        }
    }
}

/// Connects to `daemon` at `path` and runs one call on the channel, all
/// within `CALL_TIMEOUT`.
pub async fn call<T, F, Fut>(daemon: Daemon, path: &Path, f: F) -> Result<T, Unreachable>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let attempt = async {
        let channel = connect_unix(path)
            .await
            .map_err(|error| diagnose(daemon, error))?;
        f(channel)
            .await
            .map(Response::into_inner)
            .map_err(|status| rpc_error(daemon, path, status))
    };
    tokio::time::timeout(CALL_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(Unreachable::Timeout {
                daemon: daemon.name(),
                path: path.to_path_buf(),
            })
        })
}

fn diagnose(daemon: Daemon, error: AdminSocketError) -> Unreachable {
    let path = error.path().to_path_buf();
    match error.io_error_kind() {
        Some(io::ErrorKind::NotFound) => Unreachable::NotRunning {
            daemon: daemon.name(),
            path,
        },
        Some(io::ErrorKind::PermissionDenied) => Unreachable::PermissionDenied { path },
        Some(io::ErrorKind::ConnectionRefused) => Unreachable::Stale {
            daemon: daemon.name(),
            path,
        },
        _ => Unreachable::Connect {
            daemon: daemon.name(),
            source: error,
        },
    }
}

fn rpc_error(daemon: Daemon, path: &Path, status: Status) -> Unreachable {
    // tonic answers UNIMPLEMENTED with an empty message when the service
    // itself is unknown; a daemon's own "not yet" carries a message.
    if status.code() == Code::Unimplemented && status.message().is_empty() {
        return Unreachable::WrongService {
            api: daemon.api(),
            path: path.to_path_buf(),
        };
    }
    Unreachable::Rpc {
        daemon: daemon.name(),
        path: path.to_path_buf(),
        status,
    }
}
