// What the agent tells about itself: Prometheus figures on /metrics, /livez
// and /readyz (podroute_proto::observe serves them), and the admin API's
// GetStatus. Three inputs: what the reconcile loop reports of its passes
// (`LoopStats`), what it last programmed (the `View`), and the kernel's
// packet counters of our DROP rules (drops.rs: read when asked, a scrape
// or a GetStatus, and every 10 s while a pod is isolated; one read at a
// time, reused for a second). See METRICS.md.

mod drops;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podroute_proto::metrics::{Exposition, Histogram, MetricType, write_process_metrics};
use podroute_proto::observe::{Observe, Uptime};
use podroute_proto::policy::v1::{Denial, Direction as DirectionMessage, PolicyRef, PolicyStatus};
use tokio::sync::watch;

use crate::agent::View;
use crate::apply::runner::{COMMAND_TIMEOUT, Runner};
use crate::model::cluster::{Direction, ObjectKey};
use crate::render::DropReason;
use drops::{CounterRead, DropCounters, DropReader, FRESH_FOR};
pub use drops::{CounterSource, RulePackets};

/// A pass that has run this long is stuck: it runs at most five kernel
/// tools one after another (the reads run together), each killed after
/// COMMAND_TIMEOUT, and one more for compiling and rendering a large
/// cluster.
pub const STUCK_AFTER: Duration = COMMAND_TIMEOUT.saturating_mul(6);

/// The (direction, reason) pairs our DROP rules count: the series of
/// podroute_policy_dropped_packets_total, present from the start.
const DROP_SERIES: [(Direction, DropReason); 7] = [
    (Direction::Ingress, DropReason::Policy),
    (Direction::Egress, DropReason::Policy),
    (Direction::Ingress, DropReason::UnknownPod),
    (Direction::Egress, DropReason::UnknownPod),
    (Direction::Egress, DropReason::Spoofed),
    (Direction::Ingress, DropReason::NoAddress),
    (Direction::Egress, DropReason::NoAddress),
];

/// Whether a pass read the kernel back first (a resync, the first pass,
/// a retry) or trusted what the agent last wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Full,
    Incremental,
}

impl SyncKind {
    pub fn label(self) -> &'static str {
        match self {
            SyncKind::Full => "full",
            SyncKind::Incremental => "incremental",
        }
    }
}

/// What the reconcile loop reports of its passes. Shared between the loop
/// and the observers; every update is a few atomics or a short lock.
#[derive(Debug)]
pub struct LoopStats {
    full: Histogram,
    incremental: Histogram,
    ok: AtomicU64,
    failed: AtomicU64,
    state: Mutex<LoopState>,
}

#[derive(Debug, Default)]
struct LoopState {
    /// When the pass under way started; None between passes.
    busy_since: Option<Instant>,
    /// Why the last pass failed; None once one succeeds.
    last_error: Option<String>,
    /// Passes failed since the last success.
    failures_in_a_row: u64,
    ended: bool,
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats {
            full: Histogram::latency(),
            incremental: Histogram::latency(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            state: Mutex::new(LoopState::default()),
        }
    }
}

/// Marks the loop ended when dropped (a return or a panic).
#[derive(Debug)]
pub struct EndGuard<'a>(&'a LoopStats);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.0.state().ended = true;
    }
}

impl LoopStats {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, LoopState> {
        // The state stays consistent whatever panicked while holding it:
        // each update is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold for as long as the loop runs.
    pub fn end_guard(&self) -> EndGuard<'_> {
        EndGuard(self)
    }

    pub fn pass_started(&self) {
        self.state().busy_since = Some(Instant::now());
    }

    pub fn pass_failed(&self, kind: SyncKind, took: Duration, error: String) {
        self.histogram(kind).observe(took);
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        state.busy_since = None;
        state.last_error = Some(error);
        state.failures_in_a_row += 1;
    }

    /// Records a successful pass; returns how many had failed in a row
    /// before it.
    pub fn pass_succeeded(&self, kind: SyncKind, took: Duration) -> u64 {
        self.histogram(kind).observe(took);
        self.ok.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state();
        state.busy_since = None;
        state.last_error = None;
        std::mem::take(&mut state.failures_in_a_row)
    }

    fn histogram(&self, kind: SyncKind) -> &Histogram {
        match kind {
            SyncKind::Full => &self.full,
            SyncKind::Incremental => &self.incremental,
        }
    }

    /// Successful and failed passes since start.
    pub fn syncs(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    pub fn last_error(&self) -> Option<String> {
        self.state().last_error.clone()
    }

    /// Live: the loop has not ended, and no pass has run for longer than
    /// `STUCK_AFTER`. Waiting for a change is no sign of trouble.
    pub fn live(&self) -> Result<(), String> {
        let state = self.state();
        if state.ended {
            return Err("the reconcile loop has ended".to_string());
        }
        match state.busy_since {
            Some(since) if since.elapsed() > STUCK_AFTER => Err(format!(
                "a sync has been running for {}s (more than {}s: stuck)",
                since.elapsed().as_secs(),
                STUCK_AFTER.as_secs()
            )),
            _ => Ok(()),
        }
    }

    fn busy(&self) -> bool {
        self.state().busy_since.is_some()
    }
}

/// The agent as /metrics, the probes and GetStatus see it.
#[derive(Debug)]
pub struct Observer {
    node: String,
    source: String,
    view: watch::Receiver<Option<Arc<View>>>,
    stats: Arc<LoopStats>,
    uptime: Arc<Uptime>,
    /// The kernel counters of our DROP rules.
    drops: Arc<DropReader>,
}

impl Observer {
    /// `source` describes where the view comes from ("manifests PATH",
    /// "kubernetes"); `runner` runs iptables-save where the agent
    /// programs.
    pub fn new(
        node: String,
        source: String,
        view: watch::Receiver<Option<Arc<View>>>,
        stats: Arc<LoopStats>,
        uptime: Arc<Uptime>,
        runner: Runner,
    ) -> Self {
        Self::with_counters(node, source, view, stats, uptime, Arc::new(runner))
    }

    /// `new` with the drop counters read from `counters`.
    pub fn with_counters(
        node: String,
        source: String,
        view: watch::Receiver<Option<Arc<View>>>,
        stats: Arc<LoopStats>,
        uptime: Arc<Uptime>,
        counters: Arc<dyn CounterSource>,
    ) -> Self {
        Observer {
            node,
            source,
            drops: Arc::new(DropReader::new(counters, view.clone(), FRESH_FOR)),
            view,
            stats,
            uptime,
        }
    }

    /// What the agent last programmed; None before the first sync.
    pub fn view(&self) -> Option<Arc<View>> {
        self.view.borrow().clone()
    }

    /// Ready once the first sync is done: the rules of a complete view of
    /// the cluster are in force. It stays ready when a later sync fails
    /// (those rules stay; GetStatus and the metrics tell).
    pub fn ready_now(&self) -> Result<(), String> {
        if self.view.borrow().is_some() {
            return Ok(());
        }
        if let Some(error) = self.stats.last_error() {
            return Err(format!("first sync failed: {error}"));
        }
        if self.stats.busy() {
            return Err(format!(
                "first sync in progress (a view of the cluster came from {})",
                self.source
            ));
        }
        Err(format!(
            "waiting for the first view of the cluster from {}",
            self.source
        ))
    }

    /// The GetStatus answer, with the drop counters read now (or within
    /// the last FRESH_FOR).
    pub async fn status(&self) -> PolicyStatus {
        let (ok, failed) = self.stats.syncs();
        let mut status = PolicyStatus {
            health: Some(self.uptime.health(self.stats.live(), self.ready_now())),
            node: self.node.clone(),
            source: self.source.clone(),
            syncs: ok,
            failed_syncs: failed,
            last_error: self.stats.last_error().unwrap_or_default(),
            ..PolicyStatus::default()
        };
        let Some(CounterRead {
            view,
            packets: read,
            ..
        }) = self.drops.read().await
        else {
            return status;
        };
        let figures = Figures::of(&view);
        status.last_sync_seconds_ago = Some(
            SystemTime::now()
                .duration_since(view.synced_at)
                .unwrap_or_default()
                .as_secs(),
        );
        status.last_sync_duration_ms =
            u64::try_from(view.sync_duration.as_millis()).unwrap_or(u64::MAX);
        status.policies = count32(figures.policies);
        status.endpoints = count32(figures.endpoints);
        status.isolated_endpoints = count32(figures.isolated);
        status.rules = view.report.rules as u64;
        status.ipsets = count32(view.ipsets);
        status.ipset_members = view.report.set_members as u64;
        status.refused = view.problems.iter().map(ToString::to_string).collect();
        match read {
            Ok(read) => {
                status.denials = denials(&view, &read, &self.drops.counters(), Instant::now());
                status.unknown_pod_dropped_packets = view
                    .drops
                    .iter()
                    .filter(|(_, d)| d.reason == DropReason::UnknownPod)
                    .filter_map(|(key, _)| read.get(key))
                    .sum();
            }
            Err(e) => status.denials_error = e,
        }
        status
    }

    /// Reads the drop counters every 10 s while a pod is isolated, until the
    /// reconcile loop ends: spawn it beside the loop.
    pub fn poll_drops(&self) -> impl Future<Output = ()> + Send + 'static {
        drops::poll(self.drops.clone())
    }

    /// The Prometheus text (METRICS.md lists every family).
    pub async fn metrics_text(&self) -> String {
        // Moves the dropped-packets totals; failures are counted below.
        let view = match self.drops.read().await {
            Some(read) => Some(read.view),
            None => self.view(),
        };
        let mut out = Exposition::new();
        let name = "podroute_policy_sync_duration_seconds";
        out.family(
            name,
            "How long a sync took, from a view of the cluster to the kernel programmed, failed ones included. kind: full (read the kernel back first) or incremental.",
            MetricType::Histogram,
        );
        for kind in [SyncKind::Full, SyncKind::Incremental] {
            out.histogram(name, &[("kind", kind.label())], self.stats.histogram(kind));
        }
        let (ok, failed) = self.stats.syncs();
        out.family(
            "podroute_policy_syncs",
            "Syncs (passes of the reconcile loop) since start, by result.",
            MetricType::Counter,
        );
        out.sample(
            "podroute_policy_syncs_total",
            &[("result", "ok")],
            ok as f64,
        );
        out.sample(
            "podroute_policy_syncs_total",
            &[("result", "error")],
            failed as f64,
        );
        let last = view.as_ref().map_or(0.0, |v| {
            v.synced_at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        });
        out.single(
            "podroute_policy_last_sync_timestamp_seconds",
            "When the last successful sync ended, seconds since the Unix epoch; 0 before the first.",
            MetricType::Gauge,
            last,
        );
        if let Some(view) = &view {
            write_view_figures(&mut out, view);
        }
        {
            let totals = self.drops.counters();
            out.family(
                "podroute_policy_dropped_packets",
                "Packets our DROP rules dropped, from their kernel counters. reason: policy (no policy isolating the pod allowed it), unknown_pod (a pod interface the agent has no policy for yet), spoofed (not from the pod's address), no_address (the pod has no address of that family).",
                MetricType::Counter,
            );
            for (direction, reason) in DROP_SERIES {
                out.sample(
                    "podroute_policy_dropped_packets_total",
                    &[
                        ("direction", &direction.to_string()),
                        ("reason", reason.label()),
                    ],
                    totals.total(direction, reason) as f64,
                );
            }
        }
        out.single(
            "podroute_policy_counter_read_errors",
            "Reads of the drop rules' kernel counters (iptables-save -c) that failed.",
            MetricType::Counter,
            self.drops.read_errors() as f64,
        );
        write_process_metrics(
            &mut out,
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            self.uptime.started_unix(),
        );
        out.finish()
    }
}

impl Observe for Observer {
    async fn metrics(&self) -> String {
        self.metrics_text().await
    }

    async fn live(&self) -> Result<(), String> {
        self.stats.live()
    }

    async fn ready(&self) -> Result<(), String> {
        self.ready_now()
    }
}

/// Counts from a view, shared by GetStatus and /metrics.
struct Figures {
    policies: usize,
    endpoints: usize,
    /// Isolated in either direction.
    isolated: usize,
    ingress_isolated: usize,
    egress_isolated: usize,
}

impl Figures {
    fn of(view: &View) -> Figures {
        let endpoints = &view.compiled.endpoints;
        let mut policies: Vec<&ObjectKey> = view.compiled.policies.keys().map(|(k, _)| k).collect();
        policies.dedup();
        Figures {
            policies: policies.len(),
            endpoints: endpoints.len(),
            isolated: endpoints
                .iter()
                .filter(|e| e.ingress.is_some() || e.egress.is_some())
                .count(),
            ingress_isolated: endpoints.iter().filter(|e| e.ingress.is_some()).count(),
            egress_isolated: endpoints.iter().filter(|e| e.egress.is_some()).count(),
        }
    }
}

fn write_view_figures(out: &mut Exposition, view: &View) {
    let figures = Figures::of(view);
    let gauges = [
        (
            "podroute_policy_rules",
            "iptables rules of ours in force, both families, hooks included.",
            view.report.rules,
        ),
        (
            "podroute_policy_ipsets",
            "ipsets of ours in force.",
            view.ipsets,
        ),
        (
            "podroute_policy_ipset_members",
            "Members of our ipsets.",
            view.report.set_members,
        ),
        (
            "podroute_policy_endpoints",
            "Pods on this node the agent programs.",
            figures.endpoints,
        ),
        (
            "podroute_policy_policies",
            "NetworkPolicies that isolate at least one pod on this node.",
            figures.policies,
        ),
        (
            "podroute_policy_refused_objects",
            "Namespaces, Pods and NetworkPolicies refused by validation (not in force).",
            view.problems.len(),
        ),
    ];
    for (name, help, value) in gauges {
        out.single(name, help, MetricType::Gauge, value as f64);
    }
    let name = "podroute_policy_isolated_endpoints";
    out.family(
        name,
        "Pods on this node selected by a policy for that direction.",
        MetricType::Gauge,
    );
    out.sample(
        name,
        &[("direction", "ingress")],
        figures.ingress_isolated as f64,
    );
    out.sample(
        name,
        &[("direction", "egress")],
        figures.egress_isolated as f64,
    );
}

/// Packets the kernel counted on each endpoint's last DROP (no policy
/// allowed them), both families summed, with the policies isolating it
/// and how recent the drops are (as of `now`); only endpoints with packets
/// counted now or dropped recently, in key and direction order.
fn denials(view: &View, read: &RulePackets, counters: &DropCounters, now: Instant) -> Vec<Denial> {
    let mut packets: BTreeMap<(&ObjectKey, Direction), u64> = BTreeMap::new();
    for (key, drop) in view.drops.iter() {
        let (DropReason::Policy, Some(endpoint)) = (drop.reason, &drop.endpoint) else {
            continue;
        };
        if let Some(&count) = read.get(key) {
            *packets.entry((endpoint, drop.direction)).or_default() += count;
        }
    }
    // Rewritten chains count from zero; their drops may still be recent.
    for pod in counters.seen_dropping() {
        packets.entry(pod).or_default();
    }
    packets
        .into_iter()
        .filter_map(|((key, direction), count)| {
            let recent = counters.recent(key, direction, now);
            if count == 0 && recent.packets == 0 {
                return None;
            }
            let policies = view
                .compiled
                .endpoint(key)
                .and_then(|e| e.policies(direction))
                .unwrap_or_default()
                .iter()
                .map(|p| PolicyRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                })
                .collect();
            Some(Denial {
                namespace: key.namespace.clone(),
                pod: key.name.clone(),
                direction: match direction {
                    Direction::Ingress => DirectionMessage::Ingress,
                    Direction::Egress => DirectionMessage::Egress,
                } as i32,
                packets: count,
                policies,
                last_drop_seconds_ago: recent.last_drop_seconds_ago,
                recent_packets: recent.packets,
            })
        })
        .collect()
}

fn count32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyReport;
    use crate::compile::compile;
    use crate::model::test_fixtures::xyz_with;
    use crate::render::{Family, RenderOptions, render_with_drops};

    pub(super) const DENY_X: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 80}]\n";

    pub(super) fn view(policies: &str) -> View {
        let cluster = xyz_with(policies);
        let compiled = Arc::new(compile(&cluster, "n1"));
        let (dataplane, drops) = render_with_drops(&compiled, &RenderOptions::default());
        View {
            cluster,
            compiled,
            problems: Vec::new(),
            synced_at: SystemTime::now(),
            sync_duration: Duration::from_millis(3),
            report: ApplyReport::default(),
            ipsets: dataplane.sets.len(),
            drops: Arc::new(drops),
        }
    }

    /// The read the kernel would give: `packets` on the drop rules matching.
    pub(super) fn read(
        view: &View,
        mut packets: impl FnMut(&crate::render::DropRule) -> u64,
    ) -> RulePackets {
        view.drops
            .iter()
            .map(|(key, drop)| (key.clone(), packets(drop)))
            .collect()
    }

    #[test]
    fn denials_name_the_endpoint_direction_and_isolating_policies() {
        let view = view(DENY_X);
        let xa = ObjectKey::new("x", "a");
        // 5 IPv4 and 2 IPv6 packets into x/a; nothing out of it; a
        // spoofed packet, which is no denial.
        let read = read(&view, |d| match (d.reason, d.direction, d.family) {
            (DropReason::Policy, Direction::Ingress, Family::V4) => 5,
            (DropReason::Policy, Direction::Ingress, Family::V6) => 2,
            (DropReason::Spoofed, _, _) => 1,
            _ => 0,
        });
        // Counts carried from before the agent: how many, not when.
        let mut counters = DropCounters::default();
        let now = Instant::now();
        counters.fold(&read, &view.drops, now);
        let denials = denials(&view, &read, &counters, now);
        assert_eq!(denials.len(), 1, "{denials:?}");
        let denial = &denials[0];
        assert_eq!(
            (denial.namespace.as_str(), denial.pod.as_str()),
            (xa.namespace.as_str(), xa.name.as_str())
        );
        assert_eq!(denial.direction, DirectionMessage::Ingress as i32);
        assert_eq!(denial.packets, 7);
        assert_eq!(
            (denial.last_drop_seconds_ago, denial.recent_packets),
            (None, 0)
        );
        let names: Vec<&str> = denial.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["deny", "web"]);

        // Egress isolated only by x/deny.
        let read = read_egress(&view);
        let denials = super::denials(&view, &read, &counters, now);
        assert_eq!(denials.len(), 1);
        assert_eq!(denials[0].direction, DirectionMessage::Egress as i32);
        let names: Vec<&str> = denials[0]
            .policies
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, vec!["deny"]);
    }

    #[test]
    fn denials_tell_how_recent_the_drops_are() {
        let view = view(DENY_X);
        let xa = |n: u64| {
            read(&view, move |d| {
                u64::from(d.reason == DropReason::Policy && d.direction == Direction::Ingress) * n
            })
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut counters = DropCounters::default();
        counters.fold(&xa(3), &view.drops, t0);
        // 2 more packets (1 per family) seen at 10 s: asked at 25 s.
        counters.fold(&xa(4), &view.drops, at(10));
        let denial = |counters: &DropCounters, read: &RulePackets, now: u64| {
            let denials = denials(&view, read, counters, at(now));
            assert!(denials.len() <= 1, "{denials:?}");
            denials
                .first()
                .map(|d| (d.packets, d.last_drop_seconds_ago, d.recent_packets))
        };
        assert_eq!(denial(&counters, &xa(4), 25), Some((8, Some(15), 2)));
        // Long after: listed with its count, the drops no longer recent.
        assert_eq!(denial(&counters, &xa(4), 3600), Some((8, Some(3590), 0)));
        // x/a's chain rewritten (counting from zero) soon after its drops:
        // still listed while they are recent.
        counters.fold(&xa(0), &view.drops, at(20));
        assert_eq!(denial(&counters, &xa(0), 30), Some((0, Some(20), 2)));
        assert_eq!(denial(&counters, &xa(0), 3600), None);
    }

    fn read_egress(view: &View) -> RulePackets {
        read(view, |d| {
            u64::from(d.reason == DropReason::Policy && d.direction == Direction::Egress)
        })
    }

    #[test]
    fn a_loop_that_ended_or_hangs_is_not_live() {
        let stats = LoopStats::new();
        assert_eq!(stats.live(), Ok(()));
        stats.pass_started();
        assert_eq!(stats.live(), Ok(()), "a pass under way");
        stats.state().busy_since = Instant::now().checked_sub(STUCK_AFTER * 2);
        let error = stats.live().unwrap_err();
        assert!(error.contains("stuck"), "{error}");
        stats.pass_failed(SyncKind::Full, Duration::from_millis(5), "boom".into());
        assert_eq!(stats.live(), Ok(()));
        assert_eq!(stats.last_error().as_deref(), Some("boom"));
        assert_eq!(stats.pass_succeeded(SyncKind::Full, Duration::ZERO), 1);
        assert_eq!(stats.last_error(), None);
        assert_eq!(stats.syncs(), (1, 1));
        drop(stats.end_guard());
        assert_eq!(stats.live(), Err("the reconcile loop has ended".into()));
    }

    #[tokio::test]
    async fn ready_after_the_first_sync_and_why_not_before() {
        let (tx, rx) = watch::channel(None);
        let stats = Arc::new(LoopStats::new());
        let observer = Observer::new(
            "n1".into(),
            "manifests /nowhere".into(),
            rx,
            stats.clone(),
            Arc::new(Uptime::new()),
            Runner::host(),
        );
        assert_eq!(
            observer.ready_now(),
            Err("waiting for the first view of the cluster from manifests /nowhere".into())
        );
        stats.pass_started();
        assert!(
            observer
                .ready_now()
                .unwrap_err()
                .starts_with("first sync in progress")
        );
        stats.pass_failed(
            SyncKind::Full,
            Duration::ZERO,
            "iptables-restore: no".into(),
        );
        assert_eq!(
            observer.ready_now(),
            Err("first sync failed: iptables-restore: no".into())
        );
        tx.send_replace(Some(Arc::new(view(DENY_X))));
        assert_eq!(observer.ready_now(), Ok(()));
        // A later failure leaves it ready: the rules stay in force.
        stats.pass_failed(SyncKind::Incremental, Duration::ZERO, "again".into());
        assert_eq!(observer.ready_now(), Ok(()));
    }

    /// Counters the test sets.
    #[derive(Debug, Default)]
    struct SetCounters(Mutex<RulePackets>);

    impl CounterSource for SetCounters {
        fn read(&self) -> Result<RulePackets, String> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn status_tells_drops_from_before_and_since_the_start() {
        let view = view(DENY_X);
        let xa_in = |n: u64| {
            read(&view, move |d| {
                u64::from(d.reason == DropReason::Policy && d.direction == Direction::Ingress) * n
            })
        };
        let counters = Arc::new(SetCounters::default());
        *counters.0.lock().unwrap() = xa_in(5);
        let (tx, rx) = watch::channel(Some(Arc::new(view.clone())));
        let observer = Observer::with_counters(
            "n1".into(),
            "manifests /nowhere".into(),
            rx,
            Arc::new(LoopStats::new()),
            Arc::new(Uptime::new()),
            counters.clone(),
        );
        // Found in force at start: how many, not when.
        let status = observer.status().await;
        let d = &status.denials[0];
        assert_eq!(
            (d.packets, d.last_drop_seconds_ago, d.recent_packets),
            (10, None, 0),
            "{status:?}"
        );
        *counters.0.lock().unwrap() = xa_in(8);
        // The same rules again: a view the last read is not of, read anew.
        tx.send_replace(Some(Arc::new(view.clone())));
        let status = observer.status().await;
        let d = &status.denials[0];
        assert_eq!((d.packets, d.recent_packets), (16, 6), "{status:?}");
        assert!(d.last_drop_seconds_ago.is_some(), "{status:?}");
        let text = observer.metrics_text().await;
        let scrape = podroute_proto::metrics::parse(&text).unwrap();
        assert_eq!(
            scrape.value(
                "podroute_policy_dropped_packets_total",
                &[("direction", "ingress"), ("reason", "policy")]
            ),
            Some(16.0)
        );
    }

    #[test]
    fn figures_count_policies_once_whatever_their_directions() {
        let figures = Figures::of(&view(DENY_X));
        assert_eq!(figures.policies, 2);
        assert_eq!(figures.endpoints, 3);
        assert_eq!(figures.isolated, 1);
        assert_eq!((figures.ingress_isolated, figures.egress_isolated), (1, 1));
    }
}
