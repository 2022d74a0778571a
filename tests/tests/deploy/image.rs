// deploy/Dockerfile read statically (no engine here): it builds
// workspace crates, copies every program the manifests run, installs every
// tool the daemons run, and runs as a non-root user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::builds::{builds, containers, image};
use crate::docs::{deploy, repo};
use crate::tables::{BASE_TOOLS, IMAGE_UID, OUR_BINARIES, OUR_SCRIPTS, RUNTIME_TOOLS};

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
    // `cargo build -p` names workspace crates, and every binary copied is
    // one of theirs.
    let build_line = dockerfile
        .split("RUN cargo build")
        .nth(1)
        .expect("a RUN cargo build")
        .split("\n\n")
        .next()
        .unwrap()
        .to_owned();
    assert!(build_line.contains("--release") && build_line.contains("--locked"));
    let crates: BTreeSet<String> = regex::Regex::new(r"-p\s+([\w-]+)")
        .unwrap()
        .captures_iter(&build_line)
        .map(|c| c[1].to_owned())
        .collect();
    for krate in &crates {
        assert!(
            packages.contains_key(krate),
            "cargo build -p {krate}: no such workspace member"
        );
    }
    let copied: BTreeMap<String, String> = regex::Regex::new(
        r"(?m)^COPY (?:--from=build /src/target/release/(\S+)|(\S+)) /usr/local/bin/(\S+)$",
    )
    .unwrap()
    .captures_iter(&dockerfile)
    .map(|c| {
        let source = c.get(1).or(c.get(2)).unwrap().as_str().to_owned();
        (c[3].to_owned(), source)
    })
    .collect();
    for (program, krate) in OUR_BINARIES {
        assert!(
            crates.contains(krate),
            "the Dockerfile does not build {krate}"
        );
        assert!(
            packages[krate].contains(&program.to_owned()),
            "{krate} has no binary {program}"
        );
        assert_eq!(
            copied.get(program).map(String::as_str),
            Some(program),
            "COPY of {program}"
        );
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
