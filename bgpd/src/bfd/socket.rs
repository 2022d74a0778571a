// The BFD I/O task (RFC 5881): one task owns the receive sockets on UDP
// 3784 (IPv4 and IPv6), one send socket per session (bound to the local
// address, source port 49152-65535, TTL / hop limit 255) and every
// `Session`. Received packets with a TTL other than 255 are dropped
// (RFC 5881 §5); the rest go to the session named by Your Discriminator,
// or by the source address when it is 0. `BfdHandle` is the API.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::packet::{ControlPacket, DecodeError};
use super::resume::{self, Saved};
use super::session::{BfdStatus, Session};
use crate::config::BfdConfig;
use crate::session::transport::sockopt;

/// RFC 5881 §4: single-hop Control packets go to this UDP port.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 §4: the source port range of Control packets.
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5: sent with, and only accepted with, this TTL / hop limit.
pub const SINGLE_HOP_TTL: u8 = 255;
/// AdminDown packets sent when a session is removed (RFC 5882 §3.2: so
/// the peer does not take our going away for a failure).
const ADMIN_DOWN_PACKETS: u32 = 3;
/// The most we wait between those packets.
const ADMIN_DOWN_SPACING_MAX: Duration = Duration::from_millis(300);

/// Packets received and why some were dropped, for all sessions.
#[derive(Debug, Default)]
pub struct BfdCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// TTL / hop limit not 255 (RFC 5881 §5).
    pub bad_ttl: AtomicU64,
    /// Authenticated packets: authentication is not supported.
    pub authenticated: AtomicU64,
    /// Failed another check of RFC 5880 §6.8.6.
    pub invalid: AtomicU64,
    /// No session for the discriminator or source address.
    pub no_session: AtomicU64,
}

/// How long a session resumed after a restart waits for its BGP session to
/// come back (and claim it) before it is removed: the default Restart Time,
/// as long as the peer keeps our routes anyway.
const RESUMED_CLAIM_WAIT: Duration = Duration::from_secs(120);

/// The BFD task's handle; cheap to clone.
#[derive(Clone)]
pub struct BfdHandle {
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<BfdCounters>,
}

enum Command {
    Add {
        peer: IpAddr,
        local: IpAddr,
        config: BfdConfig,
        reply: oneshot::Sender<watch::Receiver<BfdStatus>>,
    },
    Reconfigure {
        peer: IpAddr,
        config: BfdConfig,
    },
    Remove {
        peer: IpAddr,
    },
    AdminDownAll {
        done: oneshot::Sender<()>,
    },
}

impl BfdHandle {
    /// Binds UDP 3784 on 0.0.0.0 and [::] and starts the task. Fails only
    /// if neither family can be bound. Must run inside a tokio runtime.
    pub fn start() -> io::Result<BfdHandle> {
        BfdHandle::start_with(None, Vec::new())
    }

    /// As `start`, keeping every Up session in `state` (resume.rs) and
    /// resuming, at once, the saved sessions given with their timers.
    pub fn start_resuming(
        state: PathBuf,
        config_of: impl Fn(IpAddr) -> Option<BfdConfig>,
    ) -> io::Result<BfdHandle> {
        let resume = resume::load(&state)
            .into_iter()
            .filter_map(|saved| config_of(saved.peer).map(|config| (saved, config)))
            .collect();
        BfdHandle::start_with(Some(state), resume)
    }

    fn start_with(
        state: Option<PathBuf>,
        resume: Vec<(Saved, BfdConfig)>,
    ) -> io::Result<BfdHandle> {
        let v4 = receive_socket(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let v6 = receive_socket(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let (v4, v6) = match (v4, v6) {
            (Err(e), Err(_)) => return Err(e),
            (v4, v6) => {
                for (family, r) in [("IPv4", &v4), ("IPv6", &v6)] {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "BFD cannot listen on {family}");
                    }
                }
                (v4.ok(), v6.ok())
            }
        };
        let counters = Arc::new(BfdCounters::default());
        let (commands, rx) = mpsc::unbounded_channel();
        let mut task = Task {
            v4,
            v6,
            sessions: HashMap::new(),
            by_disc: HashMap::new(),
            seed: RandomState::new().hash_one(Instant::now()),
            counters: counters.clone(),
            state,
            stored: Vec::new(),
            dirty: false,
            unclaimed: HashMap::new(),
        };
        for (saved, config) in resume {
            task.resume(&saved, config);
        }
        tokio::spawn(task.run(rx));
        Ok(BfdHandle { commands, counters })
    }

    /// Starts (or, if one exists for `peer`, retimes and moves to `local`)
    /// the session with `peer`; its status follows on the receiver.
    pub async fn add(
        &self,
        peer: IpAddr,
        local: IpAddr,
        config: BfdConfig,
    ) -> watch::Receiver<BfdStatus> {
        let (reply, wait) = oneshot::channel();
        let _ = self.commands.send(Command::Add {
            peer,
            local,
            config,
            reply,
        });
        match wait.await {
            Ok(rx) => rx,
            // The task is gone: a session that stays Down.
            Err(_) => watch::channel(Session::new(config, 0, 0, Instant::now()).status()).1,
        }
    }

    /// New timers for a running session (a Poll Sequence while Up).
    pub fn reconfigure(&self, peer: IpAddr, config: BfdConfig) {
        let _ = self.commands.send(Command::Reconfigure { peer, config });
    }

    /// Ends the session with `peer`, telling it AdminDown first.
    pub fn remove(&self, peer: IpAddr) {
        let _ = self.commands.send(Command::Remove { peer });
    }

    /// Sets every session AdminDown and returns once the peers were told
    /// (graceful stop, RFC 5882 §3.2).
    pub async fn admin_down_all(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::AdminDownAll { done }).is_ok() {
            let _ = wait.await;
        }
    }

    pub fn counters(&self) -> &BfdCounters {
        &self.counters
    }
}

struct Entry {
    local: IpAddr,
    session: Session,
    /// Sends only, so a plain non-blocking std socket: it needs no
    /// readiness from the runtime and a full buffer just drops a packet.
    socket: Option<std::net::UdpSocket>,
    status: watch::Sender<BfdStatus>,
}

struct Task {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    sessions: HashMap<IpAddr, Entry>,
    by_disc: HashMap<u32, IpAddr>,
    seed: u64,
    counters: Arc<BfdCounters>,
    /// Where Up sessions are kept for a restart (resume.rs), and what was
    /// last written there.
    state: Option<PathBuf>,
    stored: Vec<Saved>,
    /// A session changed state or came or went since the last `persist`
    /// (not every packet: the saved fields change only then).
    dirty: bool,
    /// Resumed sessions no peer task has claimed yet, and when they go:
    /// a peer whose BGP session does not come back has no BFD either.
    unclaimed: HashMap<IpAddr, Instant>,
}

impl Task {
    /// A session saved by the previous run of the daemon, back in Up.
    fn resume(&mut self, saved: &Saved, config: BfdConfig) {
        if self.sessions.contains_key(&saved.peer)
            || self.by_disc.contains_key(&saved.local_discriminator)
        {
            return;
        }
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let session = Session::resume(config, saved, self.seed, Instant::now());
        let (status, _) = watch::channel(session.status());
        self.by_disc.insert(saved.local_discriminator, saved.peer);
        self.unclaimed
            .insert(saved.peer, Instant::now() + RESUMED_CLAIM_WAIT);
        tracing::info!(peer = %saved.peer, local = %saved.local, discriminator = saved.local_discriminator, "BFD session resumed in Up after a restart");
        self.sessions.insert(
            saved.peer,
            Entry {
                local: saved.local,
                session,
                socket: None,
                status,
            },
        );
    }

    /// Rewrites the state file when the Up sessions changed.
    fn persist(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let Some(path) = &self.state else {
            return;
        };
        let mut now: Vec<Saved> = self
            .sessions
            .iter()
            .filter_map(|(peer, e)| e.session.saved(*peer, e.local))
            .collect();
        now.sort_by_key(|s| s.peer);
        if now == self.stored {
            return;
        }
        if let Err(e) = resume::store(path, &now) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the BFD state");
            return;
        }
        tracing::debug!(path = %path.display(), sessions = now.len(), "BFD state written");
        self.stored = now;
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf4 = [0u8; 512];
        let mut buf6 = [0u8; 512];
        loop {
            let deadline = self
                .sessions
                .values()
                .map(|e| e.session.next_deadline())
                .chain(self.unclaimed.values().copied())
                .min();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => {
                        self.admin_down_all().await;
                        self.persist();
                        return;
                    }
                },
                received = recv(self.v4.as_ref(), &mut buf4) => self.received(received, &buf4),
                received = recv(self.v6.as_ref(), &mut buf6) => self.received(received, &buf6),
                () = sleep_until(deadline) => self.timers(Instant::now()),
            }
            self.persist();
        }
    }

    async fn command(&mut self, command: Command) {
        let now = Instant::now();
        self.dirty = true;
        match command {
            Command::Add {
                peer,
                local,
                config,
                reply,
            } => {
                self.unclaimed.remove(&peer);
                let entry = match self.sessions.get_mut(&peer) {
                    Some(entry) => {
                        entry.session.reconfigure(config, now);
                        if entry.local != local {
                            entry.local = local;
                            entry.socket = None;
                        }
                        entry
                    }
                    None => {
                        let disc = self.new_discriminator();
                        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                        let session = Session::new(config, disc, self.seed, now);
                        let (status, _) = watch::channel(session.status());
                        self.by_disc.insert(disc, peer);
                        tracing::info!(%peer, %local, discriminator = disc, "BFD session added");
                        self.sessions.entry(peer).or_insert(Entry {
                            local,
                            session,
                            socket: None,
                            status,
                        })
                    }
                };
                let _ = reply.send(entry.status.subscribe());
            }
            Command::Reconfigure { peer, config } => {
                if let Some(entry) = self.sessions.get_mut(&peer) {
                    entry.session.reconfigure(config, now);
                    publish(entry);
                }
            }
            Command::Remove { peer } => self.remove(peer),
            Command::AdminDownAll { done } => {
                self.admin_down_all().await;
                let _ = done.send(());
            }
        }
    }

    async fn admin_down_all(&mut self) {
        self.dirty = true;
        let mut tasks = tokio::task::JoinSet::new();
        for (peer, mut entry) in self.sessions.drain() {
            entry.session.admin_down(Instant::now());
            publish(&entry);
            tasks.spawn(say_admin_down(peer, entry, self.counters.clone()));
        }
        self.by_disc.clear();
        while tasks.join_next().await.is_some() {}
    }

    fn received(&mut self, received: io::Result<(usize, SocketAddr, Option<u8>)>, buf: &[u8]) {
        let (len, source, ttl) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "BFD receive failed");
                return;
            }
        };
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if ttl != Some(SINGLE_HOP_TTL) {
            self.counters.bad_ttl.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%source, ?ttl, "BFD packet dropped: TTL not 255 (RFC 5881 §5)");
            return;
        }
        let packet = match ControlPacket::decode(buf.get(..len).unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => {
                let counter = if e == DecodeError::Authenticated {
                    &self.counters.authenticated
                } else {
                    &self.counters.invalid
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, error = %e, "BFD packet discarded");
                return;
            }
        };
        let peer = if packet.your_discriminator != 0 {
            self.by_disc.get(&packet.your_discriminator).copied()
        } else {
            Some(source.ip())
        };
        let Some(entry) = peer.and_then(|p| self.sessions.get_mut(&p)) else {
            self.counters.no_session.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%source, your = packet.your_discriminator, "BFD packet for no session");
            return;
        };
        let now = Instant::now();
        let before = entry.session.state();
        match entry.session.receive(&packet, now) {
            Ok(Some(reply)) => send(peer.unwrap_or(source.ip()), entry, &reply, &self.counters),
            Ok(None) => {}
            Err(e) => {
                self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%source, ?e, "BFD packet discarded");
            }
        }
        self.dirty |= entry.session.state() != before;
        log_change(source.ip(), before, entry);
        publish(entry);
    }

    /// Ends the session with `peer`, telling it AdminDown.
    fn remove(&mut self, peer: IpAddr) {
        self.dirty = true;
        self.unclaimed.remove(&peer);
        if let Some(entry) = self.sessions.remove(&peer) {
            self.by_disc.remove(&entry.session.local_discriminator());
            tracing::info!(%peer, "BFD session removed");
            let counters = self.counters.clone();
            tokio::spawn(say_admin_down(peer, entry, counters));
        }
    }

    fn timers(&mut self, now: Instant) {
        let unclaimed: Vec<IpAddr> = self
            .unclaimed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in unclaimed {
            tracing::info!(%peer, "resumed BFD session not claimed by a BGP session; removed");
            self.remove(peer);
        }
        for (peer, entry) in &mut self.sessions {
            if entry.session.next_deadline() > now {
                continue;
            }
            let before = entry.session.state();
            if let Some(packet) = entry.session.poll_timers(now) {
                send(*peer, entry, &packet, &self.counters);
            }
            self.dirty |= entry.session.state() != before;
            log_change(*peer, before, entry);
            publish(entry);
        }
    }

    /// A random discriminator, non-zero and not in use (RFC 5880 §6.8.1).
    fn new_discriminator(&mut self) -> u32 {
        loop {
            self.seed = RandomState::new().hash_one(self.seed);
            let disc = (self.seed >> 32) as u32;
            if disc != 0 && !self.by_disc.contains_key(&disc) {
                return disc;
            }
        }
    }
}

fn log_change(peer: IpAddr, before: super::BfdState, entry: &Entry) {
    let after = entry.session.status();
    if after.state != before {
        tracing::info!(%peer, from = %before, to = %after.state, diagnostic = %after.local_diagnostic, "BFD session state");
    }
}

fn publish(entry: &Entry) {
    let new = entry.session.status();
    entry.status.send_if_modified(|s| {
        let changed = *s != new;
        *s = new;
        changed
    });
}

/// Sends `packet` to `peer`, opening the session's send socket if needed.
/// A send that fails is only logged: the detection timer is the judge.
fn send(peer: IpAddr, entry: &mut Entry, packet: &ControlPacket, counters: &BfdCounters) {
    if entry.socket.is_none() {
        match send_socket(entry.local) {
            Ok(socket) => entry.socket = Some(socket),
            Err(e) => {
                tracing::debug!(%peer, local = %entry.local, error = %e, "BFD cannot open its send socket");
                return;
            }
        }
    }
    let Some(socket) = &entry.socket else {
        return;
    };
    match socket.send_to(&packet.encode(), SocketAddr::new(peer, CONTROL_PORT)) {
        Ok(_) => {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(%peer, error = %e, "BFD send failed"),
    }
}

async fn say_admin_down(peer: IpAddr, mut entry: Entry, counters: Arc<BfdCounters>) {
    entry.session.admin_down(Instant::now());
    publish(&entry);
    let spacing = entry
        .session
        .status()
        .remote_min_rx
        .clamp(Duration::from_millis(10), ADMIN_DOWN_SPACING_MAX);
    for i in 0..ADMIN_DOWN_PACKETS {
        if i > 0 {
            tokio::time::sleep(spacing).await;
        }
        let packet = entry.session.packet();
        send(peer, &mut entry, &packet, &counters);
    }
}

fn receive_socket(any: IpAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(any, 0)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    // No SO_REUSEADDR: another BFD daemon on the host (FRR's bfdd) must make
    // our bind fail, not silently share port 3784 and its packets with us.
    if any.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_recv_hoplimit_v6(true)?;
    } else {
        sockopt::set_recv_ttl_v4(socket.as_fd())?;
    }
    socket.bind(&SocketAddr::new(any, CONTROL_PORT).into())?;
    UdpSocket::from_std(socket.into())
}

fn send_socket(local: IpAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(SocketAddr::new(local, 0)),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_nonblocking(true)?;
    if local.is_ipv6() {
        socket.set_unicast_hops_v6(SINGLE_HOP_TTL.into())?;
    } else {
        socket.set_ttl_v4(SINGLE_HOP_TTL.into())?;
    }
    // Start somewhere random in the range, then walk it.
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let start = (RandomState::new().hash_one(local) % u64::from(span)) as u32;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for i in 0..span.min(256) {
        let port = SOURCE_PORTS.start() + ((start + i) % span) as u16;
        match socket.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => return Ok(socket.into()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

async fn recv(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    socket
        .async_io(Interest::READABLE, || {
            sockopt::recv_with_ttl(socket.as_fd(), buf)
        })
        .await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
