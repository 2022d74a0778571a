// An etcd prefix watch turned into our WatchStream: a task forwards each response's
// events (keys stripped of the prefix); a canceled watch (compaction, lost leader)
// or a broken stream becomes `Resync` and the end of the stream, since the caller
// must relist anyway. Dropping the receiver ends the task and the etcd watch.

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;

use super::{EtcdStore, etcd_error};
use crate::store::{Revision, StoreError, WatchEvent, WatchMessage, WatchStream};

/// Responses we may hold for a slow reader; past it, etcd's own flow control
/// (and at worst its compaction → Resync) takes over.
const WATCH_QUEUE: usize = 256;

pub(super) async fn start(
    store: EtcdStore,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let options = WatchOptions::new()
        .with_prefix()
        // etcd's start is inclusive, and 0 would mean "from now".
        .with_start_revision(after.max(0).saturating_add(1));
    let full = store.full_key(prefix);
    let stream = super::timed(store.inner.watch.clone().watch(full, Some(options))).await?;
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    tokio::spawn(forward(store, stream, tx));
    Ok(rx)
}

async fn forward(
    store: EtcdStore,
    mut stream: etcd_client::WatchStream,
    tx: mpsc::Sender<WatchMessage>,
) {
    loop {
        let message = tokio::select! {
            m = stream.message() => m,
            () = tx.closed() => return,
        };
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %etcd_error(e), "etcd watch broke");
                break;
            }
        };
        if resp.canceled() || resp.compact_revision() > 0 {
            tracing::debug!(
                reason = resp.cancel_reason(),
                compact_revision = resp.compact_revision(),
                "etcd canceled the watch"
            );
            break;
        }
        let Some(events) = events(&store, &resp) else {
            break;
        };
        // Creation and progress notices carry no event.
        let Some(revision) = events.last().map(WatchEvent::revision) else {
            continue;
        };
        if tx
            .send(WatchMessage::Events { revision, events })
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = tx.send(WatchMessage::Resync).await;
}

/// The response's events; None when one is malformed (treated as a broken stream).
fn events(store: &EtcdStore, resp: &etcd_client::WatchResponse) -> Option<Vec<WatchEvent>> {
    let mut out = Vec::with_capacity(resp.events().len());
    for event in resp.events() {
        let kv = event.kv()?;
        let event = match event.event_type() {
            EventType::Put => WatchEvent::Put(store.key_value(kv)?),
            EventType::Delete => WatchEvent::Delete {
                key: store.strip(kv.key())?,
                mod_revision: kv.mod_revision(),
            },
        };
        out.push(event);
    }
    Some(out)
}
