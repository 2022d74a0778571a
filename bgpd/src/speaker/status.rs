// What the admin API shows of a peer: a snapshot each peer task publishes
// after every event it handles, so reading it never waits on the session.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use crate::config::{BgpConfiguration, PeerConfig};
use crate::session::{MessageCounters, Session, State};
use crate::wire::Family;

#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    pub local_as: u32,
    pub description: String,
    pub passive: bool,
    pub shutdown: bool,
    pub state: State,
    pub state_since: Instant,
    pub established_since: Option<Instant>,
    pub established_transitions: u64,
    pub last_error: String,
    pub remote_id: Option<Ipv4Addr>,
    pub local_endpoint: Option<SocketAddr>,
    pub remote_endpoint: Option<SocketAddr>,
    pub hold_time: u16,
    pub keepalive_time: u16,
    pub families: Vec<Family>,
    pub peer_capabilities: Vec<String>,
    pub local_capabilities: Vec<String>,
    pub received: MessageCounters,
    pub sent: MessageCounters,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
    /// Graceful restart (RFC 4724) with this peer.
    pub graceful: super::graceful::GracefulStatus,
    /// The peer's configured BFD timers; `None`: BFD off.
    pub bfd_config: Option<crate::config::BfdConfig>,
    /// The BFD session's last status, once one was started.
    pub bfd: Option<crate::bfd::BfdStatus>,
    /// What earlier sessions with this peer counted (see `Carried`).
    pub carried: Carried,
}

/// Counters of a peer's earlier tasks: a reload that restarts the session
/// starts a new task (and a new BFD session), and these are added to its
/// own so the counters the admin API and /metrics show count from the
/// daemon's start, as Prometheus counters must.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    pub established_transitions: u64,
    pub received: MessageCounters,
    pub sent: MessageCounters,
    pub bfd_up_transitions: u64,
}

impl PeerStatus {
    pub fn new(global: &BgpConfiguration, peer: &PeerConfig) -> PeerStatus {
        PeerStatus {
            name: peer.name.clone(),
            address: peer.address,
            remote_as: peer.as_number,
            local_as: global.as_number,
            description: peer.description.clone(),
            passive: peer.passive,
            shutdown: peer.shutdown.is_some(),
            state: State::Idle,
            state_since: Instant::now(),
            established_since: None,
            established_transitions: 0,
            last_error: String::new(),
            remote_id: None,
            local_endpoint: None,
            remote_endpoint: None,
            hold_time: 0,
            keepalive_time: 0,
            families: Vec::new(),
            peer_capabilities: Vec::new(),
            local_capabilities: crate::session::build_open(&super::session_config(global, peer))
                .capabilities
                .iter()
                .map(ToString::to_string)
                .collect(),
            received: MessageCounters::default(),
            sent: MessageCounters::default(),
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            graceful: super::graceful::GracefulStatus::default(),
            bfd_config: peer.bfd,
            bfd: None,
            carried: Carried::default(),
        }
    }

    /// Starts from an earlier task's totals.
    pub fn carry_on(&mut self, carried: Carried) {
        self.carried = carried;
        self.established_transitions = carried.established_transitions;
        self.received = carried.received;
        self.sent = carried.sent;
    }

    /// Everything counted so far, for the peer's next task.
    pub fn totals(&self) -> Carried {
        Carried {
            established_transitions: self.established_transitions,
            received: self.received,
            sent: self.sent,
            bfd_up_transitions: self.bfd_up_transitions(),
        }
    }

    /// Times BFD with this peer reached Up since the daemon started.
    pub fn bfd_up_transitions(&self) -> u64 {
        let current = self.bfd.as_ref().map_or(0, |b| b.up_transitions);
        self.carried.bfd_up_transitions.saturating_add(current)
    }

    /// The BFD session goes (its count stays).
    pub fn drop_bfd(&mut self) {
        self.carried.bfd_up_transitions = self.bfd_up_transitions();
        self.bfd = None;
    }

    /// Refreshes the session part; `endpoints` are the Established
    /// connection's (local, remote) addresses.
    pub fn update_from(&mut self, session: &Session, endpoints: Option<(SocketAddr, SocketAddr)>) {
        let state = session.state();
        if state != self.state {
            self.state = state;
            self.state_since = session.state_since().unwrap_or_else(Instant::now);
        }
        self.established_since = session.established_since();
        let carried = &self.carried;
        self.established_transitions = carried
            .established_transitions
            .saturating_add(session.established_transitions());
        self.received = carried.received.plus(&session.counters().received);
        self.sent = carried.sent.plus(&session.counters().sent);
        (self.local_endpoint, self.remote_endpoint) = match endpoints {
            Some((l, r)) => (Some(l), Some(r)),
            None => (None, None),
        };
        match session.negotiated() {
            Some(n) if state == State::Established => {
                self.remote_id = Some(n.remote_id);
                self.hold_time = n.hold_time;
                self.keepalive_time = n.keepalive_time;
                self.families = n.families.clone();
                self.peer_capabilities = n
                    .peer_capabilities
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            }
            _ => {
                self.hold_time = 0;
                self.keepalive_time = 0;
                self.families.clear();
            }
        }
    }
}
