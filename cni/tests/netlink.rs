// The rtnetlink client against the real kernel (needs root): every test
// makes its own network namespaces, named pcnl-<pid>-<n>, and acts only
// inside them through Netlink::in_netns; a guard deletes them even when the
// test panics. The test process's own namespace is only ever read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use podroute_cni::netlink::{
    IpFamily, Link, Mac, Neighbour, Netlink, NetlinkError, Netns, RTPROT_PODROUTE_CNI, Route,
    RouteScope, VethSpec, read_sysctl, write_sysctl,
};

const HOST_MAC: Mac = [0xee; 6];
const GATEWAY_V4: &str = "169.254.1.1";
const GATEWAY_V6: &str = "fe80::ecee:eeff:feee:eeee";

/// Namespaces made for one test, deleted when dropped.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn new(count: usize) -> Namespaces {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut namespaces = Namespaces { names: Vec::new() };
        for _ in 0..count {
            let name = format!(
                "pcnl-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            ip(&["netns", "add", &name]);
            namespaces.names.push(name);
        }
        namespaces
    }

    fn path(&self, i: usize) -> PathBuf {
        Path::new("/run/netns").join(&self.names[i])
    }

    fn open(&self, i: usize) -> Netns {
        Netns::open(&self.path(i)).unwrap()
    }

    /// A route socket inside namespace `i`.
    fn netlink(&self, i: usize) -> Netlink {
        Netlink::in_netns(&self.open(i)).unwrap()
    }

    /// `ip -n NAME args...`'s output, to check what our API cannot show.
    fn ip(&self, i: usize, args: &[&str]) -> String {
        let mut all = vec!["-n", self.names[i].as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            // Best effort, also while unwinding from a failed assertion.
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Calls `f` until it returns Some, for at most five seconds.
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The inode of this thread's network namespace, to check it never moves.
fn own_netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

/// Namespace 0 plays the node, 1 the pod: a veth "podrtest0" in the node
/// (MAC ee:ee:ee:ee:ee:ee, MTU 1400, alias) with peer "eth0" in the pod.
fn pod_veth(ns: &Namespaces) -> (Netlink, Netlink, Link, Link) {
    let mut node = ns.netlink(0);
    let pod_ns = ns.open(1);
    node.create_veth(&VethSpec {
        name: "podrtest0",
        mac: Some(HOST_MAC),
        mtu: 1400,
        alias: Some("podroute:net:c1:eth0:ns/pod"),
        peer_name: "eth0",
        peer_netns: &pod_ns,
    })
    .unwrap();
    let mut pod = ns.netlink(1);
    let host = node.link_by_name("podrtest0").unwrap().unwrap();
    let peer = pod.link_by_name("eth0").unwrap().unwrap();
    (node, pod, host, peer)
}

/// Brings both ends up and waits until the kernel reports them running.
fn up(node: &mut Netlink, pod: &mut Netlink, host: &Link, peer: &Link) {
    node.set_link_up(host.index).unwrap();
    pod.set_link_up(peer.index).unwrap();
    for (nl, index) in [(node, host.index), (pod, peer.index)] {
        poll("link up", || {
            nl.link_by_index(index).unwrap().filter(|l| l.up)
        });
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn veth_across_namespaces() {
    let before = own_netns();
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);

    assert_eq!(host.name, "podrtest0");
    assert_eq!(host.mac, Some(HOST_MAC));
    assert_eq!(host.mtu, 1400);
    assert_eq!(host.alias.as_deref(), Some("podroute:net:c1:eth0:ns/pod"));
    assert_eq!(host.kind.as_deref(), Some("veth"));
    assert!(!host.up && !host.loopback);

    assert_eq!(peer.name, "eth0");
    assert_eq!(peer.mtu, 1400);
    assert_eq!(peer.kind.as_deref(), Some("veth"));
    assert!(peer.mac.is_some_and(|mac| mac != HOST_MAC));
    assert_eq!(peer.alias, None);
    assert!(!peer.up);

    // Each end lives only in its own namespace.
    assert_eq!(node.link_by_name("eth0").unwrap(), None);
    assert_eq!(pod.link_by_name("podrtest0").unwrap(), None);
    assert_eq!(
        node.link_by_index(host.index).unwrap().as_ref(),
        Some(&host)
    );
    assert_eq!(pod.link_by_index(9999).unwrap(), None);

    // (A new namespace may also hold fallback tunnel devices such as sit0
    // when their modules are loaded.)
    let pod_links = pod.links().unwrap();
    assert!(pod_links.iter().any(|l| l.name == "lo" && l.loopback));
    assert!(pod_links.contains(&peer), "{pod_links:?}");
    assert!(!pod_links.iter().any(|l| l.name == "podrtest0"));

    up(&mut node, &mut pod, &host, &peer);
    assert_eq!(own_netns(), before);
}

#[test]
fn create_veth_twice_is_exists() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, _, _) = pod_veth(&ns);
    let pod_ns = ns.open(1);
    let again = VethSpec {
        name: "podrtest0",
        mac: None,
        mtu: 1500,
        alias: None,
        peer_name: "eth1",
        peer_netns: &pod_ns,
    };
    let err = node.create_veth(&again).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("create veth podrtest0 (peer eth1)"),
        "{err}"
    );

    // The peer's name taken in the pod: refused, and nothing left behind.
    let clash = VethSpec {
        name: "podrtest1",
        peer_name: "eth0",
        ..again
    };
    let err = node.create_veth(&clash).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert_eq!(node.link_by_name("podrtest1").unwrap(), None);
    assert_eq!(pod.link_by_name("eth1").unwrap(), None);
}

/// An alias the kernel refuses (longer than IFALIASZ): the pair it would
/// have marked is removed, so no unmarked veth is left behind.
#[test]
fn refused_alias_leaves_nothing() {
    let ns = Namespaces::new(2);
    let mut node = ns.netlink(0);
    let pod_ns = ns.open(1);
    let alias = "x".repeat(300);
    let err = node
        .create_veth(&VethSpec {
            name: "podrtest0",
            mac: None,
            mtu: 1500,
            alias: Some(&alias),
            peer_name: "eth0",
            peer_netns: &pod_ns,
        })
        .unwrap_err();
    assert!(matches!(err, NetlinkError::Kernel { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("set alias of podrtest0"),
        "{err}"
    );
    assert_eq!(node.link_by_name("podrtest0").unwrap(), None);
    let mut pod = ns.netlink(1);
    poll("the peer to go", || {
        pod.link_by_name("eth0").unwrap().is_none().then_some(())
    });
}

#[test]
fn delete_link_then_again() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    assert!(node.delete_link(host.index).unwrap());
    assert!(!node.delete_link(host.index).unwrap());
    assert_eq!(node.link_by_name("podrtest0").unwrap(), None);
    // The pod's end goes with it.
    poll("the peer to go", || {
        pod.link_by_index(peer.index)
            .unwrap()
            .is_none()
            .then_some(())
    });
}

#[test]
fn addresses_v4_and_v6_nodad() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    node.disable_ipv6_addr_gen(host.index).unwrap();
    pod.add_address(peer.index, net("10.0.0.5/32"), false)
        .unwrap();
    pod.add_address(peer.index, net("fd00::5/128"), true)
        .unwrap();
    node.add_address(host.index, net(&format!("{GATEWAY_V6}/64")), true)
        .unwrap();
    // Already there: fine.
    pod.add_address(peer.index, net("10.0.0.5/32"), false)
        .unwrap();
    pod.add_address(peer.index, net("fd00::5/128"), true)
        .unwrap();

    let mut found = pod.addresses(peer.index).unwrap();
    found.sort();
    assert_eq!(found, vec![net("10.0.0.5/32"), net("fd00::5/128")]);
    assert_eq!(
        node.addresses(host.index).unwrap(),
        vec![net(&format!("{GATEWAY_V6}/64"))]
    );
    // A link that does not exist has none.
    assert_eq!(pod.addresses(9999).unwrap(), vec![]);
    assert_eq!(pod.neighbours(9999).unwrap(), vec![]);

    up(&mut node, &mut pod, &host, &peer);
    let shown = ns.ip(1, &["-6", "addr", "show", "dev", "eth0"]);
    let line = shown
        .lines()
        .find(|l| l.contains("fd00::5/128"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{line}"
    );
}

#[test]
fn no_link_local_address_without_addr_gen() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    node.disable_ipv6_addr_gen(host.index).unwrap();
    up(&mut node, &mut pod, &host, &peer);
    // The pod's end still generates one: once it has, the host's end would
    // have too.
    poll("the pod's fe80 address", || {
        pod.addresses(peer.index)
            .unwrap()
            .into_iter()
            .find(|a| a.ip().to_string().starts_with("fe80:"))
    });
    assert_eq!(node.addresses(host.index).unwrap(), vec![]);
    let shown = ns.ip(0, &["-d", "link", "show", "podrtest0"]);
    assert!(shown.contains("addrgenmode none"), "{shown}");
}

#[test]
fn routes_v4() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    up(&mut node, &mut pod, &host, &peer);
    pod.add_address(peer.index, net("10.0.0.5/32"), false)
        .unwrap();

    // The pod: the gateway on the link, the default route through it.
    let on_link = Route {
        dst: net(&format!("{GATEWAY_V4}/32")),
        gateway: None,
        oif: Some(peer.index),
        scope: RouteScope::Link,
        protocol: RTPROT_PODROUTE_CNI,
    };
    let default = Route {
        dst: net("0.0.0.0/0"),
        gateway: Some(addr(GATEWAY_V4)),
        oif: Some(peer.index),
        scope: RouteScope::Universe,
        protocol: RTPROT_PODROUTE_CNI,
    };
    assert_eq!(pod.route_get(addr("192.0.2.1")).unwrap(), None);
    pod.replace_route(&on_link).unwrap();
    pod.replace_route(&default).unwrap();
    pod.replace_route(&default).unwrap();
    let routes = pod.routes(IpFamily::V4).unwrap();
    assert!(routes.contains(&on_link), "{routes:?}");
    assert!(routes.contains(&default), "{routes:?}");
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(pod.route_get(addr("192.0.2.1")).unwrap(), Some(peer.index));

    // The node: the pod's address through the veth, with our protocol.
    let to_pod = Route {
        dst: net("10.0.0.5/32"),
        gateway: None,
        oif: Some(host.index),
        scope: RouteScope::Link,
        protocol: RTPROT_PODROUTE_CNI,
    };
    assert_eq!(node.route_get(addr("10.0.0.5")).unwrap(), None);
    node.replace_route(&to_pod).unwrap();
    assert_eq!(node.routes(IpFamily::V4).unwrap(), vec![to_pod.clone()]);
    assert_eq!(node.route_get(addr("10.0.0.5")).unwrap(), Some(host.index));
    let shown = ns.ip(0, &["route", "show", "10.0.0.5/32"]);
    assert!(
        shown.contains("proto 211") || shown.contains("proto podroute-cni"),
        "{shown}"
    );

    // A route of another protocol is not ours to delete.
    let other = Route {
        protocol: 210,
        ..to_pod.clone()
    };
    assert!(!node.delete_route(&other).unwrap());
    assert!(node.delete_route(&to_pod).unwrap());
    assert!(!node.delete_route(&to_pod).unwrap());
    assert_eq!(node.routes(IpFamily::V4).unwrap(), vec![]);
    assert_eq!(node.route_get(addr("10.0.0.5")).unwrap(), None);

    // A gateway the kernel cannot reach: its refusal, with the route named.
    let unreachable = Route {
        dst: net("198.51.100.0/24"),
        gateway: Some(addr("203.0.113.1")),
        oif: Some(host.index),
        scope: RouteScope::Universe,
        protocol: RTPROT_PODROUTE_CNI,
    };
    let err = node.replace_route(&unreachable).unwrap_err();
    assert!(matches!(err, NetlinkError::Kernel { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("replace route 198.51.100.0/24 via 203.0.113.1"),
        "{err}"
    );
}

#[test]
fn routes_v6() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    node.disable_ipv6_addr_gen(host.index).unwrap();
    node.add_address(host.index, net(&format!("{GATEWAY_V6}/64")), true)
        .unwrap();
    up(&mut node, &mut pod, &host, &peer);
    pod.add_address(peer.index, net("fd00::5/128"), true)
        .unwrap();

    let default = Route {
        dst: net("::/0"),
        gateway: Some(addr(GATEWAY_V6)),
        oif: Some(peer.index),
        scope: RouteScope::Universe,
        protocol: RTPROT_PODROUTE_CNI,
    };
    pod.replace_route(&default).unwrap();
    pod.replace_route(&default).unwrap();
    let routes = pod.routes(IpFamily::V6).unwrap();
    assert_eq!(
        routes
            .iter()
            .filter(|r| r.dst.prefix() == 0)
            .collect::<Vec<_>>(),
        vec![&default],
        "{routes:?}"
    );
    assert_eq!(
        pod.route_get(addr("2001:db8::1")).unwrap(),
        Some(peer.index)
    );

    // IPv6 has no route scopes: a link route reads back as universe.
    let to_pod = Route {
        dst: net("fd00::5/128"),
        gateway: None,
        oif: Some(host.index),
        scope: RouteScope::Link,
        protocol: RTPROT_PODROUTE_CNI,
    };
    assert_eq!(node.route_get(addr("fd00::5")).unwrap(), None);
    node.replace_route(&to_pod).unwrap();
    let routes = node.routes(IpFamily::V6).unwrap();
    let found = routes
        .iter()
        .find(|r| r.dst == to_pod.dst)
        .unwrap_or_else(|| panic!("{routes:?}"));
    assert_eq!(
        found,
        &Route {
            scope: RouteScope::Universe,
            ..to_pod.clone()
        }
    );
    assert_eq!(node.route_get(addr("fd00::5")).unwrap(), Some(host.index));
    assert!(node.delete_route(&to_pod).unwrap());
    assert!(!node.delete_route(&to_pod).unwrap());
    assert_eq!(node.route_get(addr("fd00::5")).unwrap(), None);
}

#[test]
fn permanent_neighbours() {
    let ns = Namespaces::new(2);
    let (mut node, mut pod, host, peer) = pod_veth(&ns);
    up(&mut node, &mut pod, &host, &peer);
    pod.replace_permanent_neighbour(peer.index, addr(GATEWAY_V4), [2, 0, 0, 0, 0, 1])
        .unwrap();
    pod.replace_permanent_neighbour(peer.index, addr(GATEWAY_V4), HOST_MAC)
        .unwrap();
    pod.replace_permanent_neighbour(peer.index, addr(GATEWAY_V6), HOST_MAC)
        .unwrap();
    let entries: Vec<Neighbour> = pod
        .neighbours(peer.index)
        .unwrap()
        .into_iter()
        .filter(|n| n.permanent)
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for gateway in [GATEWAY_V4, GATEWAY_V6] {
        assert!(
            entries.contains(&Neighbour {
                ip: addr(gateway),
                mac: Some(HOST_MAC),
                permanent: true,
            }),
            "{entries:?}"
        );
    }
    assert_eq!(node.neighbours(host.index).unwrap(), vec![]);
    let shown = ns.ip(1, &["neigh", "show", "dev", "eth0"]);
    assert!(
        shown.contains("169.254.1.1 lladdr ee:ee:ee:ee:ee:ee PERMANENT"),
        "{shown}"
    );
}

/// sysctls of a link in a namespace, written from a thread made for it (a
/// thread's own namespace decides what /proc/sys/net shows).
#[test]
fn sysctl_in_a_namespace() {
    let ns = Namespaces::new(2);
    let (_node, _pod, _, _) = pod_veth(&ns);
    let node_ns = ns.open(0);
    let key = "net/ipv4/conf/podrtest0/proxy_arp";
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                rustix::thread::move_into_link_name_space(
                    node_ns.fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap();
                assert_eq!(read_sysctl(key).unwrap(), "0");
                write_sysctl(key, "1").unwrap();
                assert_eq!(read_sysctl(key).unwrap(), "1");
                write_sysctl("net/ipv4/neigh/podrtest0/proxy_delay", "0").unwrap();
                write_sysctl("net/ipv6/conf/podrtest0/forwarding", "1").unwrap();
                assert_eq!(
                    read_sysctl("net/ipv6/conf/podrtest0/forwarding").unwrap(),
                    "1"
                );
            })
            .join()
            .unwrap();
    });
    // Not this thread's namespace: the link is not here.
    let err = read_sysctl(key).unwrap_err();
    assert!(matches!(err, NetlinkError::Sysctl { .. }), "{err:?}");
}

#[test]
fn netns_open_refuses_what_is_not_one() {
    let missing = Netns::open(Path::new("/run/netns/pcnl-no-such-namespace")).unwrap_err();
    match &missing {
        NetlinkError::OpenNetns { path, source } => {
            assert_eq!(path, Path::new("/run/netns/pcnl-no-such-namespace"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    match Netns::open(&file).unwrap_err() {
        NetlinkError::OpenNetns { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput)
        }
        other => panic!("{other:?}"),
    }

    // A namespace of another kind opens, but cannot be entered as a
    // network namespace; the thread stays where it was.
    let before = own_netns();
    let uts = Netns::open(Path::new("/proc/self/ns/uts")).unwrap();
    match Netlink::in_netns(&uts) {
        Err(NetlinkError::EnterNetns { path, .. }) => {
            assert_eq!(path, Path::new("/proc/self/ns/uts"))
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("entered a UTS namespace as a network one"),
    }
    assert_eq!(own_netns(), before);
}

/// Reads (never changes) the test's own namespace: whatever links and
/// routes the machine has decode.
#[test]
fn reads_the_current_namespace() {
    let before = own_netns();
    let mut here = Netlink::current().unwrap();
    let links = here.links().unwrap();
    let lo = links.iter().find(|l| l.loopback).expect("a loopback link");
    assert_eq!(here.link_by_name(&lo.name).unwrap().as_ref(), Some(lo));
    here.routes(IpFamily::V4).unwrap();
    here.routes(IpFamily::V6).unwrap();
    for link in &links {
        here.addresses(link.index).unwrap();
        here.neighbours(link.index).unwrap();
    }
    assert_eq!(own_netns(), before);
}
