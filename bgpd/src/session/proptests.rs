// Property tests of the session FSM (RFC 4271 §8, §6.8): random sequences
// of events and timer polls never panic, never leave two connections
// Established, keep state() consistent with the connections held and with
// the actions emitted, and never act on a connection after closing it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::wire::{Capability, Family, Open, RouteRefresh, RouteRefreshSubtype, Update};

#[derive(Debug, Clone)]
enum PeerMessage {
    Open { peer_id_high: bool, hold_time: u16 },
    BadOpen,
    Keepalive,
    Update,
    Notification,
    RouteRefresh,
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    ConnectedOut(u64),
    AcceptIncoming,
    ConnectedIn(u64),
    Failed(u64),
    Closed(u64),
    Receive(u64, PeerMessage),
    DecodeError(u64),
    SendUpdate,
    Wait(u64),
    Poll,
}

fn conn_index() -> impl Strategy<Value = u64> {
    1u64..8
}

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    prop_oneof![
        4 => (any::<bool>(), prop_oneof![Just(0u16), Just(3), Just(90)])
            .prop_map(|(peer_id_high, hold_time)| PeerMessage::Open { peer_id_high, hold_time }),
        1 => Just(PeerMessage::BadOpen),
        4 => Just(PeerMessage::Keepalive),
        2 => Just(PeerMessage::Update),
        1 => Just(PeerMessage::Notification),
        1 => Just(PeerMessage::RouteRefresh),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Start),
        1 => Just(Op::Stop),
        3 => conn_index().prop_map(Op::ConnectedOut),
        2 => Just(Op::AcceptIncoming),
        1 => conn_index().prop_map(Op::ConnectedIn),
        1 => conn_index().prop_map(Op::Failed),
        1 => conn_index().prop_map(Op::Closed),
        8 => (conn_index(), peer_message()).prop_map(|(c, m)| Op::Receive(c, m)),
        1 => conn_index().prop_map(Op::DecodeError),
        1 => Just(Op::SendUpdate),
        3 => prop_oneof![0u64..2_000, 0u64..300_000].prop_map(Op::Wait),
        3 => Just(Op::Poll),
    ]
}

fn config(passive: bool) -> SessionConfig {
    SessionConfig {
        passive,
        ..SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 5), 65002)
    }
}

fn message(m: &PeerMessage) -> Message {
    let open = |peer_id: Ipv4Addr, hold_time: u16, asn: u32| Open {
        my_as: 65002,
        hold_time,
        bgp_id: peer_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::FourOctetAs(asn),
        ],
    };
    match m {
        PeerMessage::Open {
            peer_id_high,
            hold_time,
        } => {
            let id = if *peer_id_high {
                Ipv4Addr::new(10, 0, 0, 9)
            } else {
                Ipv4Addr::new(10, 0, 0, 1)
            };
            Message::Open(open(id, *hold_time, 65002))
        }
        PeerMessage::BadOpen => Message::Open(open(Ipv4Addr::new(10, 0, 0, 9), 90, 1)),
        PeerMessage::Keepalive => Message::Keepalive,
        PeerMessage::Update => Message::Update(Update::default()),
        PeerMessage::Notification => Message::Notification(cease(2)),
        PeerMessage::RouteRefresh => Message::RouteRefresh(RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: RouteRefreshSubtype::Request,
        }),
    }
}

/// What the actions so far say about the connections.
#[derive(Default)]
struct Observed {
    established: BTreeSet<ConnId>,
    closed: BTreeSet<ConnId>,
}

impl Observed {
    fn apply(&mut self, actions: &[Action]) -> Result<(), String> {
        let mut closed_now = BTreeSet::new();
        for action in actions {
            match action {
                Action::Close { conn } => {
                    closed_now.insert(*conn);
                    self.established.remove(conn);
                    self.closed.insert(*conn);
                }
                Action::Send { conn, .. } | Action::SetCodecParams { conn, .. } => {
                    if closed_now.contains(conn) {
                        return Err(format!("{action:?} after closing {conn}"));
                    }
                }
                Action::Established { conn, .. } => {
                    self.established.insert(*conn);
                }
                Action::Connect { conn } => {
                    if self.closed.contains(conn) {
                        return Err(format!("reused id {conn}"));
                    }
                }
                Action::Deliver { .. } | Action::Down { .. } => {}
            }
        }
        if self.established.len() > 1 {
            return Err(format!("two established: {:?}", self.established));
        }
        Ok(())
    }

    fn gone(&mut self, conn: ConnId) {
        self.established.remove(&conn);
    }
}

fn run(passive: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut session = Session::new(config(passive));
    let mut now = Instant::now();
    let mut observed = Observed::default();
    for op in ops {
        let event = |e: Event, session: &mut Session, now: Instant| session.handle(e, now);
        let actions = match op {
            Op::Start => event(Event::Start, &mut session, now),
            Op::Stop => event(
                Event::Stop {
                    notification: Some(admin_shutdown("test")),
                },
                &mut session,
                now,
            ),
            Op::ConnectedOut(c) => event(
                Event::TcpConnected {
                    conn: ConnId(c),
                    direction: Direction::Outgoing,
                },
                &mut session,
                now,
            ),
            Op::AcceptIncoming => session.accept_incoming(now).1,
            Op::ConnectedIn(c) => event(
                Event::TcpConnected {
                    conn: ConnId(c),
                    direction: Direction::Incoming,
                },
                &mut session,
                now,
            ),
            Op::Failed(c) => {
                observed.gone(ConnId(c));
                event(Event::TcpFailed { conn: ConnId(c) }, &mut session, now)
            }
            Op::Closed(c) => {
                observed.gone(ConnId(c));
                event(Event::TcpClosed { conn: ConnId(c) }, &mut session, now)
            }
            Op::Receive(c, m) => event(
                Event::Message {
                    conn: ConnId(c),
                    message: message(&m),
                },
                &mut session,
                now,
            ),
            Op::DecodeError(c) => event(
                Event::DecodeError {
                    conn: ConnId(c),
                    notification: Notification {
                        code: 1,
                        subcode: 2,
                        data: Bytes::from_static(&[0, 5]),
                    },
                },
                &mut session,
                now,
            ),
            Op::SendUpdate => event(
                Event::Send {
                    message: Message::Update(Update::default()),
                },
                &mut session,
                now,
            ),
            Op::Wait(ms) => {
                now += Duration::from_millis(ms);
                Vec::new()
            }
            Op::Poll => session.poll_timers(now),
        };
        observed.apply(&actions).map_err(TestCaseError::fail)?;
        session.check_invariants().map_err(TestCaseError::fail)?;
        let established = session.state() == State::Established;
        prop_assert_eq!(established, !observed.established.is_empty());
        prop_assert_eq!(
            session.established_conn(),
            observed.established.iter().next().copied()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_events_keep_the_fsm_consistent_active(ops in proptest::collection::vec(op(), 0..80)) {
        run(false, ops)?;
    }

    #[test]
    fn random_events_keep_the_fsm_consistent_passive(ops in proptest::collection::vec(op(), 0..80)) {
        run(true, ops)?;
    }

    /// After a poll at time t, no deadline is at or before t: timers that
    /// fired were re-armed in the future or cleared.
    #[test]
    fn polling_clears_every_expired_deadline(ops in proptest::collection::vec(op(), 0..60)) {
        let mut session = Session::new(config(false));
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Start => { session.handle(Event::Start, now); }
                Op::ConnectedOut(c) => {
                    session.handle(Event::TcpConnected { conn: ConnId(c), direction: Direction::Outgoing }, now);
                }
                Op::AcceptIncoming => { session.accept_incoming(now); }
                Op::Receive(c, m) => {
                    session.handle(Event::Message { conn: ConnId(c), message: message(&m) }, now);
                }
                _ => {}
            }
            session.poll_timers(now);
            if let Some(deadline) = session.next_deadline() {
                prop_assert!(deadline > now, "deadline {:?} not after poll at {:?}", deadline, now);
            }
        }
    }
}
