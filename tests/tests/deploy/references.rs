// Cross-references a typo would break only at install time:
// ServiceAccounts, bindings, volumes, ConfigMap keys, Secrets, the one
// image, `$(VAR)`s, probes on the daemons' ports, the Service on ipamd's
// --listen port.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Probe};

use crate::builds::{Build, builds, command_line, containers, flag_value, image};
use crate::tables::{NAMESPACE, SECRETS};
use crate::typed::{Object, Workload};

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
                        "{b}: {w}: Secret {name} is none of the known ones (SECRETS in tests/tests/deploy/tables.rs)"
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
