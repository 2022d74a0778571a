// bench/ipam's driver: starts podroute-ipamd (embedded with fsync; on one
// real etcd with 1 and 3 replicas), runs the load generator with 1, 8 and 32
// clients, and prints allocations per second and p50/p99 allocation latency
// next to the anchors measured in the same run: the disk's own fsync rate
// (what one-fsync-per-allocation would give) and etcd's own rate for
// single-key transactions at the same concurrency.
//
//   cargo run --release --example ipam_bench -p podroute-ipam -- \
//       --ipamd target/release/podroute-ipamd --cycles 2000

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use podroute_ipam::loadgen::{self, LoadConfig, LoadReport};
use podroute_ipam::store::{Compare, EtcdStore, Op, Store};
use podroute_ipam::test_support::EtcdServer;
use podroute_proto::admin_socket::connect_unix;
use podroute_proto::common::v1::GetVersionRequest;
use podroute_proto::ipam::v1::ipam_client::IpamClient;

const POOL: &str = "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: bench}\nspec: {cidr: 10.0.0.0/8, blockSize: 26}\n";
const CLIENT_COUNTS: [usize; 3] = [1, 8, 32];

struct Args {
    ipamd: PathBuf,
    /// Allocate/release cycles per client (etcd rows run a quarter).
    cycles: usize,
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        ipamd: PathBuf::from("target/release/podroute-ipamd"),
        cycles: 1000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ipamd" => args.ipamd = value.into(),
            "--cycles" => args.cycles = value.parse()?,
            "--only" => args.only = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_ipamd(
    bin: &Path,
    dir: &Path,
    name: &str,
    extra: &[String],
) -> anyhow::Result<Daemon> {
    let socket = dir.join(format!("{name}.sock"));
    let manifests = dir.join("pool.yaml");
    std::fs::write(&manifests, POOL)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(bin)
        .arg("--admin-socket")
        .arg(&socket)
        .arg("--log-level")
        .arg("warn")
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--manifests")
        .arg(&manifests)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) = connect_unix(&socket).await
            && IpamClient::new(channel)
                .get_version(GetVersionRequest {})
                .await
                .is_ok()
        {
            return Ok(daemon);
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not start; see {}",
                dir.join(format!("{name}.log")).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print_row(setup: &str, clients: usize, report: &LoadReport, anchor: &str, anchor_rate: f64) {
    let rate = report.per_second();
    println!(
        "| {setup:<18} | {clients:>3} | {rate:>9.0} | {:>7.2} | {:>7.2} | {:>6} | {anchor:<22} | {anchor_rate:>9.0} | {:>5.2}x |",
        report.percentile(0.5).as_secs_f64() * 1000.0,
        report.percentile(0.99).as_secs_f64() * 1000.0,
        report.duplicates.len() + report.errors.len(),
        rate / anchor_rate.max(1e-9),
    );
    let _ = std::io::stdout().flush();
}

/// fsyncs per second of one writer on `dir`'s disk: the rate of an IPAM
/// that commits every allocation on its own.
fn fsync_rate(dir: &Path) -> anyhow::Result<f64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(dir.join("fsync-probe"))?;
    let page = [0x5au8; 4096];
    let count = 300;
    let started = Instant::now();
    for i in 0..count {
        file.write_at(&page, (i % 16) * 4096)?;
        file.sync_data()?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Single-key transactions per second on etcd with `clients` concurrent
/// writers, each comparing the key's revision as ipamd does.
async fn etcd_txn_rate(endpoint: &str, clients: usize, per_client: usize) -> anyhow::Result<f64> {
    let store =
        Arc::new(EtcdStore::connect(vec![endpoint.to_owned()], "/anchor/".into(), None).await?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{c}");
            let mut revision = 0;
            for i in 0..per_client {
                let outcome = store
                    .txn(
                        vec![Compare {
                            key: key.clone(),
                            mod_revision: revision,
                        }],
                        vec![Op::Put {
                            key: key.clone(),
                            value: i.to_string().into_bytes(),
                        }],
                    )
                    .await;
                if let Ok(podroute_ipam::store::TxnOutcome::Committed { revision: r }) = outcome {
                    revision = r;
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok((clients * per_client) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let ipamd = std::fs::canonicalize(&args.ipamd).with_context(|| {
        format!(
            "{} not found; build it with cargo build --release",
            args.ipamd.display()
        )
    })?;
    let wanted = |setup: &str| args.only.as_deref().is_none_or(|o| setup.starts_with(o));
    println!(
        "| setup              | cl. | allocs/s  | p50 ms  | p99 ms  | errors | anchor                 | anchor/s  | ratio  |"
    );
    println!(
        "|--------------------|-----|-----------|---------|---------|--------|------------------------|-----------|--------|"
    );

    if wanted("embedded") {
        let work = tempfile::tempdir_in("/var/tmp")?;
        let fsync = fsync_rate(work.path())?;
        for clients in CLIENT_COUNTS {
            let dir = tempfile::tempdir_in("/var/tmp")?;
            let data = dir.path().join("data").display().to_string();
            let _d = start_ipamd(&ipamd, dir.path(), "ipamd", &["--data-dir".into(), data]).await?;
            let channel = connect_unix(dir.path().join("ipamd.sock")).await?;
            let report = loadgen::run(&[channel], &load(clients, args.cycles)).await;
            print_row(
                "embedded (fsync)",
                clients,
                &report,
                "fsync/s, 1 writer",
                fsync,
            );
        }
    }

    for replicas in [1usize, 3] {
        let setup = format!(
            "etcd, {replicas} replica{}",
            if replicas > 1 { "s" } else { "" }
        );
        if !wanted(&setup) {
            continue;
        }
        for clients in CLIENT_COUNTS {
            let etcd = EtcdServer::start();
            let dir = tempfile::tempdir_in("/var/tmp")?;
            let mut daemons = Vec::new();
            let mut channels = Vec::new();
            for r in 0..replicas {
                let name = format!("replica{r}");
                let flags = [
                    "--store".into(),
                    "etcd".into(),
                    "--etcd-endpoints".into(),
                    etcd.endpoint(),
                ];
                daemons.push(start_ipamd(&ipamd, dir.path(), &name, &flags).await?);
                channels.push(connect_unix(dir.path().join(format!("{name}.sock"))).await?);
            }
            let report = loadgen::run(&channels, &load(clients, args.cycles / 4)).await;
            let anchor = etcd_txn_rate(&etcd.endpoint(), clients, 200).await?;
            print_row(&setup, clients, &report, "etcd 1-key txn/s", anchor);
        }
    }
    Ok(())
}

fn load(clients: usize, cycles: usize) -> LoadConfig {
    LoadConfig {
        clients,
        cycles: cycles.max(1),
        nodes: clients.min(8),
        keep: 1,
        run_id: format!("bench{clients}"),
        stop_on_error: false,
        pool: None,
    }
}
