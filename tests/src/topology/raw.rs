// The containerlab topology file as written (`*.clab.yml`), before any
// checking. Field names follow containerlab's schema so one file deploys
// unchanged under real containerlab and under podlab. Fields podlab does not
// use are kept in `other` so they can be reported, not silently lost.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole topology file.
#[derive(Debug, Clone, Deserialize)]
pub struct RawTopologyFile {
    pub name: String,
    pub topology: RawTopology,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// The `topology:` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawTopology {
    #[serde(default)]
    pub defaults: RawNode,
    #[serde(default)]
    pub kinds: BTreeMap<String, RawNode>,
    #[serde(default)]
    pub nodes: BTreeMap<String, Option<RawNode>>,
    #[serde(default)]
    pub links: Vec<RawLink>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// One node, or the `defaults` / `kinds.<kind>` it inherits from.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawNode {
    pub kind: Option<String>,
    pub image: Option<String>,
    pub cmd: Option<String>,
    pub binds: Option<Vec<String>>,
    pub exec: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, Scalar>>,
    pub labels: Option<BTreeMap<String, Scalar>>,
    pub sysctls: Option<BTreeMap<String, Scalar>>,
    /// The container's user (`user: root` for an image whose default user
    /// cannot configure the network). podlab runs every node as root.
    pub user: Option<Scalar>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A link in the brief form (`endpoints: ["a:eth1", "b:eth1"]`) or the
/// extended form (`type: veth`, endpoints as maps).
#[derive(Debug, Clone, Deserialize)]
pub struct RawLink {
    #[serde(rename = "type")]
    pub link_type: Option<String>,
    pub endpoints: Vec<RawEndpoint>,
    pub mtu: Option<u32>,
    /// Per-endpoint addresses, in the order of `endpoints`.
    pub ipv4: Option<Vec<String>>,
    pub ipv6: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// `"node:interface"` or `{node, interface, mac, ipv4, ipv6}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawEndpoint {
    Brief(String),
    Extended(RawExtendedEndpoint),
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawExtendedEndpoint {
    pub node: String,
    pub interface: String,
    pub mac: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// YAML lets `env`, `labels` and `sysctls` values be numbers or booleans;
/// containerlab takes them as their text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}
