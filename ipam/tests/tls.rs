// ipamd on TCP with TLS and client certificates: a node certificate
// (CN system:node:NAME) may allocate for its own node only and may not
// manage pools; an administrator's certificate may; a client without a
// certificate is turned away by the handshake.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::Ipamd;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, CreatePoolRequest, Pool, ReleaseRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "podroute test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    /// A certificate and key (PEM) signed by the CA.
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let names = if server {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn free_port() -> u16 {
    podroute_proto::test_port::unused_port()
}

async fn connect(
    port: u16,
    ca: &str,
    identity: Option<(String, String)>,
) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn allocate(node: &str, handle: &str) -> AllocateRequest {
    AllocateRequest {
        node: node.into(),
        handle: handle.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificates_act_only_for_their_node() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (server_cert, server_key) = pki.issue("podroute-ipamd", true);
    let ca_pem = pki.ca.pem();
    let port = free_port();
    let flags = [
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--tls-cert".to_owned(),
        write(dir.path(), "server.pem", &server_cert),
        "--tls-key".to_owned(),
        write(dir.path(), "server.key", &server_key),
        "--tls-client-ca".to_owned(),
        write(dir.path(), "ca.pem", &ca_pem),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _ipamd = Ipamd::embedded(dir.path(), "", &flags).await;

    let n1 = connect(port, &ca_pem, Some(pki.issue("system:node:n1", false)))
        .await
        .unwrap();
    let mut n1 = IpamClient::new(n1);
    n1.allocate(allocate("n1", "pod-a")).await.unwrap();
    let denied = n1.allocate(allocate("n2", "pod-b")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("\"n2\""), "{}", denied.message());

    let admin = connect(port, &ca_pem, Some(pki.issue("podctl", false)))
        .await
        .unwrap();
    let mut admin = IpamClient::new(admin);
    admin.allocate(allocate("n2", "pod-b")).await.unwrap();

    // n1 may not release n2's pod, nor make pools.
    let denied = n1
        .release(ReleaseRequest {
            handle: "pod-b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let pool = Pool {
        name: "more".into(),
        cidr: "10.60.0.0/16".into(),
        ..Default::default()
    };
    let denied = n1
        .create_pool(CreatePoolRequest {
            pool: Some(pool.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .create_pool(CreatePoolRequest { pool: Some(pool) })
        .await
        .unwrap();

    // No client certificate: the handshake (or the first call) fails.
    if let Ok(channel) = connect(port, &ca_pem, None).await {
        let refused = IpamClient::new(channel)
            .allocate(allocate("n1", "pod-c"))
            .await
            .unwrap_err();
        // The server ends the handshake (CertificateRequired, or a broken
        // pipe, depending on timing): a transport error, never an answer.
        assert!(
            matches!(
                refused.code(),
                Code::Unknown | Code::Unavailable | Code::Cancelled
            ),
            "{refused:?}"
        );
    }
}
