// Reaching podroute-ipamd: the endpoint syntax every client accepts (a Unix
// socket path or an https:// URL; plain http is refused because a node's
// identity needs TLS) and the connection over either. Shared by the CNI
// plugin and podroute-bgpd's IPAM origination, which map the errors onto
// their own (CNI error codes, log lines).

use std::fmt;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::admin_socket::connect_unix;

/// Where ipamd is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamdEndpoint {
    /// A Unix socket (absolute path).
    Unix(PathBuf),
    /// "https://HOST:PORT", normalized (no trailing '/').
    Https { uri: String },
}

/// TLS to an https:// ipamd, the way ipamd serves it: its certificate is
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

impl IpamdEndpoint {
    /// "unix:///abs", "unix:/abs", "/abs" → Unix; "https://HOST[:PORT][/]"
    /// → Https; "http://" and anything else refused.
    pub fn parse(endpoint: &str) -> Result<IpamdEndpoint, EndpointError> {
        if endpoint.is_empty() {
            return Err(EndpointError::Empty);
        }
        let unix_path = strip_prefix_ignore_case(endpoint, "unix://")
            .or_else(|| strip_prefix_ignore_case(endpoint, "unix:"))
            .or_else(|| endpoint.starts_with('/').then_some(endpoint));
        if let Some(path) = unix_path {
            return if path.starts_with('/') {
                Ok(IpamdEndpoint::Unix(PathBuf::from(path)))
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
                Ok(IpamdEndpoint::Https {
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

impl fmt::Display for IpamdEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpamdEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            IpamdEndpoint::Https { uri } => f.write_str(uri),
        }
    }
}

/// Connects to ipamd (no deadline of its own: callers bound it).
pub async fn connect(
    endpoint: &IpamdEndpoint,
    tls: Option<&TlsFiles>,
) -> Result<Channel, ConnectError> {
    match endpoint {
        IpamdEndpoint::Unix(path) => {
            connect_unix(path)
                .await
                .map_err(|e| ConnectError::Unreachable {
                    endpoint: endpoint.to_string(),
                    reason: error_chain(&e),
                })
        }
        IpamdEndpoint::Https { uri } => connect_https(uri, tls).await,
    }
}

async fn connect_https(uri: &str, tls_files: Option<&TlsFiles>) -> Result<Channel, ConnectError> {
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
    let invalid = |e: &dyn fmt::Display| ConnectError::Invalid {
        uri: uri.to_owned(),
        reason: e.to_string(),
    };
    Channel::from_shared(uri.to_owned())
        .map_err(|e| invalid(&e))?
        .tls_config(tls)
        .map_err(|e| invalid(&e))?
        .connect()
        .await
        .map_err(|e| ConnectError::Unreachable {
            endpoint: uri.to_owned(),
            reason: error_chain(&e),
        })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::TlsFile {
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
