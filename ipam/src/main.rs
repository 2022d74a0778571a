// podroute-ipamd's entry point: its flags, then the shared daemon life cycle (logging,
// the admin API on its Unix socket until SIGTERM or SIGINT).

use std::process::ExitCode;

use clap::Parser;
use podroute_proto::daemon::{self, DaemonArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podroute-ipamd",
    version,
    about = "podroute's IP address management daemon"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let router = podroute_ipam::admin::router();
    daemon::run(
        "podroute-ipamd",
        podroute_proto::IPAMD_SOCKET,
        &args.daemon,
        router,
    )
    .await
}
