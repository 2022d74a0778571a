// `podctl status`: one screen for a node, like `calicoctl node status` and
// `cilium status`, that also says what is wrong and where to look. It asks
// the three daemons everything at once (versions, health, sessions, the
// Loc-RIB with its kernel state, IPAM blocks and usage, policy sync and
// drops), then cross-checks them: every pod block IPAM gave another node
// must have a route here that the kernel holds; every session should be up;
// packets policy dropped are named with the policies that isolate the pod.
// The checks are a pure function of what was gathered (`report`).

use std::collections::HashSet;

use ipnetwork::IpNetwork;
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{BgpStatus, ListPeersRequest, ListRoutesRequest, Peer, Route};
use podroute_proto::common::v1::{DaemonHealth, GetStatusRequest, GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{Block, IpamStatus, ListBlocksRequest, PoolUsage, UsageRequest};
use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
use podroute_proto::policy::v1::{Direction, PolicyStatus};
use serde::Serialize;

use crate::Context;
use crate::bgp::{PeerView, RouteView};
use crate::daemons::{self, Daemon, Target, Unreachable};
use crate::human::{self, Tone};
use crate::output::{RenderError, View};

/// Problems listed in full; beyond that, a count.
const MAX_PROBLEMS: usize = 20;

/// What bgpd told us.
#[derive(Debug, Clone)]
pub struct BgpFacts {
    pub version: VersionInfo,
    pub status: BgpStatus,
    pub peers: Vec<Peer>,
    /// The routes status looks at, never the whole Loc-RIB (a full table
    /// would be tens of megabytes): those the kernel refused or another
    /// program shadows, and every route for or covering another node's
    /// IPAM block.
    pub routes: Vec<Route>,
    /// Why the routes could not be asked (bgpd busy past the call's
    /// time): the route checks are skipped, the rest stands.
    pub routes_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IpamFacts {
    pub version: VersionInfo,
    pub status: IpamStatus,
    pub usage: Vec<PoolUsage>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
pub struct PolicyFacts {
    pub version: VersionInfo,
    pub status: PolicyStatus,
}

/// Everything gathered; a daemon that could not be asked is its error,
/// worded for the reader.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub bgpd: Result<BgpFacts, String>,
    pub ipamd: Result<IpamFacts, String>,
    pub policy: Result<PolicyFacts, String>,
}

/// Asks the three daemons concurrently, then bgpd how ipamd's blocks of
/// other nodes are routed. A daemon whose setting is unusable is reported
/// like one that cannot be reached.
pub async fn gather(ctx: &Context) -> Gathered {
    let target = |d: Daemon| ctx.endpoints.target(d).map_err(|e| e.to_string());
    let (bgpd, ipamd, policy) = (
        target(Daemon::Bgpd),
        target(Daemon::Ipamd),
        target(Daemon::Policy),
    );
    let (b, i, p) = tokio::join!(
        async {
            let t = bgpd.as_ref().map_err(Clone::clone)?;
            gather_bgpd(t).await.map_err(|e| e.to_string())
        },
        async {
            let t = ipamd?;
            gather_ipamd(&t).await.map_err(|e| e.to_string())
        },
        async {
            let t = policy?;
            gather_policy(&t).await.map_err(|e| e.to_string())
        },
    );
    let b = match (b, &bgpd) {
        (Ok(mut facts), Ok(t)) => {
            let blocks = foreign_blocks(&facts, i.as_ref().ok());
            match bgp_routes(t, blocks).await {
                Ok(routes) => facts.routes = routes,
                Err(e) => facts.routes_error = Some(e.to_string()),
            }
            Ok(facts)
        }
        (b, _) => b,
    };
    Gathered {
        bgpd: b,
        ipamd: i,
        policy: p,
    }
}

async fn gather_bgpd(target: &Target) -> Result<BgpFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .get_version(GetVersionRequest {})
            .await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .get_status(GetStatusRequest {})
            .await
    })
    .await?;
    let peers = daemons::call(target, |ch| async move {
        BgpAdminClient::new(ch)
            .list_peers(ListPeersRequest {})
            .await
    })
    .await?
    .peers;
    Ok(BgpFacts {
        version,
        status,
        peers,
        routes: Vec::new(),
        routes_error: None,
    })
}

/// The blocks check_blocks judges: another node's, announced.
fn foreign_blocks(b: &BgpFacts, i: Option<&IpamFacts>) -> Vec<String> {
    i.into_iter()
        .flat_map(|i| &i.blocks)
        .filter(|block| {
            !block.node.is_empty() && block.node != b.status.node && !block.disable_bgp_export
        })
        .map(|block| block.cidr.clone())
        .collect()
}

/// The routes status looks at, in two answers whatever the cluster's size:
/// those the kernel refused or another program shadows, and every route
/// for or covering one of `blocks`.
async fn bgp_routes(target: &Target, blocks: Vec<String>) -> Result<Vec<Route>, Unreachable> {
    daemons::call(target, |ch| async move {
        let mut client =
            BgpAdminClient::new(ch).max_decoding_message_size(crate::bgp::MAX_ROUTES_MESSAGE);
        let mut routes = client
            .list_routes(ListRoutesRequest {
                kernel_problems: true,
                ..ListRoutesRequest::default()
            })
            .await?
            .into_inner()
            .routes;
        if !blocks.is_empty() {
            let mut seen: HashSet<(String, String, u32)> = routes
                .iter()
                .map(|r| (r.prefix.clone(), r.peer.clone(), r.path_id))
                .collect();
            let covering = client
                .list_routes(ListRoutesRequest {
                    covering: blocks,
                    ..ListRoutesRequest::default()
                })
                .await?
                .into_inner()
                .routes;
            for route in covering {
                if seen.insert((route.prefix.clone(), route.peer.clone(), route.path_id)) {
                    routes.push(route);
                }
            }
        }
        Ok(tonic::Response::new(routes))
    })
    .await
}

async fn gather_ipamd(target: &Target) -> Result<IpamFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        IpamClient::new(ch).get_version(GetVersionRequest {}).await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        IpamClient::new(ch).get_status(GetStatusRequest {}).await
    })
    .await?;
    let usage = daemons::call(target, |ch| async move {
        IpamClient::new(ch).usage(UsageRequest {}).await
    })
    .await?
    .pools;
    let blocks = daemons::call(target, |ch| async move {
        IpamClient::new(ch)
            .list_blocks(ListBlocksRequest::default())
            .await
    })
    .await?
    .blocks;
    Ok(IpamFacts {
        version,
        status,
        usage,
        blocks,
    })
}

async fn gather_policy(target: &Target) -> Result<PolicyFacts, Unreachable> {
    let version = daemons::call(target, |ch| async move {
        PolicyAdminClient::new(ch)
            .get_version(GetVersionRequest {})
            .await
    })
    .await?;
    let status = daemons::call(target, |ch| async move {
        PolicyAdminClient::new(ch)
            .get_status(GetStatusRequest {})
            .await
    })
    .await?;
    Ok(PolicyFacts { version, status })
}

/// `podctl status -o json`: a documented, stable schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// This node's name as bgpd (or the policy agent) knows it; empty if
    /// neither answered.
    pub node: String,
    pub daemons: Vec<DaemonView>,
    /// Absent when bgpd did not answer.
    pub bgp: Option<BgpView>,
    pub ipam: Option<IpamView>,
    pub policy: Option<PolicyView>,
    /// What is wrong, most fundamental first; empty when all is well.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct DaemonView {
    pub daemon: String,
    /// "ready", "not-ready", "not-live" or "unreachable".
    pub state: String,
    pub version: String,
    pub uptime_s: u64,
    /// Why not ready, or why it could not be reached.
    pub reason: String,
    pub metrics_address: String,
}

#[derive(Debug, Serialize)]
pub struct BgpView {
    pub local_asn: u32,
    pub router_id: String,
    pub sessions_established: u32,
    pub sessions_configured: u32,
    pub peers: Vec<PeerView>,
    /// False with `--no-kernel`.
    pub kernel_enabled: bool,
    pub kernel_table: u32,
    /// Routes of ours in the kernel, waiting, refused.
    pub kernel_installed: u64,
    pub kernel_pending: u64,
    pub kernel_failed: u64,
    pub netlink_errors: u64,
    /// Prefixes this node announces.
    pub originated: Vec<String>,
    /// The ipamd the blocks come from ("" without one) and whether its
    /// stream is up.
    pub ipamd: String,
    pub ipamd_connected: bool,
}

#[derive(Debug, Serialize)]
pub struct IpamView {
    pub store: String,
    pub pools: Vec<PoolView>,
    /// Blocks affine to this node.
    pub node_blocks: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PoolView {
    pub pool: String,
    pub cidr: String,
    pub capacity: u64,
    pub allocated: u64,
    pub blocks_total: u64,
    pub blocks_claimed: u64,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub source: String,
    /// Null before the first sync.
    pub last_sync_s_ago: Option<u64>,
    pub last_sync_duration_ms: u64,
    pub last_error: String,
    pub policies: u32,
    pub endpoints: u32,
    pub isolated_endpoints: u32,
    pub rules: u64,
    pub ipset_members: u64,
    pub denials: Vec<DenialView>,
    /// Objects refused by validation, so not in force ("NetworkPolicy
    /// ns/name: why").
    pub refused: Vec<String>,
    /// Packets dropped at pods the agent has no policy view of yet.
    pub unknown_pod_dropped_packets: u64,
    /// Why the drop counters could not be read; empty when they were.
    pub denials_error: String,
}

#[derive(Debug, Serialize)]
pub struct DenialView {
    /// "namespace/pod".
    pub pod: String,
    /// "ingress" or "egress".
    pub direction: String,
    /// The kernel counters now: since the pod's chain was last rewritten.
    pub packets: u64,
    /// Seconds since the agent saw them grow; None if it has not since it
    /// started.
    pub last_drop_s_ago: Option<u64>,
    /// Packets dropped in the last RECENT_DROPS_S.
    pub recent_packets: u64,
    /// "namespace/name" of each policy isolating the pod that way.
    pub policies: Vec<String>,
}

/// One thing wrong, and what to look at next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// "podroute-bgpd", "podroute-ipamd", "podroute-policy-agent" (the
    /// daemon itself), "bgp", "routing", "ipam" or "policy".
    pub area: String,
    pub message: String,
    /// A command or a check that tells more; may be empty.
    pub hint: String,
}

impl Problem {
    fn new(area: &str, message: String, hint: String) -> Problem {
        Problem {
            area: area.to_string(),
            message,
            hint,
        }
    }
}

/// The report, and its checks, from what was gathered.
pub fn report(g: Gathered) -> StatusReport {
    let mut problems = Vec::new();
    let daemons = vec![
        daemon_view(
            Daemon::Bgpd,
            g.bgpd.as_ref().map(|f| (&f.version, &f.status.health)),
        ),
        daemon_view(
            Daemon::Ipamd,
            g.ipamd.as_ref().map(|f| (&f.version, &f.status.health)),
        ),
        daemon_view(
            Daemon::Policy,
            g.policy.as_ref().map(|f| (&f.version, &f.status.health)),
        ),
    ];
    for d in &daemons {
        if d.state != "ready" {
            let hint = match d.state.as_str() {
                "unreachable" => String::new(),
                _ => format!(
                    "its log says more (journalctl or kubectl logs for {})",
                    d.daemon
                ),
            };
            problems.push(Problem::new(
                &d.daemon,
                format!("{} is {}: {}", d.daemon, d.state, d.reason),
                hint,
            ));
        }
    }
    let node = match (&g.bgpd, &g.policy) {
        (Ok(b), _) if !b.status.node.is_empty() => b.status.node.clone(),
        (_, Ok(p)) => p.status.node.clone(),
        _ => String::new(),
    };
    let bgp = g.bgpd.as_ref().ok().map(|b| {
        let view = bgp_view(b);
        check_sessions(b, &view.peers, &mut problems);
        check_kernel(b, &mut problems);
        view
    });
    check_node_names(&g, &mut problems);
    match (&g.bgpd, &g.ipamd) {
        (Ok(b), _) if b.routes_error.is_some() => problems.push(Problem::new(
            "routing",
            format!(
                "routes not checked: {}",
                b.routes_error.as_deref().unwrap_or_default()
            ),
            "bgpd may be busy converging; run podctl status again".into(),
        )),
        (Ok(b), Ok(i)) => check_blocks(b, i, &node, &mut problems),
        _ => {}
    }
    let ipam = g.ipamd.as_ref().ok().map(|i| {
        check_pools(i, &mut problems);
        ipam_view(i, &node)
    });
    let policy = g.policy.as_ref().ok().map(|p| {
        let view = policy_view(p);
        check_policy(p, &view, &mut problems);
        view
    });
    StatusReport {
        node,
        daemons,
        bgp,
        ipam,
        policy,
        problems,
    }
}

fn daemon_view(
    daemon: Daemon,
    facts: Result<(&VersionInfo, &Option<DaemonHealth>), &String>,
) -> DaemonView {
    match facts {
        Err(reason) => DaemonView {
            daemon: daemon.name().to_string(),
            state: "unreachable".into(),
            version: String::new(),
            uptime_s: 0,
            reason: reason.clone(),
            metrics_address: String::new(),
        },
        Ok((version, health)) => {
            let health = health.clone().unwrap_or_default();
            let state = match (health.live, health.ready) {
                (false, _) => "not-live",
                (true, false) => "not-ready",
                (true, true) => "ready",
            };
            DaemonView {
                daemon: daemon.name().to_string(),
                state: state.into(),
                version: version.version.clone(),
                uptime_s: health.uptime_seconds,
                reason: health.reason,
                metrics_address: health.metrics_address,
            }
        }
    }
}

fn bgp_view(b: &BgpFacts) -> BgpView {
    let fib = b.status.fib.unwrap_or_default();
    BgpView {
        local_asn: b.status.local_as,
        router_id: b.status.router_id.clone(),
        sessions_established: b.status.peers_established,
        sessions_configured: b.status.peers_configured,
        peers: b.peers.iter().cloned().map(PeerView::from).collect(),
        kernel_enabled: fib.enabled,
        kernel_table: fib.table,
        kernel_installed: fib.installed,
        kernel_pending: fib.pending,
        kernel_failed: fib.failed,
        netlink_errors: fib.netlink_errors,
        originated: b.status.originated.clone(),
        ipamd: b.status.ipamd.clone(),
        ipamd_connected: b.status.ipamd_connected,
    }
}

fn check_sessions(b: &BgpFacts, peers: &[PeerView], problems: &mut Vec<Problem>) {
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
fn check_kernel(b: &BgpFacts, problems: &mut Vec<Problem>) {
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
fn check_blocks(b: &BgpFacts, i: &IpamFacts, node: &str, problems: &mut Vec<Problem>) {
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
fn unrouted_block(b: &BgpFacts, block: &Block, cidr: IpNetwork) -> Problem {
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
fn check_node_names(g: &Gathered, problems: &mut Vec<Problem>) {
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

fn ipam_view(i: &IpamFacts, node: &str) -> IpamView {
    IpamView {
        store: i.status.store.clone(),
        pools: i
            .usage
            .iter()
            .map(|u| PoolView {
                pool: u.pool.clone(),
                cidr: u.cidr.clone(),
                capacity: u.capacity,
                allocated: u.allocated,
                blocks_total: u.blocks_total,
                blocks_claimed: u.blocks_claimed,
            })
            .collect(),
        node_blocks: i
            .blocks
            .iter()
            .filter(|b| !node.is_empty() && b.node == node)
            .map(|b| b.cidr.clone())
            .collect(),
    }
}

/// A pool 90% used will soon refuse new pods.
fn check_pools(i: &IpamFacts, problems: &mut Vec<Problem>) {
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

fn policy_view(p: &PolicyFacts) -> PolicyView {
    let s = &p.status;
    PolicyView {
        source: s.source.clone(),
        last_sync_s_ago: s.last_sync_seconds_ago,
        last_sync_duration_ms: s.last_sync_duration_ms,
        last_error: s.last_error.clone(),
        policies: s.policies,
        endpoints: s.endpoints,
        isolated_endpoints: s.isolated_endpoints,
        rules: s.rules,
        ipset_members: s.ipset_members,
        denials: s
            .denials
            .iter()
            .map(|d| DenialView {
                pod: format!("{}/{}", d.namespace, d.pod),
                direction: direction_name(d.direction).into(),
                packets: d.packets,
                last_drop_s_ago: d.last_drop_seconds_ago,
                recent_packets: d.recent_packets,
                policies: d
                    .policies
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect(),
            })
            .collect(),
        refused: s.refused.clone(),
        unknown_pod_dropped_packets: s.unknown_pod_dropped_packets,
        denials_error: s.denials_error.clone(),
    }
}

/// Drops at most this old are a problem; older ones are only listed. The
/// policy agent's `recent_packets` window (policy-agent/METRICS.md).
const RECENT_DROPS_S: u64 = 300;

/// Denials listed under the Policy line of the table; -o json lists all.
const MAX_DENIALS_SHOWN: usize = 10;

/// The table's lines for the pods policy dropped packets of, recent or
/// not: "  dropped: shop/db ingress 7 packets, 2 in the last 5 minutes,
/// last 3s ago (isolated by shop/x)".
fn denial_lines(p: &PolicyView) -> String {
    let mut out = String::new();
    for d in p.denials.iter().take(MAX_DENIALS_SHOWN) {
        let mut line = format!("  dropped: {} {} {} packets", d.pod, d.direction, d.packets);
        if d.recent_packets > 0 {
            line.push_str(&format!(", {} in the last 5 minutes", d.recent_packets));
        }
        match d.last_drop_s_ago {
            Some(ago) => line.push_str(&format!(", last {} ago", human::duration(ago))),
            None => line.push_str(", none seen since the agent started"),
        }
        out.push_str(&format!("{line} (isolated by {})\n", d.policies.join(", ")));
    }
    if p.denials.len() > MAX_DENIALS_SHOWN {
        out.push_str(&format!(
            "  ... and {} more (-o json lists all)\n",
            p.denials.len() - MAX_DENIALS_SHOWN
        ));
    }
    out
}

fn direction_name(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Egress) => "egress",
        _ => "ingress",
    }
}

fn check_policy(p: &PolicyFacts, view: &PolicyView, problems: &mut Vec<Problem>) {
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

/// Renders the report.
pub fn render(report: &StatusReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let style = view.style;
    let mut out = String::new();
    let title = if report.node.is_empty() {
        "podroute".to_string()
    } else {
        format!("podroute on node {}", report.node)
    };
    out.push_str(&title);
    if let Some(b) = &report.bgp {
        out.push_str(&format!(", AS {}, router ID {}", b.local_asn, b.router_id));
    }
    out.push_str("\n\n");
    let rows: Vec<Vec<String>> = report
        .daemons
        .iter()
        .map(|d| {
            vec![
                d.daemon.clone(),
                style.paint(
                    &d.state,
                    if d.state == "ready" {
                        Tone::Good
                    } else {
                        Tone::Bad
                    },
                ),
                if d.version.is_empty() {
                    "-".into()
                } else {
                    d.version.clone()
                },
                if d.state == "unreachable" {
                    "-".into()
                } else {
                    human::duration(d.uptime_s)
                },
                if d.metrics_address.is_empty() {
                    "-".into()
                } else {
                    d.metrics_address.clone()
                },
            ]
        })
        .collect();
    out.push_str(&human::table(
        &["DAEMON", "STATE", "VERSION", "UPTIME", "METRICS"],
        &rows,
    ));
    if let Some(b) = &report.bgp {
        out.push('\n');
        let kernel = if b.kernel_enabled {
            format!(
                "{} routes of ours in kernel table {} ({} pending, {} refused)",
                b.kernel_installed, b.kernel_table, b.kernel_pending, b.kernel_failed
            )
        } else {
            "kernel routes off (--no-kernel)".to_string()
        };
        out.push_str(&format!(
            "BGP: {} of {} sessions Established; {kernel}\n",
            b.sessions_established, b.sessions_configured
        ));
        if !b.peers.is_empty() {
            let rows: Vec<Vec<String>> = b
                .peers
                .iter()
                .map(|p| {
                    vec![
                        p.peer.clone(),
                        p.name.clone(),
                        p.asn.to_string(),
                        style.state(&p.state),
                        format!("{}/{}", p.prefixes_accepted, p.prefixes_sent),
                        if p.state == "Established" {
                            String::new()
                        } else {
                            p.last_error.clone()
                        },
                    ]
                })
                .collect();
            out.push_str(&indent(&human::table(
                &["PEER", "NAME", "AS", "STATE", "IN/OUT", "LAST ERROR"],
                &rows,
            )));
        }
        if !b.originated.is_empty() {
            out.push_str(&format!("  announcing: {}\n", b.originated.join(", ")));
        }
    }
    if let Some(i) = &report.ipam {
        out.push('\n');
        out.push_str(&format!("IPAM: {}\n", i.store));
        for p in &i.pools {
            out.push_str(&format!(
                "  pool {} {}: {} of {} addresses, {} of {} blocks claimed\n",
                p.pool, p.cidr, p.allocated, p.capacity, p.blocks_claimed, p.blocks_total
            ));
        }
        if !i.node_blocks.is_empty() {
            out.push_str(&format!(
                "  this node's blocks: {}\n",
                i.node_blocks.join(", ")
            ));
        }
    }
    if let Some(p) = &report.policy {
        out.push('\n');
        let synced = match p.last_sync_s_ago {
            Some(ago) => format!(
                "synced {} ago in {} ms",
                human::duration(ago),
                p.last_sync_duration_ms
            ),
            None => "not synced yet".to_string(),
        };
        out.push_str(&format!(
            "Policy: {synced}; {} policies, {} endpoints here ({} isolated), {} rules, {} ipset members\n",
            p.policies, p.endpoints, p.isolated_endpoints, p.rules, p.ipset_members
        ));
        out.push_str(&denial_lines(p));
    }
    out.push('\n');
    if report.problems.is_empty() {
        out.push_str(&style.paint("No problems found.", Tone::Good));
        out.push('\n');
    } else {
        let header = format!("Problems ({}):", report.problems.len());
        out.push_str(&style.paint(&header, Tone::Bad));
        out.push('\n');
        for p in report.problems.iter().take(MAX_PROBLEMS) {
            out.push_str(&format!("  [{}] {}\n", p.area, p.message));
            if !p.hint.is_empty() {
                out.push_str(&format!("      -> {}\n", p.hint));
            }
        }
        if report.problems.len() > MAX_PROBLEMS {
            out.push_str(&format!(
                "  ... and {} more (-o json lists all)\n",
                report.problems.len() - MAX_PROBLEMS
            ));
        }
    }
    Ok(out)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
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
        bgp(&mut g).routes[1].kernel_shadowed_by =
            "a blackhole or unreachable route (metric 0)".into();
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
}
