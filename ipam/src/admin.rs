// The Ipam gRPC service (proto/proto/ipam.proto) served by podroute-ipamd on
// its Unix admin socket. GetVersion works; the allocation calls answer
// UNIMPLEMENTED until the allocator exists, so callers get a clear status.

use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1::ipam_server::{Ipam, IpamServer};
use podroute_proto::ipam::v1::{
    AllocateRequest, AllocateResponse, CheckRequest, CheckResponse, CreatePoolRequest,
    DeletePoolRequest, DeletePoolResponse, GarbageCollectRequest, GarbageCollectResponse,
    ListBlocksRequest, ListBlocksResponse, ListPoolsRequest, ListPoolsResponse, NodeBlocks, Pool,
    ReleaseRequest, ReleaseResponse, ShowAddressRequest, ShowAddressResponse, UsageRequest,
    UsageResponse, WatchNodeBlocksRequest,
};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// Message of every call the allocator will answer.
const NOT_YET: &str = "allocation arrives with the IPAM issue";

#[derive(Debug, Default)]
pub struct AdminService;

/// A tonic router serving `AdminService`, ready for
/// `podroute_proto::admin_socket::serve_unix`.
pub fn router() -> Router {
    Server::builder().add_service(IpamServer::new(AdminService))
}

#[tonic::async_trait]
impl Ipam for AdminService {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            podroute_proto::IPAM_API,
        )))
    }

    async fn allocate(
        &self,
        _: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn release(
        &self,
        _: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn list_pools(
        &self,
        _: Request<ListPoolsRequest>,
    ) -> Result<Response<ListPoolsResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn list_blocks(
        &self,
        _: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
    async fn garbage_collect(
        &self,
        _: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn create_pool(&self, _: Request<CreatePoolRequest>) -> Result<Response<Pool>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn delete_pool(
        &self,
        _: Request<DeletePoolRequest>,
    ) -> Result<Response<DeletePoolResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn usage(&self, _: Request<UsageRequest>) -> Result<Response<UsageResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn check(&self, _: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn show_address(
        &self,
        _: Request<ShowAddressRequest>,
    ) -> Result<Response<ShowAddressResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    type WatchNodeBlocksStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<NodeBlocks, Status>> + Send>>;

    async fn watch_node_blocks(
        &self,
        _: Request<WatchNodeBlocksRequest>,
    ) -> Result<Response<Self::WatchNodeBlocksStream>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
}

#[cfg(test)]
mod tests {
    use podroute_proto::admin_socket::{BackgroundServer, connect_unix};
    use podroute_proto::common::v1::AddressFamily;
    use podroute_proto::ipam::v1::ipam_client::IpamClient;
    use tonic::Code;

    use super::*;

    #[tokio::test]
    async fn version_works_and_allocate_is_unimplemented() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipamd.sock");
        let server = BackgroundServer::start(&path, router()).await.unwrap();

        let mut client = IpamClient::new(connect_unix(&path).await.unwrap());
        let info = client
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.daemon, "podroute-ipamd");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.api_version, "podroute.ipam.v1");

        let status = client
            .allocate(AllocateRequest {
                node: "node-1".into(),
                handle: "k8s-pod-network.abc123".into(),
                pod_namespace: "default".into(),
                pod_name: "web-0".into(),
                families: vec![AddressFamily::Ipv4.into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(status.message(), NOT_YET);

        // The daemon is still up after refusing.
        let again = client.get_version(GetVersionRequest {}).await.unwrap();
        assert_eq!(again.into_inner().daemon, "podroute-ipamd");

        drop(client);
        server.stop().await.unwrap();
    }
}
