// The socket options no safe crate exposes: TCP MD5 signatures (RFC 2385,
// Linux TCP_MD5SIG) and the GTSM receive check (RFC 5082, IP_MINTTL and
// IPV6_MINHOPCOUNT). socket2 covers TTL, TOS/TCLASS, V6ONLY, REUSEADDR and
// NODELAY; libc has the constants but not `struct tcp_md5sig`.
//
// Unsafe code lives only here and in fib/sys.rs (the workspace denies it
// elsewhere): each block here is one setsockopt/getsockopt call on a
// borrowed, open socket.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockAddrStorage};

use super::MD5_MAX_KEY_LEN;

/// `struct tcp_md5sig` from linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    /// The peer, as a sockaddr of the socket's own family.
    addr: SockAddrStorage,
    /// TCP_MD5SIG_FLAG_* (only used with TCP_MD5SIG_EXT; zero here).
    flags: u8,
    /// Prefix length (TCP_MD5SIG_EXT only).
    prefixlen: u8,
    /// Key length; 0 deletes the key for `addr`.
    keylen: u16,
    /// Interface index (TCP_MD5SIG_EXT only).
    ifindex: u32,
    key: [u8; MD5_MAX_KEY_LEN],
}

// sockaddr_storage (128) + 1 + 1 + 2 + 4 + 80: the kernel's layout.
const _: () = assert!(size_of::<TcpMd5Sig>() == 216);

/// Installs (or with an empty `key`, removes) the TCP MD5 key for `peer` on
/// `fd`. `peer` must be of the socket's family: for an AF_INET6 socket
/// pass an IPv6 (possibly v4-mapped) address.
pub(crate) fn set_md5(fd: BorrowedFd<'_>, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key of {} bytes, at most {MD5_MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    let mut sig = TcpMd5Sig {
        addr: SockAddr::from(SocketAddr::new(peer, 0)).as_storage(),
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16, // at most 80, checked above
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    set(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// IP_MINTTL: IPv4 segments arriving with a lower TTL are dropped.
pub(crate) fn set_min_ttl_v4(fd: BorrowedFd<'_>, ttl: u8) -> io::Result<()> {
    set(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MINTTL,
        &libc::c_int::from(ttl),
    )
}

/// IPV6_MINHOPCOUNT: the IPv6 counterpart of IP_MINTTL.
pub(crate) fn set_min_hops_v6(fd: BorrowedFd<'_>, hops: u8) -> io::Result<()> {
    set(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_MINHOPCOUNT,
        &libc::c_int::from(hops),
    )
}

/// IP_TTL / IPV6_UNICAST_HOPS back to the kernel default: the value -1,
/// which socket2's unsigned setters cannot pass.
pub(crate) fn reset_ttl(fd: BorrowedFd<'_>, v4: bool) -> io::Result<()> {
    let (level, name) = if v4 {
        (libc::IPPROTO_IP, libc::IP_TTL)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
    };
    set(fd, level, name, &USE_DEFAULT)
}

/// ip(7), ipv6(7): -1 selects the default TTL / hop limit.
const USE_DEFAULT: libc::c_int = -1;

pub(crate) fn min_ttl_v4(fd: BorrowedFd<'_>) -> io::Result<u8> {
    get_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL).map(clamp_u8)
}

pub(crate) fn min_hops_v6(fd: BorrowedFd<'_>) -> io::Result<u8> {
    get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT).map(clamp_u8)
}

fn clamp_u8(v: libc::c_int) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn set<T>(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket for the borrow's lifetime; `value`
    // points to `len` initialised bytes that the kernel only reads, and
    // every T passed here is a plain C-layout type the option expects.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket; `value` and `len` are valid, writable
    // and sized for an int, which is what these options return.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// IP_RECVTTL: each received IPv4 datagram carries its TTL (for the BFD
/// single-hop check of RFC 5881 §5).
pub(crate) fn set_recv_ttl_v4(fd: BorrowedFd<'_>) -> io::Result<()> {
    set(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, &(1 as libc::c_int))
}

/// One datagram from a UDP socket with IP_RECVTTL or IPV6_RECVHOPLIMIT on:
/// its length (at most `buf.len()`), its source, and the TTL or hop limit
/// it arrived with (`None` if the kernel attached none).
pub(crate) fn recv_with_ttl(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    // SAFETY (all blocks below): plain-old-data structs zeroed; `msg`
    // points at `source`, `iov` and `control`, which outlive the call and
    // have the sizes given; the cmsg walk uses the libc macros within
    // `msg_controllen`, reading each int with read_unaligned.
    let mut source: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut source as *mut libc::sockaddr_storage).cast::<libc::c_void>();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast::<libc::c_void>();
    msg.msg_controllen = size_of_val(&control) as _;
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    let Ok(len) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    let mut ttl = None;
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            if (level == libc::IPPROTO_IP && kind == libc::IP_TTL)
                || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_HOPLIMIT)
            {
                let value = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                ttl = u8::try_from(value).ok();
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let source = match libc::c_int::from(source.ss_family) {
        libc::AF_INET => {
            let sin = unsafe {
                std::ptr::read_unaligned(
                    (&source as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>(),
                )
            };
            SocketAddr::new(
                IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()),
                u16::from_be(sin.sin_port),
            )
        }
        libc::AF_INET6 => {
            let sin6 = unsafe {
                std::ptr::read_unaligned(
                    (&source as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>(),
                )
            };
            SocketAddr::new(
                IpAddr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
            )
        }
        family => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("datagram from address family {family}"),
            ));
        }
    };
    Ok((len, source, ttl))
}
