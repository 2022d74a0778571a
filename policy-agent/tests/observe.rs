// What the agent tells about itself, against real packets: /readyz says
// why it is not ready before the first view of the cluster and ok after;
// /livez answers; /metrics parses strictly with every documented family and
// type, and its sync counter moves on a manifest change; a connection a
// policy denies shows up in GetStatus as a denial of that pod and direction
// naming the isolating policies, seen dropping while the agent ran, and in
// the dropped-packets counter, while an allowed one counts nothing; a
// second agent on the taken port stops with a clear message; every line of
// `--log-format json` is JSON.
//
// One lab: pods x/a on n1, x/b and y/a on n2; one agent, on n1, in n1's
// namespace (so its metrics port is the default one on that namespace's
// loopback, reached from a thread moved into the namespace).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Lab, PORTS};
use podroute_proto::admin_socket::connect_unix;
use podroute_proto::common::v1::GetStatusRequest;
use podroute_proto::metrics::{Scrape, parse};
use podroute_proto::observe::POLICY_METRICS_PORT;
use podroute_proto::policy::v1::policy_admin_client::PolicyAdminClient;
use podroute_proto::policy::v1::{Denial, Direction, PolicyStatus};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// How long a change may take to be programmed: the agent polls the
/// folder every second, then programs.
const CONVERGE: Duration = Duration::from_secs(30);

/// Every family the agent exports, with its TYPE (METRICS.md).
const FAMILIES: &[(&str, &str)] = &[
    ("podroute_policy_sync_duration_seconds", "histogram"),
    ("podroute_policy_syncs_total", "counter"),
    ("podroute_policy_last_sync_timestamp_seconds", "gauge"),
    ("podroute_policy_rules", "gauge"),
    ("podroute_policy_ipsets", "gauge"),
    ("podroute_policy_ipset_members", "gauge"),
    ("podroute_policy_endpoints", "gauge"),
    ("podroute_policy_isolated_endpoints", "gauge"),
    ("podroute_policy_policies", "gauge"),
    ("podroute_policy_refused_objects", "gauge"),
    ("podroute_policy_dropped_packets_total", "counter"),
    ("podroute_policy_counter_read_errors_total", "counter"),
    ("podroute_build_info", "gauge"),
    ("podroute_process_start_time_seconds", "gauge"),
];

const SYNCS_OK: (&str, &[(&str, &str)]) = ("podroute_policy_syncs_total", &[("result", "ok")]);
const DROPPED_IN: (&str, &[(&str, &str)]) = (
    "podroute_policy_dropped_packets_total",
    &[("direction", "ingress"), ("reason", "policy")],
);

/// x/a takes ingress from x/b only: x/deny isolates it, x/from-b allows b.
const POLICIES: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}
";

/// GET `path` on `address` inside network namespace `ns`: from a thread
/// moved into it, since the address is on that namespace's loopback.
fn http_in(ns: &str, address: SocketAddr, path: &str) -> (u16, String) {
    let netns = format!("/run/netns/{ns}");
    let path = path.to_owned();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).unwrap();
        move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(podroute_proto::observe::http_get(address, &path))
            .unwrap_or_else(|e| panic!("GET {path} on {address} in {netns}: {e}"))
    })
    .join()
    .unwrap()
}

fn status(socket: &Path) -> PolicyStatus {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = connect_unix(socket).await.unwrap();
        PolicyAdminClient::new(channel)
            .get_status(GetStatusRequest {})
            .await
            .unwrap()
            .into_inner()
    })
}

/// Polls `f` until it gives Some, or panics naming `what` after `CONVERGE`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + CONVERGE;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < until, "{what} not after {CONVERGE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One TCP probe from `from` (a pod's namespace) to `to`:80; whether it
/// connected.
fn connects(lab: &Lab, from: &str, to: &str) -> bool {
    let podlab = common::sibling_binary("podlab");
    let target = format!("tcp:{}:{}", lab.pod(to).v4, PORTS[0]);
    let out = common::exec_in(
        &lab.pod(from).netns,
        &[
            podlab.to_str().unwrap(),
            "probe",
            "connect",
            "--timeout-ms",
            &common::PROBE_TIMEOUT_MS.to_string(),
            &target,
        ],
    );
    out.contains("\"ok\":true")
}

/// The x/a ingress denial of `status`, if any: (packets, policy names).
fn xa_ingress(status: &PolicyStatus) -> Option<(u64, Vec<String>)> {
    xa_denial(status).map(|d| {
        (
            d.packets,
            d.policies
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
        )
    })
}

fn xa_denial(status: &PolicyStatus) -> Option<&Denial> {
    status
        .denials
        .iter()
        .find(|d| d.namespace == "x" && d.pod == "a" && d.direction == Direction::Ingress as i32)
}

/// Polls GetStatus until it shows x/a's ingress drops: the counters are
/// read at most once a second (a read just before the drop may be the
/// answer) and on a timer.
fn wait_xa_dropped(socket: &Path) -> PolicyStatus {
    wait_for("x/a's ingress drops in GetStatus", || {
        let status = status(socket);
        xa_denial(&status)
            .is_some_and(|d| d.packets > 0)
            .then_some(status)
    })
}

struct Agent<'a> {
    lab: &'a Lab,
    socket: std::path::PathBuf,
    metrics: SocketAddr,
}

impl Agent<'_> {
    fn get(&self, path: &str) -> (u16, String) {
        http_in(self.lab.node_ns("n1"), self.metrics, path)
    }

    /// A strictly parsed scrape.
    fn scrape(&self) -> Scrape {
        let (code, text) = self.get("/metrics");
        assert_eq!(code, 200, "{text}");
        parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }

    fn value(&self, (name, labels): (&str, &[(&str, &str)])) -> f64 {
        let scrape = self.scrape();
        scrape
            .value(name, labels)
            .unwrap_or_else(|| panic!("no single {name}{labels:?} in {:?}", scrape.samples))
    }
}

#[test]
fn probes_metrics_status_and_denials_tell_what_happens() {
    let mut lab = Lab::new();
    lab.set_namespace_labels("x", &[("ns", "x")]);
    lab.set_namespace_labels("y", &[("ns", "y")]);
    lab.add_pod("n1", "x", "a", &[("pod", "a")], &PORTS);
    lab.add_pod("n2", "x", "b", &[("pod", "b")], &PORTS);
    lab.add_pod("n2", "y", "a", &[("pod", "a")], &PORTS);
    lab.apply_yaml("policies", POLICIES);

    // The agent reads a path that does not exist yet: it waits, not ready.
    let later = lab.dir().join("manifests-later");
    let manifests = lab.manifests_dir();
    // No periodic resync: only a change makes it sync again.
    lab.start_agent(
        "n1",
        &later,
        &["--log-format", "json", "--resync-interval", "3600"],
    );
    let socket = lab.agent_socket("n1");
    let early = status(&socket);
    let health = early.health.clone().unwrap();
    assert!(health.live && !health.ready, "{early:?}");
    let waiting = format!(
        "waiting for the first view of the cluster from manifests {}",
        later.display()
    );
    assert_eq!(health.reason, waiting);
    assert_eq!(
        health.metrics_address,
        format!("127.0.0.1:{POLICY_METRICS_PORT}")
    );
    assert_eq!(early.node, "n1");
    assert_eq!(early.source, format!("manifests {}", later.display()));
    assert_eq!((early.syncs, early.last_sync_seconds_ago), (0, None));
    let agent = Agent {
        lab: &lab,
        socket: socket.clone(),
        metrics: health.metrics_address.parse().unwrap(),
    };
    assert_eq!(agent.get("/readyz"), (503, format!("{waiting}\n")));
    assert_eq!(agent.get("/livez"), (200, "ok\n".to_string()));
    assert_eq!(agent.value(SYNCS_OK), 0.0);

    // The folder appears: the first sync makes it ready.
    std::os::unix::fs::symlink(&manifests, &later).unwrap();
    wait_for("/readyz 200", || {
        (agent.get("/readyz").0 == 200).then_some(())
    });
    assert_eq!(agent.get("/readyz").1, "ok\n");
    assert_eq!(agent.get("/livez"), (200, "ok\n".to_string()));

    let scrape = agent.scrape();
    for (family, kind) in FAMILIES {
        assert_eq!(
            scrape.types.get(*family).map(String::as_str),
            Some(*kind),
            "{family} in {:?}",
            scrape.types
        );
        assert!(scrape.help.contains_key(*family), "{family} has no HELP");
    }
    for family in scrape.types.keys() {
        assert!(family.starts_with("podroute_"), "{family}");
    }
    assert_eq!(
        scrape.value("podroute_policy_endpoints", &[]),
        Some(1.0),
        "x/a"
    );
    assert_eq!(
        scrape.value(
            "podroute_policy_isolated_endpoints",
            &[("direction", "ingress")]
        ),
        Some(1.0)
    );
    assert_eq!(scrape.value("podroute_policy_policies", &[]), Some(2.0));
    assert!(scrape.value("podroute_policy_rules", &[]).unwrap() > 0.0);
    assert!(scrape.value("podroute_policy_ipset_members", &[]).unwrap() >= 1.0);
    assert!(
        scrape
            .value(
                "podroute_policy_sync_duration_seconds_count",
                &[("kind", "full")]
            )
            .unwrap()
            >= 1.0
    );
    assert!(
        scrape
            .value("podroute_policy_last_sync_timestamp_seconds", &[])
            .unwrap()
            > 0.0
    );
    assert_eq!(scrape.value(DROPPED_IN.0, DROPPED_IN.1), Some(0.0));
    let syncs = scrape.value(SYNCS_OK.0, SYNCS_OK.1).unwrap();
    assert!(syncs >= 1.0);

    // Allowed: x/b to x/a. Nothing is dropped.
    wait_for("x/b -> x/a allowed", || {
        connects(&lab, "x/b", "x/a").then_some(())
    });
    let quiet = status(&socket);
    assert_eq!(xa_ingress(&quiet), None, "{quiet:?}");
    assert!(quiet.health.unwrap().ready);
    assert!(quiet.syncs >= 1 && quiet.last_sync_seconds_ago.is_some());
    assert_eq!(
        (quiet.endpoints, quiet.isolated_endpoints, quiet.policies),
        (1, 1, 2)
    );
    assert!(quiet.rules > 0 && quiet.ipsets > 0 && quiet.ipset_members > 0);
    assert_eq!(quiet.last_error, "");
    assert_eq!(quiet.denials_error, "");

    // Denied: y/a to x/a. The drop is x/a's, ingress, by its two policies,
    // seen while the agent ran (its rules were read before: the counts
    // grew since).
    assert!(!connects(&lab, "y/a", "x/a"), "y/a reached x/a");
    let denied = wait_xa_dropped(&socket);
    let (packets, policies) = xa_ingress(&denied).unwrap_or_else(|| panic!("{denied:?}"));
    assert_eq!(policies, vec!["x/deny", "x/from-b"]);
    assert_eq!(denied.denials.len(), 1, "{:?}", denied.denials);
    let denial = xa_denial(&denied).unwrap();
    assert!(denial.last_drop_seconds_ago.is_some(), "{denial:?}");
    assert!(denial.recent_packets <= packets, "{denial:?}");
    assert!(agent.value(DROPPED_IN) >= packets as f64);

    // More allowed traffic counts nothing more.
    assert!(connects(&lab, "x/b", "x/a"));
    assert!(connects(&lab, "x/b", "x/a"));
    assert_eq!(xa_ingress(&status(&socket)).map(|d| d.0), Some(packets));

    // A manifest change is one more sync. Dropping x/from-b changes what
    // isolates x/a, so its chain is rewritten: its counter starts again,
    // the metric's total does not go back.
    let syncs = agent.value(SYNCS_OK);
    let total = agent.value(DROPPED_IN);
    let deny_only = POLICIES.split("---").next().unwrap();
    lab.apply_yaml("policies", deny_only);
    wait_for("a sync after the change", || {
        (agent.value(SYNCS_OK) > syncs).then_some(())
    });
    wait_for("x/b -> x/a denied", || {
        (!connects(&lab, "x/b", "x/a")).then_some(())
    });
    let after = wait_xa_dropped(&agent.socket);
    let (_, policies) = xa_ingress(&after).unwrap_or_else(|| panic!("{after:?}"));
    assert_eq!(policies, vec!["x/deny"]);
    // When x/a last dropped outlives the rewrite of its chain.
    let denial = xa_denial(&after).unwrap();
    assert!(denial.last_drop_seconds_ago.is_some(), "{denial:?}");
    assert!(agent.value(DROPPED_IN) > total);

    // A second agent on the same port stops at once, saying why.
    let out = podroute_lab::netns::command_in(lab.node_ns("n1"), &[common::AGENT])
        .args(["--node", "n1", "--manifests"])
        .arg(&later)
        .arg("--admin-socket")
        .arg(lab.dir().join("second.sock"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen for metrics and probes on 127.0.0.1:{POLICY_METRICS_PORT}: Address already in use"
        )) && stderr.contains("--metrics-listen"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );

    // Every log line is JSON; the sync events carry their figures.
    let log = lab.log("agent-n1.log");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let programmed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "policy programmed")
        .collect();
    assert!(programmed.len() >= 2, "{log}");
    assert_eq!(programmed[0]["fields"]["first"], true, "{log}");
    assert_eq!(programmed[0]["fields"]["endpoints"], 1, "{log}");
    assert_eq!(programmed[0]["level"], "INFO");
}
