// What the renderer produces and the applier programs: for each IP family
// the chains we own in the filter table and our jumps from the built-in
// chains, and the ipsets those chains match on. Every rule carries a hash
// comment (`podroute:<hash>`) so that the applier can tell, from
// iptables-save alone, whether a chain in the kernel is the one we want.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Prefix of every chain we own.
pub const CHAIN_PREFIX: &str = "PODROUTE-";
/// Prefix of every ipset we own.
pub const SET_PREFIX: &str = "podroute-";
/// What starts the comment of each of our rules; the hash follows.
pub const COMMENT_TAG: &str = "podroute:";
/// Longest chain name iptables takes (XT_EXTENSION_MAXNAMELEN - 1).
pub const MAX_CHAIN_NAME: usize = 28;
/// Longest ipset name (IPSET_MAXNAMELEN - 1).
pub const MAX_SET_NAME: usize = 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The ipset `family` option.
    pub fn ipset_family(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One rule of one of our chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 16 lowercase hex digits: a hash of the chain name, the previous
    /// rule's hash and this rule's text, so equal hash lists mean equal
    /// chains.
    pub hash: String,
    /// The rule as written after `-A CHAIN `, comment included, e.g.
    /// `-i podr+ -m comment --comment "podroute:0123456789abcdef unknown pod" -j DROP`.
    pub line: String,
}

/// Our jump from a built-in chain of the filter table, inserted at its top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `FORWARD` or `INPUT`.
    pub builtin: String,
    /// Hash as in `Rule`, of the builtin's name and the line.
    pub hash: String,
    /// As in `Rule`: `-m comment --comment "podroute:<hash> hook" -j PODROUTE-FORWARD`.
    pub line: String,
}

/// The filter table as we want it for one family (iptables or ip6tables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    /// Every chain we own, by name (each starts with `CHAIN_PREFIX`).
    pub chains: BTreeMap<String, Vec<Rule>>,
    pub hooks: Vec<Hook>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKind {
    /// Pod addresses.
    HashIp,
    /// ipBlocks: `cidr` entries and `except` entries with `nomatch`.
    HashNet,
    /// Named ports: `address,proto:port`.
    HashIpPort,
}

impl SetKind {
    /// The type as `ipset create` takes it.
    pub fn ipset_type(self) -> &'static str {
        match self {
            SetKind::HashIp => "hash:ip",
            SetKind::HashNet => "hash:net",
            SetKind::HashIpPort => "hash:ip,port",
        }
    }
}

/// One ipset we own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSet {
    /// Starts with `SET_PREFIX`, at most `MAX_SET_NAME` bytes.
    pub name: String,
    pub kind: SetKind,
    pub family: Family,
    /// Entries as `ipset add NAME <entry>` takes them: `10.0.0.1`,
    /// `10.1.0.0/16`, `10.1.2.0/24 nomatch`, `10.0.0.1,tcp:80`. IPv6 in
    /// RFC 5952 form as Rust prints it.
    pub members: BTreeSet<String>,
}

/// Everything the agent wants in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataplane {
    pub v4: Table,
    pub v6: Table,
    pub sets: BTreeMap<String, IpSet>,
}

impl Dataplane {
    /// Nothing of ours: what `--cleanup` programs.
    pub fn empty() -> Self {
        Dataplane {
            v4: Table::empty(Family::V4),
            v6: Table::empty(Family::V6),
            sets: BTreeMap::new(),
        }
    }

    pub fn table(&self, family: Family) -> &Table {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

impl Table {
    pub fn empty(family: Family) -> Self {
        Table {
            family,
            chains: BTreeMap::new(),
            hooks: Vec::new(),
        }
    }

    /// Rules in our chains plus hooks.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum::<usize>() + self.hooks.len()
    }
}
