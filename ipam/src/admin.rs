// The Ipam gRPC service as a tonic router, ready for
// `podroute_proto::admin_socket::serve_unix` (the daemon's Unix socket, and
// tests that serve an engine of their own).

use tonic::transport::Server;
use tonic::transport::server::Router;

use crate::service::Ipamd;
use crate::service::grpc::IpamApi;
use crate::store::Store;

pub fn router<S: Store>(ipamd: Ipamd<S>) -> Router {
    Server::builder().add_service(IpamApi::new(ipamd).into_server())
}
