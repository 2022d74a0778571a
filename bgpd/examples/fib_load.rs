// Times the FIB writing N IPv4 /24 routes (1.0.0.0/24 upwards, all over one
// gateway) into a fresh network namespace, then removing them. Needs root.
//
//   cargo run --release -p podroute-bgpd --example fib_load -- 500000
//
// A measurement, not a test: nothing asserts on the time.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnetwork::{IpNetwork, Ipv4Network};
use podroute_bgpd::fib::{self, FibConfig, FibEvent, FibOp, FibRoute, ResolvedNextHop};

const DEFAULT_N: u32 = 500_000;

/// Deletes the namespace however the run ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Main table's prefix count, from /proc/net/fib_triestat in `ns`.
fn kernel_prefixes(ns: &str) -> Result<u64, String> {
    let stat = ip(&["netns", "exec", ns, "cat", "/proc/net/fib_triestat"])?;
    let main = stat.split("Main:").nth(1).ok_or("no Main table")?;
    main.lines()
        .find_map(|l| l.trim().strip_prefix("Prefixes:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| "no Prefixes: line".to_string())
}

fn prefixes(n: u32) -> impl Iterator<Item = IpNetwork> {
    (0..n).filter_map(|i| {
        let addr = Ipv4Addr::from(0x0100_0000u32.checked_add(i.checked_mul(256)?)?);
        Ipv4Network::new(addr, 24).ok().map(IpNetwork::V4)
    })
}

async fn wait_written(handle: &fib::FibHandle, writes: u64) {
    loop {
        let status = handle.status();
        if status.pending == 0 && status.writes_total >= writes {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let n: u32 = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("N: {e}"))?,
        None => DEFAULT_N,
    };
    let ns = Netns(format!("pr-fib-load-{}", std::process::id()));
    ip(&["netns", "add", &ns.0])?;
    // No dummy module on every kernel: a veth pair inside the namespace.
    ip(&[
        "-n", &ns.0, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ])?;
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.1/24", "dev", "v0"])?;
    ip(&["-n", &ns.0, "link", "set", "v0", "up"])?;
    ip(&["-n", &ns.0, "link", "set", "v1", "up"])?;
    let link = ip(&["-n", &ns.0, "-o", "link", "show", "v0"])?;
    let ifindex: u32 = link
        .split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .ok_or_else(|| format!("no ifindex in {link:?}"))?;

    let config = FibConfig {
        netns: Some(format!("/run/netns/{}", ns.0).into()),
        ..FibConfig::default()
    };
    let started = Instant::now();
    let (handle, mut events) = fib::start(config).await.map_err(|e| e.to_string())?;
    let generation = loop {
        match events.recv().await {
            Some(FibEvent::ResyncRequested { generation }) => break generation,
            Some(FibEvent::KernelTable(_)) => {}
            None => return Err("FIB stopped".into()),
        }
    };
    println!("start (sockets, dumps): {:?}", started.elapsed());

    let route = FibRoute::Unicast(Arc::from(vec![ResolvedNextHop {
        gateway: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        ifindex,
    }]));
    let ops: Vec<FibOp> = prefixes(n).map(|p| FibOp::Set(p, route.clone())).collect();
    let t = Instant::now();
    handle.apply(ops).await;
    handle.sync_done(generation).await;
    wait_written(&handle, u64::from(n)).await;
    let install = t.elapsed();
    let in_kernel = kernel_prefixes(&ns.0)?;
    let status = handle.status();
    println!(
        "install {n} routes: {install:?} ({:.0} routes/s); kernel Main prefixes {in_kernel}; \
         batches {}, errors {}, nexthop objects {}",
        f64::from(n) / install.as_secs_f64(),
        status.netlink_batches,
        status.errors_total,
        status.nexthop_objects
    );

    let ops: Vec<FibOp> = prefixes(n).map(FibOp::Remove).collect();
    let t = Instant::now();
    handle.apply(ops).await;
    wait_written(&handle, 2 * u64::from(n)).await;
    println!(
        "remove {n} routes: {:?}; kernel Main prefixes {}",
        t.elapsed(),
        kernel_prefixes(&ns.0)?
    );
    Ok(())
}
