// Kubernetes label selectors, in both forms, with one matcher: the text form
// (`rack=r1,zone in (a,b)`, plus Calico's `has(k) && k == 'v'`; IPPool and
// BGPPeer selectors) and meta/v1 LabelSelector (matchLabels and
// matchExpressions; NetworkPolicy). Both compile into `Selector`, and check
// label keys and values with the same rules, so ipam, bgpd and the policy
// agent select alike.

mod names;
mod selector;
mod structured;
mod text;

pub use names::{
    MAX_NAME_LEN, MAX_PREFIX_LEN, NameProblem, check_key, check_value, is_dns_subdomain,
};
pub use selector::{Labels, Operator, Requirement, Selector, SelectorError};
pub use structured::{
    LabelSelector, LabelSelectorOperator, LabelSelectorRequirement, null_as_default,
};
pub use text::SyntaxProblem;
