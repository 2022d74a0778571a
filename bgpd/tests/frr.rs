// podroute-bgpd against FRR 8.4 (bgpd, zebra, staticd) in the lab
// labs/frr.clab.yml: FRR is AS 65000 in the middle, each podroute node runs
// its own podroute-bgpd on its own link. Needs root, as CI gives.
//
// Interop matrix, peer × feature (this file covers the FRR column):
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
    Bgpd, CONVERGE, Frozen, OnFailure, PeerConf, Speaker, as_path, state_file_tail, state_name,
    wait_seen,
};
use podroute_lab::{Lab, LabOptions};
use serde_json::Value;

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/frr.clab.yml");
const ROUTER_AS: u32 = 65000;
/// The wrong-password session gets this long, after the right one is up, to
/// prove it never comes up: several connect-retry periods on both sides.
const NEVER_WINDOW: Duration = Duration::from_secs(6);
/// A frozen peer is noticed after the 3 s hold time: well within this.
const HOLD_DEADLINE: Duration = Duration::from_secs(10);

/// What FRR's `vtysh -c CMD` prints as JSON; `Null` when it fails.
fn frr_json(lab: &Lab, cmd: &str) -> Value {
    lab.exec("r", &["vtysh", "-c", cmd])
        .ok()
        .and_then(|out| serde_json::from_str(&out).ok())
        .unwrap_or(Value::Null)
}

/// FRR's session state with `peer` ("Established", "Active", ...).
fn frr_state(lab: &Lab, peer: &str) -> String {
    frr_json(lab, &format!("show bgp neighbors {peer} json"))[peer]["bgpState"]
        .as_str()
        .unwrap_or("(none)")
        .to_string()
}

/// FRR's best path for `prefix` (the first path when none is marked best).
fn frr_path(lab: &Lab, prefix: &str) -> Value {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = frr_json(lab, &format!("show bgp {afi} unicast {prefix} json"));
    let paths = v["paths"].as_array().cloned().unwrap_or_default();
    paths
        .iter()
        .find(|p| p["bestpath"]["overall"] == true)
        .or(paths.first())
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_frr_path(lab: &Lab, prefix: &str) -> Value {
    wait_seen(
        lab,
        CONVERGE,
        &format!("{prefix} in FRR's table"),
        |lab| frr_path(lab, prefix),
        |p| !p.is_null(),
    )
}

fn frr_aspath(path: &Value) -> &str {
    path["aspath"]["string"].as_str().unwrap_or("(none)")
}

fn frr_nexthops(path: &Value) -> Vec<String> {
    path["nexthops"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|h| h["ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn vtysh_conf(lab: &Lab, lines: &[&str]) {
    let mut argv = vec![
        "vtysh",
        "-c",
        "configure terminal",
        "-c",
        "router bgp 65000",
    ];
    for l in lines {
        argv.extend(["-c", l]);
    }
    let out = lab.exec("r", &argv).unwrap();
    // vtysh exits 0 on some refused lines: FRR's complaints go to stdout.
    assert!(!out.contains('%'), "FRR refused {lines:?}: {out}");
}

/// The router's side, shown when the test fails.
fn frr_dump(lab: &Lab) -> String {
    let summary = lab
        .exec("r", &["vtysh", "-c", "show bgp summary"])
        .unwrap_or_else(|e| e.to_string());
    format!(
        "==== FRR: show bgp summary ====\n{summary}\n==== FRR: end of bgpd.log ====\n{}",
        state_file_tail(lab, "r", "frr/bgpd.log", 40)
    )
}

#[test]
fn frr_peers_exchange_prefixes_over_every_kind_of_session_and_failures_are_reported() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("bfrr")).unwrap();
    let router_dump = OnFailure(|| eprintln!("{}", frr_dump(&lab)));

    let e = Bgpd::start(
        &lab,
        "e",
        &Speaker {
            asn: 4_200_000_001,
            extra: Vec::new(),
            router_id: "10.0.1.2",
            originate: vec!["10.244.1.0/26", "fd00:244:1::/64"],
            peers: vec![
                PeerConf::new("frr-v4", "10.0.1.1", ROUTER_AS).password("s3cret"),
                PeerConf::new("frr-v6", "fd00:0:1::1", ROUTER_AS),
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
            peers: vec![PeerConf::new("frr-ibgp", "10.0.2.1", ROUTER_AS).fast_hold()],
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
            peers: vec![PeerConf::new("frr-md5", "10.0.3.1", ROUTER_AS).password("wrong-one")],
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
            peers: vec![PeerConf::new("frr-nocaps", "10.0.4.1", ROUTER_AS)],
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
                PeerConf::new("frr-v6-both", "fd00:0:5::1", ROUTER_AS)
                    .families(&["ipv4-unicast", "ipv6-unicast"]),
            ],
        },
    );

    // Phase 1: every session but w's comes up, seen from both sides.
    for (bgpd, peer, frr_peer) in [
        (&e, "10.0.1.1", "10.0.1.2"),
        (&e, "fd00:0:1::1", "fd00:0:1::2"),
        (&i, "10.0.2.1", "10.0.2.2"),
        (&t, "10.0.4.1", "10.0.4.2"),
        (&x, "fd00:0:5::1", "fd00:0:5::2"),
    ] {
        bgpd.wait_established(&lab, peer);
        wait_seen(
            &lab,
            CONVERGE,
            &format!("FRR's session with {frr_peer} Established"),
            |lab| frr_state(lab, frr_peer),
            |s| s == "Established",
        );
    }

    // Phase 2: e's prefixes reach FRR with e's 4-octet AS and e's address as
    // next hop, IPv4 over the MD5 session, IPv6 over the IPv6 one.
    for (prefix, next_hop) in [
        ("10.244.1.0/26", "10.0.1.2"),
        ("fd00:244:1::/64", "fd00:0:1::2"),
    ] {
        let path = wait_frr_path(&lab, prefix);
        assert_eq!(
            frr_aspath(&path),
            "4200000001",
            "AS path of {prefix} in FRR: {path:#}"
        );
        assert!(
            frr_nexthops(&path).iter().any(|h| h == next_hop),
            "next hop of {prefix} in FRR must be {next_hop}: {path:#}"
        );
        assert_eq!(
            path["peer"]["type"], "external",
            "{prefix} in FRR: {path:#}"
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

    // Phase 3: FRR's prefixes in e's Adj-RIB-In, with FRR's AS and address,
    // and no LOCAL_PREF on eBGP.
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

    // Phase 4, iBGP: FRR keeps i's prefix only if it carries LOCAL_PREF (a
    // missing well-known attribute is treat-as-withdraw, RFC 7606 §7.5); i
    // prepends nothing, and reads FRR's LOCAL_PREF.
    let path = wait_frr_path(&lab, "10.244.2.0/26");
    // (FRR writes an empty AS path as "Local".)
    assert_eq!(
        path["aspath"]["length"], 0,
        "iBGP: i must prepend no AS: {path:#}"
    );
    assert_eq!(path["peer"]["type"], "internal", "{path:#}");
    assert!(
        frr_nexthops(&path).iter().any(|h| h == "10.0.2.2"),
        "{path:#}"
    );
    let local_pref = path.get("locPrf").or(path.get("localpref"));
    assert_eq!(
        local_pref,
        Some(&Value::from(100)),
        "LOCAL_PREF from i in FRR: {path:#}"
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
    // e's prefix, passed on by FRR over iBGP: AS path and next hop unchanged.
    let route = i.wait_received(&lab, "10.0.2.1", "10.244.1.0/26");
    assert_eq!(as_path(&route), [4_200_000_001], "i: {route:#?}");
    assert_eq!(
        route.next_hops,
        ["10.0.1.2"],
        "i: FRR keeps the next hop on iBGP: {route:#?}"
    );
    assert_eq!(route.local_pref, Some(100), "i: {route:#?}");
    // i's prefix reaches e through FRR with only FRR's AS.
    let route = e.wait_received(&lab, "10.0.1.1", "10.244.2.0/26");
    assert_eq!(
        as_path(&route),
        [ROUTER_AS],
        "e: i's prefix through FRR: {route:#?}"
    );

    // Phase 5: t, whose peer sends an OPEN without capabilities: IPv4
    // unicast with 2-octet AS numbers both ways.
    let peer = t.peer("10.0.4.1").unwrap();
    assert!(
        peer.peer_capabilities.is_empty(),
        "t: FRR sent no capabilities: {peer:#?}"
    );
    assert_eq!(peer.families, ["ipv4-unicast"], "t: {peer:#?}");
    let path = wait_frr_path(&lab, "10.244.4.0/26");
    assert_eq!(frr_aspath(&path), "65010", "t's prefix in FRR: {path:#}");
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

    // Phase 6: x, IPv4 and IPv6 over one IPv6 session (RFC 8950): x's IPv4
    // prefix reaches FRR with x's IPv6 address as next hop, and the other way.
    let peer = x.peer("fd00:0:5::1").unwrap();
    for family in ["ipv4-unicast", "ipv6-unicast"] {
        assert!(
            peer.families.iter().any(|f| f == family),
            "x: {family}: {peer:#?}"
        );
    }
    for prefix in ["10.244.5.0/26", "fd00:244:5::/64"] {
        let path = wait_frr_path(&lab, prefix);
        assert_eq!(frr_aspath(&path), "4200000005", "{prefix} in FRR: {path:#}");
        assert!(
            frr_nexthops(&path).iter().any(|h| h == "fd00:0:5::2"),
            "next hop of {prefix} in FRR must be fd00:0:5::2: {path:#}"
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
    let state = frr_state(&lab, "10.0.3.2");
    assert_ne!(
        state, "Established",
        "FRR's session with w (wrong MD5 password)"
    );

    // Phase 8: FRR's bgpd frozen: its connections stay open but silent, so i
    // (hold time 3 s) must give up on hold timer expiry.
    {
        let _frozen = Frozen::freeze(&lab, "r", "bgpd");
        wait_seen(
            &lab,
            HOLD_DEADLINE,
            "i: hold timer to expire on frozen FRR",
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
    // And it comes back once FRR runs again.
    let peer = i.wait_established(&lab, "10.0.2.1");
    assert!(
        peer.established_transitions >= 2,
        "i: back after SIGCONT: {peer:#?}"
    );

    // Phase 9: FRR shuts e's IPv4 session down with a message: e reports the
    // Cease subcode and the message; after `no shutdown` the session returns.
    vtysh_conf(&lab, &["neighbor 10.0.1.2 shutdown message maintenance"]);
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
    vtysh_conf(&lab, &["no neighbor 10.0.1.2 shutdown"]);
    let peer = e.wait_established(&lab, "10.0.1.1");
    assert!(
        peer.established_transitions >= 2,
        "e: back after no shutdown: {peer:#?}"
    );

    drop((e, i, w, t, x));
    drop(router_dump);
    lab.down().unwrap();
}
