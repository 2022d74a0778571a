// podroute-bgpd's entry point: its flags, then the shared daemon life cycle (logging,
// the admin API on its Unix socket until SIGTERM or SIGINT).

use std::process::ExitCode;

use clap::Parser;
use podroute_proto::daemon::{self, DaemonArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podroute-bgpd",
    version,
    about = "podroute's per-node BGP speaker"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let router = podroute_bgpd::admin::router();
    daemon::run(
        "podroute-bgpd",
        podroute_proto::BGPD_SOCKET,
        &args.daemon,
        router,
    )
    .await
}
