// What podroute-bgpd tells its operators besides the admin API's tables:
// the Prometheus text on /metrics, /livez and /readyz (served by
// podroute_proto::observe) and the admin API's GetStatus. Everything is
// read at scrape time from the state the admin API shows (the peers'
// published snapshots, the RIB task, the FIB's counters), so the two never
// disagree. The port answers from the moment it is bound (`PortObserver`),
// before the speaker runs. Families and probe meanings are documented in
// bgpd/METRICS.md.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podroute_proto::bgpd::v1 as pb;
use podroute_proto::metrics::{Exposition, MetricType, write_process_metrics};
use podroute_proto::observe::{Observe, Uptime};
use tokio::sync::watch;

use crate::fib::FibHandle;
use crate::session::{MessageCounters, State};
use crate::speaker::{Origination, PeerStatus, RibActivity, RibSummary, Speaker};

/// How long a scrape waits for the RIB task's sizes before it leaves the
/// Loc-RIB families out (the task may be busy with a big change).
pub const RIB_ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How long the RIB task may be busy, with inputs waiting, without a step
/// forward before /livez says it is stuck. A step is taking an input,
/// handing the FIB a chunk of routes or finishing a turn: on a loaded node
/// each takes well under a second, so a minute without one is no slow
/// convergence but a task that will not come back.
pub const RIB_STALL_LIMIT: Duration = Duration::from_secs(60);

/// What podroute-bgpd is doing before its speaker runs, as /readyz says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPhase {
    /// `--kube`: waiting for the first configuration from the Kubernetes
    /// API (every kind listed, a BGPConfiguration "default", this Node).
    Kubernetes,
    /// Reading our routes from the kernel (`fib::start`).
    Kernel,
    /// Waiting, boundedly, for ipamd's first view of our blocks
    /// (`origin::first_view_wait`).
    Ipamd,
    /// Opening the BFD socket, binding the BGP port, starting the tasks.
    Speaker,
}

impl fmt::Display for StartPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartPhase::Kubernetes => {
                "waiting for the Kubernetes API (Nodes, BGPConfigurations and BGPPeers)"
            }
            StartPhase::Kernel => "reading the kernel's routes",
            StartPhase::Ipamd => "waiting for ipamd's first view of this node's blocks",
            StartPhase::Speaker => "starting the BGP speaker",
        })
    }
}

/// What the metrics port answers. Until the speaker runs: live (each start
/// step is bounded, and a restart by the kubelet would only begin it
/// again), not ready with the step under way, and the process metrics;
/// then the `Observer`'s answers.
pub struct PortObserver {
    started_unix: f64,
    /// The step under way, and what it is waiting for if known.
    phase: Mutex<(StartPhase, Option<String>)>,
    running: OnceLock<Arc<Observer>>,
}

impl PortObserver {
    /// `started_unix`: the process's start (`Uptime::started_unix`).
    pub fn new(started_unix: f64, phase: StartPhase) -> PortObserver {
        PortObserver {
            started_unix,
            phase: Mutex::new((phase, None)),
            running: OnceLock::new(),
        }
    }

    /// The start has moved on to `phase`.
    pub fn starting(&self, phase: StartPhase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = (phase, None);
    }

    /// What the step under way waits for (e.g. "no BGPConfiguration named
    /// \"default\""), shown after it by /readyz; `None`: nothing known.
    pub fn waiting_for(&self, detail: Option<String>) {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner).1 = detail;
    }

    /// The speaker runs: answer from `observer` from now on.
    pub fn running(&self, observer: Arc<Observer>) {
        let _ = self.running.set(observer);
    }

    fn phase(&self) -> String {
        match &*self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            (phase, None) => phase.to_string(),
            (phase, Some(detail)) => format!("{phase}: {detail}"),
        }
    }
}

impl Observe for PortObserver {
    async fn metrics(&self) -> String {
        if let Some(observer) = self.running.get() {
            return observer.metrics().await;
        }
        let mut out = Exposition::new();
        write_process_metrics(
            &mut out,
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            self.started_unix,
        );
        out.finish()
    }

    async fn live(&self) -> Result<(), String> {
        match self.running.get() {
            Some(observer) => observer.live().await,
            None => Ok(()),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        match self.running.get() {
            Some(observer) => observer.ready().await,
            None => Err(format!("starting: {}", self.phase())),
        }
    }
}

/// What main knows besides the speaker; every part optional, so a bare
/// speaker (tests, `admin::router`) still answers GetStatus.
#[derive(Default)]
pub struct ObserverOptions {
    /// --node.
    pub node: Option<String>,
    /// The kernel FIB and the table it writes (None with --no-kernel).
    pub fib: Option<(FibHandle, u32)>,
    /// --ipamd and whether its stream is up (crate::origin).
    pub ipamd: Option<(String, watch::Receiver<bool>)>,
    /// The configuration file, loaded just before.
    pub config_file: Option<PathBuf>,
    /// When the daemon started (its default: now).
    pub uptime: Uptime,
}

/// podroute-bgpd's `Observe`, and the source of GetStatus.
pub struct Observer {
    speaker: Speaker,
    uptime: Uptime,
    node: Option<String>,
    fib: Option<(FibHandle, u32)>,
    ipamd: Option<(String, watch::Receiver<bool>)>,
    config_file: Option<PathBuf>,
    config: Mutex<ConfigRecord>,
    reloads_ok: AtomicU64,
    reloads_refused: AtomicU64,
}

/// The last configuration load, and the last refusal since.
struct ConfigRecord {
    loaded_at: Instant,
    loaded_unix: f64,
    /// Cleared by the next load that succeeds.
    refused: Option<String>,
}

impl Observer {
    pub fn new(speaker: Speaker, options: ObserverOptions) -> Observer {
        // The first configuration was loaded as the daemon started.
        let up_for = Duration::from_secs(options.uptime.uptime_seconds());
        let loaded_at = Instant::now()
            .checked_sub(up_for)
            .unwrap_or_else(Instant::now);
        let loaded_unix = options.uptime.started_unix();
        Observer {
            speaker,
            uptime: options.uptime,
            node: options.node,
            fib: options.fib,
            ipamd: options.ipamd,
            config_file: options.config_file,
            config: Mutex::new(ConfigRecord {
                loaded_at,
                loaded_unix,
                refused: None,
            }),
            reloads_ok: AtomicU64::new(0),
            reloads_refused: AtomicU64::new(0),
        }
    }

    pub fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// Start time and the bound metrics address (`observe::spawn` sets it).
    pub fn uptime(&self) -> &Uptime {
        &self.uptime
    }

    /// A reload applied the configuration file.
    pub fn config_reloaded(&self) {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        let mut record = self.record();
        record.loaded_at = Instant::now();
        record.loaded_unix = unix_now();
        record.refused = None;
    }

    /// A reload was refused for `reason`; the running configuration stays.
    pub fn config_refused(&self, reason: String) {
        self.reloads_refused.fetch_add(1, Ordering::Relaxed);
        self.record().refused = Some(reason);
    }

    /// `--kube`: the cluster source's problems after a rebuild.
    /// `new_refusals` objects (or whole rebuilds) were refused since the
    /// last call, each counted as a refused reload; `current` is what is
    /// refused now (GetStatus `config_error`), `None` when nothing is.
    pub fn config_problems(&self, new_refusals: u64, current: Option<String>) {
        self.reloads_refused
            .fetch_add(new_refusals, Ordering::Relaxed);
        self.record().refused = current;
    }

    /// The admin API's GetStatus.
    pub async fn status(&self) -> pb::BgpStatus {
        let health = self.uptime.health(self.live().await, self.ready().await);
        let peers = self.speaker.peers();
        let established = peers
            .iter()
            .filter(|p| p.state == State::Established)
            .count();
        let fib = match &self.fib {
            Some((handle, table)) => {
                let status = handle.status();
                pb::FibStatus {
                    enabled: true,
                    table: *table,
                    installed: status.installed,
                    pending: status.pending,
                    failed: status.failed,
                    netlink_errors: status.errors_total,
                }
            }
            None => pb::FibStatus::default(),
        };
        let (config_loaded_seconds_ago, config_error) = {
            let record = self.record();
            (
                record.loaded_at.elapsed().as_secs(),
                record.refused.clone().unwrap_or_default(),
            )
        };
        pb::BgpStatus {
            health: Some(health),
            node: self.node.clone().unwrap_or_default(),
            local_as: self.speaker.local_as(),
            router_id: self.speaker.router_id().to_string(),
            peers_configured: count_u32(peers.len()),
            peers_established: count_u32(established),
            fib: Some(fib),
            ipamd: self
                .ipamd
                .as_ref()
                .map(|(endpoint, _)| endpoint.clone())
                .unwrap_or_default(),
            ipamd_connected: self.ipamd_connected().unwrap_or(false),
            originated: self
                .speaker
                .originated()
                .prefixes()
                .iter()
                .map(ToString::to_string)
                .collect(),
            config_file: self
                .config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            config_loaded_seconds_ago,
            config_error,
        }
    }

    fn ipamd_connected(&self) -> Option<bool> {
        self.ipamd.as_ref().map(|(_, up)| *up.borrow())
    }

    fn record(&self) -> std::sync::MutexGuard<'_, ConfigRecord> {
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything a scrape writes, gathered first.
    async fn gather(&self) -> Gathered {
        let rib = match tokio::time::timeout(RIB_ANSWER_WAIT, self.speaker.rib_summary()).await {
            Ok(summary) => summary,
            Err(_) => {
                tracing::debug!(
                    "metrics: the RIB did not answer in time; Loc-RIB figures left out"
                );
                None
            }
        };
        let fib = self.fib.as_ref().map(|(handle, _)| handle.status());
        let record = self.record();
        Gathered {
            now: Instant::now(),
            peers: self.speaker.peers(),
            rib,
            fib,
            originated: self.speaker.originated(),
            ipamd_connected: self.ipamd_connected(),
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_refused: self.reloads_refused.load(Ordering::Relaxed),
            config_loaded_unix: record.loaded_unix,
            config_refused: record.refused.is_some(),
        }
    }
}

impl Observe for Observer {
    async fn metrics(&self) -> String {
        let gathered = self.gather().await;
        let mut out = Exposition::new();
        write_process_metrics(
            &mut out,
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            self.uptime.started_unix(),
        );
        gathered.write(&mut out);
        if let Some((handle, _)) = &self.fib {
            out.family(
                "podroute_fib_programming_seconds",
                "Route programming latency: per write pass, from its oldest change being queued \
                 for the kernel to the kernel's answer.",
                MetricType::Histogram,
            );
            out.histogram(
                "podroute_fib_programming_seconds",
                &[],
                handle.programming_latency(),
            );
        }
        out.finish()
    }

    /// Answered at once, from what the tasks publish: see `liveness`.
    async fn live(&self) -> Result<(), String> {
        liveness(&self.speaker.rib_activity(), &self.speaker.ended_peers())
    }

    /// The configuration loaded (podroute-bgpd does not start otherwise)
    /// and a session Established, or no peer that is not shut down.
    async fn ready(&self) -> Result<(), String> {
        readiness(&self.speaker.peers())
    }
}

/// Live unless a peer's task has died, or the RIB task (which every route
/// and every session passes through) has stopped or has inputs waiting
/// while it made no step forward for RIB_STALL_LIMIT. Busy is not stuck:
/// a big convergence held up by the kernel still steps, chunk by chunk.
pub fn liveness(rib: &RibActivity, ended_peers: &[IpAddr]) -> Result<(), String> {
    if let Some(peer) = ended_peers.first() {
        return Err(format!(
            "the task of BGP peer {peer} has ended ({} in all); restart podroute-bgpd",
            ended_peers.len()
        ));
    }
    if rib.stopped {
        return Err("the RIB task has stopped".to_string());
    }
    if rib.queued > 0 && rib.stalled_for > RIB_STALL_LIMIT {
        return Err(format!(
            "the RIB task has made no progress for {}s with {} inputs waiting (limit {}s)",
            rib.stalled_for.as_secs(),
            rib.queued,
            RIB_STALL_LIMIT.as_secs()
        ));
    }
    Ok(())
}

/// Ready with a session Established or with no peer to wait for (none
/// configured, or all shut down by configuration).
pub fn readiness(peers: &[PeerStatus]) -> Result<(), String> {
    if peers.iter().any(|p| p.state == State::Established) {
        return Ok(());
    }
    let enabled = peers.iter().filter(|p| !p.shutdown).count();
    if enabled == 0 {
        return Ok(());
    }
    let shut = peers.len() - enabled;
    let mut reason = format!("no BGP session Established (0 of {enabled} peers");
    if shut > 0 {
        reason.push_str(&format!("; {shut} more shut down"));
    }
    reason.push(')');
    Err(reason)
}

/// One scrape's figures.
struct Gathered {
    now: Instant,
    peers: Vec<PeerStatus>,
    rib: Option<RibSummary>,
    fib: Option<crate::fib::FibStatus>,
    originated: std::sync::Arc<Origination>,
    ipamd_connected: Option<bool>,
    reloads_ok: u64,
    reloads_refused: u64,
    config_loaded_unix: f64,
    config_refused: bool,
}

/// Message types as the `type` label names them (RFC 4271 §4.1, RFC 2918).
const MESSAGE_TYPES: [&str; 5] = [
    "open",
    "update",
    "notification",
    "keepalive",
    "route_refresh",
];

fn by_type(c: &MessageCounters) -> [u64; 5] {
    [
        c.open,
        c.update,
        c.notification,
        c.keepalive,
        c.route_refresh,
    ]
}

impl Gathered {
    fn write(&self, out: &mut Exposition) {
        self.write_sessions(out);
        self.write_prefixes(out);
        self.write_bfd(out);
        self.write_rib(out);
        if let Some(fib) = &self.fib {
            write_fib(out, fib);
        }
        self.write_origination(out);
        self.write_config(out);
    }

    fn write_sessions(&self, out: &mut Exposition) {
        let established = self
            .peers
            .iter()
            .filter(|p| p.state == State::Established)
            .count();
        out.single(
            "podroute_bgp_peers_configured",
            "BGP peers in the running configuration.",
            MetricType::Gauge,
            self.peers.len() as f64,
        );
        out.single(
            "podroute_bgp_peers_established",
            "BGP peers whose session is Established.",
            MetricType::Gauge,
            established as f64,
        );
        out.family(
            "podroute_bgp_session_state",
            "BGP session state (RFC 4271 8.2.2; BGP4-MIB bgpPeerState): 1 Idle, 2 Connect, \
             3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established.",
            MetricType::Gauge,
        );
        for p in &self.peers {
            let (peer, peer_as) = (p.address.to_string(), p.remote_as.to_string());
            let labels = [("peer", peer.as_str()), ("peer_as", peer_as.as_str())];
            out.sample(
                "podroute_bgp_session_state",
                &labels,
                f64::from(p.state.mib_value()),
            );
        }
        out.family(
            "podroute_bgp_session_established",
            "1 when the BGP session is Established, else 0.",
            MetricType::Gauge,
        );
        for p in &self.peers {
            let (peer, peer_as) = (p.address.to_string(), p.remote_as.to_string());
            let labels = [("peer", peer.as_str()), ("peer_as", peer_as.as_str())];
            let up = if p.state == State::Established {
                1.0
            } else {
                0.0
            };
            out.sample("podroute_bgp_session_established", &labels, up);
        }
        out.family(
            "podroute_bgp_session_uptime_seconds",
            "Seconds since the BGP session reached Established; 0 when it is not.",
            MetricType::Gauge,
        );
        for p in &self.peers {
            let uptime = p
                .established_since
                .map_or(0, |t| self.now.saturating_duration_since(t).as_secs());
            let peer = p.address.to_string();
            out.sample(
                "podroute_bgp_session_uptime_seconds",
                &[("peer", &peer)],
                uptime as f64,
            );
        }
        out.family(
            "podroute_bgp_session_established_transitions",
            "Times the BGP session reached Established since the daemon started.",
            MetricType::Counter,
        );
        for p in &self.peers {
            let peer = p.address.to_string();
            out.sample(
                "podroute_bgp_session_established_transitions_total",
                &[("peer", &peer)],
                p.established_transitions as f64,
            );
        }
        for (family, help, direction) in [
            (
                "podroute_bgp_messages_received",
                "BGP messages received from the peer, by type, since the daemon started.",
                true,
            ),
            (
                "podroute_bgp_messages_sent",
                "BGP messages sent to the peer, by type, since the daemon started.",
                false,
            ),
        ] {
            out.family(family, help, MetricType::Counter);
            let sample = format!("{family}_total");
            for p in &self.peers {
                let peer = p.address.to_string();
                let counters = if direction { &p.received } else { &p.sent };
                for (kind, value) in MESSAGE_TYPES.iter().zip(by_type(counters)) {
                    out.sample(&sample, &[("peer", &peer), ("type", kind)], value as f64);
                }
            }
        }
    }

    fn write_prefixes(&self, out: &mut Exposition) {
        for (family, help, value) in [
            (
                "podroute_bgp_prefixes_received",
                "Prefixes the peer announced that are held (Adj-RIB-In), accepted or not.",
                (|p: &PeerStatus| p.prefixes_received) as fn(&PeerStatus) -> u64,
            ),
            (
                "podroute_bgp_prefixes_accepted",
                "Received prefixes that passed loop detection, the own-prefix guard and \
                 import policy.",
                |p: &PeerStatus| p.prefixes_accepted,
            ),
            (
                "podroute_bgp_prefixes_advertised",
                "Prefixes advertised to the peer (Adj-RIB-Out).",
                |p: &PeerStatus| p.prefixes_advertised,
            ),
        ] {
            out.family(family, help, MetricType::Gauge);
            for p in &self.peers {
                let peer = p.address.to_string();
                out.sample(family, &[("peer", &peer)], value(p) as f64);
            }
        }
        // The stale counts live in the RIB task.
        if let Some(rib) = &self.rib {
            out.family(
                "podroute_bgp_prefixes_stale",
                "The peer's paths kept from a lost session while it restarts (graceful restart, \
                 RFC 4724 4.2), not yet refreshed.",
                MetricType::Gauge,
            );
            for p in &self.peers {
                let stale = rib.peers.get(&p.address).map_or(0, |c| c.stale);
                let peer = p.address.to_string();
                out.sample(
                    "podroute_bgp_prefixes_stale",
                    &[("peer", &peer)],
                    stale as f64,
                );
            }
        }
    }

    fn write_bfd(&self, out: &mut Exposition) {
        let with_bfd: Vec<&PeerStatus> = self
            .peers
            .iter()
            .filter(|p| p.bfd_config.is_some() || p.bfd.is_some())
            .collect();
        out.family(
            "podroute_bfd_session_state",
            "BFD session state (RFC 5880 4.1): 0 AdminDown, 1 Down, 2 Init, 3 Up. Present once \
             the session started (at the BGP session's first Established).",
            MetricType::Gauge,
        );
        for p in &with_bfd {
            if let Some(bfd) = &p.bfd {
                let peer = p.address.to_string();
                out.sample(
                    "podroute_bfd_session_state",
                    &[("peer", &peer)],
                    f64::from(bfd.state as u8),
                );
            }
        }
        out.family(
            "podroute_bfd_up_transitions",
            "Times the BFD session reached Up since the daemon started.",
            MetricType::Counter,
        );
        for p in &with_bfd {
            let peer = p.address.to_string();
            out.sample(
                "podroute_bfd_up_transitions_total",
                &[("peer", &peer)],
                p.bfd_up_transitions() as f64,
            );
        }
    }

    fn write_rib(&self, out: &mut Exposition) {
        let Some(rib) = &self.rib else {
            return;
        };
        out.family(
            "podroute_bgp_loc_rib_prefixes",
            "Prefixes in the Loc-RIB with at least one path (received or originated), by \
             address family.",
            MetricType::Gauge,
        );
        for (family, count) in [("ipv4", rib.ipv4_prefixes), ("ipv6", rib.ipv6_prefixes)] {
            out.sample(
                "podroute_bgp_loc_rib_prefixes",
                &[("family", family)],
                count as f64,
            );
        }
    }

    fn write_origination(&self, out: &mut Exposition) {
        out.family(
            "podroute_bgp_originated_prefixes",
            "Prefixes this node originates: kind=block (IPAM blocks and the configuration's \
             originate, announced and blackholed), kind=host (addresses borrowed from other \
             nodes' blocks, announced only).",
            MetricType::Gauge,
        );
        for (kind, count) in [
            ("block", self.originated.blocks.len()),
            ("host", self.originated.hosts.len()),
        ] {
            out.sample(
                "podroute_bgp_originated_prefixes",
                &[("kind", kind)],
                count as f64,
            );
        }
        if let Some(connected) = self.ipamd_connected {
            out.single(
                "podroute_bgp_ipamd_connected",
                "1 while the WatchNodeBlocks stream from podroute-ipamd (--ipamd) is up, else 0.",
                MetricType::Gauge,
                if connected { 1.0 } else { 0.0 },
            );
        }
    }

    fn write_config(&self, out: &mut Exposition) {
        out.family(
            "podroute_bgp_config_reloads",
            "Configuration reloads (SIGHUP or file change) since the daemon started: result=ok \
             applied, result=refused kept the running configuration.",
            MetricType::Counter,
        );
        for (result, count) in [("ok", self.reloads_ok), ("refused", self.reloads_refused)] {
            out.sample(
                "podroute_bgp_config_reloads_total",
                &[("result", result)],
                count as f64,
            );
        }
        out.single(
            "podroute_bgp_config_last_reload_successful",
            "0 when the last reload was refused (GetStatus config_error says why), else 1.",
            MetricType::Gauge,
            if self.config_refused { 0.0 } else { 1.0 },
        );
        out.single(
            "podroute_bgp_config_loaded_timestamp_seconds",
            "When the running configuration was loaded, seconds since the Unix epoch.",
            MetricType::Gauge,
            self.config_loaded_unix,
        );
    }
}

fn write_fib(out: &mut Exposition, fib: &crate::fib::FibStatus) {
    out.family(
        "podroute_fib_routes",
        "Kernel routes of ours: state=installed in the kernel table (as last counted), \
         state=pending queued or being written, state=failed refused by the kernel and retried.",
        MetricType::Gauge,
    );
    for (state, count) in [
        ("installed", fib.installed),
        ("pending", fib.pending),
        ("failed", fib.failed),
    ] {
        out.sample("podroute_fib_routes", &[("state", state)], count as f64);
    }
    out.single(
        "podroute_fib_netlink_errors",
        "Route writes the kernel refused (or that could not be written) since the daemon \
         started.",
        MetricType::Counter,
        fib.errors_total as f64,
    );
    out.single(
        "podroute_fib_netlink_socket_failures",
        "Times the FIB's netlink socket failed and was reopened (each followed by a resync).",
        MetricType::Counter,
        fib.socket_failures as f64,
    );
    out.single(
        "podroute_fib_route_writes",
        "Route messages written to the kernel since the daemon started.",
        MetricType::Counter,
        fib.writes_total as f64,
    );
    out.single(
        "podroute_fib_nexthop_objects",
        "Kernel nexthop objects of ours (0 when routes carry their gateways).",
        MetricType::Gauge,
        fib.nexthop_objects as f64,
    );
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::{self, Config};

    fn config(peers: &str) -> Config {
        let text = format!(
            "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: d}}\n\
             spec: {{asNumber: 65001, routerID: 10.0.0.1}}\n{peers}"
        );
        config::parse(
            &text,
            "t.yaml",
            |_| Err(std::io::ErrorKind::NotFound.into()),
        )
        .unwrap()
    }

    fn peer_doc(name: &str, ip: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
             spec: {{peerIP: {ip}, asNumber: 65002{extra}}}\n"
        )
    }

    fn statuses(config: &Config) -> Vec<PeerStatus> {
        config
            .peers
            .values()
            .map(|p| PeerStatus::new(&config.bgp, p))
            .collect()
    }

    #[test]
    fn ready_needs_a_session_unless_there_is_none_to_wait_for() {
        assert_eq!(readiness(&[]), Ok(()));
        let two = config(&format!(
            "{}{}",
            peer_doc("a", "10.0.0.2", ""),
            peer_doc("b", "10.0.0.3", "")
        ));
        let mut peers = statuses(&two);
        assert_eq!(
            readiness(&peers),
            Err("no BGP session Established (0 of 2 peers)".to_string())
        );
        peers[1].state = State::Established;
        assert_eq!(readiness(&peers), Ok(()));
        // A peer shut down by configuration is not waited for.
        let shut = config(&format!(
            "{}{}",
            peer_doc("a", "10.0.0.2", ""),
            peer_doc("b", "10.0.0.3", ", shutdown: true")
        ));
        let mut peers = statuses(&shut);
        assert_eq!(
            readiness(&peers),
            Err("no BGP session Established (0 of 1 peers; 1 more shut down)".to_string())
        );
        peers.remove(0);
        assert_eq!(readiness(&peers), Ok(()));
    }

    #[test]
    fn live_unless_stuck_with_inputs_waiting_or_a_peer_task_ended() {
        let secs = Duration::from_secs;
        // Waiting for input.
        assert_eq!(liveness(&RibActivity::default(), &[]), Ok(()));
        // Busy with a big change for long, but nothing held up behind it.
        let alone = RibActivity {
            stalled_for: secs(3600),
            ..RibActivity::default()
        };
        assert_eq!(liveness(&alone, &[]), Ok(()));
        // A full queue behind a slow step (a kernel under load): live up
        // to the limit.
        let slow = RibActivity {
            queued: crate::speaker::rib::RIB_QUEUE,
            stalled_for: RIB_STALL_LIMIT,
            ..RibActivity::default()
        };
        assert_eq!(liveness(&slow, &[]), Ok(()));
        let stuck = RibActivity {
            queued: 3,
            stalled_for: RIB_STALL_LIMIT + secs(1),
            ..RibActivity::default()
        };
        assert_eq!(
            liveness(&stuck, &[]),
            Err(
                "the RIB task has made no progress for 61s with 3 inputs waiting (limit 60s)"
                    .to_string()
            )
        );
        let stopped = RibActivity {
            stopped: true,
            ..RibActivity::default()
        };
        assert_eq!(
            liveness(&stopped, &[]),
            Err("the RIB task has stopped".to_string())
        );
        // A dead peer task is named first, whatever the RIB does.
        let ended: [IpAddr; 2] = ["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        assert_eq!(
            liveness(&RibActivity::default(), &ended),
            Err(
                "the task of BGP peer 10.0.0.2 has ended (2 in all); restart podroute-bgpd"
                    .to_string()
            )
        );
    }

    #[tokio::test]
    async fn the_port_answers_while_starting_then_as_the_speaker() {
        let port = PortObserver::new(1.7e9, StartPhase::Kernel);
        assert_eq!(port.live().await, Ok(()));
        assert_eq!(
            port.ready().await,
            Err("starting: reading the kernel's routes".to_string())
        );
        port.starting(StartPhase::Ipamd);
        assert_eq!(port.live().await, Ok(()));
        assert_eq!(
            port.ready().await,
            Err("starting: waiting for ipamd's first view of this node's blocks".to_string())
        );
        port.starting(StartPhase::Speaker);
        assert_eq!(
            port.ready().await,
            Err("starting: starting the BGP speaker".to_string())
        );
        // --kube: the wait says what it waits for, and stays live.
        port.starting(StartPhase::Kubernetes);
        port.waiting_for(Some("no BGPConfiguration named \"default\"".into()));
        assert_eq!(port.live().await, Ok(()));
        assert_eq!(
            port.ready().await,
            Err(
                "starting: waiting for the Kubernetes API (Nodes, BGPConfigurations and \
                 BGPPeers): no BGPConfiguration named \"default\""
                    .to_string()
            )
        );
        port.starting(StartPhase::Speaker);
        // The process metrics only: no BGP figure before there is a speaker.
        let scrape = podroute_proto::metrics::parse(&port.metrics().await).unwrap();
        let build = [
            ("daemon", crate::DAEMON_NAME),
            ("version", env!("CARGO_PKG_VERSION")),
        ];
        assert_eq!(scrape.value("podroute_build_info", &build), Some(1.0));
        assert_eq!(
            scrape.value("podroute_process_start_time_seconds", &[]),
            Some(1.7e9)
        );
        assert!(
            scrape
                .types
                .keys()
                .all(|name| !name.starts_with("podroute_bgp_")),
            "{:?}",
            scrape.types
        );

        // The speaker runs (no peers, no listener): its answers from now on.
        let text = "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: d}\n\
                    spec: {asNumber: 65001, routerID: 10.0.0.1, listenPort: 0}\n";
        let config =
            config::parse(text, "t.yaml", |_| Err(std::io::ErrorKind::NotFound.into())).unwrap();
        let speaker = Speaker::start(config).await.unwrap();
        let observer = Arc::new(Observer::new(speaker.clone(), ObserverOptions::default()));
        port.running(observer);
        assert_eq!(port.live().await, Ok(()));
        assert_eq!(port.ready().await, Ok(()));
        let scrape = podroute_proto::metrics::parse(&port.metrics().await).unwrap();
        assert_eq!(
            scrape.value("podroute_bgp_peers_configured", &[]),
            Some(0.0)
        );
        speaker.shutdown("test over").await;
    }

    #[test]
    fn every_family_parses_and_carries_its_peer() {
        let config = config(&format!(
            "{}{}",
            peer_doc("a", "10.0.0.2", ", bfd: {}"),
            peer_doc("b", "2001:db8::3", "")
        ));
        let mut peers = statuses(&config);
        peers[0].state = State::Established;
        peers[0].established_transitions = 3;
        peers[0].received.update = 7;
        peers[0].prefixes_accepted = 5;
        let mut rib = RibSummary {
            ipv4_prefixes: 12,
            ipv6_prefixes: 1,
            ..RibSummary::default()
        };
        rib.peers.insert(
            peers[1].address,
            crate::rib::loc_rib::PeerCounts {
                stale: 4,
                ..Default::default()
            },
        );
        let gathered = Gathered {
            now: Instant::now(),
            peers,
            rib: Some(rib),
            fib: Some(crate::fib::FibStatus {
                installed: 9,
                errors_total: 2,
                ..Default::default()
            }),
            originated: std::sync::Arc::new(Origination {
                blocks: ["10.244.1.0/26".parse().unwrap()].into(),
                hosts: Default::default(),
            }),
            ipamd_connected: Some(true),
            reloads_ok: 1,
            reloads_refused: 2,
            config_loaded_unix: 1.7e9,
            config_refused: true,
        };
        let mut out = Exposition::new();
        gathered.write(&mut out);
        let text = out.finish();
        let scrape = podroute_proto::metrics::parse(&text).unwrap();
        let a = [("peer", "10.0.0.2")];
        let b = [("peer", "2001:db8::3")];
        assert_eq!(
            scrape.value(
                "podroute_bgp_session_state",
                &[("peer", "10.0.0.2"), ("peer_as", "65002")]
            ),
            Some(6.0)
        );
        assert_eq!(scrape.value("podroute_bgp_session_state", &b), Some(1.0));
        assert_eq!(
            scrape.value("podroute_bgp_session_established", &b),
            Some(0.0)
        );
        assert_eq!(
            scrape.value("podroute_bgp_session_established_transitions_total", &a),
            Some(3.0)
        );
        assert_eq!(
            scrape.value(
                "podroute_bgp_messages_received_total",
                &[("peer", "10.0.0.2"), ("type", "update")]
            ),
            Some(7.0)
        );
        assert_eq!(
            scrape.find("podroute_bgp_messages_sent_total", &b).count(),
            MESSAGE_TYPES.len()
        );
        assert_eq!(
            scrape.value("podroute_bgp_prefixes_accepted", &a),
            Some(5.0)
        );
        assert_eq!(scrape.value("podroute_bgp_prefixes_stale", &b), Some(4.0));
        assert_eq!(
            scrape.value("podroute_bgp_peers_configured", &[]),
            Some(2.0)
        );
        assert_eq!(
            scrape.value("podroute_bgp_peers_established", &[]),
            Some(1.0)
        );
        // BFD: configured for a only, and no session started yet.
        assert_eq!(
            scrape.value("podroute_bfd_up_transitions_total", &a),
            Some(0.0)
        );
        assert_eq!(
            scrape.find("podroute_bfd_up_transitions_total", &b).count(),
            0
        );
        assert_eq!(scrape.find("podroute_bfd_session_state", &[]).count(), 0);
        assert_eq!(
            scrape.value("podroute_bgp_loc_rib_prefixes", &[("family", "ipv4")]),
            Some(12.0)
        );
        assert_eq!(
            scrape.value("podroute_fib_routes", &[("state", "installed")]),
            Some(9.0)
        );
        assert_eq!(
            scrape.value("podroute_fib_netlink_errors_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            scrape.value("podroute_bgp_originated_prefixes", &[("kind", "block")]),
            Some(1.0)
        );
        assert_eq!(scrape.value("podroute_bgp_ipamd_connected", &[]), Some(1.0));
        assert_eq!(
            scrape.value(
                "podroute_bgp_config_reloads_total",
                &[("result", "refused")]
            ),
            Some(2.0)
        );
        assert_eq!(
            scrape.value("podroute_bgp_config_last_reload_successful", &[]),
            Some(0.0)
        );
        // Every family has its HELP, and counters are named `_total`
        // (text format 0.0.4: the TYPE line names the sample).
        for (name, kind) in &scrape.types {
            assert!(scrape.help.contains_key(name), "{name} has no HELP");
            assert!(name.starts_with("podroute_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
    }
}
