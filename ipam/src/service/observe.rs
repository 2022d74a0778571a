// What podroute-ipamd tells its operators about itself: the Prometheus text
// on /metrics, the /livez and /readyz answers (an `Observe` that
// podroute_proto::observe serves), and the GetStatus message. All read the
// same engine, so the probes, the metrics and `podctl status` agree; the
// gauges are computed at scrape time from the mirror the admin API reads.
// ipam/METRICS.md documents every family and what the probes mean.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use podroute_proto::ipam::v1 as pb;
use podroute_proto::metrics::{Exposition, MetricType, write_process_metrics};
use podroute_proto::observe::{Observe, Uptime};

use super::Ipamd;
use super::stats::{Method, ReleaseCause, Stats};
use crate::allocator::{self, PoolUsage};
use crate::store::Store;

/// The daemon's `Observe`: answers before the store is loaded (not ready,
/// "loading"), then from the engine.
pub struct Observer<S: Store> {
    uptime: Arc<Uptime>,
    /// The store's description, for the "loading" answer.
    store: String,
    engine: OnceLock<Ipamd<S>>,
}

impl<S: Store> Observer<S> {
    pub fn new(uptime: Arc<Uptime>, store: String) -> Self {
        Observer {
            uptime,
            store,
            engine: OnceLock::new(),
        }
    }

    /// The store is loaded and the engine runs: answer from it from now on.
    pub fn loaded(&self, ipamd: Ipamd<S>) {
        let _ = self.engine.set(ipamd);
    }
}

impl<S: Store> Observe for Observer<S> {
    async fn metrics(&self) -> String {
        match self.engine.get() {
            Some(ipamd) => ipamd.metrics().await,
            None => {
                let mut out = Exposition::new();
                process_metrics(&mut out, &self.uptime);
                out.finish()
            }
        }
    }

    /// Loading the store is bounded by its own timeouts (a failure ends the
    /// process), so the daemon is live while it loads.
    async fn live(&self) -> Result<(), String> {
        match self.engine.get() {
            Some(ipamd) => ipamd.live().await,
            None => Ok(()),
        }
    }

    async fn ready(&self) -> Result<(), String> {
        match self.engine.get() {
            Some(ipamd) => ipamd.ready(),
            None => Err(format!("loading the IPAM store ({})", self.store)),
        }
    }
}

impl<S: Store> Ipamd<S> {
    /// GetStatus: health as the probes answer it, and a summary.
    pub async fn status(&self) -> pb::IpamStatus {
        let live = self.live().await;
        let ready = self.ready();
        let (pools, nodes) = self
            .read(|m| (m.state.pool_count(), m.state.node_count()))
            .await;
        let stats = self.stats();
        pb::IpamStatus {
            health: Some(self.uptime().health(live, ready)),
            store: self.store_description(),
            pools: count32(pools),
            nodes: count32(nodes),
            allocations: stats.allocated.load(Ordering::Relaxed),
            releases: stats.releases_total(),
        }
    }

    /// The whole /metrics text.
    pub async fn metrics(&self) -> String {
        let settings = self.settings().clone();
        let now = super::unix_ms();
        let snapshot = self
            .read(|m| Snapshot {
                usage: allocator::usage(&m.state, now, &settings),
                handles: m.state.handle_count(),
                nodes: m.state.node_count(),
                unreadable: m.unreadable().count(),
            })
            .await;
        let revision = *self.changes().borrow();
        let reachable = self.stats().store_reachable().is_ok();
        let mut out = Exposition::new();
        process_metrics(&mut out, self.uptime());
        write_counters(&mut out, self.stats());
        write_requests(&mut out, self.stats());
        write_pools(&mut out, &snapshot.usage);
        gauge(
            &mut out,
            "podroute_ipam_handles",
            "Allocation handles (pods holding addresses) in the store.",
            snapshot.handles as f64,
        );
        gauge(
            &mut out,
            "podroute_ipam_nodes",
            "Nodes with at least one block affine to them.",
            snapshot.nodes as f64,
        );
        gauge(
            &mut out,
            "podroute_ipam_unreadable_records",
            "Stored records that do not decode; podctl ipam check lists them.",
            snapshot.unreadable as f64,
        );
        gauge(
            &mut out,
            "podroute_ipam_node_block_watchers",
            "WatchNodeBlocks streams open (one per podroute-bgpd normally).",
            self.stats().watchers() as f64,
        );
        gauge(
            &mut out,
            "podroute_ipam_store_revision",
            "Store revision of the last change this ipamd has seen.",
            revision as f64,
        );
        gauge(
            &mut out,
            "podroute_ipam_store_reachable",
            "1 when the store answered at the last contact, else 0.",
            if reachable { 1.0 } else { 0.0 },
        );
        out.finish()
    }
}

/// What the gauges read from the mirror, under one read lock.
struct Snapshot {
    usage: Vec<PoolUsage>,
    handles: usize,
    nodes: usize,
    unreadable: usize,
}

fn process_metrics(out: &mut Exposition, uptime: &Uptime) {
    write_process_metrics(
        out,
        crate::DAEMON_NAME,
        env!("CARGO_PKG_VERSION"),
        uptime.started_unix(),
    );
}

fn gauge(out: &mut Exposition, name: &str, help: &str, value: f64) {
    out.single(name, help, MetricType::Gauge, value);
}

fn load(counter: &std::sync::atomic::AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

fn write_counters(out: &mut Exposition, stats: &Stats) {
    out.single(
        "podroute_ipam_allocations",
        "Addresses newly allocated (a dual-stack pod counts two; an idempotent repeat none).",
        MetricType::Counter,
        load(&stats.allocated),
    );
    out.family(
        "podroute_ipam_releases",
        "Addresses freed, by what freed them.",
        MetricType::Counter,
    );
    for cause in ReleaseCause::ALL {
        out.sample(
            "podroute_ipam_releases_total",
            &[("cause", cause.name())],
            stats.releases(cause) as f64,
        );
    }
    out.single(
        "podroute_ipam_garbage_collections",
        "GarbageCollect calls completed.",
        MetricType::Counter,
        load(&stats.garbage_collections),
    );
    out.single(
        "podroute_ipam_blocks_returned",
        "Empty blocks returned to their pools after their grace period.",
        MetricType::Counter,
        load(&stats.blocks_returned),
    );
    out.family(
        "podroute_ipam_conflicts",
        "Conflicts: store transactions that failed a compare (another replica wrote first), and Allocate calls refused because the address asked for is held.",
        MetricType::Counter,
    );
    out.sample(
        "podroute_ipam_conflicts_total",
        &[("type", "transaction")],
        load(&stats.transaction_conflicts),
    );
    out.sample(
        "podroute_ipam_conflicts_total",
        &[("type", "address")],
        load(&stats.address_conflicts),
    );
    out.family(
        "podroute_ipam_retries",
        "Requests planned and written again, by why.",
        MetricType::Counter,
    );
    out.sample(
        "podroute_ipam_retries_total",
        &[("reason", "conflict")],
        load(&stats.retries_conflict),
    );
    out.sample(
        "podroute_ipam_retries_total",
        &[("reason", "store_unavailable")],
        load(&stats.retries_unavailable),
    );
    out.single(
        "podroute_ipam_store_resyncs",
        "Full reloads of the store after its watch lost events.",
        MetricType::Counter,
        load(&stats.resyncs),
    );
    out.family(
        "podroute_ipam_store_commit_duration_seconds",
        "Time of one store transaction (an fsync, or an etcd round trip).",
        MetricType::Histogram,
    );
    out.histogram(
        "podroute_ipam_store_commit_duration_seconds",
        &[],
        &stats.commit_duration,
    );
}

fn write_requests(out: &mut Exposition, stats: &Stats) {
    out.family(
        "podroute_ipam_requests",
        "Ipam API calls, by RPC and gRPC status code.",
        MetricType::Counter,
    );
    for method in Method::ALL {
        let Some(calls) = stats.method(method) else {
            continue;
        };
        for (code, count) in calls.codes() {
            out.sample(
                "podroute_ipam_requests_total",
                &[("method", method.name()), ("code", code)],
                count as f64,
            );
        }
    }
    out.family(
        "podroute_ipam_request_duration_seconds",
        "Time to answer an Ipam API call (WatchNodeBlocks: to open the stream).",
        MetricType::Histogram,
    );
    for method in Method::ALL {
        if let Some(calls) = stats.method(method) {
            out.histogram(
                "podroute_ipam_request_duration_seconds",
                &[("method", method.name())],
                &calls.duration,
            );
        }
    }
}

/// One family per figure of the Usage RPC, one sample per pool.
fn write_pools(out: &mut Exposition, usage: &[PoolUsage]) {
    type Figure = fn(&PoolUsage) -> f64;
    let families: [(&str, &str, Figure); 7] = [
        (
            "podroute_ipam_pool_capacity_addresses",
            "Addresses of the pool that can be handed out (reserved ones excluded).",
            |u| u.capacity as f64,
        ),
        (
            "podroute_ipam_pool_allocated_addresses",
            "Addresses of the pool held by pods.",
            |u| u.allocated as f64,
        ),
        (
            "podroute_ipam_pool_cooling_addresses",
            "Released addresses of the pool resting before reuse.",
            |u| u.cooling as f64,
        ),
        (
            "podroute_ipam_pool_reserved_addresses",
            "Addresses of the pool in its reservedCIDRs, never handed out.",
            |u| u.reserved as f64,
        ),
        (
            "podroute_ipam_pool_blocks",
            "Blocks the pool can be cut into.",
            |u| u.blocks_total as f64,
        ),
        (
            "podroute_ipam_pool_claimed_blocks",
            "Blocks of the pool claimed by nodes.",
            |u| u.blocks_claimed as f64,
        ),
        (
            "podroute_ipam_pool_disabled",
            "1 when the pool is disabled (no new allocations), else 0.",
            |u| if u.disabled { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, figure) in families {
        out.family(name, help, MetricType::Gauge);
        for pool in usage {
            out.sample(name, &[("pool", &pool.pool)], figure(pool));
        }
    }
}

fn count32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
