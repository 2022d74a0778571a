// The BGP listener (RFC 4271 §8.2.1: passive TCP open on port 179): one
// socket per listen address, IPv6 ones with IPV6_V6ONLY so `0.0.0.0` and
// `::` bind side by side and every peer is seen in its own family. MD5 keys
// live on the listening sockets (RFC 2385: the SYN must already be signed).

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use super::{GTSM_TTL, TtlMode, configure, context, sockopt};

/// Backlog for listen(2); sessions arrive a few at a time.
const LISTEN_BACKLOG: i32 = 128;

/// Accepts BGP connections on one or more local addresses.
///
/// GTSM: Linux checks IP_MINTTL per socket. [`Listener::set_min_ttl`] sets
/// it on the listening sockets, which then drop too-distant SYNs for every
/// peer, so it fits only when all peers use GTSM. Otherwise the session sets
/// it per peer with [`super::apply_ttl`] right after accept: the handshake
/// has then already completed, but every later segment (the OPEN included)
/// from too far away is dropped, so no session forms. FRR does the same.
#[derive(Debug)]
pub struct Listener {
    sockets: Vec<TcpListener>,
    /// Where the next accept starts looking, so one busy socket cannot
    /// starve the others.
    next: AtomicUsize,
}

impl Listener {
    /// Binds `port` on each of `addresses` (SO_REUSEADDR, so a restarted
    /// daemon rebinds while old connections sit in TIME_WAIT). Port 0 picks
    /// an ephemeral port per socket (tests). An unspecified IPv6 address is
    /// skipped when the kernel has no IPv6 at all.
    pub fn bind(addresses: &[IpAddr], port: u16) -> io::Result<Listener> {
        let mut sockets = Vec::with_capacity(addresses.len());
        for &address in addresses {
            let local = SocketAddr::new(address, port);
            match bind_one(local) {
                Ok(socket) => sockets.push(socket),
                Err(e)
                    if address.is_unspecified()
                        && address.is_ipv6()
                        && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
                {
                    tracing::warn!("not listening on {local}: IPv6 is disabled in this kernel");
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("listen on {local}: {e}"))),
            }
        }
        if sockets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        Ok(Listener {
            sockets,
            next: AtomicUsize::new(0),
        })
    }

    /// The bound addresses, in the order given to `bind`.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.sockets.iter().map(TcpListener::local_addr).collect()
    }

    /// Installs the TCP MD5 key for connections from `peer`, or with `None`
    /// removes it (removing a key that is not there is not an error). Only
    /// sockets of `peer`'s family are touched.
    pub fn set_md5(&self, peer: IpAddr, password: Option<&str>) -> io::Result<()> {
        let key = password.map(str::as_bytes).unwrap_or_default();
        for socket in self.sockets_for(peer)? {
            match sockopt::set_md5(socket.as_fd(), peer, key) {
                Ok(()) => {}
                // The kernel answers ENOENT to deleting an absent key.
                Err(e) if key.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(context(&format!("TCP MD5 key for {peer}"))(e)),
            }
        }
        Ok(())
    }

    /// Sets GTSM's minimum TTL on every listening socket: `Some(hops)`
    /// drops SYNs that came from more than `hops` hops away; `None` turns
    /// the check off. Applies to all peers alike (see the type's docs).
    pub fn set_min_ttl(&self, hops: Option<u8>) -> io::Result<()> {
        let min = hops.map_or(0, |hops| TtlMode::Gtsm { hops }.min_ttl().unwrap_or(0));
        for socket in &self.sockets {
            if socket.local_addr()?.is_ipv4() {
                sockopt::set_min_ttl_v4(socket.as_fd(), min).map_err(context("IP_MINTTL"))?;
            } else {
                sockopt::set_min_hops_v6(socket.as_fd(), min)
                    .map_err(context("IPV6_MINHOPCOUNT"))?;
            }
        }
        Ok(())
    }

    /// The next connection on any of the sockets: the stream (NODELAY and
    /// CS6 set, TTL left for [`super::apply_ttl`]), the peer's address and
    /// the local address it reached.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr, SocketAddr)> {
        let (stream, peer) = poll_fn(|cx| {
            let count = self.sockets.len();
            let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
            for i in 0..count {
                let socket = &self.sockets[(start + i) % count];
                if let Poll::Ready(result) = socket.poll_accept(cx) {
                    return Poll::Ready(result);
                }
            }
            Poll::Pending
        })
        .await?;
        let local = stream.local_addr()?;
        let sock = SockRef::from(&stream);
        configure(&sock, peer.ip(), TtlMode::OsDefault)?;
        Ok((stream, peer, local))
    }

    fn sockets_for(&self, peer: IpAddr) -> io::Result<Vec<&TcpListener>> {
        let mut matching = Vec::new();
        for socket in &self.sockets {
            if socket.local_addr()?.is_ipv4() == peer.is_ipv4() {
                matching.push(socket);
            }
        }
        Ok(matching)
    }
}

fn bind_one(local: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(local),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    // SYN-ACKs leave with the listening socket's TTL, before we know the
    // peer; a GTSM peer drops them unless they carry 255 (RFC 5082 §3).
    // accept() resets the connection to the OS default. FRR does likewise.
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_unicast_hops_v6(u32::from(GTSM_TTL))?;
    } else {
        socket.set_ttl_v4(u32::from(GTSM_TTL))?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}
