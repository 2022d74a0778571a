// The filter table side of the applier: reads which of our chains and hooks
// the kernel holds from `iptables-save -t filter` (recognised by the chain
// prefix and the `podroute:<hash>` comment alone), and writes the one
// `iptables-restore --noflush` script that turns that into the desired table.

use std::collections::BTreeMap;

use super::SaveParseError;
use crate::render::dataplane::{CHAIN_PREFIX, COMMENT_TAG, Table};

/// Hex digits in a rule hash.
pub const HASH_LEN: usize = 16;

/// Stands in a chain's hash list for a rule that carries no hash of ours:
/// never equal to a hash, so the chain differs from any desired one.
pub const FOREIGN_RULE: &str = "-";

/// Our part of one family's filter table, as read from the kernel or as
/// last programmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    /// Our chains by name: the hash of each rule, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Our hooks by built-in chain; built-ins with none are absent.
    pub hooks: BTreeMap<String, BuiltinHooks>,
}

/// Our rules in one built-in chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinHooks {
    /// In the chain's order.
    pub hooks: Vec<HookState>,
    /// Whether ours are the chain's first rules, with nobody else's between.
    pub on_top: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookState {
    pub hash: String,
    /// The rule after `-A BUILTIN `, as `-D BUILTIN` takes it: as
    /// iptables-save printed it, or our own line when it came from the
    /// cache (the same match either way).
    pub rule: String,
}

/// The restore script for one family and what it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePlan {
    /// Empty when nothing differs.
    pub script: String,
    pub chains_written: usize,
    pub chains_deleted: usize,
    pub hooks_changed: usize,
}

impl TableState {
    /// The state `desired` leaves in the kernel once applied.
    pub fn from_desired(desired: &Table) -> TableState {
        let chains = desired
            .chains
            .iter()
            .map(|(name, rules)| (name.clone(), rules.iter().map(|r| r.hash.clone()).collect()))
            .collect();
        let mut hooks: BTreeMap<String, BuiltinHooks> = BTreeMap::new();
        for hook in &desired.hooks {
            let entry = hooks.entry(hook.builtin.clone()).or_insert(BuiltinHooks {
                hooks: Vec::new(),
                on_top: true,
            });
            entry.hooks.push(HookState {
                hash: hook.hash.clone(),
                rule: hook.line.clone(),
            });
        }
        TableState { chains, hooks }
    }

    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum::<usize>()
            + self.hooks.values().map(|b| b.hooks.len()).sum::<usize>()
    }
}

/// Reads our chains and hooks from `iptables-save -t filter` output (or
/// ip6tables-save's). Everything else in the table is passed over.
pub fn parse_save(text: &str) -> Result<TableState, SaveParseError> {
    let mut state = TableState::default();
    // Built-in chains are the ones declared with a policy other than `-`.
    let mut builtins: BTreeMap<&str, bool> = BTreeMap::new();
    // Per built-in: whether a rule not ours has been seen yet.
    let mut others_seen: BTreeMap<&str, bool> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason| SaveParseError {
            line_no: i + 1,
            line: line.to_string(),
            reason,
        };
        let line_t = line.trim_end();
        if line_t.is_empty()
            || line_t.starts_with('#')
            || line_t.starts_with('*')
            || line_t == "COMMIT"
        {
            continue;
        }
        if let Some(decl) = line_t.strip_prefix(':') {
            let mut words = decl.split_whitespace();
            let name = words
                .next()
                .ok_or_else(|| err("chain declaration without a name"))?;
            let policy = words
                .next()
                .ok_or_else(|| err("chain declaration without a policy"))?;
            builtins.insert(name, policy != "-");
            if name.starts_with(CHAIN_PREFIX) {
                state.chains.entry(name.to_string()).or_default();
            }
            continue;
        }
        let Some(rest) = line_t.strip_prefix("-A ") else {
            return Err(err("neither a chain declaration nor an -A rule"));
        };
        let (chain, rule) = match rest.split_once(' ') {
            Some((chain, rule)) => (chain, rule.trim_start()),
            None => (rest, ""),
        };
        if chain.is_empty() {
            return Err(err("-A without a chain"));
        }
        let hash = rule_hash(rule);
        if chain.starts_with(CHAIN_PREFIX) {
            state
                .chains
                .entry(chain.to_string())
                .or_default()
                .push(hash.unwrap_or(FOREIGN_RULE).to_string());
        } else if builtins.get(chain).copied().unwrap_or(false) {
            let others = others_seen.entry(chain).or_insert(false);
            match hash {
                Some(hash) => {
                    let entry = state
                        .hooks
                        .entry(chain.to_string())
                        .or_insert(BuiltinHooks {
                            hooks: Vec::new(),
                            on_top: true,
                        });
                    if *others {
                        entry.on_top = false;
                    }
                    entry.hooks.push(HookState {
                        hash: hash.to_string(),
                        rule: rule.to_string(),
                    });
                }
                None => *others = true,
            }
        }
    }
    Ok(state)
}

/// The packet counts of our tagged rules in our chains, from
/// `iptables-save -c -t filter` output (lines `[packets:bytes] -A CHAIN
/// ...`): (hash, packets) in the table's order.
pub fn parse_counters(text: &str) -> Result<Vec<(String, u64)>, SaveParseError> {
    let mut counters = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason| SaveParseError {
            line_no: i + 1,
            line: line.to_string(),
            reason,
        };
        // Declarations, comments, `*filter` and COMMIT carry no rule.
        let Some(counted) = line.trim_end().strip_prefix('[') else {
            continue;
        };
        let (counts, rule) = counted
            .split_once("] ")
            .ok_or_else(|| err("a counter without its closing bracket"))?;
        let packets = counts
            .split_once(':')
            .and_then(|(packets, _bytes)| packets.parse::<u64>().ok())
            .ok_or_else(|| err("a counter that is not [packets:bytes]"))?;
        let rest = rule
            .strip_prefix("-A ")
            .ok_or_else(|| err("a counter before something else than an -A rule"))?;
        let (chain, rule) = rest.split_once(' ').unwrap_or((rest, ""));
        if !chain.starts_with(CHAIN_PREFIX) {
            continue;
        }
        if let Some(hash) = rule_hash(rule) {
            counters.push((hash.to_string(), packets));
        }
    }
    Ok(counters)
}

/// The `podroute:<hash>` of a rule, from its first comment that carries one.
pub fn rule_hash(rule: &str) -> Option<&str> {
    let mut rest = rule;
    while let Some(at) = rest.find("--comment ") {
        let after = &rest[at + "--comment ".len()..];
        let (value, tail) = comment_value(after);
        if let Some(hash) = tagged_hash(value) {
            return Some(hash);
        }
        rest = tail;
    }
    None
}

/// Whether `s` is a rule hash: 16 lowercase hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == HASH_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Builds the restore script that turns `kernel` into `desired`: declare
/// (which under --noflush flushes) every new, changed and stale chain, fill
/// the new and changed ones, replace our hooks in each built-in whose hooks
/// are not exactly the desired ones on top, and delete stale chains last,
/// once nothing of ours jumps to them.
pub fn plan_table(desired: &Table, kernel: &TableState) -> TablePlan {
    let mut plan = TablePlan::default();
    let mut declare: Vec<&str> = Vec::new();
    let mut append: Vec<String> = Vec::new();
    let mut hook_lines: Vec<String> = Vec::new();
    let mut delete: Vec<&str> = Vec::new();

    for (name, rules) in &desired.chains {
        let same = kernel.chains.get(name).is_some_and(|hashes| {
            hashes.len() == rules.len() && hashes.iter().zip(rules).all(|(h, r)| *h == r.hash)
        });
        if same {
            continue;
        }
        declare.push(name);
        append.extend(rules.iter().map(|r| format!("-A {name} {}", r.line)));
        plan.chains_written += 1;
    }
    for name in kernel.chains.keys() {
        if !desired.chains.contains_key(name) {
            declare.push(name);
            delete.push(name);
            plan.chains_deleted += 1;
        }
    }

    let mut wanted: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for hook in &desired.hooks {
        wanted
            .entry(hook.builtin.as_str())
            .or_default()
            .push((hook.hash.as_str(), hook.line.as_str()));
    }
    let builtins = wanted
        .keys()
        .copied()
        .chain(kernel.hooks.keys().map(String::as_str))
        .collect::<std::collections::BTreeSet<_>>();
    for builtin in builtins {
        let want = wanted.get(builtin).map(Vec::as_slice).unwrap_or_default();
        let have = kernel.hooks.get(builtin);
        let same = match have {
            Some(have) => {
                have.on_top
                    && have.hooks.len() == want.len()
                    && have
                        .hooks
                        .iter()
                        .zip(want)
                        .all(|(h, (hash, _))| h.hash == *hash)
            }
            None => want.is_empty(),
        };
        if same {
            continue;
        }
        // Delete all of ours here and insert the desired ones afresh: a
        // delete names a rule by its text, so among copies of one rule it
        // cannot pick which goes, and re-inserting puts ours back on top.
        for h in have.map(|b| b.hooks.as_slice()).unwrap_or_default() {
            hook_lines.push(format!("-D {builtin} {}", h.rule));
            plan.hooks_changed += 1;
        }
        for (i, (_, line)) in want.iter().enumerate() {
            hook_lines.push(format!("-I {builtin} {} {line}", i + 1));
            plan.hooks_changed += 1;
        }
    }

    if declare.is_empty() && hook_lines.is_empty() {
        return plan;
    }
    let mut script = String::from("*filter\n");
    for name in &declare {
        script.push_str(&format!(":{name} - [0:0]\n"));
    }
    for line in append.iter().chain(&hook_lines) {
        script.push_str(line);
        script.push('\n');
    }
    for name in &delete {
        script.push_str(&format!("-X {name}\n"));
    }
    script.push_str("COMMIT\n");
    plan.script = script;
    plan
}

/// A comment's value after `--comment `: quoted (with `\"` and `\\`
/// escapes) or one bare word; and the text after it.
fn comment_value(after: &str) -> (&str, &str) {
    if let Some(quoted) = after.strip_prefix('"') {
        let bytes = quoted.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return (&quoted[..i], &quoted[i + 1..]),
                _ => i += 1,
            }
        }
        (quoted, "")
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        (&after[..end], &after[end..])
    }
}

/// `podroute:<16 lowercase hex>` at the start of a comment, followed by its
/// end or a space: the hash.
fn tagged_hash(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(COMMENT_TAG)?;
    let hash = rest.get(..HASH_LEN)?;
    let tail = &rest[HASH_LEN..];
    (is_hash(hash) && (tail.is_empty() || tail.starts_with(' '))).then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::dataplane::{Family, Hook, Rule};

    const H1: &str = "0123456789abcdef";
    const H2: &str = "1111111111111111";
    const H3: &str = "2222222222222222";
    const HF: &str = "ffffffffffffffff";

    const SAVE: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 21 15:13:31 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [12:3456]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:PODROUTE-EMPTY - [0:0]
:PODROUTE-FOO - [0:0]
-A INPUT -m comment --comment \"podroute:ffffffffffffffff hook\" -j PODROUTE-FOO
-A FORWARD -j DOCKER-USER
-A FORWARD -m comment --comment \"podroute:ffffffffffffffff hook\" -j PODROUTE-FOO
-A FORWARD -m set --match-set podroute-a src -m comment --comment \"admin rule\" -j ACCEPT
-A DOCKER-USER -m comment --comment podroute:2222222222222222 -j RETURN
-A PODROUTE-FOO -s 10.0.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment \"podroute:0123456789abcdef allow \\\"x\\\"\" -j ACCEPT
-A PODROUTE-FOO -m comment --comment podroute:1111111111111111 -j RETURN
-A PODROUTE-FOO -m set --match-set podroute-p dst,dst -j ACCEPT
COMMIT
# Completed on Sat Nov 21 15:13:31 2026
";

    #[test]
    fn save_output_gives_our_chains_and_hooks_only() {
        let state = parse_save(SAVE).unwrap();
        assert_eq!(
            state.chains,
            BTreeMap::from([
                ("PODROUTE-EMPTY".to_string(), vec![]),
                (
                    "PODROUTE-FOO".to_string(),
                    vec![H1.to_string(), H2.to_string(), FOREIGN_RULE.to_string()]
                ),
            ])
        );
        // DOCKER-USER is a user chain: a tagged rule there is no hook.
        assert_eq!(state.hooks.len(), 2);
        let input = &state.hooks["INPUT"];
        assert!(input.on_top);
        assert_eq!(
            input.hooks,
            vec![HookState {
                hash: HF.to_string(),
                rule: "-m comment --comment \"podroute:ffffffffffffffff hook\" -j PODROUTE-FOO"
                    .to_string()
            }]
        );
        // Docker's jump sits above ours in FORWARD.
        assert!(!state.hooks["FORWARD"].on_top);
    }

    #[test]
    fn an_empty_or_missing_table_has_nothing_of_ours() {
        assert_eq!(parse_save("").unwrap(), TableState::default());
        let fresh =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(parse_save(fresh).unwrap(), TableState::default());
    }

    #[test]
    fn unreadable_lines_are_errors_naming_the_line() {
        let err = parse_save("*filter\n-I FORWARD 1 -j ACCEPT\n").unwrap_err();
        assert_eq!(err.line_no, 2);
        assert_eq!(err.line, "-I FORWARD 1 -j ACCEPT");
        assert!(parse_save(":\n").is_err());
        assert!(parse_save(":PODROUTE-X\n").is_err());
    }

    #[test]
    fn counters_of_our_tagged_rules_are_read() {
        let save = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 21 18:25:11 2026
*filter
:INPUT ACCEPT [0:0]
:PODROUTE-X - [0:0]
[7:420] -A INPUT -m comment --comment \"podroute:ffffffffffffffff hook\" -j PODROUTE-X
[3:180] -A PODROUTE-X -m comment --comment \"podroute:0123456789abcdef ingress of x/a: no policy allows it\" -j DROP
[18446744073709551615:0] -A PODROUTE-X -m comment --comment podroute:1111111111111111 -j DROP
[9:9] -A PODROUTE-X -j DROP
COMMIT
";
        assert_eq!(
            parse_counters(save).unwrap(),
            vec![(H1.to_string(), 3), (H2.to_string(), u64::MAX)]
        );
        // iptables-save without -c: no counters, nothing read.
        assert_eq!(parse_counters(SAVE).unwrap(), vec![]);
        for bad in [
            "[1:2 -A PODROUTE-X -j DROP",
            "[x:2] -A PODROUTE-X -j DROP",
            "[12] -A PODROUTE-X -j DROP",
            "[1:2] -I PODROUTE-X -j DROP",
        ] {
            let err = parse_counters(bad).unwrap_err();
            assert_eq!((err.line_no, err.line.as_str()), (1, bad));
        }
    }

    #[test]
    fn hashes_come_only_from_well_formed_tags() {
        assert_eq!(
            rule_hash(&format!("-m comment --comment \"podroute:{H1}\" -j X")),
            Some(H1)
        );
        assert_eq!(
            rule_hash(&format!("-m comment --comment podroute:{H1} -j X")),
            Some(H1)
        );
        assert_eq!(
            rule_hash(&format!(
                "-m comment --comment \"a b\" -m comment --comment \"podroute:{H1} d\""
            )),
            Some(H1)
        );
        // Too short, upper case, longer, a foreign tag, no comment.
        assert_eq!(rule_hash("-m comment --comment \"podroute:0123\""), None);
        assert_eq!(
            rule_hash("-m comment --comment \"podroute:0123456789ABCDEF\""),
            None
        );
        assert_eq!(
            rule_hash("-m comment --comment \"podroute:0123456789abcdef0\""),
            None
        );
        assert_eq!(
            rule_hash("-m comment --comment \"kube:0123456789abcdef\""),
            None
        );
        assert_eq!(rule_hash("-j ACCEPT"), None);
        // An unterminated quote does not run past the end.
        assert_eq!(rule_hash("-m comment --comment \"podroute:"), None);
    }

    fn rule(hash: &str, text: &str) -> Rule {
        Rule {
            hash: hash.to_string(),
            line: format!("-m comment --comment \"podroute:{hash} {text}\" -j RETURN"),
        }
    }

    fn hook(builtin: &str, hash: &str, target: &str) -> Hook {
        Hook {
            builtin: builtin.to_string(),
            hash: hash.to_string(),
            line: format!("-m comment --comment \"podroute:{hash} hook\" -j {target}"),
        }
    }

    fn table(chains: &[(&str, Vec<Rule>)], hooks: Vec<Hook>) -> Table {
        Table {
            family: Family::V4,
            chains: chains
                .iter()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect(),
            hooks,
        }
    }

    #[test]
    fn a_fresh_table_gets_everything_in_one_script() {
        let desired = table(
            &[
                ("PODROUTE-A", vec![rule(H1, "a1"), rule(H2, "a2")]),
                ("PODROUTE-B", vec![]),
            ],
            vec![
                hook("FORWARD", H3, "PODROUTE-A"),
                hook("FORWARD", HF, "PODROUTE-B"),
            ],
        );
        let plan = plan_table(&desired, &TableState::default());
        assert_eq!(
            plan.script,
            format!(
                "*filter\n\
                 :PODROUTE-A - [0:0]\n\
                 :PODROUTE-B - [0:0]\n\
                 -A PODROUTE-A {}\n\
                 -A PODROUTE-A {}\n\
                 -I FORWARD 1 {}\n\
                 -I FORWARD 2 {}\n\
                 COMMIT\n",
                desired.chains["PODROUTE-A"][0].line,
                desired.chains["PODROUTE-A"][1].line,
                desired.hooks[0].line,
                desired.hooks[1].line,
            )
        );
        assert_eq!(
            (plan.chains_written, plan.chains_deleted, plan.hooks_changed),
            (2, 0, 2)
        );
    }

    #[test]
    fn an_unchanged_table_needs_no_command() {
        let desired = table(
            &[("PODROUTE-A", vec![rule(H1, "a1")]), ("PODROUTE-B", vec![])],
            vec![hook("INPUT", H3, "PODROUTE-A")],
        );
        let plan = plan_table(&desired, &TableState::from_desired(&desired));
        assert_eq!(plan, TablePlan::default());
    }

    #[test]
    fn only_the_changed_chain_is_rewritten_and_stale_ones_go_last() {
        let old = table(
            &[
                ("PODROUTE-A", vec![rule(H1, "a1")]),
                ("PODROUTE-B", vec![rule(H2, "b1")]),
                ("PODROUTE-OLD", vec![rule(H3, "o1")]),
            ],
            vec![hook("FORWARD", HF, "PODROUTE-A")],
        );
        let new = table(
            &[
                ("PODROUTE-A", vec![rule(H1, "a1")]),
                ("PODROUTE-B", vec![rule(H2, "b1"), rule(H3, "b2")]),
            ],
            vec![hook("FORWARD", HF, "PODROUTE-A")],
        );
        let plan = plan_table(&new, &TableState::from_desired(&old));
        assert_eq!(
            plan.script,
            format!(
                "*filter\n:PODROUTE-B - [0:0]\n:PODROUTE-OLD - [0:0]\n\
                 -A PODROUTE-B {}\n-A PODROUTE-B {}\n-X PODROUTE-OLD\nCOMMIT\n",
                new.chains["PODROUTE-B"][0].line, new.chains["PODROUTE-B"][1].line
            )
        );
        assert_eq!(
            (plan.chains_written, plan.chains_deleted, plan.hooks_changed),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_chain_with_a_foreign_rule_is_rewritten() {
        let desired = table(&[("PODROUTE-A", vec![rule(H1, "a1")])], vec![]);
        let mut kernel = TableState::from_desired(&desired);
        kernel
            .chains
            .get_mut("PODROUTE-A")
            .unwrap()
            .push(FOREIGN_RULE.to_string());
        assert_eq!(plan_table(&desired, &kernel).chains_written, 1);
    }

    #[test]
    fn hooks_are_replaced_when_duplicated_missing_stale_or_not_on_top() {
        let desired = table(
            &[("PODROUTE-A", vec![])],
            vec![hook("FORWARD", H1, "PODROUTE-A")],
        );
        let printed = "-m comment --comment \"podroute:0123456789abcdef hook\" -j PODROUTE-A";
        let stale = "-m comment --comment \"podroute:1111111111111111 hook\" -j PODROUTE-A";
        let hs = |h: &str, r: &str| HookState {
            hash: h.to_string(),
            rule: r.to_string(),
        };
        let kernel = |hooks: Vec<(&str, BuiltinHooks)>| TableState {
            chains: BTreeMap::from([("PODROUTE-A".to_string(), vec![])]),
            hooks: hooks.into_iter().map(|(b, h)| (b.to_string(), h)).collect(),
        };
        let insert = format!("-I FORWARD 1 {}", desired.hooks[0].line);

        // Duplicated: both copies go, one comes back.
        let dup = kernel(vec![(
            "FORWARD",
            BuiltinHooks {
                hooks: vec![hs(H1, printed), hs(H1, printed)],
                on_top: true,
            },
        )]);
        let plan = plan_table(&desired, &dup);
        assert_eq!(
            plan.script,
            format!("*filter\n-D FORWARD {printed}\n-D FORWARD {printed}\n{insert}\nCOMMIT\n")
        );
        assert_eq!(plan.hooks_changed, 3);

        // Missing.
        let plan = plan_table(&desired, &kernel(vec![]));
        assert_eq!(plan.script, format!("*filter\n{insert}\nCOMMIT\n"));
        assert_eq!(plan.hooks_changed, 1);

        // Below somebody else's rule.
        let low = kernel(vec![(
            "FORWARD",
            BuiltinHooks {
                hooks: vec![hs(H1, printed)],
                on_top: false,
            },
        )]);
        assert_eq!(plan_table(&desired, &low).hooks_changed, 2);

        // Stale, in another built-in.
        let other = kernel(vec![
            (
                "FORWARD",
                BuiltinHooks {
                    hooks: vec![hs(H1, printed)],
                    on_top: true,
                },
            ),
            (
                "INPUT",
                BuiltinHooks {
                    hooks: vec![hs(H2, stale)],
                    on_top: true,
                },
            ),
        ]);
        let plan = plan_table(&desired, &other);
        assert_eq!(plan.script, format!("*filter\n-D INPUT {stale}\nCOMMIT\n"));
        assert_eq!(plan.hooks_changed, 1);
    }

    #[test]
    fn removing_everything_deletes_hooks_before_chains() {
        let old = table(
            &[("PODROUTE-A", vec![rule(H1, "a1")])],
            vec![hook("FORWARD", HF, "PODROUTE-A")],
        );
        let plan = plan_table(&Table::empty(Family::V4), &TableState::from_desired(&old));
        assert_eq!(
            plan.script,
            format!(
                "*filter\n:PODROUTE-A - [0:0]\n-D FORWARD {}\n-X PODROUTE-A\nCOMMIT\n",
                old.hooks[0].line
            )
        );
        assert_eq!(
            (plan.chains_written, plan.chains_deleted, plan.hooks_changed),
            (0, 1, 1)
        );
    }

    #[test]
    fn saved_state_round_trips_through_the_plan() {
        // What we read back from a table we wrote needs no change.
        let state = parse_save(SAVE).unwrap();
        let desired = table(
            &[
                ("PODROUTE-EMPTY", vec![]),
                ("PODROUTE-FOO", vec![rule(H1, "x"), rule(H2, "y")]),
            ],
            vec![hook("INPUT", HF, "PODROUTE-FOO")],
        );
        let plan = plan_table(&desired, &state);
        // FOO has a foreign third rule; FORWARD's hook is stale and low.
        assert_eq!(
            (plan.chains_written, plan.chains_deleted, plan.hooks_changed),
            (1, 0, 1)
        );
    }
}
