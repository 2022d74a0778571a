// STATUS (CNI spec 1.1 "STATUS"): ready when podroute-ipamd answers, since
// every ADD needs it. Not ready is 50; it is 51 when, besides, the node
// forwards none of the families it serves, so pods already here cannot reach
// beyond the node either.

use super::connect;
use crate::config::{Family, PluginConf};
use crate::error::{CniError, ErrorCode};
use crate::netlink::read_sysctl;

pub(super) fn status(conf: &PluginConf, runtime: &tokio::runtime::Runtime) -> Result<(), CniError> {
    let reached = connect(conf, runtime).and_then(|mut ipamd| runtime.block_on(ipamd.version()));
    let Err(error) = reached else {
        return Ok(());
    };
    let served: &[Family] = if conf.families.is_empty() {
        &[Family::Ipv4, Family::Ipv6]
    } else {
        &conf.families
    };
    let forwarding_off = served.iter().all(|family| {
        let key = match family {
            Family::Ipv4 => "net/ipv4/ip_forward",
            Family::Ipv6 => "net/ipv6/conf/all/forwarding",
        };
        // A family the kernel lacks (IPv6 disabled) forwards nothing.
        !read_sysctl(key).is_ok_and(|v| v != "0")
    });
    let code = if forwarding_off {
        ErrorCode::PluginNotAvailableLimitedConnectivity
    } else {
        ErrorCode::PluginNotAvailable
    };
    Err(CniError::new(code, error.msg).with_details(error.details))
}
