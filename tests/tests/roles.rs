// podlab's routing roles for real: FRR (config pushed through vtysh, so a
// static route after an `exit` line still reaches staticd), BIRD and GoBGP,
// each in its own namespace with its own sockets, peering over BGP and
// exchanging routes into the kernels. Needs root, as CI gives.

use std::time::Duration;

mod common;

use common::assert_lab_gone;
use podroute_lab::{Lab, LabOptions, Role};

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/labs/roles.clab.yml");
const CONVERGE: Duration = Duration::from_secs(60);

fn established(lab: &Lab, peer: &str) -> bool {
    lab.exec(
        "r",
        &["vtysh", "-c", &format!("show bgp neighbors {peer} json")],
    )
    .ok()
    .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
    .is_some_and(|v| v[peer]["bgpState"] == "Established")
}

fn has_route(lab: &Lab, node: &str, prefix: &str) -> bool {
    lab.exec(node, &["ip", "route", "show", prefix])
        .is_ok_and(|out| out.contains(prefix))
}

#[test]
fn frr_bird_and_gobgp_peer_and_exchange_routes() {
    let lab = Lab::up_with(TOPOLOGY, LabOptions::unique("trol")).unwrap();
    let roles: Vec<Role> = ["r", "b", "g"]
        .iter()
        .map(|n| lab.topology().nodes[*n].role)
        .collect();
    assert_eq!(roles, [Role::Frr, Role::Bird, Role::Gobgp]);

    for peer in ["10.0.11.2", "10.0.12.2"] {
        lab.wait_for(CONVERGE, &format!("r's session to {peer}"), |lab| {
            established(lab, peer)
        })
        .unwrap();
    }
    // Each side sees the other's state through its own CLI, pointed at its
    // own instance by podlab.
    let bird = lab.exec("b", &["birdc", "show", "protocols", "r"]).unwrap();
    assert!(bird.contains("Established"), "{bird}");
    let gobgp = lab.exec("g", &["gobgp", "neighbor"]).unwrap();
    assert!(gobgp.contains("Establ"), "{gobgp}");

    // BIRD's static route, and the one added through gobgpd's API by an exec
    // line after the daemon started, reach FRR's kernel table.
    for prefix in ["10.98.1.0/24", "10.98.2.0/24"] {
        lab.wait_for(CONVERGE, &format!("{prefix} in r's kernel"), |lab| {
            has_route(lab, "r", prefix)
        })
        .unwrap();
    }
    let route = lab
        .exec("r", &["ip", "route", "show", "10.98.1.0/24"])
        .unwrap();
    assert!(
        route.contains("via 10.0.11.2") && route.contains("proto bgp"),
        "{route}"
    );

    // FRR's static route (configured after an `exit` line) was announced,
    // and BIRD put it in its kernel.
    lab.wait_for(CONVERGE, "10.98.0.0/24 in b's kernel", |lab| {
        has_route(lab, "b", "10.98.0.0/24")
    })
    .unwrap();
    let route = lab
        .exec("b", &["ip", "route", "show", "10.98.0.0/24"])
        .unwrap();
    assert!(route.contains("proto bird"), "{route}");
    // The hostname of the FRR config reached bgpd.
    let summary = lab
        .exec("r", &["vtysh", "-c", "show running-config"])
        .unwrap();
    assert!(summary.contains("hostname r"), "{summary}");

    // gobgpd runs in its state folder and bird names its own: all stop.
    let name = lab.name().to_string();
    lab.down().unwrap();
    assert_lab_gone(&name);
}

#[test]
fn a_bad_frr_config_fails_up_with_frrs_message_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let labs = dir.path().join("roles");
    std::fs::create_dir_all(labs.join("r")).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/labs/roles/r");
    std::fs::copy(format!("{src}/daemons"), labs.join("r/daemons")).unwrap();
    std::fs::write(
        labs.join("r/frr.conf"),
        "hostname r\nrouter bgp 65000\n neighbour 10.0.0.1 remote-as 1\nexit\n",
    )
    .unwrap();
    let file = dir.path().join("bad.clab.yml");
    std::fs::write(
        &file,
        "name: bad\ntopology:\n  nodes:\n    r:\n      kind: linux\n      image: frrouting/frr\n      binds: [roles/r/frr.conf:/etc/frr/frr.conf, roles/r/daemons:/etc/frr/daemons]\n",
    )
    .unwrap();
    let options = LabOptions::unique("tbad");
    let name = options.name.clone().unwrap();
    let err = Lab::up_with(&file, options).unwrap_err().to_string();
    assert!(
        err.contains("FRR refused") && err.contains("frr.conf"),
        "{err}"
    );
    assert!(err.contains("line 3"), "{err}");
    assert!(!podroute_lab::netns::exists(&format!("podlab-{name}-r")));
    assert!(!podroute_lab::lab::state_dir(&name).exists());
}
