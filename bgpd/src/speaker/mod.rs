// The speaker: one task per configured peer (speaker/peer.rs), a listener
// that hands each accepted connection to its peer's task, and the reload
// path that turns a new configuration into the fewest session changes
// (untouched peers keep their sessions). The admin API reads peers here.

pub mod connection;
pub mod graceful;
pub mod peer;
pub mod rib;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::bfd::BfdHandle;
use crate::config::{self, BgpConfiguration, Config, PeerConfig};
use crate::fib::{FibEvent, FibHandle};
use crate::rib::Route;
use crate::rib::loc_rib::{LOCAL_PEER, PeerId};
use crate::session::SessionConfig;
use crate::session::transport::Listener;
use crate::wire::iana::notification::cease;
use crate::wire::{Afi, ExtendedNextHop, Family, Nlri, Notification};

pub use peer::{PeerCommand, PeerHandle, RibSide};
pub use rib::{Origination, RibHandle, RibPath, RibProgress, RibRoute, RouteQuery};
pub use status::{Carried, PeerStatus};

/// The Loc-RIB's sizes (`Speaker::rib_summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RibSummary {
    /// Prefixes with at least one path (accepted or not), per family.
    pub ipv4_prefixes: usize,
    pub ipv6_prefixes: usize,
    /// Each configured peer's paths in the Loc-RIB (stale ones included).
    pub peers: BTreeMap<IpAddr, crate::rib::loc_rib::PeerCounts>,
}

pub use crate::session::MessageCounters;

/// The RIB task as /livez judges it (`observe::liveness`), read without
/// asking the task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RibActivity {
    /// The task has ended (it panicked, or the daemon is stopping).
    pub stopped: bool,
    /// Inputs queued and not yet taken.
    pub queued: usize,
    /// How long it has been busy without a step forward (taking an input,
    /// handing routes to the FIB, finishing a turn); zero while it waits
    /// for input.
    pub stalled_for: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen for BGP on port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
}

/// What a speaker starts with besides its configuration. Each optional
/// part of the daemon (kernel FIB, BFD, IPAM origination) adds its field.
#[derive(Default)]
pub struct SpeakerOptions {
    /// Write routes to the kernel; `None`: install nothing, every next hop
    /// counts as reachable.
    pub fib: Option<(FibHandle, mpsc::Receiver<FibEvent>)>,
    /// The node's IPAM blocks and borrowed addresses (crate::origin): the
    /// current value is originated before any session starts, each change
    /// after. The configuration's `originate` prefixes are added as blocks.
    pub ipam: Option<watch::Receiver<Arc<Origination>>>,
    /// BFD for the peers that configure it; `None`: their `bfd` is ignored.
    pub bfd: Option<BfdHandle>,
}

/// A running speaker; cheap to clone (the admin service holds one).
#[derive(Clone)]
pub struct Speaker {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<SpeakerState>,
}

struct SpeakerState {
    config: Config,
    /// Every peer task watches it.
    originate: watch::Sender<Arc<Origination>>,
    /// The IPAM part of `originate` (empty without ipamd).
    ipam: Arc<Origination>,
    peers: BTreeMap<IpAddr, PeerHandle>,
    listener: Option<(Arc<Listener>, JoinHandle<()>)>,
    shutting_down: bool,
    rib: RibHandle,
    /// The next session's RIB identity; never reused.
    next_peer_id: PeerId,
    /// The FIB found our routes at start (RFC 4724 §3 R and F bits).
    forwarding_preserved: bool,
    /// When the speaker started: a restart is one only for as long as the
    /// peers keep our routes (our Restart Time).
    started: std::time::Instant,
    bfd: Option<BfdHandle>,
    /// Counters of peers whose task a reload is replacing, for the new
    /// task to count on from.
    carried: BTreeMap<IpAddr, status::Carried>,
}

impl Speaker {
    /// A speaker that installs nothing in the kernel (every next hop counts
    /// as reachable).
    pub async fn start(config: Config) -> Result<Speaker, SpeakerError> {
        Speaker::start_with_fib(config, None).await
    }

    /// Binds the listener (unless `listenPort` is 0), starts the RIB task
    /// (writing to `fib` when given) and a task per peer.
    pub async fn start_with_fib(
        config: Config,
        fib: Option<(FibHandle, mpsc::Receiver<FibEvent>)>,
    ) -> Result<Speaker, SpeakerError> {
        Speaker::start_with(
            config,
            SpeakerOptions {
                fib,
                ..SpeakerOptions::default()
            },
        )
        .await
    }

    /// Starts with every part `options` asks for.
    pub async fn start_with(
        config: Config,
        options: SpeakerOptions,
    ) -> Result<Speaker, SpeakerError> {
        let SpeakerOptions { fib, ipam, bfd } = options;
        let mut ipam = ipam;
        let ipam_now = ipam
            .as_mut()
            .map(|rx| rx.borrow_and_update().clone())
            .unwrap_or_default();
        // RFC 4724 §4.1: routes of ours in the kernel at start are the
        // forwarding state a graceful restart preserved.
        let forwarding_preserved = fib.as_ref().is_some_and(|(f, _)| f.found_at_start() > 0);
        if forwarding_preserved {
            tracing::info!("our routes are still in the kernel: restarting gracefully");
        }
        let rib = rib::spawn(
            config.bgp.router_id,
            config.bgp.max_paths,
            config.peers.len(),
            fib,
            forwarding_preserved,
        );
        let _ = rib
            .input
            .send(rib::RibInput::Originate(originated(&config, &ipam_now)))
            .await;
        let speaker = Speaker {
            shared: Arc::new(Shared {
                state: Mutex::new(SpeakerState {
                    originate: watch::Sender::new(originated(&config, &ipam_now)),
                    ipam: ipam_now,
                    config: config.clone(),
                    peers: BTreeMap::new(),
                    listener: None,
                    shutting_down: false,
                    rib,
                    next_peer_id: LOCAL_PEER + 1,
                    forwarding_preserved,
                    started: std::time::Instant::now(),
                    bfd,
                    carried: BTreeMap::new(),
                }),
            }),
        };
        speaker.listen(&config).await?;
        if let Some(ipam) = ipam {
            tokio::spawn(follow_ipam(speaker.clone(), ipam));
        }
        let mut state = speaker.lock();
        for peer in config.peers.values() {
            state.spawn(peer.clone());
        }
        drop(state);
        Ok(speaker)
    }

    /// Moves to `new`: removed peers are told Peer De-configured, changed
    /// ones Other Configuration Change (RFC 4486) and restarted, untouched
    /// ones keep their sessions; a new originate list is re-advertised.
    pub async fn reload(&self, new: Config) -> Result<(), SpeakerError> {
        let change = {
            let state = self.lock();
            config::diff(&state.config, &new)
        };
        if change.global.rebind_listener
            && let Err(e) = self.listen(&new).await
        {
            // Keep serving: back to the addresses that worked.
            tracing::error!(error = %e, "cannot listen on the new addresses; keeping the old ones");
            let old = self.lock().config.clone();
            self.listen(&old).await?;
        }
        let mut stopping = Vec::new();
        let mut updating = Vec::new();
        {
            let mut state = self.lock();
            for &ip in &change.peers_removed {
                if let Some(handle) = state.peers.remove(&ip) {
                    stopping.push((handle, Notification::cease(cease::PEER_DECONFIGURED)));
                }
                state.remove_md5(ip);
            }
            for (ip, peer) in &new.peers {
                let changed = change.peers_changed.contains(ip);
                if changed && let Some(handle) = state.peers.remove(ip) {
                    // Shut down by configuration: say so, with its message
                    // (RFC 4486, RFC 9003); any other change: RFC 4486's
                    // Other Configuration Change.
                    let notification = match &peer.shutdown {
                        Some(s) if handle.config.shutdown.is_none() => {
                            Notification::administrative_shutdown(&s.message)
                        }
                        _ => Notification::cease(cease::OTHER_CONFIGURATION_CHANGE),
                    };
                    stopping.push((handle, notification));
                }
            }
            for ip in &change.peers_updated {
                if let (Some(handle), Some(peer)) = (state.peers.get_mut(ip), new.peers.get(ip)) {
                    handle.config = peer.clone();
                    updating.push((handle.commands.clone(), peer.clone()));
                }
            }
            state.config = new.clone();
            state.update_md5();
        }
        for (commands, peer) in updating {
            let _ = commands
                .send(PeerCommand::Reconfigure(Box::new(peer)))
                .await;
        }
        // New and changed peers start only after the old tasks stopped, so
        // one address never has two sessions.
        let mut carried = BTreeMap::new();
        for (handle, notification) in stopping {
            handle.stop(Some(notification)).await;
            if new.peers.contains_key(&handle.config.address) {
                carried.insert(handle.config.address, handle.status.borrow().totals());
            }
        }
        let rib = {
            let mut state = self.lock();
            if state.shutting_down {
                return Ok(());
            }
            state.carried = carried;
            for (ip, peer) in &new.peers {
                if !state.peers.contains_key(ip) {
                    state.spawn(peer.clone());
                }
            }
            state.originate.send_replace(originated(&new, &state.ipam));
            state.rib.clone()
        };
        if let Some(max_paths) = change.global.max_paths {
            let _ = rib.input.send(rib::RibInput::SetMaxPaths(max_paths)).await;
        }
        if change.global.kernel_table.is_some() {
            tracing::warn!("kernelTable changed: it takes effect when podroute-bgpd restarts");
        }
        if !change.global.originate_added.is_empty() || !change.global.originate_removed.is_empty()
        {
            let origination = self.lock().originate.borrow().clone();
            let _ = rib.input.send(rib::RibInput::Originate(origination)).await;
        }
        tracing::info!(
            added = change.peers_added.len(),
            removed = change.peers_removed.len(),
            restarted = change.peers_changed.len(),
            unchanged = change.peers_unchanged.len() + change.peers_updated.len(),
            "configuration reloaded"
        );
        Ok(())
    }

    pub fn peers(&self) -> Vec<PeerStatus> {
        self.lock()
            .peers
            .values()
            .map(|h| h.status.borrow().clone())
            .collect()
    }

    pub fn peer(&self, address: IpAddr) -> Option<PeerStatus> {
        self.lock()
            .peers
            .get(&address)
            .map(|h| h.status.borrow().clone())
    }

    /// A peer's Adj-RIB-In (every path it sent that we hold, with whether
    /// it was accepted) or Adj-RIB-Out; None when no such peer.
    pub async fn routes(
        &self,
        address: IpAddr,
        side: RibSide,
        ipv4: Option<bool>,
    ) -> Option<Vec<(Route, bool)>> {
        let (id, commands, rib) = {
            let state = self.lock();
            let peer = state.peers.get(&address)?;
            (peer.id, peer.commands.clone(), state.rib.clone())
        };
        match side {
            RibSide::Received => {
                let query = RouteQuery {
                    peer: Some(id),
                    ipv4,
                    ..RouteQuery::default()
                };
                let routes = rib.query(query).await;
                Some(
                    routes
                        .into_iter()
                        .flat_map(|r| {
                            r.paths.into_iter().map(move |p| {
                                let nlri = Nlri {
                                    path_id: None,
                                    prefix: r.prefix,
                                };
                                (
                                    Route {
                                        nlri,
                                        path: p.attrs,
                                    },
                                    p.accepted,
                                )
                            })
                        })
                        .collect(),
                )
            }
            RibSide::Advertised => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                commands
                    .send(PeerCommand::Advertised { ipv4, reply })
                    .await
                    .ok()?;
                let routes = answer.await.ok()?;
                Some(routes.into_iter().map(|r| (r, true)).collect())
            }
        }
    }

    /// A peer's path counts in the Loc-RIB (stale ones included); None
    /// when no such peer.
    pub async fn peer_counts(&self, address: IpAddr) -> Option<crate::rib::loc_rib::PeerCounts> {
        let (id, rib) = {
            let state = self.lock();
            (state.peers.get(&address)?.id, state.rib.clone())
        };
        Some(rib.counts(id).await)
    }

    /// The Loc-RIB: every prefix with its paths, best first.
    pub async fn loc_rib(&self, query: RouteQuery) -> Vec<RibRoute> {
        let rib = self.lock().rib.clone();
        rib.query(query).await
    }

    /// The address of the peer behind a RIB identity.
    pub fn peer_address(&self, id: PeerId) -> Option<IpAddr> {
        self.lock()
            .peers
            .values()
            .find(|p| p.id == id)
            .map(|p| p.config.address)
    }

    /// What this speaker originates.
    pub fn originated(&self) -> Arc<Origination> {
        self.lock().originate.borrow().clone()
    }

    /// Moves to a new IPAM origination (the configuration's prefixes stay).
    pub async fn set_ipam(&self, ipam: Arc<Origination>) {
        let (origination, rib) = {
            let mut state = self.lock();
            if state.shutting_down {
                return;
            }
            let origination = originated(&state.config, &ipam);
            state.ipam = ipam;
            state.originate.send_replace(origination.clone());
            (origination, state.rib.clone())
        };
        let _ = rib.input.send(rib::RibInput::Originate(origination)).await;
    }

    pub fn local_as(&self) -> u32 {
        self.lock().config.bgp.as_number
    }

    /// Configured peers whose task has ended although nobody stopped it
    /// (it panicked): their sessions are dead until a restart.
    pub fn ended_peers(&self) -> Vec<IpAddr> {
        self.lock()
            .peers
            .iter()
            .filter(|(_, handle)| handle.commands.is_closed())
            .map(|(address, _)| *address)
            .collect()
    }

    pub fn router_id(&self) -> std::net::Ipv4Addr {
        self.lock().config.bgp.router_id
    }

    /// Whether the RIB task is moving, at once (no message to it).
    pub fn rib_activity(&self) -> RibActivity {
        let state = self.lock();
        let rib = &state.rib;
        RibActivity {
            stopped: rib.input.is_closed(),
            queued: rib.queued(),
            stalled_for: rib.progress.stalled_for(tokio::time::Instant::now()),
        }
    }

    /// The Loc-RIB's sizes, with each configured peer's path counts by
    /// address; None when the RIB task has stopped (or is shutting down).
    pub async fn rib_summary(&self) -> Option<RibSummary> {
        let (rib, ids) = {
            let state = self.lock();
            let ids: Vec<(PeerId, IpAddr)> = state
                .peers
                .iter()
                .map(|(address, handle)| (handle.id, *address))
                .collect();
            (state.rib.clone(), ids)
        };
        let summary = rib.summary().await?;
        let peers = ids
            .into_iter()
            .map(|(id, address)| {
                let counts = summary.peers.get(&id).copied().unwrap_or_default();
                (address, counts)
            })
            .collect();
        Some(RibSummary {
            ipv4_prefixes: summary.ipv4_prefixes,
            ipv6_prefixes: summary.ipv6_prefixes,
            peers,
        })
    }

    /// Ends every session with Cease / Administrative Shutdown (RFC 4486,
    /// with an RFC 8203 message) and stops listening. With graceful
    /// restart configured for any peer (RFC 4724 §4.1), our routes stay in
    /// the kernel and sessions with GR in effect close without a
    /// NOTIFICATION, so those peers keep our routes until we are back;
    /// `podroute-bgpd --cleanup` removes the kernel's routes for good.
    pub async fn shutdown(&self, message: &str) {
        let (peers, listener, rib, graceful) = {
            let mut state = self.lock();
            let graceful = state
                .config
                .peers
                .values()
                .any(|p| p.graceful_restart.is_some());
            (
                std::mem::take(&mut state.peers),
                state.listener.take(),
                state.rib.clone(),
                graceful,
            )
        };
        if let Some((_, task)) = listener {
            task.abort();
        }
        let notification = Notification::administrative_shutdown(message);
        if graceful {
            // First the RIB, so the sessions going down withdraw nothing
            // from the kernel.
            rib.detach().await;
            let stops = peers
                .values()
                .map(|h| h.stop_for_restart(notification.clone()));
            futures_util::future::join_all(stops).await;
            tracing::info!("stopped; our routes stay in the kernel (graceful restart)");
            return;
        }
        let stops = peers.values().map(|h| h.stop(Some(notification.clone())));
        futures_util::future::join_all(stops).await;
        // After the peers: their routes are gone, then ours leave the kernel.
        rib.shutdown().await;
    }

    async fn listen(&self, config: &Config) -> Result<(), SpeakerError> {
        // The old sockets must be closed before the new ones bind the same
        // port: wait for the accept loop (which holds a reference) to end.
        let old = self.lock().listener.take();
        if let Some((listener, task)) = old {
            task.abort();
            let _ = task.await;
            drop(listener);
        }
        let Some(port) = config.bgp.listen_port else {
            return Ok(());
        };
        let listener = Listener::bind(&config.bgp.listen_addresses, port)
            .map_err(|source| SpeakerError::Listen { port, source })?;
        let listener = Arc::new(listener);
        let task = tokio::spawn(accept_loop(listener.clone(), self.clone()));
        let mut state = self.lock();
        state.listener = Some((listener, task));
        state.update_md5();
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpeakerState> {
        // A panic while holding the lock leaves plain data behind; carry on.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl SpeakerState {
    fn spawn(&mut self, peer: PeerConfig) {
        let id = self.next_peer_id;
        self.next_peer_id += 1;
        let start = peer::PeerStart {
            // A peer added by a reload long after the restart meets a
            // speaker that is no longer restarting.
            forwarding_preserved: self.forwarding_preserved
                && peer.graceful_restart.is_some_and(|gr| {
                    self.started.elapsed() < Duration::from_secs(gr.restart_time.into())
                }),
            bfd: self.bfd.clone(),
            carried: self.carried.remove(&peer.address).unwrap_or_default(),
        };
        let handle = peer::spawn(
            &self.config.bgp,
            peer.clone(),
            id,
            self.rib.clone(),
            self.originate.subscribe(),
            start,
        );
        self.peers.insert(peer.address, handle);
    }

    fn remove_md5(&self, peer: IpAddr) {
        if let Some((listener, _)) = &self.listener
            && let Err(e) = listener.set_md5(peer, None)
        {
            tracing::warn!(%peer, error = %e, "cannot remove TCP MD5 key");
        }
    }

    /// The listening socket must hold each peer's TCP MD5 key, or the
    /// kernel drops that peer's SYNs (RFC 2385).
    fn update_md5(&self) {
        let Some((listener, _)) = &self.listener else {
            return;
        };
        for peer in self.config.peers.values() {
            let password = peer.password.as_ref().map(|p| p.expose());
            if let Err(e) = listener.set_md5(peer.address, password) {
                tracing::error!(peer = %peer.address, error = %e, "cannot set TCP MD5 key");
            }
        }
    }
}

async fn accept_loop(listener: Arc<Listener>, speaker: Speaker) {
    loop {
        let (stream, remote, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Listeners are IPv6-only, so an IPv4 peer never shows as mapped.
        let ip = remote.ip();
        let commands = speaker.lock().peers.get(&ip).map(|h| h.commands.clone());
        match commands {
            Some(commands) => {
                if commands.try_send(PeerCommand::Incoming(stream)).is_err() {
                    tracing::warn!(peer = %ip, "peer task busy; connection dropped");
                }
            }
            None => {
                tracing::info!(%remote, "connection from an address that is not a configured peer; closed")
            }
        }
    }
}

/// The configuration's `originate` prefixes (blocks) plus the IPAM ones; a
/// prefix both a block and a host is a block.
fn originated(config: &Config, ipam: &Origination) -> Arc<Origination> {
    let mut blocks = ipam.blocks.clone();
    blocks.extend(config.bgp.originate.iter().copied());
    let hosts = ipam.hosts.difference(&blocks).copied().collect();
    Arc::new(Origination { blocks, hosts })
}

/// Forwards each IPAM origination change to the speaker until the
/// sender (crate::origin's task) ends.
async fn follow_ipam(speaker: Speaker, mut ipam: watch::Receiver<Arc<Origination>>) {
    while ipam.changed().await.is_ok() {
        let next = ipam.borrow_and_update().clone();
        speaker.set_ipam(next).await;
    }
}

/// The FSM's view of a peer's configuration.
pub fn session_config(global: &BgpConfiguration, peer: &PeerConfig) -> SessionConfig {
    let mut session = SessionConfig::new(global.as_number, global.router_id, peer.as_number);
    session.hold_time = peer.hold_time;
    session.keepalive_time = Some(peer.keepalive_time);
    session.connect_retry = Duration::from_secs(peer.connect_retry_time.into());
    session.passive = peer.passive;
    session.families = peer.families.iter().copied().collect();
    // A fresh start: no R bit, no forwarding state kept (the peer task
    // sets both when the FIB found our routes, RFC 4724 §3).
    session.graceful_restart =
        graceful::capability(peer.graceful_restart, &session.families, false, false);
    // IPv4 routes over an IPv6 session need IPv6 next hops (RFC 8950).
    if peer.address.is_ipv6() && peer.families.contains(&Family::IPV4_UNICAST) {
        session.extended_next_hop = vec![ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        }];
    }
    session
}
