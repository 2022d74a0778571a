// The Unix socket every podroute daemon serves its gRPC admin API on, and the
// client side podctl uses to reach it. Binding is careful: it refuses to take
// over a socket a live daemon still answers on, replaces a stale socket but
// never deletes anything that is not a socket, and the socket only appears at
// its path once it is mode 0600. The daemon removes its socket when it stops.
// Optionally the same API on TCP (`AdminTcpListener`): TLS only, and a client
// certificate signed by the configured CA is required, since the admin API
// changes routing state and TCP has no file mode to guard it.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::transport::server::Router;
use tonic::transport::{Channel, Endpoint, Uri};

/// Mode of the admin socket: only its owner (root, for the daemons) may talk
/// to it, since the admin API can change routing state.
pub const SOCKET_MODE: u32 = 0o600;
/// The folder the socket is bound in before it is published: ours alone.
const PRIVATE_DIR_MODE: u32 = 0o700;

/// Why an admin socket could not be served or reached. Every variant names the
/// socket path.
#[derive(Debug, thiserror::Error)]
pub enum AdminSocketError {
    #[error("cannot create directory {} for admin socket: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("another daemon is listening on {}", path.display())]
    AlreadyListening { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot check existing admin socket {}: {source}", path.display())]
    Inspect { path: PathBuf, source: io::Error },
    #[error("cannot remove stale admin socket {}: {source}", path.display())]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot bind admin socket {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set mode 0600 on admin socket {}: {source}", path.display())]
    Permissions { path: PathBuf, source: io::Error },
    #[error("serving the admin API on {} failed: {source}", path.display())]
    Serve {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to admin socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
}

impl AdminSocketError {
    /// The socket path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::CreateDir { path, .. }
            | Self::AlreadyListening { path }
            | Self::NotASocket { path }
            | Self::Inspect { path, .. }
            | Self::RemoveStale { path, .. }
            | Self::Bind { path, .. }
            | Self::Permissions { path, .. }
            | Self::Serve { path, .. }
            | Self::Connect { path, .. } => path,
        }
    }

    /// The kind of the first `io::Error` in the source chain, if any: how a
    /// client tells "no such socket" from "permission denied" from "stale
    /// socket" (connection refused).
    pub fn io_error_kind(&self) -> Option<io::ErrorKind> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = current {
            if let Some(io_error) = error.downcast_ref::<io::Error>() {
                return Some(io_error.kind());
            }
            current = error.source();
        }
        None
    }
}

/// A bound admin socket, ready to serve. The socket file is removed when this
/// value (or the `serve` future that consumed it) is dropped, provided the
/// path still holds our socket.
#[derive(Debug)]
pub struct AdminListener {
    listener: UnixListener,
    guard: SocketFileGuard,
}

impl AdminListener {
    pub fn path(&self) -> &Path {
        &self.guard.path
    }

    /// Serves `router` until `shutdown` resolves and open connections close,
    /// then removes the socket file.
    pub async fn serve<F>(self, router: Router, shutdown: F) -> Result<(), AdminSocketError>
    where
        F: Future<Output = ()>,
    {
        let AdminListener { listener, guard } = self;
        let incoming = UnixListenerStream::new(listener);
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|source| AdminSocketError::Serve {
                path: guard.path.clone(),
                source,
            })
        // `guard` drops here and removes the socket file.
    }
}

/// Binds the admin socket at `path`: creates the parent directory, refuses if
/// a live daemon answers there or if a non-socket file is in the way, removes
/// a stale socket, and publishes the new socket at `path` already mode 0600.
pub async fn bind_unix(path: impl AsRef<Path>) -> Result<AdminListener, AdminSocketError> {
    let path = path.as_ref();
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|source| AdminSocketError::CreateDir {
        path: path.to_path_buf(),
        source,
    })?;

    if existing_socket(path)? {
        match UnixStream::connect(path).await {
            Ok(_) => {
                return Err(AdminSocketError::AlreadyListening {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => remove_socket(path)?,
            Err(source) => {
                return Err(AdminSocketError::Inspect {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }

    // Bind inside a private 0700 folder, set the mode, then hard-link the
    // socket to its real name: no client can reach it before its mode is
    // 0600 (whatever the umask), and link(2) fails rather than replacing a
    // socket another daemon bound in the meantime.
    let private = temp_dir(path);
    if private.exists() {
        let _ = std::fs::remove_dir_all(&private);
    }
    std::fs::DirBuilder::new()
        .mode(PRIVATE_DIR_MODE)
        .create(&private)
        .map_err(|source| AdminSocketError::CreateDir {
            path: private.clone(),
            source,
        })?;
    let tmp = private.join("sock");
    let bound = UnixListener::bind(&tmp).map_err(|source| AdminSocketError::Bind {
        path: tmp.clone(),
        source,
    });
    let published = bound.and_then(|listener| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(
            |source| AdminSocketError::Permissions {
                path: tmp.clone(),
                source,
            },
        )?;
        std::fs::hard_link(&tmp, path).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => AdminSocketError::AlreadyListening {
                path: path.to_path_buf(),
            },
            _ => AdminSocketError::Bind {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(listener)
    });
    // The private folder has served its purpose either way; a leftover is
    // harmless and the next bind removes it.
    let _ = std::fs::remove_dir_all(&private);
    let listener = published?;

    let meta = std::fs::symlink_metadata(path).map_err(|source| AdminSocketError::Inspect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(AdminListener {
        listener,
        guard: SocketFileGuard {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// An admin API served on its socket by a background task, until `stop`:
/// how tests and embedding tools run a daemon's service in-process.
#[derive(Debug)]
pub struct BackgroundServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AdminSocketError>>,
}

impl BackgroundServer {
    /// Binds `path` (as `bind_unix`) and serves `router` on it.
    pub async fn start(path: impl AsRef<Path>, router: Router) -> Result<Self, AdminSocketError> {
        let listener = bind_unix(path).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(listener.serve(router, async {
            let _ = stopped.await;
        }));
        Ok(BackgroundServer { stop, task })
    }

    /// Stops serving, removes the socket and returns how serving ended.
    pub async fn stop(self) -> Result<(), AdminSocketError> {
        // Serving may already have ended on its own; its result says how.
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            // The task is never aborted, so this is a panic: pass it on.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// `bind_unix` then `AdminListener::serve`.
pub async fn serve_unix<F>(
    path: impl AsRef<Path>,
    router: Router,
    shutdown: F,
) -> Result<(), AdminSocketError>
where
    F: Future<Output = ()>,
{
    bind_unix(path).await?.serve(router, shutdown).await
}

/// The PEM files of the admin API's TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTlsFiles {
    /// The daemon's certificate (chain), then its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signs the clients' certificates; every client needs one.
    pub client_ca: PathBuf,
}

/// Why the admin API's TCP listener could not be set up or serve.
#[derive(Debug, thiserror::Error)]
pub enum AdminTcpError {
    #[error("cannot read {flag} {}: {source}", path.display())]
    ReadFile {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{flag} {}: {reason}", path.display())]
    BadFile {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS for the admin API: {0}")]
    Tls(String),
    #[error("cannot listen on {address} for the admin API: {source}")]
    Bind {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("serving the admin API on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        source: tonic::transport::Error,
    },
}

/// How long a TCP client gets to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// TLS handshakes in progress at once; a connection beyond is closed at
/// once. Anyone who can reach the port can open connections: without a
/// bound, silent ones would use up the daemon's file descriptors, which
/// its BGP sessions and netlink sockets need too.
const MAX_HANDSHAKES: usize = 64;
/// Handshaken connections waiting for the gRPC server to take them.
const ACCEPTED_QUEUE: usize = 16;
/// Pause after a failed accept (out of file descriptors): retrying at once
/// would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The admin API's TCP listener, bound and with its TLS settings loaded.
pub struct AdminTcpListener {
    listener: TcpListener,
    address: SocketAddr,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for AdminTcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTcpListener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl AdminTcpListener {
    /// Loads the TLS files and binds `address` (port 0: any free port, see
    /// `local_addr`).
    pub async fn bind(address: SocketAddr, tls: &AdminTlsFiles) -> Result<Self, AdminTcpError> {
        let config = server_tls_config(tls)?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| AdminTcpError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| AdminTcpError::Bind { address, source })?;
        Ok(AdminTcpListener {
            listener,
            address,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves `router` to clients that complete the TLS handshake with a
    /// valid client certificate, until `shutdown` resolves and open
    /// connections close. Failed handshakes are logged and do not stop
    /// anything.
    pub async fn serve<F>(self, router: Router, shutdown: F) -> Result<(), AdminTcpError>
    where
        F: Future<Output = ()>,
    {
        let AdminTcpListener {
            listener,
            address,
            acceptor,
        } = self;
        let (accepted, incoming) = mpsc::channel::<TlsStream<TcpStream>>(ACCEPTED_QUEUE);
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        // Handshakes run in their own tasks so a slow or silent client does
        // not hold up the next one.
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, client) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%address, %error, "admin API: accept failed");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::debug!(%client, "admin API: too many TLS handshakes at once; closed");
                    continue;
                };
                let (acceptor, accepted) = (acceptor.clone(), accepted.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    // Refusals are debug: whoever reaches the port can make
                    // as many as they like.
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = accepted.send(tls).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%client, %error, "admin API: TLS handshake refused");
                        }
                        Err(_) => {
                            tracing::debug!(%client, "admin API: TLS handshake timed out");
                        }
                    }
                });
            }
        });
        let incoming = ReceiverStream::new(incoming).map(Ok::<_, io::Error>);
        let served = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|source| AdminTcpError::Serve { address, source });
        accepting.abort();
        served
    }
}

/// TLS 1.2/1.3 with our certificate, HTTP/2 by ALPN (gRPC clients insist),
/// and client certificates verified against the client CA and required.
fn server_tls_config(tls: &AdminTlsFiles) -> Result<rustls::ServerConfig, AdminTcpError> {
    let read = |flag: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| AdminTcpError::ReadFile {
            flag,
            path: path.to_path_buf(),
            source,
        })
    };
    let bad = |flag: &'static str, path: &Path, reason: String| AdminTcpError::BadFile {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let certificates = |flag: &'static str, path: &Path| {
        let pem = read(flag, path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(flag, path, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad(flag, path, "holds no certificate".into()));
        }
        Ok(certs)
    };

    let chain = certificates("--admin-tls-cert", &tls.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read("--admin-tls-key", &tls.key)?)
        .map_err(|e| bad("--admin-tls-key", &tls.key, format!("no private key: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates("--admin-tls-client-ca", &tls.client_ca)? {
        roots.add(ca).map_err(|e| {
            bad(
                "--admin-tls-client-ca",
                &tls.client_ca,
                format!("not a CA certificate: {e}"),
            )
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| AdminTcpError::Tls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdminTcpError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad("--admin-tls-cert", &tls.cert, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Connects a gRPC channel to the admin socket at `path`. Connects eagerly, so
/// a missing socket, a permission problem or a stale socket shows up here (see
/// `AdminSocketError::io_error_kind`).
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Channel, AdminSocketError> {
    let path = path.as_ref().to_path_buf();
    let connector_path = path.clone();
    // The URI only satisfies the HTTP/2 layer; the connector below ignores it.
    Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = connector_path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|source| AdminSocketError::Connect { path, source })
}

/// Removes the socket file on drop if `path` still is the socket we bound
/// (same device and inode), so we never delete a successor's socket.
#[derive(Debug)]
struct SocketFileGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFileGuard {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a socket exists at `path`: `Ok(false)` when nothing is there, an
/// error when something other than a socket is.
fn existing_socket(path: &Path) -> Result<bool, AdminSocketError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(true),
        Ok(_) => Err(AdminSocketError::NotASocket {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(AdminSocketError::Inspect {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn remove_socket(path: &Path) -> Result<(), AdminSocketError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AdminSocketError::RemoveStale {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `/dir/.name.<pid>.tmp` next to `path`.
/// The private folder the socket is bound in before it is published.
fn temp_dir(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "admin.sock".to_owned());
    path.with_file_name(format!(".{name}.{}.d", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use tonic::transport::Server;
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::bgpd::v1::bgp_admin_client::BgpAdminClient;
    use crate::bgpd::v1::bgp_admin_server::{BgpAdmin, BgpAdminServer};
    use crate::bgpd::v1::{
        GetPeerRequest, ListPeersRequest, ListPeersResponse, ListRoutesRequest, ListRoutesResponse,
        Peer,
    };
    use crate::common::v1::{GetVersionRequest, VersionInfo};

    struct TestAdmin;

    #[tonic::async_trait]
    impl BgpAdmin for TestAdmin {
        async fn get_version(
            &self,
            _: Request<GetVersionRequest>,
        ) -> Result<Response<VersionInfo>, Status> {
            Ok(Response::new(crate::version_info(
                "test-daemon",
                "1.2.3",
                crate::BGPD_API,
            )))
        }
        async fn list_peers(
            &self,
            _: Request<ListPeersRequest>,
        ) -> Result<Response<ListPeersResponse>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn get_peer(&self, _: Request<GetPeerRequest>) -> Result<Response<Peer>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn list_routes(
            &self,
            _: Request<ListRoutesRequest>,
        ) -> Result<Response<ListRoutesResponse>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn get_status(
            &self,
            _: Request<crate::common::v1::GetStatusRequest>,
        ) -> Result<Response<crate::bgpd::v1::BgpStatus>, Status> {
            Err(Status::unimplemented("test"))
        }
    }

    fn router() -> Router {
        Server::builder().add_service(BgpAdminServer::new(TestAdmin))
    }

    async fn start(path: &Path) -> BackgroundServer {
        BackgroundServer::start(path, router()).await.unwrap()
    }

    async fn version_over(path: &Path) -> VersionInfo {
        let channel = connect_unix(path).await.unwrap();
        let mut client = BgpAdminClient::new(channel);
        client
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    #[tokio::test]
    async fn round_trip_creates_parent_and_removes_socket_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/podroute/test.sock");
        let running = start(&path).await;

        let info = version_over(&path).await;
        assert_eq!(info.daemon, "test-daemon");
        assert_eq!(info.version, "1.2.3");
        assert_eq!(info.api_version, "podroute.bgpd.v1");

        running.stop().await.unwrap();
        assert!(!path.exists(), "socket file left behind after shutdown");
        // No temporary file left next to it either.
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(leftovers.is_empty(), "left in socket dir: {leftovers:?}");
    }

    #[tokio::test]
    async fn socket_mode_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        let running = start(&path).await;
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        running.stop().await.unwrap();
    }

    #[tokio::test]
    async fn stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        // A socket nobody listens on any more: what a crashed daemon leaves.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_socket()
        );

        let running = start(&path).await;
        assert_eq!(version_over(&path).await.daemon, "test-daemon");
        running.stop().await.unwrap();
    }

    #[tokio::test]
    async fn regular_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        std::fs::write(&path, "not a socket").unwrap();

        let err = bind_unix(&path).await.unwrap_err();
        assert!(
            matches!(err, AdminSocketError::NotASocket { .. }),
            "{err:?}"
        );
        assert_eq!(err.path(), path);
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    }

    #[tokio::test]
    async fn second_serve_on_live_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.sock");
        let running = start(&path).await;

        let err = bind_unix(&path).await.unwrap_err();
        assert!(
            matches!(err, AdminSocketError::AlreadyListening { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("another daemon is listening on {}", path.display())
        );
        // The first daemon is untouched and still answers.
        assert_eq!(version_over(&path).await.daemon, "test-daemon");
        running.stop().await.unwrap();
    }

    #[tokio::test]
    async fn connect_errors_tell_missing_from_stale() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.sock");
        let err = connect_unix(&missing).await.unwrap_err();
        assert_eq!(
            err.io_error_kind(),
            Some(io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert_eq!(err.path(), missing);

        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let err = connect_unix(&stale).await.unwrap_err();
        assert_eq!(
            err.io_error_kind(),
            Some(io::ErrorKind::ConnectionRefused),
            "{err:?}"
        );
    }

    /// A CA and the certificates it signs, for the TCP listener's tests.
    struct Pki {
        ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = rcgen::KeyPair::generate().unwrap();
            Pki {
                ca: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
            }
        }

        /// Writes the CA and a certificate plus key for `cn` into `dir`;
        /// returns (ca, cert, key) paths.
        fn issue(&self, dir: &Path, cn: &str, server: bool) -> (PathBuf, PathBuf, PathBuf) {
            let names = if server {
                vec!["127.0.0.1".to_owned()]
            } else {
                Vec::new()
            };
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params.extended_key_usages = vec![if server {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            }];
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.ca).unwrap();
            let write = |name: String, text: String| {
                let path = dir.join(name);
                std::fs::write(&path, text).unwrap();
                path
            };
            (
                write(format!("{cn}-ca.pem"), self.ca.pem()),
                write(format!("{cn}.pem"), cert.pem()),
                write(format!("{cn}.key"), key.serialize_pem()),
            )
        }
    }

    /// GetVersion over TLS to `port`, or the error that stopped it (at
    /// connect or at the call, wherever the transport reported it).
    async fn version_over_tls(
        port: u16,
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> Result<VersionInfo, Box<dyn std::error::Error + Send + Sync>> {
        use crate::ipamd_client::{ClientIdentity, Endpoint, TlsFiles, connect_channel};
        let tls = TlsFiles {
            ca: ca.to_path_buf(),
            identity: identity.map(|(cert, key)| ClientIdentity {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }),
        };
        let endpoint = Endpoint::Https {
            uri: format!("https://127.0.0.1:{port}"),
        };
        let channel = connect_channel(&endpoint, Some(&tls)).await?;
        Ok(BgpAdminClient::new(channel)
            .get_version(GetVersionRequest {})
            .await?
            .into_inner())
    }

    #[tokio::test]
    async fn tcp_serves_only_clients_with_a_certificate_from_the_ca() {
        use crate::ipamd_client::{TlsProblem, tls_problem};
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("admin CA");
        let (ca, server_cert, server_key) = pki.issue(dir.path(), "podroute-bgpd", true);
        let (_, admin_cert, admin_key) = pki.issue(dir.path(), "admin", false);
        let stranger = Pki::new("another CA");
        let (other_ca, stranger_cert, stranger_key) = stranger.issue(dir.path(), "stranger", false);

        let files = AdminTlsFiles {
            cert: server_cert,
            key: server_key,
            client_ca: ca.clone(),
        };
        let listener = AdminTcpListener::bind("127.0.0.1:0".parse().unwrap(), &files)
            .await
            .unwrap();
        let port = listener.local_addr().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(listener.serve(router(), async {
            let _ = stopped.await;
        }));

        let info = version_over_tls(port, &ca, Some((&admin_cert, &admin_key)))
            .await
            .unwrap();
        assert_eq!(info.daemon, "test-daemon");

        // A refused call fails for certain; its error names the TLS
        // problem, unless the connection died under the call first (TLS
        // 1.3 refuses client certificates after the client's handshake):
        // then a probing handshake names it.
        use crate::ipamd_client::{ClientIdentity, TlsFiles, probe_tls};
        let uri = format!("https://127.0.0.1:{port}");
        let files = |ca: &Path, identity: Option<(&Path, &Path)>| TlsFiles {
            ca: ca.to_path_buf(),
            identity: identity.map(|(cert, key)| ClientIdentity {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }),
        };
        let cases = [
            (files(&ca, None), "no client certificate"),
            (
                files(&other_ca, Some((&admin_cert, &admin_key))),
                "wrong CA",
            ),
            (
                files(&ca, Some((&stranger_cert, &stranger_key))),
                "foreign certificate",
            ),
        ];
        let mut problems = Vec::new();
        for (tls, case) in &cases {
            let identity = tls
                .identity
                .as_ref()
                .map(|i| (i.cert.as_path(), i.key.as_path()));
            let error = version_over_tls(port, &tls.ca, identity)
                .await
                .expect_err(case);
            let from_error = tls_problem(&*error);
            let probed = probe_tls(&uri, Some(tls)).await;
            if let Some(named) = &from_error {
                assert_eq!(Some(named), probed.as_ref(), "{case}");
            }
            problems.push(probed.unwrap_or_else(|| panic!("{case}: no TLS problem found")));
        }
        assert_eq!(problems[0], TlsProblem::ClientCertificateRequired);
        assert!(
            matches!(&problems[1], TlsProblem::ServerNotTrusted(why) if why.contains("UnknownIssuer")),
            "{:?}",
            problems[1]
        );
        assert!(
            matches!(problems[2], TlsProblem::ClientCertificateRejected(_)),
            "{:?}",
            problems[2]
        );
        // A client the server takes has no problem to find.
        assert_eq!(
            probe_tls(&uri, Some(&files(&ca, Some((&admin_cert, &admin_key))))).await,
            None
        );

        // The listener survived every refused handshake.
        let info = version_over_tls(port, &ca, Some((&admin_cert, &admin_key)))
            .await
            .unwrap();
        assert_eq!(info.version, "1.2.3");

        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn tcp_tls_files_are_checked_before_binding() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("admin CA");
        let (ca, cert, key) = pki.issue(dir.path(), "podroute-bgpd", true);
        let address: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();

        let missing = AdminTlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: dir.path().join("nope.pem"),
        };
        let err = AdminTcpListener::bind(address, &missing).await.unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot read --admin-tls-client-ca {}",
                dir.path().join("nope.pem").display()
            )),
            "{err}"
        );

        let swapped = AdminTlsFiles {
            cert: key.clone(),
            key: cert.clone(),
            client_ca: ca.clone(),
        };
        let err = AdminTcpListener::bind(address, &swapped).await.unwrap_err();
        assert!(err.to_string().starts_with("--admin-tls-cert"), "{err}");
    }
}
