// Two podroute-bgpd speakers peering over the loopback (127.0.0.1 and
// 127.0.0.2, each listening on its own port): prefixes go both ways, and
// configuration reloads by file change and SIGHUP change only what changed:
// a new originate prefix and a new peer leave the session alone, a bad file
// is refused and the running configuration stays, a changed peer restarts
// with Cease / Other Configuration Change, a removed one gets Cease / Peer
// De-configured, and SIGTERM ends sessions with Administrative Shutdown.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::process::Command;

use podroute_proto::bgpd::v1::{Peer, SessionState};

mod loopback;

use loopback::{Bgpd, free_port, wait_until};

const A: &str = "127.0.0.1";
const B: &str = "127.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One speaker: `me` listening on `port`, originating `originate`, with a
/// peer at `peer:peer_port` plus `extra` YAML documents.
fn config(
    me: &str,
    asn: u32,
    port: u16,
    originate: &str,
    peer: (&str, u32, u16),
    extra: &str,
) -> String {
    let (peer_ip, peer_as, peer_port) = peer;
    format!(
        "apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: {asn}
  routerID: {me}
  listenPort: {port}
  listenAddresses: [{me}]
  originate: [{originate}]
  connectRetryTime: 1
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {{name: other}}
spec:
  peerIP: {peer_ip}
  asNumber: {peer_as}
  port: {peer_port}
  sourceAddress: {me}
{extra}"
    )
}

fn established(peer: &Peer) -> bool {
    peer.state == i32::from(SessionState::Established)
}

fn rewrite(bgpd: &Bgpd, text: &str) {
    // Write then rename, as editors and ConfigMap updates do.
    let tmp = bgpd.config.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &bgpd.config).unwrap();
}

#[test]
fn reloads_touch_only_what_changed() {
    let (port_a, port_b) = (free_port(), free_port());
    let a_config = |originate: &str, extra: &str| {
        config(A, 65001, port_a, originate, (B, 65002, port_b), extra)
    };
    let a = Bgpd::start(&a_config("10.1.0.0/24", ""));
    let b = Bgpd::start(&config(
        B,
        65002,
        port_b,
        "10.2.0.0/24",
        (A, 65001, port_a),
        "",
    ));

    wait_until("A and B Established", || {
        established(&a.peer(ip(B))) && established(&b.peer(ip(A)))
    });
    wait_until("B's prefix at A", || a.received(ip(B)) == ["10.2.0.0/24"]);
    wait_until("A's prefix at B", || b.received(ip(A)) == ["10.1.0.0/24"]);

    // A new originate prefix and a new peer: B learns the prefix over the
    // same session.
    let third = "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {name: third}\nspec:\n  peerIP: 127.0.0.9\n  asNumber: 65009\n  passive: true\n";
    rewrite(&a, &a_config("10.1.0.0/24, 10.1.1.0/24", third));
    wait_until("the new prefix at B", || {
        b.received(ip(A)) == ["10.1.0.0/24", "10.1.1.0/24"]
    });
    assert_eq!(a.peers().len(), 2);
    assert_eq!(
        b.peer(ip(A)).established_transitions,
        1,
        "the session stayed up"
    );

    // A bad file is refused with its reason; nothing changes.
    rewrite(&a, &a_config("10.1.0.0/24", "  holdTime: 2\n"));
    wait_until("the refusal in A's log", || {
        a.log().contains("spec.holdTime")
    });
    assert_eq!(a.peers().len(), 2);
    assert_eq!(b.received(ip(A)), ["10.1.0.0/24", "10.1.1.0/24"]);

    // SIGHUP with the same (bad) file: still refused, still running.
    let refusals = a.log().matches("configuration refused").count();
    Command::new("kill")
        .args(["-HUP", &a.pid().to_string()])
        .status()
        .unwrap();
    wait_until("a second refusal after SIGHUP", || {
        a.log().matches("configuration refused").count() > refusals
    });
    assert!(established(&a.peer(ip(B))));

    // A changed peer restarts, and B is told why.
    rewrite(&a, &a_config("10.1.0.0/24", "  holdTime: 30\n"));
    wait_until("B sees the restart", || {
        b.peer(ip(A))
            .last_error
            .contains("Other Configuration Change")
    });
    wait_until("the session back up", || {
        let p = b.peer(ip(A));
        established(&p) && p.established_transitions == 2
    });
    // A restarted its side with a new task: its counters carry on from
    // the old one's, counting every Established since the daemon started
    // (one event each in its log; a collision may add one to the two).
    wait_until("A counting every session since its start", || {
        let p = a.peer(ip(B));
        let logged = a
            .log()
            .matches(&format!("BGP session Established peer={B}"))
            .count();
        established(&p) && logged >= 2 && p.established_transitions == logged as u64
    });
    wait_until("the withdrawn prefix gone at B", || {
        b.received(ip(A)) == ["10.1.0.0/24"]
    });
    assert_eq!(a.peer(ip(B)).hold_time, 30);

    // Removed: Peer De-configured.
    let alone = "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  asNumber: 65001\n  routerID: 127.0.0.1\n  listenPort: 0\n";
    rewrite(&a, alone);
    wait_until("B told the peer was removed", || {
        b.peer(ip(A)).last_error.contains("Peer De-configured")
    });
    assert!(a.peers().is_empty());
    assert!(b.received(ip(A)).is_empty());
}

#[test]
fn sigterm_ends_sessions_with_administrative_shutdown() {
    // Without graceful restart (with it, SIGTERM closes quietly: see
    // tests/graceful_restart.rs).
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Bgpd::start(&config(
        A,
        65001,
        port_a,
        "10.1.0.0/24",
        (B, 65002, port_b),
        "  gracefulRestart: {enabled: false}\n",
    ));
    let b = Bgpd::start(&config(
        B,
        65002,
        port_b,
        "10.2.0.0/24",
        (A, 65001, port_a),
        "",
    ));
    wait_until("Established", || established(&b.peer(ip(A))));

    Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .unwrap();
    wait_until("A exits", || !a.is_running());
    let last = b.peer(ip(A)).last_error;
    assert!(
        last.contains("Administrative Shutdown") && last.contains("podroute-bgpd stopping"),
        "{last}"
    );
}

#[test]
fn a_prefix_we_stop_originating_is_taken_from_the_peer_that_announced_it_too() {
    // A block that moves between nodes: B announces a prefix A still
    // originates, so A holds B's path back (hijack guard). When A stops
    // originating it, A uses B's path at once, without B sending it again.
    let (port_a, port_b) = (free_port(), free_port());
    let accept = "  importPolicy: {defaultAction: accept}\n";
    let a_config =
        |originate: &str| config(A, 65001, port_a, originate, (B, 65002, port_b), accept);
    let a = Bgpd::start(&a_config("10.1.0.0/24, 10.3.0.0/24"));
    let b = Bgpd::start(&config(
        B,
        65002,
        port_b,
        "10.2.0.0/24, 10.3.0.0/24",
        (A, 65001, port_a),
        accept,
    ));
    wait_until("B's two prefixes at A", || {
        a.received(ip(B)) == ["10.2.0.0/24", "10.3.0.0/24"]
    });
    wait_until("only B's own prefix accepted at A", || {
        a.peer(ip(B)).prefixes_accepted == 1
    });

    rewrite(&a, &a_config("10.1.0.0/24"));
    wait_until("B's 10.3.0.0/24 accepted at A", || {
        a.peer(ip(B)).prefixes_accepted == 2
    });
    let b_seen_by_a = a.peer(ip(B));
    assert_eq!(
        b_seen_by_a.established_transitions, 1,
        "the session stayed up"
    );
    let refreshes = b
        .peer(ip(A))
        .messages_received
        .unwrap_or_default()
        .route_refresh;
    assert_eq!(refreshes, 0, "A did not need B to send its routes again");
}
