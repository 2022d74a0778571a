// podroute-bgpd announcing exactly its node's IPAM blocks, from a real
// podroute-ipamd (bgpd/tests/labs/ipam.clab.yml): n1's block reaches n2's
// kernel via n1 while n1 blackholes it; an address n2 borrows from n1's
// block is announced by n2 as a /32 and installed on n1 over its blackhole;
// ipamd killed → everything stays announced; ipamd back → the stream
// resumes without a change; all released and the block back in its pool →
// withdrawn everywhere. Timings are printed, never asserted. Needs root and
// podroute-ipamd built (cargo build -p podroute-ipam).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podroute_lab::{Lab, LabOptions};
use podroute_proto::admin_socket::connect_unix;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, AllocatedAddress, ReleaseRequest};

use common::{BGPD, Bgpd, CONVERGE, PeerConf, Speaker, wait_seen};

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/ipam.clab.yml");
/// One block of 64 addresses: n1 claims it, n2 can only borrow from it.
const POOL: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: only-one-block
spec:
  cidr: 10.77.0.0/26
  blockSize: 26
";
const BLOCK: &str = "10.77.0.0/26";
const N1_IP: &str = "10.32.1.1";
const N2_IP: &str = "10.32.1.2";

/// podroute-ipamd in the test's own namespace, on a Unix socket the lab's
/// nodes reach through the shared file system. Killed on drop.
struct Ipamd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Ipamd {
    fn start() -> Ipamd {
        let dir = tempfile::Builder::new()
            .prefix("bgpd-ipam")
            .tempdir()
            .unwrap();
        fs::write(dir.path().join("pools.yaml"), POOL).unwrap();
        let mut ipamd = Ipamd { dir, child: None };
        ipamd.spawn();
        ipamd
    }

    /// (Re)starts the daemon on the same store and waits until it answers.
    fn spawn(&mut self) {
        let binary = Path::new(BGPD).with_file_name("podroute-ipamd");
        assert!(
            binary.exists(),
            "{} not found: cargo build -p podroute-ipam first",
            binary.display()
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ipamd.log"))
            .unwrap();
        let child = Command::new(binary)
            .arg("--admin-socket")
            .arg(self.socket())
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--manifests")
            .arg(self.dir.path().join("pools.yaml"))
            .args(["--release-cooldown", "0", "--empty-block-grace", "1"])
            // The test's namespace is the host's: a free metrics port.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let until = Instant::now() + CONVERGE;
        while rt().block_on(connect_unix(self.socket())).is_err() {
            assert!(Instant::now() < until, "ipamd not up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("ipamd.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("ipamd.log")).unwrap_or_default()
    }

    fn allocate(&self, node: &str, handle: &str) -> AllocatedAddress {
        let request = AllocateRequest {
            node: node.into(),
            handle: handle.into(),
            pod_namespace: "default".into(),
            pod_name: handle.into(),
            ..AllocateRequest::default()
        };
        let response = rt().block_on(async {
            let channel = connect_unix(self.socket()).await.unwrap();
            IpamClient::new(channel).allocate(request).await.unwrap()
        });
        let mut addresses = response.into_inner().addresses;
        assert_eq!(addresses.len(), 1, "{addresses:?}");
        addresses.remove(0)
    }

    fn release(&self, handle: &str) {
        let request = ReleaseRequest {
            handle: handle.into(),
        };
        rt().block_on(async {
            let channel = connect_unix(self.socket()).await.unwrap();
            IpamClient::new(channel).release(request).await.unwrap();
        });
    }
}

impl Drop for Ipamd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- ipamd log ---\n{}", self.log());
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn speaker(asn: u32, router_id: &'static str, peer_ip: &'static str, peer_as: u32) -> Speaker {
    let peer = PeerConf::new("other", peer_ip, peer_as)
        .spec("importPolicy: {defaultAction: accept}")
        .spec("exportPolicy: {defaultAction: accept}");
    Speaker {
        asn,
        router_id,
        originate: Vec::new(),
        peers: vec![peer],
        extra: Vec::new(),
    }
}

/// `node`'s kernel routes of ours, "DST TYPE [GATEWAY]" per route.
fn ours(lab: &Lab, node: &str) -> BTreeSet<String> {
    common::kernel_routes(lab, node, "-4")
        .iter()
        .map(|r| {
            let kind = r["type"].as_str().unwrap_or("unicast");
            let gateway = r["gateway"].as_str().unwrap_or("");
            format!("{} {kind} {gateway}", r["dst"].as_str().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect()
}

fn set(routes: &[String]) -> BTreeSet<String> {
    routes.iter().cloned().collect()
}

/// Waits until `node`'s routes of ours are `expected`; returns how long.
fn wait_kernel(lab: &Lab, node: &str, expected: &BTreeSet<String>) -> Duration {
    let start = Instant::now();
    wait_seen(
        lab,
        CONVERGE,
        &format!("{node}: kernel routes of ours to be {expected:?}"),
        |lab| ours(lab, node),
        |r| r == expected,
    );
    start.elapsed()
}

fn count(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn bgpd_announces_exactly_its_ipam_blocks() {
    let mut ipamd = Ipamd::start();
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("ipo")).unwrap();
    let endpoint = format!("unix://{}", ipamd.socket().display());
    let n1 = Bgpd::start_with_args(
        &lab,
        "n1",
        &speaker(65001, N1_IP, N2_IP, 65002),
        &["--node", "n1", "--ipamd", &endpoint],
    );
    let n2 = Bgpd::start_with_args(
        &lab,
        "n2",
        &speaker(65002, N2_IP, N1_IP, 65001),
        &["--node", "n2", "--ipamd", &endpoint],
    );
    n1.wait_established(&lab, N2_IP);
    n2.wait_established(&lab, N1_IP);

    // n1's first pod claims the pool's only block.
    let start = Instant::now();
    let a1 = ipamd.allocate("n1", "pod-n1");
    assert_eq!((a1.block.as_str(), a1.borrowed), (BLOCK, false));
    let n1_routes = set(&[format!("{BLOCK} blackhole")]);
    let n2_routes = set(&[format!("{BLOCK} unicast {N1_IP}")]);
    wait_kernel(&lab, "n1", &n1_routes);
    wait_kernel(&lab, "n2", &n2_routes);
    println!(
        "n1 allocation -> n1's block in n2's kernel: {:?}",
        start.elapsed()
    );

    // n2 cannot claim a block of its own: it borrows from n1's, announces
    // the /32 (no kernel route of ours on n2: the CNI plugin owns it), and
    // n1 installs it over its blackhole.
    let start = Instant::now();
    let a2 = ipamd.allocate("n2", "pod-n2");
    assert_eq!((a2.block.as_str(), a2.borrowed), (BLOCK, true), "{a2:?}");
    let host = a2.address.clone();
    assert!(host.ends_with("/32"), "{host}");
    let host_dst = host.trim_end_matches("/32").to_string();
    let n1_with_host = set(&[
        format!("{BLOCK} blackhole"),
        format!("{host_dst} unicast {N2_IP}"),
    ]);
    wait_kernel(&lab, "n1", &n1_with_host);
    println!(
        "n2 borrowed {host} -> /32 in n1's kernel: {:?}",
        start.elapsed()
    );
    n1.wait_received(&lab, N2_IP, &host);
    assert_eq!(
        ours(&lab, "n2"),
        n2_routes,
        "n2 installs nothing for its own host"
    );
    let changes = |b: &Bgpd| count(b.log_path(), "IPAM origination changed");
    let before = (changes(&n1), changes(&n2));

    // GetStatus and /metrics say the same: who is followed, that the
    // stream is up, and what each node originates.
    for (b, node, originated, kind) in [(&n1, "n1", BLOCK, "block"), (&n2, "n2", &*host, "host")] {
        let status = b.status().unwrap();
        assert_eq!(status.node, node);
        assert_eq!(status.ipamd, endpoint);
        assert!(status.ipamd_connected, "{status:#?}");
        assert_eq!(status.originated, [originated], "{status:#?}");
        let scrape = b.scrape();
        assert_eq!(scrape.value("podroute_bgp_ipamd_connected", &[]), Some(1.0));
        assert_eq!(
            scrape.value("podroute_bgp_originated_prefixes", &[("kind", kind)]),
            Some(1.0)
        );
    }

    // ipamd gone: everything stays announced.
    ipamd.kill();
    for b in [&n1, &n2] {
        lab.wait_for(CONVERGE, "bgpd to notice ipamd is gone", |_| {
            count(b.log_path(), "ipamd unreachable") >= 1
        })
        .unwrap();
        assert!(!b.status().unwrap().ipamd_connected);
        assert_eq!(
            b.scrape().value("podroute_bgp_ipamd_connected", &[]),
            Some(0.0)
        );
    }
    assert_eq!(
        ours(&lab, "n1"),
        n1_with_host,
        "n1 kept announcing and blackholing"
    );
    assert_eq!(ours(&lab, "n2"), n2_routes, "n2 kept n1's block");
    assert!(n1.received(N2_IP, &host).unwrap().is_some());
    assert!(n2.received(N1_IP, BLOCK).unwrap().is_some());

    // ipamd back: the streams resume and nothing changes.
    let restarted = Instant::now();
    ipamd.spawn();
    for b in [&n1, &n2] {
        lab.wait_for(CONVERGE, "bgpd to follow ipamd again", |_| {
            count(b.log_path(), "following ipamd's blocks") >= 2
        })
        .unwrap();
        assert!(b.status().unwrap().ipamd_connected);
    }
    println!(
        "ipamd restarted -> streams resumed: {:?}",
        restarted.elapsed()
    );
    assert_eq!(
        (changes(&n1), changes(&n2)),
        before,
        "a resumed stream changed the origination"
    );
    assert_eq!(ours(&lab, "n1"), n1_with_host);
    assert_eq!(ours(&lab, "n2"), n2_routes);

    // n2's pod goes: its /32 leaves n1's kernel; the block stays.
    let start = Instant::now();
    ipamd.release("pod-n2");
    wait_kernel(&lab, "n1", &n1_routes);
    println!("n2 release -> /32 gone from n1: {:?}", start.elapsed());

    // n1's pod goes; once the empty block returns to its pool it is
    // withdrawn everywhere.
    let start = Instant::now();
    ipamd.release("pod-n1");
    wait_kernel(&lab, "n1", &BTreeSet::new());
    wait_kernel(&lab, "n2", &BTreeSet::new());
    println!(
        "n1 release -> block withdrawn everywhere (after a 1 s empty-block grace): {:?}",
        start.elapsed()
    );
    assert!(n2.received(N1_IP, BLOCK).unwrap().is_none());
}
