// podroute-bgpd against BIRD 2.0.12 in the lab labs/bird.clab.yml: BIRD is
// AS 65000 in the middle (one `protocol bgp` per podroute session, see
// labs/bird/bird.conf), each podroute node runs its own podroute-bgpd on its
// own link. Needs root, as CI gives.
//
// Interop matrix, peer × feature (this file covers the BIRD column):
//
// | feature                                         | FRR 8.4 | BIRD 2.0.12 | GoBGP 3.10    |
// |-------------------------------------------------|---------|-------------|---------------|
// | eBGP IPv4, 4-octet AS (RFC 6793), both ways     | e       | e           | e (4-oct both)|
// | eBGP IPv6 session, IPv6 prefixes both ways      | e       | e           | e             |
// | TCP MD5 (RFC 2385), right password              | e       | e           | e             |
// | TCP MD5, wrong password: never Established      | w       | w           | w             |
// | iBGP: LOCAL_PREF sent and read, no AS prepended | i       | i           | i             |
// | 2-octet peer (no 4-octet AS capability)         | t (1)   | t (2)       | -  (3)        |
// | IPv4 over an IPv6 session (RFC 8950)            | x       | x           | -             |
// | Cease / Admin Shutdown + message (RFC 9003)     | e       | e           | e             |
// | hold timer expiry on a frozen peer (SIGSTOP)    | i       | i           | i             |
// | session back after the peer recovers            | e, i    | e, i        | e, i          |
//
// (1) `dont-capability-negotiate`: an OPEN without any capability, podroute
//     AS 65010; FRR's paths with 4-octet ASes arrive as AS_TRANS + AS4_PATH.
// (2) `enable as4 off`, podroute AS 65010: BIRD reads the peer's 4-octet AS
//     capability even then, so a 4-octet podroute AS is refused (Bad peer AS).
// (3) GoBGP has no knob to leave out the 4-octet AS capability; its own AS
//     is a 4-octet one instead (4200000100).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod common;

use common::{
    Bgpd, CONVERGE, Frozen, OnFailure, PeerConf, Speaker, as_path, state_name, wait_seen,
};
use podroute_lab::{Lab, LabOptions};

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/bird.clab.yml");
const ROUTER_AS: u32 = 65000;
/// The wrong-password session gets this long, after the right one is up, to
/// prove it never comes up: several connect-retry periods on both sides.
const NEVER_WINDOW: Duration = Duration::from_secs(6);
/// A frozen peer is noticed after the 3 s hold time: well within this.
const HOLD_DEADLINE: Duration = Duration::from_secs(10);

/// A route as `birdc show route PREFIX all` shows its best path.
#[derive(Debug)]
struct BirdRoute {
    /// The BGP protocol it came from (`e4`, `i4`, ...).
    proto: String,
    as_path: String,
    next_hops: Vec<String>,
    local_pref: Option<u32>,
    /// Everything birdc said, for failure messages.
    #[allow(dead_code)]
    raw: String,
}

fn birdc(lab: &Lab, args: &[&str]) -> String {
    let mut argv = vec!["birdc"];
    argv.extend_from_slice(args);
    lab.exec("r", &argv).unwrap_or_default()
}

/// BIRD's view of one protocol: "Established", "Active", "Connect", ...
fn bird_state(lab: &Lab, proto: &str) -> String {
    let out = birdc(lab, &["show", "protocols", proto]);
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(proto))
        // Name Proto Table State Since Info...: Info is the BGP state.
        .and_then(|l| l.split_whitespace().nth(5))
        .unwrap_or("(none)")
        .to_string()
}

fn bird_route(lab: &Lab, prefix: &str) -> Option<BirdRoute> {
    let raw = birdc(lab, &["show", "route", prefix, "all"]);
    // The first route shown is the best one; its block ends where the next
    // route's `via` line starts, but the attributes come first anyway.
    let first = raw.lines().find(|l| l.starts_with(prefix))?;
    let proto = first
        .split('[')
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    let attr = |name: &str| {
        raw.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    Some(BirdRoute {
        proto,
        as_path: attr("BGP.as_path:").unwrap_or_default(),
        next_hops: attr("BGP.next_hop:")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        local_pref: attr("BGP.local_pref:").and_then(|v| v.parse().ok()),
        raw,
    })
}

fn wait_bird_route(lab: &Lab, prefix: &str, proto: &str) -> BirdRoute {
    wait_seen(
        lab,
        CONVERGE,
        &format!("{prefix} from {proto} in BIRD's table"),
        |lab| bird_route(lab, prefix),
        |r| r.as_ref().is_some_and(|r| r.proto == proto),
    )
    .unwrap()
}

fn wait_bird_established(lab: &Lab, proto: &str) {
    wait_seen(
        lab,
        CONVERGE,
        &format!("BIRD's protocol {proto} Established"),
        |lab| bird_state(lab, proto),
        |s| s == "Established",
    );
}

/// The router's side, shown when the test fails.
fn bird_dump(lab: &Lab) -> String {
    format!(
        "==== BIRD: show protocols all ====\n{}",
        birdc(lab, &["show", "protocols", "all"])
    )
}

#[test]
fn bird_peers_exchange_prefixes_over_every_kind_of_session_and_failures_are_reported() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("bbird")).unwrap();
    let router_dump = OnFailure(|| eprintln!("{}", bird_dump(&lab)));

    let e = Bgpd::start(
        &lab,
        "e",
        &Speaker {
            asn: 4_200_000_001,
            extra: Vec::new(),
            router_id: "10.0.1.2",
            originate: vec!["10.244.1.0/26", "fd00:244:1::/64"],
            peers: vec![
                PeerConf::new("bird-v4", "10.0.1.1", ROUTER_AS).password("s3cret"),
                PeerConf::new("bird-v6", "fd00:0:1::1", ROUTER_AS),
            ],
        },
    );
    let i = Bgpd::start(
        &lab,
        "i",
        &Speaker {
            asn: ROUTER_AS,
            extra: Vec::new(),
            router_id: "10.0.2.2",
            originate: vec!["10.244.2.0/26"],
            peers: vec![PeerConf::new("bird-ibgp", "10.0.2.1", ROUTER_AS).fast_hold()],
        },
    );
    let w = Bgpd::start(
        &lab,
        "w",
        &Speaker {
            asn: 4_200_000_003,
            extra: Vec::new(),
            router_id: "10.0.3.2",
            originate: vec!["10.244.3.0/26"],
            peers: vec![PeerConf::new("bird-md5", "10.0.3.1", ROUTER_AS).password("wrong-one")],
        },
    );
    let t = Bgpd::start(
        &lab,
        "t",
        &Speaker {
            asn: 65010,
            extra: Vec::new(),
            router_id: "10.0.4.2",
            originate: vec!["10.244.4.0/26"],
            peers: vec![PeerConf::new("bird-as2", "10.0.4.1", ROUTER_AS)],
        },
    );
    let x = Bgpd::start(
        &lab,
        "x",
        &Speaker {
            asn: 4_200_000_005,
            extra: Vec::new(),
            router_id: "10.0.5.2",
            originate: vec!["10.244.5.0/26", "fd00:244:5::/64"],
            peers: vec![
                PeerConf::new("bird-v6-both", "fd00:0:5::1", ROUTER_AS)
                    .families(&["ipv4-unicast", "ipv6-unicast"]),
            ],
        },
    );

    // Phase 1: every session but w's comes up, seen from both sides.
    for (bgpd, peer, proto) in [
        (&e, "10.0.1.1", "e4"),
        (&e, "fd00:0:1::1", "e6"),
        (&i, "10.0.2.1", "i4"),
        (&t, "10.0.4.1", "t4"),
        (&x, "fd00:0:5::1", "x6"),
    ] {
        bgpd.wait_established(&lab, peer);
        wait_bird_established(&lab, proto);
    }

    // Phase 2: e's prefixes reach BIRD with e's 4-octet AS and e's address
    // as next hop, IPv4 over the MD5 session, IPv6 over the IPv6 one.
    for (prefix, proto, next_hop) in [
        ("10.244.1.0/26", "e4", "10.0.1.2"),
        ("fd00:244:1::/64", "e6", "fd00:0:1::2"),
    ] {
        let route = wait_bird_route(&lab, prefix, proto);
        assert_eq!(route.as_path, "4200000001", "{prefix} in BIRD: {route:#?}");
        assert!(
            route.next_hops.iter().any(|h| h == next_hop),
            "next hop of {prefix} in BIRD must be {next_hop}: {route:#?}"
        );
    }

    // e lists them in its Adj-RIB-Out, each only on the session of its own
    // family (a peer's families default to the family of its address).
    for (peer, ours, other) in [
        ("10.0.1.1", "10.244.1.0/26", "fd00:244:1::/64"),
        ("fd00:0:1::1", "fd00:244:1::/64", "10.244.1.0/26"),
    ] {
        let out = e.advertised(peer, ours);
        assert!(
            matches!(out, Ok(Some(_))),
            "e: {ours} advertised to {peer}: {out:?}"
        );
        let out = e.advertised(peer, other);
        assert!(
            matches!(out, Ok(None)),
            "e: {other} must not go to {peer}: {out:?}"
        );
    }

    // Phase 3: BIRD's prefixes in e's Adj-RIB-In, with BIRD's AS and
    // address, and no LOCAL_PREF on eBGP.
    for (peer, prefix) in [
        ("10.0.1.1", "10.99.0.0/24"),
        ("fd00:0:1::1", "fd00:99::/64"),
    ] {
        let route = e.wait_received(&lab, peer, prefix);
        assert_eq!(
            as_path(&route),
            [ROUTER_AS],
            "e: AS path of {prefix}: {route:#?}"
        );
        assert!(
            route.next_hops.iter().any(|h| h == peer),
            "e: next hop of {prefix} must be {peer}: {route:#?}"
        );
        assert_eq!(
            route.local_pref, None,
            "e: no LOCAL_PREF over eBGP: {route:#?}"
        );
    }

    // Phase 4, iBGP: i prepends nothing and sends LOCAL_PREF; it reads
    // BIRD's LOCAL_PREF and empty AS path.
    let route = wait_bird_route(&lab, "10.244.2.0/26", "i4");
    assert_eq!(route.as_path, "", "iBGP: i must prepend no AS: {route:#?}");
    assert_eq!(
        route.local_pref,
        Some(100),
        "LOCAL_PREF from i in BIRD: {route:#?}"
    );
    assert!(
        route.next_hops.iter().any(|h| h == "10.0.2.2"),
        "{route:#?}"
    );
    let route = i.wait_received(&lab, "10.0.2.1", "10.99.0.0/24");
    assert_eq!(
        as_path(&route),
        Vec::<u32>::new(),
        "i: iBGP AS path: {route:#?}"
    );
    assert_eq!(
        route.local_pref,
        Some(100),
        "i: LOCAL_PREF over iBGP: {route:#?}"
    );
    // e's prefix, passed on by BIRD over iBGP with e's AS path.
    let route = i.wait_received(&lab, "10.0.2.1", "10.244.1.0/26");
    assert_eq!(as_path(&route), [4_200_000_001], "i: {route:#?}");
    assert_eq!(route.local_pref, Some(100), "i: {route:#?}");
    // i's prefix reaches e through BIRD with only BIRD's AS.
    let route = e.wait_received(&lab, "10.0.1.1", "10.244.2.0/26");
    assert_eq!(
        as_path(&route),
        [ROUTER_AS],
        "e: i's prefix through BIRD: {route:#?}"
    );

    // Phase 5: t, with BIRD as a 2-octet-only speaker: 2-octet AS_PATHs
    // both ways.
    let peer = t.peer("10.0.4.1").unwrap();
    assert!(
        !peer
            .peer_capabilities
            .iter()
            .any(|c| c.starts_with("4-octet-as")),
        "t: BIRD (as4 off) sent no 4-octet AS capability: {peer:#?}"
    );
    assert_eq!(peer.families, ["ipv4-unicast"], "t: {peer:#?}");
    let route = wait_bird_route(&lab, "10.244.4.0/26", "t4");
    assert_eq!(route.as_path, "65010", "t's prefix in BIRD: {route:#?}");
    let route = t.wait_received(&lab, "10.0.4.1", "10.99.0.0/24");
    assert_eq!(as_path(&route), [ROUTER_AS], "t: {route:#?}");
    // e's 4-octet AS crosses the 2-octet session as AS_TRANS in AS_PATH and
    // the real number in AS4_PATH; t puts the path back together.
    let route = t.wait_received(&lab, "10.0.4.1", "10.244.1.0/26");
    assert_eq!(
        as_path(&route),
        [ROUTER_AS, 4_200_000_001],
        "t: AS_PATH merged with AS4_PATH (RFC 6793 §4.2.3): {route:#?}"
    );

    // Phase 6: x, IPv4 and IPv6 over one IPv6 session (RFC 8950, BIRD's
    // `extended next hop`): x's IPv4 prefix reaches BIRD with x's IPv6
    // address as next hop, and the other way.
    let peer = x.peer("fd00:0:5::1").unwrap();
    for family in ["ipv4-unicast", "ipv6-unicast"] {
        assert!(
            peer.families.iter().any(|f| f == family),
            "x: {family}: {peer:#?}"
        );
    }
    for prefix in ["10.244.5.0/26", "fd00:244:5::/64"] {
        let route = wait_bird_route(&lab, prefix, "x6");
        assert_eq!(route.as_path, "4200000005", "{prefix} in BIRD: {route:#?}");
        assert!(
            route.next_hops.iter().any(|h| h == "fd00:0:5::2"),
            "next hop of {prefix} in BIRD must be fd00:0:5::2: {route:#?}"
        );
    }
    for prefix in ["10.99.0.0/24", "fd00:99::/64"] {
        let route = x.wait_received(&lab, "fd00:0:5::1", prefix);
        assert_eq!(as_path(&route), [ROUTER_AS], "x: {route:#?}");
        assert!(
            !route.next_hops.is_empty() && route.next_hops.iter().all(|h| h.contains(':')),
            "x: {prefix} must have IPv6 next hops: {route:#?}"
        );
    }

    // Phase 7: the wrong MD5 password never gets a session, while the right
    // one (e) is up.
    w.assert_never_established("10.0.3.1", NEVER_WINDOW);
    let state = bird_state(&lab, "w4");
    assert_ne!(
        state, "Established",
        "BIRD's session with w (wrong MD5 password)"
    );

    // Phase 8: BIRD frozen: its connections stay open but silent, so i
    // (hold time 3 s) must give up on hold timer expiry.
    {
        let _frozen = Frozen::freeze(&lab, "r", "bird");
        wait_seen(
            &lab,
            HOLD_DEADLINE,
            "i: hold timer to expire on frozen BIRD",
            |_| i.peer("10.0.2.1"),
            |p| {
                p.as_ref().is_ok_and(|p| {
                    p.last_error.to_lowercase().contains("hold timer expired")
                        && state_name(p) != "SESSION_STATE_ESTABLISHED"
                })
            },
        )
        .unwrap();
    }
    // And it comes back once BIRD runs again.
    let peer = i.wait_established(&lab, "10.0.2.1");
    assert!(
        peer.established_transitions >= 2,
        "i: back after SIGCONT: {peer:#?}"
    );

    // Phase 9: BIRD disables e's IPv4 session with a message: e reports the
    // Cease subcode and the message; after `enable` the session returns.
    let out = birdc(&lab, &["disable", "e4", "\"maintenance\""]);
    assert!(out.contains("e4: disabled"), "birdc disable: {out}");
    let peer = wait_seen(
        &lab,
        CONVERGE,
        "e: last_error of 10.0.1.1 to report the Administrative Shutdown",
        |_| e.peer("10.0.1.1"),
        |p| {
            p.as_ref().is_ok_and(|p| {
                p.last_error.contains("Administrative Shutdown")
                    && p.last_error.contains("maintenance")
            })
        },
    )
    .unwrap();
    assert_ne!(state_name(&peer), "SESSION_STATE_ESTABLISHED", "{peer:#?}");
    let out = birdc(&lab, &["enable", "e4"]);
    assert!(out.contains("e4: enabled"), "birdc enable: {out}");
    let peer = e.wait_established(&lab, "10.0.1.1");
    assert!(
        peer.established_transitions >= 2,
        "e: back after enable: {peer:#?}"
    );

    drop((e, i, w, t, x));
    drop(router_dump);
    lab.down().unwrap();
}
