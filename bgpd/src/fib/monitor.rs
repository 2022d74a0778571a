// The monitor task: listens to route, link and nexthop notifications and,
// when something not ours changed (or notifications were lost), re-reads the
// kernel into a fresh KernelTable, debounced, and sends it to the RIB if it
// differs from the last one. Our own route notifications are skipped by
// their protocol byte, without decoding.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::kernel_table::{KernelNexthop, KernelTable, RouteTarget};
use super::message::{self, RTN_BLACKHOLE, RTN_LOCAL, RTN_UNICAST, RTNH_F_DEAD};
use super::nexthop::{self, NexthopKind};
use super::socket::{NlError, NlSocket};
use super::state::Shared;
use super::{FibConfig, FibError, FibEvent};

/// Quiet time after a change before the kernel is re-read.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Upper bound on the wait under continuous change.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// After our own bulk writes (notifications were muted), the re-read waits
/// until the writer has been quiet this long: re-reading a growing table
/// after every chunk of a full-table load made the load quadratic (each
/// re-read walks every route, ours included, holding up our writes).
const QUIET_AFTER_BULK: Duration = Duration::from_millis(500);
/// Wait before reopening failed sockets.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// The local table (RT_TABLE_LOCAL): this host's addresses.
const RT_TABLE_LOCAL: u32 = 255;
/// RTN_THROW, the last of the types that drop or bounce a lookup.
const RTN_THROW: u8 = 9;
const RTNLGRP_LINK: u32 = libc::RTNLGRP_LINK;
const RTNLGRP_IPV4_ROUTE: u32 = libc::RTNLGRP_IPV4_ROUTE;
const RTNLGRP_IPV6_ROUTE: u32 = libc::RTNLGRP_IPV6_ROUTE;
const RTNLGRP_NEXTHOP: u32 = libc::RTNLGRP_NEXTHOP;

pub(crate) struct Monitor {
    config: FibConfig,
    notifications: NlSocket,
    query: NlSocket,
    events: mpsc::Sender<FibEvent>,
    shared: Arc<Shared>,
    last: Option<Arc<KernelTable>>,
}

impl Monitor {
    pub(crate) fn open(
        config: &FibConfig,
        events: mpsc::Sender<FibEvent>,
        shared: Arc<Shared>,
    ) -> Result<Monitor, FibError> {
        let (notifications, query) = open_sockets(config)?;
        shared.set_route_listener(notifications.shared_fd());
        Ok(Monitor {
            config: config.clone(),
            notifications,
            query,
            events,
            shared,
            last: None,
        })
    }

    /// Reads links, nexthop objects and the routes of others in the FIB's
    /// table and the local table.
    pub(crate) async fn snapshot(&mut self) -> Result<KernelTable, FibError> {
        snapshot(&mut self.query, &self.config)
            .await
            .map_err(|source| FibError::Dump {
                what: "routing table",
                source,
            })
    }

    /// Sends `table` to the RIB unless it equals the last one sent.
    pub(crate) async fn publish(&mut self, table: KernelTable) {
        if self.last.as_deref() == Some(&table) {
            return;
        }
        let table = Arc::new(table);
        self.last = Some(table.clone());
        let _ = self.events.send(FibEvent::KernelTable(table)).await;
    }

    pub(crate) async fn run(mut self) {
        // When to re-read: (first change seen, due).
        let mut dirty: Option<(Instant, Instant)> = None;
        loop {
            let due = dirty.map(|(_, due)| due);
            tokio::select! {
                _ = self.shared.stop.cancelled() => return,
                _ = self.shared.rescan.notified() => {
                    // Pushed back by every bulk write, not capped.
                    let now = Instant::now();
                    let due = dirty.map_or(now, |(_, due)| due).max(now + QUIET_AFTER_BULK);
                    dirty = Some((now, due));
                }
                received = self.notifications.recv() => {
                    let relevant = match received {
                        Ok(_) => self.relevant(),
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "FIB monitor socket failed; reopening");
                            self.reopen().await;
                            true
                        }
                    };
                    if relevant {
                        let now = Instant::now();
                        let first = dirty.map_or(now, |(first, _)| first);
                        dirty = Some((first, (now + DEBOUNCE).min(first + MAX_DELAY)));
                    }
                }
                _ = sleep_until_some(due) => {
                    dirty = None;
                    match snapshot(&mut self.query, &self.config).await {
                        Ok(table) => self.publish(table).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "re-reading the kernel's routing table failed");
                            self.reopen().await;
                            let now = Instant::now();
                            dirty = Some((now, now + DEBOUNCE));
                        }
                    }
                }
            }
        }
    }

    /// Whether the last datagram has a change that is not ours.
    fn relevant(&self) -> bool {
        let (table, protocol) = (self.config.table, self.config.protocol);
        message::messages(self.notifications.received()).any(|msg| {
            let Ok((header, payload)) = msg else {
                return true;
            };
            match header.ty {
                message::RTM_NEWROUTE | message::RTM_DELROUTE => {
                    message::route_protocol_table(payload)
                        .is_some_and(|(p, t)| p != protocol && (t == table || t == RT_TABLE_LOCAL))
                }
                message::RTM_NEWLINK | message::RTM_DELLINK => {
                    self.shared
                        .links_changed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.shared.work.notify_one();
                    true
                }
                nexthop::RTM_NEWNEXTHOP | nexthop::RTM_DELNEXTHOP => {
                    payload.get(2).is_some_and(|p| *p != protocol)
                }
                _ => false,
            }
        })
    }

    async fn reopen(&mut self) {
        loop {
            tokio::select! {
                _ = self.shared.stop.cancelled() => return,
                _ = tokio::time::sleep(REOPEN_DELAY) => {}
            }
            match open_sockets(&self.config) {
                Ok((notifications, query)) => {
                    self.shared.set_route_listener(notifications.shared_fd());
                    self.notifications = notifications;
                    self.query = query;
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot reopen the FIB monitor sockets"),
            }
        }
    }
}

fn open_sockets(config: &FibConfig) -> Result<(NlSocket, NlSocket), FibError> {
    let netns = config.netns.as_deref();
    let wrap = |source| match &config.netns {
        Some(path) => FibError::Netns {
            path: path.clone(),
            source,
        },
        None => FibError::Socket(source),
    };
    let notifications = NlSocket::open(
        netns,
        &[
            RTNLGRP_LINK,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_ROUTE,
            RTNLGRP_NEXTHOP,
        ],
    )
    .map_err(wrap)?;
    let query = NlSocket::open(netns, &[]).map_err(wrap)?;
    Ok((notifications, query))
}

async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn snapshot(sock: &mut NlSocket, config: &FibConfig) -> Result<KernelTable, NlError> {
    let mut table = KernelTable::new(config.resolve_via_default);
    sock.dump(message::dump_links, |header, payload| {
        if header.ty == message::RTM_NEWLINK
            && let Ok((ifindex, up)) = message::parse_link(payload)
        {
            table.set_link(ifindex, up);
        }
    })
    .await?;
    let nexthops = sock
        .dump(nexthop::dump, |header, payload| {
            if header.ty != nexthop::RTM_NEWNEXTHOP {
                return;
            }
            if let Ok(info) = nexthop::parse(payload) {
                let kind = match info.kind {
                    NexthopKind::Single { gateway, ifindex } => {
                        KernelNexthop::Single { gateway, ifindex }
                    }
                    NexthopKind::Group(members) => KernelNexthop::Group(members),
                    NexthopKind::Blackhole => KernelNexthop::Blackhole,
                };
                table.insert_nexthop(info.id, kind);
            }
        })
        .await;
    if let Err(e) = nexthops {
        // A kernel without nexthop objects has none to resolve through.
        tracing::debug!(error = %e, "no nexthop objects");
    }
    let ours = config.protocol;
    for table_id in [config.table, RT_TABLE_LOCAL] {
        let result = sock
            .dump(
                |buf, seq| message::dump_routes(buf, seq, table_id, 0),
                |header, payload| {
                    if header.ty != message::RTM_NEWROUTE
                        || message::route_protocol_table(payload).is_none_or(|(p, _)| p == ours)
                    {
                        return;
                    }
                    let Ok(Some(route)) = message::parse_route(payload) else {
                        return;
                    };
                    if route.table != table_id {
                        return;
                    }
                    if table_id == RT_TABLE_LOCAL {
                        table.insert_local(route.prefix, RouteTarget::Local);
                    } else if let Some(target) = target(&route) {
                        table.insert_route(route.prefix, route.metric, target);
                    }
                },
            )
            .await;
        match result {
            Ok(_) => {}
            Err(NlError::Kernel { errno, .. }) if errno == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
    }
    Ok(table)
}

/// How a route of the FIB's table resolves next hops.
fn target(route: &message::RouteInfo) -> Option<RouteTarget> {
    match route.kind {
        RTN_UNICAST => {
            if let Some(id) = route.nh_id {
                return Some(RouteTarget::Nexthop(id));
            }
            let paths: Vec<_> = route
                .paths
                .iter()
                .filter(|p| p.flags & RTNH_F_DEAD == 0)
                .map(|p| (p.gateway, p.ifindex))
                .collect();
            Some(RouteTarget::Paths(paths))
        }
        RTN_LOCAL..=5 => Some(RouteTarget::Local),
        RTN_BLACKHOLE..=RTN_THROW => Some(RouteTarget::Unreachable),
        _ => None,
    }
}
