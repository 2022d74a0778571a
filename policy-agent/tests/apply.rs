// The applier against the real kernel: each test programs a hand-made
// Dataplane into a fresh network namespace with iptables-restore and ipset
// and checks what the kernel then holds, what the report says, and that
// nobody else's rules, chains and sets are touched. conntrack list/delete
// runs on a real TCP connection between two namespaces.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use podroute_lab::netns;
use podroute_policy::apply::conntrack::{self, ConntrackFlow};
use podroute_policy::apply::{Applier, ApplyReport, Runner};
use podroute_policy::render::dataplane::{Dataplane, Family, Hook, IpSet, Rule, SetKind, Table};

const DEADLINE: Duration = Duration::from_secs(20);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace of this test run (`pa<pid>-<n>`) and the processes
/// started in it, all removed on drop, also when the test fails.
struct Ns {
    name: String,
    children: Vec<Child>,
}

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "pa{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        netns::add(&name).unwrap();
        let ns = Ns {
            name,
            children: Vec::new(),
        };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn runner(&self) -> Runner {
        Runner::in_netns(&self.name)
    }

    /// Runs `argv` in the namespace; its stdout.
    fn sh(&self, argv: &[&str]) -> String {
        let out = netns::run(&mut netns::command_in(&self.name, argv)).unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Whether `argv` exits 0 in the namespace.
    fn ok(&self, argv: &[&str]) -> bool {
        netns::command_in(&self.name, argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn spawn(&mut self, argv: &[&str]) {
        let child = netns::command_in(&self.name, argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn save(&self, family: Family) -> String {
        let program = match family {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        };
        self.sh(&[program, "-t", "filter"])
    }

    /// The rules and declarations of the filter table, without comments
    /// and counters: what must stay equal when nothing is meant to change.
    fn rules(&self, family: Family) -> Vec<String> {
        self.save(family)
            .lines()
            .filter(|l| l.starts_with('-') || l.starts_with(':'))
            .map(|l| l.split(" [").next().unwrap().to_string())
            .collect()
    }

    /// Rules and chains of the table that are not ours.
    fn foreign_rules(&self, family: Family) -> Vec<String> {
        self.rules(family)
            .into_iter()
            .filter(|l| !l.contains("PODROUTE-") && !l.contains("podroute:"))
            .collect()
    }

    /// `-A` lines of one chain, after `-A CHAIN `.
    fn chain(&self, family: Family, chain: &str) -> Vec<String> {
        let prefix = format!("-A {chain} ");
        self.rules(family)
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    fn chains(&self, family: Family) -> BTreeSet<String> {
        self.rules(family)
            .iter()
            .filter_map(|l| l.strip_prefix(':'))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    }

    fn sets(&self) -> BTreeSet<String> {
        self.sh(&["ipset", "list", "-n"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `ipset list NAME`: its members and how many rules refer to it.
    fn set(&self, name: &str) -> (BTreeSet<String>, u32) {
        let text = self.sh(&["ipset", "list", name]);
        let references = text
            .lines()
            .find_map(|l| l.strip_prefix("References: "))
            .unwrap()
            .parse()
            .unwrap();
        let members = text
            .split("Members:\n")
            .nth(1)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        (members, references)
    }

    /// Packets counted by the rule with hash `hash`.
    fn packets(&self, family: Family, hash: &str) -> u64 {
        let program = match family {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        };
        let text = self.sh(&[program, "-c", "-t", "filter"]);
        let line = text.lines().find(|l| l.contains(hash)).unwrap();
        let counters = line.strip_prefix('[').unwrap().split(']').next().unwrap();
        counters.split(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = netns::remove(&self.name, Duration::from_secs(5)) {
            eprintln!("cannot remove namespace {}: {e}", self.name);
        }
    }
}

/// A 16-hex hash of `parts`: any stable value does for the applier.
fn hash(parts: &[&str]) -> String {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn rule(chain: &str, matches: &str, target: &str) -> Rule {
    let hash = hash(&[chain, matches, target]);
    let line = format!("{matches} -m comment --comment \"podroute:{hash} test rule\" -j {target}");
    Rule {
        hash,
        line: line.trim_start().to_string(),
    }
}

fn hook(builtin: &str, target: &str) -> Hook {
    let hash = hash(&[builtin, target]);
    Hook {
        builtin: builtin.to_string(),
        line: format!("-m comment --comment \"podroute:{hash} hook\" -j {target}"),
        hash,
    }
}

fn set(name: &str, kind: SetKind, family: Family, members: &[&str]) -> IpSet {
    IpSet {
        name: name.to_string(),
        kind,
        family,
        members: members.iter().map(|m| m.to_string()).collect(),
    }
}

/// Both families, every kind of set, hooks in FORWARD and INPUT.
fn desired() -> Dataplane {
    let mut v4 = Table::empty(Family::V4);
    v4.chains.insert(
        "PODROUTE-FORWARD".to_string(),
        vec![
            rule(
                "PODROUTE-FORWARD",
                "-m set --match-set podroute-t4-pods src",
                "PODROUTE-POD",
            ),
            rule(
                "PODROUTE-FORWARD",
                "-m set --match-set podroute-t4-blocks dst",
                "RETURN",
            ),
        ],
    );
    v4.chains.insert(
        "PODROUTE-POD".to_string(),
        vec![
            rule(
                "PODROUTE-POD",
                "-p tcp -m set --match-set podroute-t4-ports dst,dst",
                "ACCEPT",
            ),
            rule("PODROUTE-POD", "", "DROP"),
        ],
    );
    v4.chains.insert(
        "PODROUTE-INPUT".to_string(),
        vec![rule(
            "PODROUTE-INPUT",
            "-m set --match-set podroute-t4-local src",
            "RETURN",
        )],
    );
    v4.hooks = vec![
        hook("FORWARD", "PODROUTE-FORWARD"),
        hook("INPUT", "PODROUTE-INPUT"),
    ];

    let mut v6 = Table::empty(Family::V6);
    v6.chains.insert(
        "PODROUTE-FORWARD".to_string(),
        vec![rule(
            "PODROUTE-FORWARD",
            "-m set --match-set podroute-t6-pods src",
            "ACCEPT",
        )],
    );
    v6.chains.insert(
        "PODROUTE-INPUT".to_string(),
        vec![rule(
            "PODROUTE-INPUT",
            "-m set --match-set podroute-t6-local src",
            "RETURN",
        )],
    );
    v6.hooks = vec![
        hook("FORWARD", "PODROUTE-FORWARD"),
        hook("INPUT", "PODROUTE-INPUT"),
    ];

    let sets = [
        set(
            "podroute-t4-pods",
            SetKind::HashIp,
            Family::V4,
            &["10.0.0.1", "10.0.0.2"],
        ),
        set(
            "podroute-t4-blocks",
            SetKind::HashNet,
            Family::V4,
            &["10.1.0.0/16", "10.1.2.0/24 nomatch"],
        ),
        set(
            "podroute-t4-ports",
            SetKind::HashIpPort,
            Family::V4,
            &["10.0.0.1,tcp:80", "10.0.0.2,udp:53"],
        ),
        set(
            "podroute-t4-local",
            SetKind::HashIp,
            Family::V4,
            &["127.0.0.1"],
        ),
        set(
            "podroute-t6-pods",
            SetKind::HashIp,
            Family::V6,
            &["fd00::1"],
        ),
        set("podroute-t6-local", SetKind::HashIp, Family::V6, &["::1"]),
    ];
    Dataplane {
        v4,
        v6,
        sets: sets.into_iter().map(|s| (s.name.clone(), s)).collect(),
    }
}

/// A report of an apply that changed nothing.
fn unchanged(d: &Dataplane, kernel_read: bool) -> ApplyReport {
    ApplyReport {
        rules: d.v4.rule_count() + d.v6.rule_count(),
        set_members: d.sets.values().map(|s| s.members.len()).sum(),
        kernel_read,
        ..ApplyReport::default()
    }
}

/// Checks the kernel holds exactly `d` of ours.
fn assert_holds(ns: &Ns, d: &Dataplane) {
    for table in [&d.v4, &d.v6] {
        let ours: BTreeSet<String> = ns
            .chains(table.family)
            .into_iter()
            .filter(|c| c.starts_with("PODROUTE-"))
            .collect();
        assert_eq!(
            ours,
            table.chains.keys().cloned().collect(),
            "{} chains",
            table.family
        );
        for (name, rules) in &table.chains {
            let hashes: Vec<String> = ns
                .chain(table.family, name)
                .iter()
                .map(|l| l.split("podroute:").nth(1).unwrap()[..16].to_string())
                .collect();
            let want: Vec<String> = rules.iter().map(|r| r.hash.clone()).collect();
            assert_eq!(hashes, want, "{} chain {name}", table.family);
        }
        for builtin in ["FORWARD", "INPUT"] {
            let ours: Vec<String> = ns
                .chain(table.family, builtin)
                .iter()
                .filter(|l| l.contains("podroute:"))
                .cloned()
                .collect();
            let want = table.hooks.iter().filter(|h| h.builtin == builtin).count();
            assert_eq!(
                ours.len(),
                want,
                "{} hooks in {builtin}: {ours:?}",
                table.family
            );
            // Ours come first.
            let first = ns.chain(table.family, builtin);
            assert!(
                first.iter().take(want).all(|l| l.contains("podroute:")),
                "{} {builtin} does not start with our hooks: {first:?}",
                table.family
            );
        }
    }
    let ours: BTreeSet<String> = ns
        .sets()
        .into_iter()
        .filter(|s| s.starts_with("podroute-"))
        .collect();
    assert_eq!(ours, d.sets.keys().cloned().collect(), "sets");
}

#[test]
fn first_apply_creates_and_the_same_again_writes_nothing() {
    let ns = Ns::new();
    let d = desired();
    let mut applier = Applier::new(ns.runner());
    // The first apply reads the kernel even when told not to.
    let report = applier.apply(&d, false).unwrap();
    assert_eq!(
        report,
        ApplyReport {
            chains_written: 5,
            hooks_changed: 4,
            sets_created: 6,
            ..unchanged(&d, true)
        }
    );
    assert_holds(&ns, &d);
    let (members, references) = ns.set("podroute-t4-blocks");
    assert_eq!(
        members,
        BTreeSet::from(["10.1.0.0/16".to_string(), "10.1.2.0/24 nomatch".to_string()])
    );
    assert_eq!(references, 1);
    assert_eq!(
        ns.set("podroute-t6-pods").0,
        BTreeSet::from(["fd00::1".to_string()])
    );
    assert!(
        ns.sh(&["ipset", "list", "podroute-t6-pods"])
            .contains("family inet6")
    );

    let before = (ns.rules(Family::V4), ns.rules(Family::V6));
    assert_eq!(applier.apply(&d, false).unwrap(), unchanged(&d, false));
    assert_eq!(applier.apply(&d, true).unwrap(), unchanged(&d, true));
    // A new applier (an agent restart) reads what the old one wrote as equal.
    let mut fresh = Applier::new(ns.runner());
    assert_eq!(fresh.apply(&d, false).unwrap(), unchanged(&d, true));
    assert_eq!((ns.rules(Family::V4), ns.rules(Family::V6)), before);
}

#[test]
fn a_changed_chain_is_the_only_one_rewritten() {
    let ns = Ns::new();
    let mut d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();

    d.v4.chains.get_mut("PODROUTE-POD").unwrap().insert(
        1,
        rule(
            "PODROUTE-POD",
            "-p udp -m set --match-set podroute-t4-ports dst,dst",
            "ACCEPT",
        ),
    );
    let other = ns.chain(Family::V4, "PODROUTE-FORWARD");
    assert_eq!(
        applier.apply(&d, false).unwrap(),
        ApplyReport {
            chains_written: 1,
            ..unchanged(&d, false)
        }
    );
    assert_holds(&ns, &d);
    assert_eq!(ns.chain(Family::V4, "PODROUTE-POD").len(), 3);
    assert_eq!(ns.chain(Family::V4, "PODROUTE-FORWARD"), other);

    // The same in the IPv6 table, found by reading the kernel.
    d.v6.chains.get_mut("PODROUTE-FORWARD").unwrap().push(rule(
        "PODROUTE-FORWARD",
        "-s fd00::/64",
        "RETURN",
    ));
    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            chains_written: 1,
            ..unchanged(&d, true)
        }
    );
    assert_holds(&ns, &d);
    assert!(ns.chain(Family::V6, "PODROUTE-FORWARD")[1].starts_with("-s fd00::/64"));
}

#[test]
fn a_member_change_swaps_the_set_and_its_rules_keep_matching() {
    let ns = Ns::new();
    let mut d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    // INPUT's rule counts pings on lo while 127.0.0.1 is in the set.
    let counting = d.v4.chains["PODROUTE-INPUT"][0].hash.clone();
    let ping = |ns: &Ns| assert!(ns.ok(&["ping", "-c", "1", "-W", "5", "127.0.0.1"]));

    let start = ns.packets(Family::V4, &counting);
    ping(&ns);
    let matched = ns.packets(Family::V4, &counting);
    assert!(matched > start);

    let local = d.sets.get_mut("podroute-t4-local").unwrap();
    local.members = BTreeSet::from(["127.0.0.2".to_string()]);
    assert_eq!(
        applier.apply(&d, false).unwrap(),
        ApplyReport {
            sets_swapped: 1,
            ..unchanged(&d, false)
        }
    );
    assert_eq!(
        ns.set("podroute-t4-local"),
        (BTreeSet::from(["127.0.0.2".to_string()]), 1)
    );
    ping(&ns);
    assert_eq!(ns.packets(Family::V4, &counting), matched);

    // And back, found by reading the kernel: the same rule matches again.
    d.sets.get_mut("podroute-t4-local").unwrap().members =
        BTreeSet::from(["127.0.0.1".to_string(), "127.0.0.3".to_string()]);
    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            sets_swapped: 1,
            ..unchanged(&d, true)
        }
    );
    ping(&ns);
    assert!(ns.packets(Family::V4, &counting) > matched);
    assert_eq!(ns.set("podroute-t4-local").0.len(), 2);
    // No copy is left behind.
    assert!(!ns.sets().iter().any(|s| s.ends_with("-tmp")));
    assert_holds(&ns, &d);
}

#[test]
fn stale_chains_hooks_and_sets_are_removed() {
    let ns = Ns::new();
    let mut d = desired();
    d.v4.chains.insert(
        "PODROUTE-OLD".to_string(),
        vec![rule(
            "PODROUTE-OLD",
            "-m set --match-set podroute-t4-old src",
            "DROP",
        )],
    );
    d.v4.hooks.push(hook("FORWARD", "PODROUTE-OLD"));
    d.sets.insert(
        "podroute-t4-old".to_string(),
        set(
            "podroute-t4-old",
            SetKind::HashNet,
            Family::V4,
            &["10.9.0.0/16"],
        ),
    );
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    assert_holds(&ns, &d);

    let d = desired();
    // FORWARD's hooks were [ours, old]; now [ours]: both go, one returns.
    assert_eq!(
        applier.apply(&d, false).unwrap(),
        ApplyReport {
            chains_deleted: 1,
            hooks_changed: 3,
            sets_destroyed: 1,
            ..unchanged(&d, false)
        }
    );
    assert_holds(&ns, &d);
    assert!(!ns.sets().contains("podroute-t4-old"));
}

#[test]
fn nothing_of_the_admins_is_touched_and_remove_all_leaves_only_it() {
    let ns = Ns::new();
    // An admin's set, chain and rules, one of them above where ours go.
    ns.sh(&["ipset", "create", "admin-allow", "hash:ip"]);
    ns.sh(&["ipset", "add", "admin-allow", "192.0.2.7"]);
    ns.sh(&["iptables", "-N", "ADMIN"]);
    ns.sh(&[
        "iptables",
        "-A",
        "ADMIN",
        "-s",
        "192.0.2.0/24",
        "-j",
        "ACCEPT",
    ]);
    ns.sh(&["iptables", "-A", "FORWARD", "-j", "ADMIN"]);
    ns.sh(&[
        "iptables",
        "-I",
        "FORWARD",
        "1",
        "-m",
        "set",
        "--match-set",
        "admin-allow",
        "src",
        "-j",
        "ACCEPT",
    ]);
    ns.sh(&[
        "ip6tables",
        "-A",
        "INPUT",
        "-s",
        "2001:db8::/32",
        "-j",
        "ACCEPT",
    ]);
    let admin = (ns.foreign_rules(Family::V4), ns.foreign_rules(Family::V6));
    let admin_sets = ns.sets();
    let check = |ns: &Ns| {
        assert_eq!(
            (ns.foreign_rules(Family::V4), ns.foreign_rules(Family::V6)),
            admin
        );
        assert!(ns.sets().is_superset(&admin_sets));
        assert_eq!(
            ns.set("admin-allow").0,
            BTreeSet::from(["192.0.2.7".to_string()])
        );
    };

    let mut d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    check(&ns);
    assert_holds(&ns, &d);

    // The admin inserts above our hook: a resync puts ours back on top,
    // the admin's rule stays.
    ns.sh(&[
        "iptables",
        "-I",
        "FORWARD",
        "1",
        "-s",
        "198.51.100.1",
        "-j",
        "ACCEPT",
    ]);
    let admin = (ns.foreign_rules(Family::V4), admin.1.clone());
    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            hooks_changed: 2,
            ..unchanged(&d, true)
        }
    );
    assert_holds(&ns, &d);
    assert_eq!(ns.foreign_rules(Family::V4), admin.0);

    d.v4.chains.remove("PODROUTE-INPUT");
    d.v4.hooks.retain(|h| h.builtin != "INPUT");
    d.sets.remove("podroute-t4-local");
    applier.apply(&d, false).unwrap();
    assert_eq!(
        (ns.foreign_rules(Family::V4), ns.foreign_rules(Family::V6)),
        admin
    );
    assert_holds(&ns, &d);

    let report = applier.remove_all().unwrap();
    assert_eq!(
        report,
        ApplyReport {
            chains_deleted: 4,
            hooks_changed: 3,
            sets_destroyed: 5,
            kernel_read: true,
            ..ApplyReport::default()
        }
    );
    assert_eq!(
        (ns.foreign_rules(Family::V4), ns.foreign_rules(Family::V6)),
        admin
    );
    // Only the admin's things are left.
    for family in [Family::V4, Family::V6] {
        assert_eq!(ns.rules(family), ns.foreign_rules(family));
    }
    assert_eq!(ns.sets(), admin_sets);
    assert!(ns.sets().contains("admin-allow"));
    // Removing again finds nothing to do.
    assert_eq!(
        applier.remove_all().unwrap(),
        unchanged(&Dataplane::empty(), true)
    );
}

#[test]
fn a_hook_deleted_by_hand_comes_back_on_a_kernel_read() {
    let ns = Ns::new();
    let d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    let line = d.v4.hooks[0].line.clone();
    let mut argv = vec!["iptables", "-D", "FORWARD"];
    let words = shell_words(&line);
    argv.extend(words.iter().map(String::as_str));
    ns.sh(&argv);
    assert!(ns.chain(Family::V4, "FORWARD").is_empty());

    // Trusting the cache, the applier does not know.
    assert_eq!(applier.apply(&d, false).unwrap(), unchanged(&d, false));
    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            hooks_changed: 1,
            ..unchanged(&d, true)
        }
    );
    assert_holds(&ns, &d);
}

#[test]
fn a_duplicated_hook_is_reduced_to_one() {
    let ns = Ns::new();
    let d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    let mut argv = vec!["ip6tables", "-A", "INPUT"];
    let words = shell_words(&d.v6.hooks[1].line);
    argv.extend(words.iter().map(String::as_str));
    ns.sh(&argv);
    assert_eq!(ns.chain(Family::V6, "INPUT").len(), 2);

    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            hooks_changed: 3,
            ..unchanged(&d, true)
        }
    );
    assert_eq!(ns.chain(Family::V6, "INPUT").len(), 1);
    assert_holds(&ns, &d);
}

#[test]
fn a_foreign_rule_in_our_chain_is_flushed_away() {
    let ns = Ns::new();
    let d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    ns.sh(&["iptables", "-A", "PODROUTE-POD", "-j", "ACCEPT"]);
    assert_eq!(
        applier.apply(&d, true).unwrap(),
        ApplyReport {
            chains_written: 1,
            ..unchanged(&d, true)
        }
    );
    assert_holds(&ns, &d);
}

#[test]
fn a_failed_apply_names_the_command_and_the_next_one_reads_the_kernel() {
    let ns = Ns::new();
    let mut d = desired();
    let mut applier = Applier::new(ns.runner());
    applier.apply(&d, true).unwrap();
    // A jump to a chain that does not exist makes iptables-restore fail.
    d.v4.chains
        .get_mut("PODROUTE-POD")
        .unwrap()
        .push(rule("PODROUTE-POD", "", "PODROUTE-MISSING"));
    let err = applier.apply(&d, false).unwrap_err().to_string();
    assert!(err.contains("iptables-restore -w 10 --noflush"), "{err}");
    assert!(err.contains(&format!("ip netns exec {}", ns.name)), "{err}");
    assert!(err.contains("PODROUTE-MISSING"), "{err}");
    // Nothing changed: the restore is one transaction.
    let d = desired();
    assert_holds(&ns, &d);
    assert_eq!(applier.apply(&d, false).unwrap(), unchanged(&d, true));
}

#[test]
fn conntrack_lists_and_deletes_a_real_flow() {
    let mut client = Ns::new();
    let mut server = Ns::new();
    let (a, b) = (format!("{}a", client.name), format!("{}b", server.name));
    netns::ip(&[
        "link",
        "add",
        &a,
        "netns",
        &client.name,
        "type",
        "veth",
        "peer",
        "name",
        &b,
        "netns",
        &server.name,
    ])
    .unwrap();
    for (ns, dev, v4, v6) in [
        (&client, &a, "10.9.0.1/24", "fd09::1/64"),
        (&server, &b, "10.9.0.2/24", "fd09::2/64"),
    ] {
        ns.sh(&["ip", "addr", "add", v4, "dev", dev]);
        ns.sh(&["ip", "addr", "add", v6, "dev", dev, "nodad"]);
        ns.sh(&["ip", "link", "set", dev, "up"]);
    }
    // A rule that uses conntrack makes the kernel track this namespace.
    for program in ["iptables", "ip6tables"] {
        server.sh(&[
            program,
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW,ESTABLISHED",
            "-j",
            "ACCEPT",
        ]);
    }
    server.spawn(&["iperf3", "-s", "-p", "5201"]);
    netns::wait_until("iperf3 to listen", DEADLINE, || {
        server.sh(&["ss", "-Hltn"]).contains(":5201 ")
    })
    .unwrap();
    // A connection held open and silent: nothing re-creates its entry
    // once deleted.
    client.spawn(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/10.9.0.2/5201 && read -r -u 3",
    ]);

    let runner = server.runner();
    let (src, dst): (IpAddr, IpAddr) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
    let tcp = |flows: &[ConntrackFlow]| {
        flows
            .iter()
            .find(|f| f.protocol == 6 && f.src == src && f.dst == dst && f.dport == Some(5201))
            .cloned()
    };
    let mut flow = None;
    netns::wait_until("the TCP flow in conntrack", DEADLINE, || {
        flow = tcp(&conntrack::list(&runner, Family::V4).unwrap());
        flow.is_some()
    })
    .unwrap();
    let flow = flow.unwrap();
    assert_eq!(flow.family, Family::V4);
    assert!(flow.sport.is_some());

    // ICMP entries expire in 30 s: ping just before listing.
    assert!(client.ok(&["ping", "-c", "1", "-W", "5", "fd09::2"]));
    let v6 = conntrack::list(&runner, Family::V6).unwrap();
    let ping = v6
        .iter()
        .find(|f| f.protocol == 58 && f.src == "fd09::1".parse::<IpAddr>().unwrap())
        .cloned()
        .unwrap_or_else(|| panic!("no ICMPv6 flow in {v6:?}"));
    assert_eq!(
        (ping.sport, ping.dport, ping.family),
        (None, None, Family::V6)
    );

    assert_eq!(conntrack::delete(&runner, &flow).unwrap(), 1);
    assert_eq!(tcp(&conntrack::list(&runner, Family::V4).unwrap()), None);
    // Gone already: no error.
    assert_eq!(conntrack::delete(&runner, &flow).unwrap(), 0);
    assert_eq!(conntrack::delete(&runner, &ping).unwrap(), 1);
    drop(client);
    drop(server);
}

/// Splits a rule line as a shell would (double quotes only), for passing
/// our lines to iptables on its command line.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn no_namespace_of_ours_outlives_its_test() {
    // Drop guards remove namespaces even when a test panics.
    let name = {
        let ns = Ns::new();
        let name = ns.name.clone();
        let result = std::panic::catch_unwind(move || {
            let _ns = ns;
            panic!("a deliberate panic, to test the drop guard");
        });
        assert!(result.is_err());
        name
    };
    assert!(!netns::exists(&name));
}
