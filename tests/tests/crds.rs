// The CRDs in deploy/crds/ are generated from the Rust types the daemons
// read (bgpd's BGPConfiguration and BGPPeer, ipamd's IPPool, with kube's
// CustomResource derive): this test fails when the YAML and the types
// drift apart. `PODROUTE_BLESS=1 cargo test -p podroute-lab --test crds`
// rewrites the files. It also checks that every schema is structural, as
// the API server requires of a v1 CRD (every node typed, or marked
// int-or-string or preserve-unknown-fields).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};

const HEADER: &str = "\
# Generated from the Rust types (bgpd/src/config/crd.rs, ipam/src/model/crd.rs).
# Do not edit: PODROUTE_BLESS=1 cargo test -p podroute-lab --test crds
";

fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = podroute_bgpd::config::crd::crds();
    crds.extend(podroute_ipam::model::crd::crds());
    crds
}

fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

fn file_of(crd: &CustomResourceDefinition) -> PathBuf {
    crd_dir().join(format!("{}.yaml", crd.metadata.name.as_deref().unwrap()))
}

fn text_of(crd: &CustomResourceDefinition) -> String {
    format!("{HEADER}{}", serde_yaml_ng::to_string(crd).unwrap())
}

#[test]
fn deploy_crds_are_generated_from_the_types() {
    let bless = std::env::var_os("PODROUTE_BLESS").is_some();
    let mut stale = Vec::new();
    let mut expected_files = Vec::new();
    for crd in crds() {
        let path = file_of(&crd);
        let text = text_of(&crd);
        expected_files.push(path.file_name().unwrap().to_owned());
        if bless {
            std::fs::create_dir_all(crd_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "CRD YAML differs from the Rust types: {stale:?}\n\
         regenerate with: PODROUTE_BLESS=1 cargo test -p podroute-lab --test crds"
    );
    // No CRD file is left over from a kind that no longer exists.
    let mut found: Vec<_> = std::fs::read_dir(crd_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    found.sort();
    expected_files.sort();
    assert_eq!(found, expected_files, "files in deploy/crds/");
    // The kustomization deploy/base builds on lists exactly these.
    let kustomization = std::fs::read_to_string(crd_dir().join("kustomization.yaml")).unwrap();
    let kustomization: serde_yaml_ng::Value = serde_yaml_ng::from_str(&kustomization).unwrap();
    let mut listed: Vec<std::ffi::OsString> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|file| file.as_str().unwrap().into())
        .collect();
    listed.sort();
    assert_eq!(
        listed, expected_files,
        "deploy/crds/kustomization.yaml resources"
    );
}

#[test]
fn the_crds_name_our_group_and_kinds() {
    let names: Vec<(String, String, String)> = crds()
        .iter()
        .map(|crd| {
            (
                crd.spec.group.clone(),
                crd.spec.names.kind.clone(),
                crd.spec.scope.clone(),
            )
        })
        .collect();
    let want = |kind: &str| {
        (
            "podroute.io".to_owned(),
            kind.to_owned(),
            "Cluster".to_owned(),
        )
    };
    assert_eq!(
        names,
        vec![want("BGPConfiguration"), want("BGPPeer"), want("IPPool")]
    );
    for crd in crds() {
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1", true, true)
        );
        let status = version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref());
        let kind = crd.spec.names.kind.as_str();
        assert_eq!(
            status.is_some(),
            kind != "BGPConfiguration",
            "{kind} status subresource"
        );
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap();
        check_structural(&kind, schema);
    }
}

/// Kubernetes' structural schema rules, the ones a generated schema can
/// break: every node has a type (unless int-or-string or
/// preserve-unknown-fields), and no `$ref`.
fn check_structural(path: &str, schema: &JSONSchemaProps) {
    assert!(schema.ref_path.is_none(), "{path}: $ref is not allowed");
    let exempt = schema.x_kubernetes_int_or_string == Some(true)
        || schema.x_kubernetes_preserve_unknown_fields == Some(true);
    assert!(
        schema.type_.is_some() || exempt,
        "{path}: no type: {schema:#?}"
    );
    for (name, property) in schema.properties.iter().flatten() {
        check_structural(&format!("{path}.{name}"), property);
    }
    if let Some(items) = &schema.items {
        let items = match items {
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(s) => s.as_ref(),
            other => panic!("{path}: items as an array: {other:?}"),
        };
        check_structural(&format!("{path}[]"), items);
    }
    if let Some(
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(s),
    ) = &schema.additional_properties
    {
        check_structural(&format!("{path}{{}}"), s);
    }
    if schema.x_kubernetes_list_type.as_deref() == Some("map") {
        let keys = schema
            .x_kubernetes_list_map_keys
            .clone()
            .unwrap_or_default();
        let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = &schema.items else {
            panic!("{path}: a list-map without items");
        };
        let required = items.required.clone().unwrap_or_default();
        for key in keys {
            assert!(
                required.contains(&key),
                "{path}: list-map key {key} must be required"
            );
        }
    }
}
