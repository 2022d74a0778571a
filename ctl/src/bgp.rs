// `podctl bgp ...`: views of podroute-bgpd's sessions and routes. So far
// `podctl bgp peers`, as a table (like `birdc show protocols`) or JSON.

use std::path::Path;

use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::bgpd::v1::{ListPeersRequest, Peer, SessionState};
use serde::Serialize;

use crate::daemons::{self, Daemon, Unreachable};
use crate::{Output, table};

/// One peer as podctl prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub address: String,
    pub remote_as: u32,
    pub local_as: u32,
    pub state: String,
    pub uptime_seconds: u64,
    pub prefixes_received: u64,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct PeersReport {
    pub peers: Vec<PeerView>,
}

pub async fn peers(socket: &Path) -> Result<PeersReport, Unreachable> {
    let response = daemons::call(Daemon::Bgpd, socket, |ch| async move {
        BgpAdminClient::new(ch)
            .list_peers(ListPeersRequest {})
            .await
    })
    .await?;
    Ok(PeersReport {
        peers: response.peers.into_iter().map(PeerView::from).collect(),
    })
}

pub fn render_peers(report: &PeersReport, output: Output) -> Result<String, serde_json::Error> {
    if output == Output::Json {
        return serde_json::to_string_pretty(report).map(|s| s + "\n");
    }
    if report.peers.is_empty() {
        return Ok("no BGP peers\n".to_string());
    }
    let rows: Vec<Vec<String>> = report
        .peers
        .iter()
        .map(|p| {
            vec![
                p.address.clone(),
                p.remote_as.to_string(),
                p.local_as.to_string(),
                p.state.clone(),
                format_uptime(p.uptime_seconds),
                p.prefixes_received.to_string(),
                p.prefixes_accepted.to_string(),
                p.prefixes_advertised.to_string(),
                p.description.clone(),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "PEER",
            "REMOTE AS",
            "LOCAL AS",
            "STATE",
            "UPTIME",
            "RECEIVED",
            "ACCEPTED",
            "ADVERTISED",
            "DESCRIPTION",
        ],
        &rows,
    ))
}

impl From<Peer> for PeerView {
    fn from(peer: Peer) -> Self {
        PeerView {
            state: state_name(peer.state),
            address: peer.address,
            remote_as: peer.remote_as,
            local_as: peer.local_as,
            uptime_seconds: peer.uptime_seconds,
            prefixes_received: peer.prefixes_received,
            prefixes_accepted: peer.prefixes_accepted,
            prefixes_advertised: peer.prefixes_advertised,
            description: peer.description,
        }
    }
}

/// RFC 4271 §8.2.2 state names as BIRD and FRR print them.
fn state_name(state: i32) -> String {
    match SessionState::try_from(state) {
        Ok(SessionState::Idle) => "Idle".into(),
        Ok(SessionState::Connect) => "Connect".into(),
        Ok(SessionState::Active) => "Active".into(),
        Ok(SessionState::Opensent) => "OpenSent".into(),
        Ok(SessionState::Openconfirm) => "OpenConfirm".into(),
        Ok(SessionState::Established) => "Established".into(),
        Ok(SessionState::Unspecified) | Err(_) => format!("unknown({state})"),
    }
}

/// 93784 → "1d2h3m4s"; leading zero units are left out.
fn format_uptime(seconds: u64) -> String {
    let units = [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')];
    let mut rest = seconds;
    let mut out = String::new();
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || !out.is_empty() || size == 1 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_compact() {
        assert_eq!(format_uptime(0), "0s");
        assert_eq!(format_uptime(59), "59s");
        assert_eq!(format_uptime(3_600), "1h0m0s");
        assert_eq!(format_uptime(93_784), "1d2h3m4s");
    }

    #[test]
    fn peer_table_and_json() {
        let report = PeersReport {
            peers: vec![PeerView::from(Peer {
                address: "192.0.2.1".into(),
                remote_as: 65001,
                local_as: 65000,
                state: SessionState::Established.into(),
                uptime_seconds: 61,
                prefixes_received: 10,
                prefixes_accepted: 9,
                prefixes_advertised: 2,
                description: String::new(),
            })],
        };
        let table = render_peers(&report, Output::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("PEER       REMOTE AS  LOCAL AS  STATE"));
        assert!(lines[1].starts_with("192.0.2.1  65001      65000     Established  1m1s"));

        let json: serde_json::Value =
            serde_json::from_str(&render_peers(&report, Output::Json).unwrap()).unwrap();
        assert_eq!(json["peers"][0]["state"], "Established");
        assert_eq!(json["peers"][0]["remoteAs"], 65001);
        assert_eq!(state_name(42), "unknown(42)");
    }
}
