// The builds an operator applies (deploy/podroute.yaml, each overlay,
// deploy/uninstall.yaml) as typed objects in apply order, and a
// container's command line as the kubelet would run it: its environment
// (ConfigMap keys, the downward API, the Services' links) and `$(VAR)`
// expanded.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar};

use crate::docs::{Doc, deploy};
use crate::tables::{CLUSTER_IP, IMAGE_REPOSITORY, NODE_NAME, OVERLAYS};
use crate::typed::{Object, Typed, Workload};
use crate::{docs, kustomize, typed};

/// One thing an operator applies: deploy/podroute.yaml, an overlay, or
/// deploy/uninstall.yaml, as typed objects in apply order.
pub struct Build {
    pub name: String,
    pub objects: Vec<Typed>,
}

impl Build {
    pub fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.objects.iter().find_map(|t| match &t.object {
            Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(name) => Some(c),
            _ => None,
        })
    }

    pub fn workloads(&self) -> impl Iterator<Item = (usize, Workload<'_>)> {
        self.objects
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.workload().map(|w| (i, w)))
    }

    pub fn has(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        self.objects
            .iter()
            .any(|t| t.doc.kind() == kind && t.doc.namespace() == namespace && t.doc.name() == name)
    }
}

pub fn typed_all(docs: &[Doc], problems: &mut Vec<String>) -> Vec<Typed> {
    docs.iter()
        .filter_map(|d| typed::parse(d).map_err(|e| problems.push(e)).ok())
        .collect()
}

/// podroute.yaml, every overlay, uninstall.yaml; panics with every problem.
pub fn builds() -> Vec<Build> {
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

pub fn build(name: &str) -> Build {
    builds()
        .into_iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no build {name}"))
}

/// Every container of a pod spec, init containers first.
pub fn containers(spec: &k8s_openapi::api::core::v1::PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// The environment the kubelet gives `container` of `workload` (the
/// object at `index` of `build`), with stand-ins for the node name and the
/// cluster IP; every `$(VAR)` in it must resolve.
pub fn environment(
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

pub fn env_value(
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
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
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
pub fn command_line(
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
pub fn flag_value<'a>(line: &'a [String], flag: &str) -> Option<&'a str> {
    line.iter()
        .position(|w| w == flag)
        .and_then(|i| line.get(i + 1))
        .map(String::as_str)
}

pub fn image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}
