// Every transition and timer rule of the session on a fake clock.

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn config(rx_ms: u32, tx_ms: u32, mult: u8) -> BfdConfig {
    BfdConfig {
        min_rx: rx_ms * MS,
        min_tx: tx_ms * MS,
        multiplier: mult,
    }
}

/// A packet from a remote with discriminator 99.
fn remote(state: BfdState, your: u32) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::NONE,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 99,
        your_discriminator: your,
        desired_min_tx: 100 * MS,
        required_min_rx: 100 * MS,
        required_min_echo_rx: Duration::ZERO,
    }
}

fn session(t0: Instant) -> Session {
    Session::new(config(300, 300, 3), 7, 42, t0)
}

/// Drives `s` to Up through Down -> Init -> Up.
fn up(s: &mut Session, now: Instant) {
    s.receive(&remote(BfdState::Down, 0), now).unwrap();
    s.receive(&remote(BfdState::Up, 7), now).unwrap();
    assert_eq!(s.state(), BfdState::Up);
}

#[test]
fn three_way_handshake_between_two_sessions() {
    let t0 = Instant::now();
    let mut a = Session::new(config(300, 300, 3), 1, 1, t0);
    let mut b = Session::new(config(200, 200, 4), 2, 2, t0);
    let mut now = t0;
    for _ in 0..20 {
        if let Some(p) = a.poll_timers(now)
            && let Some(f) = b.receive(&p, now).unwrap()
        {
            a.receive(&f, now).unwrap();
        }
        if let Some(p) = b.poll_timers(now)
            && let Some(f) = a.receive(&p, now).unwrap()
        {
            b.receive(&f, now).unwrap();
        }
        now = a.next_deadline().min(b.next_deadline());
    }
    for (s, other) in [(&a, 2), (&b, 1)] {
        let st = s.status();
        assert_eq!((st.state, st.remote_state), (BfdState::Up, BfdState::Up));
        assert_eq!(st.remote_discriminator, other);
        assert_eq!(st.up_transitions, 1);
        assert!(!s.polling(), "the Poll on reaching Up was answered");
    }
    // Fast timers once Up: a's tx = max(300, 200), detection = 4 x max(300, 200).
    assert_eq!(a.status().tx_interval, 300 * MS);
    assert_eq!(a.status().detection_time, 4 * 300 * MS);
    assert_eq!(b.status().detection_time, 3 * 300 * MS);
}

#[test]
fn state_table_of_6_8_6() {
    use BfdState::*;
    // (local state reached via setup, received state) -> new local state
    let t0 = Instant::now();
    let cases = [
        (Down, Down, Init),
        (Down, Init, Up),
        (Down, Up, Down),
        (Down, AdminDown, Down),
        (Init, Down, Init),
        (Init, Init, Up),
        (Init, Up, Up),
        (Init, AdminDown, Down),
        (Up, Init, Up),
        (Up, Up, Up),
        (Up, Down, Down),
        (Up, AdminDown, Down),
    ];
    for (from, received, to) in cases {
        let mut s = session(t0);
        match from {
            Init => {
                s.receive(&remote(Down, 0), t0).unwrap();
            }
            Up => up(&mut s, t0),
            _ => {}
        }
        assert_eq!(s.state(), from);
        let your = if matches!(received, Down | AdminDown) {
            0
        } else {
            7
        };
        s.receive(&remote(received, your), t0).unwrap();
        assert_eq!(s.state(), to, "{from:?} + {received:?}");
    }
}

#[test]
fn remote_down_and_admin_down_give_diagnostic_3() {
    let t0 = Instant::now();
    for received in [BfdState::Down, BfdState::AdminDown] {
        let mut s = session(t0);
        up(&mut s, t0);
        s.receive(&remote(received, 7), t0 + MS).unwrap();
        let st = s.status();
        assert_eq!(st.state, BfdState::Down);
        assert_eq!(st.local_diagnostic, Diagnostic::NEIGHBOR_DOWN);
        assert_eq!(st.remote_state, received);
        assert_eq!(st.since, t0 + MS);
    }
}

#[test]
fn admin_down_ignores_the_remote_and_says_diagnostic_7() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    s.admin_down(t0);
    s.receive(&remote(BfdState::Init, 7), t0).unwrap();
    assert_eq!(s.state(), BfdState::AdminDown);
    let p = s.packet();
    assert_eq!(
        (p.state, p.diagnostic),
        (BfdState::AdminDown, Diagnostic::ADMIN_DOWN)
    );
    assert_eq!(p.desired_min_tx, SLOW_TX_INTERVAL);
}

#[test]
fn detection_time_expiry_takes_up_down_with_diagnostic_1() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    // remote mult 3 x max(our rx 300, remote tx 100) = 900 ms.
    assert_eq!(s.status().detection_time, 900 * MS);
    s.poll_timers(t0 + 899 * MS);
    assert_eq!(s.state(), BfdState::Up);
    s.poll_timers(t0 + 900 * MS);
    let st = s.status();
    assert_eq!(st.state, BfdState::Down);
    assert_eq!(st.local_diagnostic, Diagnostic::DETECTION_TIME_EXPIRED);
    assert_eq!(st.remote_discriminator, 0, "§6.8.1: forgotten");
    assert_eq!(s.packet().your_discriminator, 0);
    assert_eq!(s.packet().desired_min_tx, SLOW_TX_INTERVAL);
}

#[test]
fn a_packet_restarts_detection_and_the_remote_tx_can_dominate() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    let mut slow = remote(BfdState::Up, 7);
    slow.desired_min_tx = 500 * MS;
    slow.detect_mult = 5;
    s.receive(&slow, t0 + 800 * MS).unwrap();
    assert_eq!(s.status().detection_time, 2500 * MS);
    s.poll_timers(t0 + 3299 * MS);
    assert_eq!(s.state(), BfdState::Up);
    s.poll_timers(t0 + 3300 * MS);
    assert_eq!(s.state(), BfdState::Down);
}

#[test]
fn init_also_times_out_and_down_just_forgets_the_remote() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.receive(&remote(BfdState::Down, 0), t0).unwrap();
    assert_eq!(s.state(), BfdState::Init);
    s.poll_timers(t0 + 3 * 300 * MS);
    assert_eq!(s.state(), BfdState::Down);
    assert_eq!(
        s.status().local_diagnostic,
        Diagnostic::DETECTION_TIME_EXPIRED
    );

    let mut d = session(t0);
    d.receive(&remote(BfdState::Up, 7), t0).unwrap(); // ignored in Down
    assert_eq!(d.state(), BfdState::Down);
    d.poll_timers(t0 + 900 * MS);
    assert_eq!(d.status().remote_discriminator, 0);
    assert_eq!(d.status().local_diagnostic, Diagnostic::NONE);
}

#[test]
fn slow_rate_until_up_then_the_larger_of_ours_and_theirs() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let first = s.poll_timers(t0).expect("sends at once");
    assert_eq!(first.desired_min_tx, SLOW_TX_INTERVAL);
    assert_eq!(first.required_min_rx, 300 * MS);
    assert!(!first.control_plane_independent, "C bit clear");
    assert_eq!(s.status().tx_interval, SLOW_TX_INTERVAL);
    up(&mut s, t0);
    assert_eq!(s.status().tx_interval, 300 * MS);
    let mut wants_slower = remote(BfdState::Up, 7);
    wants_slower.required_min_rx = 700 * MS;
    s.receive(&wants_slower, t0).unwrap();
    assert_eq!(s.status().tx_interval, 700 * MS);
}

#[test]
fn jitter_is_75_to_100_percent_and_90_with_multiplier_1() {
    let t0 = Instant::now();
    for (mult, top) in [(3u8, 100u32), (1, 90)] {
        let mut s = Session::new(config(300, 300, mult), 7, 12345, t0);
        up(&mut s, t0);
        let mut now = t0;
        s.poll_timers(now);
        let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
        for _ in 0..2000 {
            // Stay Up: the remote keeps talking.
            s.receive(&remote(BfdState::Up, 7), now).unwrap();
            let next = s.next_deadline();
            let gap = next - now;
            lo = lo.min(gap);
            hi = hi.max(gap);
            now = next;
            s.poll_timers(now);
        }
        assert!(lo >= 300 * MS * 75 / 100, "{mult}: {lo:?}");
        assert!(hi <= 300 * MS * top / 100, "{mult}: {hi:?}");
        assert!(hi - lo > 30 * MS, "{mult}: jitter spreads ({lo:?}..{hi:?})");
    }
    // The same seed gives the same schedule.
    let run = || {
        let mut s = Session::new(config(300, 300, 3), 7, 9, t0);
        (0..10)
            .map(|_| {
                let at = s.next_deadline();
                s.poll_timers(at);
                at
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn reconfigure_while_up_polls_and_waits_for_the_final() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    // Answer the Poll that reaching Up started.
    let mut fin = remote(BfdState::Up, 7);
    fin.final_ = true;
    s.receive(&fin, t0).unwrap();
    assert!(!s.polling());

    // Slower TX and faster RX: neither applies until the Final.
    s.reconfigure(config(100, 600, 3), t0);
    assert!(s.polling());
    let p = s.packet();
    assert!(p.poll && !p.final_);
    assert_eq!((p.desired_min_tx, p.required_min_rx), (600 * MS, 100 * MS));
    assert_eq!(s.status().tx_interval, 300 * MS, "increase waits");
    assert_eq!(s.status().detection_time, 900 * MS, "rx decrease waits");
    s.receive(&remote(BfdState::Up, 7), t0).unwrap();
    assert!(s.polling(), "only a Final ends it");
    s.receive(&fin, t0).unwrap();
    assert!(!s.polling());
    assert!(!s.packet().poll);
    assert_eq!(s.status().tx_interval, 600 * MS);
    assert_eq!(s.status().detection_time, 300 * MS);

    // Faster TX and slower RX apply at once (still with a Poll).
    s.reconfigure(config(400, 200, 3), t0);
    assert!(s.polling());
    assert_eq!(s.status().tx_interval, 200 * MS);
    assert_eq!(s.status().detection_time, 1200 * MS);
    // The same values again: no new Poll.
    s.receive(&fin, t0).unwrap();
    s.reconfigure(config(400, 200, 3), t0);
    assert!(!s.polling());
}

#[test]
fn reconfigure_while_down_applies_at_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.reconfigure(config(100, 2000, 5), t0);
    assert!(!s.polling());
    let p = s.packet();
    assert_eq!(
        (p.desired_min_tx, p.required_min_rx, p.detect_mult),
        (2000 * MS, 100 * MS, 5)
    );
}

#[test]
fn a_poll_is_answered_with_a_final_at_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    let mut poll = remote(BfdState::Up, 7);
    poll.poll = true;
    let reply = s.receive(&poll, t0).unwrap().expect("a Final");
    assert!(reply.final_);
    assert!(!reply.poll, "never P and F together");
    assert_eq!(reply.state, BfdState::Up);
    assert!(s.receive(&remote(BfdState::Up, 7), t0).unwrap().is_none());
}

#[test]
fn wrong_discriminator_is_discarded() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert_eq!(
        s.receive(&remote(BfdState::Init, 8), t0),
        Err(Discard::WrongDiscriminator)
    );
    assert_eq!(s.state(), BfdState::Down);
    assert_eq!(s.status().remote_discriminator, 0);
}

#[test]
fn no_periodic_packets_when_the_remote_wants_none() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let mut quiet = remote(BfdState::Down, 0);
    quiet.required_min_rx = Duration::ZERO;
    s.receive(&quiet, t0).unwrap();
    assert!(s.poll_timers(t0).is_none());
    assert!(s.next_deadline() > t0, "the timer still moves on");
}

#[test]
fn a_saved_up_session_resumes_up_and_meets_a_peer_that_gave_up() {
    let t0 = Instant::now();
    let mut s = session(t0);
    up(&mut s, t0);
    let peer = "10.0.0.2".parse().unwrap();
    let local = "10.0.0.1".parse().unwrap();
    let saved = s.saved(peer, local).unwrap();
    assert_eq!(saved.local_discriminator, 7);
    assert_eq!(saved.remote_discriminator, 99);
    assert!(session(t0).saved(peer, local).is_none(), "only Up sessions");

    // The restarted daemon: Up at once, full rate, same discriminators;
    // the peer that kept its side Up goes on as before.
    let t1 = t0 + 200 * MS;
    let mut back = Session::resume(config(300, 300, 3), &saved, 1, t1);
    assert_eq!(back.state(), BfdState::Up);
    // Shown as Init until the peer is heard from.
    assert_eq!(back.status().state, BfdState::Init);
    let first = back.poll_timers(t1).unwrap();
    assert_eq!(
        (
            first.state,
            first.my_discriminator,
            first.your_discriminator
        ),
        (BfdState::Up, 7, 99)
    );
    assert_eq!(first.desired_min_tx, 300 * MS);
    back.receive(&remote(BfdState::Up, 7), t1).unwrap();
    assert_eq!(back.state(), BfdState::Up);
    assert_eq!(back.status().state, BfdState::Up);

    // A peer that gave up meanwhile says Down: the session goes Down as
    // any other would (§6.8.6) and starts over.
    let mut late = Session::resume(config(300, 300, 3), &saved, 1, t1);
    late.receive(&remote(BfdState::Down, 0), t1).unwrap();
    assert_eq!(late.state(), BfdState::Down);
    assert_eq!(late.status().state, BfdState::Down);
    // Silence after the resume: Down after the detection time (the
    // saved multiplier 3 x our 300 ms).
    let mut silent = Session::resume(config(300, 300, 3), &saved, 1, t1);
    silent.poll_timers(t1 + 901 * MS);
    assert_eq!(silent.state(), BfdState::Down);
}
