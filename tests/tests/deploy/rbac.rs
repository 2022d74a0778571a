// RBAC against the table of what each component reads and writes: the
// ClusterRoles and Roles grant exactly that, and the table against the
// source where the code is on this branch.

use std::collections::BTreeSet;

use crate::builds::{Build, build, builds};
use crate::docs::repo;
use crate::tables::{RBAC, RBAC_SECRETS};
use crate::typed::Object;

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
    let watched: BTreeSet<String> = regex::Regex::new(r"watch_kind::<(\w+)>")
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
    // ipamd's pod GC reads each pod live before releasing its addresses
    // (the watch may lag): that read is what `get` on pods is for.
    let pod_gc = std::fs::read_to_string(repo().join("ipam/src/service/kube/pod_gc.rs")).unwrap();
    let ipamd_gets_pods = RBAC
        .iter()
        .any(|g| g.account == "podroute-ipamd" && g.resource == "pods" && g.verbs.contains(&"get"));
    assert_eq!(
        pod_gc.contains(".get_opt("),
        ipamd_gets_pods,
        "ipam/src/service/kube/pod_gc.rs reads pods live (get) or not, unlike the table"
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
