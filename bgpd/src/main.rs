// podroute-bgpd's entry point: read the configuration, start the kernel
// FIB and the speaker (RIB, peer sessions and listener), reload on SIGHUP or file change, and serve
// the admin API on its Unix socket until SIGTERM or SIGINT; then end every
// session with Cease / Administrative Shutdown.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use podroute_bgpd::speaker::{Speaker, SpeakerOptions};
use podroute_bgpd::{config, fib};
use podroute_proto::daemon::{self, DaemonArgs};

#[derive(Debug, Parser)]
#[command(
    name = "podroute-bgpd",
    version,
    about = "podroute's per-node BGP speaker"
)]
struct Args {
    /// BGPConfiguration and BGPPeer documents (YAML, podroute.io/v1);
    /// see bgpd/CONFIG.md. Reloaded on SIGHUP and when the file changes.
    #[arg(
        long,
        env = "PODROUTE_BGPD_CONFIG",
        default_value = "/etc/podroute/bgpd.yaml"
    )]
    config: PathBuf,
    /// This node's name, as in its Kubernetes Node (or standalone `Node`
    /// document): which mesh member, BGPPeer and IPAM blocks are ours.
    #[arg(long, env = "NODE_NAME")]
    node: Option<String>,
    /// Do not touch the kernel's routing table (as FRR's `bgpd
    /// --no_kernel`): routes are exchanged, nothing is installed, and every
    /// next hop counts as reachable.
    #[arg(long)]
    no_kernel: bool,
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    // Before the runtime's threads exist.
    podroute_bgpd::malloc::tune();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("podroute-bgpd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podroute-bgpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    daemon::init_logging(&args.daemon.log_level)?;
    let config = config::load(&args.config)?;
    let fib = if args.no_kernel {
        None
    } else {
        let fib_config = fib::FibConfig {
            table: config.bgp.kernel_table,
            ..fib::FibConfig::default()
        };
        Some(
            fib::start(fib_config)
                .await
                .context("cannot program the kernel's routes")?,
        )
    };
    // BFD runs always, so a reload can turn it on for a peer. Without
    // UDP 3784 (another BFD daemon on the host) we go on without it,
    // unless a peer asks for it now.
    let bfd = match podroute_bgpd::bfd::BfdHandle::start() {
        Ok(bfd) => Some(bfd),
        Err(e) if config.peers.values().any(|p| p.bfd.is_some()) => {
            return Err(e).context("cannot listen for BFD on UDP 3784");
        }
        Err(e) => {
            tracing::warn!(error = %e, "BFD is off: cannot listen on UDP 3784");
            None
        }
    };
    let options = SpeakerOptions {
        fib,
        bfd: bfd.clone(),
    };
    let speaker = Speaker::start_with(config, options).await?;
    let reloads = tokio::spawn(reload_loop(args.config.clone(), speaker.clone()));

    let socket = args
        .daemon
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(podroute_proto::BGPD_SOCKET));
    let served = daemon::serve_admin_until_stopped(
        "podroute-bgpd",
        &socket,
        podroute_bgpd::admin::router(speaker.clone()),
    )
    .await;
    reloads.abort();
    // BFD AdminDown first, so peers do not take our stop for a path
    // failure (RFC 5882 §3.2).
    if let Some(bfd) = &bfd {
        bfd.admin_down_all().await;
    }
    speaker.shutdown("podroute-bgpd stopping").await;
    served?;
    Ok(())
}

/// Applies each configuration change; a file that does not load is
/// refused with its reason and the running configuration stays.
async fn reload_loop(path: PathBuf, speaker: Speaker) {
    let mut changes = match config::watch(path.clone()) {
        Ok(changes) => changes,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the configuration; reloads are off");
            return;
        }
    };
    while changes.recv().await.is_some() {
        match config::load(&path) {
            Ok(new) => {
                if let Err(e) = speaker.reload(new).await {
                    tracing::error!(error = %e, "reload failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "configuration refused; keeping the running one"),
        }
    }
}
