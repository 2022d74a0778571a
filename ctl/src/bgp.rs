// `podctl bgp ...`: views of podroute-bgpd's sessions and routes.
// `peers` is a summary table like `birdc show protocols` / `gobgp neighbor`;
// `peer ADDR` the detail of `show bgp neighbors ADDR`; `routes` a peer's
// received or advertised routes, or what the speaker originates.

use std::fmt::Write as _;
use std::path::Path;

use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{
    GetPeerRequest, ListPeersRequest, ListRoutesRequest, MessageCounters, Peer, Route,
    RouteDirection, SessionState, as_path_segment,
};
use podroute_proto::common::v1::AddressFamily;
use serde::Serialize;

use crate::daemons::{self, Daemon, Unreachable};
use crate::{Output, table};

/// One peer as podctl prints it; the JSON field names are a documented,
/// stable schema (README, "podctl bgp").
#[derive(Debug, Serialize)]
pub struct PeerView {
    pub peer: String,
    pub name: String,
    pub asn: u32,
    pub local_asn: u32,
    pub state: String,
    pub uptime_s: u64,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_sent: u64,
    pub last_error: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
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
    pub hold_time: u32,
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

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub prefix: String,
    pub next_hops: Vec<String>,
    pub as_path: String,
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    pub communities: Vec<String>,
    pub large_communities: Vec<String>,
    pub peer: String,
    pub best: bool,
}

#[derive(Debug, Serialize)]
pub struct RoutesReport {
    pub routes: Vec<RouteView>,
}

/// Which routes `podctl bgp routes` lists.
#[derive(Debug, Clone, Default)]
pub struct RoutesQuery {
    pub peer: Option<String>,
    pub advertised: bool,
    pub family: Option<AddressFamily>,
}

pub async fn peers(socket: &Path) -> Result<PeersReport, Unreachable> {
    let response = daemons::call(Daemon::Bgpd, socket, |ch| async move {
        BgpAdminClient::new(ch)
            .list_peers(ListPeersRequest {})
            .await
    })
    .await?;
    Ok(PeersReport {
        peers: response.peers.into_iter().map(PeerView::from).collect(),
    })
}

pub async fn peer(socket: &Path, address: &str) -> Result<PeerDetail, Unreachable> {
    let address = address.to_string();
    let peer = daemons::call(Daemon::Bgpd, socket, |ch| async move {
        BgpAdminClient::new(ch)
            .get_peer(GetPeerRequest { address })
            .await
    })
    .await?;
    Ok(PeerDetail::from(peer))
}

pub async fn routes(socket: &Path, query: RoutesQuery) -> Result<RoutesReport, Unreachable> {
    let request = ListRoutesRequest {
        family: query.family.unwrap_or(AddressFamily::Unspecified).into(),
        peer: query.peer.unwrap_or_default(),
        direction: if query.advertised {
            RouteDirection::Advertised
        } else {
            RouteDirection::Received
        }
        .into(),
    };
    let response = daemons::call(Daemon::Bgpd, socket, |ch| async move {
        BgpAdminClient::new(ch).list_routes(request).await
    })
    .await?;
    Ok(RoutesReport {
        routes: response.routes.into_iter().map(RouteView::from).collect(),
    })
}

pub fn render_peers(report: &PeersReport, output: Output) -> Result<String, serde_json::Error> {
    if output == Output::Json {
        return serde_json::to_string_pretty(report).map(|s| s + "\n");
    }
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
                p.state.clone(),
                if p.state == "Established" {
                    format_duration(p.uptime_s)
                } else {
                    "-".to_string()
                },
                format!("{}/{}", p.prefixes_accepted, p.prefixes_received),
                p.prefixes_sent.to_string(),
                if p.state == "Established" {
                    p.description.clone()
                } else {
                    last_error_or_description(p)
                },
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "PEER",
            "AS",
            "STATE",
            "UPTIME",
            "ACCEPTED/RECEIVED",
            "SENT",
            "INFO",
        ],
        &rows,
    ))
}

pub fn render_peer(detail: &PeerDetail, output: Output) -> Result<String, serde_json::Error> {
    if output == Output::Json {
        return serde_json::to_string_pretty(detail).map(|s| s + "\n");
    }
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
        format!("{} for {}", p.state, format_duration(p.uptime_s))
    } else {
        format!("{} for {}", p.state, format_duration(detail.state_s))
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
    line("Messages received:", counters(&detail.messages_received));
    line("Messages sent:", counters(&detail.messages_sent));
    line(
        "Established:",
        format!("{} times", detail.established_transitions),
    );
    Ok(out)
}

pub fn render_routes(report: &RoutesReport, output: Output) -> Result<String, serde_json::Error> {
    if output == Output::Json {
        return serde_json::to_string_pretty(report).map(|s| s + "\n");
    }
    if report.routes.is_empty() {
        return Ok("no routes\n".to_string());
    }
    let rows: Vec<Vec<String>> = report
        .routes
        .iter()
        .map(|r| {
            vec![
                if r.best { "*" } else { " " }.to_string(),
                r.prefix.clone(),
                join_or_dash(&r.next_hops),
                if r.as_path.is_empty() {
                    "-".into()
                } else {
                    r.as_path.clone()
                },
                r.origin.clone(),
                r.local_pref.map_or("-".into(), |v| v.to_string()),
                r.med.map_or("-".into(), |v| v.to_string()),
                if r.peer.is_empty() {
                    "local".into()
                } else {
                    r.peer.clone()
                },
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "", "PREFIX", "NEXT HOP", "AS PATH", "ORIGIN", "LOCPRF", "MED", "FROM",
        ],
        &rows,
    ))
}

impl From<Peer> for PeerView {
    fn from(peer: Peer) -> Self {
        PeerView {
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
        RouteView {
            prefix: r.prefix,
            next_hops: r.next_hops,
            as_path,
            origin: origin.to_string(),
            local_pref: r.local_pref,
            med: r.med,
            communities: r.communities,
            large_communities: r.large_communities,
            peer: r.peer,
            best: r.best,
        }
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

/// 93784 → "1d2h3m"; seconds only under an hour, as `gobgp neighbor` does.
fn format_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (d, h) {
        (0, 0) if m == 0 => format!("{s}s"),
        (0, 0) => format!("{m}m{s}s"),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(59), "59s");
        assert_eq!(format_duration(61), "1m1s");
        assert_eq!(format_duration(3_600), "1h0m");
        assert_eq!(format_duration(11_520), "3h12m");
        assert_eq!(format_duration(93_784), "1d2h3m");
    }

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
        let table = render_peers(&report, Output::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("PEER       AS     STATE"), "{table}");
        assert!(
            lines[1].starts_with("192.0.2.1  65001  Established  1m1s    9/10"),
            "{table}"
        );
        assert!(lines[2].ends_with("hold timer expired"), "{table}");

        let json: serde_json::Value =
            serde_json::from_str(&render_peers(&report, Output::Json).unwrap()).unwrap();
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
    fn peer_detail_names_capabilities_and_counters() {
        let detail = PeerDetail::from(Peer {
            last_error: "received Cease / Administrative Shutdown: \"maintenance\"".into(),
            ..peer()
        });
        let text = render_peer(&detail, Output::Table).unwrap();
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
            serde_json::from_str(&render_peer(&detail, Output::Json).unwrap()).unwrap();
        assert_eq!(json["peer"], "192.0.2.1");
        assert_eq!(json["messages_sent"]["keepalive"], 0);
    }

    #[test]
    fn routes_show_paths_like_a_router() {
        let report = RoutesReport {
            routes: vec![RouteView::from(Route {
                prefix: "10.244.1.0/26".into(),
                next_hops: vec!["10.0.1.2".into()],
                as_path: vec![
                    podroute_proto::bgpd::v1::AsPathSegment {
                        r#type: as_path_segment::Type::AsSequence.into(),
                        asns: vec![65000, 65001],
                    },
                    podroute_proto::bgpd::v1::AsPathSegment {
                        r#type: as_path_segment::Type::AsSet.into(),
                        asns: vec![1, 2],
                    },
                ],
                origin: 1,
                best: true,
                peer: "10.0.1.2".into(),
                ..Route::default()
            })],
        };
        let text = render_routes(&report, Output::Table).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("*  10.244.1.0/26  10.0.1.2  65000 65001 {1,2}  i"),
            "{text}"
        );
    }
}
