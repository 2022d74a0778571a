// Each IPPool's status: `{capacity, allocated, blocks}`, the figures the
// Usage RPC and the pool gauges show (blocks: claimed by nodes), written
// with a JSON merge patch of `/apis/podroute.io/v1/ippools/NAME/status`.
// Every few seconds (INTERVAL), a pool whose object shows other figures is
// patched, at most once per round; nothing is written while they agree.
// With several replicas on one etcd, every replica runs this: they read
// the same store, so the first patch makes the object show what the
// others would write, and they skip it (a replica a moment behind may
// write its figures once, and the next round corrects them). Errors are
// logged and retried next round; this task never holds up allocation (it
// only reads the mirror, briefly).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::Store as Reflected;
use serde_json::json;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::allocator;
use crate::model::crd::IpPoolStatus;
use crate::service::{Ipamd, unix_ms};
use crate::store::Store;

/// How often pools' status is compared with the store.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The largest integer a status may hold: the API server decodes JSON
/// numbers as floats and accepts one as an `integer` only up to 2^53 - 1,
/// so an IPv6 pool's capacity (2^64 and more) would make every patch fail.
pub const MAX_STATUS_NUMBER: u64 = (1 << 53) - 1;

pub struct StatusWriter<S: Store> {
    api: Api<DynamicObject>,
    ipamd: Ipamd<S>,
    pools: Reflected<DynamicObject>,
    interval: Duration,
    /// What this replica last wrote per pool, and the object's
    /// resourceVersion then: until the watch brings the patched object,
    /// the same figures are not written again.
    written: BTreeMap<String, (IpPoolStatus, Option<String>)>,
    /// Pools whose last patch failed (logged once until one succeeds).
    failing: BTreeSet<String>,
}

impl<S: Store> StatusWriter<S> {
    pub fn new(
        api: Api<DynamicObject>,
        ipamd: Ipamd<S>,
        pools: Reflected<DynamicObject>,
        interval: Duration,
    ) -> Self {
        StatusWriter {
            api,
            ipamd,
            pools,
            interval,
            written: BTreeMap::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Rounds every `interval`, once every kind has been listed.
    pub async fn run(mut self, mut changed: watch::Receiver<u64>) {
        if changed
            .wait_for(|generation| *generation > 0)
            .await
            .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.round().await;
        }
    }

    async fn round(&mut self) {
        let settings = self.ipamd.settings().clone();
        let now = unix_ms();
        let usage: BTreeMap<String, IpPoolStatus> = self
            .ipamd
            .read(|mirror| {
                allocator::usage(&mirror.state, now, &settings)
                    .into_iter()
                    .map(|pool| {
                        let status = IpPoolStatus {
                            capacity: pool.capacity.min(MAX_STATUS_NUMBER),
                            allocated: pool.allocated.min(MAX_STATUS_NUMBER),
                            blocks: pool.blocks_claimed.min(MAX_STATUS_NUMBER),
                        };
                        (pool.pool, status)
                    })
                    .collect()
            })
            .await;
        let objects = self.pools.state();
        self.written
            .retain(|name, _| objects.iter().any(|object| object.name_any() == *name));
        for object in objects {
            let name = object.name_any();
            let Some(want) = usage.get(&name) else {
                continue;
            };
            let shown = object
                .data
                .get("status")
                .and_then(|status| serde_json::from_value::<IpPoolStatus>(status.clone()).ok());
            if shown.as_ref() == Some(want) {
                continue;
            }
            let version = object.resource_version();
            if self.written.get(&name) == Some(&(want.clone(), version.clone())) {
                continue;
            }
            self.patch(&name, want, version).await;
        }
    }

    async fn patch(&mut self, name: &str, status: &IpPoolStatus, version: Option<String>) {
        let patch = json!({ "status": status });
        match self
            .api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                debug!(pool = name, ?status, "IPPool status written");
                if self.failing.remove(name) {
                    info!(pool = name, "IPPool status written again");
                }
                self.written
                    .insert(name.to_owned(), (status.clone(), version));
            }
            Err(error) => {
                if self.failing.insert(name.to_owned()) {
                    warn!(pool = name, %error, "cannot write IPPool status; retrying every few seconds");
                } else {
                    debug!(pool = name, %error, "cannot write IPPool status");
                }
            }
        }
    }
}
