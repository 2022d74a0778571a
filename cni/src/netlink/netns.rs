// Network namespaces (network_namespaces(7), setns(2)): opening one by path
// (CNI_NETNS, /run/netns/NAME, /proc/PID/ns/net) and running a short piece
// of work in it on the calling thread, then returning. A netlink socket stays
// bound to the namespace it was created in, so only its opening moves.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use super::NetlinkError;

/// An open network namespace (e.g. CNI_NETNS, /run/netns/NAME,
/// /proc/PID/ns/net).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the namespace at `path`. A path that is not a namespace file
    /// (nsfs) is refused with OpenNetns and ErrorKind::InvalidInput.
    pub fn open(path: &Path) -> Result<Netns, NetlinkError> {
        let fail = |source| NetlinkError::OpenNetns {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(fail)?;
        let fs = rustix::fs::fstatfs(&file).map_err(|e| fail(e.into()))?;
        if !is_nsfs(fs.f_type) {
            return Err(fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a namespace file (nsfs)",
            )));
        }
        Ok(Netns {
            file,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// The calling thread's own network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";
/// NSFS_MAGIC (linux/magic.h): statfs's f_type of a namespace file.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// Runs `f` in `ns` on this thread and comes back. If coming back fails the
/// thread stays in `ns`: LeaveNetns, whatever `f` returned.
pub(crate) fn run_in<T>(
    ns: &Netns,
    f: impl FnOnce() -> Result<T, NetlinkError>,
) -> Result<T, NetlinkError> {
    let home = Netns::open(Path::new(THREAD_NETNS))?;
    move_into_link_name_space(ns.fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
        NetlinkError::EnterNetns {
            path: ns.path.clone(),
            source: e.into(),
        }
    })?;
    let mut back = GoBack(Some(home));
    let result = f();
    back.go()?;
    result
}

/// Returns the thread to the namespace it holds: explicitly with `go`, or
/// when dropped during a panic in the work (best effort: nothing to report
/// to then).
struct GoBack(Option<Netns>);

impl GoBack {
    fn go(&mut self) -> Result<(), NetlinkError> {
        match self.0.take() {
            Some(home) => move_into_link_name_space(home.fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| NetlinkError::LeaveNetns(e.into())),
            None => Ok(()),
        }
    }
}

impl Drop for GoBack {
    fn drop(&mut self) {
        let _ = self.go();
    }
}

/// statfs's f_type is a c_long, an i64 or a u32 depending on the target.
fn is_nsfs<T: TryInto<u64>>(f_type: T) -> bool {
    f_type.try_into().ok() == Some(NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsfs_magic() {
        assert!(is_nsfs(0x6e73_6673_i64));
        assert!(is_nsfs(0x6e73_6673_u32));
        assert!(!is_nsfs(0x9fa0_i64)); // procfs
        assert!(!is_nsfs(-1_i64));
    }

    /// Opening our own namespace works (read-only use of the test's netns).
    #[test]
    fn opens_own_namespace() {
        let ns = Netns::open(Path::new(THREAD_NETNS)).unwrap();
        assert_eq!(ns.path(), Path::new(THREAD_NETNS));
    }

    #[test]
    fn refuses_regular_file() {
        let err = Netns::open(Path::new("/proc/self/status")).unwrap_err();
        match err {
            NetlinkError::OpenNetns { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::InvalidInput)
            }
            other => panic!("{other:?}"),
        }
    }
}
