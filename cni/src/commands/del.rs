// DEL (CNI spec 1.1 "DEL"): best effort and idempotent. Deletes the host veth
// if it is still this attachment's (its pod-side peer goes with it), then
// releases the handle. A missing namespace, veth or allocation is not an
// error; ipamd not answering is (11), so the runtime retries and the address
// is not leaked. The pod's CNI_IFNAME is never deleted by name: after an ADD
// refused for an existing interface, that interface is someone else's.

use super::{Invocation, connect};
use crate::args::{host_veth_name, parse_veth_alias};
use crate::config::PluginConf;
use crate::error::CniError;
use crate::netlink::Netlink;
use crate::wiring::kernel_error;

pub(super) fn del(
    invocation: &Invocation,
    conf: &PluginConf,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), CniError> {
    // Only when the veth is still this attachment's, never a newer
    // sandbox's of the same pod; deleted by index, not by name.
    let mut host = Netlink::current().map_err(|e| kernel_error(&e))?;
    let name = host_veth_name(
        invocation.pod(),
        &invocation.container_id,
        &invocation.ifname,
    );
    if let Some(link) = host.link_by_name(&name).map_err(|e| kernel_error(&e))?
        && link
            .alias
            .as_deref()
            .and_then(parse_veth_alias)
            .is_some_and(|owner| {
                owner.is_attachment(&conf.network, &invocation.container_id, &invocation.ifname)
            })
    {
        host.delete_link(link.index).map_err(|e| kernel_error(&e))?;
    }

    let mut ipamd = connect(conf, runtime)?;
    runtime.block_on(ipamd.release(&invocation.handle(conf)))?;
    Ok(())
}
