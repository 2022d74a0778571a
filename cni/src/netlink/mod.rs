// A small synchronous rtnetlink client for the CNI plugin (rtnetlink(7),
// netlink(7)): one blocking NETLINK_ROUTE socket per network namespace, one
// request at a time, every change acknowledged (NLM_F_ACK), dumps read to
// NLMSG_DONE. Messages are built and parsed with netlink-packet-route; the
// submodules add links, addresses, routes, neighbours, netns and sysctls.

mod address;
mod link;
mod neighbour;
mod netns;
mod route;
mod sysctl;

use std::io;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use rustix::io::Errno;
use rustix::net::RecvFlags;

pub use link::{Link, VethSpec};
pub use neighbour::Neighbour;
pub use netns::Netns;
pub use route::{IpFamily, Route, RouteScope};
pub use sysctl::{read_sysctl, write_sysctl};

/// An Ethernet address.
pub type Mac = [u8; 6];

/// The rtnetlink protocol number (rtm_protocol) of the pod routes the plugin
/// installs. bgpd's FIB owns 210 (`podroute`) and sweeps routes of it that it
/// does not know; pod routes belong to the CNI plugin, so they carry their own
/// number, registered as `podroute-cni` in /etc/iproute2/rt_protos.d by
/// scripts/setup.sh (so `ip route` prints `proto podroute-cni`).
pub const RTPROT_PODROUTE_CNI: u8 = 211;

/// A failed netlink, namespace or sysctl operation.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused `op` (e.g. "create veth podr1234 (peer eth0)").
    /// When the kernel explained itself (extended ack), its text follows the
    /// operation in brackets.
    #[error("{op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink: cannot decode the kernel's answer to {op}: {reason}")]
    Decode { op: String, reason: String },
    #[error("cannot open network namespace {path}: {source}")]
    OpenNetns {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    EnterNetns {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot return to the node's network namespace: {0}")]
    LeaveNetns(#[source] io::Error),
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl NetlinkError {
    /// The errno the kernel answered with (Kernel errors only).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The object to create is already there (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(Errno::EXIST.raw_os_error())
    }

    /// The object named does not exist (ENODEV, ENOENT, ESRCH,
    /// EADDRNOTAVAIL: what the kernel says for a missing link, route,
    /// neighbour or address).
    pub fn is_not_found(&self) -> bool {
        self.errno().is_some_and(|errno| {
            [Errno::NODEV, Errno::NOENT, Errno::SRCH, Errno::ADDRNOTAVAIL]
                .iter()
                .any(|e| e.raw_os_error() == errno)
        })
    }
}

/// One NETLINK_ROUTE socket, bound to the netns it was opened in. All calls
/// act on that netns.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    rx: Vec<u8>,
}

impl Netlink {
    /// In the calling thread's netns.
    pub fn current() -> Result<Netlink, NetlinkError> {
        let socket = open_socket().map_err(NetlinkError::Socket)?;
        Ok(Netlink {
            socket,
            seq: 0,
            rx: vec![0; RX_BUF],
        })
    }

    /// In `ns`: enters it on this thread, opens the socket and returns to the
    /// original netns (opened first from /proc/thread-self/ns/net). If
    /// returning fails → LeaveNetns: the thread is left in `ns` and the
    /// caller must exit rather than carry on in the wrong namespace.
    pub fn in_netns(ns: &Netns) -> Result<Netlink, NetlinkError> {
        netns::run_in(ns, Netlink::current)
    }
}

/// No answer from the kernel this long means something is broken (it
/// answers synchronously): the plugin reports it instead of hanging.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Initial receive buffer: a dump datagram is at most 32 KiB
/// (netlink_dump's allocation cap); bigger datagrams grow it.
const RX_BUF: usize = 32 << 10;
/// How often a dump the kernel flagged as interrupted (NLM_F_DUMP_INTR: the
/// table changed under it) is restarted before giving up.
const DUMP_ATTEMPTS: usize = 5;
/// NLMSGERR_ATTR_MSG (linux/netlink.h): the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// sizeof(struct nlmsghdr).
const NLMSG_HDRLEN: usize = 16;

impl Netlink {
    /// Sends `msg` with NLM_F_ACK and `flags`, and returns the kernel's
    /// answers (e.g. the link of an RTM_GETLINK) once it acknowledged.
    pub(crate) fn request(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.exchange(op, msg, NLM_F_ACK | flags)
            .map(|(answers, _)| answers)
    }

    /// Dumps (NLM_F_DUMP) with request `msg`: every answer until NLMSG_DONE,
    /// restarted when the kernel says the dump was interrupted.
    pub(crate) fn dump(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let (answers, interrupted) = self.exchange(op, msg.clone(), NLM_F_DUMP)?;
            if !interrupted {
                return Ok(answers);
            }
        }
        Err(NetlinkError::Kernel {
            op: format!("{} (interrupted by changes {DUMP_ATTEMPTS} times)", op()),
            source: io::Error::from_raw_os_error(Errno::INTR.raw_os_error()),
        })
    }

    /// One request and its answers; also whether NLM_F_DUMP_INTR was set.
    fn exchange(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        let sent = self.socket.send(&buf, 0).map_err(NetlinkError::Socket)?;
        if sent != buf.len() {
            return Err(NetlinkError::Socket(io::Error::other(format!(
                "sent {sent} of {} bytes",
                buf.len()
            ))));
        }

        let mut answers = Vec::new();
        let mut interrupted = false;
        loop {
            let len = self.recv()?;
            let mut at = 0;
            while at < len {
                let datagram = &self.rx[at..len];
                let msg_len = NetlinkBuffer::new_checked(datagram)
                    .map(|b| b.length() as usize)
                    .map_err(|e| decode_error(op, &e))?;
                let (raw, rest_at) = (&datagram[..msg_len], at + align(msg_len));
                at = rest_at;
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
                    .map_err(|e| decode_error(op, &e))?;
                if parsed.header.sequence_number != seq {
                    // An answer to an earlier request that timed out.
                    continue;
                }
                interrupted |= parsed.header.flags & NLM_F_DUMP_INTR != 0;
                match parsed.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Done(done) => {
                        return if done.code < 0 {
                            Err(kernel_error(op(), -done.code, None))
                        } else {
                            Ok((answers, interrupted))
                        };
                    }
                    NetlinkPayload::Error(error) => {
                        let code = error.raw_code();
                        return if code == 0 {
                            Ok((answers, interrupted))
                        } else {
                            let text = ack_text(parsed.header.flags, &error.header);
                            Err(kernel_error(op(), -code, text))
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Receives one datagram into `rx`, growing it to fit; its length.
    fn recv(&mut self) -> Result<usize, NetlinkError> {
        loop {
            // Peek with MSG_TRUNC: the datagram's full size, even when
            // bigger than the buffer, and it stays queued.
            let peeked = rustix::net::recv(
                &self.socket,
                &mut self.rx[..],
                RecvFlags::PEEK | RecvFlags::TRUNC,
            );
            let size = match peeked {
                Ok((_, size)) => size,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    return Err(NetlinkError::Socket(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from the kernel within {REPLY_TIMEOUT:?}"),
                    )));
                }
                Err(e) => return Err(NetlinkError::Socket(e.into())),
            };
            if size > self.rx.len() {
                self.rx.resize(size, 0);
            }
            match rustix::net::recv(&self.socket, &mut self.rx[..], RecvFlags::empty()) {
                Ok((_, size)) => return Ok(size),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(NetlinkError::Socket(e.into())),
            }
        }
    }
}

/// Opens a route socket in the calling thread's netns.
fn open_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    // Errors carry the kernel's text and only the header of our request.
    socket.set_ext_ack(true)?;
    socket.set_cap_ack(true)?;
    // Dump requests are checked strictly and filtered in the kernel (by
    // interface for addresses and neighbours, by table for routes).
    socket.set_netlink_get_strict_chk(true)?;
    rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(REPLY_TIMEOUT),
    )?;
    Ok(socket)
}

/// NLMSG_ALIGN.
fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn kernel_error(op: String, errno: i32, text: Option<String>) -> NetlinkError {
    let op = match text {
        Some(text) => format!("{op} [{text}]"),
        None => op,
    };
    NetlinkError::Kernel {
        op,
        source: io::Error::from_raw_os_error(errno),
    }
}

fn decode_error(op: &dyn Fn() -> String, e: &dyn std::fmt::Display) -> NetlinkError {
    NetlinkError::Decode {
        op: op(),
        reason: e.to_string(),
    }
}

/// The extended ack's message (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR whose
/// header has `flags` and whose payload after the error code is `payload`:
/// our request's header (all of the request unless NLM_F_CAPPED), then the
/// attributes when NLM_F_ACK_TLVS is set.
fn ack_text(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = payload.get(..4)?;
        align(u32::from_ne_bytes(len.try_into().ok()?) as usize)
    };
    let tlvs = payload.get(request_len..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let value = nla.value();
            let text = value.split(|&b| b == 0).next().unwrap_or(value);
            String::from_utf8_lossy(text).into_owned()
        })
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let kernel = |errno: Errno| NetlinkError::Kernel {
            op: "x".into(),
            source: io::Error::from_raw_os_error(errno.raw_os_error()),
        };
        assert!(kernel(Errno::EXIST).is_exists());
        assert!(!kernel(Errno::EXIST).is_not_found());
        for errno in [Errno::NODEV, Errno::NOENT, Errno::SRCH, Errno::ADDRNOTAVAIL] {
            assert!(kernel(errno).is_not_found(), "{errno:?}");
            assert!(!kernel(errno).is_exists());
        }
        assert_eq!(kernel(Errno::PERM).errno(), Some(1));
        let socket = NetlinkError::Socket(io::Error::from_raw_os_error(17));
        assert_eq!(socket.errno(), None);
        assert!(!socket.is_exists());
    }

    #[test]
    fn kernel_error_text() {
        let e = kernel_error(
            "add route 10.0.0.0/8".into(),
            22,
            Some("Invalid prefix".into()),
        );
        assert_eq!(e.errno(), Some(22));
        let text = e.to_string();
        assert!(
            text.starts_with("add route 10.0.0.0/8 [Invalid prefix]: "),
            "{text}"
        );
    }

    /// An NLMSG_ERROR payload after the code: the capped request header and
    /// an NLMSGERR_ATTR_MSG attribute.
    #[test]
    fn extended_ack_text() {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        payload[..4].copy_from_slice(&40u32.to_ne_bytes());
        let text = b"Nexthop device is not up\0";
        let nla_len = 4 + text.len();
        payload.extend_from_slice(&(nla_len as u16).to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        payload.resize(align(payload.len()), 0);
        assert_eq!(
            ack_text(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).as_deref(),
            Some("Nexthop device is not up")
        );
        assert_eq!(ack_text(NLM_F_CAPPED, &payload), None);
        // Not capped: the whole 40-byte request comes first.
        let mut uncapped = payload[..NLMSG_HDRLEN].to_vec();
        uncapped.resize(40, 0);
        uncapped.extend_from_slice(&payload[NLMSG_HDRLEN..]);
        assert_eq!(
            ack_text(NLM_F_ACK_TLVS, &uncapped).as_deref(),
            Some("Nexthop device is not up")
        );
        // Truncated garbage yields nothing rather than a panic.
        assert_eq!(ack_text(NLM_F_ACK_TLVS, &[1, 2]), None);
        assert_eq!(ack_text(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[1, 2]), None);
    }
}
