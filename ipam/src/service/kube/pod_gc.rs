// Pod garbage collection: a handle records the pod it was allocated for
// (namespace and name); when the cluster has shown no such pod for longer
// than the grace (--pod-gc-grace), the handle is released, as Calico's
// kube-controllers release the addresses of pods long gone. Kubelet's CNI
// DEL and CNI GC release almost everything; this catches what they missed
// (a node that died with its pods, a DEL that never came). The bookkeeping
// is pure (time and the pod view are inputs); the reconciler feeds it and
// releases what it returns.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store as Reflected};
use tokio::time::Instant;
use tracing::{debug, info};

use super::{View, log_failure, waits_for_store};
use crate::model::{HandleRecord, State};
use crate::service::Ipamd;
use crate::service::stats::ReleaseCause;
use crate::store::{Revision, Store};

/// A handle whose pod the cluster does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbacked {
    pub handle: String,
    /// The handle record's store revision (when it was last written).
    pub revision: Revision,
    /// `namespace/name`, for the logs.
    pub pod: String,
}

/// Every handle made for a pod (with a namespace and a name: a standalone
/// CNI call's handle names none and is never collected here) that `pods`
/// does not show on the handle's node. A pod of that name on another node
/// is another pod (the name was reused, e.g. by a StatefulSet), when the
/// handle's node is a Kubernetes node at all: a CNI plugin configured with
/// another name for its node must not make every pod look gone.
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
            pod: format!("{}/{}", handle.value.pod_namespace, handle.value.pod_name),
        })
        .collect()
}

fn backed(handle: &HandleRecord, pods: &Reflected<Pod>, known_nodes: &BTreeSet<String>) -> bool {
    if handle.pod_namespace.is_empty() || handle.pod_name.is_empty() {
        // Not a pod's: never collected here.
        return true;
    }
    let key = ObjectRef::new(&handle.pod_name).within(&handle.pod_namespace);
    let Some(pod) = pods.get(&key) else {
        return false;
    };
    let pod_node = pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref());
    match pod_node {
        Some(node) if !node.is_empty() && node != handle.node => {
            !known_nodes.contains(&handle.node)
        }
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

    /// When the next handle's grace ends, if after `now` (one already due
    /// whose release failed waits for the next pass). A grace too long for
    /// the clock ends never.
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
                debug!(handle = %handle.handle, pod = %handle.pod, addresses = freed.len(), "released the handle of a pod gone");
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
                    handle.handle, handle.pod
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
            pod: format!("ns/{name}"),
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
}
