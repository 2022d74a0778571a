// One peer's task: it owns the peer's session FSM, its connections (up to
// two while a collision is being resolved, RFC 4271 §6.8) and its
// Adj-RIB-Out. It turns socket reads, connect results, timer deadlines and
// admin commands into FSM events and carries out the FSM's actions. What
// the peer sends passes loop detection, the hijack guard and import policy
// here and goes to the RIB task; what the RIB task selects comes back and
// passes export policy into the Adj-RIB-Out. Nothing else touches this
// state; the admin API sees a published snapshot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use ipnetwork::IpNetwork;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::bfd::{BfdHandle, BfdState, BfdStatus};
use crate::config::{BgpConfiguration, MaxPrefixAction, PeerConfig, RoutePolicy};
use crate::rib::attrs::AttrInterner;
use crate::rib::best_path::Source;
use crate::rib::export::{ExportTarget, export};
use crate::rib::inbound;
use crate::rib::loc_rib::{Path, PeerCounts, PeerId};
use crate::rib::policy::{self, PolicyContext, Verdict};
use crate::rib::{AdjRibOut, OutboundSession, Route};
use crate::session::transport::{self, ConnectOptions};
use crate::session::{Action, ConnId, Direction, DownReason, Event, Session, State};
use crate::wire::iana::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use crate::wire::{Afi, Family, Message, Notification, RouteRefresh, RouteRefreshSubtype, Update};

use super::connection::{Connection, Incoming};
use super::graceful::HelperState;
use super::rib::{Origination, PeerMsg, RibHandle, RibInput};
use super::status::{Carried, PeerStatus};

/// Commands queued to a peer's task. Bounded: the admin API and the
/// speaker wait rather than grow memory.
const COMMAND_QUEUE: usize = 64;
/// How long an outgoing TCP connect may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which of a peer's RIBs a route query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RibSide {
    Received,
    Advertised,
}

pub enum PeerCommand {
    /// A connection from this peer's address, accepted by the listener.
    Incoming(TcpStream),
    /// New settings that need no session restart (policy, next-hop-self,
    /// max-prefix, description): applied in place.
    Reconfigure(Box<PeerConfig>),
    /// The Adj-RIB-Out.
    Advertised {
        /// Some(true): IPv4 only; Some(false): IPv6 only.
        ipv4: Option<bool>,
        reply: oneshot::Sender<Vec<Route>>,
    },
    /// Ends the session (sending `notification` if a connection is up) and
    /// the task.
    Stop {
        notification: Option<Notification>,
        done: oneshot::Sender<()>,
    },
    /// We stop for a restart: with graceful restart in effect the session
    /// closes without a NOTIFICATION, so the peer keeps our routes (RFC
    /// 4724 §4.1); otherwise as Stop with `notification`.
    Restarting {
        notification: Notification,
        done: oneshot::Sender<()>,
    },
}

/// The speaker's grip on a running peer task.
pub struct PeerHandle {
    pub id: PeerId,
    pub commands: mpsc::Sender<PeerCommand>,
    pub status: watch::Receiver<PeerStatus>,
    pub config: PeerConfig,
}

impl PeerHandle {
    /// Stops the session and waits for the task to finish sending.
    pub async fn stop(&self, notification: Option<Notification>) {
        self.stop_with(|done| PeerCommand::Stop { notification, done })
            .await;
    }

    /// Stops for a restart (see PeerCommand::Restarting) and waits.
    pub async fn stop_for_restart(&self, notification: Notification) {
        self.stop_with(|done| PeerCommand::Restarting { notification, done })
            .await;
    }

    async fn stop_with(&self, command: impl FnOnce(oneshot::Sender<()>) -> PeerCommand) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(command(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// How a peer's task starts besides its configuration.
#[derive(Default)]
pub struct PeerStart {
    /// The FIB found our routes in the kernel at start (we restarted,
    /// RFC 4724 §3).
    pub forwarding_preserved: bool,
    pub bfd: Option<BfdHandle>,
    /// The counters of the task this one replaces.
    pub carried: Carried,
}

/// Starts the task for `peer`.
pub fn spawn(
    global: &BgpConfiguration,
    peer: PeerConfig,
    id: PeerId,
    rib: RibHandle,
    originate: watch::Receiver<Arc<Origination>>,
    start: PeerStart,
) -> PeerHandle {
    let PeerStart {
        forwarding_preserved,
        bfd,
        carried,
    } = start;
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let mut status = PeerStatus::new(global, &peer);
    status.carry_on(carried);
    let (status_tx, status_rx) = watch::channel(status);
    let mut task = PeerTask::new(global, peer.clone(), id, rib, originate, status_tx);
    task.forwarding_preserved = forwarding_preserved;
    task.restart_until = peer
        .graceful_restart
        .map(|gr| Instant::now() + Duration::from_secs(gr.restart_time.into()));
    task.set_graceful_capability();
    task.bfd = bfd.map(PeerBfd::new);
    tokio::spawn(task.run(command_rx));
    PeerHandle {
        id,
        commands,
        status: status_rx,
        config: peer,
    }
}

struct PeerTask {
    peer: PeerConfig,
    global: BgpConfiguration,
    id: PeerId,
    session: Session,
    connections: Vec<Connection>,
    connecting: JoinSet<(ConnId, std::io::Result<TcpStream>)>,
    rib: RibHandle,
    /// Best path changes from the RIB task while Established.
    from_rib: Option<mpsc::UnboundedReceiver<PeerMsg>>,
    /// This peer's paths in the Loc-RIB, as the RIB task last counted.
    counts: PeerCounts,
    adj_out: Option<AdjRibOut>,
    /// Exported attribute sets, shared between the prefixes that use them
    /// so the Adj-RIB-Out packs them into the same UPDATEs.
    exported: AttrInterner,
    /// Past the max-prefix warning threshold (warned once per crossing).
    max_prefix_warned: bool,
    /// When a session stopped over its prefix limit starts again.
    restart_at: Option<Instant>,
    /// Stopped over its prefix limit and not restarted yet.
    held_over_limit: bool,
    /// What the speaker originates (the hijack guard reads it).
    originate: watch::Receiver<Arc<Origination>>,
    /// Paths the hijack guard held back (prefix and attributes as
    /// received): when our origination changes (a block moved to another
    /// node) they pass import again, so the new owner's route is used
    /// without waiting for the peer to send it again.
    guarded: HashMap<IpNetwork, Arc<crate::rib::PathAttributes>>,
    status: watch::Sender<PeerStatus>,
    /// Actions the FSM returned while others were being carried out (a
    /// write failed mid-way); run right after.
    pending: Vec<Action>,
    stopping: Option<oneshot::Sender<()>>,
    /// The FIB found our routes at start: our OPEN says R=1 until the
    /// first Established, and F=1 (RFC 4724 §3).
    forwarding_preserved: bool,
    /// Our OPEN says R=1 only until then (our Restart Time from the
    /// start): a session that first comes up later is no restart.
    restart_until: Option<Instant>,
    /// Established at least once since this task started.
    was_established: bool,
    /// The peer's Graceful Restart capability of the current session when
    /// we advertised ours too (GR in effect).
    peer_graceful: Option<crate::wire::GracefulRestart>,
    /// Families whose End-of-RIB the helper procedure waits for.
    awaiting_eor: Vec<Family>,
    /// BFD for this peer, when the speaker runs it (RFC 5882).
    bfd: Option<PeerBfd>,
    /// The session was taken down because BFD said the path failed; set
    /// just before the FSM stops it, cleared at the next Established. The
    /// graceful restart code keeps no stale routes then (RFC 5882 §4.3.1:
    /// our C bit is clear).
    bfd_failure: bool,
    /// The state the last state change event named (`log_state`).
    logged_state: State,
    /// Why the session or attempt ended, since the last event.
    down_reason: Option<DownReason>,
    /// The last failed attempt's reason logged at info: a peer that keeps
    /// refusing us the same way is logged once, not once per retry.
    last_failure: Option<String>,
}

/// The peer's BFD session, kept across BGP session flaps so BFD can come
/// Up before BGP does (as FRR does).
struct PeerBfd {
    handle: BfdHandle,
    /// Started at the first Established (the local address is only known
    /// then): the status and the local address it runs from.
    session: Option<(watch::Receiver<BfdStatus>, IpAddr)>,
    /// The last state seen, to spot Up -> Down.
    last: BfdState,
}

impl PeerBfd {
    fn new(handle: BfdHandle) -> PeerBfd {
        PeerBfd {
            handle,
            session: None,
            last: BfdState::Down,
        }
    }
}

impl PeerTask {
    fn new(
        global: &BgpConfiguration,
        peer: PeerConfig,
        id: PeerId,
        rib: RibHandle,
        originate: watch::Receiver<Arc<Origination>>,
        status: watch::Sender<PeerStatus>,
    ) -> PeerTask {
        PeerTask {
            session: Session::new(super::session_config(global, &peer)),
            global: global.clone(),
            id,
            peer,
            connections: Vec::new(),
            connecting: JoinSet::new(),
            rib,
            from_rib: None,
            counts: PeerCounts::default(),
            adj_out: None,
            exported: AttrInterner::new(),
            max_prefix_warned: false,
            restart_at: None,
            held_over_limit: false,
            originate,
            guarded: HashMap::new(),
            status,
            pending: Vec::new(),
            stopping: None,
            bfd: None,
            bfd_failure: false,
            forwarding_preserved: false,
            restart_until: None,
            was_established: false,
            peer_graceful: None,
            awaiting_eor: Vec::new(),
            logged_state: State::Idle,
            down_reason: None,
            last_failure: None,
        }
    }

    /// Our Graceful Restart capability for the next OPEN: R=1 only while
    /// we restart (until the first session is up), F=1 when the kernel
    /// kept our routes across the restart or we have been forwarding
    /// since (RFC 4724 §3).
    fn set_graceful_capability(&mut self) {
        let families = self.session.config().families.clone();
        let restarting = self.forwarding_preserved
            && !self.was_established
            && self.restart_until.is_some_and(|t| Instant::now() < t);
        let forwarding = self.forwarding_preserved || self.was_established;
        let capability = super::graceful::capability(
            self.peer.graceful_restart,
            &families,
            restarting,
            forwarding && self.rib_has_fib(),
        );
        self.session.set_graceful_restart(capability);
    }

    /// Whether our routes reach a kernel (not --no-kernel).
    fn rib_has_fib(&self) -> bool {
        self.rib.has_fib
    }

    async fn run(mut self, mut commands: mpsc::Receiver<PeerCommand>) {
        let start = if self.peer.shutdown.is_some() {
            Vec::new()
        } else {
            self.session.handle(Event::Start, Instant::now())
        };
        self.execute(start).await;
        self.publish();
        self.log_state();
        loop {
            let deadline = self.session.next_deadline();
            // Biased, in this order: admin commands, the RIB's exports (so
            // they never pile up while the peer floods us), due timers (so
            // keepalives go out during a long table transfer), then reads.
            let actions = tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    // The speaker dropped us: stop quietly.
                    None => self.session.handle(Event::Stop { notification: None }, Instant::now()),
                },
                Some(joined) = self.connecting.join_next(), if !self.connecting.is_empty() => {
                    match joined {
                        Ok((conn, Ok(stream))) => self.connected(conn, stream),
                        Ok((conn, Err(e))) => {
                            tracing::debug!(peer = %self.peer.address, error = %e, "connect failed");
                            self.session.handle(Event::TcpFailed { conn }, Instant::now())
                        }
                        Err(_) => Vec::new(),
                    }
                }
                Some(message) = recv(&mut self.from_rib) => {
                    self.on_rib_message(message).await;
                    Vec::new()
                }
                Some(status) = bfd_changed(&mut self.bfd) => self.on_bfd(status).await,
                Ok(()) = self.originate.changed() => {
                    self.reimport_guarded().await;
                    Vec::new()
                }
                _ = sleep_until(deadline) => self.session.poll_timers(Instant::now()),
                _ = sleep_until(self.restart_at) => {
                    self.restart_at = None;
                    self.held_over_limit = false;
                    tracing::info!(peer = %self.peer.address, "restarting after the prefix limit hold-down");
                    self.session.handle(Event::Start, Instant::now())
                }
                (conn, incoming) = read_any(&mut self.connections) => self.incoming(conn, incoming),
            };
            self.execute(actions).await;
            while !self.pending.is_empty() {
                let more = std::mem::take(&mut self.pending);
                self.execute(more).await;
            }
            self.publish();
            self.log_state();
            if let Some(done) = self.stopping.take() {
                self.remove_bfd();
                for conn in self.connections.drain(..) {
                    conn.close().await;
                }
                self.forget_paths().await;
                let _ = done.send(());
                return;
            }
            if commands.is_closed() && self.session.state() == State::Idle {
                self.remove_bfd();
                self.forget_paths().await;
                return;
            }
        }
    }

    async fn command(&mut self, command: PeerCommand) -> Vec<Action> {
        match command {
            PeerCommand::Incoming(stream) => {
                if let Err(e) = transport::apply_ttl(&stream, self.peer.ttl) {
                    tracing::warn!(peer = %self.peer.address, error = %e, "cannot secure accepted connection");
                    return Vec::new();
                }
                let now = Instant::now();
                // R=1 only within our Restart Time: decided per OPEN.
                self.set_graceful_capability();
                let (conn, actions) = self.session.accept_incoming(now);
                tracing::debug!(peer = %self.peer.address, conn = conn.0, state = %self.session.state(), "accepted");
                match Connection::new(conn, stream) {
                    Ok(connection) => {
                        self.connections.push(connection);
                        actions
                    }
                    Err(_) => self.session.handle(Event::TcpClosed { conn }, now),
                }
            }
            PeerCommand::Reconfigure(new) => {
                self.reconfigure(*new).await;
                Vec::new()
            }
            PeerCommand::Advertised { ipv4, reply } => {
                let routes = self
                    .adj_out
                    .as_ref()
                    .map(|out| out.routes(ipv4))
                    .unwrap_or_default();
                let _ = reply.send(routes);
                Vec::new()
            }
            PeerCommand::Stop { notification, done } => {
                self.stopping = Some(done);
                self.session
                    .handle(Event::Stop { notification }, Instant::now())
            }
            PeerCommand::Restarting { notification, done } => {
                self.stopping = Some(done);
                let event = if self.peer_graceful.is_some() && self.adj_out.is_some() {
                    tracing::info!(peer = %self.peer.address, "closing without NOTIFICATION: the peer keeps our routes while we restart");
                    Event::StopQuietly
                } else {
                    Event::Stop {
                        notification: Some(notification),
                    }
                };
                self.session.handle(event, Instant::now())
            }
        }
    }

    fn connected(&mut self, conn: ConnId, stream: TcpStream) -> Vec<Action> {
        let now = Instant::now();
        self.set_graceful_capability();
        match Connection::new(conn, stream) {
            Ok(connection) => {
                tracing::debug!(peer = %self.peer.address, conn = conn.0, local = %connection.local, "connected");
                self.connections.push(connection);
                let direction = Direction::Outgoing;
                self.session
                    .handle(Event::TcpConnected { conn, direction }, now)
            }
            Err(_) => self.session.handle(Event::TcpFailed { conn }, now),
        }
    }

    fn incoming(&mut self, conn: ConnId, incoming: Incoming) -> Vec<Action> {
        let now = Instant::now();
        match incoming {
            Incoming::Message(message) => {
                self.session.handle(Event::Message { conn, message }, now)
            }
            Incoming::Malformed(error) => {
                tracing::warn!(peer = %self.peer.address, %error, "malformed message");
                self.session.handle(
                    Event::DecodeError {
                        conn,
                        notification: error.notification(),
                    },
                    now,
                )
            }
            Incoming::Closed => {
                // The FSM emits no Close for a connection reported closed,
                // and a finished stream would be ready forever: drop it now.
                self.connections.retain(|c| c.id != conn);
                tracing::debug!(peer = %self.peer.address, conn = conn.0, "closed by peer");
                self.session.handle(Event::TcpClosed { conn }, now)
            }
        }
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { conn } => {
                    let options = connect_options(&self.peer);
                    self.connecting
                        .spawn(async move { (conn, transport::connect(&options).await) });
                }
                Action::Send { conn, message } => {
                    tracing::debug!(peer = %self.peer.address, conn = conn.0, message = kind(&message), "send");
                    self.transmit(conn, message).await;
                }
                Action::Close { conn } => {
                    tracing::debug!(peer = %self.peer.address, conn = conn.0, "close");
                    if let Some(i) = self.connections.iter().position(|c| c.id == conn) {
                        self.connections.swap_remove(i).close().await;
                    }
                }
                Action::SetCodecParams { conn, params } => {
                    if let Some(i) = self.connections.iter().position(|c| c.id == conn) {
                        self.connections[i].set_params(params).await;
                    }
                }
                Action::Established { conn, negotiated } => {
                    let Some(local) = self.connection(conn).map(|c| c.local) else {
                        continue;
                    };
                    self.bfd_failure = false;
                    self.start_bfd(local.ip()).await;
                    let ebgp = negotiated.remote_as != self.global.as_number;
                    self.adj_out = Some(AdjRibOut::new(OutboundSession {
                        local_as: self.global.as_number,
                        ebgp,
                        local_address: local.ip(),
                        families: negotiated.families.clone(),
                        ipv4_over_ipv6: negotiated.extended_next_hop.iter().any(|e| {
                            e.family == Family::IPV4_UNICAST && e.next_hop_afi == Afi::IPV6
                        }),
                        max_message_len: if negotiated.extended_message {
                            MAX_EXTENDED_MESSAGE_LEN
                        } else {
                            MAX_MESSAGE_LEN
                        },
                    }));
                    // The RIB task answers with the whole table, then
                    // InitialDone, which sends End-of-RIB.
                    let (out, from_rib) = mpsc::unbounded_channel();
                    self.from_rib = Some(from_rib);
                    let source = Source {
                        local: false,
                        ebgp,
                        router_id: negotiated.remote_id,
                        address: self.peer.address,
                        rr_client: self.peer.route_reflector_client,
                    };
                    self.graceful_up(&negotiated).await;
                    let up = RibInput::PeerUp {
                        peer: self.id,
                        source,
                        out,
                        families: negotiated.families.to_vec(),
                    };
                    let _ = self.rib.input.send(up).await;
                }
                Action::Deliver { message } => self.deliver(message).await,
                Action::Down { reason } => {
                    // The next session sends its routes again.
                    self.guarded.clear();
                    self.status
                        .send_modify(|s| s.last_error = reason.to_string());
                    self.down_reason = Some(reason.clone());
                    // Only an Established session gave the RIB paths.
                    let was_up = self.adj_out.take().is_some();
                    self.from_rib = None;
                    self.counts = PeerCounts::default();
                    // Kept for display until the next session.
                    let peer_graceful = self.peer_graceful.clone();
                    self.awaiting_eor.clear();
                    if was_up {
                        let graceful = super::graceful::keeps_stale(
                            &reason,
                            peer_graceful.as_ref(),
                            self.bfd_failure,
                        );
                        let input = match peer_graceful.filter(|_| graceful) {
                            Some(gr) => {
                                let restart_time = Duration::from_secs(gr.restart_time.into());
                                tracing::info!(peer = %self.peer.address, ?restart_time, "keeping the peer's routes while it restarts (RFC 4724)");
                                self.set_helper(HelperState::Restarting {
                                    until: (Instant::now() + restart_time).into(),
                                });
                                RibInput::PeerRestarting {
                                    peer: self.id,
                                    restart_time,
                                }
                            }
                            None => {
                                self.set_helper(HelperState::None);
                                RibInput::PeerDown { peer: self.id }
                            }
                        };
                        let _ = self.rib.input.send(input).await;
                    }
                    self.set_graceful_capability();
                }
            }
        }
    }

    /// UPDATE and ROUTE-REFRESH from an Established session.
    async fn deliver(&mut self, message: Message) {
        match message {
            Message::Update(update) => self.receive(update).await,
            Message::RouteRefresh(RouteRefresh {
                family,
                subtype: RouteRefreshSubtype::Request,
            }) => self.refresh(family).await,
            _ => {}
        }
    }

    /// RFC 2918: send the family's routes again, framed by BoRR/EoRR when
    /// enhanced route refresh was negotiated (RFC 7313 §4).
    async fn refresh(&mut self, family: Family) {
        let Some(session) = self.session.negotiated().cloned() else {
            return;
        };
        if !session.families.contains(&family) {
            return;
        }
        let Some(out) = self.adj_out.as_mut() else {
            return;
        };
        let updates = out.readvertise(family.afi == Afi::IPV4);
        let mut messages: Vec<Message> = Vec::new();
        if session.enhanced_route_refresh {
            messages.push(Message::RouteRefresh(RouteRefresh {
                family,
                subtype: RouteRefreshSubtype::BeginningOfRefresh,
            }));
        }
        messages.extend(updates.into_iter().map(Message::Update));
        if session.enhanced_route_refresh {
            messages.push(Message::RouteRefresh(RouteRefresh {
                family,
                subtype: RouteRefreshSubtype::EndOfRefresh,
            }));
        }
        for message in messages {
            self.send_established(message).await;
        }
    }

    /// An UPDATE from the peer: each prefix with its verdict to the RIB.
    async fn receive(&mut self, update: Update) {
        let families = self
            .session
            .negotiated()
            .map(|n| n.families.clone())
            .unwrap_or_default();
        let local_as = self.global.as_number;
        let mut inbound = inbound::read(update, &families, local_as);
        if self.peer.as_number == local_as {
            inbound.check_reflection_loop(self.global.router_id, self.global.cluster_id);
        } else {
            inbound.strip_reflection_attributes();
        }
        if let Some(family) = inbound.end_of_rib {
            self.awaiting_eor.retain(|f| *f != family);
            if self.awaiting_eor.is_empty() {
                self.set_helper(HelperState::None);
            }
            let _ = self
                .rib
                .input
                .send(RibInput::EndOfRib {
                    peer: self.id,
                    family,
                })
                .await;
            return;
        }
        if inbound.treated_as_withdraw {
            tracing::warn!(peer = %self.peer.address, "UPDATE treated as withdraw (RFC 7606)");
        }
        for prefix in &inbound.withdrawn {
            self.guarded.remove(prefix);
        }
        let mut routes: Vec<(IpNetwork, Option<Path>)> =
            inbound.withdrawn.into_iter().map(|p| (p, None)).collect();
        if !inbound.announced.is_empty() {
            let own = self.originate.borrow().clone();
            let ctx = PolicyContext {
                local_as,
                ebgp: self.peer.as_number != local_as,
            };
            // A field borrow, not `self.import_policy()`, so `guarded` can
            // change in the loop.
            let policy = self.peer.import_policy.as_ref();
            for (prefix, attrs) in inbound.announced {
                // A looped path is held, not used (RFC 4271 §9.1.2). A
                // peer never takes over one of our own prefixes.
                let path = if inbound.looped {
                    self.guarded.remove(&prefix);
                    Path::new(self.id, attrs, false)
                } else if own.hijacked_by(&prefix) {
                    self.guarded.insert(prefix, attrs.clone());
                    Path::new(self.id, attrs, false)
                } else {
                    self.guarded.remove(&prefix);
                    import(self.id, policy, &ctx, &prefix, attrs)
                };
                routes.push((prefix, Some(path)));
            }
        }
        if !routes.is_empty() {
            let input = RibInput::Routes {
                peer: self.id,
                routes,
            };
            let _ = self.rib.input.send(input).await;
        }
    }

    /// The peer is gone from the configuration: none of its paths may
    /// stay, not even stale ones kept for a restart it was in the middle
    /// of (a session that was down sent the RIB nothing when it stopped).
    /// After a graceful stop the RIB has detached and this is a no-op.
    async fn forget_paths(&mut self) {
        if self.was_established {
            let _ = self
                .rib
                .input
                .send(RibInput::PeerDown { peer: self.id })
                .await;
        }
    }

    /// Our origination changed: held-back paths that no longer take over
    /// one of our prefixes pass import policy and go to the RIB.
    async fn reimport_guarded(&mut self) {
        if self.guarded.is_empty() {
            return;
        }
        let own = self.originate.borrow_and_update().clone();
        let freed: Vec<IpNetwork> = self
            .guarded
            .keys()
            .filter(|p| !own.hijacked_by(p))
            .copied()
            .collect();
        if freed.is_empty() {
            return;
        }
        let ctx = PolicyContext {
            local_as: self.global.as_number,
            ebgp: self.peer.as_number != self.global.as_number,
        };
        let mut routes = Vec::with_capacity(freed.len());
        for prefix in freed {
            if let Some(attrs) = self.guarded.remove(&prefix) {
                let path = import(self.id, self.import_policy(), &ctx, &prefix, attrs);
                routes.push((prefix, Some(path)));
            }
        }
        tracing::info!(peer = %self.peer.address, prefixes = routes.len(), "no longer our own: held-back routes imported");
        let input = RibInput::Routes {
            peer: self.id,
            routes,
        };
        let _ = self.rib.input.send(input).await;
    }

    /// What the RIB task sends while the session is Established.
    async fn on_rib_message(&mut self, message: PeerMsg) {
        match message {
            PeerMsg::Best(changes) => {
                let next_hop_self = self.next_hop_self();
                let rr_client = self.peer.route_reflector_client;
                let cluster_id = self.cluster_id();
                let policy = self.export_policy().cloned();
                let local_as = self.global.as_number;
                let id = self.id;
                let Some(out) = self.adj_out.as_mut() else {
                    return;
                };
                for change in changes.iter() {
                    let attrs = change
                        .best
                        .as_ref()
                        .filter(|b| b.from != id)
                        .and_then(|best| {
                            let target = ExportTarget {
                                local_as,
                                ebgp: out.session().ebgp,
                                self_next_hops: out.self_next_hops(&change.prefix),
                                next_hop_self,
                                policy: policy.as_ref(),
                                rr_client,
                                cluster_id,
                            };
                            export(&target, &change.prefix, &best.attrs, best.learned)
                        });
                    out.set(change.prefix, attrs.map(|a| self.exported.intern_owned(a)));
                }
                self.exported.purge();
                let updates = out.take_updates();
                self.send_updates(updates).await;
            }
            PeerMsg::InitialDone => {
                let eor = self
                    .adj_out
                    .as_ref()
                    .map(|o| o.end_of_rib())
                    .unwrap_or_default();
                self.send_updates(eor).await;
            }
            PeerMsg::Counts(counts) => {
                self.counts = counts;
                self.check_max_prefix().await;
            }
        }
    }

    /// Applies settings that keep the session: a new import policy asks
    /// the peer for its routes again (RFC 2918/7313) so they pass the new
    /// one; a new export policy or next-hop setting re-exports the table.
    async fn reconfigure(&mut self, new: PeerConfig) {
        let import_changed = new.import_policy != self.peer.import_policy;
        let max_prefix_changed = new.max_prefix != self.peer.max_prefix;
        let export_changed = new.export_policy != self.peer.export_policy
            || new.next_hop_self != self.peer.next_hop_self;
        let bfd_changed = new.bfd != self.peer.bfd;
        self.peer = new;
        self.max_prefix_warned = false;
        if bfd_changed {
            self.retime_bfd().await;
        }
        // A session held down over its prefix limit comes back when the
        // limit changes (restartAfter: 0 means "until the configuration
        // changes").
        if max_prefix_changed && self.held_over_limit {
            self.held_over_limit = false;
            self.restart_at = None;
            let actions = self.session.handle(Event::Start, Instant::now());
            self.pending.extend(actions);
            return;
        }
        let Some(negotiated) = self.session.negotiated().cloned() else {
            return;
        };
        if max_prefix_changed {
            self.check_max_prefix().await;
        }
        if import_changed {
            if negotiated
                .peer_capabilities
                .iter()
                .any(|c| matches!(c, crate::wire::Capability::RouteRefresh))
            {
                for family in negotiated.families.clone() {
                    let request = RouteRefresh {
                        family,
                        subtype: RouteRefreshSubtype::Request,
                    };
                    self.send_established(Message::RouteRefresh(request)).await;
                }
            } else {
                tracing::warn!(peer = %self.peer.address, "import policy changed but the peer cannot refresh; it applies to new routes only until the session restarts");
            }
        }
        if export_changed {
            let _ = self
                .rib
                .input
                .send(RibInput::Resend { peer: self.id })
                .await;
        }
    }

    /// The session is up: tells the RIB how the last session's stale
    /// paths go (RFC 4724 §4.2) and whether to wait for this peer's
    /// End-of-RIB before sending ours (§4.1).
    async fn graceful_up(&mut self, negotiated: &crate::session::Negotiated) {
        let ours = self.peer.graceful_restart;
        self.bfd_failure = false;
        self.was_established = true;
        self.peer_graceful = negotiated
            .peer_graceful_restart
            .clone()
            .filter(|_| ours.is_some());
        let kept =
            super::graceful::kept_families(self.peer_graceful.as_ref(), &negotiated.families);
        let stale_time = ours.map_or(Duration::ZERO, |g| g.stale_routes_time);
        let helping = self.helping();
        if helping && !kept.is_empty() {
            self.awaiting_eor = kept.clone();
            self.set_helper(HelperState::WaitingForEndOfRib {
                until: (Instant::now() + stale_time).into(),
            });
        } else {
            self.set_helper(HelperState::None);
        }
        let restarted = self.peer_graceful.as_ref().is_none_or(|g| g.restarting);
        let input = RibInput::GracefulUp {
            peer: self.id,
            kept,
            stale_time,
            restarted,
        };
        let _ = self.rib.input.send(input).await;
    }

    /// We keep this peer's routes for a restart it is in the middle of.
    fn helping(&self) -> bool {
        let helper = self.status.borrow().graceful.helper;
        !matches!(helper.current(Instant::now().into()), HelperState::None)
    }

    fn set_helper(&self, helper: HelperState) {
        self.status.send_modify(|s| s.graceful.helper = helper);
    }

    /// Starts the BFD session at Established if the peer has `bfd` (again
    /// only if the connection's local address moved).
    async fn start_bfd(&mut self, local: IpAddr) {
        let (Some(bfd), Some(config)) = (self.bfd.as_mut(), self.peer.bfd) else {
            if self.peer.bfd.is_some() {
                tracing::warn!(peer = %self.peer.address, "bfd is configured but BFD is off in this daemon (UDP 3784 was taken at start); no BFD session");
            }
            return;
        };
        if bfd.session.as_ref().is_some_and(|(_, l)| *l == local) {
            return;
        }
        let status = bfd.handle.add(self.peer.address, local, config).await;
        let now = status.borrow().clone();
        bfd.last = now.state;
        bfd.session = Some((status, local));
        // A session resumed after a restart is Up already and may not
        // change for a long time: show it now.
        self.status.send_modify(|s| s.bfd = Some(now));
    }

    /// A new `bfd` setting: retime the running session (a Poll Sequence),
    /// start it if the session is Established, or remove it.
    async fn retime_bfd(&mut self) {
        let config = self.peer.bfd;
        self.status.send_modify(|s| s.bfd_config = config);
        let running = self.bfd.as_ref().is_some_and(|b| b.session.is_some());
        match (config, running) {
            (Some(config), true) => {
                if let Some(bfd) = &self.bfd {
                    bfd.handle.reconfigure(self.peer.address, config);
                }
            }
            (Some(_), false) => {
                let local = self
                    .session
                    .established_conn()
                    .and_then(|id| self.connection(id))
                    .map(|c| c.local.ip());
                if let Some(local) = local {
                    self.start_bfd(local).await;
                }
            }
            (None, _) => self.remove_bfd(),
        }
    }

    fn remove_bfd(&mut self) {
        if let Some(bfd) = self.bfd.as_mut() {
            // Also a session resumed after a restart that this task never
            // claimed (its BGP session never came up).
            bfd.handle.remove(self.peer.address);
            if bfd.session.take().is_some() {
                bfd.last = BfdState::Down;
                self.status.send_modify(PeerStatus::drop_bfd);
            }
        }
    }

    /// A BFD status change: Up -> Down, unless the peer said AdminDown
    /// (RFC 5882 §3.2), takes an Established session down at once.
    async fn on_bfd(&mut self, status: BfdStatus) -> Vec<Action> {
        let Some(bfd) = self.bfd.as_mut() else {
            return Vec::new();
        };
        let was = std::mem::replace(&mut bfd.last, status.state);
        // Up and then anything but Up is a failure, even when the watch
        // folded Up -> Down -> Init into one change; unless the peer said
        // AdminDown (RFC 5882 §3.2), which its diagnostic still shows after
        // the detection time reset its state.
        // A detection timeout is a failure whatever the peer said before.
        let peer_stopped = status.local_diagnostic
            != crate::bfd::Diagnostic::DETECTION_TIME_EXPIRED
            && (status.remote_state == BfdState::AdminDown
                || status.remote_diagnostic == crate::bfd::Diagnostic::ADMIN_DOWN);
        let failed = was == BfdState::Up
            && !matches!(status.state, BfdState::Up | BfdState::AdminDown)
            && !peer_stopped;
        // The BFD task logs each change at info.
        if was != status.state {
            tracing::debug!(peer = %self.peer.address, from = %was, to = %status.state, "BFD state seen by the BGP session");
        }
        self.status.send_modify(|s| s.bfd = Some(status));
        if !failed {
            return Vec::new();
        }
        self.bfd_failure = true;
        if self.session.state() == State::Established {
            tracing::warn!(peer = %self.peer.address, "BFD detected a path failure; closing the session");
            return self.session.handle(Event::BfdDown, Instant::now());
        }
        // The session was already lost and its routes kept stale for a
        // restart (the peer's BGP restarts while its BFD runs on): the
        // path itself is now gone, so are the routes (RFC 5882 §4.3.1).
        let helping = self.helping();
        if helping {
            tracing::warn!(peer = %self.peer.address, "BFD detected a path failure while the peer restarts; its stale routes go now");
            self.awaiting_eor.clear();
            self.set_helper(HelperState::None);
            let _ = self
                .rib
                .input
                .send(RibInput::PeerDown { peer: self.id })
                .await;
        }
        Vec::new()
    }

    fn import_policy(&self) -> Option<&RoutePolicy> {
        self.peer.import_policy.as_ref()
    }

    fn export_policy(&self) -> Option<&RoutePolicy> {
        self.peer.export_policy.as_ref()
    }

    /// RFC 4456 §7: our CLUSTER_ID, the router ID unless configured.
    fn cluster_id(&self) -> std::net::Ipv4Addr {
        self.global.cluster_id.unwrap_or(self.global.router_id)
    }

    fn next_hop_self(&self) -> bool {
        self.peer.next_hop_self(self.global.as_number)
    }

    /// RFC 4486 §4: warn once past the threshold; over the limit, warn or
    /// end the session with Cease / Maximum Number of Prefixes Reached and
    /// stay down for the configured time.
    async fn check_max_prefix(&mut self) {
        let Some(max) = self.peer.max_prefix else {
            return;
        };
        let accepted = u32::try_from(self.counts.accepted).unwrap_or(u32::MAX);
        if accepted < max.warning_threshold() {
            self.max_prefix_warned = false;
            return;
        }
        if !self.max_prefix_warned {
            self.max_prefix_warned = true;
            tracing::warn!(peer = %self.peer.address, accepted, limit = max.limit, "prefix count past the warning threshold");
        }
        if accepted <= max.limit {
            return;
        }
        let MaxPrefixAction::Teardown { restart_after } = max.action else {
            return;
        };
        if self.adj_out.is_none() {
            return;
        }
        tracing::error!(peer = %self.peer.address, accepted, limit = max.limit, "prefix limit exceeded; closing the session");
        let family = if self.peer.address.is_ipv4() {
            Family::IPV4_UNICAST
        } else {
            Family::IPV6_UNICAST
        };
        let notification = Notification::max_prefixes_reached(family, max.limit);
        let now = Instant::now();
        let actions = self.session.handle(
            Event::Stop {
                notification: Some(notification),
            },
            now,
        );
        self.restart_at = restart_after.map(|after| now + after);
        self.held_over_limit = true;
        self.pending.extend(actions);
    }

    async fn send_updates(&mut self, updates: Vec<Update>) {
        for update in updates {
            self.send_established(Message::Update(update)).await;
        }
    }

    /// Sends through the FSM, which drops it unless Established and
    /// restarts the keepalive timer (RFC 4271 §4.4).
    async fn send_established(&mut self, message: Message) {
        for action in self.session.handle(Event::Send { message }, Instant::now()) {
            if let Action::Send { conn, message } = action {
                self.transmit(conn, message).await;
            }
        }
    }

    /// Writes to one connection; a write that fails or stalls ends the
    /// connection as if the peer had closed it, and the FSM learns so.
    async fn transmit(&mut self, conn: ConnId, message: Message) {
        let Some(c) = self.connection(conn) else {
            return;
        };
        if c.send(message).await {
            return;
        }
        tracing::warn!(peer = %self.peer.address, conn = conn.0, "write failed or peer not reading; closing");
        if let Some(i) = self.connections.iter().position(|c| c.id == conn) {
            drop(self.connections.swap_remove(i));
        }
        let actions = self
            .session
            .handle(Event::TcpClosed { conn }, Instant::now());
        self.pending.extend(actions);
    }

    fn connection(&self, conn: ConnId) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id == conn)
    }

    /// One event per session state change, with the peer: info when the
    /// session reaches Established, warn when it loses it (info when we
    /// stopped it), info for an attempt that failed for a new reason;
    /// the steps in between (Connect, Active, OpenSent...) at debug.
    fn log_state(&mut self) {
        let to = self.session.state();
        let from = self.logged_state;
        let reason = self.down_reason.take();
        if to == from && reason.is_none() {
            return;
        }
        self.logged_state = to;
        let peer = self.peer.address;
        let peer_as = self.peer.as_number;
        let why = reason.as_ref().map(ToString::to_string).unwrap_or_default();
        if to == State::Established {
            self.last_failure = None;
            tracing::info!(%peer, peer_as, %from, %to, "BGP session Established");
        } else if from == State::Established {
            if matches!(reason, Some(DownReason::AdminStop { .. })) {
                tracing::info!(%peer, peer_as, %from, %to, reason = %why, "BGP session stopped");
            } else {
                tracing::warn!(%peer, peer_as, %from, %to, reason = %why, "BGP session lost");
            }
        } else if reason.is_some() && self.last_failure.as_deref() != Some(why.as_str()) {
            tracing::info!(%peer, peer_as, %from, %to, reason = %why, "BGP session attempt failed");
            self.last_failure = Some(why);
        } else {
            tracing::debug!(%peer, %from, %to, reason = %why, "BGP session state changed");
        }
    }

    fn publish(&self) {
        let established = self
            .session
            .established_conn()
            .and_then(|id| self.connection(id))
            .map(|c| (c.local, c.remote));
        let session = &self.session;
        let counts = self.counts;
        let advertised = self.adj_out.as_ref().map_or(0, AdjRibOut::len);
        let peer_graceful = self.peer_graceful.clone();
        let local_graceful = self.session.config().graceful_restart.clone();
        self.status.send_modify(|s| {
            s.update_from(session, established);
            s.graceful.local = local_graceful;
            s.graceful.peer = peer_graceful;
            s.prefixes_received = counts.received as u64;
            s.prefixes_accepted = counts.accepted as u64;
            s.prefixes_advertised = advertised as u64;
        });
    }
}

/// A received path after import policy (RFC 8212 defaults when none).
fn import(
    peer: PeerId,
    policy: Option<&RoutePolicy>,
    ctx: &PolicyContext,
    prefix: &IpNetwork,
    attrs: Arc<crate::rib::PathAttributes>,
) -> Path {
    match policy::evaluate(policy, ctx, prefix, &attrs, policy::Direction::Import) {
        Verdict::Accept(None) => Path::new(peer, attrs, true),
        Verdict::Accept(Some(changed)) => Path::new(peer, Arc::new(changed), true),
        Verdict::Reject => Path::new(peer, attrs, false),
    }
}

fn kind(message: &Message) -> &'static str {
    match message {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

/// Reads whichever connection has something; never resolves without any.
async fn read_any(connections: &mut [Connection]) -> (ConnId, Incoming) {
    if connections.is_empty() {
        return std::future::pending().await;
    }
    let reads = connections.iter_mut().map(|c| {
        let id = c.id;
        Box::pin(async move { (id, c.read().await) })
    });
    select_all(reads).await.0
}

async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The BFD status when it changed; never resolves without a session.
async fn bfd_changed(bfd: &mut Option<PeerBfd>) -> Option<BfdStatus> {
    let Some((rx, _)) = bfd.as_mut().and_then(|b| b.session.as_mut()) else {
        return std::future::pending().await;
    };
    match rx.changed().await {
        Ok(()) => Some(rx.borrow_and_update().clone()),
        // The BFD task ended: nothing more will come.
        Err(_) => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn connect_options(peer: &PeerConfig) -> ConnectOptions {
    ConnectOptions {
        source: peer.source_address,
        md5_password: peer.password.as_ref().map(|p| p.expose().to_string()),
        ttl: peer.ttl,
        timeout: CONNECT_TIMEOUT,
        ..ConnectOptions::new(SocketAddr::new(peer.address, peer.port))
    }
}
