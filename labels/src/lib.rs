// Kubernetes label selectors: the text form (`rack=r1,zone in (a,b)`, as
// IPPool.nodeSelector and BGPPeer.nodeSelector/peerSelector write them).
// One crate so ipam, bgpd and the policy agent select with the same rules.

mod text;

pub use text::{Operator, Requirement, Selector, SelectorError, is_dns_subdomain};
