// From compiled policy to kernel objects: iptables chains and ipsets, one
// table per family. Pure; `apply` programs the result.
//
// The chains, filter table (both families):
//
//   FORWARD → PODROUTE-FORWARD   -i podr+ → PODROUTE-FROM-POD (egress)
//                                -o podr+ → PODROUTE-TO-POD   (ingress)
//                                then ACCEPT what came from or goes to a pod
//   INPUT   → PODROUTE-INPUT     -i podr+ → PODROUTE-FROM-POD (anti-
//                                spoofing and the unknown-pod drop; traffic
//                                to the node itself is then allowed and the
//                                node's own rules still decide after)
//   PODROUTE-FROM-POD / -TO-POD  one goto per local endpoint's interface to
//                                its PODROUTE-EE-* / PODROUTE-EI-* chain, then
//                                DROP: a pod interface we do not know yet
//                                (no policy programmed) gets nothing.
//   PODROUTE-EE-* / -EI-*        anti-spoofing (egress), replies of allowed
//                                connections, the pod and its node or itself
//                                (always allowed), RETURN when not isolated, else
//                                each isolating policy's chain, RETURN when
//                                one set the allow mark, DROP otherwise.
//   PODROUTE-PE-* / -PI-*        one policy's rules, shared by every endpoint
//                                it selects: peers and named ports are set
//                                matches, so rules grow with policies, not
//                                with pods.
//
// Traffic from a pod's own node to the pod (kubelet's probes) leaves by
// OUTPUT and is not filtered: NetworkPolicy always allows it, and a pod's
// traffic to its node returns before its egress policy.

pub mod dataplane;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
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
/// kube-proxy's 0x4000/0x8000; inside Calico's default mask (0xffff0000),
/// so beside Calico `--allow-mark` picks another.
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

/// Why one of our DROP rules drops what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// An isolated endpoint's last rule: none of its isolating policies
    /// allowed the packet.
    Policy,
    /// A pod interface with no endpoint: the pod is not in the agent's
    /// view yet (or not on this node as far as the view knows).
    UnknownPod,
    /// From a pod but not from its own address (anti-spoofing).
    Spoofed,
    /// The pod has no address of the packet's family.
    NoAddress,
}

impl DropReason {
    /// The `reason` label value of the dropped-packets metric.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Policy => "policy",
            DropReason::UnknownPod => "unknown_pod",
            DropReason::Spoofed => "spoofed",
            DropReason::NoAddress => "no_address",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One of our DROP rules and whose packets it drops, so that its kernel
/// counter (`iptables-save -c`) can be told apart from the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropRule {
    pub family: Family,
    pub chain: String,
    /// The rule's hash (`Rule::hash`): unique in its family's table.
    pub hash: String,
    /// Ingress: packets to the pod; egress: packets from it.
    pub direction: Direction,
    pub reason: DropReason,
    /// None for `UnknownPod`.
    pub endpoint: Option<ObjectKey>,
}

/// Every DROP rule of a render, by family and rule hash.
pub type DropIndex = HashMap<(Family, String), DropRule>;

/// The kernel objects that enforce `compiled`.
pub fn render(compiled: &Compiled, options: &RenderOptions) -> Dataplane {
    render_with_drops(compiled, options).0
}

/// `render`, and which of its rules drop what: the agent reads their
/// counters to tell who lost packets, and why.
pub fn render_with_drops(compiled: &Compiled, options: &RenderOptions) -> (Dataplane, DropIndex) {
    let names = ChainNames::new(compiled);
    let mut drops = Vec::new();
    let v4 = table(compiled, &names, Family::V4, options, &mut drops);
    let v6 = table(compiled, &names, Family::V6, options, &mut drops);
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
    let drops = drops
        .into_iter()
        .map(|d| ((d.family, d.hash.clone()), d))
        .collect();
    (Dataplane { v4, v6, sets }, drops)
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
    format!("{}{kind}{family}-{:014x}", dataplane::SET_PREFIX, id.hash)
}

/// An endpoint's chain for `direction`: `PODROUTE-EI-`/`EE-` and a hash
/// of its interface (unless that collides: see `ChainNames`).
pub fn endpoint_chain(endpoint: &Endpoint, direction: Direction) -> String {
    hashed_chain(endpoint_tag(direction), &endpoint.interface)
}

/// A policy direction's chain: `PODROUTE-PI-`/`PE-` and a hash of
/// `namespace/name` (unless that collides: see `ChainNames`).
pub fn policy_chain(policy: &ObjectKey, direction: Direction) -> String {
    hashed_chain(policy_tag(direction), &policy.to_string())
}

fn endpoint_tag(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "EI",
        Direction::Egress => "EE",
    }
}

fn policy_tag(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "PI",
        Direction::Egress => "PE",
    }
}

fn hashed_chain(tag: &str, owner: &str) -> String {
    format!(
        "{}{tag}-{:016x}",
        dataplane::CHAIN_PREFIX,
        fnv1a64(owner.as_bytes())
    )
}

/// The hashed name for `owner`, salted until no other owner in `taken`
/// (name → owner) holds it.
fn claim_chain(taken: &mut HashMap<String, String>, tag: &str, owner: String) -> String {
    let mut name = hashed_chain(tag, &owner);
    for salt in 1u32.. {
        match taken.get(&name) {
            Some(holder) if *holder != owner => {
                name = hashed_chain(tag, &format!("{owner}#{salt}"));
            }
            _ => break,
        }
    }
    taken.insert(name.clone(), owner);
    name
}

/// The chain names of one render. Policy names come from tenants and FNV
/// is no cryptographic hash: when two owners would share a name, the
/// later (in key order) is salted until it has its own, instead of one
/// chain silently standing in for another.
struct ChainNames {
    endpoints: HashMap<(String, Direction), String>,
    policies: HashMap<(ObjectKey, Direction), String>,
}

impl ChainNames {
    fn new(compiled: &Compiled) -> Self {
        let mut taken: HashMap<String, String> = HashMap::new();
        let mut unique = |tag: &str, owner: String| claim_chain(&mut taken, tag, owner);
        let mut endpoints = HashMap::new();
        for endpoint in &compiled.endpoints {
            for direction in [Direction::Ingress, Direction::Egress] {
                let name = unique(endpoint_tag(direction), endpoint.interface.clone());
                endpoints.insert((endpoint.interface.clone(), direction), name);
            }
        }
        let mut policies = HashMap::new();
        for (key, direction) in compiled.policies.keys() {
            let name = unique(policy_tag(*direction), key.to_string());
            policies.insert((key.clone(), *direction), name);
        }
        ChainNames {
            endpoints,
            policies,
        }
    }

    fn endpoint(&self, endpoint: &Endpoint, direction: Direction) -> String {
        self.endpoints
            .get(&(endpoint.interface.clone(), direction))
            .cloned()
            .unwrap_or_else(|| endpoint_chain(endpoint, direction))
    }

    fn policy(&self, key: &ObjectKey, direction: Direction) -> String {
        self.policies
            .get(&(key.clone(), direction))
            .cloned()
            .unwrap_or_else(|| policy_chain(key, direction))
    }
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
            let halves = split_zero(block.cidr);
            // An except that is a whole half of 0/0 removes that half: the
            // same entry cannot be in a set twice, matching and not.
            let mut members: BTreeSet<String> = halves
                .iter()
                .filter(|half| !block.except.contains(half))
                .map(net_entry)
                .collect();
            for except in block.except.iter().filter(|e| !halves.contains(e)) {
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

    /// `push`es a DROP rule and records it in `drops`.
    fn push_drop(
        &mut self,
        matches: &str,
        description: &str,
        drop: Dropping<'_>,
        drops: &mut Vec<DropRule>,
    ) {
        self.push(matches, description, "-j DROP");
        if let Some(rule) = self.rules.last() {
            drops.push(DropRule {
                family: drop.family,
                chain: self.name.clone(),
                hash: rule.hash.clone(),
                direction: drop.direction,
                reason: drop.reason,
                endpoint: drop.endpoint.cloned(),
            });
        }
    }

    fn finish(self, chains: &mut BTreeMap<String, Vec<Rule>>) {
        chains.insert(self.name, self.rules);
    }
}

/// What a DROP rule being pushed drops (see `DropRule`).
struct Dropping<'a> {
    family: Family,
    direction: Direction,
    reason: DropReason,
    endpoint: Option<&'a ObjectKey>,
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

fn table(
    compiled: &Compiled,
    names: &ChainNames,
    family: Family,
    options: &RenderOptions,
    drops: &mut Vec<DropRule>,
) -> Table {
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
            let dropping = |direction| Dropping {
                family,
                direction,
                reason: DropReason::NoAddress,
                endpoint: Some(&endpoint.key),
            };
            from_pod.push_drop(
                &format!("-i {}", endpoint.interface),
                &why,
                dropping(Direction::Egress),
                drops,
            );
            to_pod.push_drop(
                &format!("-o {}", endpoint.interface),
                &why,
                dropping(Direction::Ingress),
                drops,
            );
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
            &format!("-g {}", names.endpoint(endpoint, Direction::Egress)),
        );
        to_pod.push(
            &format!("-o {}", endpoint.interface),
            &who,
            &format!("-g {}", names.endpoint(endpoint, Direction::Ingress)),
        );
        endpoint_chains(endpoint, names, family, options, &mut chains, drops);
    }
    let unknown = |direction| Dropping {
        family,
        direction,
        reason: DropReason::UnknownPod,
        endpoint: None,
    };
    from_pod.push_drop(
        "",
        "unknown pod interface: no policy programmed yet",
        unknown(Direction::Egress),
        drops,
    );
    to_pod.push_drop(
        "",
        "unknown pod interface: no policy programmed yet",
        unknown(Direction::Ingress),
        drops,
    );
    from_pod.finish(&mut chains);
    to_pod.finish(&mut chains);

    for key in &policies {
        if let Some(policy) = compiled.policies.get(key) {
            policy_chain_rules(policy, compiled, names, family, options, &mut chains);
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
    names: &ChainNames,
    family: Family,
    options: &RenderOptions,
    chains: &mut BTreeMap<String, Vec<Rule>>,
    drops: &mut Vec<DropRule>,
) {
    let mark = format!("{:#x}/{:#x}", options.allow_mark, options.allow_mark);
    let clear = format!("-j MARK --set-xmark 0x0/{:#x}", options.allow_mark);
    let own = endpoint.addresses.iter().find(|a| family_of(a) == family);
    for direction in [Direction::Egress, Direction::Ingress] {
        let mut chain = ChainBuilder::new(names.endpoint(endpoint, direction));
        let who = &endpoint.key;
        let dropping = |reason| Dropping {
            family,
            direction,
            reason,
            endpoint: Some(who),
        };
        if direction == Direction::Egress {
            if family == Family::V6 {
                // Router and neighbour discovery from the pod's link-local
                // address: without them the node cannot reach the pod. Only
                // to link-local and link-scope multicast addresses, with
                // the hop limit RFC 4861 requires, so none of it is
                // forwarded past the policy.
                for destination in ["fe80::/10", "ff02::/16"] {
                    for (icmp_type, what) in
                        [(133, "router"), (135, "neighbour"), (136, "neighbour")]
                    {
                        chain.push(
                            &format!(
                                "-d {destination} -p ipv6-icmp -m icmp6 --icmpv6-type {icmp_type} -m hl --hl-eq 255"
                            ),
                            &format!("{what} discovery"),
                            "-j RETURN",
                        );
                    }
                }
            }
            if let Some(address) = own {
                chain.push_drop(
                    &format!("! -s {address}"),
                    &format!("anti-spoofing: {who} sends only from {address}"),
                    dropping(DropReason::Spoofed),
                    drops,
                );
            }
        }
        chain.push(
            "-m conntrack --ctstate RELATED,ESTABLISHED",
            "replies of allowed connections",
            "-j RETURN",
        );
        // What NetworkPolicy always allows: a pod and its own node, and a
        // pod and itself (hairpin through a Service). The node's own
        // traffic to the pod leaves by OUTPUT and never comes here.
        if let Some(address) = own {
            match direction {
                Direction::Egress => {
                    chain.push(
                        "-m addrtype --dst-type LOCAL",
                        "to its own node: always allowed",
                        "-j RETURN",
                    );
                    chain.push(
                        &format!("-d {address}"),
                        "to itself: always allowed",
                        "-j RETURN",
                    );
                }
                Direction::Ingress => {
                    chain.push(
                        &format!("-s {address}"),
                        "from itself: always allowed",
                        "-j RETURN",
                    );
                }
            }
        }
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
                        &format!("-j {}", names.policy(policy, direction)),
                    );
                    chain.push(
                        &format!("-m mark --mark {mark}"),
                        &format!("allowed by {policy}"),
                        "-j RETURN",
                    );
                }
                chain.push_drop(
                    "",
                    &format!("{direction} of {who}: no policy allows it"),
                    dropping(DropReason::Policy),
                    drops,
                );
            }
        }
        chain.finish(chains);
    }
}

fn policy_chain_rules(
    policy: &CompiledPolicy,
    compiled: &Compiled,
    names: &ChainNames,
    family: Family,
    options: &RenderOptions,
    chains: &mut BTreeMap<String, Vec<Rule>>,
) {
    let mut chain = ChainBuilder::new(names.policy(&policy.key, policy.direction));
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
