// Route policy evaluation: a peer's import or export policy
// (config::RoutePolicy) applied to one route, pure. Rules run in order; the
// first `accept` or `reject` decides; a rule without an action applies its
// changes and evaluation goes on with the changed route. Undecided routes
// get the policy's defaultAction, else RFC 8212's: reject on eBGP, accept
// on iBGP. Also the hijack guard for our own prefixes.

mod actions;
mod as_path_regex;
mod matching;

use std::borrow::Cow;
use std::collections::BTreeSet;

use ipnetwork::IpNetwork;

use crate::config::{PolicyAction, RoutePolicy};
use crate::rib::PathAttributes;

pub use as_path_regex::{AsPathRegex, render as render_as_path};

/// Which way a route is going through the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received from the peer, before the Loc-RIB.
    Import,
    /// About to be advertised to the peer.
    Export,
}

/// The session a route is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyContext {
    /// Our AS: what `prepend` adds when it names no AS.
    pub local_as: u32,
    /// The peer is in another AS.
    pub ebgp: bool,
}

/// The outcome of a policy for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Reject,
    /// `Some` with the new attributes when a rule changed them, `None`
    /// when the route goes on as it came.
    Accept(Option<PathAttributes>),
}

/// Runs `policy` (`None`: no rules, the session's default) on a route.
pub fn evaluate(
    policy: Option<&RoutePolicy>,
    ctx: &PolicyContext,
    prefix: &IpNetwork,
    attrs: &PathAttributes,
    dir: Direction,
) -> Verdict {
    let default = policy
        .and_then(|p| p.default_action)
        .unwrap_or(session_default(ctx));
    run(policy, ctx, prefix, attrs, dir, default)
}

/// Runs an export `policy` on one of our own originated prefixes: its
/// rules apply (a rule may reject or change them, e.g. prepend), but an
/// undecided route is accepted whatever the default, since this node's own
/// prefixes are always exported (issue 4, the RFC 8212 exception).
pub fn evaluate_originated(
    policy: Option<&RoutePolicy>,
    ctx: &PolicyContext,
    prefix: &IpNetwork,
    attrs: &PathAttributes,
) -> Verdict {
    run(
        policy,
        ctx,
        prefix,
        attrs,
        Direction::Export,
        PolicyAction::Accept,
    )
}

/// The default when neither a rule nor the policy decides: RFC 8212 §2,
/// nothing is imported from or exported to an eBGP peer without a policy
/// saying so; iBGP peers are inside our own administration.
pub fn session_default(ctx: &PolicyContext) -> PolicyAction {
    if ctx.ebgp {
        PolicyAction::Reject
    } else {
        PolicyAction::Accept
    }
}

/// Whether a peer's route for `prefix` would take over what this node
/// originates: equal to one of our `blocks` or inside one, or equal to one
/// of our `hosts` (addresses we borrowed from other nodes' blocks). A host
/// route (/32, /128) strictly inside one of our blocks is not: it is an
/// address another node borrowed from our block, and it must win over our
/// blackhole for the block (as Calico's BIRD installs it).
pub fn hijacks(
    prefix: &IpNetwork,
    blocks: &BTreeSet<IpNetwork>,
    hosts: &BTreeSet<IpNetwork>,
) -> bool {
    if hosts.contains(prefix) || blocks.contains(prefix) {
        return true;
    }
    let host_route = prefix.prefix() == if prefix.is_ipv4() { 32 } else { 128 };
    !host_route
        && blocks.iter().any(|o| {
            o.is_ipv4() == prefix.is_ipv4()
                && o.prefix() <= prefix.prefix()
                && o.contains(prefix.network())
        })
}

fn run(
    policy: Option<&RoutePolicy>,
    ctx: &PolicyContext,
    prefix: &IpNetwork,
    attrs: &PathAttributes,
    dir: Direction,
    default: PolicyAction,
) -> Verdict {
    // Copied on the first change only: most routes pass unchanged.
    let mut current = Cow::Borrowed(attrs);
    let mut as_path_text = None;
    let rules = policy.map(|p| p.rules.as_slice()).unwrap_or_default();
    let mut decision = default;
    for rule in rules {
        if !matching::matches(&rule.matches, prefix, &current, &mut as_path_text) {
            continue;
        }
        if actions::changes_anything(&rule.set, ctx, dir) {
            actions::apply(&rule.set, ctx, dir, current.to_mut());
            if rule.set.prepend.is_some() {
                as_path_text = None;
            }
        }
        if let Some(action) = rule.action {
            decision = action;
            break;
        }
    }
    match decision {
        PolicyAction::Reject => Verdict::Reject,
        PolicyAction::Accept => match current {
            Cow::Owned(changed) if changed != *attrs => Verdict::Accept(Some(changed)),
            _ => Verdict::Accept(None),
        },
    }
}

#[cfg(test)]
mod tests;
