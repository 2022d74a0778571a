// The BgpAdmin gRPC service (proto/proto/bgpd.proto) that podctl talks to over
// the daemon's Unix admin socket: version, peers and routes.

use podroute_proto::bgpd::v1::bgp_admin_server::{BgpAdmin, BgpAdminServer};
use podroute_proto::bgpd::v1::{
    ListPeersRequest, ListPeersResponse, ListRoutesRequest, ListRoutesResponse,
};
use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// The admin service. It holds no state yet because the daemon runs no BGP
/// sessions yet; the BGP issue gives it a handle on the peers and the RIB.
#[derive(Debug, Default)]
pub struct AdminService;

/// A tonic router serving `AdminService`, ready for
/// `podroute_proto::admin_socket::serve_unix`.
pub fn router() -> Router {
    Server::builder().add_service(BgpAdminServer::new(AdminService))
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

    /// Empty because the daemon has no peers configured or sessions running
    /// yet: a true answer, not a placeholder. The BGP issue fills it from the
    /// session layer.
    async fn list_peers(
        &self,
        _: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        Ok(Response::new(ListPeersResponse { peers: Vec::new() }))
    }

    /// Empty because there is no RIB yet, so no routes (see `list_peers`).
    async fn list_routes(
        &self,
        _: Request<ListRoutesRequest>,
    ) -> Result<Response<ListRoutesResponse>, Status> {
        Ok(Response::new(ListRoutesResponse { routes: Vec::new() }))
    }
}

#[cfg(test)]
mod tests {
    use podroute_proto::admin_socket::{BackgroundServer, connect_unix};
    use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
    use podroute_proto::common::v1::AddressFamily;

    use super::*;

    #[tokio::test]
    async fn serves_version_peers_and_routes_over_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bgpd.sock");
        let server = BackgroundServer::start(&path, router()).await.unwrap();

        let mut client = BgpAdminClient::new(connect_unix(&path).await.unwrap());
        let info = client
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.daemon, "podroute-bgpd");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.api_version, "podroute.bgpd.v1");

        let peers = client
            .list_peers(ListPeersRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(peers.peers.is_empty());
        let routes = client
            .list_routes(ListRoutesRequest {
                family: AddressFamily::Ipv4.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(routes.routes.is_empty());

        drop(client);
        server.stop().await.unwrap();
        assert!(!path.exists());
    }
}
