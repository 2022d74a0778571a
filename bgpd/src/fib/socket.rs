// An rtnetlink socket on tokio: requests answered by one ack, dumps, and
// batches (many messages in one sendmsg, NLM_F_ACK only on the last: the
// kernel reports every failure by its sequence number and acks the last
// message, and because it handles a sendmsg synchronously, all answers to a
// batch are queued when the send returns).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP_INTR};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

use super::message::{self, ErrorMsg, Header, Malformed, NLMSG_DONE, NLMSG_ERROR};
use super::sys;

/// Receive buffer asked of the kernel: the answers to a whole batch, or a
/// burst of notifications, must fit (net.core.rmem_max caps it; 4 MiB here).
pub(crate) const RCVBUF: usize = 4 << 20;
/// One recv: a dump datagram is at most 32 KiB; more for safety.
const RX_BUF: usize = 256 << 10;
/// The kernel answers synchronously; silence this long means it is gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed netlink exchange.
#[derive(Debug, thiserror::Error)]
pub enum NlError {
    /// The kernel refused the request.
    #[error("{}", kernel_text(*errno, text.as_deref()))]
    Kernel { errno: i32, text: Option<String> },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("no answer from the kernel within {0:?}")]
    Timeout(Duration),
}

impl NlError {
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl From<ErrorMsg> for NlError {
    fn from(e: ErrorMsg) -> Self {
        NlError::Kernel {
            errno: e.errno,
            text: e.text,
        }
    }
}

/// "No such process (os error 3): Nexthop id does not exist".
pub(crate) fn kernel_text(errno: i32, text: Option<&str>) -> String {
    let base = io::Error::from_raw_os_error(errno).to_string();
    match text {
        Some(t) if !t.is_empty() => format!("{base}: {t}"),
        _ => base,
    }
}

pub(crate) struct NlSocket {
    fd: Arc<AsyncFd<Socket>>,
    seq: u32,
    rx: Vec<u8>,
}

impl NlSocket {
    /// Opens a route socket in `netns` (or here), joined to `groups`.
    pub(crate) fn open(netns: Option<&Path>, groups: &[u32]) -> io::Result<NlSocket> {
        let socket = sys::in_netns(netns, || {
            let mut s = Socket::new(NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.set_non_blocking(true)?;
            // Errors with the kernel's text, without a copy of our request.
            s.set_ext_ack(true)?;
            s.set_cap_ack(true)?;
            // Dumps filtered by table and protocol in the kernel.
            s.set_netlink_get_strict_chk(true)?;
            s.set_rx_buf_sz(RCVBUF)?;
            for group in groups {
                s.add_membership(*group)?;
            }
            Ok(s)
        })?;
        Ok(NlSocket {
            fd: Arc::new(sys::async_fd(socket)?),
            seq: 0,
            rx: Vec::with_capacity(RX_BUF),
        })
    }

    /// The socket itself, to change its multicast groups from elsewhere.
    pub(crate) fn shared_fd(&self) -> Arc<AsyncFd<Socket>> {
        self.fd.clone()
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(crate) async fn send(&self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.fd.get_ref().send(buf, 0) {
                Ok(n) if n == buf.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::other(format!(
                        "netlink send took {n} of {} bytes",
                        buf.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.fd.writable().await?.clear_ready();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram into the socket's buffer; its length.
    pub(crate) async fn recv(&mut self) -> io::Result<usize> {
        let NlSocket { fd, rx, .. } = self;
        loop {
            let mut guard = fd.readable().await?;
            rx.clear();
            match guard.try_io(|fd| fd.get_ref().recv(rx, 0)) {
                Ok(Ok(n)) if n > rx.len() => {
                    return Err(io::Error::other(format!(
                        "netlink datagram of {n} bytes truncated"
                    )));
                }
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_timeout(&mut self) -> Result<usize, NlError> {
        tokio::time::timeout(REPLY_TIMEOUT, self.recv())
            .await
            .map_err(|_| NlError::Timeout(REPLY_TIMEOUT))?
            .map_err(NlError::Io)
    }

    /// The datagram the last recv got.
    pub(crate) fn received(&self) -> &[u8] {
        &self.rx
    }

    /// Sends one request built by `build(buf, seq)` and waits for its ack.
    pub(crate) async fn request(
        &mut self,
        build: impl FnOnce(&mut Vec<u8>, u32),
    ) -> Result<(), NlError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(128);
        build(&mut buf, seq);
        message::add_flag(&mut buf, 0, NLM_F_ACK);
        self.send(&buf).await?;
        loop {
            self.recv_timeout().await?;
            for msg in message::messages(&self.rx) {
                let (header, payload) = msg?;
                if header.ty == NLMSG_ERROR && header.seq == seq {
                    let e = message::parse_error(&header, payload)?;
                    return if e.errno == 0 { Ok(()) } else { Err(e.into()) };
                }
            }
        }
    }

    /// Sends the dump request built by `build(buf, seq)` and passes every
    /// answer to `on_msg`. Ok(true) when the kernel flagged the dump as
    /// interrupted by a change (NLM_F_DUMP_INTR): it may be incomplete.
    pub(crate) async fn dump(
        &mut self,
        build: impl FnOnce(&mut Vec<u8>, u32),
        mut on_msg: impl FnMut(&Header, &[u8]),
    ) -> Result<bool, NlError> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(128);
        build(&mut buf, seq);
        self.send(&buf).await?;
        let mut interrupted = false;
        loop {
            self.recv_timeout().await?;
            for msg in message::messages(&self.rx) {
                let (header, payload) = msg?;
                if header.seq != seq {
                    continue;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match header.ty {
                    NLMSG_DONE => {
                        let errno = payload
                            .get(..4)
                            .map_or(0, |e| -(message::u32_at(e, 0) as i32));
                        if errno > 0 {
                            return Err(NlError::Kernel { errno, text: None });
                        }
                        return Ok(interrupted);
                    }
                    NLMSG_ERROR => {
                        let e = message::parse_error(&header, payload)?;
                        return if e.errno == 0 {
                            Ok(interrupted)
                        } else {
                            Err(e.into())
                        };
                    }
                    _ => on_msg(&header, payload),
                }
            }
        }
    }

    /// Sends `buf`, whose last message starts at `last_at` and has sequence
    /// number `last_seq`, and reports every failure to `on_error` until the
    /// last message is answered.
    pub(crate) async fn batch(
        &mut self,
        buf: &mut [u8],
        last_at: usize,
        last_seq: u32,
        mut on_error: impl FnMut(ErrorMsg),
    ) -> Result<(), NlError> {
        message::add_flag(buf, last_at, NLM_F_ACK);
        self.send(buf).await?;
        loop {
            self.recv_timeout().await?;
            for msg in message::messages(&self.rx) {
                let (header, payload) = msg?;
                if header.ty != NLMSG_ERROR {
                    continue;
                }
                let e = message::parse_error(&header, payload)?;
                let last = e.seq == last_seq;
                if e.errno != 0 {
                    on_error(e);
                }
                if last {
                    return Ok(());
                }
            }
        }
    }
}
