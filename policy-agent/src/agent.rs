// The agent's reconcile loop: whenever the source publishes a new view of
// the cluster, or the resync timer fires, validate → compile → render →
// apply, then cut the tracked connections the new rules deny. Level
// triggered: each pass programs the whole desired state; the applier
// writes only what differs from what it last programmed (or, on a resync,
// from what the kernel holds). Nothing is programmed until the source has
// a complete view, so on a restart the old rules stay in force until
// replaced, and nothing is removed on exit.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::apply::conntrack::{self, ConntrackFlow};
use crate::apply::runner::Runner;
use crate::apply::{Applier, ApplyReport};
use crate::compile::{Compiled, Endpoint, compile};
use crate::model::cluster::{Cluster, Direction, Problem, Protocol};
use crate::model::evaluate::Flow;
use crate::model::objects::Snapshot;
use crate::observe::{LoopStats, SyncKind};
use crate::render::{DropIndex, Family, RenderOptions, render_with_drops};

/// How long after a failed apply the agent tries again: doubling from the
/// first to the last while failures go on.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_LAST: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This node's name, as pods' `spec.nodeName` gives it.
    pub node: String,
    /// How often the kernel is read back and healed.
    pub resync_interval: Duration,
    pub render: RenderOptions,
    pub runner: Runner,
}

/// What the agent last programmed, for the admin API.
#[derive(Debug, Clone)]
pub struct View {
    pub cluster: Cluster,
    pub compiled: Arc<Compiled>,
    /// Objects refused by validation.
    pub problems: Vec<Problem>,
    pub synced_at: SystemTime,
    /// How long the last successful pass took, from snapshot to kernel.
    pub sync_duration: Duration,
    pub report: ApplyReport,
    /// Our ipsets in force.
    pub ipsets: usize,
    /// Our DROP rules in force, to read their counters by.
    pub drops: Arc<DropIndex>,
}

pub type ViewSender = watch::Sender<Option<Arc<View>>>;

/// Runs until the source's sender is dropped, reporting each pass to
/// `stats`.
pub async fn run(
    config: AgentConfig,
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    view: ViewSender,
    stats: Arc<LoopStats>,
) {
    // However the loop ends (a return, a panic), /livez must say so.
    let _ended = stats.end_guard();
    let mut applier = Some(Applier::new(config.runner.clone()));
    let (sweep, sweeps) = watch::channel(None);
    tokio::spawn(cut_flows_on_change(config.runner.clone(), sweeps));
    let mut resync = tokio::time::interval(config.resync_interval);
    resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate; the first pass reads the kernel anyway.
    resync.tick().await;
    let mut read_kernel = true;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut retry_after = RETRY_FIRST;
    loop {
        // A snapshot sent before this loop started still counts as changed.
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    tracing::info!("source stopped; the rules in force stay");
                    return;
                }
            }
            _ = resync.tick() => read_kernel = true,
            () = retry => {}
        }
        retry_at = None;
        let Some(snapshot) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        let started = Instant::now();
        stats.pass_started();
        // What the last successful pass programmed.
        let previous = view.borrow().clone();
        let (cluster, problems) = Cluster::build(&snapshot);
        for problem in &problems {
            if previous
                .as_ref()
                .is_none_or(|v| !v.problems.contains(problem))
            {
                tracing::warn!("refused: {problem}");
            }
        }
        let compiled = Arc::new(compile(&cluster, &config.node));
        let (dataplane, drops) = render_with_drops(&compiled, &config.render);
        let ipsets = dataplane.sets.len();
        let Some(mut owned) = applier.take() else {
            return;
        };
        let kernel = read_kernel;
        let kind = if kernel {
            SyncKind::Full
        } else {
            SyncKind::Incremental
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = owned.apply(&dataplane, kernel);
            (owned, result)
        })
        .await;
        let (owned, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("the apply task failed: {e}");
                stats.pass_failed(
                    kind,
                    started.elapsed(),
                    format!("the apply task failed: {e}"),
                );
                return;
            }
        };
        applier = Some(owned);
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(retry_in = ?retry_after, "programming the kernel failed: {e}");
                stats.pass_failed(kind, started.elapsed(), e.to_string());
                read_kernel = true;
                retry_at = Some(tokio::time::Instant::now() + retry_after);
                retry_after = (retry_after * 2).min(RETRY_LAST);
                continue;
            }
        };
        read_kernel = false;
        retry_after = RETRY_FIRST;
        let first = previous.is_none();
        let changed = previous.is_none_or(|v| v.compiled != compiled);
        if changed {
            // After the apply: a cut flow's next packet must meet the new
            // rules. Off this loop, so the next change need not wait.
            sweep.send_replace(Some(compiled.clone()));
        }
        let sync_duration = started.elapsed();
        let failures = stats.pass_succeeded(kind, sync_duration);
        if failures > 0 {
            tracing::info!(failures, "programming the kernel works again");
        }
        if changed || report.wrote_anything() {
            tracing::info!(
                endpoints = compiled.endpoints.len(),
                policies = compiled.policies.len(),
                sets = compiled.sets.len(),
                chains_written = report.chains_written,
                chains_deleted = report.chains_deleted,
                hooks_changed = report.hooks_changed,
                kernel_read = report.kernel_read,
                sets_swapped = report.sets_swapped,
                sets_created = report.sets_created,
                rules = report.rules,
                set_members = report.set_members,
                ms = sync_duration.as_millis() as u64,
                first,
                "policy programmed"
            );
        }
        view.send_replace(Some(Arc::new(View {
            cluster,
            compiled,
            problems,
            synced_at: SystemTime::now(),
            sync_duration,
            report,
            ipsets,
            drops: Arc::new(drops),
        })));
    }
}

/// Runs `cut_denied_flows` for each compiled state the loop programs (the
/// latest, when several came while one sweep ran), until the loop ends.
async fn cut_flows_on_change(runner: Runner, mut compiled: watch::Receiver<Option<Arc<Compiled>>>) {
    while compiled.changed().await.is_ok() {
        let Some(latest) = compiled.borrow_and_update().clone() else {
            continue;
        };
        let runner = runner.clone();
        match tokio::task::spawn_blocking(move || cut_denied_flows(&runner, &latest)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(cut)) => tracing::info!(flows = cut, "cut connections the new rules deny"),
            Ok(Err(e)) => tracing::warn!("cannot cut denied connections: {e}"),
            Err(e) => tracing::warn!("the conntrack task failed: {e}"),
        }
    }
}

/// Deletes the tracked connections of local endpoints that `compiled`
/// denies, so a connection a change forbids stops at once instead of
/// living on as "established". Connections from the node itself are
/// spared: NetworkPolicy always allows them. Returns how many were cut.
pub fn cut_denied_flows(runner: &Runner, compiled: &Compiled) -> Result<usize, SweepError> {
    let locals = local_addresses(runner)?;
    let endpoints: HashMap<IpAddr, &Endpoint> = compiled
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(move |a| (*a, e)))
        .collect();
    let mut cut = 0;
    for family in [Family::V4, Family::V6] {
        let flows = conntrack::list(runner, family)?;
        let denied: BTreeSet<&ConntrackFlow> = flows
            .iter()
            .filter(|flow| flow.live && denies(compiled, &endpoints, flow, &locals))
            .collect();
        let denied: Vec<&ConntrackFlow> = denied.into_iter().collect();
        conntrack::delete_all(runner, &denied)?;
        cut += denied.len();
    }
    Ok(cut)
}

fn denies(
    compiled: &Compiled,
    endpoints: &HashMap<IpAddr, &Endpoint>,
    flow: &ConntrackFlow,
    locals: &HashSet<IpAddr>,
) -> bool {
    let (Some(protocol), Some(port)) = (Protocol::from_number(flow.protocol), flow.served_port)
    else {
        // ICMP and the like: short-lived, judged again on their next packet.
        return false;
    };
    // Judged as the filter rules see it: after DNAT (a Service's cluster
    // IP replaced by the pod behind it), before any SNAT.
    let f = Flow {
        source: flow.src,
        destination: flow.served_by,
        protocol,
        port,
    };
    // Traffic between a pod and its own node is always allowed.
    if locals.contains(&f.source) || locals.contains(&f.destination) {
        return false;
    }
    let egress_denied = endpoints
        .get(&f.source)
        .is_some_and(|e| !compiled.allows(e, Direction::Egress, &f));
    let ingress_denied = endpoints
        .get(&f.destination)
        .is_some_and(|e| !compiled.allows(e, Direction::Ingress, &f));
    egress_denied || ingress_denied
}

/// The node's own addresses (`ip -o addr show`).
fn local_addresses(runner: &Runner) -> Result<HashSet<IpAddr>, SweepError> {
    let out = runner.run("ip", &["-o", "addr", "show"], None)?;
    Ok(out
        .stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let address = words.next()?;
            address.split('/').next()?.parse().ok()
        })
        .collect())
}

/// Why the conntrack sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Run(#[from] crate::apply::runner::RunError),
    #[error(transparent)]
    Conntrack(#[from] crate::apply::conntrack::ConntrackError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_fixtures::xyz_with;

    fn flow(line: &str) -> ConntrackFlow {
        conntrack::parse_line(line).unwrap()
    }

    /// x's pods may send only to y; n1 holds x/a (10.0.0.1), y/a, z/a.
    fn judge(line: &str) -> bool {
        let compiled = compile(
            &xyz_with(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: to-y, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n",
            ),
            "n1",
        );
        let endpoints: HashMap<IpAddr, &Endpoint> = compiled
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().map(move |a| (*a, e)))
            .collect();
        let locals = HashSet::from(["192.0.2.1".parse().unwrap()]);
        denies(&compiled, &endpoints, &flow(line), &locals)
    }

    #[test]
    fn flows_are_judged_after_dnat() {
        // x/a to a Service whose backend is y/b: allowed, kept.
        assert!(!judge(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=80 src=10.0.1.2 dst=10.0.0.1 sport=8080 dport=40000 [ASSURED] mark=0 use=1"
        ));
        // x/a to a Service whose backend is z/b: denied, cut.
        assert!(judge(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=80 src=10.0.2.2 dst=10.0.0.1 sport=8080 dport=40000 [ASSURED] mark=0 use=1"
        ));
        // Straight to z/b: denied.
        assert!(judge(
            "ipv4 2 udp 17 100 src=10.0.0.1 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
        ));
    }

    #[test]
    fn the_node_itself_and_non_pods_are_spared() {
        // x/a to its node: always allowed.
        assert!(!judge(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=10.0.0.1 dst=192.0.2.1 sport=40000 dport=53 src=192.0.2.1 dst=10.0.0.1 sport=53 dport=40000 [ASSURED] mark=0 use=1"
        ));
        // The node to x/a.
        assert!(!judge(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=192.0.2.1 dst=10.0.0.1 sport=40000 dport=80 src=10.0.0.1 dst=192.0.2.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
        ));
        // Between two addresses that are no local pod's: not ours to judge.
        assert!(!judge(
            "ipv4 2 tcp 6 86399 ESTABLISHED src=10.9.0.1 dst=10.9.0.2 sport=40000 dport=80 src=10.9.0.2 dst=10.9.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1"
        ));
    }
}
