// podroute-policy-agent's entry point: flags, the source of the cluster view
// (a manifests folder, or the Kubernetes API), the reconcile loop that
// programs iptables and ipsets, /metrics /livez /readyz on a localhost port,
// and the admin API on its Unix socket until SIGTERM or SIGINT. Stopping leaves the rules in force (a restart must
// not open a window); `--cleanup` removes everything of ours and exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use podroute_policy::agent::{self, AgentConfig};
use podroute_policy::apply::Applier;
use podroute_policy::apply::runner::Runner;
use podroute_policy::observe::{LoopStats, Observer};
use podroute_policy::render::RenderOptions;
use podroute_policy::{admin, source};
use podroute_proto::daemon::{self, AdminTcpArgs, DaemonArgs};
use podroute_proto::observe::{POLICY_METRICS_PORT, Uptime};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "podroute-policy-agent",
    version,
    about = "podroute's NetworkPolicy agent: iptables and ipset on this node"
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(flatten)]
    admin_tcp: AdminTcpArgs,
    /// This node's name, as pods' spec.nodeName gives it.
    #[arg(long, env = "NODE_NAME", required_unless_present = "cleanup")]
    node: Option<String>,
    /// Read Namespaces, Pods and NetworkPolicies from this YAML file or
    /// folder (reread on change) instead of the Kubernetes API.
    #[arg(long, conflicts_with = "kubeconfig")]
    manifests: Option<PathBuf>,
    /// Kubeconfig for the Kubernetes API; without it and without
    /// --manifests, the in-cluster service account (or $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Seconds between full resyncs, which read the kernel back and heal
    /// what others changed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    resync_interval: u64,
    /// The packet mark bit policy chains set when a rule allows (hex or
    /// decimal; a single bit other programs do not use).
    #[arg(long, default_value = "0x40000", value_parser = parse_mark)]
    allow_mark: u32,
    /// Remove every chain, hook and ipset of ours, then exit.
    #[arg(long)]
    cleanup: bool,
}

fn parse_mark(text: &str) -> Result<u32, String> {
    let value = match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|e| format!("{text:?}: {e}"))?;
    if value.is_power_of_two() {
        Ok(value)
    } else {
        Err(format!("{text:?} is not a single bit"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = daemon::init_logging(&args.daemon.log_level, args.daemon.log_format) {
        eprintln!("podroute-policy-agent: {e}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podroute-policy-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let uptime = Arc::new(Uptime::new());
    if args.cleanup {
        let report = tokio::task::spawn_blocking(|| Applier::new(Runner::host()).remove_all())
            .await
            .context("the cleanup task failed")?
            .context("cannot remove podroute's chains and ipsets")?;
        tracing::info!(
            chains = report.chains_deleted,
            sets = report.sets_destroyed,
            "removed podroute's chains, hooks and ipsets"
        );
        return Ok(());
    }
    let node = args.node.clone().context("--node is required")?;
    let source = match (&args.manifests, &args.kubeconfig) {
        (Some(path), _) => format!("manifests {}", path.display()),
        (None, Some(kubeconfig)) => format!("kubernetes (kubeconfig {})", kubeconfig.display()),
        (None, None) => "kubernetes".to_string(),
    };
    let (view_tx, view_rx) = watch::channel(None);
    let stats = Arc::new(LoopStats::new());
    let observer = Arc::new(Observer::new(
        node.clone(),
        source,
        view_rx,
        stats.clone(),
        uptime.clone(),
        Runner::host(),
    ));
    // Before anything else starts: a port taken is a clear error at once.
    if let Some(address) = args.daemon.metrics_address(POLICY_METRICS_PORT) {
        podroute_proto::observe::spawn(address, observer.clone(), &uptime).await?;
    }
    // When pods' drops were last seen, known without a scrape.
    tokio::spawn(observer.poll_drops());

    let (snapshots_tx, snapshots_rx) = watch::channel(None);
    match &args.manifests {
        Some(path) => {
            let path = path.clone();
            tokio::spawn(async move {
                if let Err(e) = source::manifests::run(path.clone(), snapshots_tx).await {
                    tracing::error!(path = %path.display(), "cannot watch the manifests: {e}");
                }
            });
        }
        None => {
            let client = source::kube::client(args.kubeconfig.as_deref())
                .await
                .context("cannot reach the Kubernetes API")?;
            tokio::spawn(source::kube::run(client, snapshots_tx));
        }
    }
    let config = AgentConfig {
        node,
        resync_interval: Duration::from_secs(args.resync_interval),
        render: RenderOptions {
            allow_mark: args.allow_mark,
        },
        runner: Runner::host(),
    };
    let reconcile = tokio::spawn(agent::run(config, snapshots_rx, view_tx, stats));

    let socket = args
        .daemon
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(podroute_proto::POLICY_SOCKET));
    let router = admin::router(admin::AdminService::new(observer));
    // The loop ends only if its source or its apply task did: then exit
    // non-zero, so that the supervisor restarts us, rather than serve a
    // view that no longer moves. The rules stay in force meanwhile.
    tokio::select! {
        served = daemon::serve_admin_and_tcp_until_stopped("podroute-policy-agent", &socket, &args.admin_tcp, router) => {
            served?;
        }
        ended = reconcile => {
            anyhow::bail!("the reconcile loop stopped ({ended:?}); the rules in force stay");
        }
    }
    Ok(())
}
