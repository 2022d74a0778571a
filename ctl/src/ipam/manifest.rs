// Reading an IPPool manifest for `podctl ipam pool create -f FILE`: the
// same YAML document the daemon reads from its manifest directory or the
// cluster holds as a CRD (apiVersion podroute.io/v1, kind IPPool), turned
// into the gRPC Pool. Unknown spec fields are refused so a typo is not
// silently ignored; the spec's values are checked by ipamd.

use std::io::Read as _;
use std::path::Path;

use podroute_proto::ipam::v1::Pool;
use serde::Deserialize;

pub const API_VERSION: &str = "podroute.io/v1";
pub const KIND: &str = "IPPool";

/// Why a manifest was not read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a valid IPPool manifest: {source}")]
    Yaml {
        file: String,
        source: serde_yaml_ng::Error,
    },
    #[error("{file}: apiVersion is {found:?}; an IPPool manifest has apiVersion {API_VERSION}")]
    ApiVersion { file: String, found: String },
    #[error("{file}: kind is {found:?}; podctl ipam pool create takes kind {KIND}")]
    Kind { file: String, found: String },
    #[error("{file}: holds {count} documents; give one IPPool per file")]
    Several { file: String, count: usize },
    #[error("{file}: holds no document; it should hold one IPPool")]
    Empty { file: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

/// Other metadata (labels, annotations, uid...) is accepted and ignored,
/// so a manifest exported from a cluster reads as is.
#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    cidr: String,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    node_selector: String,
    #[serde(default, rename = "disableBGPExport")]
    disable_bgp_export: bool,
    #[serde(default, rename = "reservedCIDRs")]
    reserved_cidrs: Vec<String>,
}

/// Reads the manifest at `path` ("-": standard input).
pub fn read(path: &Path) -> Result<Pool, ManifestError> {
    let stdin = path.as_os_str() == "-";
    let file = if stdin {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let text = if stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| ManifestError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

/// Parses one IPPool document; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Pool, ManifestError> {
    let mut manifests = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        // An empty document (a stray `---`) is not an IPPool to count.
        let manifest =
            Option::<Manifest>::deserialize(document).map_err(|source| ManifestError::Yaml {
                file: file.to_string(),
                source,
            })?;
        manifests.extend(manifest);
    }
    let manifest = match manifests.len() {
        0 => {
            return Err(ManifestError::Empty {
                file: file.to_string(),
            });
        }
        1 => manifests.remove(0),
        count => {
            return Err(ManifestError::Several {
                file: file.to_string(),
                count,
            });
        }
    };
    if manifest.api_version != API_VERSION {
        return Err(ManifestError::ApiVersion {
            file: file.to_string(),
            found: manifest.api_version,
        });
    }
    if manifest.kind != KIND {
        return Err(ManifestError::Kind {
            file: file.to_string(),
            found: manifest.kind,
        });
    }
    let spec = manifest.spec;
    Ok(Pool {
        name: manifest.metadata.name,
        cidr: spec.cidr,
        // 0 asks ipamd for its default (/26 for IPv4, /122 for IPv6).
        block_size: spec.block_size.unwrap_or(0),
        disabled: spec.disabled,
        node_selector: spec.node_selector,
        disable_bgp_export: spec.disable_bgp_export,
        reserved_cidrs: spec.reserved_cidrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "\
apiVersion: podroute.io/v1
kind: IPPool
metadata:
  name: edge-v4
  labels: {team: net}
spec:
  cidr: 10.250.0.0/16
  blockSize: 28
  disabled: true
  nodeSelector: zone in (edge), !gpu
  disableBGPExport: true
  reservedCIDRs: [10.250.0.0/28, 10.250.255.0/24]
";

    #[test]
    fn every_field_reaches_the_pool() {
        assert_eq!(
            parse(FULL, "pool.yaml").unwrap(),
            Pool {
                name: "edge-v4".into(),
                cidr: "10.250.0.0/16".into(),
                block_size: 28,
                disabled: true,
                node_selector: "zone in (edge), !gpu".into(),
                disable_bgp_export: true,
                reserved_cidrs: vec!["10.250.0.0/28".into(), "10.250.255.0/24".into()],
            }
        );
    }

    #[test]
    fn defaults_and_document_separators() {
        let text = "---\napiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: default-ipv6}\nspec: {cidr: 'fd00:10:244::/56'}\n---\n";
        assert_eq!(
            parse(text, "pool.yaml").unwrap(),
            Pool {
                name: "default-ipv6".into(),
                cidr: "fd00:10:244::/56".into(),
                ..Pool::default()
            }
        );
    }

    #[test]
    fn errors_name_the_file_and_the_fault() {
        let typo = FULL.replace("blockSize", "blocksize");
        let e = parse(&typo, "pool.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("pool.yaml: not a valid IPPool manifest: "),
            "{e}"
        );
        assert!(e.contains("unknown field `blocksize`"), "{e}");

        let e = parse(
            &FULL.replace("podroute.io/v1", "crd.projectcalico.org/v1"),
            "p.yaml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "p.yaml: apiVersion is \"crd.projectcalico.org/v1\"; an IPPool manifest has apiVersion podroute.io/v1"
        );

        let e = parse(&FULL.replace("IPPool", "BGPPeer"), "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind is \"BGPPeer\""), "{e}");

        let two = format!("{FULL}---\n{FULL}");
        assert_eq!(
            parse(&two, "p.yaml").unwrap_err().to_string(),
            "p.yaml: holds 2 documents; give one IPPool per file"
        );
        assert!(matches!(
            parse("", "p.yaml"),
            Err(ManifestError::Empty { .. })
        ));
        let e = parse(
            "apiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: x}\n",
            "p.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `spec`"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/nonexistent/pool.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read /nonexistent/pool.yaml: "), "{e}");
    }
}
