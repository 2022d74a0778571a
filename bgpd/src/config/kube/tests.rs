// The cluster source and the BGPPeer status writer against a fake API
// server behind kube's mock service (podroute_k8s::fake): realistic lists
// and watches (a resourceVersion per change, 410 Gone after compaction),
// held and failing requests, every request recorded. On a paused clock:
// the only timers are the debounce, the status tick and kube's backoff,
// and tokio moves time on only when every task is idle, so no outcome
// depends on the machine's speed.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use http::{Method, StatusCode};
use podroute_k8s::fake::{DEADLINE, FakeApi, FakeKind};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::status::{Session, Sessions, StatusWriter};
use super::*;
use crate::config::parse_for;
use crate::session::State;

const NODES: FakeKind = FakeKind::NODES;
const CONFIGURATIONS: FakeKind = FakeKind::cluster(
    "/apis/podroute.io/v1/bgpconfigurations",
    "podroute.io/v1",
    "BGPConfiguration",
);
const PEERS: FakeKind =
    FakeKind::cluster("/apis/podroute.io/v1/bgppeers", "podroute.io/v1", "BGPPeer");
const ALL: [FakeKind; 3] = [NODES, CONFIGURATIONS, PEERS];

/// Lets the source, the writer and the fake handle all they were sent and
/// every timer due within a few seconds (the debounce, the status tick)
/// fire. How a test sees that something did *not* happen.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

// Objects as the API server returns them, with fields the source drops.

fn node(name: &str, addresses: &[&str], labels: Value, annotations: Value) -> Value {
    let mut listed = vec![json!({"type": "Hostname", "address": name})];
    listed.extend(
        addresses
            .iter()
            .map(|a| json!({"type": "InternalIP", "address": a})),
    );
    let mut annotations = annotations;
    annotations["node.alpha.kubernetes.io/ttl"] = json!("0");
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": annotations,
            "managedFields": [{"manager": "kubelet", "operation": "Update"}],
        },
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": listed,
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0"},
        },
    })
}

fn configuration(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "podroute.io/v1",
        "kind": "BGPConfiguration",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn bgp_peer(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "podroute.io/v1",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Three nodes in two racks, an AS per rack (annotations on n1 and n2,
/// a label on n3), and a ToR per rack picked by nodeSelector.
fn racks(api: &FakeApi) {
    let rack = |r: &str, asn: &str| json!({"rack": r, "podroute.io/as-number": asn});
    api.put(
        NODES,
        node(
            "n1",
            &["10.0.0.1"],
            json!({"rack": "r1"}),
            json!({"podroute.io/as-number": "65101"}),
        ),
    );
    api.put(
        NODES,
        node(
            "n2",
            &["10.0.0.2"],
            json!({"rack": "r1"}),
            json!({"podroute.io/as-number": "65101"}),
        ),
    );
    api.put(
        NODES,
        node("n3", &["10.0.0.3"], rack("r2", "65102"), json!({})),
    );
    api.put(
        CONFIGURATIONS,
        configuration("default", json!({"asNumber": 65000})),
    );
    api.put(
        PEERS,
        bgp_peer(
            "tor-r1",
            json!({"nodeSelector": "rack=r1", "peerIP": "10.0.1.254", "asNumber": 65201}),
        ),
    );
    api.put(
        PEERS,
        bgp_peer(
            "tor-r2",
            json!({"nodeSelector": "rack=r2", "peerIP": "10.0.2.254", "asNumber": 65202}),
        ),
    );
}

/// The same cluster as a file's documents, for the file path's result.
const RACKS_FILE: &str = "\
apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 65000}
---
apiVersion: podroute.io/v1
kind: Node
metadata: {name: n1, labels: {rack: r1}, annotations: {podroute.io/as-number: \"65101\"}}
spec: {addresses: [10.0.0.1]}
---
apiVersion: podroute.io/v1
kind: Node
metadata: {name: n2, labels: {rack: r1}, annotations: {podroute.io/as-number: \"65101\"}}
spec: {addresses: [10.0.0.2]}
---
apiVersion: podroute.io/v1
kind: Node
metadata: {name: n3, labels: {rack: r2, podroute.io/as-number: \"65102\"}}
spec: {addresses: [10.0.0.3]}
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {name: tor-r1}
spec: {nodeSelector: rack=r1, peerIP: 10.0.1.254, asNumber: 65201}
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {name: tor-r2}
spec: {nodeSelector: rack=r2, peerIP: 10.0.2.254, asNumber: 65202}
";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn addresses(config: &Config) -> Vec<IpAddr> {
    config.peers.keys().copied().collect()
}

type Receiver = watch::Receiver<SourceState>;

/// The source for `node` against the fake, publishing on the receiver.
fn start(client: Client, node: &str) -> (Receiver, Store<DynamicObject>) {
    let (tx, receiver) = watch::channel(SourceState::default());
    let source = Source::new(client, node);
    let peers = source.peers();
    tokio::spawn(source.run(tx));
    (receiver, peers)
}

/// Waits until the published state satisfies `done`.
async fn wait_for(
    receiver: &mut Receiver,
    what: &str,
    done: impl Fn(&SourceState) -> bool,
) -> SourceState {
    let waited = tokio::time::timeout(DEADLINE, receiver.wait_for(|state| done(state)))
        .await
        .map(|found| found.map(|state| state.clone()));
    match waited {
        Ok(Ok(state)) => state,
        Ok(Err(_closed)) => panic!("{what}: the source dropped its sender"),
        Err(_elapsed) => panic!(
            "{what}: not within {DEADLINE:?}; published: {:#?}",
            receiver.borrow()
        ),
    }
}

async fn wait_for_config(
    receiver: &mut Receiver,
    what: &str,
    done: impl Fn(&ClusterConfig) -> bool,
) -> Arc<ClusterConfig> {
    let state = wait_for(receiver, what, |state| {
        state.config.as_deref().is_some_and(&done)
    })
    .await;
    state.config.unwrap()
}

fn config_of(state: &SourceState) -> Arc<ClusterConfig> {
    state.config.clone().unwrap()
}

#[tokio::test(start_paused = true)]
async fn nodes_configurations_and_peers_resolve_for_this_node() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    let (mut receiver, _) = start(client, "n1");
    let built = wait_for_config(&mut receiver, "n1's configuration", |_| true).await;
    let config = &built.config;

    // n1's AS is its rack's, its router ID its InternalIP; mesh sessions
    // to n2 (iBGP, same rack AS) and n3 (eBGP), the r1 ToR and not r2's.
    assert_eq!(config.bgp.as_number, 65101);
    assert_eq!(config.bgp.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        addresses(config),
        [ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.1.254")]
    );
    assert_eq!(config.peers[&ip("10.0.0.2")].name, "mesh-n2");
    assert_eq!(config.peers[&ip("10.0.0.2")].as_number, 65101);
    assert_eq!(config.peers[&ip("10.0.0.3")].as_number, 65102);
    assert_eq!(config.peers[&ip("10.0.1.254")].as_number, 65201);
    assert_eq!(
        built.peer_objects,
        BTreeMap::from([(ip("10.0.1.254"), "tor-r1".to_owned())])
    );
    // Exactly what the same resources give as a file.
    let from_file = parse_for(RACKS_FILE, "racks.yaml", Some("n1"), |_: &Path| {
        Err(std::io::Error::other("no files"))
    })
    .unwrap();
    assert_eq!(*config, from_file);
    let state = receiver.borrow().clone();
    assert!(
        state.refused.is_empty() && state.unbuilt.is_none(),
        "{state:#?}"
    );

    // n3 gets the r2 ToR, in its own AS.
    let (api3, client3) = FakeApi::start(&ALL);
    racks(&api3);
    let (mut receiver3, _) = start(client3, "n3");
    let n3 = wait_for_config(&mut receiver3, "n3's configuration", |_| true).await;
    assert_eq!(n3.config.bgp.as_number, 65102);
    assert_eq!(
        addresses(&n3.config),
        [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.2.254")]
    );

    // The requests are kube's list-then-watch of each kind, cluster-wide.
    api.wait_for_requests("every kind watched", |api| {
        ALL.iter().all(|kind| api.watches(*kind) == 1)
    })
    .await;
    for kind in ALL {
        let requests = api.requests(kind.path);
        let [list, watch] = &requests[..] else {
            panic!("{kind}: want one list and one watch, got {requests:#?}");
        };
        assert!(list.is_list(), "{list:?}");
        assert!(watch.is_watch(), "{watch:?}");
        let listed_at = api.lists_answered(kind)[0].to_string();
        assert_eq!(watch.param("resourceVersion"), Some(listed_at.as_str()));
    }
    // Reading the cluster is lists and watches only: no gets, no writes.
    let others: Vec<_> = api
        .all_requests()
        .into_iter()
        .filter(|seen| seen.method != Method::GET || !ALL.iter().any(|k| k.path == seen.path))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
}

#[tokio::test(start_paused = true)]
async fn nothing_is_published_until_every_kind_is_listed() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    api.hold_lists(PEERS, true);
    let (mut receiver, _) = start(client, "n1");
    api.wait_for_requests("nodes and configurations watched", |api| {
        api.watches(NODES) == 1 && api.watches(CONFIGURATIONS) == 1 && api.lists(PEERS) == 1
    })
    .await;
    settle().await;
    let state = receiver.borrow().clone();
    assert!(
        state.config.is_none() && state.unbuilt.is_none(),
        "{state:#?}"
    );

    api.hold_lists(PEERS, false);
    let built = wait_for_config(&mut receiver, "the whole cluster", |_| true).await;
    // The first configuration already has the BGPPeer: never a partial one.
    assert!(built.config.peers.contains_key(&ip("10.0.1.254")));
}

#[tokio::test(start_paused = true)]
async fn a_relist_after_410_gone_changes_nothing() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    let (mut receiver, _) = start(client, "n1");
    let first = wait_for_config(&mut receiver, "first configuration", |_| true).await;
    api.wait_for_requests("every kind watched", |api| {
        ALL.iter().all(|kind| api.watches(*kind) == 1)
    })
    .await;
    receiver.borrow_and_update();

    for kind in ALL {
        api.expire_watches(kind);
    }
    api.wait_for_requests("every kind listed and watched again", |api| {
        ALL.iter()
            .all(|kind| api.lists(*kind) == 2 && api.watches(*kind) == 2)
    })
    .await;
    settle().await;
    assert!(
        !receiver.has_changed().unwrap(),
        "published after a relist of an unchanged cluster: {:#?}",
        receiver.borrow()
    );
    assert!(Arc::ptr_eq(&config_of(&receiver.borrow()), &first));

    // The relisted watches still work: a change arrives.
    api.put(
        NODES,
        node("n4", &["10.0.0.4"], json!({"rack": "r9"}), json!({})),
    );
    wait_for_config(&mut receiver, "n4's mesh session", |c| {
        c.config.peers.contains_key(&ip("10.0.0.4"))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_joining_and_leaving_adds_and_removes_its_mesh_peer() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    let (mut receiver, _) = start(client, "n1");
    wait_for_config(&mut receiver, "first configuration", |_| true).await;

    // A node without an address yet is refused until it has one.
    api.put(NODES, node("n4", &[], json!({"rack": "r1"}), json!({})));
    let state = wait_for(&mut receiver, "n4 refused", |s| !s.refused.is_empty()).await;
    assert!(
        state.refused[0].starts_with("Node \"n4\": status.addresses: no InternalIP address"),
        "{:?}",
        state.refused
    );
    api.put(
        NODES,
        node(
            "n4",
            &["10.0.0.4", "fd00::4"],
            json!({"rack": "r1"}),
            json!({}),
        ),
    );
    let joined = wait_for_config(&mut receiver, "n4 joined", |c| {
        c.config.peers.contains_key(&ip("10.0.0.4"))
    })
    .await;
    // n1 has no IPv6 address: one session, over IPv4.
    assert_eq!(joined.config.peers[&ip("10.0.0.4")].name, "mesh-n4");
    assert!(!joined.config.peers.contains_key(&ip("fd00::4")));
    assert!(receiver.borrow().refused.is_empty());

    api.delete(NODES, "", "n2");
    let left = wait_for_config(&mut receiver, "n2 left", |c| {
        !c.config.peers.contains_key(&ip("10.0.0.2"))
    })
    .await;
    assert_eq!(
        addresses(&left.config),
        [ip("10.0.0.3"), ip("10.0.0.4"), ip("10.0.1.254")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_bgppeer_is_refused_and_the_others_apply() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    // Written by a newer CRD; a reserved AS; a second BGPPeer for the r1
    // ToR's address (newer, so it is the one refused); a bad selector.
    api.put(
        PEERS,
        bgp_peer(
            "future",
            json!({"peerIP": "10.0.9.1", "asNumber": 65009, "bgpRole": "provider"}),
        ),
    );
    api.put(
        PEERS,
        bgp_peer("bad-as", json!({"peerIP": "10.0.9.2", "asNumber": 0})),
    );
    let mut twin = bgp_peer(
        "tor-r1-twin",
        json!({"peerIP": "10.0.1.254", "asNumber": 65201}),
    );
    twin["metadata"]["creationTimestamp"] = json!("2026-02-01T00:00:00Z");
    api.put(PEERS, twin);
    api.put(
        PEERS,
        bgp_peer(
            "bad-selector",
            json!({"nodeSelector": "rack in (", "peerIP": "10.0.9.3", "asNumber": 65009}),
        ),
    );
    // An annotation that does not parse takes out its node alone.
    api.put(
        NODES,
        node(
            "n5",
            &["10.0.0.5"],
            json!({}),
            json!({"podroute.io/as-number": "sixty-five"}),
        ),
    );
    let (mut receiver, _) = start(client, "n1");
    let state = wait_for(&mut receiver, "the good objects applied", |s| {
        s.config.is_some()
    })
    .await;
    let config = config_of(&state);
    assert_eq!(
        addresses(&config.config),
        [ip("10.0.0.2"), ip("10.0.0.3"), ip("10.0.1.254")]
    );
    assert_eq!(config.peer_objects[&ip("10.0.1.254")], "tor-r1");
    assert_eq!(state.refused.len(), 5, "{:#?}", state.refused);
    assert_eq!(state.refused_total, 5);
    let refused = |prefix: &str| {
        assert!(
            state.refused.iter().any(|r| r.starts_with(prefix)),
            "no refusal starting {prefix:?} in {:#?}",
            state.refused
        );
    };
    refused("BGPPeer \"future\": spec: unknown field `bgpRole`");
    refused("BGPPeer \"bad-as\": spec.asNumber: AS 0 is reserved");
    refused(
        "BGPPeer \"tor-r1-twin\": spec.peerIP: peer 10.0.1.254 is already defined by BGPPeer \"tor-r1\"",
    );
    refused("BGPPeer \"bad-selector\": spec.nodeSelector: ");
    refused("Node \"n5\": metadata.annotations[\"podroute.io/as-number\"]: ");
    assert!(state.unbuilt.is_none());
    assert!(state.problems().unwrap().contains("bgpRole"));

    // Fixed, it applies; the rest stays refused, and is not counted again.
    api.put(
        PEERS,
        bgp_peer("bad-as", json!({"peerIP": "10.0.9.2", "asNumber": 65009})),
    );
    let state = wait_for(&mut receiver, "bad-as fixed", |s| {
        s.config
            .as_ref()
            .is_some_and(|c| c.config.peers.contains_key(&ip("10.0.9.2")))
    })
    .await;
    assert_eq!(state.refused.len(), 4, "{:#?}", state.refused);
    assert_eq!(state.refused_total, 5);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_bgp_configuration_keeps_the_running_one() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    // Only "default" is read.
    api.put(
        CONFIGURATIONS,
        configuration("other", json!({"asNumber": 64999, "holdTime": 1})),
    );
    let (mut receiver, _) = start(client, "n1");
    let first = wait_for_config(&mut receiver, "first configuration", |_| true).await;
    assert_eq!(first.config.bgp.hold_time, crate::config::DEFAULT_HOLD_TIME);

    api.put(
        CONFIGURATIONS,
        configuration("default", json!({"asNumber": 65000, "holdTime": 2})),
    );
    let state = wait_for(&mut receiver, "refused", |s| s.unbuilt.is_some()).await;
    assert_eq!(
        state.unbuilt.as_deref(),
        Some(
            "BGPConfiguration \"default\": spec.holdTime: 2 is not allowed (0 or at least 3, RFC 4271 §4.2)"
        )
    );
    assert!(Arc::ptr_eq(&config_of(&state), &first));
    assert_eq!(state.refused_total, 1);

    api.delete(CONFIGURATIONS, "", "default");
    let state = wait_for(&mut receiver, "deleted", |s| {
        s.unbuilt
            .as_deref()
            .is_some_and(|u| u.starts_with("no BGPConfiguration"))
    })
    .await;
    assert!(Arc::ptr_eq(&config_of(&state), &first));

    api.put(
        CONFIGURATIONS,
        configuration("default", json!({"asNumber": 65000, "holdTime": 30})),
    );
    let state = wait_for(&mut receiver, "valid again", |s| s.unbuilt.is_none()).await;
    assert_eq!(config_of(&state).config.bgp.hold_time, 30);
}

#[tokio::test(start_paused = true)]
async fn without_a_default_bgp_configuration_or_this_node_nothing_is_built() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    api.delete(CONFIGURATIONS, "", "default");
    let (mut receiver, _) = start(client, "n9");
    let state = wait_for(&mut receiver, "unbuilt", |s| s.unbuilt.is_some()).await;
    assert!(state.config.is_none());
    assert_eq!(
        state.unbuilt.as_deref(),
        Some("no BGPConfiguration named \"default\" (it applies to every node)")
    );
    api.put(
        CONFIGURATIONS,
        configuration("default", json!({"asNumber": 65000})),
    );
    let state = wait_for(&mut receiver, "no such node", |s| {
        s.unbuilt.as_deref().is_some_and(|u| u.contains("n9"))
    })
    .await;
    assert_eq!(
        state.unbuilt.as_deref(),
        Some("no Node named \"n9\" (--node) in the cluster")
    );
    assert!(state.config.is_none());

    // This node without an address: the whole waits, and it is said once.
    api.put(NODES, node("n9", &[], json!({}), json!({})));
    let state = wait_for(&mut receiver, "this node refused", |s| {
        s.unbuilt
            .as_deref()
            .is_some_and(|u| u.starts_with("Node \"n9\""))
    })
    .await;
    assert!(state.refused.is_empty(), "{:#?}", state.refused);
    assert!(state.config.is_none());
    api.put(NODES, node("n9", &["10.0.0.9"], json!({}), json!({})));
    let built = wait_for_config(&mut receiver, "n9 built", |_| true).await;
    assert_eq!(built.config.bgp.router_id, Ipv4Addr::new(10, 0, 0, 9));
}

#[tokio::test(start_paused = true)]
async fn a_node_with_this_nodes_router_id_is_refused_not_this_node() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    // n2 claims n1's router ID in n1's AS: they could never peer.
    api.put(
        NODES,
        node(
            "n2",
            &["10.0.0.2"],
            json!({"rack": "r1"}),
            json!({"podroute.io/as-number": "65101", "podroute.io/router-id": "10.0.0.1"}),
        ),
    );
    let (mut receiver, _) = start(client, "n1");
    let state = wait_for(&mut receiver, "built without n2", |s| s.config.is_some()).await;
    assert_eq!(
        addresses(&config_of(&state).config),
        [ip("10.0.0.3"), ip("10.0.1.254")]
    );
    assert_eq!(state.refused.len(), 1, "{:#?}", state.refused);
    assert!(
        state.refused[0].starts_with("Node \"n2\": "),
        "{:?}",
        state.refused
    );
}

#[tokio::test(start_paused = true)]
async fn api_errors_back_off_and_keep_the_state() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    let (mut receiver, _) = start(client, "n1");
    let first = wait_for_config(&mut receiver, "first configuration", |_| true).await;
    api.wait_for_requests("peers watched", |api| api.watches(PEERS) == 1)
        .await;
    receiver.borrow_and_update();

    // The watch expires and three relists fail: kube backs off between
    // them, and nothing changes meanwhile.
    api.fail_lists(PEERS, 3);
    api.expire_watches(PEERS);
    api.wait_for_requests("relisted after the failures", |api| {
        api.lists(PEERS) == 5 && api.watches(PEERS) == 2
    })
    .await;
    settle().await;
    assert!(!receiver.has_changed().unwrap(), "{:#?}", receiver.borrow());
    assert!(Arc::ptr_eq(&config_of(&receiver.borrow()), &first));

    // The three failed lists were spread out by the backoff.
    let lists: Vec<_> = api
        .requests(PEERS.path)
        .into_iter()
        .filter(|seen| seen.is_list())
        .collect();
    assert_eq!(lists.len(), 5);

    api.put(
        PEERS,
        bgp_peer("rr", json!({"peerIP": "10.0.5.5", "asNumber": 65101})),
    );
    wait_for_config(&mut receiver, "a change after the errors", |c| {
        c.config.peers.contains_key(&ip("10.0.5.5"))
    })
    .await;
}

// The status writer.

/// Sessions a test sets.
#[derive(Default)]
struct FakeSessions(Mutex<Vec<Session>>);

impl FakeSessions {
    fn set(&self, sessions: Vec<Session>) {
        *self.0.lock().unwrap() = sessions;
    }
}

impl Sessions for FakeSessions {
    fn sessions(&self) -> Vec<Session> {
        self.0.lock().unwrap().clone()
    }
}

/// 2026-01-01T00:00:00Z plus `seconds`.
fn at(seconds: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600 + seconds)
}

fn session(address: &str, state: State, since: u64, accepted: u64) -> Session {
    Session {
        address: ip(address),
        state,
        since: at(since),
        last_error: String::new(),
        prefixes_accepted: accepted,
        prefixes_advertised: 2,
    }
}

const TOR_R1_STATUS: &str = "/apis/podroute.io/v1/bgppeers/tor-r1/status";

/// The source and a status writer for n1, over `sessions`.
fn start_writer(client: Client, sessions: Arc<FakeSessions>) -> Receiver {
    let (receiver, peers) = start(client.clone(), "n1");
    let writer = StatusWriter::new("n1", client, peers, receiver.clone(), sessions);
    tokio::spawn(writer.run(std::future::pending()));
    receiver
}

fn status_writes(api: &FakeApi, path: &str) -> Vec<podroute_k8s::fake::Seen> {
    api.requests(path)
        .into_iter()
        .filter(|seen| seen.method == Method::PATCH)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn this_nodes_sessions_are_applied_to_the_bgppeer_status() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    // n2's entry, written by n2's bgpd, is not ours to send.
    let mut tor = bgp_peer(
        "tor-r1",
        json!({"nodeSelector": "rack=r1", "peerIP": "10.0.1.254", "asNumber": 65201}),
    );
    tor["status"] = json!({"nodes": [
        {"node": "n2", "peerIP": "10.0.1.254", "state": "Active"},
    ]});
    api.put(PEERS, tor);
    let sessions = Arc::new(FakeSessions::default());
    sessions.set(vec![
        session("10.0.1.254", State::Established, 5, 7),
        // A mesh session: no object, no status.
        session("10.0.0.2", State::Established, 6, 3),
    ]);
    let _receiver = start_writer(client, sessions.clone());

    api.wait_for_requests("tor-r1's status applied", |api| {
        !status_writes(api, TOR_R1_STATUS).is_empty()
    })
    .await;
    let writes = status_writes(&api, TOR_R1_STATUS);
    let write = &writes[0];
    assert_eq!(
        write.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(write.param("fieldManager"), Some("podroute-bgpd-n1"));
    assert_eq!(write.param("force"), Some("true"));
    assert_eq!(
        write.body,
        Some(json!({
            "apiVersion": "podroute.io/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "tor-r1"},
            "status": {"nodes": [{
                "node": "n1",
                "peerIP": "10.0.1.254",
                "state": "Established",
                "since": "2026-01-01T00:00:05Z",
                "prefixesAccepted": 7,
                "prefixesAdvertised": 2,
            }]},
        }))
    );
    // Only the BGPPeer that gives n1 sessions is written to.
    settle().await;
    let writes: Vec<_> = api
        .all_requests()
        .into_iter()
        .filter(|seen| seen.method != Method::GET)
        .collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");

    // A state change is applied again, within a tick.
    let mut down = session("10.0.1.254", State::Active, 40, 0);
    down.last_error = "hold timer expired".into();
    sessions.set(vec![down]);
    api.wait_for_requests("the state change applied", |api| {
        status_writes(api, TOR_R1_STATUS).len() == 2
    })
    .await;
    let body = status_writes(&api, TOR_R1_STATUS)[1].body.clone().unwrap();
    assert_eq!(
        body["status"]["nodes"],
        json!([{
            "node": "n1",
            "peerIP": "10.0.1.254",
            "state": "Active",
            "since": "2026-01-01T00:00:40Z",
            "lastError": "hold timer expired",
            "prefixesAccepted": 0,
            "prefixesAdvertised": 2,
        }])
    );
}

#[tokio::test(start_paused = true)]
async fn counts_alone_are_refreshed_at_most_every_refresh_period() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    let sessions = Arc::new(FakeSessions::default());
    sessions.set(vec![session("10.0.1.254", State::Established, 5, 7)]);
    let _receiver = start_writer(client, sessions.clone());
    api.wait_for_requests("first write", |api| {
        status_writes(api, TOR_R1_STATUS).len() == 1
    })
    .await;
    let first = Instant::now();

    // The count changes every second: nothing is written until REFRESH
    // has passed since the last write.
    for accepted in 8..20 {
        sessions.set(vec![session("10.0.1.254", State::Established, 5, accepted)]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep_until(first + status::REFRESH - status::TICK * 2).await;
    assert_eq!(status_writes(&api, TOR_R1_STATUS).len(), 1);
    api.wait_for_requests("the counts refreshed", |api| {
        status_writes(api, TOR_R1_STATUS).len() == 2
    })
    .await;
    let body = status_writes(&api, TOR_R1_STATUS)[1].body.clone().unwrap();
    assert_eq!(body["status"]["nodes"][0]["prefixesAccepted"], json!(19));
    // The written status is what is stored now: nothing more to write.
    tokio::time::sleep(status::REFRESH * 2).await;
    assert_eq!(status_writes(&api, TOR_R1_STATUS).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn entries_of_sessions_this_node_no_longer_has_are_removed() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    // tor-r2 is rack r2's: an entry of n1's on it is left from an earlier
    // run (n1 was in r2 then). Its apply lists no entry of n1's.
    let mut tor = bgp_peer(
        "tor-r2",
        json!({"nodeSelector": "rack=r2", "peerIP": "10.0.2.254", "asNumber": 65202}),
    );
    tor["status"] = json!({"nodes": [
        {"node": "n1", "peerIP": "10.0.2.254", "state": "Established"},
        {"node": "n3", "peerIP": "10.0.2.254", "state": "Established"},
    ]});
    api.put(PEERS, tor);
    let sessions = Arc::new(FakeSessions::default());
    sessions.set(vec![session("10.0.1.254", State::Established, 5, 7)]);
    let mut receiver = start_writer(client, sessions.clone());
    const TOR_R2_STATUS: &str = "/apis/podroute.io/v1/bgppeers/tor-r2/status";
    api.wait_for_requests("tor-r2's entry removed", |api| {
        !status_writes(api, TOR_R2_STATUS).is_empty()
    })
    .await;
    let body = status_writes(&api, TOR_R2_STATUS)[0].body.clone().unwrap();
    assert_eq!(body["status"], json!({"nodes": []}));
    settle().await;
    assert_eq!(status_writes(&api, TOR_R2_STATUS).len(), 1);

    // n1 moves to rack r2: tor-r1's entry goes the same way.
    api.put(
        NODES,
        node(
            "n1",
            &["10.0.0.1"],
            json!({"rack": "r2"}),
            json!({"podroute.io/as-number": "65101"}),
        ),
    );
    wait_for_config(&mut receiver, "n1 in r2", |c| {
        c.config.peers.contains_key(&ip("10.0.2.254"))
    })
    .await;
    sessions.set(vec![session("10.0.2.254", State::Connect, 50, 0)]);
    api.wait_for_requests("tor-r1 emptied, tor-r2 written", |api| {
        status_writes(api, TOR_R1_STATUS).len() == 2 && status_writes(api, TOR_R2_STATUS).len() == 2
    })
    .await;
    let r1 = status_writes(&api, TOR_R1_STATUS)[1].body.clone().unwrap();
    assert_eq!(r1["status"], json!({"nodes": []}));
    let r2 = status_writes(&api, TOR_R2_STATUS)[1].body.clone().unwrap();
    assert_eq!(r2["status"]["nodes"][0]["state"], json!("Connect"));
}

#[tokio::test(start_paused = true)]
async fn failed_status_writes_are_retried_with_backoff() {
    let (api, client) = FakeApi::start(&ALL);
    racks(&api);
    api.fail_requests(
        Method::PATCH,
        TOR_R1_STATUS,
        3,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    let sessions = Arc::new(FakeSessions::default());
    sessions.set(vec![session("10.0.1.254", State::Established, 5, 7)]);
    let mut receiver = start_writer(client, sessions);
    let started = Instant::now();
    api.wait_for_requests("written after three failures", |api| {
        status_writes(api, TOR_R1_STATUS).len() == 4
    })
    .await;
    // 1 s, 2 s and 4 s apart at least.
    assert!(started.elapsed() >= Duration::from_secs(7));
    let stored = api.object(PEERS, "", "tor-r1").unwrap();
    assert_eq!(stored["status"]["nodes"][0]["node"], json!("n1"));
    // The configuration never waited on it.
    assert!(receiver.borrow_and_update().config.is_some());
}

#[tokio::test(start_paused = true)]
async fn sessions_between_nodes_get_no_status_entry() {
    // Route reflectors: n1 reflects (cluster ID label), a peerSelector
    // BGPPeer makes every node peer with it. Its sessions are real, but a
    // status entry per node pair would grow with the square of the cluster.
    let (api, client) = FakeApi::start(&ALL);
    let reflector = json!({"podroute.io/route-reflector-cluster-id": "10.0.0.1"});
    api.put(NODES, node("n1", &["10.0.0.1"], reflector, json!({})));
    api.put(NODES, node("n2", &["10.0.0.2"], json!({}), json!({})));
    api.put(
        CONFIGURATIONS,
        configuration(
            "default",
            json!({"asNumber": 65000, "nodeToNodeMeshEnabled": false}),
        ),
    );
    api.put(
        PEERS,
        bgp_peer(
            "to-reflectors",
            json!({"peerSelector": "has(podroute.io/route-reflector-cluster-id)"}),
        ),
    );
    api.put(
        PEERS,
        bgp_peer("tor", json!({"peerIP": "10.0.1.254", "asNumber": 65201})),
    );
    let (mut receiver, _) = start(client, "n2");
    let built = wait_for_config(&mut receiver, "n2's configuration", |_| true).await;
    assert_eq!(
        addresses(&built.config),
        [ip("10.0.0.1"), ip("10.0.1.254")],
        "n2 peers with the reflector and the ToR"
    );
    assert_eq!(
        built.peer_objects,
        BTreeMap::from([(ip("10.0.1.254"), "tor".to_owned())])
    );
}
