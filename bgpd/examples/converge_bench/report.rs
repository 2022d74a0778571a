// What one speaker measured, percentiles (nearest rank) and the markdown
// table: podroute, the anchor and their ratio, as bench/policy reports.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::daemons::Kind;

pub struct DutResult {
    pub kind: Kind,
    /// Per block: Allocate answer → in all other kernels, ms.
    pub blocks: Vec<f64>,
    /// Per block: Allocate answer → in the first other kernel, ms.
    pub first: Vec<f64>,
    /// Per block: Allocate called → in all other kernels, ms (includes
    /// ipamd's commit).
    pub from_call: Vec<f64>,
    pub block_timeouts: usize,
    /// Per observer and repetition: link down → the node's blocks gone, ms.
    pub bfd: Vec<f64>,
    pub bfd_timeouts: usize,
    pub gr: Vec<GrSample>,
    pub overruns: u64,
    pub notes: Vec<String>,
}

pub struct GrSample {
    pub sent: u64,
    pub received: u64,
    pub first_established: Option<Duration>,
    pub all_established: Option<Duration>,
}

impl DutResult {
    pub fn new(kind: Kind) -> DutResult {
        DutResult {
            kind,
            blocks: Vec::new(),
            first: Vec::new(),
            from_call: Vec::new(),
            block_timeouts: 0,
            bfd: Vec::new(),
            bfd_timeouts: 0,
            gr: Vec::new(),
            overruns: 0,
            notes: Vec::new(),
        }
    }

    pub fn add_block(&mut self, called: Instant, answered: Instant, seen: &[Instant]) {
        let ms: Vec<f64> = seen.iter().map(|t| self::ms(answered, *t)).collect();
        let last = seen.iter().max().copied().unwrap_or(answered);
        self.from_call.push(self::ms(called, last));
        self.blocks
            .push(ms.iter().copied().fold(f64::MIN, f64::max));
        self.first.push(ms.iter().copied().fold(f64::MAX, f64::min));
    }
}

/// `to - from` in ms; negative if `to` came first (a route can arrive
/// before the Allocate answer has reached the driver).
pub fn ms(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(from.duration_since(to).as_secs_f64() * 1e3),
    }
}

/// Nearest-rank percentile.
pub fn pct(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank - 1).copied()
}

/// "N packets transmitted, M received" from ping's summary.
pub fn ping_counts(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

/// The icmp_seq numbers `ping -D -O` reported unanswered, with the Unix
/// time of each report.
pub fn ping_lost(text: &str) -> Vec<(u64, f64)> {
    text.lines()
        .filter(|l| l.contains("no answer yet"))
        .filter_map(|l| {
            let time = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((seq, time))
        })
        .collect()
}

/// "3-7, 12" for [3, 4, 5, 6, 7, 12].
pub fn ranges(values: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            values[i].to_string()
        } else {
            format!("{}-{}", values[i], values[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

pub fn print_dut(r: &DutResult) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    eprintln!(
        "   {}: new block everywhere p50 {} p99 {} max {} ms ({} blocks, {} timeouts); BFD p50 {} max {} ms",
        r.kind.label(),
        f(pct(&r.blocks, 50.0)),
        f(pct(&r.blocks, 99.0)),
        f(pct(&r.blocks, 100.0)),
        r.blocks.len(),
        r.block_timeouts,
        f(pct(&r.bfd, 50.0)),
        f(pct(&r.bfd, 100.0)),
    );
}

/// The report: one column per speaker, and podroute/anchor where both ran.
pub fn markdown(results: &[DutResult], commit: &str, nodes: usize, blocks: usize) -> String {
    let mut s = String::new();
    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%MZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let bird = std::process::Command::new("bird")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "# bench/converge {now}: {nodes} nodes, {blocks} blocks\n\n{cores} cores, kernel {}, {bird}, podroute at {commit}, load average at the end {}\n",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let anchor = results.iter().position(|r| r.kind == Kind::Bird);
    let _ = write!(s, "| measure |");
    for r in results {
        let _ = write!(s, " {} |", r.kind.label());
    }
    let ratios: Vec<usize> = match anchor {
        Some(a) => (0..results.len()).filter(|i| *i != a).collect(),
        None => Vec::new(),
    };
    for i in &ratios {
        let _ = write!(s, " {}/anchor |", short(results[*i].kind));
    }
    s.push_str("\n|---|");
    for _ in 0..results.len() + ratios.len() {
        s.push_str("---|");
    }
    s.push('\n');
    let row =
        |s: &mut String, name: &str, value: &dyn Fn(&DutResult) -> Option<f64>, digits: usize| {
            // Counts and signed minima have no meaningful ratio.
            let count = (digits == 0 && !name.contains(" ms")) || name.contains(" min ms");
            let _ = write!(s, "| {name} |");
            for r in results {
                let _ = write!(
                    s,
                    " {} |",
                    value(r).map_or("-".into(), |v| format!("{v:.digits$}"))
                );
            }
            for i in &ratios {
                let ratio = match (value(&results[*i]), anchor.and_then(|a| value(&results[a]))) {
                    _ if count => String::new(),
                    (Some(x), Some(y)) if y.abs() > f64::EPSILON => format!("{:.2}x", x / y),
                    _ => "-".into(),
                };
                let _ = write!(s, " {ratio} |");
            }
            s.push('\n');
        };
    let others = nodes.saturating_sub(1);
    row(
        &mut s,
        &format!("new block → all {others} other kernels, p50 ms"),
        &|r| pct(&r.blocks, 50.0),
        1,
    );
    row(
        &mut s,
        &format!("new block → all {others} other kernels, p99 ms"),
        &|r| pct(&r.blocks, 99.0),
        1,
    );
    row(
        &mut s,
        &format!("new block → all {others} other kernels, max ms"),
        &|r| pct(&r.blocks, 100.0),
        1,
    );
    row(
        &mut s,
        &format!("Allocate called → all {others} other kernels, p50 ms"),
        &|r| pct(&r.from_call, 50.0),
        1,
    );
    row(
        &mut s,
        &format!("Allocate called → all {others} other kernels, p99 ms"),
        &|r| pct(&r.from_call, 99.0),
        1,
    );
    row(
        &mut s,
        "new block → first other kernel, p50 ms",
        &|r| pct(&r.first, 50.0),
        1,
    );
    row(
        &mut s,
        "new block → first other kernel, min ms (negative: before the answer reached the driver)",
        &|r| pct(&r.first, 0.0),
        1,
    );
    row(
        &mut s,
        "blocks measured",
        &|r| Some(r.blocks.len() as f64),
        0,
    );
    row(
        &mut s,
        "blocks not everywhere within 30 s",
        &|r| Some(r.block_timeouts as f64),
        0,
    );
    row(
        &mut s,
        "BFD 300/300/3: link down → blocks gone from a kernel, p50 ms",
        &|r| pct(&r.bfd, 50.0),
        0,
    );
    row(
        &mut s,
        "BFD 300/300/3: link down → blocks gone from a kernel, max ms",
        &|r| pct(&r.bfd, 100.0),
        0,
    );
    row(
        &mut s,
        "BFD repetitions not gone everywhere within 10 s",
        &|r| Some(r.bfd_timeouts as f64),
        0,
    );
    row(
        &mut s,
        "GR: pings lost over a SIGKILL + restart (all repetitions)",
        &|r| {
            (!r.gr.is_empty()).then(|| {
                r.gr.iter()
                    .map(|g| (g.sent - g.received.min(g.sent)) as f64)
                    .sum()
            })
        },
        0,
    );
    row(
        &mut s,
        "GR: pings sent (all repetitions)",
        &|r| (!r.gr.is_empty()).then(|| r.gr.iter().map(|g| g.sent as f64).sum()),
        0,
    );
    let median = |v: Vec<f64>| pct(&v, 50.0);
    row(
        &mut s,
        "GR: restart → first session Established, median s",
        &|r| {
            median(
                r.gr.iter()
                    .filter_map(|g| g.first_established)
                    .map(|d| d.as_secs_f64())
                    .collect(),
            )
        },
        2,
    );
    row(
        &mut s,
        "GR: restart → all sessions Established, median s",
        &|r| {
            median(
                r.gr.iter()
                    .filter_map(|g| g.all_established)
                    .map(|d| d.as_secs_f64())
                    .collect(),
            )
        },
        2,
    );
    row(
        &mut s,
        "route notifications lost (ENOBUFS)",
        &|r| Some(r.overruns as f64),
        0,
    );
    for r in results {
        for note in &r.notes {
            let _ = writeln!(s, "\n- {}: {note}", short(r.kind));
        }
    }
    s
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Cluster => "podroute",
        Kind::Peers => "podroute (files)",
        Kind::Bird => "anchor",
    }
}
