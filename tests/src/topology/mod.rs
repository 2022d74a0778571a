// A containerlab topology, read and checked in full before anything is
// created: every error names the file, the field and the reason. The result
// is a resolved `Topology` where `defaults` and `kinds` are already merged
// into each node, bind paths are absolute and links are validated pairs.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;

use crate::role::Role;
use raw::{RawEndpoint, RawLink, RawNode, RawTopologyFile, Scalar};

/// Linux caps interface names at IFNAMSIZ - 1 bytes.
pub const MAX_IFNAME_LEN: usize = 15;
/// Lab and node names. Two of them sit in every FRR socket path
/// (`/run/podlab/<lab>/<node>/frr/staticd.vty`, 29 characters besides), and
/// a Unix socket path holds at most 107 (sun_path is 108 with its NUL).
pub const MAX_NAME_LEN: usize = 32;
/// The smallest IPv4 MTU (RFC 791) and the largest a veth takes.
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65535;
/// Sysctls a node may set: per network namespace. Any other (kernel.*,
/// vm.*) is global and would change the host.
pub const SYSCTL_PREFIX: &str = "net.";

/// A topology ready to bring up.
#[derive(Debug, Clone)]
pub struct Topology {
    pub name: String,
    /// The topology file, absolute.
    pub file: PathBuf,
    pub nodes: BTreeMap<String, Node>,
    pub links: Vec<Link>,
    /// Fields podlab read but does not act on, as `field: reason` lines.
    pub warnings: Vec<String>,
}

/// One node with its inherited settings merged in.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub image: String,
    pub role: Role,
    pub cmd: Option<String>,
    pub binds: Vec<Bind>,
    pub exec: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub sysctls: BTreeMap<String, String>,
}

/// The containerlab kinds podlab can run without Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A host: a network namespace.
    Linux,
    /// An L2 segment: a Linux bridge (in a namespace of its own, so the
    /// lab never touches the host's interfaces) that enslaves its link ends.
    Bridge,
}

/// `host-path:container-path[:ro|rw]`, the host path made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub node: String,
    pub interface: String,
    pub mac: Option<String>,
    pub addresses: Vec<IpNetwork>,
}

/// A point-to-point veth link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
    pub mtu: Option<u32>,
}

/// A topology file that cannot be brought up, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {field}: {reason}", file.display())]
pub struct TopologyError {
    pub file: PathBuf,
    /// Where in the file: a dotted path such as `topology.links[2].endpoints`,
    /// or `line 4 column 7` for a YAML syntax error.
    pub field: String,
    pub reason: String,
}

impl Node {
    /// The host path bound to `container_path`, if any.
    pub fn bind_for(&self, container_path: &str) -> Option<&Path> {
        self.binds
            .iter()
            .find(|b| b.container == container_path)
            .map(|b| b.host.as_path())
    }

    /// `path` with a bound container path replaced by its host path, so that
    /// a `cmd` written for the container runs here.
    pub fn host_path_of(&self, path: &str) -> String {
        self.binds
            .iter()
            .find(|b| b.container == path)
            .map(|b| b.host.display().to_string())
            .unwrap_or_else(|| path.to_string())
    }
}

impl Topology {
    /// Reads and checks a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError {
            file: path.to_path_buf(),
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Topology::parse(&text, &file)
    }

    /// Checks topology text as if read from `file` (bind paths are relative to
    /// its folder).
    pub fn parse(text: &str, file: &Path) -> Result<Topology, TopologyError> {
        let raw: RawTopologyFile = serde_yaml_ng::from_str(text).map_err(|e| {
            let field = match e.location() {
                Some(loc) => format!("line {} column {}", loc.line(), loc.column()),
                None => "(document)".into(),
            };
            TopologyError {
                file: file.to_path_buf(),
                field,
                reason: format!("invalid YAML: {e}"),
            }
        })?;
        Resolver {
            file,
            dir: file.parent().unwrap_or(Path::new(".")),
        }
        .resolve(raw)
    }

    /// The network namespace that holds `node` for lab `lab`. Names hold no
    /// `.`, so `podlab-a.b-n1` and `podlab-a-b.n1` cannot be confused.
    pub fn netns_name(lab: &str, node: &str) -> String {
        format!("{}{node}", Topology::netns_prefix(lab))
    }

    /// What every namespace of lab `lab` starts with.
    pub fn netns_prefix(lab: &str) -> String {
        format!("podlab-{lab}.")
    }
}

struct Resolver<'a> {
    file: &'a Path,
    dir: &'a Path,
}

impl Resolver<'_> {
    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> TopologyError {
        TopologyError {
            file: self.file.to_path_buf(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn resolve(&self, raw: RawTopologyFile) -> Result<Topology, TopologyError> {
        check_name(&raw.name).map_err(|reason| self.err("name", reason))?;
        let mut warnings = Vec::new();
        note_unused(&mut warnings, "", &raw.other);
        note_unused(&mut warnings, "topology.", &raw.topology.other);
        if raw.topology.nodes.is_empty() {
            return Err(self.err("topology.nodes", "a topology needs at least one node"));
        }

        let mut nodes = BTreeMap::new();
        for (name, node) in &raw.topology.nodes {
            let field = format!("topology.nodes.{name}");
            check_name(name).map_err(|reason| self.err(&field, reason))?;
            let node = node.clone().unwrap_or_default();
            note_unused(&mut warnings, &format!("{field}."), &node.other);
            if let Some(user) = node.user.as_ref().map(Scalar::to_string)
                && !matches!(user.as_str(), "root" | "0" | "0:0")
            {
                warnings.push(format!(
                    "{field}.user: podlab runs every node as root, not `{user}`"
                ));
            }
            let resolved = self.resolve_node(name, &field, &node, &raw.topology)?;
            nodes.insert(name.clone(), resolved);
        }

        let mut links = Vec::new();
        let mut used = BTreeSet::new();
        for (i, link) in raw.topology.links.iter().enumerate() {
            let field = format!("topology.links[{i}]");
            note_unused(&mut warnings, &format!("{field}."), &link.other);
            let link = self.resolve_link(&field, link, &nodes, &mut warnings)?;
            for end in [&link.a, &link.b] {
                if !used.insert((end.node.clone(), end.interface.clone())) {
                    return Err(self.err(
                        format!("{field}.endpoints"),
                        format!(
                            "duplicate endpoint {}:{}: each interface can be on one link only",
                            end.node, end.interface
                        ),
                    ));
                }
            }
            links.push(link);
        }

        Ok(Topology {
            name: raw.name,
            file: self.file.to_path_buf(),
            nodes,
            links,
            warnings,
        })
    }

    fn resolve_node(
        &self,
        name: &str,
        field: &str,
        node: &RawNode,
        topo: &raw::RawTopology,
    ) -> Result<Node, TopologyError> {
        let defaults = &topo.defaults;
        let kind_name = node
            .kind
            .clone()
            .or_else(|| defaults.kind.clone())
            .ok_or_else(|| self.err(format!("{field}.kind"), "missing: every node needs a kind"))?;
        let inherited = topo.kinds.get(&kind_name);
        // Node settings win over its kind's, which win over the defaults.
        let layers = [Some(node), inherited, Some(defaults)];
        let kind = match kind_name.as_str() {
            "linux" => NodeKind::Linux,
            "bridge" => NodeKind::Bridge,
            other => {
                return Err(self.err(
                    format!("{field}.kind"),
                    format!(
                        "kind `{other}` needs its vendor's container; podlab runs `linux` \
                         (FRR, BIRD, GoBGP, podroute and plain hosts, told apart by image) and `bridge`"
                    ),
                ));
            }
        };
        let image: String = pick(layers, |n| n.image.clone()).unwrap_or_default();
        if kind == NodeKind::Linux && image.is_empty() {
            return Err(self.err(
                format!("{field}.image"),
                "missing: a linux node needs an image",
            ));
        }
        if kind == NodeKind::Bridge && name.len() > MAX_IFNAME_LEN {
            return Err(self.err(
                field,
                format!("a bridge is named after its node, and interface names are at most {MAX_IFNAME_LEN} characters"),
            ));
        }
        let binds = pick(layers, |n| n.binds.clone())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, b)| self.resolve_bind(&format!("{field}.binds[{i}]"), b))
            .collect::<Result<Vec<_>, _>>()?;
        // Maps merge key by key, the node's keys winning.
        let merge = |get: fn(&RawNode) -> &Option<BTreeMap<String, Scalar>>| {
            let mut out = BTreeMap::new();
            for layer in layers
                .iter()
                .rev()
                .flatten()
                .filter_map(|n| get(n).as_ref())
            {
                out.extend(layer.iter().map(|(k, v)| (k.clone(), v.to_string())));
            }
            out
        };
        let sysctls = merge(|n| &n.sysctls);
        if let Some(key) = sysctls.keys().find(|k| !k.starts_with(SYSCTL_PREFIX)) {
            return Err(self.err(
                format!("{field}.sysctls"),
                format!("`{key}` is not per namespace: only {SYSCTL_PREFIX}* sysctls, the rest would change the host"),
            ));
        }
        let role = if kind == NodeKind::Bridge {
            Role::Bridge
        } else {
            Role::from_image(&image)
        };
        let resolved = Node {
            name: name.to_string(),
            kind,
            image,
            role,
            cmd: pick(layers, |n| n.cmd.clone()),
            binds,
            exec: pick(layers, |n| n.exec.clone()).unwrap_or_default(),
            env: merge(|n| &n.env),
            labels: merge(|n| &n.labels),
            sysctls,
        };
        role.check(&resolved)
            .map_err(|(sub, reason)| self.err(format!("{field}{sub}"), reason))?;
        Ok(resolved)
    }

    fn resolve_bind(&self, field: &str, spec: &str) -> Result<Bind, TopologyError> {
        let mut parts = spec.split(':');
        let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
            return Err(self.err(
                field,
                format!("`{spec}` is not host-path:container-path[:ro]"),
            ));
        };
        let read_only = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(self.err(field, format!("unknown bind option `{other}` (ro or rw)")));
            }
        };
        if parts.next().is_some() || host.is_empty() || !container.starts_with('/') {
            return Err(self.err(
                field,
                format!("`{spec}` is not host-path:/container/path[:ro]"),
            ));
        }
        let host_path = self.dir.join(host);
        if !host_path.exists() {
            return Err(self.err(
                field,
                format!("bind source {} does not exist", host_path.display()),
            ));
        }
        Ok(Bind {
            host: host_path,
            container: container.to_string(),
            read_only,
        })
    }

    fn resolve_link(
        &self,
        field: &str,
        link: &RawLink,
        nodes: &BTreeMap<String, Node>,
        warnings: &mut Vec<String>,
    ) -> Result<Link, TopologyError> {
        if let Some(t) = link.link_type.as_deref().filter(|t| *t != "veth") {
            return Err(self.err(
                format!("{field}.type"),
                format!("link type `{t}` is not supported: podlab makes veth links"),
            ));
        }
        if link.endpoints.len() != 2 {
            return Err(self.err(
                format!("{field}.endpoints"),
                format!(
                    "a veth link has exactly 2 endpoints, found {}",
                    link.endpoints.len()
                ),
            ));
        }
        if let Some(mtu) = link.mtu
            && !(MIN_MTU..=MAX_MTU).contains(&mtu)
        {
            return Err(self.err(
                format!("{field}.mtu"),
                format!("{mtu} is not in {MIN_MTU}..={MAX_MTU}"),
            ));
        }
        let mut ends = Vec::with_capacity(2);
        for (i, end) in link.endpoints.iter().enumerate() {
            let efield = format!("{field}.endpoints[{i}]");
            let mut endpoint = self.resolve_endpoint(&efield, end, nodes, warnings)?;
            for (family, list) in [("ipv4", &link.ipv4), ("ipv6", &link.ipv6)] {
                if let Some(list) = list {
                    if list.len() != 2 {
                        return Err(self.err(
                            format!("{field}.{family}"),
                            "give one address per endpoint, in the order of `endpoints`",
                        ));
                    }
                    let addr =
                        self.parse_address(&format!("{field}.{family}[{i}]"), &list[i], family)?;
                    endpoint.addresses.push(addr);
                }
            }
            ends.push(endpoint);
        }
        let b = ends.pop();
        let a = ends.pop();
        match (a, b) {
            (Some(a), Some(b)) => Ok(Link {
                a,
                b,
                mtu: link.mtu,
            }),
            _ => Err(self.err(
                format!("{field}.endpoints"),
                "a veth link has exactly 2 endpoints",
            )),
        }
    }

    fn resolve_endpoint(
        &self,
        field: &str,
        end: &RawEndpoint,
        nodes: &BTreeMap<String, Node>,
        warnings: &mut Vec<String>,
    ) -> Result<Endpoint, TopologyError> {
        let mut endpoint = match end {
            RawEndpoint::Brief(s) => {
                let Some((node, interface)) = s.split_once(':') else {
                    return Err(self.err(field, format!("`{s}` is not node:interface")));
                };
                Endpoint {
                    node: node.to_string(),
                    interface: interface.to_string(),
                    mac: None,
                    addresses: Vec::new(),
                }
            }
            RawEndpoint::Extended(e) => {
                note_unused(warnings, &format!("{field}."), &e.other);
                let mut addresses = Vec::new();
                if let Some(a) = &e.ipv4 {
                    addresses.push(self.parse_address(&format!("{field}.ipv4"), a, "ipv4")?);
                }
                if let Some(a) = &e.ipv6 {
                    addresses.push(self.parse_address(&format!("{field}.ipv6"), a, "ipv6")?);
                }
                Endpoint {
                    node: e.node.clone(),
                    interface: e.interface.clone(),
                    mac: e.mac.clone(),
                    addresses,
                }
            }
        };
        if matches!(
            endpoint.node.as_str(),
            "host" | "macvlan" | "mgmt-net" | "ovs-bridge"
        ) {
            return Err(self.err(
                field,
                format!(
                    "`{}` endpoints reach outside the lab; podlab keeps every lab inside its own namespaces",
                    endpoint.node
                ),
            ));
        }
        if !nodes.contains_key(&endpoint.node) {
            return Err(self.err(
                field,
                format!("unknown node `{}` (not in topology.nodes)", endpoint.node),
            ));
        }
        check_ifname(&endpoint.interface).map_err(|reason| self.err(field, reason))?;
        if let Some(mac) = &endpoint.mac {
            check_mac(mac).map_err(|reason| self.err(format!("{field}.mac"), reason))?;
        }
        endpoint.mac = endpoint.mac.take().map(|m| m.to_ascii_lowercase());
        Ok(endpoint)
    }

    fn parse_address(
        &self,
        field: &str,
        text: &str,
        family: &str,
    ) -> Result<IpNetwork, TopologyError> {
        let net: IpNetwork = text
            .parse()
            .map_err(|e| self.err(field, format!("`{text}` is not an address/prefix: {e}")))?;
        if !text.contains('/') {
            return Err(self.err(
                field,
                format!("`{text}` needs a prefix length, e.g. {text}/24"),
            ));
        }
        let ok = match family {
            "ipv4" => net.is_ipv4(),
            _ => net.is_ipv6(),
        };
        if !ok {
            return Err(self.err(field, format!("`{text}` is not an {family} address")));
        }
        Ok(net)
    }
}

/// The first layer (node, kind, defaults) that sets a field.
fn pick<T>(layers: [Option<&RawNode>; 3], get: impl Fn(&RawNode) -> Option<T>) -> Option<T> {
    layers.into_iter().flatten().find_map(get)
}

/// Lab and node names end up in namespace names, paths and, for bridges,
/// interface names.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("`{name}` is longer than {MAX_NAME_LEN} characters"));
    }
    let ok_start = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok_start || !ok_chars {
        return Err(format!(
            "`{name}`: use letters, digits, `-` and `_`, starting with a letter or digit"
        ));
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name `{name}` must be 1 to {MAX_IFNAME_LEN} characters"
        ));
    }
    if name == "lo" || name == "." || name == ".." {
        return Err(format!("interface name `{name}` is reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name `{name}` must not hold `/`, `:` or white space"
        ));
    }
    Ok(())
}

fn check_mac(mac: &str) -> Result<(), String> {
    let octets: Vec<&str> = mac.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(format!(
            "`{mac}` is not a MAC address like 02:00:00:00:00:01"
        ));
    }
    // The low bit of the first octet marks multicast: a NIC cannot have one.
    if u8::from_str_radix(octets[0], 16).is_ok_and(|b| b & 1 == 1) {
        return Err(format!("`{mac}` is a multicast address"));
    }
    Ok(())
}

fn note_unused(
    warnings: &mut Vec<String>,
    prefix: &str,
    other: &BTreeMap<String, serde_yaml_ng::Value>,
) {
    for key in other.keys() {
        warnings.push(format!("{prefix}{key}: not used by podlab"));
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Linux => "linux",
            NodeKind::Bridge => "bridge",
        })
    }
}

#[cfg(test)]
mod tests;
