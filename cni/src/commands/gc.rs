// GC (CNI spec 1.1 "GC"): what this network holds on this node and the
// runtime's list of valid attachments does not name goes. ipamd releases the
// network's handles that are not valid (scoped by the handle prefix, so other
// networks keep theirs, and keeping handles made after the request arrived,
// so an ADD racing the GC keeps its address); then host veths of this network
// whose attachment is not valid are deleted unless ipamd still holds their
// address for them (that racing ADD again). Both halves run; errors are
// reported together at the end.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{connect, node_name};
use crate::args::{ipam_handle, ipam_handle_prefix, parse_veth_alias};
use crate::config::PluginConf;
use crate::error::{CniError, ErrorCode};
use crate::ipamd::Ipamd;
use crate::netlink::{IpFamily, Netlink};
use crate::wiring::{host_prefix, kernel_error};

pub(super) fn gc(conf: &PluginConf, runtime: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidNetworkConfig,
            "GC needs cni.dev/valid-attachments",
        )
    })?;
    let node = node_name(conf)?;
    let valid_handles: Vec<String> = valid
        .iter()
        .map(|a| ipam_handle(&conf.network, &a.container_id, &a.ifname))
        .collect();

    let mut ipamd = connect(conf, runtime);
    let collected = match &mut ipamd {
        Ok(ipamd) => runtime.block_on(ipamd.garbage_collect(
            &node,
            valid_handles,
            &ipam_handle_prefix(&conf.network),
        )),
        Err(e) => Err(e.clone()),
    };
    let released: Option<HashSet<String>> = collected
        .as_ref()
        .ok()
        .map(|r| r.released_handles.iter().cloned().collect());

    let valid: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let veths = remove_orphaned_veths(
        conf,
        &valid,
        released.as_ref(),
        ipamd.as_mut().ok(),
        runtime,
    );

    let mut problems = Vec::new();
    if let Err(e) = &collected {
        problems.push(e.msg.clone());
    }
    if let Err(e) = veths {
        problems.push(e.msg);
    }
    match (problems.is_empty(), collected) {
        (true, _) => Ok(()),
        (false, Err(e)) => Err(CniError::new(e.code, problems.join("; "))),
        (false, Ok(_)) => Err(CniError::new(ErrorCode::KernelRefused, problems.join("; "))),
    }
}

/// Deletes this network's host veths whose attachment is not valid and
/// whose addresses nobody holds for them: released just now, held by no one
/// or by another handle, or (ipamd unreachable) routed to no address at all.
fn remove_orphaned_veths(
    conf: &PluginConf,
    valid: &HashSet<(&str, &str)>,
    released: Option<&HashSet<String>>,
    mut ipamd: Option<&mut Ipamd>,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), CniError> {
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;
    let mut routed: HashMap<u32, Vec<IpAddr>> = HashMap::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        // A family the kernel lacks has no pod routes.
        for route in host.routes(family).unwrap_or_default() {
            if let Some(oif) = route.oif
                && route.dst == host_prefix(route.dst.ip())
            {
                routed.entry(oif).or_default().push(route.dst.ip());
            }
        }
    }
    let mut failures = Vec::new();
    for link in host.links().map_err(|e| kernel_error(&e))? {
        let Some(owner) = link.alias.as_deref().and_then(parse_veth_alias) else {
            continue;
        };
        if owner.network != conf.network
            || valid.contains(&(owner.container_id.as_str(), owner.ifname.as_str()))
        {
            continue;
        }
        let handle = ipam_handle(&conf.network, &owner.container_id, &owner.ifname);
        let addresses = routed
            .get(&link.index)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let orphaned = match (released, ipamd.as_deref_mut()) {
            (Some(released), _) if released.contains(&handle) => true,
            (_, Some(ipamd)) => !addresses.iter().any(|&address| {
                runtime
                    .block_on(ipamd.show_address(address))
                    // Unknown: keep the veth rather than cut a live pod off.
                    .map_or(true, |shown| shown.allocated && shown.handle == handle)
            }),
            (_, None) => addresses.is_empty(),
        };
        if orphaned && let Err(e) = host.delete_link(link.index) {
            failures.push(format!("{}: {e}", link.name));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::KernelRefused,
            format!("GC could not delete host veths: {}", failures.join("; ")),
        ))
    }
}
