// The checks of `podctl status`: each reads what was gathered and adds the
// problems it finds, with what to look at next.

use super::*;

pub(super) fn check_sessions(b: &BgpFacts, peers: &[PeerView], problems: &mut Vec<Problem>) {
    for peer in peers {
        // Shut down by configuration (maintenance): down on purpose.
        if peer.state == "Established" || peer.shutdown {
            continue;
        }
        let who = if peer.name.is_empty() {
            peer.peer.clone()
        } else {
            format!("{} ({})", peer.peer, peer.name)
        };
        let why = if peer.last_error.is_empty() {
            "no error recorded yet".to_string()
        } else {
            peer.last_error.clone()
        };
        let gr = if peer.graceful_restart.helping() {
            format!(
                "; its {} routes are kept for {}s (graceful restart)",
                peer.graceful_restart.stale_prefixes, peer.graceful_restart.helper_seconds_left
            )
        } else {
            String::new()
        };
        problems.push(Problem::new(
            "bgp",
            format!("session with {who} is {}: {why}{gr}", peer.state),
            format!(
                "is podroute-bgpd (or the router) at {} running and reachable on TCP 179? `podctl bgp peer {}`",
                peer.peer, peer.peer
            ),
        ));
    }
    if !b.status.ipamd.is_empty() && !b.status.ipamd_connected {
        problems.push(Problem::new(
            "bgp",
            format!(
                "bgpd has lost its stream from ipamd {}: new blocks of this node are not announced",
                b.status.ipamd
            ),
            "is podroute-ipamd running and reachable from this node?".into(),
        ));
    }
    if !b.status.config_error.is_empty() {
        problems.push(Problem::new(
            "podroute-bgpd",
            format!(
                "the last change to {} was refused (the previous configuration runs): {}",
                b.status.config_file, b.status.config_error
            ),
            String::new(),
        ));
    }
}

/// Selected paths the kernel refused, or whose next hop does not resolve.
pub(super) fn check_kernel(b: &BgpFacts, problems: &mut Vec<Problem>) {
    for route in b.routes.iter().filter(|r| r.best) {
        let view = RouteView::from(route.clone());
        let via = via(&view);
        if view.kernel == "installed" && !view.kernel_shadowed_by.is_empty() {
            problems.push(Problem::new(
                "routing",
                format!(
                    "{}{via} is in the kernel, but {} of another program for the same prefix wins: packets do not follow BGP",
                    view.prefix, view.kernel_shadowed_by
                ),
                format!(
                    "`ip route show {}` shows both; remove the other route if it is a leftover",
                    view.prefix
                ),
            ));
        } else if view.kernel == "failed" {
            problems.push(Problem::new(
                "routing",
                format!(
                    "{}{via} is not in the kernel: {}",
                    view.prefix, view.kernel_error
                ),
                format!(
                    "`ip route show {}` shows what holds the prefix",
                    view.prefix
                ),
            ));
        }
        // A best path always has a reachable next hop: an unreachable one
        // is why a block has no best path (check_blocks).
    }
}

fn via(route: &RouteView) -> String {
    match route.next_hops.first() {
        Some(hop) if !route.peer.is_empty() => format!(" via {hop}"),
        _ => String::new(),
    }
}

/// Every block IPAM gave another node must be routed here: by a best path
/// for it or for a prefix covering it (a ToR's aggregate), held by the
/// kernel. Our own blocks must be announced.
pub(super) fn check_blocks(b: &BgpFacts, i: &IpamFacts, node: &str, problems: &mut Vec<Problem>) {
    let best: Vec<IpNetwork> = b
        .routes
        .iter()
        .filter(|r| r.best)
        .filter_map(|r| r.prefix.parse().ok())
        .collect();
    let originated: Vec<IpNetwork> = b
        .status
        .originated
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    for block in &i.blocks {
        if block.node.is_empty() || block.disable_bgp_export {
            continue;
        }
        let Ok(cidr) = block.cidr.parse::<IpNetwork>() else {
            continue;
        };
        if block.node == node {
            if b.status.node == node && !b.status.ipamd.is_empty() && !originated.contains(&cidr) {
                problems.push(Problem::new(
                    "routing",
                    format!(
                        "this node's block {} is not announced: other nodes cannot reach its pods",
                        block.cidr
                    ),
                    "`podctl bgp routes --prefix` on this node; is bgpd following ipamd?".into(),
                ));
            }
            continue;
        }
        // A covering route the kernel refused is check_kernel's to report.
        // Any covering route counts, a default route too: a ToR that sends
        // only a default is a design, not a fault.
        if !best.iter().any(|prefix| covers(*prefix, cidr)) {
            problems.push(unrouted_block(b, block, cidr));
        }
    }
}

/// Why another node's block has no best path here: paths that came but
/// were not accepted or whose next hop does not resolve, or none came.
pub(super) fn unrouted_block(b: &BgpFacts, block: &Block, cidr: IpNetwork) -> Problem {
    let whose = format!("{} (pods of node {})", block.cidr, block.node);
    let paths: Vec<RouteView> = b
        .routes
        .iter()
        .filter(|r| {
            r.prefix
                .parse::<IpNetwork>()
                .is_ok_and(|prefix| covers(prefix, cidr))
        })
        .cloned()
        .map(RouteView::from)
        .collect();
    if let Some(path) = paths.iter().find(|p| !p.accepted) {
        return Problem::new(
            "routing",
            format!(
                "no usable route to {whose}: {} announces {} but it is not accepted ({})",
                path.peer, path.prefix, path.reason
            ),
            format!(
                "`podctl bgp route {}` shows why; an AS loop, the import policy or the own-prefix guard refused it",
                path.prefix
            ),
        );
    }
    if let Some(path) = paths.iter().find(|p| !p.reachable) {
        return Problem::new(
            "routing",
            format!(
                "no usable route to {whose}: {} announces {} with next hop {}, which is unreachable from here",
                path.peer,
                path.prefix,
                path.next_hops.join(", ")
            ),
            "the next hop must be on a connected network or routed to (`ip route get NEXT-HOP`)"
                .into(),
        );
    }
    Problem::new(
        "routing",
        format!("no route to {whose}: no peer announces it"),
        format!(
            "is the session with {} (or the router in between) Established? run `podctl status` on {}",
            block.node, block.node
        ),
    )
}

/// bgpd, the policy agent and ipamd must agree on this node's name: a
/// mismatch (the CNI configuration's nodeName, a --node flag) leaves the
/// node's blocks unannounced.
pub(super) fn check_node_names(g: &Gathered, problems: &mut Vec<Problem>) {
    let (Ok(b), Ok(p)) = (&g.bgpd, &g.policy) else {
        return;
    };
    let (bgp_node, policy_node) = (&b.status.node, &p.status.node);
    if !bgp_node.is_empty() && !policy_node.is_empty() && bgp_node != policy_node {
        problems.push(Problem::new(
            "routing",
            format!(
                "podroute-bgpd calls this node {bgp_node:?} and podroute-policy-agent {policy_node:?}"
            ),
            "both take the node's name from --node or NODE_NAME: give them the same".into(),
        ));
        return;
    }
    if let Ok(i) = &g.ipamd
        && !bgp_node.is_empty()
        && !b.status.ipamd.is_empty()
        && p.status.endpoints > 0
        && !i.blocks.iter().any(|block| &block.node == bgp_node)
    {
        problems.push(Problem::new(
            "routing",
            format!(
                "ipamd has no block for node {bgp_node:?}, yet {} pods run here: their addresses belong to another node's name",
                p.status.endpoints
            ),
            "the CNI configuration's nodeName must be the node's name as bgpd's --node gives it (`podctl ipam blocks` lists the names in use)".into(),
        ));
    }
}

fn covers(outer: IpNetwork, inner: IpNetwork) -> bool {
    match (outer, inner) {
        (IpNetwork::V4(o), IpNetwork::V4(i)) => o.prefix() <= i.prefix() && o.contains(i.ip()),
        (IpNetwork::V6(o), IpNetwork::V6(i)) => o.prefix() <= i.prefix() && o.contains(i.ip()),
        _ => false,
    }
}

/// A pool 90% used will soon refuse new pods.
pub(super) fn check_pools(i: &IpamFacts, problems: &mut Vec<Problem>) {
    for u in &i.usage {
        // u128: an IPv6 pool's capacity is u64::MAX (saturated).
        let used = u128::from(u.allocated) + u128::from(u.cooling);
        let capacity = u128::from(u.capacity);
        if !u.disabled && capacity > 0 && used * 10 >= capacity * 9 {
            problems.push(Problem::new(
                "ipam",
                format!(
                    "pool {} ({}) is {}% used: {used} of {} addresses",
                    u.pool,
                    u.cidr,
                    used * 100 / capacity,
                    u.capacity
                ),
                "add a pool (`podctl ipam pool create`) or release leaks (`podctl ipam check`)"
                    .into(),
            ));
        }
    }
}

pub(super) fn check_policy(p: &PolicyFacts, view: &PolicyView, problems: &mut Vec<Problem>) {
    let s = &p.status;
    if !s.last_error.is_empty() {
        problems.push(Problem::new(
            "policy",
            format!(
                "the last policy sync failed (the rules in force stay): {}",
                s.last_error
            ),
            String::new(),
        ));
    }
    for refused in &s.refused {
        problems.push(Problem::new(
            "policy",
            format!("not in force, refused: {refused}"),
            "fix the object; the pods it would allow stay denied meanwhile".into(),
        ));
    }
    if !s.denials_error.is_empty() {
        problems.push(Problem::new(
            "policy",
            format!(
                "cannot tell which pods policy drops packets of: {}",
                s.denials_error
            ),
            String::new(),
        ));
    }
    if s.unknown_pod_dropped_packets > 0 {
        problems.push(Problem::new(
            "policy",
            format!(
                "{} packets dropped at pod interfaces the agent has no view of yet",
                s.unknown_pod_dropped_packets
            ),
            "a pod the manifests or the API server do not show yet (or any more)".into(),
        ));
    }
    // Old drops (or counts from before the agent started) are history,
    // listed in the policy section but no problem now.
    for d in &view.denials {
        let Some(ago) = d.last_drop_s_ago.filter(|ago| *ago <= RECENT_DROPS_S) else {
            continue;
        };
        let (verb, explain) = match d.direction.as_str() {
            "egress" => (
                "from",
                format!(
                    "podctl policy explain --from {} --to DESTINATION --port PORT/TCP",
                    d.pod
                ),
            ),
            _ => (
                "to",
                format!(
                    "podctl policy explain --from SOURCE --to {} --port PORT/TCP",
                    d.pod
                ),
            ),
        };
        problems.push(Problem::new(
            "policy",
            format!(
                "{} packets {verb} {} dropped ({}): it is isolated by {} and no rule of theirs allows them (in the last 5 minutes, the latest {} ago)",
                d.recent_packets,
                d.pod,
                d.direction,
                d.policies.join(", "),
                human::duration(ago)
            ),
            explain,
        ));
    }
}
