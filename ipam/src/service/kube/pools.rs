// IPPool objects into the engine's pools, through the checks the manifests
// and CreatePool go through (the allocator's pool plans, decided on the
// mirror first so an unchanged pool costs the writer nothing). Each object
// is read on its own: one that does not convert, or that the engine
// refuses (an overlap, a cidr changed under claimed blocks), is logged
// with its name and the others apply; its pool in the store, if any, stays
// as it was.
//
// A deleted IPPool deletes its pool when no address of it is held. While
// some are, the pool is kept, disabled (no new allocations) and labelled
// `podroute.io/ippool-deleted`, and deleted as soon as its last address is
// released (the label lets a restarted ipamd, or another replica, carry
// on). Calico refuses to delete a pool in use instead; an object already
// gone from the API cannot be refused, and the pool must not vanish from
// under running pods. Store pools that have no IPPool object at the first
// list are left alone and named in one warning: they were created with
// podctl, or their object was deleted while no ipamd ran.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store as Reflected;
use tracing::{error, info, warn};

use super::{KubeSourceError, log_failure, waits_for_store};
use crate::allocator;
use crate::model::crd::IPPool;
use crate::model::{IpPool, PoolError};
use crate::service::{Ipamd, ServiceError};
use crate::store::Store;

/// The label on a stored pool whose IPPool was deleted while in use.
pub const DELETED_LABEL: &str = "podroute.io/ippool-deleted";

#[derive(Debug, Default)]
pub struct PoolSync {
    /// The IPPool names of the last pass.
    seen: BTreeSet<String>,
    /// A pass has run: `seen` is a complete list.
    listed: bool,
    /// Objects refused, by name, with the reason last logged (each pass
    /// tries them again, on the mirror: it costs no write).
    refused: BTreeMap<String, String>,
    /// Deleted IPPools whose pool is still stored, and whether the wait
    /// for its addresses has been logged.
    deleting: BTreeMap<String, bool>,
}

impl PoolSync {
    /// Applies every IPPool, then what deleted ones leave.
    pub async fn sync<S: Store>(&mut self, ipamd: &Ipamd<S>, pools: &Reflected<DynamicObject>) {
        let objects = pools.state();
        let mut names = BTreeSet::new();
        for object in &objects {
            let name = object.name_any();
            names.insert(name.clone());
            if self.deleting.remove(&name).is_some() {
                info!(pool = %name, "IPPool created again: its pool stays");
            }
            let applied = match convert(object) {
                Ok(pool) => apply(ipamd, pool).await,
                Err(error) => Err(error),
            };
            match applied {
                Ok(()) => {
                    if self.refused.remove(&name).is_some() {
                        info!(pool = %name, "IPPool accepted");
                    }
                }
                // The store is out of reach: nothing was refused.
                Err(KubeSourceError::Refused { source, .. }) if waits_for_store(&source) => {
                    log_failure(&source, &format!("cannot apply IPPool {name:?}"));
                }
                Err(error) => self.refuse(&name, &error),
            }
        }
        self.refused.retain(|name, _| names.contains(name));
        if self.listed {
            for gone in self.seen.difference(&names) {
                info!(pool = %gone, "IPPool deleted: deleting its pool");
                self.deleting.insert(gone.clone(), false);
            }
        } else {
            self.first_list(ipamd, &names).await;
        }
        self.seen = names;
        self.listed = true;
        let deleting: Vec<String> = self.deleting.keys().cloned().collect();
        for name in deleting {
            if self.delete(ipamd, &name).await {
                self.deleting.remove(&name);
            }
        }
    }

    /// Stored pools without an object: those marked deleted are deleted
    /// as they would have been; the others are named once.
    async fn first_list<S: Store>(&mut self, ipamd: &Ipamd<S>, names: &BTreeSet<String>) {
        let (marked, orphans): (Vec<_>, Vec<_>) = ipamd
            .read(|mirror| {
                mirror
                    .state
                    .pools()
                    .filter(|pool| !names.contains(pool.value.name()))
                    .map(|pool| {
                        let marked = pool.value.metadata.labels.contains_key(DELETED_LABEL);
                        (pool.value.name().to_owned(), marked)
                    })
                    .partition(|(_, marked)| *marked)
            })
            .await;
        for (name, _) in marked {
            self.deleting.insert(name, false);
        }
        if !orphans.is_empty() {
            let orphans: Vec<String> = orphans.into_iter().map(|(name, _)| name).collect();
            warn!(
                pools = ?orphans,
                "pools in the IPAM store without an IPPool object are left as they are (created with podctl, or their IPPool was deleted while no ipamd ran); `podctl ipam pool delete NAME` deletes one"
            );
        }
    }

    /// Logs a refusal once per reason.
    fn refuse(&mut self, name: &str, error: &KubeSourceError) {
        let reason = error.to_string();
        if self.refused.get(name) != Some(&reason) {
            error!(pool = %name, %error, "IPPool refused; its pool in the IPAM store, if any, stays as it was");
            self.refused.insert(name.to_owned(), reason);
        }
    }

    /// Deletes the pool of a deleted IPPool, or disables it while its
    /// addresses are held; true when it is gone.
    async fn delete<S: Store>(&mut self, ipamd: &Ipamd<S>, name: &str) -> bool {
        let found = ipamd
            .read(|mirror| {
                let pool = mirror.state.pool(name)?;
                let allocated: usize = mirror
                    .state
                    .blocks_of_pool(name)
                    .map(|block| block.value.allocations.len())
                    .sum();
                Some((pool.value.clone(), allocated))
            })
            .await;
        // Never stored (it was refused), or deleted by someone else.
        let Some((pool, allocated)) = found else {
            return true;
        };
        if allocated == 0 {
            match ipamd.delete_pool(name).await {
                Ok(blocks) => {
                    info!(pool = %name, blocks_removed = blocks, "pool deleted");
                    return true;
                }
                Err(ServiceError::Pool(PoolError::NotFound(_))) => return true,
                // An address was taken meanwhile: disable it below.
                Err(ServiceError::Pool(PoolError::InUse { .. })) => {}
                Err(error) => {
                    log_failure(
                        &error,
                        &format!("cannot delete pool {name:?} of a deleted IPPool"),
                    );
                    return false;
                }
            }
        }
        if !pool.spec.disabled || !pool.metadata.labels.contains_key(DELETED_LABEL) {
            let mut disabled = pool;
            disabled.spec.disabled = true;
            disabled
                .metadata
                .labels
                .insert(DELETED_LABEL.to_owned(), "true".to_owned());
            if let Err(error) = ipamd.put_pool(disabled, true).await {
                log_failure(
                    &error,
                    &format!("cannot disable pool {name:?} of a deleted IPPool"),
                );
                return false;
            }
        }
        let announced = self.deleting.entry(name.to_owned()).or_insert(false);
        if !*announced {
            warn!(
                pool = %name,
                allocated,
                "IPPool deleted while addresses of its pool are held: the pool is disabled (no new allocations) and deleted once they are released"
            );
            *announced = true;
        }
        false
    }
}

/// An IPPool object as the pool ipamd stores.
fn convert(object: &DynamicObject) -> Result<IpPool, KubeSourceError> {
    let convert_error = |source| KubeSourceError::Convert {
        name: object.name_any(),
        source,
    };
    let value = serde_json::to_value(object).map_err(convert_error)?;
    let resource: IPPool = serde_json::from_value(value).map_err(convert_error)?;
    Ok(IpPool::from(&resource))
}

/// Creates or updates `pool` when the mirror says it would change.
async fn apply<S: Store>(ipamd: &Ipamd<S>, pool: IpPool) -> Result<(), KubeSourceError> {
    let name = pool.name().to_owned();
    let cidr = pool.spec.cidr;
    let planned = ipamd
        .read(|mirror| {
            let existed = mirror.state.pool(&name).is_some();
            let plan = if existed {
                allocator::plan_update_pool(&mirror.state, pool.clone())
            } else {
                allocator::plan_create_pool(&mirror.state, pool.clone())
            };
            plan.map(|plan| (existed, plan.is_some()))
        })
        .await;
    let refused = |source: ServiceError| KubeSourceError::Refused {
        name: name.clone(),
        source,
    };
    match planned {
        Ok((_, false)) => Ok(()),
        Ok((existed, true)) => {
            let changed = ipamd.put_pool(pool, true).await.map_err(refused)?;
            if changed {
                let event = if existed {
                    "pool updated"
                } else {
                    "pool created"
                };
                info!(pool = %name, %cidr, source = "kubernetes", "{event}");
            }
            Ok(())
        }
        Err(error) => Err(refused(error.into())),
    }
}
