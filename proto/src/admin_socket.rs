// The Unix socket every podroute daemon serves its gRPC admin API on, and the
// client side podctl uses to reach it. Binding is careful: it refuses to take
// over a socket a live daemon still answers on, replaces a stale socket but
// never deletes anything that is not a socket, and the socket only appears at
// its path once it is mode 0600. The daemon removes its socket when it stops.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
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
}
