// How a pod is wired into its node, in the kernel: the veth pair, the pod's
// host addresses, its link-local gateway, and the node's host route to it.
// Plain routing, no bridge and no encapsulation: the pod's only neighbour is
// the node (proxy ARP for 169.254.1.1; IPv6 uses the host side's link-local
// address), and the node routes each pod address to its veth.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

use crate::args::HOST_VETH_PREFIX;
use crate::error::{CniError, ErrorCode};
use crate::netlink::{
    IpFamily, Link, Mac, Netlink, NetlinkError, Netns, RTPROT_PODROUTE_CNI, Route, RouteScope,
    VethSpec, write_sysctl,
};

/// The pod's IPv4 gateway: link-local, the same in every pod, answered by the
/// node's proxy ARP (Calico's choice, which operators already know).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// MAC of every host-side veth: fixed so the pod's gateway neighbour entry and
/// IPv6 gateway are the same everywhere.
pub const HOST_VETH_MAC: Mac = [0xee; 6];
/// The host side's IPv6 link-local address, EUI-64 of `HOST_VETH_MAC`.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

/// What to build for one attachment.
#[derive(Debug, Clone)]
pub struct PodWiring<'a> {
    pub host_veth: &'a str,
    pub alias: &'a str,
    pub ifname: &'a str,
    pub mtu: u32,
    /// The pod's addresses, at most one per family.
    pub addresses: &'a [IpAddr],
}

/// The interfaces made, for the result.
#[derive(Debug, Clone)]
pub struct Wired {
    pub host: Link,
    pub pod: Link,
}

/// The pod's gateway in `address`'s family.
pub fn gateway_for(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(GATEWAY_V4),
        IpAddr::V6(_) => IpAddr::V6(GATEWAY_V6),
    }
}

/// The host address with its full-length prefix (/32 or /128).
pub fn host_prefix(address: IpAddr) -> IpNetwork {
    let len = if address.is_ipv4() { 32 } else { 128 };
    // A full-length prefix is always valid for its own family.
    IpNetwork::new(address, len).unwrap_or_else(|_| IpNetwork::from(address))
}

/// Creates the veth pair and configures both ends. On error the caller
/// deletes the host side (which takes the pod side with it).
pub fn wire(
    host: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &Netns,
    plan: &PodWiring<'_>,
) -> Result<Wired, CniError> {
    let has_v4 = plan.addresses.iter().any(IpAddr::is_ipv4);
    let has_v6 = plan.addresses.iter().any(IpAddr::is_ipv6);
    host.create_veth(&VethSpec {
        name: plan.host_veth,
        mac: Some(HOST_VETH_MAC),
        mtu: plan.mtu,
        alias: Some(plan.alias),
        peer_name: plan.ifname,
        peer_netns: pod_ns,
    })
    .map_err(|e| {
        if e.is_exists() {
            // Both names were free a moment ago: a concurrent call took one.
            CniError::new(
                ErrorCode::HostVethNameTaken,
                format!(
                    "veth {} on the node or {} in the pod appeared while this ADD ran",
                    plan.host_veth, plan.ifname
                ),
            )
        } else {
            kernel_error(&e)
        }
    })?;
    let host_link = require_link(host.link_by_name(plan.host_veth), plan.host_veth, "node")?;
    let pod_link = require_link(pod.link_by_name(plan.ifname), plan.ifname, "pod")?;

    // Node side, before it comes up: no automatic link-local address (we
    // add the well-known one without DAD, so the pod's gateway answers at
    // once), proxy ARP without its random delay, forwarding.
    if has_v6 {
        host.disable_ipv6_addr_gen(host_link.index)
            .map_err(|e| kernel_error(&e))?;
    }
    if has_v4 {
        let conf = format!("net/ipv4/conf/{}", plan.host_veth);
        sysctl(&format!("{conf}/proxy_arp"), "1")?;
        sysctl(
            &format!("net/ipv4/neigh/{}/proxy_delay", plan.host_veth),
            "0",
        )?;
        sysctl("net/ipv4/ip_forward", "1")?;
    }
    if has_v6 {
        sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    host.set_link_up(host_link.index)
        .map_err(|e| kernel_error(&e))?;
    if has_v6 {
        let link_local = IpNetwork::new(IpAddr::V6(GATEWAY_V6), 64)
            .map_err(|e| CniError::new(ErrorCode::KernelRefused, e.to_string()))?;
        host.add_address(host_link.index, link_local, true)
            .map_err(|e| kernel_error(&e))?;
    }

    // Pod side: up, the host addresses, the gateway and the default route.
    pod.set_link_up(pod_link.index)
        .map_err(|e| kernel_error(&e))?;
    for &address in plan.addresses {
        pod.add_address(pod_link.index, host_prefix(address), address.is_ipv6())
            .map_err(|e| kernel_error(&e))?;
    }
    for &address in plan.addresses {
        let gateway = gateway_for(address);
        // A permanent neighbour entry means the pod never waits on ARP or
        // neighbour discovery for its gateway, and it works even on a node
        // with no default route (where proxy ARP would stay silent).
        pod.replace_permanent_neighbour(pod_link.index, gateway, HOST_VETH_MAC)
            .map_err(|e| kernel_error(&e))?;
        if gateway.is_ipv4() {
            pod.replace_route(&Route {
                dst: host_prefix(gateway),
                gateway: None,
                oif: Some(pod_link.index),
                scope: RouteScope::Link,
                protocol: RTPROT_PODROUTE_CNI,
            })
            .map_err(|e| kernel_error(&e))?;
        }
        pod.replace_route(&Route {
            dst: default_route(address),
            gateway: Some(gateway),
            oif: Some(pod_link.index),
            scope: RouteScope::Universe,
            protocol: RTPROT_PODROUTE_CNI,
        })
        .map_err(|e| kernel_error(&e))?;
    }

    // Node side: the host route that makes the pod reachable.
    for &address in plan.addresses {
        host.replace_route(&host_route(address, host_link.index))
            .map_err(|e| kernel_error(&e))?;
    }
    Ok(Wired {
        host: host_link,
        pod: pod_link,
    })
}

/// The node's route to a pod address through its host veth.
pub fn host_route(address: IpAddr, host_index: u32) -> Route {
    Route {
        dst: host_prefix(address),
        gateway: None,
        oif: Some(host_index),
        scope: RouteScope::Link,
        protocol: RTPROT_PODROUTE_CNI,
    }
}

/// The pod's default route for `address`'s family.
pub fn default_route(address: IpAddr) -> IpNetwork {
    let unspecified = match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    IpNetwork::new(unspecified, 0).unwrap_or_else(|_| IpNetwork::from(unspecified))
}

/// "ee:ee:ee:ee:ee:ee", as results and prevResult write MACs.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The family of an address, for route dumps.
pub fn family_of(address: IpAddr) -> IpFamily {
    if address.is_ipv4() {
        IpFamily::V4
    } else {
        IpFamily::V6
    }
}

/// The node's uplink MTU: the interface of the route to the outside world;
/// without one (a routed node that learns only pod blocks), the smallest
/// MTU of the node's other interfaces; 1500 when there are none.
pub fn uplink_mtu(host: &mut Netlink) -> Result<u32, CniError> {
    const OUTSIDE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8));
    const OUTSIDE_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0, 0, 0, 0, 0, 0x8888));
    for outside in [OUTSIDE_V4, OUTSIDE_V6] {
        // Any refusal (a family the kernel lacks, say) means no route.
        if let Ok(Some(index)) = host.route_get(outside)
            && let Some(link) = host.link_by_index(index).map_err(|e| kernel_error(&e))?
            && !link.loopback
        {
            return Ok(link.mtu);
        }
    }
    let links = host.links().map_err(|e| kernel_error(&e))?;
    Ok(links
        .iter()
        .filter(|l| l.up && !l.loopback && !l.name.starts_with(HOST_VETH_PREFIX))
        .map(|l| l.mtu)
        .min()
        .unwrap_or(1500))
}

/// A kernel refusal as the CNI error (100), naming the object.
pub fn kernel_error(error: &NetlinkError) -> CniError {
    CniError::new(ErrorCode::KernelRefused, error.to_string())
}

fn sysctl(key: &str, value: &str) -> Result<(), CniError> {
    write_sysctl(key, value).map_err(|e| kernel_error(&e))
}

fn require_link(
    found: Result<Option<Link>, NetlinkError>,
    name: &str,
    side: &str,
) -> Result<Link, CniError> {
    found.map_err(|e| kernel_error(&e))?.ok_or_else(|| {
        CniError::new(
            ErrorCode::KernelRefused,
            format!("veth {name} vanished from the {side}'s namespace right after it was made"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_gateway_is_the_eui64_of_the_host_mac() {
        // EUI-64: flip the universal/local bit of the first octet, insert ff:fe.
        let mac = HOST_VETH_MAC;
        let expected = Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
            u16::from_be_bytes([mac[2], 0xff]),
            u16::from_be_bytes([0xfe, mac[3]]),
            u16::from_be_bytes([mac[4], mac[5]]),
        );
        assert_eq!(GATEWAY_V6, expected);
    }

    #[test]
    fn host_prefixes_are_full_length() {
        assert_eq!(
            host_prefix("10.1.2.3".parse().unwrap()).to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            host_prefix("fd00::5".parse().unwrap()).to_string(),
            "fd00::5/128"
        );
        assert_eq!(
            default_route("fd00::5".parse().unwrap()).to_string(),
            "::/0"
        );
        assert_eq!(
            gateway_for("10.0.0.1".parse().unwrap()).to_string(),
            "169.254.1.1"
        );
    }
}
