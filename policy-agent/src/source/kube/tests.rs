// The Kubernetes source against a fake API server behind kube's mock service
// (tower_test::mock). The fake answers lists and watches of the three kinds
// the way the real one does (a resourceVersion per change, watches replayed
// from the version asked for, 410 Gone below the compacted version) and lets
// a test hold lists, fail them and expire watches, so the order of events is
// the test's, not the scheduler's. The tests run on a paused clock: the
// source's only timers are its debounce and kube's backoff, and tokio moves
// time on only when every task is idle, so no outcome depends on speed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Mutex;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tower_test::mock::SendResponse;

use super::*;

type MockBody = BoxBody<Bytes, Infallible>;

const NAMESPACES: &str = "/api/v1/namespaces";
const PODS: &str = "/api/v1/pods";
const POLICIES: &str = "/apis/networking.k8s.io/v1/networkpolicies";
const COLLECTIONS: [&str; 3] = [NAMESPACES, PODS, POLICIES];

/// How long a test waits for something before failing (virtual time on the
/// paused clock: it passes only while nothing else can happen). Generous:
/// the source's backoff after an error starts at 0.8 s with jitter.
const DEADLINE: Duration = Duration::from_secs(30);

/// Returns once the source and the fake server have handled everything
/// they were sent and every timer due within a second (the debounce) has
/// fired: on the paused clock, time moves only when all tasks are idle.
/// This is how a test sees that something did *not* happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A request as the fake server received it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: BTreeMap<String, String>,
}

impl Seen {
    fn new(uri: &Uri) -> Self {
        let query = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Seen {
            path: uri.path().to_owned(),
            query,
        }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }
}

/// One kind's objects and watches in the fake server.
#[derive(Default)]
struct Collection {
    /// By (namespace, name); namespace "" for Namespaces.
    objects: BTreeMap<(String, String), Value>,
    /// Every change as a watch line, with its resourceVersion, for watches
    /// that start from an older version.
    changes: Vec<(u64, Bytes)>,
    /// A watch from a version below this one gets 410 Gone.
    compacted: u64,
    watches: Vec<mpsc::UnboundedSender<Bytes>>,
    /// The resourceVersion of each list answered.
    lists_answered: Vec<u64>,
    /// Lists wait while this is set.
    held: bool,
    /// The next this many lists answer 500.
    failing_lists: usize,
}

#[derive(Default)]
struct ServerState {
    /// The cluster-wide resourceVersion, as etcd's revision.
    version: u64,
    collections: BTreeMap<&'static str, Collection>,
    requests: Vec<Seen>,
}

#[derive(Clone)]
struct FakeApi {
    state: Arc<Mutex<ServerState>>,
    /// Bumped on every request, so a test can wait for one.
    requests_seen: Arc<watch::Sender<usize>>,
    /// Wakes lists waiting on `held`.
    released: Arc<Notify>,
}

impl FakeApi {
    /// A fake API server task and a client that talks to it.
    fn start() -> (FakeApi, Client) {
        let mut state = ServerState::default();
        for path in COLLECTIONS {
            state.collections.insert(path, Collection::default());
        }
        let api = FakeApi {
            state: Arc::new(Mutex::new(state)),
            requests_seen: Arc::new(watch::channel(0).0),
            released: Arc::new(Notify::new()),
        };
        let (service, mut handle) =
            tower_test::mock::pair::<Request<::kube::client::Body>, Response<MockBody>>();
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                // Each request on its own task: a held list must not stop
                // the other kinds' requests.
                tokio::spawn(server.clone().serve(request, respond));
            }
        });
        (api, Client::new(service, "default"))
    }

    async fn serve(
        self,
        request: Request<::kube::client::Body>,
        respond: SendResponse<Response<MockBody>>,
    ) {
        let seen = Seen::new(request.uri());
        self.state.lock().unwrap().requests.push(seen.clone());
        self.requests_seen.send_modify(|count| *count += 1);
        let path = COLLECTIONS.into_iter().find(|path| *path == seen.path);
        let response = match path {
            _ if request.method() != Method::GET => status_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "GET only",
            ),
            None => status_response(StatusCode::NOT_FOUND, "NotFound", &seen.path),
            Some(path) if seen.is_watch() => self.watch(path, &seen),
            Some(path) => self.list(path).await,
        };
        respond.send_response(response);
    }

    async fn list(&self, path: &'static str) -> Response<MockBody> {
        loop {
            // Registered before the check, so a release in between wakes it.
            let released = self.released.notified();
            {
                let mut state = self.state.lock().unwrap();
                let version = state.version;
                let collection = state.collections.get_mut(path).unwrap();
                if !collection.held {
                    if collection.failing_lists > 0 {
                        collection.failing_lists -= 1;
                        return status_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            "etcdserver: request timed out",
                        );
                    }
                    collection.lists_answered.push(version);
                    let (api_version, kind) = list_kind(path);
                    let list = json!({
                        "apiVersion": api_version,
                        "kind": kind,
                        "metadata": {"resourceVersion": version.to_string()},
                        "items": collection.objects.values().collect::<Vec<_>>(),
                    });
                    return json_response(StatusCode::OK, &list);
                }
            }
            released.await;
        }
    }

    fn watch(&self, path: &'static str, seen: &Seen) -> Response<MockBody> {
        let Some(from) = seen
            .param("resourceVersion")
            .and_then(|version| version.parse::<u64>().ok())
        else {
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no resourceVersion");
        };
        let (lines, receiver) = mpsc::unbounded_channel();
        let mut state = self.state.lock().unwrap();
        let collection = state.collections.get_mut(path).unwrap();
        if from < collection.compacted {
            // The stream ends after the error, as the API server's does.
            lines
                .send(expired_line(from, collection.compacted))
                .unwrap();
        } else {
            for (version, line) in &collection.changes {
                if *version > from {
                    lines.send(line.clone()).unwrap();
                }
            }
            collection.watches.push(lines);
        }
        let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let line = receiver.recv().await?;
            Some((Ok(Frame::data(line)), receiver))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(body)))
            .unwrap()
    }

    /// Creates or replaces an object (ADDED or MODIFIED on the watches).
    fn put(&self, path: &'static str, mut object: Value) {
        let mut state = self.state.lock().unwrap();
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let collection = state.collections.get_mut(path).unwrap();
        let previous = collection.objects.insert(key(&object), object.clone());
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        collection.change(version, kind, object);
    }

    fn delete(&self, path: &'static str, namespace: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.version += 1;
        let version = state.version;
        let collection = state.collections.get_mut(path).unwrap();
        let mut object = collection
            .objects
            .remove(&(namespace.to_owned(), name.to_owned()))
            .unwrap();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        collection.change(version, "DELETED", object);
    }

    fn hold_lists(&self, path: &'static str, held: bool) {
        self.state
            .lock()
            .unwrap()
            .collections
            .get_mut(path)
            .unwrap()
            .held = held;
        self.released.notify_waiters();
    }

    fn fail_lists(&self, path: &'static str, count: usize) {
        let mut state = self.state.lock().unwrap();
        state.collections.get_mut(path).unwrap().failing_lists = count;
    }

    /// Ends every open watch of `path` with 410 Gone and forgets the
    /// changes so far, as when etcd compacts: the client must list again.
    fn expire_watches(&self, path: &'static str) {
        let mut state = self.state.lock().unwrap();
        let version = state.version;
        let collection = state.collections.get_mut(path).unwrap();
        for lines in collection.watches.drain(..) {
            let _ = lines.send(expired_line(version, version));
        }
        collection.changes.clear();
        collection.compacted = version;
    }

    fn requests(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        let requests = state.requests.iter();
        requests.filter(|seen| seen.path == path).cloned().collect()
    }

    fn lists_answered(&self, path: &'static str) -> Vec<u64> {
        self.state.lock().unwrap().collections[path]
            .lists_answered
            .clone()
    }

    fn lists(&self, path: &str) -> usize {
        self.requests(path)
            .iter()
            .filter(|seen| !seen.is_watch())
            .count()
    }

    fn watches(&self, path: &str) -> usize {
        self.requests(path)
            .iter()
            .filter(|seen| seen.is_watch())
            .count()
    }

    /// Waits until `done` holds of the requests received.
    async fn wait_for_requests(&self, what: &str, done: impl Fn(&FakeApi) -> bool) {
        let mut seen = self.requests_seen.subscribe();
        let waited = tokio::time::timeout(DEADLINE, seen.wait_for(|_| done(self))).await;
        if !matches!(waited, Ok(Ok(_))) {
            let state = self.state.lock().unwrap();
            panic!(
                "{what}: not within {DEADLINE:?}; requests: {:#?}",
                state.requests
            );
        }
    }
}

impl Collection {
    /// Records a change and sends it to the open watches.
    fn change(&mut self, version: u64, kind: &str, object: Value) {
        let line = watch_line(&json!({"type": kind, "object": object}));
        self.changes.push((version, line.clone()));
        self.watches
            .retain(|lines| lines.send(line.clone()).is_ok());
    }
}

fn key(object: &Value) -> (String, String) {
    let text = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (text("namespace"), text("name"))
}

fn list_kind(path: &str) -> (&'static str, &'static str) {
    match path {
        NAMESPACES => ("v1", "NamespaceList"),
        PODS => ("v1", "PodList"),
        _ => ("networking.k8s.io/v1", "NetworkPolicyList"),
    }
}

fn watch_line(event: &Value) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}

/// The ERROR event the API server sends when a watch asks for a version
/// that etcd has compacted away.
fn expired_line(asked: u64, oldest: u64) -> Bytes {
    watch_line(&json!({
        "type": "ERROR",
        "object": status_json(
            410,
            "Expired",
            &format!("too old resource version: {asked} ({oldest})"),
        ),
    }))
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn status_response(status: StatusCode, reason: &str, message: &str) -> Response<MockBody> {
    json_response(status, &status_json(status.as_u16(), reason, message))
}

fn json_response(status: StatusCode, body: &Value) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed())
        .unwrap()
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
    let (api, client) = FakeApi::start();
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
        let requests = api.requests(path);
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
    let (api, client) = FakeApi::start();
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
    let (api, client) = FakeApi::start();
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
    let requests = api.requests(PODS);
    let watch = requests.iter().rfind(|seen| seen.is_watch()).unwrap();
    assert_eq!(watch.param("resourceVersion"), Some(relisted_at.as_str()));

    drop(receiver);
    source.abort();
}

#[tokio::test(start_paused = true)]
async fn api_errors_back_off_and_keep_the_last_snapshot() {
    let (api, client) = FakeApi::start();
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

const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
users:
- name: agent
  user:
    token: not-a-real-token
contexts:
- name: lab
  context: {cluster: lab, user: agent}
current-context: lab
";

#[tokio::test]
async fn a_client_comes_from_a_kubeconfig_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, KUBECONFIG).unwrap();
    let client = client(Some(&path)).await.unwrap();
    assert_eq!(client.default_namespace(), "default");
}

#[tokio::test]
async fn a_missing_kubeconfig_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let Err(error) = client(Some(&path)).await else {
        panic!("a client from a file that does not exist");
    };
    assert!(matches!(&error, KubeSourceError::Kubeconfig { path: named, .. } if *named == path));
    assert!(error.to_string().contains("absent"), "{error}");
}
