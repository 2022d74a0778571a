// deploy/Dockerfile read statically (no engine here): it builds
// workspace crates, copies every program the manifests run (the CNI plugin,
// which runs on the hosts, the statically linked build of it), installs
// every tool the daemons run, and runs as a non-root user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::builds::{builds, containers, image};
use crate::docs::{deploy, repo};
use crate::tables::{
    BASE_TOOLS, IMAGE_UID, OUR_BINARIES, OUR_SCRIPTS, RUNTIME_TOOLS, STATIC_BINARIES,
};

/// The Dockerfile's instructions, each on one line: comment lines dropped
/// and continuation lines joined, as the builder reads them.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if current.is_empty() && line.trim().is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line.trim());
                out.push(
                    std::mem::take(&mut current)
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
    }
    out
}

/// One `RUN ... cargo build ...` of the Dockerfile.
struct CargoBuild {
    text: String,
    crates: BTreeSet<String>,
    /// RUSTFLAGS with `+crt-static`: a statically linked binary.
    crt_static: bool,
}

impl CargoBuild {
    fn parse(text: &str) -> CargoBuild {
        CargoBuild {
            text: text.to_owned(),
            crates: regex::Regex::new(r"-p\s+([\w-]+)")
                .unwrap()
                .captures_iter(text)
                .map(|c| c[1].to_owned())
                .collect(),
            crt_static: text.contains(r#"RUSTFLAGS="-C target-feature=+crt-static""#),
        }
    }
}

/// Package names of the workspace's members, and the binaries of each.
fn workspace_packages() -> BTreeMap<String, Vec<String>> {
    let root = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = regex::Regex::new(r#"members\s*=\s*\[([^\]]*)\]"#)
        .unwrap()
        .captures(&root)
        .unwrap()[1]
        .to_owned();
    let quoted = regex::Regex::new(r#""([^"]+)""#).unwrap();
    let name = regex::Regex::new(r#"(?m)^name\s*=\s*"([^"]+)""#).unwrap();
    let mut out = BTreeMap::new();
    for member in quoted.captures_iter(&members) {
        let manifest = std::fs::read_to_string(repo().join(&member[1]).join("Cargo.toml")).unwrap();
        // The first name is the package's, the others its [[bin]]s'.
        let mut names = name.captures_iter(&manifest).map(|c| c[1].to_owned());
        let package = names.next().unwrap();
        out.insert(package, names.collect());
    }
    out
}

#[test]
fn the_dockerfile_ships_what_the_manifests_run() {
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let packages = workspace_packages();
    let instructions = instructions(&dockerfile);
    // `cargo build -p` names workspace crates, released as locked.
    let steps: Vec<CargoBuild> = instructions
        .iter()
        .filter(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .map(|i| CargoBuild::parse(i))
        .collect();
    assert!(!steps.is_empty(), "no RUN cargo build");
    for step in &steps {
        assert!(
            step.text.contains("--release") && step.text.contains("--locked"),
            "{}",
            step.text
        );
        for krate in &step.crates {
            assert!(
                packages.contains_key(krate),
                "cargo build -p {krate}: no such workspace member"
            );
        }
    }
    // Where each program in /usr/local/bin comes from.
    let copied: BTreeMap<String, String> =
        regex::Regex::new(r"(?m)^COPY (?:--from=build )?(\S+) /usr/local/bin/(\S+)$")
            .unwrap()
            .captures_iter(&instructions.join("\n"))
            .map(|c| (c[2].to_owned(), c[1].to_owned()))
            .collect();
    for (program, krate) in OUR_BINARIES {
        assert!(
            packages[krate].contains(&program.to_owned()),
            "{krate} has no binary {program}"
        );
        let built: Vec<&CargoBuild> = steps.iter().filter(|s| s.crates.contains(krate)).collect();
        assert!(!built.is_empty(), "the Dockerfile does not build {krate}");
        let source = copied
            .get(program)
            .unwrap_or_else(|| panic!("no COPY of {program} into /usr/local/bin"));
        let must_be_static = STATIC_BINARIES.iter().any(|(p, _)| *p == program);
        for step in &built {
            assert_eq!(
                step.crt_static, must_be_static,
                "{krate} built with crt-static: {}, expected {must_be_static} (STATIC_BINARIES in tests/tests/deploy/tables.rs): {}",
                step.crt_static, step.text
            );
        }
        if must_be_static {
            // Only with --target do the flags spare build scripts and
            // proc-macros; the image gets the binary of that build, and the
            // build fails if it has a program interpreter (dynamic).
            let step = built[0];
            assert!(
                step.text.contains("--target "),
                "crt-static without --target links build scripts and proc-macros statically too: {}",
                step.text
            );
            let from_target = regex::Regex::new(&format!(
                r#"target/\S*/release/{}"?\s+{}(\s|$)"#,
                regex::escape(program),
                regex::escape(source)
            ))
            .unwrap();
            assert!(
                from_target.is_match(&step.text),
                "COPY of {program} takes {source}, which is not the statically built one of: {}",
                step.text
            );
            assert!(
                step.text
                    .contains(&format!("! readelf -lW {source} | grep -q INTERP")),
                "the build of {program} does not check it is static: {}",
                step.text
            );
        } else {
            assert_eq!(
                source,
                &format!("/src/target/release/{program}"),
                "COPY of {program}"
            );
        }
    }
    for (program, file) in OUR_SCRIPTS {
        assert_eq!(
            copied.get(program).map(String::as_str),
            Some(file),
            "COPY of {program}"
        );
        assert!(repo().join(file).exists());
    }
    // Every program a manifest runs is in the image.
    let apt = dockerfile
        .split("FROM debian:")
        .nth(1)
        .expect("a Debian runtime stage")
        .to_owned();
    for build in builds() {
        for (_, workload) in build.workloads() {
            for container in containers(workload.spec) {
                let program = container.command.as_ref().and_then(|c| c.first()).unwrap();
                let ours = copied.contains_key(program);
                let base = BASE_TOOLS.contains(&program.as_str());
                let installed = RUNTIME_TOOLS.iter().any(|(tool, package)| {
                    tool == program && apt.contains(&format!(" {package} "))
                });
                assert!(
                    ours || base || installed,
                    "{}: {} container {} runs {program}, which the image lacks",
                    build.name,
                    workload.id,
                    container.name
                );
            }
        }
    }
    // What the daemons run is installed.
    for (tool, package) in RUNTIME_TOOLS {
        assert!(
            apt.contains(&format!(" {package} ")) || apt.contains(&format!(" {package}\n")),
            "{tool}: the runtime stage does not install {package}"
        );
    }
    let mut used = BTreeSet::new();
    policy_agent_tools(&repo().join("policy-agent/src"), &mut used);
    for tool in &used {
        assert!(
            RUNTIME_TOOLS.iter().any(|(t, _)| t == tool),
            "the policy agent runs {tool}: add it (and its Debian package) to RUNTIME_TOOLS and the Dockerfile"
        );
    }
    // Not root by default; the one image everywhere.
    assert!(dockerfile.contains(&format!("\nUSER {IMAGE_UID}:{IMAGE_UID}\n")));
    assert!(
        dockerfile.contains(&format!("-t {}", image())),
        "the build command in the Dockerfile's comment"
    );
    // The routes' protocol names, as on a host set up by scripts/setup.sh.
    assert!(dockerfile.contains(&format!(
        "{} podroute\\n",
        podroute_bgpd::fib::RTPROT_PODROUTE
    )));
    assert!(dockerfile.contains(&format!(
        "{} podroute-cni\\n",
        podroute_cni::netlink::RTPROT_PODROUTE_CNI
    )));
    // target/ stays out of the build context.
    let ignore = std::fs::read_to_string(deploy().join("Dockerfile.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"));
}

/// Programs the policy agent's code runs.
fn policy_agent_tools(dir: &Path, out: &mut BTreeSet<String>) {
    let calls = regex::Regex::new(
        r#"(?:runner\.(?:run|output)\(\s*|Command::new\(\s*)"([^"]+)"|"(ip6?tables-(?:save|restore))""#,
    )
    .unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            policy_agent_tools(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests run tools of their own (in namespaces).
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for c in calls.captures_iter(code) {
                out.insert(c.get(1).or(c.get(2)).unwrap().as_str().to_owned());
            }
        }
    }
}
