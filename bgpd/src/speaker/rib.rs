// The RIB task: the one owner of the Loc-RIB. Peer tasks send it the paths
// they accepted (after loop detection, hijack guard and import policy);
// it ranks them, sends each change of a prefix's selected paths to the FIB
// (blackhole for our own prefixes, the resolved next hops of the ECMP set
// otherwise) and each change of best path to every established peer, whose
// task runs export policy and its Adj-RIB-Out. Next hops resolve through
// the kernel's routing table as the FIB reports it; when that table
// changes, affected prefixes are ranked again.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::fib::{FibEvent, FibHandle, FibOp, FibRoute, KernelTable, ResolvedNextHop, RouteState};
use crate::rib::PathAttributes;
use crate::rib::attrs::AttrInterner;
use crate::rib::best_path::{self, Candidate, Source, Step};
use crate::rib::export::Learned;
use crate::rib::loc_rib::{
    Change, LOCAL_PEER, LocRib, Path, PeerCounts, PeerId, RibContext, selected_paths,
};
use crate::rib::policy;
use crate::wire::{Family, Origin, PathAttribute};

use super::graceful::{self, HelperTimers, Sweep};

/// Inputs queued to the RIB task. Bounded: a peer sending faster than the
/// RIB and FIB can take waits, and so does its TCP stream.
pub const RIB_QUEUE: usize = 16;
/// Best path changes sent to peers per message, so a new peer's initial
/// table goes out in pieces.
const EXPORT_CHUNK: usize = 4096;
/// At start, stale kernel routes of ours are removed once every configured
/// peer has sent End-of-RIB, or after this long: a restart must not empty
/// the kernel before the peers had their say.
pub const INITIAL_SYNC_WAIT: Duration = Duration::from_secs(10);
/// How long stopping waits for the kernel to lose our routes.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// What this node originates. `blocks` (its IPAM blocks and the
/// configuration's `originate` prefixes) are announced and blackholed in
/// the kernel, so traffic to an unused address of the block stops here;
/// `hosts` (addresses it borrowed from other nodes' blocks, /32 or /128)
/// are announced only: the CNI plugin owns the pod's kernel route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origination {
    pub blocks: BTreeSet<IpNetwork>,
    pub hosts: BTreeSet<IpNetwork>,
}

impl Origination {
    /// Whether a peer's route for `prefix` would take over one of ours
    /// (the hijack guard, `policy::hijacks`).
    pub fn hijacked_by(&self, prefix: &IpNetwork) -> bool {
        policy::hijacks(prefix, &self.blocks, &self.hosts)
    }

    /// Whether `prefix` is one of our hosts (and not also a block).
    pub fn is_host(&self, prefix: &IpNetwork) -> bool {
        self.hosts.contains(prefix) && !self.blocks.contains(prefix)
    }

    /// Every prefix originated, blocks and hosts.
    pub fn prefixes(&self) -> BTreeSet<IpNetwork> {
        self.blocks.union(&self.hosts).copied().collect()
    }
}

pub enum RibInput {
    /// A session is Established; `out` receives best path changes, starting
    /// with the whole table.
    PeerUp {
        peer: PeerId,
        source: Source,
        out: mpsc::UnboundedSender<PeerMsg>,
        /// The session's families: each sends its own End-of-RIB.
        families: Vec<Family>,
    },
    /// The session went down: its paths go.
    PeerDown { peer: PeerId },
    /// The session was lost with graceful restart in effect (RFC 4724
    /// §4.2): its paths stay, stale, for up to `restart_time`.
    PeerRestarting {
        peer: PeerId,
        restart_time: Duration,
    },
    /// Sent before each PeerUp: how the new session treats the stale
    /// paths of the last one. `kept`: families whose stale paths wait
    /// for End-of-RIB, at most `stale_time` (the others' go at once).
    /// `restarted`: the peer's OPEN had the R bit, or GR is not in effect:
    /// our initial exports need not wait for its End-of-RIB (§3).
    GracefulUp {
        peer: PeerId,
        kept: Vec<Family>,
        stale_time: Duration,
        restarted: bool,
    },
    /// A new ECMP width: every prefix is ranked again.
    SetMaxPaths(usize),
    /// Sends the peer the whole table again (its export settings changed).
    Resend { peer: PeerId },
    /// The peer sent End-of-RIB (RFC 4724 §2) for `family`: its initial
    /// table is in, and its stale paths of that family go.
    EndOfRib { peer: PeerId, family: Family },
    /// The peer's path counts.
    Counts {
        peer: PeerId,
        reply: oneshot::Sender<PeerCounts>,
    },
    /// Sizes for metrics and status, without copying any route.
    Summary { reply: oneshot::Sender<RibSizes> },
    /// Paths from a peer: Some sets, None withdraws.
    Routes {
        peer: PeerId,
        routes: Vec<(IpNetwork, Option<Path>)>,
    },
    /// What this node originates (replaces the previous set).
    Originate(Arc<Origination>),
    Query {
        query: RouteQuery,
        reply: oneshot::Sender<Vec<RibRoute>>,
    },
    /// Removes every route of ours from the kernel and ends the task.
    Shutdown { done: oneshot::Sender<()> },
    /// Ends the task and leaves our routes in the kernel (graceful
    /// restart, RFC 4724 §4.1): peer sessions going down after this
    /// remove nothing.
    Detach { done: oneshot::Sender<()> },
}

/// From the RIB task to one peer's task.
#[derive(Debug)]
pub enum PeerMsg {
    Best(Arc<[BestChange]>),
    /// The whole table has been sent since PeerUp: time for End-of-RIB.
    InitialDone,
    Counts(PeerCounts),
}

#[derive(Debug, Clone)]
pub struct BestChange {
    pub prefix: IpNetwork,
    pub best: Option<BestPath>,
}

#[derive(Debug, Clone)]
pub struct BestPath {
    pub attrs: Arc<PathAttributes>,
    pub from: PeerId,
    pub learned: Learned,
}

/// Which routes a query wants.
#[derive(Debug, Clone, Default)]
pub struct RouteQuery {
    /// The route for this prefix, or else the longest one covering it.
    pub prefix: Option<IpNetwork>,
    /// Only this peer's paths (selected or not, accepted or not).
    pub peer: Option<PeerId>,
    /// Some(true): IPv4 only; Some(false): IPv6 only.
    pub ipv4: Option<bool>,
    /// Only prefixes whose selected route the kernel refused, or that
    /// another program's route shadows.
    pub kernel_problems: bool,
    /// Instead of `prefix`: the routes of these prefixes and of every
    /// prefix covering one of them.
    pub covering: Vec<IpNetwork>,
}

#[derive(Debug, Clone)]
pub struct RibRoute {
    pub prefix: IpNetwork,
    /// Best first.
    pub paths: Vec<RibPath>,
    /// What the FIB did with the prefix; None without a FIB or a route.
    pub kernel: Option<RouteState>,
    /// Another program's route for the same prefix that the kernel prefers
    /// to ours (a lower metric), described; then packets do not follow BGP.
    pub shadowed_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RibPath {
    pub peer: PeerId,
    pub peer_address: Option<IpAddr>,
    pub attrs: Arc<PathAttributes>,
    pub accepted: bool,
    pub reachable: bool,
    pub best: bool,
    /// One of the ECMP paths in use.
    pub multipath: bool,
    /// For a path that lost: the step of best path selection it lost at.
    pub lost_at: Option<Step>,
    /// Resolved next hops, as they go into the kernel.
    pub resolved: Vec<ResolvedNextHop>,
}

/// The Loc-RIB's sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibSizes {
    /// Prefixes with at least one path (accepted or not).
    pub ipv4_prefixes: usize,
    pub ipv6_prefixes: usize,
    /// Each peer's path counts (stale ones included).
    pub peers: HashMap<PeerId, PeerCounts>,
}

/// When the RIB task last stepped forward, readable without asking it
/// (so /livez answers at once even when the task is busy): whether it is
/// waiting for its next input, and when it last took an input, handed a
/// chunk of routes to the FIB or finished a turn.
#[derive(Debug)]
pub struct RibProgress {
    base: Instant,
    /// Milliseconds since `base` of the last step, shifted left by one;
    /// the low bit set while the task waits for input. One atomic, so a
    /// reader never pairs a new state with an old time.
    state: AtomicU64,
}

impl RibProgress {
    fn new() -> RibProgress {
        let progress = RibProgress {
            base: Instant::now(),
            state: AtomicU64::new(0),
        };
        progress.waiting();
        progress
    }

    /// The task waits for its next input: nothing it owes is late.
    fn waiting(&self) {
        self.record(true);
    }

    /// The task took an input or moved on within a turn.
    fn stepped(&self) {
        self.record(false);
    }

    fn record(&self, waiting: bool) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let state = (ms.min(u64::MAX >> 1) << 1) | u64::from(waiting);
        self.state.store(state, Ordering::Relaxed);
    }

    /// How long, at `now`, the task has been busy without a step forward;
    /// zero while it waits for input.
    pub fn stalled_for(&self, now: Instant) -> Duration {
        let state = self.state.load(Ordering::Relaxed);
        if state & 1 == 1 {
            return Duration::ZERO;
        }
        let last = self.base + Duration::from_millis(state >> 1);
        now.saturating_duration_since(last)
    }
}

/// The RIB task's grip: cheap to clone.
#[derive(Clone)]
pub struct RibHandle {
    pub input: mpsc::Sender<RibInput>,
    /// Routes reach the kernel (a FIB runs).
    pub has_fib: bool,
    pub progress: Arc<RibProgress>,
}

impl RibHandle {
    /// Inputs queued and not yet taken by the task.
    pub fn queued(&self) -> usize {
        self.input
            .max_capacity()
            .saturating_sub(self.input.capacity())
    }

    pub async fn query(&self, query: RouteQuery) -> Vec<RibRoute> {
        let (reply, answer) = oneshot::channel();
        if self
            .input
            .send(RibInput::Query { query, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.input.send(RibInput::Shutdown { done }).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Stops the RIB task, leaving the kernel's routes as they are.
    pub async fn detach(&self) {
        let (done, wait) = oneshot::channel();
        if self.input.send(RibInput::Detach { done }).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The Loc-RIB's sizes; None when the RIB task has stopped.
    pub async fn summary(&self) -> Option<RibSizes> {
        let (reply, answer) = oneshot::channel();
        self.input.send(RibInput::Summary { reply }).await.ok()?;
        answer.await.ok()
    }

    /// A peer's path counts (stale ones included).
    pub async fn counts(&self, peer: PeerId) -> PeerCounts {
        let (reply, answer) = oneshot::channel();
        if self
            .input
            .send(RibInput::Counts { peer, reply })
            .await
            .is_err()
        {
            return PeerCounts::default();
        }
        answer.await.unwrap_or_default()
    }
}

/// Starts the RIB task. Without a FIB, nothing reaches the kernel and every
/// next hop counts as reachable. `forwarding_preserved`: the FIB found our
/// routes in the kernel (we restarted); then the initial table and
/// End-of-RIB go to each peer only once every peer sent its End-of-RIB
/// (or restarted too) or INITIAL_SYNC_WAIT passed (RFC 4724 §4.1).
pub fn spawn(
    router_id: Ipv4Addr,
    max_paths: usize,
    expected_peers: usize,
    fib: Option<(FibHandle, mpsc::Receiver<FibEvent>)>,
    forwarding_preserved: bool,
) -> RibHandle {
    let (input, rx) = mpsc::channel(RIB_QUEUE);
    let has_fib = fib.is_some();
    let (fib, fib_events) = match fib {
        Some((handle, events)) => (Some(handle), Some(events)),
        None => (None, None),
    };
    let task = RibTask::new(
        router_id,
        max_paths,
        expected_peers,
        fib,
        forwarding_preserved,
    );
    let progress = task.progress.clone();
    tokio::spawn(task.run(rx, fib_events));
    RibHandle {
        input,
        has_fib,
        progress,
    }
}

/// Peers and next hop reachability: what ranking needs besides the paths.
struct Resolver {
    peers: HashMap<PeerId, Source>,
    local: Source,
    /// A FIB runs: next hops must resolve through the kernel's table.
    enabled: bool,
    kernel: Option<Arc<KernelTable>>,
    /// Every next hop a path uses, resolved against `kernel`.
    resolved: HashMap<IpAddr, Option<Arc<[ResolvedNextHop]>>>,
}

impl Resolver {
    fn resolve(&self, next_hop: IpAddr) -> Option<Arc<[ResolvedNextHop]>> {
        let mut hops = self.kernel.as_ref()?.resolve(next_hop)?;
        hops.sort();
        hops.dedup();
        (!hops.is_empty()).then(|| hops.into())
    }

    /// Makes sure `attrs`' next hop has an entry in `resolved`.
    fn learn(&mut self, attrs: &PathAttributes) {
        if let Some(&hop) = attrs.next_hops.first()
            && !self.resolved.contains_key(&hop)
        {
            let resolved = self.resolve(hop);
            self.resolved.insert(hop, resolved);
        }
    }

    fn hops(&self, path: &Path) -> Option<&Arc<[ResolvedNextHop]>> {
        let hop = path.attrs.next_hops.first()?;
        self.resolved.get(hop)?.as_ref()
    }
}

impl RibContext for Resolver {
    fn source(&self, peer: PeerId) -> Option<&Source> {
        if peer == LOCAL_PEER {
            Some(&self.local)
        } else {
            self.peers.get(&peer)
        }
    }

    fn reachable(&self, path: &Path) -> bool {
        path.peer == LOCAL_PEER || !self.enabled || self.hops(path).is_some()
    }
}

struct RibTask {
    rib: LocRib,
    interner: AttrInterner,
    resolver: Resolver,
    outputs: HashMap<PeerId, mpsc::UnboundedSender<PeerMsg>>,
    originated: Arc<Origination>,
    local_attrs: Arc<PathAttributes>,
    fib: Option<FibHandle>,
    /// Built while handling one input, written when it is done.
    fib_ops: Vec<FibOp>,
    exports: Vec<BestChange>,
    /// Until the first full sync with the kernel is done.
    initial: Option<InitialSync>,
    /// Restarting peers whose stale paths we keep (RFC 4724 §4.2).
    helper: HelperTimers,
    /// For /livez: marked at every step forward.
    progress: Arc<RibProgress>,
}

struct InitialSync {
    /// The FIB's request, held until the peers are in.
    generation: Option<u64>,
    deadline: Instant,
    expected_peers: usize,
    /// Peers that sent End-of-RIB for every family of their session.
    done: BTreeSet<PeerId>,
    /// Families whose End-of-RIB an up peer has not sent yet (RFC 4724
    /// §4.1 defers per family: an IPv4 End-of-RIB says nothing of IPv6).
    awaiting: HashMap<PeerId, BTreeSet<Family>>,
    /// We restarted with our routes in the kernel: initial exports wait.
    defer_exports: bool,
    /// Peers whose End-of-RIB we no longer wait for before exporting:
    /// sent it, restarted themselves, or have no graceful restart.
    exports_ready: BTreeSet<PeerId>,
    /// Established peers whose initial table waits.
    deferred: BTreeSet<PeerId>,
}

impl InitialSync {
    fn ready(&self) -> bool {
        self.done.len() >= self.expected_peers || Instant::now() >= self.deadline
    }

    /// Whether initial exports still wait (RFC 4724 §4.1).
    fn deferring(&self) -> bool {
        self.defer_exports && self.exports_ready.len() < self.expected_peers && !self.ready()
    }
}

impl RibTask {
    fn new(
        router_id: Ipv4Addr,
        max_paths: usize,
        expected_peers: usize,
        fib: Option<FibHandle>,
        forwarding_preserved: bool,
    ) -> RibTask {
        RibTask {
            rib: LocRib::new(max_paths),
            interner: AttrInterner::new(),
            resolver: Resolver {
                peers: HashMap::new(),
                local: Source {
                    local: true,
                    ebgp: false,
                    router_id,
                    address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    rr_client: false,
                },
                enabled: fib.is_some(),
                kernel: None,
                resolved: HashMap::new(),
            },
            outputs: HashMap::new(),
            originated: Arc::default(),
            local_attrs: Arc::new(PathAttributes {
                attributes: vec![PathAttribute::Origin(Origin::Igp)],
                next_hops: Vec::new(),
            }),
            fib,
            fib_ops: Vec::new(),
            exports: Vec::new(),
            initial: Some(InitialSync {
                generation: None,
                deadline: Instant::now() + INITIAL_SYNC_WAIT,
                expected_peers,
                done: BTreeSet::new(),
                awaiting: HashMap::new(),
                defer_exports: forwarding_preserved,
                exports_ready: BTreeSet::new(),
                deferred: BTreeSet::new(),
            }),
            helper: HelperTimers::default(),
            progress: Arc::new(RibProgress::new()),
        }
    }

    async fn run(
        mut self,
        mut input: mpsc::Receiver<RibInput>,
        mut fib_events: Option<mpsc::Receiver<FibEvent>>,
    ) {
        loop {
            self.progress.waiting();
            tokio::select! {
                message = input.recv() => match self.took(message) {
                    Some(RibInput::Shutdown { done }) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(RibInput::Detach { done }) => {
                        self.detach().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(RibInput::PeerDown { peer }) => self.peer_down(peer).await,
                    Some(message @ (RibInput::PeerRestarting { .. }
                        | RibInput::GracefulUp { .. }
                        | RibInput::EndOfRib { .. })) => self.graceful(message).await,
                    Some(message) => self.handle(message),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(event) = recv(&mut fib_events) => self.fib_event(self.took(event)).await,
                () = initial_deadline(&self.initial) => self.progress.stepped(),
                () = sleep_until(self.helper.next_deadline()) => {
                    self.progress.stepped();
                    self.helper_expired().await;
                }
            }
            self.release_exports();
            self.initial_sync().await;
            self.flush().await;
        }
    }

    /// Marks taking `input` as a step forward.
    fn took<T>(&self, input: T) -> T {
        self.progress.stepped();
        input
    }

    fn handle(&mut self, message: RibInput) {
        match message {
            RibInput::PeerUp {
                peer,
                source,
                out,
                families,
            } => {
                let address = source.address;
                self.resolver.peers.insert(peer, source);
                if let Some(initial) = &mut self.initial
                    && !initial.done.contains(&peer)
                {
                    initial
                        .awaiting
                        .insert(peer, families.into_iter().collect());
                }
                match &mut self.initial {
                    Some(initial) if initial.deferring() => {
                        tracing::debug!(peer = %address, "initial exports wait for the peers' End-of-RIB");
                        initial.deferred.insert(peer);
                    }
                    _ => {
                        self.send_table(&out);
                        let _ = out.send(PeerMsg::InitialDone);
                    }
                }
                self.outputs.insert(peer, out);
            }
            RibInput::SetMaxPaths(max_paths) => {
                self.rib.set_max_paths(max_paths);
                for change in self.rib.reselect(&self.resolver, |_| true) {
                    self.changed(change);
                }
            }
            RibInput::Resend { peer } => {
                if let Some(out) = self.outputs.get(&peer) {
                    self.send_table(out);
                }
            }
            RibInput::Counts { peer, reply } => {
                let _ = reply.send(self.rib.counts(peer));
            }
            RibInput::Summary { reply } => {
                let (ipv4_prefixes, ipv6_prefixes) = self.rib.len_by_family();
                let _ = reply.send(RibSizes {
                    ipv4_prefixes,
                    ipv6_prefixes,
                    peers: self.rib.all_counts().collect(),
                });
            }
            // Handled in run(): they write as they go.
            RibInput::PeerDown { .. }
            | RibInput::PeerRestarting { .. }
            | RibInput::GracefulUp { .. }
            | RibInput::EndOfRib { .. }
            | RibInput::Detach { .. } => {}
            RibInput::Routes { peer, routes } => {
                // The prefixes of one UPDATE share one attribute set: hash
                // and resolve it once, not once a prefix.
                let mut last: Option<(Arc<PathAttributes>, Arc<PathAttributes>)> = None;
                for (prefix, path) in routes {
                    let path = path.map(|mut p| {
                        p.attrs = match &last {
                            Some((seen, shared)) if Arc::ptr_eq(seen, &p.attrs) => shared.clone(),
                            _ => {
                                let shared = self.interner.intern(p.attrs.clone());
                                self.resolver.learn(&shared);
                                last = Some((p.attrs, shared.clone()));
                                shared
                            }
                        };
                        p
                    });
                    if let Some(change) = self.rib.update(prefix, peer, path, &self.resolver) {
                        self.changed(change);
                    }
                }
                self.interner.purge();
                if let Some(out) = self.outputs.get(&peer) {
                    let _ = out.send(PeerMsg::Counts(self.rib.counts(peer)));
                }
            }
            RibInput::Originate(origination) => self.originate(origination),
            RibInput::Query { query, reply } => {
                let _ = reply.send(self.query(&query));
            }
            RibInput::Shutdown { .. } => {}
        }
    }

    /// How logs name a peer: its address, as every other event does.
    fn peer_label(&self, peer: PeerId) -> String {
        match self.resolver.peers.get(&peer) {
            Some(source) => source.address.to_string(),
            None => format!("#{peer}"),
        }
    }

    /// Withdraws a peer's paths, writing the kernel and telling the other
    /// peers chunk by chunk.
    async fn peer_down(&mut self, peer: PeerId) {
        self.outputs.remove(&peer);
        self.helper.remove(peer);
        if let Some(initial) = &mut self.initial {
            initial.deferred.remove(&peer);
            initial.awaiting.remove(&peer);
        }
        loop {
            let (changes, more) = self.rib.remove_peer(peer, EXPORT_CHUNK, &self.resolver);
            for change in changes {
                self.changed(change);
            }
            self.flush().await;
            if !more {
                break;
            }
        }
        self.resolver.peers.remove(&peer);
    }

    /// The helper side of graceful restart (RFC 4724 §4.2).
    async fn graceful(&mut self, message: RibInput) {
        let now = Instant::now();
        match message {
            RibInput::PeerRestarting { peer, restart_time } => {
                self.outputs.remove(&peer);
                if let Some(initial) = &mut self.initial {
                    initial.deferred.remove(&peer);
                }
                let stale = self.rib.mark_stale(peer);
                tracing::info!(
                    peer = %self.peer_label(peer),
                    stale,
                    ?restart_time,
                    "peer restarting: its routes stay, stale"
                );
                self.helper.restarting(peer, now, restart_time);
            }
            RibInput::GracefulUp {
                peer,
                kept,
                stale_time,
                restarted,
            } => {
                if restarted && let Some(initial) = &mut self.initial {
                    initial.exports_ready.insert(peer);
                }
                match self.helper.session_up(peer, now, &kept, stale_time) {
                    Some(Sweep::All) => self.sweep(peer, None).await,
                    Some(Sweep::Families(families)) => {
                        for family in families {
                            if let Some(ipv4) = graceful::family_filter(family) {
                                self.sweep(peer, Some(ipv4)).await;
                            }
                        }
                    }
                    None => {}
                }
            }
            RibInput::EndOfRib { peer, family } => {
                if let Some(initial) = &mut self.initial {
                    let rest = initial.awaiting.get_mut(&peer).map(|families| {
                        families.remove(&family);
                        families.len()
                    });
                    if rest.unwrap_or(0) == 0 {
                        initial.awaiting.remove(&peer);
                        initial.done.insert(peer);
                        initial.exports_ready.insert(peer);
                    }
                }
                if self.helper.end_of_rib(peer, family)
                    && let Some(ipv4) = graceful::family_filter(family)
                {
                    self.sweep(peer, Some(ipv4)).await;
                }
            }
            _ => {}
        }
    }

    /// Restart or stale routes time ran out: the stale paths go.
    async fn helper_expired(&mut self) {
        for (peer, away) in self.helper.expired(Instant::now()) {
            tracing::info!(
                peer = %self.peer_label(peer),
                away,
                "graceful restart time over; removing stale routes"
            );
            self.sweep(peer, None).await;
            if away && self.rib.counts(peer).received == 0 {
                self.resolver.peers.remove(&peer);
            }
        }
    }

    /// Removes a peer's stale paths (of one family when `ipv4` is Some),
    /// chunk by chunk as `peer_down`.
    async fn sweep(&mut self, peer: PeerId, ipv4: Option<bool>) {
        loop {
            let (changes, more) = self
                .rib
                .sweep_stale(peer, ipv4, EXPORT_CHUNK, &self.resolver);
            for change in changes {
                self.changed(change);
            }
            self.flush().await;
            if !more {
                break;
            }
        }
        if let Some(out) = self.outputs.get(&peer) {
            let _ = out.send(PeerMsg::Counts(self.rib.counts(peer)));
        }
    }

    /// Sends the deferred initial tables once no peer's End-of-RIB is
    /// awaited any more.
    fn release_exports(&mut self) {
        let Some(initial) = &mut self.initial else {
            return;
        };
        if initial.deferring() {
            return;
        }
        initial.defer_exports = false;
        let deferred = std::mem::take(&mut initial.deferred);
        if !deferred.is_empty() {
            tracing::info!(
                peers = deferred.len(),
                "peers' End-of-RIB in; sending our routes"
            );
        }
        for peer in deferred {
            if let Some(out) = self.outputs.get(&peer) {
                self.send_table(out);
                let _ = out.send(PeerMsg::InitialDone);
            }
        }
    }

    /// Moves to a new origination: added prefixes get a local path,
    /// removed ones lose it. Blocks get (and lose) their blackhole; hosts
    /// never touch the kernel, and a prefix that changes kind gets or loses
    /// its blackhole.
    fn originate(&mut self, wanted: Arc<Origination>) {
        let old = std::mem::replace(&mut self.originated, wanted.clone());
        let (before, after) = (old.prefixes(), wanted.prefixes());
        for &prefix in before.difference(&after) {
            if let Some(change) = self.rib.update(prefix, LOCAL_PEER, None, &self.resolver) {
                // A host's /32 leaves our kernel alone, unless a peer's
                // path takes over (a route we must install).
                let fib = !old.is_host(&prefix) || !change.selected.is_empty();
                self.changed_with(change, fib);
            }
        }
        for &prefix in after.difference(&before) {
            let path = Path::new(LOCAL_PEER, self.local_attrs.clone(), true);
            if let Some(change) = self
                .rib
                .update(prefix, LOCAL_PEER, Some(path), &self.resolver)
            {
                self.changed(change);
            }
        }
        for &prefix in before.intersection(&after) {
            let (was_host, is_host) = (old.is_host(&prefix), wanted.is_host(&prefix));
            if was_host == is_host {
                continue;
            }
            let local_best = self
                .rib
                .get(&prefix)
                .and_then(|paths| paths.first())
                .is_some_and(|p| p.selected() && p.peer == LOCAL_PEER);
            if local_best {
                self.fib_ops.push(if is_host {
                    FibOp::Remove(prefix)
                } else {
                    FibOp::Set(prefix, FibRoute::Blackhole)
                });
            }
        }
    }

    /// Queues the FIB operation and the export for one changed prefix.
    fn changed(&mut self, change: Change) {
        self.changed_with(change, true);
    }

    /// As `changed`; `fib: false` leaves the kernel alone.
    fn changed_with(&mut self, change: Change, fib: bool) {
        if fib && let Some(op) = self.fib_op(change.prefix, &change.selected) {
            self.fib_ops.push(op);
        }
        let best = change.selected.first().map(|p| BestPath {
            attrs: p.attrs.clone(),
            from: p.peer,
            learned: self.learned(p.peer),
        });
        self.exports.push(BestChange {
            prefix: change.prefix,
            best,
        });
    }

    fn learned(&self, peer: PeerId) -> Learned {
        match self.resolver.source(peer) {
            Some(s) if s.local => Learned::Local,
            Some(s) if s.ebgp => Learned::Ebgp,
            Some(s) => Learned::Ibgp {
                from_client: s.rr_client,
                sender: s.router_id,
            },
            // Not reached: every path's peer is known until PeerDown.
            None => Learned::Ibgp {
                from_client: false,
                sender: Ipv4Addr::UNSPECIFIED,
            },
        }
    }

    /// The kernel route for a prefix's selected paths; None for a host we
    /// originate (the CNI plugin owns its route).
    fn fib_op(&self, prefix: IpNetwork, selected: &[Path]) -> Option<FibOp> {
        Some(match selected {
            [] => FibOp::Remove(prefix),
            [first, ..] if first.peer == LOCAL_PEER => {
                if self.originated.is_host(&prefix) {
                    return None;
                }
                FibOp::Set(prefix, FibRoute::Blackhole)
            }
            [only] => match self.resolver.hops(only) {
                Some(hops) => FibOp::Set(prefix, FibRoute::Unicast(hops.clone())),
                None => FibOp::Remove(prefix),
            },
            many => {
                let mut hops: Vec<ResolvedNextHop> = many
                    .iter()
                    .filter_map(|p| self.resolver.hops(p))
                    .flat_map(|h| h.iter().copied())
                    .collect();
                hops.sort();
                hops.dedup();
                if hops.is_empty() {
                    FibOp::Remove(prefix)
                } else {
                    FibOp::Set(prefix, FibRoute::Unicast(hops.into()))
                }
            }
        })
    }

    /// Sends the whole table to a new peer, in pieces.
    fn send_table(&self, out: &mpsc::UnboundedSender<PeerMsg>) {
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
        for (prefix, paths) in self.rib.iter() {
            let Some(best) = paths.first().filter(|p| p.selected()) else {
                continue;
            };
            chunk.push(BestChange {
                prefix,
                best: Some(BestPath {
                    attrs: best.attrs.clone(),
                    from: best.peer,
                    learned: self.learned(best.peer),
                }),
            });
            if chunk.len() == EXPORT_CHUNK {
                let _ = out.send(PeerMsg::Best(std::mem::take(&mut chunk).into()));
            }
        }
        if !chunk.is_empty() {
            let _ = out.send(PeerMsg::Best(chunk.into()));
        }
    }

    async fn fib_event(&mut self, event: FibEvent) {
        match event {
            FibEvent::ResyncRequested { generation } => {
                if let Some(initial) = &mut self.initial {
                    initial.generation = Some(generation);
                    return;
                }
                self.resync(generation).await;
            }
            FibEvent::KernelTable(table) => self.kernel_changed(table),
        }
    }

    /// Answers the FIB's first resync once the peers are in.
    async fn initial_sync(&mut self) {
        let Some(initial) = &self.initial else {
            return;
        };
        if !initial.ready() {
            return;
        }
        let generation = initial.generation;
        if self.fib.is_none() || generation.is_some() {
            self.initial = None;
        }
        if let Some(generation) = generation {
            tracing::info!(
                peers_in = self.outputs.len(),
                "initial routes in; removing stale kernel routes"
            );
            self.resync(generation).await;
        }
    }

    /// Sends the FIB every route we want, then lets it remove the rest.
    async fn resync(&mut self, generation: u64) {
        let Some(fib) = self.fib.clone() else {
            return;
        };
        // Built before the first wait (the Loc-RIB cannot be borrowed
        // across one): one op a prefix, no copies of its paths.
        let ops: Vec<FibOp> = self
            .rib
            .iter()
            .filter_map(|(prefix, paths)| {
                let selected = selected_paths(paths);
                if selected.is_empty() {
                    return None;
                }
                self.fib_op(prefix, selected)
            })
            .collect();
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            fib.apply(ops.by_ref().take(EXPORT_CHUNK).collect()).await;
            self.progress.stepped();
        }
        fib.sync_done(generation).await;
    }

    /// Resolves every next hop again; prefixes using one that changed are
    /// ranked again and rewritten in the kernel.
    fn kernel_changed(&mut self, table: Arc<KernelTable>) {
        self.resolver.kernel = Some(table);
        let hops: Vec<IpAddr> = self.resolver.resolved.keys().copied().collect();
        let mut moved = std::collections::HashSet::new();
        for hop in hops {
            let now = self.resolver.resolve(hop);
            if self.resolver.resolved.get(&hop) != Some(&now) {
                self.resolver.resolved.insert(hop, now);
                moved.insert(hop);
            }
        }
        if moved.is_empty() {
            return;
        }
        let uses_moved = |p: &Path| p.attrs.next_hops.first().is_some_and(|h| moved.contains(h));
        let changes = self.rib.reselect(&self.resolver, uses_moved);
        let reselected: BTreeSet<IpNetwork> = changes.iter().map(|c| c.prefix).collect();
        for change in changes {
            self.changed(change);
        }
        // Same selection, other gateway: only the kernel route changes.
        let rewrite: Vec<FibOp> = self
            .rib
            .iter()
            .filter(|(prefix, _)| !reselected.contains(prefix))
            .filter_map(|(prefix, paths)| {
                let selected = selected_paths(paths);
                if !selected.iter().any(uses_moved) {
                    return None;
                }
                self.fib_op(prefix, selected)
            })
            .collect();
        self.fib_ops.extend(rewrite);
        // Drop resolutions no path needs any more.
        if self.resolver.resolved.len() > 1024 {
            let used: std::collections::HashSet<IpAddr> = self
                .rib
                .iter()
                .flat_map(|(_, paths)| {
                    paths
                        .iter()
                        .filter_map(|p| p.attrs.next_hops.first().copied())
                })
                .collect();
            self.resolver.resolved.retain(|hop, _| used.contains(hop));
        }
    }

    /// Writes what handling one input produced.
    async fn flush(&mut self) {
        if !self.exports.is_empty() {
            let exports: Arc<[BestChange]> = std::mem::take(&mut self.exports).into();
            let deferred = self.initial.as_ref().map(|i| &i.deferred);
            for (peer, out) in &self.outputs {
                // Its whole table goes when released.
                if deferred.is_some_and(|d| d.contains(peer)) {
                    continue;
                }
                let _ = out.send(PeerMsg::Best(exports.clone()));
            }
        }
        let ops = std::mem::take(&mut self.fib_ops);
        if let Some(fib) = &self.fib {
            // In chunks, each a step forward: a big change waiting on the
            // kernel is slow, not stuck.
            let mut ops = ops.into_iter().peekable();
            while ops.peek().is_some() {
                fib.apply(ops.by_ref().take(EXPORT_CHUNK).collect()).await;
                self.progress.stepped();
            }
        }
        self.progress.stepped();
    }

    /// Removes our routes from the kernel (as BIRD does when it stops) and
    /// waits, boundedly, for the FIB to write that.
    async fn shutdown(&mut self) {
        // Not our hosts: their routes are the CNI plugin's.
        let prefixes: Vec<IpNetwork> = self
            .rib
            .iter()
            .map(|(p, _)| p)
            .filter(|p| !self.originated.is_host(p))
            .collect();
        self.fib_ops.extend(prefixes.into_iter().map(FibOp::Remove));
        self.exports.clear();
        self.flush().await;
        let Some(fib) = &self.fib else {
            return;
        };
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while fib.status().pending > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Ends without removing our routes: writes what is queued and waits,
    /// boundedly, for the FIB to confirm it.
    async fn detach(&mut self) {
        self.exports.clear();
        self.flush().await;
        let Some(fib) = &self.fib else {
            return;
        };
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while fib.status().pending > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn query(&self, query: &RouteQuery) -> Vec<RibRoute> {
        let mut routes: Vec<RibRoute> = match query.prefix {
            _ if !query.covering.is_empty() => self.covering(&query.covering),
            Some(prefix) => self.lookup(prefix).into_iter().collect(),
            None => self
                .rib
                .iter()
                .filter(|(p, _)| query.ipv4.is_none_or(|v4| p.is_ipv4() == v4))
                .filter(|(p, paths)| !query.kernel_problems || self.kernel_problem(*p, paths))
                .map(|(prefix, paths)| self.describe(prefix, paths))
                .collect(),
        };
        if let Some(peer) = query.peer {
            for route in &mut routes {
                route.paths.retain(|p| p.peer == peer);
            }
            routes.retain(|r| !r.paths.is_empty());
        }
        routes.sort_by_key(|r| r.prefix);
        routes
    }

    /// Whether the kernel refused `prefix`'s selected route or another
    /// program's route for it wins: two lookups, no allocation, so a full
    /// table is scanned cheaply.
    fn kernel_problem(&self, prefix: IpNetwork, paths: &[Path]) -> bool {
        let Some(fib) = &self.fib else {
            return false;
        };
        // Our borrowed host addresses are the CNI plugin's to route.
        if !paths.first().is_some_and(Path::selected) || self.originated.is_host(&prefix) {
            return false;
        }
        if matches!(fib.route_state(&prefix), RouteState::Failed(_)) {
            return true;
        }
        self.resolver
            .kernel
            .as_ref()
            .and_then(|table| table.exact(prefix))
            .is_some_and(|(metric, _)| metric < fib.metric())
    }

    /// The routes of `prefixes` and of every prefix covering one of them,
    /// each once: a lookup per prefix length.
    fn covering(&self, prefixes: &[IpNetwork]) -> Vec<RibRoute> {
        let mut found = BTreeSet::new();
        for prefix in prefixes {
            for len in 0..=prefix.prefix() {
                if let Ok(covering) = IpNetwork::new(prefix.network(), len)
                    && let Ok(covering) = IpNetwork::new(covering.network(), len)
                    && self.rib.get(&covering).is_some()
                {
                    found.insert(covering);
                }
            }
        }
        found
            .into_iter()
            .filter_map(|prefix| Some(self.describe(prefix, self.rib.get(&prefix)?)))
            .collect()
    }

    /// The route for `prefix`, or the longest one covering it.
    fn lookup(&self, prefix: IpNetwork) -> Option<RibRoute> {
        (0..=prefix.prefix()).rev().find_map(|len| {
            let covering = IpNetwork::new(prefix.network(), len).ok()?;
            let covering = IpNetwork::new(covering.network(), len).ok()?;
            self.rib
                .get(&covering)
                .map(|paths| self.describe(covering, paths))
        })
    }

    fn describe(&self, prefix: IpNetwork, paths: &[Path]) -> RibRoute {
        let best = paths.first().filter(|p| p.selected());
        let candidate = |p: &'_ Path| -> Option<Source> {
            (p.accepted() && self.resolver.reachable(p))
                .then(|| self.resolver.source(p.peer).copied())
                .flatten()
        };
        let best_source = best.and_then(&candidate);
        let paths = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let lost_at = match (best, best_source, candidate(p)) {
                    (Some(b), Some(bs), Some(ps)) if i > 0 => Some(
                        best_path::compare(
                            &Candidate {
                                attrs: &b.attrs,
                                source: &bs,
                            },
                            &Candidate {
                                attrs: &p.attrs,
                                source: &ps,
                            },
                        )
                        .1,
                    ),
                    _ => None,
                };
                RibPath {
                    peer: p.peer,
                    peer_address: self
                        .resolver
                        .source(p.peer)
                        .filter(|s| !s.local)
                        .map(|s| s.address),
                    attrs: p.attrs.clone(),
                    accepted: p.accepted(),
                    reachable: self.resolver.reachable(p),
                    best: i == 0 && p.selected(),
                    multipath: p.selected(),
                    lost_at,
                    resolved: self
                        .resolver
                        .hops(p)
                        .map(|h| h.to_vec())
                        .unwrap_or_default(),
                }
            })
            .collect();
        // A borrowed host address of ours is never the FIB's: the CNI
        // plugin's route carries it.
        let kernel = match (&self.fib, best) {
            (Some(fib), Some(_)) if !self.originated.is_host(&prefix) => {
                Some(fib.route_state(&prefix))
            }
            _ => None,
        };
        let shadowed_by = match (&self.fib, &self.resolver.kernel, &kernel) {
            (Some(fib), Some(table), Some(_)) => table
                .exact(prefix)
                .filter(|(metric, _)| *metric < fib.metric())
                .map(|(metric, target)| format!("{target} (metric {metric})")),
            _ => None,
        };
        RibRoute {
            prefix,
            paths,
            kernel,
            shadowed_by,
        }
    }
}

async fn initial_deadline(initial: &Option<InitialSync>) {
    match initial {
        Some(i) if i.generation.is_some() || !i.deferred.is_empty() => {
            tokio::time::sleep_until(i.deadline).await
        }
        _ => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    fn origination(blocks: &[&str], hosts: &[&str]) -> RibInput {
        RibInput::Originate(Arc::new(Origination {
            blocks: blocks.iter().map(|t| net(t)).collect(),
            hosts: hosts.iter().map(|t| net(t)).collect(),
        }))
    }

    fn task() -> RibTask {
        RibTask::new(Ipv4Addr::new(192, 0, 2, 1), 1, 0, None, false)
    }

    /// The FIB ops and exported prefixes one input produced.
    fn run(task: &mut RibTask, input: RibInput) -> (Vec<FibOp>, Vec<(IpNetwork, bool)>) {
        task.handle(input);
        let exports = std::mem::take(&mut task.exports)
            .into_iter()
            .map(|c| (c.prefix, c.best.is_some()))
            .collect();
        (std::mem::take(&mut task.fib_ops), exports)
    }

    #[test]
    fn blocks_are_blackholed_hosts_only_announced() {
        let mut t = task();
        let (ops, exports) = run(
            &mut t,
            origination(&["10.244.1.0/26"], &["10.244.9.5/32", "fd00:9::5/128"]),
        );
        assert_eq!(ops, [FibOp::Set(net("10.244.1.0/26"), FibRoute::Blackhole)]);
        assert_eq!(
            exports,
            [
                (net("10.244.1.0/26"), true),
                (net("10.244.9.5/32"), true),
                (net("fd00:9::5/128"), true)
            ]
        );
        // Withdrawn: the block's blackhole goes, the hosts never touch the
        // kernel (the CNI plugin's /32 route stays).
        let (ops, exports) = run(&mut t, origination(&[], &[]));
        assert_eq!(ops, [FibOp::Remove(net("10.244.1.0/26"))]);
        assert_eq!(exports.len(), 3);
        assert!(exports.iter().all(|(_, best)| !best));
    }

    #[test]
    fn a_prefix_changing_kind_gets_or_loses_its_blackhole() {
        let mut t = task();
        run(&mut t, origination(&[], &["10.244.9.5/32"]));
        let (ops, exports) = run(&mut t, origination(&["10.244.9.5/32"], &[]));
        assert_eq!(ops, [FibOp::Set(net("10.244.9.5/32"), FibRoute::Blackhole)]);
        assert!(exports.is_empty(), "still announced, nothing to re-send");
        let (ops, _) = run(&mut t, origination(&[], &["10.244.9.5/32"]));
        assert_eq!(ops, [FibOp::Remove(net("10.244.9.5/32"))]);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_counts_busy_time_since_the_last_step_only() {
        let secs = Duration::from_secs;
        let progress = RibProgress::new();
        // Waiting for input is never a stall, however long.
        tokio::time::advance(secs(600)).await;
        assert_eq!(progress.stalled_for(Instant::now()), Duration::ZERO);
        // Took an input: busy from then on until the next step.
        progress.stepped();
        tokio::time::advance(secs(30)).await;
        assert_eq!(progress.stalled_for(Instant::now()), secs(30));
        progress.stepped();
        assert_eq!(progress.stalled_for(Instant::now()), Duration::ZERO);
        tokio::time::advance(secs(90)).await;
        assert_eq!(progress.stalled_for(Instant::now()), secs(90));
        progress.waiting();
        assert_eq!(progress.stalled_for(Instant::now()), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_rib_task_waits_with_nothing_queued() {
        let rib = spawn(Ipv4Addr::new(192, 0, 2, 1), 1, 0, None, false);
        rib.input
            .send(origination(&["10.244.1.0/26"], &[]))
            .await
            .unwrap();
        // Answered: the origination before it was taken too, and (one
        // thread) the task ran on to wait for its next input.
        assert!(rib.summary().await.is_some());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(rib.queued(), 0);
        assert_eq!(rib.progress.stalled_for(Instant::now()), Duration::ZERO);
    }

    #[test]
    fn covering_finds_a_prefix_and_every_route_over_it_once() {
        let mut t = task();
        run(
            &mut t,
            origination(&["10.244.0.0/16", "10.244.1.0/26", "10.245.0.0/26"], &[]),
        );
        let query = |covering: &[&str]| {
            let query = RouteQuery {
                covering: covering.iter().map(|p| net(p)).collect(),
                ..RouteQuery::default()
            };
            t.query(&query)
                .iter()
                .map(|r| r.prefix.to_string())
                .collect::<Vec<_>>()
        };
        // The block's own route and the aggregate over it, not the
        // unrelated one; a block only the aggregate covers gets that.
        assert_eq!(
            query(&["10.244.1.0/26", "10.244.2.0/26"]),
            ["10.244.0.0/16", "10.244.1.0/26"]
        );
        assert_eq!(query(&["10.246.0.0/26"]), Vec::<String>::new());
    }

    #[test]
    fn a_resync_writes_blocks_not_hosts() {
        let mut t = task();
        run(&mut t, origination(&["10.244.1.0/26"], &["10.244.9.5/32"]));
        let ops: Vec<FibOp> = t
            .rib
            .iter()
            .filter_map(|(prefix, paths)| t.fib_op(prefix, selected_paths(paths)))
            .collect();
        assert_eq!(ops, [FibOp::Set(net("10.244.1.0/26"), FibRoute::Blackhole)]);
        assert_eq!(t.query(&RouteQuery::default()).len(), 2);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod graceful_tests {
    use super::*;

    fn source() -> Source {
        Source {
            local: false,
            ebgp: true,
            router_id: Ipv4Addr::new(10, 0, 0, 2),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            rr_client: false,
        }
    }

    async fn graceful_up(
        rib: &RibHandle,
        peer: PeerId,
        kept: &[Family],
        stale_s: u64,
        restarted: bool,
    ) {
        let up = RibInput::GracefulUp {
            peer,
            kept: kept.to_vec(),
            stale_time: Duration::from_secs(stale_s),
            restarted,
        };
        rib.input.send(up).await.unwrap();
    }

    /// PeerUp for `peer` with `families`; the receiver of what it is sent.
    async fn peer_up(
        rib: &RibHandle,
        peer: PeerId,
        families: &[Family],
    ) -> mpsc::UnboundedReceiver<PeerMsg> {
        let (out, rx) = mpsc::unbounded_channel();
        let up = RibInput::PeerUp {
            peer,
            source: source(),
            out,
            families: families.to_vec(),
        };
        rib.input.send(up).await.unwrap();
        rx
    }

    async fn end_of_rib(rib: &RibHandle, peer: PeerId, family: Family) {
        rib.input
            .send(RibInput::EndOfRib { peer, family })
            .await
            .unwrap();
    }

    async fn restarting(rib: &RibHandle, restart_s: u64) {
        let input = RibInput::PeerRestarting {
            peer: 1,
            restart_time: Duration::from_secs(restart_s),
        };
        rib.input.send(input).await.unwrap();
    }

    fn path(next_hop: &str) -> Path {
        let attrs = PathAttributes {
            attributes: vec![PathAttribute::Origin(Origin::Igp)],
            next_hops: vec![next_hop.parse().unwrap()],
        };
        Path::new(1, Arc::new(attrs), true)
    }

    /// A RIB with peer 1 up and one IPv4 and one IPv6 prefix from it.
    async fn rib_with_routes() -> (RibHandle, mpsc::UnboundedReceiver<PeerMsg>) {
        let rib = spawn(Ipv4Addr::new(10, 0, 0, 1), 1, 1, None, false);
        let rx = peer_up(&rib, 1, &[Family::IPV4_UNICAST]).await;
        let input = &rib.input;
        let routes = vec![
            ("10.1.0.0/26".parse().unwrap(), Some(path("192.0.2.2"))),
            (
                "2001:db8:1::/64".parse().unwrap(),
                Some(path("2001:db8::2")),
            ),
        ];
        input
            .send(RibInput::Routes { peer: 1, routes })
            .await
            .unwrap();
        (rib, rx)
    }

    async fn prefixes(rib: &RibHandle) -> Vec<String> {
        rib.query(RouteQuery::default())
            .await
            .iter()
            .filter(|r| r.paths.iter().any(|p| p.best))
            .map(|r| r.prefix.to_string())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn stale_paths_wait_for_the_restart_time_then_go() {
        let (rib, _rx) = rib_with_routes().await;
        restarting(&rib, 120).await;
        assert_eq!(rib.counts(1).await.stale, 2);
        tokio::time::sleep(Duration::from_secs(119)).await;
        // Still used (and exported) while the peer restarts.
        assert_eq!(prefixes(&rib).await.len(), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(prefixes(&rib).await, Vec::<String>::new());
        assert_eq!(rib.counts(1).await, PeerCounts::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_family_without_the_f_bit_goes_at_once_the_other_at_its_end_of_rib() {
        let (rib, _rx) = rib_with_routes().await;
        restarting(&rib, 120).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        graceful_up(&rib, 1, &[Family::IPV4_UNICAST], 360, false).await;
        let _rx2 = peer_up(&rib, 1, &[Family::IPV4_UNICAST]).await;
        assert_eq!(prefixes(&rib).await, vec!["10.1.0.0/26".to_string()]);
        assert_eq!(rib.counts(1).await.stale, 1);
        end_of_rib(&rib, 1, Family::IPV4_UNICAST).await;
        assert_eq!(prefixes(&rib).await, Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn stale_routes_time_bounds_the_wait_for_end_of_rib() {
        let (rib, _rx) = rib_with_routes().await;
        let input = &rib.input;
        restarting(&rib, 120).await;
        graceful_up(
            &rib,
            1,
            &[Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            30,
            true,
        )
        .await;
        // The peer sends one prefix again, never End-of-RIB.
        let routes = vec![("10.1.0.0/26".parse().unwrap(), Some(path("192.0.2.2")))];
        input
            .send(RibInput::Routes { peer: 1, routes })
            .await
            .unwrap();
        assert_eq!(rib.counts(1).await.stale, 1);
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert_eq!(prefixes(&rib).await.len(), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(prefixes(&rib).await, vec!["10.1.0.0/26".to_string()]);
        assert_eq!(rib.counts(1).await.stale, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_exports_wait_for_the_peers_end_of_rib_when_we_restarted() {
        // Forwarding preserved: two peers; the table goes out once both are
        // in (one sent End-of-RIB, the other restarted too).
        let rib = spawn(Ipv4Addr::new(10, 0, 0, 1), 1, 2, None, true);
        let input = &rib.input;
        input
            .send(RibInput::Originate(Arc::new(Origination {
                blocks: ["10.9.0.0/26".parse().unwrap()].into(),
                hosts: BTreeSet::new(),
            })))
            .await
            .unwrap();
        graceful_up(&rib, 1, &[], 360, false).await;
        let mut rx = peer_up(&rib, 1, &[Family::IPV4_UNICAST]).await;
        let _ = rib.counts(1).await;
        assert!(rx.try_recv().is_err(), "nothing before the peers are in");
        end_of_rib(&rib, 1, Family::IPV4_UNICAST).await;
        let _ = rib.counts(1).await;
        assert!(rx.try_recv().is_err(), "peer 2 not in yet");
        graceful_up(&rib, 2, &[], 360, true).await;
        let _ = rib.counts(1).await;
        assert!(matches!(rx.try_recv(), Ok(PeerMsg::Best(b)) if b.len() == 1));
        assert!(matches!(rx.try_recv(), Ok(PeerMsg::InitialDone)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dual_stack_peer_is_in_only_after_both_end_of_ribs() {
        // RFC 4724 §4.1 per family: an IPv4 End-of-RIB alone must not
        // release the exports (nor the kernel sweep) while IPv6 routes are
        // still coming.
        let rib = spawn(Ipv4Addr::new(10, 0, 0, 1), 1, 1, None, true);
        graceful_up(&rib, 1, &[], 360, false).await;
        let mut rx = peer_up(&rib, 1, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST]).await;
        end_of_rib(&rib, 1, Family::IPV4_UNICAST).await;
        let _ = rib.counts(1).await;
        assert!(rx.try_recv().is_err(), "IPv6 End-of-RIB still awaited");
        end_of_rib(&rib, 1, Family::IPV6_UNICAST).await;
        let _ = rib.counts(1).await;
        assert!(matches!(rx.try_recv(), Ok(PeerMsg::InitialDone)));
    }
}
