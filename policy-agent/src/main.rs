// podroute-policy-agent's entry point: its flags, then the shared daemon life cycle (logging,
// the admin API on its Unix socket until SIGTERM or SIGINT).

use std::process::ExitCode;

use clap::Parser;
use podroute_proto::daemon::{self, DaemonArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podroute-policy-agent",
    version,
    about = "podroute's NetworkPolicy agent"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let router = podroute_policy::admin::router();
    daemon::run(
        "podroute-policy-agent",
        podroute_proto::POLICY_SOCKET,
        &args.daemon,
        router,
    )
    .await
}
