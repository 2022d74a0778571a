// The writer task: takes the coalesced ops, turns them into route messages
// (pointing at nexthop objects when the kernel has them), sends them in
// batches of up to BATCH_BYTES, and records each failure by sequence number
// for retry with backoff. Resync: dump our routes and objects, ask the RIB
// for everything, delete what it did not set again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use tokio::sync::mpsc;

use super::diff::Stale;
use super::message::{self, RouteKey, Via};
use super::nexthop::{self, NexthopKind};
use super::socket::{NlError, NlSocket};
use super::state::{Failure, Shared};
use super::{Desired, FibConfig, FibError, FibEvent, FibRoute, ResolvedNextHop};

/// One sendmsg: about a thousand route messages.
const BATCH_BYTES: usize = 64 << 10;
/// Ops in one flush from which the monitor stops listening to route
/// notifications until the flush is written (and then re-reads the kernel).
const BULK_OPS: usize = 1024;
/// Room kept for the next message (the largest is a wide multipath route).
const MAX_MSG: usize = 4 << 10;
/// First retry of a failed write; doubled per failure up to RETRY_MAX.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Routes are counted this long after the last write.
const COUNT_DELAY: Duration = Duration::from_secs(1);
/// Wait before reopening a failed socket.
const REOPEN_DELAY: Duration = Duration::from_secs(1);
/// After a link change, how soon the kernel is read back and reconciled.
const LINK_RESYNC_DELAY: Duration = Duration::from_secs(1);
/// Failures logged one by one per batch; the rest are summed up.
const LOGGED_FAILURES: usize = 10;
/// Where our nexthop ids start: far from the small ids `ip nexthop` users
/// and FRR pick. Ids taken by others are skipped.
const NH_ID_BASE: u32 = 0x5052_0000;
/// Dumps retried when the kernel says a change interrupted them.
const DUMP_ATTEMPTS: usize = 3;

pub(crate) struct Writer {
    config: FibConfig,
    key: RouteKey,
    sock: NlSocket,
    shared: Arc<Shared>,
    events: mpsc::Sender<FibEvent>,
    nh: Nexthops,
    stale: Option<Stale>,
    generation: u64,
    batch: Batch,
    count_due: Option<Instant>,
    retry_due: Option<Instant>,
    next_resync: Instant,
    /// Whether the monitor is out of the route groups (see BULK_OPS).
    muted: bool,
}

/// Route messages encoded but not yet sent: contiguous sequence numbers
/// from `first_seq`, one entry per message.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    entries: Vec<(IpNetwork, Desired)>,
    first_seq: u32,
    last_at: usize,
}

impl Writer {
    pub(crate) fn open(
        config: FibConfig,
        events: mpsc::Sender<FibEvent>,
        shared: Arc<Shared>,
    ) -> Result<Writer, FibError> {
        let sock = open_socket(&config)?;
        Ok(Writer {
            key: RouteKey {
                table: config.table,
                protocol: config.protocol,
                metric: config.metric,
            },
            nh: Nexthops::new(config.protocol),
            config,
            sock,
            shared,
            events,
            stale: None,
            generation: 0,
            batch: Batch {
                buf: Vec::with_capacity(BATCH_BYTES),
                ..Batch::default()
            },
            count_due: None,
            retry_due: None,
            next_resync: Instant::now(),
            muted: false,
        })
    }

    pub(crate) async fn run(mut self) {
        loop {
            let wake = [self.count_due, self.retry_due, Some(self.next_resync)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(self.next_resync);
            tokio::select! {
                _ = self.shared.stop.cancelled() => return,
                _ = self.shared.work.notified() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "FIB netlink socket failed; reopening and resyncing");
                self.shared.lock().status.socket_failures += 1;
                self.recover().await;
            }
        }
    }

    async fn step(&mut self) -> Result<(), NlError> {
        let now = Instant::now();
        // A link going down flushes the nexthop objects on it and the
        // routes over them, with no notification for either; the nexthop
        // cache would then name objects that are gone. Reconcile shortly
        // (coalescing a flapping link's events).
        if self
            .shared
            .links_changed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.next_resync = self.next_resync.min(now + LINK_RESYNC_DELAY);
        }
        if now >= self.next_resync {
            self.resync().await?;
        }
        if self.retry_due.is_some_and(|t| t <= now) {
            self.requeue_failures(now);
        }
        self.flush().await?;
        if self.count_due.is_some_and(|t| t <= Instant::now())
            && self.shared.lock().pending.is_empty()
        {
            self.count_due = None;
            let installed = self.count_routes().await?;
            let mut inner = self.shared.lock();
            inner.status.installed = installed;
            inner.status.nexthop_objects = self.nh.ours.len() as u64;
        }
        Ok(())
    }

    /// Reopens the socket (until it works) and resyncs.
    async fn recover(&mut self) {
        self.batch.buf.clear();
        self.batch.entries.clear();
        self.shared.lock().in_flight = None;
        loop {
            tokio::select! {
                _ = self.shared.stop.cancelled() => return,
                _ = tokio::time::sleep(REOPEN_DELAY) => {}
            }
            let reopened = open_socket(&self.config);
            match reopened {
                Ok(sock) => {
                    self.sock = sock;
                    match self.resync().await {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(error = %e, "FIB resync failed"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot reopen the FIB netlink socket"),
            }
        }
    }

    /// Reads our nexthop objects and routes back from the kernel, keeps the
    /// routes as stale candidates, and asks the RIB for the full state.
    pub(crate) async fn resync(&mut self) -> Result<(), NlError> {
        self.next_resync = Instant::now() + self.config.resync_interval;
        self.nh.reset();
        if self.config.use_nexthop_objects {
            self.nh.enabled = self.load_nexthops().await?;
        }
        let mut stale = Stale::default();
        for attempt in 1..=DUMP_ATTEMPTS {
            stale = Stale::default();
            let (table, protocol, metric) =
                (self.config.table, self.config.protocol, self.config.metric);
            let nh = &self.nh;
            let mut bad = 0usize;
            let interrupted = self
                .sock
                .dump(
                    |buf, seq| message::dump_routes(buf, seq, table, protocol),
                    |header, payload| {
                        if header.ty != message::RTM_NEWROUTE {
                            return;
                        }
                        match message::parse_route(payload) {
                            Ok(Some(r)) if r.protocol == protocol && r.table == table => {
                                stale.add(&r, metric, |id| nh.ours.contains_key(&id));
                            }
                            Ok(_) => {}
                            Err(_) => bad += 1,
                        }
                    },
                )
                .await;
            let interrupted = match interrupted {
                Ok(i) => i,
                // The table does not exist yet: nothing of ours in it.
                Err(NlError::Kernel { errno, .. }) if errno == libc::ENOENT => false,
                Err(e) => return Err(e),
            };
            if bad > 0 {
                tracing::warn!(count = bad, "undecodable routes in the kernel's dump");
            }
            if !interrupted || attempt == DUMP_ATTEMPTS {
                break;
            }
        }
        self.generation += 1;
        {
            let mut inner = self.shared.lock();
            inner.status.installed = stale.len() as u64;
            inner.status.generation = self.generation;
            inner.status.uses_nexthop_objects = self.nh.enabled;
            inner.status.nexthop_objects = self.nh.ours.len() as u64;
        }
        tracing::info!(
            generation = self.generation,
            routes = stale.len(),
            nexthop_objects = self.nh.ours.len(),
            "FIB resync: kernel read back"
        );
        self.stale = Some(stale);
        let generation = self.generation;
        // A RIB that has gone away needs no resync; not the writer's concern.
        let _ = self
            .events
            .send(FibEvent::ResyncRequested { generation })
            .await;
        Ok(())
    }

    /// Dumps nexthop objects; false when the kernel has none (pre-5.3).
    async fn load_nexthops(&mut self) -> Result<bool, NlError> {
        let protocol = self.config.protocol;
        let mut found = Vec::new();
        let result = self
            .sock
            .dump(nexthop::dump, |header, payload| {
                if header.ty == nexthop::RTM_NEWNEXTHOP
                    && let Ok(info) = nexthop::parse(payload)
                {
                    found.push(info);
                }
            })
            .await;
        match result {
            Ok(_) => {}
            Err(NlError::Kernel { errno, .. })
                if [libc::EOPNOTSUPP, libc::EINVAL, libc::EAFNOSUPPORT].contains(&errno) =>
            {
                tracing::info!("kernel without nexthop objects: routes carry their gateways");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        for info in found {
            if info.protocol == protocol {
                self.nh.adopt(info.id, info.kind);
            } else {
                self.nh.taken.insert(info.id);
            }
        }
        Ok(true)
    }

    /// Routes of ours in the table, counted without decoding them.
    async fn count_routes(&mut self) -> Result<u64, NlError> {
        let (table, protocol) = (self.config.table, self.config.protocol);
        let mut count = 0u64;
        let result = self
            .sock
            .dump(
                |buf, seq| message::dump_routes(buf, seq, table, protocol),
                |header, payload| {
                    if header.ty == message::RTM_NEWROUTE
                        && message::route_protocol_table(payload) == Some((protocol, table))
                    {
                        count += 1;
                    }
                },
            )
            .await;
        match result {
            Ok(_) => Ok(count),
            Err(NlError::Kernel { errno, .. }) if errno == libc::ENOENT => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Puts failures whose backoff has passed back into pending (unless a
    /// newer op for the prefix is already there).
    fn requeue_failures(&mut self, now: Instant) {
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        let mut next: Option<Instant> = None;
        for (prefix, failure) in &inner.failed {
            if failure.retry_at <= now {
                inner.pending_since.get_or_insert(now);
                inner
                    .pending
                    .entry(*prefix)
                    .or_insert_with(|| failure.desired.clone());
            } else {
                next = Some(next.map_or(failure.retry_at, |n| n.min(failure.retry_at)));
            }
        }
        self.retry_due = next;
    }

    /// Writes everything pending, then acts on a sync_done taken with it.
    async fn flush(&mut self) -> Result<(), NlError> {
        let (work, since, sync_done, track_done) = {
            let mut inner = self.shared.lock();
            let work = Arc::new(std::mem::take(&mut inner.pending));
            if !work.is_empty() {
                inner.in_flight = Some(work.clone());
            }
            let since = inner.pending_since.take();
            (
                work,
                since,
                inner.sync_done.take(),
                !inner.failed.is_empty(),
            )
        };
        self.shared.room.notify_waiters();
        self.nh.refused.clear();
        if work.len() >= BULK_OPS && !self.muted {
            self.shared.mute_routes();
            self.muted = true;
        }
        let result = self.write_all(&work, track_done).await;
        // Back-to-back bulk flushes stay muted: one re-read at the end.
        if self.muted && (result.is_err() || self.shared.lock().pending.is_empty()) {
            self.shared.unmute_routes();
            self.muted = false;
        }
        // Every op of the pass has its answer now: the oldest waited
        // longest. Observed before the ops stop counting as pending, so a
        // caller that saw them settle sees the observation.
        if result.is_ok()
            && !work.is_empty()
            && let Some(since) = since
        {
            self.shared.programming.observe(since.elapsed());
        }
        self.shared.lock().in_flight = None;
        result?;
        if !work.is_empty() {
            self.count_due = Some(Instant::now() + COUNT_DELAY);
        }
        if let Some(generation) = sync_done {
            if generation == self.generation {
                self.finish_sync().await?;
            } else {
                tracing::debug!(
                    generation,
                    current = self.generation,
                    "stale sync_done ignored"
                );
            }
        }
        Ok(())
    }

    async fn write_all(
        &mut self,
        work: &HashMap<IpNetwork, Desired>,
        track_done: bool,
    ) -> Result<(), NlError> {
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (prefix, desired) in work {
            let Some(route) = desired else {
                if let Some(stale) = &mut self.stale {
                    stale.remove(prefix);
                }
                let key = self.key;
                self.push(*prefix, None, |buf, seq| {
                    message::del_route(buf, seq, key, *prefix)
                })
                .await?;
                continue;
            };
            let via = match route {
                FibRoute::Blackhole => Via::Blackhole,
                FibRoute::Unicast(hops) if hops.is_empty() => {
                    failures.push((
                        *prefix,
                        desired.clone(),
                        "route without next hops".to_string(),
                    ));
                    continue;
                }
                FibRoute::Unicast(hops) if self.nh.enabled => match self.nexthop_for(hops).await? {
                    Ok(id) => Via::NhId(id),
                    Err(error) => {
                        failures.push((*prefix, desired.clone(), error));
                        continue;
                    }
                },
                FibRoute::Unicast(hops) => Via::Hops(hops),
            };
            if let Via::NhId(id) = via {
                self.nh.used.insert(id);
            }
            if let Some(stale) = &mut self.stale
                && stale.remove(prefix).is_some_and(|old| old.same(&via))
            {
                // Identical to what the kernel holds: not rewritten.
                if track_done {
                    done.push(*prefix);
                }
                continue;
            }
            let key = self.key;
            self.push(*prefix, desired.clone(), |buf, seq| {
                message::new_route(buf, seq, key, *prefix, via)
            })
            .await?;
        }
        self.send_batch().await?;
        let mut inner = self.shared.lock();
        inner.status.nexthop_objects = self.nh.ours.len() as u64;
        {
            for prefix in done {
                inner.failed.remove(&prefix);
            }
            let now = Instant::now();
            let total = failures.len();
            for (n, (prefix, desired, error)) in failures.into_iter().enumerate() {
                if n < LOGGED_FAILURES {
                    tracing::warn!(%prefix, %error, "FIB route not written");
                } else if n == LOGGED_FAILURES {
                    tracing::warn!(count = total, "FIB routes not written");
                }
                let at = record_failure(&mut inner.failed, prefix, desired, error, now);
                inner.status.errors_total += 1;
                self.retry_due = Some(self.retry_due.map_or(at, |d| d.min(at)));
            }
        }
        Ok(())
    }

    /// The nexthop object for `hops`, created (with its members) if needed.
    /// Ok(Err(text)) when the kernel refused it: the routes over it fail.
    async fn nexthop_for(
        &mut self,
        hops: &Arc<[ResolvedNextHop]>,
    ) -> Result<Result<u32, String>, NlError> {
        if let Some((last, id)) = &self.nh.last
            && Arc::ptr_eq(last, hops)
        {
            return Ok(Ok(*id));
        }
        if let Some(error) = self.nh.refused.get(&hops[..]) {
            return Ok(Err(error.clone()));
        }
        let result = self.create_nexthop(hops).await?;
        match &result {
            Ok(id) => self.nh.last = Some((hops.clone(), *id)),
            Err(error) => {
                self.nh.refused.insert(hops.to_vec(), error.clone());
            }
        }
        Ok(result)
    }

    async fn create_nexthop(
        &mut self,
        hops: &[ResolvedNextHop],
    ) -> Result<Result<u32, String>, NlError> {
        let mut members = Vec::with_capacity(hops.len());
        for hop in hops {
            match self.nh.singles.get(hop) {
                Some(id) => members.push(*id),
                None => {
                    // Object creation must precede the routes that use it.
                    self.send_batch().await?;
                    let protocol = self.config.protocol;
                    let hop = *hop;
                    let created = self
                        .create_with_free_id(|buf, seq, id| {
                            nexthop::new_single(buf, seq, protocol, id, hop)
                        })
                        .await?;
                    match created {
                        Ok(id) => {
                            self.nh.singles.insert(hop, id);
                            self.nh.ours.insert(
                                id,
                                NexthopKind::Single {
                                    gateway: Some(hop.gateway),
                                    ifindex: hop.ifindex,
                                },
                            );
                            members.push(id);
                        }
                        Err(e) => {
                            return Ok(Err(format!(
                                "next hop {} dev #{}: {e}",
                                hop.gateway, hop.ifindex
                            )));
                        }
                    }
                }
            }
        }
        if let [single] = members[..] {
            return Ok(Ok(single));
        }
        members.sort_unstable();
        if let Some(id) = self.nh.groups.get(&members) {
            return Ok(Ok(*id));
        }
        self.send_batch().await?;
        let protocol = self.config.protocol;
        let group = members.clone();
        match self
            .create_with_free_id(|buf, seq, id| nexthop::new_group(buf, seq, protocol, id, &group))
            .await?
        {
            Ok(id) => {
                self.nh.groups.insert(members.clone(), id);
                self.nh.ours.insert(id, NexthopKind::Group(members));
                Ok(Ok(id))
            }
            Err(e) => Ok(Err(format!("next-hop group: {e}"))),
        }
    }

    /// Sends the object built by `build(buf, seq, id)` with a free id,
    /// skipping ids some other program holds (EEXIST).
    async fn create_with_free_id(
        &mut self,
        build: impl Fn(&mut Vec<u8>, u32, u32),
    ) -> Result<Result<u32, NlError>, NlError> {
        loop {
            let id = self.nh.allocate();
            match self.sock.request(|buf, seq| build(buf, seq, id)).await {
                Ok(()) => return Ok(Ok(id)),
                Err(e) if e.errno() == Some(libc::EEXIST) => {
                    self.nh.taken.insert(id);
                }
                Err(e @ NlError::Kernel { .. }) => return Ok(Err(e)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one route message to the batch, sending the batch first when
    /// it is full.
    async fn push(
        &mut self,
        prefix: IpNetwork,
        desired: Desired,
        encode: impl FnOnce(&mut Vec<u8>, u32),
    ) -> Result<(), NlError> {
        if self.batch.buf.len() + MAX_MSG > BATCH_BYTES {
            self.send_batch().await?;
        }
        let seq = self.sock.next_seq();
        if self.batch.entries.is_empty() {
            self.batch.first_seq = seq;
        }
        self.batch.last_at = self.batch.buf.len();
        encode(&mut self.batch.buf, seq);
        self.batch.entries.push((prefix, desired));
        Ok(())
    }

    async fn send_batch(&mut self) -> Result<(), NlError> {
        if self.batch.entries.is_empty() {
            return Ok(());
        }
        let first = self.batch.first_seq;
        let count = self.batch.entries.len();
        let last_seq = first.wrapping_add(count as u32 - 1);
        let mut errors = Vec::new();
        let result = self
            .sock
            .batch(&mut self.batch.buf, self.batch.last_at, last_seq, |e| {
                let index = e.seq.wrapping_sub(first) as usize;
                if index < count {
                    errors.push((index, e));
                }
            })
            .await;
        self.batch.buf.clear();
        let entries = std::mem::take(&mut self.batch.entries);
        result?;

        let now = Instant::now();
        let mut inner = self.shared.lock();
        let inner = &mut *inner;
        inner.status.netlink_batches += 1;
        inner.status.writes_total += count as u64;
        let mut failed_at = vec![false; if inner.failed.is_empty() { 0 } else { count }];
        let mut logged = 0;
        for (index, e) in errors {
            let (prefix, desired) = &entries[index];
            if desired.is_none() && (e.errno == libc::ESRCH || e.errno == libc::ENOENT) {
                continue; // deleting what is already gone
            }
            let error = super::socket::kernel_text(e.errno, e.text.as_deref());
            if logged < LOGGED_FAILURES {
                tracing::warn!(prefix = %prefix, %error, "kernel refused route");
            }
            logged += 1;
            inner.status.errors_total += 1;
            let at = record_failure(&mut inner.failed, *prefix, desired.clone(), error, now);
            self.retry_due = Some(self.retry_due.map_or(at, |d| d.min(at)));
            if let Some(f) = failed_at.get_mut(index) {
                *f = true;
            }
        }
        if logged > LOGGED_FAILURES {
            tracing::warn!(count = logged, "kernel refused routes in one batch");
        }
        if !failed_at.is_empty() {
            for (index, (prefix, _)) in entries.iter().enumerate() {
                if !failed_at[index] {
                    inner.failed.remove(prefix);
                }
            }
        }
        drop(entries);
        Ok(())
    }

    /// The RIB has set everything of this generation: delete the rest of
    /// ours, then the nexthop objects no route uses.
    async fn finish_sync(&mut self) -> Result<(), NlError> {
        let Some(stale) = self.stale.take() else {
            return Ok(());
        };
        let (routes, extra) = stale.into_parts();
        let deleted = routes.len() + extra.len();
        for prefix in routes {
            let key = self.key;
            self.push(prefix, None, |buf, seq| {
                message::del_route(buf, seq, key, prefix)
            })
            .await?;
        }
        for (prefix, metric) in extra {
            let key = RouteKey { metric, ..self.key };
            // Retried as a Remove with our metric would miss it: not tracked.
            self.push(prefix, None, |buf, seq| {
                message::del_route(buf, seq, key, prefix)
            })
            .await?;
        }
        self.send_batch().await?;
        let removed = self.gc_nexthops().await?;
        tracing::info!(
            generation = self.generation,
            stale_routes = deleted,
            nexthop_objects_removed = removed,
            "FIB resync done"
        );
        self.count_due = Some(Instant::now());
        Ok(())
    }

    async fn gc_nexthops(&mut self) -> Result<usize, NlError> {
        if !self.nh.enabled {
            return Ok(0);
        }
        let unused = self.nh.unused();
        for id in &unused {
            let id = *id;
            match self
                .sock
                .request(|buf, seq| nexthop::del(buf, seq, id))
                .await
            {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e @ NlError::Kernel { .. }) => {
                    tracing::warn!(id, error = %e, "cannot delete unused nexthop object");
                }
                Err(e) => return Err(e),
            }
            self.nh.forget(id);
        }
        self.shared.lock().status.nexthop_objects = self.nh.ours.len() as u64;
        Ok(unused.len())
    }
}

fn open_socket(config: &FibConfig) -> Result<NlSocket, FibError> {
    NlSocket::open(config.netns.as_deref(), &[]).map_err(|source| match &config.netns {
        Some(path) => FibError::Netns {
            path: path.clone(),
            source,
        },
        None => FibError::Socket(source),
    })
}

/// Records a failed write; when to retry it.
fn record_failure(
    failed: &mut HashMap<IpNetwork, Failure>,
    prefix: IpNetwork,
    desired: Desired,
    error: String,
    now: Instant,
) -> Instant {
    let attempts = failed.get(&prefix).map_or(0, |f| f.attempts) + 1;
    let retry_at = now + backoff(attempts);
    failed.insert(
        prefix,
        Failure {
            desired,
            error,
            attempts,
            retry_at,
        },
    );
    retry_at
}

/// RETRY_MIN doubled per earlier attempt, at most RETRY_MAX.
pub(crate) fn backoff(attempts: u32) -> Duration {
    RETRY_MIN
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Our nexthop objects, by what they forward to.
struct Nexthops {
    protocol: u8,
    enabled: bool,
    singles: HashMap<ResolvedNextHop, u32>,
    /// Sorted member ids to group id.
    groups: HashMap<Vec<u32>, u32>,
    ours: HashMap<u32, NexthopKind>,
    /// Ids of other programs' objects.
    taken: HashSet<u32>,
    next_id: u32,
    /// Ids routes were set to since the resync began: the rest is garbage at
    /// sync_done.
    used: HashSet<u32>,
    /// Next-hop sets the kernel refused, during one flush (not asked again
    /// for every route over them).
    refused: HashMap<Vec<ResolvedNextHop>, String>,
    /// The last set looked up: bulk updates share one Arc.
    last: Option<(Arc<[ResolvedNextHop]>, u32)>,
}

impl Nexthops {
    fn new(protocol: u8) -> Nexthops {
        Nexthops {
            protocol,
            enabled: false,
            singles: HashMap::new(),
            groups: HashMap::new(),
            ours: HashMap::new(),
            taken: HashSet::new(),
            next_id: NH_ID_BASE,
            used: HashSet::new(),
            refused: HashMap::new(),
            last: None,
        }
    }

    fn reset(&mut self) {
        *self = Nexthops::new(self.protocol);
    }

    /// Takes over one of our objects found in the kernel.
    fn adopt(&mut self, id: u32, kind: NexthopKind) {
        match &kind {
            NexthopKind::Single {
                gateway: Some(gateway),
                ifindex,
            } => {
                self.singles.insert(
                    ResolvedNextHop {
                        gateway: *gateway,
                        ifindex: *ifindex,
                    },
                    id,
                );
            }
            NexthopKind::Group(members) => {
                let mut members = members.clone();
                members.sort_unstable();
                self.groups.insert(members, id);
            }
            _ => {}
        }
        self.ours.insert(id, kind);
    }

    fn allocate(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(NH_ID_BASE);
            if id != 0 && !self.taken.contains(&id) && !self.ours.contains_key(&id) {
                return id;
            }
        }
    }

    /// Our objects no route was set to since the resync began (and that are
    /// no member of a used group): groups first, as the kernel wants.
    fn unused(&self) -> Vec<u32> {
        let mut keep = self.used.clone();
        for id in &self.used {
            if let Some(NexthopKind::Group(members)) = self.ours.get(id) {
                keep.extend(members);
            }
        }
        let mut unused: Vec<u32> = self
            .ours
            .keys()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        unused.sort_by_key(|id| {
            (
                !matches!(self.ours.get(id), Some(NexthopKind::Group(_))),
                *id,
            )
        });
        unused
    }

    fn forget(&mut self, id: u32) {
        self.ours.remove(&id);
        self.singles.retain(|_, v| *v != id);
        self.groups.retain(|_, v| *v != id);
        if self.last.as_ref().is_some_and(|(_, v)| *v == id) {
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn unused_objects_are_deleted_groups_first() {
        let mut nh = Nexthops::new(210);
        let gw = |last| ResolvedNextHop {
            gateway: std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last)),
            ifindex: 2,
        };
        for (id, hop) in [(1, gw(1)), (2, gw(2)), (3, gw(3))] {
            nh.adopt(
                id,
                NexthopKind::Single {
                    gateway: Some(hop.gateway),
                    ifindex: 2,
                },
            );
        }
        nh.adopt(10, NexthopKind::Group(vec![2, 1]));
        nh.adopt(11, NexthopKind::Group(vec![2, 3]));
        assert_eq!(nh.groups.get(&vec![1, 2]), Some(&10));
        // Group 10 is used: its members stay, group 11 and member 3 go.
        nh.used.insert(10);
        assert_eq!(nh.unused(), vec![11, 3]);
        nh.forget(11);
        assert!(!nh.ours.contains_key(&11));
        assert!(!nh.groups.contains_key(&vec![2, 3]));
    }

    #[test]
    fn allocation_skips_taken_ids() {
        let mut nh = Nexthops::new(210);
        nh.taken.insert(NH_ID_BASE);
        nh.adopt(NH_ID_BASE + 1, NexthopKind::Blackhole);
        assert_eq!(nh.allocate(), NH_ID_BASE + 2);
    }
}
