// What every podroute daemon does the same way around its own work: set up
// logging from `--log-level`, serve its admin API on its Unix socket (and,
// with `--admin-listen`, on TCP with TLS and client certificates), stop on
// SIGTERM or SIGINT, remove the socket and say so in the log.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tonic::transport::server::Router;
use tracing_subscriber::EnvFilter;

use crate::admin_socket::{
    self, AdminListener, AdminSocketError, AdminTcpError, AdminTcpListener, AdminTlsFiles,
};

/// How long a stopping daemon lets admin calls in progress finish.
const ADMIN_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
use crate::shutdown;

/// The flags every daemon takes; a daemon's own `Args` flattens them in.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Unix socket for the gRPC admin API (podctl talks to it) [default:
    /// /run/podroute/bgpd.sock, ipamd.sock or policy.sock, by daemon].
    #[arg(long)]
    pub admin_socket: Option<PathBuf>,
    /// Log filter: a level (error, warn, info, debug, trace) or a
    /// tracing-subscriber directive such as "podroute_bgpd=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format: human-readable text (coloured on a terminal), or one
    /// JSON object per line for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where to serve Prometheus /metrics, /livez and /readyz (HTTP), or
    /// "off" [default: 127.0.0.1:9641 for bgpd, 9642 ipamd, 9643 policy
    /// agent].
    #[arg(long, value_parser = parse_metrics_listen)]
    pub metrics_listen: Option<MetricsListen>,
}

/// The admin API on TCP as well, for podctl on another machine
/// (`podctl --bgpd https://HOST:PORT`): TLS only, and every client must
/// present a certificate signed by `--admin-tls-client-ca`, since the admin
/// API changes routing state. A daemon's `Args` flattens these in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminTcpArgs {
    /// Also serve the admin API on this TCP address (e.g. 0.0.0.0:9651),
    /// with TLS; needs --admin-tls-cert, --admin-tls-key and
    /// --admin-tls-client-ca (client certificates are required).
    #[arg(
        long,
        value_name = "ADDRESS:PORT",
        requires_all = ["admin_tls_cert", "admin_tls_key", "admin_tls_client_ca"]
    )]
    pub admin_listen: Option<SocketAddr>,
    /// The daemon's TLS certificate (PEM, chain first) for --admin-listen.
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM) for --admin-listen.
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    pub admin_tls_key: Option<PathBuf>,
    /// CA (PEM) that signs the admins' client certificates: a TCP client
    /// without a certificate from it is refused in the TLS handshake.
    #[arg(long, value_name = "FILE", requires = "admin_listen")]
    pub admin_tls_client_ca: Option<PathBuf>,
}

impl AdminTcpArgs {
    /// The TCP address and TLS files, or None without --admin-listen. All
    /// three files are required: there is no TCP admin API without TLS, nor
    /// without client certificates.
    pub fn listener(&self) -> Result<Option<(SocketAddr, AdminTlsFiles)>, DaemonError> {
        let Some(address) = self.admin_listen else {
            return Ok(None);
        };
        let need = |file: &Option<PathBuf>, flag: &'static str| {
            file.clone().ok_or(DaemonError::AdminTcpNeeds { flag })
        };
        Ok(Some((
            address,
            AdminTlsFiles {
                cert: need(&self.admin_tls_cert, "--admin-tls-cert")?,
                key: need(&self.admin_tls_key, "--admin-tls-key")?,
                client_ca: need(&self.admin_tls_client_ca, "--admin-tls-client-ca")?,
            },
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--metrics-listen`: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    At(std::net::SocketAddr),
}

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    if text == "off" {
        return Ok(MetricsListen::Off);
    }
    text.parse()
        .map(MetricsListen::At)
        .map_err(|_| format!("{text:?} is neither ADDRESS:PORT (e.g. 127.0.0.1:9641) nor \"off\""))
}

impl DaemonArgs {
    /// The metrics address to serve on: the flag, or localhost on
    /// `default_port`; None when turned off.
    pub fn metrics_address(&self, default_port: u16) -> Option<std::net::SocketAddr> {
        match self.metrics_listen {
            Some(MetricsListen::Off) => None,
            Some(MetricsListen::At(address)) => Some(address),
            None => Some(std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                default_port,
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid --log-level {level:?}: {reason}")]
    LogLevel { level: String, reason: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    AdminSocket(#[from] AdminSocketError),
    #[error(
        "--admin-listen needs {flag}: the admin API changes routing state, so on TCP it is served only with TLS and client certificates"
    )]
    AdminTcpNeeds { flag: &'static str },
    #[error(transparent)]
    AdminTcp(#[from] AdminTcpError),
}

/// A daemon's whole life: logging, then its admin API on `args.admin_socket`
/// (or `default_socket`) until SIGTERM or SIGINT. Startup errors go to stderr
/// with exit status 1.
pub async fn run(
    daemon: &str,
    default_socket: &str,
    args: &DaemonArgs,
    router: Router,
) -> ExitCode {
    let socket = args
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_socket));
    let result = async {
        init_logging(&args.log_level, args.log_format)?;
        serve_admin_until_stopped(daemon, &socket, router).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{daemon}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with `filter` (a level, or a tracing-subscriber directive
/// such as `podroute_bgpd=debug`): text coloured only on a terminal, or
/// JSON lines (`{"timestamp":…,"level":"INFO","fields":{"message":…},
/// "target":…}`).
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), DaemonError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| DaemonError::LogLevel {
        level: filter.to_string(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    installed.map_err(|e| DaemonError::LogLevel {
        level: filter.to_string(),
        reason: format!("logging is already set up: {e}"),
    })
}

/// Serves `router` on the admin socket `socket` until SIGTERM or SIGINT,
/// then removes the socket.
pub async fn serve_admin_until_stopped(
    daemon: &str,
    socket: &Path,
    router: Router,
) -> Result<(), DaemonError> {
    serve_admin_and_tcp_until_stopped(daemon, socket, &AdminTcpArgs::default(), router).await
}

/// Serves `router` on the admin socket `socket` and, with
/// `--admin-listen`, on TCP with TLS, until SIGTERM or SIGINT; then removes
/// the socket.
pub async fn serve_admin_and_tcp_until_stopped(
    daemon: &str,
    socket: &Path,
    tcp: &AdminTcpArgs,
    router: Router,
) -> Result<(), DaemonError> {
    let stop = shutdown::stop_signal().map_err(DaemonError::Signals)?;
    let server = AdminServer::bind(socket, tcp).await?;
    server
        .serve(daemon, router, async move {
            let signal = stop.await;
            tracing::info!(?signal, "stopping");
        })
        .await
}

/// A daemon's admin API, bound on its socket and optionally on TCP, not yet
/// serving: binding first lets a caller (a test) learn the TCP port.
#[derive(Debug)]
pub struct AdminServer {
    unix: AdminListener,
    tcp: Option<AdminTcpListener>,
}

impl AdminServer {
    /// Binds the socket (as `admin_socket::bind_unix`) and, with
    /// `--admin-listen`, the TCP address with its TLS files loaded.
    pub async fn bind(socket: &Path, tcp: &AdminTcpArgs) -> Result<AdminServer, DaemonError> {
        // The TCP settings first: a missing file is refused before the
        // socket is taken over.
        let tcp = match tcp.listener()? {
            Some((address, files)) => Some(AdminTcpListener::bind(address, &files).await?),
            None => None,
        };
        let unix = admin_socket::bind_unix(socket).await?;
        Ok(AdminServer { unix, tcp })
    }

    /// The TCP address bound, with `--admin-listen`.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(AdminTcpListener::local_addr)
    }

    /// Serves `router` on the socket and TCP until `shutdown` resolves, then
    /// removes the socket. Clients still connected get
    /// `ADMIN_SHUTDOWN_GRACE` to finish their calls.
    pub async fn serve<F>(
        self,
        daemon: &str,
        router: Router,
        shutdown: F,
    ) -> Result<(), DaemonError>
    where
        F: Future<Output = ()>,
    {
        let AdminServer { unix, tcp } = self;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            // An error means the sender is gone: stopping too.
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tracing::info!(socket = %unix.path().display(), daemon, "serving admin API");
        let on_socket = async {
            unix.serve(router.clone(), until_stopped(stopped.clone()))
                .await
                .map_err(DaemonError::from)
        };
        let on_tcp = async {
            match tcp {
                Some(tcp) => {
                    tracing::info!(address = %tcp.local_addr(), daemon, "serving admin API on TCP with TLS and client certificates");
                    tcp.serve(router.clone(), until_stopped(stopped.clone()))
                        .await
                        .map_err(DaemonError::from)
                }
                None => {
                    until_stopped(stopped.clone()).await;
                    Ok(())
                }
            }
        };
        let served = async { tokio::try_join!(on_socket, on_tcp).map(|_| ()) };
        // Graceful shutdown waits for open connections; an idle client that
        // never closes its own (a `podctl --watch`, a stuck script) must not
        // keep the daemon from stopping.
        let grace = async {
            shutdown.await;
            let _ = stop.send(true);
            tokio::time::sleep(ADMIN_SHUTDOWN_GRACE).await;
            tracing::info!(daemon, "admin clients still connected; stopping anyway");
        };
        tokio::select! {
            served = served => served?,
            () = grace => {}
        }
        tracing::info!(daemon, "stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        tcp: AdminTcpArgs,
    }

    #[test]
    fn admin_listen_requires_every_tls_file() {
        let parsed = Args::try_parse_from(["d"]).unwrap();
        assert!(parsed.tcp.listener().unwrap().is_none());

        let err = Args::try_parse_from([
            "d",
            "--admin-listen",
            "127.0.0.1:9651",
            "--admin-tls-cert",
            "c.pem",
            "--admin-tls-key",
            "k.pem",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--admin-tls-client-ca"), "{err}");

        let err = Args::try_parse_from(["d", "--admin-tls-cert", "c.pem"]).unwrap_err();
        assert!(err.to_string().contains("--admin-listen"), "{err}");

        let parsed = Args::try_parse_from([
            "d",
            "--admin-listen",
            "127.0.0.1:9651",
            "--admin-tls-cert",
            "c.pem",
            "--admin-tls-key",
            "k.pem",
            "--admin-tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        let (address, files) = parsed.tcp.listener().unwrap().unwrap();
        assert_eq!(address.port(), 9651);
        assert_eq!(files.client_ca, PathBuf::from("ca.pem"));

        // Built without clap (a daemon embedding this), the rule holds too.
        let without_ca = AdminTcpArgs {
            admin_tls_client_ca: None,
            ..parsed.tcp
        };
        let err = without_ca.listener().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--admin-listen needs --admin-tls-client-ca"),
            "{err}"
        );
    }
}
