// What operators watch, against two real podroute-bgpd in a netns lab
// (labs/observe.clab.yml): /metrics scraped from inside the node's
// namespace and parsed strictly (every family named and typed as
// METRICS.md says), counters that move when the session flaps, /livez and
// /readyz answering as documented (503 with the reason before a session
// is up, 200 after, 200 with no peers), GetStatus against what the
// daemon really runs, and --log-format json logs whose every line is JSON
// and whose session events name the peer. Also the probes while the start
// waits for an ipamd that is not there: answered at once, live, not ready
// with the step under way, then the speaker's answers. Needs root, as the
// labs do.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::net::SocketAddr;

use common::{Bgpd, CONVERGE, PeerConf, Speaker, wait_seen};
use podroute_lab::{Lab, LabOptions};
use podroute_proto::metrics::Scrape;
use serde_json::Value;

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/observe.clab.yml");
const AS: u32 = 65000;
const A: &str = "10.0.5.1";
const B: &str = "10.0.5.2";
const A_BLOCK: &str = "10.244.1.0/26";
const B_BLOCK: &str = "10.244.2.0/26";
/// The metrics port in a node's namespace: the default.
const METRICS: &str = "127.0.0.1:9641";
/// An ipamd that never answers.
const NO_IPAMD: &str = "unix:///nonexistent.sock";
/// podroute_bgpd::fib::RTPROT_PODROUTE, as `ip route` takes it.
const PROTO_PODROUTE: &str = "210";

/// Every family bgpd/METRICS.md documents for a daemon with a kernel FIB
/// and without --ipamd, with its TYPE.
const FAMILIES: &[(&str, &str)] = &[
    ("podroute_build_info", "gauge"),
    ("podroute_process_start_time_seconds", "gauge"),
    ("podroute_bgp_peers_configured", "gauge"),
    ("podroute_bgp_peers_established", "gauge"),
    ("podroute_bgp_session_state", "gauge"),
    ("podroute_bgp_session_established", "gauge"),
    ("podroute_bgp_session_uptime_seconds", "gauge"),
    (
        "podroute_bgp_session_established_transitions_total",
        "counter",
    ),
    ("podroute_bgp_messages_received_total", "counter"),
    ("podroute_bgp_messages_sent_total", "counter"),
    ("podroute_bgp_prefixes_received", "gauge"),
    ("podroute_bgp_prefixes_accepted", "gauge"),
    ("podroute_bgp_prefixes_advertised", "gauge"),
    ("podroute_bgp_prefixes_stale", "gauge"),
    ("podroute_bfd_session_state", "gauge"),
    ("podroute_bfd_up_transitions_total", "counter"),
    ("podroute_bgp_loc_rib_prefixes", "gauge"),
    ("podroute_fib_routes", "gauge"),
    ("podroute_fib_netlink_errors_total", "counter"),
    ("podroute_fib_netlink_socket_failures_total", "counter"),
    ("podroute_fib_route_writes_total", "counter"),
    ("podroute_fib_nexthop_objects", "gauge"),
    ("podroute_fib_programming_seconds", "histogram"),
    ("podroute_bgp_originated_prefixes", "gauge"),
    ("podroute_bgp_config_reloads_total", "counter"),
    ("podroute_bgp_config_last_reload_successful", "gauge"),
    ("podroute_bgp_config_loaded_timestamp_seconds", "gauge"),
];

fn a_speaker(peer: PeerConf) -> Speaker {
    Speaker {
        asn: AS,
        router_id: A,
        originate: vec![A_BLOCK],
        peers: vec![peer],
        extra: Vec::new(),
    }
}

fn b_speaker(peers: Vec<PeerConf>) -> Speaker {
    Speaker {
        asn: AS,
        router_id: B,
        originate: vec![B_BLOCK],
        peers,
        extra: Vec::new(),
    }
}

fn check_families(node: &str, scrape: &Scrape) {
    for (name, kind) in FAMILIES {
        assert_eq!(
            scrape.types.get(*name).map(String::as_str),
            Some(*kind),
            "{node}: family {name}"
        );
    }
    for name in scrape.types.keys() {
        assert!(name.starts_with("podroute_"), "{node}: {name}");
        assert!(scrape.help.contains_key(name), "{node}: {name} has no HELP");
    }
}

/// A sample of `b`'s as seen by `a`, in a fresh scrape.
fn of_b(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape.value(name, &[("peer", B)])
}

fn message(scrape: &Scrape, direction: &str, kind: &str) -> f64 {
    let name = format!("podroute_bgp_messages_{direction}_total");
    scrape
        .value(&name, &[("peer", B), ("type", kind)])
        .unwrap_or_else(|| panic!("no {name}{{type={kind}}}"))
}

/// Polls `a`'s /metrics until `done` holds; returns that scrape.
fn wait_scrape(lab: &Lab, bgpd: &Bgpd, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    wait_seen(lab, CONVERGE, what, |_| bgpd.scrape(), done)
}

#[test]
fn metrics_probes_status_and_logs_follow_a_session_that_flaps() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("obs")).unwrap();
    let a = Bgpd::start_with_args(
        &lab,
        "a",
        &a_speaker(PeerConf::new("b", B, AS)),
        &["--node", "a", "--log-format", "json"],
    );

    // Before any session: live, not ready, and the reason says why.
    let not_ready = "no BGP session Established (0 of 1 peers)";
    assert_eq!(a.http("/livez").unwrap(), (200, "ok\n".to_string()));
    assert_eq!(a.http("/readyz").unwrap(), (503, format!("{not_ready}\n")));
    assert_eq!(a.http("/nothing-here").unwrap().0, 404);
    let status = a.status().unwrap();
    let health = status.health.clone().unwrap();
    assert!(health.live && !health.ready, "{status:#?}");
    assert_eq!(health.reason, not_ready);
    // In its own namespace the daemon keeps the default port.
    assert_eq!(health.metrics_address, "127.0.0.1:9641");
    assert_eq!(status.node, "a");
    assert_eq!(status.local_as, AS);
    assert_eq!(status.router_id, A);
    assert_eq!((status.peers_configured, status.peers_established), (1, 0));
    let fib = status.fib.unwrap();
    assert!(fib.enabled);
    assert_eq!(fib.table, 254);
    assert_eq!((status.ipamd.as_str(), status.ipamd_connected), ("", false));
    assert_eq!(status.originated, [A_BLOCK]);
    assert_eq!(status.config_file, a.config_path().display().to_string());
    assert_eq!(status.config_error, "");
    // Loaded as the daemon started.
    assert!(status.config_loaded_seconds_ago <= health.uptime_seconds);
    let scrape = a.scrape();
    check_families("a", &scrape);
    assert_eq!(of_b(&scrape, "podroute_bgp_session_established"), Some(0.0));
    assert_eq!(
        of_b(
            &scrape,
            "podroute_bgp_session_established_transitions_total"
        ),
        Some(0.0)
    );
    let state = of_b(&scrape, "podroute_bgp_session_state").unwrap();
    assert!((1.0..6.0).contains(&state), "{state}");
    assert_eq!(
        scrape.value(
            "podroute_bgp_session_state",
            &[("peer", B), ("peer_as", "65000")]
        ),
        Some(state)
    );
    assert_eq!(
        scrape.value("podroute_bgp_originated_prefixes", &[("kind", "block")]),
        Some(1.0)
    );
    // No --ipamd: no ipamd family.
    assert!(!scrape.types.contains_key("podroute_bgp_ipamd_connected"));

    // b with no peers at all is ready at once.
    let b = Bgpd::start(&lab, "b", &b_speaker(Vec::new()));
    assert_eq!(b.http("/readyz").unwrap(), (200, "ok\n".to_string()));
    let b_status = b.status().unwrap();
    assert!(b_status.health.unwrap().ready);
    assert_eq!(b_status.peers_configured, 0);
    check_families("b", &b.scrape());

    // A reload gives b its peer: counted as applied.
    b.reload(&b_speaker(vec![PeerConf::new("a", A, AS)]));
    wait_scrape(&lab, &b, "b: the reload counted", |s| {
        s.value("podroute_bgp_config_reloads_total", &[("result", "ok")]) == Some(1.0)
    });
    a.wait_established(&lab, B);
    b.wait_established(&lab, A);
    assert_eq!(a.http("/readyz").unwrap(), (200, "ok\n".to_string()));

    // Up: every figure follows, and the kernel holds both routes (our
    // blackhole and b's block).
    let up = wait_scrape(
        &lab,
        &a,
        "a: b's route in, and both kernel routes counted",
        |s| {
            of_b(s, "podroute_bgp_prefixes_accepted") == Some(1.0)
                && s.value("podroute_fib_routes", &[("state", "installed")]) == Some(2.0)
        },
    );
    assert_eq!(of_b(&up, "podroute_bgp_session_established"), Some(1.0));
    assert_eq!(of_b(&up, "podroute_bgp_session_state"), Some(6.0));
    assert_eq!(
        of_b(&up, "podroute_bgp_session_established_transitions_total"),
        Some(1.0)
    );
    assert_eq!(of_b(&up, "podroute_bgp_prefixes_received"), Some(1.0));
    assert_eq!(of_b(&up, "podroute_bgp_prefixes_advertised"), Some(1.0));
    assert_eq!(of_b(&up, "podroute_bgp_prefixes_stale"), Some(0.0));
    assert_eq!(
        up.value("podroute_bgp_loc_rib_prefixes", &[("family", "ipv4")]),
        Some(2.0)
    );
    assert_eq!(up.value("podroute_bgp_peers_established", &[]), Some(1.0));
    // (Two OPENs each way if both sides connected at once, RFC 4271 §6.8.)
    assert!(message(&up, "received", "open") >= 1.0);
    assert!(message(&up, "sent", "open") >= 1.0);
    assert!(message(&up, "received", "update") >= 1.0);
    assert!(message(&up, "received", "keepalive") >= 1.0);
    // The routes' writes were timed.
    assert!(
        up.value("podroute_fib_programming_seconds_count", &[])
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        up.value("podroute_fib_programming_seconds_bucket", &[("le", "+Inf")]),
        up.value("podroute_fib_programming_seconds_count", &[])
    );
    let status = a.status().unwrap();
    assert!(status.health.clone().unwrap().ready, "{status:#?}");
    assert_eq!(status.health.unwrap().reason, "");
    assert_eq!((status.peers_configured, status.peers_established), (1, 1));
    let fib = status.fib.unwrap();
    assert_eq!((fib.installed, fib.failed), (2, 0));

    // The flap: b crashes. a keeps b's route, stale, for b's restart
    // (graceful restart is on by default) and is no longer ready.
    b.kill();
    drop(b);
    let down = wait_scrape(&lab, &a, "a: the session down, b's route stale", |s| {
        of_b(s, "podroute_bgp_session_established") == Some(0.0)
            && of_b(s, "podroute_bgp_prefixes_stale") == Some(1.0)
    });
    assert_eq!(down.value("podroute_bgp_peers_established", &[]), Some(0.0));
    assert_eq!(a.http("/readyz").unwrap(), (503, format!("{not_ready}\n")));
    assert_eq!(a.http("/livez").unwrap().0, 200);

    // b back: the counters moved, the stale route was refreshed.
    let b = Bgpd::start(&lab, "b", &b_speaker(vec![PeerConf::new("a", A, AS)]));
    a.wait_established(&lab, B);
    // (More than 2 if both sides connected at once and the collision took
    // one session down, RFC 4271 §6.8.)
    let again = wait_scrape(&lab, &a, "a: up again, nothing stale", |s| {
        of_b(s, "podroute_bgp_session_established_transitions_total") >= Some(2.0)
            && of_b(s, "podroute_bgp_prefixes_stale") == Some(0.0)
            && of_b(s, "podroute_bgp_session_established") == Some(1.0)
    });
    for (direction, kind) in [
        ("received", "open"),
        ("sent", "open"),
        ("received", "keepalive"),
    ] {
        assert!(
            message(&again, direction, kind) > message(&up, direction, kind),
            "{direction} {kind}"
        );
    }
    assert_eq!(a.http("/readyz").unwrap(), (200, "ok\n".to_string()));

    // A refused reload: counted, its reason in GetStatus, the running
    // configuration (and readiness) kept.
    a.reload(&a_speaker(PeerConf::new("b", B, AS).spec("holdTime: 2")));
    let refused = wait_seen(
        &lab,
        CONVERGE,
        "a: the refusal in GetStatus",
        |_| a.status().unwrap(),
        |s| !s.config_error.is_empty(),
    );
    assert!(
        refused.config_error.contains("spec.holdTime")
            && refused.config_error.contains(&refused.config_file),
        "{}",
        refused.config_error
    );
    let scrape = a.scrape();
    assert_eq!(
        scrape.value(
            "podroute_bgp_config_reloads_total",
            &[("result", "refused")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("podroute_bgp_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(refused.peers_configured, 1);
    // A good file again: applied, and the refusal is history.
    a.reload(&a_speaker(PeerConf::new("b", B, AS)));
    wait_seen(
        &lab,
        CONVERGE,
        "a: the good reload in GetStatus",
        |_| a.status().unwrap(),
        |s| s.config_error.is_empty(),
    );
    let scrape = a.scrape();
    assert_eq!(
        scrape.value("podroute_bgp_config_reloads_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("podroute_bgp_config_last_reload_successful", &[]),
        Some(1.0)
    );

    let transitions = of_b(
        &a.scrape(),
        "podroute_bgp_session_established_transitions_total",
    );
    check_json_log(&a, transitions.unwrap() as usize);
    drop(b);
}

/// Every line of `a`'s log is a JSON event; the session's state changes
/// are events that name the peer (one per Established: `transitions`),
/// and nothing at info or above is logged per prefix.
fn check_json_log(a: &Bgpd, transitions: usize) {
    let text = fs::read_to_string(a.log_path()).unwrap();
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line {} is not JSON ({e}): {line}", n + 1));
        assert!(event.is_object(), "log line {}: {line}", n + 1);
        events.push(event);
    }
    let named = |message: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["fields"]["message"] == message)
            .collect()
    };
    let up = named("BGP session Established");
    assert_eq!(up.len(), transitions, "one event per Established: {up:#?}");
    for e in &up {
        assert_eq!(e["fields"]["peer"], B, "{e}");
        assert_eq!(e["fields"]["to"], "Established", "{e}");
        assert_eq!(e["level"], "INFO", "{e}");
    }
    let lost = named("BGP session lost");
    for e in &lost {
        assert_eq!(e["fields"]["peer"], B, "{e}");
        assert_eq!(e["fields"]["from"], "Established", "{e}");
        assert_eq!(e["level"], "WARN", "{e}");
    }
    // b's crash.
    assert!(
        lost.iter()
            .any(|e| e["fields"]["reason"] == "connection closed by peer"),
        "{lost:#?}"
    );
    assert_eq!(lost.len(), transitions - 1, "{lost:#?}");
    for e in &events {
        let level = e["level"].as_str().unwrap_or_default();
        if matches!(level, "INFO" | "WARN" | "ERROR") {
            assert!(
                e["fields"].get("prefix").is_none(),
                "a per-prefix event at {level}: {e}"
            );
        }
    }
}

/// Polls `a`'s /readyz until it answers `until`; every answer before it
/// must be one of the start's (the port may not be bound yet at first).
fn wait_ready_answer(lab: &Lab, a: &Bgpd, until: &str) -> (u16, String) {
    let metrics: SocketAddr = METRICS.parse().unwrap();
    let starting = [
        "starting: reading the kernel's routes\n",
        "starting: waiting for ipamd's first view of this node's blocks\n",
        "starting: starting the BGP speaker\n",
    ];
    let what = format!("a: /readyz answering {until:?}");
    let answer = wait_seen(
        lab,
        CONVERGE,
        &what,
        |_| {
            if let Some(status) = a.exited() {
                panic!("podroute-bgpd exited ({status}) while starting");
            }
            let answer = a.http_at(metrics, "/readyz");
            if let Ok((code, body)) = &answer {
                assert!(
                    body == until || (*code == 503 && starting.contains(&body.as_str())),
                    "unexpected /readyz answer {code} {body:?} while waiting for {until:?}"
                );
            }
            answer
        },
        |answer| answer.as_ref().is_ok_and(|(_, body)| body == until),
    );
    answer.unwrap()
}

#[test]
fn probes_answer_while_the_start_waits_for_ipamd() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("obsst")).unwrap();
    let metrics: SocketAddr = METRICS.parse().unwrap();
    // A route of ours in a's kernel, as a crashed podroute-bgpd leaves
    // it: the start is a restart, and it waits for ipamd's first view up
    // to 3/4 of the shortest Restart Time (origin::first_view_wait). With
    // the longest one, 4095 s, that window is 51 minutes: it cannot close
    // while the test looks.
    lab.exec(
        "a",
        &[
            "ip",
            "route",
            "add",
            "blackhole",
            A_BLOCK,
            "proto",
            PROTO_PODROUTE,
        ],
    )
    .unwrap();
    let config = a_speaker(PeerConf::new("b", B, AS).spec("gracefulRestart: {restartTime: 4095}"));
    let args = ["--node", "a", "--ipamd", NO_IPAMD];
    let a = Bgpd::spawn_with_args(&lab, "a", &config, &args);
    let waiting = "starting: waiting for ipamd's first view of this node's blocks\n";
    assert_eq!(wait_ready_answer(&lab, &a, waiting).0, 503);
    assert_eq!(
        a.http_at(metrics, "/livez").unwrap(),
        (200, "ok\n".to_string())
    );
    let (code, body) = a.http_at(metrics, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    let scrape = podroute_proto::metrics::parse(&body).unwrap();
    assert_eq!(
        scrape.value(
            "podroute_build_info",
            &[
                ("daemon", "podroute-bgpd"),
                ("version", env!("CARGO_PKG_VERSION"))
            ]
        ),
        Some(1.0)
    );
    assert!(
        scrape
            .types
            .contains_key("podroute_process_start_time_seconds")
    );
    // No speaker yet, so no BGP figure.
    for name in scrape.types.keys() {
        assert!(!name.starts_with("podroute_bgp_"), "{name} while starting");
    }
    // Still the start's answer after the other requests: the window is open.
    assert_eq!(
        a.http_at(metrics, "/readyz").unwrap(),
        (503, waiting.to_string())
    );
    a.kill();
    drop(a);

    // A fresh start (nothing of ours in the kernel) waits 5 s for ipamd,
    // then the speaker answers: not ready for want of a session.
    lab.exec("a", &["ip", "route", "del", "blackhole", A_BLOCK])
        .unwrap();
    let a = Bgpd::spawn_with_args(&lab, "a", &config, &args);
    let not_ready = "no BGP session Established (0 of 1 peers)\n";
    assert_eq!(wait_ready_answer(&lab, &a, not_ready).0, 503);
    assert_eq!(
        a.http_at(metrics, "/livez").unwrap(),
        (200, "ok\n".to_string())
    );
    let log = fs::read_to_string(a.log_path()).unwrap();
    assert!(
        log.contains("no view of this node's blocks from ipamd yet; starting sessions anyway"),
        "{log}"
    );
    // The admin API (served just after) agrees.
    let status = wait_seen(
        &lab,
        CONVERGE,
        "a: GetStatus answers",
        |_| a.status(),
        Result::is_ok,
    );
    let health = status.unwrap().health.unwrap();
    assert_eq!(health.reason, not_ready.trim_end());
    assert_eq!(health.metrics_address, METRICS);
    check_families("a", &a.scrape());
}

#[test]
fn a_route_another_program_shadows_is_a_kernel_problem() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("obssh")).unwrap();
    let a = Bgpd::start(&lab, "a", &a_speaker(PeerConf::new("b", B, AS)));
    let _b = Bgpd::start(&lab, "b", &b_speaker(vec![PeerConf::new("a", A, AS)]));
    wait_seen(
        &lab,
        CONVERGE,
        "b's block in a's kernel",
        |lab| common::kernel_routes(lab, "a", "-4"),
        |routes| routes.iter().any(|r| r["dst"] == B_BLOCK),
    );
    assert_eq!(a.kernel_problems().unwrap(), []);

    // An admin's blackhole for b's block: metric 0 beats ours.
    let blackhole = [
        "ip",
        "route",
        "add",
        "blackhole",
        B_BLOCK,
        "proto",
        "static",
    ];
    lab.exec("a", &blackhole).unwrap();
    let problems = wait_seen(
        &lab,
        CONVERGE,
        "b's block reported shadowed",
        |_| a.kernel_problems().unwrap(),
        |routes| !routes.is_empty(),
    );
    // Only b's block: a's own, a blackhole of ours, is shadowed by nothing.
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].prefix, B_BLOCK);
    assert_eq!(
        problems[0].kernel_shadowed_by,
        "a blackhole or unreachable route (metric 0)"
    );
    lab.exec(
        "a",
        &[
            "ip",
            "route",
            "del",
            "blackhole",
            B_BLOCK,
            "proto",
            "static",
        ],
    )
    .unwrap();
    wait_seen(
        &lab,
        CONVERGE,
        "no kernel problem left",
        |_| a.kernel_problems().unwrap(),
        Vec::is_empty,
    );
}
