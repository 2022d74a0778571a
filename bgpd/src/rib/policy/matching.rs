// The conditions of a policy rule (config::PolicyMatch): prefix lists with
// ge/le, communities (RFC 1997), large communities (RFC 8092), AS-path
// regex and next hop. Every condition set must hold; within a list any
// entry will do.

use ipnetwork::IpNetwork;

use super::as_path_regex::render;
use crate::config::{PolicyMatch, PrefixMatch};
use crate::rib::PathAttributes;
use crate::wire::{Community, LargeCommunity, PathAttribute};

/// Whether `prefix` with `attrs` satisfies `conditions`. `as_path_text`
/// caches the rendered AS_PATH across the rules of one evaluation; the
/// caller clears it when a rule changes the path.
pub(super) fn matches(
    conditions: &PolicyMatch,
    prefix: &IpNetwork,
    attrs: &PathAttributes,
    as_path_text: &mut Option<String>,
) -> bool {
    let PolicyMatch {
        prefixes,
        communities,
        large_communities,
        as_path,
        next_hop,
    } = conditions;
    if let Some(entries) = prefixes
        && !entries.iter().any(|entry| prefix_matches(entry, prefix))
    {
        return false;
    }
    if let Some(wanted) = communities
        && !communities_of(attrs).is_some_and(|have| wanted.iter().any(|c| have.contains(c)))
    {
        return false;
    }
    if let Some(wanted) = large_communities
        && !large_communities_of(attrs).is_some_and(|have| wanted.iter().any(|c| have.contains(c)))
    {
        return false;
    }
    if let Some(regex) = as_path {
        let text = as_path_text.get_or_insert_with(|| render(attrs.as_path()));
        if !regex.is_match_rendered(text) {
            return false;
        }
    }
    if let Some(networks) = next_hop
        && !attrs
            .next_hops
            .iter()
            .any(|hop| networks.iter().any(|n| n.contains(*hop)))
    {
        return false;
    }
    true
}

/// Inside `entry.prefix` (same family) with a length in `ge..=le`.
pub(super) fn prefix_matches(entry: &PrefixMatch, prefix: &IpNetwork) -> bool {
    let len = prefix.prefix();
    entry.prefix.is_ipv4() == prefix.is_ipv4()
        && len >= entry.prefix.prefix()
        && (entry.ge..=entry.le).contains(&len)
        && entry.prefix.contains(prefix.network())
}

pub(super) fn communities_of(attrs: &PathAttributes) -> Option<&[Community]> {
    attrs.attributes.iter().find_map(|a| match a {
        PathAttribute::Communities(list) => Some(list.as_slice()),
        _ => None,
    })
}

pub(super) fn large_communities_of(attrs: &PathAttributes) -> Option<&[LargeCommunity]> {
    attrs.attributes.iter().find_map(|a| match a {
        PathAttribute::LargeCommunities(list) => Some(list.as_slice()),
        _ => None,
    })
}
