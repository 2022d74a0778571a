// The BgpAdmin gRPC service (proto/proto/bgpd.proto) that podctl talks to over
// the daemon's Unix admin socket: version, peers, the Loc-RIB (every path
// of every prefix, with why the best one won and what the kernel holds),
// and the routes received from and advertised to each peer, and one
// screen of health (GetStatus, from crate::observe). It reads the
// speaker's published peer snapshots and asks the RIB and peer tasks.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ipnetwork::IpNetwork;

use podroute_proto::bgpd::v1::bgp_admin_server::{BgpAdmin, BgpAdminServer};
use podroute_proto::bgpd::v1::{
    self as pb, GetPeerRequest, ListPeersRequest, ListPeersResponse, ListRoutesRequest,
    ListRoutesResponse, RouteDirection, SessionState,
};
use podroute_proto::common::v1::{AddressFamily, GetVersionRequest, VersionInfo};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use crate::fib::RouteState;
use crate::observe::{Observer, ObserverOptions};
use crate::rib::best_path::Step;
use crate::rib::loc_rib::LOCAL_PEER;
use crate::rib::{PathAttributes, Route};
use crate::session::State;
use crate::speaker::graceful::{GracefulStatus, HelperState};
use crate::speaker::{
    MessageCounters, PeerStatus, RibPath, RibRoute, RibSide, RouteQuery, Speaker,
};
use crate::wire::{AsSegment, Origin, PathAttribute};

pub struct AdminService {
    speaker: Speaker,
    observer: Arc<Observer>,
}

/// A tonic router serving the admin API of `speaker`, ready for
/// `podroute_proto::admin_socket::serve_unix`. GetStatus knows only what
/// the speaker knows (no FIB, ipamd or configuration file): the daemon
/// uses `router_with`.
pub fn router(speaker: Speaker) -> Router {
    router_with(Arc::new(Observer::new(speaker, ObserverOptions::default())))
}

/// The admin API of the observer's speaker, GetStatus from `observer`
/// (the one that serves /metrics too).
pub fn router_with(observer: Arc<Observer>) -> Router {
    let speaker = observer.speaker().clone();
    Server::builder().add_service(BgpAdminServer::new(AdminService { speaker, observer }))
}

impl AdminService {
    /// The peer's stale paths (RFC 4724 §4.2), from the RIB.
    async fn add_stale_count(&self, message: &mut pb::Peer, address: std::net::IpAddr) {
        let stale = self
            .speaker
            .peer_counts(address)
            .await
            .map_or(0, |c| c.stale as u64);
        if let Some(g) = &mut message.graceful_restart {
            g.stale_prefixes = stale;
        }
    }
}

#[tonic::async_trait]
impl BgpAdmin for AdminService {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            podroute_proto::BGPD_API,
        )))
    }

    async fn get_status(
        &self,
        _: Request<podroute_proto::common::v1::GetStatusRequest>,
    ) -> Result<Response<podroute_proto::bgpd::v1::BgpStatus>, Status> {
        Ok(Response::new(self.observer.status().await))
    }

    async fn list_peers(
        &self,
        _: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        let now = Instant::now();
        let mut peers = Vec::new();
        for p in self.speaker.peers() {
            let mut message = peer_message(&p, now);
            self.add_stale_count(&mut message, p.address).await;
            peers.push(message);
        }
        Ok(Response::new(ListPeersResponse { peers }))
    }

    async fn get_peer(
        &self,
        request: Request<GetPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let address = parse_address(&request.get_ref().address)?;
        match self.speaker.peer(address) {
            Some(peer) => {
                let mut message = peer_message(&peer, Instant::now());
                self.add_stale_count(&mut message, address).await;
                Ok(Response::new(message))
            }
            None => Err(Status::not_found(format!(
                "no BGP peer {address} is configured"
            ))),
        }
    }

    async fn list_routes(
        &self,
        request: Request<ListRoutesRequest>,
    ) -> Result<Response<ListRoutesResponse>, Status> {
        let request = request.into_inner();
        let ipv4 = match AddressFamily::try_from(request.family) {
            Ok(AddressFamily::Ipv4) => Some(true),
            Ok(AddressFamily::Ipv6) => Some(false),
            _ => None,
        };
        let prefix = parse_prefix(&request.prefix)?;
        if request.peer.is_empty() {
            let query = RouteQuery {
                prefix,
                peer: None,
                ipv4,
                kernel_problems: request.kernel_problems,
                covering: request
                    .covering
                    .iter()
                    .filter_map(|text| parse_prefix(text).transpose())
                    .collect::<Result<_, _>>()?,
            };
            let routes = self
                .speaker
                .loc_rib(query)
                .await
                .iter()
                .filter(|r| ipv4.is_none_or(|v4| r.prefix.is_ipv4() == v4))
                .flat_map(|r| self.loc_rib_messages(r))
                .collect();
            return Ok(Response::new(ListRoutesResponse { routes }));
        }
        let address = parse_address(&request.peer)?;
        let side = match RouteDirection::try_from(request.direction) {
            Ok(RouteDirection::Advertised) => RibSide::Advertised,
            _ => RibSide::Received,
        };
        let Some(mut routes) = self.speaker.routes(address, side, ipv4).await else {
            return Err(Status::not_found(format!(
                "no BGP peer {address} is configured"
            )));
        };
        if let Some(prefix) = prefix {
            // As in the Loc-RIB: the prefix itself, or the longest covering it.
            routes.retain(|(r, _)| covers(r.nlri.prefix, prefix));
            let longest = routes.iter().map(|(r, _)| r.nlri.prefix.prefix()).max();
            routes.retain(|(r, _)| Some(r.nlri.prefix.prefix()) == longest);
        }
        let peer = address.to_string();
        let routes = routes
            .iter()
            .map(|(route, accepted)| route_message(route, *accepted, &peer))
            .collect();
        Ok(Response::new(ListRoutesResponse { routes }))
    }
}

impl AdminService {
    /// One message per path of a Loc-RIB route, best first.
    fn loc_rib_messages(&self, route: &RibRoute) -> Vec<pb::Route> {
        let prefix = route.prefix.to_string();
        route
            .paths
            .iter()
            .zip(reasons(route))
            .map(|(path, reason)| {
                let peer = path
                    .peer_address
                    .or_else(|| {
                        (path.peer != LOCAL_PEER)
                            .then(|| self.speaker.peer_address(path.peer))
                            .flatten()
                    })
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let mut out = pb::Route {
                    prefix: prefix.clone(),
                    peer,
                    best: path.best,
                    accepted: path.accepted,
                    multipath: path.multipath,
                    reachable: path.reachable,
                    kernel_next_hops: path
                        .resolved
                        .iter()
                        .map(|h| format!("{} dev {}", h.gateway, h.ifindex))
                        .collect(),
                    reason,
                    ..pb::Route::default()
                };
                attributes_message(&path.attrs, &mut out);
                // The kernel route is the selected paths'.
                if path.multipath
                    && let Some(state) = &route.kernel
                {
                    if path.peer == LOCAL_PEER {
                        out.kernel_next_hops = vec!["blackhole".to_string()];
                    }
                    out.kernel = match state {
                        RouteState::Done => pb::KernelState::Installed,
                        RouteState::Pending => pb::KernelState::Pending,
                        RouteState::Failed(error) => {
                            out.kernel_error.clone_from(error);
                            pb::KernelState::Failed
                        }
                    }
                    .into();
                    out.kernel_shadowed_by = route.shadowed_by.clone().unwrap_or_default();
                }
                out
            })
            .collect()
    }
}

/// Why each path of `route` stands where it does, in `route.paths` order:
/// for the best path why it won (the step at which the runner-up lost),
/// for the others why they are not best. Uses best path selection's own
/// step names (rib::best_path::Step).
pub fn reasons(route: &RibRoute) -> Vec<String> {
    let best = route.paths.first().filter(|p| p.best);
    route
        .paths
        .iter()
        .map(|path| reason(route, best, path))
        .collect()
}

fn reason(route: &RibRoute, best: Option<&RibPath>, path: &RibPath) -> String {
    if !path.accepted {
        return "not accepted (import policy, AS loop or own prefix)".to_string();
    }
    if !path.reachable {
        return "next hop unreachable".to_string();
    }
    if path.best {
        let mut text = match route.paths.iter().find(|p| p.lost_at.is_some()) {
            Some(runner_up) => {
                let step = runner_up.lost_at.unwrap_or(Step::Equal);
                let other = peer_label(runner_up);
                match step {
                    // Not comparatives: "than" would not read.
                    Step::Local | Step::Ebgp | Step::Med | Step::Equal => {
                        format!("best: {step} (runner-up {other})")
                    }
                    _ => format!("best: {step} than {other}"),
                }
            }
            None if route.paths.len() == 1 => "only path".to_string(),
            None => "best: the only usable path".to_string(),
        };
        let in_use = route.paths.iter().filter(|p| p.multipath).count();
        if in_use > 1 {
            let _ = write!(text, "; {in_use} equal-cost paths in use");
        }
        return text;
    }
    match (best, path.lost_at) {
        (Some(best), Some(step)) => {
            let lost = format!("lost to {}: {step}", peer_label(best));
            if path.multipath {
                format!("multipath, {lost}")
            } else if step.multipath() {
                format!("{lost} (equal cost, but the ECMP path limit is reached)")
            } else {
                lost
            }
        }
        // Accepted and reachable but not ranked: its session is gone.
        _ => "not a candidate (peer session down)".to_string(),
    }
}

/// A path's sender as the reasons name it.
fn peer_label(path: &RibPath) -> String {
    match path.peer_address {
        Some(address) => address.to_string(),
        None if path.peer == LOCAL_PEER => "local".to_string(),
        None => format!("peer #{}", path.peer),
    }
}

fn parse_address(text: &str) -> Result<IpAddr, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not an IP address")))
}

/// "" → None; an address means its host prefix.
fn parse_prefix(text: &str) -> Result<Option<IpNetwork>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not an IP prefix or address")))
}

/// Whether `outer` is `inner` or a shorter prefix containing it.
fn covers(outer: IpNetwork, inner: IpNetwork) -> bool {
    outer.is_ipv4() == inner.is_ipv4()
        && outer.prefix() <= inner.prefix()
        && outer.contains(inner.network())
}

fn peer_message(p: &PeerStatus, now: Instant) -> pb::Peer {
    pb::Peer {
        address: p.address.to_string(),
        remote_as: p.remote_as,
        local_as: p.local_as,
        state: session_state(p.state).into(),
        uptime_seconds: p
            .established_since
            .map_or(0, |t| now.saturating_duration_since(t).as_secs()),
        prefixes_received: p.prefixes_received,
        prefixes_accepted: p.prefixes_accepted,
        prefixes_advertised: p.prefixes_advertised,
        description: p.description.clone(),
        last_error: p.last_error.clone(),
        name: p.name.clone(),
        remote_id: p.remote_id.map(|id| id.to_string()).unwrap_or_default(),
        local_endpoint: p.local_endpoint.map(|e| e.to_string()).unwrap_or_default(),
        remote_endpoint: p.remote_endpoint.map(|e| e.to_string()).unwrap_or_default(),
        state_seconds: now.saturating_duration_since(p.state_since).as_secs(),
        hold_time: p.hold_time.into(),
        keepalive_time: p.keepalive_time.into(),
        families: p.families.iter().map(ToString::to_string).collect(),
        peer_capabilities: p.peer_capabilities.clone(),
        local_capabilities: p.local_capabilities.clone(),
        messages_received: Some(counters(&p.received)),
        messages_sent: Some(counters(&p.sent)),
        passive: p.passive,
        established_transitions: p.established_transitions,
        shutdown: p.shutdown,
        bfd: bfd_message(p, now),
        graceful_restart: Some(graceful_message(&p.graceful, now)),
    }
}

fn graceful_message(g: &GracefulStatus, now: Instant) -> pb::GracefulRestart {
    let (helper_state, until) = match g.helper.current(now.into()) {
        HelperState::None => (pb::HelperState::HelperNone, None),
        HelperState::Restarting { until } => (pb::HelperState::HelperRestarting, Some(until)),
        HelperState::WaitingForEndOfRib { until } => {
            (pb::HelperState::HelperWaitingForEndOfRib, Some(until))
        }
    };
    let helper_seconds_left = until.map_or(0, |u| {
        u.into_std()
            .saturating_duration_since(now)
            .as_secs_f64()
            .ceil() as u64
    });
    let peer = g.peer.as_ref();
    pb::GracefulRestart {
        negotiated: g.local.is_some() && peer.is_some(),
        local_restart_time: g.local.as_ref().map_or(0, |l| l.restart_time.into()),
        peer_restart_time: peer.map_or(0, |p| p.restart_time.into()),
        peer_restarting: peer.is_some_and(|p| p.restarting),
        peer_forwarding_preserved: peer
            .map(|p| {
                p.families
                    .iter()
                    .filter(|f| f.forwarding_preserved)
                    .map(|f| f.family.to_string())
                    .collect()
            })
            .unwrap_or_default(),
        local_restarting: g.local.as_ref().is_some_and(|l| l.restarting),
        helper_state: helper_state.into(),
        helper_seconds_left,
        stale_prefixes: 0,
    }
}

fn bfd_message(p: &PeerStatus, now: Instant) -> Option<pb::Bfd> {
    let config = p.bfd_config?;
    let ms = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    let mut out = pb::Bfd {
        min_rx_ms: ms(config.min_rx),
        min_tx_ms: ms(config.min_tx),
        multiplier: config.multiplier.into(),
        ..pb::Bfd::default()
    };
    if let Some(s) = &p.bfd {
        out.state = s.state.to_string();
        out.remote_state = s.remote_state.to_string();
        out.local_diagnostic = s.local_diagnostic.to_string();
        out.remote_diagnostic = s.remote_diagnostic.to_string();
        out.local_discriminator = s.local_discriminator;
        out.remote_discriminator = s.remote_discriminator;
        out.tx_interval_ms = ms(s.tx_interval);
        out.detection_time_ms = ms(s.detection_time);
        out.remote_min_rx_ms = ms(s.remote_min_rx);
        out.remote_min_tx_ms = ms(s.remote_min_tx);
        out.remote_multiplier = s.remote_multiplier.into();
        out.up_transitions = p.bfd_up_transitions();
        out.state_seconds = now.saturating_duration_since(s.since).as_secs();
        out.remote_control_plane_independent = s.remote_control_plane_independent;
    }
    Some(out)
}

fn counters(c: &MessageCounters) -> pb::MessageCounters {
    pb::MessageCounters {
        open: c.open,
        update: c.update,
        notification: c.notification,
        keepalive: c.keepalive,
        route_refresh: c.route_refresh,
    }
}

fn session_state(state: State) -> SessionState {
    match state {
        State::Idle => SessionState::Idle,
        State::Connect => SessionState::Connect,
        State::Active => SessionState::Active,
        State::OpenSent => SessionState::Opensent,
        State::OpenConfirm => SessionState::Openconfirm,
        State::Established => SessionState::Established,
    }
}

fn route_message(route: &Route, accepted: bool, peer: &str) -> pb::Route {
    let mut out = pb::Route {
        prefix: route.nlri.prefix.to_string(),
        peer: peer.to_string(),
        path_id: route.nlri.path_id.unwrap_or(0),
        accepted,
        ..pb::Route::default()
    };
    attributes_message(&route.path, &mut out);
    out
}

/// Fills `out`'s next hops and path attributes from `attrs`.
fn attributes_message(attrs: &PathAttributes, out: &mut pb::Route) {
    out.next_hops = attrs.next_hops.iter().map(ToString::to_string).collect();
    for attribute in &attrs.attributes {
        match attribute {
            PathAttribute::Origin(origin) => {
                out.origin = match origin {
                    Origin::Igp => pb::Origin::Igp,
                    Origin::Egp => pb::Origin::Egp,
                    Origin::Incomplete => pb::Origin::Incomplete,
                }
                .into();
            }
            PathAttribute::AsPath(path) => {
                out.as_path = path
                    .segments
                    .iter()
                    .map(|s| {
                        let (kind, asns) = match s {
                            AsSegment::Sequence(a) => (pb::as_path_segment::Type::AsSequence, a),
                            AsSegment::Set(a) => (pb::as_path_segment::Type::AsSet, a),
                        };
                        pb::AsPathSegment {
                            r#type: kind.into(),
                            asns: asns.clone(),
                        }
                    })
                    .collect();
            }
            PathAttribute::MultiExitDisc(med) => out.med = Some(*med),
            PathAttribute::LocalPref(pref) => out.local_pref = Some(*pref),
            PathAttribute::AtomicAggregate => out.atomic_aggregate = true,
            PathAttribute::Communities(list) => {
                out.communities = list
                    .iter()
                    .map(|c| format!("{}:{}", c.0 >> 16, c.0 & 0xffff))
                    .collect();
            }
            PathAttribute::LargeCommunities(list) => {
                out.large_communities = list
                    .iter()
                    .map(|c| format!("{}:{}:{}", c.global_admin, c.local_data_1, c.local_data_2))
                    .collect();
            }
            PathAttribute::ExtendedCommunities(list) => {
                out.extended_communities = list
                    .iter()
                    .map(|c| c.0.iter().map(|b| format!("{b:02x}")).collect())
                    .collect();
            }
            PathAttribute::OriginatorId(id) => out.originator_id = id.to_string(),
            PathAttribute::ClusterList(list) => {
                out.cluster_list = list.iter().map(ToString::to_string).collect();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::wire::Origin;

    fn path(peer: u32, address: Option<&str>) -> RibPath {
        RibPath {
            peer,
            peer_address: address.map(|a| a.parse().unwrap()),
            attrs: Arc::new(PathAttributes {
                attributes: vec![PathAttribute::Origin(Origin::Igp)],
                next_hops: Vec::new(),
            }),
            accepted: true,
            reachable: true,
            best: false,
            multipath: false,
            lost_at: None,
            resolved: Vec::new(),
        }
    }

    fn route(paths: Vec<RibPath>) -> RibRoute {
        RibRoute {
            prefix: "10.244.1.0/26".parse().unwrap(),
            paths,
            kernel: None,
            shadowed_by: None,
        }
    }

    fn best(p: RibPath) -> RibPath {
        RibPath {
            best: true,
            multipath: true,
            ..p
        }
    }

    #[test]
    fn a_lone_originated_path_is_the_only_path() {
        let r = route(vec![best(path(LOCAL_PEER, None))]);
        assert_eq!(reasons(&r), ["only path"]);
    }

    #[test]
    fn the_best_names_the_step_the_runner_up_lost_at() {
        let r = route(vec![
            best(path(1, Some("192.0.2.1"))),
            RibPath {
                lost_at: Some(Step::AsPathLength),
                ..path(2, Some("192.0.2.2"))
            },
        ]);
        assert_eq!(
            reasons(&r),
            [
                "best: shorter AS path than 192.0.2.2",
                "lost to 192.0.2.1: shorter AS path",
            ]
        );
    }

    #[test]
    fn local_preference_and_locally_originated() {
        let r = route(vec![
            best(path(LOCAL_PEER, None)),
            RibPath {
                lost_at: Some(Step::Local),
                ..path(2, Some("192.0.2.2"))
            },
        ]);
        assert_eq!(
            reasons(&r),
            [
                "best: locally originated (runner-up 192.0.2.2)",
                "lost to local: locally originated",
            ]
        );
        let r = route(vec![
            best(path(3, Some("2001:db8::3"))),
            RibPath {
                lost_at: Some(Step::LocalPref),
                ..path(1, Some("192.0.2.1"))
            },
        ]);
        assert_eq!(
            reasons(&r)[1],
            "lost to 2001:db8::3: higher local preference"
        );
    }

    #[test]
    fn multipath_and_the_ecmp_limit() {
        let r = route(vec![
            best(path(1, Some("192.0.2.1"))),
            RibPath {
                multipath: true,
                lost_at: Some(Step::RouterId),
                ..path(2, Some("192.0.2.2"))
            },
            RibPath {
                lost_at: Some(Step::RouterId),
                ..path(3, Some("192.0.2.3"))
            },
        ]);
        assert_eq!(
            reasons(&r),
            [
                "best: lower router ID than 192.0.2.2; 2 equal-cost paths in use",
                "multipath, lost to 192.0.2.1: lower router ID",
                "lost to 192.0.2.1: lower router ID (equal cost, but the ECMP path limit is reached)",
            ]
        );
    }

    #[test]
    fn unusable_paths_say_why() {
        let r = route(vec![
            best(path(1, Some("192.0.2.1"))),
            RibPath {
                accepted: false,
                ..path(2, Some("192.0.2.2"))
            },
            RibPath {
                reachable: false,
                ..path(3, Some("192.0.2.3"))
            },
        ]);
        assert_eq!(
            reasons(&r),
            [
                "best: the only usable path",
                "not accepted (import policy, AS loop or own prefix)",
                "next hop unreachable",
            ]
        );
        // Nothing usable: no best path at all.
        let r = route(vec![RibPath {
            reachable: false,
            ..path(2, Some("192.0.2.2"))
        }]);
        assert_eq!(reasons(&r), ["next hop unreachable"]);
    }

    #[test]
    fn covering_prefixes() {
        let net = |s: &str| s.parse::<IpNetwork>().unwrap();
        assert!(covers(net("10.244.0.0/16"), net("10.244.1.5/32")));
        assert!(covers(net("10.244.1.0/26"), net("10.244.1.0/26")));
        assert!(!covers(net("10.244.1.0/26"), net("10.244.0.0/16")));
        assert!(!covers(net("10.245.0.0/16"), net("10.244.1.5/32")));
        assert!(!covers(net("::/0"), net("10.244.1.5/32")));
        assert_eq!(parse_prefix("").unwrap(), None);
        assert_eq!(parse_prefix("10.0.0.1").unwrap(), Some(net("10.0.0.1/32")));
        assert!(parse_prefix("nonsense").is_err());
    }
}
