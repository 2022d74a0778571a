// Tests for policy evaluation: every match kind, every action, rule order,
// continue semantics, the RFC 8212 defaults and the hijack guard.

use std::net::IpAddr;

use super::*;
use crate::config::{PolicyMatch, PolicyRule, PolicySet, PrefixMatch, Prepend};
use crate::wire::{AsPath, AsSegment, Community, LargeCommunity, Origin, PathAttribute};

const LOCAL_AS: u32 = 65001;
const EBGP: PolicyContext = PolicyContext {
    local_as: LOCAL_AS,
    ebgp: true,
};
const IBGP: PolicyContext = PolicyContext {
    local_as: LOCAL_AS,
    ebgp: false,
};

fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}

fn attrs(path: &[u32], extra: Vec<PathAttribute>, next_hop: &str) -> PathAttributes {
    let mut attributes = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(AsPath {
            segments: vec![AsSegment::Sequence(path.to_vec())],
        }),
    ];
    attributes.extend(extra);
    PathAttributes {
        attributes,
        next_hops: vec![next_hop.parse::<IpAddr>().unwrap()],
    }
}

fn plain() -> PathAttributes {
    attrs(&[65000], vec![], "192.0.2.1")
}

fn rule(matches: PolicyMatch, set: PolicySet, action: Option<PolicyAction>) -> PolicyRule {
    PolicyRule {
        name: String::new(),
        matches,
        set,
        action,
    }
}

fn policy(rules: Vec<PolicyRule>, default_action: Option<PolicyAction>) -> RoutePolicy {
    RoutePolicy {
        default_action,
        rules,
    }
}

/// A policy that accepts what `matches` selects and nothing else.
fn accept_if(matches: PolicyMatch) -> RoutePolicy {
    policy(
        vec![rule(
            matches,
            PolicySet::default(),
            Some(PolicyAction::Accept),
        )],
        Some(PolicyAction::Reject),
    )
}

fn accepted(p: &RoutePolicy, prefix: &str, a: &PathAttributes) -> bool {
    let verdict = evaluate(Some(p), &EBGP, &net(prefix), a, Direction::Import);
    verdict != Verdict::Reject
}

/// The attributes after an accepting evaluation.
fn changed(v: Verdict, original: &PathAttributes) -> PathAttributes {
    match v {
        Verdict::Accept(Some(a)) => a,
        Verdict::Accept(None) => original.clone(),
        Verdict::Reject => panic!("rejected"),
    }
}

fn range(prefix: &str, ge: u8, le: u8) -> PrefixMatch {
    PrefixMatch {
        prefix: net(prefix),
        ge,
        le,
    }
}

fn communities(a: &PathAttributes) -> Vec<Community> {
    matching::communities_of(a).unwrap_or_default().to_vec()
}

fn large(a: &PathAttributes) -> Vec<LargeCommunity> {
    matching::large_communities_of(a)
        .unwrap_or_default()
        .to_vec()
}

fn lc(a: u32, b: u32, c: u32) -> LargeCommunity {
    LargeCommunity {
        global_admin: a,
        local_data_1: b,
        local_data_2: c,
    }
}

fn find<T>(a: &PathAttributes, f: impl Fn(&PathAttribute) -> Option<T>) -> Option<T> {
    a.attributes.iter().find_map(f)
}

fn local_pref(a: &PathAttributes) -> Option<u32> {
    find(a, |x| match x {
        PathAttribute::LocalPref(v) => Some(*v),
        _ => None,
    })
}

fn med(a: &PathAttributes) -> Option<u32> {
    find(a, |x| match x {
        PathAttribute::MultiExitDisc(v) => Some(*v),
        _ => None,
    })
}

// ---- defaults (RFC 8212) ----

#[test]
fn no_policy_rejects_ebgp_and_accepts_ibgp() {
    let a = plain();
    for dir in [Direction::Import, Direction::Export] {
        assert_eq!(
            evaluate(None, &EBGP, &net("10.0.0.0/8"), &a, dir),
            Verdict::Reject
        );
        assert_eq!(
            evaluate(None, &IBGP, &net("10.0.0.0/8"), &a, dir),
            Verdict::Accept(None)
        );
    }
}

#[test]
fn default_action_overrides_the_session_default() {
    let a = plain();
    let accept_all = policy(vec![], Some(PolicyAction::Accept));
    let reject_all = policy(vec![], Some(PolicyAction::Reject));
    let p = net("10.0.0.0/8");
    assert_eq!(
        evaluate(Some(&accept_all), &EBGP, &p, &a, Direction::Import),
        Verdict::Accept(None)
    );
    assert_eq!(
        evaluate(Some(&reject_all), &IBGP, &p, &a, Direction::Import),
        Verdict::Reject
    );
    // Rules but no defaultAction: the session default for what they leave.
    let unset = policy(
        vec![rule(
            PolicyMatch {
                prefixes: Some(vec![range("192.168.0.0/16", 16, 32)]),
                ..PolicyMatch::default()
            },
            PolicySet::default(),
            Some(PolicyAction::Accept),
        )],
        None,
    );
    assert_eq!(
        evaluate(Some(&unset), &EBGP, &p, &a, Direction::Export),
        Verdict::Reject
    );
    assert_eq!(
        evaluate(Some(&unset), &IBGP, &p, &a, Direction::Export),
        Verdict::Accept(None)
    );
}

#[test]
fn originated_prefixes_are_exported_unless_a_rule_rejects() {
    let a = plain();
    let p = net("10.244.1.0/26");
    assert_eq!(
        evaluate_originated(None, &EBGP, &p, &a),
        Verdict::Accept(None)
    );
    let reject_all = policy(vec![], Some(PolicyAction::Reject));
    assert_eq!(
        evaluate_originated(Some(&reject_all), &EBGP, &p, &a),
        Verdict::Accept(None)
    );
    let prepend = policy(
        vec![rule(
            PolicyMatch::default(),
            PolicySet {
                prepend: Some(Prepend {
                    count: 1,
                    as_number: None,
                }),
                ..PolicySet::default()
            },
            None,
        )],
        Some(PolicyAction::Reject),
    );
    let out = changed(evaluate_originated(Some(&prepend), &EBGP, &p, &a), &a);
    assert_eq!(render_as_path(out.as_path()), "65001 65000");
    let explicit = policy(
        vec![rule(
            PolicyMatch::default(),
            PolicySet::default(),
            Some(PolicyAction::Reject),
        )],
        None,
    );
    assert_eq!(
        evaluate_originated(Some(&explicit), &EBGP, &p, &a),
        Verdict::Reject
    );
}

// ---- prefix lists: ge / le ----

#[test]
fn prefix_exact_when_neither_ge_nor_le() {
    // What validation makes of `10.0.0.0/8` alone.
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 8, 8)]),
        ..PolicyMatch::default()
    });
    let a = plain();
    assert!(accepted(&p, "10.0.0.0/8", &a));
    assert!(!accepted(&p, "10.1.0.0/16", &a));
    assert!(!accepted(&p, "0.0.0.0/0", &a));
    assert!(!accepted(&p, "11.0.0.0/8", &a));
}

#[test]
fn prefix_ge_only_reaches_the_family_maximum() {
    // `{prefix: 10.0.0.0/8, ge: 24}` → 24..=32.
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 24, 32)]),
        ..PolicyMatch::default()
    });
    let a = plain();
    assert!(!accepted(&p, "10.0.0.0/8", &a));
    assert!(!accepted(&p, "10.1.2.0/23", &a));
    assert!(accepted(&p, "10.1.2.0/24", &a));
    assert!(accepted(&p, "10.1.2.3/32", &a));
    assert!(!accepted(&p, "11.1.2.0/24", &a), "outside the prefix");
}

#[test]
fn prefix_le_only_starts_at_the_prefix_length() {
    // `{prefix: 10.0.0.0/8, le: 16}` → 8..=16.
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 8, 16)]),
        ..PolicyMatch::default()
    });
    let a = plain();
    assert!(accepted(&p, "10.0.0.0/8", &a));
    assert!(accepted(&p, "10.1.0.0/16", &a));
    assert!(!accepted(&p, "10.1.1.0/24", &a));
    assert!(!accepted(&p, "0.0.0.0/0", &a), "shorter than the prefix");
    assert!(!accepted(&p, "8.0.0.0/6", &a), "contains it, not inside it");
}

#[test]
fn prefix_ge_and_le() {
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 24, 26)]),
        ..PolicyMatch::default()
    });
    let a = plain();
    for (prefix, expected) in [
        ("10.9.9.0/23", false),
        ("10.9.9.0/24", true),
        ("10.9.9.64/26", true),
        ("10.9.9.128/27", false),
    ] {
        assert_eq!(accepted(&p, prefix, &a), expected, "{prefix}");
    }
}

#[test]
fn prefix_list_is_any_and_families_do_not_mix() {
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![
            range("10.1.0.0/16", 16, 16),
            range("fd00::/8", 48, 64),
            range("0.0.0.0/0", 0, 0),
        ]),
        ..PolicyMatch::default()
    });
    let a = plain();
    assert!(accepted(&p, "10.1.0.0/16", &a));
    assert!(accepted(&p, "0.0.0.0/0", &a));
    assert!(accepted(&p, "fd00:1:2::/48", &a));
    assert!(!accepted(&p, "fd00:1:2::/96", &a));
    assert!(
        !accepted(&p, "::/0", &a),
        "the IPv4 default is not the IPv6 one"
    );
    assert!(!accepted(&p, "::/48", &a));
}

// ---- other conditions ----

#[test]
fn community_match_is_any_of() {
    let p = accept_if(PolicyMatch {
        communities: Some(vec![Community(65000 << 16 | 100), Community(0xFFFF_FF01)]),
        ..PolicyMatch::default()
    });
    let with =
        |c: Vec<Community>| attrs(&[65000], vec![PathAttribute::Communities(c)], "192.0.2.1");
    assert!(accepted(
        &p,
        "10.0.0.0/8",
        &with(vec![Community(0xFFFF_FF01)])
    ));
    assert!(accepted(
        &p,
        "10.0.0.0/8",
        &with(vec![Community(1), Community(65000 << 16 | 100)])
    ));
    assert!(!accepted(&p, "10.0.0.0/8", &with(vec![Community(1)])));
    assert!(
        !accepted(&p, "10.0.0.0/8", &plain()),
        "no COMMUNITIES at all"
    );
}

#[test]
fn large_community_match_is_any_of() {
    let p = accept_if(PolicyMatch {
        large_communities: Some(vec![lc(65000, 1, 2)]),
        ..PolicyMatch::default()
    });
    let with = |c: Vec<LargeCommunity>| {
        attrs(
            &[65000],
            vec![PathAttribute::LargeCommunities(c)],
            "192.0.2.1",
        )
    };
    assert!(accepted(
        &p,
        "10.0.0.0/8",
        &with(vec![lc(1, 1, 1), lc(65000, 1, 2)])
    ));
    assert!(!accepted(&p, "10.0.0.0/8", &with(vec![lc(65000, 2, 1)])));
    assert!(!accepted(&p, "10.0.0.0/8", &plain()));
}

#[test]
fn as_path_regex_match() {
    let p = accept_if(PolicyMatch {
        as_path: Some(AsPathRegex::new("_65002$").unwrap()),
        ..PolicyMatch::default()
    });
    assert!(accepted(
        &p,
        "10.0.0.0/8",
        &attrs(&[65000, 65002], vec![], "192.0.2.1")
    ));
    assert!(!accepted(
        &p,
        "10.0.0.0/8",
        &attrs(&[65002, 65000], vec![], "192.0.2.1")
    ));
    assert!(!accepted(
        &p,
        "10.0.0.0/8",
        &attrs(&[165002], vec![], "192.0.2.1")
    ));
    let no_path = PathAttributes {
        attributes: vec![PathAttribute::Origin(Origin::Igp)],
        next_hops: vec![],
    };
    let empty = accept_if(PolicyMatch {
        as_path: Some(AsPathRegex::new("^$").unwrap()),
        ..PolicyMatch::default()
    });
    assert!(accepted(&empty, "10.0.0.0/8", &no_path));
    assert!(!accepted(&p, "10.0.0.0/8", &no_path));
}

#[test]
fn next_hop_match() {
    let p = accept_if(PolicyMatch {
        next_hop: Some(vec![net("192.0.2.0/24"), net("fd00::1/128")]),
        ..PolicyMatch::default()
    });
    assert!(accepted(
        &p,
        "10.0.0.0/8",
        &attrs(&[1], vec![], "192.0.2.200")
    ));
    assert!(!accepted(
        &p,
        "10.0.0.0/8",
        &attrs(&[1], vec![], "198.51.100.1")
    ));
    let mut v6 = attrs(&[1], vec![], "fd00::2");
    assert!(!accepted(&p, "fd00:10::/64", &v6));
    // Global and link-local: either will do.
    v6.next_hops = vec!["fd00::1".parse().unwrap(), "fe80::1".parse().unwrap()];
    assert!(accepted(&p, "fd00:10::/64", &v6));
}

#[test]
fn all_conditions_must_hold() {
    let p = accept_if(PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 8, 32)]),
        communities: Some(vec![Community(7)]),
        ..PolicyMatch::default()
    });
    let tagged = attrs(
        &[1],
        vec![PathAttribute::Communities(vec![Community(7)])],
        "192.0.2.1",
    );
    assert!(accepted(&p, "10.1.0.0/16", &tagged));
    assert!(!accepted(&p, "11.1.0.0/16", &tagged));
    assert!(!accepted(&p, "10.1.0.0/16", &plain()));
    // No condition at all: every route.
    let any = accept_if(PolicyMatch::default());
    assert!(accepted(&any, "0.0.0.0/0", &plain()));
}

// ---- actions ----

fn set_all(set: PolicySet) -> RoutePolicy {
    policy(
        vec![rule(
            PolicyMatch::default(),
            set,
            Some(PolicyAction::Accept),
        )],
        None,
    )
}

fn run_set(set: PolicySet, ctx: &PolicyContext, dir: Direction, a: &PathAttributes) -> Verdict {
    evaluate(Some(&set_all(set)), ctx, &net("10.0.0.0/8"), a, dir)
}

#[test]
fn set_local_pref_and_med() {
    let a = plain();
    let set = PolicySet {
        local_pref: Some(200),
        med: Some(10),
        ..PolicySet::default()
    };
    let out = changed(run_set(set.clone(), &EBGP, Direction::Import, &a), &a);
    assert_eq!((local_pref(&out), med(&out)), (Some(200), Some(10)));
    // Inserted in type-code order: ORIGIN, AS_PATH, MED, LOCAL_PREF.
    let codes: Vec<u8> = out
        .attributes
        .iter()
        .map(PathAttribute::type_code)
        .collect();
    assert_eq!(codes, [1, 2, 4, 5]);
    // Replaced, not added twice.
    let again = changed(
        run_set(
            PolicySet {
                local_pref: Some(50),
                med: Some(0),
                ..PolicySet::default()
            },
            &IBGP,
            Direction::Import,
            &out,
        ),
        &out,
    );
    assert_eq!((local_pref(&again), med(&again)), (Some(50), Some(0)));
    assert_eq!(again.attributes.len(), 4);
    // Export to iBGP: local pref is set.
    let out = changed(run_set(set.clone(), &IBGP, Direction::Export, &a), &a);
    assert_eq!(local_pref(&out), Some(200));
}

#[test]
fn local_pref_is_ignored_on_ebgp_export() {
    let a = plain();
    let only_lp = PolicySet {
        local_pref: Some(200),
        ..PolicySet::default()
    };
    assert_eq!(
        run_set(only_lp, &EBGP, Direction::Export, &a),
        Verdict::Accept(None)
    );
    let with_med = PolicySet {
        local_pref: Some(200),
        med: Some(5),
        ..PolicySet::default()
    };
    let out = changed(run_set(with_med, &EBGP, Direction::Export, &a), &a);
    assert_eq!((local_pref(&out), med(&out)), (None, Some(5)));
}

#[test]
fn setting_the_same_value_is_no_change() {
    let a = attrs(&[1], vec![PathAttribute::LocalPref(100)], "192.0.2.1");
    let set = PolicySet {
        local_pref: Some(100),
        ..PolicySet::default()
    };
    assert_eq!(
        run_set(set, &IBGP, Direction::Import, &a),
        Verdict::Accept(None)
    );
}

#[test]
fn add_and_remove_communities() {
    let a = attrs(
        &[1],
        vec![PathAttribute::Communities(vec![Community(1), Community(2)])],
        "192.0.2.1",
    );
    let set = PolicySet {
        add_communities: vec![Community(3), Community(1)],
        remove_communities: vec![Community(2), Community(9)],
        ..PolicySet::default()
    };
    let out = changed(run_set(set, &IBGP, Direction::Import, &a), &a);
    assert_eq!(communities(&out), [Community(1), Community(3)]);

    // Added where there were none; removals first, so listing one in both
    // keeps it.
    let set = PolicySet {
        add_communities: vec![Community(5)],
        remove_communities: vec![Community(5)],
        ..PolicySet::default()
    };
    let out = changed(run_set(set, &IBGP, Direction::Import, &plain()), &plain());
    assert_eq!(communities(&out), [Community(5)]);
    let codes: Vec<u8> = out
        .attributes
        .iter()
        .map(PathAttribute::type_code)
        .collect();
    assert_eq!(codes, [1, 2, 8]);

    // Removing the last one drops the attribute.
    let one = attrs(
        &[1],
        vec![PathAttribute::Communities(vec![Community(1)])],
        "192.0.2.1",
    );
    let set = PolicySet {
        remove_communities: vec![Community(1)],
        ..PolicySet::default()
    };
    let out = changed(run_set(set, &IBGP, Direction::Import, &one), &one);
    assert_eq!(out, attrs(&[1], vec![], "192.0.2.1"));
}

#[test]
fn add_and_remove_large_communities() {
    let a = attrs(
        &[1],
        vec![PathAttribute::LargeCommunities(vec![
            lc(1, 1, 1),
            lc(2, 2, 2),
        ])],
        "192.0.2.1",
    );
    let set = PolicySet {
        add_large_communities: vec![lc(3, 3, 3)],
        remove_large_communities: vec![lc(1, 1, 1)],
        ..PolicySet::default()
    };
    let out = changed(run_set(set, &IBGP, Direction::Import, &a), &a);
    assert_eq!(large(&out), [lc(2, 2, 2), lc(3, 3, 3)]);
    let set = PolicySet {
        remove_large_communities: vec![lc(2, 2, 2), lc(3, 3, 3)],
        ..PolicySet::default()
    };
    let emptied = changed(run_set(set, &IBGP, Direction::Import, &out), &out);
    assert!(
        !emptied
            .attributes
            .iter()
            .any(|x| matches!(x, PathAttribute::LargeCommunities(_)))
    );
}

#[test]
fn prepend_local_as_and_given_as() {
    let a = plain();
    let prepend = |count, as_number| PolicySet {
        prepend: Some(Prepend { count, as_number }),
        ..PolicySet::default()
    };
    let out = changed(run_set(prepend(2, None), &EBGP, Direction::Export, &a), &a);
    assert_eq!(render_as_path(out.as_path()), "65001 65001 65000");
    let out = changed(
        run_set(prepend(1, Some(64512)), &EBGP, Direction::Import, &a),
        &a,
    );
    assert_eq!(render_as_path(out.as_path()), "64512 65000");
}

#[test]
fn prepend_starts_a_sequence_before_a_set_or_an_empty_path() {
    let set = PolicySet {
        prepend: Some(Prepend {
            count: 2,
            as_number: None,
        }),
        ..PolicySet::default()
    };
    let mut a = plain();
    a.attributes[1] = PathAttribute::AsPath(AsPath {
        segments: vec![AsSegment::Set(vec![1, 2])],
    });
    let out = changed(run_set(set.clone(), &IBGP, Direction::Import, &a), &a);
    assert_eq!(
        out.as_path().unwrap().segments,
        [
            AsSegment::Sequence(vec![LOCAL_AS, LOCAL_AS]),
            AsSegment::Set(vec![1, 2])
        ]
    );
    // No AS_PATH attribute at all (an iBGP route we originated).
    let bare = PathAttributes {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::LocalPref(100),
        ],
        next_hops: vec![],
    };
    let out = changed(run_set(set, &IBGP, Direction::Export, &bare), &bare);
    assert_eq!(render_as_path(out.as_path()), "65001 65001");
    let codes: Vec<u8> = out
        .attributes
        .iter()
        .map(PathAttribute::type_code)
        .collect();
    assert_eq!(codes, [1, 2, 5]);
}

#[test]
fn reject_action() {
    let p = policy(
        vec![rule(
            PolicyMatch {
                prefixes: Some(vec![range("10.0.0.0/8", 8, 32)]),
                ..PolicyMatch::default()
            },
            PolicySet::default(),
            Some(PolicyAction::Reject),
        )],
        Some(PolicyAction::Accept),
    );
    assert!(!accepted(&p, "10.1.0.0/16", &plain()));
    assert!(accepted(&p, "11.1.0.0/16", &plain()));
}

// ---- rule order and continue ----

#[test]
fn first_deciding_rule_wins() {
    let ten = PolicyMatch {
        prefixes: Some(vec![range("10.0.0.0/8", 8, 32)]),
        ..PolicyMatch::default()
    };
    let p = policy(
        vec![
            rule(
                ten.clone(),
                PolicySet::default(),
                Some(PolicyAction::Reject),
            ),
            rule(
                PolicyMatch::default(),
                PolicySet::default(),
                Some(PolicyAction::Accept),
            ),
        ],
        None,
    );
    assert!(!accepted(&p, "10.1.0.0/16", &plain()));
    assert!(accepted(&p, "11.1.0.0/16", &plain()));
    // Changes of a rule after the deciding one are never made.
    let p = policy(
        vec![
            rule(
                ten,
                PolicySet {
                    med: Some(1),
                    ..PolicySet::default()
                },
                Some(PolicyAction::Accept),
            ),
            rule(
                PolicyMatch::default(),
                PolicySet {
                    med: Some(2),
                    ..PolicySet::default()
                },
                Some(PolicyAction::Accept),
            ),
        ],
        None,
    );
    let a = plain();
    let out = changed(
        evaluate(Some(&p), &EBGP, &net("10.1.0.0/16"), &a, Direction::Import),
        &a,
    );
    assert_eq!(med(&out), Some(1));
}

#[test]
fn rule_without_action_continues_with_its_changes() {
    // Rule 1 tags everything from 65000 and goes on; rule 2 matches on the
    // tag, so it sees rule 1's change; the default then accepts.
    let p = policy(
        vec![
            rule(
                PolicyMatch {
                    as_path: Some(AsPathRegex::new("^65000_").unwrap()),
                    ..PolicyMatch::default()
                },
                PolicySet {
                    add_communities: vec![Community(42)],
                    prepend: Some(Prepend {
                        count: 1,
                        as_number: None,
                    }),
                    ..PolicySet::default()
                },
                None,
            ),
            rule(
                PolicyMatch {
                    communities: Some(vec![Community(42)]),
                    // Sees the prepended path.
                    as_path: Some(AsPathRegex::new("^65001 65000$").unwrap()),
                    ..PolicyMatch::default()
                },
                PolicySet {
                    local_pref: Some(300),
                    ..PolicySet::default()
                },
                None,
            ),
        ],
        Some(PolicyAction::Accept),
    );
    let a = plain();
    let out = changed(
        evaluate(Some(&p), &EBGP, &net("10.0.0.0/8"), &a, Direction::Import),
        &a,
    );
    assert_eq!(communities(&out), [Community(42)]);
    assert_eq!(local_pref(&out), Some(300));
    assert_eq!(render_as_path(out.as_path()), "65001 65000");

    // The same changes, then the RFC 8212 default rejects on eBGP: the
    // changes go with the route.
    let mut no_default = p.clone();
    no_default.default_action = None;
    assert_eq!(
        evaluate(
            Some(&no_default),
            &EBGP,
            &net("10.0.0.0/8"),
            &a,
            Direction::Import
        ),
        Verdict::Reject
    );
    // And accepts on iBGP, changes applied.
    let out = changed(
        evaluate(
            Some(&no_default),
            &IBGP,
            &net("10.0.0.0/8"),
            &a,
            Direction::Import,
        ),
        &a,
    );
    assert_eq!(local_pref(&out), Some(300));
}

#[test]
fn unchanged_accept_is_none() {
    let p = policy(
        vec![rule(
            PolicyMatch::default(),
            PolicySet::default(),
            Some(PolicyAction::Accept),
        )],
        None,
    );
    assert_eq!(
        evaluate(
            Some(&p),
            &EBGP,
            &net("10.0.0.0/8"),
            &plain(),
            Direction::Import
        ),
        Verdict::Accept(None)
    );
}

// ---- hijack guard ----

fn set(items: &[&str]) -> std::collections::BTreeSet<IpNetwork> {
    items.iter().map(|t| net(t)).collect()
}

#[test]
fn hijacks_equal_or_more_specific() {
    let own = set(&["10.244.1.0/26", "fd00:10:244:1::/64"]);
    let none = set(&[]);
    assert!(hijacks(&net("10.244.1.0/26"), &own, &none));
    assert!(hijacks(&net("10.244.1.32/27"), &own, &none));
    assert!(hijacks(&net("10.244.1.4/31"), &own, &none));
    assert!(hijacks(&net("fd00:10:244:1:1::/80"), &own, &none));
    assert!(
        !hijacks(&net("10.244.1.0/24"), &own, &none),
        "a covering aggregate"
    );
    assert!(!hijacks(&net("10.244.1.64/26"), &own, &none));
    assert!(!hijacks(&net("0.0.0.0/0"), &own, &none));
    assert!(!hijacks(&net("::/0"), &own, &none));
    assert!(!hijacks(&net("10.244.1.0/26"), &none, &none));
}

#[test]
fn host_routes_inside_our_blocks_are_other_nodes_borrowed_addresses() {
    let blocks = set(&["10.244.1.0/26", "fd00:10:244:1::/64", "10.9.9.9/32"]);
    let none = set(&[]);
    assert!(!hijacks(&net("10.244.1.5/32"), &blocks, &none));
    assert!(!hijacks(&net("fd00:10:244:1::5/128"), &blocks, &none));
    assert!(
        hijacks(&net("10.9.9.9/32"), &blocks, &none),
        "a block that is a /32 is still ours"
    );
}

#[test]
fn our_borrowed_hosts_are_not_taken_over() {
    let none = set(&[]);
    let hosts = set(&["10.244.7.9/32", "fd00:10:244:7::9/128"]);
    assert!(hijacks(&net("10.244.7.9/32"), &none, &hosts));
    assert!(hijacks(&net("fd00:10:244:7::9/128"), &none, &hosts));
    assert!(
        !hijacks(&net("10.244.7.0/26"), &none, &hosts),
        "the lender's block covering our host is its own"
    );
    assert!(!hijacks(&net("10.244.7.10/32"), &none, &hosts));
}
