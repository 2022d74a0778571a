// A fake podroute-ipamd: canned answers per call (or one error for every
// call) on a Unix socket in its own temporary directory, recording the
// requests podctl made, so a test checks both what podctl sent and what it
// printed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use podroute_proto::admin_socket::BackgroundServer;
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
use tonic::{Code, Request, Response, Status};

/// A request podctl made.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    ListPools,
    Usage,
    ListBlocks(ListBlocksRequest),
    Show(ShowAddressRequest),
    Check(CheckRequest),
    Release(ReleaseRequest),
    CreatePool(CreatePoolRequest),
    DeletePool(DeletePoolRequest),
}

/// What the fake answers: each call its canned response, or `error` for
/// every call when set.
#[derive(Debug, Default)]
pub struct Script {
    pub pools: ListPoolsResponse,
    pub usage: UsageResponse,
    pub blocks: ListBlocksResponse,
    pub show: ShowAddressResponse,
    pub check: CheckResponse,
    pub release: ReleaseResponse,
    pub delete: DeletePoolResponse,
    pub error: Option<(Code, &'static str)>,
}

#[derive(Debug, Clone)]
pub struct FakeIpam {
    script: Arc<Script>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeIpam {
    fn answer<T: Clone>(&self, call: Call, response: &T) -> Result<Response<T>, Status> {
        self.calls.lock().expect("calls lock").push(call);
        match self.script.error {
            Some((code, message)) => Err(Status::new(code, message)),
            None => Ok(Response::new(response.clone())),
        }
    }
}

#[tonic::async_trait]
impl Ipam for FakeIpam {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            "podroute-ipamd",
            "0.0.0-fake",
            podroute_proto::IPAM_API,
        )))
    }

    async fn get_status(
        &self,
        _: Request<podroute_proto::common::v1::GetStatusRequest>,
    ) -> Result<Response<podroute_proto::ipam::v1::IpamStatus>, Status> {
        Ok(Response::new(podroute_proto::ipam::v1::IpamStatus {
            health: Some(super::fake_health()),
            store: "embedded /var/lib/podroute/ipam/ipam.redb".into(),
            pools: u32::try_from(self.script.pools.pools.len()).unwrap_or(u32::MAX),
            nodes: 2,
            allocations: 10,
            releases: 4,
        }))
    }

    async fn allocate(
        &self,
        _: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        Err(Status::unimplemented("not used by podctl"))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        self.answer(Call::Release(request.into_inner()), &self.script.release)
    }

    async fn garbage_collect(
        &self,
        _: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectResponse>, Status> {
        Err(Status::unimplemented("not used by podctl"))
    }

    async fn list_pools(
        &self,
        _: Request<ListPoolsRequest>,
    ) -> Result<Response<ListPoolsResponse>, Status> {
        self.answer(Call::ListPools, &self.script.pools)
    }

    /// Echoes the pool back as stored, with ipamd's default block size.
    async fn create_pool(
        &self,
        request: Request<CreatePoolRequest>,
    ) -> Result<Response<Pool>, Status> {
        let request = request.into_inner();
        let mut pool = request.pool.clone().unwrap_or_default();
        if pool.block_size == 0 {
            pool.block_size = 26;
        }
        self.answer(Call::CreatePool(request), &pool)
    }

    async fn delete_pool(
        &self,
        request: Request<DeletePoolRequest>,
    ) -> Result<Response<DeletePoolResponse>, Status> {
        self.answer(Call::DeletePool(request.into_inner()), &self.script.delete)
    }

    async fn list_blocks(
        &self,
        request: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        self.answer(Call::ListBlocks(request.into_inner()), &self.script.blocks)
    }

    type WatchNodeBlocksStream = tonic::codegen::tokio_stream::Empty<Result<NodeBlocks, Status>>;

    async fn watch_node_blocks(
        &self,
        _: Request<WatchNodeBlocksRequest>,
    ) -> Result<Response<Self::WatchNodeBlocksStream>, Status> {
        Err(Status::unimplemented("not used by podctl"))
    }

    async fn usage(&self, _: Request<UsageRequest>) -> Result<Response<UsageResponse>, Status> {
        self.answer(Call::Usage, &self.script.usage)
    }

    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        self.answer(Call::Check(request.into_inner()), &self.script.check)
    }

    async fn show_address(
        &self,
        request: Request<ShowAddressRequest>,
    ) -> Result<Response<ShowAddressResponse>, Status> {
        self.answer(Call::Show(request.into_inner()), &self.script.show)
    }
}

/// The fake serving `script` on a socket in its own temporary directory.
pub struct Fake {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub server: BackgroundServer,
    service: FakeIpam,
}

impl Fake {
    pub async fn start(script: Script) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("ipamd.sock");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let service = FakeIpam {
            script: Arc::new(script),
            calls: calls.clone(),
        };
        let router = Server::builder().add_service(IpamServer::new(service.clone()));
        let server = BackgroundServer::start(&socket, router)
            .await
            .expect("serve the fake ipamd");
        Fake {
            dir,
            socket,
            calls,
            server,
            service,
        }
    }

    /// The same fake as a router, to serve elsewhere too (on TCP).
    pub fn router(&self) -> tonic::transport::server::Router {
        Server::builder().add_service(IpamServer::new(self.service.clone()))
    }

    /// The requests podctl made since the last look.
    pub fn calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("calls lock"))
    }

    pub async fn stop(self) {
        self.server.stop().await.expect("server result");
    }
}
