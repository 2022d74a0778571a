// What the RIB's FibHandle and the writer task share: ops waiting to be
// written (coalesced by prefix: the last op wins), the batch being written,
// prefixes whose last write failed, and counters. Only these few maps hold
// per-prefix state; what is installed lives in the kernel and the RIB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ipnetwork::IpNetwork;
use netlink_sys::Socket;
use podroute_proto::metrics::Histogram;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Desired, FibOp, FibStatus, MAX_REPORTED_FAILURES, OpMap, RouteState};

/// The route notification groups (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE).
pub(crate) const ROUTE_GROUPS: [u32; 2] = [libc::RTNLGRP_IPV4_ROUTE, libc::RTNLGRP_IPV6_ROUTE];

/// Prefixes waiting before apply() makes the RIB wait: bounds the memory of
/// a bulk load (the map being written plus this many waiting). 16 Ki ops
/// still fill a dozen 64 KiB netlink sends.
const HIGH_WATER: usize = 16_384;

/// A prefix whose last write failed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) desired: Desired,
    pub(crate) error: String,
    pub(crate) attempts: u32,
    pub(crate) retry_at: Instant,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) pending: OpMap,
    /// The ops the writer took and is writing now.
    pub(crate) in_flight: Option<Arc<OpMap>>,
    pub(crate) failed: HashMap<IpNetwork, Failure>,
    /// The generation the RIB finished, not yet acted on.
    pub(crate) sync_done: Option<u64>,
    /// When the oldest op in `pending` was queued (for the programming
    /// latency: from here to the kernel's answer).
    pub(crate) pending_since: Option<Instant>,
    /// Counters; pending, failed and failures are filled in by status().
    pub(crate) status: FibStatus,
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the writer: new ops or sync_done.
    pub(crate) work: Notify,
    /// Wakes apply() callers waiting for room.
    pub(crate) room: Notify,
    /// Cancelled when the last FibHandle is dropped.
    pub(crate) stop: CancellationToken,
    /// The monitor's notification socket, which the writer takes out of the
    /// route groups during a bulk write: our own notifications would cost
    /// the kernel as much again as the writes.
    route_listener: Mutex<Option<Arc<AsyncFd<Socket>>>>,
    /// Tells the monitor to re-read the kernel (route notifications were
    /// muted for a while).
    pub(crate) rescan: Notify,
    /// A link changed: the kernel may have flushed our nexthop objects (and
    /// the routes over them) without telling; the writer resyncs soon.
    pub(crate) links_changed: std::sync::atomic::AtomicBool,
    /// From a change being queued to the kernel's answer for it, one
    /// observation per write pass (its oldest change): see FibHandle.
    pub(crate) programming: Histogram,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            inner: Mutex::new(Inner::default()),
            work: Notify::new(),
            room: Notify::new(),
            stop: CancellationToken::new(),
            route_listener: Mutex::new(None),
            rescan: Notify::new(),
            links_changed: std::sync::atomic::AtomicBool::new(false),
            programming: Histogram::latency(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_route_listener(&self, fd: Arc<AsyncFd<Socket>>) {
        *self
            .route_listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(fd);
    }

    /// Stops route notifications to the monitor (see `route_listener`).
    pub(crate) fn mute_routes(&self) {
        if let Some(fd) = &*self
            .route_listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            for group in ROUTE_GROUPS {
                // Still joined at worst: more notifications, still correct.
                let _ = fd.get_ref().drop_membership(group);
            }
        }
    }

    /// Resumes route notifications, and has the monitor re-read what it
    /// missed.
    pub(crate) fn unmute_routes(&self) {
        if let Some(fd) = &*self
            .route_listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            for group in ROUTE_GROUPS {
                if let Err(e) = fd.get_ref().add_membership(group) {
                    tracing::warn!(group, error = %e, "cannot rejoin route notifications");
                }
            }
        }
        self.rescan.notify_one();
    }

    pub(crate) async fn apply(&self, ops: Vec<FibOp>) {
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut inner = self.lock();
                let free = HIGH_WATER.saturating_sub(inner.pending.len());
                if free > 0 || self.stop.is_cancelled() {
                    // Without a writer (stopped) the ops have nowhere to go.
                    inner.pending_since.get_or_insert_with(Instant::now);
                    coalesce(&mut inner.pending, ops.by_ref().take(free.max(1)));
                    drop(inner);
                    self.work.notify_one();
                    continue;
                }
            }
            room.await;
        }
    }

    pub(crate) fn sync_done(&self, generation: u64) {
        self.lock().sync_done = Some(generation);
        self.work.notify_one();
    }

    pub(crate) fn status(&self) -> FibStatus {
        let inner = self.lock();
        let mut status = inner.status.clone();
        status.pending =
            (inner.pending.len() + inner.in_flight.as_ref().map_or(0, |m| m.len())) as u64;
        status.failed = inner.failed.len() as u64;
        status.failures = inner
            .failed
            .iter()
            .take(MAX_REPORTED_FAILURES)
            .map(|(p, f)| (*p, f.error.clone()))
            .collect();
        status.failures.sort();
        status
    }

    pub(crate) fn route_state(&self, prefix: &IpNetwork) -> RouteState {
        let inner = self.lock();
        if inner.pending.contains_key(prefix)
            || inner
                .in_flight
                .as_ref()
                .is_some_and(|m| m.contains_key(prefix))
        {
            RouteState::Pending
        } else if let Some(f) = inner.failed.get(prefix) {
            RouteState::Failed(f.error.clone())
        } else {
            RouteState::Done
        }
    }
}

/// Merges `ops` into `pending`: per prefix the last op wins.
pub(crate) fn coalesce(pending: &mut OpMap, ops: impl IntoIterator<Item = FibOp>) {
    for op in ops {
        match op {
            FibOp::Set(prefix, route) => pending.insert(prefix, Some(route)),
            FibOp::Remove(prefix) => pending.insert(prefix, None),
        };
    }
}

/// Held by every FibHandle clone; the last one dropped stops the tasks.
pub(crate) struct Alive {
    shared: Arc<Shared>,
}

impl Alive {
    pub(crate) fn new(shared: Arc<Shared>) -> Alive {
        Alive { shared }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::super::{FibRoute, ResolvedNextHop};
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn via(last: u8) -> FibRoute {
        FibRoute::Unicast(Arc::from(vec![ResolvedNextHop {
            gateway: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
            ifindex: 2,
        }]))
    }

    #[test]
    fn last_op_for_a_prefix_wins() {
        let mut pending = OpMap::new();
        coalesce(
            &mut pending,
            vec![
                FibOp::Set(net("10.0.0.0/24"), via(1)),
                FibOp::Set(net("10.0.1.0/24"), via(1)),
                FibOp::Remove(net("10.0.0.0/24")),
                FibOp::Set(net("10.0.1.0/24"), via(2)),
            ],
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[&net("10.0.0.0/24")], None);
        assert_eq!(pending[&net("10.0.1.0/24")], Some(via(2)));
        // A flap within the window is written once, as its final state.
        coalesce(
            &mut pending,
            vec![FibOp::Set(net("10.0.0.0/24"), FibRoute::Blackhole)],
        );
        assert_eq!(pending[&net("10.0.0.0/24")], Some(FibRoute::Blackhole));
    }

    #[tokio::test]
    async fn route_state_follows_pending_in_flight_and_failed() {
        let shared = Shared::new();
        let p = net("10.0.0.0/24");
        assert_eq!(shared.route_state(&p), RouteState::Done);
        shared.apply(vec![FibOp::Set(p, via(1))]).await;
        assert_eq!(shared.route_state(&p), RouteState::Pending);
        assert_eq!(shared.status().pending, 1);
        {
            let mut inner = shared.lock();
            let taken = std::mem::take(&mut inner.pending);
            inner.in_flight = Some(Arc::new(taken));
        }
        assert_eq!(shared.route_state(&p), RouteState::Pending);
        {
            let mut inner = shared.lock();
            inner.in_flight = None;
            inner.failed.insert(
                p,
                Failure {
                    desired: Some(via(1)),
                    error: "Network is unreachable".into(),
                    attempts: 1,
                    retry_at: Instant::now(),
                },
            );
        }
        assert_eq!(
            shared.route_state(&p),
            RouteState::Failed("Network is unreachable".into())
        );
        let status = shared.status();
        assert_eq!((status.pending, status.failed), (0, 1));
        assert_eq!(
            status.failures,
            vec![(p, "Network is unreachable".to_string())]
        );
    }
}
