// BFD (RFC 5880/5881) bound to BGP (RFC 5882) in netns labs:
// labs/bfd.clab.yml, two podroute-bgpd speakers; labs/bfd-frr.clab.yml,
// podroute-bgpd against FRR 8.4's bfdd. Both speakers hang off a bridge in
// the node `m` (the wire); the test cuts it with `ip link set br0 down`
// there, so neither speaker's own link changes (no carrier loss for the
// kernel, zebra or our FIB to react to), and the sessions must end, and
// the learned routes leave the kernel, long before the 90 s hold timer
// could have fired. The measured
// times are printed, not asserted. Needs root, as CI gives.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

mod common;

use common::{Bgpd, CONVERGE, OnFailure, PeerConf, Speaker, state_file_tail, wait_seen};
use podroute_lab::{Lab, LabOptions};
use podroute_proto::bgpd::v1::{Bfd, Peer};
use serde_json::Value;

const PAIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/bfd.clab.yml");
const WITH_FRR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/bfd-frr.clab.yml");
const AS: u32 = 65000;
/// The sessions' hold time (the Speaker default): after a cut, only BFD can
/// end them sooner.
const HOLD: Duration = Duration::from_secs(90);
/// How long a cut may take to be noticed for the test to pass: well under
/// the hold time, so the hold timer cannot be what ended the session.
const DETECT_DEADLINE: Duration = Duration::from_secs(30);

fn bfd_of(peer: &Result<Peer, String>) -> Option<Bfd> {
    peer.as_ref().ok().and_then(|p| p.bfd.clone())
}

/// Polls until podroute's BFD session with `peer` is Up on both ends and
/// `settled` holds (the Poll that follows Up retimes both sides).
fn wait_bfd_up(lab: &Lab, bgpd: &Bgpd, peer: &str, settled: impl Fn(&Bfd) -> bool) -> Bfd {
    let what = format!("podroute BFD with {peer} up and settled");
    let p = wait_seen(
        lab,
        CONVERGE,
        &what,
        |_| bgpd.peer(peer),
        |p| bfd_of(p).is_some_and(|b| b.state == "up" && b.remote_state == "up" && settled(&b)),
    );
    bfd_of(&p).unwrap()
}

fn kernel_has(lab: &Lab, node: &str, prefix: &str) -> bool {
    lab.exec(node, &["ip", "-4", "route", "show", prefix])
        .is_ok_and(|out| !out.trim().is_empty())
}

fn wait_kernel_route(lab: &Lab, node: &str, prefix: &str) {
    let what = format!("{prefix} in {node}'s kernel");
    wait_seen(
        lab,
        CONVERGE,
        &what,
        |lab| kernel_has(lab, node, prefix),
        |&b| b,
    );
}

/// One thing a cut must bring about, polled.
type Check<'a> = dyn FnMut(&Lab) -> bool + 'a;

/// Times from `cut` at which each condition was first seen, polling them
/// all together until all held or `DETECT_DEADLINE` passed.
fn measure(lab: &Lab, cut: Instant, checks: &mut [(&str, &mut Check<'_>)]) -> Vec<Duration> {
    let mut seen: Vec<Option<Duration>> = vec![None; checks.len()];
    let outcome = lab.wait_for(DETECT_DEADLINE, "every side to notice the cut", |lab| {
        for (i, (_, check)) in checks.iter_mut().enumerate() {
            if seen[i].is_none() && check(lab) {
                seen[i] = Some(cut.elapsed());
            }
        }
        seen.iter().all(Option::is_some)
    });
    let names: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
    if let Err(e) = outcome {
        panic!("{e}: {:?}", names.iter().zip(&seen).collect::<Vec<_>>());
    }
    let times: Vec<Duration> = seen.into_iter().map(Option::unwrap).collect();
    for (name, t) in names.iter().zip(&times) {
        println!("measured: {name}: {} ms after the cut", t.as_millis());
    }
    times
}

/// Makes `m` the wire between its two ports.
fn bridge(lab: &Lab) {
    for cmd in [
        "ip link add br0 type bridge",
        "ip link set eth1 master br0",
        "ip link set eth2 master br0",
        "ip link set br0 up",
    ] {
        let argv: Vec<&str> = cmd.split(' ').collect();
        lab.exec("m", &argv).unwrap();
    }
}

fn cut(lab: &Lab) -> Instant {
    let at = Instant::now();
    lab.exec("m", &["ip", "link", "set", "br0", "down"])
        .unwrap();
    at
}

fn speaker(router_id: &'static str, originate: &'static str, peer: PeerConf) -> Speaker {
    Speaker {
        asn: AS,
        router_id,
        originate: vec![originate],
        peers: vec![peer],
        extra: Vec::new(),
    }
}

#[test]
fn bfd_between_two_speakers_ends_both_sessions_when_the_link_is_cut() {
    let lab = Lab::up_with(PAIR, LabOptions::unique("bfdp")).unwrap();
    bridge(&lab);
    let bfd = "bfd: {minRx: 100, minTx: 100, multiplier: 3}";
    let a = Bgpd::start(
        &lab,
        "a",
        &speaker(
            "10.0.1.1",
            "10.244.1.0/26",
            PeerConf::new("b", "10.0.1.2", AS).spec(bfd),
        ),
    );
    let b = Bgpd::start(
        &lab,
        "b",
        &speaker(
            "10.0.1.2",
            "10.244.2.0/26",
            PeerConf::new("a", "10.0.1.1", AS).spec(bfd),
        ),
    );
    a.wait_established(&lab, "10.0.1.2");
    b.wait_established(&lab, "10.0.1.1");
    for (bgpd, peer) in [(&a, "10.0.1.2"), (&b, "10.0.1.1")] {
        // Both sides at 100 ms once the Poll on reaching Up completed:
        // 100 ms x 3 to detect.
        let up = wait_bfd_up(&lab, bgpd, peer, |b| {
            b.detection_time_ms == 300 && b.tx_interval_ms == 100
        });
        assert_eq!((up.remote_min_rx_ms, up.remote_min_tx_ms), (100, 100));
        assert_eq!(up.remote_multiplier, 3);
        assert_ne!(up.remote_discriminator, 0);
        assert_eq!(up.up_transitions, 1);
        // /metrics says the same.
        let scrape = bgpd.scrape();
        let labels = [("peer", peer)];
        assert_eq!(
            scrape.value("podroute_bfd_session_state", &labels),
            Some(3.0)
        );
        assert_eq!(
            scrape.value("podroute_bfd_up_transitions_total", &labels),
            Some(1.0)
        );
    }
    wait_kernel_route(&lab, "b", "10.244.1.0/26");
    wait_kernel_route(&lab, "a", "10.244.2.0/26");

    let cut = cut(&lab);
    let times = measure(
        &lab,
        cut,
        &mut [
            ("b: route 10.244.1.0/26 gone from the kernel", &mut |lab| {
                !kernel_has(lab, "b", "10.244.1.0/26")
            }),
            ("b: BGP session down", &mut |_| {
                !b.is_established("10.0.1.1")
            }),
            ("a: BGP session down", &mut |_| {
                !a.is_established("10.0.1.2")
            }),
            ("a: route 10.244.2.0/26 gone from the kernel", &mut |lab| {
                !kernel_has(lab, "a", "10.244.2.0/26")
            }),
        ],
    );
    assert!(times.iter().all(|t| *t < HOLD));
    // BFD, not anything else, ended them.
    for (bgpd, peer) in [(&b, "10.0.1.1"), (&a, "10.0.1.2")] {
        let p = bgpd.peer(peer).unwrap();
        assert_eq!(p.last_error, "BFD down", "{peer}");
        let bfd = p.bfd.unwrap();
        assert_eq!(bfd.state, "down");
        assert_eq!(bfd.local_diagnostic, "control detection time expired");
        // Down (1) on /metrics too, while the wire is still cut.
        let state = bgpd
            .scrape()
            .value("podroute_bfd_session_state", &[("peer", peer)]);
        assert_eq!(state, Some(1.0));
    }

    // The wire back: the BFD sessions outlived the BGP flap, come Up again
    // and the BGP sessions follow.
    lab.exec("m", &["ip", "link", "set", "br0", "up"]).unwrap();
    b.wait_established(&lab, "10.0.1.1");
    let again = wait_bfd_up(&lab, &b, "10.0.1.1", |b| b.up_transitions == 2);
    assert_eq!(again.tx_interval_ms, 100);
    assert_eq!(
        b.scrape()
            .value("podroute_bfd_up_transitions_total", &[("peer", "10.0.1.1")]),
        Some(2.0)
    );

    // A graceful stop tells the peer AdminDown first (RFC 5882 §3.2): b's
    // session ends as a's graceful restart (a closes without a
    // NOTIFICATION), not as a BFD failure, so b keeps a's routes as its
    // helper instead of withdrawing them.
    let status = a.terminate();
    assert!(status.success(), "podroute-bgpd in a: {status}");
    let p = wait_seen(
        &lab,
        CONVERGE,
        "b: session with the stopped a down",
        |_| b.peer("10.0.1.1"),
        |p| p.as_ref().is_ok_and(|p| !common::established(p)),
    )
    .unwrap();
    assert_eq!(p.last_error, "connection closed by peer");
    let gr = p.graceful_restart.clone().unwrap();
    assert_eq!(
        gr.helper_state(),
        podroute_proto::bgpd::v1::HelperState::HelperRestarting,
        "{gr:?}"
    );
    let bfd = p.bfd.unwrap();
    assert_eq!(bfd.remote_state, "admin-down");
    assert_eq!(bfd.remote_diagnostic, "administratively down");
    assert_eq!(bfd.local_diagnostic, "neighbor signaled session down");
}

/// FRR's BFD peer `peer` from `show bfd peers json`; `Null` if none.
fn frr_bfd(lab: &Lab, peer: &str) -> Value {
    let out = lab
        .exec("r", &["vtysh", "-c", "show bfd peers json"])
        .unwrap_or_default();
    let all: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    all.as_array()
        .and_then(|peers| peers.iter().find(|p| p["peer"] == peer).cloned())
        .unwrap_or(Value::Null)
}

fn frr_bgp_state(lab: &Lab, peer: &str) -> String {
    let out = lab
        .exec(
            "r",
            &["vtysh", "-c", &format!("show bgp neighbors {peer} json")],
        )
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v[peer]["bgpState"].as_str().unwrap_or("(none)").to_string()
}

#[test]
fn bfd_with_frr_comes_up_retimes_in_place_and_detects_a_cut_on_both_sides() {
    let lab = Lab::up_with(WITH_FRR, LabOptions::unique("bfdf")).unwrap();
    bridge(&lab);
    let _router_dump = OnFailure(|| {
        let bfd = lab
            .exec("r", &["vtysh", "-c", "show bfd peers"])
            .unwrap_or_else(|e| e.to_string());
        eprintln!(
            "==== FRR: show bfd peers ====\n{bfd}\n==== FRR: bfdd.log ====\n{}\n==== FRR: bgpd.log ====\n{}",
            state_file_tail(&lab, "r", "frr/bfdd.log", 30),
            state_file_tail(&lab, "r", "frr/bgpd.log", 30)
        );
    });
    let peer = |bfd: &str| PeerConf::new("r", "10.0.1.1", AS).spec(bfd);
    let mut conf = speaker("10.0.1.2", "10.244.3.0/26", peer("bfd: {multiplier: 3}"));
    let c = Bgpd::start(&lab, "c", &conf);
    c.wait_established(&lab, "10.0.1.1");
    // FRR bfdd's defaults, once its own Poll after Up is done: 300 ms x 3.
    let up = wait_bfd_up(&lab, &c, "10.0.1.1", |b| {
        (b.remote_min_rx_ms, b.remote_min_tx_ms, b.remote_multiplier) == (300, 300, 3)
    });
    assert_eq!(up.detection_time_ms, 900);
    let frr = wait_seen(
        &lab,
        CONVERGE,
        "FRR's BFD peer 10.0.1.2 up",
        |lab| frr_bfd(lab, "10.0.1.2"),
        |v| v["status"] == "up",
    );
    println!("FRR's BFD peer once up: {frr}");
    wait_kernel_route(&lab, "c", "10.99.0.0/24");

    // (c) New timers on the running session: a Poll Sequence, no flap.
    conf.peers[0] = peer("bfd: {minRx: 200, minTx: 250, multiplier: 4}");
    c.reload(&conf);
    let frr = wait_seen(
        &lab,
        CONVERGE,
        "FRR to see our new intervals",
        |lab| frr_bfd(lab, "10.0.1.2"),
        |v| {
            v["remote-receive-interval"] == 200
                && v["remote-transmit-interval"] == 250
                && v["remote-detect-multiplier"] == 4
        },
    );
    assert_eq!(frr["status"], "up", "{frr}");
    let p = c.peer("10.0.1.1").unwrap();
    let bfd = p.bfd.clone().unwrap();
    assert_eq!(bfd.state, "up");
    assert_eq!(bfd.up_transitions, 1, "the BFD session stayed up");
    assert_eq!(
        (bfd.min_rx_ms, bfd.min_tx_ms, bfd.multiplier),
        (200, 250, 4)
    );
    assert_eq!(p.established_transitions, 1, "the BGP session stayed up");
    // FRR's detection of us now: 4 x max(its rx 300, our tx 250).
    println!("FRR's BFD peer after the reload: {frr}");

    // (b) Cut the wire.
    let cut = cut(&lab);
    let times = measure(
        &lab,
        cut,
        &mut [
            ("c: route 10.99.0.0/24 gone from the kernel", &mut |lab| {
                !kernel_has(lab, "c", "10.99.0.0/24")
            }),
            ("c: BGP session down", &mut |_| {
                !c.is_established("10.0.1.1")
            }),
            ("FRR: BFD peer down", &mut |lab| {
                frr_bfd(lab, "10.0.1.2")["status"] != "up"
            }),
            ("FRR: BGP session down", &mut |lab| {
                frr_bgp_state(lab, "10.0.1.2") != "Established"
            }),
        ],
    );
    assert!(times.iter().all(|t| *t < HOLD));
    let p = c.peer("10.0.1.1").unwrap();
    assert_eq!(p.last_error, "BFD down");
    assert_eq!(
        p.bfd.unwrap().local_diagnostic,
        "control detection time expired"
    );
}
