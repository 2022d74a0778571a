// Replayable FSM cases (STYLE.md): each test is a script of (time, input,
// exact actions expected), run against a fresh `Session`, checking the
// session's invariants after every step. Covers RFC 4271 §8.2.2
// transitions, §6.8 collisions, RFC 6608 FSM errors and our restart backoff.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::negotiate::negotiate;
use super::*;
use crate::wire::{
    Capability, Family, Notification, Open, RouteRefresh, RouteRefreshSubtype, Update,
};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LOCAL_AS: u32 = 65001;
const PEER_AS: u32 = 65002;

/// One input of a script.
enum Input {
    Event(Event),
    Poll,
}

/// One step: at `ms` milliseconds after the start, `input` gives `expected`.
type Step = (u64, Input, Vec<Action>);

/// Runs `steps` on a session built from `config` and returns it with the
/// instant the script started at.
fn replay(config: SessionConfig, steps: Vec<Step>) -> (Session, Instant) {
    let t0 = Instant::now();
    let mut session = Session::new(config);
    replay_on(&mut session, t0, steps);
    (session, t0)
}

fn replay_on(session: &mut Session, t0: Instant, steps: Vec<Step>) {
    for (number, (ms, input, expected)) in steps.into_iter().enumerate() {
        let now = at(t0, ms);
        let actions = match input {
            Input::Event(event) => session.handle(event, now),
            Input::Poll => session.poll_timers(now),
        };
        assert_eq!(actions, expected, "step {number} at {ms} ms");
        if let Err(problem) = session.check_invariants() {
            panic!("step {number} at {ms} ms: {problem}");
        }
    }
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn s(seconds: u64) -> u64 {
    seconds * 1000
}

fn config() -> SessionConfig {
    SessionConfig::new(LOCAL_AS, LOCAL_ID, PEER_AS)
}

fn passive_config() -> SessionConfig {
    SessionConfig {
        passive: true,
        ..config()
    }
}

fn peer_open() -> Open {
    Open {
        my_as: 65002,
        hold_time: 90,
        bgp_id: PEER_ID,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(PEER_AS),
        ],
    }
}

fn negotiated_with(config: &SessionConfig, open: &Open) -> Negotiated {
    negotiate(config, open).unwrap()
}

fn c(n: u64) -> ConnId {
    ConnId(n)
}

fn start() -> Input {
    Input::Event(Event::Start)
}

fn stop(notification: Option<Notification>) -> Input {
    Input::Event(Event::Stop { notification })
}

fn connected(n: u64, direction: Direction) -> Input {
    Input::Event(Event::TcpConnected {
        conn: c(n),
        direction,
    })
}

fn failed(n: u64) -> Input {
    Input::Event(Event::TcpFailed { conn: c(n) })
}

fn closed(n: u64) -> Input {
    Input::Event(Event::TcpClosed { conn: c(n) })
}

fn recv(n: u64, message: Message) -> Input {
    Input::Event(Event::Message {
        conn: c(n),
        message,
    })
}

fn recv_open(n: u64, open: Open) -> Input {
    recv(n, Message::Open(open))
}

fn send(n: u64, message: Message) -> Action {
    Action::Send {
        conn: c(n),
        message,
    }
}

fn send_open(n: u64, config: &SessionConfig) -> Action {
    send(n, Message::Open(build_open(config)))
}

fn send_notification(n: u64, code: u8, subcode: u8) -> Action {
    send(n, Message::Notification(notif(code, subcode)))
}

fn notif(code: u8, subcode: u8) -> Notification {
    Notification {
        code,
        subcode,
        data: Bytes::new(),
    }
}

fn close(n: u64) -> Action {
    Action::Close { conn: c(n) }
}

fn connect(n: u64) -> Action {
    Action::Connect { conn: c(n) }
}

fn down(reason: DownReason) -> Action {
    Action::Down { reason }
}

fn update() -> Message {
    Message::Update(Update::default())
}

fn route_refresh(family: Family, subtype: RouteRefreshSubtype) -> Message {
    Message::RouteRefresh(RouteRefresh { family, subtype })
}

/// SetCodecParams and our KEEPALIVE: the answer to a good OPEN.
fn open_accepted(n: u64, negotiated: &Negotiated) -> Vec<Action> {
    vec![
        Action::SetCodecParams {
            conn: c(n),
            params: negotiated.codec_params(),
        },
        send(n, Message::Keepalive),
    ]
}

fn established(n: u64, negotiated: &Negotiated) -> Action {
    Action::Established {
        conn: c(n),
        negotiated: negotiated.clone(),
    }
}

/// Steps bringing an active session to Established on conn 1 by t = 30 ms.
fn establish_active(config: &SessionConfig) -> Vec<Step> {
    let n = negotiated_with(config, &peer_open());
    vec![
        (0, start(), vec![connect(1)]),
        (
            10,
            connected(1, Direction::Outgoing),
            vec![send_open(1, config)],
        ),
        (20, recv_open(1, peer_open()), open_accepted(1, &n)),
        (30, recv(1, Message::Keepalive), vec![established(1, &n)]),
    ]
}

#[test]
fn happy_path_active() {
    let config = config();
    let n = negotiated_with(&config, &peer_open());
    let t0 = Instant::now();
    let mut session = Session::new(config.clone());
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.next_deadline(), None);

    let mut steps = establish_active(&config).into_iter();
    replay_on(&mut session, t0, steps.by_ref().take(1).collect());
    assert_eq!(session.state(), State::Connect);
    assert_eq!(session.next_deadline(), Some(at(t0, s(5))), "connect retry");
    replay_on(&mut session, t0, steps.by_ref().take(1).collect());
    assert_eq!(session.state(), State::OpenSent);
    assert_eq!(
        session.next_deadline(),
        Some(at(t0, 10 + s(240))),
        "large hold timer"
    );
    replay_on(&mut session, t0, steps.by_ref().take(1).collect());
    assert_eq!(session.state(), State::OpenConfirm);
    assert_eq!(session.negotiated(), None);
    replay_on(&mut session, t0, steps.collect());
    assert_eq!(session.state(), State::Established);
    assert_eq!(session.negotiated(), Some(&n));
    assert_eq!(session.established_conn(), Some(c(1)));
    assert_eq!(session.established_since(), Some(at(t0, 30)));
    assert_eq!(session.state_since(), Some(at(t0, 30)));
    assert_eq!(session.established_transitions(), 1);
    assert_eq!(session.last_error(), None);

    replay_on(
        &mut session,
        t0,
        vec![
            (
                40,
                recv(1, update()),
                vec![Action::Deliver { message: update() }],
            ),
            (
                50,
                Input::Event(Event::Send { message: update() }),
                vec![send(1, update())],
            ),
        ],
    );
    let counters = session.counters();
    assert_eq!(
        (
            counters.received.open,
            counters.received.keepalive,
            counters.received.update
        ),
        (1, 1, 1)
    );
    assert_eq!(
        (
            counters.sent.open,
            counters.sent.keepalive,
            counters.sent.update
        ),
        (1, 1, 1)
    );
    assert_eq!(counters.sent.total(), 3);
}

#[test]
fn happy_path_passive() {
    let config = passive_config();
    let n = negotiated_with(&config, &peer_open());
    let (mut session, t0) = replay(config.clone(), vec![(0, start(), vec![])]);
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.next_deadline(), None, "passive: no connect retry");

    let (conn, actions) = session.accept_incoming(at(t0, 10));
    assert_eq!(conn, c(1));
    assert_eq!(actions, vec![send_open(1, &config)]);
    assert_eq!(session.state(), State::OpenSent);
    replay_on(
        &mut session,
        t0,
        vec![
            (20, recv_open(1, peer_open()), open_accepted(1, &n)),
            (30, recv(1, Message::Keepalive), vec![established(1, &n)]),
        ],
    );
    assert_eq!(session.state(), State::Established);
}

#[test]
fn incoming_ids_from_next_conn_id_also_work() {
    let config = passive_config();
    let (mut session, t0) = replay(config.clone(), vec![(0, start(), vec![])]);
    let conn = session.next_conn_id();
    let actions = session.handle(
        Event::TcpConnected {
            conn,
            direction: Direction::Incoming,
        },
        at(t0, 1),
    );
    assert_eq!(
        actions,
        vec![Action::Send {
            conn,
            message: Message::Open(build_open(&config))
        }]
    );
    assert_ne!(session.next_conn_id(), conn);
}

#[test]
fn state_names() {
    let names: Vec<String> = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        names,
        [
            "Idle",
            "Connect",
            "Active",
            "OpenSent",
            "OpenConfirm",
            "Established"
        ]
    );
}

#[test]
fn open_errors_send_their_notification_and_go_idle() {
    let mut bad_as = peer_open();
    bad_as.capabilities[3] = Capability::FourOctetAs(65009);
    let mut bad_hold = peer_open();
    bad_hold.hold_time = 2;
    let mut zero_id = peer_open();
    zero_id.bgp_id = Ipv4Addr::UNSPECIFIED;
    let mut no_family = peer_open();
    no_family.capabilities = vec![
        Capability::Multiprotocol(Family::new(
            crate::wire::Afi::IPV4,
            crate::wire::Safi::MULTICAST,
        )),
        Capability::FourOctetAs(PEER_AS),
    ];
    let cases = [
        (bad_as, 2, 2, vec![]),
        (bad_hold, 2, 6, vec![]),
        (zero_id, 2, 3, vec![]),
        (no_family, 2, 7, vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1]),
    ];
    for (open, code, subcode, data) in cases {
        let config = config();
        let n = Notification {
            code,
            subcode,
            data: Bytes::from(data),
        };
        let (session, _) = replay(
            config.clone(),
            vec![
                (0, start(), vec![connect(1)]),
                (
                    10,
                    connected(1, Direction::Outgoing),
                    vec![send_open(1, &config)],
                ),
                (
                    20,
                    recv_open(1, open),
                    vec![
                        send(1, Message::Notification(n.clone())),
                        close(1),
                        down(DownReason::NotificationSent(n.clone())),
                    ],
                ),
            ],
        );
        assert_eq!(session.state(), State::Idle);
        assert_eq!(session.last_error(), Some(&DownReason::NotificationSent(n)));
    }
}

#[test]
fn ibgp_peer_with_our_identifier_is_refused() {
    let mut config = config();
    config.remote_as = LOCAL_AS;
    let mut open = peer_open();
    open.my_as = 65001;
    open.capabilities[3] = Capability::FourOctetAs(LOCAL_AS);
    open.bgp_id = LOCAL_ID;
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                0,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                0,
                recv_open(1, open),
                vec![
                    send_notification(1, 2, 3),
                    close(1),
                    down(DownReason::NotificationSent(notif(2, 3))),
                ],
            ),
        ],
    );
}

#[test]
fn decode_error_sends_the_codec_notification() {
    // The codec reports a version other than 4 (Open holds no version):
    // RFC 4271 §6.2, data = the largest version we support, 2 octets.
    let config = config();
    let unsupported_version = Notification {
        code: 2,
        subcode: 1,
        data: Bytes::from_static(&[0, 4]),
    };
    let (session, _) = replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                20,
                Input::Event(Event::DecodeError {
                    conn: c(1),
                    notification: unsupported_version.clone(),
                }),
                vec![
                    send(1, Message::Notification(unsupported_version.clone())),
                    close(1),
                    down(DownReason::NotificationSent(unsupported_version)),
                ],
            ),
        ],
    );
    assert_eq!(session.state(), State::Idle);
}

#[test]
fn decode_error_in_established() {
    let config = config();
    let mut steps = establish_active(&config);
    let bad_attribute = notif(3, 1);
    steps.push((
        40,
        Input::Event(Event::DecodeError {
            conn: c(1),
            notification: bad_attribute.clone(),
        }),
        vec![
            send(1, Message::Notification(bad_attribute.clone())),
            close(1),
            down(DownReason::NotificationSent(bad_attribute)),
        ],
    ));
    let (session, _) = replay(config, steps);
    assert_eq!(session.negotiated(), None);
    assert_eq!(session.established_since(), None);
}

#[test]
fn unexpected_messages_in_opensent() {
    let refresh = route_refresh(Family::IPV4_UNICAST, RouteRefreshSubtype::Request);
    for message in [Message::Keepalive, update(), refresh] {
        let config = config();
        replay(
            config.clone(),
            vec![
                (0, start(), vec![connect(1)]),
                (
                    10,
                    connected(1, Direction::Outgoing),
                    vec![send_open(1, &config)],
                ),
                (
                    20,
                    recv(1, message),
                    vec![
                        send_notification(1, 5, 1),
                        close(1),
                        down(DownReason::NotificationSent(notif(5, 1))),
                    ],
                ),
            ],
        );
    }
}

#[test]
fn unexpected_messages_in_openconfirm() {
    let refresh = route_refresh(Family::IPV4_UNICAST, RouteRefreshSubtype::Request);
    for message in [Message::Open(peer_open()), update(), refresh] {
        let config = config();
        let mut steps = establish_active(&config);
        steps.pop();
        steps.push((
            30,
            recv(1, message),
            vec![
                send_notification(1, 5, 2),
                close(1),
                down(DownReason::NotificationSent(notif(5, 2))),
            ],
        ));
        replay(config, steps);
    }
}

#[test]
fn unexpected_open_in_established() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.push((
        40,
        recv_open(1, peer_open()),
        vec![
            send_notification(1, 5, 3),
            close(1),
            down(DownReason::NotificationSent(notif(5, 3))),
        ],
    ));
    replay(config, steps);
}

#[test]
fn a_notification_received_in_any_open_state_gets_no_reply() {
    let config = config();
    let cease = admin_shutdown("maintenance");
    for steps_kept in 2..=4 {
        let mut steps: Vec<Step> = establish_active(&config)
            .into_iter()
            .take(steps_kept)
            .collect();
        steps.push((
            100,
            recv(1, Message::Notification(cease.clone())),
            vec![
                close(1),
                down(DownReason::NotificationReceived(cease.clone())),
            ],
        ));
        let (session, _) = replay(config.clone(), steps);
        assert_eq!(session.state(), State::Idle);
        assert_eq!(
            session.last_error().map(ToString::to_string).as_deref(),
            Some("received Cease / Administrative Shutdown: \"maintenance\"")
        );
    }
}

#[test]
fn a_version_error_notification_in_opensent_just_ends_the_connection() {
    let config = config();
    let version_error = Notification {
        code: 2,
        subcode: 1,
        data: Bytes::from_static(&[0, 3]),
    };
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                20,
                recv(1, Message::Notification(version_error.clone())),
                vec![
                    close(1),
                    down(DownReason::NotificationReceived(version_error)),
                ],
            ),
        ],
    );
}

#[test]
fn keepalives_fire_every_third_of_the_hold_time() {
    let config = config();
    let mut steps = establish_active(&config);
    // Our first KEEPALIVE went out with the OPEN answer at 20 ms.
    steps.extend([
        (20 + s(30) - 1, Input::Poll, vec![]),
        (20 + s(30), Input::Poll, vec![send(1, Message::Keepalive)]),
        (s(31), recv(1, Message::Keepalive), vec![]),
        (s(60), Input::Poll, vec![]),
        (s(60) + 20, Input::Poll, vec![send(1, Message::Keepalive)]),
    ]);
    let (session, t0) = replay(config, steps);
    assert_eq!(session.next_deadline(), Some(at(t0, s(90) + 20)));
}

#[test]
fn an_update_sent_postpones_the_keepalive() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.extend([
        (
            s(10),
            Input::Event(Event::Send { message: update() }),
            vec![send(1, update())],
        ),
        (20 + s(30), Input::Poll, vec![]),
        (s(40), Input::Poll, vec![send(1, Message::Keepalive)]),
    ]);
    replay(config, steps);
}

#[test]
fn the_rib_may_send_only_updates_and_refreshes_and_only_when_established() {
    let config = config();
    let refresh = route_refresh(Family::IPV4_UNICAST, RouteRefreshSubtype::Request);
    let mut steps = vec![(0, Input::Event(Event::Send { message: update() }), vec![])];
    steps.extend(establish_active(&config));
    steps.extend([
        (
            40,
            Input::Event(Event::Send {
                message: Message::Keepalive,
            }),
            vec![],
        ),
        (
            40,
            Input::Event(Event::Send {
                message: Message::Notification(notif(6, 2)),
            }),
            vec![],
        ),
        (
            40,
            Input::Event(Event::Send {
                message: refresh.clone(),
            }),
            vec![send(1, refresh)],
        ),
    ]);
    replay(config, steps);
}

#[test]
fn hold_timer_expires_without_keepalives() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.extend([
        (20 + s(30), Input::Poll, vec![send(1, Message::Keepalive)]),
        (20 + s(60), Input::Poll, vec![send(1, Message::Keepalive)]),
        (
            30 + s(90) - 1,
            Input::Poll,
            vec![send(1, Message::Keepalive)],
        ),
        (
            30 + s(90),
            Input::Poll,
            vec![
                send_notification(1, 4, 0),
                close(1),
                down(DownReason::HoldTimerExpired),
            ],
        ),
    ]);
    let (session, t0) = replay(config, steps);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(
        session.last_error().map(ToString::to_string).as_deref(),
        Some("hold timer expired")
    );
    // Up only 90 s with hold time 90: not stable, so the first wait, 1 s.
    assert_eq!(session.next_deadline(), Some(at(t0, 30 + s(91))));
}

#[test]
fn bfd_down_ends_an_established_session_without_a_notification() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.push((
        40,
        Input::Event(Event::BfdDown),
        vec![close(1), down(DownReason::BfdDown)],
    ));
    let (session, _) = replay(config.clone(), steps);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(
        session.last_error().map(ToString::to_string).as_deref(),
        Some("BFD down")
    );
    // Before Established it means nothing: the OPEN exchange goes on.
    let mut steps = establish_active(&config);
    steps.truncate(2);
    steps.push((15, Input::Event(Event::BfdDown), vec![]));
    let (session, _) = replay(config, steps);
    assert_eq!(session.state(), State::OpenSent);
}

#[test]
fn keepalives_and_updates_restart_the_hold_timer() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.extend([
        (s(80), recv(1, Message::Keepalive), vec![]),
        (
            s(160),
            recv(1, update()),
            vec![Action::Deliver { message: update() }],
        ),
        // A ROUTE-REFRESH does not count (RFC 4271 §4.4 names KEEPALIVE and UPDATE).
        (
            s(200),
            recv(
                1,
                route_refresh(Family::IPV4_UNICAST, RouteRefreshSubtype::Request),
            ),
            vec![Action::Deliver {
                message: route_refresh(Family::IPV4_UNICAST, RouteRefreshSubtype::Request),
            }],
        ),
        (
            s(250),
            Input::Poll,
            vec![
                send_notification(1, 4, 0),
                close(1),
                down(DownReason::HoldTimerExpired),
            ],
        ),
    ]);
    replay(config, steps);
}

#[test]
fn hold_timer_expires_in_opensent_after_four_minutes() {
    let config = config();
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                0,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (s(240) - 1, Input::Poll, vec![]),
            (
                s(240),
                Input::Poll,
                vec![
                    send_notification(1, 4, 0),
                    close(1),
                    down(DownReason::HoldTimerExpired),
                ],
            ),
        ],
    );
}

#[test]
fn hold_timer_in_openconfirm_is_the_negotiated_one() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.pop();
    steps.extend([
        (20 + s(30), Input::Poll, vec![send(1, Message::Keepalive)]),
        (20 + s(60), Input::Poll, vec![send(1, Message::Keepalive)]),
        (
            20 + s(90),
            Input::Poll,
            vec![
                send_notification(1, 4, 0),
                close(1),
                down(DownReason::HoldTimerExpired),
            ],
        ),
    ]);
    replay(config, steps);
}

#[test]
fn hold_time_zero_means_no_timers() {
    let config = config();
    let mut open = peer_open();
    open.hold_time = 0;
    let n = negotiated_with(&config, &open);
    assert_eq!((n.hold_time, n.keepalive_time), (0, 0));
    let (session, _) = replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                0,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (0, recv_open(1, open), open_accepted(1, &n)),
            (0, recv(1, Message::Keepalive), vec![established(1, &n)]),
            (s(10_000), Input::Poll, vec![]),
        ],
    );
    assert_eq!(session.next_deadline(), None);
    assert_eq!(session.state(), State::Established);
}

#[test]
fn a_three_second_hold_time_keeps_alive_every_second() {
    let config = config();
    let mut open = peer_open();
    open.hold_time = 3;
    let n = negotiated_with(&config, &open);
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                0,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (0, recv_open(1, open), open_accepted(1, &n)),
            (0, recv(1, Message::Keepalive), vec![established(1, &n)]),
            (s(1), Input::Poll, vec![send(1, Message::Keepalive)]),
            (s(2), Input::Poll, vec![send(1, Message::Keepalive)]),
            (
                s(3),
                Input::Poll,
                vec![
                    send_notification(1, 4, 0),
                    close(1),
                    down(DownReason::HoldTimerExpired),
                ],
            ),
        ],
    );
}

#[test]
fn connect_retry_aborts_and_retries_then_waits_in_active() {
    let (session, t0) = replay(
        config(),
        vec![
            (0, start(), vec![connect(1)]),
            (s(5) - 1, Input::Poll, vec![]),
            (s(5), Input::Poll, vec![close(1), connect(2)]),
            (s(6), failed(2), vec![down(DownReason::ConnectFailed)]),
        ],
    );
    assert_eq!(session.state(), State::Active);
    assert_eq!(session.next_deadline(), Some(at(t0, s(11))));
    let mut session = session;
    replay_on(
        &mut session,
        t0,
        vec![
            (s(11), Input::Poll, vec![connect(3)]),
            // The abandoned attempt 1 connects late: closed at once.
            (s(12), connected(1, Direction::Outgoing), vec![close(1)]),
        ],
    );
    assert_eq!(session.state(), State::Connect);
    assert_eq!(session.last_error(), Some(&DownReason::ConnectFailed));
}

#[test]
fn failures_after_tcp_back_off_in_idle() {
    let config = config();
    let closes = |n: u64, ms: u64| -> Vec<Step> {
        vec![
            (
                ms,
                connected(n, Direction::Outgoing),
                vec![send_open(n, &config)],
            ),
            (ms, closed(n), vec![down(DownReason::ConnectionClosed)]),
        ]
    };
    let mut steps = vec![(0, start(), vec![connect(1)])];
    steps.extend(closes(1, 0));
    steps.extend([
        (s(1) - 1, Input::Poll, vec![]),
        (s(1), Input::Poll, vec![connect(2)]),
    ]);
    steps.extend(closes(2, s(1)));
    steps.extend([
        (s(3) - 1, Input::Poll, vec![]),
        (s(3), Input::Poll, vec![connect(3)]),
    ]);
    steps.extend(closes(3, s(3)));
    steps.extend([(s(7), Input::Poll, vec![connect(4)])]);
    let (session, _) = replay(config, steps);
    assert_eq!(session.last_error(), Some(&DownReason::ConnectionClosed));
}

#[test]
fn a_stable_session_restarts_after_one_second() {
    let config = config();
    let mut steps = vec![(0, start(), vec![connect(1)])];
    // Two quick failures first: the next wait would be 4 s.
    steps.extend([
        (
            0,
            connected(1, Direction::Outgoing),
            vec![send_open(1, &config)],
        ),
        (0, closed(1), vec![down(DownReason::ConnectionClosed)]),
        (s(1), Input::Poll, vec![connect(2)]),
        (
            s(1),
            connected(2, Direction::Outgoing),
            vec![send_open(2, &config)],
        ),
        (s(1), closed(2), vec![down(DownReason::ConnectionClosed)]),
        (s(3), Input::Poll, vec![connect(3)]),
    ]);
    let n = negotiated_with(&config, &peer_open());
    steps.extend([
        (
            s(3),
            connected(3, Direction::Outgoing),
            vec![send_open(3, &config)],
        ),
        (s(3), recv_open(3, peer_open()), open_accepted(3, &n)),
        (s(3), recv(3, Message::Keepalive), vec![established(3, &n)]),
        (s(50), recv(3, Message::Keepalive), vec![]),
        (s(100), recv(3, Message::Keepalive), vec![]),
        (s(110), closed(3), vec![down(DownReason::ConnectionClosed)]),
        (s(111), Input::Poll, vec![connect(4)]),
    ]);
    replay(config, steps);
}

#[test]
fn an_incoming_connection_ends_the_idle_hold() {
    // The idle hold paces our own connects; a peer that connects during it
    // is answered, or two speakers refusing each other in turn could stay
    // out of step for ever.
    let config = passive_config();
    let (mut session, t0) = replay(config.clone(), vec![(0, start(), vec![])]);
    let (_, actions) = session.accept_incoming(at(t0, 0));
    assert_eq!(actions, vec![send_open(1, &config)]);
    replay_on(
        &mut session,
        t0,
        vec![
            (10, closed(1), vec![down(DownReason::ConnectionClosed)]),
            (
                20,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            // The hold is over: nothing fires when it would have ended.
            (10 + s(1), Input::Poll, vec![]),
        ],
    );
    assert_eq!(session.state(), State::OpenSent);
}

#[test]
fn collision_local_id_lower_keeps_the_incoming_connection() {
    // Our id 10.0.0.1 < peer's 10.0.0.2: the connection the peer opened wins.
    let config = config();
    let n = negotiated_with(&config, &peer_open());
    let (session, _) = replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                20,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            (30, recv_open(1, peer_open()), open_accepted(1, &n)),
            (
                40,
                recv_open(2, peer_open()),
                [
                    vec![send_notification(1, 6, 7), close(1)],
                    open_accepted(2, &n),
                ]
                .concat(),
            ),
            (50, recv(2, Message::Keepalive), vec![established(2, &n)]),
        ],
    );
    assert_eq!(session.established_conn(), Some(c(2)));
}

#[test]
fn collision_local_id_lower_refuses_the_peer_open_on_our_connection() {
    // The OPEN arrives on our connection second: our connection loses.
    let config = config();
    let n = negotiated_with(&config, &peer_open());
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                20,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            (30, recv_open(2, peer_open()), open_accepted(2, &n)),
            (
                40,
                recv_open(1, peer_open()),
                vec![send_notification(1, 6, 7), close(1)],
            ),
            (50, recv(2, Message::Keepalive), vec![established(2, &n)]),
        ],
    );
}

#[test]
fn collision_local_id_higher_keeps_the_outgoing_connection() {
    let mut config = config();
    config.local_id = Ipv4Addr::new(10, 0, 0, 3);
    let n = negotiated_with(&config, &peer_open());
    for (first, second) in [(1, 2), (2, 1)] {
        let expected_second = if second == 2 {
            vec![send_notification(2, 6, 7), close(2)]
        } else {
            [
                vec![send_notification(2, 6, 7), close(2)],
                open_accepted(1, &n),
            ]
            .concat()
        };
        let (session, _) = replay(
            config.clone(),
            vec![
                (0, start(), vec![connect(1)]),
                (
                    10,
                    connected(1, Direction::Outgoing),
                    vec![send_open(1, &config)],
                ),
                (
                    20,
                    connected(2, Direction::Incoming),
                    vec![send_open(2, &config)],
                ),
                (30, recv_open(first, peer_open()), open_accepted(first, &n)),
                (40, recv_open(second, peer_open()), expected_second),
                (50, recv(1, Message::Keepalive), vec![established(1, &n)]),
            ],
        );
        assert_eq!(session.established_conn(), Some(c(1)));
        assert_eq!(session.last_error(), None, "a collision loser is no Down");
    }
}

#[test]
fn reaching_established_closes_the_other_connection() {
    let config = config();
    let n = negotiated_with(&config, &peer_open());
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                20,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            (30, recv_open(1, peer_open()), open_accepted(1, &n)),
            (
                40,
                recv(1, Message::Keepalive),
                vec![established(1, &n), send_notification(2, 6, 7), close(2)],
            ),
            // Late messages on the closed connection are ignored.
            (50, recv_open(2, peer_open()), vec![]),
            (50, closed(2), vec![]),
        ],
    );
}

#[test]
fn established_refuses_a_new_incoming_connection() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.push((
        40,
        connected(2, Direction::Incoming),
        vec![send_notification(2, 6, 5), close(2)],
    ));
    let (session, _) = replay(config, steps);
    assert_eq!(session.state(), State::Established);
}

#[test]
fn a_second_incoming_connection_is_refused() {
    let config = passive_config();
    let (mut session, t0) = replay(config.clone(), vec![(0, start(), vec![])]);
    let (_, actions) = session.accept_incoming(at(t0, 0));
    assert_eq!(actions, vec![send_open(1, &config)]);
    let (_, actions) = session.accept_incoming(at(t0, 1));
    assert_eq!(actions, vec![send_notification(2, 6, 5), close(2)]);
}

#[test]
fn a_failing_collision_partner_leaves_the_other_running() {
    let config = config();
    let (session, t0) = replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                10,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            (20, closed(2), vec![]),
        ],
    );
    // Back to Connect with attempt 1; the connect retry runs again.
    assert_eq!(session.state(), State::Connect);
    assert_eq!(session.next_deadline(), Some(at(t0, 20 + s(5))));
    assert_eq!(session.last_error(), None);
}

#[test]
fn admin_stop_sends_the_shutdown_message_and_stays_down() {
    let config = config();
    let shutdown = admin_shutdown("maintenance");
    let mut steps = establish_active(&config);
    steps.extend([
        (
            s(10),
            stop(Some(shutdown.clone())),
            vec![
                send(1, Message::Notification(shutdown.clone())),
                close(1),
                down(DownReason::AdminStop {
                    notification: Some(shutdown.clone()),
                }),
            ],
        ),
        (s(1000), Input::Poll, vec![]),
        // Incoming while stopped: refused.
        (
            s(1001),
            connected(2, Direction::Incoming),
            vec![send_notification(2, 6, 5), close(2)],
        ),
    ]);
    let (mut session, t0) = replay(config, steps);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.next_deadline(), None);
    assert_eq!(
        session.last_error().map(ToString::to_string).as_deref(),
        Some("stopped by admin, sent Cease / Administrative Shutdown: \"maintenance\"")
    );
    replay_on(&mut session, t0, vec![(s(1002), start(), vec![connect(3)])]);
}

#[test]
fn quiet_stop_closes_without_a_notification_and_stays_down() {
    // RFC 4724 §4.1: a restarting speaker's peers keep its routes only
    // when the session ends without a NOTIFICATION.
    let config = config();
    let mut steps = establish_active(&config);
    steps.extend([
        (
            s(10),
            Input::Event(Event::StopQuietly),
            vec![close(1), down(DownReason::AdminStop { notification: None })],
        ),
        (s(1000), Input::Poll, vec![]),
    ]);
    let (session, _) = replay(config, steps);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.next_deadline(), None);
}

#[test]
fn admin_stop_defaults_to_a_bare_administrative_shutdown() {
    let config = config();
    replay(
        config.clone(),
        vec![
            (0, start(), vec![connect(1)]),
            (
                0,
                connected(1, Direction::Outgoing),
                vec![send_open(1, &config)],
            ),
            (
                0,
                connected(2, Direction::Incoming),
                vec![send_open(2, &config)],
            ),
            (
                1,
                stop(None),
                vec![
                    send_notification(1, 6, 2),
                    close(1),
                    send_notification(2, 6, 2),
                    close(2),
                    down(DownReason::AdminStop {
                        notification: Some(notif(6, 2)),
                    }),
                ],
            ),
        ],
    );
}

#[test]
fn stop_aborts_a_connect_in_progress_and_start_twice_is_one_start() {
    replay(
        config(),
        vec![
            (0, start(), vec![connect(1)]),
            (1, start(), vec![]),
            (
                2,
                stop(None),
                vec![close(1), down(DownReason::AdminStop { notification: None })],
            ),
            (3, stop(None), vec![]),
            (4, connected(1, Direction::Outgoing), vec![close(1)]),
        ],
    );
}

#[test]
fn idle_before_start_refuses_connections_and_ignores_strays() {
    let (session, _) = replay(
        config(),
        vec![
            (
                0,
                connected(7, Direction::Incoming),
                vec![send_notification(7, 6, 5), close(7)],
            ),
            (0, recv(7, Message::Keepalive), vec![]),
            (0, failed(9), vec![]),
            (0, Input::Poll, vec![]),
        ],
    );
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.state_since(), None);
}

#[test]
fn route_refresh_for_families_not_negotiated_is_ignored() {
    let config = config();
    let v4 = Family::IPV4_UNICAST;
    let multicast = Family::new(crate::wire::Afi::IPV4, crate::wire::Safi::MULTICAST);
    let mut steps = establish_active(&config);
    let deliver = |m: Message| vec![Action::Deliver { message: m }];
    steps.extend([
        (
            40,
            recv(1, route_refresh(multicast, RouteRefreshSubtype::Request)),
            vec![],
        ),
        (
            40,
            recv(1, route_refresh(v4, RouteRefreshSubtype::Reserved(9))),
            vec![],
        ),
        (
            40,
            recv(
                1,
                route_refresh(v4, RouteRefreshSubtype::BeginningOfRefresh),
            ),
            deliver(route_refresh(v4, RouteRefreshSubtype::BeginningOfRefresh)),
        ),
    ]);
    replay(config, steps);
}

#[test]
fn established_since_and_state_since_follow_the_session() {
    let config = config();
    let mut steps = establish_active(&config);
    steps.push((s(100), closed(1), vec![down(DownReason::ConnectionClosed)]));
    let (session, t0) = replay(config, steps);
    assert_eq!(session.established_since(), None);
    assert_eq!(session.state_since(), Some(at(t0, s(100))));
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.established_transitions(), 1);
}
