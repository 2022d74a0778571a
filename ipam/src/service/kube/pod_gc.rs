// Pod garbage collection: a handle records the pod it was allocated for
// (namespace and name); when the cluster has shown no such pod for longer
// than the grace (--pod-gc-grace), the handle is released, as Calico's
// kube-controllers release the addresses of pods long gone. Kubelet's CNI
// DEL and CNI GC release almost everything; this catches what they missed
// (a node that died with its pods, a DEL that never came). The bookkeeping
// is pure (time and the pod view are inputs); the reconciler feeds it, asks
// the API server itself about each handle due (LiveCheck: the watch cache
// may lag behind the cluster) and releases only what that read confirms.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store as Reflected};
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{View, log_failure, waits_for_store};
use crate::model::{HandleRecord, State};
use crate::service::Ipamd;
use crate::service::stats::ReleaseCause;
use crate::store::{Revision, Store};

/// How long a live read of a pod may take before the pass gives up on it
/// (kube's client would wait for its read timeout, minutes, meanwhile
/// holding up the pools and nodes of the same pass).
pub const LIVE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle whose pod the cluster does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbacked {
    pub handle: String,
    /// The handle record's store revision (when it was last written).
    pub revision: Revision,
    /// The node it was allocated on.
    pub node: String,
    /// Its pod's namespace and name.
    pub namespace: String,
    pub name: String,
}

impl Unbacked {
    /// `namespace/name`, for the logs.
    pub fn pod(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Every handle made for a pod (with a namespace and a name: a standalone
/// CNI call's handle names none and is never collected here) that `pods`
/// does not show on the handle's node (see `pod_backs`).
pub fn unbacked(
    state: &State,
    pods: &Reflected<Pod>,
    known_nodes: &BTreeSet<String>,
) -> Vec<Unbacked> {
    state
        .handles()
        .filter(|handle| !backed(&handle.value, pods, known_nodes))
        .map(|handle| Unbacked {
            handle: handle.value.handle.clone(),
            revision: handle.revision,
            node: handle.value.node.clone(),
            namespace: handle.value.pod_namespace.clone(),
            name: handle.value.pod_name.clone(),
        })
        .collect()
}

fn backed(handle: &HandleRecord, pods: &Reflected<Pod>, known_nodes: &BTreeSet<String>) -> bool {
    if handle.pod_namespace.is_empty() || handle.pod_name.is_empty() {
        // Not a pod's: never collected here.
        return true;
    }
    let key = ObjectRef::new(&handle.pod_name).within(&handle.pod_namespace);
    pod_backs(&handle.node, pods.get(&key).as_deref(), known_nodes)
}

/// Whether `pod` (the handle's pod by namespace and name as the watch
/// cache or the API server shows it; None: there is none) backs a handle
/// allocated on `handle_node`. Any pod of that name does, finished or
/// terminating, except one scheduled to another node (the name was
/// reused, e.g. by a StatefulSet) when the handle's node is a Kubernetes
/// node at all: a CNI plugin configured with another name for its node
/// must not make every pod look gone.
fn pod_backs(handle_node: &str, pod: Option<&Pod>, known_nodes: &BTreeSet<String>) -> bool {
    let Some(pod) = pod else {
        return false;
    };
    let pod_node = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
    match pod_node {
        Some(node) if !node.is_empty() && node != handle_node => !known_nodes.contains(handle_node),
        _ => true,
    }
}

/// When each unbacked handle was first seen so.
#[derive(Debug)]
pub struct PodGc {
    grace: Duration,
    absent_since: HashMap<String, Instant>,
}

impl PodGc {
    pub fn new(grace: Duration) -> Self {
        PodGc {
            grace,
            absent_since: HashMap::new(),
        }
    }

    /// Takes the handles unbacked `now` and returns those unbacked for at
    /// least the grace. A handle backed again, or gone, is forgotten. Only
    /// a complete pod view judges: while the pods are being listed again
    /// (after 410 Gone or a failed list) nothing is returned and the clocks
    /// are kept. A handle written after the view last heard from the API
    /// server is not judged yet (its pod may be on its way).
    pub fn evaluate(&mut self, unbacked: Vec<Unbacked>, view: View, now: Instant) -> Vec<Unbacked> {
        if !view.complete {
            return Vec::new();
        }
        let mut absent_since = HashMap::with_capacity(unbacked.len());
        let mut due = Vec::new();
        for handle in unbacked {
            if handle.revision > view.heard_at {
                continue;
            }
            let since = self
                .absent_since
                .get(&handle.handle)
                .copied()
                .unwrap_or(now);
            absent_since.insert(handle.handle.clone(), since);
            if now.saturating_duration_since(since) >= self.grace {
                due.push(handle);
            }
        }
        self.absent_since = absent_since;
        due
    }

    /// Starts the clocks of `handles` over at `now`: the API server showed
    /// their pods although the watch cache did not (it lags). Each is
    /// read again a grace later if the cache still lacks its pod.
    pub fn seen_live(&mut self, handles: &[String], now: Instant) {
        for handle in handles {
            if let Some(since) = self.absent_since.get_mut(handle) {
                *since = now;
            }
        }
    }

    /// When the next handle's grace ends, if after `now` (one already due
    /// whose release or live read failed waits for the next pass). A grace
    /// too long for the clock ends never.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.absent_since
            .values()
            .filter_map(|since| since.checked_add(self.grace))
            .filter(|deadline| *deadline > now)
            .min()
    }

    /// Handles waiting out their grace now.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.absent_since.len()
    }
}

/// What the API server said of the handles due.
#[derive(Debug, Default)]
pub struct Confirmed {
    /// Their pods are gone (or another node's): release them.
    pub gone: Vec<Unbacked>,
    /// Their pods are there after all: the watch cache lags. Their clocks
    /// start over (`PodGc::seen_live`).
    pub present: Vec<String>,
}

/// Reads the pod of each handle due from the API server before it is
/// released, as Calico's kube-controllers check a leak candidate again
/// with a live read: the watch cache can lag behind the cluster (a watch
/// minutes behind, an API server whose own cache is stale), and a pod it
/// misses must not lose its address while it runs. A GET of one pod
/// without a resourceVersion is a quorum read: it shows the pod as etcd
/// has it now.
pub struct LiveCheck {
    client: Client,
    /// The failure last logged at warn (each is logged once, and its end).
    reported: Option<String>,
}

impl LiveCheck {
    pub fn new(client: Client) -> Self {
        LiveCheck {
            client,
            reported: None,
        }
    }

    /// Of `due`, those whose pod the API server shows absent, or on another
    /// node, by the rule the cache is judged by (`pod_backs`), and those it
    /// shows there. One GET per handle due. The first read that fails (no
    /// answer within LIVE_READ_TIMEOUT, 403, 5xx) ends the round: it and
    /// the handles after it are neither, so they stay due and are read
    /// again at the next pass, and an API server in trouble gets one
    /// request per pass.
    pub async fn confirm(
        &mut self,
        due: Vec<Unbacked>,
        known_nodes: &BTreeSet<String>,
    ) -> Confirmed {
        let mut confirmed = Confirmed::default();
        for handle in due {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &handle.namespace);
            let pod =
                match tokio::time::timeout(LIVE_READ_TIMEOUT, pods.get_opt(&handle.name)).await {
                    Ok(Ok(pod)) => pod,
                    Ok(Err(error)) => {
                        self.failed(&handle, &failure_reason(&error), &error.to_string());
                        break;
                    }
                    Err(_) => {
                        let reason = format!("no answer within {LIVE_READ_TIMEOUT:?}");
                        self.failed(&handle, &reason, "timed out");
                        break;
                    }
                };
            if self.reported.take().is_some() {
                info!("the API server answers reads of pods again; pod garbage collection goes on");
            }
            if pod_backs(&handle.node, pod.as_ref(), known_nodes) {
                info!(
                    handle = %handle.handle,
                    pod = %handle.pod(),
                    "the watch cache lacks this pod but the API server shows it: keeping its addresses"
                );
                confirmed.present.push(handle.handle);
            } else {
                confirmed.gone.push(handle);
            }
        }
        confirmed
    }

    fn failed(&mut self, handle: &Unbacked, reason: &str, error: &str) {
        if self.reported.as_deref() == Some(reason) {
            debug!(pod = %handle.pod(), %reason, %error, "cannot read a pod before releasing its addresses");
            return;
        }
        warn!(
            handle = %handle.handle,
            pod = %handle.pod(),
            %reason,
            %error,
            "cannot read the pod from the API server before releasing its addresses; keeping them and reading again at the next pass"
        );
        self.reported = Some(reason.to_owned());
    }
}

/// Why a live read failed, the same words for the same cause (what the
/// warning is logged once for).
fn failure_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            "forbidden: ipamd's service account may not \
             get pods (RBAC: its ClusterRole needs the verb get on pods, as \
             deploy/base/rbac-ipamd.yaml grants)"
                .to_owned()
        }
        kube::Error::Api(status) => {
            format!("the API server answered {} {}", status.code, status.reason)
        }
        kube::Error::SerdeError(_) => "the API server's answer does not read as a Pod".to_owned(),
        _ => "the API server could not be reached".to_owned(),
    }
}

/// Releases `due`; one log line for the lot. A failure is logged and the
/// handle is tried again at the next pass.
pub async fn release<S: Store>(ipamd: &Ipamd<S>, due: &[Unbacked]) {
    let mut handles = 0;
    let mut addresses = 0;
    for handle in due {
        match ipamd
            .release_for(&handle.handle, ReleaseCause::PodGone)
            .await
        {
            // Released meanwhile (CNI DEL, another replica).
            Ok(freed) if freed.is_empty() => {}
            Ok(freed) => {
                debug!(handle = %handle.handle, pod = %handle.pod(), addresses = freed.len(), "released the handle of a pod gone");
                handles += 1;
                addresses += freed.len();
            }
            Err(error) if waits_for_store(&error) => {
                log_failure(&error, "pod garbage collection stopped");
                break;
            }
            Err(error) => log_failure(
                &error,
                &format!(
                    "cannot release handle {:?} of pod {} (gone)",
                    handle.handle,
                    handle.pod()
                ),
            ),
        }
    }
    if handles > 0 {
        info!(
            handles,
            addresses, "released the addresses of pods gone for longer than the grace"
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::model::{HandleRecord, Record};

    const GRACE: Duration = Duration::from_secs(300);

    fn handle(name: &str, node: &str, namespace: &str, pod: &str) -> HandleRecord {
        HandleRecord {
            handle: name.to_owned(),
            node: node.to_owned(),
            pod_namespace: namespace.to_owned(),
            pod_name: pod.to_owned(),
            addresses: Vec::new(),
            created_at_ms: 0,
        }
    }

    fn pod(namespace: &str, name: &str, node: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.namespace = Some(namespace.to_owned());
        pod.spec = Some(PodSpec {
            node_name: node.map(str::to_owned),
            ..PodSpec::default()
        });
        pod
    }

    fn unbacked_one(name: &str, revision: Revision) -> Unbacked {
        Unbacked {
            handle: name.to_owned(),
            revision,
            node: "n1".to_owned(),
            namespace: "ns".to_owned(),
            name: name.to_owned(),
        }
    }

    fn names(handles: &[Unbacked]) -> Vec<&str> {
        handles.iter().map(|h| h.handle.as_str()).collect()
    }

    #[test]
    fn a_handle_is_unbacked_when_its_pod_is_absent_or_on_another_known_node() {
        let mut state = State::new();
        let records = [
            handle("present", "n1", "web", "a"),
            handle("gone", "n1", "web", "b"),
            handle("standalone", "n1", "", ""),
            handle("no-namespace", "n1", "", "a"),
            handle("moved", "n1", "db", "db-0"),
            handle("unscheduled", "n1", "web", "pending"),
            handle("other-name", "host-1.example.com", "db", "db-0"),
        ];
        for (revision, record) in records.into_iter().enumerate() {
            state.apply_record(Record::Handle(record), revision as i64 + 1);
        }
        let mut writer = Writer::<Pod>::default();
        for pod in [
            pod("web", "a", Some("n1")),
            pod("db", "db-0", Some("n2")),
            pod("web", "pending", None),
        ] {
            writer.apply_watcher_event(&Event::Apply(pod));
        }
        let known = ["n1".to_owned(), "n2".to_owned()].into();
        let found = unbacked(&state, &writer.as_reader(), &known);
        // db-0 now runs on n2: the handle on n1 was an earlier db-0's. The
        // handle of a node Kubernetes does not know is judged by name only.
        assert_eq!(names(&found), ["gone", "moved"]);
    }

    #[test]
    fn released_only_after_the_grace_and_forgotten_when_backed() {
        let mut gc = PodGc::new(GRACE);
        let view = View {
            complete: true,
            heard_at: 10,
        };
        let t0 = Instant::now();
        assert!(gc.evaluate(vec![unbacked_one("h", 5)], view, t0).is_empty());
        assert_eq!(gc.next_deadline(t0), Some(t0 + GRACE));
        let just_before = t0 + GRACE - Duration::from_millis(1);
        assert!(
            gc.evaluate(vec![unbacked_one("h", 5)], view, just_before)
                .is_empty()
        );
        let due = gc.evaluate(vec![unbacked_one("h", 5)], view, t0 + GRACE);
        assert_eq!(names(&due), ["h"]);
        // Due and not released yet: no deadline to wake for.
        assert_eq!(gc.next_deadline(t0 + GRACE), None);

        // A pod seen again stops the clock; gone again, it starts over.
        let t1 = t0 + GRACE * 2;
        assert!(gc.evaluate(Vec::new(), view, t1).is_empty());
        assert_eq!(gc.waiting(), 0);
        assert!(gc.evaluate(vec![unbacked_one("h", 5)], view, t1).is_empty());
        assert_eq!(gc.next_deadline(t1), Some(t1 + GRACE));
    }

    #[test]
    fn an_incomplete_view_judges_nothing_and_keeps_the_clocks() {
        let mut gc = PodGc::new(GRACE);
        let complete = View {
            complete: true,
            heard_at: 10,
        };
        let relisting = View {
            complete: false,
            ..complete
        };
        let t0 = Instant::now();
        gc.evaluate(vec![unbacked_one("h", 5)], complete, t0);
        // While the pods are listed again, nothing goes, however long.
        let later = t0 + GRACE * 3;
        assert!(
            gc.evaluate(Vec::new(), relisting, later).is_empty(),
            "an incomplete view forgets nothing either"
        );
        assert!(
            gc.evaluate(vec![unbacked_one("h", 5)], relisting, later)
                .is_empty()
        );
        assert_eq!(gc.waiting(), 1);
        // The complete list still lacks the pod: it has been gone all along.
        let due = gc.evaluate(vec![unbacked_one("h", 5)], complete, later);
        assert_eq!(names(&due), ["h"]);
    }

    #[test]
    fn a_handle_written_after_the_view_last_heard_is_not_judged() {
        let mut gc = PodGc::new(GRACE);
        let view = View {
            complete: true,
            heard_at: 10,
        };
        let t0 = Instant::now();
        let late = unbacked_one("late", 11);
        assert!(gc.evaluate(vec![late.clone()], view, t0).is_empty());
        assert_eq!(gc.waiting(), 0);
        let much_later = t0 + GRACE * 2;
        assert!(gc.evaluate(vec![late.clone()], view, much_later).is_empty());
        // Once the view has heard from the API server since, it counts.
        let heard = View {
            heard_at: 11,
            ..view
        };
        assert!(
            gc.evaluate(vec![late.clone()], heard, much_later)
                .is_empty()
        );
        let due = gc.evaluate(vec![late], heard, much_later + GRACE);
        assert_eq!(names(&due), ["late"]);
    }

    #[test]
    fn a_pod_seen_live_starts_its_clock_over() {
        let mut gc = PodGc::new(GRACE);
        let view = View {
            complete: true,
            heard_at: 10,
        };
        let t0 = Instant::now();
        gc.evaluate(vec![unbacked_one("h", 5)], view, t0);
        let due = gc.evaluate(vec![unbacked_one("h", 5)], view, t0 + GRACE);
        assert_eq!(names(&due), ["h"]);
        // The API server shows the pod: not due again for a grace.
        let t1 = t0 + GRACE + Duration::from_secs(1);
        gc.seen_live(&["h".to_owned(), "unknown".to_owned()], t1);
        assert_eq!(gc.waiting(), 1);
        assert_eq!(gc.next_deadline(t1), Some(t1 + GRACE));
        assert!(
            gc.evaluate(
                vec![unbacked_one("h", 5)],
                view,
                t1 + GRACE - Duration::from_millis(1)
            )
            .is_empty()
        );
        let due = gc.evaluate(vec![unbacked_one("h", 5)], view, t1 + GRACE);
        assert_eq!(names(&due), ["h"]);
    }

    #[test]
    fn a_grace_too_long_for_the_clock_ends_never() {
        let mut gc = PodGc::new(Duration::MAX);
        let view = View {
            complete: true,
            heard_at: 10,
        };
        let t0 = Instant::now();
        assert!(gc.evaluate(vec![unbacked_one("h", 5)], view, t0).is_empty());
        assert_eq!(gc.next_deadline(t0), None);
        let later = t0 + Duration::from_secs(3600);
        assert!(
            gc.evaluate(vec![unbacked_one("h", 5)], view, later)
                .is_empty()
        );
        assert_eq!(gc.waiting(), 1);
    }

    #[test]
    fn a_live_pod_backs_a_handle_by_the_rule_the_cache_uses() {
        let known: BTreeSet<String> = ["n1".to_owned(), "n2".to_owned()].into();
        let on = |node: Option<&str>| pod("web", "a", node);
        assert!(!pod_backs("n1", None, &known), "absent");
        assert!(pod_backs("n1", Some(&on(Some("n1"))), &known));
        assert!(
            pod_backs("n1", Some(&on(None)), &known),
            "not scheduled yet"
        );
        assert!(
            !pod_backs("n1", Some(&on(Some("n2"))), &known),
            "the name reused on another known node"
        );
        assert!(
            pod_backs("host-1.example.com", Some(&on(Some("n2"))), &known),
            "a handle's node Kubernetes does not know is judged by name only"
        );
        let mut finished = on(Some("n1"));
        finished.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".to_owned()),
            ..Default::default()
        });
        assert!(
            pod_backs("n1", Some(&finished), &known),
            "a finished pod keeps its addresses while its object exists"
        );
    }

    #[test]
    fn a_forbidden_read_names_the_missing_rbac_verb() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(
                serde_json::from_value::<kube::core::Status>(serde_json::json!({
                    "status": "Failure",
                    "code": code,
                    "reason": reason,
                    "message": "pods \"a\" is forbidden",
                }))
                .unwrap()
                .boxed(),
            )
        };
        let forbidden = failure_reason(&status(403, "Forbidden"));
        assert!(forbidden.contains("get on pods"), "{forbidden}");
        assert_eq!(
            failure_reason(&status(503, "ServiceUnavailable")),
            "the API server answered 503 ServiceUnavailable"
        );
    }
}
