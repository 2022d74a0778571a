// The reference evaluator: whether a connection from one address to
// another on a port is allowed, decided straight from the Kubernetes
// NetworkPolicy semantics with no compilation, no sets and no chains. Tests
// hold the compiler and the kernel to it; `Explain` answers with it.
//
// The rules, as the API documents them (kubernetes.io, Network Policies): a
// pod is isolated for a direction
// when a policy of its namespace selects it and has that direction in its
// policyTypes; an isolated pod takes only what some such policy's rules
// allow (the union); a pod no policy isolates takes everything. A
// connection needs the source's egress and the destination's ingress.
// Replies of an allowed connection are allowed (conntrack), so only the
// connection's first packet is judged here. A pod may always reach itself.
// Traffic between a pod and its own node is always allowed too; the model
// has no node addresses, so callers (the dataplane, the conntrack sweep)
// spare it themselves.

use std::fmt;
use std::net::IpAddr;

use super::cluster::{Cluster, Direction, ObjectKey, Peer, Pod, PortMatch, Protocol, Rule};

/// A connection's first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
}

/// One side's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The address is no pod's: policy does not apply on this side.
    NotAPod,
    /// No policy isolates the pod in this direction.
    NotIsolated,
    /// A pod talking to itself (through a Service): always allowed.
    Itself,
    /// This policy's rule (index in its ingress or egress list) allows it.
    Allowed { policy: ObjectKey, rule: usize },
    /// These policies isolate the pod and none allows it.
    Denied { isolating: Vec<ObjectKey> },
}

impl Verdict {
    pub fn allows(&self) -> bool {
        !matches!(self, Verdict::Denied { .. })
    }
}

/// Both sides' verdicts; the connection is allowed when both allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub egress: Verdict,
    pub ingress: Verdict,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.egress.allows() && self.ingress.allows()
    }
}

/// Judges `flow` against every policy of the cluster.
pub fn evaluate(cluster: &Cluster, flow: &Flow) -> Decision {
    let source = cluster.pod_at(flow.source);
    let destination = cluster.pod_at(flow.destination);
    if source.is_some() && source.map(|p| &p.key) == destination.map(|p| &p.key) {
        // "A pod cannot block access to itself."
        return Decision {
            egress: Verdict::Itself,
            ingress: Verdict::Itself,
        };
    }
    Decision {
        egress: side(cluster, source, Direction::Egress, flow, destination),
        ingress: side(cluster, destination, Direction::Ingress, flow, destination),
    }
}

/// The verdict of `pod` (the source for egress, the destination for
/// ingress). Named ports always resolve on the destination pod.
fn side(
    cluster: &Cluster,
    pod: Option<&Pod>,
    direction: Direction,
    flow: &Flow,
    destination: Option<&Pod>,
) -> Verdict {
    let Some(pod) = pod else {
        return Verdict::NotAPod;
    };
    let policies = cluster.isolating(pod, direction);
    if policies.is_empty() {
        return Verdict::NotIsolated;
    }
    let peer_address = match direction {
        Direction::Ingress => flow.source,
        Direction::Egress => flow.destination,
    };
    for policy in &policies {
        let rules = policy.rules(direction).unwrap_or_default();
        for (index, rule) in rules.iter().enumerate() {
            if rule_matches(cluster, rule, peer_address, flow, destination) {
                return Verdict::Allowed {
                    policy: policy.key.clone(),
                    rule: index,
                };
            }
        }
    }
    Verdict::Denied {
        isolating: policies.iter().map(|p| p.key.clone()).collect(),
    }
}

fn rule_matches(
    cluster: &Cluster,
    rule: &Rule,
    peer_address: IpAddr,
    flow: &Flow,
    destination: Option<&Pod>,
) -> bool {
    let peer_ok = rule.peers.is_empty()
        || rule.peers.iter().any(|peer| match peer {
            Peer::Block(block) => block.contains(peer_address),
            Peer::Pods { namespaces, pods } => cluster
                .pod_at(peer_address)
                .is_some_and(|pod| cluster.peer_selects(namespaces, &pods.selector, pod)),
        });
    let port_ok = rule.ports.is_empty()
        || rule.ports.iter().any(|spec| {
            spec.protocol == flow.protocol
                && match &spec.port {
                    PortMatch::All => true,
                    PortMatch::Range { first, last } => (*first..=*last).contains(&flow.port),
                    PortMatch::Named(name) => {
                        destination.is_some_and(|pod| pod.resolves(name, flow.protocol, flow.port))
                    }
                }
        });
    peer_ok && port_ok
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::NotAPod => f.write_str("not a pod: no policy applies"),
            Verdict::NotIsolated => f.write_str("no policy isolates it"),
            Verdict::Itself => f.write_str("a pod may always reach itself"),
            Verdict::Allowed { policy, rule } => write!(f, "allowed by {policy} rule {rule}"),
            Verdict::Denied { isolating } => {
                let names: Vec<String> = isolating.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "denied: isolated by {} and no rule allows it",
                    names.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests;
