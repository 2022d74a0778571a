// A fake Kubernetes API server behind kube's mock service
// (tower_test::mock), for the tests of every Kubernetes source. It answers
// the way the real one does where our code can tell: a cluster-wide
// resourceVersion bumped per change, lists with it (in pages when a limit
// is asked for, as kube's watcher does: 500 objects a page, each page a
// request), watches replayed from the version asked for, 410 Gone below
// the compacted version, GET, POST
// (409 when the name is taken), PUT, PATCH (merge semantics, RFC 7386, for
// every patch type; server-side apply creates a missing object) and DELETE
// of single objects and of their `/status` subresource. A test can hold
// lists, fail requests and expire watches, so the order of events is the
// test's, not the scheduler's; every request is recorded for assertions.
// Not modelled: field managers (two appliers of one list both "own" it),
// label and field selectors, admission.

#![allow(clippy::unwrap_used)] // test support: a poisoned lock is a failed test

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tower_test::mock::SendResponse;

type MockBody = BoxBody<Bytes, Infallible>;

/// How long `wait_for_requests` waits (virtual time on a paused clock: it
/// passes only while nothing else can happen). Generous: kube's backoff
/// after an error starts at 0.8 s with jitter.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A kind the fake serves.
#[derive(Debug, Clone, Copy)]
pub struct FakeKind {
    /// The collection over all namespaces, e.g. "/api/v1/pods" or
    /// "/apis/podroute.io/v1/bgppeers".
    pub path: &'static str,
    /// e.g. "v1", "podroute.io/v1".
    pub api_version: &'static str,
    /// e.g. "Pod".
    pub kind: &'static str,
    pub namespaced: bool,
}

impl FakeKind {
    pub const NODES: FakeKind = FakeKind::cluster("/api/v1/nodes", "v1", "Node");
    pub const NAMESPACES: FakeKind = FakeKind::cluster("/api/v1/namespaces", "v1", "Namespace");
    pub const PODS: FakeKind = FakeKind::namespaced("/api/v1/pods", "v1", "Pod");
    pub const SECRETS: FakeKind = FakeKind::namespaced("/api/v1/secrets", "v1", "Secret");
    pub const NETWORK_POLICIES: FakeKind = FakeKind::namespaced(
        "/apis/networking.k8s.io/v1/networkpolicies",
        "networking.k8s.io/v1",
        "NetworkPolicy",
    );

    pub const fn cluster(
        path: &'static str,
        api_version: &'static str,
        kind: &'static str,
    ) -> Self {
        FakeKind {
            path,
            api_version,
            kind,
            namespaced: false,
        }
    }

    pub const fn namespaced(
        path: &'static str,
        api_version: &'static str,
        kind: &'static str,
    ) -> Self {
        FakeKind {
            path,
            api_version,
            kind,
            namespaced: true,
        }
    }

    /// "/api/v1" of "/api/v1/pods", and "pods".
    fn split(&self) -> (&'static str, &'static str) {
        self.path.rsplit_once('/').unwrap_or(("", self.path))
    }
}

impl std::fmt::Display for FakeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    /// The body, when it was JSON (apply patches are sent as JSON too).
    pub body: Option<Value>,
}

impl Seen {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    pub fn is_watch(&self) -> bool {
        self.param("watch") == Some("true")
    }

    pub fn is_list(&self) -> bool {
        self.method == Method::GET && !self.is_watch()
    }
}

/// One kind's objects and watches.
#[derive(Default)]
struct Collection {
    /// By (namespace, name); namespace "" for cluster-scoped kinds.
    objects: BTreeMap<(String, String), Value>,
    /// Every change as a watch line, with its resourceVersion and
    /// namespace, for watches that start from an older version.
    changes: Vec<(u64, String, Bytes)>,
    /// A watch from a version below this one gets 410 Gone.
    compacted: u64,
    /// Open watches, each with the namespace it is limited to.
    watches: Vec<(Option<String>, mpsc::UnboundedSender<Bytes>)>,
    /// The resourceVersion of each list answered (its first page).
    lists_answered: Vec<u64>,
    /// Lists wait while this is set.
    held: bool,
}

/// Requests to answer with an error instead.
struct Failure {
    method: Method,
    /// Matches paths starting with this.
    path: String,
    /// Watches are never failed by a GET failure: lists are.
    remaining: usize,
    code: StatusCode,
}

#[derive(Default)]
struct ServerState {
    /// The cluster-wide resourceVersion, as etcd's revision.
    version: u64,
    kinds: Vec<FakeKind>,
    collections: BTreeMap<&'static str, Collection>,
    requests: Vec<Seen>,
    failures: Vec<Failure>,
}

/// Which object or collection a request path names.
struct Target {
    kind: FakeKind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<ServerState>>,
    /// Bumped on every request, so a test can wait for one.
    requests_seen: Arc<watch::Sender<usize>>,
    /// Wakes lists waiting on `held`.
    released: Arc<Notify>,
}

impl FakeApi {
    /// A fake API server task serving `kinds`, and a client that talks to
    /// it (default namespace "default").
    pub fn start(kinds: &[FakeKind]) -> (FakeApi, Client) {
        let mut state = ServerState {
            kinds: kinds.to_vec(),
            ..ServerState::default()
        };
        for kind in kinds {
            state.collections.insert(kind.path, Collection::default());
        }
        let api = FakeApi {
            state: Arc::new(Mutex::new(state)),
            requests_seen: Arc::new(watch::channel(0).0),
            released: Arc::new(Notify::new()),
        };
        let (service, mut handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<MockBody>>();
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

    /// Creates or replaces an object, as another client would (ADDED or
    /// MODIFIED on the watches). Returns it with its resourceVersion.
    pub fn put(&self, kind: FakeKind, object: Value) -> Value {
        let mut state = self.state.lock().unwrap();
        state.store(kind.path, object)
    }

    /// Deletes an object, as another client would. Panics if absent.
    pub fn delete(&self, kind: FakeKind, namespace: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        let removed = state.remove(kind.path, namespace, name);
        assert!(
            removed.is_some(),
            "{} {namespace}/{name} to delete is absent",
            kind.kind
        );
    }

    /// The object as stored now.
    pub fn object(&self, kind: FakeKind, namespace: &str, name: &str) -> Option<Value> {
        let state = self.state.lock().unwrap();
        let key = (namespace.to_owned(), name.to_owned());
        state.collections[kind.path].objects.get(&key).cloned()
    }

    /// Every object of `kind` as stored now.
    pub fn objects(&self, kind: FakeKind) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state.collections[kind.path]
            .objects
            .values()
            .cloned()
            .collect()
    }

    /// Lists of `kind` wait while `held`.
    pub fn hold_lists(&self, kind: FakeKind, held: bool) {
        self.state
            .lock()
            .unwrap()
            .collections
            .get_mut(kind.path)
            .unwrap()
            .held = held;
        self.released.notify_waiters();
    }

    /// The next `count` lists of `kind` answer 500.
    pub fn fail_lists(&self, kind: FakeKind, count: usize) {
        self.fail_requests(
            Method::GET,
            kind.path,
            count,
            StatusCode::INTERNAL_SERVER_ERROR,
        );
    }

    /// The next `count` requests with `method` whose path starts with
    /// `path` answer `code` (GET failures hit lists and gets, not watches).
    pub fn fail_requests(&self, method: Method, path: &str, count: usize, code: StatusCode) {
        self.state.lock().unwrap().failures.push(Failure {
            method,
            path: path.to_owned(),
            remaining: count,
            code,
        });
    }

    /// Ends every open watch of `kind` with 410 Gone and forgets the
    /// changes so far, as when etcd compacts: the client must list again.
    pub fn expire_watches(&self, kind: FakeKind) {
        let mut state = self.state.lock().unwrap();
        let version = state.version;
        let collection = state.collections.get_mut(kind.path).unwrap();
        for (_, lines) in collection.watches.drain(..) {
            let _ = lines.send(expired_line(version, version));
        }
        collection.changes.clear();
        collection.compacted = version;
    }

    /// Every request whose path is `path` (exactly).
    pub fn requests(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        let requests = state.requests.iter();
        requests.filter(|seen| seen.path == path).cloned().collect()
    }

    /// Every request received, in order.
    pub fn all_requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The resourceVersion of each list of `kind` answered (the first
    /// page of a paged list).
    pub fn lists_answered(&self, kind: FakeKind) -> Vec<u64> {
        self.state.lock().unwrap().collections[kind.path]
            .lists_answered
            .clone()
    }

    /// Lists of `kind` over all namespaces asked for.
    pub fn lists(&self, kind: FakeKind) -> usize {
        self.requests(kind.path)
            .iter()
            .filter(|seen| seen.is_list())
            .count()
    }

    /// Watches of `kind` over all namespaces asked for.
    pub fn watches(&self, kind: FakeKind) -> usize {
        self.requests(kind.path)
            .iter()
            .filter(|seen| seen.is_watch())
            .count()
    }

    /// Waits until `done` holds of the fake (checked after each request).
    /// Panics, listing the requests, after [`DEADLINE`].
    pub async fn wait_for_requests(&self, what: &str, done: impl Fn(&FakeApi) -> bool) {
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

    async fn serve(
        self,
        request: Request<kube::client::Body>,
        respond: SendResponse<Response<MockBody>>,
    ) {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let seen = seen(&parts.method, &parts.uri, &parts.headers, &body);
        self.state.lock().unwrap().requests.push(seen.clone());
        self.requests_seen.send_modify(|count| *count += 1);
        let response = self.answer(&seen).await;
        respond.send_response(response);
    }

    async fn answer(&self, seen: &Seen) -> Response<MockBody> {
        let target = self.state.lock().unwrap().target(&seen.path);
        let Some(target) = target else {
            return status_response(StatusCode::NOT_FOUND, "NotFound", &seen.path);
        };
        if !seen.is_watch()
            && let Some(code) = self.state.lock().unwrap().injected_failure(seen)
        {
            return status_response(code, "InternalError", "injected failure");
        }
        match (&seen.method, &target.name) {
            (&Method::GET, None) if seen.is_watch() => self.watch(&target, seen),
            (&Method::GET, None) => self.list(&target, seen).await,
            (&Method::POST, None) => self.state.lock().unwrap().create(&target, seen),
            (&Method::GET, Some(name)) => {
                let state = self.state.lock().unwrap();
                let key = (target.namespace.clone().unwrap_or_default(), name.clone());
                match state.collections[target.kind.path].objects.get(&key) {
                    Some(object) => json_response(StatusCode::OK, object),
                    None => not_found(&target.kind, name),
                }
            }
            (&Method::PUT, Some(name)) | (&Method::PATCH, Some(name)) => {
                self.state.lock().unwrap().update(&target, name, seen)
            }
            (&Method::DELETE, Some(name)) => {
                let mut state = self.state.lock().unwrap();
                let namespace = target.namespace.clone().unwrap_or_default();
                match state.remove(target.kind.path, &namespace, name) {
                    Some(object) => json_response(StatusCode::OK, &object),
                    None => not_found(&target.kind, name),
                }
            }
            _ => status_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{} {}", seen.method, seen.path),
            ),
        }
    }

    /// A list, or one page of it when `limit` is asked for. Every page
    /// carries the first page's resourceVersion and the next page starts
    /// after the last key of the one before, in the objects as they are
    /// when it is asked for: an object changed between two pages may be
    /// listed as it was or as it is, and the watch from the list's version
    /// replays the change either way (as with the real API server, whose
    /// later pages are read at the first page's version). A continue token
    /// from before the compacted version gets 410 Gone.
    async fn list(&self, target: &Target, seen: &Seen) -> Response<MockBody> {
        let limit = seen
            .param("limit")
            .and_then(|limit| limit.parse::<usize>().ok())
            .filter(|limit| *limit > 0);
        let resume = match seen.param("continue").filter(|token| !token.is_empty()) {
            None => None,
            Some(token) => match Continue::decode(token) {
                Some(resume) => Some(resume),
                None => {
                    return status_response(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "invalid continue token",
                    );
                }
            },
        };
        loop {
            // Registered before the check, so a release in between wakes it.
            let released = self.released.notified();
            {
                let mut state = self.state.lock().unwrap();
                let current = state.version;
                let collection = state.collections.get_mut(target.kind.path).unwrap();
                if !collection.held {
                    let (version, after) = match &resume {
                        Some(resume) if resume.version < collection.compacted => {
                            return status_response(
                                StatusCode::GONE,
                                "Expired",
                                "The provided continue parameter is too old",
                            );
                        }
                        Some(resume) => (resume.version, Some(&resume.after)),
                        None => {
                            collection.lists_answered.push(current);
                            (current, None)
                        }
                    };
                    let range = match after {
                        Some(key) => collection
                            .objects
                            .range((Bound::Excluded(key.clone()), Bound::Unbounded)),
                        None => collection.objects.range::<(String, String), _>(..),
                    };
                    let mut items: Vec<(&(String, String), &Value)> = range
                        .filter(|((namespace, _), _)| {
                            target
                                .namespace
                                .as_ref()
                                .is_none_or(|want| want == namespace)
                        })
                        .take(limit.map_or(usize::MAX, |limit| limit.saturating_add(1)))
                        .collect();
                    let mut metadata = json!({"resourceVersion": version.to_string()});
                    if let Some(limit) = limit
                        && items.len() > limit
                    {
                        items.truncate(limit);
                        if let Some((key, _)) = items.last() {
                            let next = Continue {
                                version,
                                after: (*key).clone(),
                            };
                            metadata["continue"] = json!(next.encode());
                        }
                    }
                    // Serialized from the stored objects, not from a copy
                    // of them: a page of a big cluster is megabytes.
                    let list = ListBody {
                        api_version: target.kind.api_version,
                        kind: format!("{}List", target.kind.kind),
                        metadata,
                        items: items.into_iter().map(|(_, object)| object).collect(),
                    };
                    return json_response(StatusCode::OK, &list);
                }
            }
            released.await;
        }
    }

    fn watch(&self, target: &Target, seen: &Seen) -> Response<MockBody> {
        let Some(from) = seen
            .param("resourceVersion")
            .and_then(|version| version.parse::<u64>().ok())
        else {
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no resourceVersion");
        };
        let (lines, receiver) = mpsc::unbounded_channel();
        let mut state = self.state.lock().unwrap();
        let collection = state.collections.get_mut(target.kind.path).unwrap();
        if from < collection.compacted {
            // The stream ends after the error, as the API server's does.
            let _ = lines.send(expired_line(from, collection.compacted));
        } else {
            for (version, namespace, line) in &collection.changes {
                let wanted = target
                    .namespace
                    .as_ref()
                    .is_none_or(|want| want == namespace);
                if *version > from && wanted {
                    let _ = lines.send(line.clone());
                }
            }
            collection.watches.push((target.namespace.clone(), lines));
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
}

impl ServerState {
    fn target(&self, path: &str) -> Option<Target> {
        for kind in &self.kinds {
            let (prefix, plural) = kind.split();
            if path == kind.path {
                return Some(Target {
                    kind: *kind,
                    namespace: None,
                    name: None,
                    status: false,
                });
            }
            // {prefix}/namespaces/{ns}/{plural}[/{name}[/status]] for a
            // namespaced kind, {prefix}/{plural}/{name}[/status] otherwise.
            let (namespace, rest) = if kind.namespaced {
                let Some(rest) = path.strip_prefix(&format!("{prefix}/namespaces/")) else {
                    continue;
                };
                let Some((namespace, rest)) = rest.split_once('/') else {
                    continue;
                };
                (Some(namespace.to_owned()), rest)
            } else {
                let Some(rest) = path.strip_prefix(&format!("{prefix}/")) else {
                    continue;
                };
                (None, rest)
            };
            let mut parts = rest.split('/');
            if parts.next() != Some(plural) {
                continue;
            }
            let name = parts.next().map(str::to_owned);
            let status = match parts.next() {
                None => false,
                Some("status") if name.is_some() => true,
                Some(_) => continue,
            };
            if parts.next().is_some() || (namespace.is_none() && name.is_none()) {
                continue;
            }
            return Some(Target {
                kind: *kind,
                namespace,
                name,
                status,
            });
        }
        None
    }

    fn injected_failure(&mut self, seen: &Seen) -> Option<StatusCode> {
        let failure = self.failures.iter_mut().find(|failure| {
            failure.remaining > 0
                && failure.method == seen.method
                && seen.path.starts_with(&failure.path)
        })?;
        failure.remaining -= 1;
        Some(failure.code)
    }

    /// Stores `object` with a new resourceVersion (and a uid and creation
    /// time when new); ADDED or MODIFIED on the watches.
    fn store(&mut self, path: &'static str, mut object: Value) -> Value {
        self.version += 1;
        let version = self.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = key(&object);
        let collection = self.collections.get_mut(path).unwrap();
        let previous = collection.objects.get(&key);
        if let Some(previous) = previous {
            for field in ["uid", "creationTimestamp"] {
                if object["metadata"].get(field).is_none()
                    && let Some(value) = previous["metadata"].get(field)
                {
                    object["metadata"][field] = value.clone();
                }
            }
        } else {
            if object["metadata"].get("uid").is_none() {
                object["metadata"]["uid"] = json!(format!("uid-{}-{}-{version}", key.0, key.1));
            }
            if object["metadata"].get("creationTimestamp").is_none() {
                object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
        }
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        collection.objects.insert(key.clone(), object.clone());
        collection.change(version, &key.0, kind, object.clone());
        object
    }

    fn remove(&mut self, path: &'static str, namespace: &str, name: &str) -> Option<Value> {
        let collection = self.collections.get_mut(path).unwrap();
        let mut object = collection
            .objects
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        self.version += 1;
        let version = self.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let collection = self.collections.get_mut(path).unwrap();
        collection.change(version, namespace, "DELETED", object.clone());
        Some(object)
    }

    fn create(&mut self, target: &Target, seen: &Seen) -> Response<MockBody> {
        let Some(mut object) = seen.body.clone().filter(Value::is_object) else {
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no JSON object");
        };
        if let Some(namespace) = &target.namespace {
            object["metadata"]["namespace"] = json!(namespace);
        }
        let key = key(&object);
        if key.1.is_empty() {
            return status_response(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "no name");
        }
        if self.collections[target.kind.path]
            .objects
            .contains_key(&key)
        {
            return status_response(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} {:?} already exists", target.kind.kind, key.1),
            );
        }
        let stored = self.store(target.kind.path, object);
        json_response(StatusCode::CREATED, &stored)
    }

    /// PUT replaces (the status only, on /status), with a resourceVersion
    /// check when the body has one; PATCH merges (the status only, on
    /// /status). A server-side apply of a missing object creates it.
    fn update(&mut self, target: &Target, name: &str, seen: &Seen) -> Response<MockBody> {
        let Some(body) = seen.body.clone().filter(Value::is_object) else {
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no JSON object");
        };
        let namespace = target.namespace.clone().unwrap_or_default();
        let key = (namespace.clone(), name.to_owned());
        let current = self.collections[target.kind.path]
            .objects
            .get(&key)
            .cloned();
        let apply = seen.content_type.as_deref() == Some("application/apply-patch+yaml");
        let Some(current) = current else {
            if apply && !target.status {
                let mut object = body;
                object["metadata"]["name"] = json!(name);
                if target.namespace.is_some() {
                    object["metadata"]["namespace"] = json!(namespace);
                }
                let stored = self.store(target.kind.path, object);
                return json_response(StatusCode::CREATED, &stored);
            }
            return not_found(&target.kind, name);
        };
        let updated = if seen.method == Method::PUT {
            let asked = body["metadata"]["resourceVersion"].as_str();
            if asked
                .is_some_and(|asked| Some(asked) != current["metadata"]["resourceVersion"].as_str())
            {
                return status_response(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
            if target.status {
                let mut object = current;
                object["status"] = body.get("status").cloned().unwrap_or(Value::Null);
                object
            } else {
                let mut object = body;
                object["metadata"]["name"] = json!(name);
                object
            }
        } else if seen
            .content_type
            .as_deref()
            .is_some_and(|t| t == "application/json-patch+json")
        {
            return status_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the fake does not do JSON patches",
            );
        } else if target.status {
            let mut object = current;
            if let Some(status) = body.get("status") {
                merge(&mut object["status"], status);
            }
            object
        } else {
            let mut object = current;
            merge(&mut object, &body);
            object
        };
        let stored = self.store(target.kind.path, updated);
        json_response(StatusCode::OK, &stored)
    }
}

impl Collection {
    /// Records a change and sends it to the open watches.
    fn change(&mut self, version: u64, namespace: &str, kind: &str, object: Value) {
        let line = watch_line(&json!({"type": kind, "object": object}));
        self.changes
            .push((version, namespace.to_owned(), line.clone()));
        self.watches.retain(|(limited_to, lines)| {
            if limited_to.as_ref().is_some_and(|want| want != namespace) {
                return !lines.is_closed();
            }
            lines.send(line.clone()).is_ok()
        });
    }
}

/// Where the next page of a list starts: after `after`, at `version`.
/// Encoded in hex, so the token needs no escaping in a query.
struct Continue {
    version: u64,
    after: (String, String),
}

impl Continue {
    fn encode(&self) -> String {
        let (namespace, name) = &self.after;
        let text = format!("{}/{namespace}/{name}", self.version);
        text.bytes().map(|byte| format!("{byte:02x}")).collect()
    }

    fn decode(token: &str) -> Option<Continue> {
        let bytes = (0..token.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(token.get(at..at + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '/');
        let version = parts.next()?.parse().ok()?;
        let namespace = parts.next()?.to_owned();
        let name = parts.next()?.to_owned();
        Some(Continue {
            version,
            after: (namespace, name),
        })
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (name, value) in fields {
        if value.is_null() {
            if let Some(object) = target.as_object_mut() {
                object.remove(name);
            }
        } else {
            merge(&mut target[name], value);
        }
    }
}

fn seen(method: &Method, uri: &Uri, headers: &http::HeaderMap, body: &[u8]) -> Seen {
    let query = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    Seen {
        method: method.clone(),
        path: uri.path().to_owned(),
        query,
        content_type: headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(body).ok(),
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

fn not_found(kind: &FakeKind, name: &str) -> Response<MockBody> {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} {name:?} not found", kind.kind),
    )
}

fn status_response(status: StatusCode, reason: &str, message: &str) -> Response<MockBody> {
    json_response(status, &status_json(status.as_u16(), reason, message))
}

/// A list as the API server sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListBody<'a> {
    api_version: &'static str,
    kind: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response<MockBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())).boxed())
        .unwrap()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Secret};
    use kube::api::{ListParams, Patch, PatchParams, PostParams};
    use kube::{Api, ResourceExt};

    use super::*;

    fn node(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    }

    #[tokio::test]
    async fn objects_are_created_read_patched_and_deleted() {
        let (api, client) = FakeApi::start(&[FakeKind::NODES, FakeKind::SECRETS]);
        api.put(FakeKind::NODES, node("n1"));
        let nodes: Api<Node> = Api::all(client.clone());
        let n1 = nodes.get("n1").await.unwrap();
        assert_eq!(n1.metadata.resource_version.as_deref(), Some("1"));
        assert!(nodes.get("n2").await.is_err());

        let patch = json!({"metadata": {"labels": {"rack": "r1"}}});
        let patched = nodes
            .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        assert_eq!(patched.metadata.labels.unwrap()["rack"], "r1");
        let seen = api.requests("/api/v1/nodes/n1");
        assert_eq!(seen.last().unwrap().method, Method::PATCH);
        assert_eq!(
            seen.last().unwrap().content_type.as_deref(),
            Some("application/merge-patch+json")
        );

        let secrets: Api<Secret> = Api::namespaced(client, "system");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "tls"}, "data": {"ca.crt": "Y2E="}
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let again = secrets.create(&PostParams::default(), &secret).await;
        assert!(
            matches!(again, Err(kube::Error::Api(ref status)) if status.code == 409),
            "{again:?}"
        );
        assert!(api.object(FakeKind::SECRETS, "system", "tls").is_some());
        secrets.delete("tls", &Default::default()).await.unwrap();
        assert!(api.object(FakeKind::SECRETS, "system", "tls").is_none());
    }

    #[tokio::test]
    async fn lists_are_paged_at_the_first_pages_version() {
        let (api, client) = FakeApi::start(&[FakeKind::NODES]);
        for name in ["n1", "n2", "n3", "n4", "n5"] {
            api.put(FakeKind::NODES, node(name));
        }
        let nodes: Api<Node> = Api::all(client);
        let mut params = ListParams::default().limit(2);
        let mut names = Vec::new();
        let mut versions = Vec::new();
        loop {
            let page = nodes.list(&params).await.unwrap();
            assert!(page.items.len() <= 2);
            names.extend(page.items.iter().map(|node| node.name_any()));
            versions.push(page.metadata.resource_version.clone().unwrap());
            // A change between pages: not in this list's version.
            api.put(FakeKind::NODES, node("n0"));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        assert_eq!(names, ["n1", "n2", "n3", "n4", "n5"]);
        assert_eq!(versions, ["5", "5", "5"]);
        assert_eq!(api.lists_answered(FakeKind::NODES), [5]);

        let first = nodes.list(&ListParams::default().limit(2)).await.unwrap();
        let token = first.metadata.continue_.unwrap();
        api.put(FakeKind::NODES, node("n6"));
        api.expire_watches(FakeKind::NODES);
        let expired = nodes
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await;
        assert!(
            matches!(expired, Err(kube::Error::Api(ref status)) if status.code == 410),
            "{expired:?}"
        );
        let whole = nodes.list(&ListParams::default()).await.unwrap();
        assert_eq!(whole.items.len(), 7);
        assert_eq!(whole.metadata.continue_, None);
    }

    #[tokio::test]
    async fn injected_failures_answer_the_code_given() {
        let (api, client) = FakeApi::start(&[FakeKind::NODES]);
        api.put(FakeKind::NODES, node("n1"));
        api.fail_requests(
            Method::GET,
            "/api/v1/nodes/n1",
            1,
            StatusCode::SERVICE_UNAVAILABLE,
        );
        let nodes: Api<Node> = Api::all(client);
        let failed = nodes.get("n1").await;
        assert!(
            matches!(failed, Err(kube::Error::Api(ref status)) if status.code == 503),
            "{failed:?}"
        );
        assert!(nodes.get("n1").await.is_ok());
    }
}
