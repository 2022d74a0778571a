// The network configuration the plugin reads on stdin (CNI spec 1.1 section
// 1 "Plugin configuration objects", as section 3 derives it: name and
// cniVersion injected from the list). NetConf is the JSON as given;
// PluginConf is the checked configuration ADD/DEL/CHECK/GC/STATUS work from.
// runtimeConfig.ips is CONVENTIONS.md's "ips" capability.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use podroute_proto::ipamd_client::EndpointError;
use serde::{Deserialize, Deserializer, Serialize};

use crate::args::is_spec_identifier;
use crate::result::{PrevResult, ResultError, parse_cidr};

/// One plugin configuration (what the runtime passes after expanding a
/// conflist: name and cniVersion injected).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub plugin_type: Option<String>,
    #[serde(default)]
    pub ipamd: Option<IpamdConf>,
    pub node_name: Option<String>,
    /// File holding the node name (written by the DaemonSet); used when
    /// nodeName is absent. Neither → the host name.
    pub node_name_file: Option<PathBuf>,
    /// 0 or absent: the node's uplink MTU.
    #[serde(default)]
    pub mtu: u32,
    /// "ipv4" / "ipv6"; empty: every family the node's pools offer.
    #[serde(default)]
    pub families: Vec<Family>,
    /// IPPool names to allocate from; empty: every pool selecting the node.
    #[serde(default)]
    pub pools: Vec<String>,
    /// One line per invocation is appended here when set.
    pub log_file: Option<PathBuf>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    // every other field (args, dns, capabilities, ...) is accepted and ignored
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamdConf {
    /// "unix:///run/podroute/ipamd.sock", "/run/podroute/ipamd.sock", or
    /// "https://HOST:PORT" (TLS; http:// refused: node identity needs TLS).
    pub endpoint: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    /// Per-call deadline, default 30.
    pub timeout_seconds: Option<u64>,
}

/// An address family. Read case-insensitively ("ipv4", "IPv6"), written
/// lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// CONVENTIONS.md "ips" capability: exact addresses, "10.1.2.3/32" or "10.1.2.3".
    #[serde(default)]
    pub ips: Vec<String>,
}

/// One entry of GC's cni.dev/valid-attachments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// A configuration this plugin cannot work from; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: missing")]
    Missing(&'static str),
    #[error(
        "name {0:?}: must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
    )]
    BadName(String),
    #[error(
        "ipamd.endpoint {0:?}: plain http is refused, use https:// with tlsCert/tlsKey/tlsCa or a unix socket"
    )]
    PlainHttp(String),
    #[error("ipamd.endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        endpoint: String,
        reason: &'static str,
    },
    #[error("ipamd: tlsCert and tlsKey go together")]
    HalfIdentity,
    #[error(
        "ipamd.tlsCa: missing; an https:// endpoint needs the CA that signed ipamd's certificate"
    )]
    MissingCa,
    #[error("ipamd.{0}: only used with an https:// endpoint")]
    TlsWithoutHttps(&'static str),
    #[error("{field} {path:?}: must be an absolute path")]
    RelativePath { field: &'static str, path: PathBuf },
    #[error("ipamd.timeoutSeconds {0}: must be between 1 and {MAX_TIMEOUT_SECONDS}")]
    BadTimeout(u64),
    #[error("mtu {0}: below the IPv4 minimum of {MIN_MTU_IPV4} (IPv6: {MIN_MTU_IPV6})")]
    MtuBelowIpv4Minimum(u32),
    #[error("mtu {0}: below the IPv6 minimum of {MIN_MTU_IPV6}, and families holds ipv6")]
    MtuBelowIpv6Minimum(u32),
    #[error("mtu {0}: above {MAX_MTU}, the largest a link takes")]
    MtuTooLarge(u32),
    #[error("families: {0:?} is not \"ipv4\" or \"ipv6\"")]
    BadFamily(String),
    #[error(
        "nodeName {0:?}: not a Kubernetes node name (lowercase letters, digits, '-' and '.', at most 253)"
    )]
    BadNodeName(String),
    #[error(
        "pools[{index}] {name:?}: not an IPPool name (lowercase letters, digits, '-' and '.', at most 253)"
    )]
    BadPool { index: usize, name: String },
    #[error("runtimeConfig.ips: {0:?} is not an IP address")]
    BadRequestedIp(String),
    #[error(
        "runtimeConfig.ips: {first} and {second} are both {family}; at most one address per family"
    )]
    TwoRequestedIps {
        first: IpAddr,
        second: IpAddr,
        family: Family,
    },
    #[error("runtimeConfig.ips: {ip} is {family}, which families leaves out")]
    RequestedIpFamilyExcluded { ip: IpAddr, family: Family },
    #[error(transparent)]
    PrevResult(#[from] ResultError),
}

pub use podroute_proto::ipamd_client::{ClientIdentity, IpamdEndpoint, TlsFiles};

/// A validated configuration for ADD/DEL/CHECK/GC/STATUS.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    /// The negotiated version, the one results are written in.
    pub cni_version: String,
    pub network: String,
    pub ipamd: IpamdEndpoint,
    /// Some exactly when `ipamd` is https.
    pub tls: Option<TlsFiles>,
    pub timeout: Duration,
    /// Resolved by the caller (node_name_file/hostname are I/O).
    pub node_name: Option<String>,
    pub node_name_file: Option<PathBuf>,
    /// None = auto (the uplink's). At least 68, and 1280 when `families`
    /// names ipv6; with `families` empty an IPv6 address needs the caller
    /// to check against 1280.
    pub mtu: Option<u32>,
    /// Without duplicates, in the order given.
    pub families: Vec<Family>,
    /// Without duplicates, in the order given.
    pub pools: Vec<String>,
    /// From runtimeConfig.ips (prefix dropped); at most one per family, and
    /// only of families `families` holds (when it is not empty).
    pub requested_ips: Vec<IpAddr>,
    pub log_file: Option<PathBuf>,
    pub prev_result: Option<PrevResult>,
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// What `podroute-cni install` writes; not a silent default: a missing
/// ipamd.endpoint is an error.
pub const DEFAULT_IPAMD_ENDPOINT: &str = "unix:///run/podroute/ipamd.sock";
/// ipamd.timeoutSeconds when absent.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest ipamd.timeoutSeconds taken.
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Smallest MTU IPv4 works with (RFC 791).
pub const MIN_MTU_IPV4: u32 = 68;
/// Smallest MTU IPv6 works with (RFC 8200).
pub const MIN_MTU_IPV6: u32 = 1280;
/// Largest MTU a link takes (the kernel's ETH_MAX_MTU).
pub const MAX_MTU: u32 = 65535;

impl NetConf {
    pub fn parse(input: &[u8]) -> Result<NetConf, serde_json::Error> {
        serde_json::from_slice(input)
    }
}

impl Family {
    /// "ipv4" / "ipv6".
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Family {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Family, ConfigError> {
        if s.eq_ignore_ascii_case("ipv4") {
            Ok(Family::Ipv4)
        } else if s.eq_ignore_ascii_case("ipv6") {
            Ok(Family::Ipv6)
        } else {
            Err(ConfigError::BadFamily(s.to_owned()))
        }
    }
}

impl<'de> Deserialize<'de> for Family {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Family, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PluginConf {
    /// Checks everything (ipamd.endpoint missing → error naming the field).
    /// `cni_version` is the already-negotiated version string.
    pub fn from_netconf(conf: NetConf, cni_version: &str) -> Result<PluginConf, ConfigError> {
        let network = conf
            .name
            .filter(|n| !n.is_empty())
            .ok_or(ConfigError::Missing("name"))?;
        if !is_spec_identifier(&network) {
            return Err(ConfigError::BadName(network));
        }

        let ipamd_conf = conf.ipamd.ok_or(ConfigError::Missing("ipamd.endpoint"))?;
        let ipamd = parse_endpoint(&ipamd_conf.endpoint)?;
        let tls = tls_files(&ipamd, &ipamd_conf)?;
        let timeout = match ipamd_conf.timeout_seconds {
            None => DEFAULT_TIMEOUT,
            Some(s @ 1..=MAX_TIMEOUT_SECONDS) => Duration::from_secs(s),
            Some(s) => return Err(ConfigError::BadTimeout(s)),
        };

        if let Some(node) = &conf.node_name
            && !is_dns_subdomain(node)
        {
            return Err(ConfigError::BadNodeName(node.clone()));
        }
        check_absolute("nodeNameFile", conf.node_name_file.as_deref())?;
        check_absolute("logFile", conf.log_file.as_deref())?;

        let families = dedup(conf.families);
        let mtu = match conf.mtu {
            0 => None,
            m if m < MIN_MTU_IPV4 => return Err(ConfigError::MtuBelowIpv4Minimum(m)),
            m if m > MAX_MTU => return Err(ConfigError::MtuTooLarge(m)),
            m if m < MIN_MTU_IPV6 && families.contains(&Family::Ipv6) => {
                return Err(ConfigError::MtuBelowIpv6Minimum(m));
            }
            m => Some(m),
        };

        if let Some((index, name)) = conf
            .pools
            .iter()
            .enumerate()
            .find(|(_, p)| !is_dns_subdomain(p))
        {
            return Err(ConfigError::BadPool {
                index,
                name: name.clone(),
            });
        }
        let pools = dedup(conf.pools);

        let requested_ips = requested_ips(&conf.runtime_config.ips, &families)?;
        let prev_result = conf
            .prev_result
            .as_ref()
            .map(PrevResult::from_value)
            .transpose()?;

        Ok(PluginConf {
            cni_version: cni_version.to_owned(),
            network,
            ipamd,
            tls,
            timeout,
            node_name: conf.node_name,
            node_name_file: conf.node_name_file,
            mtu,
            families,
            pools,
            requested_ips,
            log_file: conf.log_file,
            prev_result,
            valid_attachments: conf.valid_attachments,
        })
    }
}

/// The shared endpoint syntax (podroute_proto::ipamd_client), its
/// refusals named after this configuration's field.
fn parse_endpoint(endpoint: &str) -> Result<IpamdEndpoint, ConfigError> {
    IpamdEndpoint::parse(endpoint).map_err(|e| match e {
        EndpointError::Empty => ConfigError::Missing("ipamd.endpoint"),
        EndpointError::PlainHttp => ConfigError::PlainHttp(endpoint.to_owned()),
        EndpointError::Bad(reason) => ConfigError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        },
    })
}

fn tls_files(endpoint: &IpamdEndpoint, conf: &IpamdConf) -> Result<Option<TlsFiles>, ConfigError> {
    let identity = match (&conf.tls_cert, &conf.tls_key) {
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => return Err(ConfigError::HalfIdentity),
    };
    if let IpamdEndpoint::Unix(_) = endpoint {
        let given = [
            ("tlsCa", conf.tls_ca.is_some()),
            ("tlsCert", conf.tls_cert.is_some()),
            ("tlsKey", conf.tls_key.is_some()),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(ConfigError::TlsWithoutHttps(field)),
            None => Ok(None),
        };
    }
    let ca = conf.tls_ca.clone().ok_or(ConfigError::MissingCa)?;
    check_absolute("ipamd.tlsCa", Some(&ca))?;
    if let Some(identity) = &identity {
        check_absolute("ipamd.tlsCert", Some(&identity.cert))?;
        check_absolute("ipamd.tlsKey", Some(&identity.key))?;
    }
    Ok(Some(TlsFiles { ca, identity }))
}

/// runtimeConfig.ips → addresses: prefix dropped, one per family, of the
/// allowed families.
fn requested_ips(values: &[String], families: &[Family]) -> Result<Vec<IpAddr>, ConfigError> {
    let mut ips: Vec<IpAddr> = Vec::with_capacity(values.len());
    for value in values {
        let ip = if value.contains('/') {
            parse_cidr(value).map(|net| net.ip())
        } else {
            value.parse().ok()
        }
        .ok_or_else(|| ConfigError::BadRequestedIp(value.clone()))?;
        let family = Family::of(ip);
        if !families.is_empty() && !families.contains(&family) {
            return Err(ConfigError::RequestedIpFamilyExcluded { ip, family });
        }
        if let Some(&first) = ips.iter().find(|other| Family::of(**other) == family) {
            return Err(ConfigError::TwoRequestedIps {
                first,
                second: ip,
                family,
            });
        }
        ips.push(ip);
    }
    Ok(ips)
}

fn check_absolute(field: &'static str, path: Option<&Path>) -> Result<(), ConfigError> {
    match path {
        Some(path) if !path.is_absolute() => Err(ConfigError::RelativePath {
            field,
            path: path.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): labels of lowercase
/// letters, digits and '-', starting and ending alphanumeric, joined by
/// '.', at most 253 bytes.
fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.last()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// Drops later duplicates, keeping the order.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn conf(value: serde_json::Value) -> Result<PluginConf, ConfigError> {
        let netconf = NetConf::parse(value.to_string().as_bytes()).unwrap();
        PluginConf::from_netconf(netconf, "1.1.0")
    }

    fn minimal() -> serde_json::Value {
        json!({
            "cniVersion": "1.1.0",
            "name": "podroute",
            "type": "podroute-cni",
            "ipamd": {"endpoint": DEFAULT_IPAMD_ENDPOINT},
        })
    }

    fn with(mut base: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
        base[key] = value;
        base
    }

    fn with_ipamd(value: serde_json::Value) -> serde_json::Value {
        with(minimal(), "ipamd", value)
    }

    #[test]
    fn minimal_configuration_takes_the_defaults() {
        let c = conf(minimal()).unwrap();
        assert_eq!(
            c,
            PluginConf {
                cni_version: "1.1.0".into(),
                network: "podroute".into(),
                ipamd: IpamdEndpoint::Unix("/run/podroute/ipamd.sock".into()),
                tls: None,
                timeout: Duration::from_secs(30),
                node_name: None,
                node_name_file: None,
                mtu: None,
                families: vec![],
                pools: vec![],
                requested_ips: vec![],
                log_file: None,
                prev_result: None,
                valid_attachments: None,
            }
        );
    }

    #[test]
    fn full_configuration() {
        let c = conf(json!({
            "cniVersion": "1.0.0",
            "name": "pod-net_1.a",
            "type": "podroute-cni",
            "ipamd": {
                "endpoint": "https://ipamd.kube-system.svc:7443",
                "tlsCert": "/etc/podroute/node.crt",
                "tlsKey": "/etc/podroute/node.key",
                "tlsCa": "/etc/podroute/ca.crt",
                "timeoutSeconds": 5
            },
            "nodeName": "worker-1.example.com",
            "nodeNameFile": "/var/lib/podroute/nodename",
            "mtu": 1450,
            "families": ["ipv4", "IPv6", "ipv4"],
            "pools": ["default-v4", "default-v6", "default-v4"],
            "logFile": "/var/log/podroute-cni.log",
            "capabilities": {"ips": true},
            "args": {"cni": {"labels": []}},
            "dns": {"nameservers": ["10.96.0.10"]},
            "runtimeConfig": {"ips": ["10.1.2.3/24", "fd00::7"], "portMappings": []},
            "prevResult": {"ips": [{"address": "10.1.2.3/32"}]},
            "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}],
            "someFutureField": {"x": 1}
        }))
        .unwrap();
        // The negotiated version, not the file's.
        assert_eq!(c.cni_version, "1.1.0");
        assert_eq!(c.network, "pod-net_1.a");
        assert_eq!(
            c.ipamd,
            IpamdEndpoint::Https {
                uri: "https://ipamd.kube-system.svc:7443".into()
            }
        );
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                ca: "/etc/podroute/ca.crt".into(),
                identity: Some(ClientIdentity {
                    cert: "/etc/podroute/node.crt".into(),
                    key: "/etc/podroute/node.key".into(),
                }),
            })
        );
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.node_name.as_deref(), Some("worker-1.example.com"));
        assert_eq!(
            c.node_name_file.as_deref(),
            Some(Path::new("/var/lib/podroute/nodename"))
        );
        assert_eq!(c.mtu, Some(1450));
        assert_eq!(c.families, vec![Family::Ipv4, Family::Ipv6]);
        assert_eq!(c.pools, vec!["default-v4", "default-v6"]);
        assert_eq!(
            c.requested_ips,
            vec![
                "10.1.2.3".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert_eq!(
            c.log_file.as_deref(),
            Some(Path::new("/var/log/podroute-cni.log"))
        );
        assert_eq!(c.prev_result.unwrap().ips.len(), 1);
        assert_eq!(
            c.valid_attachments,
            Some(vec![Attachment {
                container_id: "abc".into(),
                ifname: "eth0".into()
            }])
        );
    }

    #[test]
    fn name_is_required_and_follows_the_spec_rule() {
        let mut missing = minimal();
        missing.as_object_mut().unwrap().remove("name");
        assert_eq!(conf(missing), Err(ConfigError::Missing("name")));
        assert_eq!(
            conf(with(minimal(), "name", json!(""))),
            Err(ConfigError::Missing("name"))
        );
        for bad in ["-net", "_net", ".net", "net/1", "net 1", "net:1", "né"] {
            let err = conf(with(minimal(), "name", json!(bad))).unwrap_err();
            assert_eq!(err, ConfigError::BadName(bad.into()));
        }
        assert_eq!(
            ConfigError::BadName("..".into()).to_string(),
            r#"name "..": must start with a letter or digit and hold only letters, digits, '_', '.', '-'"#
        );
        for ok in ["a", "0", "k8s-pod-network", "Net_1.x"] {
            assert_eq!(
                conf(with(minimal(), "name", json!(ok))).unwrap().network,
                ok
            );
        }
    }

    #[test]
    fn ipamd_endpoint_is_required() {
        let mut missing = minimal();
        missing.as_object_mut().unwrap().remove("ipamd");
        let err = conf(missing).unwrap_err();
        assert_eq!(err, ConfigError::Missing("ipamd.endpoint"));
        assert_eq!(err.to_string(), "ipamd.endpoint: missing");
        assert_eq!(
            conf(with_ipamd(json!({"endpoint": ""}))),
            Err(ConfigError::Missing("ipamd.endpoint"))
        );
        // An ipamd object without endpoint does not decode.
        assert!(NetConf::parse(br#"{"name":"n","ipamd":{}}"#).is_err());
    }

    #[test]
    fn endpoints() {
        let unix = |p: &str| Ok(IpamdEndpoint::Unix(p.into()));
        let https = |u: &str| Ok(IpamdEndpoint::Https { uri: u.into() });
        let cases = [
            (
                "unix:///run/podroute/ipamd.sock",
                unix("/run/podroute/ipamd.sock"),
            ),
            ("unix:/run/x.sock", unix("/run/x.sock")),
            ("UNIX:///run/x.sock", unix("/run/x.sock")),
            ("/run/x.sock", unix("/run/x.sock")),
            ("https://10.0.0.1:7443", https("https://10.0.0.1:7443")),
            ("https://ipamd:7443/", https("https://ipamd:7443")),
            ("HTTPS://[fd00::1]:7443", https("https://[fd00::1]:7443")),
        ];
        for (endpoint, expected) in cases {
            assert_eq!(parse_endpoint(endpoint), expected, "{endpoint}");
        }
        for bad in [
            "unix://run/x.sock",
            "unix:run/x.sock",
            "run/x.sock",
            "https://",
            "https:///",
            "https://h/path",
            "https://user@h:1",
            "https://h :1",
            "tcp://h:1",
            "dns:///ipamd",
            "h:7443",
        ] {
            assert!(
                matches!(parse_endpoint(bad), Err(ConfigError::BadEndpoint { .. })),
                "{bad}"
            );
        }
        let err = parse_endpoint("http://x").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ipamd.endpoint "http://x": plain http is refused, use https:// with tlsCert/tlsKey/tlsCa or a unix socket"#
        );
        assert_eq!(
            parse_endpoint("HTTP://x"),
            Err(ConfigError::PlainHttp("HTTP://x".into()))
        );
    }

    #[test]
    fn tls_rules() {
        let https = "https://ipamd:7443";
        // CA alone: server-only TLS.
        let c = conf(with_ipamd(json!({"endpoint": https, "tlsCa": "/ca.pem"}))).unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                ca: "/ca.pem".into(),
                identity: None
            })
        );
        assert_eq!(
            conf(with_ipamd(json!({"endpoint": https}))),
            Err(ConfigError::MissingCa)
        );
        let err = conf(with_ipamd(
            json!({"endpoint": https, "tlsCa": "/ca.pem", "tlsCert": "/c.pem"}),
        ))
        .unwrap_err();
        assert_eq!(err, ConfigError::HalfIdentity);
        assert_eq!(err.to_string(), "ipamd: tlsCert and tlsKey go together");
        assert_eq!(
            conf(with_ipamd(
                json!({"endpoint": https, "tlsCa": "/ca.pem", "tlsKey": "/k.pem"})
            )),
            Err(ConfigError::HalfIdentity)
        );
        assert_eq!(
            conf(with_ipamd(
                json!({"endpoint": "/run/x.sock", "tlsCa": "/ca.pem"})
            )),
            Err(ConfigError::TlsWithoutHttps("tlsCa"))
        );
        assert_eq!(
            ConfigError::TlsWithoutHttps("tlsCa").to_string(),
            "ipamd.tlsCa: only used with an https:// endpoint"
        );
        let err = conf(with_ipamd(json!({"endpoint": https, "tlsCa": "ca.pem"}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"ipamd.tlsCa "ca.pem": must be an absolute path"#
        );
        let err = conf(with_ipamd(json!({
            "endpoint": https, "tlsCa": "/ca.pem", "tlsCert": "/c.pem", "tlsKey": "k.pem"
        })))
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::RelativePath {
                field: "ipamd.tlsKey",
                path: "k.pem".into()
            }
        );
    }

    #[test]
    fn timeouts() {
        let timeout = |t: u64| {
            conf(with_ipamd(
                json!({"endpoint": "/x.sock", "timeoutSeconds": t}),
            ))
        };
        assert_eq!(timeout(1).unwrap().timeout, Duration::from_secs(1));
        assert_eq!(timeout(3600).unwrap().timeout, Duration::from_secs(3600));
        assert_eq!(timeout(0), Err(ConfigError::BadTimeout(0)));
        assert_eq!(timeout(3601), Err(ConfigError::BadTimeout(3601)));
        assert_eq!(
            ConfigError::BadTimeout(0).to_string(),
            "ipamd.timeoutSeconds 0: must be between 1 and 3600"
        );
    }

    #[test]
    fn mtu_limits() {
        let mtu = |m: u32, families: serde_json::Value| {
            conf(with(with(minimal(), "mtu", json!(m)), "families", families)).map(|c| c.mtu)
        };
        assert_eq!(mtu(0, json!([])), Ok(None));
        assert_eq!(mtu(68, json!([])), Ok(Some(68)));
        assert_eq!(
            mtu(67, json!([])),
            Err(ConfigError::MtuBelowIpv4Minimum(67))
        );
        assert_eq!(
            ConfigError::MtuBelowIpv4Minimum(70).to_string(),
            "mtu 70: below the IPv4 minimum of 68 (IPv6: 1280)"
        );
        assert_eq!(mtu(1000, json!(["ipv4"])), Ok(Some(1000)));
        assert_eq!(
            mtu(1000, json!(["ipv4", "ipv6"])),
            Err(ConfigError::MtuBelowIpv6Minimum(1000))
        );
        assert_eq!(mtu(1280, json!(["ipv6"])), Ok(Some(1280)));
        assert_eq!(mtu(9000, json!([])), Ok(Some(9000)));
        assert_eq!(mtu(65535, json!([])), Ok(Some(65535)));
        assert_eq!(mtu(65536, json!([])), Err(ConfigError::MtuTooLarge(65536)));
        // Not a number: a decoding error.
        assert!(NetConf::parse(br#"{"mtu":-1}"#).is_err());
    }

    #[test]
    fn families() {
        let err = NetConf::parse(br#"{"families":["ipv4","ipv5"]}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(r#"families: "ipv5" is not "ipv4" or "ipv6""#),
            "{err}"
        );
        assert_eq!("IPV4".parse::<Family>(), Ok(Family::Ipv4));
        assert_eq!(
            "4".parse::<Family>(),
            Err(ConfigError::BadFamily("4".into()))
        );
        assert_eq!(serde_json::to_string(&Family::Ipv6).unwrap(), r#""ipv6""#);
        assert_eq!(Family::Ipv4.to_string(), "ipv4");
        assert_eq!(Family::of("::1".parse().unwrap()), Family::Ipv6);
    }

    #[test]
    fn node_names_and_paths() {
        for ok in ["node1", "worker-1.example.com", "10.0.0.1"] {
            assert_eq!(
                conf(with(minimal(), "nodeName", json!(ok)))
                    .unwrap()
                    .node_name
                    .as_deref(),
                Some(ok)
            );
        }
        for bad in [
            "",
            "Node1",
            "node_1",
            "-node",
            "node-",
            "a..b",
            &"a".repeat(254),
        ] {
            assert_eq!(
                conf(with(minimal(), "nodeName", json!(bad))),
                Err(ConfigError::BadNodeName(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            conf(with(minimal(), "logFile", json!("cni.log"))),
            Err(ConfigError::RelativePath {
                field: "logFile",
                path: "cni.log".into()
            })
        );
        assert_eq!(
            conf(with(minimal(), "nodeNameFile", json!("x"))),
            Err(ConfigError::RelativePath {
                field: "nodeNameFile",
                path: "x".into()
            })
        );
    }

    #[test]
    fn pools_are_object_names() {
        assert_eq!(
            conf(with(minimal(), "pools", json!(["ok", "Bad_Pool"]))),
            Err(ConfigError::BadPool {
                index: 1,
                name: "Bad_Pool".into()
            })
        );
        assert_eq!(
            ConfigError::BadPool {
                index: 0,
                name: String::new()
            }
            .to_string(),
            r#"pools[0] "": not an IPPool name (lowercase letters, digits, '-' and '.', at most 253)"#
        );
    }

    #[test]
    fn requested_ips_capability() {
        let ips = |ips: serde_json::Value, families: serde_json::Value| {
            conf(with(
                with(minimal(), "runtimeConfig", json!({ "ips": ips })),
                "families",
                families,
            ))
            .map(|c| c.requested_ips)
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            ips(json!(["10.1.2.3/32", "fd00::1/128"]), json!([])),
            Ok(vec![ip("10.1.2.3"), ip("fd00::1")])
        );
        assert_eq!(
            ips(json!(["10.1.2.3"]), json!(["ipv4"])),
            Ok(vec![ip("10.1.2.3")])
        );
        for bad in ["x", "10.1.2.3/33", "10.1.2.3/", "/24", "10.1.2"] {
            assert_eq!(
                ips(json!([bad]), json!([])),
                Err(ConfigError::BadRequestedIp(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            ConfigError::BadRequestedIp("x".into()).to_string(),
            r#"runtimeConfig.ips: "x" is not an IP address"#
        );
        let err = ips(json!(["10.1.2.3", "10.1.2.4/32"]), json!([])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runtimeConfig.ips: 10.1.2.3 and 10.1.2.4 are both ipv4; at most one address per family"
        );
        let err = ips(json!(["fd00::1"]), json!(["ipv4"])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::RequestedIpFamilyExcluded {
                ip: ip("fd00::1"),
                family: Family::Ipv6
            }
        );
        assert_eq!(
            err.to_string(),
            "runtimeConfig.ips: fd00::1 is ipv6, which families leaves out"
        );
    }

    #[test]
    fn prev_result_is_parsed_and_checked() {
        assert_eq!(
            conf(with(minimal(), "prevResult", json!(null)))
                .unwrap()
                .prev_result,
            None
        );
        let err = conf(with(
            minimal(),
            "prevResult",
            json!({"ips": [{"address": "nope"}]}),
        ))
        .unwrap_err();
        assert!(matches!(err, ConfigError::PrevResult(_)));
        assert_eq!(
            err.to_string(),
            r#"prevResult.ips[0].address "nope": not an IP address in CIDR notation"#
        );
    }

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("a"));
        assert!(is_dns_subdomain("a-b.c0"));
        assert!(is_dns_subdomain(
            &["a".repeat(63), "b".repeat(63)].join(".")
        ));
        assert!(!is_dns_subdomain(""));
        assert!(!is_dns_subdomain("a."));
        assert!(!is_dns_subdomain(".a"));
        assert!(!is_dns_subdomain("A"));
        assert!(!is_dns_subdomain("a_b"));
    }

    proptest! {
        #[test]
        fn endpoint_parsing_never_panics(s in "\\PC{0,40}") {
            let _ = parse_endpoint(&s);
        }

        #[test]
        fn requested_ip_parsing_never_panics(s in "[0-9a-f:./]{0,30}") {
            let _ = requested_ips(&[s], &[]);
        }
    }
}
