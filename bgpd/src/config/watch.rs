// Reload requests for a configuration file: on SIGHUP, and when the file's
// content changes. The daemon then load()s, diff()s and applies; a bad file
// is refused and the running configuration stays (ARCHITECTURE.md
// principle 6).
//
// Why polling and not inotify: editors replace files by rename, Kubernetes
// swaps a ConfigMap's `..data` symlink, and both defeat a watch on the
// original inode unless one also watches directories and re-arms. A stat()
// per second that follows symlinks sees every one of those, costs nothing,
// and needs no new dependency. The content hash keeps a `touch` or a
// rewrite with the same bytes from causing a reload.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval};

/// How often the file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a reload was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTrigger {
    /// SIGHUP. Always honoured, even if the file is unchanged: it is how an
    /// operator makes us reread a `passwordFile`, which is not watched.
    Signal,
    /// The file's content differs from the last content seen.
    FileChanged,
}

/// Starts watching `path` and returns the reload requests. The file's
/// content when this is called is the baseline: call `watch` before the
/// first `load`, so that a change between the two causes one (harmless)
/// reload instead of being missed. Requests coalesce while one is pending.
/// The watch stops when the receiver is dropped. Needs a tokio runtime.
pub fn watch(path: PathBuf) -> io::Result<mpsc::Receiver<ReloadTrigger>> {
    watch_every(path, POLL_INTERVAL)
}

pub(crate) fn watch_every(
    path: PathBuf,
    period: Duration,
) -> io::Result<mpsc::Receiver<ReloadTrigger>> {
    let mut hangup = signal(SignalKind::hangup())?;
    // One slot: a reload not yet taken covers any that arrive meanwhile.
    let (tx, rx) = mpsc::channel(1);
    let mut seen = Seen::default();
    // The baseline; a file missing now counts as changed when it appears.
    seen.changed(&path);
    tokio::spawn(async move {
        let mut tick = interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                _ = tx.closed() => return,
                Some(()) = hangup.recv() => Some(ReloadTrigger::Signal),
                _ = tick.tick() => seen.changed(&path).then_some(ReloadTrigger::FileChanged),
            };
            if let Some(trigger) = trigger
                && let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(trigger)
            {
                return;
            }
        }
    });
    Ok(rx)
}

/// What we last saw of the file.
#[derive(Debug, Default)]
struct Seen {
    /// (mtime, size, inode): cheap to get; when equal the file is not read.
    stamp: Option<(SystemTime, u64, u64)>,
    /// Hash of the last content read.
    hash: Option<u64>,
}

impl Seen {
    /// True when the content differs from the last content seen (the first
    /// call only records it; its answer is ignored). Small files, read
    /// synchronously: cheaper than a blocking-pool round trip. A missing
    /// or unreadable file (mid-replace) is not a change: we look again on
    /// the next tick.
    fn changed(&mut self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        // metadata() follows symlinks, so a ConfigMap swap changes the inode.
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let Ok(mtime) = meta.modified() else {
            return false;
        };
        let stamp = (mtime, meta.len(), meta.ino());
        if self.stamp == Some(stamp) {
            return false;
        }
        let Ok(content) = std::fs::read(path) else {
            return false;
        };
        self.stamp = Some(stamp);
        let mut hasher = DefaultHasher::new();
        content.hash(&mut hasher);
        let hash = hasher.finish();
        let changed = self.hash != Some(hash);
        self.hash = Some(hash);
        changed
    }
}
