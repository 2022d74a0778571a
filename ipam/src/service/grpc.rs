// The Ipam gRPC service (proto/proto/ipam.proto) over an `Ipamd`: request
// checks, caller rights (auth.rs), conversions to and from the proto types,
// and the mapping of errors onto the status codes the proto documents.
// Every call is timed and counted by RPC and status code (stats.rs).

use std::collections::HashSet;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Instant;

use futures_util::Stream;
use podroute_proto::common::v1::{AddressFamily, GetStatusRequest, GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1 as pb;
use podroute_proto::ipam::v1::ipam_server::{Ipam, IpamServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::auth::Caller;
use super::stats::Method;
use super::{Ipamd, ServiceError};
use crate::allocator::{self, AllocateRequest, ErrorClass};
use crate::model::{Family, IpPool};
use crate::store::Store;

/// Messages a slow WatchNodeBlocks client may fall behind by; each is the
/// whole view, so the watcher skips to the newest when it catches up.
const WATCH_BUFFER: usize = 4;

pub struct IpamApi<S: Store> {
    ipamd: Ipamd<S>,
}

impl<S: Store> IpamApi<S> {
    pub fn new(ipamd: Ipamd<S>) -> Self {
        IpamApi { ipamd }
    }

    pub fn into_server(self) -> IpamServer<Self> {
        IpamServer::new(self)
    }

    /// Runs one call, and counts it with its duration and status code.
    async fn observed<T>(
        &self,
        method: Method,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let started = Instant::now();
        let result = call.await;
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        self.ipamd.stats().request(method, code, started.elapsed());
        result
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        let message = error.to_string();
        let class = match &error {
            ServiceError::Alloc(e) => e.class(),
            ServiceError::Pool(e) => e.class(),
            ServiceError::Unavailable(_)
            | ServiceError::Contended { .. }
            | ServiceError::Stopping
            | ServiceError::NotReady(_) => return Status::unavailable(message),
            ServiceError::Store(_) => return Status::internal(message),
            ServiceError::Denied(_) => return Status::permission_denied(message),
            ServiceError::Unreadable(_) => return Status::failed_precondition(message),
        };
        match class {
            ErrorClass::InvalidArgument => Status::invalid_argument(message),
            ErrorClass::NotFound => Status::not_found(message),
            ErrorClass::AlreadyExists => Status::already_exists(message),
            ErrorClass::FailedPrecondition => Status::failed_precondition(message),
            ErrorClass::ResourceExhausted => Status::resource_exhausted(message),
        }
    }
}

type NodeBlocksStream = Pin<Box<dyn Stream<Item = Result<pb::NodeBlocks, Status>> + Send>>;

// The calls themselves; the `Ipam` impl below times and counts each.
impl<S: Store> IpamApi<S> {
    async fn get_version_call(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            podroute_proto::IPAM_API,
        )))
    }

    async fn get_status_call(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<pb::IpamStatus>, Status> {
        Ok(Response::new(self.ipamd.status().await))
    }

    async fn allocate_call(
        &self,
        request: Request<pb::AllocateRequest>,
    ) -> Result<Response<pb::AllocateResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        caller.may_act_for(&request.node)?;
        let request = allocate_request(request)?;
        let allocated = self.ipamd.allocate(request).await?;
        Ok(Response::new(pb::AllocateResponse {
            addresses: allocated.iter().map(allocated_to_proto).collect(),
        }))
    }

    async fn release_call(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let caller = Caller::of(&request)?;
        let handle = request.into_inner().handle;
        if handle.is_empty() {
            return Err(Status::invalid_argument("handle is empty"));
        }
        // The owner is checked by the writer, against the state it plans on.
        let as_node = match &caller {
            Caller::Admin | Caller::AnyNode => None,
            Caller::Node(node) => Some(node.as_str()),
        };
        let addresses = self.ipamd.release_as(&handle, as_node).await?;
        Ok(Response::new(pb::ReleaseResponse {
            released: count(addresses.len()),
            addresses: addresses.iter().map(IpAddr::to_string).collect(),
        }))
    }

    async fn garbage_collect_call(
        &self,
        request: Request<pb::GarbageCollectRequest>,
    ) -> Result<Response<pb::GarbageCollectResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        if request.node.is_empty() {
            return Err(Status::invalid_argument("node is empty"));
        }
        caller.may_act_for(&request.node)?;
        let valid: HashSet<String> = request.valid_handles.into_iter().collect();
        let (released_handles, addresses) = self
            .ipamd
            .garbage_collect(&request.node, &valid, &request.handle_prefix)
            .await?;
        if !released_handles.is_empty() {
            tracing::info!(node = %request.node, handles = released_handles.len(), addresses, "garbage collected");
        }
        Ok(Response::new(pb::GarbageCollectResponse {
            released_handles,
            released_addresses: count(addresses),
        }))
    }

    async fn list_pools_call(
        &self,
        _: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        let pools = self
            .ipamd
            .read(|m| m.state.pools().map(|p| pool_to_proto(&p.value)).collect())
            .await;
        Ok(Response::new(pb::ListPoolsResponse { pools }))
    }

    async fn create_pool_call(
        &self,
        request: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::Pool>, Status> {
        Caller::of(&request)?.must_be_admin("create pools")?;
        let Some(pool) = request.into_inner().pool else {
            return Err(Status::invalid_argument("pool is missing"));
        };
        let pool = pool_from_proto(pool)?;
        let answer = pool_to_proto(&pool);
        let changed = self.ipamd.put_pool(pool, false).await?;
        if changed {
            tracing::info!(pool = %answer.name, cidr = %answer.cidr, "pool created");
        }
        Ok(Response::new(answer))
    }

    async fn delete_pool_call(
        &self,
        request: Request<pb::DeletePoolRequest>,
    ) -> Result<Response<pb::DeletePoolResponse>, Status> {
        Caller::of(&request)?.must_be_admin("delete pools")?;
        let name = request.into_inner().name;
        let blocks_removed = self.ipamd.delete_pool(&name).await?;
        tracing::info!(pool = %name, blocks_removed, "pool deleted");
        Ok(Response::new(pb::DeletePoolResponse {
            blocks_removed: count(blocks_removed),
        }))
    }

    async fn list_blocks_call(
        &self,
        request: Request<pb::ListBlocksRequest>,
    ) -> Result<Response<pb::ListBlocksResponse>, Status> {
        let node = request.into_inner().node;
        let settings = self.ipamd.settings().clone();
        let now = super::unix_ms();
        let node = (!node.is_empty()).then_some(node.as_str());
        let blocks = self
            .ipamd
            .read(|m| allocator::list_blocks(&m.state, node, &settings, now))
            .await;
        let blocks = blocks.iter().map(block_to_proto).collect();
        Ok(Response::new(pb::ListBlocksResponse { blocks }))
    }

    async fn watch_node_blocks_call(
        &self,
        request: Request<pb::WatchNodeBlocksRequest>,
    ) -> Result<Response<NodeBlocksStream>, Status> {
        let caller = Caller::of(&request)?;
        let node = request.into_inner().node;
        if node.is_empty() {
            return Err(Status::invalid_argument("node is empty"));
        }
        caller.may_act_for(&node)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(send_node_views(self.ipamd.clone(), node, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn usage_call(
        &self,
        _: Request<pb::UsageRequest>,
    ) -> Result<Response<pb::UsageResponse>, Status> {
        let settings = self.ipamd.settings().clone();
        let now = super::unix_ms();
        let pools = self
            .ipamd
            .read(|m| allocator::usage(&m.state, now, &settings))
            .await;
        Ok(Response::new(pb::UsageResponse {
            pools: pools.iter().map(usage_to_proto).collect(),
        }))
    }

    async fn check_call(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let extra = request.into_inner().known_nodes;
        let known = match (self.ipamd.nodes().known(), extra.is_empty()) {
            (None, true) => None,
            (known, _) => {
                let mut known = known.unwrap_or_default();
                known.extend(extra);
                Some(known)
            }
        };
        let settings = self.ipamd.settings().clone();
        let now = super::unix_ms();
        let report = self
            .ipamd
            .read(|m| allocator::check(&m.state, known.as_ref(), &settings, now))
            .await;
        Ok(Response::new(check_to_proto(&report)))
    }

    async fn show_address_call(
        &self,
        request: Request<pb::ShowAddressRequest>,
    ) -> Result<Response<pb::ShowAddressResponse>, Status> {
        let text = request.into_inner().address;
        let ip = parse_ip(&text)?;
        let settings = self.ipamd.settings().clone();
        let info = self
            .ipamd
            .read(|m| allocator::show_address(&m.state, ip, &settings, super::unix_ms()))
            .await;
        Ok(Response::new(address_to_proto(&info)))
    }
}

#[tonic::async_trait]
impl<S: Store> Ipam for IpamApi<S> {
    type WatchNodeBlocksStream = NodeBlocksStream;

    async fn get_version(
        &self,
        request: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        self.observed(Method::GetVersion, self.get_version_call(request))
            .await
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<pb::IpamStatus>, Status> {
        self.observed(Method::GetStatus, self.get_status_call(request))
            .await
    }

    async fn allocate(
        &self,
        request: Request<pb::AllocateRequest>,
    ) -> Result<Response<pb::AllocateResponse>, Status> {
        self.observed(Method::Allocate, self.allocate_call(request))
            .await
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        self.observed(Method::Release, self.release_call(request))
            .await
    }

    async fn garbage_collect(
        &self,
        request: Request<pb::GarbageCollectRequest>,
    ) -> Result<Response<pb::GarbageCollectResponse>, Status> {
        self.observed(Method::GarbageCollect, self.garbage_collect_call(request))
            .await
    }

    async fn list_pools(
        &self,
        request: Request<pb::ListPoolsRequest>,
    ) -> Result<Response<pb::ListPoolsResponse>, Status> {
        self.observed(Method::ListPools, self.list_pools_call(request))
            .await
    }

    async fn create_pool(
        &self,
        request: Request<pb::CreatePoolRequest>,
    ) -> Result<Response<pb::Pool>, Status> {
        self.observed(Method::CreatePool, self.create_pool_call(request))
            .await
    }

    async fn delete_pool(
        &self,
        request: Request<pb::DeletePoolRequest>,
    ) -> Result<Response<pb::DeletePoolResponse>, Status> {
        self.observed(Method::DeletePool, self.delete_pool_call(request))
            .await
    }

    async fn list_blocks(
        &self,
        request: Request<pb::ListBlocksRequest>,
    ) -> Result<Response<pb::ListBlocksResponse>, Status> {
        self.observed(Method::ListBlocks, self.list_blocks_call(request))
            .await
    }

    async fn watch_node_blocks(
        &self,
        request: Request<pb::WatchNodeBlocksRequest>,
    ) -> Result<Response<Self::WatchNodeBlocksStream>, Status> {
        self.observed(
            Method::WatchNodeBlocks,
            self.watch_node_blocks_call(request),
        )
        .await
    }

    async fn usage(
        &self,
        request: Request<pb::UsageRequest>,
    ) -> Result<Response<pb::UsageResponse>, Status> {
        self.observed(Method::Usage, self.usage_call(request)).await
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        self.observed(Method::Check, self.check_call(request)).await
    }

    async fn show_address(
        &self,
        request: Request<pb::ShowAddressRequest>,
    ) -> Result<Response<pb::ShowAddressResponse>, Status> {
        self.observed(Method::ShowAddress, self.show_address_call(request))
            .await
    }
}

/// Sends `node`'s view now and after every change to it, until the client
/// goes away.
async fn send_node_views<S: Store>(
    ipamd: Ipamd<S>,
    node: String,
    tx: mpsc::Sender<Result<pb::NodeBlocks, Status>>,
) {
    let _counted = ipamd.stats().watching();
    let mut changes = ipamd.changes();
    let mut last = None;
    let settings = ipamd.settings().clone();
    loop {
        let revision = *changes.borrow_and_update();
        let now = super::unix_ms();
        let view = ipamd
            .read(|m| node_view_to_proto(&m.state, &node, revision, &settings, now))
            .await;
        let unchanged = last.as_ref().is_some_and(|l: &pb::NodeBlocks| {
            l.blocks == view.blocks && l.borrowed == view.borrowed
        });
        if !unchanged {
            last = Some(view.clone());
            if tx.send(Ok(view)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn parse_ip(text: &str) -> Result<IpAddr, Status> {
    // Accept "10.0.0.1" and "10.0.0.1/32" alike.
    let bare = text.split('/').next().unwrap_or(text);
    bare.trim()
        .parse()
        .map_err(|_| Status::invalid_argument(format!("{text:?} is not an IP address")))
}

/// Longest pod namespace or name stored with an allocation: Kubernetes'
/// own limits (63 for a namespace, 253 for a name), so a record stays small.
const MAX_NAMESPACE: usize = 63;
const MAX_POD_NAME: usize = 253;

fn allocate_request(request: pb::AllocateRequest) -> Result<AllocateRequest, Status> {
    if request.pod_namespace.len() > MAX_NAMESPACE || request.pod_name.len() > MAX_POD_NAME {
        return Err(Status::invalid_argument(format!(
            "pod namespace or name too long (at most {MAX_NAMESPACE} and {MAX_POD_NAME} characters)"
        )));
    }
    if request.addresses.len() > 2 || request.pools.len() > 64 {
        return Err(Status::invalid_argument(
            "at most one address per family and 64 pools may be asked for",
        ));
    }
    let mut families = Vec::new();
    for family in &request.families {
        match AddressFamily::try_from(*family) {
            Ok(AddressFamily::Ipv4) => families.push(Family::V4),
            Ok(AddressFamily::Ipv6) => families.push(Family::V6),
            Ok(AddressFamily::Unspecified) => {}
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown address family {family}"
                )));
            }
        }
    }
    families.dedup();
    let addresses = request
        .addresses
        .iter()
        .map(|a| parse_ip(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AllocateRequest {
        node: request.node,
        handle: request.handle,
        pod_namespace: request.pod_namespace,
        pod_name: request.pod_name,
        families,
        pools: request.pools,
        addresses,
    })
}

fn family_to_proto(family: Family) -> i32 {
    match family {
        Family::V4 => AddressFamily::Ipv4.into(),
        Family::V6 => AddressFamily::Ipv6.into(),
    }
}

fn allocated_to_proto(a: &allocator::Allocated) -> pb::AllocatedAddress {
    let host = if a.address.is_ipv4() { 32 } else { 128 };
    pb::AllocatedAddress {
        address: format!("{}/{host}", a.address),
        family: family_to_proto(a.family),
        block: a.block.to_string(),
        pool: a.pool.clone(),
        borrowed: a.borrowed,
    }
}

pub fn pool_to_proto(pool: &IpPool) -> pb::Pool {
    pb::Pool {
        name: pool.name().to_owned(),
        cidr: pool.spec.cidr.to_string(),
        block_size: u32::from(pool.block_prefix()),
        disabled: pool.spec.disabled,
        node_selector: pool.spec.node_selector.clone(),
        disable_bgp_export: pool.spec.disable_bgp_export,
        reserved_cidrs: pool
            .spec
            .reserved_cidrs
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

fn pool_from_proto(pool: pb::Pool) -> Result<IpPool, Status> {
    let cidr = pool
        .cidr
        .parse()
        .map_err(|e| Status::invalid_argument(format!("cidr {:?}: {e}", pool.cidr)))?;
    let block_size = match pool.block_size {
        0 => None,
        n => Some(
            u8::try_from(n)
                .map_err(|_| Status::invalid_argument(format!("block size {n} is out of range")))?,
        ),
    };
    let reserved_cidrs = pool
        .reserved_cidrs
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|e| Status::invalid_argument(format!("reserved CIDR {c:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IpPool::new(
        pool.name,
        crate::model::IpPoolSpec {
            cidr,
            block_size,
            disabled: pool.disabled,
            node_selector: pool.node_selector,
            disable_bgp_export: pool.disable_bgp_export,
            reserved_cidrs,
        },
    ))
}

fn block_to_proto(b: &allocator::BlockInfo) -> pb::Block {
    pb::Block {
        cidr: b.cidr.to_string(),
        pool: b.pool.clone(),
        node: b.node.clone().unwrap_or_default(),
        capacity: b.capacity,
        allocated: b.allocated,
        cooling: b.cooling,
        borrowed_by_others: b.borrowed_by_others,
        disable_bgp_export: b.disable_bgp_export,
        empty_since_unix_ms: b.empty_since_ms.unwrap_or(0),
    }
}

fn node_view_to_proto(
    state: &crate::model::State,
    node: &str,
    revision: i64,
    settings: &allocator::Settings,
    now: u64,
) -> pb::NodeBlocks {
    let view = allocator::node_view(state, node, settings, now);
    pb::NodeBlocks {
        node: node.to_owned(),
        revision,
        blocks: view
            .blocks
            .iter()
            .map(block_to_proto)
            .map(|mut b| {
                // Counters change with every pod; the stream carries what
                // to announce, so it does not resend for a count.
                b.allocated = 0;
                b.cooling = 0;
                b.borrowed_by_others = 0;
                b.empty_since_unix_ms = 0;
                b
            })
            .collect(),
        borrowed: view
            .borrowed
            .iter()
            .map(|b| pb::BorrowedAddress {
                address: b.address.to_string(),
                block: b.block.to_string(),
                pool: b.pool.clone(),
                block_node: b.block_node.clone().unwrap_or_default(),
                handle: b.handle.clone(),
                disable_bgp_export: b.disable_bgp_export,
            })
            .collect(),
    }
}

fn usage_to_proto(u: &allocator::PoolUsage) -> pb::PoolUsage {
    pb::PoolUsage {
        pool: u.pool.clone(),
        cidr: u.cidr.to_string(),
        disabled: u.disabled,
        capacity: u.capacity,
        allocated: u.allocated,
        cooling: u.cooling,
        reserved: u.reserved,
        blocks_total: u.blocks_total,
        blocks_claimed: u.blocks_claimed,
    }
}

fn check_to_proto(r: &allocator::CheckReport) -> pb::CheckResponse {
    pb::CheckResponse {
        problems: r
            .problems
            .iter()
            .map(|p| pb::Problem {
                kind: problem_kind_to_proto(p.kind).into(),
                subject: p.subject.clone(),
                detail: p.detail.clone(),
            })
            .collect(),
        pools_checked: r.pools_checked,
        blocks_checked: r.blocks_checked,
        handles_checked: r.handles_checked,
        allocations_checked: r.allocations_checked,
        nodes_checked: r.nodes_checked,
    }
}

fn problem_kind_to_proto(kind: allocator::ProblemKind) -> pb::ProblemKind {
    use allocator::ProblemKind as K;
    match kind {
        K::AllocationWithoutHandle => pb::ProblemKind::AllocationWithoutHandle,
        K::HandleWithoutAllocation => pb::ProblemKind::HandleWithoutAllocation,
        K::BlockOfUnknownNode => pb::ProblemKind::BlockOfUnknownNode,
        K::AllocationOfUnknownNode => pb::ProblemKind::AllocationOfUnknownNode,
        K::Overlap => pb::ProblemKind::Overlap,
        K::BlockOutsidePool => pb::ProblemKind::BlockOutsidePool,
        K::DuplicateAddress => pb::ProblemKind::DuplicateAddress,
        K::LeakedEmptyBlock => pb::ProblemKind::LeakedEmptyBlock,
        K::UnreadableRecord => pb::ProblemKind::UnreadableRecord,
    }
}

fn address_to_proto(a: &allocator::AddressInfo) -> pb::ShowAddressResponse {
    let free = pb::ShowAddressResponse {
        address: a.address.to_string(),
        pool: a.pool.clone().unwrap_or_default(),
        block: a.block.map(|b| b.to_string()).unwrap_or_default(),
        block_node: a.block_node.clone().unwrap_or_default(),
        borrowed: a.borrowed,
        reserved: a.reserved,
        cooling_until_unix_ms: a.cooling_until_ms.unwrap_or(0),
        ..Default::default()
    };
    match &a.allocation {
        None => free,
        Some(held) => pb::ShowAddressResponse {
            allocated: true,
            handle: held.handle.clone(),
            node: held.node.clone(),
            pod_namespace: held.pod_namespace.clone(),
            pod_name: held.pod_name.clone(),
            allocated_at_unix_ms: held.allocated_at_ms,
            ..free
        },
    }
}
