// CHECK (CNI spec 1.1 "CHECK"): the pod's network must still be what ADD
// returned in prevResult: the interface in the pod, its addresses, its
// gateway and default routes; on the node, this attachment's host veth and
// the host route to every address; in ipamd, each address still held by our
// handle. The first difference found is the error (105), named exactly.

use std::net::IpAddr;

use super::add::open_pod;
use super::{Invocation, connect};
use crate::args::{host_veth_name, parse_veth_alias};
use crate::config::PluginConf;
use crate::error::{CniError, ErrorCode};
use crate::netlink::Netlink;
use crate::wiring::{self, HOST_VETH_MAC, kernel_error};

pub(super) fn check(
    invocation: &Invocation,
    conf: &PluginConf,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidNetworkConfig,
            "CHECK needs prevResult (the result of the ADD)",
        )
    })?;
    let Some((index, interface)) = prev.sandbox_interface(&invocation.ifname) else {
        return Err(mismatch(format!(
            "prevResult has no interface {} in a sandbox",
            invocation.ifname
        )));
    };
    let addresses: Vec<IpAddr> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none_or(|i| i == index))
        .map(|ip| ip.address.ip())
        .collect();
    if addresses.is_empty() {
        return Err(mismatch(format!(
            "prevResult holds no address for {}",
            invocation.ifname
        )));
    }

    // The pod side.
    let netns_path = invocation.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_NETNS is required for CHECK",
        )
    })?;
    let (_pod_ns, mut pod) = open_pod(netns_path)?;
    let link = pod
        .link_by_name(&invocation.ifname)
        .map_err(|e| kernel_error(&e))?
        .ok_or_else(|| {
            mismatch(format!(
                "interface {} is gone from the pod",
                invocation.ifname
            ))
        })?;
    if !link.up {
        return Err(mismatch(format!(
            "interface {} in the pod is down",
            link.name
        )));
    }
    if let (Some(want), Some(have)) = (&interface.mac, link.mac)
        && !want.eq_ignore_ascii_case(&wiring::format_mac(&have))
    {
        return Err(mismatch(format!(
            "interface {} has MAC {} but prevResult says {want}",
            link.name,
            wiring::format_mac(&have)
        )));
    }
    let held = pod.addresses(link.index).map_err(|e| kernel_error(&e))?;
    for &address in &addresses {
        if !held.contains(&wiring::host_prefix(address)) {
            return Err(mismatch(format!(
                "address {} is missing from {} in the pod",
                wiring::host_prefix(address),
                link.name
            )));
        }
        let gateway = wiring::gateway_for(address);
        let routes = pod
            .routes(wiring::family_of(address))
            .map_err(|e| kernel_error(&e))?;
        let default = wiring::default_route(address);
        if !routes
            .iter()
            .any(|r| r.dst == default && r.gateway == Some(gateway) && r.oif == Some(link.index))
        {
            return Err(mismatch(format!(
                "the pod's default route via {gateway} dev {} is missing",
                link.name
            )));
        }
        let neighbours = pod.neighbours(link.index).map_err(|e| kernel_error(&e))?;
        if !neighbours
            .iter()
            .any(|n| n.ip == gateway && n.mac == Some(HOST_VETH_MAC))
        {
            return Err(mismatch(format!(
                "the pod's neighbour entry for its gateway {gateway} is missing"
            )));
        }
    }

    // The node side.
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;
    let name = host_veth_name(
        invocation.pod(),
        &invocation.container_id,
        &invocation.ifname,
    );
    let host_link = host
        .link_by_name(&name)
        .map_err(|e| kernel_error(&e))?
        .ok_or_else(|| mismatch(format!("host veth {name} is gone from the node")))?;
    let owner = host_link.alias.as_deref().and_then(parse_veth_alias);
    if !owner.is_some_and(|o| {
        o.is_attachment(&conf.network, &invocation.container_id, &invocation.ifname)
    }) {
        return Err(mismatch(format!(
            "host veth {name} belongs to another container now"
        )));
    }
    if !host_link.up {
        return Err(mismatch(format!("host veth {name} is down")));
    }
    for &address in &addresses {
        // Ask the kernel where it sends the address rather than dumping a
        // table that may hold a full BGP feed.
        let oif = host.route_get(address).map_err(|e| kernel_error(&e))?;
        if oif != Some(host_link.index) {
            return Err(mismatch(format!(
                "the node's route {} dev {name} is missing",
                wiring::host_prefix(address)
            )));
        }
    }

    // ipamd: every address still ours.
    let handle = invocation.handle(conf);
    let mut ipamd = connect(conf, runtime)?;
    for &address in &addresses {
        let shown = runtime.block_on(ipamd.show_address(address))?;
        if !shown.allocated || shown.handle != handle {
            let holder = if shown.allocated {
                format!("held by handle {}", shown.handle)
            } else {
                "not allocated".to_owned()
            };
            return Err(mismatch(format!(
                "address {address} is {holder} in podroute-ipamd, not by {handle}"
            )));
        }
    }
    Ok(())
}

fn mismatch(msg: String) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg)
}
