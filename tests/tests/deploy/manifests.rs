// The manifests as files: deploy/podroute.yaml equal to the CRDs and the
// base, the CRDs being our three kinds, every YAML file under deploy/ read
// by some check and typed with unknown fields refused, and the overlays
// built as kustomize builds them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::builds::{Build, build, builds, typed_all};
use crate::docs::{Doc, deploy, shown};
use crate::tables::OVERLAYS;
use crate::typed::Object;
use crate::{docs, kustomize, typed};

const PODROUTE_YAML_HEADER: &str = "\
# podroute: everything a cluster needs, in one file:
#   kubectl apply -f deploy/podroute.yaml
# GENERATED from deploy/crds/*.yaml and deploy/base/ (in the order of its
# kustomization.yaml); edit those, then regenerate with
#   PODROUTE_BLESS=1 cargo test -p podroute-lab --test deploy podroute_yaml
# deploy/README.md explains what is in here and how to choose otherwise.
";

/// The CRD files of deploy/crds/, by name; there must be some (the lead
/// generates them from the Rust types, tests/tests/crds.rs).
fn crd_files() -> Vec<PathBuf> {
    let dir = deploy().join("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", shown(&dir)))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "deploy/crds/ holds no CRD: regenerate them with PODROUTE_BLESS=1 cargo test -p podroute-lab --test crds"
    );
    files
}

/// deploy/podroute.yaml as its sources make it.
fn assemble() -> String {
    let base = deploy().join("base");
    let crds_in_base = kustomize::resources(&base)
        .unwrap()
        .iter()
        .any(|p| p.ends_with("crds"));
    assert!(
        crds_in_base,
        "list ../crds first in deploy/base/kustomization.yaml's resources, so podroute.yaml and the overlays install the CRDs"
    );
    let files = kustomize::resource_files(&base).unwrap();
    let mut out = String::from(PODROUTE_YAML_HEADER);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        out.push_str(&format!("---\n# Source: {}\n", shown(&file)));
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[test]
fn podroute_yaml_is_the_crds_and_the_base() {
    let expected = assemble();
    let path = deploy().join("podroute.yaml");
    if std::env::var_os("PODROUTE_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "deploy/podroute.yaml is not the CRDs and deploy/base/ concatenated; regenerate it with\n  PODROUTE_BLESS=1 cargo test -p podroute-lab --test deploy podroute_yaml"
    );
    // And it is what the mesh overlay builds, plus the CRDs.
    let file = build("deploy/podroute.yaml");
    let mesh = build("overlays/mesh");
    let ids = |b: &Build, crds: bool| -> Vec<(String, Value)> {
        b.objects
            .iter()
            .filter(|t| crds == matches!(t.object, Object::Crd(_)))
            .map(|t| (t.doc.id(), t.doc.value.clone()))
            .collect()
    };
    assert_eq!(ids(&file, false), ids(&mesh, false));
    assert_eq!(ids(&file, true).len(), crd_files().len());
}

#[test]
fn the_crds_are_podroutes_three_kinds() {
    let files = crd_files();
    let mut kinds = BTreeSet::new();
    let mut problems = Vec::new();
    for file in &files {
        for typed in typed_all(&docs::load(file).unwrap(), &mut problems) {
            let Object::Crd(crd) = &typed.object else {
                problems.push(format!("{}: not a CRD", typed.doc.origin));
                continue;
            };
            assert_eq!(crd.spec.group, "podroute.io", "{}", typed.doc.origin);
            assert_eq!(crd.spec.scope, "Cluster", "{}", typed.doc.origin);
            kinds.insert((crd.spec.names.kind.clone(), crd.spec.names.plural.clone()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let expected: BTreeSet<(String, String)> = [
        ("BGPConfiguration", "bgpconfigurations"),
        ("BGPPeer", "bgppeers"),
        ("IPPool", "ippools"),
    ]
    .iter()
    .map(|(k, p)| (k.to_string(), p.to_string()))
    .collect();
    assert_eq!(kinds, expected);
}

/// kustomize loads no file outside a kustomization's folder, so the
/// overlays get the CRDs only through a kustomization.yaml in deploy/crds/
/// listed first in the base.
#[test]
fn the_overlays_install_the_crds() {
    let crds = crd_files();
    let base = kustomize::resources(&deploy().join("base")).unwrap();
    assert!(
        base.first().is_some_and(|p| p.ends_with("crds")),
        "deploy/crds/ has CRDs: give it a kustomization.yaml listing them and put `- ../crds` first in deploy/base/kustomization.yaml's resources"
    );
    let mut listed = kustomize::resource_files(&deploy().join("crds")).unwrap();
    listed.sort();
    assert_eq!(
        listed, crds,
        "deploy/crds/kustomization.yaml lists other files than deploy/crds/ has"
    );
}

/// Every YAML file under deploy/ and what it is; a file that is none of
/// these fails (a manifest no check reads).
#[test]
fn every_manifest_is_typed_without_unknown_fields() {
    let mut problems = Vec::new();
    let mut covered: BTreeSet<PathBuf> = BTreeSet::new();
    covered.insert(deploy().join("podroute.yaml"));
    covered.insert(deploy().join("uninstall.yaml"));
    covered.extend(crd_files());
    covered.insert(deploy().join("crds/kustomization.yaml"));
    // Kustomizations, their resources (typed through the builds) and
    // patches (typed as part of the overlay they change).
    let mut dirs = vec![deploy().join("base")];
    dirs.extend(OVERLAYS.iter().map(|o| deploy().join("overlays").join(o)));
    for dir in &dirs {
        covered.insert(dir.join("kustomization.yaml"));
        let kustomization = docs::load(&dir.join("kustomization.yaml")).unwrap();
        for entry in kustomization[0].value["patches"]
            .as_array()
            .into_iter()
            .flatten()
        {
            covered.insert(dir.join(entry["path"].as_str().unwrap()));
        }
        for resource in kustomize::resources(dir).unwrap() {
            if resource.is_file() {
                covered.insert(resource.canonicalize().unwrap());
            }
        }
    }
    // The builds parse every object (builds() panics otherwise) ...
    let builds = builds();
    // ... and the podroute.io objects inside ConfigMaps and beside the
    // overlays parse as the daemons' types.
    for build in &builds {
        for map in ["podroute-defaults", "podroute-cleanup"] {
            for (key, text) in build
                .config_map(map)
                .and_then(|c| c.data.clone())
                .unwrap_or_default()
            {
                let origin = format!("{} ConfigMap {map} {key}", build.name);
                match docs::parse(&text, &origin) {
                    Ok(docs) => {
                        typed_all(&docs, &mut problems);
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    for overlay in OVERLAYS {
        let peers = deploy()
            .join("overlays")
            .join(overlay)
            .join("bgppeers.yaml");
        if peers.exists() {
            covered.insert(peers.clone());
            for typed in typed_all(&docs::load(&peers).unwrap(), &mut problems) {
                if !matches!(typed.object, Object::BgpPeer(_)) {
                    problems.push(format!("{}: only BGPPeers expected", typed.doc.origin));
                }
            }
        }
    }
    let mut all = Vec::new();
    yaml_files(&deploy(), &mut all);
    for file in all {
        if !covered.contains(&file) {
            problems.push(format!(
                "{}: no check reads it (tests/tests/deploy/manifests.rs)",
                shown(&file)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path.canonicalize().unwrap());
        }
    }
}

/// Kustomize's major version from the output of `kustomize version` or
/// `kubectl version --client` ("v5.5.0", "Kustomize Version: v5.5.0").
fn kustomize_major(version_output: &str) -> Option<u32> {
    let text = version_output
        .split("Kustomize Version:")
        .nth(1)
        .unwrap_or(version_output);
    let v = text.trim_start().strip_prefix('v')?;
    v.split('.').next()?.parse().ok()
}

/// The oldest kustomize that builds deploy/ (directories in `resources`,
/// `patches`); kubectl embeds it since 1.21.
const KUSTOMIZE_MAJOR: u32 = 4;

/// A real kustomize to compare with: `kustomize build` or `kubectl
/// kustomize`, the first installed one recent enough, as (program, its
/// build arguments); or why there is none. Debian packages none (see
/// kustomize.rs), some machines have one.
fn real_kustomize() -> Result<(&'static str, &'static [&'static str]), String> {
    let candidates: [(&str, &[&str], &[&str]); 2] = [
        ("kustomize", &["version"], &["build"]),
        ("kubectl", &["version", "--client"], &["kustomize"]),
    ];
    let mut why = Vec::new();
    for (program, version, build) in candidates {
        let out = match Command::new(program).args(version).output() {
            Ok(out) => out,
            Err(e) => {
                why.push(format!("{program}: {e}"));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        match kustomize_major(&text) {
            Some(major) if major >= KUSTOMIZE_MAJOR => return Ok((program, build)),
            Some(major) => why.push(format!(
                "{program}: kustomize v{major}, older than v{KUSTOMIZE_MAJOR}"
            )),
            None => why.push(format!(
                "{program}: no kustomize version in `{program} {}`: {}",
                version.join(" "),
                text.trim()
            )),
        }
    }
    Err(why.join("; "))
}

/// `program build... dir`: the objects kustomize makes of `dir`.
fn run_kustomize(program: &str, build: &[&str], dir: &Path) -> Result<String, String> {
    match Command::new(program).args(build).arg(dir).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "{program} {}: {}",
            build.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

#[test]
fn overlays_build_as_kustomize_builds_them() {
    let mut dirs = vec![deploy().join("base")];
    dirs.extend(OVERLAYS.iter().map(|o| deploy().join("overlays").join(o)));
    // Optional (CI may have no kustomize), but never silently.
    let real_kustomize = real_kustomize()
        .inspect_err(|why| {
            eprintln!(
                "SKIPPED: the overlays were not compared with a real kustomize build, none v{KUSTOMIZE_MAJOR} or later is installed ({why}); they were built by this test's own kustomize subset only"
            );
        })
        .ok();
    for dir in dirs {
        let ours = kustomize::build(&dir).unwrap_or_else(|e| panic!("{e}"));
        let Some((program, build)) = real_kustomize else {
            continue;
        };
        let real =
            run_kustomize(program, build, &dir).unwrap_or_else(|e| panic!("{}: {e}", shown(&dir)));
        let real = docs::parse(&real, &format!("kustomize build {}", shown(&dir))).unwrap();
        // kustomize sorts by kind; the objects, not their order, must agree.
        let by_id = |docs: &[Doc]| -> BTreeMap<String, Value> {
            docs.iter().map(|d| (d.id(), d.value.clone())).collect()
        };
        let (ours, real) = (by_id(&ours), by_id(&real));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            real.keys().collect::<Vec<_>>(),
            "{}",
            shown(&dir)
        );
        for (id, value) in &ours {
            let mut diff = Vec::new();
            typed::compare(value, &real[id], "", &mut diff);
            typed::compare(&real[id], value, "", &mut diff);
            assert!(
                diff.is_empty(),
                "{}: {id}: this test's build and kustomize's differ:\n  {}",
                shown(&dir),
                diff.join("\n  ")
            );
        }
    }
}
