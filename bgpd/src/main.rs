// podroute-bgpd's entry point: read the configuration (a file, or with
// --kube the Kubernetes API), start the kernel FIB and the speaker (RIB,
// peer sessions and listener), reload on SIGHUP or file change (--kube: on
// every change in the cluster, and write this node's sessions to the
// BGPPeers' status), serve /metrics, /livez and /readyz on the metrics port
// (from the moment it is bound, so probes are answered while the start
// waits for the kernel or ipamd) and the admin API on its Unix socket
// until SIGTERM or SIGINT; then end every session with Cease /
// Administrative Shutdown (with graceful restart: close quietly and keep
// our kernel routes; `--cleanup` removes them).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use kube::core::DynamicObject;
use kube::runtime::reflector::Store;
use podroute_bgpd::config::kube::{self as kube_source, ClusterConfig, SourceState};
use podroute_bgpd::observe::{Observer, ObserverOptions, PortObserver, StartPhase};
use podroute_bgpd::speaker::{Speaker, SpeakerOptions};
use podroute_bgpd::{config, fib, origin};
use podroute_proto::daemon::{self, AdminTcpArgs, DaemonArgs};
use podroute_proto::observe::{self, BGPD_METRICS_PORT, Uptime};

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
        default_value = "/etc/podroute/bgpd.yaml",
        conflicts_with = "kube"
    )]
    config: PathBuf,
    /// Read the configuration from the Kubernetes API instead of --config:
    /// the BGPConfiguration named "default", every BGPPeer and every Node,
    /// followed as they change (bgpd/CONFIG.md, "In a cluster"). Needs
    /// --node. This node's sessions are written to the BGPPeers' status.
    #[arg(long, requires = "node")]
    kube: bool,
    /// Kubeconfig for --kube; without it, the in-cluster service account
    /// (or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// This node's name, as in its Kubernetes Node (or standalone `Node`
    /// document): which mesh member, BGPPeer and IPAM blocks are ours.
    #[arg(long, env = "NODE_NAME")]
    node: Option<String>,
    /// podroute-ipamd to announce this node's IPAM blocks from (its
    /// WatchNodeBlocks stream): a Unix socket ("/run/podroute/ipamd.sock",
    /// "unix:///...") or "https://HOST:PORT" with the TLS files below.
    /// Needs --node. Without it, only the configuration's `originate`.
    #[arg(long, env = "PODROUTE_IPAMD")]
    ipamd: Option<String>,
    /// CA that signed ipamd's certificate (https --ipamd).
    #[arg(long, env = "PODROUTE_IPAMD_TLS_CA")]
    ipamd_tls_ca: Option<PathBuf>,
    /// This node's client certificate for ipamd (PEM; with --ipamd-tls-key).
    #[arg(long, env = "PODROUTE_IPAMD_TLS_CERT")]
    ipamd_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "PODROUTE_IPAMD_TLS_KEY")]
    ipamd_tls_key: Option<PathBuf>,
    /// Where Up BFD sessions are kept so a restarted daemon resumes them
    /// before its peers notice (bgpd/src/bfd/resume.rs). Default: beside
    /// the admin socket, with extension `.bfd`.
    #[arg(long, env = "PODROUTE_BGPD_BFD_STATE")]
    bfd_state: Option<PathBuf>,
    /// Do not touch the kernel's routing table (as FRR's `bgpd
    /// --no_kernel`): routes are exchanged, nothing is installed, and every
    /// next hop counts as reachable.
    #[arg(long)]
    no_kernel: bool,
    /// Remove every route of ours (protocol podroute) from the configured
    /// kernel table and exit: for uninstalling. A stopped podroute-bgpd
    /// otherwise leaves its routes for the next start (graceful restart).
    #[arg(long, conflicts_with = "no_kernel")]
    cleanup: bool,
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(flatten)]
    admin_tcp: AdminTcpArgs,
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
    let uptime = Uptime::new();
    daemon::init_logging(&args.daemon.log_level, args.daemon.log_format)?;
    let node = args.node.clone();
    if args.cleanup {
        let table = if args.kube {
            cluster_kernel_table(args.kubeconfig.as_deref()).await
        } else {
            config::load_for(&args.config, node.as_deref())?
                .bgp
                .kernel_table
        };
        return cleanup(table).await;
    }
    // A file is read before anything else: a bad one stops the daemon
    // before it binds a port. The cluster's configuration is awaited with
    // the metrics port up.
    let file_config = if args.kube {
        // Before the wait: SIGHUP's default action would end the process.
        tokio::spawn(explain_hangups());
        None
    } else {
        Some(config::load_for(&args.config, node.as_deref())?)
    };
    // Bound before any session starts: a port in use stops the daemon
    // before it has told peers anything. Served at once: the start can
    // wait long for ipamd or the Kubernetes API, and unanswered probes
    // would have the kubelet kill a healthy daemon.
    let after_config = if args.no_kernel {
        StartPhase::Speaker
    } else {
        StartPhase::Kernel
    };
    let first_phase = if args.kube {
        StartPhase::Kubernetes
    } else {
        after_config
    };
    let port = Arc::new(PortObserver::new(uptime.started_unix(), first_phase));
    let metrics = match args.daemon.metrics_address(BGPD_METRICS_PORT) {
        Some(address) => {
            let listener = observe::bind(address).await?;
            let bound = listener.local_addr()?;
            uptime.set_metrics_address(bound);
            tracing::info!(address = %bound, "serving /metrics, /livez and /readyz");
            Some(tokio::spawn(observe::serve(listener, port.clone())))
        }
        None => None,
    };
    let (config, cluster) = match file_config {
        Some(config) => (config, None),
        None => {
            let node = node.clone().context("--kube needs --node (or NODE_NAME)")?;
            let cluster = follow_cluster(node, args.kubeconfig.as_deref(), &port).await?;
            (cluster.first.config.clone(), Some(cluster))
        }
    };
    port.starting(after_config);
    let ipam = match &args.ipamd {
        Some(endpoint) => Some(origin::OriginConfig::new(
            endpoint,
            args.node.as_deref(),
            args.ipamd_tls_ca.clone(),
            args.ipamd_tls_cert.clone(),
            args.ipamd_tls_key.clone(),
        )?),
        None => None,
    };
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
    port.starting(StartPhase::Speaker);
    // BFD runs always, so a reload can turn it on for a peer. Without
    // UDP 3784 (another BFD daemon on the host) we go on without it,
    // unless a peer asks for it now.
    let bfd_state = args.bfd_state.clone().unwrap_or_else(|| {
        args.daemon
            .admin_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(podroute_proto::BGPD_SOCKET))
            .with_extension("bfd")
    });
    let resumed = podroute_bgpd::bfd::BfdHandle::start_resuming(bfd_state, |peer| {
        config.peers.get(&peer).and_then(|p| p.bfd)
    });
    let bfd = match resumed {
        Ok(bfd) => Some(bfd),
        Err(e) if config.peers.values().any(|p| p.bfd.is_some()) => {
            return Err(e).context("cannot listen for BFD on UDP 3784");
        }
        Err(e) => {
            tracing::warn!(error = %e, "BFD is off: cannot listen on UDP 3784");
            None
        }
    };
    let (ipam, ipamd) = match ipam {
        Some(ipam) => {
            let restarting = fib.as_ref().is_some_and(|(f, _)| f.found_at_start() > 0);
            let wait = origin::first_view_wait(&config, restarting);
            let endpoint = ipam.endpoint.to_string();
            port.starting(StartPhase::Ipamd);
            let (origination, connected) = first_ipam_view(ipam, wait).await;
            port.starting(StartPhase::Speaker);
            (Some(origination), Some((endpoint, connected)))
        }
        None => (None, None),
    };
    let observed_fib = fib
        .as_ref()
        .map(|(handle, _)| (handle.clone(), config.bgp.kernel_table));
    let options = SpeakerOptions {
        fib,
        ipam,
        bfd: bfd.clone(),
    };
    let speaker = Speaker::start_with(config, options).await?;
    let observer = Arc::new(Observer::new(
        speaker.clone(),
        ObserverOptions {
            node: node.clone(),
            fib: observed_fib,
            ipamd,
            config_file: cluster.is_none().then(|| args.config.clone()),
            uptime,
        },
    ));
    port.running(observer.clone());
    let kube_mode = cluster.is_some();
    let (mut reloads, status) = match cluster {
        None => {
            let reloads = reload_loop(args.config.clone(), node, speaker.clone(), observer.clone());
            (tokio::spawn(reloads), None)
        }
        Some(cluster) => {
            let writer = kube_source::status::StatusWriter::new(
                &cluster.node,
                cluster.client.clone(),
                cluster.peers.clone(),
                cluster.states.clone(),
                kube_source::status::SpeakerSessions::new(speaker.clone()),
            );
            let status = tokio::spawn(writer.run(std::future::pending()));
            let reloads = cluster_reloads(cluster, speaker.clone(), observer.clone());
            (tokio::spawn(reloads), Some(status))
        }
    };

    let socket = args
        .daemon
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(podroute_proto::BGPD_SOCKET));
    let serve = daemon::serve_admin_and_tcp_until_stopped(
        "podroute-bgpd",
        &socket,
        &args.admin_tcp,
        podroute_bgpd::admin::router_with(observer),
    );
    // With --kube the configuration follows the cluster only while the
    // source runs: if it ends (it should not), exit, so the kubelet
    // restarts us, rather than stay ready on a configuration frozen in
    // time. Our routes stay in the kernel meanwhile (graceful restart).
    let served: anyhow::Result<()> = tokio::select! {
        served = serve => served.map_err(anyhow::Error::from),
        ended = &mut reloads, if kube_mode => Err(anyhow::anyhow!(
            "the Kubernetes source stopped ({}); exiting so that podroute-bgpd is restarted",
            match ended {
                Ok(()) => "its watch ended".to_owned(),
                Err(e) => e.to_string(),
            }
        )),
    };
    reloads.abort();
    if let Some(status) = status {
        status.abort();
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    // BFD AdminDown first, so peers do not take our stop for a path
    // failure (RFC 5882 §3.2).
    if let Some(bfd) = &bfd {
        bfd.admin_down_all().await;
    }
    speaker.shutdown("podroute-bgpd stopping").await;
    served?;
    Ok(())
}

/// Starts following ipamd and waits, at most `wait`,
/// for its first view of our blocks: the sessions start after it, so a
/// restarted node never sends End-of-RIB before its blocks are known.
/// Returns the origination to follow and whether ipamd's stream is up.
async fn first_ipam_view(
    ipam: origin::OriginConfig,
    wait: std::time::Duration,
) -> (
    tokio::sync::watch::Receiver<Arc<podroute_bgpd::speaker::Origination>>,
    tokio::sync::watch::Receiver<bool>,
) {
    let (endpoint, node) = (ipam.endpoint.to_string(), ipam.node.clone());
    let task = origin::spawn(ipam);
    match tokio::time::timeout(wait, task.first_view).await {
        Ok(Ok(())) => {
            tracing::info!(ipamd = %endpoint, %node, "ipamd's view of this node's blocks is in; starting sessions")
        }
        _ => tracing::warn!(
            ipamd = %endpoint,
            %node,
            waited_s = wait.as_secs(),
            "no view of this node's blocks from ipamd yet; starting sessions anyway (blocks are announced when it answers)"
        ),
    }
    (task.origination, task.connected)
}

/// How long --cleanup waits for the kernel to confirm the removals.
const CLEANUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads our routes back from the kernel and ends the FIB's first resync
/// without wanting any of them: the FIB deletes them all.
async fn cleanup(table: u32) -> anyhow::Result<()> {
    let fib_config = fib::FibConfig {
        table,
        ..fib::FibConfig::default()
    };
    let (handle, mut events) = fib::start(fib_config)
        .await
        .context("cannot read the kernel's routes")?;
    let found = handle.found_at_start();
    let generation = loop {
        match events.recv().await {
            Some(fib::FibEvent::ResyncRequested { generation }) => break generation,
            Some(fib::FibEvent::KernelTable(_)) => {}
            None => anyhow::bail!("the FIB stopped before it read the kernel"),
        }
    };
    handle.sync_done(generation).await;
    let deadline = tokio::time::Instant::now() + CLEANUP_WAIT;
    loop {
        let status = handle.status();
        if status.pending == 0 && status.installed == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{} routes of ours still in table {table} after {CLEANUP_WAIT:?}",
                status.installed
            );
        }
        // Keep the FIB's event queue from filling while it works.
        while let Ok(_event) = events.try_recv() {}
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    println!("removed {found} routes of ours from kernel table {table}");
    Ok(())
}

/// Applies each configuration change; a file that does not load is
/// refused with its reason and the running configuration stays. Each
/// outcome is recorded for GetStatus and /metrics.
async fn reload_loop(
    path: PathBuf,
    node: Option<String>,
    speaker: Speaker,
    observer: Arc<Observer>,
) {
    let mut changes = match config::watch(path.clone()) {
        Ok(changes) => changes,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the configuration; reloads are off");
            return;
        }
    };
    while changes.recv().await.is_some() {
        match config::load_for(&path, node.as_deref()) {
            Ok(new) => match speaker.reload(new).await {
                Ok(()) => observer.config_reloaded(),
                Err(e) => {
                    tracing::error!(error = %e, "reload failed");
                    observer.config_refused(format!("reload failed: {e}"));
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "configuration refused; keeping the running one");
                observer.config_refused(e.to_string());
            }
        }
    }
}

/// `--kube`: the cluster source, running, and its first configuration.
struct Cluster {
    node: String,
    client: kube::Client,
    states: tokio::sync::watch::Receiver<SourceState>,
    /// The watched BGPPeers, for the status writer.
    peers: Store<DynamicObject>,
    first: Arc<ClusterConfig>,
}

/// Starts following the cluster and waits for the first configuration
/// built from it; meanwhile /readyz says what is missing (the kinds not
/// yet listed, no BGPConfiguration "default", this Node absent ...).
async fn follow_cluster(
    node: String,
    kubeconfig: Option<&std::path::Path>,
    port: &PortObserver,
) -> anyhow::Result<Cluster> {
    let client = podroute_k8s::client(kubeconfig)
        .await
        .context("cannot reach the Kubernetes API")?;
    let source = kube_source::Source::new(client.clone(), &node);
    let peers = source.peers();
    let (tx, mut states) = tokio::sync::watch::channel(SourceState::default());
    tokio::spawn(source.run(tx));
    tracing::info!(%node, "waiting for the configuration from the Kubernetes API");
    loop {
        if states.changed().await.is_err() {
            anyhow::bail!("the Kubernetes source stopped");
        }
        let state = states.borrow_and_update().clone();
        if let Some(first) = state.config {
            return Ok(Cluster {
                node,
                client,
                states,
                peers,
                first,
            });
        }
        port.waiting_for(state.problems());
    }
}

/// `--kube`: applies each new configuration the cluster source publishes
/// through the reload path a file takes; objects it refused are counted
/// and shown as refused reloads (GetStatus `config_error`).
async fn cluster_reloads(cluster: Cluster, speaker: Speaker, observer: Arc<Observer>) {
    let Cluster {
        mut states,
        first: mut running,
        ..
    } = cluster;
    let mut counted = 0;
    loop {
        let state = states.borrow_and_update().clone();
        let mut problems = state.problems();
        // A configuration the speaker could not apply is tried again, and
        // shown as a problem until it is applied or replaced.
        let mut failing = false;
        if let Some(new) = &state.config
            && !Arc::ptr_eq(new, &running)
        {
            match speaker.reload(new.config.clone()).await {
                Ok(()) => {
                    observer.config_reloaded();
                    running = new.clone();
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?RELOAD_RETRY, "reload failed");
                    let failed = format!("reload failed: {e}");
                    observer.config_refused(failed.clone());
                    problems = Some(match problems {
                        Some(others) => format!("{failed}; {others}"),
                        None => failed,
                    });
                    failing = true;
                }
            }
        }
        observer.config_problems(state.refused_total.saturating_sub(counted), problems);
        counted = state.refused_total;
        tokio::select! {
            changed = states.changed() => if changed.is_err() {
                tracing::error!("the Kubernetes source stopped");
                return;
            },
            () = tokio::time::sleep(RELOAD_RETRY), if failing => {}
        }
    }
}

/// `--kube`: how soon a configuration the speaker refused is tried again.
const RELOAD_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// `--kube`: SIGHUP reloads nothing (the cluster is followed as it
/// changes), and must not end the process either.
async fn explain_hangups() {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!(
            "SIGHUP ignored: with --kube the configuration comes from the Kubernetes API \
             and follows its changes by itself"
        );
    }
}

/// How long `--cleanup --kube` waits for the API to name the table.
const CLUSTER_TABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `--cleanup --kube`: the kernel table of BGPConfiguration "default", or
/// the main table when the API cannot say (an uninstall may have removed
/// the CRDs first).
async fn cluster_kernel_table(kubeconfig: Option<&std::path::Path>) -> u32 {
    let asked = async {
        let client = podroute_k8s::client(kubeconfig).await?;
        anyhow::Ok(kube_source::kernel_table(client).await?)
    };
    let error = match tokio::time::timeout(CLUSTER_TABLE_WAIT, asked).await {
        Ok(Ok(table)) => return table,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => format!("no answer within {CLUSTER_TABLE_WAIT:?}"),
    };
    tracing::warn!(
        %error,
        table = config::DEFAULT_KERNEL_TABLE,
        "cannot read kernelTable from BGPConfiguration \"default\"; cleaning the main table \
         (routes in another table stay)"
    );
    config::DEFAULT_KERNEL_TABLE
}
