// Graceful restart (RFC 4724) end to end in network namespaces
// (bgpd/tests/labs/gr.clab.yml): two podroute nodes with a pod behind
// each ping pod to pod every 10 ms while n1's podroute-bgpd is killed and
// started again. n2 keeps n1's block as a helper, n1 restarts with its
// routes still in the kernel (R and F bits), and no packet is lost. A
// SIGTERM with GR keeps the kernel routes; `--cleanup` removes them; a
// peer without GR withdraws at once. Needs root.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podroute_lab::{Lab, LabOptions};
use podroute_proto::bgpd::v1::{HelperState, Peer};

use common::{BGPD, Bgpd, CONVERGE, PeerConf, Speaker, wait_seen};

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/gr.clab.yml");
const N1_BLOCK: &str = "10.101.0.0/26";
const N2_BLOCK: &str = "10.102.0.0/26";
const POD1: &str = "10.101.0.10";
const POD2: &str = "10.102.0.10";
const N1: &str = "10.41.1.1";
const N2: &str = "10.41.1.2";

fn peer(name: &'static str, ip: &'static str, asn: u32, graceful: bool) -> PeerConf {
    let p = PeerConf::new(name, ip, asn)
        .spec("importPolicy: {defaultAction: accept}")
        .spec("exportPolicy: {defaultAction: accept}");
    if graceful {
        p
    } else {
        p.spec("gracefulRestart: {enabled: false}")
    }
}

fn n1_speaker(graceful: bool) -> Speaker {
    Speaker {
        asn: 65001,
        router_id: "10.41.0.1",
        originate: vec![N1_BLOCK],
        peers: vec![peer("n2", N2, 65002, graceful)],
        extra: Vec::new(),
    }
}

fn n2_speaker(graceful: bool) -> Speaker {
    Speaker {
        asn: 65002,
        router_id: "10.41.0.2",
        originate: vec![N2_BLOCK],
        peers: vec![peer("n1", N1, 65001, graceful)],
        extra: Vec::new(),
    }
}

/// Whether `node`'s main table holds a route of ours for `prefix`.
fn has_route(lab: &Lab, node: &str, prefix: &str) -> bool {
    lab.exec(
        node,
        &["ip", "route", "show", "exact", prefix, "proto", "podroute"],
    )
    .is_ok_and(|out| !out.trim().is_empty())
}

fn graceful(peer: &Peer) -> podroute_proto::bgpd::v1::GracefulRestart {
    peer.graceful_restart.clone().unwrap_or_default()
}

/// Both nodes up, each with the other's block in its kernel.
fn converge(lab: &Lab, n1: &Bgpd, n2: &Bgpd) {
    n1.wait_established(lab, N2);
    n2.wait_established(lab, N1);
    for (node, prefix) in [("n1", N2_BLOCK), ("n2", N1_BLOCK)] {
        lab.wait_for(CONVERGE, &format!("{node}: route to {prefix}"), |lab| {
            has_route(lab, node, prefix)
        })
        .unwrap();
    }
}

/// Watches a kernel route every few milliseconds; counts the polls that
/// did not find it.
struct RouteWatch {
    stop: Arc<AtomicBool>,
    missing: Arc<AtomicU64>,
    polls: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RouteWatch {
    fn start(lab: &Lab, node: &str, prefix: &str) -> RouteWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let missing = Arc::new(AtomicU64::new(0));
        let polls = Arc::new(AtomicU64::new(0));
        let cmd = lab
            .command(
                node,
                &["ip", "route", "show", "exact", prefix, "proto", "podroute"],
            )
            .unwrap();
        let program = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
        let (s, m, p) = (stop.clone(), missing.clone(), polls.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let out = Command::new(&program).args(&args).output();
                p.fetch_add(1, Ordering::Relaxed);
                if !out.is_ok_and(|o| !o.stdout.is_empty()) {
                    m.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RouteWatch {
            stop,
            missing,
            polls,
            thread: Some(thread),
        }
    }

    /// (polls without the route, polls).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.missing.load(Ordering::Relaxed),
            self.polls.load(Ordering::Relaxed),
        )
    }
}

impl Drop for RouteWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `ping -i 0.01` from one pod to the other; killed on drop.
struct Pinger {
    child: Child,
    reader: Option<JoinHandle<BTreeSet<u32>>>,
}

impl Pinger {
    fn start(lab: &Lab, from: &str, to: &str) -> Pinger {
        let mut cmd = lab
            .command(from, &["ping", "-n", "-i", "0.01", to])
            .unwrap();
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seqs = BTreeSet::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(seq) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("icmp_seq="))
                    .and_then(|s| s.parse::<u32>().ok())
                    && line.contains("bytes from")
                {
                    seqs.insert(seq);
                }
            }
            seqs
        });
        Pinger {
            child,
            reader: Some(reader),
        }
    }

    /// Stops pinging; (lost, answered): a request counts as lost when a
    /// later one was answered and it was not (the requests still in flight
    /// when ping stops are not counted either way).
    fn finish(mut self) -> (u64, u64) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let seqs = self.reader.take().unwrap().join().unwrap();
        let first = seqs.first().copied().unwrap_or(0);
        let last = seqs.last().copied().unwrap_or(0);
        let expected = if seqs.is_empty() {
            0
        } else {
            u64::from(last - first + 1)
        };
        (expected - seqs.len() as u64, seqs.len() as u64)
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pods reach each other (first ARP and routes in place).
fn wait_pods(lab: &Lab) {
    lab.wait_for(CONVERGE, "pod1 to reach pod2", |lab| {
        lab.exec("pod1", &["ping", "-n", "-c", "1", "-W", "1", POD2])
            .is_ok()
    })
    .unwrap();
}

fn helper_state(peer: &Peer) -> HelperState {
    HelperState::try_from(graceful(peer).helper_state).unwrap_or(HelperState::HelperNone)
}

#[test]
fn sigkill_and_restart_loses_no_packet_and_the_helper_keeps_the_routes() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("grkill")).unwrap();
    let n1 = Bgpd::start(&lab, "n1", &n1_speaker(true));
    let n2 = Bgpd::start(&lab, "n2", &n2_speaker(true));
    converge(&lab, &n1, &n2);
    let p = n2.peer(N1).unwrap();
    assert!(graceful(&p).negotiated, "GR negotiated: {p:#?}");
    wait_pods(&lab);

    let watch_n2 = RouteWatch::start(&lab, "n2", N1_BLOCK);
    let watch_n1 = RouteWatch::start(&lab, "n1", N2_BLOCK);
    let ping = Pinger::start(&lab, "pod1", POD2);
    let back = Pinger::start(&lab, "pod2", POD1);
    // Traffic flows before the crash.
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    n1.kill();
    drop(n1);
    let restarting = wait_seen(
        &lab,
        CONVERGE,
        "n2 to keep n1's routes as a GR helper",
        |_| n2.peer(N1),
        |p| {
            p.as_ref().is_ok_and(|p| {
                helper_state(p) == HelperState::HelperRestarting && graceful(p).stale_prefixes == 1
            })
        },
    )
    .unwrap();
    println!(
        "n2 helper state after the kill: {:?}, {}s left, {} stale",
        helper_state(&restarting),
        graceful(&restarting).helper_seconds_left,
        graceful(&restarting).stale_prefixes
    );

    let n1 = Bgpd::start(&lab, "n1", &n1_speaker(true));
    n1.wait_established(&lab, N2);
    let up = t0.elapsed();
    let back_to_normal = wait_seen(
        &lab,
        CONVERGE,
        "n2: helper done, no stale routes left",
        |_| n2.peer(N1),
        |p| {
            p.as_ref().is_ok_and(|p| {
                common::established(p)
                    && helper_state(p) == HelperState::HelperNone
                    && graceful(p).stale_prefixes == 0
                    && p.prefixes_received == 1
            })
        },
    )
    .unwrap();
    let recovered = t0.elapsed();
    // The restarted n1 said so: R bit, forwarding preserved.
    assert!(
        graceful(&back_to_normal).peer_restarting,
        "n1 restarted with its routes in the kernel: R=1 expected: {back_to_normal:#?}"
    );
    assert_eq!(
        graceful(&back_to_normal).peer_forwarding_preserved,
        vec!["ipv4-unicast".to_string()],
    );
    // n1's exports waited for n2's End-of-RIB, then went out.
    let _ = wait_seen(
        &lab,
        CONVERGE,
        "n1 to advertise its block again",
        |_| n1.advertised(N2, N1_BLOCK),
        |r| r.as_ref().is_ok_and(Option::is_some),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (lost, answered) = ping.finish();
    let (lost_back, answered_back) = back.finish();
    let (n2_missing, n2_polls) = watch_n2.finish();
    let (n1_missing, n1_polls) = watch_n1.finish();
    println!(
        "SIGKILL + restart: session back after {up:?}, stale routes refreshed after {recovered:?}; \
         pod1->pod2 lost {lost} of {} ({answered} answered), pod2->pod1 lost {lost_back} of {}; \
         n2's route to n1's block missing in {n2_missing} of {n2_polls} polls, \
         n1's route to n2's block missing in {n1_missing} of {n1_polls}",
        answered + lost,
        answered_back + lost_back,
    );
    assert_eq!(n2_missing, 0, "n2 lost its route to {N1_BLOCK}");
    assert_eq!(n1_missing, 0, "n1's kernel lost {N2_BLOCK}");
    assert_eq!(lost, 0, "pod1 -> pod2 lost packets");
    assert_eq!(lost_back, 0, "pod2 -> pod1 lost packets");
    assert!(answered > 0 && answered_back > 0);
}

#[test]
fn sigterm_keeps_kernel_routes_cleanup_removes_them_and_a_peer_without_gr_withdraws_at_once() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("grterm")).unwrap();
    let n1 = Bgpd::start(&lab, "n1", &n1_speaker(true));
    let n2 = Bgpd::start(&lab, "n2", &n2_speaker(true));
    converge(&lab, &n1, &n2);

    // SIGTERM with GR: n1's kernel keeps its routes, n2 keeps n1's (no
    // NOTIFICATION was sent).
    let status = n1.terminate();
    assert!(status.success(), "n1 exited with {status}");
    assert!(has_route(&lab, "n1", N1_BLOCK), "n1's own block kept");
    assert!(has_route(&lab, "n1", N2_BLOCK), "n1's learned route kept");
    let p = wait_seen(
        &lab,
        CONVERGE,
        "n2 to help n1 restart",
        |_| n2.peer(N1),
        |p| {
            p.as_ref()
                .is_ok_and(|p| helper_state(p) == HelperState::HelperRestarting)
        },
    )
    .unwrap();
    assert!(has_route(&lab, "n2", N1_BLOCK), "n2 keeps n1's block");
    assert_eq!(graceful(&p).stale_prefixes, 1);
    assert!(
        !p.last_error.contains("NOTIFICATION") && !p.last_error.contains("received"),
        "closed without a NOTIFICATION: {}",
        p.last_error
    );
    drop(n1);

    // --cleanup: every route of ours leaves n1's kernel.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bgpd.yaml");
    std::fs::write(&config, n1_speaker(true).yaml()).unwrap();
    let out = lab
        .exec(
            "n1",
            &[BGPD, "--cleanup", "--config", config.to_str().unwrap()],
        )
        .unwrap();
    println!("--cleanup: {}", out.trim());
    assert!(!has_route(&lab, "n1", N1_BLOCK));
    assert!(!has_route(&lab, "n1", N2_BLOCK));
    drop(n2);

    // Without GR on n2's side: a lost session withdraws at once.
    let n1 = Bgpd::start(&lab, "n1", &n1_speaker(true));
    let n2 = Bgpd::start(&lab, "n2", &n2_speaker(false));
    converge(&lab, &n1, &n2);
    let p = n2.peer(N1).unwrap();
    assert!(!graceful(&p).negotiated, "GR off with n1: {p:#?}");
    let t0 = Instant::now();
    n1.kill();
    lab.wait_for(CONVERGE, "n2 to withdraw n1's block", |lab| {
        !has_route(lab, "n2", N1_BLOCK)
    })
    .unwrap();
    println!(
        "without GR: n2 withdrew n1's block {:?} after the kill",
        t0.elapsed()
    );
    let p = n2.peer(N1).unwrap();
    assert_eq!(helper_state(&p), HelperState::HelperNone);
    assert_eq!(graceful(&p).stale_prefixes, 0);
}
