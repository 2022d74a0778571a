// The RIB and FIB end to end: podroute-bgpd speakers in network namespaces
// (bgpd/tests/labs/routing.clab.yml) learn each other's prefixes and the
// kernels hold them with the right next hops; two equal paths make one
// multipath route; a dead peer's routes leave the kernel; routes of other
// protocols survive our reconcile while stale ones of ours go; a peer over
// its prefix limit is torn down; a peer cannot hijack our own block.
// Needs root.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fmt;

use podroute_lab::{Lab, LabOptions};

use common::{Bgpd, CONVERGE, PeerConf, Speaker, wait_seen};

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/routing.clab.yml");

/// eBGP is deny-all by default (RFC 8212); these labs pass everything.
const ACCEPT_ALL: [&str; 2] = [
    "importPolicy: {defaultAction: accept}",
    "exportPolicy: {defaultAction: accept}",
];

fn peer(name: &'static str, ip: &'static str, asn: u32) -> PeerConf {
    ACCEPT_ALL
        .iter()
        .fold(PeerConf::new(name, ip, asn), |p, line| p.spec(line))
        // A killed speaker is a dead peer here, not one restarting
        // (graceful restart: tests/graceful_restart.rs).
        .spec("gracefulRestart: {enabled: false}")
}

fn speaker(
    asn: u32,
    router_id: &'static str,
    originate: &[&'static str],
    peers: Vec<PeerConf>,
) -> Speaker {
    Speaker {
        asn,
        router_id,
        originate: originate.to_vec(),
        peers,
        extra: Vec::new(),
    }
}

/// One kernel route of ours, as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KernelRoute {
    dst: String,
    /// "blackhole" or "unicast".
    kind: String,
    gateways: BTreeSet<String>,
}

impl fmt::Display for KernelRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?}", self.kind, self.dst, self.gateways)
    }
}

/// The routes `protocol` holds in `node`'s main table.
fn kernel_routes(lab: &Lab, node: &str, protocol: &str) -> Vec<KernelRoute> {
    let out = lab
        .exec(
            node,
            &[
                "ip", "-j", "route", "show", "table", "main", "proto", protocol,
            ],
        )
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
    let mut routes: Vec<KernelRoute> = json
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut gateways = BTreeSet::new();
            if let Some(g) = r["gateway"].as_str() {
                gateways.insert(g.to_string());
            }
            for hop in r["nexthops"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if let Some(g) = hop["gateway"].as_str() {
                    gateways.insert(g.to_string());
                }
            }
            KernelRoute {
                dst: r["dst"].as_str().unwrap_or_default().to_string(),
                kind: r["type"].as_str().unwrap_or("unicast").to_string(),
                gateways,
            }
        })
        .collect();
    routes.sort();
    routes
}

fn ours(lab: &Lab, node: &str) -> Vec<KernelRoute> {
    kernel_routes(lab, node, "podroute")
}

fn via(dst: &str, gateways: &[&str]) -> KernelRoute {
    KernelRoute {
        dst: dst.to_string(),
        kind: "unicast".to_string(),
        gateways: gateways.iter().map(|g| g.to_string()).collect(),
    }
}

fn blackhole(dst: &str) -> KernelRoute {
    KernelRoute {
        dst: dst.to_string(),
        kind: "blackhole".to_string(),
        gateways: BTreeSet::new(),
    }
}

/// Polls until `node`'s routes of ours are exactly `expected`.
fn wait_kernel(lab: &Lab, node: &str, expected: &[KernelRoute]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let what = format!("{node}: kernel routes of ours to be {expected:#?}");
    wait_seen(
        lab,
        CONVERGE,
        &what,
        |lab| ours(lab, node),
        |r| *r == expected,
    );
}

/// b's routes when a is its only live peer: its own block, and a's two.
fn b_with_only_a() -> [KernelRoute; 3] {
    [
        blackhole("10.202.0.0/24"),
        via("10.201.0.0/24", &["10.31.1.1"]),
        via("10.250.0.0/24", &["10.31.1.1"]),
    ]
}

fn a_speaker() -> Speaker {
    speaker(
        65001,
        "10.31.0.1",
        &["10.201.0.0/24", "10.250.0.0/24"],
        vec![peer("b", "10.31.1.2", 65002)],
    )
}

fn b_speaker(extra_peers: Vec<PeerConf>) -> Speaker {
    let mut peers = vec![peer("a", "10.31.1.1", 65001), peer("c", "10.31.2.3", 65003)];
    peers.extend(extra_peers);
    speaker(65002, "10.31.0.2", &["10.202.0.0/24"], peers)
}

fn c_speaker() -> Speaker {
    speaker(
        65003,
        "10.31.0.3",
        &["10.203.0.0/24", "10.250.0.0/24"],
        vec![peer("b", "10.31.2.2", 65002)],
    )
}

#[test]
fn three_speakers_in_a_line_install_each_others_prefixes_with_ecmp_and_lose_a_dead_peers() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("rline")).unwrap();
    let a = Bgpd::start(&lab, "a", &a_speaker());
    let b = Bgpd::start(&lab, "b", &b_speaker(Vec::new()));
    let c = Bgpd::start(&lab, "c", &c_speaker());

    // Every speaker holds a blackhole for each of its own blocks, and the
    // others' blocks through the neighbour on the path.
    wait_kernel(
        &lab,
        "a",
        &[
            blackhole("10.201.0.0/24"),
            blackhole("10.250.0.0/24"),
            via("10.202.0.0/24", &["10.31.1.2"]),
            via("10.203.0.0/24", &["10.31.1.2"]),
        ],
    );
    wait_kernel(
        &lab,
        "c",
        &[
            blackhole("10.203.0.0/24"),
            blackhole("10.250.0.0/24"),
            via("10.201.0.0/24", &["10.31.2.2"]),
            via("10.202.0.0/24", &["10.31.2.2"]),
        ],
    );
    // b learns 10.250.0.0/24 from a and from c with equal paths: one route
    // with both next hops.
    wait_kernel(
        &lab,
        "b",
        &[
            blackhole("10.202.0.0/24"),
            via("10.201.0.0/24", &["10.31.1.1"]),
            via("10.203.0.0/24", &["10.31.2.3"]),
            via("10.250.0.0/24", &["10.31.1.1", "10.31.2.3"]),
        ],
    );
    // Traffic follows: a reaches c's block through b.
    lab.exec("c", &["ip", "addr", "add", "10.203.0.1/32", "dev", "lo"])
        .unwrap();
    lab.exec("a", &["ip", "addr", "add", "10.201.0.1/32", "dev", "lo"])
        .unwrap();
    lab.exec("b", &["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    lab.exec(
        "a",
        &[
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            "-I",
            "10.201.0.1",
            "10.203.0.1",
        ],
    )
    .unwrap();

    // c dies: its routes leave b's and a's kernels, the ECMP route shrinks.
    drop(c);
    wait_kernel(&lab, "b", &b_with_only_a());
    wait_kernel(
        &lab,
        "a",
        &[
            blackhole("10.201.0.0/24"),
            blackhole("10.250.0.0/24"),
            via("10.202.0.0/24", &["10.31.1.2"]),
        ],
    );
    // A clean stop takes our routes out of the kernel, as BIRD does.
    assert!(b.terminate().success());
    wait_kernel(&lab, "b", &[]);
    drop((a, b));
}

#[test]
fn reconcile_keeps_other_protocols_routes_and_removes_stale_ones_of_ours() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("rrec")).unwrap();
    // Before bgpd starts: an admin's static route, and one of ours that no
    // peer will announce (left by an earlier run).
    lab.exec(
        "b",
        &[
            "ip",
            "route",
            "add",
            "10.99.0.0/24",
            "via",
            "10.31.1.1",
            "proto",
            "static",
        ],
    )
    .unwrap();
    lab.exec(
        "b",
        &[
            "ip",
            "route",
            "add",
            "10.98.0.0/24",
            "via",
            "10.31.1.1",
            "proto",
            "podroute",
        ],
    )
    .unwrap();
    let a = Bgpd::start(&lab, "a", &a_speaker());
    let b = Bgpd::start(&lab, "b", &b_speaker(Vec::new()));
    wait_kernel(&lab, "b", &b_with_only_a());
    let statics = kernel_routes(&lab, "b", "static");
    assert_eq!(statics, vec![via("10.99.0.0/24", &["10.31.1.1"])]);

    // A restart reconciles again: ours come back, the admin's stays.
    drop(b);
    lab.exec("b", &["ip", "route", "del", "10.201.0.0/24"])
        .unwrap();
    let b = Bgpd::start(&lab, "b", &b_speaker(Vec::new()));
    wait_kernel(&lab, "b", &b_with_only_a());
    assert_eq!(kernel_routes(&lab, "b", "static"), statics);
    drop((a, b));
}

#[test]
fn a_peer_over_its_prefix_limit_is_torn_down() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("rmax")).unwrap();
    let d = Bgpd::start(
        &lab,
        "d",
        &speaker(
            65004,
            "10.31.0.4",
            &["10.204.0.0/24", "10.204.1.0/24", "10.204.2.0/24"],
            vec![peer("b", "10.31.3.2", 65002)],
        ),
    );
    let limited = peer("d", "10.31.3.4", 65004)
        .spec("maxPrefix: {limit: 2, action: teardown, restartAfter: 3600}");
    let b = Bgpd::start(&lab, "b", &b_speaker(vec![limited]));
    let what = "b: session with d torn down over the prefix limit";
    let seen = wait_seen(
        &lab,
        CONVERGE,
        what,
        |_| b.peer("10.31.3.4"),
        |p| {
            p.as_ref()
                .is_ok_and(|p| p.last_error.contains("Maximum Number of Prefixes Reached"))
        },
    )
    .unwrap();
    assert!(seen.established_transitions >= 1, "{seen:#?}");
    // d heard why.
    let d_view = d.peer("10.31.3.2").unwrap();
    assert!(
        d_view
            .last_error
            .contains("Maximum Number of Prefixes Reached"),
        "{d_view:#?}"
    );
    // And none of d's routes stay in b's kernel.
    wait_kernel(&lab, "b", &[blackhole("10.202.0.0/24")]);
    // Held down for an hour, but a new limit brings the session back at
    // once, without touching the others.
    let raised = peer("d", "10.31.3.4", 65004).spec("maxPrefix: {limit: 10, action: teardown}");
    b.reload(&b_speaker(vec![raised]));
    wait_kernel(
        &lab,
        "b",
        &[
            blackhole("10.202.0.0/24"),
            via("10.204.0.0/24", &["10.31.3.4"]),
            via("10.204.1.0/24", &["10.31.3.4"]),
            via("10.204.2.0/24", &["10.31.3.4"]),
        ],
    );
    drop((b, d));
}

#[test]
fn a_peer_cannot_hijack_our_own_block() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("rhij")).unwrap();
    // d announces a more specific of b's block, the block itself, and one
    // prefix of its own.
    let d = Bgpd::start(
        &lab,
        "d",
        &speaker(
            65004,
            "10.31.0.4",
            &["10.202.0.128/25", "10.202.0.0/24", "10.204.0.0/24"],
            vec![peer("b", "10.31.3.2", 65002)],
        ),
    );
    let b = Bgpd::start(&lab, "b", &b_speaker(vec![peer("d", "10.31.3.4", 65004)]));
    wait_kernel(
        &lab,
        "b",
        &[
            blackhole("10.202.0.0/24"),
            via("10.204.0.0/24", &["10.31.3.4"]),
        ],
    );
    // Both hijacking paths were received and held, not accepted.
    let hijack = b.wait_received(&lab, "10.31.3.4", "10.202.0.128/25");
    assert!(!hijack.accepted, "{hijack:#?}");
    let counts = b.peer("10.31.3.4").unwrap();
    assert_eq!(
        (counts.prefixes_received, counts.prefixes_accepted),
        (3, 1),
        "{counts:#?}"
    );
    drop((b, d));
}

#[test]
fn routes_come_back_after_a_link_flap() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("rflap")).unwrap();
    let a = Bgpd::start(&lab, "a", &a_speaker());
    let b = Bgpd::start(&lab, "b", &b_speaker(Vec::new()));
    let through_a = b_with_only_a();
    wait_kernel(&lab, "b", &through_a);
    // The link to a goes down: the kernel flushes the routes over it (and
    // the nexthop object they share) and the next hop no longer resolves.
    lab.exec("b", &["ip", "link", "set", "eth1", "down"])
        .unwrap();
    wait_kernel(&lab, "b", &[blackhole("10.202.0.0/24")]);
    // Back up before the session's hold time runs out: the same routes
    // return, through a new nexthop object.
    lab.exec("b", &["ip", "link", "set", "eth1", "up"]).unwrap();
    wait_kernel(&lab, "b", &through_a);
    assert!(b.is_established("10.31.1.1"));
    drop((a, b));
}
