// podroute-policy-agent's entry point: flags, then the shared daemon life cycle (logging, the
// admin API on its Unix socket until SIGTERM or SIGINT). Startup errors go to
// stderr with exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use podroute_proto::daemon;

#[derive(Debug, Parser)]
#[command(
    name = "podroute-policy-agent",
    version,
    about = "podroute's NetworkPolicy agent"
)]
struct Args {
    /// Unix socket for the gRPC admin API (podctl talks to it).
    #[arg(long, default_value = podroute_proto::POLICY_SOCKET)]
    admin_socket: PathBuf,
    /// Log filter: a level (error, warn, info, debug, trace) or a
    /// tracing-subscriber directive such as "podroute_policy=debug".
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = async {
        daemon::init_logging(&args.log_level)?;
        daemon::serve_admin_until_stopped(
            "podroute-policy-agent",
            &args.admin_socket,
            podroute_policy::admin::router(),
        )
        .await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podroute-policy-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
