// podroute-bgpd against GoBGP 3.10 in the lab labs/gobgp.clab.yml: gobgpd
// is AS 4200000100 (a 4-octet AS) in the middle, see labs/gobgp/gobgpd.toml;
// each podroute node runs its own podroute-bgpd on its own link. Needs root,
// as CI gives.
//
// Interop matrix, peer × feature (this file covers the GoBGP column):
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
//
// GoBGP's CLI: `gobgp neighbor ADDR disable` sends no message (3.10 does not
// pass --reason on), the deprecated `shutdown --reason` does.

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

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/labs/gobgp.clab.yml");
const ROUTER_AS: u32 = 4_200_000_100;
/// The wrong-password session gets this long, after the right one is up, to
/// prove it never comes up: several connect-retry periods on both sides.
const NEVER_WINDOW: Duration = Duration::from_secs(6);
/// A frozen peer is noticed after the 3 s hold time: well within this.
const HOLD_DEADLINE: Duration = Duration::from_secs(10);

/// A path in gobgpd's global RIB, from `gobgp -j global rib`.
#[derive(Debug)]
struct GobgpRoute {
    as_path: Vec<u64>,
    next_hop: String,
    /// LOCAL_PREF as received (attribute type 5), if there was one.
    local_pref: Option<u64>,
    neighbor: String,
    /// Everything gobgp said, for failure messages.
    #[allow(dead_code)]
    raw: Value,
}

fn gobgp(lab: &Lab, args: &[&str]) -> String {
    let mut argv = vec!["gobgp"];
    argv.extend_from_slice(args);
    lab.exec("r", &argv).unwrap_or_default()
}

/// gobgpd's session state with `peer`, as `gobgp neighbor ADDR` says it:
/// "ESTABLISHED", "ACTIVE", ...
fn gobgp_state(lab: &Lab, peer: &str) -> String {
    gobgp(lab, &["neighbor", peer])
        .lines()
        .find_map(|l| l.trim().strip_prefix("BGP state = "))
        .and_then(|s| s.split(',').next())
        .unwrap_or("(none)")
        .trim()
        .to_string()
}

fn gobgp_route(lab: &Lab, prefix: &str) -> Option<GobgpRoute> {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let out = gobgp(lab, &["-j", "global", "rib", "-a", afi, prefix]);
    let v: Value = serde_json::from_str(&out).ok()?;
    let paths = v[prefix].as_array()?;
    let path = paths.iter().find(|p| p["best"] == true).or(paths.first())?;
    let attrs = path["attrs"].as_array().cloned().unwrap_or_default();
    let attr = |t: u64| attrs.iter().find(|a| a["type"] == t);
    let as_path = attr(2)
        .and_then(|a| a["as_paths"].as_array())
        .map(|segs| {
            segs.iter()
                .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
                .filter_map(|n| n.as_u64())
                .collect()
        })
        .unwrap_or_default();
    let next_hop = attr(3)
        .or(attr(14))
        .and_then(|a| a["nexthop"].as_str())
        .unwrap_or("")
        .to_string();
    Some(GobgpRoute {
        as_path,
        next_hop,
        local_pref: attr(5).and_then(|a| a["value"].as_u64()),
        neighbor: path["neighbor-ip"].as_str().unwrap_or("").to_string(),
        raw: path.clone(),
    })
}

fn wait_gobgp_route(lab: &Lab, prefix: &str, neighbor: &str) -> GobgpRoute {
    wait_seen(
        lab,
        CONVERGE,
        &format!("{prefix} from {neighbor} in gobgpd's RIB"),
        |lab| gobgp_route(lab, prefix),
        |r| r.as_ref().is_some_and(|r| r.neighbor == neighbor),
    )
    .unwrap()
}

fn wait_gobgp_established(lab: &Lab, peer: &str) {
    wait_seen(
        lab,
        CONVERGE,
        &format!("gobgpd's session with {peer} Established"),
        |lab| gobgp_state(lab, peer),
        |s| s == "ESTABLISHED",
    );
}

/// The router's side, shown when the test fails.
fn gobgp_dump(lab: &Lab) -> String {
    format!(
        "==== gobgpd: neighbors ====\n{}\n==== gobgpd: end of gobgpd.log ====\n{}",
        gobgp(lab, &["neighbor"]),
        state_file_tail(lab, "r", "gobgpd.log", 40)
    )
}

#[test]
fn gobgp_peers_exchange_prefixes_over_every_kind_of_session_and_failures_are_reported() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("bgob")).unwrap();
    let router_dump = OnFailure(|| eprintln!("{}", gobgp_dump(&lab)));

    let e = Bgpd::start(
        &lab,
        "e",
        &Speaker {
            asn: 4_200_000_001,
            extra: Vec::new(),
            router_id: "10.0.1.2",
            originate: vec!["10.244.1.0/26", "fd00:244:1::/64"],
            peers: vec![
                PeerConf::new("gobgp-v4", "10.0.1.1", ROUTER_AS).password("s3cret"),
                PeerConf::new("gobgp-v6", "fd00:0:1::1", ROUTER_AS),
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
            peers: vec![PeerConf::new("gobgp-ibgp", "10.0.2.1", ROUTER_AS).fast_hold()],
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
            peers: vec![PeerConf::new("gobgp-md5", "10.0.3.1", ROUTER_AS).password("wrong-one")],
        },
    );

    // Phase 1: every session but w's comes up, seen from both sides.
    for (bgpd, peer, router_peer) in [
        (&e, "10.0.1.1", "10.0.1.2"),
        (&e, "fd00:0:1::1", "fd00:0:1::2"),
        (&i, "10.0.2.1", "10.0.2.2"),
    ] {
        bgpd.wait_established(&lab, peer);
        wait_gobgp_established(&lab, router_peer);
    }

    // Phase 2: e's prefixes reach gobgpd with e's 4-octet AS and e's address
    // as next hop, IPv4 over the MD5 session, IPv6 over the IPv6 one.
    for (prefix, neighbor) in [
        ("10.244.1.0/26", "10.0.1.2"),
        ("fd00:244:1::/64", "fd00:0:1::2"),
    ] {
        let route = wait_gobgp_route(&lab, prefix, neighbor);
        assert_eq!(
            route.as_path,
            [4_200_000_001],
            "{prefix} in gobgpd: {route:#?}"
        );
        assert_eq!(
            route.next_hop, neighbor,
            "next hop of {prefix} in gobgpd: {route:#?}"
        );
        assert_eq!(
            route.local_pref, None,
            "no LOCAL_PREF over eBGP: {route:#?}"
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

    // Phase 3: gobgpd's prefixes in e's Adj-RIB-In, with gobgpd's 4-octet AS
    // and address, and no LOCAL_PREF on eBGP.
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

    // Phase 4, iBGP: gobgpd shows the attributes as received, so LOCAL_PREF
    // is there because i sent it; i prepends nothing. i reads gobgpd's
    // LOCAL_PREF and empty AS path.
    let route = wait_gobgp_route(&lab, "10.244.2.0/26", "10.0.2.2");
    assert_eq!(
        route.as_path,
        Vec::<u64>::new(),
        "iBGP: i must prepend no AS: {route:#?}"
    );
    assert_eq!(
        route.local_pref,
        Some(100),
        "LOCAL_PREF from i in gobgpd: {route:#?}"
    );
    assert_eq!(route.next_hop, "10.0.2.2", "{route:#?}");
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
    // e's prefix, passed on by gobgpd over iBGP with e's AS path.
    let route = i.wait_received(&lab, "10.0.2.1", "10.244.1.0/26");
    assert_eq!(as_path(&route), [4_200_000_001], "i: {route:#?}");
    assert_eq!(route.local_pref, Some(100), "i: {route:#?}");
    // i's prefix reaches e through gobgpd with only gobgpd's AS.
    let route = e.wait_received(&lab, "10.0.1.1", "10.244.2.0/26");
    assert_eq!(
        as_path(&route),
        [ROUTER_AS],
        "e: i's prefix through gobgpd: {route:#?}"
    );

    // Phase 5: the wrong MD5 password never gets a session, while the right
    // one (e) is up.
    w.assert_never_established("10.0.3.1", NEVER_WINDOW);
    let state = gobgp_state(&lab, "10.0.3.2");
    assert_ne!(
        state, "ESTABLISHED",
        "gobgpd's session with w (wrong MD5 password)"
    );

    // Phase 6: gobgpd frozen: its connections stay open but silent, so i
    // (hold time 3 s) must give up on hold timer expiry.
    {
        let _frozen = Frozen::freeze(&lab, "r", "gobgpd");
        wait_seen(
            &lab,
            HOLD_DEADLINE,
            "i: hold timer to expire on frozen gobgpd",
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
    // And it comes back once gobgpd runs again.
    let peer = i.wait_established(&lab, "10.0.2.1");
    assert!(
        peer.established_transitions >= 2,
        "i: back after SIGCONT: {peer:#?}"
    );

    // Phase 7: gobgpd shuts e's IPv4 session down with a message: e reports
    // the Cease subcode and the message; after `enable` the session returns.
    lab.exec(
        "r",
        &[
            "gobgp",
            "neighbor",
            "10.0.1.2",
            "shutdown",
            "--reason",
            "maintenance",
        ],
    )
    .unwrap();
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
    lab.exec("r", &["gobgp", "neighbor", "10.0.1.2", "enable"])
        .unwrap();
    let peer = e.wait_established(&lab, "10.0.1.1");
    assert!(
        peer.established_transitions >= 2,
        "e: back after enable: {peer:#?}"
    );

    drop((e, i, w));
    drop(router_dump);
    lab.down().unwrap();
}
