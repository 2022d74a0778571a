// The PolicyAdmin gRPC service (proto/proto/policy.proto) served by
// podroute-policy-agent on its Unix admin socket: version, status (health,
// syncs, what is programmed, and who lost packets to which policy), the
// local endpoints with the policies that isolate them, and the explanation
// of a verdict by the reference evaluator on the agent's current view.

use std::net::IpAddr;
use std::sync::Arc;

use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use podroute_proto::policy::v1::policy_admin_server::{PolicyAdmin, PolicyAdminServer};
use podroute_proto::policy::v1::{
    Endpoint as EndpointMessage, ExplainRequest, ExplainResponse, ListEndpointsRequest,
    ListEndpointsResponse, PolicyRef, Protocol as ProtocolMessage, Verdict as VerdictMessage,
};
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};

use crate::agent::View;
use crate::model::cluster::{ObjectKey, Protocol};
use crate::model::evaluate::{Flow, Verdict, evaluate};
use crate::observe::Observer;

/// The admin service, reading the agent's last programmed view through
/// its observer.
#[derive(Debug, Clone)]
pub struct AdminService {
    observer: Arc<Observer>,
}

impl AdminService {
    pub fn new(observer: Arc<Observer>) -> Self {
        AdminService { observer }
    }

    fn current(&self) -> Result<Arc<View>, Status> {
        self.observer.view().ok_or_else(|| {
            Status::unavailable(
                "the agent has not programmed any policy yet (no complete view of the cluster)",
            )
        })
    }
}

/// A tonic router serving the service, ready for
/// `podroute_proto::admin_socket::serve_unix`.
pub fn router(service: AdminService) -> Router {
    Server::builder().add_service(PolicyAdminServer::new(service))
}

fn policy_ref(key: &ObjectKey) -> PolicyRef {
    PolicyRef {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

#[tonic::async_trait]
impl PolicyAdmin for AdminService {
    async fn get_version(
        &self,
        _: Request<GetVersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(podroute_proto::version_info(
            crate::DAEMON_NAME,
            env!("CARGO_PKG_VERSION"),
            podroute_proto::POLICY_API,
        )))
    }

    async fn get_status(
        &self,
        _: Request<podroute_proto::common::v1::GetStatusRequest>,
    ) -> Result<Response<podroute_proto::policy::v1::PolicyStatus>, Status> {
        // Answers before the first sync too: then it says why not ready.
        Ok(Response::new(self.observer.status().await))
    }

    async fn list_endpoints(
        &self,
        _: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        let view = self.current()?;
        let endpoints = view
            .compiled
            .endpoints
            .iter()
            .map(|e| {
                let mut policies: Vec<&ObjectKey> =
                    e.ingress.iter().chain(e.egress.iter()).flatten().collect();
                policies.sort();
                policies.dedup();
                EndpointMessage {
                    namespace: e.key.namespace.clone(),
                    pod: e.key.name.clone(),
                    addresses: e.addresses.iter().map(ToString::to_string).collect(),
                    ingress_isolated: e.ingress.is_some(),
                    egress_isolated: e.egress.is_some(),
                    policies: policies.into_iter().map(policy_ref).collect(),
                }
            })
            .collect();
        Ok(Response::new(ListEndpointsResponse { endpoints }))
    }

    async fn explain(
        &self,
        request: Request<ExplainRequest>,
    ) -> Result<Response<ExplainResponse>, Status> {
        let request = request.into_inner();
        let view = self.current()?;
        let protocol = match ProtocolMessage::try_from(request.protocol) {
            Ok(ProtocolMessage::Unspecified | ProtocolMessage::Tcp) => Protocol::Tcp,
            Ok(ProtocolMessage::Udp) => Protocol::Udp,
            Ok(ProtocolMessage::Sctp) => Protocol::Sctp,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown protocol {}",
                    request.protocol
                )));
            }
        };
        let port = u16::try_from(request.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Status::invalid_argument(format!("port {} is not 1-65535", request.port))
            })?;
        let (source, destination) = addresses(&view, &request.from, &request.to)?;
        let flow = Flow {
            source,
            destination,
            protocol,
            port,
        };
        let decision = evaluate(&view.cluster, &flow);
        let side = |verdict: &Verdict, address: IpAddr, what: &str| {
            let who = match view.cluster.pod_at(address) {
                Some(pod) => format!(
                    "{what} of {} (node {})",
                    pod.key,
                    pod.node.as_deref().unwrap_or("unknown")
                ),
                None => format!("{what} of {address}"),
            };
            format!("{who}: {verdict}")
        };
        let mut policies = Vec::new();
        for verdict in [&decision.egress, &decision.ingress] {
            match verdict {
                Verdict::Allowed { policy, .. } => policies.push(policy_ref(policy)),
                Verdict::Denied { isolating } => policies.extend(isolating.iter().map(policy_ref)),
                Verdict::NotAPod | Verdict::NotIsolated | Verdict::Itself => {}
            }
        }
        let reason = format!(
            "{source} -> {destination} {port}/{protocol}: {}; {}",
            side(&decision.egress, source, "egress"),
            side(&decision.ingress, destination, "ingress"),
        );
        Ok(Response::new(ExplainResponse {
            verdict: if decision.allowed() {
                VerdictMessage::Allowed
            } else {
                VerdictMessage::Denied
            } as i32,
            reason,
            policies,
        }))
    }
}

/// Each side is an address or `namespace/pod`; a pod side takes the pod's
/// address of the other side's family (IPv4 first when both are pods).
fn addresses(view: &View, from: &str, to: &str) -> Result<(IpAddr, IpAddr), Status> {
    let side = |text: &str| -> Result<Vec<IpAddr>, Status> {
        if let Ok(address) = text.parse::<IpAddr>() {
            return Ok(vec![address]);
        }
        let (namespace, name) = text.split_once('/').ok_or_else(|| {
            Status::invalid_argument(format!(
                "{text:?} is neither an IP address nor namespace/pod"
            ))
        })?;
        let pod = view
            .cluster
            .pod(&ObjectKey::new(namespace, name))
            .ok_or_else(|| Status::not_found(format!("no pod {text} with an address is known")))?;
        let mut addresses = pod.addresses.clone();
        addresses.sort_by_key(|a| a.is_ipv6());
        Ok(addresses)
    };
    let (sources, destinations) = (side(from)?, side(to)?);
    for source in &sources {
        if let Some(destination) = destinations
            .iter()
            .find(|d| d.is_ipv4() == source.is_ipv4())
        {
            return Ok((*source, *destination));
        }
    }
    Err(Status::invalid_argument(format!(
        "{from} and {to} have no address family in common"
    )))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use podroute_proto::admin_socket::{BackgroundServer, connect_unix};
    use podroute_proto::observe::Uptime;
    use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
    use tokio::sync::watch;

    use super::*;
    use crate::apply::ApplyReport;
    use crate::apply::runner::Runner;
    use crate::compile::compile;
    use crate::model::test_fixtures::xyz_with;
    use crate::observe::LoopStats;

    fn view(policies: &str) -> View {
        let cluster = xyz_with(policies);
        View {
            compiled: Arc::new(compile(&cluster, "n1")),
            cluster,
            problems: Vec::new(),
            synced_at: SystemTime::now(),
            sync_duration: Duration::from_millis(3),
            report: ApplyReport::default(),
            ipsets: 0,
            drops: Arc::default(),
        }
    }

    #[tokio::test]
    async fn endpoints_and_explanations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.sock");
        let (tx, rx) = watch::channel(None);
        // No drop rules in these views: the runner is never used.
        let observer = Observer::new(
            "n1".into(),
            "manifests /nowhere".into(),
            rx,
            Arc::new(LoopStats::new()),
            Arc::new(Uptime::new()),
            Runner::host(),
        );
        let server = BackgroundServer::start(&path, router(AdminService::new(Arc::new(observer))))
            .await
            .unwrap();
        let mut client = PolicyAdminClient::new(connect_unix(&path).await.unwrap());

        let info = client
            .get_version(GetVersionRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.daemon, "podroute-policy-agent");
        assert_eq!(info.api_version, "podroute.policy.v1");
        let early = client
            .list_endpoints(ListEndpointsRequest {})
            .await
            .unwrap_err();
        assert_eq!(early.code(), tonic::Code::Unavailable);
        let status = client
            .get_status(podroute_proto::common::v1::GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        let health = status.health.unwrap();
        assert!(health.live && !health.ready, "{health:?}");
        assert_eq!(
            health.reason,
            "waiting for the first view of the cluster from manifests /nowhere"
        );
        assert_eq!((status.node.as_str(), status.syncs), ("n1", 0));
        assert_eq!(status.last_sync_seconds_ago, None);

        tx.send_replace(Some(Arc::new(view(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: y}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {}\n",
        ))));
        let endpoints = client
            .list_endpoints(ListEndpointsRequest {})
            .await
            .unwrap()
            .into_inner()
            .endpoints;
        let names: Vec<String> = endpoints
            .iter()
            .map(|e| {
                format!(
                    "{}/{} {} {}",
                    e.namespace,
                    e.pod,
                    e.ingress_isolated,
                    e.policies.len()
                )
            })
            .collect();
        assert_eq!(names, vec!["x/a false 0", "y/a true 1", "z/a false 0"]);
        let status = client
            .get_status(podroute_proto::common::v1::GetStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(status.health.unwrap().ready);
        assert_eq!(
            (status.endpoints, status.isolated_endpoints, status.policies),
            (3, 1, 1)
        );
        assert!(status.last_sync_seconds_ago.is_some());
        assert_eq!(status.last_sync_duration_ms, 3);
        assert_eq!(endpoints[1].addresses, vec!["10.0.1.1", "fd00::11"]);

        let explain = |from: &str, to: &str, protocol: ProtocolMessage| ExplainRequest {
            from: from.into(),
            to: to.into(),
            port: 80,
            protocol: protocol as i32,
        };
        let denied = client
            .explain(explain("x/b", "y/a", ProtocolMessage::Tcp))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(denied.verdict, VerdictMessage::Denied as i32);
        assert!(
            denied
                .reason
                .contains("ingress of y/a (node n1): denied: isolated by y/deny"),
            "{}",
            denied.reason
        );
        assert_eq!(
            denied.policies,
            vec![policy_ref(&ObjectKey::new("y", "deny"))]
        );
        let allowed = client
            .explain(explain("y/b", "fd00::11", ProtocolMessage::Udp))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(allowed.verdict, VerdictMessage::Allowed as i32);
        assert!(
            allowed.reason.contains("fd00::12 -> fd00::11 80/UDP"),
            "{}",
            allowed.reason
        );
        assert!(
            allowed.reason.contains("allowed by y/deny rule 0"),
            "{}",
            allowed.reason
        );

        let unknown = client
            .explain(explain("x/nobody", "y/a", ProtocolMessage::Tcp))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        let mixed = client
            .explain(explain("10.0.0.1", "fd00::11", ProtocolMessage::Tcp))
            .await
            .unwrap_err();
        assert_eq!(mixed.code(), tonic::Code::InvalidArgument);

        drop(client);
        server.stop().await.unwrap();
    }
}
