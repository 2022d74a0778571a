// podroute-ipamd's entry point: flags, the store (embedded file or etcd),
// the IPAM engine, pools and nodes from manifests (reloaded on change and on
// SIGHUP) or from Kubernetes (--kube), the Ipam gRPC API on the Unix admin
// socket and, with --listen, on TCP with TLS and client certificates (from
// files, or from Secrets that ipamd bootstraps itself with --tls-secret),
// and /metrics, /livez and /readyz on --metrics-listen (ipam/METRICS.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{ArgGroup, Parser, ValueEnum};
use podroute_ipam::allocator::Settings;
use podroute_ipam::service::grpc::IpamApi;
use podroute_ipam::service::kube::{self, KubeConfig};
use podroute_ipam::service::nodes::NodeDirectory;
use podroute_ipam::service::observe::Observer;
use podroute_ipam::service::{Ipamd, manifests};
use podroute_ipam::store::{AnyStore, EmbeddedStore, EtcdIdentity, EtcdStore, EtcdTls, Store};
use podroute_ipam::tls::ServerTls;
use podroute_ipam::tls::secret::{self as tls_secret, SecretSettings};
use podroute_proto::daemon::{self, DaemonArgs};
use podroute_proto::observe::{self, IPAMD_METRICS_PORT, Uptime};
use podroute_proto::reload::{self, ReloadTrigger};
use tonic::transport::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// A single file under --data-dir (one ipamd).
    Embedded,
    /// etcd at --etcd-endpoints (several ipamd replicas).
    Etcd,
}

#[derive(Debug, Parser)]
#[command(
    name = "podroute-ipamd",
    version,
    about = "podroute's IP address management daemon",
    group(ArgGroup::new("tls_source").args(["tls_cert", "tls_secret"]))
)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Where allocations are kept.
    #[arg(
        long,
        value_enum,
        default_value = "embedded",
        env = "PODROUTE_IPAM_STORE"
    )]
    store: StoreKind,
    /// Folder of the embedded store's file (ipam.redb).
    #[arg(long, default_value = "/var/lib/podroute/ipam")]
    data_dir: PathBuf,
    /// etcd client URLs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Prefix of every key ipamd writes in etcd.
    #[arg(long, default_value = podroute_ipam::store::DEFAULT_KEY_PREFIX)]
    etcd_prefix: String,
    /// CA (PEM) that signed the etcd members' certificates (https endpoints).
    #[arg(long)]
    etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd.
    #[arg(long, requires_all = ["etcd_key", "etcd_ca"])]
    etcd_cert: Option<PathBuf>,
    /// Client key (PEM) for etcd.
    #[arg(long, requires = "etcd_cert")]
    etcd_key: Option<PathBuf>,
    /// IPPool and Node manifests: a YAML file or a folder of them.
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// IPPools, Nodes and Pods from the Kubernetes API instead: pools from
    /// IPPool objects, deleted nodes' and pods' addresses released
    /// (ipam/README.md, "In a cluster").
    #[arg(long, conflicts_with = "manifests")]
    kube: bool,
    /// With --kube: seconds a pod must have been gone from the cluster
    /// before the addresses allocated for it are released (1 to 2592000,
    /// 30 days).
    #[arg(
        long,
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=kube::MAX_POD_GC_GRACE.as_secs())
    )]
    pod_gc_grace: u64,
    /// Never hand out addresses from another node's block (no borrowing).
    #[arg(long)]
    strict_affinity: bool,
    /// Seconds a released address rests before it is handed out again.
    #[arg(long, default_value_t = 30)]
    release_cooldown: u64,
    /// Seconds an empty block stays with its node before returning to its pool.
    #[arg(long, default_value_t = 300)]
    empty_block_grace: u64,
    /// Also serve the Ipam API on this TCP address (the CNI plugins of other
    /// nodes reach ipamd here). TLS only: every client refuses plain http.
    #[arg(long, requires = "tls_source")]
    listen: Option<SocketAddr>,
    /// TLS certificate (PEM) for --listen.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --listen.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signs client certificates; when set, every TCP client
    /// must present one, and a node certificate (CN system:node:NAME) may
    /// only act for its own node.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Kubernetes: the TLS material of --listen is in Secret NAME of
    /// --namespace, made by ipamd when absent (a CA and its server
    /// certificate) and renewed when broken or expiring, with Secret
    /// podroute-node-tls (the CA and a client certificate for the nodes).
    /// Client certificates must be signed by that CA.
    #[arg(long, value_name = "NAME", requires_all = ["listen", "namespace"])]
    tls_secret: Option<String>,
    /// Names of ipamd's server certificate with --tls-secret, comma
    /// separated [default: podroute-ipamd, podroute-ipamd.NS,
    /// podroute-ipamd.NS.svc, podroute-ipamd.NS.svc.cluster.local];
    /// 127.0.0.1 is always added.
    #[arg(long, value_delimiter = ',', requires = "tls_secret")]
    tls_dns_names: Vec<String>,
    /// ipamd's namespace (the downward API's metadata.namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Kubeconfig for the Kubernetes API (--kube, --tls-secret); without
    /// it, $KUBECONFIG or ~/.kube/config, else the in-cluster service
    /// account.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = daemon::init_logging(&args.daemon.log_level, args.daemon.log_format) {
        eprintln!("podroute-ipamd: {e}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("podroute-ipamd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let uptime = Arc::new(Uptime::new());
    let settings = Settings {
        strict_affinity: args.strict_affinity,
        cooldown_ms: args.release_cooldown.saturating_mul(1000),
        empty_block_grace_ms: args.empty_block_grace.saturating_mul(1000),
    };
    let store = match args.store {
        StoreKind::Embedded => AnyStore::Embedded(
            EmbeddedStore::open(&args.data_dir)
                .with_context(|| format!("cannot open the store in {}", args.data_dir.display()))?,
        ),
        StoreKind::Etcd => AnyStore::Etcd(
            EtcdStore::connect(
                args.etcd_endpoints.clone(),
                args.etcd_prefix.clone(),
                etcd_tls(&args)?,
            )
            .await
            .context("cannot use etcd")?,
        ),
    };
    let description = store.describe();
    // Served before the store is loaded, so /readyz says "loading" while a
    // large etcd keyspace is read.
    let observer = Arc::new(Observer::new(uptime.clone(), description.clone()));
    if let Some(address) = args.daemon.metrics_address(IPAMD_METRICS_PORT) {
        observe::spawn(address, observer.clone(), &uptime).await?;
    }
    let nodes = Arc::new(NodeDirectory::default());
    let ipamd = Ipamd::start_with(store, settings, nodes.clone(), uptime)
        .await
        .with_context(|| format!("cannot load {description}"))?;
    // Before the probes see the engine: not ready until listed.
    let kube_source = match args.kube {
        true => Some(spawn_kube_source(&args, &ipamd).await?),
        false => None,
    };
    observer.loaded(ipamd.clone());
    tracing::info!(store = %description, "IPAM store loaded");

    if let Some(path) = &args.manifests {
        // Watch first, so a change between the two is not missed.
        let reloads = reload::watch(path.clone())
            .with_context(|| format!("cannot watch {}", path.display()))?;
        // A bad file at start is fatal: running without the pools the
        // operator wrote would hand out nothing, or the wrong thing.
        apply_manifests(&ipamd, path).await?;
        tokio::spawn(follow_manifests(ipamd.clone(), path.clone(), reloads));
    }

    let socket = args
        .daemon
        .admin_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(podroute_proto::IPAMD_SOCKET));
    let unix = Server::builder().add_service(IpamApi::new(ipamd.clone()).into_server());
    let admin = daemon::serve_admin_until_stopped(podroute_ipam::DAEMON_NAME, &socket, unix);
    let failed = ipamd.clone();
    // A Kubernetes source that ends (it should not) stops ipamd, so it is
    // restarted, rather than serve on with labels, pools and GC frozen.
    let source_ended = async move {
        match kube_source {
            Some(source) => match source.await {
                Ok(()) => "the Kubernetes source stopped".to_owned(),
                Err(e) => format!("the Kubernetes source failed: {e}"),
            },
            None => std::future::pending().await,
        }
    };
    let failed = async move {
        tokio::select! {
            reason = failed.failed() => reason,
            reason = source_ended => reason,
        }
    };
    match args.listen {
        None => tokio::select! {
            served = admin => served?,
            reason = failed => anyhow::bail!("stopping: {reason}"),
        },
        Some(address) => {
            let tls = server_tls(&args).await?;
            let mut builder = Server::builder();
            if let Some(tls) = &tls {
                builder = builder.tls_config(tls.config())?;
            }
            if tls.as_ref().is_none_or(|tls| tls.client_ca_pem.is_none()) {
                tracing::warn!(%address, "serving the Ipam API on TCP without --tls-client-ca: anyone who reaches it may allocate, release and delete pools");
            }
            let tcp = builder.add_service(IpamApi::new(ipamd.clone()).into_server());
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            tracing::info!(%address, tls = tls.is_some(), "serving the Ipam API on TCP");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::select! {
                served = admin => served?,
                served = tcp.serve_with_incoming(incoming) => served.context("TCP server failed")?,
                reason = failed => anyhow::bail!("stopping: {reason}"),
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn etcd_tls(args: &Args) -> anyhow::Result<Option<EtcdTls>> {
    let Some(ca) = &args.etcd_ca else {
        return Ok(None);
    };
    let identity = match (&args.etcd_cert, &args.etcd_key) {
        (Some(cert), Some(key)) => Some(EtcdIdentity {
            cert_pem: read_file(cert)?,
            key_pem: read_file(key)?,
        }),
        _ => None,
    };
    Ok(Some(EtcdTls {
        ca_pem: read_file(ca)?,
        identity,
    }))
}

/// The TLS material of --listen: from --tls-secret's Secrets (read,
/// created or renewed first), or from the --tls-cert files.
async fn server_tls(args: &Args) -> anyhow::Result<Option<ServerTls>> {
    if let Some(secret) = &args.tls_secret {
        let namespace = args
            .namespace
            .as_deref()
            .context("--tls-secret needs --namespace or POD_NAMESPACE")?;
        let settings = SecretSettings::new(namespace, secret, &args.tls_dns_names);
        let client = podroute_k8s::client(args.kubeconfig.as_deref()).await?;
        let tls = tls_secret::bootstrap(client, &settings, SystemTime::now()).await?;
        return Ok(Some(tls));
    }
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let client_ca = args.tls_client_ca.as_deref();
    Ok(Some(ServerTls::from_files(cert, key, client_ca)?))
}

/// The Kubernetes source; ipamd is not ready until its first complete list.
async fn spawn_kube_source<S: Store>(
    args: &Args,
    ipamd: &Ipamd<S>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = kube::client(args.kubeconfig.as_deref())
        .await
        .context("cannot configure the Kubernetes client")?;
    let config = KubeConfig {
        pod_gc_grace: Duration::from_secs(args.pod_gc_grace),
        ..KubeConfig::default()
    };
    let source = tokio::spawn(kube::run(client, ipamd.clone(), config));
    tracing::info!(
        pod_gc_grace_seconds = args.pod_gc_grace,
        "following IPPools, Nodes and Pods in Kubernetes"
    );
    Ok(source)
}

async fn apply_manifests<S: Store>(ipamd: &Ipamd<S>, path: &Path) -> anyhow::Result<()> {
    let manifests = manifests::load(path)?;
    // Every pool is checked before any is applied, so a bad file changes
    // nothing (overlaps with pools already stored are refused on apply).
    for pool in &manifests.pools {
        let others: Vec<_> = manifests
            .pools
            .iter()
            .filter(|p| p.name() != pool.name())
            .collect();
        podroute_ipam::model::validate_pool(pool, &others)
            .with_context(|| format!("{}: IPPool {:?}", path.display(), pool.name()))?;
    }
    if let Some(nodes) = manifests.nodes {
        tracing::info!(nodes = nodes.len(), "node list loaded");
        ipamd.nodes().set(nodes);
    }
    for pool in manifests.pools {
        let name = pool.name().to_owned();
        let cidr = pool.spec.cidr;
        let existed = ipamd.read(|m| m.state.pool(&name).is_some()).await;
        let changed = ipamd
            .put_pool(pool, true)
            .await
            .with_context(|| format!("{}: IPPool {name:?}", path.display()))?;
        if changed {
            let event = if existed {
                "pool updated"
            } else {
                "pool created"
            };
            tracing::info!(pool = %name, %cidr, source = "manifests", "{event}");
        }
    }
    Ok(())
}

/// Reapplies the manifests when they change or on SIGHUP; a bad file is
/// logged and the running pools stay.
async fn follow_manifests<S: Store>(
    ipamd: Ipamd<S>,
    path: PathBuf,
    mut reloads: tokio::sync::mpsc::Receiver<ReloadTrigger>,
) {
    while let Some(trigger) = reloads.recv().await {
        match apply_manifests(&ipamd, &path).await {
            Ok(()) => tracing::info!(path = %path.display(), ?trigger, "manifests reloaded"),
            Err(e) => tracing::error!(
                path = %path.display(),
                error = format!("{e:#}"),
                "manifests refused; running pools unchanged"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_gc_grace(value: &str) -> Result<u64, clap::Error> {
        Args::try_parse_from(["podroute-ipamd", "--kube", "--pod-gc-grace", value])
            .map(|args| args.pod_gc_grace)
    }

    #[test]
    fn pod_gc_grace_is_at_least_a_second_and_at_most_thirty_days() {
        assert_eq!(pod_gc_grace("1").unwrap(), 1);
        assert_eq!(pod_gc_grace("2592000").unwrap(), 30 * 24 * 3600);
        assert_eq!(
            Duration::from_secs(pod_gc_grace("2592000").unwrap()),
            kube::MAX_POD_GC_GRACE
        );
        for refused in ["0", "2592001", "18446744073709551615"] {
            assert!(pod_gc_grace(refused).is_err(), "{refused} taken");
        }
    }
}
