// What every podroute daemon does the same way around its own work: set up
// logging from `--log-level`, serve its admin API on its Unix socket, stop on
// SIGTERM or SIGINT, remove the socket and say so in the log.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tonic::transport::server::Router;
use tracing_subscriber::EnvFilter;

use crate::admin_socket::{self, AdminSocketError};

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
    let stop = shutdown::stop_signal().map_err(DaemonError::Signals)?;
    let listener = admin_socket::bind_unix(socket).await?;
    tracing::info!(socket = %socket.display(), daemon, "serving admin API");
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    let serve = listener.serve(router, async move {
        let signal = stop.await;
        tracing::info!(?signal, "stopping");
        signalled.notify_one();
    });
    // Graceful shutdown waits for open connections; an idle client that
    // never closes its own (a `podctl --watch`, a stuck script) must not
    // keep the daemon from stopping.
    let grace = async {
        stopping.notified().await;
        tokio::time::sleep(ADMIN_SHUTDOWN_GRACE).await;
        tracing::info!(daemon, "admin clients still connected; stopping anyway");
    };
    tokio::select! {
        served = serve => served?,
        () = grace => {}
    }
    tracing::info!(daemon, "stopped");
    Ok(())
}
