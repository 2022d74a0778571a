// `podctl bgp ...`: views of podroute-bgpd's sessions and routes.
// `peers` is a summary table like `birdc show protocols` / `gobgp neighbor`;
// `peer ADDR` the detail of `show bgp neighbors ADDR`; `routes` the Loc-RIB
// like `show ip bgp` (or a peer's received or advertised routes); `route
// PREFIX` every path of one prefix like `show ip bgp PREFIX` / `birdc show
// route for PREFIX all`, with why the best one won.

use std::fmt::Write as _;

use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{
    GetPeerRequest, KernelState, ListPeersRequest, ListRoutesRequest, MessageCounters, Peer, Route,
    RouteDirection, SessionState, as_path_segment,
};
use podroute_proto::common::v1::AddressFamily;
use serde::{Serialize, Serializer};

use crate::daemons::{self, Target, Unreachable};
use crate::human::{self, Tone};
use crate::output::{RenderError, View};

/// One peer as podctl prints it; the JSON field names are a documented,
/// stable schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct PeerView {
    pub peer: String,
    /// Graceful restart (RFC 4724) with this peer.
    pub graceful_restart: GracefulView,
    pub name: String,
    pub asn: u32,
    pub local_asn: u32,
    pub state: String,
    pub uptime_s: u64,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_sent: u64,
    pub last_error: String,
    pub description: String,
    /// Shut down by configuration: down on purpose.
    pub shutdown: bool,
    /// Null when the peer has no BFD.
    pub bfd: Option<BfdView>,
}

/// A peer's BFD session (RFC 5880). Intervals are kept in milliseconds, as
/// BFD configures them, and written in JSON as seconds (`_s`, fractional),
/// like every duration podctl prints.
#[derive(Debug, Serialize)]
pub struct BfdView {
    /// "up", "down", "init", "admin-down", or "" before the BGP session
    /// first reached Established.
    pub state: String,
    pub remote_state: String,
    pub local_diagnostic: String,
    pub remote_diagnostic: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    #[serde(rename = "tx_interval_s", serialize_with = "ms_as_seconds")]
    pub tx_interval_ms: u32,
    #[serde(rename = "detection_time_s", serialize_with = "ms_as_seconds")]
    pub detection_time_ms: u32,
    #[serde(rename = "min_rx_s", serialize_with = "ms_as_seconds")]
    pub min_rx_ms: u32,
    #[serde(rename = "min_tx_s", serialize_with = "ms_as_seconds")]
    pub min_tx_ms: u32,
    pub multiplier: u32,
    #[serde(rename = "remote_min_rx_s", serialize_with = "ms_as_seconds")]
    pub remote_min_rx_ms: u32,
    #[serde(rename = "remote_min_tx_s", serialize_with = "ms_as_seconds")]
    pub remote_min_tx_ms: u32,
    pub remote_multiplier: u32,
    pub up_transitions: u64,
    pub state_s: u64,
}

impl BfdView {
    /// The peers table's BFD column: `up 300ms x3` (the receive interval
    /// and the peer's multiplier: their product is the detection time),
    /// else the state.
    fn short(&self) -> String {
        match self.state.as_str() {
            "up" if self.remote_multiplier > 0 => format!(
                "up {}ms x{}",
                self.detection_time_ms / self.remote_multiplier,
                self.remote_multiplier
            ),
            "" => "down".into(),
            other => other.into(),
        }
    }
}

/// RFC 4724 state of one peer.
#[derive(Debug, Default, Serialize)]
pub struct GracefulView {
    /// Both sides advertised the capability (current or last session).
    pub negotiated: bool,
    pub local_restart_time_s: u32,
    pub peer_restart_time_s: u32,
    /// The peer's R bit.
    pub peer_restarting: bool,
    /// Families with the peer's F bit set.
    pub peer_forwarding_preserved: Vec<String>,
    /// Our R bit.
    pub local_restarting: bool,
    /// "none", "restarting" (the peer's session is lost, its routes kept)
    /// or "waiting-for-eor" (back, stale routes wait for its End-of-RIB).
    pub helper: String,
    #[serde(rename = "helper_left_s")]
    pub helper_seconds_left: u64,
    pub stale_prefixes: u64,
}

impl GracefulView {
    /// In the helper procedure for this peer.
    pub fn helping(&self) -> bool {
        self.helper != "none"
    }
}

impl From<Option<podroute_proto::bgpd::v1::GracefulRestart>> for GracefulView {
    fn from(g: Option<podroute_proto::bgpd::v1::GracefulRestart>) -> Self {
        use podroute_proto::bgpd::v1::HelperState;
        let g = g.unwrap_or_default();
        let helper = match HelperState::try_from(g.helper_state) {
            Ok(HelperState::HelperRestarting) => "restarting",
            Ok(HelperState::HelperWaitingForEndOfRib) => "waiting-for-eor",
            _ => "none",
        };
        GracefulView {
            negotiated: g.negotiated,
            local_restart_time_s: g.local_restart_time,
            peer_restart_time_s: g.peer_restart_time,
            peer_restarting: g.peer_restarting,
            peer_forwarding_preserved: g.peer_forwarding_preserved,
            local_restarting: g.local_restarting,
            helper: helper.to_string(),
            helper_seconds_left: g.helper_seconds_left,
            stale_prefixes: g.stale_prefixes,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PeersReport {
    pub peers: Vec<PeerView>,
}

/// `podctl bgp peer ADDR`: the summary plus the session's details.
#[derive(Debug, Serialize)]
pub struct PeerDetail {
    #[serde(flatten)]
    pub summary: PeerView,
    pub remote_id: String,
    pub local_endpoint: String,
    pub remote_endpoint: String,
    pub state_s: u64,
    #[serde(rename = "hold_time_s")]
    pub hold_time: u32,
    #[serde(rename = "keepalive_time_s")]
    pub keepalive_time: u32,
    pub families: Vec<String>,
    pub peer_capabilities: Vec<String>,
    pub local_capabilities: Vec<String>,
    pub messages_received: Counters,
    pub messages_sent: Counters,
    pub established_transitions: u64,
    pub passive: bool,
    pub shutdown: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Counters {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

/// One path of one prefix; the JSON field names are a documented, stable
/// schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct RouteView {
    pub prefix: String,
    pub next_hops: Vec<String>,
    pub as_path: String,
    pub origin: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub extended_communities: Vec<String>,
    pub originator_id: String,
    pub cluster_list: Vec<String>,
    pub atomic_aggregate: bool,
    pub peer: String,
    pub best: bool,
    pub accepted: bool,
    pub multipath: bool,
    pub reachable: bool,
    /// "installed", "pending", "failed", or "none" (not a selected path, or
    /// kernel routes are off).
    pub kernel: String,
    pub kernel_error: String,
    /// Another program's route for the same prefix the kernel prefers to
    /// ours (lower metric): packets do not follow BGP. "" when none.
    pub kernel_shadowed_by: String,
    pub kernel_next_hops: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct RoutesReport {
    pub routes: Vec<RouteView>,
    /// A peer's Adj-RIB rather than the Loc-RIB: only `accepted` is known.
    #[serde(skip)]
    pub adj_rib: bool,
}

/// `podctl bgp route PREFIX`: every path of the prefix, best first.
#[derive(Debug, Serialize)]
pub struct RouteDetail {
    /// What was asked for.
    pub query: String,
    /// The route found: `query` itself or the longest prefix covering it;
    /// empty when there is none.
    pub prefix: String,
    pub paths: Vec<RouteView>,
}

/// Which routes `podctl bgp routes` lists.
#[derive(Debug, Clone, Default)]
pub struct RoutesQuery {
    pub prefix: Option<String>,
    pub peer: Option<String>,
    pub advertised: bool,
    pub family: Option<AddressFamily>,
}

/// Status codes, as `show ip bgp` prints them before each path.
pub const STATUS_LEGEND: &str =
    "Status codes: * valid, > best, = multipath, x not accepted, ? next hop unreachable";

pub async fn peers(bgpd: &Target) -> Result<PeersReport, Unreachable> {
    let response = daemons::call(bgpd, |ch| async move {
        BgpAdminClient::new(ch)
            .list_peers(ListPeersRequest {})
            .await
    })
    .await?;
    Ok(PeersReport {
        peers: response.peers.into_iter().map(PeerView::from).collect(),
    })
}

pub async fn peer(bgpd: &Target, address: &str) -> Result<PeerDetail, Unreachable> {
    let address = address.to_string();
    let peer = daemons::call(bgpd, |ch| async move {
        BgpAdminClient::new(ch)
            .get_peer(GetPeerRequest { address })
            .await
    })
    .await?;
    Ok(PeerDetail::from(peer))
}

/// The largest ListRoutes answer podctl takes: a full table comes in one
/// message of about 100 bytes a path (tonic's default, 4 MiB, stopped at
/// some 44,000 paths).
pub const MAX_ROUTES_MESSAGE: usize = 1 << 30;

pub async fn routes(bgpd: &Target, query: RoutesQuery) -> Result<RoutesReport, Unreachable> {
    let adj_rib = query.peer.is_some();
    let request = ListRoutesRequest {
        family: query.family.unwrap_or(AddressFamily::Unspecified).into(),
        peer: query.peer.unwrap_or_default(),
        prefix: query.prefix.unwrap_or_default(),
        direction: if query.advertised {
            RouteDirection::Advertised
        } else {
            RouteDirection::Received
        }
        .into(),
        kernel_problems: false,
        covering: Vec::new(),
    };
    let response = daemons::call(bgpd, |ch| async move {
        BgpAdminClient::new(ch)
            .max_decoding_message_size(MAX_ROUTES_MESSAGE)
            .list_routes(request)
            .await
    })
    .await?;
    Ok(RoutesReport {
        routes: response.routes.into_iter().map(RouteView::from).collect(),
        adj_rib,
    })
}

pub async fn route(bgpd: &Target, prefix: &str) -> Result<RouteDetail, Unreachable> {
    let query = RoutesQuery {
        prefix: Some(prefix.to_string()),
        ..RoutesQuery::default()
    };
    let report = routes(bgpd, query).await?;
    Ok(RouteDetail {
        query: prefix.to_string(),
        prefix: report
            .routes
            .first()
            .map(|r| r.prefix.clone())
            .unwrap_or_default(),
        paths: report.routes,
    })
}

pub fn render_peers(report: &PeersReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let style = view.style;
    if report.peers.is_empty() {
        return Ok("no BGP peers\n".to_string());
    }
    let rows: Vec<Vec<String>> = report
        .peers
        .iter()
        .map(|p| {
            vec![
                p.peer.clone(),
                p.asn.to_string(),
                // GR helper: the peer's routes are kept (stale).
                style.state(&if p.graceful_restart.helping() {
                    format!("{} (GR)", p.state)
                } else {
                    p.state.clone()
                }),
                if p.state == "Established" {
                    human::duration(p.uptime_s)
                } else {
                    "-".to_string()
                },
                format!("{}/{}", p.prefixes_accepted, p.prefixes_received),
                p.prefixes_sent.to_string(),
                p.bfd
                    .as_ref()
                    .map_or("-".into(), |b| style.state(&b.short())),
                if p.state == "Established" {
                    p.description.clone()
                } else {
                    last_error_or_description(p)
                },
            ]
        })
        .collect();
    Ok(human::table(
        &[
            "PEER",
            "AS",
            "STATE",
            "UPTIME",
            "ACCEPTED/RECEIVED",
            "SENT",
            "BFD",
            "INFO",
        ],
        &rows,
    ))
}

pub fn render_peer(detail: &PeerDetail, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(detail)? {
        return Ok(text);
    }
    let style = view.style;
    let p = &detail.summary;
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<22}{value}");
    };
    line("Peer:", format!("{} ({})", p.peer, p.name));
    if !p.description.is_empty() {
        line("Description:", p.description.clone());
    }
    line("AS:", format!("{} (local {})", p.asn, p.local_asn));
    let since = if p.state == "Established" {
        format!(
            "{} for {}",
            style.state(&p.state),
            human::duration(p.uptime_s)
        )
    } else {
        format!(
            "{} for {}",
            style.state(&p.state),
            human::duration(detail.state_s)
        )
    };
    line("State:", since);
    if !p.last_error.is_empty() {
        line("Last error:", p.last_error.clone());
    }
    if !detail.remote_id.is_empty() {
        line("Router ID:", detail.remote_id.clone());
    }
    if !detail.local_endpoint.is_empty() {
        line(
            "Connection:",
            format!("{} -> {}", detail.local_endpoint, detail.remote_endpoint),
        );
    }
    if detail.hold_time > 0 || p.state == "Established" {
        line(
            "Timers:",
            format!(
                "hold {}s, keepalive {}s",
                detail.hold_time, detail.keepalive_time
            ),
        );
    }
    line("Families:", join_or_dash(&detail.families));
    line(
        "Peer capabilities:",
        join_or_dash(&detail.peer_capabilities),
    );
    line(
        "Local capabilities:",
        join_or_dash(&detail.local_capabilities),
    );
    line(
        "Prefixes:",
        format!(
            "{} received, {} accepted, {} sent",
            p.prefixes_received, p.prefixes_accepted, p.prefixes_sent
        ),
    );
    let counters = |c: &Counters| {
        format!(
            "open {}, update {}, notification {}, keepalive {}, route-refresh {}",
            c.open, c.update, c.notification, c.keepalive, c.route_refresh
        )
    };
    let g = &p.graceful_restart;
    let graceful = if g.negotiated {
        let mut text = format!(
            "negotiated, restart time {}s local, {}s peer",
            g.local_restart_time_s, g.peer_restart_time_s
        );
        if g.peer_restarting {
            text.push_str(", peer restarted (R)");
        }
        if g.local_restarting {
            text.push_str(", we restarted (R)");
        }
        if !g.peer_forwarding_preserved.is_empty() {
            let _ = write!(
                text,
                ", peer forwarding preserved (F): {}",
                g.peer_forwarding_preserved.join(", ")
            );
        }
        text
    } else if g.local_restart_time_s > 0 {
        format!(
            "not negotiated (we offer restart time {}s)",
            g.local_restart_time_s
        )
    } else {
        "off".to_string()
    };
    line("Graceful restart:", graceful);
    if g.helping() || g.stale_prefixes > 0 {
        line(
            "GR helper:",
            format!(
                "{} ({}s left), {} stale prefixes",
                g.helper, g.helper_seconds_left, g.stale_prefixes
            ),
        );
    }
    line("Messages received:", counters(&detail.messages_received));
    line("Messages sent:", counters(&detail.messages_sent));
    line(
        "Established:",
        format!("{} times", detail.established_transitions),
    );
    if let Some(b) = &p.bfd {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        line(
            "BFD:",
            format!(
                "{} for {}, remote {}, up {} times",
                style.state(&or_dash(&b.state)),
                human::duration(b.state_s),
                or_dash(&b.remote_state),
                b.up_transitions
            ),
        );
        line(
            "BFD diagnostics:",
            format!(
                "local: {}, remote: {}",
                or_dash(&b.local_diagnostic),
                or_dash(&b.remote_diagnostic)
            ),
        );
        line(
            "BFD discriminators:",
            format!(
                "local {}, remote {}",
                b.local_discriminator, b.remote_discriminator
            ),
        );
        line(
            "BFD configured:",
            format!(
                "rx {}ms, tx {}ms, x{}",
                b.min_rx_ms, b.min_tx_ms, b.multiplier
            ),
        );
        line(
            "BFD remote:",
            format!(
                "rx {}ms, tx {}ms, x{}",
                b.remote_min_rx_ms, b.remote_min_tx_ms, b.remote_multiplier
            ),
        );
        line(
            "BFD timers:",
            format!(
                "tx {}ms, detection {}ms",
                b.tx_interval_ms, b.detection_time_ms
            ),
        );
    }
    Ok(out)
}

pub fn render_routes(report: &RoutesReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let style = view.style;
    if report.routes.is_empty() {
        return Ok("no routes\n".to_string());
    }
    let rows: Vec<Vec<String>> = report
        .routes
        .iter()
        .map(|r| {
            vec![
                status(r, report.adj_rib),
                r.prefix.clone(),
                join_or_dash(&r.next_hops),
                peer_or_local(r),
                r.local_pref.map_or("-".into(), |v| v.to_string()),
                r.med.map_or("-".into(), |v| v.to_string()),
                path_and_origin(r),
                join_or_dash(&r.communities),
                if r.kernel == "none" {
                    "-".into()
                } else {
                    style.state(&r.kernel)
                },
            ]
        })
        .collect();
    let mut out = String::new();
    if !report.adj_rib {
        out.push_str(STATUS_LEGEND);
        out.push_str("\n\n");
    }
    out.push_str(&human::table(
        &[
            "",
            "PREFIX",
            "NEXT HOP",
            "PEER",
            "LOCPRF",
            "MED",
            "AS PATH",
            "COMMUNITIES",
            "KERNEL",
        ],
        &rows,
    ));
    Ok(out)
}

pub fn render_route(detail: &RouteDetail, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(detail)? {
        return Ok(text);
    }
    let style = view.style;
    if detail.paths.is_empty() {
        return Ok(format!("no route for {}\n", detail.query));
    }
    let mut out = String::new();
    let covering = if detail.prefix == detail.query {
        String::new()
    } else {
        format!(", the longest prefix covering {}", detail.query)
    };
    let count = detail.paths.len();
    let _ = writeln!(
        out,
        "{}{covering}: {count} path{}",
        detail.prefix,
        if count == 1 { "" } else { "s" }
    );
    for (i, r) in detail.paths.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nPath {}: {} from {}",
            i + 1,
            status(r, false),
            peer_or_local(r)
        );
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "  {key:<20}{value}");
        };
        line("Reason:", r.reason.clone());
        line("Next hop:", join_or_dash(&r.next_hops));
        line(
            "AS path:",
            if r.as_path.is_empty() {
                "(empty)".into()
            } else {
                r.as_path.clone()
            },
        );
        line("Origin:", origin_name(&r.origin).to_string());
        line(
            "Local pref:",
            r.local_pref.map_or("-".into(), |v| v.to_string()),
        );
        line("MED:", r.med.map_or("-".into(), |v| v.to_string()));
        if !r.communities.is_empty() {
            line("Communities:", r.communities.join(" "));
        }
        if !r.large_communities.is_empty() {
            line("Large communities:", r.large_communities.join(" "));
        }
        if !r.extended_communities.is_empty() {
            line("Ext. communities:", r.extended_communities.join(" "));
        }
        if !r.originator_id.is_empty() {
            line("Originator ID:", r.originator_id.clone());
        }
        if !r.cluster_list.is_empty() {
            line("Cluster list:", r.cluster_list.join(" "));
        }
        if r.atomic_aggregate {
            line("Atomic aggregate:", "yes".into());
        }
        line("Flags:", flags(r));
        line("Resolved via:", join_or_dash(&r.kernel_next_hops));
        line(
            "Kernel:",
            match r.kernel.as_str() {
                "failed" if !r.kernel_error.is_empty() => {
                    style.state(&format!("failed: {}", r.kernel_error))
                }
                "installed" if !r.kernel_shadowed_by.is_empty() => style.paint(
                    &format!(
                        "installed, but shadowed by {} of another program: packets do not follow this route",
                        r.kernel_shadowed_by
                    ),
                    Tone::Bad,
                ),
                "none" => "-".into(),
                other => style.state(other),
            },
        );
    }
    Ok(out)
}

impl From<Peer> for PeerView {
    fn from(peer: Peer) -> Self {
        PeerView {
            graceful_restart: GracefulView::from(peer.graceful_restart),
            state: state_name(peer.state),
            peer: peer.address,
            name: peer.name,
            asn: peer.remote_as,
            local_asn: peer.local_as,
            uptime_s: peer.uptime_seconds,
            prefixes_received: peer.prefixes_received,
            prefixes_accepted: peer.prefixes_accepted,
            prefixes_sent: peer.prefixes_advertised,
            last_error: peer.last_error,
            description: peer.description,
            shutdown: peer.shutdown,
            bfd: peer.bfd.map(|b| BfdView {
                state: b.state,
                remote_state: b.remote_state,
                local_diagnostic: b.local_diagnostic,
                remote_diagnostic: b.remote_diagnostic,
                local_discriminator: b.local_discriminator,
                remote_discriminator: b.remote_discriminator,
                tx_interval_ms: b.tx_interval_ms,
                detection_time_ms: b.detection_time_ms,
                min_rx_ms: b.min_rx_ms,
                min_tx_ms: b.min_tx_ms,
                multiplier: b.multiplier,
                remote_min_rx_ms: b.remote_min_rx_ms,
                remote_min_tx_ms: b.remote_min_tx_ms,
                remote_multiplier: b.remote_multiplier,
                up_transitions: b.up_transitions,
                state_s: b.state_seconds,
            }),
        }
    }
}

impl From<Peer> for PeerDetail {
    fn from(mut peer: Peer) -> Self {
        let counters = |c: Option<MessageCounters>| {
            let c = c.unwrap_or_default();
            Counters {
                open: c.open,
                update: c.update,
                notification: c.notification,
                keepalive: c.keepalive,
                route_refresh: c.route_refresh,
            }
        };
        PeerDetail {
            remote_id: std::mem::take(&mut peer.remote_id),
            local_endpoint: std::mem::take(&mut peer.local_endpoint),
            remote_endpoint: std::mem::take(&mut peer.remote_endpoint),
            state_s: peer.state_seconds,
            hold_time: peer.hold_time,
            keepalive_time: peer.keepalive_time,
            families: std::mem::take(&mut peer.families),
            peer_capabilities: std::mem::take(&mut peer.peer_capabilities),
            local_capabilities: std::mem::take(&mut peer.local_capabilities),
            messages_received: counters(peer.messages_received.take()),
            messages_sent: counters(peer.messages_sent.take()),
            established_transitions: peer.established_transitions,
            passive: peer.passive,
            shutdown: peer.shutdown,
            summary: PeerView::from(peer),
        }
    }
}

impl From<Route> for RouteView {
    fn from(r: Route) -> Self {
        let as_path = r
            .as_path
            .iter()
            .map(|s| {
                let asns: Vec<String> = s.asns.iter().map(ToString::to_string).collect();
                if s.r#type == i32::from(as_path_segment::Type::AsSet) {
                    format!("{{{}}}", asns.join(","))
                } else {
                    asns.join(" ")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let origin = match r.origin {
            1 => "i",
            2 => "e",
            3 => "?",
            _ => "-",
        };
        let kernel = match KernelState::try_from(r.kernel) {
            Ok(KernelState::Installed) => "installed",
            Ok(KernelState::Pending) => "pending",
            Ok(KernelState::Failed) => "failed",
            Ok(KernelState::Unspecified) | Err(_) => "none",
        };
        RouteView {
            prefix: r.prefix,
            next_hops: r.next_hops,
            as_path,
            origin: origin.to_string(),
            local_pref: r.local_pref,
            med: r.med,
            communities: r.communities,
            large_communities: r.large_communities,
            extended_communities: r.extended_communities,
            originator_id: r.originator_id,
            cluster_list: r.cluster_list,
            atomic_aggregate: r.atomic_aggregate,
            peer: r.peer,
            best: r.best,
            accepted: r.accepted,
            multipath: r.multipath,
            reachable: r.reachable,
            kernel: kernel.to_string(),
            kernel_error: r.kernel_error,
            kernel_shadowed_by: r.kernel_shadowed_by,
            kernel_next_hops: r.kernel_next_hops,
            reason: r.reason,
        }
    }
}

/// The status codes of one path (STATUS_LEGEND). A peer's Adj-RIB knows
/// only whether a path was accepted.
fn status(r: &RouteView, adj_rib: bool) -> String {
    if adj_rib {
        return if r.accepted { "*" } else { "x" }.to_string();
    }
    let mut codes = String::new();
    if r.accepted && r.reachable {
        codes.push('*');
    }
    if r.best {
        codes.push('>');
    } else if r.multipath {
        codes.push('=');
    }
    if !r.accepted {
        codes.push('x');
    }
    if !r.reachable {
        codes.push('?');
    }
    codes
}

fn flags(r: &RouteView) -> String {
    let mut flags = vec![
        if r.accepted {
            "accepted"
        } else {
            "not accepted"
        },
        if r.reachable {
            "reachable"
        } else {
            "unreachable"
        },
    ];
    if r.best {
        flags.push("best");
    }
    if r.multipath {
        flags.push("multipath");
    }
    flags.join(", ")
}

fn peer_or_local(r: &RouteView) -> String {
    if r.peer.is_empty() {
        "local".into()
    } else {
        r.peer.clone()
    }
}

/// "65001 65002 i", as `show ip bgp` ends its lines.
fn path_and_origin(r: &RouteView) -> String {
    if r.as_path.is_empty() {
        r.origin.clone()
    } else {
        format!("{} {}", r.as_path, r.origin)
    }
}

fn origin_name(code: &str) -> &'static str {
    match code {
        "i" => "IGP",
        "e" => "EGP",
        "?" => "incomplete",
        _ => "-",
    }
}

fn last_error_or_description(p: &PeerView) -> String {
    if p.last_error.is_empty() {
        p.description.clone()
    } else {
        p.last_error.clone()
    }
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// Milliseconds written as seconds: 300 → 0.3.
fn ms_as_seconds<S: Serializer>(ms: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(f64::from(*ms) / 1000.0)
}

/// RFC 4271 §8.2.2 state names as BIRD and FRR print them.
fn state_name(state: i32) -> String {
    match SessionState::try_from(state) {
        Ok(SessionState::Idle) => "Idle".into(),
        Ok(SessionState::Connect) => "Connect".into(),
        Ok(SessionState::Active) => "Active".into(),
        Ok(SessionState::Opensent) => "OpenSent".into(),
        Ok(SessionState::Openconfirm) => "OpenConfirm".into(),
        Ok(SessionState::Established) => "Established".into(),
        Ok(SessionState::Unspecified) | Err(_) => format!("unknown({state})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            address: "192.0.2.1".into(),
            name: "tor1".into(),
            remote_as: 65001,
            local_as: 65000,
            state: SessionState::Established.into(),
            uptime_seconds: 61,
            prefixes_received: 10,
            prefixes_accepted: 9,
            prefixes_advertised: 2,
            peer_capabilities: vec!["route-refresh".into(), "4-octet-as(65001)".into()],
            ..Peer::default()
        }
    }

    #[test]
    fn peer_table_and_json_schema() {
        let report = PeersReport {
            peers: vec![
                PeerView::from(peer()),
                PeerView::from(Peer {
                    address: "192.0.2.9".into(),
                    state: SessionState::Active.into(),
                    last_error: "hold timer expired".into(),
                    ..peer()
                }),
            ],
        };
        let table = render_peers(&report, View::TABLE).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PEER       AS     STATE"), "{table}");
        assert!(
            lines[1].starts_with("192.0.2.1  65001  Established  1m1s    9/10"),
            "{table}"
        );
        assert!(lines[2].ends_with("hold timer expired"), "{table}");

        let json: serde_json::Value =
            serde_json::from_str(&render_peers(&report, View::JSON).unwrap()).unwrap();
        let first = &json["peers"][0];
        assert_eq!(first["peer"], "192.0.2.1");
        assert_eq!(first["asn"], 65001);
        assert_eq!(first["state"], "Established");
        assert_eq!(first["uptime_s"], 61);
        assert_eq!(first["prefixes_received"], 10);
        assert_eq!(first["prefixes_sent"], 2);
        assert_eq!(first["last_error"], "");
        assert_eq!(json["peers"][1]["last_error"], "hold timer expired");
        assert_eq!(state_name(42), "unknown(42)");
    }

    #[test]
    fn bfd_column_and_detail() {
        let bfd = |state: &str| podroute_proto::bgpd::v1::Bfd {
            state: state.into(),
            remote_state: state.into(),
            detection_time_ms: 900,
            remote_multiplier: 3,
            min_rx_ms: 300,
            min_tx_ms: 300,
            multiplier: 3,
            ..Default::default()
        };
        let report = PeersReport {
            peers: vec![
                PeerView::from(Peer {
                    bfd: Some(bfd("up")),
                    ..peer()
                }),
                PeerView::from(Peer {
                    bfd: Some(bfd("down")),
                    ..peer()
                }),
                PeerView::from(Peer {
                    bfd: Some(bfd("")),
                    ..peer()
                }),
                PeerView::from(peer()),
            ],
        };
        let table = render_peers(&report, View::TABLE).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("SENT  BFD"), "{table}");
        assert!(lines[1].contains("  up 300ms x3"), "{table}");
        assert!(lines[2].contains("  down"), "{table}");
        assert!(lines[3].contains("  down"), "{table}");
        assert!(lines[4].contains("2     -"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&render_peers(&report, View::JSON).unwrap()).unwrap();
        assert_eq!(json["peers"][0]["bfd"]["state"], "up");
        // Durations are seconds in JSON, BFD's too.
        assert_eq!(json["peers"][0]["bfd"]["detection_time_s"], 0.9);
        assert_eq!(json["peers"][0]["bfd"]["min_rx_s"], 0.3);
        assert_eq!(json["peers"][3]["bfd"], serde_json::Value::Null);

        let detail = PeerDetail::from(Peer {
            bfd: Some(bfd("up")),
            ..peer()
        });
        let text = render_peer(&detail, View::TABLE).unwrap();
        assert!(
            text.contains("BFD:                  up for 0s, remote up"),
            "{text}"
        );
        assert!(
            text.contains("BFD configured:       rx 300ms, tx 300ms, x3"),
            "{text}"
        );
        assert!(text.contains("detection 900ms"), "{text}");
    }

    #[test]
    fn peer_detail_names_capabilities_and_counters() {
        let detail = PeerDetail::from(Peer {
            last_error: "received Cease / Administrative Shutdown: \"maintenance\"".into(),
            ..peer()
        });
        let text = render_peer(&detail, View::TABLE).unwrap();
        assert!(
            text.contains("Peer:                 192.0.2.1 (tor1)"),
            "{text}"
        );
        assert!(text.contains("route-refresh, 4-octet-as(65001)"), "{text}");
        assert!(
            text.contains("Last error:           received Cease"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_peer(&detail, View::JSON).unwrap()).unwrap();
        assert_eq!(json["peer"], "192.0.2.1");
        assert_eq!(json["messages_sent"]["keepalive"], 0);
    }

    fn segment(
        kind: as_path_segment::Type,
        asns: &[u32],
    ) -> podroute_proto::bgpd::v1::AsPathSegment {
        podroute_proto::bgpd::v1::AsPathSegment {
            r#type: kind.into(),
            asns: asns.to_vec(),
        }
    }

    /// Three paths of one prefix from the Loc-RIB, and an originated one.
    fn loc_rib() -> RoutesReport {
        let prefix = "10.244.1.0/26".to_string();
        let best = Route {
            prefix: prefix.clone(),
            next_hops: vec!["10.0.1.2".into()],
            as_path: vec![
                segment(as_path_segment::Type::AsSequence, &[65001, 65002]),
                segment(as_path_segment::Type::AsSet, &[1, 2]),
            ],
            origin: 1,
            local_pref: Some(100),
            communities: vec!["65000:1".into()],
            best: true,
            accepted: true,
            multipath: true,
            reachable: true,
            kernel: KernelState::Installed.into(),
            kernel_next_hops: vec!["10.0.1.2 dev 3".into()],
            peer: "10.0.1.2".into(),
            reason: "best: lower router ID than 10.0.2.2; 2 equal-cost paths in use".into(),
            ..Route::default()
        };
        let partner = Route {
            next_hops: vec!["10.0.2.2".into()],
            best: false,
            communities: Vec::new(),
            kernel_next_hops: vec!["10.0.2.2 dev 4".into()],
            peer: "10.0.2.2".into(),
            reason: "multipath, lost to 10.0.1.2: lower router ID".into(),
            ..best.clone()
        };
        let looped = Route {
            next_hops: vec!["10.0.3.2".into()],
            accepted: false,
            reachable: false,
            multipath: false,
            kernel: KernelState::Unspecified.into(),
            kernel_next_hops: Vec::new(),
            peer: "10.0.3.2".into(),
            reason: "not accepted (import policy, AS loop or own prefix)".into(),
            ..partner.clone()
        };
        let own = Route {
            prefix: "10.244.9.0/26".into(),
            origin: 1,
            best: true,
            accepted: true,
            multipath: true,
            reachable: true,
            kernel: KernelState::Failed.into(),
            kernel_error: "netlink: File exists".into(),
            reason: "only path".into(),
            ..Route::default()
        };
        RoutesReport {
            routes: [best, partner, looped, own]
                .into_iter()
                .map(RouteView::from)
                .collect(),
            adj_rib: false,
        }
    }

    #[test]
    fn routes_show_the_loc_rib_like_a_router() {
        let text = render_routes(&loc_rib(), View::TABLE).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], STATUS_LEGEND, "{text}");
        assert_eq!(lines[1], "", "{text}");
        assert_eq!(
            lines[2],
            "    PREFIX         NEXT HOP  PEER      LOCPRF  MED  AS PATH              COMMUNITIES  KERNEL",
            "{text}"
        );
        assert_eq!(
            lines[3],
            "*>  10.244.1.0/26  10.0.1.2  10.0.1.2  100     -    65001 65002 {1,2} i  65000:1      installed",
            "{text}"
        );
        assert!(
            lines[4].starts_with("*=  10.244.1.0/26  10.0.2.2  10.0.2.2"),
            "{text}"
        );
        assert!(lines[4].ends_with("-            installed"), "{text}");
        assert!(
            lines[5].starts_with("x?  10.244.1.0/26  10.0.3.2"),
            "{text}"
        );
        assert!(lines[5].ends_with("  -"), "{text}");
        assert_eq!(
            lines[6],
            "*>  10.244.9.0/26  -         local     -       -    i                    -            failed",
            "{text}"
        );
        assert_eq!(lines.len(), 7, "{text}");
    }

    #[test]
    fn routes_json_schema() {
        let json: serde_json::Value =
            serde_json::from_str(&render_routes(&loc_rib(), View::JSON).unwrap()).unwrap();
        let best = json["routes"][0].as_object().unwrap();
        let mut keys: Vec<&str> = best.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "accepted",
                "as_path",
                "atomic_aggregate",
                "best",
                "cluster_list",
                "communities",
                "extended_communities",
                "kernel",
                "kernel_error",
                "kernel_next_hops",
                "kernel_shadowed_by",
                "large_communities",
                "local_pref",
                "med",
                "multipath",
                "next_hops",
                "origin",
                "originator_id",
                "peer",
                "prefix",
                "reachable",
                "reason",
            ]
        );
        assert_eq!(best["as_path"], "65001 65002 {1,2}");
        assert_eq!(best["origin"], "i");
        assert_eq!(best["kernel"], "installed");
        assert_eq!(best["kernel_next_hops"][0], "10.0.1.2 dev 3");
        assert_eq!(json["routes"][1]["best"], false);
        assert_eq!(json["routes"][1]["multipath"], true);
        assert_eq!(json["routes"][2]["accepted"], false);
        assert_eq!(json["routes"][2]["kernel"], "none");
        assert_eq!(json["routes"][3]["peer"], "");
        assert_eq!(json["routes"][3]["kernel"], "failed");
        assert_eq!(json["routes"][3]["kernel_error"], "netlink: File exists");
        assert_eq!(json["routes"][3]["reason"], "only path");
    }

    #[test]
    fn a_peers_routes_show_only_accepted() {
        let report = RoutesReport {
            routes: vec![
                RouteView::from(Route {
                    prefix: "10.244.1.0/26".into(),
                    next_hops: vec!["10.0.1.2".into()],
                    as_path: vec![segment(as_path_segment::Type::AsSequence, &[65001])],
                    origin: 1,
                    accepted: true,
                    peer: "10.0.1.2".into(),
                    ..Route::default()
                }),
                RouteView::from(Route {
                    prefix: "10.244.2.0/26".into(),
                    origin: 3,
                    peer: "10.0.1.2".into(),
                    ..Route::default()
                }),
            ],
            adj_rib: true,
        };
        let text = render_routes(&report, View::TABLE).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("   PREFIX"), "{text}");
        assert!(
            lines[1].starts_with("*  10.244.1.0/26  10.0.1.2  10.0.1.2  -       -    65001 i"),
            "{text}"
        );
        assert!(lines[2].starts_with("x  10.244.2.0/26  -"), "{text}");
    }

    #[test]
    fn route_detail_explains_every_path() {
        let report = loc_rib();
        let detail = RouteDetail {
            query: "10.244.1.7".into(),
            prefix: "10.244.1.0/26".into(),
            paths: report.routes.into_iter().take(3).collect(),
        };
        let text = render_route(&detail, View::TABLE).unwrap();
        let expected_start = "\
10.244.1.0/26, the longest prefix covering 10.244.1.7: 3 paths

Path 1: *> from 10.0.1.2
  Reason:             best: lower router ID than 10.0.2.2; 2 equal-cost paths in use
  Next hop:           10.0.1.2
  AS path:            65001 65002 {1,2}
  Origin:             IGP
  Local pref:         100
  MED:                -
  Communities:        65000:1
  Flags:              accepted, reachable, best, multipath
  Resolved via:       10.0.1.2 dev 3
  Kernel:             installed

Path 2: *= from 10.0.2.2
  Reason:             multipath, lost to 10.0.1.2: lower router ID
";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(
            text.contains(
                "Path 3: x? from 10.0.3.2\n  Reason:             not accepted (import policy, AS loop or own prefix)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  Flags:              not accepted, unreachable\n"),
            "{text}"
        );

        let json: serde_json::Value =
            serde_json::from_str(&render_route(&detail, View::JSON).unwrap()).unwrap();
        assert_eq!(json["query"], "10.244.1.7");
        assert_eq!(json["prefix"], "10.244.1.0/26");
        assert_eq!(json["paths"].as_array().unwrap().len(), 3);
        assert_eq!(json["paths"][2]["reason"], detail.paths[2].reason);

        let none = RouteDetail {
            query: "192.0.2.0/24".into(),
            prefix: String::new(),
            paths: Vec::new(),
        };
        assert_eq!(
            render_route(&none, View::TABLE).unwrap(),
            "no route for 192.0.2.0/24\n"
        );
    }
}
