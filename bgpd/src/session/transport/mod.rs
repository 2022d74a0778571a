// BGP's TCP transport (RFC 4271 §8.2.1): outgoing connections and the
// listener, with TCP MD5 signatures (RFC 2385), TTL handling for eBGP,
// multihop and GTSM (RFC 5082), and DSCP CS6 marking (RFC 4594 §3.1) as FRR
// and BIRD do. The session FSM gets plain tokio TcpStreams from here.

mod listener;
pub(crate) mod sockopt;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

pub use listener::Listener;

/// linux/tcp.h TCP_MD5SIG_MAXKEYLEN: the longest key the kernel takes.
pub const MD5_MAX_KEY_LEN: usize = 80;
/// DSCP CS6 (network control, RFC 4594 §3.1) in the TOS/TCLASS octet.
pub const TOS_CS6: u32 = 0xc0;
/// RFC 5082 §3: GTSM senders use the maximum TTL.
pub const GTSM_TTL: u8 = 255;
/// How long `connect` waits by default before giving up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a session's TTL (IPv6: hop limit) is sent and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlMode {
    /// Leave the kernel's default (net.ipv4.ip_default_ttl, usually 64):
    /// iBGP.
    OsDefault,
    /// Send with this TTL: 1 for directly connected eBGP, N for multihop.
    Hops(u8),
    /// GTSM: send with TTL 255 and drop what arrives with less than
    /// 256 - hops.
    Gtsm { hops: u8 },
}

impl TtlMode {
    /// The TTL to send with, if we set one.
    pub fn send_ttl(self) -> Option<u8> {
        match self {
            TtlMode::OsDefault => None,
            TtlMode::Hops(ttl) => Some(ttl),
            TtlMode::Gtsm { .. } => Some(GTSM_TTL),
        }
    }

    /// The lowest TTL accepted, for GTSM.
    pub fn min_ttl(self) -> Option<u8> {
        match self {
            TtlMode::Gtsm { hops } => Some(GTSM_TTL - hops.saturating_sub(1)),
            _ => None,
        }
    }
}

/// What `connect` needs to know about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Peer address and port.
    pub peer: SocketAddr,
    /// Local address to connect from (bound with port 0 before connecting).
    pub source: Option<IpAddr>,
    /// TCP MD5 key (RFC 2385).
    pub md5_password: Option<String>,
    pub ttl: TtlMode,
    pub timeout: Duration,
}

impl ConnectOptions {
    /// Options for `peer` with no source, no key, the OS default TTL and
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(peer: SocketAddr) -> ConnectOptions {
        ConnectOptions {
            peer,
            source: None,
            md5_password: None,
            ttl: TtlMode::OsDefault,
            timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Opens a BGP connection as `opts` say. Errors name the step that failed;
/// a connection not complete after `opts.timeout` is `TimedOut` (which is
/// also what a peer with a different MD5 key looks like: it drops our SYNs).
pub async fn connect(opts: &ConnectOptions) -> io::Result<TcpStream> {
    let peer = opts.peer;
    let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))
        .map_err(context("socket"))?;
    socket
        .set_nonblocking(true)
        .map_err(context("O_NONBLOCK"))?;
    configure(&socket, peer.ip(), opts.ttl)?;
    if let Some(password) = &opts.md5_password {
        sockopt::set_md5(socket.as_fd(), peer.ip(), password.as_bytes())
            .map_err(context(&format!("TCP MD5 key for {}", peer.ip())))?;
    }
    if let Some(source) = opts.source {
        let local = SocketAddr::new(source, 0);
        socket
            .bind(&local.into())
            .map_err(context(&format!("bind to {source}")))?;
    }
    let socket = TcpSocket::from_std_stream(socket.into());
    match tokio::time::timeout(opts.timeout, socket.connect(peer)).await {
        Ok(result) => result.map_err(context(&format!("connect to {peer}"))),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {peer}: no answer within {:?}", opts.timeout),
        )),
    }
}

/// Sets the TTL (and for GTSM the minimum TTL) of an accepted connection
/// once the session knows which peer it is. Until then it sends with the
/// OS default TTL. See [`Listener`] for why GTSM
/// on accepted sockets protects the session but not the handshake.
pub fn apply_ttl(stream: &TcpStream, mode: TtlMode) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    set_ttl(&SockRef::from(stream), peer.ip(), mode)
}

/// The TTL (IPv6: unicast hop limit) this stream sends with.
pub fn ttl(stream: &TcpStream) -> io::Result<u8> {
    let sock = SockRef::from(stream);
    let ttl = if stream.local_addr()?.is_ipv4() {
        sock.ttl_v4()?
    } else {
        sock.unicast_hops_v6()?
    };
    Ok(u8::try_from(ttl).unwrap_or(u8::MAX))
}

/// The minimum TTL (IPv6: hop count) this stream accepts; 0 when unset.
pub fn min_ttl(stream: &TcpStream) -> io::Result<u8> {
    if stream.local_addr()?.is_ipv4() {
        sockopt::min_ttl_v4(stream.as_fd())
    } else {
        sockopt::min_hops_v6(stream.as_fd())
    }
}

/// The TOS (IPv6: traffic class) octet this stream sends with.
pub fn tos(stream: &TcpStream) -> io::Result<u32> {
    let sock = SockRef::from(stream);
    if stream.local_addr()?.is_ipv4() {
        sock.tos_v4()
    } else {
        sock.tclass_v6()
    }
}

/// NODELAY (BGP messages are whole writes; Nagle only delays KEEPALIVEs),
/// CS6 marking, and the TTL: for every BGP socket, ours or accepted.
fn configure(sock: &Socket, peer: IpAddr, mode: TtlMode) -> io::Result<()> {
    sock.set_tcp_nodelay(true).map_err(context("TCP_NODELAY"))?;
    if peer.is_ipv4() {
        sock.set_tos_v4(TOS_CS6).map_err(context("IP_TOS"))?;
    } else {
        sock.set_tclass_v6(TOS_CS6)
            .map_err(context("IPV6_TCLASS"))?;
    }
    set_ttl(sock, peer, mode)
}

fn set_ttl(sock: &Socket, peer: IpAddr, mode: TtlMode) -> io::Result<()> {
    let v4 = peer.is_ipv4();
    match mode.send_ttl() {
        Some(ttl) if v4 => sock.set_ttl_v4(u32::from(ttl)).map_err(context("IP_TTL"))?,
        Some(ttl) => sock
            .set_unicast_hops_v6(u32::from(ttl))
            .map_err(context("IPV6_UNICAST_HOPS"))?,
        // An accepted socket inherits the listener's TTL 255; reset it.
        None => sockopt::reset_ttl(sock.as_fd(), v4).map_err(context("TTL reset"))?,
    }
    if let Some(min) = mode.min_ttl() {
        if v4 {
            sockopt::set_min_ttl_v4(sock.as_fd(), min).map_err(context("IP_MINTTL"))?;
        } else {
            sockopt::set_min_hops_v6(sock.as_fd(), min).map_err(context("IPV6_MINHOPCOUNT"))?;
        }
    }
    Ok(())
}

/// Prefixes an io::Error with what we were doing, keeping its kind.
fn context(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests;
