// Reload requests for a daemon's configuration (bgpd's file, ipamd's
// manifests, a file or a folder of `*.yaml`/`*.yml`): on SIGHUP, and when
// the content changes. The daemon then loads and applies; a bad file is
// refused and the running configuration stays (ARCHITECTURE.md principle 6).
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

/// Starts watching `path` (a file, or a folder whose YAML files count) and
/// returns the reload requests. The file's
/// content when this is called is the baseline: call `watch` before the
/// first `load`, so that a change between the two causes one (harmless)
/// reload instead of being missed. Requests coalesce while one is pending.
/// The watch stops when the receiver is dropped. Needs a tokio runtime.
pub fn watch(path: PathBuf) -> io::Result<mpsc::Receiver<ReloadTrigger>> {
    watch_every(path, POLL_INTERVAL)
}

/// `watch` with another polling period (tests use a short one).
pub fn watch_every(path: PathBuf, period: Duration) -> io::Result<mpsc::Receiver<ReloadTrigger>> {
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

/// The files that make up `path`: itself, or a folder's YAML files in name
/// order (so a file added, removed or renamed counts as a change).
pub fn yaml_files(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_owned()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|file| {
                    file.extension().is_some_and(|e| e == "yaml" || e == "yml") && file.is_file()
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What we last saw of the file(s).
#[derive(Debug, Default)]
struct Seen {
    /// (name, mtime, size, inode) of each file: cheap to get; when equal the
    /// files are not read.
    stamp: Option<Vec<(PathBuf, SystemTime, u64, u64)>>,
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
        let files = yaml_files(path);
        let mut stamp = Vec::with_capacity(files.len());
        for file in &files {
            // metadata() follows symlinks, so a ConfigMap swap changes the inode.
            let Ok(meta) = std::fs::metadata(file) else {
                return false;
            };
            let Ok(mtime) = meta.modified() else {
                return false;
            };
            stamp.push((file.clone(), mtime, meta.len(), meta.ino()));
        }
        if self.stamp.as_ref() == Some(&stamp) {
            return false;
        }
        let mut hasher = DefaultHasher::new();
        for file in &files {
            let Ok(content) = std::fs::read(file) else {
                return false;
            };
            file.hash(&mut hasher);
            content.hash(&mut hasher);
        }
        self.stamp = Some(stamp);
        let hash = hasher.finish();
        let changed = self.hash != Some(hash);
        self.hash = Some(hash);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_PERIOD: Duration = Duration::from_millis(20);
    /// Long enough for several polls; a reload we expect arrives far sooner.
    const DEADLINE: Duration = Duration::from_secs(5);
    /// How long we wait to be sure that nothing arrives: ten polls.
    const QUIET: Duration = Duration::from_millis(200);
    const CONFIG: &str = "kind: BGPConfiguration\n";

    async fn next(rx: &mut mpsc::Receiver<ReloadTrigger>) -> ReloadTrigger {
        tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("no reload in time")
            .expect("watch ended")
    }

    async fn quiet(rx: &mut mpsc::Receiver<ReloadTrigger>) {
        if let Ok(got) = tokio::time::timeout(QUIET, rx.recv()).await {
            panic!("unexpected reload: {got:?}");
        }
    }

    /// One test, run in sequence: the SIGHUP reaches every watch in the
    /// process, and would break the other cases' quiet periods.
    #[tokio::test]
    async fn watch_reloads() {
        fires_on_change_not_on_same_content().await;
        follows_configmap_symlink_swap().await;
        follows_a_folder_of_manifests().await;
        fires_on_sighup().await;
    }

    async fn fires_on_change_not_on_same_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bgpd.yaml");
        std::fs::write(&path, CONFIG).unwrap();
        let mut rx = watch_every(path.clone(), TEST_PERIOD).unwrap();
        quiet(&mut rx).await;

        std::fs::write(&path, format!("{CONFIG}holdTime: 30\n")).unwrap();
        assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);

        // Same bytes again (a new mtime): no reload.
        std::fs::write(&path, format!("{CONFIG}holdTime: 30\n")).unwrap();
        quiet(&mut rx).await;

        // An editor's rename-replace.
        let tmp = dir.path().join(".bgpd.yaml.swp");
        std::fs::write(&tmp, format!("{CONFIG}holdTime: 60\n")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
    }

    async fn follows_configmap_symlink_swap() {
        // Kubernetes mounts bgpd.yaml -> ..data/bgpd.yaml, ..data -> ..<timestamp>.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/bgpd.yaml"), CONFIG).unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/bgpd.yaml", d.join("bgpd.yaml")).unwrap();
        let mut rx = watch_every(d.join("bgpd.yaml"), TEST_PERIOD).unwrap();
        quiet(&mut rx).await;

        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/bgpd.yaml"), format!("{CONFIG}holdTime: 30\n")).unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
    }

    async fn follows_a_folder_of_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), CONFIG).unwrap();
        let mut rx = watch_every(d.to_owned(), TEST_PERIOD).unwrap();
        quiet(&mut rx).await;

        // Another daemon's notes: not ours to reload for.
        std::fs::write(d.join("notes.txt"), "hello").unwrap();
        quiet(&mut rx).await;
        // A manifest added, then one removed.
        std::fs::write(d.join("b.yml"), CONFIG).unwrap();
        assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
        std::fs::remove_file(d.join("a.yaml")).unwrap();
        assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
    }

    async fn fires_on_sighup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bgpd.yaml");
        std::fs::write(&path, CONFIG).unwrap();
        let mut rx = watch_every(path, TEST_PERIOD).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(next(&mut rx).await, ReloadTrigger::Signal);
    }
}
