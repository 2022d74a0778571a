// podroute-cni for real: a node namespace with a real podroute-ipamd, pod
// namespaces, and the plugin binary invoked exactly as a container runtime
// invokes it. Pods must ping the node and each other; DEL, CHECK, GC, STATUS
// and every refusal must leave the kernel and ipamd as the spec says.

#![allow(clippy::unwrap_used)] // test helpers below the tests: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;

use common::{NODE_V4, NODE_V6, Node, UPLINK_MTU, address_of, exec_in, links_in, ping};
use serde_json::{Value, json};

fn add(
    node: &mut Node,
    tag: &str,
    version: &str,
    extra: Value,
) -> (String, Value, Vec<(&'static str, String)>) {
    let pod_ns = node.pod_namespace(tag);
    let env = node.pod_env(&pod_ns, &format!("ctr-{tag}"), "default", tag);
    let run = node.cni("ADD", &node.conf(version, extra), &env);
    run.success();
    (pod_ns, run.json(), env)
}

fn host_veths(node: &Node) -> Vec<String> {
    node.links()
        .into_iter()
        .filter(|l| l.starts_with("podr"))
        .collect()
}

#[test]
fn add_gives_a_working_pod_and_del_removes_everything_twice() {
    let mut node = Node::start();
    let (pod_a, result_a, env_a) = add(&mut node, "a", "1.1.0", json!({"families": ["ipv4"]}));
    let (pod_b, result_b, _) = add(&mut node, "b", "1.1.0", json!({"families": ["ipv4"]}));
    let a = address_of(&result_a, 4).unwrap();
    let b = address_of(&result_b, 4).unwrap();
    assert_ne!(a, b);
    assert!(a.starts_with("10.96."), "{result_a}");

    // The pod side: eth0 with a /32, the uplink's MTU, the default route via
    // the link-local gateway.
    let addr = exec_in(&pod_a, &["ip", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(addr.contains(&format!("{a}/32")), "{addr}");
    let link = exec_in(&pod_a, &["ip", "-o", "link", "show", "dev", "eth0"]).unwrap();
    assert!(link.contains(&format!("mtu {UPLINK_MTU}")), "{link}");
    let routes = exec_in(&pod_a, &["ip", "route"]).unwrap();
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    // The node side: the /32 through the host veth, with our protocol.
    let host_route = node.ip(&["route", "show", &format!("{a}/32")]);
    assert!(host_route.contains("dev podr"), "{host_route}");
    assert!(
        host_route.contains("proto 211") || host_route.contains("proto podroute-cni"),
        "{host_route}"
    );
    assert_eq!(host_veths(&node).len(), 2);

    ping(&pod_a, NODE_V4).unwrap();
    ping(&pod_a, &b).unwrap();
    ping(&pod_b, &a).unwrap();

    // Proxy ARP answers for the gateway too, once the pod's own neighbour
    // entry is gone.
    exec_in(
        &pod_a,
        &["ip", "neigh", "del", "169.254.1.1", "dev", "eth0"],
    )
    .unwrap();
    ping(&pod_a, NODE_V4).unwrap();

    // DEL: twice, both succeed; the veth, the route and the allocation go.
    let conf = node.conf("1.1.0", json!({"families": ["ipv4"]}));
    node.cni("DEL", &conf, &env_a).success();
    node.cni("DEL", &conf, &env_a).success();
    assert!(!links_in(&pod_a).contains(&"eth0".to_owned()));
    assert_eq!(host_veths(&node).len(), 1);
    assert!(
        node.ip(&["route", "show", &format!("{a}/32")])
            .trim()
            .is_empty()
    );
    // The freed address is handed out again (no cooldown on this ipamd).
    let pod_c = node.pod_namespace("c");
    let env_c = node.pod_env(&pod_c, "ctr-c", "default", "c");
    let run = node.cni("ADD", &conf, &env_c);
    assert_eq!(address_of(&run.success().json(), 4).unwrap(), a);
    // DEL after the pod's namespace is gone is still fine.
    node.cni("DEL", &conf, &env_c).success();
    podroute_lab::netns::remove(&pod_c, std::time::Duration::from_secs(2)).unwrap();
    node.cni("DEL", &conf, &env_c).success();
}

#[test]
fn ipv6_and_dual_stack_pods_reach_the_node_and_each_other() {
    let mut node = Node::start();
    let (pod6, result6, _) = add(&mut node, "v6", "1.1.0", json!({"families": ["ipv6"]}));
    assert!(address_of(&result6, 4).is_none(), "{result6}");
    let a6 = address_of(&result6, 6).unwrap();
    assert!(a6.starts_with("fd00:10:96::"), "{result6}");
    let (dual, result_dual, _) = add(&mut node, "dual", "1.1.0", json!({}));
    let d4 = address_of(&result_dual, 4).unwrap();
    let d6 = address_of(&result_dual, 6).unwrap();

    let routes = exec_in(&pod6, &["ip", "-6", "route"]).unwrap();
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes}"
    );
    ping(&pod6, NODE_V6).unwrap();
    ping(&pod6, &d6).unwrap();
    ping(&dual, &a6).unwrap();
    ping(&dual, NODE_V4).unwrap();
    let host_route = node.ip(&["-6", "route", "show", &format!("{d6}/128")]);
    assert!(host_route.contains("dev podr"), "{host_route}");
    let host_route = node.ip(&["route", "show", &format!("{d4}/32")]);
    assert!(host_route.contains("dev podr"), "{host_route}");
}

#[test]
fn check_passes_then_catches_a_deleted_route() {
    let mut node = Node::start();
    let conf_extra = json!({"families": ["ipv4"]});
    let (pod, result, env) = add(&mut node, "chk", "1.1.0", conf_extra.clone());
    let mut conf = node.conf("1.1.0", conf_extra);
    conf["prevResult"] = result.clone();
    node.cni("CHECK", &conf, &env).success();

    let a = address_of(&result, 4).unwrap();
    node.ip(&["route", "del", &format!("{a}/32")]);
    let msg = node.cni("CHECK", &conf, &env).error(105);
    assert!(msg.contains(&format!("{a}/32")), "{msg}");

    // And on the pod side.
    let (pod2, result2, env2) = add(&mut node, "chk2", "1.1.0", json!({"families": ["ipv4"]}));
    let mut conf2 = node.conf("1.1.0", json!({"families": ["ipv4"]}));
    conf2["prevResult"] = result2;
    exec_in(&pod2, &["ip", "route", "del", "default"]).unwrap();
    let msg = node.cni("CHECK", &conf2, &env2).error(105);
    assert!(msg.contains("default route"), "{msg}");

    // CHECK without prevResult is a configuration error.
    node.cni("CHECK", &node.conf("1.1.0", json!({})), &env)
        .error(7);
    let _ = pod;
}

#[test]
fn gc_releases_leaked_allocations_and_orphaned_veths() {
    let mut node = Node::start();
    let extra = json!({"families": ["ipv4"]});
    let (pod_keep, keep, _) = add(&mut node, "keep", "1.1.0", extra.clone());
    let (_pod_leak, leak, _) = add(&mut node, "leak", "1.1.0", extra.clone());
    assert_eq!(host_veths(&node).len(), 2);

    let mut conf = node.conf("1.1.0", extra.clone());
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-keep", "ifname": "eth0"}]);
    let run = node.cni("GC", &conf, &[]);
    run.success();
    assert!(run.stdout.is_empty(), "GC prints nothing: {}", run.stdout);

    assert_eq!(host_veths(&node).len(), 1);
    ping(&pod_keep, NODE_V4).unwrap();
    // The leaked address is free again: the next pod gets it.
    let (_, next, _) = add(&mut node, "next", "1.1.0", extra);
    assert_eq!(address_of(&next, 4), address_of(&leak, 4));
    assert_ne!(address_of(&next, 4), address_of(&keep, 4));
}

#[test]
fn fifty_concurrent_adds_on_one_node_all_succeed_with_distinct_addresses() {
    let mut node = Node::start();
    let conf = node.conf("1.1.0", json!({"families": ["ipv4"]}));
    let pods: Vec<(String, Vec<(&'static str, String)>)> = (0..50)
        .map(|i| {
            let tag = format!("c{i}");
            let ns = node.pod_namespace(&tag);
            let env = node.pod_env(&ns, &format!("ctr-{tag}"), "load", &tag);
            (ns, env)
        })
        .collect();
    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(_, env)| scope.spawn(|| node.cni("ADD", &conf, env)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().success().json())
            .collect()
    });
    let addresses: HashSet<String> = results.iter().map(|r| address_of(r, 4).unwrap()).collect();
    assert_eq!(addresses.len(), 50, "addresses must be distinct");
    assert_eq!(host_veths(&node).len(), 50);
    let routes = node.ip(&["route", "show", "proto", "211"]);
    assert_eq!(routes.lines().count(), 50, "{routes}");
    // A few of them talk, across the node.
    ping(&pods[0].0, &address_of(&results[49], 4).unwrap()).unwrap();
    ping(&pods[25].0, NODE_V4).unwrap();

    // And 50 concurrent DELs leave nothing.
    std::thread::scope(|scope| {
        for (_, env) in &pods {
            scope.spawn(|| node.cni("DEL", &conf, env).success().ok);
        }
    });
    assert!(host_veths(&node).is_empty());
    assert!(
        node.ip(&["route", "show", "proto", "211"])
            .trim()
            .is_empty()
    );
}

/// The keys a result of `version` may hold (CNI spec 0.4.0, 1.0.0, 1.1.0
/// "Success" result), checked recursively.
fn assert_result_fields(result: &Value, version: &str) {
    let top: &[&str] = &["cniVersion", "interfaces", "ips", "routes", "dns"];
    let interface: &[&str] = if version == "1.1.0" {
        &["name", "mac", "mtu", "sandbox", "socketPath", "pciID"]
    } else {
        &["name", "mac", "sandbox"]
    };
    let ip: &[&str] = if version == "0.4.0" {
        &["version", "address", "gateway", "interface"]
    } else {
        &["address", "gateway", "interface"]
    };
    let route: &[&str] = if version == "1.1.0" {
        &["dst", "gw", "mtu", "advmss", "priority", "table", "scope"]
    } else {
        &["dst", "gw"]
    };
    let keys_within = |value: &Value, allowed: &[&str], what: &str| {
        for key in value.as_object().unwrap().keys() {
            assert!(
                allowed.contains(&key.as_str()),
                "{version}: {what} has {key}: {value}"
            );
        }
    };
    keys_within(result, top, "result");
    assert_eq!(result["cniVersion"], version);
    let interfaces = result["interfaces"].as_array().unwrap();
    for i in interfaces {
        keys_within(i, interface, "interface");
        assert!(
            i["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty() && n.len() <= 15)
        );
        let mac = i["mac"].as_str().unwrap();
        assert_eq!(mac.len(), 17, "{mac}");
    }
    assert!(interfaces.iter().any(|i| {
        i["sandbox"]
            .as_str()
            .is_some_and(|s| s.starts_with("/run/netns/"))
    }));
    for entry in result["ips"].as_array().unwrap() {
        keys_within(entry, ip, "ip");
        let index = entry["interface"].as_u64().unwrap() as usize;
        assert!(
            interfaces[index]["sandbox"].is_string(),
            "ips[].interface points at the pod's interface"
        );
        let address = entry["address"].as_str().unwrap();
        assert!(address.parse::<ipnetwork::IpNetwork>().is_ok(), "{address}");
        if version == "0.4.0" {
            let want = if address.contains(':') { "6" } else { "4" };
            assert_eq!(entry["version"], want);
        }
    }
    for r in result["routes"].as_array().unwrap() {
        keys_within(r, route, "route");
        assert!(
            r["dst"]
                .as_str()
                .unwrap()
                .parse::<ipnetwork::IpNetwork>()
                .is_ok()
        );
    }
    assert!(result["dns"].is_object());
}

#[test]
fn the_result_matches_each_supported_spec_version() {
    let mut node = Node::start();
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let tag = format!("r{}", version.replace('.', ""));
        let (_, result, _) = add(&mut node, &tag, version, json!({}));
        assert_result_fields(&result, version);
        let pod_interface = &result["interfaces"][1];
        assert_eq!(pod_interface["name"], "eth0");
        if version == "1.1.0" {
            assert_eq!(pod_interface["mtu"], common::UPLINK_MTU, "{result}");
        } else {
            assert!(pod_interface.get("mtu").is_none(), "{result}");
        }
        assert_eq!(
            result["ips"].as_array().unwrap().len(),
            2,
            "dual stack: {result}"
        );
    }
}

#[test]
fn refusals_leave_no_veth_and_no_allocation() {
    let mut node = Node::with_pools(
        "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: tiny
spec:
  cidr: 10.97.0.0/30
  blockSize: 30
",
    );
    let conf = node.conf("1.1.0", json!({}));

    // No ipamd endpoint: an invalid configuration.
    let pod = node.pod_namespace("noep");
    let env = node.pod_env(&pod, "ctr-noep", "default", "noep");
    let mut no_endpoint = conf.clone();
    no_endpoint.as_object_mut().unwrap().remove("ipamd");
    let msg = node.cni("ADD", &no_endpoint, &env).error(7);
    assert!(msg.contains("ipamd"), "{msg}");

    // A netns path that is not a namespace.
    let mut env_bad = env.clone();
    env_bad[1].1 = "/run/netns/does-not-exist-pcni".to_owned();
    let msg = node.cni("ADD", &conf, &env_bad).error(103);
    assert!(msg.contains("does-not-exist-pcni"), "{msg}");

    // An interface of that name already in the pod.
    exec_in(
        &pod,
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
        ],
    )
    .unwrap();
    let msg = node.cni("ADD", &conf, &env).error(104);
    assert!(msg.contains("eth0"), "{msg}");
    assert!(host_veths(&node).is_empty());

    // The pool holds 4 addresses: 4 pods fit, the fifth is refused with
    // ipamd's words, and none of the refusals above took one.
    for i in 0..4 {
        add(&mut node, &format!("t{i}"), "1.1.0", json!({}));
    }
    let pod5 = node.pod_namespace("t4");
    let env5 = node.pod_env(&pod5, "ctr-t4", "default", "t4");
    let msg = node.cni("ADD", &conf, &env5).error(101);
    assert!(msg.contains("tiny"), "ipamd's words name the pool: {msg}");
    assert_eq!(host_veths(&node).len(), 4);
    assert!(!links_in(&pod5).contains(&"eth0".to_owned()));

    // ipamd down: try again later, for ADD and DEL; STATUS says not ready.
    node.stop_ipamd();
    node.cni("ADD", &conf, &env5).error(11);
    node.cni("DEL", &conf, &env5).error(11);
    node.cni("STATUS", &conf, &[]).error(50);
    assert_eq!(host_veths(&node).len(), 4);
    node.start_ipamd();
    node.cni("STATUS", &conf, &[]).success();
}

#[test]
fn install_writes_the_binary_and_conflist_and_the_installed_plugin_answers() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let conf_dir = dir.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(conf_dir.join("05-other.conflist"), "{}").unwrap();
    let out = std::process::Command::new(common::CNI)
        .args(["install", "--bin-dir"])
        .arg(&bin)
        .arg("--conf-dir")
        .arg(&conf_dir)
        .args(["--node-name", "node-x"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(conf_dir.join("05-other.conflist")).unwrap(),
        "{}"
    );
    let conflist: Value = serde_json::from_str(
        &std::fs::read_to_string(conf_dir.join("10-podroute.conflist")).unwrap(),
    )
    .unwrap();
    assert_eq!(conflist["plugins"][0]["type"], "podroute-cni");
    assert_eq!(conflist["plugins"][0]["nodeName"], "node-x");
    let run = common::run_cni_binary(&bin.join("podroute-cni"), "VERSION", "");
    assert!(run.ok);
    assert_eq!(run.json()["cniVersion"], "1.1.0");

    // For an older runtime: a 1.0.0 list; an unknown version is refused.
    let install = |version: &str| {
        std::process::Command::new(common::CNI)
            .args(["install", "--cni-version", version, "--bin-dir"])
            .arg(&bin)
            .arg("--conf-dir")
            .arg(&conf_dir)
            .output()
            .unwrap()
    };
    assert!(install("1.0.0").status.success());
    let conflist: Value = serde_json::from_str(
        &std::fs::read_to_string(conf_dir.join("10-podroute.conflist")).unwrap(),
    )
    .unwrap();
    assert_eq!(conflist["cniVersion"], "1.0.0");
    let refused = install("0.3.1");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("0.3.1"));
}

#[test]
fn status_is_ready_only_when_ipamd_answers() {
    let mut node = Node::start();
    let conf = node.conf("1.1.0", json!({}));
    let run = node.cni("STATUS", &conf, &[]);
    run.success();
    assert!(
        run.stdout.is_empty(),
        "STATUS prints nothing: {}",
        run.stdout
    );
    // ipamd down on a node that forwards nothing: existing pods could not
    // leave the node either (51); once it forwards, plain 50. (A new
    // namespace may inherit the host's ip_forward: set it.)
    exec_in(&node.ns, &["sysctl", "-qw", "net.ipv4.ip_forward=0"]).unwrap();
    exec_in(
        &node.ns,
        &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"],
    )
    .unwrap();
    node.stop_ipamd();
    let msg = node.cni("STATUS", &conf, &[]).error(51);
    assert!(msg.contains("ipamd"), "{msg}");
    exec_in(&node.ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    node.cni("STATUS", &conf, &[]).error(50);
    node.start_ipamd();
    node.cni("STATUS", &conf, &[]).success();
}

#[test]
fn a_failure_after_allocation_gives_the_address_back_and_leaves_no_veth() {
    let mut node = Node::start();
    // An uplink below IPv6's minimum MTU: the dual-stack ADD allocates, then
    // finds the MTU unusable for its IPv6 address and must undo everything.
    node.ip(&["link", "set", "uplink0", "mtu", "1200"]);
    let pod = node.pod_namespace("small");
    let env = node.pod_env(&pod, "ctr-small", "default", "small");
    let msg = node
        .cni("ADD", &node.conf("1.1.0", json!({})), &env)
        .error(7);
    assert!(msg.contains("1280"), "{msg}");
    assert!(host_veths(&node).is_empty());
    assert!(!links_in(&pod).contains(&"eth0".to_owned()));
    // The pool's first addresses are free again: the next pod gets them.
    let (_, result, _) = add(&mut node, "next", "1.1.0", json!({"mtu": 1500}));
    assert_eq!(address_of(&result, 4).unwrap(), "10.96.0.0", "{result}");
}

#[test]
fn gc_of_one_network_leaves_another_networks_pods_alone() {
    let mut node = Node::start();
    let (_, _, _) = add(&mut node, "mine", "1.1.0", json!({"families": ["ipv4"]}));
    let other_conf = json!({"families": ["ipv4"], "name": "othernet"});
    let (other_pod, other, other_env) = add(&mut node, "theirs", "1.1.0", other_conf.clone());
    assert_eq!(host_veths(&node).len(), 2);

    // podnet's GC with no valid attachment at all.
    let mut conf = node.conf("1.1.0", json!({}));
    conf["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", &conf, &[]).success();
    assert_eq!(host_veths(&node).len(), 1, "only podnet's veth goes");
    ping(&other_pod, NODE_V4).unwrap();
    // othernet's address is still held: CHECK asks ipamd.
    let mut check = node.conf("1.1.0", other_conf);
    check["prevResult"] = other;
    node.cni("CHECK", &check, &other_env).success();
}

#[test]
fn del_without_cni_netns_and_with_an_unreadable_prev_result_still_cleans_up() {
    let mut node = Node::start();
    let (_, result, env) = add(&mut node, "d", "1.1.0", json!({"families": ["ipv4"]}));
    let env: Vec<_> = env.into_iter().filter(|(k, _)| *k != "CNI_NETNS").collect();
    let mut conf = node.conf("1.1.0", json!({"families": ["ipv4"]}));
    conf["prevResult"] = json!({"ips": [{"address": "not an address"}]});
    node.cni("DEL", &conf, &env).success();
    assert!(host_veths(&node).is_empty());
    let a = address_of(&result, 4).unwrap();
    assert!(
        node.ip(&["route", "show", &format!("{a}/32")])
            .trim()
            .is_empty()
    );
}

#[test]
fn a_new_sandbox_of_the_same_pod_replaces_the_old_veth_and_the_old_del_spares_it() {
    let mut node = Node::start();
    let conf = node.conf("1.1.0", json!({"families": ["ipv4"]}));
    let old_ns = node.pod_namespace("old");
    let old_env = node.pod_env(&old_ns, "ctr-old", "default", "web-0");
    node.cni("ADD", &conf, &old_env).success();
    // The runtime makes a new sandbox before the old one's DEL.
    let new_ns = node.pod_namespace("new");
    let new_env = node.pod_env(&new_ns, "ctr-new", "default", "web-0");
    let new = node.cni("ADD", &conf, &new_env).success().json();
    assert_eq!(host_veths(&node).len(), 1, "same pod, same host veth name");
    node.cni("DEL", &conf, &old_env).success();
    assert_eq!(
        host_veths(&node).len(),
        1,
        "the old sandbox's DEL spares the new veth"
    );
    ping(&new_ns, NODE_V4).unwrap();
    let mut check = conf.clone();
    check["prevResult"] = new;
    node.cni("CHECK", &check, &new_env).success();
}
