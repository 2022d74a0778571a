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
use crate::netlink::{Link, Netlink, Netns};
use crate::result::{AddResult, Dns, Interface, IpConfig, RouteEntry};
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
    let pod_ns = open_netns(netns_path)?;
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;
    let mut pod = Netlink::in_netns(&pod_ns).map_err(|e| kernel_error(&e))?;

    let host_veth = host_veth_name(
        invocation.pod(),
        &invocation.container_id,
        &invocation.ifname,
    );
    clear_host_veth(&mut host, &host_veth, invocation, conf)?;
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
    }))?;
    let addresses = match parse_addresses(&allocated) {
        Ok(addresses) => addresses,
        Err(error) => {
            let _ = runtime.block_on(ipamd.release(&handle));
            return Err(error);
        }
    };

    // Below 1280 the kernel turns IPv6 off on the link (RFC 8200 §5).
    if mtu < MIN_MTU_IPV6 && addresses.iter().any(IpAddr::is_ipv6) {
        let _ = runtime.block_on(ipamd.release(&handle));
        return Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("MTU {mtu} is below IPv6's minimum of {MIN_MTU_IPV6}, and the pod has an IPv6 address"),
        )
        .with_details("set mtu in the network configuration, or fix the uplink's MTU"));
    }
    let alias = veth_alias(
        &conf.network,
        &invocation.container_id,
        &invocation.ifname,
        invocation.pod(),
    );
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
            // Undo: the host side takes its peer with it; then the handle.
            if let Ok(Some(link)) = host.link_by_name(&host_veth) {
                let _ = host.delete_link(link.index);
            }
            if let Err(release) = runtime.block_on(ipamd.release(&handle)) {
                return Err(error.with_details(format!(
                    "and releasing handle {handle} failed ({}); GC or DEL frees it",
                    release.msg
                )));
            }
            return Err(error);
        }
    };
    Ok(result(&wired, netns_path, &addresses, mtu).to_json(&conf.cni_version))
}

/// Opens CNI_NETNS; a path that is missing or not a network namespace is our
/// code 103.
pub(super) fn open_netns(path: &std::path::Path) -> Result<Netns, CniError> {
    Netns::open(path).map_err(|e| {
        CniError::new(ErrorCode::NetnsUnavailable, e.to_string())
            .with_details("CNI_NETNS must name the pod's network namespace")
    })
}

/// Makes the host veth name free for this attachment: a link of that name
/// left by an earlier try of this same ADD, or by an older sandbox of the
/// same pod, is deleted (by index, so a concurrent DEL of the old sandbox
/// cannot delete ours); a link of another pod or another program is not
/// touched and the ADD fails.
fn clear_host_veth(
    host: &mut Netlink,
    name: &str,
    invocation: &Invocation,
    conf: &PluginConf,
) -> Result<(), CniError> {
    let Some(existing) = host.link_by_name(name).map_err(|e| kernel_error(&e))? else {
        return Ok(());
    };
    let owner = existing.alias.as_deref().and_then(parse_veth_alias);
    let same_pod = match (&owner, invocation.pod()) {
        (Some(owner), Some((ns, pod))) => {
            owner.network == conf.network
                && owner.ifname == invocation.ifname
                && owner
                    .pod
                    .as_ref()
                    .is_some_and(|(o_ns, o_pod)| o_ns == ns && o_pod == pod)
        }
        (Some(owner), None) => {
            owner.network == conf.network
                && owner.container_id == invocation.container_id
                && owner.ifname == invocation.ifname
        }
        (None, _) => false,
    };
    if !same_pod {
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
        mac: link.mac.map(|m| format_mac(&m)),
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

/// "ee:ee:ee:ee:ee:ee".
pub(super) fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
