// The policy compiler: (cluster, this node) → what the node must enforce.
// For each local endpoint, the policies that isolate it per direction; for
// each such policy, its rules with peers and named ports turned into sets
// of addresses. Pure: no I/O, and the same input always gives the same
// output, set identities included, so that the applier rewrites only what
// changed.
//
// Set identities come from what a set means, not from where it is used:
// identical rules in two policies share one set, and a pod's label change
// changes the members of a set, never its name, so the chains that match it
// stay as they are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use podroute_cni::args::{fnv1a64, host_veth_name};

use crate::model::cluster::{
    Cluster, Direction, IpBlockSpec, NamespaceScope, ObjectKey, Peer, Pod, PortMatch, Protocol,
    Rule,
};
use crate::model::evaluate::Flow;

#[cfg(test)]
mod tests;

/// A pod on this node, with its host-side interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub key: ObjectKey,
    /// The CNI plugin's host veth name for the pod.
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    /// None: no policy isolates it for ingress. Otherwise the isolating
    /// policies, in name order (possibly allowing nothing).
    pub ingress: Option<Vec<ObjectKey>>,
    pub egress: Option<Vec<ObjectKey>>,
}

impl Endpoint {
    pub fn policies(&self, direction: Direction) -> Option<&[ObjectKey]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// One direction of one policy, shared by the endpoints it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPolicy {
    pub key: ObjectKey,
    pub direction: Direction,
    pub rules: Vec<CompiledRule>,
}

/// A rule: any of `peers` (None: any address) and any of `ports` (None:
/// any port and protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    /// Index in the policy's ingress or egress list.
    pub index: usize,
    pub peers: Option<Vec<SetId>>,
    pub ports: Option<Vec<CompiledPort>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPort {
    pub protocol: Protocol,
    pub port: PortSelect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSelect {
    All,
    Range {
        first: u16,
        last: u16,
    },
    /// The destination address and port must be in this NamedPort set.
    Named(SetId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// Pod addresses a rule's pod peers name.
    Pods,
    /// An ipBlock.
    Block,
    /// Address and port of every pod with a container port of this name
    /// and protocol.
    NamedPort,
}

/// A set's identity: its kind and a `SET_HASH_BITS` hash of its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetId {
    pub kind: SetKind,
    pub hash: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetContent {
    Pods(BTreeSet<IpAddr>),
    Block(IpBlockSpec),
    NamedPort(BTreeSet<(IpAddr, Protocol, u16)>),
}

impl SetContent {
    /// Whether the set holds `address` (Pods, Block) or `address` with
    /// `protocol`/`port` (NamedPort), as the kernel's set match decides.
    pub fn contains(&self, address: IpAddr, protocol: Protocol, port: u16) -> bool {
        match self {
            SetContent::Pods(members) => members.contains(&address),
            SetContent::Block(block) => block.contains(address),
            SetContent::NamedPort(members) => members.contains(&(address, protocol, port)),
        }
    }
}

/// What this node enforces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compiled {
    pub node: String,
    /// In key order.
    pub endpoints: Vec<Endpoint>,
    /// Only policies that isolate a local endpoint.
    pub policies: BTreeMap<(ObjectKey, Direction), CompiledPolicy>,
    pub sets: BTreeMap<SetId, SetContent>,
}

/// Compiles what `node` must enforce.
pub fn compile(cluster: &Cluster, node: &str) -> Compiled {
    let mut compiled = Compiled {
        node: node.to_owned(),
        ..Compiled::default()
    };
    let mut sets = SetRegistry::default();
    for pod in cluster.pods().filter(|p| p.node.as_deref() == Some(node)) {
        let mut isolating = |direction| -> Option<Vec<ObjectKey>> {
            let policies = cluster.isolating(pod, direction);
            if policies.is_empty() {
                return None;
            }
            for policy in &policies {
                let key = (policy.key.clone(), direction);
                compiled.policies.entry(key).or_insert_with(|| {
                    let rules = policy.rules(direction).unwrap_or_default();
                    CompiledPolicy {
                        key: policy.key.clone(),
                        direction,
                        rules: rules
                            .iter()
                            .enumerate()
                            .map(|(index, rule)| compile_rule(cluster, index, rule, &mut sets))
                            .collect(),
                    }
                });
            }
            Some(policies.iter().map(|p| p.key.clone()).collect())
        };
        let ingress = isolating(Direction::Ingress);
        let egress = isolating(Direction::Egress);
        compiled.endpoints.push(Endpoint {
            key: pod.key.clone(),
            interface: interface_of(pod),
            addresses: pod.addresses.clone(),
            ingress,
            egress,
        });
    }
    compiled.sets = sets.contents;
    compiled
}

/// The sets compiled so far, by identity, and what each means: two
/// meanings whose hashes collide (names come from tenants' objects, and
/// FNV is no cryptographic hash) get distinct identities instead of one
/// silently standing in for the other.
#[derive(Default)]
struct SetRegistry {
    contents: BTreeMap<SetId, SetContent>,
    meanings: BTreeMap<SetId, String>,
}

impl SetRegistry {
    /// The identity of the set that means `meaning`; `make` gives its
    /// content the first time.
    fn id(&mut self, kind: SetKind, meaning: String, make: impl FnOnce() -> SetContent) -> SetId {
        let mut hash = fnv1a64(meaning.as_bytes()) >> (64 - SET_HASH_BITS);
        loop {
            let id = SetId { kind, hash };
            match self.meanings.get(&id) {
                Some(known) if *known == meaning => return id,
                Some(_) => hash = (hash + 1) & ((1 << SET_HASH_BITS) - 1),
                None => {
                    self.meanings.insert(id, meaning);
                    self.contents.insert(id, make());
                    return id;
                }
            }
        }
    }
}

/// Bits of a set identity's hash: 14 hex digits fit an ipset name with
/// room for the applier's `-tmp` twin.
pub const SET_HASH_BITS: u32 = 56;

/// The pod's host veth, named as podroute-cni names it.
pub fn interface_of(pod: &Pod) -> String {
    host_veth_name(Some((&pod.key.namespace, &pod.key.name)), "", "eth0")
}

fn compile_rule(
    cluster: &Cluster,
    index: usize,
    rule: &Rule,
    sets: &mut SetRegistry,
) -> CompiledRule {
    let peers = if rule.peers.is_empty() {
        None
    } else {
        let mut peers = Vec::new();
        // The rule's pod peers become one set: one match per rule however
        // many selectors it lists.
        let pod_peers: Vec<(&NamespaceScope, &crate::model::cluster::SelectorKey)> = rule
            .peers
            .iter()
            .filter_map(|p| match p {
                Peer::Pods { namespaces, pods } => Some((namespaces, pods)),
                Peer::Block(_) => None,
            })
            .collect();
        if !pod_peers.is_empty() {
            let mut meaning: Vec<String> = pod_peers
                .iter()
                .map(|(scope, pods)| match scope {
                    NamespaceScope::Own(ns) => format!("own {ns} pods {}", pods.canonical()),
                    NamespaceScope::Matching(nss) => {
                        format!("namespaces {} pods {}", nss.canonical(), pods.canonical())
                    }
                })
                .collect();
            meaning.sort();
            meaning.dedup();
            let id = sets.id(SetKind::Pods, meaning.join("\n"), || {
                SetContent::Pods(
                    pod_peers
                        .iter()
                        .flat_map(|(scope, pods)| cluster.peer_pods(scope, &pods.selector))
                        .flat_map(|pod| pod.addresses.iter().copied())
                        .collect(),
                )
            });
            peers.push(id);
        }
        for peer in &rule.peers {
            if let Peer::Block(block) = peer {
                // An except that covers the whole block leaves nothing.
                if block
                    .except
                    .iter()
                    .any(|e| e.prefix() <= block.cidr.prefix())
                {
                    continue;
                }
                let mut meaning = format!("block {}", block.cidr);
                for e in &block.except {
                    meaning.push_str(&format!(" except {e}"));
                }
                let id = sets.id(SetKind::Block, meaning, || SetContent::Block(block.clone()));
                if !peers.contains(&id) {
                    peers.push(id);
                }
            }
        }
        Some(peers)
    };
    let ports = if rule.ports.is_empty() {
        None
    } else {
        Some(
            rule.ports
                .iter()
                .map(|spec| CompiledPort {
                    protocol: spec.protocol,
                    port: match &spec.port {
                        PortMatch::All => PortSelect::All,
                        PortMatch::Range { first, last } => PortSelect::Range {
                            first: *first,
                            last: *last,
                        },
                        PortMatch::Named(name) => {
                            PortSelect::Named(named_port_set(cluster, name, spec.protocol, sets))
                        }
                    },
                })
                .collect(),
        )
    };
    CompiledRule {
        index,
        peers,
        ports,
    }
}

/// Every pod's address and port for a port name: a policy's named port
/// means, for each destination pod, that pod's own number.
fn named_port_set(
    cluster: &Cluster,
    name: &str,
    protocol: Protocol,
    sets: &mut SetRegistry,
) -> SetId {
    sets.id(
        SetKind::NamedPort,
        format!("named port {name}/{protocol}"),
        || {
            let mut members = BTreeSet::new();
            for pod in cluster.pods() {
                for port in pod
                    .named_ports
                    .iter()
                    .filter(|p| p.name == name && p.protocol == protocol)
                {
                    for address in &pod.addresses {
                        members.insert((*address, protocol, port.port));
                    }
                }
            }
            SetContent::NamedPort(members)
        },
    )
}

impl Compiled {
    pub fn endpoint(&self, key: &ObjectKey) -> Option<&Endpoint> {
        self.endpoints
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &self.endpoints[i])
    }

    /// Whether the rules compiled for `endpoint` let `flow` through in
    /// `direction`, read exactly as the rendered chains do: not isolated
    /// passes; otherwise some rule of an isolating policy must match, peers
    /// and named ports looked up in the sets. The dataplane's twin, used to
    /// find conntrack entries that a change denies, and in tests against
    /// the reference evaluator.
    pub fn allows(&self, endpoint: &Endpoint, direction: Direction, flow: &Flow) -> bool {
        let Some(policies) = endpoint.policies(direction) else {
            return true;
        };
        let peer = match direction {
            Direction::Ingress => flow.source,
            Direction::Egress => flow.destination,
        };
        // A pod cannot block access to itself.
        if endpoint.addresses.contains(&peer) {
            return true;
        }
        policies.iter().any(|key| {
            self.policies
                .get(&(key.clone(), direction))
                .is_some_and(|policy| {
                    policy
                        .rules
                        .iter()
                        .any(|rule| self.matches(rule, peer, flow))
                })
        })
    }

    fn matches(&self, rule: &CompiledRule, peer: IpAddr, flow: &Flow) -> bool {
        let in_set = |id: &SetId, address, protocol, port| {
            self.sets
                .get(id)
                .is_some_and(|set| set.contains(address, protocol, port))
        };
        let peer_ok = rule.peers.as_ref().is_none_or(|peers| {
            peers
                .iter()
                .any(|id| in_set(id, peer, flow.protocol, flow.port))
        });
        let port_ok = rule.ports.as_ref().is_none_or(|ports| {
            ports.iter().any(|p| {
                p.protocol == flow.protocol
                    && match &p.port {
                        PortSelect::All => true,
                        PortSelect::Range { first, last } => (*first..=*last).contains(&flow.port),
                        PortSelect::Named(id) => {
                            in_set(id, flow.destination, flow.protocol, flow.port)
                        }
                    }
            })
        });
        peer_ok && port_ok
    }
}
