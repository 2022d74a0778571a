// Listen ports for tests and labs that start daemons on the loopback and
// must tell each side the other's port before either binds.
//
// Asking the kernel for port 0 and handing the number on gives an
// *ephemeral* port: between the check and the daemon's bind, any outgoing
// connection on the machine (another test's BGP session from 127.0.0.2,
// say) may be given the same port as its source, and the daemon then fails
// with "address in use". Ports below the ephemeral range are never handed
// out that way, so only another explicit bind can take them.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port handed out: above the well-known and most registered
/// services' ports.
const FIRST: u16 = 10_000;
/// Where Linux's default ephemeral range starts, used when
/// `ip_local_port_range` cannot be read.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;

static CALLS: AtomicU64 = AtomicU64::new(0);

/// A TCP port below the ephemeral range that nothing listens on or is bound
/// to on any IPv4 address right now. The start of the search differs per
/// process and per call, so tests running side by side rarely try the same
/// port; the bind check catches the ones that already hold it.
pub fn unused_port() -> u16 {
    let end = ephemeral_start().max(FIRST + 1);
    let span = u64::from(end - FIRST);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let seed = mix(u64::from(std::process::id())
        ^ (u64::from(nanos) << 20)
        ^ CALLS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9));
    for step in 0..span {
        let port = FIRST + ((seed.wrapping_add(step)) % span) as u16;
        // 0.0.0.0 conflicts with a bind to any IPv4 address on the port.
        if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return port;
        }
    }
    // Every port below the range is taken: fall back to the kernel's pick.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(FIRST)
}

/// The first port of `net.ipv4.ip_local_port_range`.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// splitmix64's finaliser: neighbouring seeds land far apart.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_bindable() {
        let start = ephemeral_start();
        for _ in 0..50 {
            let port = unused_port();
            assert!((FIRST..start).contains(&port), "{port}");
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }

    #[test]
    fn a_held_port_is_not_handed_out() {
        let held: Vec<TcpListener> = (0..20)
            .map(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, unused_port())).unwrap())
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        for _ in 0..200 {
            assert!(!ports.contains(&unused_port()));
        }
    }
}
