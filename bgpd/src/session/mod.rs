// The per-peer BGP session: the RFC 4271 §8 finite state machine with
// connection collision detection (§6.8), OPEN checking and capability
// negotiation (§6.2, RFC 5492, RFC 6286, RFC 6793), FSM error subcodes
// (RFC 6608) and Cease subcodes (RFC 4486, RFC 9003). Sans-I/O: events and
// the current time in, actions out. The sockets it is driven over live in
// session/transport (the one I/O module here) and the driver in speaker/.
//
// # How a driver uses it
//
// * One `Session` per configured peer, built from a `SessionConfig`.
// * Feed it `Event`s with the current `Instant`, and call `poll_timers` at
//   (or after) `next_deadline()`. Carry out the returned `Action`s in order.
// * Connection ids: the session allocates every `ConnId`, from one counter,
//   so ids are unique within a session (the driver keys sockets by
//   peer + id). Outgoing: the session asks with `Action::Connect { conn }`;
//   the driver answers `TcpConnected { conn, Outgoing }` or `TcpFailed`.
//   `Action::Close` on a connection still connecting means "abort it".
//   Incoming: the driver, having accepted a TCP connection from this peer's
//   address, calls `accept_incoming(now)` (or takes `next_conn_id()` and
//   sends `TcpConnected { conn, Incoming }` itself).
// * The session emits `Close` for every connection it drops, except those
//   the driver reported gone itself (`TcpFailed`, `TcpClosed`).
// * Events about ids the session no longer knows (already closed) are
//   ignored, so the driver need not flush its queues after a `Close`;
//   except a late `TcpConnected` for an abandoned outgoing attempt, which
//   is answered with `Close`.
// * Outgoing UPDATE and ROUTE-REFRESH go through `Event::Send` so the
//   session can pick the established connection, restart the keepalive
//   timer (RFC 4271 §8.2.2) and count them. Received ones come back as
//   `Action::Deliver`.
// * After `SetCodecParams` the driver must decode that connection's next
//   messages with the new parameters.
//
// # Where this differs in shape from RFC 4271 §8
//
// * The RFC runs one FSM per TCP connection during a collision. Here one
//   `Session` holds up to two connections (one Outgoing, one Incoming);
//   `state()` is the most advanced of them, or Connect / Active / Idle
//   when none has reached OpenSent.
// * Automatic restart with peer-oscillation damping (RFC 4271 §8.1.1
//   events 3-7, `IdleHoldTimer`) is always on: after a failure the session
//   waits in Idle, 1 s doubling up to 60 s, then starts again by itself,
//   like BIRD. See `timers.rs`. Only `Event::Stop` keeps it down.
// * `Action::Down` is emitted every time an attempt ends with a reason
//   (which also becomes `last_error()`): a failed outgoing connect, the
//   loss of the last connection for any reason, and `Stop` while a
//   connection existed. It is not emitted for the loser of a collision. A
//   driver withdraws the peer's routes on `Down` only if it had seen
//   `Established` since the previous `Down`.

mod collision;
mod config;
mod counters;
mod fsm;
mod negotiate;
mod notification;
mod timers;
pub mod transport;

pub use config::SessionConfig;
pub use counters::{MessageCounters, MessageCountersByDirection};
pub use fsm::Session;
pub use negotiate::{Negotiated, build_open};
pub use notification::{DownReason, admin_shutdown, cease};

use std::fmt;

use crate::wire::{CodecParams, Message, Notification};

/// RFC 4271 §8.2.2 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    /// The state's number in BGP4-MIB's bgpPeerState (RFC 4273): idle(1)
    /// to established(6), as metrics and SNMP show it.
    pub fn mib_value(self) -> u8 {
        match self {
            State::Idle => 1,
            State::Connect => 2,
            State::Active => 3,
            State::OpenSent => 4,
            State::OpenConfirm => 5,
            State::Established => 6,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// One TCP connection of a session, allocated by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Who opened a TCP connection; decides collisions (RFC 4271 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// Inputs to `Session::handle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// ManualStart (RFC 4271 §8.1.2 event 1, or event 4 when passive).
    Start,
    /// ManualStop (event 2). The NOTIFICATION sent on open connections;
    /// `None` means Cease / Administrative Shutdown without a message.
    Stop { notification: Option<Notification> },
    /// ManualStop without any NOTIFICATION: the connections just close, so
    /// a peer with graceful restart in effect keeps our routes while we
    /// restart (RFC 4724 §4.1).
    StopQuietly,
    /// The outgoing connect for `conn` succeeded (events 16/17), or an
    /// incoming connection from this peer was accepted as `conn`.
    TcpConnected { conn: ConnId, direction: Direction },
    /// The outgoing connect for `conn` failed (event 18 before OpenSent).
    TcpFailed { conn: ConnId },
    /// The peer closed `conn`, or reading or writing it failed (event 18).
    TcpClosed { conn: ConnId },
    /// A message decoded from `conn`.
    Message { conn: ConnId, message: Message },
    /// The codec refused a message on `conn` and says which NOTIFICATION
    /// RFC 4271 §6 prescribes: send it and drop the connection.
    DecodeError {
        conn: ConnId,
        notification: Notification,
    },
    /// The RIB wants an UPDATE or ROUTE-REFRESH sent to the peer. Dropped
    /// unless Established; any other message type is dropped too (the FSM
    /// owns OPEN, KEEPALIVE and NOTIFICATION).
    Send { message: Message },
    /// BFD declared the path to the peer down (RFC 5882 §4.3): an
    /// Established session ends at once, like a hold timer expiry but
    /// without a NOTIFICATION (as FRR's BGP_Stop on BFD down: the path is
    /// presumed dead, and the peer learns from its own BFD or the TCP
    /// FIN). Ignored in any other state.
    BfdDown,
}

/// Outputs of the session, to be carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outgoing TCP connection to the peer and report
    /// `TcpConnected` or `TcpFailed` with this id.
    Connect { conn: ConnId },
    /// Write `message` on `conn`.
    Send { conn: ConnId, message: Message },
    /// Close `conn` (abort it if still connecting) after flushing the
    /// `Send`s queued before this action.
    Close { conn: ConnId },
    /// Encode and decode `conn`'s following messages with `params`.
    SetCodecParams { conn: ConnId, params: CodecParams },
    /// The session reached Established on `conn`.
    Established {
        conn: ConnId,
        negotiated: Negotiated,
    },
    /// A received UPDATE or ROUTE-REFRESH for the RIB.
    Deliver { message: Message },
    /// An attempt ended (see the module comment); `reason` is also
    /// `last_error()`.
    Down { reason: DownReason },
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
