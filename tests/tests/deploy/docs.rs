// Manifests as data: every YAML document of a file as a JSON value, named
// by its file and position so a failure says where to look. YAML is read
// the way `kubectl apply` hands it to the API (documents separated by
// `---`, empty ones skipped).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("the repository root: {e}"))
}

/// deploy/ in the repository.
pub fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// `path` relative to the repository, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub struct Doc {
    /// `deploy/base/node.yaml#2` (the second document).
    pub origin: String,
    pub value: Value,
}

impl Doc {
    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.value.pointer(pointer).and_then(Value::as_str)
    }

    pub fn kind(&self) -> &str {
        self.str_at("/kind").unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.str_at("/apiVersion").unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.str_at("/metadata/name").unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
    }

    /// What `kubectl apply` keys an object by: its group's kind, namespace
    /// and name ("Deployment podroute-system/podroute-ipamd").
    pub fn id(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

/// The documents of `text`, named `origin#N`.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("{origin}#{}: {e}", i + 1))?;
        if !value.is_null() {
            docs.push(Doc {
                origin: format!("{origin}#{}", i + 1),
                value,
            });
        }
    }
    Ok(docs)
}

/// The documents of the file at `path`.
pub fn load(path: &Path) -> Result<Vec<Doc>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", shown(path)))?;
    parse(&text, &shown(path))
}
