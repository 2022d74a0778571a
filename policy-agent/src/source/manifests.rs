// The manifests source: a folder (or one file) of the YAML documents
// `kubectl get -o yaml` would show (Namespaces, Pods, NetworkPolicies),
// read whole on start and again whenever a file changes (polled, see
// podroute_proto::reload) or on SIGHUP. A file that does not parse is
// refused with its name and document, and the last good view stays in
// force: half a folder must never be programmed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use podroute_proto::reload;
use tokio::sync::watch;

use crate::model::objects::{ParseError, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
}

/// Every Namespace, Pod and NetworkPolicy under `path`.
pub fn load(path: &Path) -> Result<Snapshot, ManifestError> {
    // reload::yaml_files reads an unreadable folder as empty: here that
    // would be an empty cluster, every local pod unknown and dropped.
    if path.is_dir() {
        std::fs::read_dir(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
    }
    let mut snapshot = Snapshot::default();
    for file in reload::yaml_files(path) {
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        snapshot
            .add_yaml(&text)
            .map_err(|source| ManifestError::Parse {
                path: file.clone(),
                source,
            })?;
    }
    Ok(snapshot)
}

/// Publishes `path`'s content on `tx` now and after every change, until
/// `tx` has no receivers. A folder that fails to load at start publishes
/// nothing (the old rules stay) until it loads.
pub async fn run(
    path: PathBuf,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
) -> Result<(), std::io::Error> {
    // Watch first, so a change between the first load and the watch is
    // not missed.
    let mut reloads = reload::watch(path.clone())?;
    publish(&path, &tx);
    loop {
        tokio::select! {
            () = tx.closed() => return Ok(()),
            trigger = reloads.recv() => match trigger {
                Some(trigger) => {
                    tracing::debug!(?trigger, path = %path.display(), "manifests changed");
                    publish(&path, &tx);
                }
                None => return Ok(()),
            },
        }
    }
}

fn publish(path: &Path, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
    match load(path) {
        Ok(snapshot) => {
            tracing::info!(
                path = %path.display(),
                namespaces = snapshot.namespaces.len(),
                pods = snapshot.pods.len(),
                policies = snapshot.policies.len(),
                "manifests loaded"
            );
            tx.send_replace(Some(Arc::new(snapshot)));
        }
        Err(e) => tracing::error!("manifests refused, the last good ones stay: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_folder_loads_every_document_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec: {podSelector: {}}\n---\napiVersion: podroute.io/v1\nkind: IPPool\nmetadata: {name: other-daemons-business}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let snapshot = load(dir.path()).unwrap();
        assert_eq!(snapshot.namespaces.len(), 1);
        assert_eq!(snapshot.pods.len(), 1);
        assert_eq!(snapshot.policies.len(), 1);

        std::fs::write(
            dir.path().join("c.yaml"),
            "apiVersion: v1\nkind: Pod\nspec: [1]\n",
        )
        .unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("c.yaml: document 1: Pod"), "{error}");
    }

    #[tokio::test]
    async fn changes_are_published_and_a_bad_change_keeps_the_last_view() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        )
        .unwrap();
        let (tx, mut rx) = watch::channel(None);
        tokio::spawn(run(dir.path().to_owned(), tx));
        let deadline = Duration::from_secs(10);
        tokio::time::timeout(deadline, rx.wait_for(|s| s.is_some()))
            .await
            .unwrap()
            .unwrap();

        std::fs::write(&file, "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: y}\n").unwrap();
        tokio::time::timeout(
            deadline,
            rx.wait_for(|s| s.as_ref().is_some_and(|s| s.namespaces.len() == 2)),
        )
        .await
        .unwrap()
        .unwrap();

        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: [broken\n",
        )
        .unwrap();
        // Then a good change after the bad one: only that one is seen.
        std::fs::write(
            dir.path().join("z.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n",
        )
        .unwrap();
        // Three polls' time: long enough to see a publication if one came.
        let published = tokio::time::timeout(
            reload::POLL_INTERVAL * 3,
            rx.wait_for(|s| s.as_ref().is_some_and(|s| s.namespaces.len() != 2)),
        )
        .await
        .is_ok();
        assert!(!published, "a folder with a broken file is never published");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
        )
        .unwrap();
        tokio::time::timeout(
            deadline,
            rx.wait_for(|s| {
                s.as_ref().is_some_and(|s| {
                    s.namespaces.len() == 2 && s.namespaces.iter().any(|n| n.metadata.name == "z")
                })
            }),
        )
        .await
        .unwrap()
        .unwrap();
    }
}
