// A cluster across two racks (bgpd/tests/labs/racks.clab.yml): AS per
// rack, every node peering eBGP with both FRR ToRs of its rack (chosen by
// BGPPeer.nodeSelector on the Node's `rack` label, node AS from a label),
// pods made by the real CNI plugin from a real podroute-ipamd, and each
// node's podroute-bgpd announcing exactly its IPAM blocks. Checks sessions,
// the kernel routes on every node (other racks' blocks as ECMP routes over
// both ToRs), pod-to-pod pings within and across racks, and BFD noticing a
// cut node link (the routes through it leave the other nodes' kernels long
// before the 90 s hold timer could fire; the time is printed).
// Needs root, as CI gives.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use common::{BGPD, Bgpd, CONVERGE, Pinger, path_str};
use podroute_lab::pods::{Ipamd, Pod};
use podroute_lab::{Lab, LabOptions, netns};

const TOPOLOGY: &str = "tests/labs/racks.clab.yml";
const CLUSTER: &str = "tests/labs/racks/cluster.yaml";
const NODES: [(&str, &str, &str); 4] = [
    ("a1", "a", "10.1.0.11"),
    ("a2", "a", "10.1.0.12"),
    ("b1", "b", "10.2.0.11"),
    ("b2", "b", "10.2.0.12"),
];
/// Each rack's ToR addresses on its LAN.
const TORS: [(&str, [&str; 2]); 2] = [
    ("a", ["10.1.0.1", "10.1.0.2"]),
    ("b", ["10.2.0.1", "10.2.0.2"]),
];
/// The ToRs' BFD detection time with a1 (cluster.yaml: 300 ms x 3).
const BFD_DETECTION: std::time::Duration = std::time::Duration::from_millis(900);
const POOLS: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata: {name: pods}
spec: {cidr: 10.244.0.0/16, blockSize: 26}
";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The block (a /26 of the pool) that holds `ip`.
fn block_of(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}/26", o[0], o[1], o[2], o[3] & 0xC0)
}

/// podroute-bgpd on `node` with the shared cluster configuration, its BFD
/// state kept in `dir` across restarts.
fn start_bgpd(lab: &Lab, ipamd: &Ipamd, dir: &Path, node: &str) -> Bgpd {
    let config = manifest_dir().join(CLUSTER);
    let endpoint = ipamd.endpoint();
    let state = dir.join(format!("{node}.bfd"));
    let args = [
        "--node",
        node,
        "--ipamd",
        endpoint.as_str(),
        "--bfd-state",
        path_str(&state),
    ];
    Bgpd::start_file(lab, node, path_str(&config), &args)
}

struct Cluster {
    lab: Lab,
    // Field order is drop order: daemons before ipamd before the lab.
    bgpds: BTreeMap<&'static str, Bgpd>,
    ipamd: Ipamd,
    pods: BTreeMap<&'static str, Pod>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn up() -> Cluster {
        let lab = Lab::up_with(manifest_dir().join(TOPOLOGY), LabOptions::unique("rk")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bin_dir = Path::new(BGPD).parent().unwrap();
        let ipamd = Ipamd::start(bin_dir, &dir.path().join("ipamd"), POOLS).unwrap();
        let mut bgpds = BTreeMap::new();
        for (node, _, _) in NODES {
            bgpds.insert(node, start_bgpd(&lab, &ipamd, dir.path(), node));
        }
        let mut pods = BTreeMap::new();
        for (node, _, _) in NODES {
            let pod = ipamd
                .add_pod(&lab, node, "default", &format!("p-{node}"))
                .unwrap();
            pods.insert(node, pod);
        }
        Cluster {
            lab,
            bgpds,
            ipamd,
            pods,
            _dir: dir,
        }
    }

    fn start_bgpd(&self, node: &str) -> Bgpd {
        start_bgpd(&self.lab, &self.ipamd, self._dir.path(), node)
    }

    fn pod_v4(&self, node: &str) -> std::net::Ipv4Addr {
        self.pods[node].v4.unwrap()
    }

    /// `ip route show PREFIX proto podroute` on `node`.
    fn kernel_route(&self, node: &str, prefix: &str) -> String {
        self.lab
            .exec(node, &["ip", "route", "show", prefix, "proto", "podroute"])
            .unwrap_or_default()
    }
}

/// BFD Up on both sides of a1's sessions with its ToRs.
fn wait_bfd_up(cluster: &Cluster) {
    for (tor, tor_ip) in [("tora1", "10.1.0.1"), ("tora2", "10.1.0.2")] {
        common::wait_seen(
            &cluster.lab,
            CONVERGE,
            &format!("BFD Up between a1 and {tor}"),
            |l| {
                let ours = cluster.bgpds["a1"]
                    .peer(tor_ip)
                    .ok()
                    .and_then(|p| p.bfd)
                    .map(|b| b.state);
                let theirs = l
                    .exec(tor, &["vtysh", "-c", "show bfd peer 10.1.0.11 json"])
                    .unwrap_or_default();
                (ours, theirs)
            },
            |(ours, theirs)| ours.as_deref() == Some("up") && theirs.contains("\"status\":\"up\""),
        );
    }
}

fn ping(pod: &Pod, target: std::net::Ipv4Addr) -> bool {
    netns::command_in(
        &pod.netns,
        &["ping", "-c", "1", "-W", "1", &target.to_string()],
    )
    .output()
    .is_ok_and(|o| o.status.success())
}

#[test]
fn two_racks_with_tor_peering_route_pods_over_ecmp_and_bfd_cuts_fast() {
    let mut cluster = Cluster::up();
    let lab = &cluster.lab;

    // Sessions: every node with both ToRs of its rack, nothing else.
    for (node, rack, _) in NODES {
        let tors = TORS.iter().find(|(r, _)| *r == rack).unwrap().1;
        let bgpd = &cluster.bgpds[node];
        for tor in tors {
            bgpd.wait_established(lab, tor);
        }
        let peers = bgpd.peers().unwrap();
        assert_eq!(peers.len(), 2, "{node}: {peers:#?}");
    }

    // Kernel routes: every node has every other node's block; across racks
    // through both ToRs of its own rack.
    for (node, rack, _) in NODES {
        let tors = TORS.iter().find(|(r, _)| *r == rack).unwrap().1;
        for (other, other_rack, _) in NODES {
            if other == node {
                continue;
            }
            let block = block_of(cluster.pod_v4(other));
            let what = format!("{node}: kernel route to {other}'s block {block}");
            let route = common::wait_seen(
                lab,
                CONVERGE,
                &what,
                |c| {
                    c.exec(node, &["ip", "route", "show", &block, "proto", "podroute"])
                        .unwrap_or_default()
                },
                |r: &String| {
                    if other_rack == rack {
                        !r.trim().is_empty()
                    } else {
                        tors.iter().all(|t| r.contains(&format!("via {t}")))
                    }
                },
            );
            println!("{node}: {block}: {}", route.trim().replace('\n', " | "));
        }
        // Its own block: the blackhole, and no route of ours for the pod.
        let own = block_of(cluster.pod_v4(node));
        let blackhole = cluster.kernel_route(node, &own);
        assert!(blackhole.contains("blackhole"), "{node}: {blackhole}");
    }

    // Pods reach each other, within and across racks.
    for (from, _, _) in NODES {
        for (to, _, _) in NODES {
            if from == to {
                continue;
            }
            let pod = &cluster.pods[from];
            let target = cluster.pod_v4(to);
            lab.wait_for(
                CONVERGE,
                &format!("{from}'s pod pings {to}'s pod {target}"),
                |_| ping(pod, target),
            )
            .unwrap();
        }
    }

    wait_bfd_up(&cluster);

    // Graceful restart with BFD toward FRR: a1's bgpd is SIGKILLed and
    // started again while a1's pod and b1's pod ping each other every
    // 10 ms. The restarted daemon resumes its BFD sessions in Up before the
    // ToRs' detection time runs out (bgpd/src/bfd/resume.rs), so their BFD
    // never fails and they keep a1's block (stale) through the restart: no
    // packet is lost, and their sessions with a1 came up only twice.
    let a1_block = block_of(cluster.pod_v4("a1"));
    let (a1_pod, b1_pod) = (cluster.pods["a1"].clone(), cluster.pods["b1"].clone());
    let there = Pinger::start_in(&a1_pod.netns, &cluster.pod_v4("b1").to_string());
    let back = Pinger::start_in(&b1_pod.netns, &cluster.pod_v4("a1").to_string());
    lab.wait_for(CONVERGE, "pod traffic before the kill", |_| {
        ping(&b1_pod, cluster.pod_v4("a1"))
    })
    .unwrap();
    let t0 = Instant::now();
    if let Some(old) = cluster.bgpds.remove("a1") {
        old.kill();
    }
    let restarted = cluster.start_bgpd("a1");
    cluster.bgpds.insert("a1", restarted);
    for tor in TORS[0].1 {
        cluster.bgpds["a1"].wait_established(lab, tor);
    }
    let up = t0.elapsed();
    common::wait_seen(
        lab,
        CONVERGE,
        &format!("tora1 to hold a fresh {a1_block} again"),
        |l| {
            l.exec(
                "tora1",
                &[
                    "vtysh",
                    "-c",
                    &format!("show bgp ipv4 unicast {a1_block} json"),
                ],
            )
            .unwrap_or_default()
        },
        |out: &String| out.contains("\"valid\":true") && !out.contains("\"stale\":true"),
    );
    lab.wait_for(CONVERGE, "pod traffic after the restart", |_| {
        ping(&a1_pod, cluster.pod_v4("b1"))
    })
    .unwrap();
    wait_bfd_up(&cluster);
    // The count must cover the ToRs' BFD detection time (3 x 300 ms) after
    // the kill, when a BFD failure would have struck: this is the length
    // of the measurement, not a wait for something to happen.
    if let Some(rest) = (t0 + 2 * BFD_DETECTION).checked_duration_since(Instant::now()) {
        std::thread::sleep(rest);
    }
    let window = t0.elapsed();
    let (lost, sent) = there.finish();
    let (lost_back, sent_back) = back.finish();
    println!(
        "GR with BFD toward FRR ToRs: a1's bgpd back after {up:?}, counted for {window:?}; \
         a1->b1 lost {lost} of {}, b1->a1 lost {lost_back} of {}",
        lost + sent,
        lost_back + sent_back
    );
    assert_eq!(
        (lost, lost_back),
        (0, 0),
        "pod packets lost across a1's bgpd restart"
    );
    // BFD never failed: each ToR's session with a1 was lost once (the
    // kill) and came back once.
    for tor in ["tora1", "tora2"] {
        let out = lab
            .exec(tor, &["vtysh", "-c", "show bgp neighbors 10.1.0.11 json"])
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let v = &v["10.1.0.11"];
        assert_eq!(
            (&v["connectionsEstablished"], &v["connectionsDropped"]),
            (&serde_json::json!(2), &serde_json::json!(1)),
            "{tor}'s session with a1 flapped: {v}"
        );
    }

    // BFD: cut a1's link to its rack. Both ToRs notice within BFD's
    // detection time and withdraw a1's block, and it leaves b1's kernel.
    wait_bfd_up(&cluster);
    let cut = Instant::now();
    lab.exec("a1", &["ip", "link", "set", "eth1", "down"])
        .unwrap();
    let dropped = lab.wait_for(CONVERGE, &format!("b1 to drop {a1_block}"), |_| {
        cluster.kernel_route("b1", &a1_block).trim().is_empty()
    });
    if let Err(e) = dropped {
        let show = |node: &str, cmd: &str| {
            lab.exec(node, &["vtysh", "-c", cmd])
                .unwrap_or_else(|e| e.to_string())
        };
        panic!(
            "{e}\ntora1 BFD:\n{}\ntora1 neighbor:\n{}\nspine route:\n{}",
            show("tora1", "show bfd peers brief"),
            show("tora1", "show bgp neighbors 10.1.0.11"),
            show("spine", &format!("show bgp ipv4 unicast {a1_block}")),
        );
    }
    let detected = cut.elapsed();
    println!("BFD: a1's link cut; its block left b1's kernel after {detected:?} (hold time 90 s)");
    // It was BFD: tora1's BFD session with a1 is down and so is its BGP
    // session, long before the 90 s hold time (the ToR's own link stays up:
    // the cut is on a1's side of the bridge).
    let show = |cmd: &str| {
        let out = lab.exec("tora1", &["vtysh", "-c", cmd]).unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let bfd = show("show bfd peer 10.1.0.11 json");
    assert_eq!(bfd["status"], "down", "{bfd}");
    let neighbor = show("show bgp neighbors 10.1.0.11 json");
    let state = &neighbor["10.1.0.11"]["bgpState"];
    assert_ne!(state, "Established", "{neighbor}");
    let _ = &cluster.ipamd;
}
