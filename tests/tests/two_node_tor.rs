// The first lab, for real: podlab brings up containerlab/two-node-tor as
// network namespaces, FRR runs on the ToR with the bound config, the hosts
// reach the ToR and each other through it, and tearing down (explicitly, or
// by Drop during a panic) leaves no namespace, process, veth or state behind.
// Needs root, as CI gives.

mod common;

use std::time::Duration;

use common::{assert_lab_gone, copy_dir, host_links, repo_path, wait_ping};
use podroute_lab::{Lab, LabOptions, Role, lab_status};

const TOPOLOGY: &str = "containerlab/two-node-tor.clab.yml";
const FRR_UP: Duration = Duration::from_secs(30);

#[test]
fn two_node_tor_comes_up_routes_and_goes_away() {
    let host_before = host_links();
    let lab = Lab::up_with(repo_path(TOPOLOGY), LabOptions::unique("t2nt")).unwrap();
    let name = lab.name().to_string();

    // FRR runs on the ToR with the bound config: zebra set the addresses,
    // bgpd has the router id, AS and both node neighbours.
    lab.wait_for(FRR_UP, "tor's bgpd to answer", |lab| {
        lab.exec("tor", &["vtysh", "-c", "show bgp summary json"])
            .is_ok()
    })
    .unwrap();
    let summary = lab
        .exec("tor", &["vtysh", "-c", "show bgp summary json"])
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let v4 = &summary["ipv4Unicast"];
    assert_eq!(v4["routerId"], "10.255.0.1", "{summary}");
    assert_eq!(v4["as"], 65000);
    assert!(v4["peers"]["10.0.1.2"].is_object(), "{summary}");
    assert!(v4["peers"]["10.0.2.2"].is_object(), "{summary}");
    let addrs = lab
        .exec("tor", &["ip", "-br", "addr", "show", "eth2"])
        .unwrap();
    assert!(addrs.contains("10.0.2.1/24"), "{addrs}");

    // The hosts' exec commands ran, and they reach the ToR and, through
    // it, each other.
    for (node, target) in [("n1", "10.0.1.1"), ("n2", "10.0.2.1"), ("n1", "10.0.2.2")] {
        wait_ping(&lab, node, target);
    }

    let status = lab_status(&name, lab.topology());
    assert!(status.up);
    let tor = status.nodes.iter().find(|n| n.name == "tor").unwrap();
    assert_eq!(tor.role, Role::Frr);
    let procs: Vec<&str> = tor.processes.iter().map(|p| p.name.as_str()).collect();
    for daemon in ["zebra", "bgpd", "staticd", "bfdd"] {
        assert!(
            procs.contains(&daemon),
            "{daemon} not running on tor: {procs:?}"
        );
    }
    let n1 = status.nodes.iter().find(|n| n.name == "n1").unwrap();
    assert_eq!(n1.interfaces.len(), 1);
    assert_eq!(n1.interfaces[0].addresses, ["10.0.1.2/24"]);

    // Nothing of the lab ever appears in the host's own namespace.
    assert_eq!(host_links(), host_before);

    lab.down().unwrap();
    assert_lab_gone(&name);
    assert_eq!(host_links(), host_before);
}

#[test]
fn a_stale_copy_is_replaced_and_labs_do_not_collide() {
    let options = LabOptions::unique("t2ns");
    let first = Lab::up_with(repo_path(TOPOLOGY), options.clone()).unwrap();
    let other = Lab::up_with(repo_path(TOPOLOGY), LabOptions::unique("t2no")).unwrap();
    let name = first.name().to_string();
    // Forget the first handle as a crashed podlab would: the lab stays up.
    std::mem::forget(first);
    let second = Lab::up_with(repo_path(TOPOLOGY), options).unwrap();
    assert_eq!(second.name(), name);
    wait_ping(&second, "n1", "10.0.1.1");
    // The other lab, with the same node and interface names, is untouched.
    wait_ping(&other, "n2", "10.0.2.1");
    let other_name = other.name().to_string();
    drop(second);
    drop(other);
    assert_lab_gone(&name);
    assert_lab_gone(&other_name);
}

#[test]
fn drop_tears_down_when_a_test_panics() {
    let options = LabOptions::unique("t2np");
    let name = options.name.clone().unwrap();
    let result = std::thread::spawn(move || {
        let lab = Lab::up_with(repo_path(TOPOLOGY), options).unwrap();
        wait_ping(&lab, "n1", "10.0.1.1");
        panic!("a failing test");
    })
    .join();
    assert!(result.is_err(), "the thread should have panicked");
    assert_lab_gone(&name);
}

#[test]
fn unknown_node_is_an_error_naming_the_nodes() {
    let lab = Lab::up_with(repo_path(TOPOLOGY), LabOptions::unique("t2nu")).unwrap();
    let err = lab.exec("n3", &["true"]).unwrap_err().to_string();
    assert!(
        err.contains("no node `n3`") && err.contains("n1, n2, tor"),
        "{err}"
    );
}

#[test]
fn a_lab_up_from_another_file_is_not_replaced() {
    let options = LabOptions::unique("t2nf");
    let lab = Lab::up_with(repo_path(TOPOLOGY), options.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.clab.yml");
    std::fs::copy(repo_path(TOPOLOGY), &copy).unwrap();
    copy_dir(
        &repo_path("containerlab/two-node-tor"),
        &dir.path().join("two-node-tor"),
    );
    copy_dir(
        &repo_path("containerlab/podroute-lab"),
        &dir.path().join("podroute-lab"),
    );
    let err = Lab::up_with(&copy, options).unwrap_err().to_string();
    assert!(err.contains("up from another file"), "{err}");
    // The running lab was left alone.
    wait_ping(&lab, "n1", "10.0.1.1");
}
