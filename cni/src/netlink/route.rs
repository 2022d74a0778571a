// Main-table unicast routes over rtnetlink (RTM_NEWROUTE/DELROUTE/GETROUTE,
// rtnetlink(7)): the host's route to a pod through its veth (protocol
// RTPROT_PODROUTE_CNI), the pod's link-scope route to the gateway and its
// default route, and route lookups.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
    RouteScope as KernelScope, RouteType,
};
use rustix::io::Errno;

use super::address::family_of;
use super::{Netlink, NetlinkError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

/// rtm_scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScope {
    /// RT_SCOPE_UNIVERSE: via a gateway, or anything but the two below
    /// (IPv6 routes always read back with this scope).
    Universe,
    /// RT_SCOPE_LINK: the destination is on the link itself.
    Link,
    /// RT_SCOPE_HOST: a local address.
    Host,
}

/// A main-table unicast route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub scope: RouteScope,
    /// rtm_protocol; dumps report the kernel's value.
    pub protocol: u8,
}

impl Netlink {
    /// Installs `route` in the main table, replacing the route to the same
    /// destination (NLM_F_CREATE|NLM_F_REPLACE).
    pub fn replace_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        let mut msg = route_message(route);
        msg.header.protocol = RouteProtocol::from(route.protocol);
        msg.header.scope = kernel_scope(route.scope);
        msg.header.kind = RouteType::Unicast;
        self.request(
            &|| format!("replace route {}", describe(route)),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes the main-table route to `route.dst` through `route.oif` and
    /// `route.gateway` when they are Some, of `route.protocol` unless it is
    /// 0 (any); Ok(false) when there is none. Scope is not matched.
    pub fn delete_route(&mut self, route: &Route) -> Result<bool, NetlinkError> {
        let mut msg = route_message(route);
        msg.header.protocol = RouteProtocol::from(route.protocol);
        // As iproute2 deletes: any scope and type match.
        msg.header.scope = KernelScope::NoWhere;
        msg.header.kind = RouteType::Unspec;
        match self.request(
            &|| format!("delete route {}", describe(route)),
            RouteNetlinkMessage::DelRoute(msg),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every main-table unicast route of `family`.
    pub fn routes(&mut self, family: IpFamily) -> Result<Vec<Route>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match family {
            IpFamily::V4 => family_of(Ipv4Addr::UNSPECIFIED.into()),
            IpFamily::V6 => family_of(Ipv6Addr::UNSPECIFIED.into()),
        };
        // Strict dump checking filters by table in the kernel.
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        let answers = self.dump(
            &|| format!("list {family:?} routes"),
            RouteNetlinkMessage::GetRoute(msg),
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewRoute(msg) => main_unicast(&msg),
                _ => None,
            })
            .collect())
    }

    /// The output interface the kernel picks for `dst` (RTM_GETROUTE), or
    /// None when unreachable (ENETUNREACH / EHOSTUNREACH / no route, or an
    /// unreachable, blackhole or prohibit route).
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Option<u32>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(dst);
        msg.header.destination_prefix_length = full_prefix(dst);
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let answers = match self.request(
            &|| format!("look up the route to {dst}"),
            RouteNetlinkMessage::GetRoute(msg),
            0,
        ) {
            Ok(answers) => answers,
            Err(e)
                if e.errno() == Some(Errno::NETUNREACH.raw_os_error())
                    || e.errno() == Some(Errno::HOSTUNREACH.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewRoute(msg)
                if matches!(msg.header.kind, RouteType::Unicast | RouteType::Local) =>
            {
                oif(&msg)
            }
            _ => None,
        }))
    }
}

/// The request for `route`: family, destination, table and next hop.
fn route_message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(route.dst.ip());
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    // The network address: 10.0.0.5/24 means 10.0.0.0/24 (the kernel
    // refuses host bits in an IPv4 prefix).
    msg.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            route.dst.network(),
        )));
    if let Some(gateway) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    if let Some(oif) = route.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

fn kernel_scope(scope: RouteScope) -> KernelScope {
    match scope {
        RouteScope::Universe => KernelScope::Universe,
        RouteScope::Link => KernelScope::Link,
        RouteScope::Host => KernelScope::Host,
    }
}

/// A dumped route if it is a main-table unicast one.
fn main_unicast(msg: &RouteMessage) -> Option<Route> {
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || msg.header.kind != RouteType::Unicast {
        return None;
    }
    let family_any: IpAddr = match msg.header.address_family {
        netlink_packet_route::AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        netlink_packet_route::AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut dst = family_any;
    let mut gateway = None;
    for attribute in &msg.attributes {
        match attribute {
            RouteAttribute::Destination(address) => dst = ip_of(address)?,
            RouteAttribute::Gateway(address) => gateway = ip_of(address),
            _ => {}
        }
    }
    Some(Route {
        dst: IpNetwork::new(dst, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif: oif(msg),
        scope: match msg.header.scope {
            KernelScope::Link => RouteScope::Link,
            KernelScope::Host => RouteScope::Host,
            _ => RouteScope::Universe,
        },
        protocol: u8::from(msg.header.protocol),
    })
}

fn oif(msg: &RouteMessage) -> Option<u32> {
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(oif) => Some(*oif),
        _ => None,
    })
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn full_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// "10.0.0.5/32 via 169.254.1.1 dev #4 proto 211", for error messages.
fn describe(route: &Route) -> String {
    let mut text = route.dst.to_string();
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if let Some(oif) = route.oif {
        text.push_str(&format!(" dev #{oif}"));
    }
    if route.protocol != 0 {
        text.push_str(&format!(" proto {}", route.protocol));
    }
    text
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::AddressFamily;

    use super::*;

    fn dumped(family: AddressFamily, table: u8, kind: RouteType) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family;
        msg.header.table = table;
        msg.header.kind = kind;
        msg
    }

    #[test]
    fn dumped_routes() {
        let mut msg = dumped(AddressFamily::Inet, 254, RouteType::Unicast);
        msg.header.destination_prefix_length = 32;
        msg.header.scope = KernelScope::Link;
        msg.header.protocol = RouteProtocol::Other(211);
        msg.attributes = vec![
            RouteAttribute::Table(254),
            RouteAttribute::Destination(RouteAddress::Inet("10.0.0.5".parse().unwrap())),
            RouteAttribute::Oif(4),
        ];
        assert_eq!(
            main_unicast(&msg),
            Some(Route {
                dst: "10.0.0.5/32".parse().unwrap(),
                gateway: None,
                oif: Some(4),
                scope: RouteScope::Link,
                protocol: 211,
            })
        );

        // A default route has no RTA_DST.
        let mut msg = dumped(AddressFamily::Inet6, 254, RouteType::Unicast);
        msg.header.protocol = RouteProtocol::Boot;
        msg.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet6("fe80::1".parse().unwrap())),
            RouteAttribute::Oif(2),
        ];
        assert_eq!(
            main_unicast(&msg),
            Some(Route {
                dst: "::/0".parse().unwrap(),
                gateway: Some("fe80::1".parse().unwrap()),
                oif: Some(2),
                scope: RouteScope::Universe,
                protocol: 3,
            })
        );

        // Other tables (the local one, one above 255) and types are skipped.
        assert_eq!(
            main_unicast(&dumped(AddressFamily::Inet, 255, RouteType::Unicast)),
            None
        );
        let mut high = dumped(AddressFamily::Inet, 252, RouteType::Unicast);
        high.attributes = vec![RouteAttribute::Table(1000)];
        assert_eq!(main_unicast(&high), None);
        assert_eq!(
            main_unicast(&dumped(AddressFamily::Inet, 254, RouteType::Local)),
            None
        );
        // A prefix length the family cannot have is dropped, not a panic.
        let mut bad = dumped(AddressFamily::Inet, 254, RouteType::Unicast);
        bad.header.destination_prefix_length = 33;
        assert_eq!(main_unicast(&bad), None);
    }

    #[test]
    fn request_uses_the_network_address() {
        let route = Route {
            dst: "10.1.2.3/24".parse().unwrap(),
            gateway: Some("169.254.1.1".parse().unwrap()),
            oif: Some(3),
            scope: RouteScope::Universe,
            protocol: 211,
        };
        let msg = route_message(&route);
        assert_eq!(msg.header.destination_prefix_length, 24);
        assert!(
            msg.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                    "10.1.2.0".parse().unwrap()
                )))
        );
        assert_eq!(
            describe(&route),
            "10.1.2.3/24 via 169.254.1.1 dev #3 proto 211"
        );
    }
}
