// The success result of ADD, written in the shape of the caller's version
// (CNI spec 1.1 section 5 "Success"; 1.0.0's and 0.4.0's "Result"), and the
// prevResult that CHECK and DEL receive, read from any of those versions.
// 1.1.0 adds interface "mtu" and route "scope"; 0.4.0 has ips[].version.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// A successful ADD's result, version-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct AddResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<RouteEntry>,
    /// Empty: podroute does not configure DNS.
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// "ee:ee:ee:ee:ee:ee", lowercase.
    pub mac: Option<String>,
    /// Written for 1.1.0 only.
    pub mtu: Option<u32>,
    /// The netns path (CNI_NETNS) for the pod's interface; None on the host.
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Address and prefix, e.g. 10.0.0.5/32.
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into the interfaces list.
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    /// rtm_scope (253 = link); written for 1.1.0 only.
    pub scope: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub nameservers: Vec<String>,
    pub domain: Option<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// A prevResult (CHECK, DEL), any supported version: ips with or without
/// "version"; dns and unknown fields ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrevResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<RouteEntry>,
}

/// A prevResult that cannot be read; each names the field, e.g.
/// `prevResult.ips[0].address`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// Not an object, or a field of the wrong JSON type.
    #[error("prevResult: {0}")]
    Decode(String),
    #[error("{field} {value:?}: not an IP address in CIDR notation")]
    BadCidr { field: String, value: String },
    #[error("{field} {value:?}: not an IP address")]
    BadIp { field: String, value: String },
    #[error("{field} {value:?}: must be \"4\" or \"6\", the family of its address")]
    BadVersion { field: String, value: String },
    #[error("{field} {index}: no such interface (interfaces has {count})")]
    BadInterfaceIndex {
        field: String,
        index: usize,
        count: usize,
    },
}

/// The result's layout for a CNI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// 0.3.x / 0.4.0: ips[].version.
    V04,
    /// 1.0.x: no version, no interface mtu, no route scope.
    V10,
    /// 1.1.0 and later: interface mtu and route scope.
    V11,
}

impl AddResult {
    /// The JSON for `cni_version` ("0.4.0", "1.0.0", "1.1.0"), one line:
    /// - 0.4.0: ips[].version "4"/"6" present; interfaces without mtu; routes dst/gw only.
    /// - 1.0.0: no ips[].version; interfaces without mtu; routes dst/gw only.
    /// - 1.1.0: interfaces may carry "mtu"; routes may carry "scope".
    ///
    /// Absent optionals are omitted, not null; "interfaces", "ips", "routes"
    /// and "dns" are always there ("dns": {} when empty). A version this
    /// plugin does not know is written as the nearest one it does (0.x as
    /// 0.4.0, 1.0.x as 1.0.0, anything else as 1.1.0), stamped as given.
    pub fn to_json(&self, cni_version: &str) -> String {
        let layout = layout_of(cni_version);
        let wire = WireResult {
            cni_version,
            interfaces: self
                .interfaces
                .iter()
                .map(|i| WireInterface {
                    name: &i.name,
                    mac: i.mac.as_deref(),
                    mtu: i.mtu.filter(|_| layout == Layout::V11),
                    sandbox: i.sandbox.as_deref(),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: (layout == Layout::V04).then_some(if ip.address.is_ipv4() {
                        "4"
                    } else {
                        "6"
                    }),
                    address: ip.address.to_string(),
                    gateway: ip.gateway.map(|g| g.to_string()),
                    interface: ip.interface,
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| WireRoute {
                    dst: r.dst.to_string(),
                    gw: r.gw.map(|g| g.to_string()),
                    scope: r.scope.filter(|_| layout == Layout::V11),
                })
                .collect(),
            dns: WireDns {
                nameservers: &self.dns.nameservers,
                domain: self.dns.domain.as_deref(),
                search: &self.dns.search,
                options: &self.dns.options,
            },
        };
        // Strings, integers and lists of them always serialize; fall back to
        // an error document rather than panic if that ever changed.
        serde_json::to_string(&wire).unwrap_or_else(|e| {
            crate::CniError::new(
                crate::ErrorCode::IoFailure,
                format!("podroute-cni: cannot encode the result: {e}"),
            )
            .to_json(cni_version)
        })
    }
}

impl PrevResult {
    /// Reads a prevResult of any supported version. Addresses must be in
    /// CIDR notation; an "interface" index must point into "interfaces"; a
    /// 0.4.0 "version" must match its address. Empty strings count as absent
    /// (mac, sandbox, gateway, gw), as libcni writes them.
    pub fn from_value(value: &serde_json::Value) -> Result<PrevResult, ResultError> {
        let wire = WirePrev::deserialize(value).map_err(|e| ResultError::Decode(e.to_string()))?;
        let interfaces: Vec<Interface> = wire
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac.filter(|m| !m.is_empty()),
                mtu: i.mtu,
                sandbox: i.sandbox.filter(|s| !s.is_empty()),
            })
            .collect();
        let mut ips = Vec::with_capacity(wire.ips.len());
        for (n, ip) in wire.ips.into_iter().enumerate() {
            let field = |name: &str| format!("prevResult.ips[{n}].{name}");
            let address = parse_cidr(&ip.address).ok_or_else(|| ResultError::BadCidr {
                field: field("address"),
                value: ip.address.clone(),
            })?;
            if let Some(version) = ip.version {
                let expected = if address.is_ipv4() { "4" } else { "6" };
                if version != expected {
                    return Err(ResultError::BadVersion {
                        field: field("version"),
                        value: version,
                    });
                }
            }
            let gateway = parse_optional_ip(ip.gateway, || field("gateway"))?;
            if let Some(index) = ip.interface
                && index >= interfaces.len()
            {
                return Err(ResultError::BadInterfaceIndex {
                    field: field("interface"),
                    index,
                    count: interfaces.len(),
                });
            }
            ips.push(IpConfig {
                address,
                gateway,
                interface: ip.interface,
            });
        }
        let mut routes = Vec::with_capacity(wire.routes.len());
        for (n, route) in wire.routes.into_iter().enumerate() {
            let field = |name: &str| format!("prevResult.routes[{n}].{name}");
            let dst = parse_cidr(&route.dst).ok_or_else(|| ResultError::BadCidr {
                field: field("dst"),
                value: route.dst.clone(),
            })?;
            let gw = parse_optional_ip(route.gw, || field("gw"))?;
            routes.push(RouteEntry {
                dst,
                gw,
                scope: route.scope,
            });
        }
        Ok(PrevResult {
            interfaces,
            ips,
            routes,
        })
    }

    /// The interface in the sandbox named `ifname` and its index.
    pub fn sandbox_interface(&self, ifname: &str) -> Option<(usize, &Interface)> {
        self.interfaces
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == ifname && i.sandbox.is_some())
    }
}

/// "a.b.c.d/len" or "v6/len": an address and a decimal prefix length (the
/// address keeps its host bits, as results carry them).
pub(crate) fn parse_cidr(s: &str) -> Option<IpNetwork> {
    let (ip, len) = s.split_once('/')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    IpNetwork::new(ip.parse().ok()?, len.parse().ok()?).ok()
}

fn parse_optional_ip(
    value: Option<String>,
    field: impl Fn() -> String,
) -> Result<Option<IpAddr>, ResultError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ResultError::BadIp {
            field: field(),
            value: v,
        }),
    }
}

fn layout_of(cni_version: &str) -> Layout {
    let mut parts = cni_version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(0), _) => Layout::V04,
        (Some(1), Some(0)) => Layout::V10,
        _ => Layout::V11,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResult<'a> {
    cni_version: &'a str,
    interfaces: Vec<WireInterface<'a>>,
    ips: Vec<WireIp<'a>>,
    routes: Vec<WireRoute>,
    dns: WireDns<'a>,
}

#[derive(Serialize)]
struct WireInterface<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
}

#[derive(Serialize)]
struct WireIp<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize)]
struct WireRoute {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

#[derive(Serialize)]
struct WireDns<'a> {
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    nameservers: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    search: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    options: &'a [String],
}

#[derive(Deserialize)]
struct WirePrev {
    #[serde(default)]
    interfaces: Vec<WirePrevInterface>,
    #[serde(default)]
    ips: Vec<WirePrevIp>,
    #[serde(default)]
    routes: Vec<WirePrevRoute>,
}

#[derive(Deserialize)]
struct WirePrevInterface {
    name: String,
    mac: Option<String>,
    mtu: Option<u32>,
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct WirePrevIp {
    version: Option<String>,
    address: String,
    gateway: Option<String>,
    interface: Option<usize>,
}

#[derive(Deserialize)]
struct WirePrevRoute {
    dst: String,
    gw: Option<String>,
    scope: Option<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_result() -> AddResult {
        AddResult {
            interfaces: vec![
                Interface {
                    name: "podr2019a4a4401".into(),
                    mac: Some("ee:ee:ee:ee:ee:ee".into()),
                    mtu: Some(1450),
                    sandbox: None,
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:00:00:05".into()),
                    mtu: Some(1450),
                    sandbox: Some("/var/run/netns/cni-1234".into()),
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.0.0.5/32".parse().unwrap(),
                    gateway: Some("169.254.1.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::5/128".parse().unwrap(),
                    gateway: Some("fe80::ecee:eeff:feee:eeee".parse().unwrap()),
                    interface: Some(1),
                },
            ],
            routes: vec![
                RouteEntry {
                    dst: "0.0.0.0/0".parse().unwrap(),
                    gw: Some("169.254.1.1".parse().unwrap()),
                    scope: None,
                },
                RouteEntry {
                    dst: "169.254.1.1/32".parse().unwrap(),
                    gw: None,
                    scope: Some(253),
                },
            ],
            dns: Dns::default(),
        }
    }

    const IFACES_NO_MTU: &str = concat!(
        r#""interfaces":[{"name":"podr2019a4a4401","mac":"ee:ee:ee:ee:ee:ee"},"#,
        r#"{"name":"eth0","mac":"0a:58:0a:00:00:05","sandbox":"/var/run/netns/cni-1234"}]"#
    );

    #[test]
    fn json_1_1_0() {
        let expected = concat!(
            r#"{"cniVersion":"1.1.0","#,
            r#""interfaces":[{"name":"podr2019a4a4401","mac":"ee:ee:ee:ee:ee:ee","mtu":1450},"#,
            r#"{"name":"eth0","mac":"0a:58:0a:00:00:05","mtu":1450,"sandbox":"/var/run/netns/cni-1234"}],"#,
            r#""ips":[{"address":"10.0.0.5/32","gateway":"169.254.1.1","interface":1},"#,
            r#"{"address":"fd00::5/128","gateway":"fe80::ecee:eeff:feee:eeee","interface":1}],"#,
            r#""routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"169.254.1.1/32","scope":253}],"#,
            r#""dns":{}}"#
        );
        assert_eq!(pod_result().to_json("1.1.0"), expected);
    }

    #[test]
    fn json_1_0_0() {
        let expected = format!(
            "{}{},{}{}{}",
            r#"{"cniVersion":"1.0.0","#,
            IFACES_NO_MTU,
            r#""ips":[{"address":"10.0.0.5/32","gateway":"169.254.1.1","interface":1},"#,
            r#"{"address":"fd00::5/128","gateway":"fe80::ecee:eeff:feee:eeee","interface":1}],"#,
            r#""routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"169.254.1.1/32"}],"dns":{}}"#
        );
        assert_eq!(pod_result().to_json("1.0.0"), expected);
    }

    #[test]
    fn json_0_4_0() {
        let expected = format!(
            "{}{},{}{}{}",
            r#"{"cniVersion":"0.4.0","#,
            IFACES_NO_MTU,
            r#""ips":[{"version":"4","address":"10.0.0.5/32","gateway":"169.254.1.1","interface":1},"#,
            r#"{"version":"6","address":"fd00::5/128","gateway":"fe80::ecee:eeff:feee:eeee","interface":1}],"#,
            r#""routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"169.254.1.1/32"}],"dns":{}}"#
        );
        assert_eq!(pod_result().to_json("0.4.0"), expected);
    }

    #[test]
    fn empty_result_and_dns() {
        let empty = AddResult {
            interfaces: vec![],
            ips: vec![],
            routes: vec![],
            dns: Dns::default(),
        };
        assert_eq!(
            empty.to_json("1.1.0"),
            r#"{"cniVersion":"1.1.0","interfaces":[],"ips":[],"routes":[],"dns":{}}"#
        );
        let with_dns = AddResult {
            dns: Dns {
                nameservers: vec!["10.96.0.10".into()],
                domain: Some("cluster.local".into()),
                search: vec!["svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            },
            ..empty
        };
        assert!(with_dns.to_json("1.0.0").ends_with(
            r#""dns":{"nameservers":["10.96.0.10"],"domain":"cluster.local","search":["svc.cluster.local"],"options":["ndots:5"]}}"#
        ));
    }

    #[test]
    fn unknown_versions_use_the_nearest_layout() {
        assert_eq!(layout_of("0.3.1"), Layout::V04);
        assert_eq!(layout_of("1.0.0"), Layout::V10);
        assert_eq!(layout_of("1.1.0"), Layout::V11);
        assert_eq!(layout_of("1.2.0"), Layout::V11);
        assert_eq!(layout_of("garbage"), Layout::V11);
    }

    #[test]
    fn results_read_back_as_prev_results() {
        for version in ["0.4.0", "1.0.0", "1.1.0"] {
            let json: serde_json::Value =
                serde_json::from_str(&pod_result().to_json(version)).unwrap();
            let prev = PrevResult::from_value(&json).unwrap();
            let mut expected = pod_result();
            if version != "1.1.0" {
                for i in &mut expected.interfaces {
                    i.mtu = None;
                }
                for r in &mut expected.routes {
                    r.scope = None;
                }
            }
            assert_eq!(prev.interfaces, expected.interfaces, "{version}");
            assert_eq!(prev.ips, expected.ips, "{version}");
            assert_eq!(prev.routes, expected.routes, "{version}");
        }
    }

    /// The prevResult of the spec's 0.4.0 network configuration list
    /// examples: ips carry "version".
    #[test]
    fn reads_the_0_4_0_spec_example() {
        let value = json!({
            "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 2}],
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "dns": {"nameservers": ["10.1.0.1"]}
        });
        let prev = PrevResult::from_value(&value).unwrap();
        assert_eq!(prev.interfaces.len(), 3);
        assert_eq!(
            prev.ips,
            vec![IpConfig {
                address: "10.0.0.5/32".parse().unwrap(),
                gateway: None,
                interface: Some(2),
            }]
        );
        assert!(prev.routes.is_empty());
        let (index, eth0) = prev.sandbox_interface("eth0").unwrap();
        assert_eq!(index, 2);
        assert_eq!(eth0.sandbox.as_deref(), Some("/var/run/netns/blue"));
        assert_eq!(eth0.mac.as_deref(), Some("99:88:77:66:55:44"));
        // Host interfaces are not sandbox interfaces.
        assert_eq!(prev.sandbox_interface("cni0"), None);
        assert_eq!(prev.sandbox_interface("eth1"), None);
    }

    /// The bridge plugin's result from the spec's 1.0.0 "Add example": no
    /// "version", a gateway, a route without gw, a cniVersion we ignore.
    #[test]
    fn reads_the_1_0_0_spec_example() {
        let value = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "dns": {"nameservers": ["10.1.0.1"]}
        });
        let prev = PrevResult::from_value(&value).unwrap();
        let ip = &prev.ips[0];
        // Host bits are kept: the result says which address the pod has.
        assert_eq!(ip.address.ip(), "10.1.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(ip.address.prefix(), 16);
        assert_eq!(ip.gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(
            prev.routes,
            vec![RouteEntry {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
                scope: None
            }]
        );
    }

    #[test]
    fn reads_1_1_0_fields_and_ignores_unknown_ones() {
        let value = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "mtu": 1400, "sandbox": "/run/netns/x",
                            "socketPath": "/x", "pciID": "0000:00:01.0", "mac": ""}],
            "ips": [{"address": "fd00::5/128", "gateway": ""}],
            "routes": [{"dst": "::/0", "gw": "fe80::1", "scope": 0, "table": 100, "mtu": 1300}],
            "somethingNew": true
        });
        let prev = PrevResult::from_value(&value).unwrap();
        assert_eq!(
            prev.interfaces,
            vec![Interface {
                name: "eth0".into(),
                mac: None,
                mtu: Some(1400),
                sandbox: Some("/run/netns/x".into()),
            }]
        );
        assert_eq!(prev.ips[0].gateway, None);
        assert_eq!(prev.routes[0].scope, Some(0));
        assert_eq!(prev.routes[0].gw, Some("fe80::1".parse().unwrap()));
        // An empty object is an empty result.
        assert_eq!(
            PrevResult::from_value(&json!({})).unwrap(),
            PrevResult {
                interfaces: vec![],
                ips: vec![],
                routes: vec![]
            }
        );
    }

    #[test]
    fn bad_prev_results_name_the_field() {
        let cases = [
            (
                json!({"ips": [{"address": "10.0.0.300/32"}]}),
                r#"prevResult.ips[0].address "10.0.0.300/32": not an IP address in CIDR notation"#,
            ),
            (
                json!({"ips": [{"address": "10.0.0.1/24"}, {"address": "10.0.0.5"}]}),
                r#"prevResult.ips[1].address "10.0.0.5": not an IP address in CIDR notation"#,
            ),
            (
                json!({"ips": [{"address": "10.0.0.5/33"}]}),
                r#"prevResult.ips[0].address "10.0.0.5/33": not an IP address in CIDR notation"#,
            ),
            (
                json!({"ips": [{"address": "10.0.0.5/255.0.0.0"}]}),
                r#"prevResult.ips[0].address "10.0.0.5/255.0.0.0": not an IP address in CIDR notation"#,
            ),
            (
                json!({"ips": [{"address": "10.0.0.5/32", "gateway": "x"}]}),
                r#"prevResult.ips[0].gateway "x": not an IP address"#,
            ),
            (
                json!({"ips": [{"version": "6", "address": "10.0.0.5/32"}]}),
                r#"prevResult.ips[0].version "6": must be "4" or "6", the family of its address"#,
            ),
            (
                json!({"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/32", "interface": 1}]}),
                "prevResult.ips[0].interface 1: no such interface (interfaces has 1)",
            ),
            (
                json!({"routes": [{"dst": "default"}]}),
                r#"prevResult.routes[0].dst "default": not an IP address in CIDR notation"#,
            ),
            (
                json!({"routes": [{"dst": "0.0.0.0/0", "gw": "1.2.3"}]}),
                r#"prevResult.routes[0].gw "1.2.3": not an IP address"#,
            ),
        ];
        for (value, message) in cases {
            let err = PrevResult::from_value(&value).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        for value in [
            json!("nope"),
            json!({"ips": {}}),
            json!({"ips": [{"address": 5}]}),
            json!({"interfaces": [{"mac": "x"}]}),
        ] {
            let err = PrevResult::from_value(&value).unwrap_err();
            assert!(matches!(err, ResultError::Decode(_)), "{value}: {err}");
            assert!(err.to_string().starts_with("prevResult: "));
        }
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr("10.0.0.5/32"),
            Some("10.0.0.5/32".parse().unwrap())
        );
        assert_eq!(parse_cidr("fd00::1/64").map(|n| n.prefix()), Some(64));
        for bad in [
            "",
            "/",
            "10.0.0.5",
            "10.0.0.5/",
            "10.0.0.5/+3",
            "x/3",
            "fd00::1/129",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }
}
