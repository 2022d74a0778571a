// The changes a policy rule makes (config::PolicySet): LOCAL_PREF
// (RFC 4271 §5.1.5), MULTI_EXIT_DISC (§5.1.4), COMMUNITIES (RFC 1997),
// LARGE_COMMUNITY (RFC 8092) and AS_PATH prepending (§5.1.2). New
// attributes are inserted in type-code order, as they go on the wire.

use super::{Direction, PolicyContext};
use crate::config::PolicySet;
use crate::rib::PathAttributes;
use crate::wire::{AsPath, PathAttribute, iana::attr_type};

/// Whether `set` would touch a route at all in this direction, so the
/// caller copies the attributes only when it does.
pub(super) fn changes_anything(set: &PolicySet, ctx: &PolicyContext, dir: Direction) -> bool {
    let PolicySet {
        local_pref,
        med,
        add_communities,
        remove_communities,
        add_large_communities,
        remove_large_communities,
        prepend,
    } = set;
    (local_pref.is_some() && local_pref_applies(ctx, dir))
        || med.is_some()
        || !add_communities.is_empty()
        || !remove_communities.is_empty()
        || !add_large_communities.is_empty()
        || !remove_large_communities.is_empty()
        || prepend.is_some()
}

/// Applies `set` to `attrs`.
pub(super) fn apply(
    set: &PolicySet,
    ctx: &PolicyContext,
    dir: Direction,
    attrs: &mut PathAttributes,
) {
    let attributes = &mut attrs.attributes;
    if let Some(value) = set.local_pref
        && local_pref_applies(ctx, dir)
    {
        *attribute_mut(attributes, attr_type::LOCAL_PREF, || {
            PathAttribute::LocalPref(0)
        }) = PathAttribute::LocalPref(value);
    }
    if let Some(value) = set.med {
        *attribute_mut(attributes, attr_type::MULTI_EXIT_DISC, || {
            PathAttribute::MultiExitDisc(0)
        }) = PathAttribute::MultiExitDisc(value);
    }
    if !set.remove_communities.is_empty() || !set.add_communities.is_empty() {
        let attribute = attribute_mut(attributes, attr_type::COMMUNITIES, || {
            PathAttribute::Communities(Vec::new())
        });
        if let PathAttribute::Communities(list) = attribute {
            edit_list(list, &set.remove_communities, &set.add_communities);
        }
    }
    if !set.remove_large_communities.is_empty() || !set.add_large_communities.is_empty() {
        let attribute = attribute_mut(attributes, attr_type::LARGE_COMMUNITY, || {
            PathAttribute::LargeCommunities(Vec::new())
        });
        if let PathAttribute::LargeCommunities(list) = attribute {
            edit_list(
                list,
                &set.remove_large_communities,
                &set.add_large_communities,
            );
        }
    }
    // An empty COMMUNITIES or LARGE_COMMUNITY attribute says nothing; it
    // is not sent.
    attributes.retain(|a| match a {
        PathAttribute::Communities(list) => !list.is_empty(),
        PathAttribute::LargeCommunities(list) => !list.is_empty(),
        _ => true,
    });
    if let Some(prepend) = set.prepend {
        let attribute = attribute_mut(attributes, attr_type::AS_PATH, || {
            PathAttribute::AsPath(AsPath::default())
        });
        if let PathAttribute::AsPath(path) = attribute {
            path.prepend(
                prepend.as_number.unwrap_or(ctx.local_as),
                usize::from(prepend.count),
            );
        }
    }
}

/// LOCAL_PREF is never sent to eBGP peers (RFC 4271 §5.1.5), so setting it
/// in an export policy toward one would be meaningless.
fn local_pref_applies(ctx: &PolicyContext, dir: Direction) -> bool {
    !(dir == Direction::Export && ctx.ebgp)
}

/// Removes `remove`, then appends each of `add` not already present.
fn edit_list<T: PartialEq + Copy>(list: &mut Vec<T>, remove: &[T], add: &[T]) {
    list.retain(|c| !remove.contains(c));
    for c in add {
        if !list.contains(c) {
            list.push(*c);
        }
    }
}

/// The attribute with `type_code`, inserted from `empty` before the first
/// attribute with a higher type code when there is none.
fn attribute_mut(
    attributes: &mut Vec<PathAttribute>,
    type_code: u8,
    empty: impl FnOnce() -> PathAttribute,
) -> &mut PathAttribute {
    let index = match attributes.iter().position(|a| a.type_code() == type_code) {
        Some(index) => index,
        None => {
            let index = attributes
                .iter()
                .position(|a| a.type_code() > type_code)
                .unwrap_or(attributes.len());
            attributes.insert(index, empty());
            index
        }
    };
    &mut attributes[index]
}
