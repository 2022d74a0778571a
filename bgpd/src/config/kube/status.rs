// BGPPeer status: each node's bgpd writes, for every BGPPeer that gives it
// sessions, its own entries of `status.nodes` (a list-map keyed by node and
// peerIP: crd.rs) by server-side apply on the `/status` subresource, with a
// field manager of its own (`podroute-bgpd-<node>`), so nodes never
// overwrite each other and an entry this node no longer lists disappears.
// Mesh sessions have no object and get no status. A session's state, its
// time and its last error are written within a tick of changing (at most
// one write per BGPPeer per tick); prefix counts at most every REFRESH.
// Reconciled against the stored status (the watched BGPPeers), so a
// restarted daemon removes entries of sessions it no longer has. Errors
// are retried with backoff on this task alone: routing never waits on it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::SourceState;
use crate::config::crd::{BGPPeer, PeerSessionStatus};
use crate::config::{API_VERSION, KIND_BGP_PEER};
use crate::session::State;
use crate::speaker::Speaker;

/// Each node's field manager is this and the node's name.
pub const FIELD_MANAGER_PREFIX: &str = "podroute-bgpd-";
/// How often sessions are compared with what was written: a state change
/// is written within this, and a BGPPeer at most once per tick.
pub const TICK: Duration = Duration::from_secs(1);
/// Prefix counts alone are rewritten at most this often (they can change
/// with every UPDATE), and a stored status that differs from ours (edited
/// by someone else) is healed this often.
pub const REFRESH: Duration = Duration::from_secs(60);
/// One write's limit; a slow API server must not hold the other BGPPeers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delays after a failed write, doubling from the first to the last.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_LAST: Duration = Duration::from_secs(60);

/// One session as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub address: IpAddr,
    pub state: State,
    /// When it entered `state`.
    pub since: SystemTime,
    /// Why it last went down; empty if it never did.
    pub last_error: String,
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
}

/// Where the sessions' states come from: the speaker, or a test's list.
pub trait Sessions: Send + Sync + 'static {
    fn sessions(&self) -> Vec<Session>;
}

/// The running speaker's sessions.
pub struct SpeakerSessions {
    speaker: Speaker,
    /// A wall-clock time and the monotonic instant it was read at: each
    /// session's `state_since` (an Instant) becomes the same wall-clock
    /// time at every tick, so an unchanged session is never rewritten.
    anchor: (SystemTime, std::time::Instant),
}

impl SpeakerSessions {
    pub fn new(speaker: Speaker) -> SpeakerSessions {
        SpeakerSessions {
            speaker,
            anchor: (SystemTime::now(), std::time::Instant::now()),
        }
    }

    fn wall(&self, at: std::time::Instant) -> SystemTime {
        let (wall, instant) = self.anchor;
        match at.checked_duration_since(instant) {
            Some(after) => wall + after,
            None => wall
                .checked_sub(instant.duration_since(at))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

impl Sessions for SpeakerSessions {
    fn sessions(&self) -> Vec<Session> {
        self.speaker
            .peers()
            .into_iter()
            .map(|peer| Session {
                address: peer.address,
                state: peer.state,
                since: self.wall(peer.state_since),
                last_error: peer.last_error,
                prefixes_accepted: peer.prefixes_accepted,
                prefixes_advertised: peer.prefixes_advertised,
            })
            .collect()
    }
}

/// Writes this node's entries of every BGPPeer's status.
pub struct StatusWriter<S> {
    node: String,
    manager: String,
    api: Api<DynamicObject>,
    /// The watched BGPPeers, each with this node's stored entries only
    /// (see `convert::strip_peer`).
    peers: Store<DynamicObject>,
    source: watch::Receiver<SourceState>,
    sessions: S,
    /// What this writer last applied to each BGPPeer, and when.
    written: BTreeMap<String, Written>,
    /// BGPPeers whose last write failed: not before `retry`.
    failing: BTreeMap<String, Failing>,
    /// A failure was logged as a warning since the last success.
    warned: bool,
}

struct Written {
    entries: Vec<PeerSessionStatus>,
    at: Option<Instant>,
}

struct Failing {
    retry: Instant,
    delay: Duration,
}

impl<S: Sessions> StatusWriter<S> {
    /// For node `node`: its sessions from `sessions`, which BGPPeer each
    /// comes from from `source`, the stored status from `peers`.
    pub fn new(
        node: &str,
        client: Client,
        peers: Store<DynamicObject>,
        source: watch::Receiver<SourceState>,
        sessions: S,
    ) -> StatusWriter<S> {
        StatusWriter {
            node: node.to_owned(),
            manager: format!("{FIELD_MANAGER_PREFIX}{node}"),
            api: Api::all_with(client, &ApiResource::erase::<BGPPeer>(&())),
            peers,
            source,
            sessions,
            written: BTreeMap::new(),
            failing: BTreeMap::new(),
            warned: false,
        }
    }

    /// Writes every TICK until `closed` completes.
    pub async fn run(mut self, closed: impl Future<Output = ()>) {
        tokio::pin!(closed);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut closed => return,
                _ = tick.tick() => self.pass().await,
            }
        }
    }

    /// Compares every BGPPeer's entries with the sessions and writes those
    /// that are due.
    async fn pass(&mut self) {
        let Some(cluster) = self.source.borrow().config.clone() else {
            return;
        };
        let sessions: BTreeMap<IpAddr, Session> = self
            .sessions
            .sessions()
            .into_iter()
            .map(|session| (session.address, session))
            .collect();
        let mut wanted: BTreeMap<&str, Vec<PeerSessionStatus>> = BTreeMap::new();
        for (address, name) in &cluster.peer_objects {
            if let Some(session) = sessions.get(address) {
                wanted
                    .entry(name.as_str())
                    .or_default()
                    .push(entry(&self.node, session));
            }
        }
        for entries in wanted.values_mut() {
            entries.sort_by(|a, b| a.peer_ip.cmp(&b.peer_ip));
        }
        let now = Instant::now();
        let objects = self.peers.state();
        let mut due = Vec::new();
        for object in &objects {
            let name = object.name_any();
            let want = wanted.remove(name.as_str()).unwrap_or_default();
            let stored = stored_entries(object);
            let written = self.written.entry(name.clone()).or_insert_with(|| Written {
                // Nothing written yet by this process: what the API holds
                // (an earlier run's entries) is what to change.
                entries: stored.clone(),
                at: None,
            });
            let refreshable = written.at.is_none_or(|at| now >= at + REFRESH);
            let write = if !same_sessions(&want, &written.entries) {
                true
            } else if want != written.entries || want != stored {
                // Counts only, or an edit by someone else.
                refreshable
            } else {
                false
            };
            let waiting = self.failing.get(&name).is_some_and(|f| now < f.retry);
            if write && !waiting {
                due.push((name, want));
            }
        }
        // BGPPeers deleted: nothing to write to, nothing to remember.
        let present: std::collections::BTreeSet<String> =
            objects.iter().map(|object| object.name_any()).collect();
        self.written.retain(|name, _| present.contains(name));
        self.failing.retain(|name, _| present.contains(name));
        for (name, entries) in due {
            self.write(&name, entries).await;
        }
    }

    /// Applies `entries` as this node's whole part of `name`'s status.
    async fn write(&mut self, name: &str, entries: Vec<PeerSessionStatus>) {
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": KIND_BGP_PEER,
            "metadata": {"name": name},
            "status": {"nodes": entries},
        });
        let params = PatchParams::apply(&self.manager).force();
        let sent = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.api.patch_status(name, &params, &Patch::Apply(&body)),
        )
        .await;
        let failure = match sent {
            Ok(Ok(_)) => None,
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Some(format!(
                "BGPPeer {name:?} not found (deleted, or its CRD has no status subresource)"
            )),
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        let now = Instant::now();
        match failure {
            None => {
                debug!(bgppeer = name, sessions = entries.len(), "status written");
                if self.warned {
                    info!("BGPPeer status writes succeed again");
                    self.warned = false;
                }
                self.failing.remove(name);
                self.written.insert(
                    name.to_owned(),
                    Written {
                        entries,
                        at: Some(now),
                    },
                );
            }
            Some(error) => {
                let delay = self
                    .failing
                    .get(name)
                    .map_or(BACKOFF_FIRST, |f| (f.delay * 2).min(BACKOFF_LAST));
                if self.warned {
                    debug!(bgppeer = name, %error, retry_in = ?delay, "cannot write BGPPeer status");
                } else {
                    warn!(
                        bgppeer = name,
                        %error,
                        retry_in = ?delay,
                        "cannot write BGPPeer status; retrying with backoff (routing is not affected)"
                    );
                    self.warned = true;
                }
                self.failing.insert(
                    name.to_owned(),
                    Failing {
                        retry: now + delay,
                        delay,
                    },
                );
            }
        }
    }
}

impl<S: Sessions> Sessions for Arc<S> {
    fn sessions(&self) -> Vec<Session> {
        S::sessions(self)
    }
}

fn entry(node: &str, session: &Session) -> PeerSessionStatus {
    PeerSessionStatus {
        node: node.to_owned(),
        peer_ip: session.address.to_string(),
        state: session.state.to_string(),
        since: rfc3339(session.since),
        last_error: Some(session.last_error.clone()).filter(|e| !e.is_empty()),
        prefixes_accepted: Some(session.prefixes_accepted),
        prefixes_advertised: Some(session.prefixes_advertised),
    }
}

/// Whole seconds, UTC: `2026-01-01T00:00:00Z`.
fn rfc3339(at: SystemTime) -> Option<String> {
    let at = Timestamp::try_from(at).ok()?;
    Timestamp::from_second(at.as_second())
        .ok()
        .map(|t| t.to_string())
}

/// This node's entries as stored (the store keeps no others); entries that
/// do not read are left out, so they get rewritten.
fn stored_entries(object: &DynamicObject) -> Vec<PeerSessionStatus> {
    let Some(entries) = object
        .data
        .pointer("/status/nodes")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut entries: Vec<PeerSessionStatus> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value(entry.clone()).ok())
        .collect();
    entries.sort_by(|a, b| a.peer_ip.cmp(&b.peer_ip));
    entries
}

/// The same sessions in the same states (counts aside).
fn same_sessions(a: &[PeerSessionStatus], b: &[PeerSessionStatus]) -> bool {
    let key = |e: &PeerSessionStatus| {
        (
            e.peer_ip.clone(),
            e.state.clone(),
            e.since.clone(),
            e.last_error.clone(),
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}
