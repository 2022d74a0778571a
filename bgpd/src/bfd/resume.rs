// What of a BFD session survives a restart of podroute-bgpd. BFD runs in
// the same process as BGP, so a crash would otherwise look to every peer
// like a path failure one detection time later, and a peer's BFD would end
// the BGP session it was keeping up for our graceful restart. FRR's bfdd
// survives bgpd's restarts by being another process; we keep each Up
// session's discriminators and the peer's timers in a small file instead,
// rewritten at every change, and a restarted daemon resumes those sessions
// in Up before its peers' detection time runs out. A session resumed after
// the peer gave up meets the peer's Down and goes Down like any other
// (RFC 5880 §6.8.6), before BGP is up again: nothing is lost either way.
//
// The file: one line per session, whitespace-separated:
// `peer local local-discriminator remote-discriminator remote-min-rx-us
// remote-min-tx-us remote-multiplier`. Lines that do not read are skipped.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// An Up session as it was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub peer: IpAddr,
    pub local: IpAddr,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    pub remote_min_rx: Duration,
    pub remote_min_tx: Duration,
    pub remote_multiplier: u8,
}

impl Saved {
    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}\n",
            self.peer,
            self.local,
            self.local_discriminator,
            self.remote_discriminator,
            self.remote_min_rx.as_micros(),
            self.remote_min_tx.as_micros(),
            self.remote_multiplier
        )
    }

    fn parse(line: &str) -> Option<Saved> {
        let mut words = line.split_whitespace();
        let mut next = || words.next();
        let saved = Saved {
            peer: next()?.parse().ok()?,
            local: next()?.parse().ok()?,
            local_discriminator: next()?.parse().ok().filter(|d| *d != 0)?,
            remote_discriminator: next()?.parse().ok().filter(|d| *d != 0)?,
            remote_min_rx: Duration::from_micros(next()?.parse().ok()?),
            remote_min_tx: Duration::from_micros(next()?.parse().ok()?),
            remote_multiplier: next()?.parse().ok().filter(|m| *m != 0)?,
        };
        next().is_none().then_some(saved)
    }
}

/// The sessions in `path`; none when it is missing or unreadable.
pub fn load(path: &Path) -> Vec<Saved> {
    match fs::read_to_string(path) {
        Ok(text) => text.lines().filter_map(Saved::parse).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the BFD state; no session resumed");
            Vec::new()
        }
    }
}

/// Replaces `path` with `sessions`, atomically (a crash mid-write leaves
/// the old file).
pub fn store(path: &Path, sessions: &[Saved]) -> io::Result<()> {
    let text: String = sessions.iter().map(Saved::line).collect();
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn saved(peer: &str) -> Saved {
        Saved {
            peer: peer.parse().unwrap(),
            local: "10.0.0.1".parse().unwrap(),
            local_discriminator: 7,
            remote_discriminator: 9,
            remote_min_rx: Duration::from_millis(300),
            remote_min_tx: Duration::from_millis(250),
            remote_multiplier: 3,
        }
    }

    #[test]
    fn what_is_stored_loads_back_and_bad_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bfd.state");
        assert!(load(&path).is_empty());
        let sessions = [saved("10.0.0.2"), saved("fd00::2")];
        store(&path, &sessions).unwrap();
        assert_eq!(load(&path), sessions);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(
            "garbage\n10.0.0.3 10.0.0.1 0 9 300000 300000 3\n10.0.0.4 10.0.0.1 1 2 3 4 5 extra\n",
        );
        fs::write(&path, text).unwrap();
        assert_eq!(load(&path), sessions);
        store(&path, &[]).unwrap();
        assert!(load(&path).is_empty());
    }
}
