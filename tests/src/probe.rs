// `podlab probe`: a tiny server that accepts TCP connections and echoes UDP
// datagrams on a few ports (IPv4 and IPv6), and a client that probes many
// `tcp:IP:PORT` / `udp:IP:PORT` targets at once and says which answered.
// The NetworkPolicy truth-table tests run both inside pod namespaces to see
// which flows the dataplane lets through, the way the upstream e2e's agnhost
// `serve-hostname` / `connect` pair does.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::str::FromStr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Socket, Type};

/// Ports `podlab probe serve` listens on when given none: the upstream
/// NetworkPolicy e2e's pair.
pub const DEFAULT_PORTS: [u16; 2] = [80, 81];
/// The addresses a server binds: every IPv4 and every IPv6 address.
pub const WILDCARDS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];
/// A UDP probe sends its datagram again this often until an echo comes back
/// or the timeout ends, so one lost datagram is not read as "blocked".
pub const UDP_RESEND_INTERVAL: Duration = Duration::from_millis(100);
/// Pending connections a listener queues: a whole matrix of sources may
/// connect at once.
const LISTEN_BACKLOG: i32 = 1024;
/// Largest datagram echoed back.
const MAX_DATAGRAM: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// What to probe: a protocol and an address with a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub protocol: Protocol,
    pub addr: SocketAddr,
}

/// One probe's result, printed as one JSON line:
/// `{"target":"tcp:10.0.0.1:80","ok":true}`; a failed probe adds `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub target: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "target {target:?}: {reason} (expected tcp:IP:PORT or udp:IP:PORT, IPv6 as tcp:[fd00::1]:80)"
    )]
    Target { target: String, reason: String },
    #[error("cannot listen on {protocol}:{addr}: {source}")]
    Bind {
        protocol: Protocol,
        addr: SocketAddr,
        source: io::Error,
    },
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("unknown protocol {s:?} (tcp or udp)")),
        }
    }
}

impl fmt::Display for Target {
    /// `tcp:10.0.0.1:80`, `udp:[fd00::1]:81`: what `from_str` reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.protocol, self.addr)
    }
}

impl FromStr for Target {
    type Err = ProbeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| ProbeError::Target {
            target: s.to_owned(),
            reason,
        };
        let (protocol, addr) = s
            .split_once(':')
            .ok_or_else(|| bad("no protocol".to_owned()))?;
        let protocol = protocol.parse().map_err(bad)?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| bad(format!("{addr:?} is not IP:PORT")))?;
        if addr.port() == 0 {
            return Err(bad("port 0".to_owned()));
        }
        Ok(Target { protocol, addr })
    }
}

impl Outcome {
    pub fn new(target: &Target, result: io::Result<()>) -> Outcome {
        Outcome {
            target: target.to_string(),
            ok: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// Bound listening sockets, not yet answering.
#[derive(Debug)]
pub struct Server {
    tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
}

impl Server {
    /// Binds TCP and UDP on every address of `ips` and every port of
    /// `ports` (port 0: one the kernel picks, per socket). IPv6 sockets are
    /// IPv6-only so the IPv4 wildcard can sit beside them.
    pub fn bind(ips: &[IpAddr], ports: &[u16]) -> Result<Server, ProbeError> {
        let mut server = Server {
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        for &ip in ips {
            for &port in ports {
                let addr = SocketAddr::new(ip, port);
                server.tcp.push(
                    bind_socket(addr, Type::STREAM)
                        .and_then(|s| {
                            s.listen(LISTEN_BACKLOG)?;
                            Ok(s)
                        })
                        .map_err(|source| ProbeError::Bind {
                            protocol: Protocol::Tcp,
                            addr,
                            source,
                        })?
                        .into(),
                );
                server.udp.push(
                    bind_socket(addr, Type::DGRAM)
                        .map_err(|source| ProbeError::Bind {
                            protocol: Protocol::Udp,
                            addr,
                            source,
                        })?
                        .into(),
                );
            }
        }
        Ok(server)
    }

    /// Where the sockets listen, with the ports the kernel picked.
    pub fn listening(&self) -> io::Result<Vec<Target>> {
        let tcp = self.tcp.iter().map(|l| {
            Ok(Target {
                protocol: Protocol::Tcp,
                addr: l.local_addr()?,
            })
        });
        let udp = self.udp.iter().map(|s| {
            Ok(Target {
                protocol: Protocol::Udp,
                addr: s.local_addr()?,
            })
        });
        tcp.chain(udp).collect()
    }

    /// Answers on every socket, one thread each, for ever: a TCP connection
    /// is accepted and closed, a datagram is sent back to its sender.
    pub fn spawn(self) -> Vec<JoinHandle<()>> {
        let tcp = self.tcp.into_iter().map(|listener| {
            std::thread::spawn(move || {
                loop {
                    // Accepting is the answer; the connection closes on drop.
                    if let Err(e) = listener.accept() {
                        eprintln!("podlab probe: accept: {e}");
                    }
                }
            })
        });
        let udp = self.udp.into_iter().map(|socket| {
            std::thread::spawn(move || {
                let mut buf = [0u8; MAX_DATAGRAM];
                loop {
                    match socket.recv_from(&mut buf) {
                        Ok((n, peer)) => {
                            if let Err(e) = socket.send_to(&buf[..n], peer) {
                                eprintln!("podlab probe: echo to {peer}: {e}");
                            }
                        }
                        // ICMP errors from earlier sends surface here.
                        Err(e) => eprintln!("podlab probe: receive: {e}"),
                    }
                }
            })
        });
        tcp.chain(udp).collect()
    }
}

/// Probes every target at once, each for at most `timeout`; the outcomes
/// come back in the targets' order.
pub fn probe_all(targets: &[Target], timeout: Duration) -> Vec<Outcome> {
    std::thread::scope(|scope| {
        let probes: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, target)| scope.spawn(move || probe(target, timeout, i, 0)))
            .collect();
        probes
            .into_iter()
            .zip(targets)
            .map(|(probe, target)| match probe.join() {
                Ok(result) => Outcome::new(target, result),
                Err(_) => Outcome::new(target, Err(io::Error::other("probe thread panicked"))),
            })
            .collect()
    })
}

/// One probe: a TCP connection established, or a UDP echo received, within
/// `timeout`. `tag` makes this probe's datagrams its own. A UDP probe sends
/// from `source_port` when it is not 0: the same port twice is the same
/// conntrack flow, which is how tests see an established flow cut.
pub fn probe(target: &Target, timeout: Duration, tag: usize, source_port: u16) -> io::Result<()> {
    match target.protocol {
        Protocol::Tcp => TcpStream::connect_timeout(&target.addr, timeout).map(drop),
        Protocol::Udp => udp_echo(target.addr, timeout, tag, source_port),
    }
}

/// Sends a datagram every `UDP_RESEND_INTERVAL` until one comes back or
/// `timeout` passes. An ICMP unreachable fails the probe at once.
fn udp_echo(addr: SocketAddr, timeout: Duration, tag: usize, source_port: u16) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, source_port)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, source_port)),
    };
    let socket = UdpSocket::bind(local)?;
    // Connected: the kernel drops datagrams from anyone else and reports
    // ICMP errors to us.
    socket.connect(addr)?;
    let nonce = format!("podlab-probe {} {tag} ", std::process::id());
    let mut buf = [0u8; MAX_DATAGRAM];
    for seq in 0u64.. {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.send(format!("{nonce}{seq}").as_bytes())?;
        // A read timeout of zero is refused, so never ask for less than 1 ms.
        let wait = left.min(UDP_RESEND_INTERVAL).max(Duration::from_millis(1));
        socket.set_read_timeout(Some(wait))?;
        let resend_at = Instant::now() + wait;
        while Instant::now() < resend_at {
            match socket.recv(&mut buf) {
                // Any echo of ours counts, also of an earlier send.
                Ok(n) if buf[..n].starts_with(nonce.as_bytes()) => return Ok(()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no echo within {} ms", timeout.as_millis()),
    ))
}

fn bind_socket(addr: SocketAddr, kind: Type) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if kind == Type::STREAM {
        // A server restarted in the same namespace must not wait out
        // TIME_WAIT.
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for text in ["tcp:10.0.0.1:80", "udp:[fd00::1]:81", "tcp:[::1]:65535"] {
            let target: Target = text.parse().unwrap();
            assert_eq!(target.to_string(), text);
        }
        let target: Target = "udp:[fd00:0::1]:53".parse().unwrap();
        assert_eq!(target.protocol, Protocol::Udp);
        assert_eq!(target.addr, "[fd00::1]:53".parse().unwrap());
        // Printed in the canonical form.
        assert_eq!(target.to_string(), "udp:[fd00::1]:53");
    }

    #[test]
    fn bad_targets_say_why() {
        for (text, reason) in [
            ("10.0.0.1:80", "unknown protocol \"10.0.0.1\""),
            ("tcp", "no protocol"),
            ("sctp:10.0.0.1:80", "unknown protocol \"sctp\" (tcp or udp)"),
            ("TCP:10.0.0.1:80", "unknown protocol \"TCP\""),
            ("tcp:10.0.0.1", "\"10.0.0.1\" is not IP:PORT"),
            ("tcp:fd00::1:80", "\"fd00::1:80\" is not IP:PORT"),
            ("udp:10.0.0.1:70000", "is not IP:PORT"),
            ("tcp:host:80", "is not IP:PORT"),
            ("tcp:10.0.0.1:0", "port 0"),
            ("", "no protocol"),
        ] {
            let err = text.parse::<Target>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
            assert!(err.starts_with(&format!("target {text:?}: ")), "{err}");
        }
    }

    #[test]
    fn outcomes_are_json_lines() {
        let target: Target = "tcp:10.0.0.1:80".parse().unwrap();
        let ok = serde_json::to_string(&Outcome::new(&target, Ok(()))).unwrap();
        assert_eq!(ok, r#"{"target":"tcp:10.0.0.1:80","ok":true}"#);
        let failed = Outcome::new(&target, Err(io::Error::other("refused")));
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"target":"tcp:10.0.0.1:80","ok":false,"error":"refused"}"#
        );
    }

    /// A server on loopback (ports the kernel picks) answers every probe of
    /// both protocols and families; closed ports fail, and say why.
    #[test]
    fn loopback_server_answers_and_closed_ports_fail() {
        let loopbacks = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let server = Server::bind(&loopbacks, &[0]).unwrap();
        let open = server.listening().unwrap();
        assert_eq!(open.len(), 4);
        server.spawn();

        // Ports nobody listens on: bound and then closed again.
        let closed: Vec<Target> = open
            .iter()
            .map(|t| {
                let free = Server::bind(&[t.addr.ip()], &[0]).unwrap();
                let addr = free
                    .listening()
                    .unwrap()
                    .into_iter()
                    .find(|f| f.protocol == t.protocol)
                    .unwrap()
                    .addr;
                Target {
                    protocol: t.protocol,
                    addr,
                }
            })
            .collect();

        let targets: Vec<Target> = open.iter().chain(&closed).copied().collect();
        let outcomes = probe_all(&targets, Duration::from_secs(5));
        assert_eq!(outcomes.len(), 8);
        for (outcome, target) in outcomes.iter().zip(&targets) {
            assert_eq!(outcome.target, target.to_string());
            let should_answer = open.contains(target);
            assert_eq!(outcome.ok, should_answer, "{outcome:?}");
            assert_eq!(outcome.error.is_some(), !should_answer, "{outcome:?}");
        }
    }
}
