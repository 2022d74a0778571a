// The validated model: a `Snapshot` of wire objects checked the way the API
// server checks them and turned into what the evaluator and the compiler
// work on. An object that fails is refused with its name, field and reason,
// and the others stay (ARCHITECTURE.md principle 6): one bad policy never
// opens or closes traffic that other policies decide.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::IpNetwork;
use podroute_labels::{LabelSelector, Labels, Selector};

use super::objects::{
    IntOrString, NamespaceObject, NetworkPolicyObject, PodObject, PolicyPeer, PolicyPort, Snapshot,
};

/// The label the API server puts on every namespace (Kubernetes 1.21+);
/// policies select namespaces by name with it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `namespace/name` of a pod or policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `namespace/name`; a cluster-scoped object (a Namespace) by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name iptables and ipset use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl FromStr for Protocol {
    type Err = String;

    /// As the API spells it: TCP, UDP, SCTP.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(format!(
                "unsupported protocol {other:?}: must be TCP, UDP or SCTP"
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A container port with a name, which policies may refer to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    /// With `kubernetes.io/metadata.name` set to the name.
    pub labels: Labels,
}

/// A pod that takes part in policy: it has at least one address of its
/// own (not host network) and has not finished (a finished pod's address
/// may already be another's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub key: ObjectKey,
    pub labels: Labels,
    pub node: Option<String>,
    /// At most one per family, as the API allows.
    pub addresses: Vec<IpAddr>,
    pub named_ports: Vec<NamedPort>,
}

impl Pod {
    /// The pod's container port called `name` for `protocol`, if any.
    pub fn resolves(&self, name: &str, protocol: Protocol, port: u16) -> bool {
        self.named_ports
            .iter()
            .any(|p| p.name == name && p.protocol == protocol && p.port == port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub key: ObjectKey,
    pub pod_selector: Selector,
    /// None: the policy does not have Ingress in its policyTypes. Some(empty):
    /// it isolates and allows nothing.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// One ingress or egress rule: a peer from `peers` (any peer when empty)
/// and a port from `ports` (any port when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PortSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Pods matching `pods` in the namespaces of `namespaces`.
    Pods {
        namespaces: NamespaceScope,
        pods: SelectorKey,
    },
    Block(IpBlockSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NamespaceScope {
    /// A peer with only a podSelector: the policy's own namespace.
    Own(String),
    /// A peer with a namespaceSelector.
    Matching(SelectorKey),
}

/// A validated selector kept with its wire form, which gives peers a
/// stable identity (for set names) and a readable one (for explanations).
#[derive(Debug, Clone)]
pub struct SelectorKey {
    pub selector: Selector,
    pub wire: LabelSelector,
}

impl PartialEq for SelectorKey {
    fn eq(&self, other: &Self) -> bool {
        self.wire == other.wire
    }
}

impl Eq for SelectorKey {}

impl std::hash::Hash for SelectorKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical().hash(state);
    }
}

impl SelectorKey {
    fn new(wire: &LabelSelector) -> Result<Self, String> {
        let selector = wire.validate().map_err(|e| e.to_string())?;
        Ok(SelectorKey {
            selector,
            wire: wire.clone(),
        })
    }

    /// A deterministic text of the selector (`{}` when it matches all).
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = self
            .wire
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.wire.match_expressions {
            parts.push(format!("{} {} ({})", e.key, e.operator, e.values.join(",")));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// An ipBlock: addresses in `cidr` and in none of `except`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpBlockSpec {
    /// The network address form (host bits cleared).
    pub cidr: IpNetwork,
    pub except: Vec<IpNetwork>,
}

impl IpBlockSpec {
    pub fn contains(&self, address: IpAddr) -> bool {
        self.cidr.contains(address) && !self.except.iter().any(|e| e.contains(address))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortMatch {
    /// Every port of the protocol.
    All,
    /// `first..=last` (a single port has first == last).
    Range { first: u16, last: u16 },
    /// A container port name, resolved on the destination pod.
    Named(String),
}

/// An object refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: &'static str,
    pub key: ObjectKey,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.key, self.reason)
    }
}

/// Everything the agent knows, validated and indexed.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    namespaces: BTreeMap<String, Namespace>,
    pods: BTreeMap<ObjectKey, Pod>,
    policies: BTreeMap<ObjectKey, Policy>,
    pods_by_address: HashMap<IpAddr, ObjectKey>,
    pods_by_namespace: BTreeMap<String, Vec<ObjectKey>>,
}

impl Cluster {
    /// Validates a snapshot. Refused objects are left out and listed.
    pub fn build(snapshot: &Snapshot) -> (Cluster, Vec<Problem>) {
        let mut cluster = Cluster::default();
        let mut problems = Vec::new();
        let twice = |kind, key: ObjectKey| Problem {
            kind,
            key,
            reason: "defined twice; the first is kept".to_owned(),
        };
        for object in &snapshot.namespaces {
            let name = object.metadata.name.clone();
            if cluster.namespaces.contains_key(&name) {
                problems.push(twice("Namespace", ObjectKey::new("", name)));
                continue;
            }
            cluster.namespaces.insert(name, namespace(object));
        }
        // A pod being deleted may still hold an address the kubelet has
        // already given a new pod: the live pod goes first and keeps it.
        let mut pods: Vec<&PodObject> = snapshot.pods.iter().collect();
        pods.sort_by_key(|p| p.metadata.deletion_timestamp.is_some());
        for object in pods {
            match pod(object) {
                Ok(Some(mut pod)) => {
                    if cluster.pods.contains_key(&pod.key) {
                        problems.push(twice("Pod", pod.key.clone()));
                        continue;
                    }
                    pod.addresses
                        .retain(|address| match cluster.pods_by_address.get(address) {
                            Some(holder) => {
                                problems.push(Problem {
                                    kind: "Pod",
                                    key: pod.key.clone(),
                                    reason: format!(
                                        "address {address} is also pod {holder}'s, which keeps it"
                                    ),
                                });
                                false
                            }
                            None => true,
                        });
                    if pod.addresses.is_empty() {
                        continue;
                    }
                    for address in &pod.addresses {
                        cluster.pods_by_address.insert(*address, pod.key.clone());
                    }
                    cluster
                        .pods_by_namespace
                        .entry(pod.key.namespace.clone())
                        .or_default()
                        .push(pod.key.clone());
                    cluster.pods.insert(pod.key.clone(), pod);
                }
                Ok(None) => {}
                Err(reason) => problems.push(Problem {
                    kind: "Pod",
                    key: key_of(&object.metadata),
                    reason,
                }),
            }
        }
        for object in &snapshot.policies {
            match policy(object) {
                Ok(policy) => {
                    if cluster.policies.contains_key(&policy.key) {
                        problems.push(twice("NetworkPolicy", policy.key.clone()));
                        continue;
                    }
                    cluster.policies.insert(policy.key.clone(), policy);
                }
                Err(reason) => problems.push(Problem {
                    kind: "NetworkPolicy",
                    key: key_of(&object.metadata),
                    reason,
                }),
            }
        }
        for keys in cluster.pods_by_namespace.values_mut() {
            keys.sort();
        }
        (cluster, problems)
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    pub fn pod(&self, key: &ObjectKey) -> Option<&Pod> {
        self.pods.get(key)
    }

    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    pub fn policy(&self, key: &ObjectKey) -> Option<&Policy> {
        self.policies.get(key)
    }

    /// The pod that holds `address`.
    pub fn pod_at(&self, address: IpAddr) -> Option<&Pod> {
        self.pods_by_address
            .get(&address)
            .and_then(|key| self.pods.get(key))
    }

    /// A namespace's labels; a namespace with pods but no object of its
    /// own has only its name label.
    pub fn namespace_labels(&self, name: &str) -> Labels {
        match self.namespaces.get(name) {
            Some(ns) => ns.labels.clone(),
            None => Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]),
        }
    }

    fn namespace_matches(&self, name: &str, selector: &Selector) -> bool {
        match self.namespaces.get(name) {
            Some(ns) => selector.matches(&ns.labels),
            None => selector.matches(&self.namespace_labels(name)),
        }
    }

    /// Policies of the pod's namespace that select it and have
    /// `direction` in their types, in name order.
    pub fn isolating(&self, pod: &Pod, direction: Direction) -> Vec<&Policy> {
        self.policies
            .range(ObjectKey::new(pod.key.namespace.clone(), String::new())..)
            .take_while(|(key, _)| key.namespace == pod.key.namespace)
            .map(|(_, policy)| policy)
            .filter(|p| p.rules(direction).is_some() && p.pod_selector.matches(&pod.labels))
            .collect()
    }

    /// True when the pod is one `peer` names (a Pods peer; an ipBlock is
    /// matched by address, see `IpBlockSpec::contains`).
    pub fn peer_selects(&self, namespaces: &NamespaceScope, pods: &Selector, pod: &Pod) -> bool {
        self.peer_scope_matches(namespaces, &pod.key.namespace) && pods.matches(&pod.labels)
    }

    /// Every pod a Pods peer names, in key order.
    pub fn peer_pods<'a>(
        &'a self,
        namespaces: &'a NamespaceScope,
        pods: &'a Selector,
    ) -> Box<dyn Iterator<Item = &'a Pod> + 'a> {
        match namespaces {
            // Only the namespace's own pods: a podSelector-only peer costs
            // its namespace, not the cluster.
            NamespaceScope::Own(ns) => Box::new(
                self.pods_by_namespace
                    .get(ns)
                    .into_iter()
                    .flatten()
                    .filter_map(|key| self.pods.get(key))
                    .filter(move |pod| pods.matches(&pod.labels)),
            ),
            NamespaceScope::Matching(_) => Box::new(
                self.pods_by_namespace
                    .iter()
                    .filter(move |(ns, _)| self.peer_scope_matches(namespaces, ns))
                    .flat_map(|(_, keys)| keys.iter())
                    .filter_map(|key| self.pods.get(key))
                    .filter(move |pod| pods.matches(&pod.labels)),
            ),
        }
    }

    fn peer_scope_matches(&self, scope: &NamespaceScope, namespace: &str) -> bool {
        match scope {
            NamespaceScope::Own(ns) => ns == namespace,
            NamespaceScope::Matching(selector) => {
                self.namespace_matches(namespace, &selector.selector)
            }
        }
    }
}

fn key_of(meta: &super::objects::ObjectMeta) -> ObjectKey {
    ObjectKey::new(meta.namespace_or_default(), meta.name.clone())
}

fn namespace(object: &NamespaceObject) -> Namespace {
    let mut labels = object.metadata.labels.clone();
    labels.insert(
        NAMESPACE_NAME_LABEL.to_owned(),
        object.metadata.name.clone(),
    );
    Namespace {
        name: object.metadata.name.clone(),
        labels,
    }
}

/// Ok(None) for a pod that takes no part in policy.
fn pod(object: &PodObject) -> Result<Option<Pod>, String> {
    if object.metadata.name.is_empty() {
        return Err("metadata.name is empty".into());
    }
    let phase = object.status.phase.as_deref();
    if object.spec.host_network || matches!(phase, Some("Succeeded" | "Failed")) {
        return Ok(None);
    }
    let mut texts: Vec<&str> = object
        .status
        .pod_ips
        .iter()
        .map(|p| p.ip.as_str())
        .collect();
    if texts.is_empty() {
        texts.extend(object.status.pod_ip.as_deref());
    }
    let mut addresses: Vec<IpAddr> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let address: IpAddr = text
            .parse()
            .map_err(|_| format!("status.podIPs[{i}]: {text:?} is not an IP address"))?;
        if addresses.iter().any(|a| a.is_ipv4() == address.is_ipv4()) {
            return Err(format!(
                "status.podIPs[{i}]: at most one address per family (Kubernetes' rule)"
            ));
        }
        addresses.push(address);
    }
    if addresses.is_empty() {
        return Ok(None);
    }
    let mut named_ports = Vec::new();
    for (c, container) in object.spec.containers.iter().enumerate() {
        for (p, port) in container.ports.iter().enumerate() {
            let field = format!("spec.containers[{c}].ports[{p}]");
            let number = u16::try_from(port.container_port)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{field}.containerPort: must be 1-65535"))?;
            let protocol = match &port.protocol {
                Some(p) => p.parse().map_err(|e| format!("{field}.protocol: {e}"))?,
                None => Protocol::Tcp,
            };
            if let Some(name) = &port.name {
                named_ports.push(NamedPort {
                    name: name.clone(),
                    protocol,
                    port: number,
                });
            }
        }
    }
    Ok(Some(Pod {
        key: key_of(&object.metadata),
        labels: object.metadata.labels.clone(),
        node: object.spec.node_name.clone(),
        addresses,
        named_ports,
    }))
}

fn policy(object: &NetworkPolicyObject) -> Result<Policy, String> {
    if object.metadata.name.is_empty() {
        return Err("metadata.name is empty".into());
    }
    let key = key_of(&object.metadata);
    let spec = &object.spec;
    // podSelector is a plain struct in the Go API: left out, it is `{}`.
    let pod_selector = spec
        .pod_selector
        .clone()
        .unwrap_or_default()
        .validate()
        .map_err(|e| format!("spec.podSelector.{e}"))?;
    // The API server's defaulting: no (or empty) policyTypes means
    // Ingress, plus Egress when there are egress rules.
    let (mut ingress_type, mut egress_type) = (false, false);
    match spec.policy_types.as_deref() {
        None | Some([]) => {
            ingress_type = true;
            egress_type = !spec.egress.is_empty();
        }
        Some(types) => {
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress_type = true,
                    "Egress" => egress_type = true,
                    other => {
                        return Err(format!(
                            "spec.policyTypes[{i}]: {other:?} is not Ingress or Egress"
                        ));
                    }
                }
            }
        }
    }
    let namespace = &key.namespace;
    let rules = |field: &str,
                 list: &mut dyn Iterator<Item = (&[PolicyPeer], &[PolicyPort])>|
     -> Result<Vec<Rule>, String> {
        list.enumerate()
            .map(|(i, (peers, ports))| rule(namespace, &format!("{field}[{i}]"), peers, ports))
            .collect()
    };
    let ingress = if ingress_type {
        Some(rules(
            "spec.ingress",
            &mut spec
                .ingress
                .iter()
                .map(|r| (r.from.as_slice(), r.ports.as_slice())),
        )?)
    } else {
        None
    };
    let egress = if egress_type {
        Some(rules(
            "spec.egress",
            &mut spec
                .egress
                .iter()
                .map(|r| (r.to.as_slice(), r.ports.as_slice())),
        )?)
    } else {
        None
    };
    Ok(Policy {
        key,
        pod_selector,
        ingress,
        egress,
    })
}

fn rule(
    namespace: &str,
    field: &str,
    peers: &[PolicyPeer],
    ports: &[PolicyPort],
) -> Result<Rule, String> {
    let peer_field = if field.starts_with("spec.ingress") {
        "from"
    } else {
        "to"
    };
    let peers = peers
        .iter()
        .enumerate()
        .map(|(i, p)| peer(namespace, &format!("{field}.{peer_field}[{i}]"), p))
        .collect::<Result<_, _>>()?;
    let ports = ports
        .iter()
        .enumerate()
        .map(|(i, p)| port(&format!("{field}.ports[{i}]"), p))
        .collect::<Result<_, _>>()?;
    Ok(Rule { peers, ports })
}

fn peer(namespace: &str, field: &str, peer: &PolicyPeer) -> Result<Peer, String> {
    match (&peer.pod_selector, &peer.namespace_selector, &peer.ip_block) {
        (None, None, None) => Err(format!(
            "{field}: must specify podSelector, namespaceSelector or ipBlock"
        )),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(format!(
            "{field}: ipBlock may not be combined with a selector"
        )),
        (None, None, Some(block)) => ip_block(&format!("{field}.ipBlock"), block).map(Peer::Block),
        (pods, namespaces, None) => {
            let pods = SelectorKey::new(&pods.clone().unwrap_or_default())
                .map_err(|e| format!("{field}.podSelector.{e}"))?;
            let namespaces = match namespaces {
                None => NamespaceScope::Own(namespace.to_owned()),
                Some(selector) => NamespaceScope::Matching(
                    SelectorKey::new(selector)
                        .map_err(|e| format!("{field}.namespaceSelector.{e}"))?,
                ),
            };
            Ok(Peer::Pods { namespaces, pods })
        }
    }
}

fn ip_block(field: &str, block: &super::objects::IpBlock) -> Result<IpBlockSpec, String> {
    let parse = |text: &str, field: &str| -> Result<IpNetwork, String> {
        if !text.contains('/') {
            return Err(format!("{field}: {text:?} is not a CIDR (address/prefix)"));
        }
        let net: IpNetwork = text
            .parse()
            .map_err(|_| format!("{field}: {text:?} is not a CIDR"))?;
        // Kubernetes takes "10.0.0.1/24" and means its network.
        IpNetwork::new(net.network(), net.prefix()).map_err(|e| format!("{field}: {e}"))
    };
    let cidr = parse(&block.cidr, &format!("{field}.cidr"))?;
    let mut except = Vec::new();
    for (i, text) in block.except.iter().enumerate() {
        let field = format!("{field}.except[{i}]");
        let net = parse(text, &field)?;
        // The API server takes only a strict subset of the cidr.
        if net.is_ipv4() != cidr.is_ipv4()
            || net.prefix() <= cidr.prefix()
            || !cidr.contains(net.network())
        {
            return Err(format!("{field}: {text} is not strictly within {cidr}"));
        }
        except.push(net);
    }
    Ok(IpBlockSpec { cidr, except })
}

fn port(field: &str, port: &PolicyPort) -> Result<PortSpec, String> {
    let protocol = match &port.protocol {
        Some(p) => p.parse().map_err(|e| format!("{field}.protocol: {e}"))?,
        None => Protocol::Tcp,
    };
    let number = |n: i32, field: &str| -> Result<u16, String> {
        u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{field}: {n} is not a port (1-65535)"))
    };
    let port_match = match (&port.port, port.end_port) {
        (None, None) => PortMatch::All,
        (None, Some(_)) => return Err(format!("{field}.endPort: requires port")),
        (Some(IntOrString::Int(n)), end) => {
            let first = number(*n, &format!("{field}.port"))?;
            let last = match end {
                None => first,
                Some(e) => {
                    let last = number(e, &format!("{field}.endPort"))?;
                    if last < first {
                        return Err(format!("{field}.endPort: {last} is less than port {first}"));
                    }
                    last
                }
            };
            PortMatch::Range { first, last }
        }
        // A quoted number (`port: "80"`) is a string to the API server,
        // and no port name: it has no letter. Refused, as there.
        (Some(IntOrString::String(name)), None) if is_port_name(name) => {
            PortMatch::Named(name.clone())
        }
        (Some(IntOrString::String(name)), None) => {
            return Err(format!(
                "{field}.port: {name:?} is not a port name (1-15 lowercase letters, digits and '-', with a letter)"
            ));
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            return Err(format!("{field}.endPort: may not be set with a named port"));
        }
    };
    Ok(PortSpec {
        protocol,
        port: port_match,
    })
}

/// IANA_SVC_NAME as Kubernetes validates it.
fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests;
