// The BgpAdmin gRPC service (proto/proto/bgpd.proto) that podctl talks to over
// the daemon's Unix admin socket: version, peers, and the routes received
// from and advertised to each peer. It reads the speaker's published peer
// snapshots and asks peer tasks for their RIBs.

use std::net::IpAddr;
use std::time::Instant;

use podroute_proto::bgpd::v1::bgp_admin_server::{BgpAdmin, BgpAdminServer};
use podroute_proto::bgpd::v1::{
    self as pb, GetPeerRequest, ListPeersRequest, ListPeersResponse, ListRoutesRequest,
    ListRoutesResponse, RouteDirection, SessionState,
};
use podroute_proto::common::v1::{AddressFamily, GetVersionRequest, VersionInfo};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use crate::rib::Route;
use crate::session::State;
use crate::speaker::{MessageCounters, PeerStatus, RibSide, Speaker};
use crate::wire::{AsSegment, Origin, PathAttribute};

pub struct AdminService {
    speaker: Speaker,
}

/// A tonic router serving the admin API of `speaker`, ready for
/// `podroute_proto::admin_socket::serve_unix`.
pub fn router(speaker: Speaker) -> Router {
    Server::builder().add_service(BgpAdminServer::new(AdminService { speaker }))
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

    async fn list_peers(
        &self,
        _: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        let now = Instant::now();
        let peers = self
            .speaker
            .peers()
            .iter()
            .map(|p| peer_message(p, now))
            .collect();
        Ok(Response::new(ListPeersResponse { peers }))
    }

    async fn get_peer(
        &self,
        request: Request<GetPeerRequest>,
    ) -> Result<Response<pb::Peer>, Status> {
        let address = parse_address(&request.get_ref().address)?;
        match self.speaker.peer(address) {
            Some(peer) => Ok(Response::new(peer_message(&peer, Instant::now()))),
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
        if request.peer.is_empty() {
            // No Loc-RIB yet: what we originate.
            let routes = self
                .speaker
                .originated()
                .iter()
                .filter(|p| ipv4.is_none_or(|v4| p.is_ipv4() == v4))
                .map(|p| pb::Route {
                    prefix: p.to_string(),
                    origin: pb::Origin::Igp.into(),
                    best: true,
                    ..pb::Route::default()
                })
                .collect();
            return Ok(Response::new(ListRoutesResponse { routes }));
        }
        let address = parse_address(&request.peer)?;
        let side = match RouteDirection::try_from(request.direction) {
            Ok(RouteDirection::Advertised) => RibSide::Advertised,
            _ => RibSide::Received,
        };
        let Some(routes) = self.speaker.routes(address, side, ipv4).await else {
            return Err(Status::not_found(format!(
                "no BGP peer {address} is configured"
            )));
        };
        let peer = address.to_string();
        let routes = routes
            .iter()
            .map(|(route, accepted)| route_message(route, *accepted, &peer))
            .collect();
        Ok(Response::new(ListRoutesResponse { routes }))
    }
}

fn parse_address(text: &str) -> Result<IpAddr, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not an IP address")))
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
    }
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
        next_hops: route
            .path
            .next_hops
            .iter()
            .map(ToString::to_string)
            .collect(),
        peer: peer.to_string(),
        path_id: route.nlri.path_id.unwrap_or(0),
        // Until the Loc-RIB exists, "best" means accepted by loop detection.
        best: accepted,
        ..pb::Route::default()
    };
    for attribute in &route.path.attributes {
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
    out
}
