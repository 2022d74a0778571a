// The kernels' routes as the benchmark sees them: one thread per node that
// moves into the node's network namespace (setns(2)), opens an rtnetlink
// socket subscribed to RTNLGRP_IPV4_ROUTE and RTNLGRP_NEXTHOP, and stamps
// every notification with Instant::now() as it arrives. Waits for "present
// everywhere" / "gone everywhere" sleep on a change signal, never on a timer,
// so the times are the notifications' arrival times, not a poll's.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::sync::watch;

/// An IPv4 prefix as the kernel names it: network address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(text: &str) -> Option<Prefix> {
        let (addr, len) = text.split_once('/')?;
        Some(Prefix {
            addr: addr.parse().ok()?,
            len: len.parse().ok().filter(|l| *l <= 32)?,
        })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Every node's main-table IPv4 routes, kept from its notifications.
pub struct Kernels {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    nodes: Mutex<Vec<NodeRoutes>>,
    changed: watch::Sender<u64>,
    stop: AtomicBool,
    /// Notifications the kernel dropped (ENOBUFS): a run with any is suspect.
    overruns: AtomicU64,
}

#[derive(Default)]
struct NodeRoutes {
    present: HashMap<Prefix, Route>,
    /// When each prefix last left the table.
    removed: HashMap<Prefix, Instant>,
}

struct Route {
    since: Instant,
    nexthop_id: Option<u32>,
}

// rtnetlink (linux/rtnetlink.h, linux/nexthop.h).
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_DELNEXTHOP: u16 = 105;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_NEXTHOP: u32 = 32;
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
const RTA_NH_ID: u16 = 30;
const NHA_ID: u16 = 1;
const RT_TABLE_MAIN: u32 = 254;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const AF_INET: u8 = 2;
const NLMSG_HDR: usize = 16;
const RTMSG_LEN: usize = 12;
const NHMSG_LEN: usize = 8;
/// Socket receive buffer: a burst of notifications must not overrun it.
const RCVBUF: usize = 8 << 20;
/// How often a blocked receive looks at the stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);

impl Kernels {
    /// Starts watching the namespaces (paths such as /run/netns/NAME); returns
    /// once every socket is subscribed, so nothing after this is missed.
    pub fn watch(netns: &[impl AsRef<Path>]) -> io::Result<Kernels> {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            nodes: Mutex::new((0..netns.len()).map(|_| NodeRoutes::default()).collect()),
            changed,
            stop: AtomicBool::new(false),
            overruns: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for (index, path) in netns.iter().enumerate() {
            let file = File::open(path.as_ref())?;
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let shared2 = shared.clone();
            threads.push(std::thread::spawn(move || match open_in(&file) {
                Ok(socket) => {
                    let _ = ready_tx.send(Ok(()));
                    listen(&socket, index, &shared2);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }));
            ready_rx
                .recv()
                .map_err(|_| io::Error::other("route watch thread ended"))??;
        }
        Ok(Kernels { shared, threads })
    }

    pub fn overruns(&self) -> u64 {
        self.shared.overruns.load(Ordering::Relaxed)
    }

    /// When `prefix` entered each of `nodes`' tables, once it is in all of
    /// them; None if the deadline passes first.
    pub async fn wait_present(
        &self,
        prefix: Prefix,
        nodes: &[usize],
        deadline: Instant,
    ) -> Option<Vec<Instant>> {
        self.wait(deadline, |state| {
            nodes
                .iter()
                .map(|n| state[*n].present.get(&prefix).map(|r| r.since))
                .collect()
        })
        .await
    }

    /// When the last of `prefixes` left each of `nodes`' tables, once none
    /// is left in any; None if the deadline passes first.
    pub async fn wait_absent(
        &self,
        prefixes: &[Prefix],
        nodes: &[usize],
        deadline: Instant,
    ) -> Option<Vec<Instant>> {
        self.wait(deadline, |state| {
            nodes
                .iter()
                .map(|n| {
                    let node = &state[*n];
                    let mut last = None;
                    for p in prefixes {
                        if node.present.contains_key(p) {
                            return None;
                        }
                        let at = node.removed.get(p).copied()?;
                        last = Some(last.map_or(at, |l: Instant| l.max(at)));
                    }
                    last
                })
                .collect()
        })
        .await
    }

    async fn wait<T>(
        &self,
        deadline: Instant,
        check: impl Fn(&[NodeRoutes]) -> Option<T>,
    ) -> Option<T> {
        let mut changes = self.shared.changed.subscribe();
        loop {
            changes.borrow_and_update();
            if let Some(found) = check(&self.lock()) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return check(&self.lock()),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<NodeRoutes>> {
        self.shared
            .nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Moves this thread into the namespace and opens the subscribed socket.
fn open_in(netns: &File) -> io::Result<Socket> {
    // SAFETY: setns only reads the descriptor, which `netns` keeps open for
    // the call; it moves this thread alone, a thread spawned for this watch.
    let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.add_membership(RTNLGRP_IPV4_ROUTE)?;
    socket.add_membership(RTNLGRP_NEXTHOP)?;
    let sock = socket2::SockRef::from(&socket);
    sock.set_recv_buffer_size(RCVBUF)?;
    sock.set_read_timeout(Some(RECV_TIMEOUT))?;
    Ok(socket)
}

fn listen(socket: &Socket, index: usize, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while !shared.stop.load(Ordering::Relaxed) {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                shared.overruns.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("converge_bench: route watch of node {index} failed: {e}");
                return;
            }
        }
        let at = Instant::now();
        let mut any = false;
        {
            let mut nodes = shared
                .nodes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let node = &mut nodes[index];
            for (ty, body) in messages(&buf) {
                any |= apply(node, ty, body, at);
            }
        }
        if any {
            shared.changed.send_modify(|generation| *generation += 1);
        }
    }
}

/// Applies one notification; true if the table changed.
fn apply(node: &mut NodeRoutes, ty: u16, body: &[u8], at: Instant) -> bool {
    match ty {
        RTM_NEWROUTE | RTM_DELROUTE => {
            let Some((prefix, nexthop_id)) = route(body) else {
                return false;
            };
            if ty == RTM_NEWROUTE {
                node.present
                    .entry(prefix)
                    .and_modify(|r| r.nexthop_id = nexthop_id)
                    .or_insert(Route {
                        since: at,
                        nexthop_id,
                    });
            } else if node.present.remove(&prefix).is_some() {
                node.removed.insert(prefix, at);
            }
            true
        }
        RTM_DELNEXTHOP => {
            // The kernel drops the routes over a deleted nexthop object
            // without a notification per route.
            let Some(id) = nexthop_id(body) else {
                return false;
            };
            let gone: Vec<Prefix> = node
                .present
                .iter()
                .filter(|(_, r)| r.nexthop_id == Some(id))
                .map(|(p, _)| *p)
                .collect();
            for prefix in &gone {
                node.present.remove(prefix);
                node.removed.insert(*prefix, at);
            }
            !gone.is_empty()
        }
        _ => false,
    }
}

/// (type, payload) of each netlink message in a datagram.
fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HDR || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        out.push((ty, &rest[NLMSG_HDR..len]));
        rest = &rest[align(len).min(rest.len())..];
    }
    out
}

/// A main-table IPv4 unicast or blackhole route: its prefix and nexthop id.
fn route(body: &[u8]) -> Option<(Prefix, Option<u32>)> {
    if body.len() < RTMSG_LEN || body[0] != AF_INET {
        return None;
    }
    let len = body[1];
    let mut table = u32::from(body[4]);
    let kind = body[7];
    if kind != RTN_UNICAST && kind != RTN_BLACKHOLE {
        return None;
    }
    let mut addr = Ipv4Addr::UNSPECIFIED;
    let mut nexthop_id = None;
    for (ty, value) in attributes(&body[RTMSG_LEN..]) {
        match ty {
            RTA_DST if value.len() == 4 => {
                addr = Ipv4Addr::new(value[0], value[1], value[2], value[3])
            }
            RTA_TABLE if value.len() == 4 => {
                table = u32::from_ne_bytes([value[0], value[1], value[2], value[3]]);
            }
            RTA_NH_ID if value.len() == 4 => {
                nexthop_id = Some(u32::from_ne_bytes([value[0], value[1], value[2], value[3]]));
            }
            _ => {}
        }
    }
    (table == RT_TABLE_MAIN).then_some((Prefix { addr, len }, nexthop_id))
}

fn nexthop_id(body: &[u8]) -> Option<u32> {
    if body.len() < NHMSG_LEN {
        return None;
    }
    attributes(&body[NHMSG_LEN..])
        .into_iter()
        .find(|(ty, value)| *ty == NHA_ID && value.len() == 4)
        .map(|(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}

fn attributes(mut rest: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        if len < 4 || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        out.push((ty, &rest[4..len]));
        rest = &rest[align(len).min(rest.len())..];
    }
    out
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}
