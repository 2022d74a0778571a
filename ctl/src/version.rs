// `podctl version`: podctl's own version and, for each daemon, the version
// and API it reports or the reason it could not be asked. Always exits 0:
// the output states each daemon's condition, and reaching none of them is
// a normal thing to ask about. A daemon whose API is not the one podctl
// speaks is called out: that is what to upgrade.

use serde::Serialize;

use crate::daemons::{self, Daemon, PODCTL_VERSION};
use crate::human::{self, Tone};
use crate::output::{RenderError, View};
use crate::{Context, config::Setting};

/// The JSON field names are a documented, stable schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct Report {
    pub podctl: ClientVersion,
    pub daemons: Vec<DaemonVersion>,
}

#[derive(Debug, Serialize)]
pub struct ClientVersion {
    pub version: &'static str,
    /// The config file read, or null.
    pub config_file: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DaemonVersion {
    pub daemon: &'static str,
    /// Where podctl looked: unix:///PATH or https://HOST:PORT (or the
    /// setting as given, when it is not a valid endpoint).
    pub endpoint: String,
    /// The API package podctl speaks to this daemon.
    pub expected_api_version: &'static str,
    /// Null when the daemon did not answer.
    pub version: Option<String>,
    pub api_version: Option<String>,
    /// The daemon answered and speaks podctl's API.
    pub compatible: bool,
    /// Why the daemon did not answer, or why it is not compatible; null
    /// when all is well.
    pub error: Option<String>,
}

/// Asks every daemon for its version.
pub async fn collect(ctx: &Context) -> Report {
    let mut daemons = Vec::new();
    for daemon in Daemon::ALL {
        daemons.push(ask(ctx, daemon).await);
    }
    Report {
        podctl: ClientVersion {
            version: PODCTL_VERSION,
            config_file: ctx.endpoints.file.as_ref().map(|p| p.display().to_string()),
        },
        daemons,
    }
}

async fn ask(ctx: &Context, daemon: Daemon) -> DaemonVersion {
    let mut row = DaemonVersion {
        daemon: daemon.name(),
        endpoint: setting(ctx, daemon).text.clone(),
        expected_api_version: daemon.api(),
        version: None,
        api_version: None,
        compatible: false,
        error: None,
    };
    let target = match ctx.endpoints.target(daemon) {
        Ok(target) => target,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    row.endpoint = target.endpoint.to_string();
    match daemons::version(&target).await {
        Ok(info) => {
            row.compatible = info.api_version == daemon.api();
            if !row.compatible {
                row.error = Some(format!(
                    "API mismatch: podctl {PODCTL_VERSION} speaks {}, {} {} speaks {}; upgrade the older one",
                    daemon.api(),
                    daemon.name(),
                    info.version,
                    info.api_version
                ));
            }
            row.version = Some(info.version);
            row.api_version = Some(info.api_version);
        }
        Err(e) => row.error = Some(e.to_string()),
    }
    row
}

fn setting(ctx: &Context, daemon: Daemon) -> &Setting {
    match daemon {
        Daemon::Bgpd => &ctx.endpoints.bgpd,
        Daemon::Ipamd => &ctx.endpoints.ipamd,
        Daemon::Policy => &ctx.endpoints.policy,
    }
}

pub fn render(report: &Report, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    let style = view.style;
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        "podctl".to_string(),
        report.podctl.version.to_string(),
        dash(),
        dash(),
        report
            .podctl
            .config_file
            .as_ref()
            .map_or_else(dash, |f| format!("config {f}")),
    ]];
    for d in &report.daemons {
        let status = match (&d.error, d.compatible) {
            (None, _) => style.paint("ok", Tone::Good),
            // It answered, but with another API.
            (Some(e), false) if d.version.is_some() => style.paint(e, Tone::Pending),
            (Some(e), _) => style.paint(e, Tone::Bad),
        };
        rows.push(vec![
            d.daemon.to_string(),
            d.version.clone().unwrap_or_else(dash),
            d.api_version.clone().unwrap_or_else(dash),
            d.endpoint.clone(),
            status,
        ]);
    }
    Ok(human::table(
        &["COMPONENT", "VERSION", "API", "ENDPOINT", "STATUS"],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            podctl: ClientVersion {
                version: "0.1.0",
                config_file: None,
            },
            daemons: vec![
                DaemonVersion {
                    daemon: "podroute-bgpd",
                    endpoint: "unix:///run/podroute/bgpd.sock".into(),
                    expected_api_version: "podroute.bgpd.v1",
                    version: Some("0.1.0".into()),
                    api_version: Some("podroute.bgpd.v1".into()),
                    compatible: true,
                    error: None,
                },
                DaemonVersion {
                    daemon: "podroute-ipamd",
                    endpoint: "https://ipamd:9443".into(),
                    expected_api_version: "podroute.ipam.v1",
                    version: None,
                    api_version: None,
                    compatible: false,
                    error: Some(
                        "is podroute-ipamd listening on ipamd:9443 (--listen)? connection refused"
                            .into(),
                    ),
                },
            ],
        }
    }

    #[test]
    fn table_and_json() {
        let text = render(&report(), View::TABLE).unwrap();
        assert_eq!(
            text,
            "\
COMPONENT       VERSION  API               ENDPOINT                        STATUS
podctl          0.1.0    -                 -                               -
podroute-bgpd   0.1.0    podroute.bgpd.v1  unix:///run/podroute/bgpd.sock  ok
podroute-ipamd  -        -                 https://ipamd:9443              is podroute-ipamd listening on ipamd:9443 (--listen)? connection refused
"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&report(), View::JSON).unwrap()).unwrap();
        assert_eq!(json["daemons"][0]["api_version"], "podroute.bgpd.v1");
        assert_eq!(json["daemons"][0]["compatible"], true);
        assert_eq!(json["daemons"][0]["error"], serde_json::Value::Null);
        assert_eq!(json["daemons"][1]["version"], serde_json::Value::Null);
        assert_eq!(json["podctl"]["config_file"], serde_json::Value::Null);
    }
}
