// bench/observe's client: reads what an operator monitors from a BGP
// speaker the way its usual exporter does, on a fresh connection for every
// read, and says how long the reads took and how many bytes they brought:
// podroute-bgpd's /metrics (HTTP/1.1 on its metrics port); BIRD's control
// socket (`show protocols all`, what bird_exporter sends); an FRR daemon's
// vty socket (the commands vtysh would send, e.g. `show bgp summary json`);
// podroute-bgpd's ListRoutes on its admin socket (the whole Loc-RIB, as
// `podctl status` asks for it, without podctl's 4 MiB message limit).
// See bench/README.md ("observe").
//
//   observe_bench --samples 200 http --addr 127.0.0.1:9641
//   observe_bench --every-ms 100 bird --socket DIR/bird.ctl
//
// With --samples it prints one line: `ok p50_ms p99_ms max_ms bytes`
// (bytes: what the last good read received, response head included).
// With --every-ms it starts a read that often until killed and prints one
// line per read: `ms_since_start ok|error bytes`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};
use podroute_proto::bgpd::v1::ListRoutesRequest;
use podroute_proto::bgpd::v1::bgp_admin_client::BgpAdminClient;
use prost::Message as _;

/// BIRD's reply codes from this one up are errors (doc/prog: 8xxx run-time
/// errors, 9xxx parse errors).
const BIRD_FIRST_ERROR: u32 = 8000;
/// vtysh's end of a reply: three NULs, then the command's return code
/// (lib/command.h CMD_SUCCESS = 0).
const VTY_END: [u8; 3] = [0, 0, 0];
/// A read that does not finish in this long is an error, not a hang.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(about = "bench/observe's client; run it through bench/observe")]
struct Args {
    /// Reads to make, back to back.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Instead: start a read every this many ms until killed (a scraper).
    #[arg(long)]
    every_ms: Option<u64>,
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, Subcommand)]
enum Source {
    /// GET a path over HTTP/1.1 (podroute's /metrics).
    Http {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value = "/metrics")]
        path: String,
    },
    /// A command on BIRD's control socket (what birdc sends).
    Bird {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, default_value = "show protocols all")]
        command: String,
    },
    /// Commands on an FRR daemon's vty socket (what vtysh sends), each on
    /// its own connection; one read is all of them.
    Vty {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, required = true)]
        command: Vec<String>,
    },
    /// podroute-bgpd's ListRoutes with no filter; bytes are the encoded
    /// response.
    ListRoutes {
        #[arg(long)]
        socket: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let read_once = || -> anyhow::Result<usize> {
        match &args.source {
            Source::Http { addr, path } => http_get(*addr, path),
            Source::Bird { socket, command } => bird(socket, command),
            Source::Vty { socket, command } => command.iter().map(|c| vty(socket, c)).sum(),
            Source::ListRoutes { socket } => runtime.block_on(list_routes(socket)),
        }
    };
    match args.every_ms {
        Some(ms) => scrape_forever(Duration::from_millis(ms.max(1)), read_once),
        None => {
            ensure!(args.samples > 0, "--samples must be at least 1");
            batch(args.samples, read_once)
        }
    }
}

/// `samples` reads back to back; prints `ok p50_ms p99_ms max_ms bytes`.
fn batch(samples: usize, read_once: impl Fn() -> anyhow::Result<usize>) -> anyhow::Result<()> {
    let mut times = Vec::with_capacity(samples);
    let mut bytes = 0;
    let mut first_error = None;
    for _ in 0..samples {
        let start = Instant::now();
        match read_once() {
            Ok(n) => {
                times.push(start.elapsed());
                bytes = n;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!(
            "observe_bench: {} of {samples} reads failed, the first: {e:#}",
            samples - times.len()
        );
    }
    if times.is_empty() {
        bail!("no read succeeded");
    }
    times.sort();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
    println!(
        "{} {} {} {} {bytes}",
        times.len(),
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99)),
        ms(times[times.len() - 1]),
    );
    Ok(())
}

/// Nearest rank: the smallest value with at least `p` % of all at or
/// below it.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A read every `every`, on a fixed schedule (a late read is followed by
/// the next at once), until the process is killed.
fn scrape_forever(
    every: Duration,
    read_once: impl Fn() -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut next = start;
    let mut out = std::io::stdout().lock();
    loop {
        let (result, bytes) = match read_once() {
            Ok(n) => ("ok", n),
            Err(_) => ("error", 0), // e.g. refused: the daemon is not up yet
        };
        writeln!(out, "{} {result} {bytes}", start.elapsed().as_millis())?;
        out.flush()?;
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// GET `path`; Ok(bytes received) on a 200.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<usize> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let status = response.split(|b| *b == b'\n').next().unwrap_or_default();
    ensure!(
        status.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(status).trim_end()
    );
    Ok(response.len())
}

/// One command on BIRD's control socket: read the greeting (code 0001),
/// send the command, read reply lines until one whose code is followed by
/// a space (birdc's end of a reply). Ok(bytes received).
fn bird(socket: &PathBuf, command: &str) -> anyhow::Result<usize> {
    let stream =
        UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut bytes = reader.read_line(&mut line)?;
    ensure!(line.starts_with("0001 "), "BIRD's greeting: {line:?}");
    writeln!(writer, "{command}")?;
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        ensure!(n > 0, "BIRD closed the socket before the end of the reply");
        bytes += n;
        let code = line.get(..4).and_then(|c| c.parse::<u32>().ok());
        if let Some(code) = code
            && line.as_bytes().get(4) == Some(&b' ')
        {
            ensure!(code < BIRD_FIRST_ERROR, "BIRD: {}", line.trim_end());
            return Ok(bytes);
        }
    }
}

/// One command on an FRR daemon's vty socket: the command and a NUL, then
/// the output until three NULs and the return code. Ok(bytes received).
fn vty(socket: &PathBuf, command: &str) -> anyhow::Result<usize> {
    let mut stream =
        UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.write_all(command.as_bytes())?;
    stream.write_all(&[0])?;
    let mut reply = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        ensure!(n > 0, "the vty closed before the end of the reply");
        reply.extend_from_slice(&buf[..n]);
        if let [.., a, b, c, code] = reply[..]
            && [a, b, c] == VTY_END
        {
            ensure!(code == 0, "`{command}` returned code {code}");
            return Ok(reply.len());
        }
    }
}

/// ListRoutes with no filter on a new connection; Ok(encoded size).
async fn list_routes(socket: &PathBuf) -> anyhow::Result<usize> {
    let channel = podroute_proto::admin_socket::connect_unix(socket).await?;
    let response = BgpAdminClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .list_routes(ListRoutesRequest::default())
        .await?
        .into_inner();
    Ok(response.encoded_len())
}
