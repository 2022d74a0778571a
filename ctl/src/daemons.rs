// Reaching the podroute daemons, on their Unix sockets or on TCP with TLS,
// with the reason in words when one cannot be reached and what to do
// about it: not running (no socket), permission denied (the socket is
// root's, mode 0600), stale socket, nothing listening on the port, TLS
// refused either way, the wrong daemon, a daemon of another version that
// does not know the call, no answer in time.

use std::io;

use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipamd_client::{
    self, ChannelError, Endpoint, TlsFiles, TlsProblem, error_chain, tls_problem,
};
use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

/// How long podctl waits for a daemon to connect and answer one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// podctl's own version, which it reports and compares.
pub const PODCTL_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Bgpd,
    Ipamd,
    Policy,
}

/// One daemon, where it is and the TLS files for an https:// endpoint:
/// what every command calls through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub daemon: Daemon,
    pub endpoint: Endpoint,
    pub tls: Option<TlsFiles>,
}

/// Why a daemon call failed, worded for the person at the terminal. `at`
/// is the socket path or the https:// URL.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error("is {daemon} running? socket {at} not found")]
    NotRunning { daemon: &'static str, at: String },
    #[error(
        "permission denied on socket {at}: admin sockets are mode 0600, run podctl as root (e.g. with sudo)"
    )]
    PermissionDenied { at: String },
    #[error(
        "socket {at} is stale: connection refused ({daemon} exited without removing it?); start {daemon} again"
    )]
    Stale { daemon: &'static str, at: String },
    #[error("is {daemon} listening on {address} ({flag})? connection refused")]
    Refused {
        daemon: &'static str,
        address: String,
        flag: &'static str,
    },
    #[error(
        "{daemon}'s certificate at {at} is not trusted ({reason}): is --tls-ca the CA that signed it, and does the certificate name the host you gave?"
    )]
    ServerNotTrusted {
        daemon: &'static str,
        at: String,
        reason: String,
    },
    #[error(
        "{daemon} at {at} requires a client certificate: give --tls-cert and --tls-key, signed by the CA of its {flag}"
    )]
    ClientCertificateRequired {
        daemon: &'static str,
        at: String,
        flag: &'static str,
    },
    #[error(
        "{daemon} at {at} refused podctl's client certificate ({alert}): it must be signed by the CA of its {flag}"
    )]
    ClientCertificateRejected {
        daemon: &'static str,
        at: String,
        alert: String,
        flag: &'static str,
    },
    #[error("{at} does not speak TLS: is it {daemon}'s TLS port ({flag})?")]
    NotTls {
        daemon: &'static str,
        at: String,
        flag: &'static str,
    },
    #[error("TLS with {daemon} at {at} failed: {reason}")]
    Tls {
        daemon: &'static str,
        at: String,
        reason: String,
    },
    #[error("cannot read TLS file {path}: {reason} (see --tls-ca, --tls-cert, --tls-key)")]
    TlsFile { path: String, reason: String },
    #[error("{} does not serve {api} ({})", describe(at), found.as_ref().map_or_else(|| "another daemon's socket?".to_string(), |f| format!("it is {f}")))]
    WrongService {
        api: &'static str,
        at: Endpoint,
        found: Option<String>,
    },
    #[error(
        "{daemon} at {at} does not know this call: podctl {PODCTL_VERSION} speaks {api}{}; check `podctl version` and upgrade the older one",
        theirs.as_ref().map_or_else(String::new, |v| format!(", it is {} {} speaking {}", v.daemon, v.version, v.api_version))
    )]
    VersionMismatch {
        daemon: &'static str,
        at: String,
        api: &'static str,
        theirs: Option<Box<VersionInfo>>,
    },
    #[error("{daemon} did not answer on {at} within {}s", CALL_TIMEOUT.as_secs())]
    Timeout { daemon: &'static str, at: String },
    #[error("{daemon} on {at} answered {:?}: {}", status.code(), status.message())]
    Rpc {
        daemon: &'static str,
        at: String,
        status: Status,
    },
    #[error("cannot reach {daemon} at {at}: {reason}")]
    Connect {
        daemon: &'static str,
        at: String,
        reason: String,
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

    /// The daemon's flag that serves its API on TCP.
    pub fn listen_flag(self) -> &'static str {
        match self {
            Daemon::Bgpd | Daemon::Policy => "--admin-listen",
            Daemon::Ipamd => "--listen",
        }
    }

    /// The daemon's flag naming the CA of its clients' certificates.
    pub fn client_ca_flag(self) -> &'static str {
        match self {
            Daemon::Bgpd | Daemon::Policy => "--admin-tls-client-ca",
            Daemon::Ipamd => "--tls-client-ca",
        }
    }
}

impl Target {
    /// Where the daemon is, as messages say it: the socket path, or the
    /// https:// URL.
    pub fn place(&self) -> String {
        place(&self.endpoint)
    }
}

/// "socket /run/podroute/bgpd.sock" or "https://node-a:9651".
fn describe(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Unix(path) => format!("socket {}", path.display()),
        Endpoint::Https { uri } => uri.clone(),
    }
}

/// The socket path alone, or the URL.
fn place(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Unix(path) => path.display().to_string(),
        Endpoint::Https { uri } => uri.clone(),
    }
}

/// Connects to `target` and runs one call on the channel, all within
/// `CALL_TIMEOUT`. A call the daemon does not know makes podctl ask which
/// daemon, and which version, answered.
pub async fn call<T, F, Fut>(target: &Target, f: F) -> Result<T, Unreachable>
where
    F: FnOnce(Channel) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let attempt = async {
        let channel = connect(target).await?;
        match f(channel.clone()).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) if unknown_call(&status) => Err(identify(target, channel).await),
            Err(status) => Err(rpc_error(target, status).await),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(Unreachable::Timeout {
                daemon: target.daemon.name(),
                at: target.place(),
            })
        })
}

/// The daemon's version over its own API.
pub async fn version(target: &Target) -> Result<VersionInfo, Unreachable> {
    let daemon = target.daemon;
    call(target, |channel| async move {
        get_version(daemon, channel).await.map(Response::new)
    })
    .await
}

async fn connect(target: &Target) -> Result<Channel, Unreachable> {
    ipamd_client::connect_channel(&target.endpoint, target.tls.as_ref())
        .await
        .map_err(|error| diagnose(target, error))
}

/// GetVersion of `daemon`'s service on `channel`.
async fn get_version(daemon: Daemon, channel: Channel) -> Result<VersionInfo, Status> {
    let request = GetVersionRequest {};
    let response = match daemon {
        Daemon::Bgpd => BgpAdminClient::new(channel).get_version(request).await,
        Daemon::Ipamd => IpamClient::new(channel).get_version(request).await,
        Daemon::Policy => PolicyAdminClient::new(channel).get_version(request).await,
    };
    response.map(Response::into_inner)
}

/// UNIMPLEMENTED with an empty message is what gRPC servers answer for a
/// service or method they do not have; a daemon's own "not yet" carries a
/// message (and is left to the command to word).
fn unknown_call(status: &Status) -> bool {
    status.code() == Code::Unimplemented && status.message().is_empty()
}

/// After an unknown call: the right daemon of another version (it answers
/// GetVersion), or another daemon altogether (then which one).
async fn identify(target: &Target, channel: Channel) -> Unreachable {
    let daemon = target.daemon;
    match get_version(daemon, channel.clone()).await {
        Ok(theirs) => Unreachable::VersionMismatch {
            daemon: daemon.name(),
            at: target.place(),
            api: daemon.api(),
            theirs: Some(Box::new(theirs)),
        },
        Err(status) if unknown_call(&status) => {
            let mut found = None;
            for other in Daemon::ALL.into_iter().filter(|d| *d != daemon) {
                if let Ok(info) = get_version(other, channel.clone()).await {
                    found = Some(format!("{} {}", info.daemon, info.version));
                    break;
                }
            }
            Unreachable::WrongService {
                api: daemon.api(),
                at: target.endpoint.clone(),
                found,
            }
        }
        // It knows the API but its GetVersion failed: say what we know.
        Err(_) => Unreachable::VersionMismatch {
            daemon: daemon.name(),
            at: target.place(),
            api: daemon.api(),
            theirs: None,
        },
    }
}

fn diagnose(target: &Target, error: ChannelError) -> Unreachable {
    let daemon = target.daemon.name();
    let at = target.place();
    match error {
        ChannelError::Unix(error) => match error.io_error_kind() {
            Some(io::ErrorKind::NotFound) => Unreachable::NotRunning { daemon, at },
            Some(io::ErrorKind::PermissionDenied) => Unreachable::PermissionDenied { at },
            Some(io::ErrorKind::ConnectionRefused) => Unreachable::Stale { daemon, at },
            _ => Unreachable::Connect {
                daemon,
                at,
                reason: error_chain(&error),
            },
        },
        ChannelError::TlsFile { path, source } => Unreachable::TlsFile {
            path: path.display().to_string(),
            reason: source.to_string(),
        },
        ChannelError::Invalid { reason, .. } => Unreachable::Connect { daemon, at, reason },
        ChannelError::Https { .. } => transport_error(target, &error),
    }
}

/// A failure of the https:// transport, at connect or during a call.
fn transport_error(target: &Target, error: &(dyn std::error::Error + 'static)) -> Unreachable {
    if let Some(problem) = tls_problem(error) {
        return tls_error(target, problem);
    }
    let d = target.daemon;
    let (daemon, at) = (d.name(), target.place());
    match ipamd_client::io_error_kind(error) {
        Some(io::ErrorKind::ConnectionRefused) => Unreachable::Refused {
            daemon,
            address: at
                .strip_prefix("https://")
                .unwrap_or(at.as_str())
                .to_owned(),
            flag: d.listen_flag(),
        },
        _ => Unreachable::Connect {
            daemon,
            at,
            reason: error_chain(error),
        },
    }
}

/// A TLS problem with `target`, worded.
fn tls_error(target: &Target, problem: TlsProblem) -> Unreachable {
    let d = target.daemon;
    let (daemon, at) = (d.name(), target.place());
    match problem {
        TlsProblem::ServerNotTrusted(reason) => {
            Unreachable::ServerNotTrusted { daemon, at, reason }
        }
        TlsProblem::ClientCertificateRequired => Unreachable::ClientCertificateRequired {
            daemon,
            at,
            flag: d.client_ca_flag(),
        },
        TlsProblem::ClientCertificateRejected(alert) => Unreachable::ClientCertificateRejected {
            daemon,
            at,
            alert,
            flag: d.client_ca_flag(),
        },
        TlsProblem::NotTls => Unreachable::NotTls {
            daemon,
            at,
            flag: d.listen_flag(),
        },
        TlsProblem::Other(reason) => Unreachable::Tls { daemon, at, reason },
    }
}

async fn rpc_error(target: &Target, status: Status) -> Unreachable {
    // A status tonic made up for a broken transport carries the transport
    // error as its source, or none when the connection died under the call
    // (Cancelled): a TLS refusal after the handshake (TLS 1.3 servers check
    // the client's certificate then) shows as either. A fresh handshake
    // tells which.
    let made_up = std::error::Error::source(&status).is_some()
        || matches!(
            status.code(),
            Code::Cancelled | Code::Unavailable | Code::Unknown
        );
    if let (Endpoint::Https { uri }, true) = (&target.endpoint, made_up) {
        let diagnosed = transport_error(target, &status);
        if !matches!(diagnosed, Unreachable::Connect { .. }) {
            return diagnosed;
        }
        if let Some(problem) = ipamd_client::probe_tls(uri, target.tls.as_ref()).await {
            return tls_error(target, problem);
        }
    }
    Unreachable::Rpc {
        daemon: target.daemon.name(),
        at: target.place(),
        status,
    }
}
