// The FIB against a real kernel: each test makes its own network namespace
// (pr-fib-<pid>-<n>, deleted by a drop guard) with two veth links, runs the
// FIB inside it, and checks the kernel with `ip`. Needs root, as the labs do.

// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use podroute_bgpd::fib::{
    self, FibConfig, FibEvent, FibHandle, FibOp, FibRoute, KernelTable, ResolvedNextHop, RouteState,
};
use tokio::sync::mpsc;

/// Kernel changes show up within this (generous for two busy cores).
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// A namespace with v0 (192.0.2.1/24) and w0 (198.51.100.1/24), each a veth
/// whose peer is up in the same namespace.
struct Netns {
    name: String,
    v0: u32,
    w0: u32,
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pr-fib-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["netns", "add", &name]);
        let mut ns = Netns { name, v0: 0, w0: 0 };
        for (link, peer, addr) in [
            ("v0", "v1", "192.0.2.1/24"),
            ("w0", "w1", "198.51.100.1/24"),
        ] {
            ns.ip(&["link", "add", link, "type", "veth", "peer", "name", peer]);
            ns.ip(&["addr", "add", addr, "dev", link]);
            ns.ip(&["link", "set", link, "up"]);
            ns.ip(&["link", "set", peer, "up"]);
        }
        ns.v0 = ns.ifindex("v0");
        ns.w0 = ns.ifindex("w0");
        // Connected routes appear once the links have carrier.
        wait_until("connected routes", || {
            ns.ip(&["route", "show", "dev", "w0"])
                .contains("198.51.100.0/24")
        });
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    fn ifindex(&self, link: &str) -> u32 {
        let line = self.ip(&["-o", "link", "show", link]);
        line.split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .unwrap()
    }

    fn config(&self) -> FibConfig {
        FibConfig {
            netns: Some(format!("/run/netns/{}", self.name).into()),
            ..FibConfig::default()
        }
    }

    /// Our routes (proto 210) as `ip route` prints them, IPv4 and IPv6.
    fn our_routes(&self) -> Vec<String> {
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            routes.extend(
                self.ip(&[family, "route", "show", "proto", "210"])
                    .lines()
                    .map(str::to_string),
            );
        }
        routes
    }

    fn has_route(&self, prefix: &str, proto: &str) -> bool {
        !self
            .ip(&["route", "show", prefix, "proto", proto])
            .trim()
            .is_empty()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn via(hops: &[(&str, u32)]) -> FibRoute {
    let mut hops: Vec<ResolvedNextHop> = hops
        .iter()
        .map(|(g, i)| ResolvedNextHop {
            gateway: g.parse::<IpAddr>().unwrap(),
            ifindex: *i,
        })
        .collect();
    hops.sort();
    FibRoute::Unicast(Arc::from(hops))
}

/// Starts the FIB and waits for its first resync request.
async fn start(config: FibConfig) -> (FibHandle, mpsc::Receiver<FibEvent>, u64) {
    let (handle, mut events) = fib::start(config).await.unwrap();
    let generation = loop {
        match tokio::time::timeout(DEADLINE, events.recv()).await.unwrap() {
            Some(FibEvent::ResyncRequested { generation }) => break generation,
            Some(FibEvent::KernelTable(_)) => {}
            None => panic!("FIB stopped"),
        }
    };
    (handle, events, generation)
}

async fn settled(handle: &FibHandle) {
    wait_for("the FIB to write everything", || {
        handle.status().pending == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_of_another_protocol_survives_reconcile() {
    let ns = Netns::new();
    ns.ip(&[
        "route",
        "add",
        "10.9.0.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.9.1.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "static",
        "metric",
        "100",
    ]);
    let (handle, _events, generation) = start(ns.config()).await;
    // Ours for the same prefixes: separate kernel routes (our metric is 20).
    handle
        .apply(vec![
            FibOp::Set(net("10.9.0.0/24"), via(&[("198.51.100.2", ns.w0)])),
            FibOp::Set(net("10.9.1.0/24"), via(&[("198.51.100.2", ns.w0)])),
        ])
        .await;
    handle.sync_done(generation).await;
    settled(&handle).await;
    assert!(ns.has_route("10.9.0.0/24", "210"));
    // The static routes are still there, untouched.
    assert!(
        ns.ip(&["route", "show", "10.9.0.0/24", "proto", "static"])
            .contains("via 192.0.2.2")
    );
    assert!(
        ns.ip(&["route", "show", "10.9.1.0/24", "proto", "static"])
            .contains("via 192.0.2.2")
    );
    // Removing ours leaves theirs.
    handle
        .apply(vec![
            FibOp::Remove(net("10.9.0.0/24")),
            FibOp::Remove(net("10.9.1.0/24")),
        ])
        .await;
    settled(&handle).await;
    assert!(ns.our_routes().is_empty(), "{:?}", ns.our_routes());
    assert!(ns.has_route("10.9.0.0/24", "static"));
    assert!(ns.has_route("10.9.1.0/24", "static"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_routes_of_ours_are_removed_at_sync_done() {
    let ns = Netns::new();
    for prefix in ["10.1.0.0/24", "10.1.1.0/24", "2001:db8:1::/48"] {
        let gw = if prefix.contains(':') {
            "fe80::2"
        } else {
            "192.0.2.2"
        };
        ns.ip(&[
            "route", "add", prefix, "via", gw, "dev", "v0", "proto", "210", "metric", "20",
        ]);
    }
    // Ours under an older metric: stale too.
    ns.ip(&[
        "route",
        "add",
        "10.1.2.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "210",
        "metric",
        "99",
    ]);
    let (handle, _events, generation) = start(ns.config()).await;
    assert_eq!(handle.status().installed, 4);
    handle
        .apply(vec![FibOp::Set(
            net("10.1.0.0/24"),
            via(&[("192.0.2.2", ns.v0)]),
        )])
        .await;
    settled(&handle).await;
    // Nothing is deleted before the RIB says it is done.
    assert_eq!(ns.our_routes().len(), 4, "{:?}", ns.our_routes());
    handle.sync_done(generation).await;
    wait_for("stale routes to go", || ns.our_routes().len() == 1).await;
    assert!(ns.has_route("10.1.0.0/24", "210"));
    // An old generation's sync_done is ignored.
    handle.sync_done(generation - 1).await;
    settled(&handle).await;
    assert!(ns.has_route("10.1.0.0/24", "210"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_routes_share_one_nexthop_object() {
    let ns = Netns::new();
    let (handle, _events, generation) = start(ns.config()).await;
    let route = via(&[("192.0.2.2", ns.v0)]);
    let ops: Vec<FibOp> = (0..10_000u32)
        .map(|i| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
            FibOp::Set(IpNetwork::new(addr.into(), 24).unwrap(), route.clone())
        })
        .collect();
    handle.apply(ops).await;
    handle.sync_done(generation).await;
    settled(&handle).await;
    wait_for("10,000 routes in the kernel", || {
        ns.ip(&["-4", "route", "show", "proto", "210"])
            .lines()
            .count()
            == 10_000
    })
    .await;
    let status = handle.status();
    assert_eq!(status.errors_total, 0);
    // Every write pass is timed, from the ops being queued to the kernel's
    // answer.
    let latency = handle.programming_latency().snapshot();
    assert!(latency.count >= 1, "{latency:?}");
    assert!(latency.sum_seconds > 0.0, "{latency:?}");
    assert!(status.uses_nexthop_objects);
    assert!(status.netlink_batches < 100, "{status:?}");
    let objects = ns.ip(&["nexthop", "show", "proto", "210"]);
    assert_eq!(objects.lines().count(), 1, "{objects}");
    assert!(ns.ip(&["route", "show", "10.0.42.0/24"]).contains("nhid"));
    wait_for("the installed count", || {
        handle.status().installed == 10_000
    })
    .await;
    assert_eq!(handle.route_state(&net("10.0.42.0/24")), RouteState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipath_route_with_nexthop_objects_and_without() {
    for objects in [true, false] {
        let ns = Netns::new();
        let config = FibConfig {
            use_nexthop_objects: objects,
            ..ns.config()
        };
        let (handle, _events, generation) = start(config).await;
        let ecmp = via(&[("192.0.2.2", ns.v0), ("198.51.100.2", ns.w0)]);
        handle
            .apply(vec![FibOp::Set(net("10.5.0.0/24"), ecmp)])
            .await;
        handle.sync_done(generation).await;
        settled(&handle).await;
        let route = ns.ip(&["route", "show", "10.5.0.0/24"]);
        let shown = if objects {
            let id = route
                .split_whitespace()
                .skip_while(|w| *w != "nhid")
                .nth(1)
                .unwrap()
                .to_string();
            ns.ip(&["nexthop", "show", "id", &id])
        } else {
            route.clone()
        };
        assert!(shown.contains("group") == objects, "{shown}");
        let gateways = if objects {
            ns.ip(&["nexthop", "show", "proto", "210"])
        } else {
            route
        };
        assert!(
            gateways.contains("192.0.2.2") && gateways.contains("198.51.100.2"),
            "{gateways}"
        );
        // Back to one path: replaced in place.
        handle
            .apply(vec![FibOp::Set(
                net("10.5.0.0/24"),
                via(&[("198.51.100.2", ns.w0)]),
            )])
            .await;
        settled(&handle).await;
        assert_eq!(ns.our_routes().len(), 1, "{:?}", ns.our_routes());
        drop(handle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconciles_without_rewriting_identical_routes() {
    let ns = Netns::new();
    let routes: Vec<FibOp> = (0..100u32)
        .map(|i| {
            let addr = std::net::Ipv4Addr::from(0x0a40_0000 + (i << 8));
            FibOp::Set(
                IpNetwork::new(addr.into(), 24).unwrap(),
                via(&[("192.0.2.2", ns.v0)]),
            )
        })
        .chain([
            FibOp::Set(net("10.99.0.0/16"), FibRoute::Blackhole),
            FibOp::Set(net("2001:db8:5::/48"), via(&[("fe80::2", ns.v0)])),
        ])
        .collect();
    {
        let (handle, _events, generation) = start(ns.config()).await;
        handle.apply(routes.clone()).await;
        handle.sync_done(generation).await;
        settled(&handle).await;
    }
    assert_eq!(ns.our_routes().len(), 102);
    // A second life of the daemon: the same routes, one of them changed.
    let (handle, _events, generation) = start(ns.config()).await;
    assert_eq!(handle.status().installed, 102);
    let mut again = routes;
    again[0] = FibOp::Set(net("10.64.0.0/24"), via(&[("198.51.100.2", ns.w0)]));
    handle.apply(again).await;
    handle.sync_done(generation).await;
    settled(&handle).await;
    let status = handle.status();
    assert_eq!(
        status.writes_total, 1,
        "only the changed route is written: {status:?}"
    );
    assert_eq!(ns.our_routes().len(), 102);
    assert!(ns.ip(&["route", "show", "10.64.0.0/24"]).contains("nhid"));
    let nh = ns.ip(&["nexthop", "show", "proto", "210"]);
    assert!(
        nh.contains("198.51.100.2") && nh.contains("192.0.2.2"),
        "{nh}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gateway_is_reported_and_does_not_block_others() {
    let ns = Netns::new();
    let (handle, _events, generation) = start(ns.config()).await;
    let bad = net("10.7.0.0/24");
    handle
        .apply(vec![
            FibOp::Set(net("10.6.0.0/24"), via(&[("192.0.2.2", ns.v0)])),
            // 203.0.113.9 is on no subnet of v0.
            FibOp::Set(bad, via(&[("203.0.113.9", ns.v0)])),
            FibOp::Set(net("10.8.0.0/24"), FibRoute::Blackhole),
        ])
        .await;
    handle.sync_done(generation).await;
    wait_for("the failure to be reported", || {
        matches!(handle.route_state(&bad), RouteState::Failed(_))
    })
    .await;
    assert!(ns.has_route("10.6.0.0/24", "210"));
    assert!(ns.has_route("10.8.0.0/24", "210"));
    assert!(!ns.has_route("10.7.0.0/24", "210"));
    let status = handle.status();
    assert_eq!(status.failed, 1);
    assert!(status.errors_total >= 1);
    assert_eq!(status.failures[0].0, bad);
    assert!(
        status.failures[0].1.contains("203.0.113.9"),
        "{:?}",
        status.failures
    );
    // Once the gateway becomes reachable, the retry succeeds.
    ns.ip(&["addr", "add", "203.0.113.1/24", "dev", "v0"]);
    wait_for("the retry to succeed", || {
        handle.route_state(&bad) == RouteState::Done
    })
    .await;
    assert!(ns.has_route("10.7.0.0/24", "210"));
    assert_eq!(handle.status().failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_table_follows_routes_of_other_protocols() {
    let ns = Netns::new();
    let (handle, mut events, generation) = start(ns.config()).await;
    handle.sync_done(generation).await;
    // Our routes are not part of it.
    handle
        .apply(vec![FibOp::Set(
            net("10.77.0.0/16"),
            via(&[("192.0.2.2", ns.v0)]),
        )])
        .await;
    ns.ip(&[
        "route",
        "add",
        "10.77.0.0/24",
        "via",
        "198.51.100.2",
        "proto",
        "static",
    ]);
    let deadline = Instant::now() + DEADLINE;
    let mut table: Option<Arc<KernelTable>> = None;
    let want = Some(vec![ResolvedNextHop {
        gateway: "198.51.100.2".parse().unwrap(),
        ifindex: ns.w0,
    }]);
    while table
        .as_ref()
        .map(|t| t.resolve("10.77.0.1".parse().unwrap()))
        != Some(want.clone())
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await.unwrap() {
            Some(FibEvent::KernelTable(t)) => table = Some(t),
            Some(_) => {}
            None => panic!("FIB stopped"),
        }
    }
    let table = table.unwrap();
    // Connected: the address itself on its link; ours (10.77.0.0/16) unknown.
    assert_eq!(
        table.resolve("192.0.2.9".parse().unwrap()),
        Some(vec![ResolvedNextHop {
            gateway: "192.0.2.9".parse().unwrap(),
            ifindex: ns.v0
        }])
    );
    assert_eq!(table.resolve("10.77.1.1".parse().unwrap()), None);
    assert_eq!(table.resolve("192.0.2.1".parse().unwrap()), None);
}
