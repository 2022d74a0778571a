// What the renderer writes: names within the kernel's limits, the chain
// layout, set entries as ipset prints them, and changes confined to the
// chains and sets they concern.

use super::*;
use crate::compile::compile;
use crate::model::cluster::Cluster;
use crate::model::objects::Snapshot;
use crate::model::test_fixtures::{xyz_with, xyz_yaml};

fn dataplane(policies: &str, node: &str) -> Dataplane {
    render(
        &compile(&xyz_with(policies), node),
        &RenderOptions::default(),
    )
}

fn lines(table: &Table, chain: &str) -> Vec<String> {
    table.chains[chain].iter().map(|r| r.line.clone()).collect()
}

const FROM_Y_NAMED: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-y, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: y}\n    ports: [{port: serve-80-tcp}, {port: 81, protocol: SCTP}]\n";

#[test]
fn names_fit_the_kernel_limits() {
    let plane = dataplane(FROM_Y_NAMED, "n1");
    for table in [&plane.v4, &plane.v6] {
        for name in table.chains.keys() {
            assert!(name.len() <= dataplane::MAX_CHAIN_NAME, "{name}");
            assert!(name.starts_with(dataplane::CHAIN_PREFIX));
        }
    }
    for name in plane.sets.keys() {
        assert!(
            name.len() + "-tmp".len() <= dataplane::MAX_SET_NAME,
            "{name}"
        );
        assert!(name.starts_with(dataplane::SET_PREFIX));
    }
}

#[test]
fn the_layout_hooks_dispatch_endpoint_and_policy_chains() {
    let plane = dataplane(FROM_Y_NAMED, "n1");
    let v4 = &plane.v4;
    let hooks: Vec<(&str, &str)> = v4
        .hooks
        .iter()
        .map(|h| (h.builtin.as_str(), h.line.rsplit(' ').next().unwrap()))
        .collect();
    assert_eq!(
        hooks,
        vec![("FORWARD", FORWARD_CHAIN), ("INPUT", INPUT_CHAIN)]
    );
    let compiled = compile(&xyz_with(FROM_Y_NAMED), "n1");
    let xa = compiled.endpoint(&ObjectKey::new("x", "a")).unwrap();
    let from_pod = lines(v4, FROM_POD_CHAIN);
    assert_eq!(
        from_pod.len(),
        4,
        "three endpoints and the unknown-pod drop"
    );
    assert!(from_pod[0].starts_with(&format!("-i {} ", xa.interface)));
    assert!(from_pod[0].ends_with(&format!("-g {}", endpoint_chain(xa, Direction::Egress))));
    assert!(from_pod[3].ends_with("-j DROP"));

    let ingress = lines(v4, &endpoint_chain(xa, Direction::Ingress));
    let policy = policy_chain(&ObjectKey::new("x", "from-y"), Direction::Ingress);
    assert!(ingress[0].starts_with("-m conntrack --ctstate RELATED,ESTABLISHED"));
    assert!(
        ingress[1].starts_with("-s 10.0.0.1 ") && ingress[1].ends_with("-j RETURN"),
        "from itself"
    );
    assert!(ingress[2].ends_with("-j MARK --set-xmark 0x0/0x40000"));
    assert!(ingress[3].ends_with(&format!("-j {policy}")));
    assert!(ingress[4].starts_with("-m mark --mark 0x40000/0x40000"));
    assert!(ingress.last().unwrap().ends_with("-j DROP"));

    let egress = lines(v4, &endpoint_chain(xa, Direction::Egress));
    assert!(egress[0].starts_with("! -s 10.0.0.1 "), "{egress:?}");
    assert!(
        egress[2].starts_with("-m addrtype --dst-type LOCAL "),
        "to its node: {egress:?}"
    );
    assert!(
        egress[3].starts_with("-d 10.0.0.1 "),
        "to itself: {egress:?}"
    );
    assert!(
        egress.last().unwrap().ends_with("-j RETURN"),
        "not isolated for egress"
    );

    let rules = lines(v4, &policy);
    assert_eq!(rules.len(), 2, "{rules:?}");
    let pods_y = rules[0].split(' ').nth(3).unwrap().to_owned();
    assert!(rules[0].starts_with(&format!(
        "-m set --match-set {pods_y} src -p tcp -m set --match-set podroute-n4-"
    )));
    assert!(rules[0].contains(" dst,dst "));
    assert!(
        rules[1].contains("-p sctp -m sctp --dport 81 "),
        "SCTP renders: {}",
        rules[1]
    );
    assert!(rules[1].ends_with("-j MARK --set-xmark 0x40000/0x40000"));
    let members = &plane.sets[&pods_y].members;
    assert_eq!(
        members.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["10.0.1.1", "10.0.1.2", "10.0.1.3"]
    );
}

#[test]
fn ipv6_has_its_own_sets_and_neighbour_discovery() {
    let plane = dataplane(FROM_Y_NAMED, "n1");
    let compiled = compile(&xyz_with(FROM_Y_NAMED), "n1");
    let xa = compiled.endpoint(&ObjectKey::new("x", "a")).unwrap();
    let egress = lines(&plane.v6, &endpoint_chain(xa, Direction::Egress));
    assert!(
        egress[0]
            .starts_with("-d fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m hl --hl-eq 255 ")
    );
    assert!(egress[5].starts_with("-d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type 136 "));
    assert!(egress[6].starts_with("! -s fd00::1 "), "{egress:?}");
    let policy = lines(
        &plane.v6,
        &policy_chain(&ObjectKey::new("x", "from-y"), Direction::Ingress),
    );
    assert!(policy[0].contains("podroute-p6-"));
    let named: Vec<&IpSet> = plane
        .sets
        .values()
        .filter(|s| s.kind == dataplane::SetKind::HashIpPort && s.family == Family::V6)
        .collect();
    assert_eq!(named.len(), 1);
    assert!(
        named[0].members.contains("fd00::1,tcp:80"),
        "{:?}",
        named[0].members
    );
}

#[test]
fn ip_blocks_become_net_sets_with_nomatch_excepts_and_split_zero() {
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.0.2.7/32]}\n    - ipBlock: {cidr: 'fd00::/64'}\n";
    let plane = dataplane(policy, "n1");
    let nets: Vec<&IpSet> = plane
        .sets
        .values()
        .filter(|s| s.kind == dataplane::SetKind::HashNet)
        .collect();
    assert_eq!(nets.len(), 2, "one per block, each in its own family only");
    let v4 = nets.iter().find(|s| s.family == Family::V4).unwrap();
    assert_eq!(
        v4.members.iter().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "0.0.0.0/1",
            "10.0.0.0/8 nomatch",
            "128.0.0.0/1",
            "192.0.2.7 nomatch"
        ]
    );
    let chain = lines(
        &plane.v4,
        &policy_chain(&ObjectKey::new("x", "out"), Direction::Egress),
    );
    assert_eq!(chain.len(), 1, "the IPv6 block has no IPv4 rule: {chain:?}");
    assert!(chain[0].starts_with(&format!("-m set --match-set {} dst ", v4.name)));
}

#[test]
fn a_relabel_changes_set_members_only() {
    let yaml = format!("{}---\n{FROM_Y_NAMED}", xyz_yaml());
    let mut snapshot = Snapshot::from_yaml(&yaml).unwrap();
    let before = render(
        &compile(&Cluster::build(&snapshot).0, "n1"),
        &RenderOptions::default(),
    );
    // Namespace z takes the label the peer selects: its pods join the set.
    let z = snapshot
        .namespaces
        .iter_mut()
        .find(|n| n.metadata.name == "z")
        .unwrap();
    z.metadata.labels.insert("ns".into(), "y".into());
    let after = render(
        &compile(&Cluster::build(&snapshot).0, "n1"),
        &RenderOptions::default(),
    );
    assert_eq!(before.v4, after.v4);
    assert_eq!(before.v6, after.v6);
    let changed: Vec<&String> = before
        .sets
        .keys()
        .filter(|k| before.sets[*k] != after.sets[*k])
        .collect();
    assert_eq!(changed.len(), 2, "the pod set of each family: {changed:?}");
}

#[test]
fn a_policy_change_rewrites_only_its_chain() {
    let other = FROM_Y_NAMED.replace("from-y", "other");
    let before = dataplane(&format!("{FROM_Y_NAMED}---\n{other}"), "n1");
    let changed = other.replace("{port: 81, protocol: SCTP}", "{port: 82, protocol: UDP}");
    let after = dataplane(&format!("{FROM_Y_NAMED}---\n{changed}"), "n1");
    let differing: Vec<&String> = before
        .v4
        .chains
        .keys()
        .filter(|k| before.v4.chains[*k] != after.v4.chains[*k])
        .collect();
    assert_eq!(
        differing,
        vec![&policy_chain(
            &ObjectKey::new("x", "other"),
            Direction::Ingress
        )]
    );
}

#[test]
fn policy_rules_do_not_grow_with_pods() {
    let count = |extra_pods: usize| {
        let mut yaml = format!("{}---\n{FROM_Y_NAMED}", xyz_yaml());
        for i in 0..extra_pods {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: extra{i}, namespace: y}}\nspec: {{nodeName: n2}}\nstatus: {{podIP: 10.1.{}.{}}}\n",
                i / 250,
                i % 250 + 1
            ));
        }
        let plane = render(
            &compile(&crate::model::test_fixtures::cluster(&yaml), "n1"),
            &RenderOptions::default(),
        );
        let members: usize = plane.sets.values().map(|s| s.members.len()).sum();
        (plane.v4.rule_count(), members)
    };
    let (rules_small, members_small) = count(0);
    let (rules_big, members_big) = count(1000);
    assert_eq!(rules_small, rules_big);
    assert_eq!(members_big, members_small + 1000);
}

#[test]
fn hostile_names_cannot_break_out_of_a_comment() {
    let mut rules = BTreeMap::new();
    let mut chain = ChainBuilder::new("PODROUTE-T");
    chain.push("", "x/\"evil\" -j ACCEPT", "-j DROP");
    chain.finish(&mut rules);
    let line = &rules["PODROUTE-T"][0].line;
    assert_eq!(line.matches('"').count(), 2, "{line}");
    assert!(line.ends_with("_evil_ -j ACCEPT\" -j DROP"));
}

#[test]
fn hashes_chain_so_equal_lists_mean_equal_chains() {
    let a = dataplane(FROM_Y_NAMED, "n1");
    let b = dataplane(FROM_Y_NAMED, "n1");
    assert_eq!(a, b, "deterministic");
    for rules in a.v4.chains.values() {
        for rule in rules {
            assert!(rule.line.contains(&format!("\"podroute:{} ", rule.hash)));
            assert_eq!(rule.hash.len(), 16);
        }
    }
    // The same rule in two chains hashes differently.
    let forward = &a.v4.chains[FORWARD_CHAIN][0].hash;
    let input = &a.v4.chains[INPUT_CHAIN][0].hash;
    assert_ne!(forward, input);
}

#[test]
fn a_family_a_pod_lacks_gets_a_drop_and_no_chains_or_sets() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {nodeName: n1}\nstatus: {podIP: 10.0.0.1}\n\
---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {pod: b}}\nspec: {nodeName: n2}\nstatus: {podIP: 10.0.0.2}\n\
---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-b, namespace: x}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {pod: b}\n";
    let plane = render(
        &compile(&crate::model::test_fixtures::cluster(yaml), "n1"),
        &RenderOptions::default(),
    );
    let mut v6_chains: Vec<&str> = plane.v6.chains.keys().map(String::as_str).collect();
    v6_chains.sort_unstable();
    assert_eq!(
        v6_chains,
        vec![FORWARD_CHAIN, FROM_POD_CHAIN, INPUT_CHAIN, TO_POD_CHAIN]
    );
    let from_pod = lines(&plane.v6, FROM_POD_CHAIN);
    assert!(from_pod[0].contains("x/a has no IPv6 address") && from_pod[0].ends_with("-j DROP"));
    assert!(
        plane.sets.values().all(|s| s.family == Family::V4),
        "{:?}",
        plane.sets.keys()
    );
    assert_eq!(plane.sets.len(), 1, "the pod set of the rule, IPv4 only");
    assert!(
        plane.v4.chains.len() > 4,
        "IPv4 keeps its endpoint and policy chains"
    );
}

#[test]
fn a_chain_name_two_owners_would_share_is_salted_for_the_second() {
    let mut taken = HashMap::new();
    let squatted = hashed_chain("PI", "x/victim");
    taken.insert(squatted.clone(), "x/attacker".to_owned());
    let name = claim_chain(&mut taken, "PI", "x/victim".to_owned());
    assert_ne!(name, squatted);
    assert!(name.len() <= dataplane::MAX_CHAIN_NAME);
    assert_eq!(taken[&squatted], "x/attacker");
    assert_eq!(
        claim_chain(&mut taken, "PI", "x/victim".to_owned()),
        name,
        "stable"
    );
}

#[test]
fn a_whole_half_of_the_address_space_can_be_excepted() {
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 0.0.0.0/0, except: [128.0.0.0/1, 10.0.0.0/8]}\n";
    let plane = dataplane(policy, "n1");
    let net = plane
        .sets
        .values()
        .find(|s| s.kind == dataplane::SetKind::HashNet)
        .unwrap();
    assert_eq!(
        net.members.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["0.0.0.0/1", "10.0.0.0/8 nomatch"]
    );
}

#[test]
fn every_drop_rule_is_indexed_with_whose_packets_it_drops() {
    // x/a (n1) isolated for ingress by x/deny; y/a and z/a not isolated;
    // plus an IPv4-only pod w/a on n1.
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: a, namespace: w}}\nspec: {{nodeName: n1}}\nstatus: {{podIP: 10.0.9.1}}\n\
---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: x}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n",
        xyz_yaml()
    );
    let compiled = compile(&crate::model::test_fixtures::cluster(&yaml), "n1");
    let (plane, drops) = render_with_drops(&compiled, &RenderOptions::default());
    assert_eq!(plane, render(&compiled, &RenderOptions::default()));

    // Every DROP in either table is indexed under its own chain and hash.
    let mut seen = 0;
    for table in [&plane.v4, &plane.v6] {
        for (chain, rules) in &table.chains {
            for rule in rules.iter().filter(|r| r.line.ends_with("-j DROP")) {
                let drop = &drops[&(table.family, rule.hash.clone())];
                assert_eq!(&drop.chain, chain);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, drops.len());

    let mut described: Vec<String> = drops
        .values()
        .map(|d| {
            let who = d
                .endpoint
                .as_ref()
                .map_or("-".to_string(), ToString::to_string);
            format!("{:?} {} {} {who}", d.family, d.direction, d.reason)
        })
        .collect();
    described.sort();
    let expected = [
        // Each family: the unknown-pod drops, and the spoofing drop of
        // each endpoint with an address of the family.
        "V4 egress spoofed w/a",
        "V4 egress spoofed x/a",
        "V4 egress spoofed y/a",
        "V4 egress spoofed z/a",
        "V4 egress unknown_pod -",
        // Only x/a is isolated: one policy drop per family.
        "V4 ingress policy x/a",
        "V4 ingress unknown_pod -",
        "V6 egress no_address w/a",
        "V6 egress spoofed x/a",
        "V6 egress spoofed y/a",
        "V6 egress spoofed z/a",
        "V6 egress unknown_pod -",
        "V6 ingress no_address w/a",
        "V6 ingress policy x/a",
        "V6 ingress unknown_pod -",
    ];
    assert_eq!(described, expected);

    // The policy drop is the last rule of x/a's ingress chain.
    let xa = compiled.endpoint(&ObjectKey::new("x", "a")).unwrap();
    let chain = endpoint_chain(xa, Direction::Ingress);
    let last = plane.v4.chains[&chain].last().unwrap();
    let drop = &drops[&(Family::V4, last.hash.clone())];
    assert_eq!(drop.reason, DropReason::Policy);
    assert_eq!(drop.chain, chain);
}
