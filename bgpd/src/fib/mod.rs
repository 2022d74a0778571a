// Kernel route programming over rtnetlink: the RIB hands the FIB its desired
// routes (FibOp), the FIB writes them into one kernel table with our own
// protocol number, batched (many messages per sendmsg, one ack per batch)
// and coalesced (the last op for a prefix wins while earlier ones wait).
// Level-triggered: at start, after a lost socket and periodically it reads
// what the kernel holds of ours and asks the RIB for the full desired state
// (FibEvent::ResyncRequested); whatever of ours was not set again by
// sync_done is deleted. Routes of other protocols are never touched; they
// feed the KernelTable that resolves BGP next hops.

mod diff;
mod kernel_table;
mod message;
mod monitor;
mod nexthop;
mod socket;
mod state;
mod sys;
mod writer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::sync::mpsc;

pub use kernel_table::{KernelNexthop, KernelTable, RouteTarget};
pub use sys::in_netns;

use state::Shared;

/// Our rtnetlink protocol number (rtm_protocol): unassigned in
/// linux/rtnetlink.h and iproute2's rt_protos; `ip route` prints `proto
/// podroute` once the setup registers it in /etc/iproute2/rt_protos.d.
pub const RTPROT_PODROUTE: u8 = 210;
/// The main routing table (RT_TABLE_MAIN, linux/rtnetlink.h).
pub const RT_TABLE_MAIN: u32 = 254;
/// Route metric (RTA_PRIORITY) of our routes. Not 0, so that a route an
/// administrator adds by hand for the same prefix is a separate kernel route
/// that we never replace, and wins (as FRR's zebra does with 20, BIRD with 32).
pub const DEFAULT_METRIC: u32 = 20;

/// How the FIB writes routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibConfig {
    /// Kernel routing table id (254: main).
    pub table: u32,
    /// rtm_protocol of our routes and nexthop objects.
    pub protocol: u8,
    /// RTA_PRIORITY of our routes.
    pub metric: u32,
    /// How often to re-read the kernel and ask the RIB for everything again.
    pub resync_interval: Duration,
    /// Whether a next hop may resolve through the default route (FRR and
    /// BIRD default to no).
    pub resolve_via_default: bool,
    /// Use nexthop objects (RTA_NH_ID) when the kernel has them; false forces
    /// RTA_GATEWAY/RTA_MULTIPATH routes.
    pub use_nexthop_objects: bool,
    /// Network namespace (a path such as /run/netns/NAME) whose kernel tables
    /// to program; None: this process's.
    pub netns: Option<PathBuf>,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            table: RT_TABLE_MAIN,
            protocol: RTPROT_PODROUTE,
            metric: DEFAULT_METRIC,
            resync_interval: Duration::from_secs(300),
            resolve_via_default: false,
            use_nexthop_objects: true,
            netns: None,
        }
    }
}

/// A next hop the kernel can use directly: a gateway on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolvedNextHop {
    pub gateway: IpAddr,
    pub ifindex: u32,
}

/// What the kernel should do with a prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FibRoute {
    /// Drop (RTN_BLACKHOLE): our own aggregates.
    Blackhole,
    /// Forward over these next hops (sorted, deduplicated, at least one);
    /// more than one is an ECMP route.
    Unicast(Arc<[ResolvedNextHop]>),
}

/// One change of desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FibOp {
    Set(IpNetwork, FibRoute),
    Remove(IpNetwork),
}

/// What the FIB tells the RIB.
#[derive(Clone, Debug)]
pub enum FibEvent {
    /// The FIB needs the full desired state again (start, netlink socket lost
    /// and reopened, periodic resync): the RIB sends every route with Set,
    /// then FibHandle::sync_done(generation). Routes of ours not set since
    /// are deleted then.
    ResyncRequested { generation: u64 },
    /// The kernel's own (non-podroute) routes changed: a fresh snapshot for
    /// next-hop resolution.
    KernelTable(Arc<KernelTable>),
}

/// Counters and failures, for the admin API and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FibStatus {
    /// Routes of ours in the kernel table when last counted (after each
    /// resync dump, and again once writes settle).
    pub installed: u64,
    /// Ops not yet confirmed by the kernel.
    pub pending: u64,
    /// Prefixes whose last write failed (being retried with backoff).
    pub failed: u64,
    /// Route writes the kernel refused (or that could not be written:
    /// a nexthop object refused, no next hop) since start.
    pub errors_total: u64,
    /// Times the netlink socket itself failed and was reopened (followed
    /// by a resync) since start.
    pub socket_failures: u64,
    /// Route messages written since start.
    pub writes_total: u64,
    /// sendmsg calls carrying route messages since start.
    pub netlink_batches: u64,
    /// Nexthop objects of ours in the kernel (0 without nexthop objects).
    pub nexthop_objects: u64,
    /// Whether routes point at nexthop objects (RTA_NH_ID).
    pub uses_nexthop_objects: bool,
    /// The current resync generation.
    pub generation: u64,
    /// Up to MAX_REPORTED_FAILURES failed prefixes with the kernel's reason.
    pub failures: Vec<(IpNetwork, String)>,
}

/// How many failed prefixes FibStatus lists (`failed` counts them all).
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// Where one prefix stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// An op for it waits or is being written.
    Pending,
    /// The last write failed with this reason; it is retried.
    Failed(String),
    /// Nothing outstanding: the kernel holds what was last asked for.
    Done,
}

/// Why the FIB could not start.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("reading the kernel's {what}: {source}")]
    Dump {
        what: &'static str,
        source: socket::NlError,
    },
}

/// The RIB's side of the FIB. Cheap to clone; when the last clone is dropped
/// the FIB tasks stop (routes stay in the kernel for the next start to
/// reconcile).
#[derive(Clone)]
pub struct FibHandle {
    shared: Arc<Shared>,
    _alive: Arc<state::Alive>,
    /// Routes of ours the kernel held when the FIB started.
    found_at_start: u64,
    /// The metric our routes carry.
    metric: u32,
}

impl FibHandle {
    /// Queues `ops` (the last op for a prefix wins). Waits while too many
    /// prefixes are already waiting: backpressure for the RIB.
    pub async fn apply(&self, ops: Vec<FibOp>) {
        self.shared.apply(ops).await;
    }

    /// Every route of `generation` has been set: routes of ours not set since
    /// ResyncRequested{generation} are deleted. An old generation is ignored.
    pub async fn sync_done(&self, generation: u64) {
        self.shared.sync_done(generation);
    }

    pub fn status(&self) -> FibStatus {
        self.shared.status()
    }

    /// How many routes of ours the kernel held when the FIB started: more
    /// than 0 means a restart found its forwarding state preserved (RFC
    /// 4724 §4.1).
    pub fn found_at_start(&self) -> u64 {
        self.found_at_start
    }

    pub fn route_state(&self, prefix: &IpNetwork) -> RouteState {
        self.shared.route_state(prefix)
    }

    /// The metric our routes carry: another program's route for the same
    /// prefix with a lower one is the kernel's choice.
    pub fn metric(&self) -> u32 {
        self.metric
    }

    /// Route programming latency: per write pass, from its oldest change
    /// being handed to `apply` (or requeued after a failure) to the
    /// kernel's answer for the pass's last message.
    pub fn programming_latency(&self) -> &podroute_proto::metrics::Histogram {
        &self.shared.programming
    }
}

/// Opens the netlink sockets (in `config.netns` if given), reads the kernel's
/// table and our nexthop objects, and spawns the writer and the monitor on
/// the current tokio runtime. The receiver first gets a KernelTable, then
/// ResyncRequested{generation: 1}.
pub async fn start(config: FibConfig) -> Result<(FibHandle, mpsc::Receiver<FibEvent>), FibError> {
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let shared = Arc::new(Shared::new());
    let alive = Arc::new(state::Alive::new(shared.clone()));

    let mut monitor = monitor::Monitor::open(&config, events_tx.clone(), shared.clone())?;
    let table = monitor.snapshot().await?;
    monitor.publish(table).await;

    let metric = config.metric;
    let mut writer = writer::Writer::open(config, events_tx, shared.clone())?;
    writer.resync().await.map_err(|source| FibError::Dump {
        what: "routes and nexthop objects",
        source,
    })?;

    let found_at_start = shared.status().installed;
    tokio::spawn(monitor.run());
    tokio::spawn(writer.run());
    Ok((
        FibHandle {
            shared,
            _alive: alive,
            found_at_start,
            metric,
        },
        events_rx,
    ))
}

/// FibEvents queued for the RIB before the FIB waits for it.
const EVENT_QUEUE: usize = 16;

/// Desired state of one prefix: a route, or None for no route of ours.
type Desired = Option<FibRoute>;
/// Ops waiting to be written, coalesced by prefix.
type OpMap = HashMap<IpNetwork, Desired>;
