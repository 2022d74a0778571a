// The PolicyAdmin gRPC service (proto/proto/policy.proto) served by
// podroute-policy-agent on its Unix admin socket: version, local endpoints
// and (later) the explanation of a verdict.

use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use podroute_proto::policy::v1::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use podroute_proto::policy::v1::{
    ExplainRequest, ExplainResponse, ListEndpointsRequest, ListEndpointsResponse,
};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// The admin service. Stateless until the agent watches pods and policies.
#[derive(Debug, Default)]
pub struct AdminService;

/// A tonic router serving `AdminService`, ready for
/// `podroute_proto::admin_socket::serve_unix`.
pub fn router() -> Router {
    Server::builder().add_service(PolicyAdminServer::new(AdminService))
}

#[tonic::async_trait]
impl PolicyAdmin for AdminService {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            podroute_proto::POLICY_API,
        )))
    }

    /// Empty because the agent does not watch pods yet, so it knows no local
    /// endpoints: a true answer. The policy issue fills it from the model.
    async fn list_endpoints(
        &self,
        _: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        Ok(Response::new(ListEndpointsResponse {
            endpoints: Vec::new(),
        }))
    }

    async fn explain(
        &self,
        _: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        Err(Status::unimplemented(
            "explain arrives with the policy compiler issue",
        ))
    }
}

#[cfg(test)]
mod tests {
    use podroute_proto::admin_socket::{BackgroundServer, connect_unix};
    use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;

    use super::*;

    #[tokio::test]
    async fn serves_version_and_empty_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.sock");
        let server = BackgroundServer::start(&path, router()).await.unwrap();

        let mut client = PolicyAdminClient::new(connect_unix(&path).await.unwrap());
        let info = client
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.daemon, "podroute-policy-agent");
        assert_eq!(info.api_version, "podroute.policy.v1");
        let endpoints = client
            .list_endpoints(ListEndpointsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(endpoints.endpoints.is_empty());

        drop(client);
        server.stop().await.unwrap();
    }
}
