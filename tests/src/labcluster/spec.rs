// What a person types for a lab pod, checked as the API server would check
// it before anything is made: namespace and pod names (DNS-1123 labels),
// `--labels k=v,k=v` (label keys and values), `--port 80/TCP`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::LabError;

/// A DNS-1123 label's longest form (namespaces; our pod names too).
pub const MAX_DNS_LABEL_LEN: usize = 63;

/// A container port's protocol, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    /// Accepted in the Pod manifest (policies may name it); the probe
    /// server does not serve it (no SCTP in this kernel).
    Sctp,
}

/// A container port: `80/TCP`, `53/UDP`, or `80` (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    pub protocol: Protocol,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

impl FromStr for PortSpec {
    type Err = LabError;

    fn from_str(text: &str) -> Result<PortSpec, LabError> {
        let invalid = |reason: &str| LabError::InvalidArgument {
            what: "port",
            value: text.to_string(),
            reason: format!("{reason}; write PORT/PROTOCOL, e.g. 80/TCP, 53/UDP, 5000/SCTP"),
        };
        let (port, protocol) = text.split_once('/').unwrap_or((text, "TCP"));
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is a number from 1 to 65535"))?;
        if port == 0 {
            return Err(invalid("the port is a number from 1 to 65535"));
        }
        let protocol = match protocol.to_ascii_uppercase().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => return Err(invalid("the protocol is TCP, UDP or SCTP")),
        };
        Ok(PortSpec { port, protocol })
    }
}

/// The ports the probe server answers on: the TCP and UDP ones (it serves
/// both protocols on each port it binds).
pub fn served_ports(ports: &[PortSpec]) -> Vec<u16> {
    let mut served: Vec<u16> = ports
        .iter()
        .filter(|p| p.protocol != Protocol::Sctp)
        .map(|p| p.port)
        .collect();
    served.sort_unstable();
    served.dedup();
    served
}

/// `k=v,k=v` into labels; empty text is no labels. Keys and values are
/// checked as Kubernetes checks them; a key given twice is refused.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, LabError> {
    let mut labels = BTreeMap::new();
    if text.trim().is_empty() {
        return Ok(labels);
    }
    for item in text.split(',') {
        let invalid = |reason: String| LabError::InvalidArgument {
            what: "label",
            value: item.to_string(),
            reason,
        };
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| invalid("write KEY=VALUE (e.g. app=web)".into()))?;
        let (key, value) = (key.trim(), value.trim());
        podroute_labels::check_key(key).map_err(|e| invalid(format!("key: {e}")))?;
        podroute_labels::check_value(value).map_err(|e| invalid(format!("value: {e}")))?;
        if labels.insert(key.to_string(), value.to_string()).is_some() {
            return Err(invalid(format!("key {key} is given twice")));
        }
    }
    Ok(labels)
}

/// Checks labels given as a map (the library's callers).
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), LabError> {
    for (key, value) in labels {
        let invalid = |reason: String| LabError::InvalidArgument {
            what: "label",
            value: format!("{key}={value}"),
            reason,
        };
        podroute_labels::check_key(key).map_err(|e| invalid(format!("key: {e}")))?;
        podroute_labels::check_value(value).map_err(|e| invalid(format!("value: {e}")))?;
    }
    Ok(())
}

/// A Kubernetes namespace or (here) pod name: a DNS-1123 label, lower
/// case letters, digits and `-`. Pod names with dots, which Kubernetes
/// allows, are refused: the name is part of the pod's network namespace.
pub fn check_dns_label(what: &'static str, name: &str) -> Result<(), LabError> {
    let ok = name.len() <= MAX_DNS_LABEL_LEN
        && !name.contains('.')
        && podroute_labels::is_dns_subdomain(name);
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidArgument {
            what,
            value: name.to_string(),
            reason: format!(
                "use 1 to {MAX_DNS_LABEL_LEN} lower case letters, digits and `-`, \
                 starting and ending with a letter or digit"
            ),
        })
    }
}

/// `namespace/name` into its parts, both checked.
pub fn parse_pod_id(id: &str) -> Result<(String, String), LabError> {
    let (namespace, name) = id
        .split_once('/')
        .ok_or_else(|| LabError::InvalidArgument {
            what: "pod",
            value: id.to_string(),
            reason: "write NAMESPACE/NAME".into(),
        })?;
    check_dns_label("namespace", namespace)?;
    check_dns_label("pod name", name)?;
    Ok((namespace.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let p: PortSpec = "80/TCP".parse().unwrap();
        assert_eq!((p.port, p.protocol), (80, Protocol::Tcp));
        let p: PortSpec = "53/udp".parse().unwrap();
        assert_eq!((p.port, p.protocol), (53, Protocol::Udp));
        assert_eq!("8080".parse::<PortSpec>().unwrap().protocol, Protocol::Tcp);
        assert_eq!("9/SCTP".parse::<PortSpec>().unwrap().to_string(), "9/SCTP");
        for bad in ["0/TCP", "65536/TCP", "http", "80/ICMP", "/TCP", "80/", ""] {
            let err = bad.parse::<PortSpec>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        let ports: Vec<PortSpec> = ["80/TCP", "80/UDP", "53/UDP", "9/SCTP"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(served_ports(&ports), [53, 80]);
    }

    #[test]
    fn labels() {
        let l = parse_labels("app=web,podroute.io/tier=front, env=").unwrap();
        assert_eq!(l["app"], "web");
        assert_eq!(l["podroute.io/tier"], "front");
        assert_eq!(l["env"], "");
        assert!(parse_labels("").unwrap().is_empty());
        for (bad, why) in [
            ("app", "KEY=VALUE"),
            ("app=web,app=db", "twice"),
            ("-app=web", "key"),
            ("app=we b", "value"),
            ("Bad_Prefix/x=1", "prefix"),
            (&format!("a={}", "v".repeat(64)), "value"),
        ] {
            let err = parse_labels(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let map = BTreeMap::from([("ok".to_string(), "b a d".to_string())]);
        assert!(check_labels(&map).is_err());
    }

    #[test]
    fn pod_ids() {
        assert_eq!(
            parse_pod_id("shop/web-1").unwrap(),
            ("shop".to_string(), "web-1".to_string())
        );
        for bad in ["web", "Shop/web", "shop/web.1", "shop/", "/web", "a/b/c"] {
            assert!(parse_pod_id(bad).is_err(), "{bad}");
        }
        assert!(check_dns_label("namespace", &"a".repeat(64)).is_err());
    }
}
