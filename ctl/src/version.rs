// `podctl version`: podctl's own version and, for each daemon, the version
// it reports over its admin socket or the reason it could not be asked.
// Always exits 0: the output states each daemon's condition, and reaching
// none of them is a normal thing to ask about.

use std::path::PathBuf;

use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use podroute_proto::common::v1::{GetVersionRequest, VersionInfo};
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
use serde::Serialize;

use crate::daemons::{self, Daemon, Unreachable};
use crate::{Output, table};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub podctl: ClientVersion,
    pub daemons: Vec<DaemonVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonVersion {
    pub daemon: &'static str,
    pub socket: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks every daemon for its version.
pub async fn collect(sockets: &[(Daemon, PathBuf)]) -> Report {
    let mut daemons = Vec::new();
    for (daemon, socket) in sockets {
        let answer = get_version(*daemon, socket.clone()).await;
        let (version, api_version, error) = match answer {
            Ok(info) => (Some(info.version), Some(info.api_version), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        daemons.push(DaemonVersion {
            daemon: daemon.name(),
            socket: socket.clone(),
            version,
            api_version,
            error,
        });
    }
    Report {
        podctl: ClientVersion {
            version: env!("CARGO_PKG_VERSION"),
        },
        daemons,
    }
}

pub fn render(report: &Report, output: Output) -> Result<String, serde_json::Error> {
    if output == Output::Json {
        return serde_json::to_string_pretty(report).map(|s| s + "\n");
    }
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        "podctl".to_string(),
        report.podctl.version.to_string(),
        dash(),
        dash(),
    ]];
    for d in &report.daemons {
        rows.push(vec![
            d.daemon.to_string(),
            d.version.clone().unwrap_or_else(dash),
            d.api_version.clone().unwrap_or_else(dash),
            d.error.clone().unwrap_or_else(|| "ok".to_string()),
        ]);
    }
    Ok(table::render(
        &["COMPONENT", "VERSION", "API", "STATUS"],
        &rows,
    ))
}

async fn get_version(daemon: Daemon, socket: PathBuf) -> Result<VersionInfo, Unreachable> {
    let request = GetVersionRequest {};
    match daemon {
        Daemon::Bgpd => {
            daemons::call(daemon, &socket, |ch| async move {
                BgpAdminClient::new(ch).get_version(request).await
            })
            .await
        }
        Daemon::Ipamd => {
            daemons::call(daemon, &socket, |ch| async move {
                IpamClient::new(ch).get_version(request).await
            })
            .await
        }
        Daemon::Policy => {
            daemons::call(daemon, &socket, |ch| async move {
                PolicyAdminClient::new(ch).get_version(request).await
            })
            .await
        }
    }
}
