// The Kubernetes source against a fake API server behind kube's mock service
// (tower_test::mock). The fake answers lists and watches of the three kinds
// the way the real one does (a resourceVersion per change, watches replayed
// from the version asked for, 410 Gone below the compacted version) and lets
// a test hold lists, fail them and expire watches, so the order of events is
// the test's, not the scheduler's. The tests run on a paused clock: the
// source's only timers are its debounce and kube's backoff, and tokio moves
// time on only when every task is idle, so no outcome depends on speed.

#![allow(clippy::unwrap_used)]

use podroute_k8s::fake::{FakeApi, FakeKind};
use serde_json::{Value, json};
use std::fmt::Debug;

use podroute_k8s::fake::DEADLINE;
use std::sync::Mutex;

use super::*;

const NAMESPACES: FakeKind = FakeKind::NAMESPACES;
const PODS: FakeKind = FakeKind::PODS;
const POLICIES: FakeKind = FakeKind::NETWORK_POLICIES;
const COLLECTIONS: [FakeKind; 3] = [NAMESPACES, PODS, POLICIES];

/// Returns once the source and the fake server have handled everything
/// they were sent and every timer due within a second (the debounce) has
/// fired: on the paused clock, time moves only when all tasks are idle.
/// This is how a test sees that something did *not* happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

// Objects as the API server returns them, with fields the source must drop.

fn namespace(name: &str, labels: Value) -> Value {
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": format!("uid-{name}"),
            "labels": labels,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1"}],
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    object
}

fn pod(namespace: &str, name: &str, ip: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{namespace}-{name}"),
            "labels": labels,
            "annotations": {"note": "dropped"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "rs", "uid": "uid-rs"}],
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{
                "name": "serve",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                "args": ["porter"],
                "env": [{"name": "SERVE_PORT_80", "value": "foo"}],
                "ports": [
                    {"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"},
                    {"name": "serve-81-udp", "containerPort": 81, "protocol": "UDP"},
                ],
            }],
            "volumes": [{"name": "token", "emptyDir": {}}],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.0.2.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn policy(namespace: &str, name: &str, port: i32) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{namespace}-{name}"),
            "annotations": {"note": "dropped"},
            "generation": 1,
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"team": "a"}},
                     "podSelector": {"matchExpressions":
                         [{"key": "role", "operator": "In", "values": ["web"]}]}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [
                    {"protocol": "TCP", "port": port},
                    {"port": "serve-81-udp", "protocol": "UDP"},
                    {"port": 5000, "endPort": 5100},
                ],
            }],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
    })
}

/// What the snapshot must hold for these API objects: each read straight
/// into the wire types, in the snapshot's order (the lists given sorted).
fn expected(namespaces: &[&Value], pods: &[&Value], policies: &[&Value]) -> Snapshot {
    fn wire<W: DeserializeOwned>(objects: &[&Value]) -> Vec<W> {
        let objects = objects.iter();
        objects
            .map(|object| serde_json::from_value((*object).clone()).unwrap())
            .collect()
    }
    Snapshot {
        namespaces: wire(namespaces),
        pods: wire(pods),
        policies: wire(policies),
    }
}

type Receiver = watch::Receiver<Option<Arc<Snapshot>>>;

/// Waits until the published snapshot satisfies `done`.
async fn wait_for_snapshot(
    receiver: &mut Receiver,
    what: &str,
    done: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let waited = tokio::time::timeout(
        DEADLINE,
        receiver.wait_for(|published| published.as_deref().is_some_and(&done)),
    )
    .await
    .map(|found| found.map(|published| published.clone()));
    match waited {
        Ok(Ok(published)) => published.unwrap(),
        Ok(Err(_closed)) => panic!("{what}: the source dropped its sender"),
        Err(_elapsed) => panic!(
            "{what}: not within {DEADLINE:?}; published: {:#?}",
            receiver.borrow()
        ),
    }
}

type Published = Arc<Mutex<Vec<Arc<Snapshot>>>>;

/// Records every snapshot published, to check what came first.
fn record(mut receiver: Receiver) -> (Published, tokio::task::JoinHandle<()>) {
    let published = Arc::new(Mutex::new(Vec::new()));
    let sink = published.clone();
    let task = tokio::spawn(async move {
        while receiver.changed().await.is_ok() {
            if let Some(snapshot) = receiver.borrow_and_update().clone() {
                sink.lock().unwrap().push(snapshot);
            }
        }
    });
    (published, task)
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_until_all_three_kinds_are_listed() {
    let (api, client) = FakeApi::start(&COLLECTIONS);
    let x = namespace("x", json!({"team": "a"}));
    let a = pod("x", "a", "10.240.0.1", json!({"app": "db"}));
    let b = pod("x", "b", "10.240.0.2", json!({"role": "web"}));
    let p = policy("x", "p", 6379);
    api.put(NAMESPACES, x.clone());
    api.put(PODS, a.clone());
    api.put(POLICIES, p.clone());
    api.hold_lists(NAMESPACES, true);

    let (tx, mut receiver) = watch::channel(None);
    let (published, recorder) = record(tx.subscribe());
    let source = tokio::spawn(run(client, tx));

    // Pods and policies are listed (their watches start only then) while
    // the namespaces list waits.
    api.wait_for_requests("pods and policies watched, namespaces listing", |api| {
        api.watches(PODS) == 1 && api.watches(POLICIES) == 1 && api.lists(NAMESPACES) == 1
    })
    .await;
    settle().await;
    assert!(
        receiver.borrow().is_none(),
        "published before namespaces were listed"
    );
    // A change meanwhile is not published either.
    api.put(PODS, b.clone());
    settle().await;
    assert!(
        receiver.borrow().is_none(),
        "published before namespaces were listed"
    );

    api.hold_lists(NAMESPACES, false);
    let want = expected(&[&x], &[&a, &b], &[&p]);
    let snapshot = wait_for_snapshot(&mut receiver, "the whole cluster", |s| *s == want).await;
    assert_eq!(*snapshot, want);
    let first = published.lock().unwrap()[0].clone();
    assert_eq!(
        first.namespaces.len(),
        1,
        "first snapshot partial: {first:#?}"
    );
    assert_eq!(
        first.policies.len(),
        1,
        "first snapshot partial: {first:#?}"
    );

    // The requests are kube's list-then-watch: a paged list of the most
    // recent state, then a watch from the version that list returned.
    api.wait_for_requests("namespaces watched", |api| api.watches(NAMESPACES) == 1)
        .await;
    for path in COLLECTIONS {
        let requests = api.requests(path.path);
        let [list, watch] = &requests[..] else {
            panic!("{path}: want one list and one watch, got {requests:#?}");
        };
        assert!(!list.is_watch(), "{list:?}");
        assert_eq!(list.param("limit"), Some("500"), "{list:?}");
        assert_eq!(list.param("resourceVersion"), None, "{list:?}");
        assert!(watch.is_watch(), "{watch:?}");
        assert_eq!(
            watch.param("allowWatchBookmarks"),
            Some("true"),
            "{watch:?}"
        );
        let listed_at = api.lists_answered(path)[0].to_string();
        assert_eq!(
            watch.param("resourceVersion"),
            Some(listed_at.as_str()),
            "{watch:?}"
        );
    }

    recorder.abort();
    drop(receiver);
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn added_modified_and_deleted_objects_reach_the_snapshot() {
    let (api, client) = FakeApi::start(&COLLECTIONS);
    let x = namespace("x", json!({}));
    let a = pod("x", "a", "10.240.0.1", json!({"app": "db"}));
    let p = policy("x", "p", 6379);
    api.put(NAMESPACES, x.clone());
    api.put(PODS, a.clone());
    api.put(POLICIES, p.clone());

    let (tx, mut receiver) = watch::channel(None);
    let source = tokio::spawn(run(client, tx));
    let want = expected(&[&x], &[&a], &[&p]);
    wait_for_snapshot(&mut receiver, "the listed objects", |s| *s == want).await;

    // ADDED
    let y = namespace("y", json!({"team": "a"}));
    let b = pod("y", "b", "fd00:240::2", json!({"role": "web"}));
    let q = policy("y", "q", 80);
    api.put(NAMESPACES, y.clone());
    api.put(PODS, b.clone());
    api.put(POLICIES, q.clone());
    let want = expected(&[&x, &y], &[&a, &b], &[&p, &q]);
    wait_for_snapshot(&mut receiver, "added objects", |s| *s == want).await;

    // MODIFIED
    let x = namespace("x", json!({"team": "b"}));
    let mut a = pod("x", "a", "10.240.0.1", json!({"app": "cache"}));
    a["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let p = policy("x", "p", 6380);
    api.put(NAMESPACES, x.clone());
    api.put(PODS, a.clone());
    api.put(POLICIES, p.clone());
    let want = expected(&[&x, &y], &[&a, &b], &[&p, &q]);
    let snapshot = wait_for_snapshot(&mut receiver, "modified objects", |s| *s == want).await;
    let deleting = snapshot.pods[0].metadata.deletion_timestamp.as_deref();
    assert_eq!(deleting, Some("2026-01-01T00:00:00Z"));

    // DELETED
    api.delete(PODS, "y", "b");
    api.delete(POLICIES, "y", "q");
    api.delete(NAMESPACES, "", "y");
    let want = expected(&[&x], &[&a], &[&p]);
    wait_for_snapshot(&mut receiver, "deleted objects gone", |s| *s == want).await;

    // All of it came on the first watches: nothing was listed twice.
    for path in COLLECTIONS {
        assert_eq!((api.lists(path), api.watches(path)), (1, 1), "{path}");
    }

    // The source stops once nobody listens.
    drop(receiver);
    tokio::time::timeout(DEADLINE, source)
        .await
        .expect("run returns when every receiver is gone")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_expired_watch_relists_without_publishing_a_partial_view() {
    let (api, client) = FakeApi::start(&COLLECTIONS);
    let x = namespace("x", json!({}));
    let a = pod("x", "a", "10.240.0.1", json!({}));
    let b = pod("x", "b", "10.240.0.2", json!({}));
    let p = policy("x", "p", 6379);
    api.put(NAMESPACES, x.clone());
    api.put(PODS, a.clone());
    api.put(PODS, b.clone());
    api.put(POLICIES, p.clone());

    let (tx, mut receiver) = watch::channel(None);
    let source = tokio::spawn(run(client, tx));
    let want = expected(&[&x], &[&a, &b], &[&p]);
    wait_for_snapshot(&mut receiver, "the listed objects", |s| *s == want).await;

    // The pods watch gets 410 Gone; what changes meanwhile is only in the
    // next list, which waits.
    api.hold_lists(PODS, true);
    api.expire_watches(PODS);
    api.delete(PODS, "x", "b");
    let c = pod("x", "c", "10.240.0.3", json!({}));
    api.put(PODS, c.clone());
    api.wait_for_requests("pods listed again", |api| api.lists(PODS) == 2)
        .await;

    // Another kind changes while the pods list is pending: the snapshot
    // published for it still has the last complete pods list.
    let y = namespace("y", json!({}));
    api.put(NAMESPACES, y.clone());
    let want = expected(&[&x, &y], &[&a, &b], &[&p]);
    let snapshot =
        wait_for_snapshot(&mut receiver, "namespace y", |s| s.namespaces.len() == 2).await;
    assert_eq!(*snapshot, want);

    api.hold_lists(PODS, false);
    let want = expected(&[&x, &y], &[&a, &c], &[&p]);
    wait_for_snapshot(&mut receiver, "the relisted pods", |s| *s == want).await;

    // The watch after the relist starts from the relist's version.
    let relisted_at = api.lists_answered(PODS)[1].to_string();
    api.wait_for_requests("pods watched again", |api| api.watches(PODS) == 2)
        .await;
    let requests = api.requests(PODS.path);
    let watch = requests.iter().rfind(|seen| seen.is_watch()).unwrap();
    assert_eq!(watch.param("resourceVersion"), Some(relisted_at.as_str()));

    drop(receiver);
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn api_errors_back_off_and_keep_the_last_snapshot() {
    let (api, client) = FakeApi::start(&COLLECTIONS);
    let x = namespace("x", json!({}));
    let a = pod("x", "a", "10.240.0.1", json!({}));
    let p = policy("x", "p", 6379);
    api.put(NAMESPACES, x.clone());
    api.put(PODS, a.clone());
    api.put(POLICIES, p.clone());
    // The first namespaces list fails: the source retries, then publishes.
    api.fail_lists(NAMESPACES, 1);

    let (tx, mut receiver) = watch::channel(None);
    let source = tokio::spawn(run(client, tx));
    let want = expected(&[&x], &[&a], &[&p]);
    wait_for_snapshot(&mut receiver, "the listed objects", |s| *s == want).await;
    assert_eq!(api.lists(NAMESPACES), 2);
    assert_eq!(api.lists_answered(NAMESPACES).len(), 1);

    // Later, the policies watch expires and the relist fails once.
    api.fail_lists(POLICIES, 1);
    api.expire_watches(POLICIES);
    let q = policy("x", "q", 80);
    api.put(POLICIES, q.clone());
    api.wait_for_requests("the failing policies relist", |api| {
        api.lists(POLICIES) >= 2
    })
    .await;
    // A snapshot published meanwhile still has the last policies.
    let y = namespace("y", json!({}));
    api.put(NAMESPACES, y.clone());
    let want = expected(&[&x, &y], &[&a], &[&p]);
    let snapshot =
        wait_for_snapshot(&mut receiver, "namespace y", |s| s.namespaces.len() == 2).await;
    assert_eq!(*snapshot, want);

    let want = expected(&[&x, &y], &[&a], &[&p, &q]);
    wait_for_snapshot(&mut receiver, "the relisted policies", |s| *s == want).await;
    assert_eq!(api.lists(POLICIES), 3);

    drop(receiver);
    source.abort();
}

#[test]
fn stripping_keeps_every_field_the_model_reads() {
    fn check<K, W>(kind: Kind, object: &Value, strip: fn(&mut K))
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
        W: DeserializeOwned + PartialEq + Debug,
    {
        let whole: K = serde_json::from_value(object.clone()).unwrap();
        let mut stripped: K = serde_json::from_value(object.clone()).unwrap();
        strip(&mut stripped);
        let whole_wire: W = convert(kind, &whole).unwrap();
        let stripped_wire: W = convert(kind, &stripped).unwrap();
        assert_eq!(stripped_wire, whole_wire);
        let direct: W = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(stripped_wire, direct);
    }
    let mut deleting = pod("x", "a", "10.240.0.1", json!({"app": "db"}));
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    deleting["spec"]["hostNetwork"] = json!(true);
    check::<Pod, PodObject>(Kind::Pods, &deleting, strip_pod);
    let x = namespace("x", json!({"team": "a"}));
    check::<Namespace, NamespaceObject>(Kind::Namespaces, &x, strip_namespace);
    let p = policy("x", "p", 6379);
    check::<NetworkPolicy, NetworkPolicyObject>(Kind::Policies, &p, strip_policy);

    // What we do not read is gone.
    let mut stripped: Pod = serde_json::from_value(deleting).unwrap();
    strip_pod(&mut stripped);
    assert!(stripped.metadata.annotations.is_none());
    assert!(stripped.metadata.owner_references.is_none());
    let spec = stripped.spec.unwrap();
    assert!(spec.volumes.is_none());
    assert!(spec.containers[0].env.is_none());
    assert!(spec.containers[0].image.is_none());
    assert!(stripped.status.unwrap().conditions.is_none());
    let mut stripped: Namespace = serde_json::from_value(x).unwrap();
    strip_namespace(&mut stripped);
    assert!(stripped.metadata.managed_fields.is_none());
    assert!(stripped.metadata.annotations.is_none());
    assert!(stripped.spec.is_none());
}
