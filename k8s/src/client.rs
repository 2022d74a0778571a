// The API client, configured the way kubectl and client-go find a cluster.

use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// kube's errors repeat their cause in their own message, so ours carry
/// them as text-bearing fields rather than as `source`s: a chain printed
/// with `{:#}` would say everything three times.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {}: {reason}", path.display())]
    Kubeconfig {
        path: PathBuf,
        reason: KubeconfigError,
    },
    #[error("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Infer(InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(kube::Error),
}

/// A client from the kubeconfig file given, else inferred the way kubectl
/// and client-go do: `$KUBECONFIG` or `~/.kube/config`, then the in-cluster
/// service account.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let file_error = |reason| ClientError::Kubeconfig {
                path: path.to_owned(),
                reason,
            };
            let file = Kubeconfig::read_from(path).map_err(file_error)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(file_error)?
        }
        None => Config::infer().await.map_err(ClientError::Infer)?,
    };
    Client::try_from(config).map_err(ClientError::Client)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://192.0.2.10:6443
    insecure-skip-tls-verify: true
users:
- name: agent
  user:
    token: not-a-secret
contexts:
- name: lab
  context:
    cluster: lab
    user: agent
current-context: lab
";

    #[tokio::test]
    async fn a_client_comes_from_a_kubeconfig_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let client = client(Some(&path)).await.unwrap();
        assert_eq!(client.default_namespace(), "default");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let Err(error) = client(Some(&path)).await else {
            panic!("a client from a file that does not exist");
        };
        assert!(matches!(&error, ClientError::Kubeconfig { path: named, .. } if *named == path));
        assert!(error.to_string().contains("absent"), "{error}");
    }
}
