// The shared half of bench/kube's drivers, included with #[path] by
// policy-agent/examples/kube_bench.rs (the policy agent's source) and
// ipam/examples/kube_bench.rs (ipamd's Pod and Node stores); each adds only
// how its source is started. A cluster of realistic objects (as a real API
// server returns them: managedFields, last-applied annotations, whole pod
// specs and statuses, nodes' image lists) is served by the fake API server
// of podroute_k8s::fake, in this process: no real API server can run on
// this machine. One point per process:
//
//   kube_bench point --mode ours|naive|none --pods N --nodes N
//                    --namespaces N --policies N [--changes K]
//                    prints one JSON line
//   kube_bench report FILE.jsonl [--machine TEXT]
//                    prints the markdown tables of bench/README.md
//
// Memory. The fake holds every object as a serde_json::Value in the same
// process, so the figures are differences: after the fake is loaded (and
// the change log the loading wrote is dropped, and malloc has given freed
// memory back with malloc_trim), VmRSS and the live heap are read and the
// peak (VmHWM, through /proc/self/clear_refs) is reset; then the source
// starts, and once its first rebuild is done and the heap has settled,
// VmRSS, VmHWM and the live heap are read again. The live heap is counted
// exactly by this binary's global allocator (bytes asked of malloc, without
// malloc's own overhead per block); VmRSS is what the kernel charges, with
// whatever malloc keeps of freed memory. Mode `none` lists every page of
// every kind through the same client and drops it: the fake's and the
// transport's share of the time, and the memory listing leaves behind
// without any store.
//
// bench/README.md ("Kubernetes sources") says what the figures mean.

#![allow(unsafe_code)] // the counting allocator and malloc_trim

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kube::Client;
use kube::api::ListParams;
use podroute_k8s::fake::{FakeApi, FakeKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

// ---------------------------------------------------------------------------
// The live heap, counted.

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not freed.
pub fn live_heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Hands freed memory back to the kernel (glibc).
fn malloc_trim() {
    // SAFETY: malloc_trim only releases free memory; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A `Vm*` line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}

/// Starts the peaks afresh: VmHWM (clear_refs 5, Linux 4.0+) and the heap's.
fn reset_peaks() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
    PEAK.store(live_heap(), Ordering::Relaxed);
    Ok(())
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------------------
// Command line.

#[derive(Parser)]
#[command(about = "bench/kube's driver: see bench/README.md, \"Kubernetes sources\"")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measures one point; prints a JSON line.
    Point(PointArgs),
    /// Prints one generated object of each kind, as the fake serves it.
    Sample,
    /// Prints the markdown tables of a run's JSON lines.
    Report {
        file: PathBuf,
        /// The machine, for the table's heading.
        #[arg(long, default_value = "")]
        machine: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The source as the daemon runs it.
    Ours,
    /// The same watchers, keeping whole objects.
    Naive,
    /// No source: every page listed and dropped.
    None,
}

#[derive(Debug, Clone, clap::Args)]
struct PointArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    pods: usize,
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    #[arg(long, default_value_t = 200)]
    namespaces: usize,
    #[arg(long, default_value_t = 300)]
    policies: usize,
    /// Single pod label changes timed (there and back).
    #[arg(long, default_value_t = 9)]
    changes: usize,
    /// Wait between two changes, ms (longer than the source's debounce, so
    /// that each change is rebuilt at once).
    #[arg(long, default_value_t = 700)]
    gap_ms: u64,
}

/// A source measured.
pub trait Scenario {
    /// In the report.
    const NAME: &'static str;
    /// What the source watches: the fake serves and holds only these.
    const KINDS: &'static [FakeKind];
    /// Starts the source on `client`, keeping whole objects when `naive`.
    fn start(client: Client, naive: bool) -> Started;
}

/// A started source.
pub struct Started {
    /// Bumped after each rebuild (the policy agent: each snapshot
    /// published).
    pub rebuilt: watch::Receiver<u64>,
    /// Heap bytes of what the source has built from its stores and holds
    /// besides them (the policy agent's published snapshot), measured by
    /// cloning it; 0 when nothing.
    pub published_bytes: Box<dyn Fn() -> usize + Send>,
}

pub fn main<S: Scenario>() -> Result<()> {
    match Cli::parse().command {
        Command::Point(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let point = runtime.block_on(measure::<S>(&args))?;
            println!("{}", serde_json::to_string(&point)?);
            Ok(())
        }
        Command::Sample => {
            let cluster = Cluster {
                pods: 1000,
                nodes: 100,
                namespaces: 20,
                policies: 300,
            };
            for object in [
                namespace(&cluster, 7),
                pod(&cluster, 123),
                network_policy(&cluster, 64),
                node(&cluster, 42),
            ] {
                println!("{}", serde_json::to_string_pretty(&object)?);
            }
            Ok(())
        }
        Command::Report { file, machine } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let points = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<Point>, _>>()
                .with_context(|| format!("parsing {}", file.display()))?;
            print!("{}", report(&points, &machine));
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// One point.

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    scenario: String,
    mode: Mode,
    pods: usize,
    nodes: usize,
    namespaces: usize,
    policies: usize,
    /// Mean size of one object as JSON, by kind.
    json_bytes: BTreeMap<String, f64>,
    /// The 1-minute load average when the point started.
    load: f64,
    /// VmRSS with the fake loaded, before the source starts.
    fake_rss_mb: f64,
    /// Start → first rebuild (every kind listed completely).
    first_ms: f64,
    /// VmRSS after the first rebuild, once the heap settled and malloc
    /// gave back what it could, over `fake_rss_mb`.
    rss_mb: f64,
    /// The same before malloc gave back anything: with what it keeps of the
    /// list's garbage (the fake's own included).
    rss_kept_mb: f64,
    /// VmHWM since the start, over `fake_rss_mb`.
    peak_rss_mb: f64,
    /// Live heap after the first rebuild over the live heap before.
    heap_mb: f64,
    /// Highest live heap since the start, over the live heap before.
    peak_heap_mb: f64,
    /// Of `heap_mb`: what the source built and holds besides its stores.
    published_mb: f64,
    /// The fake's put of one changed pod → the next rebuild, each change.
    rebuild_ms: Vec<f64>,
}

async fn measure<S: Scenario>(args: &PointArgs) -> Result<Point> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let cluster = Cluster {
        pods: args.pods,
        nodes: args.nodes.max(1),
        namespaces: args.namespaces.max(4),
        policies: args.policies,
    };
    let (api, client) = FakeApi::start(S::KINDS);
    let json_bytes = load_cluster(&api, S::KINDS, &cluster)?;
    // The loading wrote every object into the fake's change log too (for
    // watches from older versions); nothing will ask for those.
    for kind in S::KINDS {
        api.expire_watches(*kind);
    }
    malloc_trim();
    let fake_rss = status_kib("VmRSS")?;
    let heap_before = live_heap();
    reset_peaks()?;

    let started_at = Instant::now();
    let started = match args.mode {
        Mode::Ours => S::start(client, false),
        Mode::Naive => S::start(client, true),
        Mode::None => list_only(client, S::KINDS),
    };
    let mut rebuilt = started.rebuilt;
    tokio::time::timeout(
        Duration::from_secs(600),
        rebuilt.wait_for(|generation| *generation > 0),
    )
    .await
    .context("no first rebuild within 600 s")?
    .context("the source stopped")?;
    let first = started_at.elapsed();

    settle().await;
    let rss_kept = status_kib("VmRSS")?;
    let hwm = status_kib("VmHWM")?;
    malloc_trim();
    let rss = status_kib("VmRSS")?;
    let heap = live_heap();
    let peak_heap = PEAK.load(Ordering::Relaxed);
    let published = (started.published_bytes)();

    let mut rebuild_ms = Vec::new();
    if args.mode != Mode::None {
        for change in 0..args.changes {
            tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
            // Pods spread over the cluster, each changed there and back.
            let index = (change / 2 * 7919) % cluster.pods.max(1);
            let (namespace, name) = cluster.pod_key(index);
            let mut pod = api
                .object(FakeKind::PODS, &namespace, &name)
                .with_context(|| format!("pod {namespace}/{name} is not in the fake"))?;
            let version = if change % 2 == 0 { "v2" } else { "v1" };
            pod["metadata"]["labels"]["version"] = json!(version);
            rebuilt.borrow_and_update();
            let put_at = Instant::now();
            api.put(FakeKind::PODS, pod);
            tokio::time::timeout(Duration::from_secs(60), rebuilt.changed())
                .await
                .context("no rebuild within 60 s of a label change")?
                .context("the source stopped")?;
            rebuild_ms.push(put_at.elapsed().as_secs_f64() * 1000.0);
        }
    }

    Ok(Point {
        scenario: S::NAME.to_owned(),
        mode: args.mode,
        pods: cluster.pods,
        nodes: cluster.nodes,
        namespaces: cluster.namespaces,
        policies: cluster.policies,
        json_bytes,
        load,
        fake_rss_mb: fake_rss as f64 / 1024.0,
        first_ms: first.as_secs_f64() * 1000.0,
        rss_mb: (rss as f64 - fake_rss as f64) / 1024.0,
        rss_kept_mb: (rss_kept as f64 - fake_rss as f64) / 1024.0,
        peak_rss_mb: (hwm as f64 - fake_rss as f64) / 1024.0,
        heap_mb: mib(heap as f64 - heap_before as f64),
        peak_heap_mb: mib(peak_heap as f64 - heap_before as f64),
        published_mb: mib(published as f64),
        rebuild_ms,
    })
}

/// Waits until the live heap has held within 0.5 % for 300 ms (at most
/// 10 s): the watches have started and the list's garbage is freed.
async fn settle() {
    let mut last = live_heap();
    let mut stable = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = live_heap();
        if now.abs_diff(last) <= last / 200 {
            stable += 1;
            if stable >= 3 {
                return;
            }
        } else {
            stable = 0;
        }
        last = now;
    }
}

/// Mode `none`: every page of every kind through the client, each read
/// whole and parsed only for its continue token, then dropped.
fn list_only(client: Client, kinds: &'static [FakeKind]) -> Started {
    #[derive(Deserialize)]
    struct Page {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    }
    let (done, rebuilt) = watch::channel(0);
    tokio::spawn(async move {
        for kind in kinds {
            let mut params = ListParams::default().limit(500);
            loop {
                let request = kube::core::Request::new(kind.path).list(&params);
                let Ok(request) = request else {
                    return;
                };
                let Ok(text) = client.request_text(request).await else {
                    return;
                };
                let Ok(page) = serde_json::from_str::<Page>(&text) else {
                    return;
                };
                match page.metadata.continue_ {
                    Some(token) if !token.is_empty() => params = params.continue_token(&token),
                    _ => break,
                }
            }
        }
        done.send_replace(1);
        // Held open: a closed channel reads as a stopped source.
        std::future::pending::<()>().await;
    });
    Started {
        rebuilt,
        published_bytes: Box::new(|| 0),
    }
}

// ---------------------------------------------------------------------------
// The cluster.

/// What the fake serves.
#[derive(Debug, Clone, Copy)]
struct Cluster {
    pods: usize,
    nodes: usize,
    namespaces: usize,
    policies: usize,
}

/// The cluster's own namespaces; the rest are applications'.
const SYSTEM_NAMESPACES: [&str; 4] = ["kube-system", "monitoring", "ingress-nginx", "cert-manager"];
const APPS: [&str; 5] = ["frontend", "api", "worker", "db", "cache"];
const TEAMS: [&str; 6] = [
    "payments", "search", "identity", "catalog", "growth", "platform",
];

impl Cluster {
    fn namespace(&self, index: usize) -> String {
        match SYSTEM_NAMESPACES.get(index) {
            Some(name) => (*name).to_owned(),
            None => format!("app-{index:04}"),
        }
    }

    fn node(&self, index: usize) -> String {
        format!("node-{index:04}")
    }

    /// Pod `index`: its namespace, deployment and name. Pods are spread
    /// evenly over the namespaces; in a namespace they cycle through the
    /// deployments.
    fn pod_place(&self, index: usize) -> (usize, &'static str, String, String) {
        let namespace = index % self.namespaces;
        let slot = index / self.namespaces;
        let app = APPS[slot % APPS.len()];
        let replica_set = alnum(hash(&[namespace as u64, slot as u64 % 5, 1]), 10);
        let name = format!("{app}-{replica_set}-{}", alnum(hash(&[index as u64, 2]), 5));
        (namespace, app, replica_set, name)
    }

    fn pod_key(&self, index: usize) -> (String, String) {
        let (namespace, _, _, name) = self.pod_place(index);
        (self.namespace(namespace), name)
    }
}

/// Puts every object of `kinds` into the fake; returns the mean JSON size
/// of each kind's objects.
fn load_cluster(
    api: &FakeApi,
    kinds: &[FakeKind],
    cluster: &Cluster,
) -> Result<BTreeMap<String, f64>> {
    let mut sizes = BTreeMap::new();
    for kind in kinds {
        let count = match kind.kind {
            "Pod" => cluster.pods,
            "Node" => cluster.nodes,
            "Namespace" => cluster.namespaces,
            "NetworkPolicy" => cluster.policies,
            other => bail!("the bench has no {other} objects"),
        };
        let mut bytes = 0usize;
        for index in 0..count {
            let object = match kind.kind {
                "Pod" => pod(cluster, index),
                "Node" => node(cluster, index),
                "Namespace" => namespace(cluster, index),
                _ => network_policy(cluster, index),
            };
            bytes += serde_json::to_vec(&object)?.len();
            api.put(*kind, object);
        }
        sizes.insert(kind.kind.to_owned(), bytes as f64 / count.max(1) as f64);
    }
    Ok(sizes)
}

/// splitmix64 over `parts`: deterministic names, hashes and sizes.
fn hash(parts: &[u64]) -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for part in parts {
        state ^= *part;
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        state = z ^ (z >> 31);
    }
    state
}

/// `len` characters of Kubernetes' generated-name alphabet.
fn alnum(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = hash(&[state]);
            char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize])
        })
        .collect()
}

/// `len` lowercase hex digits.
fn hex(seed: u64, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    let mut state = seed;
    while text.len() < len {
        state = hash(&[state]);
        let _ = write!(text, "{state:016x}");
    }
    text.truncate(len);
    text
}

fn uuid(seed: u64) -> String {
    let digits = hex(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &digits[0..8],
        &digits[8..12],
        &digits[12..16],
        &digits[16..20],
        &digits[20..32]
    )
}

fn time(seed: u64) -> String {
    format!(
        "2026-0{}-{:02}T{:02}:{:02}:{:02}Z",
        1 + seed % 9,
        1 + seed % 28,
        seed % 24,
        seed / 7 % 60,
        seed / 11 % 60
    )
}

/// A managedFields entry's fieldsV1 for `value`, as the API server tracks
/// it: a map per object ("f:name", with "." for the object itself), lists
/// of named or keyed objects by key ("k:{...}"), other lists and scalars
/// atomic.
fn fields_v1(value: &Value, top: bool) -> Value {
    match value {
        Value::Object(fields) => {
            let mut out = serde_json::Map::new();
            if !top {
                out.insert(".".into(), json!({}));
            }
            for (name, field) in fields {
                out.insert(format!("f:{name}"), fields_v1(field, false));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = serde_json::Map::new();
            for item in items {
                let key = ["name", "type", "ip", "containerPort", "mountPath", "key"]
                    .iter()
                    .find_map(|key| {
                        let value = item.get(*key)?;
                        let mut one = serde_json::Map::new();
                        one.insert((*key).to_owned(), value.clone());
                        Some(Value::Object(one))
                    });
                if let Some(key) = key {
                    out.insert(format!("k:{key}"), fields_v1(item, false));
                }
            }
            if !out.is_empty() {
                out.insert(".".into(), json!({}));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

fn managed(manager: &str, operation: &str, subresource: Option<&str>, fields: Value) -> Value {
    let mut entry = json!({
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "manager": manager,
        "operation": operation,
        "time": time(hash(&[manager.len() as u64, 9]) % 100_000),
    });
    if let Some(subresource) = subresource {
        entry["subresource"] = json!(subresource);
    }
    entry
}

fn pod_ip(index: usize) -> String {
    let address = 0x0a40_0000u32 + index as u32 + 1;
    std::net::Ipv4Addr::from(address).to_string()
}

fn node_ip(index: usize) -> String {
    format!("192.168.{}.{}", index / 250, index % 250 + 1)
}

fn app_port(app: &str) -> (u16, &'static str) {
    match app {
        "db" => (5432, "postgres"),
        "cache" => (6379, "redis"),
        "api" => (8080, "grpc"),
        _ => (8080, "http"),
    }
}

fn container(app: &str, team: &str, index: usize) -> Value {
    let (port, port_name) = app_port(app);
    json!({
        "name": app,
        "image": format!("registry.example.com/{team}/{app}:1.{}.{}", index % 7, index % 13),
        "imagePullPolicy": "IfNotPresent",
        "args": [format!("--config=/etc/{app}/config.yaml"), "--log-level=info"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "LOG_FORMAT", "value": "json"}
        ],
        "ports": [
            {"containerPort": port, "name": port_name, "protocol": "TCP"},
            {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}
        ],
        "resources": {
            "limits": {"cpu": "1", "memory": "512Mi"},
            "requests": {"cpu": "250m", "memory": "256Mi"}
        },
        "livenessProbe": {
            "failureThreshold": 3,
            "httpGet": {"path": "/healthz", "port": "metrics", "scheme": "HTTP"},
            "initialDelaySeconds": 10, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1
        },
        "readinessProbe": {
            "failureThreshold": 3,
            "httpGet": {"path": "/readyz", "port": "metrics", "scheme": "HTTP"},
            "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 1
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": format!("/etc/{app}"), "name": "config", "readOnly": true},
            {"mountPath": "/tmp", "name": "tmp"},
            {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access", "readOnly": true}
        ]
    })
}

fn sidecar() -> Value {
    json!({
        "name": "log-shipper",
        "image": "cr.fluentbit.io/fluent/fluent-bit:3.1.9",
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}
        ],
        "ports": [{"containerPort": 2020, "name": "fb-metrics", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access", "readOnly": true}
        ]
    })
}

fn pod(cluster: &Cluster, index: usize) -> Value {
    let (ns_index, app, replica_set, name) = cluster.pod_place(index);
    let namespace = cluster.namespace(ns_index);
    let team = TEAMS[ns_index % TEAMS.len()];
    let node_index = hash(&[index as u64, 3]) as usize % cluster.nodes;
    let node = cluster.node(node_index);
    let host_ip = node_ip(node_index);
    let ip = pod_ip(index);
    let tier = if app == "frontend" { "web" } else { "backend" };
    let seed = index as u64;
    let started = time(hash(&[seed, 4]) % 100_000);
    let containers = vec![container(app, team, index), sidecar()];
    let labels = json!({
        "app": app,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": namespace,
        "pod-template-hash": replica_set,
        "team": team,
        "tier": tier,
        "version": "v1"
    });
    let spec = json!({
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": true,
        "nodeName": node,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {"fsGroup": 2000, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccount": app,
        "serviceAccountName": app,
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}
        ],
        "volumes": [
            {"name": "config", "configMap": {"defaultMode": 420, "name": format!("{app}-config")}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}
            ]}}
        ]
    });
    let condition = |kind: &str| json!({"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": kind});
    let container_status = |container: &Value, id_seed: u64| {
        let image = container["image"].as_str().unwrap_or_default();
        let repository = image
            .rsplit_once(':')
            .map_or(image, |(repository, _)| repository);
        json!({
            "containerID": format!("containerd://{}", hex(id_seed, 64)),
            "image": image,
            "imageID": format!("{repository}@sha256:{}", hex(hash(&[image.len() as u64, id_seed % 7]), 64)),
            "lastState": {},
            "name": container["name"],
            "ready": true,
            "restartCount": 0,
            "started": true,
            "state": {"running": {"startedAt": started}}
        })
    };
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .into_iter()
    .map(condition)
    .collect();
    let status = json!({
        "conditions": conditions,
        "containerStatuses": [
            container_status(&spec["containers"][0], hash(&[seed, 5])),
            container_status(&spec["containers"][1], hash(&[seed, 6]))
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "qosClass": "Burstable",
        "startTime": started
    });
    // What `kubectl apply` recorded of the template (the brief's "kubectl
    // last-applied"; a Deployment's pods inherit what their template says).
    let last_applied = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"prometheus.io/scrape": "true"},
            "labels": {"app": app, "team": team, "tier": tier},
            "name": name,
            "namespace": namespace
        },
        "spec": {"containers": [{
            "image": spec["containers"][0]["image"],
            "name": app,
            "ports": spec["containers"][0]["ports"],
            "resources": spec["containers"][0]["resources"]
        }]}
    });
    let owner_uid = uuid(hash(&[
        ns_index as u64,
        (index / cluster.namespaces % 5) as u64,
        7,
    ]));
    let owner = json!([{
        "apiVersion": "apps/v1",
        "blockOwnerDeletion": true,
        "controller": true,
        "kind": "ReplicaSet",
        "name": format!("{app}-{replica_set}"),
        "uid": owner_uid
    }]);
    let metadata_fields = json!({
        "generateName": format!("{app}-{replica_set}-"),
        "labels": labels,
        "ownerReferences": owner
    });
    let managed_fields = json!([
        managed(
            "kube-controller-manager",
            "Update",
            None,
            json!({"f:metadata": fields_v1(&metadata_fields, true), "f:spec": fields_v1(&spec, true)}),
        ),
        managed(
            "kubectl-client-side-apply",
            "Update",
            None,
            json!({"f:metadata": {"f:annotations": {
                ".": {},
                "f:kubectl.kubernetes.io/last-applied-configuration": {}
            }}}),
        ),
        managed(
            "kubelet",
            "Update",
            Some("status"),
            json!({"f:status": fields_v1(&status, true)})
        ),
    ]);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n"),
                "kubectl.kubernetes.io/restartedAt": time(hash(&[ns_index as u64, 8]) % 100_000),
                "prometheus.io/port": "9090",
                "prometheus.io/scrape": "true"
            },
            "creationTimestamp": started,
            "generateName": format!("{app}-{replica_set}-"),
            "labels": labels,
            "managedFields": managed_fields,
            "name": name,
            "namespace": namespace,
            "ownerReferences": owner,
            "uid": uuid(hash(&[seed, 10]))
        },
        "spec": spec,
        "status": status
    })
}

fn namespace(cluster: &Cluster, index: usize) -> Value {
    let name = cluster.namespace(index);
    let team = TEAMS[index % TEAMS.len()];
    let env = ["prod", "staging", "dev"][index % 3];
    let labels = json!({"env": env, "kubernetes.io/metadata.name": name, "team": team});
    let last_applied = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"annotations": {}, "labels": {"env": env, "team": team}, "name": name}
    });
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")},
            "creationTimestamp": time(index as u64),
            "labels": labels,
            "managedFields": [managed(
                "kubectl-client-side-apply",
                "Update",
                None,
                json!({"f:metadata": {
                    "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                    "f:labels": fields_v1(&labels, false)
                }}),
            )],
            "name": name,
            "uid": uuid(hash(&[index as u64, 11]))
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

fn network_policy(cluster: &Cluster, index: usize) -> Value {
    let ns_index = index % cluster.namespaces;
    let namespace = cluster.namespace(ns_index);
    let template = index / cluster.namespaces;
    let app = APPS[template % APPS.len()];
    let (port, port_name) = app_port(app);
    let (name, spec) = match template % 5 {
        0 => (
            "default-deny".to_owned(),
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        1 => (
            format!("{app}-from-same-app"),
            json!({
                "podSelector": {"matchLabels": {"app": app}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": app}}}],
                             "ports": [{"port": port_name, "protocol": "TCP"}]}],
                "policyTypes": ["Ingress"]
            }),
        ),
        2 => (
            format!("{app}-from-ingress"),
            json!({
                "podSelector": {"matchLabels": {"app": app, "tier": "web"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}],
                             "ports": [{"port": port, "protocol": "TCP"}]}],
                "policyTypes": ["Ingress"]
            }),
        ),
        3 => (
            "allow-prometheus".to_owned(),
            json!({
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                                       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                             "ports": [{"port": "metrics", "protocol": "TCP"}]}],
                "policyTypes": ["Ingress"]
            }),
        ),
        _ => (
            format!("{app}-egress"),
            json!({
                "podSelector": {"matchLabels": {"app": app}},
                "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.0.0.0/8"]}}],
                     "ports": [{"port": 443, "protocol": "TCP"}]},
                    {"to": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["platform", "identity"]}]}}],
                     "ports": [{"endPort": 32767, "port": 30000, "protocol": "TCP"}]}
                ],
                "policyTypes": ["Egress"]
            }),
        ),
    };
    let name = if template >= 5 {
        format!("{name}-{template}")
    } else {
        name
    };
    let last_applied = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"annotations": {}, "name": name, "namespace": namespace},
        "spec": spec
    });
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{last_applied}\n")},
            "creationTimestamp": time(index as u64 + 17),
            "generation": 1,
            "managedFields": [managed(
                "kubectl-client-side-apply",
                "Update",
                None,
                json!({
                    "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                    "f:spec": fields_v1(&spec, true)
                }),
            )],
            "name": name,
            "namespace": namespace,
            "uid": uuid(hash(&[index as u64, 12]))
        },
        "spec": spec
    })
}

/// Images a node may hold: the cluster's own and the applications'.
fn image(index: usize) -> (String, String) {
    const SYSTEM: [(&str, &str); 12] = [
        ("registry.k8s.io/kube-proxy", "v1.31.2"),
        ("registry.k8s.io/pause", "3.10"),
        ("registry.k8s.io/coredns/coredns", "v1.11.3"),
        ("registry.k8s.io/etcd", "3.5.15-0"),
        ("registry.k8s.io/metrics-server/metrics-server", "v0.7.2"),
        ("quay.io/prometheus/node-exporter", "v1.8.2"),
        ("quay.io/prometheus/prometheus", "v2.54.1"),
        ("registry.k8s.io/ingress-nginx/controller", "v1.11.3"),
        ("quay.io/jetstack/cert-manager-controller", "v1.16.1"),
        ("cr.fluentbit.io/fluent/fluent-bit", "3.1.9"),
        ("ghcr.io/podroute/podroute", "0.1.0"),
        ("docker.io/library/busybox", "1.36.1"),
    ];
    match SYSTEM.get(index) {
        Some((repository, tag)) => ((*repository).to_owned(), (*tag).to_owned()),
        None => {
            let app = index - SYSTEM.len();
            (
                format!(
                    "registry.example.com/{}/{}",
                    TEAMS[app % TEAMS.len()],
                    APPS[app / TEAMS.len() % APPS.len()]
                ),
                format!("1.{}.{}", app % 7, app % 13),
            )
        }
    }
}

fn node(cluster: &Cluster, index: usize) -> Value {
    let name = cluster.node(index);
    let address = node_ip(index);
    let zone = ["a", "b", "c"][index % 3];
    let seed = index as u64;
    let boot = time(hash(&[seed, 13]) % 100_000);
    let heartbeat = time(hash(&[seed, 14]) % 100_000);
    let labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "m6i.2xlarge",
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "eu-west-1",
        "failure-domain.beta.kubernetes.io/zone": format!("eu-west-1{zone}"),
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m6i.2xlarge",
        "podroute.io/rack": format!("rack-{:02}", index / 40),
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": format!("eu-west-1{zone}")
    });
    let annotations = json!({
        "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"i-{}\"}}", hex(seed, 17)),
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true"
    });
    // Kubelet reports at most 50 images (--node-status-max-images).
    let images: Vec<Value> = (0..50)
        .map(|slot| {
            let (repository, tag) = image((slot * 7 + index) % 80);
            json!({
                "names": [
                    format!("{repository}@sha256:{}", hex(hash(&[slot as u64 * 7 + seed, 15]), 64)),
                    format!("{repository}:{tag}")
                ],
                "sizeBytes": 5_000_000 + hash(&[slot as u64, seed]) % 400_000_000
            })
        })
        .collect();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": boot,
            "message": message,
            "reason": reason,
            "status": status,
            "type": kind
        })
    };
    let resources = json!({
        "cpu": "8",
        "ephemeral-storage": "104845292Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "32386524Ki",
        "pods": "110"
    });
    let status = json!({
        "addresses": [
            {"address": address, "type": "InternalIP"},
            {"address": name, "type": "Hostname"}
        ],
        "allocatable": resources,
        "capacity": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "images": images,
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": uuid(hash(&[seed, 16])),
            "containerRuntimeVersion": "containerd://1.7.22",
            "kernelVersion": "6.1.112-124.190.amzn2023.x86_64",
            "kubeProxyVersion": "",
            "kubeletVersion": "v1.31.2",
            "machineID": hex(hash(&[seed, 17]), 32),
            "operatingSystem": "linux",
            "osImage": "Amazon Linux 2023.6.20241031",
            "systemUUID": uuid(hash(&[seed, 18]))
        },
        "runtimeHandlers": [
            {"features": {"recursiveReadOnlyMounts": true, "userNamespaces": true}, "name": "runc"},
            {"features": {"recursiveReadOnlyMounts": true, "userNamespaces": true}, "name": ""}
        ]
    });
    let pod_cidr = format!("10.{}.{}.0/24", 64 + index / 256, index % 256);
    let spec = json!({
        "podCIDR": pod_cidr,
        "podCIDRs": [pod_cidr],
        "providerID": format!("aws:///eu-west-1{zone}/i-{}", hex(seed, 17))
    });
    let mut cidr_fields = serde_json::Map::new();
    cidr_fields.insert(".".to_owned(), json!({}));
    cidr_fields.insert(format!("v:\"{pod_cidr}\""), json!({}));
    let mut status_fields = fields_v1(&status, true);
    // Images are an atomic list.
    status_fields["f:images"] = json!({});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": boot,
            "labels": labels,
            "managedFields": [
                managed("kubelet", "Update", None, json!({"f:metadata": {
                    "f:annotations": fields_v1(&annotations, false),
                    "f:labels": fields_v1(&labels, false)
                }})),
                managed("kube-controller-manager", "Update", None, json!({
                    "f:metadata": {"f:annotations": {"f:node.alpha.kubernetes.io/ttl": {}}},
                    "f:spec": {"f:podCIDR": {}, "f:podCIDRs": cidr_fields}
                })),
                managed("kubelet", "Update", Some("status"), json!({"f:status": status_fields}))
            ],
            "name": name,
            "uid": uuid(hash(&[seed, 19]))
        },
        "spec": spec,
        "status": status
    })
}

// ---------------------------------------------------------------------------
// The report.

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => values[len / 2],
        len => f64::midpoint(values[len / 2 - 1], values[len / 2]),
    }
}

fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn figure(value: f64) -> String {
    if value.is_nan() {
        String::new()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn ratio(naive: f64, ours: f64) -> String {
    if naive.is_nan() || ours.is_nan() || ours <= 0.0 {
        String::new()
    } else {
        format!("{:.1}x", naive / ours)
    }
}

/// A source that publishes something besides its stores (NaN: no point).
fn holds(published_mb: f64) -> bool {
    published_mb > 0.0
}

/// One figure of a point (several for the rebuilds).
type Field = dyn Fn(&Point) -> Vec<f64>;

fn report(points: &[Point], machine: &str) -> String {
    let mut groups: BTreeMap<(String, usize), Vec<&Point>> = BTreeMap::new();
    for point in points {
        groups
            .entry((point.scenario.clone(), point.pods))
            .or_default()
            .push(point);
    }
    let mut text = String::new();
    if !machine.is_empty() {
        let _ = writeln!(text, "{machine}\n");
    }
    let _ = writeln!(
        text,
        "| source | pods / nodes | measure | fake only (mode none) | ours | naive | naive/ours |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|---|");
    for ((scenario, pods), group) in &groups {
        let of = |mode: Mode, field: &Field| -> f64 {
            let mut values: Vec<f64> = group
                .iter()
                .filter(|point| point.mode == mode)
                .flat_map(|point| field(point))
                .collect();
            median(&mut values)
        };
        let nodes = group.first().map_or(0, |point| point.nodes);
        let reps = group
            .iter()
            .filter(|point| point.mode == Mode::Ours)
            .count();
        let rows: [(&str, &Field); 7] = [
            (
                "start → first rebuild (every kind listed), ms",
                &|p: &Point| vec![p.first_ms],
            ),
            (
                "RSS after the list (trimmed), MB over the fake's",
                &|p: &Point| vec![p.rss_mb],
            ),
            ("peak RSS (VmHWM), MB over the fake's", &|p: &Point| {
                vec![p.peak_rss_mb]
            }),
            ("live heap after the list, MB", &|p: &Point| vec![p.heap_mb]),
            ("· of which the published snapshot, MB", &|p: &Point| {
                vec![p.published_mb]
            }),
            ("peak live heap, MB", &|p: &Point| vec![p.peak_heap_mb]),
            (
                "one pod's label change → rebuilt, median ms",
                &|p: &Point| p.rebuild_ms.clone(),
            ),
        ];
        for (row, (label, field)) in rows.iter().enumerate() {
            let (none, ours, naive) = (
                of(Mode::None, field),
                of(Mode::Ours, field),
                of(Mode::Naive, field),
            );
            if row == 4 && !holds(ours) && !holds(naive) {
                continue;
            }
            let head = if row == 0 {
                let runs = if reps == 1 { "run" } else { "runs" };
                format!(
                    "{scenario} | {} / {} ({reps} {runs})",
                    thousands(*pods),
                    thousands(nodes)
                )
            } else {
                " | ".to_owned()
            };
            let none = if row == 6 || row == 4 {
                String::new()
            } else {
                figure(none)
            };
            let _ = writeln!(
                text,
                "| {head} | {label} | {none} | {} | {} | {} |",
                figure(ours),
                figure(naive),
                ratio(naive, ours)
            );
        }
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "| source | pods / nodes | namespaces / policies | mean JSON bytes per object | fake's VmRSS, MB | load average at the points' starts |"
    );
    let _ = writeln!(text, "|---|---|---|---|---|---|");
    for ((scenario, pods), group) in &groups {
        let Some(first) = group.first() else { continue };
        let sizes: Vec<String> = first
            .json_bytes
            .iter()
            .map(|(kind, bytes)| format!("{kind} {bytes:.0}"))
            .collect();
        let mut fake: Vec<f64> = group.iter().map(|point| point.fake_rss_mb).collect();
        let loads: Vec<f64> = group.iter().map(|point| point.load).collect();
        let (low, high) = loads
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), load| {
                (low.min(*load), high.max(*load))
            });
        let _ = writeln!(
            text,
            "| {scenario} | {} / {} | {} / {} | {} | {} | {low:.2} to {high:.2} |",
            thousands(*pods),
            thousands(first.nodes),
            thousands(first.namespaces),
            thousands(first.policies),
            sizes.join(", "),
            figure(median(&mut fake)),
        );
    }
    text
}
