// --tls-secret against the fake API server: Secrets created when absent,
// reused when sound (no writes), a lost create race, renewals by PUT with
// the resourceVersion read, conflicts, API errors; and a real TLS handshake
// between ipamd's Ipam API and a client holding the nodes' Secret.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use podroute_k8s::fake::{FakeApi, FakeKind};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, CreatePoolRequest, Pool};
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server};

use super::pki::{self, CA_LIFETIME_SECS, DAY_SECS, LEAF_LIFETIME_SECS, Pair};
use super::plan::{self, CA_CERT, CA_KEY, NodePlan, SecretData, ServerPlan, TLS_CERT, TLS_KEY};
use super::secret::{MAX_ATTEMPTS, NODE_SECRET, SecretError, SecretSettings, bootstrap};
use crate::allocator::Settings;
use crate::service::Ipamd;
use crate::service::grpc::IpamApi;
use crate::store::EmbeddedStore;

const NS: &str = "podroute-system";
const NAME: &str = "podroute-ipamd-tls";
const COLLECTION: &str = "/api/v1/namespaces/podroute-system/secrets";

fn settings() -> SecretSettings {
    SecretSettings::new(NS, NAME, &[])
}

fn path(name: &str) -> String {
    format!("{COLLECTION}/{name}")
}

fn now_secs() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// A Secret's data as the fake stores it.
fn stored(api: &FakeApi, name: &str) -> SecretData {
    let object = api.object(FakeKind::SECRETS, NS, name).unwrap();
    let secret: Secret = serde_json::from_value(object).unwrap();
    let data = secret.data.unwrap_or_default().into_iter();
    data.map(|(key, value)| (key, value.0)).collect()
}

fn text(data: &SecretData, key: &str) -> String {
    String::from_utf8(data[key].clone()).unwrap()
}

fn resource_version(api: &FakeApi, name: &str) -> String {
    let object = api.object(FakeKind::SECRETS, NS, name).unwrap();
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// (method, path) of every request from `from` on.
fn requests_since(api: &FakeApi, from: usize) -> Vec<(Method, String)> {
    let all = api.all_requests().into_iter().skip(from);
    all.map(|seen| (seen.method, seen.path)).collect()
}

/// A Secret as another writer (kubectl, another ipamd) would put it.
fn secret_json(name: &str, data: &SecretData) -> Value {
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NS.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.clone())))
                .collect(),
        ),
        ..Default::default()
    };
    let mut value = serde_json::to_value(secret).unwrap();
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

/// Both Secrets, sound, for a CA with five years left; the server
/// certificate expires in `server_days`.
fn put_secrets(api: &FakeApi, server_days: i64) -> (Pair, Pair) {
    let now = now_secs();
    let ca = pki::new_ca(now - CA_LIFETIME_SECS / 2).unwrap();
    let issued = now + server_days * DAY_SECS - LEAF_LIFETIME_SECS;
    let server = pki::issue_server(&ca, &settings().names, issued).unwrap();
    let node = pki::issue_node(&ca, now).unwrap();
    let server_data = plan::server_data(&ca, &server);
    api.put(FakeKind::SECRETS, secret_json(NAME, &server_data));
    let node_data = plan::node_data(&ca.cert_pem, &node);
    api.put(FakeKind::SECRETS, secret_json(NODE_SECRET, &node_data));
    (ca, node)
}

fn keys(data: &SecretData) -> BTreeSet<&str> {
    data.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn absent_secrets_are_created_with_a_ca_and_both_certificates() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let tls = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();

    assert_eq!(
        requests_since(&api, 0),
        vec![
            (Method::GET, path(NAME)),
            (Method::POST, COLLECTION.to_owned()),
            (Method::GET, path(NODE_SECRET)),
            (Method::POST, COLLECTION.to_owned()),
        ]
    );
    let server = stored(&api, NAME);
    assert_eq!(
        keys(&server),
        BTreeSet::from([CA_CERT, CA_KEY, TLS_CERT, TLS_KEY])
    );
    let node = stored(&api, NODE_SECRET);
    assert_eq!(keys(&node), BTreeSet::from([CA_CERT, TLS_CERT, TLS_KEY]));
    assert_eq!(node[CA_CERT], server[CA_CERT]);
    for name in [NAME, NODE_SECRET] {
        let object = api.object(FakeKind::SECRETS, NS, name).unwrap();
        assert_eq!(object["type"], "kubernetes.io/tls", "{name}");
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "podroute-ipamd");
    }
    // ipamd serves what it stored, and trusts the CA for client certificates.
    assert_eq!(tls.cert_pem, server[TLS_CERT]);
    assert_eq!(tls.key_pem, server[TLS_KEY]);
    assert_eq!(tls.client_ca_pem.as_deref(), Some(&server[CA_CERT][..]));

    // What it stored passes its own checks: the server certificate names
    // the Service's DNS names and 127.0.0.1, and chains to the CA.
    let names = settings().names;
    assert_eq!(
        names,
        [
            "podroute-ipamd",
            "podroute-ipamd.podroute-system",
            "podroute-ipamd.podroute-system.svc",
            "podroute-ipamd.podroute-system.svc.cluster.local",
            "127.0.0.1",
        ]
    );
    let now = now_secs();
    assert!(matches!(
        plan::plan_server(Some(&server), &names, now),
        ServerPlan::Keep { .. }
    ));
    let ca_pem = text(&server, CA_CERT);
    assert_eq!(plan::plan_node(Some(&node), &ca_pem, now), NodePlan::Keep);
}

#[test]
fn the_names_asked_for_replace_the_services_and_keep_loopback() {
    let given = ["ipamd.example.org", "", "10.0.0.5", "127.0.0.1"].map(String::from);
    let settings = SecretSettings::new(NS, NAME, &given);
    assert_eq!(
        settings.names,
        ["ipamd.example.org", "10.0.0.5", "127.0.0.1"]
    );
    assert_eq!(settings.node_secret, "podroute-node-tls");
    let settings = SecretSettings::new("kube-system", NAME, &[String::new()]);
    assert_eq!(
        settings.names[3],
        "podroute-ipamd.kube-system.svc.cluster.local"
    );
    assert_eq!(settings.names.len(), 5);
}

#[tokio::test]
async fn a_second_start_reuses_the_secrets_without_writing() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let first = bootstrap(client.clone(), &settings(), SystemTime::now())
        .await
        .unwrap();
    let before = api.all_requests().len();
    let versions = (
        resource_version(&api, NAME),
        resource_version(&api, NODE_SECRET),
    );

    let second = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(second, first);
    assert_eq!(
        requests_since(&api, before),
        vec![(Method::GET, path(NAME)), (Method::GET, path(NODE_SECRET))]
    );
    let after = (
        resource_version(&api, NAME),
        resource_version(&api, NODE_SECRET),
    );
    assert_eq!(after, versions);
}

#[tokio::test]
async fn a_lost_create_race_reads_the_winners_secret() {
    // Another replica made the Secrets between our GET and our POST: the
    // GET answers 404, the POST 409, and the Secrets are the winner's.
    let (winner, winner_client) = FakeApi::start(&[FakeKind::SECRETS]);
    let theirs = bootstrap(winner_client, &settings(), SystemTime::now())
        .await
        .unwrap();
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    for name in [NAME, NODE_SECRET] {
        let object = winner.object(FakeKind::SECRETS, NS, name).unwrap();
        api.put(FakeKind::SECRETS, object);
    }
    let versions = (
        resource_version(&api, NAME),
        resource_version(&api, NODE_SECRET),
    );
    api.fail_requests(Method::GET, &path(NAME), 1, StatusCode::NOT_FOUND);

    let ours = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(
        requests_since(&api, 0),
        vec![
            (Method::GET, path(NAME)),
            (Method::POST, COLLECTION.to_owned()),
            (Method::GET, path(NAME)),
            (Method::GET, path(NODE_SECRET)),
        ]
    );
    let after = (
        resource_version(&api, NAME),
        resource_version(&api, NODE_SECRET),
    );
    assert_eq!(after, versions, "the winner's Secrets are untouched");
}

#[tokio::test]
async fn an_expiring_server_certificate_is_renewed_by_the_same_ca() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let (ca, _) = put_secrets(&api, 10);
    let version = resource_version(&api, NAME);
    let node_before = stored(&api, NODE_SECRET);
    let old = stored(&api, NAME);

    let tls = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        requests_since(&api, 0),
        vec![
            (Method::GET, path(NAME)),
            (Method::PUT, path(NAME)),
            (Method::GET, path(NODE_SECRET)),
        ]
    );
    let put = api.requests(&path(NAME)).pop().unwrap();
    let body = put.body.unwrap();
    assert_eq!(body["metadata"]["resourceVersion"], json!(version));

    let renewed = stored(&api, NAME);
    assert_eq!(text(&renewed, CA_CERT), ca.cert_pem, "the CA is kept");
    assert_eq!(text(&renewed, CA_KEY), ca.key_pem);
    assert_ne!(renewed[TLS_CERT], old[TLS_CERT]);
    assert_ne!(renewed[TLS_KEY], old[TLS_KEY]);
    assert_eq!(tls.cert_pem, renewed[TLS_CERT]);
    let expires = pki::not_after(TLS_CERT, &text(&renewed, TLS_CERT)).unwrap();
    assert!(expires > now_secs() + 365 * DAY_SECS);
    assert_eq!(
        stored(&api, NODE_SECRET),
        node_before,
        "the nodes keep theirs"
    );
}

#[tokio::test]
async fn a_renewal_that_conflicts_reads_again_and_starts_over() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    put_secrets(&api, 10);
    api.fail_requests(Method::PUT, &path(NAME), 1, StatusCode::CONFLICT);

    let tls = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        requests_since(&api, 0),
        vec![
            (Method::GET, path(NAME)),
            (Method::PUT, path(NAME)),
            (Method::GET, path(NAME)),
            (Method::PUT, path(NAME)),
            (Method::GET, path(NODE_SECRET)),
        ]
    );
    assert_eq!(tls.cert_pem, stored(&api, NAME)[TLS_CERT]);
}

#[tokio::test]
async fn a_broken_ca_renews_both_secrets() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let (old_ca, _) = put_secrets(&api, 1000);
    let mut broken = stored(&api, NAME);
    broken.insert(CA_CERT.to_owned(), b"not a certificate".to_vec());
    api.put(FakeKind::SECRETS, secret_json(NAME, &broken));

    let tls = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        requests_since(&api, 0),
        vec![
            (Method::GET, path(NAME)),
            (Method::PUT, path(NAME)),
            (Method::GET, path(NODE_SECRET)),
            (Method::PUT, path(NODE_SECRET)),
        ]
    );
    let server = stored(&api, NAME);
    let node = stored(&api, NODE_SECRET);
    assert_ne!(text(&server, CA_CERT), old_ca.cert_pem);
    assert_eq!(node[CA_CERT], server[CA_CERT]);
    assert_eq!(tls.client_ca_pem.as_deref(), Some(&server[CA_CERT][..]));
    let ca_pem = text(&server, CA_CERT);
    assert_eq!(
        plan::plan_node(Some(&node), &ca_pem, now_secs()),
        NodePlan::Keep
    );
}

#[tokio::test]
async fn api_errors_name_the_secret_and_namespace() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    api.fail_requests(
        Method::GET,
        &path(NAME),
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
    );
    let error = bootstrap(client.clone(), &settings(), SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(error, SecretError::Api { op: "read", .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "cannot read Secret \"podroute-ipamd-tls\" in namespace \"podroute-system\": \
         500 InternalError: injected failure"
    );

    // Forbidden: a hint at the RBAC it needs. Nothing was written.
    api.fail_requests(Method::POST, COLLECTION, 1, StatusCode::FORBIDDEN);
    let error = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(
            "cannot create Secret \"podroute-ipamd-tls\" in namespace \"podroute-system\": "
        ),
        "{message}"
    );
    assert!(message.contains("ServiceAccount"), "{message}");
    assert!(api.objects(FakeKind::SECRETS).is_empty());
}

#[tokio::test]
async fn a_secret_that_keeps_changing_is_given_up_on() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let attempts = usize::try_from(MAX_ATTEMPTS).unwrap();
    api.fail_requests(Method::POST, COLLECTION, attempts, StatusCode::CONFLICT);
    let error = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SecretError::Contended { name, attempts: 5, .. } if name == NAME),
        "{error:?}"
    );
    assert!(error.to_string().contains("\"podroute-system\""), "{error}");
    assert_eq!(api.all_requests().len(), 2 * attempts);
}

fn allocate(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.into(),
        handle: handle.into(),
        ..Default::default()
    }
}

async fn connect(
    port: u16,
    domain: &str,
    ca: &[u8],
    identity: (&[u8], &[u8]),
) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(identity.0, identity.1))
        .domain_name(domain);
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_ipamd_with_the_bootstrapped_certificates() {
    let (api, client) = FakeApi::start(&[FakeKind::SECRETS]);
    let tls = bootstrap(client, &settings(), SystemTime::now())
        .await
        .unwrap();
    let node = stored(&api, NODE_SECRET);

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let ipamd = Ipamd::start(store, Settings::default(), Arc::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::builder()
        .tls_config(tls.config())
        .unwrap()
        .add_service(IpamApi::new(ipamd.clone()).into_server());
    // An administrator's pool (the nodes' certificate may not make one).
    let pool: crate::model::IpPool = serde_yaml_ng::from_str(
        "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: default}\nspec: {cidr: 10.244.0.0/16}\n",
    )
    .unwrap();
    ipamd.put_pool(pool, false).await.unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(server.serve_with_incoming(incoming));

    let identity = (&node[TLS_CERT][..], &node[TLS_KEY][..]);
    for domain in ["127.0.0.1", "podroute-ipamd.podroute-system.svc"] {
        let channel = connect(port, domain, &node[CA_CERT], identity)
            .await
            .unwrap();
        let mut ipam = IpamClient::new(channel);
        // The nodes' certificate acts for any node (CN podroute-node, not
        // system:node:NAME): it allocates for n1 and n2, but is no
        // administrator: it may not make a pool.
        if domain == "127.0.0.1" {
            let pool = Pool {
                name: "other".into(),
                cidr: "10.245.0.0/16".into(),
                ..Default::default()
            };
            let request = CreatePoolRequest { pool: Some(pool) };
            let refused = ipam.create_pool(request).await.unwrap_err();
            assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
            ipam.allocate(allocate("n1", "pod-a")).await.unwrap();
            ipam.allocate(allocate("n2", "pod-b")).await.unwrap();
        } else {
            ipam.allocate(allocate("n3", "pod-c")).await.unwrap();
        }
    }

    // A name the certificate does not carry is refused by the client.
    let wrong = connect(port, "ipamd.example.org", &node[CA_CERT], identity).await;
    assert!(wrong.is_err(), "a certificate for a name it lacks");

    // A client certificate from another CA is refused by ipamd.
    let other_ca = pki::new_ca(now_secs()).unwrap();
    let stranger = pki::issue_node(&other_ca, now_secs()).unwrap();
    let stranger = (stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes());
    let refused = match connect(port, "127.0.0.1", &node[CA_CERT], stranger).await {
        Err(_) => true,
        Ok(channel) => IpamClient::new(channel)
            .allocate(allocate("n1", "pod-d"))
            .await
            .is_err(),
    };
    assert!(refused, "a client certificate from another CA");
}
