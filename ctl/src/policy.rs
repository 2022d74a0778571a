// `podctl policy endpoints|explain`: what podroute-policy-agent enforces on
// this node, and why a connection is allowed or denied.

use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
use podroute_proto::policy::v1::{
    Endpoint, ExplainRequest, ListEndpointsRequest, PolicyRef, Protocol, Verdict,
};
use serde::Serialize;

use crate::daemons::{self, Target, Unreachable};
use crate::human;
use crate::output::{RenderError, View};

/// One pod of this node; the JSON field names are a documented, stable
/// schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub namespace: String,
    pub pod: String,
    pub addresses: Vec<String>,
    pub ingress_isolated: bool,
    pub egress_isolated: bool,
    /// `namespace/name` of each policy that isolates it.
    pub policies: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct EndpointsReport {
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub from: String,
    pub to: String,
    pub port: u16,
    pub protocol: String,
    /// "allowed" or "denied".
    pub verdict: String,
    pub reason: String,
    pub policies: Vec<String>,
}

fn policy_name(p: &PolicyRef) -> String {
    format!("{}/{}", p.namespace, p.name)
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        EndpointView {
            namespace: e.namespace,
            pod: e.pod,
            addresses: e.addresses,
            ingress_isolated: e.ingress_isolated,
            egress_isolated: e.egress_isolated,
            policies: e.policies.iter().map(policy_name).collect(),
        }
    }
}

pub async fn endpoints(agent: &Target) -> Result<EndpointsReport, Unreachable> {
    let response = daemons::call(agent, |ch| async move {
        PolicyAdminClient::new(ch)
            .list_endpoints(ListEndpointsRequest {})
            .await
    })
    .await?;
    Ok(EndpointsReport {
        endpoints: response.endpoints.into_iter().map(Into::into).collect(),
    })
}

/// `80/TCP`, `53/udp`, or a bare `80` (TCP).
pub fn parse_port(text: &str) -> Result<(u16, Protocol), String> {
    let (number, protocol) = match text.split_once('/') {
        Some((n, p)) => (n, p),
        None => (text, "TCP"),
    };
    let port = number
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{number:?} is not a port (1-65535)"))?;
    let protocol = match protocol.to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => return Err(format!("{other:?} is not TCP, UDP or SCTP")),
    };
    Ok((port, protocol))
}

pub async fn explain(
    agent: &Target,
    from: &str,
    to: &str,
    (port, protocol): (u16, Protocol),
) -> Result<Explanation, Unreachable> {
    let request = ExplainRequest {
        from: from.to_owned(),
        to: to.to_owned(),
        port: u32::from(port),
        protocol: protocol as i32,
    };
    let response = daemons::call(agent, |ch| async move {
        PolicyAdminClient::new(ch).explain(request).await
    })
    .await?;
    Ok(Explanation {
        from: from.to_owned(),
        to: to.to_owned(),
        port,
        protocol: match protocol {
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Tcp | Protocol::Unspecified => "TCP",
        }
        .to_owned(),
        verdict: if response.verdict == Verdict::Allowed as i32 {
            "allowed"
        } else {
            "denied"
        }
        .to_owned(),
        reason: response.reason,
        policies: response.policies.iter().map(policy_name).collect(),
    })
}

pub fn render_endpoints(report: &EndpointsReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    if report.endpoints.is_empty() {
        return Ok("no pods on this node\n".to_owned());
    }
    let isolated = |yes: bool| if yes { "isolated" } else { "open" }.to_owned();
    let rows: Vec<Vec<String>> = report
        .endpoints
        .iter()
        .map(|e| {
            vec![
                format!("{}/{}", e.namespace, e.pod),
                e.addresses.join(","),
                isolated(e.ingress_isolated),
                isolated(e.egress_isolated),
                if e.policies.is_empty() {
                    "-".to_owned()
                } else {
                    e.policies.join(",")
                },
            ]
        })
        .collect();
    Ok(human::table(
        &["POD", "ADDRESSES", "INGRESS", "EGRESS", "POLICIES"],
        &rows,
    ))
}

pub fn render_explanation(explanation: &Explanation, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(explanation)? {
        return Ok(text);
    }
    // The reason is "<flow>: <egress side>; <ingress side>": one line each.
    let mut text = format!(
        "{} -> {} {}/{}: {}\n",
        explanation.from,
        explanation.to,
        explanation.port,
        explanation.protocol,
        view.style.state(&explanation.verdict.to_uppercase())
    );
    let sides = explanation
        .reason
        .split_once(": ")
        .map_or(explanation.reason.as_str(), |(_, rest)| rest);
    for side in sides.split("; ") {
        text.push_str(&format!("  {side}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_operators_write_them() {
        assert_eq!(parse_port("80/TCP"), Ok((80, Protocol::Tcp)));
        assert_eq!(parse_port("53/udp"), Ok((53, Protocol::Udp)));
        assert_eq!(parse_port("8080"), Ok((8080, Protocol::Tcp)));
        assert_eq!(parse_port("9/SCTP"), Ok((9, Protocol::Sctp)));
        assert!(parse_port("0").is_err());
        assert!(parse_port("80/ICMP").unwrap_err().contains("ICMP"));
        assert!(parse_port("http/TCP").is_err());
    }

    #[test]
    fn an_explanation_reads_one_side_per_line() {
        let explanation = Explanation {
            from: "x/a".into(),
            to: "y/b".into(),
            port: 80,
            protocol: "TCP".into(),
            verdict: "denied".into(),
            reason: "10.0.0.1 -> 10.0.1.2 80/TCP: egress of x/a (node n1): no policy isolates it; ingress of y/b (node n2): denied: isolated by y/deny and no rule allows it".into(),
            policies: vec!["y/deny".into()],
        };
        let text = render_explanation(&explanation, View::TABLE).unwrap();
        assert_eq!(
            text,
            "x/a -> y/b 80/TCP: DENIED\n  egress of x/a (node n1): no policy isolates it\n  ingress of y/b (node n2): denied: isolated by y/deny and no rule allows it\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_explanation(&explanation, View::JSON).unwrap()).unwrap();
        assert_eq!(json["verdict"], "denied");
        assert_eq!(json["policies"][0], "y/deny");
    }
}
