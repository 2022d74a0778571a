// A load generator for podroute-ipamd, shared by the concurrency and crash
// tests and by bench/ipam: many clients, each allocating and releasing in a
// loop through the real gRPC API, checking every answer as it comes: an
// address acknowledged to one handle while another still holds it is a
// duplicate. Clients keep their last allocations so a test can check
// afterwards that none of them was lost.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podroute_proto::common::v1::AddressFamily;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{AllocateRequest, ReleaseRequest};
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub clients: usize,
    /// Allocate/release cycles per client.
    pub cycles: usize,
    /// Clients are spread over this many nodes (n0, n1, ...).
    pub nodes: usize,
    /// Allocations each client keeps (does not release) at the end.
    pub keep: usize,
    /// Handle prefix, so two runs on one store do not collide.
    pub run_id: String,
    /// Stop at the first error instead of counting it.
    pub stop_on_error: bool,
    /// Pool to allocate from (a hint), or any.
    pub pool: Option<String>,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub allocations: u64,
    pub releases: u64,
    pub elapsed: Duration,
    /// Allocation latencies, sorted.
    pub latencies: Vec<Duration>,
    pub duplicates: Vec<String>,
    pub errors: Vec<String>,
    /// Acknowledged allocations not released: handle → address.
    pub held: HashMap<String, IpAddr>,
    /// Releases that failed (the daemon died, say): they may or may not
    /// have happened.
    pub uncertain: HashMap<String, IpAddr>,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.allocations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }
}

/// Who holds which address, as acknowledged by ipamd.
type Holders = Arc<Mutex<HashMap<IpAddr, String>>>;

/// Runs the load; client `i` allocates through `channels[i % len]` and
/// releases through the next channel, so with several replicas a pod's
/// ADD and DEL reach different ones.
pub async fn run(channels: &[Channel], config: &LoadConfig) -> LoadReport {
    let holders: Holders = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..config.clients {
        let count = channels.len().max(1);
        let channel = channels[client % count].clone();
        let release_channel = channels[(client + 1) % count].clone();
        let config = config.clone();
        let holders = holders.clone();
        tasks.push(tokio::spawn(async move {
            let clients = (IpamClient::new(channel), IpamClient::new(release_channel));
            run_client(clients, client, &config, &holders).await
        }));
    }
    let mut report = LoadReport::default();
    for task in tasks {
        match task.await {
            Ok(part) => {
                report.allocations += part.allocations;
                report.releases += part.releases;
                report.latencies.extend(part.latencies);
                report.duplicates.extend(part.duplicates);
                report.errors.extend(part.errors);
                report.held.extend(part.held);
                report.uncertain.extend(part.uncertain);
            }
            Err(e) => report.errors.push(format!("client task failed: {e}")),
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort_unstable();
    report
}

async fn run_client(
    (mut client, mut releaser): (IpamClient<Channel>, IpamClient<Channel>),
    index: usize,
    config: &LoadConfig,
    holders: &Holders,
) -> LoadReport {
    let mut report = LoadReport::default();
    let node = format!("n{}", index % config.nodes.max(1));
    let mut live: Vec<(String, IpAddr)> = Vec::new();
    for cycle in 0..config.cycles {
        let handle = format!("{}-c{index}-{cycle}", config.run_id);
        let request = AllocateRequest {
            node: node.clone(),
            handle: handle.clone(),
            pod_namespace: "load".into(),
            pod_name: format!("pod-{index}-{cycle}"),
            families: vec![AddressFamily::Ipv4.into()],
            pools: config.pool.iter().cloned().collect(),
            ..Default::default()
        };
        let sent = Instant::now();
        let answer = client.allocate(request).await;
        let latency = sent.elapsed();
        let address = match answer {
            Ok(response) => response
                .into_inner()
                .addresses
                .first()
                .and_then(|a| a.address.split('/').next().map(str::to_owned))
                .and_then(|a| a.parse::<IpAddr>().ok()),
            Err(status) => {
                report
                    .errors
                    .push(format!("allocate {handle}: {}", status.message()));
                if config.stop_on_error {
                    break;
                }
                continue;
            }
        };
        let Some(address) = address else {
            report.errors.push(format!("allocate {handle}: no address"));
            continue;
        };
        report.allocations += 1;
        report.latencies.push(latency);
        if let Ok(mut held) = holders.lock()
            && let Some(other) = held.insert(address, handle.clone())
        {
            report.duplicates.push(format!(
                "{address} acknowledged to {handle} while {other} held it"
            ));
        }
        live.push((handle, address));
        // Release all but the newest `keep`.
        while live.len() > config.keep {
            let (old, address) = live.remove(0);
            // No longer ours from the moment we ask: once the release
            // commits, another pod may get the address at once.
            if let Ok(mut held) = holders.lock()
                && held.get(&address) == Some(&old)
            {
                held.remove(&address);
            }
            let released = releaser
                .release(ReleaseRequest {
                    handle: old.clone(),
                })
                .await;
            match released {
                Ok(_) => report.releases += 1,
                Err(status) => {
                    report
                        .errors
                        .push(format!("release {old}: {}", status.message()));
                    report.uncertain.insert(old, address);
                    if config.stop_on_error {
                        break;
                    }
                }
            }
        }
    }
    report.held.extend(live);
    report
}
