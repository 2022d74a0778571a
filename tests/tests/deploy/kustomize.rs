// A kustomize build of the few features deploy/ uses, for machines without
// kustomize (Debian packages none recent enough: kubernetes-client 1.20's
// kubectl embeds kustomize 2.0.3, which predates directories in
// `resources` and the `patches` field). Where `kubectl kustomize` or
// `kustomize` is installed the test compares its output with this one's.
//
// Supported: `resources` (files, and folders with a kustomization.yaml),
// `patches` with `path` only (a strategic merge patch naming its target by
// kind, namespace and name). The patch semantics are Kubernetes' strategic
// merge (maps merge, null deletes, lists of objects merge by their merge
// key, `$patch: delete` removes an item) with kustomize's order (items a
// patch adds come first). Anything else is refused rather than guessed.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::docs::{self, Doc, shown};

/// The fields of a kustomization.yaml this build understands.
const KUSTOMIZATION_FIELDS: [&str; 4] = ["apiVersion", "kind", "resources", "patches"];

/// Lists of objects the patches in deploy/ touch, with their merge keys
/// (the `patchMergeKey` of the Kubernetes API types).
const MERGE_KEYS: [(&str, &str); 5] = [
    ("containers", "name"),
    ("initContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
];

/// Lists a patch replaces whole (no patch strategy in the API types).
const ATOMIC_LISTS: [&str; 2] = ["args", "command"];

/// The objects `kustomize build DIR` would give, in resource order.
pub fn build(dir: &Path) -> Result<Vec<Doc>, String> {
    let kustomization = read_kustomization(dir)?;
    let mut objects = Vec::new();
    for resource in &kustomization.resources {
        if resource.is_dir() {
            objects.extend(build(resource)?);
        } else {
            objects.extend(docs::load(resource)?);
        }
    }
    for path in &kustomization.patches {
        for patch in docs::load(path)? {
            let targets: Vec<usize> = objects
                .iter()
                .enumerate()
                .filter(|(_, o)| {
                    o.kind() == patch.kind()
                        && o.name() == patch.name()
                        && o.namespace() == patch.namespace()
                })
                .map(|(i, _)| i)
                .collect();
            let [target] = targets[..] else {
                return Err(format!(
                    "{}: patches {}, which the resources have {} of",
                    patch.origin,
                    patch.id(),
                    targets.len()
                ));
            };
            let (Value::Object(object), Value::Object(changes)) =
                (&mut objects[target].value, &patch.value)
            else {
                return Err(format!("{}: not a map", patch.origin));
            };
            merge_map(object, changes, &patch.origin)?;
        }
    }
    Ok(objects)
}

/// The files of DIR's build in order, folders expanded: what
/// deploy/podroute.yaml concatenates.
pub fn resource_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let kustomization = read_kustomization(dir)?;
    if !kustomization.patches.is_empty() {
        return Err(format!(
            "{}: a concatenation cannot apply patches",
            shown(dir)
        ));
    }
    let mut files = Vec::new();
    for resource in kustomization.resources {
        if resource.is_dir() {
            files.extend(resource_files(&resource)?);
        } else {
            files.push(resource);
        }
    }
    Ok(files)
}

/// The resources of DIR's kustomization.yaml, as paths (folders or
/// files), in order.
pub fn resources(dir: &Path) -> Result<Vec<PathBuf>, String> {
    read_kustomization(dir).map(|k| k.resources)
}

struct Kustomization {
    resources: Vec<PathBuf>,
    patches: Vec<PathBuf>,
}

fn read_kustomization(dir: &Path) -> Result<Kustomization, String> {
    let path = dir.join("kustomization.yaml");
    let [doc] = &docs::load(&path)?[..] else {
        return Err(format!("{}: one document expected", shown(&path)));
    };
    let origin = &doc.origin;
    let map = doc
        .value
        .as_object()
        .ok_or_else(|| format!("{origin}: not a map"))?;
    if let Some(field) = map
        .keys()
        .find(|k| !KUSTOMIZATION_FIELDS.contains(&k.as_str()))
    {
        return Err(format!(
            "{origin}: {field}: not a field this test's kustomize build knows; extend tests/tests/deploy/kustomize.rs"
        ));
    }
    if doc.kind() != "Kustomization" || doc.api_version() != "kustomize.config.k8s.io/v1beta1" {
        return Err(format!(
            "{origin}: not a kustomize.config.k8s.io/v1beta1 Kustomization"
        ));
    }
    let paths = |field: &str, entry: &dyn Fn(&Value) -> Option<String>| {
        let mut out = Vec::new();
        for (i, item) in map
            .get(field)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let rel =
                entry(item).ok_or_else(|| format!("{origin}: {field}[{i}]: not understood"))?;
            let path = dir
                .join(&rel)
                .canonicalize()
                .map_err(|e| format!("{origin}: {field}[{i}]: {rel}: {e}"))?;
            out.push(path);
        }
        Ok::<_, String>(out)
    };
    let resources = paths("resources", &|v| v.as_str().map(str::to_owned))?;
    let patches = paths("patches", &|v| {
        let entry = v.as_object()?;
        // `target`, `patch` (inline) and `options` are not used in deploy/.
        (entry.len() == 1)
            .then(|| entry.get("path")?.as_str().map(str::to_owned))
            .flatten()
    })?;
    Ok(Kustomization { resources, patches })
}

fn merge_map(
    object: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for (key, change) in patch {
        let here = format!("{at}.{key}");
        if key.starts_with('$') {
            return Err(format!("{here}: directive not supported here"));
        }
        match (object.get_mut(key), change) {
            (_, Value::Null) => {
                object.remove(key);
            }
            (Some(Value::Object(inner)), Value::Object(changes)) => {
                merge_map(inner, changes, &here)?
            }
            (Some(Value::Array(items)), Value::Array(changes)) => {
                merge_list(key, items, changes, &here)?
            }
            (_, new) => {
                if has_directive(new) {
                    return Err(format!("{here}: a directive in a new value"));
                }
                object.insert(key.clone(), new.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    field: &str,
    items: &mut Vec<Value>,
    changes: &[Value],
    at: &str,
) -> Result<(), String> {
    if ATOMIC_LISTS.contains(&field) {
        *items = changes.to_vec();
        return Ok(());
    }
    let Some(&(_, key)) = MERGE_KEYS.iter().find(|(f, _)| *f == field) else {
        return Err(format!(
            "{at}: no merge key known for a list `{field}`; add it to MERGE_KEYS or ATOMIC_LISTS"
        ));
    };
    let mut added = Vec::new();
    for change in changes {
        let change = change
            .as_object()
            .ok_or_else(|| format!("{at}: an item that is not a map"))?;
        let id = change
            .get(key)
            .ok_or_else(|| format!("{at}: an item without its merge key {key}"))?;
        let position = items.iter().position(|item| item.get(key) == Some(id));
        match (change.get("$patch").and_then(Value::as_str), position) {
            (Some("delete"), Some(i)) => {
                items.remove(i);
            }
            (Some("delete"), None) => {
                return Err(format!("{at}: deletes {key}={id}, which is not there"));
            }
            (Some(other), _) => return Err(format!("{at}: $patch: {other} not supported")),
            (None, Some(i)) => {
                let Value::Object(item) = &mut items[i] else {
                    return Err(format!("{at}: {key}={id} is not a map"));
                };
                merge_map(item, change, &format!("{at}[{key}={id}]"))?;
            }
            (None, None) => {
                let new = Value::Object(change.clone());
                if has_directive(&new) {
                    return Err(format!("{at}[{key}={id}]: a directive in a new item"));
                }
                added.push(new);
            }
        }
    }
    // kustomize (kyaml's merge2) puts what a patch adds before the items
    // that were there.
    items.splice(0..0, added);
    Ok(())
}

fn has_directive(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_directive(v)),
        Value::Array(items) => items.iter().any(has_directive),
        _ => false,
    }
}
