// ADD (CNI spec 1.1 "ADD"): checks what can be checked before anything is
// made (the namespace opens, the interface name is free, the host veth name
// is ours to take), allocates the pod's addresses from podroute-ipamd, wires
// the pod, and returns the result. Any failure after the allocation deletes
// the veth and releases the handle, so a failed ADD leaves nothing behind.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{Invocation, connect, node_name};
use crate::args::{host_veth_name, parse_veth_alias, veth_alias};
use crate::config::{MIN_MTU_IPV6, PluginConf};
use crate::error::{CniError, ErrorCode};
use crate::ipamd::AllocationRequest;
use crate::netlink::{Link, Netlink, NetlinkError, Netns};
use crate::result::{AddResult, Dns, Interface, IpConfig, PrevResult, RouteEntry};
use crate::wiring::{self, PodWiring, Wired, kernel_error};

pub(super) fn add(
    invocation: &Invocation,
    conf: &PluginConf,
    runtime: &tokio::runtime::Runtime,
) -> Result<String, CniError> {
    let netns_path = invocation.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_NETNS is required for ADD",
        )
    })?;
    let (pod_ns, mut pod) = open_pod(netns_path)?;
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;

    let host_veth = host_veth_name(
        invocation.pod(),
        &invocation.container_id,
        &invocation.ifname,
    );
    let alias = veth_alias(
        &conf.network,
        &invocation.container_id,
        &invocation.ifname,
        invocation.pod(),
    );
    clear_host_veth(&mut host, &host_veth, &alias, invocation, conf)?;
    if pod
        .link_by_name(&invocation.ifname)
        .map_err(|e| kernel_error(&e))?
        .is_some()
    {
        return Err(CniError::new(
            ErrorCode::InterfaceExists,
            format!(
                "interface {} already exists in the pod's namespace {}",
                invocation.ifname,
                netns_path.display()
            ),
        ));
    }

    let node = node_name(conf)?;
    let handle = invocation.handle(conf);
    let mtu = match conf.mtu {
        Some(mtu) => mtu,
        None => wiring::uplink_mtu(&mut host)?,
    };
    let mut ipamd = connect(conf, runtime)?;
    let (pod_namespace, pod_name) = invocation.pod().unwrap_or_default();
    let allocated = runtime.block_on(ipamd.allocate(&AllocationRequest {
        node: &node,
        handle: &handle,
        pod_namespace,
        pod_name,
        families: &conf.families,
        pools: &conf.pools,
        addresses: &conf.requested_ips,
    }));
    // From here on every failure gives the allocation back. A timeout or an
    // unavailable store may still have committed it, so those release too.
    let mut undo = |error: CniError| -> CniError {
        match runtime.block_on(ipamd.release(&handle)) {
            Ok(_) => error,
            Err(release) => error.with_details(format!(
                "and releasing handle {handle} failed ({}); DEL or GC frees it",
                release.msg
            )),
        }
    };
    let allocated = match allocated {
        Ok(allocated) => allocated,
        Err(error) if error.code == ErrorCode::TryAgainLater => return Err(undo(error)),
        Err(error) => return Err(error),
    };
    let addresses = parse_addresses(&allocated).map_err(&mut undo)?;
    // Below 1280 the kernel turns IPv6 off on the link (RFC 8200 §5).
    if mtu < MIN_MTU_IPV6 && addresses.iter().any(IpAddr::is_ipv6) {
        return Err(undo(
            CniError::new(
                ErrorCode::InvalidNetworkConfig,
                format!(
                    "MTU {mtu} is below IPv6's minimum of {MIN_MTU_IPV6}, and the pod has an IPv6 address"
                ),
            )
            .with_details("set mtu in the network configuration, or fix the uplink's MTU"),
        ));
    }

    let plan = PodWiring {
        host_veth: &host_veth,
        alias: &alias,
        ifname: &invocation.ifname,
        mtu,
        addresses: &addresses,
    };
    let wired = match wiring::wire(&mut host, &mut pod, &pod_ns, &plan) {
        Ok(wired) => wired,
        Err(error) => {
            // Only the veth this call made goes (the host side takes its
            // peer with it): a link of that name with another alias is a
            // concurrent call's.
            if let Ok(Some(link)) = host.link_by_name(&host_veth)
                && link.alias.as_deref() == Some(alias.as_str())
            {
                let _ = host.delete_link(link.index);
            }
            return Err(undo(error));
        }
    };
    let mut result = result(&wired, netns_path, &addresses, mtu);
    if let Some(prev) = &conf.prev_result {
        result = chained(prev, result);
    }
    Ok(result.to_json(&conf.cni_version))
}

/// Opens CNI_NETNS and a netlink socket in it; a path that is missing or
/// not a network namespace is our code 103.
pub(super) fn open_pod(path: &std::path::Path) -> Result<(Netns, Netlink), CniError> {
    let unavailable = |e: &NetlinkError| {
        CniError::new(ErrorCode::NetnsUnavailable, e.to_string())
            .with_details("CNI_NETNS must name the pod's network namespace")
    };
    let ns = Netns::open(path).map_err(|e| unavailable(&e))?;
    match Netlink::in_netns(&ns) {
        Ok(netlink) => Ok((ns, netlink)),
        Err(e @ NetlinkError::EnterNetns { .. }) => Err(unavailable(&e)),
        Err(e) => Err(kernel_error(&e)),
    }
}

/// Makes the host veth name free for this attachment: a link of that name
/// left by an earlier try of this same ADD, by an older sandbox of the same
/// pod, or by an ADD killed before it set the alias (a veth with our MAC and
/// no alias) is deleted, by index, so a concurrent DEL of the old sandbox
/// cannot delete ours. A link of another pod or another program is not
/// touched and the ADD fails.
fn clear_host_veth(
    host: &mut Netlink,
    name: &str,
    alias: &str,
    invocation: &Invocation,
    conf: &PluginConf,
) -> Result<(), CniError> {
    let Some(existing) = host.link_by_name(name).map_err(|e| kernel_error(&e))? else {
        return Ok(());
    };
    let owner = existing.alias.as_deref().and_then(parse_veth_alias);
    // Compare with this call's own alias, read back the same way, so a pod
    // name cut to fit the alias still matches itself.
    let this = parse_veth_alias(alias);
    let replaceable = match (&owner, &this) {
        (Some(owner), Some(this)) => {
            owner.network == conf.network
                && owner.ifname == invocation.ifname
                && match (&owner.pod, &this.pod) {
                    (Some(theirs), Some(ours)) => theirs == ours,
                    _ => owner.container_id == invocation.container_id,
                }
        }
        (None, _) => {
            existing.alias.is_none()
                && existing.kind.as_deref() == Some("veth")
                && existing.mac == Some(wiring::HOST_VETH_MAC)
        }
        (Some(_), None) => false,
    };
    if !replaceable {
        let holder = match &owner {
            Some(owner) => match &owner.pod {
                Some((ns, pod)) => format!("pod {ns}/{pod} (container {})", owner.container_id),
                None => format!("container {}", owner.container_id),
            },
            None => "a link that podroute did not make".to_owned(),
        };
        return Err(CniError::new(
            ErrorCode::HostVethNameTaken,
            format!("host veth name {name} is already used by {holder}"),
        ));
    }
    host.delete_link(existing.index)
        .map_err(|e| kernel_error(&e))?;
    Ok(())
}

/// Our result after the previous plugins' (CNI spec: a plugin passes
/// prevResult on): their interfaces first, ours after, indexes shifted.
fn chained(prev: &PrevResult, ours: AddResult) -> AddResult {
    let shift = prev.interfaces.len();
    let mut ips = prev.ips.clone();
    ips.extend(ours.ips.into_iter().map(|ip| IpConfig {
        interface: ip.interface.map(|i| i + shift),
        ..ip
    }));
    let mut interfaces = prev.interfaces.clone();
    interfaces.extend(ours.interfaces);
    let mut routes = prev.routes.clone();
    routes.extend(ours.routes);
    AddResult {
        interfaces,
        ips,
        routes,
        dns: ours.dns,
    }
}

fn parse_addresses(
    allocated: &[podroute_proto::ipam::v1::AllocatedAddress],
) -> Result<Vec<IpAddr>, CniError> {
    if allocated.is_empty() {
        return Err(CniError::new(
            ErrorCode::IpamRefused,
            "podroute-ipamd allocated no address (no pool offers the requested families to this node)",
        ));
    }
    allocated
        .iter()
        .map(|a| {
            a.address
                .parse::<IpNetwork>()
                .map(|n| n.ip())
                .or_else(|_| a.address.parse::<IpAddr>())
                .map_err(|_| {
                    CniError::new(
                        ErrorCode::IpamRefused,
                        format!(
                            "podroute-ipamd answered an unreadable address {:?}",
                            a.address
                        ),
                    )
                })
        })
        .collect()
}

/// The ADD result: the host veth and the pod's interface (index 1), one IP
/// per address with its gateway, and the default routes.
fn result(wired: &Wired, netns: &std::path::Path, addresses: &[IpAddr], mtu: u32) -> AddResult {
    let interface = |link: &Link, sandbox: Option<String>| Interface {
        name: link.name.clone(),
        mac: link.mac.map(|m| wiring::format_mac(&m)),
        mtu: Some(mtu),
        sandbox,
    };
    AddResult {
        interfaces: vec![
            interface(&wired.host, None),
            interface(&wired.pod, Some(netns.display().to_string())),
        ],
        ips: addresses
            .iter()
            .map(|&a| IpConfig {
                address: wiring::host_prefix(a),
                gateway: Some(wiring::gateway_for(a)),
                interface: Some(1),
            })
            .collect(),
        routes: addresses
            .iter()
            .map(|&a| RouteEntry {
                dst: wiring::default_route(a),
                gw: Some(wiring::gateway_for(a)),
                scope: None,
            })
            .collect(),
        dns: Dns::default(),
    }
}
