// bench/converge's driver (issue 8): in a mesh of 10 node namespaces on one
// bridge, (1) from podroute-ipamd's Allocate answer that gave a node a fresh
// block to that block's route in the kernel of each of the 9 other nodes,
// (2) BFD: a node's link down until the others' kernels lost its blocks,
// (3) GR: a pod pinging a pod across two nodes every 10 ms while one node's
// speaker is SIGKILLed and restarted. For podroute-bgpd and, in the same run,
// the anchor: BIRD 2 configured as Calico configures it, fed by a confd
// emulation (watch, render, `birdc configure`). See bench/README.md.

mod confd;
mod daemons;
mod kernel;
mod mesh;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

use confd::{Confd, Ipamd};
use daemons::{Daemon, Kind, STATE_POLL, Setup};
use kernel::{Kernels, Prefix};
use mesh::Mesh;
use report::{DutResult, GrSample};

/// How long a block may take to reach every kernel before it counts as lost.
const BLOCK_DEADLINE: Duration = Duration::from_secs(30);
/// How long the mesh may take to come up.
const MESH_UP: Duration = Duration::from_secs(120);
/// How long BFD gets to take a dead node's blocks away (hold time is 90 s).
const BFD_DEADLINE: Duration = Duration::from_secs(10);
/// The GR measurement's ping: every 10 ms for this long.
const PING_INTERVAL: &str = "0.01";
/// Pings before the kill, to see the path working.
const PING_BEFORE_KILL: Duration = Duration::from_secs(1);
/// Pod nodes of the GR measurement (n5 and n6); n5's speaker is killed. n5
/// connects to n6..n10 and waits for n1..n4 to connect.
const POD_NODES: (usize, usize) = (4, 5);
/// Nodes whose link goes down in the BFD measurement, in turn.
const BFD_VICTIMS: [usize; 5] = [2, 6, 8, 0, 9];

#[derive(Debug, Parser)]
#[command(about = "bench/converge's driver; run it through bench/converge")]
struct Args {
    /// Namespace prefix of the run (unique per run).
    #[arg(long)]
    prefix: String,
    /// Work folder: configurations and logs.
    #[arg(long)]
    work: PathBuf,
    #[arg(long)]
    bgpd: PathBuf,
    #[arg(long)]
    ipamd: PathBuf,
    /// Speakers to measure, in order: cluster (podroute on cluster.yaml
    /// with --ipamd), peers (podroute on per-node BGPPeer files), bird.
    #[arg(long, value_delimiter = ',', default_value = "cluster,bird")]
    only: Vec<String>,
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// New blocks measured per speaker.
    #[arg(long, default_value_t = 100)]
    blocks: usize,
    #[arg(long, default_value_t = 3)]
    bfd_reps: usize,
    #[arg(long, default_value_t = 3)]
    gr_reps: usize,
    /// Seconds of pinging per GR repetition (the kill comes after 1 s).
    #[arg(long, default_value_t = 20)]
    gr_seconds: u64,
    /// Skip measurements: any of blocks, bfd, gr.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// Where the markdown table goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("converge_bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Dropping the runtime drops every task, so every mesh and daemon goes.
    drop(runtime);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("converge_bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for name in &args.only {
        let kind = match name.as_str() {
            "cluster" => Kind::Cluster,
            "peers" => Kind::Peers,
            "bird" => Kind::Bird,
            other => anyhow::bail!("unknown speaker {other:?} (cluster, peers, bird)"),
        };
        eprintln!("== {}", kind.label());
        let mut result = DutResult::new(kind);
        if !(skipped(args, "blocks") && skipped(args, "gr")) {
            mesh_phase(args, kind, &mut result, name).await?;
        }
        if !skipped(args, "bfd") {
            bfd_phase(args, kind, &mut result, name).await?;
        }
        report::print_dut(&result);
        results.push(result);
    }
    let table = report::markdown(&results, &args.commit, args.nodes, args.blocks);
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}

fn skipped(args: &Args, what: &str) -> bool {
    args.skip.iter().any(|s| s == what)
}

/// A mesh with its kernels watched, ipamd, speakers up and confd running.
struct Running {
    mesh: Arc<Mesh>,
    kernels: Kernels,
    ipamd: Ipamd,
    setup: Arc<Setup>,
    daemons: Vec<Daemon>,
    confd: Option<Confd>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Speakers first (kill_on_drop), then confd; the mesh goes with its
        // last reference.
        self.daemons.clear();
        self.confd = None;
    }
}

async fn bring_up(args: &Args, kind: Kind, tag: &str, bfd: bool) -> anyhow::Result<Running> {
    let dir = args.work.join(tag);
    std::fs::create_dir_all(&dir)?;
    let mesh = Arc::new(Mesh::create(&format!("{}-{tag}", args.prefix), args.nodes)?);
    let paths: Vec<PathBuf> = mesh.nodes.iter().map(|n| n.netns_path()).collect();
    let kernels = Kernels::watch(&paths)?;
    let ipamd = Ipamd::start(&args.ipamd, &dir).await?;
    let setup = Arc::new(Setup {
        kind,
        bgpd: args.bgpd.clone(),
        ipamd_socket: ipamd.socket.clone(),
        bfd,
        dir,
    });
    setup.write_configs(&mesh)?;
    let mut daemons = Vec::new();
    for node in 0..mesh.nodes.len() {
        daemons.push(setup.start(&mesh, node)?);
    }
    let started = Instant::now();
    wait_mesh(&mut daemons, kind, args.nodes - 1).await?;
    eprintln!(
        "   mesh of {} up in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    let confd = (kind != Kind::Cluster).then(|| {
        let pids = daemons.iter().map(Daemon::pid).collect();
        Confd::start(setup.clone(), mesh.clone(), &ipamd, pids)
    });
    Ok(Running {
        mesh,
        kernels,
        ipamd,
        setup,
        daemons,
        confd,
    })
}

async fn wait_mesh(daemons: &mut [Daemon], kind: Kind, peers: usize) -> anyhow::Result<()> {
    wait_sessions(daemons, kind, peers, false).await
}

/// Waits until every node has `peers` sessions Established (or, with
/// `bfd`, BFD sessions Up at their configured timers).
async fn wait_sessions(
    daemons: &mut [Daemon],
    kind: Kind,
    peers: usize,
    bfd: bool,
) -> anyhow::Result<()> {
    let until = Instant::now() + MESH_UP;
    let what = if bfd {
        "BFD sessions Up at 300 ms"
    } else {
        "sessions Established"
    };
    for d in daemons.iter_mut() {
        loop {
            let up = if bfd {
                d.bfd_up(kind).await
            } else {
                d.established(kind).await
            }
            .unwrap_or(0);
            if up == peers {
                break;
            }
            anyhow::ensure!(
                Instant::now() < until,
                "node n{} has {up} of {peers} {what} after {MESH_UP:?}",
                d.node + 1
            );
            tokio::time::sleep(STATE_POLL * 5).await;
        }
    }
    Ok(())
}

async fn mesh_phase(
    args: &Args,
    kind: Kind,
    result: &mut DutResult,
    tag: &str,
) -> anyhow::Result<()> {
    let mut run = bring_up(args, kind, &format!("{tag}-a"), false).await?;
    if !skipped(args, "blocks") {
        for i in 0..args.blocks {
            let node = i % args.nodes;
            let name = run.mesh.nodes[node].name.clone();
            let called = Instant::now();
            let (block, _, at) = run.ipamd.allocate(&name, "bench", &format!("b{i}")).await?;
            let others = run.mesh.others(node);
            match run
                .kernels
                .wait_present(block, &others, at + BLOCK_DEADLINE)
                .await
            {
                Some(times) => result.add_block(called, at, &times),
                None => {
                    result.block_timeouts += 1;
                    eprintln!(
                        "   block {block} of {name} not everywhere within {BLOCK_DEADLINE:?}"
                    );
                }
            }
        }
        eprintln!("   {} blocks measured", result.blocks.len());
    }
    if !skipped(args, "gr") {
        gr(args, kind, &mut run, result).await?;
    }
    if let Some(confd) = &run.confd {
        result.notes.extend(confd.errors());
    }
    result.overruns += run.kernels.overruns();
    Ok(())
}

async fn gr(
    args: &Args,
    kind: Kind,
    run: &mut Running,
    result: &mut DutResult,
) -> anyhow::Result<()> {
    let (a, b) = POD_NODES;
    let mut pods = Vec::new();
    for (node, tag) in [(a, "pa"), (b, "pb")] {
        let name = run.mesh.nodes[node].name.clone();
        let (block, addr, at) = run.ipamd.allocate(&name, "pods", tag).await?;
        run.kernels
            .wait_present(block, &run.mesh.others(node), at + BLOCK_DEADLINE)
            .await
            .with_context(|| format!("pod block {block} of {name} did not reach every kernel"))?;
        pods.push((node, tag, addr));
    }
    let mesh = &run.mesh;
    let mut pod_ns = Vec::new();
    for (node, tag, addr) in &pods {
        pod_ns.push(mesh.add_pod(*node, tag, addr.addr)?);
    }
    let target = pods[1].2.addr.to_string();
    let until = Instant::now() + BLOCK_DEADLINE;
    loop {
        let ok = tokio::process::Command::new("ip")
            .args(["netns", "exec", &pod_ns[0], "ping", "-c1", "-W1", &target])
            .output()
            .await?
            .status
            .success();
        if ok {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "pod pa cannot reach pod pb at {target}"
        );
    }
    let count = (args.gr_seconds * 100).to_string();
    for rep in 0..args.gr_reps {
        let ping = tokio::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &pod_ns[0],
                "ping",
                "-D",
                "-O",
                "-i",
                PING_INTERVAL,
                "-W",
                "1",
                "-c",
                &count,
                &target,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        tokio::time::sleep(PING_BEFORE_KILL).await;
        let killed_at = std::time::SystemTime::now();
        run.daemons[a].kill().await?;
        let restarted = Instant::now();
        let mut daemon = run.setup.start(&run.mesh, a)?;
        if let Some(confd) = &run.confd
            && let Ok(mut pids) = confd.pids.lock()
        {
            pids[a] = daemon.pid();
        }
        let peers = args.nodes - 1;
        let mut first = None;
        let established = loop {
            let up = daemon.established(kind).await.unwrap_or(0);
            if up > 0 && first.is_none() {
                first = Some(restarted.elapsed());
            }
            if up == peers {
                break Some(restarted.elapsed());
            }
            if restarted.elapsed() > MESH_UP {
                break None;
            }
            tokio::time::sleep(STATE_POLL).await;
        };
        run.daemons[a] = daemon;
        let out = tokio::time::timeout(
            Duration::from_secs(args.gr_seconds + 30),
            ping.wait_with_output(),
        )
        .await
        .context("ping did not end")??;
        let text = String::from_utf8_lossy(&out.stdout);
        let (sent, received) = report::ping_counts(&text).context("cannot read ping's summary")?;
        let lost = report::ping_lost(&text);
        let kill_s = killed_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let window = match (lost.first(), lost.last()) {
            (Some((_, t0)), Some((_, t1))) => {
                format!(
                    ", unanswered from {:+.0} to {:+.0} ms after the kill",
                    (t0 - kill_s) * 1e3,
                    (t1 - kill_s) * 1e3
                )
            }
            _ => String::new(),
        };
        let seqs: Vec<u64> = lost.iter().map(|(seq, _)| *seq).collect();
        eprintln!(
            "   GR rep {rep}: sent {sent}, received {received} (unanswered icmp_seq {}{window}), \
             first session {first:?}, all {established:?}",
            report::ranges(&seqs),
        );
        result.gr.push(GrSample {
            sent,
            received,
            first_established: first,
            all_established: established,
        });
        // Every session is up again before the next repetition.
        wait_mesh(&mut run.daemons, kind, peers).await?;
    }
    Ok(())
}

async fn bfd_phase(
    args: &Args,
    kind: Kind,
    result: &mut DutResult,
    tag: &str,
) -> anyhow::Result<()> {
    let mut run = bring_up(args, kind, &format!("{tag}-b"), true).await?;
    // Each node's block, by node index.
    let mut blocks: Vec<Vec<Prefix>> = Vec::new();
    for node in 0..args.nodes {
        let name = run.mesh.nodes[node].name.clone();
        let (block, _, at) = run
            .ipamd
            .allocate(&name, "bench", &format!("bfd{node}"))
            .await?;
        run.kernels
            .wait_present(block, &run.mesh.others(node), at + BLOCK_DEADLINE)
            .await
            .with_context(|| format!("block {block} of {name} did not reach every kernel"))?;
        blocks.push(vec![block]);
    }
    for rep in 0..args.bfd_reps {
        wait_sessions(&mut run.daemons, kind, args.nodes - 1, true).await?;
        let victim = BFD_VICTIMS[rep % BFD_VICTIMS.len()] % args.nodes;
        let others = run.mesh.others(victim);
        let down = Instant::now();
        run.mesh.set_link(victim, false)?;
        match run
            .kernels
            .wait_absent(&blocks[victim], &others, down + BFD_DEADLINE)
            .await
        {
            Some(times) => {
                let ms: Vec<f64> = times.iter().map(|t| report::ms(down, *t)).collect();
                eprintln!(
                    "   BFD rep {rep}: n{} gone everywhere, per observer ms {ms:.0?}",
                    victim + 1
                );
                result.bfd.extend(ms);
            }
            None => {
                result.bfd_timeouts += 1;
                eprintln!(
                    "   BFD rep {rep}: n{}'s blocks not gone everywhere within {BFD_DEADLINE:?}",
                    victim + 1
                );
            }
        }
        run.mesh.set_link(victim, true)?;
        for block in &blocks[victim] {
            run.kernels
                .wait_present(*block, &others, Instant::now() + MESH_UP)
                .await
                .with_context(|| {
                    format!("block {block} did not come back after the link came up")
                })?;
        }
        wait_mesh(&mut run.daemons, kind, args.nodes - 1).await?;
    }
    if let Some(confd) = &run.confd {
        result.notes.extend(confd.errors());
    }
    result.overruns += run.kernels.overruns();
    Ok(())
}
