// From compiled policy to kernel objects: iptables chains and ipsets, one
// table per family. Pure; `apply` programs the result.
//
// The chains, filter table (both families):
//
//   FORWARD → PODROUTE-FORWARD   -i podr+ → PODROUTE-FROM-POD (egress)
//                                -o podr+ → PODROUTE-TO-POD   (ingress)
//                                then ACCEPT what came from or goes to a pod
//   INPUT   → PODROUTE-INPUT     -i podr+ → PODROUTE-FROM-POD (a pod's
//                                egress to its node; the node's own rules
//                                still decide after)
//   PODROUTE-FROM-POD / -TO-POD  one goto per local endpoint's interface to
//                                its PODROUTE-EE-* / PODROUTE-EI-* chain, then
//                                DROP: a pod interface we do not know yet
//                                (no policy programmed) gets nothing.
//   PODROUTE-EE-* / -EI-*        anti-spoofing (egress), replies of allowed
//                                connections, RETURN when not isolated, else
//                                each isolating policy's chain, RETURN when
//                                one set the allow mark, DROP otherwise.
//   PODROUTE-PE-* / -PI-*        one policy's rules, shared by every endpoint
//                                it selects: peers and named ports are set
//                                matches, so rules grow with policies, not
//                                with pods.
//
// Traffic from a pod's own node to the pod (kubelet's probes) leaves by
// OUTPUT and is not filtered: NetworkPolicy always allows it.

pub mod dataplane;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use podroute_cni::args::{HOST_VETH_PREFIX, fnv1a64};

use crate::compile::{
    Compiled, CompiledPolicy, CompiledRule, Endpoint, PortSelect, SetContent, SetId, SetKind,
};
use crate::model::cluster::{Direction, ObjectKey};
pub use dataplane::{Dataplane, Family, Hook, IpSet, Rule, Table};

pub const FORWARD_CHAIN: &str = "PODROUTE-FORWARD";
pub const INPUT_CHAIN: &str = "PODROUTE-INPUT";
pub const FROM_POD_CHAIN: &str = "PODROUTE-FROM-POD";
pub const TO_POD_CHAIN: &str = "PODROUTE-TO-POD";

/// Packet mark bit a policy chain sets when a rule allows. Clear of
/// kube-proxy's 0x4000/0x8000 and Calico's upper 16 bits.
pub const DEFAULT_ALLOW_MARK: u32 = 0x0004_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// A single bit: `allow_mark.is_power_of_two()`.
    pub allow_mark: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            allow_mark: DEFAULT_ALLOW_MARK,
        }
    }
}

/// The kernel objects that enforce `compiled`.
pub fn render(compiled: &Compiled, options: &RenderOptions) -> Dataplane {
    let v4 = table(compiled, Family::V4, options);
    let v6 = table(compiled, Family::V6, options);
    // Only the sets a table matches on: an IPv4-only cluster gets no empty
    // inet6 sets.
    let referenced: BTreeSet<&str> = [&v4, &v6]
        .iter()
        .flat_map(|t| t.chains.values().flatten())
        .flat_map(|rule| sets_matched(&rule.line))
        .collect();
    let mut sets = BTreeMap::new();
    for (id, content) in &compiled.sets {
        for family in [Family::V4, Family::V6] {
            if !referenced.contains(set_name(*id, family).as_str()) {
                continue;
            }
            if let Some(set) = ipset(*id, content, family) {
                sets.insert(set.name.clone(), set);
            }
        }
    }
    Dataplane { v4, v6, sets }
}

/// The sets a rule line matches on (`--match-set NAME ...`).
fn sets_matched(line: &str) -> impl Iterator<Item = &str> {
    let mut words = line.split(' ');
    std::iter::from_fn(move || {
        words.by_ref().find(|w| *w == "--match-set")?;
        words.next()
    })
}

/// Name of the `family` ipset for a set: `podroute-<kind><4|6>-<14 hex>`,
/// 26 bytes, so the applier's `-tmp` twin fits ipset's 31.
pub fn set_name(id: SetId, family: Family) -> String {
    let kind = match id.kind {
        SetKind::Pods => 'p',
        SetKind::Block => 'b',
        SetKind::NamedPort => 'n',
    };
    let family = match family {
        Family::V4 => '4',
        Family::V6 => '6',
    };
    format!(
        "{}{kind}{family}-{:014x}",
        dataplane::SET_PREFIX,
        id.hash >> 8
    )
}

pub fn endpoint_chain(endpoint: &Endpoint, direction: Direction) -> String {
    let tag = match direction {
        Direction::Ingress => "EI",
        Direction::Egress => "EE",
    };
    format!(
        "{}{tag}-{:016x}",
        dataplane::CHAIN_PREFIX,
        fnv1a64(endpoint.interface.as_bytes())
    )
}

pub fn policy_chain(policy: &ObjectKey, direction: Direction) -> String {
    let tag = match direction {
        Direction::Ingress => "PI",
        Direction::Egress => "PE",
    };
    format!(
        "{}{tag}-{:016x}",
        dataplane::CHAIN_PREFIX,
        fnv1a64(policy.to_string().as_bytes())
    )
}

fn family_of(address: &IpAddr) -> Family {
    if address.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

fn ipset(id: SetId, content: &SetContent, family: Family) -> Option<IpSet> {
    let (kind, members): (_, BTreeSet<String>) = match content {
        SetContent::Pods(addresses) => (
            dataplane::SetKind::HashIp,
            addresses
                .iter()
                .filter(|a| family_of(a) == family)
                .map(ToString::to_string)
                .collect(),
        ),
        SetContent::Block(block) => {
            if family_of(&block.cidr.ip()) != family {
                return None;
            }
            let mut members: BTreeSet<String> = split_zero(block.cidr)
                .into_iter()
                .map(|net| net_entry(&net))
                .collect();
            for except in &block.except {
                members.insert(format!("{} nomatch", net_entry(except)));
            }
            (dataplane::SetKind::HashNet, members)
        }
        SetContent::NamedPort(entries) => (
            dataplane::SetKind::HashIpPort,
            entries
                .iter()
                .filter(|(a, _, _)| family_of(a) == family)
                .map(|(address, protocol, port)| match address {
                    IpAddr::V4(a) => format!("{a},{}:{port}", protocol.name()),
                    IpAddr::V6(a) => format!("{a},{}:{port}", protocol.name()),
                })
                .collect(),
        ),
    };
    Some(IpSet {
        name: set_name(id, family),
        kind,
        family,
        members,
    })
}

/// hash:net takes no /0: the whole space is its two halves.
fn split_zero(net: IpNetwork) -> Vec<IpNetwork> {
    if net.prefix() != 0 {
        return vec![net];
    }
    let halves: [&str; 2] = if net.is_ipv4() {
        ["0.0.0.0/1", "128.0.0.0/1"]
    } else {
        ["::/1", "8000::/1"]
    };
    halves.iter().filter_map(|h| h.parse().ok()).collect()
}

/// As `ipset save` prints a hash:net entry: a host without its prefix.
fn net_entry(net: &IpNetwork) -> String {
    let host = if net.is_ipv4() { 32 } else { 128 };
    if net.prefix() == host {
        net.network().to_string()
    } else {
        format!("{}/{}", net.network(), net.prefix())
    }
}

/// Builds one chain's rules, chaining each rule's hash to the previous.
struct ChainBuilder {
    name: String,
    rules: Vec<Rule>,
}

impl ChainBuilder {
    fn new(name: impl Into<String>) -> Self {
        ChainBuilder {
            name: name.into(),
            rules: Vec::new(),
        }
    }

    /// `matches` (may be empty), a description for people reading
    /// iptables-save (no quotes), and the target (`-j X` / `-g X`).
    fn push(&mut self, matches: &str, description: &str, target: &str) {
        let description = comment_text(description);
        let previous = self.rules.last().map_or("", |r| r.hash.as_str());
        let hash = format!(
            "{:016x}",
            fnv1a64(
                format!(
                    "{}\n{previous}\n{matches}\n{description}\n{target}",
                    self.name
                )
                .as_bytes()
            )
        );
        let mut line = String::new();
        if !matches.is_empty() {
            line.push_str(matches);
            line.push(' ');
        }
        let _ = write!(
            line,
            "-m comment --comment \"{}{hash} {description}\" {target}",
            dataplane::COMMENT_TAG
        );
        self.rules.push(Rule { hash, line });
    }

    fn finish(self, chains: &mut BTreeMap<String, Vec<Rule>>) {
        chains.insert(self.name, self.rules);
    }
}

/// iptables takes comments of at most 255 bytes; names from a manifests
/// folder are not checked by an API server, so keep to harmless bytes.
fn comment_text(description: &str) -> String {
    const MAX: usize = 200;
    description
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ./:_-,=()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX)
        .collect()
}

fn hook(builtin: &str, target: &str) -> Hook {
    let hash = format!(
        "{:016x}",
        fnv1a64(format!("{builtin}\n{target}").as_bytes())
    );
    Hook {
        builtin: builtin.to_owned(),
        line: format!(
            "-m comment --comment \"{}{hash} podroute hook\" -j {target}",
            dataplane::COMMENT_TAG
        ),
        hash,
    }
}

fn table(compiled: &Compiled, family: Family, options: &RenderOptions) -> Table {
    let mut chains = BTreeMap::new();
    let pods = format!("{HOST_VETH_PREFIX}+");

    let mut forward = ChainBuilder::new(FORWARD_CHAIN);
    forward.push(
        &format!("-i {pods}"),
        "from a pod: its egress",
        &format!("-j {FROM_POD_CHAIN}"),
    );
    forward.push(
        &format!("-o {pods}"),
        "to a pod: its ingress",
        &format!("-j {TO_POD_CHAIN}"),
    );
    forward.push(&format!("-i {pods}"), "policy allowed", "-j ACCEPT");
    forward.push(&format!("-o {pods}"), "policy allowed", "-j ACCEPT");
    forward.finish(&mut chains);

    let mut input = ChainBuilder::new(INPUT_CHAIN);
    input.push(
        &format!("-i {pods}"),
        "from a pod to its node: its egress",
        &format!("-j {FROM_POD_CHAIN}"),
    );
    input.finish(&mut chains);

    let mut from_pod = ChainBuilder::new(FROM_POD_CHAIN);
    let mut to_pod = ChainBuilder::new(TO_POD_CHAIN);
    let mut policies = BTreeSet::new();
    for endpoint in &compiled.endpoints {
        let who = endpoint.key.to_string();
        if !endpoint.addresses.iter().any(|a| family_of(a) == family) {
            // Nothing of this family is the pod's: drop it all, without
            // chains of its own.
            let why = format!("{who} has no {family} address");
            from_pod.push(&format!("-i {}", endpoint.interface), &why, "-j DROP");
            to_pod.push(&format!("-o {}", endpoint.interface), &why, "-j DROP");
            continue;
        }
        for direction in [Direction::Ingress, Direction::Egress] {
            for policy in endpoint.policies(direction).unwrap_or_default() {
                policies.insert((policy.clone(), direction));
            }
        }
        from_pod.push(
            &format!("-i {}", endpoint.interface),
            &who,
            &format!("-g {}", endpoint_chain(endpoint, Direction::Egress)),
        );
        to_pod.push(
            &format!("-o {}", endpoint.interface),
            &who,
            &format!("-g {}", endpoint_chain(endpoint, Direction::Ingress)),
        );
        endpoint_chains(endpoint, family, options, &mut chains);
    }
    from_pod.push(
        "",
        "unknown pod interface: no policy programmed yet",
        "-j DROP",
    );
    to_pod.push(
        "",
        "unknown pod interface: no policy programmed yet",
        "-j DROP",
    );
    from_pod.finish(&mut chains);
    to_pod.finish(&mut chains);

    for key in &policies {
        if let Some(policy) = compiled.policies.get(key) {
            policy_chain_rules(policy, compiled, family, options, &mut chains);
        }
    }
    Table {
        family,
        chains,
        hooks: vec![hook("FORWARD", FORWARD_CHAIN), hook("INPUT", INPUT_CHAIN)],
    }
}

fn endpoint_chains(
    endpoint: &Endpoint,
    family: Family,
    options: &RenderOptions,
    chains: &mut BTreeMap<String, Vec<Rule>>,
) {
    let mark = format!("{:#x}/{:#x}", options.allow_mark, options.allow_mark);
    let clear = format!("-j MARK --set-xmark 0x0/{:#x}", options.allow_mark);
    for direction in [Direction::Egress, Direction::Ingress] {
        let mut chain = ChainBuilder::new(endpoint_chain(endpoint, direction));
        let who = &endpoint.key;
        if direction == Direction::Egress {
            if family == Family::V6 {
                // Router and neighbour discovery from the pod's link-local
                // address: without them the node cannot reach the pod.
                for (icmp_type, what) in [(133, "router"), (135, "neighbour"), (136, "neighbour")] {
                    chain.push(
                        &format!("-p ipv6-icmp -m icmp6 --icmpv6-type {icmp_type}"),
                        &format!("{what} discovery"),
                        "-j RETURN",
                    );
                }
            }
            if let Some(address) = endpoint.addresses.iter().find(|a| family_of(a) == family) {
                chain.push(
                    &format!("! -s {address}"),
                    &format!("anti-spoofing: {who} sends only from {address}"),
                    "-j DROP",
                );
            }
        }
        chain.push(
            "-m conntrack --ctstate RELATED,ESTABLISHED",
            "replies of allowed connections",
            "-j RETURN",
        );
        match endpoint.policies(direction) {
            None => chain.push(
                "",
                &format!("no policy isolates {who} for {direction}"),
                "-j RETURN",
            ),
            Some(policies) => {
                chain.push("", "clear the allow mark", &clear);
                for policy in policies {
                    chain.push(
                        "",
                        &format!("policy {policy}"),
                        &format!("-j {}", policy_chain(policy, direction)),
                    );
                    chain.push(
                        &format!("-m mark --mark {mark}"),
                        &format!("allowed by {policy}"),
                        "-j RETURN",
                    );
                }
                chain.push(
                    "",
                    &format!("{direction} of {who}: no policy allows it"),
                    "-j DROP",
                );
            }
        }
        chain.finish(chains);
    }
}

fn policy_chain_rules(
    policy: &CompiledPolicy,
    compiled: &Compiled,
    family: Family,
    options: &RenderOptions,
    chains: &mut BTreeMap<String, Vec<Rule>>,
) {
    let mut chain = ChainBuilder::new(policy_chain(&policy.key, policy.direction));
    let allow = format!(
        "-j MARK --set-xmark {:#x}/{:#x}",
        options.allow_mark, options.allow_mark
    );
    let peer_side = match policy.direction {
        Direction::Ingress => "src",
        Direction::Egress => "dst",
    };
    for rule in &policy.rules {
        let description = format!("{} {} rule {}", policy.key, policy.direction, rule.index);
        for peer in peer_matches(rule, compiled, family, peer_side) {
            for port in port_matches(rule, family) {
                let matches = [peer.as_str(), port.as_str()]
                    .iter()
                    .filter(|m| !m.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                chain.push(&matches, &description, &allow);
            }
        }
    }
    chain.finish(chains);
}

/// One match per peer of the rule that can hold `family` addresses; `[""]`
/// for any peer; empty when no peer of the rule can match in this family.
fn peer_matches(
    rule: &CompiledRule,
    compiled: &Compiled,
    family: Family,
    side: &str,
) -> Vec<String> {
    let Some(peers) = &rule.peers else {
        return vec![String::new()];
    };
    peers
        .iter()
        .filter(|id| match compiled.sets.get(id) {
            Some(SetContent::Block(block)) => family_of(&block.cidr.ip()) == family,
            Some(_) => true,
            None => false,
        })
        .map(|id| format!("-m set --match-set {} {side}", set_name(*id, family)))
        .collect()
}

fn port_matches(rule: &CompiledRule, family: Family) -> Vec<String> {
    let Some(ports) = &rule.ports else {
        return vec![String::new()];
    };
    ports
        .iter()
        .map(|port| {
            let proto = port.protocol.name();
            match &port.port {
                PortSelect::All => format!("-p {proto}"),
                PortSelect::Range { first, last } if first == last => {
                    format!("-p {proto} -m {proto} --dport {first}")
                }
                PortSelect::Range { first, last } => {
                    format!("-p {proto} -m {proto} --dport {first}:{last}")
                }
                PortSelect::Named(id) => format!(
                    "-p {proto} -m set --match-set {} dst,dst",
                    set_name(*id, family)
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
