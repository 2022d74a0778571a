// TLS for ipamd's TCP listener (--listen): the PEM material it serves with,
// read from files (--tls-cert, --tls-key, --tls-client-ca) or bootstrapped
// in Kubernetes Secrets (--tls-secret): a CA, ipamd's server certificate,
// and a client certificate for the nodes, created on the first start and
// renewed when broken or about to expire. pki.rs issues and checks
// certificates, plan.rs decides what a Secret needs (pure, time is an
// input), secret.rs reads and writes the Secrets.

pub mod pki;
pub mod plan;
pub mod secret;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// What the TCP listener serves with (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// When set, every client must show a certificate this CA signed.
    pub client_ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct TlsFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl ServerTls {
    /// From --tls-cert, --tls-key and --tls-client-ca.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsFileError> {
        Ok(ServerTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: client_ca.map(read).transpose()?,
        })
    }

    /// tonic's server configuration (rustls).
    pub fn config(&self) -> ServerTlsConfig {
        let identity = Identity::from_pem(&self.cert_pem, &self.key_pem);
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        config
    }
}

/// Never prints the key.
impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"[elided]")
            .field("client_ca_pem", &self.client_ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError {
        path: path.to_owned(),
        source,
    })
}
