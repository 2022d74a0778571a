// The driver of bench/cni: runs a CNI plugin the way a runtime does (one
// process per call, CNI_* environment, config on stdin) for N prepared pod
// namespaces, and reports ADD and DEL latency (p50/p99, one call at a time)
// and pods per second with C calls in flight. Run it inside the node's
// network namespace; the plugin under test inherits it.
//
//   cni_bench --plugin PATH --conf FILE --pods N --netns-prefix P
//             [--concurrency C] [--label NAME] [--cni-path DIR]

#![allow(clippy::unwrap_used)] // a benchmark driver: a failure ends the run

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Options {
    plugin: String,
    conf: String,
    pods: usize,
    netns_prefix: String,
    concurrency: usize,
    label: String,
    cni_path: String,
}

fn main() {
    let options = parse_args();
    let conf = std::fs::read_to_string(&options.conf).unwrap();

    // One call at a time: latency.
    let add = (0..options.pods)
        .map(|i| call(&options, &conf, "ADD", i))
        .collect::<Vec<_>>();
    let del = (0..options.pods)
        .map(|i| call(&options, &conf, "DEL", i))
        .collect::<Vec<_>>();

    // C in flight: throughput, as kubelet starting many pods at once.
    let started = Instant::now();
    in_parallel(&options, |i| {
        call(&options, &conf, "ADD", i);
    });
    let add_rate = options.pods as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    in_parallel(&options, |i| {
        call(&options, &conf, "DEL", i);
    });
    let del_rate = options.pods as f64 / started.elapsed().as_secs_f64();

    let (add50, add99) = percentiles(add);
    let (del50, del99) = percentiles(del);
    println!(
        "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
        options.label,
        ms(add50),
        ms(add99),
        ms(del50),
        ms(del99),
        add_rate,
        del_rate
    );
}

/// Runs `work(i)` for every pod index on `concurrency` threads.
fn in_parallel(options: &Options, work: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= options.pods {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
}

/// One plugin call for pod `i`; panics when it fails (a benchmark of
/// failing calls measures nothing).
fn call(options: &Options, conf: &str, command: &str, i: usize) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(&options.plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", format!("bench-{i}"))
        .env(
            "CNI_NETNS",
            format!("/run/netns/{}{i}", options.netns_prefix),
        )
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &options.cni_path)
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-{i}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{} {command} pod {i} failed: {}{}",
        options.label,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn parse_args() -> Options {
    let mut options = Options {
        plugin: String::new(),
        conf: String::new(),
        pods: 100,
        netns_prefix: String::new(),
        concurrency: 8,
        label: "plugin".to_owned(),
        cni_path: "/opt/cni/bin".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--plugin" => options.plugin = value,
            "--conf" => options.conf = value,
            "--pods" => options.pods = value.parse().unwrap(),
            "--netns-prefix" => options.netns_prefix = value,
            "--concurrency" => options.concurrency = value.parse().unwrap(),
            "--label" => options.label = value,
            "--cni-path" => options.cni_path = value,
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !options.plugin.is_empty() && !options.conf.is_empty(),
        "--plugin and --conf are required"
    );
    options
}
