// podctl over TCP with TLS: a real podroute-bgpd speaker in this process
// serves its admin API as the daemon does with --admin-listen (socket and
// TCP, client certificates required); podctl reaches it with a client
// certificate, and is turned away, each time with what to do, without one,
// with the wrong CA, with a certificate from another CA, at a closed port,
// and at a port that does not speak TLS. ipamd's TLS API (--listen) the
// same way, and the settings from a config file.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::ipam::{Fake, Script};
use common::{Pki, json, podctl_command, speaker, stderr, stdout};
use podroute_proto::admin_socket::{AdminTcpListener, AdminTlsFiles};
use podroute_proto::daemon::{AdminServer, AdminTcpArgs};
use podroute_proto::ipam::v1::{ListPoolsResponse, Pool};
use tokio::sync::oneshot;

/// bgpd's admin API on a socket and on 127.0.0.1 with TLS, until dropped.
struct TlsBgpd {
    dir: tempfile::TempDir,
    address: std::net::SocketAddr,
    pki: Pki,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TlsBgpd {
    async fn start() -> TlsBgpd {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path(), "admin-ca");
        let (cert, key) = pki.issue(dir.path(), "podroute-bgpd", true);
        let args = AdminTcpArgs {
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            admin_tls_cert: Some(cert),
            admin_tls_key: Some(key),
            admin_tls_client_ca: Some(pki.ca_file.clone()),
        };
        let server = AdminServer::bind(&dir.path().join("bgpd.sock"), &args)
            .await
            .unwrap();
        let address = server.tcp_address().unwrap();
        let speaker = speaker(
            "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 65000, routerID: 192.0.2.1, listenPort: 0, originate: [10.244.1.0/26]}\n",
        )
        .await;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server
                .serve(
                    "podroute-bgpd",
                    podroute_bgpd::admin::router(speaker),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await
                .unwrap();
        });
        TlsBgpd {
            dir,
            address,
            pki,
            stop: Some(stop),
            served: Some(served),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// An admin's certificate from the admin CA.
    fn admin(&self) -> (PathBuf, PathBuf) {
        self.pki.issue(self.dir.path(), "admin", false)
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }
}

async fn podctl(args: &[&str], tls: &[(&str, &Path)]) -> Output {
    let mut command = podctl_command();
    for (flag, file) in tls {
        command.arg(flag).arg(file);
    }
    command.args(args).output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bgpd_over_tls_with_a_client_certificate() {
    let mut bgpd = TlsBgpd::start().await;
    let (cert, key) = bgpd.admin();
    let url = bgpd.url();
    let tls = [
        ("--tls-ca", bgpd.pki.ca_file.as_path()),
        ("--tls-cert", cert.as_path()),
        ("--tls-key", key.as_path()),
    ];

    let out = podctl(&["--bgpd", &url, "bgp", "routes", "-o", "json"], &tls).await;
    assert_eq!(json(&out)["routes"][0]["prefix"], "10.244.1.0/26");
    let out = podctl(&["--bgpd", &url, "bgp", "peers"], &tls).await;
    assert_eq!(stdout(&out), "no BGP peers\n");

    let report = json(&podctl(&["--bgpd", &url, "version", "-o", "json"], &tls).await);
    assert_eq!(report["daemons"][0]["endpoint"], url);
    assert_eq!(report["daemons"][0]["compatible"], true);

    // The same from the environment and from a config file.
    let out = podctl_command()
        .env("PODROUTE_BGPD", &url)
        .env("PODCTL_TLS_CA", &bgpd.pki.ca_file)
        .env("PODCTL_TLS_CERT", &cert)
        .env("PODCTL_TLS_KEY", &key)
        .args(["bgp", "peers"])
        .output()
        .await
        .unwrap();
    assert_eq!(stdout(&out), "no BGP peers\n", "{out:?}");
    let config = bgpd.dir.path().join("podctl.yaml");
    std::fs::write(
        &config,
        format!(
            "bgpd: {url}\ntls:\n  ca: admin-ca.pem\n  cert: admin.pem\n  key: {}\n",
            key.display()
        ),
    )
    .unwrap();
    let out = podctl_command()
        .env("PODCTL_CONFIG", &config)
        .args(["bgp", "peers"])
        .output()
        .await
        .unwrap();
    assert_eq!(stdout(&out), "no BGP peers\n", "{out:?}");
    bgpd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refusals_say_what_to_do() {
    let mut bgpd = TlsBgpd::start().await;
    let ca_file = bgpd.pki.ca_file.clone();
    let (cert, key) = bgpd.admin();
    let url = bgpd.url();
    let peers = ["--bgpd", url.as_str(), "bgp", "peers"];
    let ca = ca_file.as_path();

    // No CA at all: podctl cannot check the daemon's certificate.
    let err = stderr(&podctl(&peers, &[]).await);
    assert!(
        err.starts_with(&format!(
            "podctl: podroute-bgpd at {url} is https: give --tls-ca FILE, the CA that signed its certificate"
        )),
        "{err}"
    );

    // No client certificate: the admin API requires one.
    let err = stderr(&podctl(&peers, &[("--tls-ca", ca)]).await);
    assert_eq!(
        err,
        format!(
            "podctl: podroute-bgpd at {url} requires a client certificate: give --tls-cert and --tls-key, signed by the CA of its --admin-tls-client-ca\n"
        )
    );

    // The wrong CA: the daemon's certificate is not trusted.
    let other = Pki::new(bgpd.dir.path(), "other-ca");
    let err = stderr(
        &podctl(
            &peers,
            &[
                ("--tls-ca", other.ca_file.as_path()),
                ("--tls-cert", &cert),
                ("--tls-key", &key),
            ],
        )
        .await,
    );
    assert!(
        err.starts_with(&format!(
            "podctl: podroute-bgpd's certificate at {url} is not trusted (UnknownIssuer): is --tls-ca the CA that signed it"
        )),
        "{err}"
    );

    // A client certificate from another CA: refused by the daemon.
    let (stranger_cert, stranger_key) = other.issue(bgpd.dir.path(), "stranger", false);
    let err = stderr(
        &podctl(
            &peers,
            &[
                ("--tls-ca", ca),
                ("--tls-cert", &stranger_cert),
                ("--tls-key", &stranger_key),
            ],
        )
        .await,
    );
    assert!(
        err.starts_with(&format!(
            "podctl: podroute-bgpd at {url} refused podctl's client certificate ("
        )),
        "{err}"
    );
    assert!(
        err.ends_with("): it must be signed by the CA of its --admin-tls-client-ca\n"),
        "{err}"
    );

    // A missing file is named.
    let missing = bgpd.dir.path().join("missing.pem");
    let err = stderr(
        &podctl(
            &peers,
            &[
                ("--tls-ca", ca),
                ("--tls-cert", &missing),
                ("--tls-key", &key),
            ],
        )
        .await,
    );
    assert!(
        err.starts_with(&format!(
            "podctl: cannot read TLS file {}",
            missing.display()
        )),
        "{err}"
    );

    // Nothing listening any more.
    let address = bgpd.address;
    bgpd.stop().await;
    let err = stderr(
        &podctl(
            &peers,
            &[("--tls-ca", ca), ("--tls-cert", &cert), ("--tls-key", &key)],
        )
        .await,
    );
    assert_eq!(
        err,
        format!(
            "podctl: is podroute-bgpd listening on {address} (--admin-listen)? connection refused\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_without_tls_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "ca");
    // Something that answers in plain text, as an HTTP server would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let url = format!("https://{address}");
    let err = stderr(
        &podctl(
            &["--policy", &url, "policy", "endpoints"],
            &[("--tls-ca", pki.ca_file.as_path())],
        )
        .await,
    );
    assert_eq!(
        err,
        format!(
            "podctl: {url} does not speak TLS: is it podroute-policy-agent's TLS port (--admin-listen)?\n"
        )
    );
    plain.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipamd_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "ca");
    let (cert, key) = pki.issue(dir.path(), "podroute-ipamd", true);
    let (admin_cert, admin_key) = pki.issue(dir.path(), "admin", false);
    // The fake's service on TLS as ipamd serves it with --listen and
    // --tls-client-ca.
    let fake = Fake::start(Script {
        pools: ListPoolsResponse {
            pools: vec![Pool {
                name: "default-ipv4".into(),
                cidr: "10.244.0.0/16".into(),
                block_size: 26,
                ..Pool::default()
            }],
        },
        ..Script::default()
    })
    .await;
    let listener = AdminTcpListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        &AdminTlsFiles {
            cert,
            key,
            client_ca: pki.ca_file.clone(),
        },
    )
    .await
    .unwrap();
    let url = format!("https://{}", listener.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(listener.serve(fake.router(), async {
        let _ = stopped.await;
    }));

    let tls = [
        ("--tls-ca", pki.ca_file.as_path()),
        ("--tls-cert", admin_cert.as_path()),
        ("--tls-key", admin_key.as_path()),
    ];
    let out = podctl(&["--ipamd", &url, "ipam", "pools", "-o", "json"], &tls).await;
    assert_eq!(json(&out)["pools"][0]["name"], "default-ipv4");
    let err = stderr(&podctl(&["--ipamd", &url, "ipam", "pools"], &tls[..1]).await);
    assert!(
        err.ends_with("requires a client certificate: give --tls-cert and --tls-key, signed by the CA of its --tls-client-ca\n"),
        "{err}"
    );

    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
    fake.stop().await;
}
