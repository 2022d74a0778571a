// `podctl status`: one screen for a node, like `calicoctl node status` and
// `cilium status`, that also says what is wrong and where to look. It asks
// the three daemons everything at once (versions, health, sessions, the
// Loc-RIB with its kernel state, IPAM blocks and usage, policy sync and
// drops), then cross-checks them: every pod block IPAM gave another node
// must have a route here that the kernel holds; every session should be up;
// packets policy dropped are named with the policies that isolate the pod.
// The checks are a pure function of what was gathered (`report`).
// gather.rs asks, checks.rs judges, render.rs prints; here are the
// report's types, `report` and the views it is made of.

mod checks;
mod gather;
mod render;
#[cfg(test)]
mod tests;

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

use checks::*;
pub use gather::gather;
pub use render::render;

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

fn direction_name(direction: i32) -> &'static str {
    match Direction::try_from(direction) {
        Ok(Direction::Egress) => "egress",
        _ => "ingress",
    }
}
