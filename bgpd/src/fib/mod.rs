// INTERFACE STUB: replaced by the real netlink FIB (issue4-fib branch).
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tokio::sync::mpsc;

pub const RTPROT_PODROUTE: u8 = 210;

#[derive(Debug, Clone)]
pub struct FibConfig {
    pub table: u32,
    pub protocol: u8,
    pub resync_interval: Duration,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            table: 254,
            protocol: RTPROT_PODROUTE,
            resync_interval: Duration::from_secs(300),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolvedNextHop {
    pub gateway: IpAddr,
    pub ifindex: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FibRoute {
    Blackhole,
    Unicast(Arc<[ResolvedNextHop]>),
}

#[derive(Debug, Clone)]
pub enum FibOp {
    Set(IpNetwork, FibRoute),
    Remove(IpNetwork),
}

#[derive(Debug, Default)]
pub struct KernelTable {}

impl KernelTable {
    pub fn resolve(&self, _addr: IpAddr) -> Option<Vec<ResolvedNextHop>> {
        None
    }
}

pub enum FibEvent {
    ResyncRequested { generation: u64 },
    KernelTable(Arc<KernelTable>),
}

#[derive(Debug, Clone, Default)]
pub struct FibStatus {
    pub installed: u64,
    pub pending: u64,
    pub failed: u64,
    pub errors_total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    Pending,
    Failed(String),
    Done,
}

#[derive(Debug, thiserror::Error)]
#[error("netlink: {0}")]
pub struct FibError(String);

#[derive(Clone)]
pub struct FibHandle {}

impl FibHandle {
    pub async fn apply(&self, _ops: Vec<FibOp>) {}
    pub async fn sync_done(&self, _generation: u64) {}
    pub fn status(&self) -> FibStatus {
        FibStatus::default()
    }
    pub fn route_state(&self, _prefix: &IpNetwork) -> RouteState {
        RouteState::Done
    }
}

pub async fn start(_config: FibConfig) -> Result<(FibHandle, mpsc::Receiver<FibEvent>), FibError> {
    let (_tx, rx) = mpsc::channel(1);
    Ok((FibHandle {}, rx))
}
