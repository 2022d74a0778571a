// The session FSM of RFC 4271 §8.2.2 for one peer: Idle, Connect, Active,
// OpenSent, OpenConfirm, Established, with up to two TCP connections during
// a collision (§6.8), FSM error subcodes of RFC 6608 and the automatic
// restart with idle-hold backoff of §8.1.1 (see timers.rs). `handle` and
// `poll_timers` are the only ways in; both return the actions to carry out.

use std::time::Instant;

use super::collision::survivor;
use super::config::SessionConfig;
use super::counters::MessageCountersByDirection;
use super::negotiate::{Negotiated, build_open, negotiate};
use super::notification::{DownReason, cease, fsm_error, hold_timer_expired};
use super::timers::{IdleHoldBackoff, OPEN_HOLD_TIME, deadline_in, earliest, expired};
use super::{Action, ConnId, Direction, Event, State};
use crate::wire::iana::notification::{cease as cease_subcode, fsm as fsm_subcode};
use crate::wire::{
    GracefulRestart, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype,
};

/// One peer's BGP session. See the module comment of `session` for how a
/// driver uses it.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// At most one per direction; Established implies it is the only one.
    connections: Vec<Connection>,
    /// Between `Start` and `Stop`.
    enabled: bool,
    next_conn_id: u64,
    connect_retry: Option<Instant>,
    /// Automatic restart after a failure (RFC 4271 §8.1.1 IdleHoldTimer).
    idle_hold: Option<Instant>,
    backoff: IdleHoldBackoff,
    last_error: Option<DownReason>,
    counters: MessageCountersByDirection,
    established_since: Option<Instant>,
    state_since: Option<Instant>,
    established_transitions: u64,
}

/// Where one TCP connection is in the FSM. Connect / Active / Idle belong
/// to the session as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ConnState {
    /// Outgoing TCP connect in progress.
    Connecting,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Connection {
    id: ConnId,
    direction: Direction,
    state: ConnState,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    /// Set on receiving a good OPEN (OpenConfirm and Established).
    negotiated: Option<Negotiated>,
}

impl Connection {
    fn is_open(&self) -> bool {
        self.state >= ConnState::OpenSent
    }
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            connections: Vec::new(),
            enabled: false,
            next_conn_id: 1,
            connect_retry: None,
            idle_hold: None,
            backoff: IdleHoldBackoff::new(),
            last_error: None,
            counters: MessageCountersByDirection::default(),
            established_since: None,
            state_since: None,
            established_transitions: 0,
        }
    }

    /// Processes one event at time `now`.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let before = self.state();
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(now, &mut out),
            Event::Stop { notification } => self.stop(Some(notification), &mut out),
            Event::StopQuietly => self.stop(None, &mut out),
            Event::TcpConnected {
                conn,
                direction: Direction::Outgoing,
            } => self.outgoing_connected(conn, now, &mut out),
            Event::TcpConnected {
                conn,
                direction: Direction::Incoming,
            } => self.incoming_connected(conn, now, &mut out),
            Event::TcpFailed { conn } | Event::TcpClosed { conn } => {
                self.tcp_gone(conn, now, &mut out)
            }
            Event::Message { conn, message } => self.receive(conn, message, now, &mut out),
            Event::DecodeError { conn, notification } => {
                if let Some(index) = self.open_connection(conn) {
                    let reason = DownReason::NotificationSent(notification.clone());
                    self.fail(index, notification, reason, now, &mut out);
                }
            }
            Event::Send { message } => self.send_from_rib(message, now, &mut out),
            Event::BfdDown => {
                if let Some(index) = self
                    .connections
                    .iter()
                    .position(|c| c.state == ConnState::Established)
                {
                    let conn = self.connections[index].id;
                    out.push(Action::Close { conn });
                    self.lose(index, DownReason::BfdDown, now, &mut out);
                }
            }
        }
        self.finish(before, now);
        out
    }

    /// Fires every timer that expired by `now`, each at most once.
    pub fn poll_timers(&mut self, now: Instant) -> Vec<Action> {
        let before = self.state();
        let mut out = Vec::new();
        let ids: Vec<ConnId> = self.connections.iter().map(|c| c.id).collect();
        for id in ids {
            let Some(index) = self.index_of(id) else {
                continue;
            };
            let conn = &mut self.connections[index];
            if expired(conn.hold, now) {
                // RFC 4271 §6.5.
                let n = hold_timer_expired();
                self.fail(index, n, DownReason::HoldTimerExpired, now, &mut out);
            } else if expired(conn.keepalive, now) {
                let seconds = conn.negotiated.as_ref().map_or(0, |n| n.keepalive_time);
                conn.keepalive = deadline_in(now, seconds);
                self.send(id, Message::Keepalive, &mut out);
            }
        }
        if expired(self.connect_retry, now) {
            self.connect_retry = None;
            if self.wants_outgoing() {
                // RFC 4271 §8.2.2 Connect, event 9: drop the attempt in
                // progress, if any, and try again.
                if let Some(index) = self.connecting_outgoing() {
                    let conn = self.connections.remove(index);
                    out.push(Action::Close { conn: conn.id });
                }
                self.connect_out(now, &mut out);
            }
        }
        if expired(self.idle_hold, now) {
            self.idle_hold = None;
            if self.enabled {
                self.begin(now, &mut out);
            }
        }
        self.finish(before, now);
        out
    }

    /// When `poll_timers` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let connection_timers = self.connections.iter().flat_map(|c| [c.hold, c.keepalive]);
        earliest(connection_timers.chain([self.connect_retry, self.idle_hold]))
    }

    pub fn state(&self) -> State {
        let most_advanced = self.connections.iter().map(|c| c.state).max();
        match most_advanced {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            Some(ConnState::Connecting) => State::Connect,
            None if self.enabled && self.idle_hold.is_none() => State::Active,
            None => State::Idle,
        }
    }

    /// What the Established connection negotiated.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.connections
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| c.negotiated.as_ref())
    }

    /// Why the last attempt ended; kept across later attempts until the
    /// next failure replaces it.
    pub fn last_error(&self) -> Option<&DownReason> {
        self.last_error.as_ref()
    }

    /// Allocates an id for an incoming connection, to be reported with
    /// `Event::TcpConnected { direction: Incoming }`.
    pub fn next_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_conn_id);
        self.next_conn_id = self.next_conn_id.saturating_add(1);
        id
    }

    /// Hands over a TCP connection the driver accepted from this peer:
    /// `next_conn_id` plus `TcpConnected { Incoming }` in one call.
    pub fn accept_incoming(&mut self, now: Instant) -> (ConnId, Vec<Action>) {
        let conn = self.next_conn_id();
        let actions = self.handle(
            Event::TcpConnected {
                conn,
                direction: Direction::Incoming,
            },
            now,
        );
        (conn, actions)
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The Graceful Restart capability of the next OPEN (its R and F bits
    /// change once the restart is over, RFC 4724 §3).
    pub fn set_graceful_restart(&mut self, graceful_restart: Option<GracefulRestart>) {
        self.config.graceful_restart = graceful_restart;
    }

    pub fn counters(&self) -> &MessageCountersByDirection {
        &self.counters
    }

    /// When the session last reached Established, while it still is.
    pub fn established_since(&self) -> Option<Instant> {
        self.established_since
    }

    /// When `state()` last changed; `None` if it never left Idle.
    pub fn state_since(&self) -> Option<Instant> {
        self.state_since
    }

    /// How many times the session reached Established.
    pub fn established_transitions(&self) -> u64 {
        self.established_transitions
    }

    /// The established connection, for a driver that needs to know which
    /// socket carries the session.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.connections
            .iter()
            .find(|c| c.state == ConnState::Established)
            .map(|c| c.id)
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.enabled {
            // Already running, or waiting out an idle hold.
            return;
        }
        self.enabled = true;
        self.idle_hold = None;
        self.backoff.reset();
        self.begin(now, out);
    }

    /// Leaves Idle: Connect for an active peer, Active for a passive one
    /// (RFC 4271 §8.2.2 Idle, events 1 and 4).
    fn begin(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.config.passive {
            self.connect_out(now, out);
        }
    }

    fn connect_out(&mut self, now: Instant, out: &mut Vec<Action>) {
        let id = self.next_conn_id();
        self.connections.push(Connection {
            id,
            direction: Direction::Outgoing,
            state: ConnState::Connecting,
            hold: None,
            keepalive: None,
            negotiated: None,
        });
        self.connect_retry = Some(now + self.config.connect_retry);
        out.push(Action::Connect { conn: id });
    }

    /// `notification`: None stops quietly; Some(None) sends Cease /
    /// Administrative Shutdown (RFC 4486 §4), Some(Some(n)) sends `n`.
    fn stop(&mut self, notification: Option<Option<Notification>>, out: &mut Vec<Action>) {
        let quiet = notification.is_none();
        let notification = notification
            .flatten()
            .unwrap_or_else(|| cease(cease_subcode::ADMINISTRATIVE_SHUTDOWN));
        let had_connections = !self.connections.is_empty();
        let mut notified = false;
        for conn in std::mem::take(&mut self.connections) {
            if conn.is_open() && !quiet {
                self.send(conn.id, Message::Notification(notification.clone()), out);
                notified = true;
            }
            out.push(Action::Close { conn: conn.id });
        }
        self.enabled = false;
        self.connect_retry = None;
        self.idle_hold = None;
        self.established_since = None;
        if had_connections {
            let notification = notified.then_some(notification);
            self.record_down(DownReason::AdminStop { notification }, out);
        }
    }

    fn outgoing_connected(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Action>) {
        match self.index_of(conn) {
            Some(index) => {
                let c = &self.connections[index];
                if c.direction == Direction::Outgoing && c.state == ConnState::Connecting {
                    self.send_open(index, now, out);
                }
            }
            // An attempt we gave up on (connect retry, Stop) succeeded late.
            None => {
                self.reserve(conn);
                out.push(Action::Close { conn });
            }
        }
    }

    fn incoming_connected(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Action>) {
        if self.index_of(conn).is_some() {
            return; // a driver bug; the connection we know stays
        }
        self.reserve(conn);
        // RFC 4486 §4 Connection Rejected: refused before any BGP exchange,
        // so it is not collision resolution (§6.8 needs the peer's OPEN).
        // Refused while stopped, while Established (§6.8: the new
        // connection loses; a peer that restarted is noticed by the hold
        // timer or its NOTIFICATION), and when the peer already has a
        // connection to us. Not while waiting out an idle hold: the hold
        // paces our own connects, and two speakers refusing each other's
        // connections during their holds can stay out of step for ever
        // (seen between two podroute-bgpd after a reconfiguration).
        let refused = !self.enabled
            || self
                .connections
                .iter()
                .any(|c| c.state == ConnState::Established || c.direction == Direction::Incoming);
        if refused {
            let n = cease(cease_subcode::CONNECTION_REJECTED);
            self.send(conn, Message::Notification(n), out);
            out.push(Action::Close { conn });
            return;
        }
        self.idle_hold = None;
        self.connections.push(Connection {
            id: conn,
            direction: Direction::Incoming,
            state: ConnState::Connecting,
            hold: None,
            keepalive: None,
            negotiated: None,
        });
        let index = self.connections.len() - 1;
        self.send_open(index, now, out);
    }

    /// TCP is up: send OPEN and wait for the peer's under the large hold
    /// timer (RFC 4271 §8.2.2 Connect/Active, events 16/17).
    fn send_open(&mut self, index: usize, now: Instant, out: &mut Vec<Action>) {
        let conn = &mut self.connections[index];
        conn.state = ConnState::OpenSent;
        conn.hold = Some(now + OPEN_HOLD_TIME);
        let id = conn.id;
        let open = build_open(&self.config);
        self.send(id, Message::Open(open), out);
    }

    /// The driver says `conn` failed to connect or was closed.
    fn tcp_gone(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Action>) {
        let Some(index) = self.index_of(conn) else {
            return;
        };
        if self.connections[index].state == ConnState::Connecting {
            self.connections.remove(index);
            if self.connections.is_empty() {
                // RFC 4271 §8.2.2 Connect, event 18: restart the connect
                // retry timer and wait in Active.
                self.connect_retry = Some(now + self.config.connect_retry);
                self.record_down(DownReason::ConnectFailed, out);
            }
        } else {
            self.lose(index, DownReason::ConnectionClosed, now, out);
        }
    }

    fn receive(&mut self, conn: ConnId, message: Message, now: Instant, out: &mut Vec<Action>) {
        let Some(index) = self.open_connection(conn) else {
            return;
        };
        self.counters.received.count(&message);
        let state = self.connections[index].state;
        match (state, message) {
            (_, Message::Notification(n)) => {
                // RFC 4271 §6.4: no reply; even an Unsupported Version
                // Number in OpenSent just ends the connection (§8.2.2).
                out.push(Action::Close { conn });
                self.lose(index, DownReason::NotificationReceived(n), now, out);
            }
            (ConnState::OpenSent, Message::Open(open)) => {
                self.receive_open(index, &open, now, out);
            }
            (ConnState::OpenConfirm, Message::Keepalive) => self.establish(index, now, out),
            (ConnState::Established, Message::Keepalive) => self.restart_hold(index, now),
            (ConnState::Established, Message::Update(update)) => {
                self.restart_hold(index, now);
                out.push(Action::Deliver {
                    message: Message::Update(update),
                });
            }
            (ConnState::Established, Message::RouteRefresh(refresh)) => {
                if self.wants_route_refresh(index, &refresh) {
                    out.push(Action::Deliver {
                        message: Message::RouteRefresh(refresh),
                    });
                }
            }
            (state, _) => {
                // RFC 6608 §3: which state the unexpected message hit.
                let subcode = match state {
                    ConnState::OpenSent => fsm_subcode::UNEXPECTED_IN_OPENSENT,
                    ConnState::OpenConfirm => fsm_subcode::UNEXPECTED_IN_OPENCONFIRM,
                    _ => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
                };
                let n = fsm_error(subcode);
                self.fail(index, n.clone(), DownReason::NotificationSent(n), now, out);
            }
        }
    }

    /// RFC 2918 §4: ignore a request for a family not negotiated; RFC 7313
    /// §5: ignore reserved subtypes.
    fn wants_route_refresh(&self, index: usize, refresh: &RouteRefresh) -> bool {
        let negotiated = self.connections[index].negotiated.as_ref();
        let family_ok = negotiated.is_some_and(|n| n.families.contains(&refresh.family));
        family_ok && !matches!(refresh.subtype, RouteRefreshSubtype::Reserved(_))
    }

    /// RFC 4271 §8.2.2 OpenSent, event 19, with collision detection (§6.8).
    fn receive_open(&mut self, index: usize, open: &Open, now: Instant, out: &mut Vec<Action>) {
        let negotiated = match negotiate(&self.config, open) {
            Ok(negotiated) => negotiated,
            Err(n) => {
                self.fail(index, n.clone(), DownReason::NotificationSent(n), now, out);
                return;
            }
        };
        let id = self.connections[index].id;
        let other = self
            .connections
            .iter()
            .position(|c| c.id != id && c.state >= ConnState::OpenConfirm);
        if let Some(other) = other {
            let winner = if self.connections[other].state == ConnState::Established {
                self.connections[other].direction
            } else {
                survivor(
                    self.config.local_id,
                    self.config.local_as,
                    negotiated.remote_id,
                    negotiated.remote_as,
                )
            };
            let loser = if self.connections[index].direction == winner {
                other
            } else {
                index
            };
            self.close_collision_loser(loser, out);
            if loser == index {
                return;
            }
        }
        let Some(index) = self.index_of(id) else {
            return;
        };
        let params = negotiated.codec_params();
        let conn = &mut self.connections[index];
        conn.state = ConnState::OpenConfirm;
        conn.hold = deadline_in(now, negotiated.hold_time);
        conn.keepalive = deadline_in(now, negotiated.keepalive_time);
        conn.negotiated = Some(negotiated);
        out.push(Action::SetCodecParams { conn: id, params });
        self.send(id, Message::Keepalive, out);
    }

    /// RFC 4271 §8.2.2 OpenConfirm, event 26.
    fn establish(&mut self, index: usize, now: Instant, out: &mut Vec<Action>) {
        self.restart_hold(index, now);
        let conn = &mut self.connections[index];
        conn.state = ConnState::Established;
        let id = conn.id;
        let Some(negotiated) = conn.negotiated.clone() else {
            return; // OpenConfirm always has it
        };
        self.established_since = Some(now);
        self.established_transitions = self.established_transitions.saturating_add(1);
        out.push(Action::Established {
            conn: id,
            negotiated,
        });
        // §6.8: a connection colliding with an Established one is closed.
        while let Some(other) = self.connections.iter().position(|c| c.id != id) {
            self.close_collision_loser(other, out);
        }
    }

    fn close_collision_loser(&mut self, index: usize, out: &mut Vec<Action>) {
        let conn = self.connections.remove(index);
        if conn.is_open() {
            let n = cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
            self.send(conn.id, Message::Notification(n), out);
        }
        out.push(Action::Close { conn: conn.id });
    }

    fn restart_hold(&mut self, index: usize, now: Instant) {
        let conn = &mut self.connections[index];
        let seconds = conn.negotiated.as_ref().map_or(0, |n| n.hold_time);
        conn.hold = deadline_in(now, seconds);
    }

    fn send_from_rib(&mut self, message: Message, now: Instant, out: &mut Vec<Action>) {
        if !matches!(message, Message::Update(_) | Message::RouteRefresh(_)) {
            return;
        }
        let Some(index) = self
            .connections
            .iter()
            .position(|c| c.state == ConnState::Established)
        else {
            return;
        };
        let conn = &mut self.connections[index];
        if matches!(message, Message::Update(_)) {
            // RFC 4271 §8.2.2 Established: an UPDATE restarts the
            // keepalive timer like a KEEPALIVE does.
            let seconds = conn.negotiated.as_ref().map_or(0, |n| n.keepalive_time);
            conn.keepalive = deadline_in(now, seconds);
        }
        let id = conn.id;
        self.send(id, message, out);
    }

    /// Sends `notification` on the connection, closes it and lets it go.
    fn fail(
        &mut self,
        index: usize,
        notification: Notification,
        reason: DownReason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let id = self.connections[index].id;
        self.send(id, Message::Notification(notification), out);
        out.push(Action::Close { conn: id });
        self.lose(index, reason, now, out);
    }

    /// Forgets a connection that ended for `reason`. If it was the last
    /// one the attempt is over: Down, then Idle until the idle hold ends
    /// (RFC 4271 §8.2.2: errors after TCP is up go to Idle). A collision
    /// partner still alive carries the attempt on instead.
    fn lose(&mut self, index: usize, reason: DownReason, now: Instant, out: &mut Vec<Action>) {
        let conn = self.connections.remove(index);
        if !self.connections.is_empty() {
            return;
        }
        let established_for = match (conn.state, self.established_since, &conn.negotiated) {
            (ConnState::Established, Some(since), Some(n)) => {
                Some((now.saturating_duration_since(since), n.hold_time))
            }
            _ => None,
        };
        self.established_since = None;
        self.connect_retry = None;
        self.idle_hold = Some(now + self.backoff.after_failure(established_for));
        self.record_down(reason, out);
    }

    fn record_down(&mut self, reason: DownReason, out: &mut Vec<Action>) {
        self.last_error = Some(reason.clone());
        out.push(Action::Down { reason });
    }

    fn send(&mut self, conn: ConnId, message: Message, out: &mut Vec<Action>) {
        self.counters.sent.count(&message);
        out.push(Action::Send { conn, message });
    }

    /// Housekeeping after every input: the connect retry timer runs exactly
    /// while an active peer has no connection past Connect (RFC 4271
    /// §8.2.2: it stops on reaching OpenSent), and `state_since` follows
    /// `state()`.
    fn finish(&mut self, before: State, now: Instant) {
        if !self.wants_outgoing() {
            self.connect_retry = None;
        } else if self.connect_retry.is_none() {
            self.connect_retry = Some(now + self.config.connect_retry);
        }
        if self.state() != before {
            self.state_since = Some(now);
        }
    }

    fn wants_outgoing(&self) -> bool {
        self.enabled
            && !self.config.passive
            && self.idle_hold.is_none()
            && !self.connections.iter().any(Connection::is_open)
    }

    /// Keeps later allocations clear of an id the driver used, even one
    /// it made up instead of taking it from `next_conn_id`.
    fn reserve(&mut self, conn: ConnId) {
        self.next_conn_id = self.next_conn_id.max(conn.0.saturating_add(1));
    }

    fn index_of(&self, conn: ConnId) -> Option<usize> {
        self.connections.iter().position(|c| c.id == conn)
    }

    /// The connection `conn` if TCP is up on it.
    fn open_connection(&self, conn: ConnId) -> Option<usize> {
        self.index_of(conn)
            .filter(|&index| self.connections[index].is_open())
    }

    fn connecting_outgoing(&self) -> Option<usize> {
        self.connections
            .iter()
            .position(|c| c.direction == Direction::Outgoing && c.state == ConnState::Connecting)
    }

    /// Checks the invariants the property tests rely on.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        let count = |d: Direction| self.connections.iter().filter(|c| c.direction == d).count();
        if count(Direction::Outgoing) > 1 || count(Direction::Incoming) > 1 {
            return Err(format!("two connections one way: {:?}", self.connections));
        }
        let established = self
            .connections
            .iter()
            .filter(|c| c.state == ConnState::Established)
            .count();
        if established > 0 && self.connections.len() > 1 {
            return Err(format!(
                "Established beside another: {:?}",
                self.connections
            ));
        }
        if (self.state() == State::Established) != self.negotiated().is_some() {
            return Err("negotiated() disagrees with state()".into());
        }
        if (self.state() == State::Established) != self.established_since.is_some() {
            return Err("established_since disagrees with state()".into());
        }
        if !self.enabled && (!self.connections.is_empty() || self.next_deadline().is_some()) {
            return Err("stopped but still busy".into());
        }
        if self.idle_hold.is_some() && !self.connections.is_empty() {
            return Err("idle hold with connections".into());
        }
        let incoming_connecting = self
            .connections
            .iter()
            .any(|c| c.direction == Direction::Incoming && c.state == ConnState::Connecting);
        if incoming_connecting {
            return Err("incoming connection still connecting".into());
        }
        for c in &self.connections {
            if (c.state >= ConnState::OpenConfirm) != c.negotiated.is_some() {
                return Err(format!("negotiated out of step: {c:?}"));
            }
            if c.is_open()
                && c.hold.is_none()
                && c.negotiated.as_ref().is_none_or(|n| n.hold_time > 0)
            {
                return Err(format!("open connection without hold timer: {c:?}"));
            }
        }
        // An enabled session always has somewhere to go next, unless it
        // is passive and waiting, or waiting for a connection with hold
        // time 0.
        let waiting_forever =
            self.config.passive || self.connections.iter().any(Connection::is_open);
        if self.enabled && self.next_deadline().is_none() && !waiting_forever {
            return Err(format!(
                "enabled, active and no deadline in {}",
                self.state()
            ));
        }
        Ok(())
    }
}
