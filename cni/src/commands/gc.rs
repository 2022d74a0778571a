// GC (CNI spec 1.1 "GC"): everything of this network on this node that is not
// in the runtime's list of valid attachments goes: ipamd releases the node's
// handles that are not valid (it keeps those made after the request arrived,
// so an ADD racing the GC keeps its address), and host veths of ours whose
// attachment is not valid are deleted. Other networks' veths are not touched.

use std::collections::HashSet;

use super::{connect, node_name};
use crate::args::{ipam_handle, parse_veth_alias};
use crate::config::PluginConf;
use crate::error::{CniError, ErrorCode};
use crate::netlink::Netlink;
use crate::wiring::kernel_error;

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
    let mut ipamd = connect(conf, runtime)?;
    runtime.block_on(ipamd.garbage_collect(&node, valid_handles))?;

    let valid: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;
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
        // Remove as much as possible, then report what could not go.
        if let Err(e) = host.delete_link(link.index) {
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
