// Reaching a podroute daemon's gRPC API: the endpoint syntax every client
// accepts (a Unix socket path or an https:// URL; plain http is refused
// because a node's identity and the admin APIs need TLS off the node) and
// the connection over either. Written for podroute-ipamd's clients (the CNI
// plugin and podroute-bgpd's IPAM origination, which map `ConnectError` onto
// their own: CNI error codes, log lines); podctl reaches all three daemons
// with `connect_channel`, whose errors keep their sources so it can tell a
// refused port from a TLS problem (`tls_problem`, `io_error_kind`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tokio_rustls::rustls;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::admin_socket::{AdminSocketError, connect_unix};

/// Where a daemon's gRPC API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (absolute path).
    Unix(PathBuf),
    /// "https://HOST:PORT", normalized (no trailing '/').
    Https { uri: String },
}

/// ipamd's endpoint: the name its clients have always used.
pub type IpamdEndpoint = Endpoint;

/// TLS to an https:// daemon, the way ipamd and the admin listeners serve it: its certificate is
/// checked against `ca`; a client certificate is presented when given (a
/// node's certificate, CN system:node:NAME, limits the client to its node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub identity: Option<ClientIdentity>,
}

/// Client certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why an endpoint text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("empty")]
    Empty,
    #[error("plain http is refused, use https:// with TLS files or a unix socket")]
    PlainHttp,
    #[error("{0}")]
    Bad(&'static str),
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file cannot be read (a configuration error, not transient).
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The https:// URI or TLS settings are refused by the transport.
    #[error("{uri:?}: {reason}")]
    Invalid { uri: String, reason: String },
    /// ipamd did not answer (not running, refused, TLS handshake failed).
    #[error("podroute-ipamd at {endpoint} is not answering: {reason}")]
    Unreachable { endpoint: String, reason: String },
}

/// Why `connect_channel` failed, with the transport's error kept whole so a
/// caller can diagnose it.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The Unix socket could not be reached (`AdminSocketError::io_error_kind`
    /// tells missing from stale from permission denied).
    #[error(transparent)]
    Unix(AdminSocketError),
    /// A TLS file cannot be read.
    #[error("cannot read TLS file {}: {source}", path.display())]
    TlsFile { path: PathBuf, source: io::Error },
    /// The https:// URI or TLS settings are refused by the transport.
    #[error("{uri:?}: {reason}")]
    Invalid { uri: String, reason: String },
    /// No connection to the https:// endpoint (refused, unresolvable, TLS
    /// handshake failed: see `tls_problem` and `io_error_kind`).
    #[error("cannot connect to {uri}")]
    Https {
        uri: String,
        #[source]
        error: tonic::transport::Error,
    },
}

impl From<ChannelError> for ConnectError {
    fn from(error: ChannelError) -> Self {
        match error {
            ChannelError::Unix(e) => ConnectError::Unreachable {
                endpoint: format!("unix://{}", e.path().display()),
                reason: error_chain(&e),
            },
            ChannelError::TlsFile { path, source } => ConnectError::TlsFile { path, source },
            ChannelError::Invalid { uri, reason } => ConnectError::Invalid { uri, reason },
            ChannelError::Https { uri, error } => ConnectError::Unreachable {
                endpoint: uri,
                reason: error_chain(&error),
            },
        }
    }
}

/// What went wrong in a TLS handshake, read from an error's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsProblem {
    /// The server's certificate was refused: not signed by our CA, not for
    /// the host we dialled, expired... (rustls's words).
    ServerNotTrusted(String),
    /// The server requires a client certificate and we presented none.
    ClientCertificateRequired,
    /// The server refused our client certificate (rustls's alert).
    ClientCertificateRejected(String),
    /// The other end does not speak TLS.
    NotTls,
    /// Another TLS failure, in rustls's words.
    Other(String),
}

impl Endpoint {
    /// "unix:///abs", "unix:/abs", "/abs" → Unix; "https://HOST[:PORT][/]"
    /// → Https; "http://" and anything else refused.
    pub fn parse(endpoint: &str) -> Result<Endpoint, EndpointError> {
        if endpoint.is_empty() {
            return Err(EndpointError::Empty);
        }
        let unix_path = strip_prefix_ignore_case(endpoint, "unix://")
            .or_else(|| strip_prefix_ignore_case(endpoint, "unix:"))
            .or_else(|| endpoint.starts_with('/').then_some(endpoint));
        if let Some(path) = unix_path {
            return if path.starts_with('/') {
                Ok(Endpoint::Unix(PathBuf::from(path)))
            } else {
                Err(EndpointError::Bad(
                    "a unix socket path must be absolute (unix:///run/...)",
                ))
            };
        }
        if strip_prefix_ignore_case(endpoint, "http://").is_some() {
            return Err(EndpointError::PlainHttp);
        }
        if let Some(rest) = strip_prefix_ignore_case(endpoint, "https://") {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            let clean = !authority.is_empty()
                && !authority.chars().any(|c| {
                    matches!(c, '/' | '@' | '?' | '#') || c.is_whitespace() || c.is_control()
                });
            return if clean {
                Ok(Endpoint::Https {
                    uri: format!("https://{authority}"),
                })
            } else {
                Err(EndpointError::Bad("expected https://HOST:PORT"))
            };
        }
        Err(EndpointError::Bad(
            "expected unix:///PATH, /PATH or https://HOST:PORT",
        ))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Https { uri } => f.write_str(uri),
        }
    }
}

/// Connects to ipamd (no deadline of its own: callers bound it).
pub async fn connect(
    endpoint: &IpamdEndpoint,
    tls: Option<&TlsFiles>,
) -> Result<Channel, ConnectError> {
    connect_channel(endpoint, tls).await.map_err(Into::into)
}

/// Connects to any daemon's endpoint (no deadline of its own: callers
/// bound it). Connects eagerly, so an unreachable daemon shows here.
pub async fn connect_channel(
    endpoint: &Endpoint,
    tls: Option<&TlsFiles>,
) -> Result<Channel, ChannelError> {
    match endpoint {
        Endpoint::Unix(path) => connect_unix(path).await.map_err(ChannelError::Unix),
        Endpoint::Https { uri } => connect_https(uri, tls).await,
    }
}

/// The TLS problem behind `error`, if one is among its sources.
pub fn tls_problem(error: &(dyn std::error::Error + 'static)) -> Option<TlsProblem> {
    let errors = sources(error);
    if let Some(tls_error) = errors
        .iter()
        .find_map(|e| e.downcast_ref::<rustls::Error>())
    {
        return Some(match tls_error {
            rustls::Error::InvalidCertificate(reason) => {
                TlsProblem::ServerNotTrusted(format!("{reason:?}"))
            }
            rustls::Error::AlertReceived(alert) => alert_problem(&format!("{alert:?}")),
            rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
            other => TlsProblem::Other(other.to_string()),
        });
    }
    // An alert that arrives after the handshake (TLS 1.3 servers check the
    // client's certificate then) reaches us as rustls's words only.
    errors.iter().find_map(|e| {
        let text = e.to_string();
        let alert = text.strip_prefix("received fatal alert: ")?;
        Some(alert_problem(alert.trim()))
    })
}

/// A TLS alert the server sent, by its name in rustls (`CertificateRequired`).
fn alert_problem(alert: &str) -> TlsProblem {
    match alert {
        "CertificateRequired" => TlsProblem::ClientCertificateRequired,
        "BadCertificate"
        | "UnknownCA"
        | "CertificateUnknown"
        | "CertificateRevoked"
        | "CertificateExpired"
        | "UnsupportedCertificate"
        | "AccessDenied" => TlsProblem::ClientCertificateRejected(alert.to_owned()),
        other => TlsProblem::Other(format!("received fatal alert: {other}")),
    }
}

/// How long `probe_tls` waits for the server's first bytes after the
/// handshake: a refusal comes at once, an HTTP/2 server's SETTINGS too.
const PROBE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A TLS handshake with `uri` as `connect_channel` would make it, then a
/// read of the server's first bytes: the TLS problem, if there is one.
/// For after a failed call whose error lost its cause. With TLS 1.3 the
/// server checks our certificate after our side of the handshake is done,
/// so its refusal arrives as an alert that a gRPC call racing it may see
/// only as a cancelled request.
pub async fn probe_tls(uri: &str, tls: Option<&TlsFiles>) -> Option<TlsProblem> {
    use tokio::io::AsyncReadExt as _;
    let authority = uri.strip_prefix("https://")?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let address = if host.len() == authority.len() {
        format!("{authority}:443")
    } else {
        authority.to_owned()
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).ok()?;
    let config = probe_config(tls?).ok()?;
    let tcp = tokio::net::TcpStream::connect(address).await.ok()?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut stream = match connector.connect(name, tcp).await {
        Ok(stream) => stream,
        Err(e) => return tls_problem(&e),
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(PROBE_READ_TIMEOUT, stream.read(&mut first)).await {
        Ok(Err(e)) => tls_problem(&e),
        _ => None,
    }
}

/// The client TLS settings of `connect_https`, for `probe_tls`.
fn probe_config(files: &TlsFiles) -> Result<rustls::ClientConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&std::fs::read(&files.ca)?) {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match &files.identity {
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(&std::fs::read(&identity.cert)?)
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&std::fs::read(&identity.key)?)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The kind of the first `io::Error` among `error`'s sources, if any: how
/// a client tells a refused connection from a timeout.
pub fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<io::ErrorKind> {
    sources(error)
        .into_iter()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

/// `error` and its sources, outermost first. An `io::Error` wrapping
/// another error reports that error's source, not the error itself, so
/// the wrapped one is looked into explicitly (rustls errors hide there).
fn sources<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut found = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        found.push(current);
        next = match current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    found
}

async fn connect_https(uri: &str, tls_files: Option<&TlsFiles>) -> Result<Channel, ChannelError> {
    let mut tls = ClientTlsConfig::new();
    if let Some(files) = tls_files {
        tls = tls.ca_certificate(Certificate::from_pem(read_pem(&files.ca)?));
        if let Some(identity) = &files.identity {
            tls = tls.identity(Identity::from_pem(
                read_pem(&identity.cert)?,
                read_pem(&identity.key)?,
            ));
        }
    }
    let invalid = |e: &dyn fmt::Display| ChannelError::Invalid {
        uri: uri.to_owned(),
        reason: e.to_string(),
    };
    Channel::from_shared(uri.to_owned())
        .map_err(|e| invalid(&e))?
        .tls_config(tls)
        .map_err(|e| invalid(&e))?
        .connect()
        .await
        .map_err(|error| ChannelError::Https {
            uri: uri.to_owned(),
            error,
        })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ChannelError> {
    std::fs::read(path).map_err(|source| ChannelError::TlsFile {
        path: path.to_owned(),
        source,
    })
}

/// An error and its sources on one line: tonic's transport errors hide the
/// useful part (connection refused, certificate unknown) in the chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let unix = IpamdEndpoint::Unix("/run/podroute/ipamd.sock".into());
        for text in [
            "/run/podroute/ipamd.sock",
            "unix:///run/podroute/ipamd.sock",
            "UNIX:/run/podroute/ipamd.sock",
        ] {
            assert_eq!(IpamdEndpoint::parse(text), Ok(unix.clone()), "{text}");
        }
        assert_eq!(
            IpamdEndpoint::parse("https://ipamd:7443/"),
            Ok(IpamdEndpoint::Https {
                uri: "https://ipamd:7443".into()
            })
        );
        assert_eq!(
            IpamdEndpoint::parse("http://ipamd:7443"),
            Err(EndpointError::PlainHttp)
        );
        assert_eq!(IpamdEndpoint::parse(""), Err(EndpointError::Empty));
        assert!(IpamdEndpoint::parse("unix://run/x").is_err());
        assert!(IpamdEndpoint::parse("https://a/b").is_err());
        assert!(IpamdEndpoint::parse("ipamd:7443").is_err());
        assert_eq!(unix.to_string(), "unix:///run/podroute/ipamd.sock");
    }
}
