// Validation of route policies and maxPrefix (schema.rs → mod.rs): prefix
// lists with ge/le, communities (RFC 1997, and its well-known names),
// large communities (RFC 8092), AS-path regexes compiled here so a bad one
// refuses the file; maxPrefix per RFC 4486. Errors name the field, e.g.
// `spec.importPolicy.rules[2].match.prefixes[0].ge`.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnetwork::IpNetwork;

use super::schema::{
    ActionSpec, MaxPrefixActionSpec, MaxPrefixSpec, PolicyMatchSpec, PolicyRuleSpec, PolicySetSpec,
    PrefixMatchSpec, PrependSpec, RoutePolicySpec,
};
use super::validate::{Invalid, as_number, at, canonical_prefix};
use super::{
    AsPathRegex, DEFAULT_MAX_PREFIX_RESTART_AFTER, DEFAULT_MAX_PREFIX_WARNING_PERCENT,
    MAX_PREPEND_COUNT, MaxPrefix, MaxPrefixAction, PolicyAction, PolicyMatch, PolicyRule,
    PolicySet, PrefixMatch, Prepend, Problem, RoutePolicy, WELL_KNOWN_COMMUNITIES,
};
use crate::wire::{Community, LargeCommunity};

/// `field` is the policy's path, e.g. `spec.importPolicy`.
pub(super) fn route_policy(spec: RoutePolicySpec, field: &str) -> Result<RoutePolicy, Invalid> {
    let mut names = BTreeSet::new();
    let mut rules = Vec::new();
    for (i, rule) in spec.rules.unwrap_or_default().into_iter().enumerate() {
        let field = format!("{field}.rules[{i}]");
        let rule = policy_rule(rule, &field, i)?;
        if !names.insert(rule.name.clone()) {
            return Err(at(format!("{field}.name"))(Problem::Duplicate(rule.name)));
        }
        rules.push(rule);
    }
    Ok(RoutePolicy {
        default_action: spec.default_action.map(action),
        rules,
    })
}

pub(super) fn max_prefix(spec: MaxPrefixSpec, field: &str) -> Result<MaxPrefix, Invalid> {
    if spec.limit == 0 {
        return Err(at(format!("{field}.limit"))(Problem::ZeroLimit));
    }
    let percent = spec
        .warning_percent
        .unwrap_or(u32::from(DEFAULT_MAX_PREFIX_WARNING_PERCENT));
    let warning_percent = u8::try_from(percent)
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| at(format!("{field}.warningPercent"))(Problem::WarningPercent(percent)))?;
    let action = match (
        spec.action.unwrap_or(MaxPrefixActionSpec::Teardown),
        spec.restart_after,
    ) {
        (MaxPrefixActionSpec::Warn, Some(_)) => {
            return Err(at(format!("{field}.restartAfter"))(
                Problem::RestartAfterWithWarn,
            ));
        }
        (MaxPrefixActionSpec::Warn, None) => MaxPrefixAction::Warn,
        (MaxPrefixActionSpec::Teardown, seconds) => {
            let seconds = seconds.unwrap_or(DEFAULT_MAX_PREFIX_RESTART_AFTER);
            MaxPrefixAction::Teardown {
                restart_after: (seconds > 0).then(|| Duration::from_secs(u64::from(seconds))),
            }
        }
    };
    Ok(MaxPrefix {
        limit: spec.limit,
        warning_percent,
        action,
    })
}

/// `"A:B"` (16 bits each) or a well-known name.
pub(crate) fn parse_community(text: &str) -> Result<Community, Problem> {
    if let Some((_, community)) = WELL_KNOWN_COMMUNITIES
        .iter()
        .find(|(name, _)| *name == text)
    {
        return Ok(*community);
    }
    let bad = || Problem::Community(text.to_owned());
    let (high, low) = text.split_once(':').ok_or_else(bad)?;
    let high: u16 = parse_digits(high).ok_or_else(bad)?;
    let low: u16 = parse_digits(low).ok_or_else(bad)?;
    Ok(Community(u32::from(high) << 16 | u32::from(low)))
}

/// `"A:B:C"`, 32 bits each.
pub(crate) fn parse_large_community(text: &str) -> Result<LargeCommunity, Problem> {
    let bad = || Problem::LargeCommunity(text.to_owned());
    let mut parts = text.split(':');
    let mut next = || parts.next().and_then(parse_digits::<u32>).ok_or_else(bad);
    let community = LargeCommunity {
        global_admin: next()?,
        local_data_1: next()?,
        local_data_2: next()?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(community)
}

fn policy_rule(spec: PolicyRuleSpec, field: &str, index: usize) -> Result<PolicyRule, Invalid> {
    if spec.set.is_none() && spec.action.is_none() {
        return Err(at(field)(Problem::RuleDoesNothing));
    }
    let matches = match spec.matches {
        Some(m) => policy_match(m, &format!("{field}.match"))?,
        None => PolicyMatch::default(),
    };
    let set = match spec.set {
        Some(s) => policy_set(s, &format!("{field}.set"))?,
        None => PolicySet::default(),
    };
    Ok(PolicyRule {
        name: spec.name.unwrap_or_else(|| format!("rules[{index}]")),
        matches,
        set,
        action: spec.action.map(action),
    })
}

fn action(spec: ActionSpec) -> PolicyAction {
    match spec {
        ActionSpec::Accept => PolicyAction::Accept,
        ActionSpec::Reject => PolicyAction::Reject,
    }
}

fn policy_match(spec: PolicyMatchSpec, field: &str) -> Result<PolicyMatch, Invalid> {
    let prefixes = condition_list(spec.prefixes, &format!("{field}.prefixes"), prefix_match)?;
    let communities = condition_list(
        spec.communities,
        &format!("{field}.communities"),
        |text, field| parse_community(&text).map_err(at(field)),
    )?;
    let large_communities = condition_list(
        spec.large_communities,
        &format!("{field}.largeCommunities"),
        |text, field| parse_large_community(&text).map_err(at(field)),
    )?;
    let as_path = match spec.as_path {
        Some(text) => Some(AsPathRegex::new(&text).map_err(|reason| {
            at(format!("{field}.asPath"))(Problem::AsPathRegex {
                given: text.clone(),
                reason,
            })
        })?),
        None => None,
    };
    let next_hop = condition_list(spec.next_hop, &format!("{field}.nextHop"), |text, field| {
        canonical_prefix(&text).map_err(at(field))
    })?;
    Ok(PolicyMatch {
        prefixes,
        communities,
        large_communities,
        as_path,
        next_hop,
    })
}

/// A condition's list: absent is no condition, empty is refused (it could
/// only mean "never", which is surely a mistake).
fn condition_list<S, T>(
    list: Option<Vec<S>>,
    field: &str,
    item: impl Fn(S, String) -> Result<T, Invalid>,
) -> Result<Option<Vec<T>>, Invalid> {
    let Some(list) = list else { return Ok(None) };
    if list.is_empty() {
        return Err(at(field)(Problem::EmptyList));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, s)| item(s, format!("{field}[{i}]")))
        .collect::<Result<Vec<T>, Invalid>>()
        .map(Some)
}

/// Resolves ge/le as Cisco and FRR prefix lists do: neither means exactly
/// the prefix's length; ge alone up to the family's maximum; le alone from
/// the prefix's length. Both must lie in prefix length..=maximum.
fn prefix_match(spec: PrefixMatchSpec, field: String) -> Result<PrefixMatch, Invalid> {
    let prefix = canonical_prefix(&spec.prefix).map_err(at(format!("{field}.prefix")))?;
    let len = prefix.prefix();
    let (family, max) = match prefix {
        IpNetwork::V4(_) => ("IPv4", 32),
        IpNetwork::V6(_) => ("IPv6", 128),
    };
    let bound = |value: Option<u32>, name: &str| -> Result<Option<u8>, Invalid> {
        let Some(value) = value else { return Ok(None) };
        let field = format!("{field}.{name}");
        if value > u32::from(max) {
            return Err(at(field)(Problem::PrefixLengthTooLong {
                value,
                family,
                max,
            }));
        }
        if value < u32::from(len) {
            return Err(at(field)(Problem::PrefixLengthTooShort { value, len }));
        }
        // In range of a u8 by the check above.
        Ok(u8::try_from(value).ok())
    };
    let ge = bound(spec.ge, "ge")?;
    let le = bound(spec.le, "le")?;
    let (ge, le) = match (ge, le) {
        (None, None) => (len, len),
        (Some(ge), None) => (ge, max),
        (None, Some(le)) => (len, le),
        (Some(ge), Some(le)) if ge > le => {
            return Err(at(format!("{field}.ge"))(Problem::GeAboveLe { ge, le }));
        }
        (Some(ge), Some(le)) => (ge, le),
    };
    Ok(PrefixMatch { prefix, ge, le })
}

fn policy_set(spec: PolicySetSpec, field: &str) -> Result<PolicySet, Invalid> {
    let communities = |list: Option<Vec<String>>, name: &str| {
        list.unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, text)| parse_community(text).map_err(at(format!("{field}.{name}[{i}]"))))
            .collect::<Result<Vec<_>, _>>()
    };
    let large = |list: Option<Vec<String>>, name: &str| {
        list.unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_large_community(text).map_err(at(format!("{field}.{name}[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(PolicySet {
        local_pref: spec.local_pref,
        med: spec.med,
        add_communities: communities(spec.add_communities, "addCommunities")?,
        remove_communities: communities(spec.remove_communities, "removeCommunities")?,
        add_large_communities: large(spec.add_large_communities, "addLargeCommunities")?,
        remove_large_communities: large(spec.remove_large_communities, "removeLargeCommunities")?,
        prepend: spec
            .prepend
            .map(|p| prepend(p, &format!("{field}.prepend")))
            .transpose()?,
    })
}

fn prepend(spec: PrependSpec, field: &str) -> Result<Prepend, Invalid> {
    let count = spec.count.unwrap_or(1);
    let count = u8::try_from(count)
        .ok()
        .filter(|c| (1..=MAX_PREPEND_COUNT).contains(c))
        .ok_or_else(|| at(format!("{field}.count"))(Problem::PrependCount(count)))?;
    let as_number = spec
        .as_number
        .map(|asn| as_number(asn.0).map_err(at(format!("{field}.asNumber"))))
        .transpose()?;
    Ok(Prepend { count, as_number })
}

/// Plain decimal digits only: no sign, no spaces (`str::parse` takes `+5`).
fn parse_digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
