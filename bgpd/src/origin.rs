// IPAM origination: what this node announces comes from podroute-ipamd's
// WatchNodeBlocks(node) stream (proto/proto/ipam.proto). Each NodeBlocks
// message is the whole view: the node's blocks become `Origination.blocks`
// (announced and blackholed), the addresses it borrowed from other nodes'
// blocks become `hosts` (/32 or /128, announced only). A lost stream keeps
// the last view announced and the task reconnects with backoff; only a
// new view from ipamd withdraws anything.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use podroute_proto::ipam::v1::ipam_client::IpamClient;
use podroute_proto::ipam::v1::{NodeBlocks, WatchNodeBlocksRequest};
use podroute_proto::ipamd_client::{self, IpamdEndpoint, TlsFiles};
use tokio::sync::{oneshot, watch};

use crate::speaker::Origination;

/// How long podroute-bgpd waits at start for ipamd's first view before it
/// starts its sessions anyway, when it did not restart with routes in the
/// kernel (see [`first_view_wait`]): no reason to wait long for an ipamd
/// that is down.
pub const FIRST_VIEW_WAIT: Duration = Duration::from_secs(5);

/// How long the sessions wait for ipamd's first view. After a restart
/// with our routes still in the kernel, the peers keep our blocks (stale)
/// for our Restart Time and would sweep them at our End-of-RIB: so wait
/// for ipamd up to three quarters of the shortest Restart Time we
/// advertise rather than announce an empty set; otherwise
/// [`FIRST_VIEW_WAIT`].
pub fn first_view_wait(config: &crate::config::Config, restarting: bool) -> Duration {
    let shortest = config
        .peers
        .values()
        .filter_map(|p| p.graceful_restart)
        .map(|gr| Duration::from_secs(gr.restart_time.into()) * 3 / 4)
        .min();
    match shortest {
        // Counted from our start: the peers' clocks began at the crash, so
        // the 1/4 left is the margin for that.
        Some(wait) if restarting => wait,
        _ => FIRST_VIEW_WAIT,
    }
}
/// First wait between reconnection attempts; doubled after each failure.
pub const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Bound on one connection attempt (an https endpoint may not answer).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where ipamd is and which node's blocks to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub endpoint: IpamdEndpoint,
    /// Some exactly when `endpoint` is https.
    pub tls: Option<TlsFiles>,
    pub node: String,
}

/// A refused `--ipamd` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginConfigError {
    #[error("--ipamd {endpoint:?}: {reason}")]
    Endpoint {
        endpoint: String,
        reason: ipamd_client::EndpointError,
    },
    #[error("--ipamd needs --node (NODE_NAME): whose blocks to announce")]
    NoNode,
    #[error("--ipamd {0:?} is https: --ipamd-tls-ca is needed")]
    MissingCa(String),
    #[error("--ipamd-tls-cert and --ipamd-tls-key go together")]
    HalfIdentity,
    #[error("--ipamd-tls-* are only used with an https:// --ipamd")]
    TlsWithoutHttps,
}

/// Why a NodeBlocks entry was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub what: &'static str,
    pub text: String,
}

/// The running task's outputs.
pub struct OriginTask {
    /// The latest origination (empty until ipamd's first view).
    pub origination: watch::Receiver<Arc<Origination>>,
    /// Fires when the first view arrived.
    pub first_view: oneshot::Receiver<()>,
    /// Whether the WatchNodeBlocks stream is up now.
    pub connected: watch::Receiver<bool>,
}

impl OriginConfig {
    /// Checks `--ipamd` and its TLS files the way the CNI plugin checks its
    /// `ipamd` configuration.
    pub fn new(
        endpoint: &str,
        node: Option<&str>,
        ca: Option<std::path::PathBuf>,
        cert: Option<std::path::PathBuf>,
        key: Option<std::path::PathBuf>,
    ) -> Result<OriginConfig, OriginConfigError> {
        let parsed =
            IpamdEndpoint::parse(endpoint).map_err(|reason| OriginConfigError::Endpoint {
                endpoint: endpoint.to_owned(),
                reason,
            })?;
        let node = node
            .filter(|n| !n.is_empty())
            .ok_or(OriginConfigError::NoNode)?
            .to_owned();
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(ipamd_client::ClientIdentity { cert, key }),
            (None, None) => None,
            _ => return Err(OriginConfigError::HalfIdentity),
        };
        let tls = match (&parsed, ca) {
            (IpamdEndpoint::Unix(_), None) if identity.is_none() => None,
            (IpamdEndpoint::Unix(_), _) => return Err(OriginConfigError::TlsWithoutHttps),
            (IpamdEndpoint::Https { .. }, Some(ca)) => Some(TlsFiles { ca, identity }),
            (IpamdEndpoint::Https { .. }, None) => {
                return Err(OriginConfigError::MissingCa(endpoint.to_owned()));
            }
        };
        Ok(OriginConfig {
            endpoint: parsed,
            tls,
            node,
        })
    }
}

/// What one NodeBlocks message originates for `node`: its blocks (not
/// those with `disable_bgp_export`, nor any affine to another node) and
/// its borrowed addresses as host routes (not `disable_bgp_export`).
/// Entries that do not parse are skipped and returned.
pub fn origination(node: &str, view: &NodeBlocks) -> (Origination, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut blocks = BTreeSet::new();
    for block in &view.blocks {
        if block.disable_bgp_export || (!block.node.is_empty() && block.node != node) {
            continue;
        }
        match block.cidr.parse::<IpNetwork>() {
            Ok(net) if net.network() == net.ip() => {
                blocks.insert(net);
            }
            _ => skipped.push(Skipped {
                what: "block",
                text: block.cidr.clone(),
            }),
        }
    }
    let mut hosts = BTreeSet::new();
    for borrowed in &view.borrowed {
        if borrowed.disable_bgp_export {
            continue;
        }
        match borrowed.address.parse::<IpAddr>() {
            Ok(ip) => {
                hosts.insert(IpNetwork::from(ip));
            }
            Err(_) => skipped.push(Skipped {
                what: "borrowed address",
                text: borrowed.address.clone(),
            }),
        }
    }
    // A block wins over a host of the same prefix.
    hosts.retain(|h| !blocks.contains(h));
    (Origination { blocks, hosts }, skipped)
}

/// Starts following ipamd for `config.node`.
pub fn spawn(config: OriginConfig) -> OriginTask {
    let (tx, origination) = watch::channel(Arc::new(Origination::default()));
    let (first_tx, first_view) = oneshot::channel();
    let (connected_tx, connected) = watch::channel(false);
    tokio::spawn(run(config, tx, first_tx, connected_tx));
    OriginTask {
        origination,
        first_view,
        connected,
    }
}

/// The stream's state, logged once per change (not per retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Starting,
    Up,
    Down,
}

async fn run(
    config: OriginConfig,
    tx: watch::Sender<Arc<Origination>>,
    first: oneshot::Sender<()>,
    connected: watch::Sender<bool>,
) {
    let mut first = Some(first);
    let mut link = Link::Starting;
    let mut backoff = BACKOFF_START;
    loop {
        let failure = follow(
            &config,
            &tx,
            &mut first,
            &mut link,
            &mut backoff,
            &connected,
        )
        .await;
        connected.send_replace(false);
        if link != Link::Down {
            tracing::warn!(
                ipamd = %config.endpoint,
                node = %config.node,
                reason = %failure,
                "ipamd unreachable or its stream broke; keeping the last blocks announced, reconnecting"
            );
            link = Link::Down;
        } else {
            tracing::debug!(ipamd = %config.endpoint, reason = %failure, "ipamd still unreachable");
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection and its stream, until it fails; returns why.
async fn follow(
    config: &OriginConfig,
    tx: &watch::Sender<Arc<Origination>>,
    first: &mut Option<oneshot::Sender<()>>,
    link: &mut Link,
    backoff: &mut Duration,
    connected: &watch::Sender<bool>,
) -> String {
    let connecting = ipamd_client::connect(&config.endpoint, config.tls.as_ref());
    let channel = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => return e.to_string(),
        Err(_) => return format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()),
    };
    let request = WatchNodeBlocksRequest {
        node: config.node.clone(),
    };
    let mut stream = match IpamClient::new(channel).watch_node_blocks(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return format!("WatchNodeBlocks refused: {status}"),
    };
    loop {
        let view = match stream.message().await {
            Ok(Some(view)) => view,
            Ok(None) => return "the stream ended".to_owned(),
            Err(status) => return format!("the stream broke: {status}"),
        };
        if *link != Link::Up {
            // Before the event: whoever reads it finds the stream up.
            connected.send_replace(true);
            tracing::info!(
                ipamd = %config.endpoint,
                node = %config.node,
                revision = view.revision,
                "following ipamd's blocks for this node"
            );
            *link = Link::Up;
            *backoff = BACKOFF_START;
        }
        let (next, skipped) = origination(&config.node, &view);
        for s in &skipped {
            tracing::warn!(what = s.what, text = %s.text, "ipamd sent an entry that does not parse; skipped");
        }
        tx.send_if_modified(|current| {
            if **current == next {
                return false;
            }
            tracing::info!(
                blocks = next.blocks.len(),
                hosts = next.hosts.len(),
                revision = view.revision,
                "IPAM origination changed"
            );
            *current = Arc::new(next);
            true
        });
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use podroute_proto::ipam::v1::{Block, BorrowedAddress};

    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn a_restarted_node_waits_for_ipamd_within_its_restart_time() {
        let text = "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {name: d}\n\
                    spec: {asNumber: 65001, routerID: 10.0.0.1}\n---\napiVersion: podroute.io/v1\n\
                    kind: BGPPeer\nmetadata: {name: a}\nspec: {peerIP: 10.0.0.2, asNumber: 65001}\n\
                    ---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {name: b}\n\
                    spec: {peerIP: 10.0.0.3, asNumber: 65001, gracefulRestart: {restartTime: 40}}\n";
        let config =
            crate::config::parse(text, "t.yaml", |_| Err(std::io::ErrorKind::NotFound.into()))
                .unwrap();
        assert_eq!(first_view_wait(&config, false), FIRST_VIEW_WAIT);
        assert_eq!(first_view_wait(&config, true), Duration::from_secs(30));
        let no_gr = text
            .replace("{restartTime: 40}", "{enabled: false}")
            .replace(
                "spec: {peerIP: 10.0.0.2, asNumber: 65001}",
                "spec: {peerIP: 10.0.0.2, asNumber: 65001, gracefulRestart: {enabled: false}}",
            );
        let config = crate::config::parse(&no_gr, "t.yaml", |_| {
            Err(std::io::ErrorKind::NotFound.into())
        })
        .unwrap();
        assert_eq!(first_view_wait(&config, true), FIRST_VIEW_WAIT);
    }

    fn block(cidr: &str, node: &str, disable: bool) -> Block {
        Block {
            cidr: cidr.into(),
            node: node.into(),
            disable_bgp_export: disable,
            ..Block::default()
        }
    }

    fn borrowed(address: &str, disable: bool) -> BorrowedAddress {
        BorrowedAddress {
            address: address.into(),
            block: "10.9.0.0/26".into(),
            block_node: "n1".into(),
            disable_bgp_export: disable,
            ..BorrowedAddress::default()
        }
    }

    #[test]
    fn blocks_and_borrowed_addresses() {
        let view = NodeBlocks {
            node: "n2".into(),
            revision: 7,
            blocks: vec![
                block("10.244.1.0/26", "n2", false),
                block("fd00:10:244:1::/122", "n2", false),
                block("10.244.2.0/26", "n2", true),
                block("10.244.3.0/26", "n3", false),
                block("10.244.4.0/26", "", false),
            ],
            borrowed: vec![
                borrowed("10.9.0.5", false),
                borrowed("fd00:10:9::7", false),
                borrowed("10.9.0.6", true),
            ],
        };
        let (o, skipped) = origination("n2", &view);
        assert!(skipped.is_empty());
        assert_eq!(
            o.blocks,
            [
                net("10.244.1.0/26"),
                net("10.244.4.0/26"),
                net("fd00:10:244:1::/122")
            ]
            .into()
        );
        assert_eq!(
            o.hosts,
            [net("10.9.0.5/32"), net("fd00:10:9::7/128")].into()
        );
    }

    #[test]
    fn bad_entries_are_skipped_and_named() {
        let view = NodeBlocks {
            node: "n1".into(),
            blocks: vec![
                block("10.244.1.5/26", "n1", false),
                block("nonsense", "n1", false),
                block("10.244.1.64/26", "n1", false),
            ],
            borrowed: vec![borrowed("10.9.0.300", false)],
            ..NodeBlocks::default()
        };
        let (o, skipped) = origination("n1", &view);
        assert_eq!(o.blocks, [net("10.244.1.64/26")].into());
        assert!(o.hosts.is_empty());
        let texts: Vec<&str> = skipped.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["10.244.1.5/26", "nonsense", "10.9.0.300"]);
    }

    #[test]
    fn an_empty_view_withdraws_everything() {
        let (o, _) = origination("n1", &NodeBlocks::default());
        assert_eq!(o, Origination::default());
    }

    #[test]
    fn config_checks() {
        let unix = OriginConfig::new("/run/podroute/ipamd.sock", Some("n1"), None, None, None);
        assert_eq!(
            unix.unwrap().endpoint,
            IpamdEndpoint::Unix("/run/podroute/ipamd.sock".into())
        );
        assert_eq!(
            OriginConfig::new("/run/x.sock", None, None, None, None),
            Err(OriginConfigError::NoNode)
        );
        assert_eq!(
            OriginConfig::new("https://ipamd:7443", Some("n1"), None, None, None),
            Err(OriginConfigError::MissingCa("https://ipamd:7443".into()))
        );
        assert_eq!(
            OriginConfig::new("/run/x.sock", Some("n1"), Some("/ca".into()), None, None),
            Err(OriginConfigError::TlsWithoutHttps)
        );
        assert_eq!(
            OriginConfig::new(
                "https://ipamd:7443",
                Some("n1"),
                Some("/ca".into()),
                Some("/c".into()),
                None
            ),
            Err(OriginConfigError::HalfIdentity)
        );
        let https = OriginConfig::new(
            "https://ipamd:7443",
            Some("n1"),
            Some("/ca".into()),
            Some("/c".into()),
            Some("/k".into()),
        )
        .unwrap();
        assert!(https.tls.unwrap().identity.is_some());
        assert!(matches!(
            OriginConfig::new("http://ipamd:80", Some("n1"), None, None, None),
            Err(OriginConfigError::Endpoint { .. })
        ));
    }
}
