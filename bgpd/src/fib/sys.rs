// Entering a network namespace for the FIB's netlink sockets. A netlink
// socket stays bound to the namespace it was created in, so the sockets are
// opened on a short-lived thread that switched namespace, then used from any
// thread. setns(2) has no safe wrapper in our dependencies, and tokio's
// AsyncFd::register wants a promise about the descriptor: the FIB's only
// unsafe code.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` in network namespace `netns` (a path such as /run/netns/NAME),
/// or right here for None. Sockets `f` opens stay in that namespace (the
/// tests reach a daemon's localhost metrics port in a lab node this way).
pub fn in_netns<T: Send>(
    netns: Option<&Path>,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    let Some(path) = netns else {
        return f();
    };
    let file = File::open(path)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                setns_net(&file)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    })
}

/// Moves the calling thread into the network namespace `file` refers to.
fn setns_net(file: &File) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor, which `file` keeps open for the
    // duration of the call; it changes the namespace of this thread alone,
    // a thread in_netns spawned for this and that ends right after.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Registers a netlink socket with tokio's reactor.
pub(crate) fn async_fd(
    socket: netlink_sys::Socket,
) -> io::Result<tokio::io::unix::AsyncFd<netlink_sys::Socket>> {
    // SAFETY: netlink_sys::Socket owns its descriptor: it is open from
    // Socket::new until the Socket is dropped (which the AsyncFd does), and
    // as_raw_fd always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}
