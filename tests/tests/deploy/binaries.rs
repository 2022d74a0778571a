// Every command line a container runs, parsed by the binary it runs
// (flag names and values), with the flags other branches are adding taken
// out until they are merged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::builds::{builds, command_line, containers};
use crate::docs::repo;
use crate::tables::{EXPECTED_NEW, OUR_BINARIES};

/// target/debug, where the workspace's binaries are built.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_podlab"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The newest modification time of the Rust files under `dir`.
fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_source(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            SystemTime::UNIX_EPOCH
        };
        newest = newest.max(time);
    }
    newest
}

/// The binary `program`, built after its crate's last change (a stale one
/// would answer for flags that are gone).
fn binary(program: &str) -> PathBuf {
    let path = bin_dir().join(program);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} not found: cargo build -p podroute-bgpd -p podroute-ipam -p podroute-policy -p podroute-cni first",
                path.display()
            )
        });
    // Its crate and the workspace crates it depends on (their Cargo.toml).
    let crate_dirs: &[&str] = match program {
        "podroute-bgpd" => &["bgpd", "proto", "labels", "k8s"],
        "podroute-ipamd" => &["ipam", "proto", "labels", "k8s"],
        "podroute-policy-agent" => &["policy-agent", "proto", "labels", "k8s", "cni"],
        "podroute-cni" => &["cni", "proto"],
        other => panic!("no crate known for {other}"),
    };
    for dir in crate_dirs {
        let source = newest_source(&repo().join(dir).join("src"));
        assert!(
            source <= built,
            "{} is older than {dir}/src: rebuild it (cargo build -p podroute-bgpd -p podroute-ipam -p podroute-policy -p podroute-cni)",
            path.display()
        );
    }
    path
}

#[test]
fn every_container_command_line_parses_in_its_binary() {
    let mut problems = Vec::new();
    let mut still_new: BTreeSet<(&str, &str)> = BTreeSet::new();
    let flag_pattern = regex::Regex::new(r"--[a-z0-9][a-z0-9-]*").unwrap();
    for build in builds() {
        for (index, workload) in build.workloads() {
            for container in containers(workload.spec) {
                let line = match command_line(&build, index, &workload, container) {
                    Ok(line) => line,
                    Err(e) => {
                        problems.push(e);
                        continue;
                    }
                };
                let program = line[0].as_str();
                if !OUR_BINARIES.iter().any(|(p, _)| *p == program) {
                    continue;
                }
                let path = binary(program);
                // The flags the binary has, from its --help (of the
                // subcommand, for `podroute-cni install`).
                let help = Command::new(&path)
                    .args(line[1..].iter().take_while(|w| !w.starts_with("--")))
                    .arg("--help")
                    .output()
                    .unwrap();
                let known: BTreeSet<String> = flag_pattern
                    .find_iter(&String::from_utf8_lossy(&help.stdout))
                    .map(|m| m.as_str().to_owned())
                    .collect();
                // The flags still to come are taken out (with their value),
                // and must not be there yet.
                let mut args = Vec::new();
                let mut words = line[1..].iter();
                while let Some(word) = words.next() {
                    let flag = word.split('=').next().unwrap_or(word);
                    if let Some((owner, new, takes_value)) = EXPECTED_NEW
                        .iter()
                        .find(|(p, f, _)| *p == program && *f == flag)
                    {
                        if known.contains(*new) {
                            problems.push(format!(
                                "{program} now has {new}: delete it from EXPECTED_NEW in tests/tests/deploy/tables.rs"
                            ));
                        }
                        still_new.insert((*owner, *new));
                        if *takes_value && !word.contains('=') {
                            words.next();
                        }
                        continue;
                    }
                    args.push(word.clone());
                }
                // clap parses every argument (names and values) before it
                // acts on --help; requirements between flags are checked
                // only after, so those are not covered here.
                let out = Command::new(&path)
                    .args(&args)
                    .arg("--help")
                    .output()
                    .unwrap();
                if !out.status.success() {
                    problems.push(format!(
                        "{}: {} container {}: {program} {} refused: {}",
                        build.name,
                        workload.id,
                        container.name,
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
    }
    if !still_new.is_empty() {
        eprintln!("note: flags not in the binaries yet, taken out before parsing: {still_new:?}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
