// --tls-secret: ipamd's TLS material kept in two Secrets of its namespace,
// made by ipamd itself so that one `kubectl apply` installs podroute. Secret
// NAME holds the CA and ipamd's server certificate; Secret
// podroute-node-tls the CA certificate and the nodes' client certificate
// (no CA key), for the node DaemonSet to mount. Create is the lock between
// replicas (409: another one won, read theirs); a renewal replaces with the
// resourceVersion read (409: read again and start over).

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};

use super::ServerTls;
use super::pki::{self, PkiError, Problem};
use super::plan::{self, NodePlan, SecretData, ServerPlan};

/// The nodes' Secret (the DaemonSet mounts it at /etc/podroute/tls).
pub const NODE_SECRET: &str = "podroute-node-tls";
/// Type of both Secrets: `tls.crt` and `tls.key`, plus the CA.
pub const SECRET_TYPE: &str = "kubernetes.io/tls";
/// Label on the Secrets ipamd creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "podroute-ipamd");
/// Reads and writes of one Secret before giving up on a writer that keeps
/// changing it under us.
pub const MAX_ATTEMPTS: u32 = 5;
/// The name ipamd's Service has in deploy/.
pub const SERVICE_NAME: &str = "podroute-ipamd";

/// Where the Secrets are and what ipamd's certificate must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSettings {
    pub namespace: String,
    /// ipamd's Secret (--tls-secret).
    pub server_secret: String,
    pub node_secret: String,
    /// DNS names and IP addresses of the server certificate.
    pub names: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The API server's answer is in the message (not a source: its own
    /// words would repeat it).
    #[error(
        "cannot {op} Secret {name:?} in namespace {namespace:?}: {}{}",
        describe(error),
        hint(error)
    )]
    Api {
        op: &'static str,
        namespace: String,
        name: String,
        error: Box<kube::Error>,
    },
    #[error(
        "Secret {name:?} in namespace {namespace:?} kept changing while ipamd wrote it \
         ({attempts} attempts): is something else writing it?"
    )]
    Contended {
        namespace: String,
        name: String,
        attempts: u32,
    },
    #[error("cannot make the certificates of Secret {name:?} in namespace {namespace:?}: {source}")]
    Issue {
        namespace: String,
        name: String,
        #[source]
        source: PkiError,
    },
}

impl SecretSettings {
    /// Settings for Secret `server_secret` in `namespace`; without
    /// `dns_names`, the names of ipamd's Service there
    /// ([`default_dns_names`]). 127.0.0.1 is always named; empty names
    /// (a stray comma) are dropped.
    pub fn new(namespace: &str, server_secret: &str, dns_names: &[String]) -> SecretSettings {
        let given = dns_names.iter().filter(|name| !name.is_empty());
        let mut names: Vec<String> = given.cloned().collect();
        if names.is_empty() {
            names = default_dns_names(namespace);
        }
        let loopback = "127.0.0.1".to_owned();
        if !names.contains(&loopback) {
            names.push(loopback);
        }
        SecretSettings {
            namespace: namespace.to_owned(),
            server_secret: server_secret.to_owned(),
            node_secret: NODE_SECRET.to_owned(),
            names,
        }
    }
}

/// The names a client in the cluster may dial ipamd's Service by.
pub fn default_dns_names(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_NAME.to_owned(),
        format!("{SERVICE_NAME}.{namespace}"),
        format!("{SERVICE_NAME}.{namespace}.svc"),
        format!("{SERVICE_NAME}.{namespace}.svc.cluster.local"),
    ]
}

/// Reads, creates or renews both Secrets, and returns what ipamd serves
/// with: its certificate, and the CA for the nodes' certificates.
pub async fn bootstrap(
    client: Client,
    settings: &SecretSettings,
    now: SystemTime,
) -> Result<ServerTls, SecretError> {
    let now = unix_secs(now);
    let secrets: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let names = &settings.names;

    let server_secret = Named::new(settings, &settings.server_secret);
    let (ca, server) = ensure(&secrets, &server_secret, |stored| {
        let issue = |source| server_secret.issue_error(source);
        Ok(match plan::plan_server(stored, names, now) {
            ServerPlan::Keep { ca, server } => Decision::Keep((ca, server)),
            ServerPlan::Create => {
                let ca = pki::new_ca(now).map_err(issue)?;
                let server = pki::issue_server(&ca, names, now).map_err(issue)?;
                let data = plan::server_data(&ca, &server);
                Decision::write((ca, server), data, "a new CA and server certificate", None)
            }
            ServerPlan::RenewServer { ca, why } => {
                let server = pki::issue_server(&ca, names, now).map_err(issue)?;
                let data = plan::server_data(&ca, &server);
                let what = "a new server certificate from the same CA";
                Decision::write((ca, server), data, what, Some(why))
            }
            ServerPlan::RenewAll { why } => {
                let ca = pki::new_ca(now).map_err(issue)?;
                let server = pki::issue_server(&ca, names, now).map_err(issue)?;
                let data = plan::server_data(&ca, &server);
                let what = "a new CA and server certificate (the nodes' Secret follows)";
                Decision::write((ca, server), data, what, Some(why))
            }
        })
    })
    .await?;

    let node_secret = Named::new(settings, &settings.node_secret);
    ensure(&secrets, &node_secret, |stored| {
        let issue = |source| node_secret.issue_error(source);
        let why = match plan::plan_node(stored, &ca.cert_pem, now) {
            NodePlan::Keep => return Ok(Decision::Keep(())),
            NodePlan::Create => None,
            NodePlan::Renew { why } => Some(why),
        };
        let node = pki::issue_node(&ca, now).map_err(issue)?;
        let data = plan::node_data(&ca.cert_pem, &node);
        Ok(Decision::write(
            (),
            data,
            "the nodes' client certificate",
            why,
        ))
    })
    .await?;

    Ok(ServerTls {
        cert_pem: server.cert_pem.into_bytes(),
        key_pem: server.key_pem.into_bytes(),
        client_ca_pem: Some(ca.cert_pem.into_bytes()),
    })
}

/// One Secret, for messages.
struct Named<'a> {
    namespace: &'a str,
    name: &'a str,
}

/// What to do with a Secret as read.
enum Decision<M> {
    /// Use what was read.
    Keep(M),
    /// Create the Secret (none was read) or replace the one read.
    Write {
        material: M,
        data: SecretData,
        /// What the new data holds, for the log.
        what: &'static str,
        /// Why the Secret read is replaced.
        why: Option<Problem>,
    },
}

impl<M> Decision<M> {
    fn write(material: M, data: SecretData, what: &'static str, why: Option<Problem>) -> Self {
        Decision::Write {
            material,
            data,
            what,
            why,
        }
    }
}

impl<'a> Named<'a> {
    fn new(settings: &'a SecretSettings, name: &'a str) -> Self {
        Named {
            namespace: &settings.namespace,
            name,
        }
    }

    fn api_error(&self, op: &'static str, source: kube::Error) -> SecretError {
        SecretError::Api {
            op,
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            error: Box::new(source),
        }
    }

    fn issue_error(&self, source: PkiError) -> SecretError {
        SecretError::Issue {
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            source,
        }
    }
}

/// Reads the Secret, asks `decide` what it needs, and writes that; on a
/// conflict (another replica wrote first), reads again and asks again.
async fn ensure<M>(
    secrets: &Api<Secret>,
    secret: &Named<'_>,
    mut decide: impl FnMut(Option<&SecretData>) -> Result<Decision<M>, SecretError>,
) -> Result<M, SecretError> {
    let Named { namespace, name } = *secret;
    for _ in 0..MAX_ATTEMPTS {
        let stored = read(secrets, name)
            .await
            .map_err(|e| secret.api_error("read", e))?;
        let data = stored.as_ref().map(data_of);
        let (material, data, what, why) = match decide(data.as_ref())? {
            Decision::Keep(material) => {
                tracing::debug!(secret = name, namespace, "TLS Secret is sound; using it");
                return Ok(material);
            }
            Decision::Write {
                material,
                data,
                what,
                why,
            } => (material, data, what, why),
        };
        let written = match stored {
            None => secrets
                .create(&PostParams::default(), &new_secret(name, data))
                .await
                .map_err(|e| ("create", e)),
            Some(stored) => secrets
                .replace(name, &PostParams::default(), &replaced(stored, data))
                .await
                .map_err(|e| ("replace", e)),
        };
        match written {
            Ok(_) => {
                match why {
                    None => tracing::info!(secret = name, namespace, "TLS Secret created: {what}"),
                    Some(why) => tracing::info!(
                        secret = name,
                        namespace,
                        reason = %why,
                        "TLS Secret renewed: {what}"
                    ),
                }
                return Ok(material);
            }
            Err((op, e)) if status_code(&e) == Some(409) => {
                tracing::info!(
                    secret = name,
                    namespace,
                    "another writer changed the TLS Secret first ({op}: 409); reading it again"
                );
            }
            Err((op, e)) => return Err(secret.api_error(op, e)),
        }
    }
    Err(SecretError::Contended {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        attempts: MAX_ATTEMPTS,
    })
}

/// The Secret, or None when there is none (404).
async fn read(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, kube::Error> {
    match secrets.get(name).await {
        Ok(secret) => Ok(Some(secret)),
        Err(e) if status_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// "403 Forbidden: secrets is forbidden: ...", or the transport's error
/// with its causes.
fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return format!("{} {}: {}", status.code, status.reason, status.message);
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        text = format!("{text}: {error}");
        cause = error.source();
    }
    text
}

fn hint(error: &kube::Error) -> &'static str {
    match status_code(error) {
        Some(403) => " (may ipamd's ServiceAccount get, create and update Secrets there?)",
        _ => "",
    }
}

fn data_of(secret: &Secret) -> SecretData {
    let data = secret.data.iter().flatten();
    data.map(|(key, value)| (key.clone(), value.0.clone()))
        .collect()
}

fn bytes(data: SecretData) -> Option<std::collections::BTreeMap<String, ByteString>> {
    Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect())
}

fn new_secret(name: &str, data: SecretData) -> Secret {
    let (label, value) = MANAGED_BY;
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(label.to_owned(), value.to_owned())].into()),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        data: bytes(data),
        ..Secret::default()
    }
}

/// The Secret read with our data: its resourceVersion makes the write fail
/// if anyone changed it since; its type (immutable), labels and
/// annotations stay.
fn replaced(mut stored: Secret, data: SecretData) -> Secret {
    stored.data = bytes(data);
    stored.string_data = None;
    stored
}

fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
