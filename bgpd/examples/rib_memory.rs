// Resident memory of the Loc-RIB holding N single-path IPv4 /24s that share
// one attribute set: `cargo run --release --example rib_memory -- 500000`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnetwork::{IpNetwork, Ipv4Network};
use podroute_bgpd::rib::PathAttributes;
use podroute_bgpd::rib::best_path::Source;
use podroute_bgpd::rib::loc_rib::{LocRib, Path, PeerId, RibContext};

struct Ctx(Source);

impl RibContext for Ctx {
    fn source(&self, _: PeerId) -> Option<&Source> {
        Some(&self.0)
    }
    fn reachable(&self, _: &Path) -> bool {
        true
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500_000);
    let ctx = Ctx(Source {
        local: false,
        ebgp: true,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        rr_client: false,
    });
    let attrs = Arc::new(PathAttributes {
        attributes: Vec::new(),
        next_hops: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
    });
    let before = rss_kib();
    let mut rib = LocRib::new(8);
    for i in 0..n {
        let addr = Ipv4Addr::from(0x0b00_0000 + (i << 8));
        let Ok(net) = Ipv4Network::new(addr, 24) else {
            continue;
        };
        rib.update(
            IpNetwork::V4(net),
            1,
            Some(Path::new(1, attrs.clone(), true)),
            &ctx,
        );
    }
    let after = rss_kib();
    println!(
        "{n} prefixes: {} KiB, {:.1} bytes per prefix",
        after - before,
        (after - before) as f64 * 1024.0 / f64::from(n)
    );
}
