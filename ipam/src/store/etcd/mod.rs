// The etcd store, for clusters that run several podroute-ipamd: every key lives
// under a prefix ("/podroute/ipam/" by default, stripped on the way out), a
// transaction is one etcd Txn that compares mod_revisions and, when a compare
// fails, reads every compared key in the same round trip, and watches forward
// etcd's own (watch.rs).

#[cfg(test)]
mod tests;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, CompareOp, ConnectOptions, GetOptions, Identity, KvClient, TlsOptions,
    Txn, TxnOp, TxnOpResponse, WatchClient,
};

use super::{
    Compare, KeyValue, Op, Revision, Snapshot, Store, StoreError, TxnOutcome, WatchStream,
    validate_txn,
};

/// Where podroute-ipamd keeps its records unless told otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "/podroute/ipam/";

/// Longest wait for one request: past it the caller gets `Unavailable` and retries
/// (a txn's compares make the retry safe).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings, so a dead member under an idle watch is noticed (→ Resync).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys per range request when listing; pages are read at one revision.
const LIST_PAGE: i64 = 1000;
/// Largest response accepted (tonic's default of 4 MiB is one big list page).
const MAX_MESSAGE: usize = 64 << 20;
/// Attempts at a paged list when etcd compacts the revision being read meanwhile.
const LIST_ATTEMPTS: usize = 3;

/// Client TLS for `https://` endpoints (PEM text, as read from the files).
#[derive(Clone)]
pub struct EtcdTls {
    /// CA bundle that signed the etcd members' certificates.
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, when etcd asks for one.
    pub identity: Option<EtcdIdentity>,
}

#[derive(Clone)]
pub struct EtcdIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Cheap to clone: the clients are shared (a watch task holds a clone).
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    kv: KvClient,
    watch: WatchClient,
    prefix: String,
    endpoints: Vec<String>,
}

impl EtcdStore {
    /// Sets up a client for `endpoints` ("http://host:2379", or "https://..." with
    /// `tls`). Connections are made on demand: an unreachable etcd shows as
    /// `Unavailable` on the first request, not here.
    pub async fn connect(
        endpoints: Vec<String>,
        key_prefix: String,
        tls: Option<EtcdTls>,
    ) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Invalid("no etcd endpoint given".into()));
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // A member cut off from its quorum fails requests and cancels watches
            // instead of serving stale data.
            .with_require_leader(true);
        if let Some(tls) = tls {
            let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(tls.ca_pem));
            if let Some(id) = tls.identity {
                config = config.identity(Identity::from_pem(id.cert_pem, id.key_pem));
            }
            options = options.with_tls(config);
        }
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(etcd_error)?;
        let inner = Inner {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            prefix: key_prefix,
            endpoints,
        };
        Ok(EtcdStore {
            inner: Arc::new(inner),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    /// Our key for an etcd key; None for one outside the prefix (never asked for).
    fn strip(&self, key: &[u8]) -> Option<String> {
        let rest = key.strip_prefix(self.inner.prefix.as_bytes())?;
        // Keys we did not write may not be UTF-8; the records layer reports them.
        Some(String::from_utf8_lossy(rest).into_owned())
    }

    fn key_value(&self, kv: &etcd_client::KeyValue) -> Option<KeyValue> {
        Some(KeyValue {
            key: self.strip(kv.key())?,
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// One page-by-page read of `[start, end)` at one revision.
    async fn list_once(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let full = self.full_key(prefix);
        let end = prefix_end(full.as_bytes());
        let mut start = full.into_bytes();
        if start.is_empty() {
            start.push(0); // etcd wants a key; "\0" is the first one
        }
        let mut revision = 0;
        let mut kvs = Vec::new();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE)
                // 0 for the first page: the newest; then pinned to it.
                .with_revision(revision);
            let resp = timed(self.inner.kv.clone().get(start.clone(), Some(options))).await?;
            if revision == 0 {
                revision = header_revision(resp.header())?;
            }
            kvs.extend(resp.kvs().iter().filter_map(|kv| self.key_value(kv)));
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0); // the next key after `last`
                }
                _ => return Ok(Snapshot { revision, kvs }),
            }
        }
    }
}

impl Store for EtcdStore {
    async fn list(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let mut attempt = 1;
        loop {
            match self.list_once(prefix).await {
                Err(StoreError::Invalid(m))
                    if m.contains("compacted") && attempt < LIST_ATTEMPTS =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = timed(self.inner.kv.clone().get(self.full_key(key), None)).await?;
        Ok(resp.kvs().first().and_then(|kv| self.key_value(kv)))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        validate_txn(&compares, &ops)?;
        let when: Vec<etcd_client::Compare> = compares
            .iter()
            .map(|c| {
                // etcd compares an absent key as mod_revision 0.
                etcd_client::Compare::mod_revision(
                    self.full_key(&c.key),
                    CompareOp::Equal,
                    c.mod_revision,
                )
            })
            .collect();
        let then: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(self.full_key(&key), value, None),
                Op::Delete { key } => TxnOp::delete(self.full_key(&key), None),
            })
            .collect();
        // Read back what was compared, so a conflict costs no second round trip.
        let or_else: Vec<TxnOp> = compares
            .iter()
            .map(|c| TxnOp::get(self.full_key(&c.key), None))
            .collect();
        let txn = Txn::new().when(when).and_then(then).or_else(or_else);
        let resp = timed(self.inner.kv.clone().txn(txn)).await?;
        if resp.succeeded() {
            let revision = header_revision(resp.header())?;
            return Ok(TxnOutcome::Committed { revision });
        }
        let responses = resp.op_responses();
        if responses.len() != compares.len() {
            return Err(StoreError::Unavailable(format!(
                "etcd answered a failed txn with {} reads for {} compares",
                responses.len(),
                compares.len()
            )));
        }
        let current = compares
            .into_iter()
            .zip(responses)
            .map(|(c, r)| {
                let kv = match r {
                    TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| self.key_value(kv)),
                    _ => None,
                };
                (c.key, kv)
            })
            .collect();
        Ok(TxnOutcome::Conflict { current })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        watch::start(self.clone(), prefix, after).await
    }

    fn describe(&self) -> String {
        format!(
            "etcd {} (prefix {})",
            self.inner.endpoints.join(","),
            self.inner.prefix
        )
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// The first key after every key starting with `prefix` (etcd's range end for a
/// prefix; "\0" means "to the end" when nothing can follow).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Unavailable("etcd answered without a header".into()))
}

/// Runs one request with `REQUEST_TIMEOUT`, mapping its error.
async fn timed<T>(
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(etcd_error),
        Err(_) => Err(StoreError::Unavailable(format!(
            "etcd did not answer within {REQUEST_TIMEOUT:?}"
        ))),
    }
}

/// Refusals etcd would repeat are `Invalid`; everything else is worth a retry.
fn etcd_error(e: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(status) => match status.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::AlreadyExists
            | Code::NotFound
            | Code::Unimplemented => StoreError::Invalid(format!("etcd: {}", status.message())),
            _ => StoreError::Unavailable(format!("etcd: {}", status.message())),
        },
        E::InvalidArgs(_) | E::InvalidUri(_) | E::EndpointError(_) => {
            StoreError::Invalid(e.to_string())
        }
        e => StoreError::Unavailable(e.to_string()),
    }
}
