// Shared by podctl's integration tests: running the built podctl with a
// clean environment (no settings leak in from the machine), real
// podroute-bgpd speakers in this process peering over the loopback, fake
// daemons that answer canned data (or lack a call, or speak another API
// version), and a test CA for TLS.

#![allow(dead_code)]
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

pub mod ipam;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use podroute_proto::admin_socket::{BackgroundServer, connect_unix};
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::bgp_admin_server::{BgpAdmin, BgpAdminServer};
use podroute_proto::bgpd::v1::{
    AsPathSegment, Bfd, BgpStatus, GetPeerRequest, GracefulRestart, KernelState, ListPeersRequest,
    ListPeersResponse, ListRoutesRequest, ListRoutesResponse, MessageCounters, Peer, Route,
    SessionState, as_path_segment,
};
use podroute_proto::common::v1::{GetStatusRequest, GetVersionRequest, VersionInfo};
use podroute_proto::policy::v1::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use podroute_proto::policy::v1::{
    Endpoint, ExplainRequest, ExplainResponse, ListEndpointsRequest, ListEndpointsResponse,
    PolicyRef, PolicyStatus, Verdict,
};
use tokio::process::Command;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

/// How long a test waits for sessions to come up: seconds here, generous
/// for two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The built podctl with no podroute settings from the machine: no
/// endpoint variables, no config file, no NO_COLOR.
pub fn podctl_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podctl"));
    for name in [
        "PODROUTE_BGPD",
        "PODROUTE_IPAMD",
        "PODROUTE_POLICY",
        "PODROUTE_BGPD_SOCKET",
        "PODROUTE_IPAMD_SOCKET",
        "PODROUTE_POLICY_SOCKET",
        "PODCTL_TLS_CA",
        "PODCTL_TLS_CERT",
        "PODCTL_TLS_KEY",
        "NO_COLOR",
    ] {
        command.env_remove(name);
    }
    command.env("PODCTL_CONFIG", "/dev/null");
    command.stdin(std::process::Stdio::null());
    command
}

/// Three socket paths in a temporary directory.
pub struct Sockets {
    pub dir: tempfile::TempDir,
    pub bgpd: PathBuf,
    pub ipamd: PathBuf,
    pub policy: PathBuf,
}

pub fn sockets() -> Sockets {
    let dir = tempfile::tempdir().expect("tempdir");
    Sockets {
        bgpd: dir.path().join("bgpd.sock"),
        ipamd: dir.path().join("ipamd.sock"),
        policy: dir.path().join("policy.sock"),
        dir,
    }
}

/// Runs podctl with the three socket flags pointing into `s` plus `args`.
pub async fn podctl(s: &Sockets, args: &[&str]) -> Output {
    podctl_command()
        .arg("--bgpd")
        .arg(&s.bgpd)
        .arg("--ipamd")
        .arg(&s.ipamd)
        .arg("--policy")
        .arg(&s.policy)
        .args(args)
        .output()
        .await
        .expect("run podctl")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Standard output as JSON; the test fails if it is not.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(out)))
}

/// Standard output as YAML, read into the JSON data model.
pub fn yaml(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_yaml_ng::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not YAML ({e}):\n{}", stdout(out)))
}

pub async fn serve(path: &Path, router: Router) -> BackgroundServer {
    BackgroundServer::start(path, router)
        .await
        .expect("serve admin socket")
}

/// A podroute-bgpd speaker in this process, from configuration `yaml`.
pub async fn speaker(yaml: &str) -> podroute_bgpd::speaker::Speaker {
    let config = podroute_bgpd::config::parse(yaml, "test", |_| {
        Err(std::io::Error::other("no files in this test"))
    })
    .expect("config");
    podroute_bgpd::speaker::Speaker::start(config)
        .await
        .expect("speaker")
}

/// A free TCP port on 127.0.0.1 (free when asked; bgpd binds it next).
pub fn free_port() -> u16 {
    podroute_proto::test_port::unused_port()
}

/// Two iBGP speakers on the loopback, AS 65000: A (127.0.0.1, listening,
/// originating 10.244.1.0/26) with peers B (127.0.0.2, which connects to
/// it and originates 10.244.2.0/26) and "silent" (127.0.0.3, never
/// there); A's admin API on `s.bgpd`. Returns when A's session with B is
/// Established and B's prefix is in A's Loc-RIB.
pub struct Pair {
    pub a: podroute_bgpd::speaker::Speaker,
    pub b: podroute_bgpd::speaker::Speaker,
    pub server: BackgroundServer,
}

pub const PEER_B: &str = "127.0.0.2";
pub const SILENT_PEER: &str = "127.0.0.3";

impl Pair {
    pub async fn start(s: &Sockets) -> Pair {
        let port = free_port();
        let a = speaker(&format!(
            "apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: 65000
  routerID: 127.0.0.1
  listenPort: {port}
  listenAddresses: [127.0.0.1]
  originate: [10.244.1.0/26]
  connectRetryTime: 1
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {{name: node-b}}
spec: {{peerIP: {PEER_B}, asNumber: 65000, passive: true, description: rack 1}}
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {{name: silent}}
spec: {{peerIP: {SILENT_PEER}, asNumber: 65000, passive: true}}
"
        ))
        .await;
        let b = speaker(&format!(
            "apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {{name: default}}
spec:
  asNumber: 65000
  routerID: {PEER_B}
  listenPort: 0
  originate: [10.244.2.0/26]
  connectRetryTime: 1
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {{name: node-a}}
spec: {{peerIP: 127.0.0.1, asNumber: 65000, port: {port}, sourceAddress: {PEER_B}}}
"
        ))
        .await;
        let server = serve(&s.bgpd, podroute_bgpd::admin::router(a.clone())).await;
        let pair = Pair { a, b, server };
        pair.wait_for_b(&s.bgpd).await;
        pair
    }

    /// Polls A's admin API until B's session is up and its route is in.
    async fn wait_for_b(&self, socket: &Path) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut client = BgpAdminClient::new(connect_unix(socket).await.unwrap());
            let peer = client
                .get_peer(GetPeerRequest {
                    address: PEER_B.into(),
                })
                .await
                .unwrap()
                .into_inner();
            let routes = client
                .list_routes(ListRoutesRequest {
                    prefix: "10.244.2.0/26".into(),
                    ..ListRoutesRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            if peer.state == i32::from(SessionState::Established) && !routes.routes.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "B never came up; last seen {peer:?} {routes:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.server.stop().await.expect("server result");
    }
}

/// What every fake answers GetStatus's health with: up an hour, ready.
pub fn fake_health() -> podroute_proto::common::v1::DaemonHealth {
    podroute_proto::common::v1::DaemonHealth {
        live: true,
        ready: true,
        reason: String::new(),
        uptime_seconds: 3600,
        metrics_address: "127.0.0.1:9641".into(),
    }
}

/// A fake podroute-bgpd: canned peers and routes, every field set, and
/// ways to be an older or newer daemon.
#[derive(Debug, Clone)]
pub struct FakeBgpd {
    pub peers: Vec<Peer>,
    pub routes: Vec<Route>,
    /// What GetVersion reports.
    pub version: String,
    pub api_version: String,
    /// Answer ListPeers as a daemon without it does: UNIMPLEMENTED, no
    /// message.
    pub lacks_list_peers: bool,
}

impl Default for FakeBgpd {
    fn default() -> Self {
        FakeBgpd {
            peers: vec![full_peer()],
            routes: vec![full_route()],
            version: "9.9.9-fake".into(),
            api_version: podroute_proto::BGPD_API.into(),
            lacks_list_peers: false,
        }
    }
}

impl FakeBgpd {
    pub fn router(self) -> Router {
        Server::builder().add_service(BgpAdminServer::new(self))
    }
}

#[tonic::async_trait]
impl BgpAdmin for FakeBgpd {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            "podroute-bgpd",
            &self.version,
            &self.api_version,
        )))
    }
    async fn list_peers(
        &self,
        _: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersResponse>, Status> {
        if self.lacks_list_peers {
            return Err(Status::unimplemented(""));
        }
        Ok(Response::new(ListPeersResponse {
            peers: self.peers.clone(),
        }))
    }
    async fn get_peer(&self, request: Request<GetPeerRequest>) -> Result<Response<Peer>, Status> {
        let address = request.into_inner().address;
        self.peers
            .iter()
            .find(|p| p.address == address)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no peer {address}")))
    }
    async fn list_routes(
        &self,
        _: Request<ListRoutesRequest>,
    ) -> Result<Response<ListRoutesResponse>, Status> {
        Ok(Response::new(ListRoutesResponse {
            routes: self.routes.clone(),
        }))
    }
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<BgpStatus>, Status> {
        Ok(Response::new(BgpStatus {
            health: Some(fake_health()),
            node: "node-a".into(),
            local_as: 64512,
            router_id: "192.0.2.254".into(),
            peers_configured: u32::try_from(self.peers.len()).unwrap_or(u32::MAX),
            peers_established: 1,
            fib: Some(podroute_proto::bgpd::v1::FibStatus {
                enabled: true,
                table: 254,
                installed: 3,
                pending: 0,
                failed: 1,
                netlink_errors: 1,
            }),
            ipamd: "/run/podroute/ipamd.sock".into(),
            ipamd_connected: true,
            originated: vec!["10.244.0.0/26".into()],
            config_file: "/etc/podroute/bgpd.yaml".into(),
            config_loaded_seconds_ago: 60,
            config_error: String::new(),
        }))
    }
}

/// A peer with every field and sub-message set.
pub fn full_peer() -> Peer {
    let counters = MessageCounters {
        open: 1,
        update: 4,
        notification: 0,
        keepalive: 120,
        route_refresh: 0,
    };
    Peer {
        address: "192.0.2.1".into(),
        name: "tor1".into(),
        remote_as: 65001,
        local_as: 65000,
        state: SessionState::Established.into(),
        uptime_seconds: 11_520,
        prefixes_received: 10,
        prefixes_accepted: 9,
        prefixes_advertised: 2,
        last_error: "hold timer expired".into(),
        description: "rack 1 ToR".into(),
        remote_id: "192.0.2.1".into(),
        local_endpoint: "192.0.2.2:40000".into(),
        remote_endpoint: "192.0.2.1:179".into(),
        state_seconds: 11_520,
        hold_time: 90,
        keepalive_time: 30,
        families: vec!["ipv4-unicast".into()],
        peer_capabilities: vec!["route-refresh".into()],
        local_capabilities: vec!["route-refresh".into()],
        messages_received: Some(counters),
        messages_sent: Some(counters),
        established_transitions: 2,
        graceful_restart: Some(GracefulRestart {
            negotiated: true,
            local_restart_time: 120,
            peer_restart_time: 120,
            peer_forwarding_preserved: vec!["ipv4-unicast".into()],
            ..GracefulRestart::default()
        }),
        bfd: Some(Bfd {
            state: "up".into(),
            remote_state: "up".into(),
            local_discriminator: 1,
            remote_discriminator: 2,
            tx_interval_ms: 300,
            detection_time_ms: 900,
            min_rx_ms: 300,
            min_tx_ms: 300,
            multiplier: 3,
            remote_min_rx_ms: 300,
            remote_min_tx_ms: 300,
            remote_multiplier: 3,
            up_transitions: 1,
            state_seconds: 600,
            ..Bfd::default()
        }),
        ..Peer::default()
    }
}

/// A path with every attribute set.
pub fn full_route() -> Route {
    Route {
        prefix: "10.244.1.0/26".into(),
        next_hops: vec!["192.0.2.1".into()],
        as_path: vec![AsPathSegment {
            r#type: as_path_segment::Type::AsSequence.into(),
            asns: vec![65001],
        }],
        origin: 1,
        local_pref: Some(100),
        med: Some(10),
        communities: vec!["65000:1".into()],
        large_communities: vec!["65000:1:2".into()],
        extended_communities: vec!["rt:65000:1".into()],
        originator_id: "192.0.2.9".into(),
        cluster_list: vec!["192.0.2.8".into()],
        atomic_aggregate: true,
        peer: "192.0.2.1".into(),
        best: true,
        accepted: true,
        multipath: true,
        reachable: true,
        kernel: KernelState::Failed.into(),
        kernel_error: "netlink: File exists".into(),
        kernel_next_hops: vec!["192.0.2.1 dev 3".into()],
        reason: "only path".into(),
        ..Route::default()
    }
}

/// A fake podroute-policy-agent with one endpoint and a denial.
#[derive(Debug, Clone, Default)]
pub struct FakePolicy;

impl FakePolicy {
    pub fn router(self) -> Router {
        Server::builder().add_service(PolicyAdminServer::new(self))
    }
}

fn policy_ref(namespace: &str, name: &str) -> PolicyRef {
    PolicyRef {
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[tonic::async_trait]
impl PolicyAdmin for FakePolicy {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            "podroute-policy-agent",
            "9.9.9-fake",
            podroute_proto::POLICY_API,
        )))
    }
    async fn list_endpoints(
        &self,
        _: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        Ok(Response::new(ListEndpointsResponse {
            endpoints: vec![Endpoint {
                namespace: "shop".into(),
                pod: "db-0".into(),
                addresses: vec!["10.244.1.7".into()],
                ingress_isolated: true,
                egress_isolated: false,
                policies: vec![policy_ref("shop", "db-from-api")],
            }],
        }))
    }
    async fn explain(
        &self,
        _: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        Ok(Response::new(ExplainResponse {
            verdict: Verdict::Denied.into(),
            reason: "10.244.1.8 -> 10.244.1.7 5432/TCP: egress of web/front-0 (node n1): no policy isolates it; ingress of shop/db-0 (node n1): denied: isolated by shop/db-from-api and no rule allows it".into(),
            policies: vec![policy_ref("shop", "db-from-api")],
        }))
    }
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<PolicyStatus>, Status> {
        Ok(Response::new(PolicyStatus {
            health: Some(fake_health()),
            node: "node-a".into(),
            source: "manifests /etc/podroute/manifests".into(),
            syncs: 12,
            last_sync_seconds_ago: Some(4),
            last_sync_duration_ms: 15,
            last_error: String::new(),
            policies: 2,
            endpoints: 3,
            isolated_endpoints: 1,
            rules: 40,
            ipset_members: 6,
            denials: vec![podroute_proto::policy::v1::Denial {
                namespace: "shop".into(),
                pod: "db-0".into(),
                direction: podroute_proto::policy::v1::Direction::Ingress.into(),
                packets: 7,
                policies: vec![PolicyRef {
                    namespace: "shop".into(),
                    name: "db-from-api".into(),
                }],
                last_drop_seconds_ago: Some(3),
                recent_packets: 7,
            }],
            ipsets: 2,
            failed_syncs: 0,
            refused: vec!["NetworkPolicy shop/bad: spec.podSelector: invalid".into()],
            unknown_pod_dropped_packets: 0,
            denials_error: String::new(),
        }))
    }
}

/// A CA and the certificates it signs, written as PEM files.
pub struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub ca_file: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ca_file = dir.join(format!("{name}.pem"));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki { ca, ca_file }
    }

    /// A certificate and key for `cn` (a server one names 127.0.0.1 and
    /// localhost), written into `dir`: (cert, key).
    pub fn issue(&self, dir: &Path, cn: &str, server: bool) -> (PathBuf, PathBuf) {
        let names = if server {
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()]
        } else {
            Vec::new()
        };
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}
