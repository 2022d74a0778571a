use podroute_proto::bgpd::v1::{FibStatus, KernelState, SessionState};
use podroute_proto::policy::v1::{Denial, PolicyRef};

use super::*;

fn version(daemon: &str) -> VersionInfo {
    podroute_proto::version_info(daemon, "0.1.0", "v1")
}

fn healthy() -> Option<DaemonHealth> {
    Some(DaemonHealth {
        live: true,
        ready: true,
        reason: String::new(),
        uptime_seconds: 60,
        metrics_address: "127.0.0.1:9641".into(),
    })
}

fn peer(address: &str, state: SessionState, last_error: &str) -> Peer {
    Peer {
        address: address.into(),
        remote_as: 64512,
        state: state.into(),
        last_error: last_error.into(),
        ..Peer::default()
    }
}

fn route(prefix: &str, peer: &str, kernel: KernelState) -> Route {
    Route {
        prefix: prefix.into(),
        next_hops: vec![peer.into()],
        peer: peer.into(),
        best: true,
        accepted: true,
        reachable: true,
        kernel: kernel.into(),
        ..Route::default()
    }
}

fn block(cidr: &str, node: &str) -> Block {
    Block {
        cidr: cidr.into(),
        pool: "default-ipv4".into(),
        node: node.into(),
        capacity: 64,
        allocated: 1,
        ..Block::default()
    }
}

/// n1 with a healthy session to n2, n2's block routed and installed,
/// its own block announced.
fn healthy_cluster() -> Gathered {
    Gathered {
        bgpd: Ok(BgpFacts {
            version: version("podroute-bgpd"),
            status: BgpStatus {
                health: healthy(),
                node: "n1".into(),
                local_as: 64512,
                router_id: "10.77.0.1".into(),
                peers_configured: 1,
                peers_established: 1,
                fib: Some(FibStatus {
                    enabled: true,
                    table: 254,
                    installed: 2,
                    ..FibStatus::default()
                }),
                ipamd: "/run/podroute/ipamd.sock".into(),
                ipamd_connected: true,
                originated: vec!["10.244.0.0/26".into()],
                ..BgpStatus::default()
            },
            peers: vec![peer("10.77.0.2", SessionState::Established, "")],
            routes_error: None,
            routes: vec![
                route("10.244.0.0/26", "", KernelState::Installed),
                route("10.244.0.64/26", "10.77.0.2", KernelState::Installed),
            ],
        }),
        ipamd: Ok(IpamFacts {
            version: version("podroute-ipamd"),
            status: IpamStatus {
                health: healthy(),
                store: "embedded".into(),
                ..IpamStatus::default()
            },
            usage: vec![PoolUsage {
                pool: "default-ipv4".into(),
                cidr: "10.244.0.0/16".into(),
                capacity: 65536,
                allocated: 2,
                blocks_total: 1024,
                blocks_claimed: 2,
                ..PoolUsage::default()
            }],
            blocks: vec![block("10.244.0.0/26", "n1"), block("10.244.0.64/26", "n2")],
        }),
        policy: Ok(PolicyFacts {
            version: version("podroute-policy-agent"),
            status: PolicyStatus {
                health: healthy(),
                node: "n1".into(),
                syncs: 3,
                last_sync_seconds_ago: Some(2),
                ..PolicyStatus::default()
            },
        }),
    }
}

fn bgp(g: &mut Gathered) -> &mut BgpFacts {
    g.bgpd.as_mut().expect("bgpd facts")
}

#[test]
fn a_healthy_node_has_no_problems() {
    let report = report(healthy_cluster());
    assert_eq!(report.problems, []);
    assert_eq!(report.node, "n1");
    assert!(report.daemons.iter().all(|d| d.state == "ready"));
    let text = render(&report, View::TABLE).expect("renders");
    assert!(text.contains("No problems found."), "{text}");
    assert!(text.contains("BGP: 1 of 1 sessions Established"), "{text}");
}

#[test]
fn a_session_down_and_the_block_it_carried() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.peers = vec![peer(
        "10.77.0.2",
        SessionState::Active,
        "connection refused",
    )];
    b.routes.retain(|r| r.peer.is_empty());
    let problems = report(g).problems;
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(problems[0].area, "bgp");
    assert!(
        problems[0]
            .message
            .contains("10.77.0.2 is Active: connection refused"),
        "{problems:#?}"
    );
    assert_eq!(problems[1].area, "routing");
    assert!(
        problems[1]
            .message
            .contains("no route to 10.244.0.64/26 (pods of node n2)"),
        "{problems:#?}"
    );
}

#[test]
fn an_aggregate_covers_a_block() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes.retain(|r| r.peer.is_empty());
    b.routes.push(route(
        "10.244.0.0/16",
        "10.77.0.254",
        KernelState::Installed,
    ));
    assert_eq!(report(g).problems, []);
}

#[test]
fn routes_bgpd_could_not_give_skip_the_route_checks() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes.clear();
    b.routes_error = Some("podroute-bgpd did not answer within 5s".into());
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "routes not checked: podroute-bgpd did not answer within 5s"
    );
}

#[test]
fn a_peer_shut_down_by_configuration_is_no_problem() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    let mut down = peer("10.77.0.9", SessionState::Idle, "");
    down.shutdown = true;
    b.peers.push(down);
    assert_eq!(report(g).problems, []);
}

#[test]
fn a_block_announced_but_refused_says_why() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes[1].best = false;
    b.routes[1].accepted = false;
    b.routes[1].reason = "not accepted (import policy, AS loop or own prefix)".into();
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].message.starts_with(
            "no usable route to 10.244.0.64/26 (pods of node n2): 10.77.0.2 announces 10.244.0.64/26 but it is not accepted"
        ),
        "{problems:#?}"
    );
}

#[test]
fn a_block_whose_next_hop_is_unreachable() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes[1].best = false;
    b.routes[1].reachable = false;
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .message
            .ends_with("with next hop 10.77.0.2, which is unreachable from here"),
        "{problems:#?}"
    );
}

#[test]
fn an_ipv6_pool_does_not_overflow() {
    let mut g = healthy_cluster();
    let i = g.ipamd.as_mut().expect("ipam facts");
    i.usage.push(PoolUsage {
        pool: "default-ipv6".into(),
        cidr: "fd00:10:244::/48".into(),
        // Saturated, as ipamd reports pools of 2^64 addresses or more.
        capacity: u64::MAX,
        allocated: u64::MAX - 1,
        cooling: 1,
        ..PoolUsage::default()
    });
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].message.contains("is 100% used"),
        "{problems:#?}"
    );
}

#[test]
fn daemons_that_disagree_on_the_node_name() {
    let mut g = healthy_cluster();
    g.policy.as_mut().expect("policy facts").status.node = "n1.example.com".into();
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "podroute-bgpd calls this node \"n1\" and podroute-policy-agent \"n1.example.com\""
    );
}

#[test]
fn pods_whose_blocks_are_under_another_node_name() {
    let mut g = healthy_cluster();
    g.policy.as_mut().expect("policy facts").status.endpoints = 2;
    let i = g.ipamd.as_mut().expect("ipam facts");
    i.blocks[0].node = "n1.example.com".into();
    let problems = report(g).problems;
    assert!(
        problems.iter().any(|p| p.message
            == "ipamd has no block for node \"n1\", yet 2 pods run here: their addresses belong to another node's name"),
        "{problems:#?}"
    );
}

#[test]
fn an_aggregate_carries_a_block_whose_own_route_was_refused() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes[1].best = false;
    b.routes[1].accepted = false;
    b.routes.push(route(
        "10.244.0.0/16",
        "10.77.0.254",
        KernelState::Installed,
    ));
    assert_eq!(report(g).problems, []);
}

#[test]
fn a_route_the_kernel_refused() {
    let mut g = healthy_cluster();
    let b = bgp(&mut g);
    b.routes[1].kernel = KernelState::Failed.into();
    b.routes[1].kernel_error = "File exists".into();
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "10.244.0.64/26 via 10.77.0.2 is not in the kernel: File exists"
    );
}

#[test]
fn a_route_another_program_shadows() {
    let mut g = healthy_cluster();
    bgp(&mut g).routes[1].kernel_shadowed_by = "a blackhole or unreachable route (metric 0)".into();
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].message.starts_with(
            "10.244.0.64/26 via 10.77.0.2 is in the kernel, but a blackhole or unreachable route (metric 0) of another program"
        ),
        "{problems:#?}"
    );
}

#[test]
fn an_unannounced_own_block() {
    let mut g = healthy_cluster();
    bgp(&mut g).status.originated.clear();
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .message
            .contains("this node's block 10.244.0.0/26 is not announced")
    );
}

/// shop/db's ingress drops: `packets` counted now, the last seen
/// `ago` seconds ago, `recent` of them in the last 5 minutes.
fn db_dropped(packets: u64, ago: Option<u64>, recent: u64) -> Denial {
    Denial {
        namespace: "shop".into(),
        pod: "db".into(),
        direction: Direction::Ingress.into(),
        packets,
        policies: vec![PolicyRef {
            namespace: "shop".into(),
            name: "db-only-from-api".into(),
        }],
        last_drop_seconds_ago: ago,
        recent_packets: recent,
    }
}

#[test]
fn packets_policy_dropped_recently_name_the_policies() {
    let mut g = healthy_cluster();
    let p = g.policy.as_mut().expect("policy facts");
    p.status.denials = vec![db_dropped(9, Some(3), 7)];
    let report = report(g);
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!(problem.area, "policy");
    assert_eq!(
        problem.message,
        "7 packets to shop/db dropped (ingress): it is isolated by shop/db-only-from-api and no rule of theirs allows them (in the last 5 minutes, the latest 3s ago)"
    );
    assert!(problem.hint.contains("--to shop/db"), "{problem:#?}");
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, View::JSON).expect("json")).expect("parses");
    let denial = &json["policy"]["denials"][0];
    assert_eq!(denial["policies"][0], "shop/db-only-from-api");
    assert_eq!(
        (
            &denial["packets"],
            &denial["last_drop_s_ago"],
            &denial["recent_packets"]
        ),
        (&9.into(), &3.into(), &7.into())
    );
    let text = render(&report, View::TABLE).expect("renders");
    assert!(
        text.contains(
            "\n  dropped: shop/db ingress 9 packets, 7 in the last 5 minutes, last 3s ago (isolated by shop/db-only-from-api)\n"
        ),
        "{text}"
    );
}

#[test]
fn old_drops_are_listed_but_no_problem() {
    let mut g = healthy_cluster();
    let p = g.policy.as_mut().expect("policy facts");
    // Last seen 5 minutes and a second ago; counts from before the
    // agent started (never seen growing).
    p.status.denials = vec![db_dropped(7, Some(301), 0), db_dropped(2, None, 0)];
    p.status.denials[1].direction = Direction::Egress.into();
    let report = report(g);
    assert_eq!(report.problems, []);
    let json: serde_json::Value =
        serde_json::from_str(&render(&report, View::JSON).expect("json")).expect("parses");
    let denials = &json["policy"]["denials"];
    assert_eq!(denials[0]["last_drop_s_ago"], 301);
    assert_eq!(denials[0]["recent_packets"], 0);
    assert!(denials[1]["last_drop_s_ago"].is_null(), "{json}");
    let text = render(&report, View::TABLE).expect("renders");
    assert!(
        text.contains("\n  dropped: shop/db ingress 7 packets, last 5m1s ago (isolated by shop/db-only-from-api)\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  dropped: shop/db egress 2 packets, none seen since the agent started (isolated by shop/db-only-from-api)\n"),
        "{text}"
    );
    assert!(text.contains("No problems found."), "{text}");

    // At 5 minutes it still is.
    let mut g = healthy_cluster();
    let p = g.policy.as_mut().expect("policy facts");
    p.status.denials = vec![db_dropped(7, Some(300), 1)];
    assert_eq!(super::report(g).problems.len(), 1);
}

#[test]
fn refused_policies_are_problems() {
    let mut g = healthy_cluster();
    let p = g.policy.as_mut().expect("policy facts");
    p.status.refused = vec!["NetworkPolicy shop/bad: spec.podSelector: invalid".into()];
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].message,
        "not in force, refused: NetworkPolicy shop/bad: spec.podSelector: invalid"
    );
}

#[test]
fn an_unreachable_daemon_leaves_the_others() {
    let mut g = healthy_cluster();
    g.bgpd = Err("is podroute-bgpd running? socket /run/podroute/bgpd.sock not found".into());
    let report = report(g);
    assert!(report.bgp.is_none());
    assert!(report.ipam.is_some() && report.policy.is_some());
    assert_eq!(report.daemons[0].state, "unreachable");
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert!(
        report.problems[0]
            .message
            .contains("socket /run/podroute/bgpd.sock not found")
    );
}

#[test]
fn a_nearly_full_pool() {
    let mut g = healthy_cluster();
    let i = g.ipamd.as_mut().expect("ipam facts");
    i.usage[0].allocated = 60_000;
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].message.contains("is 91% used"), "{problems:#?}");
}

#[test]
fn a_daemon_not_ready_says_why() {
    let mut g = healthy_cluster();
    let p = g.policy.as_mut().expect("policy facts");
    p.status.health = Some(DaemonHealth {
        live: true,
        ready: false,
        reason: "waiting for the first view of the cluster".into(),
        ..DaemonHealth::default()
    });
    let problems = report(g).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .message
            .contains("podroute-policy-agent is not-ready: waiting for the first view"),
        "{problems:#?}"
    );
}
