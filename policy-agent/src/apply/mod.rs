// Programs a rendered `Dataplane` into the kernel: ipsets, then both
// families' filter tables, then stale sets, each step one atomic command
// (`ipset restore`, `iptables-restore --noflush`). It diffs against what the
// kernel holds (read with iptables-save and ipset save, ours recognised by
// name prefix and hash comment) or, between resyncs, against what it last
// wrote, and names nothing that is not ours.

pub mod conntrack;
pub mod ipset;
pub mod iptables;
pub mod runner;

use std::collections::{BTreeMap, HashMap};

pub use conntrack::{ConntrackError, ConntrackFlow};
pub use runner::{CommandOutput, RunError, Runner};

use crate::render::dataplane::{
    CHAIN_PREFIX, Dataplane, Family, MAX_CHAIN_NAME, MAX_SET_NAME, SET_PREFIX, Table,
};
use ipset::{SetState, TMP_SUFFIX};
use iptables::TableState;

/// Built-in chains of the filter table a hook may sit in.
const BUILTINS: [&str; 3] = ["INPUT", "FORWARD", "OUTPUT"];
/// iptables-restore waits this many seconds for the xtables lock (legacy
/// backend; the nf_tables backend needs none but takes the flag).
const LOCK_WAIT_SECONDS: &str = "10";

/// What one `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Our chains (both families) declared and filled: new or changed.
    pub chains_written: usize,
    /// Our chains (both families) deleted as no longer wanted.
    pub chains_deleted: usize,
    /// Hook rules deleted or inserted in built-in chains.
    pub hooks_changed: usize,
    pub sets_created: usize,
    /// Sets whose members changed, rebuilt and swapped in.
    pub sets_swapped: usize,
    /// Our sets no longer wanted (and copies left by an interrupted swap).
    pub sets_destroyed: usize,
    /// Our rules in the kernel afterwards, hooks included, both families.
    pub rules: usize,
    /// Members of our sets afterwards.
    pub set_members: usize,
    /// Whether the kernel was read rather than the cache trusted.
    pub kernel_read: bool,
}

impl ApplyReport {
    /// Whether the apply changed anything in the kernel.
    pub fn wrote_anything(&self) -> bool {
        self.chains_written
            + self.chains_deleted
            + self.hooks_changed
            + self.sets_created
            + self.sets_swapped
            + self.sets_destroyed
            > 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Run(#[from] RunError),

    #[error("cannot read line {line_no} of `{command}` ({reason}): {line}")]
    Parse {
        command: String,
        line_no: usize,
        line: String,
        reason: &'static str,
    },

    #[error(
        "ipset {set} is {kernel} in the kernel but wanted as {desired}: ipset cannot swap sets \
         of different types, and the renderer puts type and family in set names so this should \
         not happen; destroy the set by hand (or run with --cleanup) once nothing refers to it"
    )]
    SetTypeChanged {
        set: String,
        kernel: String,
        desired: String,
    },

    #[error("refusing to apply: {what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// A line of iptables-save or ipset save output we cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveParseError {
    /// From 1.
    pub line_no: usize,
    pub line: String,
    pub reason: &'static str,
}

/// Programs dataplanes, remembering what it last wrote.
#[derive(Debug)]
pub struct Applier {
    runner: Runner,
    /// What the kernel holds of ours after the last successful apply; None
    /// before the first and after a failure, so the next apply reads it.
    cache: Option<KernelState>,
}

impl Applier {
    pub fn new(runner: Runner) -> Applier {
        Applier {
            runner,
            cache: None,
        }
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Makes the kernel hold `desired` and nothing else of ours. With
    /// `read_kernel` (and always on the first call, or after a failed one)
    /// the kernel is read first; otherwise what the last apply wrote is
    /// trusted. Nothing is run when nothing differs. On an error the kernel
    /// may hold part of the change; the next apply reads it and finishes.
    pub fn apply(
        &mut self,
        desired: &Dataplane,
        read_kernel: bool,
    ) -> Result<ApplyReport, ApplyError> {
        validate(desired)?;
        // Forget the cache up front: whatever fails below leaves the kernel
        // in a state only a read can tell.
        let cached = self.cache.take();
        let kernel_read = read_kernel || cached.is_none();
        let kernel = match cached {
            Some(cached) if !kernel_read => cached,
            _ => self.read_kernel()?,
        };

        let sets = ipset::plan_sets(&desired.sets, &kernel.sets).map_err(|c| {
            ApplyError::SetTypeChanged {
                set: c.set,
                kernel: c.kernel,
                desired: c.desired,
            }
        })?;
        let tables = [Family::V4, Family::V6]
            .map(|f| (f, iptables::plan_table(desired.table(f), kernel.table(f))));

        if !sets.before.is_empty() {
            self.runner.run("ipset", &["restore"], Some(&sets.before))?;
        }
        for (family, plan) in &tables {
            if !plan.script.is_empty() {
                self.runner.run(
                    restore_program(*family),
                    &["-w", LOCK_WAIT_SECONDS, "--noflush"],
                    Some(&plan.script),
                )?;
            }
        }
        if !sets.after.is_empty() {
            self.runner.run("ipset", &["restore"], Some(&sets.after))?;
        }

        let mut report = ApplyReport {
            sets_created: sets.sets_created,
            sets_swapped: sets.sets_swapped,
            sets_destroyed: sets.sets_destroyed,
            rules: desired.v4.rule_count() + desired.v6.rule_count(),
            set_members: desired.sets.values().map(|s| s.members.len()).sum(),
            kernel_read,
            ..ApplyReport::default()
        };
        for (_, plan) in &tables {
            report.chains_written += plan.chains_written;
            report.chains_deleted += plan.chains_deleted;
            report.hooks_changed += plan.hooks_changed;
        }
        self.cache = Some(KernelState::from_desired(desired));
        Ok(report)
    }

    /// Removes every chain, hook and set of ours, reading the kernel to
    /// find them: what `--cleanup` does.
    pub fn remove_all(&mut self) -> Result<ApplyReport, ApplyError> {
        self.apply(&Dataplane::empty(), true)
    }

    /// Reads our chains, hooks and sets from the kernel: the three dumps
    /// at once, since each costs tens of milliseconds and none depends on
    /// another.
    fn read_kernel(&self) -> Result<KernelState, ApplyError> {
        let table = |family| -> Result<TableState, ApplyError> {
            let program = save_program(family);
            let args = ["-t", "filter"];
            let out = self.runner.run(program, &args, None)?;
            iptables::parse_save(&out.stdout)
                .map_err(|e| parse_error(self.runner.show(program, &args), e))
        };
        let sets = || -> Result<BTreeMap<String, SetState>, ApplyError> {
            let out = self.runner.run("ipset", &["save"], None)?;
            ipset::parse_save(&out.stdout)
                .map_err(|e| parse_error(self.runner.show("ipset", &["save"]), e))
        };
        let (v4, v6, sets) = std::thread::scope(|scope| {
            let v6 = scope.spawn(|| table(Family::V6));
            let sets = scope.spawn(sets);
            let v4 = table(Family::V4);
            (
                v4,
                v6.join().unwrap_or_else(|_| Err(panicked())),
                sets.join().unwrap_or_else(|_| Err(panicked())),
            )
        });
        Ok(KernelState {
            v4: v4?,
            v6: v6?,
            sets: sets?,
        })
    }
}

/// The packet counters of our rules in both families' filter tables, by
/// family and rule hash (`iptables-save -c`, both families at once). Read
/// only: safe beside an apply, which may reset the counters of the chains
/// it rewrites.
pub fn read_rule_packets(runner: &Runner) -> Result<HashMap<(Family, String), u64>, ApplyError> {
    let table = |family| -> Result<Vec<(String, u64)>, ApplyError> {
        let program = save_program(family);
        let args = ["-c", "-t", "filter"];
        let out = runner.run(program, &args, None)?;
        iptables::parse_counters(&out.stdout)
            .map_err(|e| parse_error(runner.show(program, &args), e))
    };
    let (v4, v6) = std::thread::scope(|scope| {
        let v6 = scope.spawn(|| table(Family::V6));
        let v4 = table(Family::V4);
        (v4, v6.join().unwrap_or_else(|_| Err(panicked())))
    });
    let mut packets = HashMap::new();
    for (family, counters) in [(Family::V4, v4?), (Family::V6, v6?)] {
        for (hash, count) in counters {
            packets.insert((family, hash), count);
        }
    }
    Ok(packets)
}

fn panicked() -> ApplyError {
    ApplyError::Invalid {
        what: "kernel read".to_owned(),
        reason: "a reading thread panicked".to_owned(),
    }
}

/// Our part of the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KernelState {
    v4: TableState,
    v6: TableState,
    sets: BTreeMap<String, SetState>,
}

impl KernelState {
    fn from_desired(desired: &Dataplane) -> KernelState {
        KernelState {
            v4: TableState::from_desired(&desired.v4),
            v6: TableState::from_desired(&desired.v6),
            sets: desired
                .sets
                .iter()
                .map(|(name, set)| (name.clone(), SetState::from_desired(set)))
                .collect(),
        }
    }

    fn table(&self, family: Family) -> &TableState {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

fn parse_error(command: String, e: SaveParseError) -> ApplyError {
    ApplyError::Parse {
        command,
        line_no: e.line_no,
        line: e.line,
        reason: e.reason,
    }
}

fn save_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

fn restore_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    }
}

/// Refuses a dataplane that would name something not ours, break a restore
/// script, or never read back as equal (and so be rewritten on every pass).
fn validate(desired: &Dataplane) -> Result<(), ApplyError> {
    let invalid = |what: String, reason: &str| ApplyError::Invalid {
        what,
        reason: reason.to_string(),
    };
    for table in [&desired.v4, &desired.v6] {
        validate_table(table, &invalid)?;
    }
    if desired.v4.family != Family::V4 || desired.v6.family != Family::V6 {
        return Err(invalid(
            "tables".to_string(),
            "v4 and v6 hold the wrong families",
        ));
    }
    let max_set = MAX_SET_NAME - TMP_SUFFIX.len();
    for (key, set) in &desired.sets {
        let what = || format!("ipset {key}");
        if *key != set.name {
            return Err(invalid(what(), "listed under another name"));
        }
        if !key.starts_with(SET_PREFIX) || key.len() > max_set || !is_word(key) {
            return Err(invalid(
                what(),
                "set names start with podroute-, have at most 27 bytes (room for -tmp) and no spaces",
            ));
        }
        if key.ends_with(TMP_SUFFIX) {
            return Err(invalid(what(), "-tmp names the copy a set is rebuilt in"));
        }
        if set
            .members
            .iter()
            .any(|m| m.trim().is_empty() || m.contains(['\n', '\r']))
        {
            return Err(invalid(what(), "a member is empty or holds a line break"));
        }
    }
    Ok(())
}

fn validate_table(
    table: &Table,
    invalid: &impl Fn(String, &str) -> ApplyError,
) -> Result<(), ApplyError> {
    for (name, rules) in &table.chains {
        let what = || format!("{} chain {name}", table.family);
        if !name.starts_with(CHAIN_PREFIX) || name.len() > MAX_CHAIN_NAME || !is_word(name) {
            return Err(invalid(
                what(),
                "chain names start with PODROUTE-, have at most 28 bytes and no spaces",
            ));
        }
        for rule in rules {
            check_line(&rule.hash, &rule.line).map_err(|r| invalid(what(), r))?;
        }
    }
    for hook in &table.hooks {
        let what = || format!("{} hook in {}", table.family, hook.builtin);
        if !BUILTINS.contains(&hook.builtin.as_str()) {
            return Err(invalid(what(), "hooks go in INPUT, FORWARD or OUTPUT"));
        }
        check_line(&hook.hash, &hook.line).map_err(|r| invalid(what(), r))?;
    }
    Ok(())
}

/// A rule line must carry its own hash in our comment, on one line.
fn check_line(hash: &str, line: &str) -> Result<(), &'static str> {
    if line.contains(['\n', '\r']) {
        return Err("a rule holds a line break");
    }
    if !iptables::is_hash(hash) {
        return Err("a rule hash is not 16 lowercase hex digits");
    }
    if iptables::rule_hash(line) != Some(hash) {
        return Err("a rule's comment does not carry its hash (podroute:<hash>)");
    }
    Ok(())
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::render::dataplane::{Hook, IpSet, Rule, SetKind};

    const H: &str = "0123456789abcdef";

    fn good() -> Dataplane {
        let mut d = Dataplane::empty();
        d.v4.chains.insert(
            "PODROUTE-A".to_string(),
            vec![Rule {
                hash: H.to_string(),
                line: format!("-m comment --comment \"podroute:{H} x\" -j RETURN"),
            }],
        );
        d.v4.hooks.push(Hook {
            builtin: "FORWARD".to_string(),
            hash: H.to_string(),
            line: format!("-m comment --comment \"podroute:{H} hook\" -j PODROUTE-A"),
        });
        d.sets.insert(
            "podroute-a".to_string(),
            IpSet {
                name: "podroute-a".to_string(),
                kind: SetKind::HashIp,
                family: Family::V4,
                members: BTreeSet::from(["10.0.0.1".to_string()]),
            },
        );
        d
    }

    #[test]
    fn a_well_formed_dataplane_passes() {
        validate(&good()).unwrap();
        validate(&Dataplane::empty()).unwrap();
    }

    fn refused(change: impl FnOnce(&mut Dataplane)) -> String {
        let mut d = good();
        change(&mut d);
        match validate(&d) {
            Err(e @ ApplyError::Invalid { .. }) => e.to_string(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn anything_not_ours_or_unreadable_is_refused() {
        let rule = |d: &mut Dataplane| d.v4.chains.get_mut("PODROUTE-A").unwrap()[0].clone();
        refused(|d| {
            let r = rule(d);
            d.v4.chains.insert("KUBE-FORWARD".to_string(), vec![r]);
        });
        refused(|d| {
            d.v4.chains
                .insert(format!("PODROUTE-{}", "X".repeat(20)), vec![]);
        });
        refused(|d| d.v4.chains.get_mut("PODROUTE-A").unwrap()[0].hash = "1".repeat(16));
        refused(|d| d.v4.chains.get_mut("PODROUTE-A").unwrap()[0].hash = "ABCDEF0123456789".into());
        refused(|d| {
            d.v4.chains.get_mut("PODROUTE-A").unwrap()[0]
                .line
                .push_str("\n-F")
        });
        refused(|d| d.v4.hooks[0].builtin = "PODROUTE-A".to_string());
        refused(|d| d.v6.family = Family::V4);
        refused(|d| {
            let mut s = d.sets.remove("podroute-a").unwrap();
            s.name = "kube-a".to_string();
            d.sets.insert("kube-a".to_string(), s);
        });
        refused(|d| {
            let s = d.sets.remove("podroute-a").unwrap();
            d.sets.insert("podroute-b".to_string(), s);
        });
        refused(|d| {
            let mut s = d.sets.remove("podroute-a").unwrap();
            s.name = format!("podroute-{}", "x".repeat(19));
            d.sets.insert(s.name.clone(), s);
        });
        refused(|d| {
            let mut s = d.sets.remove("podroute-a").unwrap();
            s.name = "podroute-a-tmp".to_string();
            d.sets.insert(s.name.clone(), s);
        });
        let text = refused(|d| {
            d.sets
                .get_mut("podroute-a")
                .unwrap()
                .members
                .insert("10.0.0.2\ndestroy x".to_string());
        });
        assert!(text.contains("ipset podroute-a"), "{text}");
    }

    #[test]
    fn a_27_byte_set_name_is_the_longest_taken() {
        let mut d = good();
        let mut s = d.sets.remove("podroute-a").unwrap();
        s.name = format!("podroute-{}", "x".repeat(18));
        assert_eq!(s.name.len(), 27);
        d.sets.insert(s.name.clone(), s);
        validate(&d).unwrap();
    }

    #[test]
    fn the_cache_is_the_desired_state() {
        let d = good();
        let state = KernelState::from_desired(&d);
        assert_eq!(state.v4.rule_count(), d.v4.rule_count());
        assert_eq!(state.sets["podroute-a"].members.len(), 1);
        assert_eq!(
            iptables::plan_table(&d.v4, &state.v4),
            iptables::TablePlan::default()
        );
        assert_eq!(
            ipset::plan_sets(&d.sets, &state.sets).unwrap(),
            ipset::SetPlan::default()
        );
    }
}
