// Prometheus metrics without a registry: each daemon keeps its counters and
// histograms where the work happens (atomics), and writes every family at
// scrape time from its own state, so a gauge can never drift from what the
// admin API shows. This module is the text exposition format (version 0.0.4)
// writer, a lock-free histogram, and a parser the tests and podctl use.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What Prometheus calls a family's TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Upper bounds (seconds) for latencies from tens of microseconds (a route
/// write, an in-memory allocation) to seconds (a full policy sync).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// One scrape's text. Families are written one after another: `family`
/// first, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: its HELP and TYPE lines. `name` is the family's name;
    /// a counter's is given without `_total` and written with it, since in
    /// the text format (0.0.4) the TYPE line names the sample itself
    /// (`NAME_total`), or parsers such as Prometheus' own take the samples
    /// for another, untyped family.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        let name = match kind {
            MetricType::Counter if !name.ends_with("_total") => format!("{name}_total"),
            _ => name.to_string(),
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        self.text.push(' ');
        write_value(&mut self.text, value);
        self.text.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: MetricType, value: f64) {
        self.family(name, help, kind);
        let sample = match kind {
            MetricType::Counter => format!("{name}_total"),
            _ => name.to_string(),
        };
        self.sample(&sample, &[], value);
    }

    /// A histogram's samples (`_bucket` per bound and `+Inf`, `_sum`,
    /// `_count`) under `name`, which `family` started as a histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let snapshot = histogram.snapshot();
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (bound, count) in snapshot.bounds.iter().zip(&snapshot.counts) {
            cumulative += count;
            let mut le = String::new();
            write_value(&mut le, *bound);
            self.text.push_str(&bucket);
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        self.text.push_str(&bucket);
        write_labels(&mut self.text, labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", snapshot.count);
        self.sample(&format!("{name}_sum"), labels, snapshot.sum_seconds);
        self.sample(&format!("{name}_count"), labels, snapshot.count as f64);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let le = le.map(|le| ("le", le));
    for (name, value) in labels.iter().copied().chain(le) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A latency histogram with fixed bounds, updated with relaxed atomics from
/// any task; a scrape reads a near-consistent snapshot.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

/// A histogram's figures at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    /// Per bound, not cumulative; observations above the last bound are
    /// `count` minus their sum.
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    /// `bounds` must be increasing (seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// A histogram with `LATENCY_BUCKETS`.
    pub fn latency() -> Self {
        Self::new(LATENCY_BUCKETS)
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let all: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            counts: all[..self.bounds.len()].to_vec(),
            count: all.iter().sum(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::latency()
    }
}

/// Process figures every daemon exports: `podroute_build_info`, resident
/// memory, CPU seconds and start time (from /proc/self; left out where
/// unreadable).
pub fn write_process_metrics(out: &mut Exposition, daemon: &str, version: &str, started: f64) {
    out.family(
        "podroute_build_info",
        "The daemon and its version; always 1.",
        MetricType::Gauge,
    );
    out.sample(
        "podroute_build_info",
        &[("daemon", daemon), ("version", version)],
        1.0,
    );
    out.single(
        "podroute_process_start_time_seconds",
        "When the daemon started, seconds since the Unix epoch.",
        MetricType::Gauge,
        started,
    );
    if let Some(bytes) = resident_bytes() {
        out.single(
            "podroute_process_resident_memory_bytes",
            "Resident set size.",
            MetricType::Gauge,
            bytes as f64,
        );
    }
    if let Some(seconds) = cpu_seconds() {
        out.single(
            "podroute_process_cpu_seconds",
            "User and system CPU time spent.",
            MetricType::Counter,
            seconds,
        );
    }
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces and ends at the
    // last ')': utime and stime are the 14th and 15th fields overall.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI we build for.
    Some((utime + stime) / 100.0)
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape: each family's TYPE, and every sample in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub types: BTreeMap<String, String>,
    pub help: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of the one sample `find` gives, if exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.find(name, labels);
        let first = found.next()?;
        match found.next() {
            Some(_) => None,
            None => Some(first.value),
        }
    }
}

/// Why a scrape's text is not valid exposition format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Parses the text exposition format strictly: every sample must belong to
/// a family declared by a TYPE line before it, names and label names must
/// be valid, values must be numbers.
pub fn parse(text: &str) -> Result<Scrape, ParseError> {
    let mut scrape = Scrape::default();
    for (index, line) in text.lines().enumerate() {
        let fail = |reason: String| ParseError {
            line: index + 1,
            reason,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_name(name) {
                        return Err(fail(format!("bad metric name {name:?}")));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(fail(format!("unknown type {kind:?}")));
                    }
                    if scrape.types.insert(name.into(), kind.into()).is_some() {
                        return Err(fail(format!("{name} declared twice")));
                    }
                }
                (Some("HELP"), Some(name), help) => {
                    scrape
                        .help
                        .insert(name.into(), help.unwrap_or_default().into());
                }
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(fail)?;
        if family_of(&sample.name, &scrape.types).is_none() {
            return Err(fail(format!("{} has no TYPE line before it", sample.name)));
        }
        scrape.samples.push(sample);
    }
    Ok(scrape)
}

/// The declared family a sample name belongs to: itself (a counter's TYPE
/// names its `_total` sample), or for `x_bucket`/`x_sum`/`x_count` the
/// histogram `x`.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|kind| kinds.contains(&kind.as_str()))
        {
            return Some(base);
        }
    }
    None
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {line:?}"))?;
            let label = &rest[..eq];
            if !valid_name(label) || label.contains(':') {
                return Err(format!("bad label name {label:?}"));
            }
            let quoted = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted label value in {line:?}"))?;
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("unterminated label value in {line:?}")),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated label value in {line:?}")),
                }
            };
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("label {label} twice in {line:?}"));
            }
            rest = &quoted[end + 1..];
        }
    }
    let mut words = rest.split_whitespace();
    let value = words
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_text_parses_back() {
        let mut out = Exposition::new();
        out.family("podroute_x", "An x.\nTwo lines.", MetricType::Counter);
        out.sample(
            "podroute_x_total",
            &[("peer", "10.0.0.1"), ("type", "a\"b\\c")],
            3.0,
        );
        out.single("podroute_y", "A y.", MetricType::Gauge, 0.5);
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(1));
        out.family("podroute_h_seconds", "A latency.", MetricType::Histogram);
        out.histogram("podroute_h_seconds", &[("op", "add")], &histogram);
        let scrape = parse(&out.finish()).expect("our own text parses");
        assert_eq!(
            scrape.value("podroute_x_total", &[("type", "a\"b\\c")]),
            Some(3.0)
        );
        assert_eq!(scrape.value("podroute_y", &[]), Some(0.5));
        assert_eq!(scrape.types["podroute_h_seconds"], "histogram");
        assert_eq!(scrape.types["podroute_x_total"], "counter");
        assert_eq!(scrape.help["podroute_x_total"], "An x.\\nTwo lines.");
        let buckets: Vec<f64> = scrape
            .find("podroute_h_seconds_bucket", &[("op", "add")])
            .map(|s| s.value)
            .collect();
        assert_eq!(buckets, [1.0, 2.0, 3.0]);
        assert_eq!(
            scrape.value("podroute_h_seconds_bucket", &[("le", "+Inf")]),
            Some(3.0)
        );
        let sum = scrape.value("podroute_h_seconds_sum", &[]).unwrap_or(0.0);
        assert!((sum - 1.0055).abs() < 1e-9, "{sum}");
        assert_eq!(scrape.value("podroute_h_seconds_count", &[]), Some(3.0));
    }

    #[test]
    fn bounds_are_inclusive() {
        let histogram = Histogram::new(&[0.001]);
        histogram.observe(Duration::from_millis(1));
        assert_eq!(histogram.snapshot().counts, [1]);
    }

    #[test]
    fn refuses_what_prometheus_would() {
        for (text, why) in [
            ("podroute_a 1\n", "no TYPE"),
            ("# TYPE podroute_a gauge\npodroute_a{x=1} 1\n", "unquoted"),
            (
                "# TYPE podroute_a gauge\npodroute_a{x=\"1} 1\n",
                "unterminated",
            ),
            ("# TYPE podroute_a gauge\npodroute_a one\n", "bad value"),
            ("# TYPE 9a gauge\n", "bad name"),
            (
                "# TYPE podroute_a gauge\n# TYPE podroute_a gauge\n",
                "twice",
            ),
            (
                "# TYPE podroute_a counter\npodroute_a_bucket 1\n",
                "wrong suffix",
            ),
            (
                "# TYPE podroute_a counter\npodroute_a_total 1\n",
                "a counter's TYPE must name its _total sample",
            ),
        ] {
            assert!(parse(text).is_err(), "{why}: {text:?} was accepted");
        }
    }

    #[test]
    fn process_metrics_are_there() {
        let mut out = Exposition::new();
        write_process_metrics(&mut out, "podroute-test", "0.1.0", 1.0);
        let scrape = parse(&out.finish()).expect("parses");
        assert_eq!(
            scrape.value("podroute_build_info", &[("daemon", "podroute-test")]),
            Some(1.0)
        );
        assert!(
            scrape
                .value("podroute_process_resident_memory_bytes", &[])
                .unwrap_or(0.0)
                > 0.0
        );
        assert!(
            scrape
                .value("podroute_process_cpu_seconds_total", &[])
                .is_some()
        );
    }
}
