// deploy/ checked without a cluster (none can run on this machine, nor a
// container engine): every manifest parsed into the typed Kubernetes
// objects with unknown fields refused, deploy/podroute.yaml equal to the
// CRDs plus the base, the overlays built (and compared with kustomize's
// own build where it is installed), and the cross-references a typo would
// break at install time: ServiceAccounts, RBAC, ConfigMap keys, Secrets,
// the one image, probe ports against the daemons' constants, the Service
// against ipamd's --listen, every container's arguments parsed by the very
// binary it runs, the privileges each container is given, the BGP and
// IPAM resources loaded by bgpd's and ipamd's own code, the Dockerfile,
// and podroute-create-defaults against a fake API server.
//
// The daemons' binaries must be built first (scripts/test.sh builds the
// workspace): cargo build -p podroute-bgpd -p podroute-ipam -p podroute-policy -p podroute-cni
// PODROUTE_BLESS=1 rewrites deploy/podroute.yaml from its sources.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "deploy/docs.rs"]
mod docs;
#[path = "deploy/kustomize.rs"]
mod kustomize;
#[path = "deploy/typed.rs"]
mod typed;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use docs::{Doc, deploy, repo, shown};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Probe};
use serde_json::Value;
use typed::{Object, Typed, Workload};

/// Where the image is pushed: a name that resolves nowhere, since no
/// registry publishes podroute (deploy/README.md: build, push, then set
/// yours with kustomize's `images` or sed).
const IMAGE_REPOSITORY: &str = "registry.example.invalid/podroute";
/// Everything of ours that has a namespace has this one.
const NAMESPACE: &str = "podroute-system";
const OVERLAYS: [&str; 4] = ["mesh", "tor", "route-reflector", "etcd"];
/// The image's default user (the Dockerfile's USER), which ipamd runs as.
const IMAGE_UID: i64 = 65532;

/// Flags the plan adds to the daemons on other branches (kube mode): until
/// they are merged the binaries here refuse them, so they are taken out
/// (with their value, when they take one) before the arguments are parsed.
/// A flag of this list that the binary knows fails the test: delete it
/// from here once merged.
const EXPECTED_NEW: [(&str, &str, bool); 4] = [
    ("podroute-bgpd", "--kube", false),
    ("podroute-ipamd", "--kube", false),
    ("podroute-ipamd", "--pod-gc-grace", true),
    ("podroute-ipamd", "--tls-secret", true),
];

/// Our programs in the image: binary, the crate (`cargo build -p`) that
/// builds it.
const OUR_BINARIES: [(&str, &str); 5] = [
    ("podroute-bgpd", "podroute-bgpd"),
    ("podroute-ipamd", "podroute-ipam"),
    ("podroute-policy-agent", "podroute-policy"),
    ("podroute-cni", "podroute-cni"),
    ("podctl", "podctl"),
];
/// Our scripts in the image: program, file in the repository.
const OUR_SCRIPTS: [(&str, &str); 1] = [("podroute-create-defaults", "deploy/create-defaults.sh")];
/// Programs of debian:bookworm-slim itself (Essential packages) that
/// manifests run.
const BASE_TOOLS: [&str; 6] = ["sh", "install", "chown", "rm", "rmdir", "sleep"];
/// Programs our code runs, and the Debian package the Dockerfile must
/// install for each. The policy agent's are found in its source (every
/// `runner.run("..")`, `runner.output("..")`, `Command::new("..")` and
/// iptables tool name) and must all be here.
const RUNTIME_TOOLS: [(&str, &str); 9] = [
    ("iptables-save", "iptables"),
    ("iptables-restore", "iptables"),
    ("ip6tables-save", "iptables"),
    ("ip6tables-restore", "iptables"),
    ("ipset", "ipset"),
    ("conntrack", "conntrack"),
    ("ip", "iproute2"),
    ("kill", "procps"),
    ("curl", "curl"),
];

/// Secrets pods mount: name, who makes it, the builds that may mount it.
const SECRETS: [(&str, &str, &[&str]); 3] = [
    (
        "podroute-node-tls",
        "podroute-ipamd --tls-secret (the nodes' client certificate for ipamd)",
        &[
            "deploy/podroute.yaml",
            "overlays/mesh",
            "overlays/tor",
            "overlays/route-reflector",
            "overlays/etcd",
        ],
    ),
    (
        "podroute-bgp-passwords",
        "the operator (TCP MD5 keys of the ToR sessions)",
        &["overlays/tor"],
    ),
    (
        "podroute-etcd-tls",
        "the operator (ipamd's etcd client certificate)",
        &["overlays/etcd"],
    ),
];

/// One RBAC grant: the ServiceAccount, where (None: cluster-wide), API
/// group, resource, verbs, resource names (empty: any), and what in the
/// code needs it.
struct Grant {
    account: &'static str,
    namespace: Option<&'static str>,
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    names: &'static [&'static str],
    why: &'static str,
}

/// What each component reads and writes: the ClusterRoles and Roles must
/// grant exactly this, nothing more, nothing less.
const RBAC: [Grant; 12] = [
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: mesh members, addresses, AS and reflector labels",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgpconfigurations",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: the BGPConfiguration named default",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgppeers",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: every BGPPeer",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgppeers/status",
        verbs: &["patch"],
        names: &[],
        why: "bgpd --kube: server-side apply of this node's session entries",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: endpoints (policy-agent/src/source/kube.rs)",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: namespace selectors",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "networking.k8s.io",
        resource: "networkpolicies",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: the policies",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "ippools",
        verbs: &["list", "watch", "create"],
        names: &[],
        why: "ipamd --kube: the pools; podroute-create-defaults: the default pool",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "ippools/status",
        verbs: &["patch"],
        names: &[],
        why: "ipamd --kube: capacity, allocated, blocks",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        names: &[],
        why: "ipamd --kube: pool selection by labels; deleted nodes' blocks",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        names: &[],
        why: "ipamd --kube: pods gone longer than --pod-gc-grace",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "bgpconfigurations",
        verbs: &["create"],
        names: &[],
        why: "podroute-create-defaults: the default BGPConfiguration",
    },
];

/// ipamd's Secrets (--tls-secret), in its own namespace only.
const RBAC_SECRETS: [Grant; 2] = [
    Grant {
        account: "podroute-ipamd",
        namespace: Some(NAMESPACE),
        group: "",
        resource: "secrets",
        verbs: &["create"],
        names: &[],
        why: "--tls-secret: make them when missing (create takes no name)",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: Some(NAMESPACE),
        group: "",
        resource: "secrets",
        verbs: &["get", "update"],
        names: &["podroute-ipamd-tls", "podroute-node-tls"],
        why: "--tls-secret: read and renew its two",
    },
];

/// A container's privileges: workload, container, runs as root, the
/// capabilities added to an empty set (everything is dropped first).
const PRIVILEGES: [(&str, &str, bool, &[&str]); 12] = [
    // Copy into root's host folders: root, and nothing else.
    ("podroute-node", "install-tls", true, &[]),
    ("podroute-node", "install-cni", true, &[]),
    // rtnetlink routes; BGP's port 179. No raw socket.
    (
        "podroute-node",
        "bgpd",
        true,
        &["NET_ADMIN", "NET_BIND_SERVICE"],
    ),
    // iptables, ipset, conntrack.
    (
        "podroute-node",
        "policy-agent",
        true,
        &["NET_ADMIN", "NET_RAW"],
    ),
    // The hostPath store folder handed to ipamd's user.
    ("podroute-ipamd", "store-owner", true, &["CHOWN"]),
    ("podroute-ipamd", "create-defaults", false, &[]),
    ("podroute-ipamd", "ipamd", false, &[]),
    ("podroute-cleanup", "routes", true, &["NET_ADMIN"]),
    (
        "podroute-cleanup",
        "policy",
        true,
        &["NET_ADMIN", "NET_RAW"],
    ),
    ("podroute-cleanup", "files", true, &[]),
    ("podroute-cleanup", "folders", true, &[]),
    ("podroute-cleanup", "done", false, &[]),
];

/// Stand-ins for what Kubernetes fills in, to expand `$(VAR)` as the
/// kubelet would.
const NODE_NAME: &str = "node-a";
const CLUSTER_IP: &str = "10.96.0.10";

// ---------------------------------------------------------------------
// The builds: what an operator applies.

/// One thing an operator applies: deploy/podroute.yaml, an overlay, or
/// deploy/uninstall.yaml, as typed objects in apply order.
struct Build {
    name: String,
    objects: Vec<Typed>,
}

impl Build {
    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.objects.iter().find_map(|t| match &t.object {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(name) => Some(c),
            _ => None,
        })
    }

    fn workloads(&self) -> impl Iterator<Item = (usize, Workload<'_>)> {
        self.objects
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.workload().map(|w| (i, w)))
    }

    fn has(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        self.objects
            .iter()
            .any(|t| t.doc.kind() == kind && t.doc.namespace() == namespace && t.doc.name() == name)
    }
}

fn typed_all(docs: &[Doc], problems: &mut Vec<String>) -> Vec<Typed> {
    docs.iter()
        .filter_map(|d| typed::parse(d).map_err(|e| problems.push(e)).ok())
        .collect()
}

/// podroute.yaml, every overlay, uninstall.yaml; panics with every problem.
fn builds() -> Vec<Build> {
    let mut problems = Vec::new();
    let mut builds = Vec::new();
    let mut add =
        |name: String, docs: Result<Vec<Doc>, String>, problems: &mut Vec<String>| match docs {
            Ok(docs) => builds.push(Build {
                name,
                objects: typed_all(&docs, problems),
            }),
            Err(e) => problems.push(e),
        };
    add(
        "deploy/podroute.yaml".into(),
        docs::load(&deploy().join("podroute.yaml")),
        &mut problems,
    );
    for overlay in OVERLAYS {
        add(
            format!("overlays/{overlay}"),
            kustomize::build(&deploy().join("overlays").join(overlay)),
            &mut problems,
        );
    }
    add(
        "deploy/uninstall.yaml".into(),
        docs::load(&deploy().join("uninstall.yaml")),
        &mut problems,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    builds
}

fn build(name: &str) -> Build {
    builds()
        .into_iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no build {name}"))
}

/// Every container of a pod spec, init containers first.
fn containers(spec: &k8s_openapi::api::core::v1::PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

// ---------------------------------------------------------------------
// deploy/podroute.yaml

const PODROUTE_YAML_HEADER: &str = "\
# podroute: everything a cluster needs, in one file:
#   kubectl apply -f deploy/podroute.yaml
# GENERATED from deploy/crds/*.yaml and deploy/base/ (in the order of its
# kustomization.yaml); edit those, then regenerate with
#   PODROUTE_BLESS=1 cargo test -p podroute-lab --test deploy podroute_yaml
# deploy/README.md explains what is in here and how to choose otherwise.
";

/// The CRD files of deploy/crds/, by name.
fn crd_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy().join("crds"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
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
        crds_in_base || !deploy().join("crds/kustomization.yaml").exists(),
        "deploy/crds/kustomization.yaml exists: list ../crds first in deploy/base/kustomization.yaml's resources, so the overlays install the CRDs too"
    );
    let mut files = Vec::new();
    if !crds_in_base {
        files.extend(crd_files());
    }
    files.extend(kustomize::resource_files(&base).unwrap());
    let mut out = String::from(PODROUTE_YAML_HEADER);
    if crd_files().is_empty() {
        out.push_str("# (deploy/crds/ holds no CRD yet.)\n");
    }
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
    if files.is_empty() {
        eprintln!(
            "note: deploy/crds/ holds no CRD yet; the lead generates them from the Rust types"
        );
        return;
    }
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

// ---------------------------------------------------------------------
// Every manifest, typed.

/// Every YAML file under deploy/ and what it is; a file that is none of
/// these fails (a manifest no check reads).
#[test]
fn every_manifest_is_typed_without_unknown_fields() {
    let mut problems = Vec::new();
    let mut covered: BTreeSet<PathBuf> = BTreeSet::new();
    covered.insert(deploy().join("podroute.yaml"));
    covered.insert(deploy().join("uninstall.yaml"));
    covered.extend(crd_files());
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
                "{}: no check reads it (tests/tests/deploy.rs)",
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

// ---------------------------------------------------------------------
// The overlays against kustomize itself.

/// `kubectl kustomize` (or `kustomize build`) when installed: Debian has
/// no usable one (see kustomize.rs), some machines do.
fn real_kustomize(dir: &Path) -> Option<Result<String, String>> {
    let candidates: [(&str, &[&str]); 2] = [("kustomize", &["build"]), ("kubectl", &["kustomize"])];
    for (program, args) in candidates {
        let Ok(out) = Command::new(program).args(args).arg(dir).output() else {
            continue;
        };
        return Some(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        });
    }
    None
}

#[test]
fn overlays_build_as_kustomize_builds_them() {
    let mut dirs = vec![deploy().join("base")];
    dirs.extend(OVERLAYS.iter().map(|o| deploy().join("overlays").join(o)));
    let mut compared = 0;
    for dir in dirs {
        let ours = kustomize::build(&dir).unwrap_or_else(|e| panic!("{e}"));
        let Some(real) = real_kustomize(&dir) else {
            continue;
        };
        let real = real.unwrap_or_else(|e| panic!("{}: {e}", shown(&dir)));
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
        compared += 1;
    }
    if compared == 0 {
        eprintln!(
            "note: neither kustomize nor kubectl is installed; the overlays were built by this test's own kustomize subset only"
        );
    }
}

// ---------------------------------------------------------------------
// Cross-references.

/// The environment the kubelet gives `container` of `workload` (the
/// object at `index` of `build`), with stand-ins for the node name and the
/// cluster IP; every `$(VAR)` in it must resolve.
fn environment(
    build: &Build,
    index: usize,
    workload: &Workload<'_>,
    container: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    // Service links: the Services of the namespace created before the pod.
    for typed in &build.objects[..index] {
        if let Object::Service(service) = &typed.object
            && service.metadata.namespace.as_deref() == Some(workload.namespace)
        {
            let prefix = typed.doc.name().to_uppercase().replace('-', "_");
            let port = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .and_then(|p| p.first())
                .map(|p| p.port.to_string())
                .unwrap_or_default();
            env.insert(format!("{prefix}_SERVICE_HOST"), CLUSTER_IP.to_owned());
            env.insert(format!("{prefix}_SERVICE_PORT"), port);
        }
    }
    for var in container.env.iter().flatten() {
        let value = env_value(build, workload, container, var, &env)?;
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

fn env_value(
    build: &Build,
    workload: &Workload<'_>,
    container: &Container,
    var: &EnvVar,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let at = format!(
        "{}: {} container {} env {}",
        build.name, workload.id, container.name, var.name
    );
    if let Some(value) = &var.value {
        return expand(value, env).map_err(|e| format!("{at}: {e}"));
    }
    let from = var
        .value_from
        .as_ref()
        .ok_or_else(|| format!("{at}: neither value nor valueFrom"))?;
    if let Some(field) = &from.field_ref {
        return match field.field_path.as_str() {
            "spec.nodeName" => Ok(NODE_NAME.to_owned()),
            "metadata.namespace" => Ok(workload.namespace.to_owned()),
            other => Err(format!("{at}: fieldRef {other} not expected")),
        };
    }
    if let Some(key_ref) = &from.config_map_key_ref {
        let map = build
            .config_map(&key_ref.name)
            .ok_or_else(|| format!("{at}: ConfigMap {} is not in this build", key_ref.name))?;
        return map
            .data
            .as_ref()
            .and_then(|d| d.get(&key_ref.key))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{at}: ConfigMap {} has no key {}",
                    key_ref.name, key_ref.key
                )
            });
    }
    Err(format!("{at}: a valueFrom this test does not know"))
}

/// Kubernetes' `$(VAR)` expansion (`$$` is a literal `$`); an unresolved
/// reference is an error here, since the kubelet would pass it on as text.
fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("$(")
            && let Some(end) = after.find(')')
        {
            let name = &after[..end];
            let value = env
                .get(name)
                .ok_or_else(|| format!("$({name}) is not defined before it is used"))?;
            out.push_str(value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The container's command line as the kubelet runs it: command and args,
/// `$(VAR)` expanded.
fn command_line(
    build: &Build,
    index: usize,
    workload: &Workload<'_>,
    container: &Container,
) -> Result<Vec<String>, String> {
    let env = environment(build, index, workload, container)?;
    let words: Vec<&String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .collect();
    if container.command.as_ref().is_none_or(Vec::is_empty) {
        return Err(format!(
            "{}: {} container {}: no command (the image has no entrypoint)",
            build.name, workload.id, container.name
        ));
    }
    words
        .into_iter()
        .map(|w| {
            expand(w, &env).map_err(|e| {
                format!(
                    "{}: {} container {}: {e}",
                    build.name, workload.id, container.name
                )
            })
        })
        .collect()
}

/// The value after `flag` in a command line.
fn flag_value<'a>(line: &'a [String], flag: &str) -> Option<&'a str> {
    line.iter()
        .position(|w| w == flag)
        .and_then(|i| line.get(i + 1))
        .map(String::as_str)
}

fn image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn cross_references_hold() {
    let mut problems = Vec::new();
    for build in builds() {
        check_references(&build, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn check_references(build: &Build, problems: &mut Vec<String>) {
    let b = &build.name;
    // Namespaces: ours only, and created by this build (uninstall.yaml
    // goes into podroute.yaml's).
    for typed in &build.objects {
        if let Some(ns) = typed.doc.namespace()
            && ns != NAMESPACE
        {
            problems.push(format!("{b}: {}: namespace {ns}", typed.doc.id()));
        }
    }
    if b != "deploy/uninstall.yaml" && !build.has("Namespace", None, NAMESPACE) {
        problems.push(format!("{b}: no Namespace {NAMESPACE}"));
    }
    // Bindings name roles and accounts that exist.
    for typed in &build.objects {
        let (role_ref, subjects, namespace) = match &typed.object {
            Object::ClusterRoleBinding(rb) => (&rb.role_ref, &rb.subjects, None),
            Object::RoleBinding(rb) => {
                (&rb.role_ref, &rb.subjects, rb.metadata.namespace.as_deref())
            }
            _ => continue,
        };
        let role_ns = if role_ref.kind == "Role" {
            namespace
        } else {
            None
        };
        if !build.has(&role_ref.kind, role_ns, &role_ref.name) {
            problems.push(format!(
                "{b}: {}: no {} {}",
                typed.doc.id(),
                role_ref.kind,
                role_ref.name
            ));
        }
        for subject in subjects.iter().flatten() {
            if subject.kind != "ServiceAccount"
                || !build.has(
                    "ServiceAccount",
                    subject.namespace.as_deref(),
                    &subject.name,
                )
            {
                problems.push(format!(
                    "{b}: {}: subject {} {:?}/{} is not a ServiceAccount of this build",
                    typed.doc.id(),
                    subject.kind,
                    subject.namespace,
                    subject.name
                ));
            }
        }
    }
    let mut config_keys_used: BTreeSet<(String, String)> = BTreeSet::new();
    for (index, workload) in build.workloads() {
        let w = &workload.id;
        let spec = workload.spec;
        // The ServiceAccount exists (the namespace's `default` when the pod
        // names none and needs no token).
        match spec.service_account_name.as_deref() {
            Some(account) => {
                if !build.has("ServiceAccount", Some(workload.namespace), account) {
                    problems.push(format!("{b}: {w}: no ServiceAccount {account}"));
                }
            }
            None if spec.automount_service_account_token == Some(false) => {}
            None => problems.push(format!(
                "{b}: {w}: no serviceAccountName, yet the API token is mounted"
            )),
        }
        // Volumes: mounted, existing; ConfigMaps and Secrets known.
        let volumes: BTreeSet<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        let mut mounted = BTreeSet::new();
        for container in containers(spec) {
            for mount in container.volume_mounts.iter().flatten() {
                mounted.insert(mount.name.as_str());
                if !volumes.contains(mount.name.as_str()) {
                    problems.push(format!(
                        "{b}: {w} container {}: mounts {}, which is no volume",
                        container.name, mount.name
                    ));
                }
            }
        }
        for volume in spec.volumes.iter().flatten() {
            if !mounted.contains(volume.name.as_str()) {
                problems.push(format!("{b}: {w}: volume {} is never mounted", volume.name));
            }
            if let Some(map) = &volume.config_map {
                if build.config_map(&map.name).is_none() {
                    problems.push(format!(
                        "{b}: {w}: volume {}: no ConfigMap {}",
                        volume.name, map.name
                    ));
                }
                for key in build
                    .config_map(&map.name)
                    .and_then(|c| c.data.as_ref())
                    .into_iter()
                    .flat_map(|d| d.keys())
                {
                    config_keys_used.insert((map.name.clone(), key.clone()));
                }
            }
            if let Some(secret) = &volume.secret {
                let name = secret.secret_name.as_deref().unwrap_or("");
                match SECRETS.iter().find(|(n, _, _)| *n == name) {
                    Some((_, _, allowed)) if allowed.contains(&b.as_str()) => {}
                    Some((_, made_by, _)) => problems.push(format!(
                        "{b}: {w}: Secret {name} ({made_by}) is not expected in this build"
                    )),
                    None => problems.push(format!(
                        "{b}: {w}: Secret {name} is none of the known ones (SECRETS in tests/tests/deploy.rs)"
                    )),
                }
                if secret.default_mode != Some(0o400) {
                    problems.push(format!("{b}: {w}: Secret {name}: defaultMode is not 0400"));
                }
            }
        }
        for container in containers(spec) {
            let c = &container.name;
            // One image, pulled when missing.
            if container.image.as_deref() != Some(image().as_str()) {
                problems.push(format!(
                    "{b}: {w} container {c}: image {:?}, not {}",
                    container.image,
                    image()
                ));
            }
            if container.image_pull_policy.as_deref() != Some("IfNotPresent") {
                problems.push(format!(
                    "{b}: {w} container {c}: imagePullPolicy is not IfNotPresent"
                ));
            }
            for var in container.env.iter().flatten() {
                if let Some(key_ref) = var
                    .value_from
                    .as_ref()
                    .and_then(|f| f.config_map_key_ref.as_ref())
                {
                    config_keys_used.insert((key_ref.name.clone(), key_ref.key.clone()));
                }
                // The node's name comes from the downward API, nowhere else.
                if var.name == "NODE_NAME"
                    && var
                        .value_from
                        .as_ref()
                        .and_then(|f| f.field_ref.as_ref())
                        .map(|f| f.field_path.as_str())
                        != Some("spec.nodeName")
                {
                    problems.push(format!(
                        "{b}: {w} container {c}: NODE_NAME is not spec.nodeName"
                    ));
                }
            }
            // Every $(VAR) resolves; a daemon's probes are its own port's.
            if let Err(e) = command_line(build, index, &workload, container) {
                problems.push(e);
            }
            check_probes(b, w, container, problems);
        }
    }
    // Every key of our settings ConfigMap is used, and only those exist.
    if let Some(map) = build.config_map("podroute-config") {
        for key in map.data.iter().flatten().map(|(k, _)| k) {
            if !config_keys_used.contains(&("podroute-config".to_owned(), key.clone())) {
                problems.push(format!(
                    "{b}: ConfigMap podroute-config key {key} is used by no container"
                ));
            }
        }
    }
    // The Service selects ipamd's pods on the port ipamd listens on.
    for typed in &build.objects {
        let Object::Service(service) = &typed.object else {
            continue;
        };
        let spec = service.spec.as_ref().unwrap();
        let selector = spec.selector.clone().unwrap_or_default();
        let selected: Vec<(usize, Workload<'_>)> = build
            .workloads()
            .filter(|(_, w)| selector.iter().all(|(k, v)| w.labels.get(k) == Some(v)))
            .collect();
        let [(index, ipamd)] = &selected[..] else {
            problems.push(format!(
                "{b}: {}: selects {} workloads",
                typed.doc.id(),
                selected.len()
            ));
            continue;
        };
        let container = ipamd
            .spec
            .containers
            .iter()
            .find(|c| c.name == "ipamd")
            .unwrap();
        let line = command_line(build, *index, ipamd, container).unwrap_or_default();
        let listen_port = flag_value(&line, "--listen")
            .and_then(|l| l.rsplit_once(':'))
            .map(|(_, p)| p.to_owned());
        for port in spec.ports.iter().flatten() {
            let target = port.target_port.as_ref().map(|t| match t {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            });
            if target != listen_port || port.port.to_string() != target.clone().unwrap_or_default()
            {
                problems.push(format!(
                    "{b}: {}: port {} targetPort {target:?}, ipamd --listen port {listen_port:?}",
                    typed.doc.id(),
                    port.port
                ));
            }
        }
    }
}

/// The metrics ports of the daemons (podroute_proto::observe), by the
/// container that runs each.
fn metrics_port(container: &str) -> Option<u16> {
    use podroute_proto::observe::{BGPD_METRICS_PORT, IPAMD_METRICS_PORT, POLICY_METRICS_PORT};
    match container {
        "bgpd" => Some(BGPD_METRICS_PORT),
        "ipamd" => Some(IPAMD_METRICS_PORT),
        "policy-agent" => Some(POLICY_METRICS_PORT),
        _ => None,
    }
}

/// bgpd/METRICS.md's probe settings, on the daemon's default port on the
/// host's loopback (every daemon pod has host networking).
fn check_probes(b: &str, w: &str, container: &Container, problems: &mut Vec<String>) {
    let c = &container.name;
    let Some(port) = metrics_port(c) else {
        if container.liveness_probe.is_some() || container.readiness_probe.is_some() {
            problems.push(format!(
                "{b}: {w} container {c}: a probe on a container that serves none"
            ));
        }
        return;
    };
    let probes: [(&str, Option<&Probe>); 2] = [
        ("/livez", container.liveness_probe.as_ref()),
        ("/readyz", container.readiness_probe.as_ref()),
    ];
    for (path, probe) in probes {
        let Some(probe) = probe else {
            problems.push(format!("{b}: {w} container {c}: no {path} probe"));
            continue;
        };
        let get = probe.http_get.as_ref();
        let port_ok = get.is_some_and(|g| {
            g.port
                == k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(port))
        });
        let ok = port_ok
            && get.and_then(|g| g.host.as_deref()) == Some("127.0.0.1")
            && get.and_then(|g| g.path.as_deref()) == Some(path)
            && probe.timeout_seconds == Some(3)
            && probe.period_seconds == Some(10)
            && probe.failure_threshold == Some(3);
        if !ok {
            problems.push(format!(
                "{b}: {w} container {c}: {path} probe is not httpGet 127.0.0.1:{port}{path}, timeout 3, period 10, threshold 3"
            ));
        }
    }
}

// ---------------------------------------------------------------------
// Arguments, parsed by the binaries themselves.

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
    let crate_dir = match program {
        "podroute-bgpd" => "bgpd",
        "podroute-ipamd" => "ipam",
        "podroute-policy-agent" => "policy-agent",
        "podroute-cni" => "cni",
        other => panic!("no crate known for {other}"),
    };
    for dir in [crate_dir, "proto", "labels"] {
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
                let help = Command::new(&path)
                    .args(line[1..].iter().take_while(|w| !w.starts_with("--")))
                    .arg("--help")
                    .output()
                    .unwrap();
                let help = String::from_utf8_lossy(&help.stdout).into_owned();
                // Take out the flags still to come, checking they are not
                // here yet.
                let mut args = Vec::new();
                let mut words = line[1..].iter().peekable();
                while let Some(word) = words.next() {
                    let flag = word.split('=').next().unwrap_or(word);
                    if let Some((owner, new, takes_value)) = EXPECTED_NEW
                        .iter()
                        .find(|(p, f, _)| *p == program && *f == flag)
                    {
                        if help.contains(&format!("{new} ")) || help.contains(&format!("{new}\n")) {
                            problems.push(format!(
                                "{program} now has {new}: delete it from EXPECTED_NEW in tests/tests/deploy.rs"
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

// ---------------------------------------------------------------------
// RBAC.

/// (account, namespace or "*" for cluster-wide, group, resource, verb,
/// resource name or "*").
type Permission = (String, String, String, String, String, String);

fn granted(build: &Build) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for typed in &build.objects {
        let (role_ref, subjects, binding_ns) = match &typed.object {
            Object::ClusterRoleBinding(rb) => (&rb.role_ref, &rb.subjects, None),
            Object::RoleBinding(rb) => (&rb.role_ref, &rb.subjects, rb.metadata.namespace.clone()),
            _ => continue,
        };
        let rules = build.objects.iter().find_map(|t| match &t.object {
            Object::ClusterRole(r)
                if role_ref.kind == "ClusterRole" && t.doc.name() == role_ref.name =>
            {
                Some(r.rules.clone().unwrap_or_default())
            }
            Object::Role(r)
                if role_ref.kind == "Role"
                    && t.doc.name() == role_ref.name
                    && r.metadata.namespace == binding_ns =>
            {
                Some(r.rules.clone().unwrap_or_default())
            }
            _ => None,
        });
        for subject in subjects.iter().flatten() {
            for rule in rules.iter().flatten() {
                let names = rule
                    .resource_names
                    .clone()
                    .unwrap_or_else(|| vec!["*".into()]);
                for group in rule.api_groups.iter().flatten() {
                    for resource in rule.resources.iter().flatten() {
                        for verb in &rule.verbs {
                            for name in &names {
                                out.insert((
                                    subject.name.clone(),
                                    binding_ns.clone().unwrap_or_else(|| "*".into()),
                                    group.clone(),
                                    resource.clone(),
                                    verb.clone(),
                                    name.clone(),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn expected_grants() -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for grant in RBAC.iter().chain(RBAC_SECRETS.iter()) {
        let names: Vec<&str> = if grant.names.is_empty() {
            vec!["*"]
        } else {
            grant.names.to_vec()
        };
        for verb in grant.verbs {
            for name in &names {
                out.insert((
                    grant.account.to_owned(),
                    grant.namespace.unwrap_or("*").to_owned(),
                    grant.group.to_owned(),
                    grant.resource.to_owned(),
                    (*verb).to_owned(),
                    (*name).to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn rbac_grants_exactly_what_the_components_use() {
    let expected = expected_grants();
    for build in builds() {
        if build.name == "deploy/uninstall.yaml" {
            assert!(
                granted(&build).is_empty(),
                "the cleanup needs no API access"
            );
            continue;
        }
        let granted = granted(&build);
        let missing: Vec<_> = expected.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: RBAC differs from the table (account, namespace, group, resource, verb, name)\n  missing: {missing:?}\n  beyond it: {extra:?}",
            build.name
        );
    }
    // Why each grant is there, for the reader of a failure.
    for grant in RBAC.iter().chain(RBAC_SECRETS.iter()) {
        assert!(!grant.why.is_empty());
    }
    // The policy agent's part of the table is what its source watches.
    let source = std::fs::read_to_string(repo().join("policy-agent/src/source/kube.rs")).unwrap();
    let watched: BTreeSet<String> = regex::Regex::new(r"reflect_kind::<(\w+)>")
        .unwrap()
        .captures_iter(&source)
        .map(|c| match &c[1] {
            "Pod" => "pods".to_owned(),
            "Namespace" => "namespaces".to_owned(),
            "NetworkPolicy" => "networkpolicies".to_owned(),
            other => format!("{other}: unknown to this test"),
        })
        .collect();
    let table: BTreeSet<String> = RBAC
        .iter()
        .filter(|g| g.why.starts_with("policy agent"))
        .map(|g| g.resource.to_owned())
        .collect();
    assert_eq!(
        watched, table,
        "policy-agent/src/source/kube.rs watches other kinds than the table grants"
    );
    // podroute-create-defaults may create exactly the resources of the
    // documents it is given.
    let defaults: BTreeSet<String> = build("deploy/podroute.yaml")
        .config_map("podroute-defaults")
        .and_then(|c| c.data.clone())
        .unwrap_or_default()
        .keys()
        .map(|k| k.split('.').next().unwrap_or_default().to_owned())
        .collect();
    let creatable: BTreeSet<String> = RBAC
        .iter()
        .filter(|g| g.account == "podroute-ipamd" && g.verbs.contains(&"create"))
        .map(|g| g.resource.to_owned())
        .collect();
    assert_eq!(defaults, creatable);
}

// ---------------------------------------------------------------------
// Privileges.

#[test]
fn privileges_are_the_reasoned_ones() {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for build in builds() {
        for (_, workload) in build.workloads() {
            let pod_context = workload.spec.security_context.as_ref();
            if pod_context
                .and_then(|s| s.seccomp_profile.as_ref())
                .map(|p| p.type_.as_str())
                != Some("RuntimeDefault")
            {
                problems.push(format!(
                    "{}: {}: seccompProfile is not RuntimeDefault",
                    build.name, workload.id
                ));
            }
            if workload.spec.host_pid == Some(true) || workload.spec.host_ipc == Some(true) {
                problems.push(format!(
                    "{}: {}: host PID or IPC namespace",
                    build.name, workload.id
                ));
            }
            let pod_user = pod_context.and_then(|s| s.run_as_user);
            for container in containers(workload.spec) {
                let at = format!(
                    "{}: {} container {}",
                    build.name, workload.id, container.name
                );
                let Some((_, _, root, add)) = PRIVILEGES
                    .iter()
                    .find(|(w, c, _, _)| *w == workload.name && *c == container.name)
                else {
                    problems.push(format!(
                        "{at}: not in PRIVILEGES (tests/tests/deploy.rs): reason it out there"
                    ));
                    continue;
                };
                seen.insert((workload.name.to_owned(), container.name.clone()));
                let context = container.security_context.clone().unwrap_or_default();
                let user = context.run_as_user.or(pod_user).unwrap_or(IMAGE_UID);
                if (user == 0) != *root {
                    problems.push(format!("{at}: runs as {user}, expected root: {root}"));
                }
                if context.privileged == Some(true)
                    || context.allow_privilege_escalation != Some(false)
                {
                    problems.push(format!(
                        "{at}: privileged, or privilege escalation not refused"
                    ));
                }
                let capabilities = context.capabilities.unwrap_or_default();
                if capabilities.drop != Some(vec!["ALL".to_owned()]) {
                    problems.push(format!("{at}: capabilities.drop is not [ALL]"));
                }
                let added: BTreeSet<String> =
                    capabilities.add.unwrap_or_default().into_iter().collect();
                let expected: BTreeSet<String> = add.iter().map(|s| (*s).to_owned()).collect();
                if added != expected {
                    problems.push(format!("{at}: adds {added:?}, expected {expected:?}"));
                }
            }
        }
    }
    for (workload, container, _, _) in PRIVILEGES {
        if !seen.contains(&(workload.to_owned(), container.to_owned())) {
            problems.push(format!(
                "PRIVILEGES lists {workload}/{container}, which no build has"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------
// The workloads' settings.

#[test]
fn the_node_daemonset_runs_everywhere_on_the_host_network() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let node = build
            .objects
            .iter()
            .find_map(|t| match &t.object {
                Object::DaemonSet(d) if t.doc.name() == "podroute-node" => Some(d.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{}: no DaemonSet podroute-node", build.name));
        let spec = &node.spec;
        let strategy = spec.update_strategy.as_ref().unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(
            strategy
                .rolling_update
                .as_ref()
                .and_then(|r| r.max_unavailable.clone()),
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("podroute-node"));
        let tolerations = pod.tolerations.clone().unwrap_or_default();
        assert!(
            tolerations.len() == 1
                && tolerations[0].operator.as_deref() == Some("Exists")
                && tolerations[0].key.is_none()
                && tolerations[0].effect.is_none(),
            "{}: podroute-node must tolerate every taint",
            build.name
        );
        assert!(pod.termination_grace_period_seconds.unwrap_or(30) >= 30);
        let init: Vec<&str> = pod
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            init,
            ["install-tls", "install-cni"],
            "TLS files first: the conflist names them"
        );
        let main: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(main, ["bgpd", "policy-agent"]);
        // The sockets where podctl on the host looks.
        let mounts_run = |c: &Container, socket: &str| {
            let dir = Path::new(socket)
                .parent()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == dir)
        };
        assert!(mounts_run(&pod.containers[0], podroute_proto::BGPD_SOCKET));
        assert!(mounts_run(
            &pod.containers[1],
            podroute_proto::POLICY_SOCKET
        ));
        let host_path = |name: &str| {
            pod.volumes
                .iter()
                .flatten()
                .find(|v| v.name == name)
                .and_then(|v| v.host_path.clone())
                .unwrap_or_else(|| panic!("no hostPath volume {name}"))
        };
        let lock = host_path("xtables-lock");
        assert_eq!(
            (lock.path.as_str(), lock.type_.as_deref()),
            ("/run/xtables.lock", Some("FileOrCreate"))
        );
        assert_eq!(host_path("lib-modules").path, "/lib/modules");
        assert_eq!(host_path("run-podroute").path, "/var/run/podroute");
    }
}

#[test]
fn the_cni_install_writes_what_the_host_can_read() {
    let build = build("deploy/podroute.yaml");
    let (index, node) = build
        .workloads()
        .find(|(_, w)| w.name == "podroute-node")
        .unwrap();
    let find = |name: &str| containers(node.spec).find(|c| c.name == name).unwrap();
    let install = command_line(&build, index, &node, find("install-cni")).unwrap();
    let tls = command_line(&build, index, &node, find("install-tls")).unwrap();
    let bgpd = command_line(&build, index, &node, find("bgpd")).unwrap();
    // A host folder mounted at /host<folder> in `container`.
    let host_mount = |container: &str, mount: &str| -> String {
        let m = find(container)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == mount)
            .unwrap_or_else(|| panic!("{container} mounts nothing at {mount}"));
        let volume = node
            .spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .unwrap();
        volume.host_path.as_ref().unwrap().path.clone()
    };
    for (flag, host) in [
        ("--bin-dir", "/opt/cni/bin"),
        ("--conf-dir", "/etc/cni/net.d"),
    ] {
        let dir = flag_value(&install, flag).unwrap();
        assert_eq!(dir, format!("/host{host}"));
        assert_eq!(host_mount("install-cni", dir), host);
    }
    // install-tls copies the Secret's files to the host folder whose paths
    // the conflist names (the plugin runs on the host).
    let target = flag_value(&tls, "-t").unwrap();
    let host_dir = host_mount("install-tls", target);
    assert_eq!(target, format!("/host{host_dir}"));
    for flag in ["--tls-ca", "--tls-cert", "--tls-key"] {
        let file = flag_value(&install, flag).unwrap();
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        assert_eq!(
            Path::new(file).parent().unwrap(),
            Path::new(&host_dir),
            "{flag}"
        );
        assert!(
            tls.iter().any(|w| w.ends_with(&format!("/{name}"))),
            "install-tls copies no {name}"
        );
    }
    // The plugin and bgpd reach the same ipamd, at the Service's cluster IP.
    let endpoint = flag_value(&install, "--ipamd-endpoint").unwrap();
    assert_eq!(Some(endpoint), flag_value(&bgpd, "--ipamd"));
    assert_eq!(endpoint, format!("https://{CLUSTER_IP}:9640"));
    assert!(podroute_proto::ipamd_client::Endpoint::parse(endpoint).is_ok());
    assert_eq!(flag_value(&install, "--node-name"), Some(NODE_NAME));
    // The Service comes before the workloads: their pods get its address
    // from the environment only if it existed when they were made.
    let service = build
        .objects
        .iter()
        .position(|t| t.doc.kind() == "Service")
        .unwrap();
    for (i, w) in build.workloads() {
        assert!(service < i, "the Service must come before {}", w.id);
    }
}

#[test]
fn ipamd_keeps_one_store_writer() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let deployment = build
            .objects
            .iter()
            .find_map(|t| match &t.object {
                Object::Deployment(d) if t.doc.name() == "podroute-ipamd" => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        let spec = &deployment.spec;
        let pod = spec.template.spec.as_ref().unwrap();
        let (index, workload) = build
            .workloads()
            .find(|(_, w)| w.name == "podroute-ipamd")
            .unwrap();
        let ipamd = pod.containers.iter().find(|c| c.name == "ipamd").unwrap();
        let line = command_line(build, index, &workload, ipamd).unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(pod.service_account_name.as_deref(), Some("podroute-ipamd"));
        assert_eq!(
            pod.node_selector
                .clone()
                .unwrap_or_default()
                .get("node-role.kubernetes.io/control-plane"),
            Some(&String::new())
        );
        let context = pod.security_context.as_ref().unwrap();
        assert_eq!(
            (context.run_as_non_root, context.run_as_user),
            (Some(true), Some(IMAGE_UID))
        );
        assert_eq!(
            flag_value(&line, "--tls-secret"),
            Some("podroute-ipamd-tls")
        );
        assert!(
            workload.spec.containers.iter().any(|c| c
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "POD_NAMESPACE")),
            "--tls-secret needs POD_NAMESPACE"
        );
        assert!(
            ipamd
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| Path::new(&m.mount_path)
                    == Path::new(podroute_proto::IPAMD_SOCKET).parent().unwrap())
        );
        let store_volume = pod.volumes.iter().flatten().find(|v| v.name == "store");
        if build.name == "overlays/etcd" {
            assert_eq!(flag_value(&line, "--store"), Some("etcd"));
            assert_eq!(spec.replicas, Some(3));
            let strategy = spec.strategy.as_ref().unwrap();
            assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
            assert!(
                pod.affinity
                    .as_ref()
                    .and_then(|a| a.pod_anti_affinity.as_ref())
                    .is_some()
            );
            assert!(store_volume.is_none(), "no hostPath store with etcd");
            assert!(!line.iter().any(|w| w == "--data-dir"));
        } else {
            // The embedded store: one file on one node, one writer.
            assert_eq!(flag_value(&line, "--store"), Some("embedded"));
            assert_eq!(spec.replicas, Some(1));
            assert_eq!(
                spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
                Some("Recreate")
            );
            let data_dir = flag_value(&line, "--data-dir").unwrap();
            let host = store_volume.and_then(|v| v.host_path.as_ref()).unwrap();
            assert_eq!(host.path, data_dir);
            let store_owner = command_line(
                build,
                index,
                &workload,
                pod.init_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == "store-owner")
                    .unwrap(),
            )
            .unwrap();
            let owner = format!("{IMAGE_UID}:{IMAGE_UID}");
            assert_eq!(store_owner, ["chown", owner.as_str(), data_dir]);
        }
    }
}

#[test]
fn uninstall_removes_what_install_leaves() {
    let install = build("deploy/podroute.yaml");
    let uninstall = build("deploy/uninstall.yaml");
    let (index, cleanup) = uninstall
        .workloads()
        .find(|(_, w)| w.name == "podroute-cleanup")
        .unwrap();
    let line = |name: &str| {
        let c = containers(cleanup.spec).find(|c| c.name == name).unwrap();
        command_line(&uninstall, index, &cleanup, c).unwrap()
    };
    let removed = line("files");
    assert_eq!(&removed[..2], ["rm", "-rf"]);
    let (i, node) = install
        .workloads()
        .find(|(_, w)| w.name == "podroute-node")
        .unwrap();
    let cni = command_line(
        &install,
        i,
        &node,
        containers(node.spec)
            .find(|c| c.name == "install-cni")
            .unwrap(),
    )
    .unwrap();
    let tls_dir = Path::new(flag_value(&cni, "--tls-ca").unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let ipamd = build("deploy/podroute.yaml");
    let (j, ipamd_w) = ipamd
        .workloads()
        .find(|(_, w)| w.name == "podroute-ipamd")
        .unwrap();
    let ipamd_line = command_line(
        &ipamd,
        j,
        &ipamd_w,
        ipamd_w
            .spec
            .containers
            .iter()
            .find(|c| c.name == "ipamd")
            .unwrap(),
    )
    .unwrap();
    let expected = [
        format!("/host/opt/cni/bin/{}", podroute_cni::install::BINARY_NAME),
        format!(
            "/host/etc/cni/net.d/{}",
            podroute_cni::install::CONFLIST_NAME
        ),
        format!("/host{}", tls_dir.display()),
        format!(
            "/host{}",
            Path::new(podroute_proto::BGPD_SOCKET)
                .parent()
                .unwrap()
                .display()
        ),
        format!("/host{}", flag_value(&ipamd_line, "--data-dir").unwrap()),
    ];
    assert_eq!(removed[2..], expected);
    assert_eq!(line("routes")[..2], ["podroute-bgpd", "--cleanup"]);
    assert_eq!(line("policy"), ["podroute-policy-agent", "--cleanup"]);
    // The cleanup's bgpd configuration loads (its kernelTable is all the
    // cleanup reads).
    let config = uninstall
        .config_map("podroute-cleanup")
        .unwrap()
        .data
        .clone()
        .unwrap();
    let loaded =
        podroute_bgpd::config::parse(&config["bgpd.yaml"], "podroute-cleanup bgpd.yaml", |_| {
            Err(std::io::Error::other("no files"))
        })
        .unwrap();
    assert_eq!(
        loaded.bgp.kernel_table,
        podroute_bgpd::config::DEFAULT_KERNEL_TABLE
    );
}

// ---------------------------------------------------------------------
// Our resources, loaded by the daemons' own code.

/// Sample nodes each build is checked with: name, address, labels,
/// annotations (as deploy/README.md tells operators to set them).
type SampleNode = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

const MESH_NODES: [SampleNode; 3] = [
    ("node-a", "10.0.0.1", &[], &[]),
    ("node-b", "10.0.0.2", &[], &[]),
    ("node-c", "10.0.0.3", &[], &[]),
];
const TOR_NODES: [SampleNode; 3] = [
    (
        "node-a",
        "10.0.1.1",
        &[("rack", "rack1")],
        &[("podroute.io/as-number", "65011")],
    ),
    (
        "node-b",
        "10.0.1.2",
        &[("rack", "rack1")],
        &[("podroute.io/as-number", "65011")],
    ),
    (
        "node-c",
        "10.0.2.1",
        &[("rack", "rack2")],
        &[("podroute.io/as-number", "65021")],
    ),
];
const RR_NODES: [SampleNode; 4] = [
    (
        "rr-1",
        "10.0.0.101",
        &[("podroute.io/route-reflector-cluster-id", "10.0.0.100")],
        &[],
    ),
    (
        "rr-2",
        "10.0.0.102",
        &[("podroute.io/route-reflector-cluster-id", "10.0.0.100")],
        &[],
    ),
    ("node-a", "10.0.0.1", &[], &[]),
    ("node-b", "10.0.0.2", &[], &[]),
];

fn node_documents(nodes: &[SampleNode]) -> String {
    let mut text = String::new();
    for (name, address, labels, annotations) in nodes {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        text.push_str(&format!(
            "---\napiVersion: podroute.io/v1\nkind: Node\nmetadata: {{name: {name}, labels: {{{}}}, annotations: {{{}}}}}\nspec: {{addresses: [{address}]}}\n",
            map(labels),
            map(annotations)
        ));
    }
    text
}

#[test]
fn bgp_resources_resolve_for_sample_nodes() {
    // (build, nodes, node -> the peer addresses it gets).
    let cases: [(&str, &[SampleNode], &[(&str, &[&str])]); 5] = [
        (
            "deploy/podroute.yaml",
            &MESH_NODES,
            &[
                ("node-a", &["10.0.0.2", "10.0.0.3"]),
                ("node-c", &["10.0.0.1", "10.0.0.2"]),
            ],
        ),
        (
            "overlays/mesh",
            &MESH_NODES,
            &[("node-b", &["10.0.0.1", "10.0.0.3"])],
        ),
        (
            "overlays/etcd",
            &MESH_NODES,
            &[("node-b", &["10.0.0.1", "10.0.0.3"])],
        ),
        (
            "overlays/tor",
            &TOR_NODES,
            &[
                ("node-a", &["10.0.1.253", "10.0.1.254"]),
                ("node-c", &["10.0.2.253", "10.0.2.254"]),
            ],
        ),
        (
            "overlays/route-reflector",
            &RR_NODES,
            &[
                ("node-a", &["10.0.0.101", "10.0.0.102"]),
                ("rr-1", &["10.0.0.1", "10.0.0.102", "10.0.0.2"]),
            ],
        ),
    ];
    for (name, nodes, expected) in cases {
        let build = build(name);
        let defaults = build
            .config_map("podroute-defaults")
            .unwrap()
            .data
            .clone()
            .unwrap();
        let mut text = defaults["bgpconfigurations.default.yaml"].clone();
        let peers = deploy().join(name).join("bgppeers.yaml");
        if name.starts_with("overlays/") && peers.exists() {
            text.push_str("---\n");
            text.push_str(&std::fs::read_to_string(&peers).unwrap());
        }
        text.push_str(&node_documents(nodes));
        // passwordFiles must be in a folder bgpd has mounted.
        let (_, node) = build
            .workloads()
            .find(|(_, w)| w.name == "podroute-node")
            .unwrap();
        let bgpd = node
            .spec
            .containers
            .iter()
            .find(|c| c.name == "bgpd")
            .unwrap();
        let mounts: Vec<String> = bgpd
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect();
        let read = |path: &Path| {
            if mounts.iter().any(|m| path.starts_with(m)) {
                Ok("sample-key\n".to_owned())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} is in no folder bgpd mounts", path.display()),
                ))
            }
        };
        for (node_name, peers) in expected {
            let config = podroute_bgpd::config::parse_for(&text, name, Some(node_name), &read)
                .unwrap_or_else(|e| panic!("{name}, node {node_name}: {e}"));
            let got: BTreeSet<String> = config.peers.keys().map(ToString::to_string).collect();
            let peers: BTreeSet<String> = peers.iter().map(|p| (*p).to_owned()).collect();
            assert_eq!(got, peers, "{name}: the peers of {node_name}");
            for peer in config.peers.values().filter(|p| p.name.starts_with("tor-")) {
                assert!(
                    peer.password.is_some() && peer.bfd.is_some(),
                    "{name}: {} has MD5 and BFD",
                    peer.name
                );
            }
        }
    }
}

#[test]
fn the_default_pool_is_valid() {
    for build in builds()
        .iter()
        .filter(|b| b.name != "deploy/uninstall.yaml")
    {
        let defaults = build
            .config_map("podroute-defaults")
            .unwrap()
            .data
            .clone()
            .unwrap();
        for (key, text) in &defaults {
            let docs = docs::parse(text, key).unwrap();
            let [doc] = &docs[..] else {
                panic!("{key}: one document per key");
            };
            // <resource>.<name>.yaml names the document.
            let (resource, name) = key.strip_suffix(".yaml").unwrap().split_once('.').unwrap();
            assert_eq!(doc.name(), name, "{key}");
            assert_eq!(format!("{}s", doc.kind().to_lowercase()), resource, "{key}");
            if doc.kind() == "IPPool" {
                let pool: podroute_ipam::model::IpPool =
                    serde_json::from_value(doc.value.clone()).unwrap();
                podroute_ipam::model::validate_pool(&pool, &[]).unwrap();
                assert_eq!(pool.block_prefix(), 26);
            }
        }
    }
}

// ---------------------------------------------------------------------
// The image.

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

// ---------------------------------------------------------------------
// podroute-create-defaults against a fake API server.

/// One request the fake API server was sent.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Serves `answer(request, how many before it for this path)` -> (status,
/// body) over plain HTTP/1.1 on 127.0.0.1 until dropped; records every
/// request.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeApi {
    fn start(answer: impl Fn(&Request, usize) -> (u16, String) + Send + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::<Request>::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (
                    parts.next().unwrap_or("").to_owned(),
                    parts.next().unwrap_or("").to_owned(),
                );
                let mut headers = BTreeMap::new();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = header.split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
                    }
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let request = Request {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let before = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.path == request.path)
                    .count();
                let (status, body) = answer(&request, before);
                seen.lock().unwrap().push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeApi { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// Runs deploy/create-defaults.sh on the base's defaults against `api`;
/// (success, stdout, stderr, the folder of documents).
fn create_defaults(api: &FakeApi, wait: u32) -> (bool, String, String, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa");
    let defaults = dir.path().join("defaults");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::create_dir_all(&defaults).unwrap();
    std::fs::write(sa.join("token"), "sample-token").unwrap();
    std::fs::write(sa.join("ca.crt"), "not used over http").unwrap();
    let data = build("deploy/podroute.yaml")
        .config_map("podroute-defaults")
        .unwrap()
        .data
        .clone()
        .unwrap();
    for (key, text) in &data {
        std::fs::write(defaults.join(key), text).unwrap();
    }
    let out = Command::new("sh")
        .arg(deploy().join("create-defaults.sh"))
        .arg(&defaults)
        .env("PODROUTE_API", &api.url)
        .env("PODROUTE_SA_DIR", &sa)
        .env("PODROUTE_CRD_WAIT", wait.to_string())
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .expect("sh and curl (scripts/setup.sh installs curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        data,
    )
}

#[test]
fn create_defaults_creates_what_is_missing_and_changes_nothing() {
    // The CRDs serve only from the second try (404 before, as right after
    // `kubectl apply`); the BGPConfiguration exists already.
    let api = FakeApi::start(|request, before| match request.path.as_str() {
        "/apis/podroute.io/v1/ippools" if before == 0 => (404, "{}".into()),
        "/apis/podroute.io/v1/ippools" => (201, "{}".into()),
        "/apis/podroute.io/v1/bgpconfigurations" => (409, r#"{"reason":"AlreadyExists"}"#.into()),
        _ => (500, "unexpected".into()),
    });
    let started = Instant::now();
    let (ok, stdout, stderr, data) = create_defaults(&api, 30);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("ippools.default.yaml: created"), "{stdout}");
    assert!(
        stdout.contains("bgpconfigurations.default.yaml: exists, left as it is"),
        "{stdout}"
    );
    let requests = api.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/podroute.io/v1/bgpconfigurations",
            "/apis/podroute.io/v1/ippools",
            "/apis/podroute.io/v1/ippools",
        ]
    );
    for request in &requests {
        // Create only: never a PUT or PATCH of what exists.
        assert_eq!(request.method, "POST");
        assert_eq!(request.headers["authorization"], "Bearer sample-token");
        assert_eq!(request.headers["content-type"], "application/yaml");
        let key = format!("{}.default.yaml", request.path.rsplit('/').next().unwrap());
        assert_eq!(request.body, data[&key]);
    }
    assert!(started.elapsed() < Duration::from_secs(30));

    // Anything else stops it with the API server's words.
    let api = FakeApi::start(|_, _| (403, r#"{"message":"ippools is forbidden"}"#.into()));
    let (ok, _, stderr, _) = create_defaults(&api, 30);
    assert!(!ok);
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("ippools is forbidden"),
        "{stderr}"
    );

    // CRDs that never serve: it gives up after the wait, saying why.
    let api = FakeApi::start(|_, _| (404, "{}".into()));
    let (ok, _, stderr, _) = create_defaults(&api, 2);
    assert!(!ok);
    assert!(stderr.contains("are the CRDs installed?"), "{stderr}");
}

#[test]
fn create_defaults_passes_shellcheck() {
    let Ok(out) = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(deploy().join("create-defaults.sh"))
        .output()
    else {
        eprintln!("note: shellcheck is not installed; deploy/create-defaults.sh not linted");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
