// A lab as a small cluster, through podlab's command line and its library:
// `podlab up` on a three-node mesh starts ipamd, bgpd and the policy agent
// (admin sockets answer, BGP sessions come up), pods made on two nodes get
// addresses from the pool and reach each other across nodes, a
// NetworkPolicy applied refuses the TCP probe and deleting it lets it
// through, a deleted pod's address is free again with `podctl ipam check`
// clean, and `down` leaves no namespace or process. Needs root and the
// daemons built beside podlab (cargo build -p podroute-bgpd -p podroute-ipam
// -p podroute-policy -p podroute-cni -p podctl), as `cargo test --workspace`
// builds them.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{DownOnDrop, assert_lab_gone, bin_dir, repo_path};
use podroute_lab::labcluster::{ClusterPaths, PortSpec};
use podroute_lab::{Lab, LabCluster, LabError, LabOptions};
use serde_json::Value;

const PODLAB: &str = env!("CARGO_BIN_EXE_podlab");
const TOPOLOGY: &str = "tests/labs/mesh3.clab.yml";
/// Sessions up, blocks announced, rules programmed, on two busy cores.
const CONVERGE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(250);

/// tests/labs/mesh3.clab.yml and its config folder, copied into `dir`.
fn copy_topology(dir: &Path) {
    let src = repo_path("tests/labs");
    std::fs::create_dir_all(dir.join("mesh3/podroute")).unwrap();
    for file in [
        "mesh3.clab.yml",
        "mesh3/podroute/bgpd.yaml",
        "mesh3/podroute/pools.yaml",
    ] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
}

fn podlab(args: &[&str]) -> Output {
    Command::new(PODLAB).args(args).output().unwrap()
}

/// podlab `args`, which must succeed; its stdout.
fn podlab_ok(args: &[&str]) -> String {
    let out = podlab(args);
    assert!(
        out.status.success(),
        "podlab {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns Some, failing with `what` and the last
/// thing seen after CONVERGE.
fn wait<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + CONVERGE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= until => {
                panic!("{what}: not after {CONVERGE:?}: {last}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// `podlab pod exec LAB FROM -- podlab probe connect tcp:IP:PORT`: whether
/// the TCP probe is accepted.
fn tcp_ok(lab: &str, from: &str, ip: &str, port: u16) -> bool {
    let target = format!("tcp:{ip}:{port}");
    let out = podlab(&[
        "pod",
        "exec",
        lab,
        from,
        "--",
        PODLAB,
        "probe",
        "connect",
        "--timeout-ms",
        "1000",
        &target,
    ]);
    String::from_utf8_lossy(&out.stdout).contains("\"ok\":true")
}

#[test]
fn podlab_runs_a_cluster_with_pods_and_policies() {
    let bins = bin_dir();
    let lab = format!("pp{}", std::process::id());
    let _down = DownOnDrop(lab.clone());
    // A copy of the topology: LAB given as a file must name one lab, and
    // the other test brings the original up at the same time.
    let dir = tempfile::tempdir().unwrap();
    copy_topology(dir.path());
    let file = dir.path().join("mesh3.clab.yml").display().to_string();
    let up = podlab_ok(&["up", &file, "--name", &lab]);
    assert!(up.contains("cluster: podroute-ipamd on ipamd"), "{up}");

    // Every daemon serves its admin socket, in its node's namespace.
    let paths = ClusterPaths::new(&lab);
    assert!(paths.ipamd_socket().exists());
    for node in ["n1", "n2", "n3"] {
        assert!(paths.bgpd_socket(node).exists(), "{node}");
        assert!(paths.policy_socket(node).exists(), "{node}");
    }
    let status: Value =
        serde_json::from_str(&podlab_ok(&["status", &file, "--name", &lab, "-o", "json"])).unwrap();
    let procs = |node: &str| -> Vec<String> {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == node)
            .unwrap()["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        procs("ipamd").contains(&"podroute-ipamd".to_string()),
        "{status}"
    );
    assert!(
        procs("n1").contains(&"podroute-bgpd".to_string()),
        "{status}"
    );
    assert!(
        procs("n1").iter().any(|p| p.starts_with("podroute-polic")),
        "{status}"
    );

    // The mesh comes up: n1 has both others Established.
    wait("n1's sessions Established", || {
        let out = podlab(&["podctl", &lab, "n1", "--", "bgp", "peers", "-o", "json"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let peers: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        let up = peers["peers"].as_array().map_or(0, |p| {
            p.iter().filter(|p| p["state"] == "Established").count()
        });
        if up == 2 { Ok(()) } else { Err(text) }
    });

    // Pods on two nodes, addresses from the pool; LAB may be the file too.
    let web_ip = podlab_ok(&[
        "pod",
        "create",
        &file,
        "--node",
        "n1",
        "--namespace",
        "shop",
        "--name",
        "web",
        "--labels",
        "app=web,tier=front",
        "--port",
        "80/TCP",
        "--port",
        "53/UDP",
    ]);
    let web_ip = web_ip.trim().to_string();
    let client_ip = podlab_ok(&[
        "pod",
        "create",
        &lab,
        "--node",
        "n2",
        "--namespace",
        "shop",
        "--name",
        "client",
        "--labels",
        "app=client",
    ]);
    let client_ip = client_ip.trim().to_string();
    for ip in [&web_ip, &client_ip] {
        assert!(ip.starts_with("10.244."), "{ip}");
    }
    assert_ne!(web_ip, client_ip);

    // Clear errors: the same pod again, an unknown node, bad labels.
    let again = podlab(&[
        "pod",
        "create",
        &lab,
        "--node",
        "n1",
        "--namespace",
        "shop",
        "--name",
        "web",
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("pod shop/web exists already (on n1)"),
        "{}",
        stderr(&again)
    );
    let nowhere = podlab(&["pod", "create", &lab, "--node", "n9", "--name", "x"]);
    assert!(
        stderr(&nowhere).contains("has no node `n9`"),
        "{}",
        stderr(&nowhere)
    );
    let bad = podlab(&[
        "pod", "create", &lab, "--node", "n1", "--name", "x", "--labels", "app",
    ]);
    assert!(stderr(&bad).contains("KEY=VALUE"), "{}", stderr(&bad));

    // `pods -o json` lists both.
    let pods: Value = serde_json::from_str(&podlab_ok(&["pods", &lab, "-o", "json"])).unwrap();
    let listed: Vec<(String, String, String)> = pods
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["namespace"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                ),
                p["node"].as_str().unwrap().to_string(),
                p["ips"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "shop/client".to_string(),
                "n2".to_string(),
                client_ip.clone()
            ),
            ("shop/web".to_string(), "n1".to_string(), web_ip.clone()),
        ]
    );
    assert_eq!(pods[1]["labels"]["tier"], "front");
    assert_eq!(pods[1]["ports"][1]["protocol"], "UDP");
    let table = podlab_ok(&["pods", &lab]);
    assert!(table.starts_with("NAMESPACE"), "{table}");

    // Across nodes, unencapsulated: ping once the blocks are announced.
    wait("client pings web across nodes", || {
        let out = podlab(&[
            "pod",
            "exec",
            &lab,
            "shop/client",
            "--",
            "ping",
            "-c1",
            "-W1",
            &web_ip,
        ]);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    // pod exec passes the exit status on.
    let failed = podlab(&["pod", "exec", &lab, "shop/web", "--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.status.code(), Some(7));
    assert!(tcp_ok(&lab, "shop/client", &web_ip, 80));

    // A policy that admits nothing to web: the probe is refused...
    let policy = dir.path().join("deny.yaml");
    std::fs::write(
        &policy,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {name: deny-web, namespace: shop}\n\
         spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}\n",
    )
    .unwrap();
    let applied = podlab_ok(&["apply", &lab, policy.to_str().unwrap()]);
    assert!(
        applied.contains("NetworkPolicy shop/deny-web applied"),
        "{applied}"
    );
    wait("the policy to refuse client -> web:80", || {
        if tcp_ok(&lab, "shop/client", &web_ip, 80) {
            Err("still accepted".into())
        } else {
            Ok(())
        }
    });
    // ... and allowed again once it is deleted.
    let deleted = podlab_ok(&["delete", &lab, policy.to_str().unwrap()]);
    assert!(
        deleted.contains("NetworkPolicy shop/deny-web deleted"),
        "{deleted}"
    );
    wait("client -> web:80 allowed again", || {
        if tcp_ok(&lab, "shop/client", &web_ip, 80) {
            Ok(())
        } else {
            Err("refused".into())
        }
    });
    // A kind the lab does not take is refused by name, and nothing written.
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: extra}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    )
    .unwrap();
    let refused = podlab(&["apply", &lab, other.to_str().unwrap()]);
    assert!(
        stderr(&refused).contains("document 2: kind Deployment cannot be applied"),
        "{}",
        stderr(&refused)
    );
    assert!(!paths.manifests().join("Namespace.extra.yaml").exists());

    // Deleting web releases its address: ipamd shows it free and its
    // check finds nothing wrong.
    podlab_ok(&["pod", "delete", &lab, "shop/web"]);
    let show = podlab_ok(&[
        "podctl", &lab, "n1", "--", "ipam", "show", "--ip", &web_ip, "-o", "json",
    ]);
    let show: Value = serde_json::from_str(&show).unwrap();
    assert_ne!(show["state"], "allocated", "{show}");
    let check = podlab(&["podctl", &lab, "n1", "--", "ipam", "check"]);
    assert!(check.status.success(), "{check:?}");
    let gone = podlab(&["pod", "exec", &lab, "shop/web", "--", "true"]);
    assert!(
        stderr(&gone).contains("has no pod shop/web"),
        "{}",
        stderr(&gone)
    );
    assert!(!paths.manifests().join("Pod.shop.web.yaml").exists());

    // Down: no namespace, process or state left; the CLI then says so.
    podlab_ok(&["down", &file, "--name", &lab]);
    assert_lab_gone(&lab);
    let after = podlab(&["pods", &lab]);
    assert!(
        stderr(&after).contains(&format!("lab {lab} is not up")),
        "{}",
        stderr(&after)
    );
    drop(bins);
}

#[test]
fn lab_cluster_in_process() {
    let bins = bin_dir();
    let options = LabOptions::unique("ppl").with_binaries(&bins);
    let lab = Lab::up_with(repo_path(TOPOLOGY), options).unwrap();
    let name = lab.name().to_string();
    let cluster = LabCluster::from_lab(&lab, &bins).unwrap();
    assert_eq!(cluster.nodes(), ["n1", "n2", "n3"]);
    assert_eq!(cluster.ipamd_node(), "ipamd");

    let labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
    let ports: Vec<PortSpec> = vec!["5432/TCP".parse().unwrap()];
    let db = cluster
        .create_pod("n3", "data", "db", &labels, &ports)
        .unwrap();
    assert_eq!(db.node, "n3");
    let ip = db.ip().unwrap().to_string();
    assert!(ip.starts_with("10.244."), "{ip}");
    // Reopened by name, as the CLI does, it sees the same pod.
    let reopened = LabCluster::open(&name, &bins).unwrap();
    assert_eq!(reopened.pods().unwrap(), std::slice::from_ref(&db));
    // The probe serves the pod's port, reachable from its node.
    let out = lab
        .exec(
            "n3",
            &[PODLAB, "probe", "connect", &format!("tcp:{ip}:5432")],
        )
        .unwrap();
    assert!(out.contains("\"ok\":true"), "{out}");
    let out = cluster.pod_exec("data/db", &["ip", "-br", "addr"]).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&ip),
        "{out:?}"
    );

    // Errors name the problem.
    assert!(matches!(
        cluster.create_pod("n3", "data", "db", &labels, &[]),
        Err(LabError::PodExists { .. })
    ));
    assert!(matches!(
        cluster.create_pod("ipamd", "data", "x", &labels, &[]),
        Err(LabError::Node { .. })
    ));
    assert!(matches!(
        cluster.create_pod("n1", "Data", "x", &labels, &[]),
        Err(LabError::InvalidArgument { .. })
    ));
    assert!(matches!(
        cluster.pod("data/nope"),
        Err(LabError::UnknownPod { .. })
    ));

    // A pod on another node connects once the blocks are announced.
    cluster
        .create_pod("n1", "data", "app", &BTreeMap::new(), &[])
        .unwrap();
    wait("data/app -> data/db:5432", || {
        match cluster.connects("data/app", "data/db", 5432, Duration::from_secs(1)) {
            Ok(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    cluster.delete_pod("data/app").unwrap();
    assert_eq!(cluster.pods().unwrap(), [db]);

    drop(lab);
    assert_lab_gone(&name);
    assert!(matches!(
        LabCluster::open(&name, &bins),
        Err(LabError::NotUp { .. })
    ));

    // Without the binaries the same topology is plain hosts, as before.
    let plain = Lab::up_with(repo_path(TOPOLOGY), LabOptions::unique("ppn")).unwrap();
    assert!(matches!(
        LabCluster::from_lab(&plain, &bins),
        Err(LabError::NoCluster { .. })
    ));
    for node in ["n1", "ipamd"] {
        let pids = podroute_lab::netns::pids(&plain.netns(node).unwrap()).unwrap();
        assert!(pids.is_empty(), "{node} runs {pids:?}");
    }
}
