// INTERFACE STUB: replaced by the real route policy (issue4-policy branch).
use ipnetwork::IpNetwork;

use super::route::PathAttributes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Import,
    Export,
}

pub struct PolicyContext {
    pub local_as: u32,
    pub ebgp: bool,
}

pub enum Verdict {
    Reject,
    Accept(Option<PathAttributes>),
}

pub fn evaluate(
    policy: Option<&RoutePolicy>,
    ctx: &PolicyContext,
    _prefix: &IpNetwork,
    _attrs: &PathAttributes,
    _dir: Direction,
) -> Verdict {
    match policy {
        None if ctx.ebgp => Verdict::Reject,
        _ => Verdict::Accept(None),
    }
}

pub fn hijacks(prefix: &IpNetwork, own: &[IpNetwork]) -> bool {
    own.iter()
        .any(|o| o.prefix() <= prefix.prefix() && o.contains(prefix.network()))
}
