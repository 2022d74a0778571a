// The ipset side of the applier: reads our sets from `ipset save`, and
// writes the two `ipset restore` scripts around the iptables step: one that
// creates new sets and replaces changed ones by building a copy and swapping
// it in (a set in use is never seen half-filled), and one that destroys the
// stale sets once no rule of ours refers to them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::SaveParseError;
use crate::render::dataplane::{IpSet, SET_PREFIX, SetKind};

/// What names the copy a changed set is built in before the swap.
pub const TMP_SUFFIX: &str = "-tmp";
/// Starting hash size: ipset grows it as members come.
pub const HASHSIZE: u32 = 1024;
/// Room for every pod address of a large cluster in one set (the default,
/// 65536, is not).
pub const MAXELEM: u32 = 1_048_576;

/// One of our sets as the kernel holds it or as last programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetState {
    /// As `ipset create` takes it: `hash:ip`.
    pub kind: String,
    /// `inet` or `inet6`.
    pub family: String,
    /// In the form `ipset save` prints, see `canonical_member`.
    pub members: BTreeSet<String>,
}

/// The scripts for the sets and what they change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetPlan {
    /// Before iptables: creates and swaps. Empty when nothing to do.
    pub before: String,
    /// After iptables: destroys. Empty when nothing to do.
    pub after: String,
    pub sets_created: usize,
    pub sets_swapped: usize,
    pub sets_destroyed: usize,
}

/// A desired set the kernel holds with another type or family: ipset swaps
/// only sets of one type and family, and destroying one in use fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeConflict {
    pub set: String,
    /// `hash:ip family inet`.
    pub kernel: String,
    pub desired: String,
}

impl SetState {
    pub fn from_desired(set: &IpSet) -> SetState {
        SetState {
            kind: set.kind.ipset_type().to_string(),
            family: set.family.ipset_family().to_string(),
            members: set
                .members
                .iter()
                .map(|m| canonical_member(set.kind, m))
                .collect(),
        }
    }

    fn describe(&self) -> String {
        format!("{} family {}", self.kind, self.family)
    }
}

/// Reads our sets (named `podroute-*`) from `ipset save` output.
pub fn parse_save(text: &str) -> Result<BTreeMap<String, SetState>, SaveParseError> {
    let mut sets: BTreeMap<String, SetState> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason| SaveParseError {
            line_no: i + 1,
            line: line.to_string(),
            reason,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (verb, rest) = line.split_once(' ').ok_or_else(|| err("a word alone"))?;
        let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match verb {
            "create" => {
                let mut words = rest.split_whitespace();
                let kind = words.next().ok_or_else(|| err("create without a type"))?;
                // list:set has no family; none of ours is one.
                let mut family = "";
                while let Some(word) = words.next() {
                    if word == "family" {
                        family = words.next().ok_or_else(|| err("family without a value"))?;
                    }
                }
                if name.starts_with(SET_PREFIX) {
                    sets.insert(
                        name.to_string(),
                        SetState {
                            kind: kind.to_string(),
                            family: family.to_string(),
                            members: BTreeSet::new(),
                        },
                    );
                }
            }
            "add" => {
                if !name.starts_with(SET_PREFIX) {
                    continue;
                }
                let set = sets
                    .get_mut(name)
                    .ok_or_else(|| err("add to a set not created before"))?;
                let member = rest.trim();
                if member.is_empty() {
                    return Err(err("add without a member"));
                }
                set.members.insert(member.to_string());
            }
            _ => return Err(err("neither create nor add")),
        }
    }
    Ok(sets)
}

/// A member in the form `ipset save` prints it, so that desired and kernel
/// members compare as strings: addresses as Rust prints them (the same as
/// inet_ntop), a network masked to its prefix and a full-length prefix
/// dropped, a port without protocol given its default, tcp. Anything we do
/// not understand is left as it is (and ipset will say what is wrong).
pub fn canonical_member(kind: SetKind, member: &str) -> String {
    let member = member.trim();
    let (entry, flags) = match member.split_once(char::is_whitespace) {
        Some((entry, flags)) => (
            entry,
            Some(flags.split_whitespace().collect::<Vec<_>>().join(" ")),
        ),
        None => (member, None),
    };
    let canonical = match kind {
        SetKind::HashIp => canonical_addr(entry),
        SetKind::HashNet => canonical_net(entry),
        SetKind::HashIpPort => entry.split_once(',').and_then(|(addr, port)| {
            let port = if port.contains(':') {
                port.to_ascii_lowercase()
            } else {
                format!("tcp:{port}")
            };
            Some(format!("{},{port}", canonical_addr(addr)?))
        }),
    };
    let entry = canonical.unwrap_or_else(|| entry.to_string());
    match flags {
        Some(flags) => format!("{entry} {flags}"),
        None => entry,
    }
}

/// Plans the set changes from `kernel` to `desired`; fails, before anything
/// is run, on a set whose type or family would have to change.
pub fn plan_sets(
    desired: &BTreeMap<String, IpSet>,
    kernel: &BTreeMap<String, SetState>,
) -> Result<SetPlan, TypeConflict> {
    let mut plan = SetPlan::default();
    let mut before = String::new();
    // Leftover copies destroyed here are not stale any more in `after`.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for (name, set) in desired {
        let want = SetState::from_desired(set);
        let create = |target: &str, script: &mut String| {
            script.push_str(&format!(
                "create {target} {} family {} hashsize {HASHSIZE} maxelem {MAXELEM}\n",
                want.kind, want.family
            ));
            for member in &set.members {
                script.push_str(&format!("add {target} {}\n", member.trim()));
            }
        };
        match kernel.get(name) {
            None => {
                create(name, &mut before);
                plan.sets_created += 1;
            }
            Some(have) if have.kind != want.kind || have.family != want.family => {
                return Err(TypeConflict {
                    set: name.clone(),
                    kernel: have.describe(),
                    desired: want.describe(),
                });
            }
            Some(have) if have.members == want.members => {}
            Some(_) => {
                let tmp = format!("{name}{TMP_SUFFIX}");
                if kernel.contains_key(&tmp) {
                    before.push_str(&format!("destroy {tmp}\n"));
                    gone.insert(tmp.clone());
                    plan.sets_destroyed += 1;
                }
                create(&tmp, &mut before);
                before.push_str(&format!("swap {name} {tmp}\ndestroy {tmp}\n"));
                plan.sets_swapped += 1;
            }
        }
    }
    let mut after = String::new();
    for name in kernel.keys() {
        if !desired.contains_key(name) && !gone.contains(name) {
            after.push_str(&format!("destroy {name}\n"));
            plan.sets_destroyed += 1;
        }
    }
    plan.before = before;
    plan.after = after;
    Ok(plan)
}

fn canonical_addr(s: &str) -> Option<String> {
    s.parse::<IpAddr>().ok().map(|a| a.to_string())
}

fn canonical_net(s: &str) -> Option<String> {
    let (addr, len) = match s.split_once('/') {
        Some((addr, len)) => (addr.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    if len > max {
        return None;
    }
    if len == max {
        return Some(addr.to_string());
    }
    let masked = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    };
    Some(format!("{masked}/{len}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::dataplane::Family;

    const SAVE: &str = "\
create podroute-a hash:ip family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x91989b00
add podroute-a 10.0.0.1
create KUBE-X hash:ip family inet hashsize 1024 maxelem 65536
add KUBE-X 10.0.0.9
create podroute-n hash:net family inet6 hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x7ef807a6
add podroute-n fd00::/64
add podroute-n fd00::/80 nomatch
create podroute-p hash:ip,port family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x55ef2e4c
add podroute-p 10.0.0.2,sctp:53
add podroute-p 10.0.0.2,udp:53
add podroute-p 10.0.0.1,tcp:80
create podroute-e hash:ip family inet6 hashsize 1024 maxelem 1048576
";

    fn members(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn save_output_gives_our_sets_with_members() {
        let sets = parse_save(SAVE).unwrap();
        assert_eq!(
            sets.keys().collect::<Vec<_>>(),
            ["podroute-a", "podroute-e", "podroute-n", "podroute-p"]
        );
        assert_eq!(
            sets["podroute-n"],
            SetState {
                kind: "hash:net".to_string(),
                family: "inet6".to_string(),
                members: members(&["fd00::/64", "fd00::/80 nomatch"]),
            }
        );
        assert_eq!(
            sets["podroute-p"].members,
            members(&["10.0.0.1,tcp:80", "10.0.0.2,sctp:53", "10.0.0.2,udp:53"])
        );
        assert!(sets["podroute-e"].members.is_empty());
        assert_eq!(sets["podroute-e"].family, "inet6");
        assert!(parse_save("").unwrap().is_empty());
    }

    #[test]
    fn unreadable_save_lines_are_errors() {
        assert_eq!(parse_save("create\n").unwrap_err().line_no, 1);
        assert!(parse_save("add podroute-x 10.0.0.1\n").is_err());
        assert!(parse_save("create podroute-x\n").is_err());
        assert!(parse_save("create podroute-x hash:ip family\n").is_err());
        assert!(parse_save("create podroute-x hash:ip\nadd podroute-x\n").is_err());
        assert!(parse_save("flush podroute-x\n").is_err());
    }

    #[test]
    fn members_take_the_form_ipset_prints() {
        use SetKind::*;
        let cases = [
            (HashIp, "10.0.0.1", "10.0.0.1"),
            (HashIp, "fd00:0:0:0::1", "fd00::1"),
            (HashIp, "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            (HashNet, "10.0.0.1/32", "10.0.0.1"),
            (HashNet, "10.1.2.3/16", "10.1.0.0/16"),
            (HashNet, "10.0.0.0/8  nomatch", "10.0.0.0/8 nomatch"),
            (HashNet, "fd00::1/128", "fd00::1"),
            (HashNet, "fd00:0::ff/64", "fd00::/64"),
            (HashNet, "0.0.0.0/0", "0.0.0.0/0"),
            (HashNet, "::/0", "::/0"),
            (HashIpPort, "10.0.0.1,80", "10.0.0.1,tcp:80"),
            (HashIpPort, "10.0.0.1,UDP:53", "10.0.0.1,udp:53"),
            (HashIpPort, "fd00:0::1,sctp:9", "fd00::1,sctp:9"),
            // Not understood: left alone.
            (HashNet, "10.0.0.0/40", "10.0.0.0/40"),
            (HashIp, "pod-a", "pod-a"),
        ];
        for (kind, given, want) in cases {
            assert_eq!(canonical_member(kind, given), want, "{kind:?} {given}");
        }
    }

    fn set(name: &str, kind: SetKind, family: Family, list: &[&str]) -> (String, IpSet) {
        (
            name.to_string(),
            IpSet {
                name: name.to_string(),
                kind,
                family,
                members: members(list),
            },
        )
    }

    fn state(kind: &str, family: &str, list: &[&str]) -> SetState {
        SetState {
            kind: kind.to_string(),
            family: family.to_string(),
            members: members(list),
        }
    }

    #[test]
    fn new_sets_are_created_with_their_members() {
        let desired = BTreeMap::from([
            set(
                "podroute-a",
                SetKind::HashIp,
                Family::V4,
                &["10.0.0.1", "10.0.0.2"],
            ),
            set(
                "podroute-n",
                SetKind::HashNet,
                Family::V6,
                &["fd00::/64", "fd00::/80 nomatch"],
            ),
        ]);
        let plan = plan_sets(&desired, &BTreeMap::new()).unwrap();
        assert_eq!(
            plan.before,
            "create podroute-a hash:ip family inet hashsize 1024 maxelem 1048576\n\
             add podroute-a 10.0.0.1\n\
             add podroute-a 10.0.0.2\n\
             create podroute-n hash:net family inet6 hashsize 1024 maxelem 1048576\n\
             add podroute-n fd00::/64\n\
             add podroute-n fd00::/80 nomatch\n"
        );
        assert_eq!(plan.after, "");
        assert_eq!(
            (plan.sets_created, plan.sets_swapped, plan.sets_destroyed),
            (2, 0, 0)
        );
    }

    #[test]
    fn equal_sets_need_nothing_even_in_another_spelling() {
        let desired = BTreeMap::from([set(
            "podroute-p",
            SetKind::HashIpPort,
            Family::V6,
            &["fd00:0::1,80"],
        )]);
        let kernel = BTreeMap::from([(
            "podroute-p".to_string(),
            state("hash:ip,port", "inet6", &["fd00::1,tcp:80"]),
        )]);
        assert_eq!(plan_sets(&desired, &kernel).unwrap(), SetPlan::default());
    }

    #[test]
    fn changed_sets_are_swapped_and_stale_ones_destroyed_after() {
        let desired = BTreeMap::from([
            set("podroute-a", SetKind::HashIp, Family::V4, &["10.0.0.3"]),
            set("podroute-b", SetKind::HashIp, Family::V4, &["10.0.0.4"]),
        ]);
        let kernel = BTreeMap::from([
            (
                "podroute-a".to_string(),
                state("hash:ip", "inet", &["10.0.0.1"]),
            ),
            (
                "podroute-b".to_string(),
                state("hash:ip", "inet", &["10.0.0.9"]),
            ),
            // A copy left by an interrupted swap.
            ("podroute-b-tmp".to_string(), state("hash:ip", "inet", &[])),
            ("podroute-old".to_string(), state("hash:net", "inet", &[])),
        ]);
        let plan = plan_sets(&desired, &kernel).unwrap();
        assert_eq!(
            plan.before,
            "create podroute-a-tmp hash:ip family inet hashsize 1024 maxelem 1048576\n\
             add podroute-a-tmp 10.0.0.3\n\
             swap podroute-a podroute-a-tmp\n\
             destroy podroute-a-tmp\n\
             destroy podroute-b-tmp\n\
             create podroute-b-tmp hash:ip family inet hashsize 1024 maxelem 1048576\n\
             add podroute-b-tmp 10.0.0.4\n\
             swap podroute-b podroute-b-tmp\n\
             destroy podroute-b-tmp\n"
        );
        assert_eq!(plan.after, "destroy podroute-old\n");
        assert_eq!(
            (plan.sets_created, plan.sets_swapped, plan.sets_destroyed),
            (0, 2, 2)
        );
    }

    #[test]
    fn a_type_or_family_change_is_refused_before_anything_runs() {
        let desired = BTreeMap::from([set("podroute-a", SetKind::HashNet, Family::V4, &[])]);
        let kernel = BTreeMap::from([("podroute-a".to_string(), state("hash:ip", "inet", &[]))]);
        assert_eq!(
            plan_sets(&desired, &kernel).unwrap_err(),
            TypeConflict {
                set: "podroute-a".to_string(),
                kernel: "hash:ip family inet".to_string(),
                desired: "hash:net family inet".to_string(),
            }
        );
        let desired = BTreeMap::from([set("podroute-a", SetKind::HashIp, Family::V6, &[])]);
        assert!(plan_sets(&desired, &kernel).is_err());
    }
}
