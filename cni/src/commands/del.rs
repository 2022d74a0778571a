// DEL (CNI spec 1.1 "DEL"): best effort and idempotent. Removes the pod's
// interface (its veth peer goes with it), then the host veth if it is still
// this attachment's, then releases the handle. A missing namespace, veth or
// allocation is not an error; ipamd not answering is (11), so the runtime
// retries and the address is not leaked.

use super::{Invocation, connect};
use crate::args::{host_veth_name, parse_veth_alias};
use crate::config::PluginConf;
use crate::error::CniError;
use crate::netlink::{Netlink, Netns};
use crate::wiring::kernel_error;

pub(super) fn del(
    invocation: &Invocation,
    conf: &PluginConf,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), CniError> {
    // The pod side first: its namespace may be gone (the runtime may call
    // DEL after the sandbox died), which is fine.
    if let Some(path) = &invocation.netns
        && let Ok(pod_ns) = Netns::open(path)
    {
        let mut pod = Netlink::in_netns(&pod_ns).map_err(|e| kernel_error(&e))?;
        if let Some(link) = pod
            .link_by_name(&invocation.ifname)
            .map_err(|e| kernel_error(&e))?
            && link.kind.as_deref() == Some("veth")
        {
            pod.delete_link(link.index).map_err(|e| kernel_error(&e))?;
        }
    }

    // The host side, if its peer lived elsewhere (a namespace we could not
    // open): only when the veth is still this attachment's, never a newer
    // sandbox's of the same pod.
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
                owner.network == conf.network
                    && owner.container_id == invocation.container_id
                    && owner.ifname == invocation.ifname
            })
    {
        host.delete_link(link.index).map_err(|e| kernel_error(&e))?;
    }

    let mut ipamd = connect(conf, runtime)?;
    runtime.block_on(ipamd.release(&invocation.handle(conf)))?;
    Ok(())
}
