// podroute-bgpd against raw TCP peers on the loopback that speak BGP byte by
// byte: a bad marker, a bad length, bad attribute flags (one whose RFC 7606
// action is session reset, one treat-as-withdraw) and a truncated NLRI each
// get the NOTIFICATION RFC 4271 §6 / RFC 7606 prescribe, while a well-behaved
// peer's session stays Established throughout. Runs on 127.0.0.0/8 only.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use podroute_proto::bgpd::v1::SessionState;

mod loopback;

use loopback::{Bgpd, DEADLINE, free_port, wait_until};
const OUR_AS: u32 = 65001;
const PEER_AS: u16 = 65010;

/// bgpd listening on 127.0.0.1:`port` with passive peers at `peers`.
fn config(port: u16, peers: &[Ipv4Addr]) -> String {
    let mut config = format!(
        "apiVersion: podroute.io/v1\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n  asNumber: {OUR_AS}\n  routerID: 127.0.0.1\n  listenPort: {port}\n  listenAddresses: [127.0.0.1]\n  originate: [10.244.1.0/26]\n"
    );
    for (i, peer) in peers.iter().enumerate() {
        config.push_str(&format!(
            "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: raw{i}}}\nspec:\n  peerIP: {peer}\n  asNumber: {PEER_AS}\n  passive: true\n  ebgpMultihop: 255\n"
        ));
    }
    config
}

/// A BGP message: marker, length, type, body (RFC 4271 §4.1).
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

fn open(id: Ipv4Addr) -> Vec<u8> {
    let mut body = vec![4];
    body.extend_from_slice(&PEER_AS.to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&id.octets());
    // One capabilities parameter: multiprotocol IPv4 unicast, 4-octet AS.
    let caps = [
        1,
        4,
        0,
        1,
        0,
        1,
        65,
        4,
        0,
        0,
        (PEER_AS >> 8) as u8,
        PEER_AS as u8,
    ];
    body.push(2 + caps.len() as u8);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    message(1, &body)
}

const KEEPALIVE: u8 = 4;

/// An UPDATE with the given path attributes and IPv4 NLRI bytes.
fn update(attributes: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    body.extend_from_slice(attributes);
    body.extend_from_slice(nlri);
    message(2, &body)
}

/// ORIGIN IGP, AS_PATH [65010] (4-octet), NEXT_HOP `hop`, with ORIGIN's
/// flags given.
fn attributes(origin_flags: u8, hop: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![origin_flags, 1, 1, 0];
    a.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 0, (PEER_AS >> 8) as u8, PEER_AS as u8]);
    a.extend_from_slice(&[0x40, 3, 4]);
    a.extend_from_slice(&hop.octets());
    a
}

/// A raw peer: Established with bgpd after `establish`.
struct RawPeer {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawPeer {
    fn connect(from: Ipv4Addr, port: u16) -> RawPeer {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
        socket
            .connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
            .unwrap();
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        RawPeer {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The next whole message as (type, body); None on EOF.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.buffer.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buffer[16], self.buffer[17]]));
                if self.buffer.len() >= len {
                    let msg: Vec<u8> = self.buffer.drain(..len).collect();
                    return Some((msg[18], msg[19..].to_vec()));
                }
            }
            assert!(Instant::now() < deadline, "no message from bgpd");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// OPEN, KEEPALIVE both ways, then bgpd's first UPDATE proves it is
    /// Established.
    fn establish(from: Ipv4Addr, port: u16) -> RawPeer {
        let mut peer = RawPeer::connect(from, port);
        peer.send(&open(from));
        let mut kinds = Vec::new();
        while !kinds.contains(&KEEPALIVE) {
            kinds.push(peer.next().expect("bgpd closed during OPEN").0);
        }
        assert_eq!(kinds[0], 1, "bgpd answers with an OPEN first: {kinds:?}");
        peer.send(&message(KEEPALIVE, &[]));
        loop {
            let (kind, _) = peer.next().expect("bgpd closed after OPEN");
            if kind == 2 {
                return peer;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until a NOTIFICATION: (code, subcode, data); then bgpd must
    /// close the connection.
    fn notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.next() {
                Some((3, body)) => {
                    assert!(body.len() >= 2, "short NOTIFICATION {body:?}");
                    let found = (body[0], body[1], body[2..].to_vec());
                    assert!(
                        self.next().is_none(),
                        "connection stays open after {found:?}"
                    );
                    return found;
                }
                Some(_) => continue,
                None => panic!("connection closed without a NOTIFICATION"),
            }
        }
    }
}

#[test]
fn malformed_messages_get_their_notification_and_other_peers_stay_up() {
    let good = Ipv4Addr::new(127, 0, 0, 20);
    let cases = [
        Ipv4Addr::new(127, 0, 0, 21),
        Ipv4Addr::new(127, 0, 0, 22),
        Ipv4Addr::new(127, 0, 0, 23),
        Ipv4Addr::new(127, 0, 0, 24),
        Ipv4Addr::new(127, 0, 0, 25),
    ];
    let mut all = vec![good];
    all.extend_from_slice(&cases);
    let port = free_port();
    let bgpd = Bgpd::start(&config(port, &all));
    let mut healthy = RawPeer::establish(good, port);
    wait_until("the good peer Established", || {
        bgpd.peer(good.into()).state == i32::from(SessionState::Established)
    });

    // Bad marker: Message Header Error / Connection Not Synchronized.
    let mut peer = RawPeer::establish(cases[0], port);
    let mut bad = message(KEEPALIVE, &[]);
    bad[3] = 0;
    peer.send(&bad);
    assert_eq!(peer.notification(), (1, 1, vec![]), "bad marker");

    // Bad length: Message Header Error / Bad Message Length, with the
    // length in the data (RFC 4271 §6.1). A KEEPALIVE must be 19 octets.
    let mut peer = RawPeer::establish(cases[1], port);
    let mut bad = message(KEEPALIVE, &[0, 0]);
    bad[16..18].copy_from_slice(&21u16.to_be_bytes());
    peer.send(&bad);
    assert_eq!(
        peer.notification(),
        (1, 2, vec![0, 21]),
        "bad KEEPALIVE length"
    );

    // Bad flags on MP_REACH_NLRI (marked well-known): its RFC 7606 action is
    // session reset, so UPDATE Message Error / Attribute Flags Error with the
    // attribute as data.
    let mut peer = RawPeer::establish(cases[2], port);
    let mp_reach = [0x40, 14, 5, 0, 1, 1, 0, 0];
    let mut attrs = attributes(0x40, cases[2]);
    attrs.extend_from_slice(&mp_reach);
    peer.send(&update(&attrs, &[]));
    let (code, subcode, data) = peer.notification();
    assert_eq!((code, subcode), (3, 4), "MP_REACH flags error");
    assert_eq!(data[..3], mp_reach[..3], "data carries the attribute");

    // Bad flags on ORIGIN (marked optional): RFC 7606 §3 treat-as-withdraw.
    // The session stays up and the prefix, announced first with good
    // attributes, is withdrawn.
    let mut peer = RawPeer::establish(cases[3], port);
    peer.send(&update(&attributes(0x40, cases[3]), &[24, 10, 50, 0]));
    wait_until("10.50.0.0/24 received", || {
        bgpd.received(cases[3].into()) == ["10.50.0.0/24"]
    });
    peer.send(&update(&attributes(0xc0, cases[3]), &[24, 10, 50, 0]));
    wait_until("10.50.0.0/24 treated as withdrawn", || {
        bgpd.received(cases[3].into()).is_empty()
    });
    assert_eq!(
        bgpd.peer(cases[3].into()).state,
        i32::from(SessionState::Established),
        "treat-as-withdraw keeps the session"
    );

    // Truncated NLRI: a /24 with only two octets. The NLRI cannot be
    // parsed, so session reset (RFC 7606 §5.3) with Invalid Network Field.
    let mut peer = RawPeer::establish(cases[4], port);
    peer.send(&update(&attributes(0x40, cases[4]), &[24, 10, 51]));
    let (code, subcode, _) = peer.notification();
    assert_eq!((code, subcode), (3, 10), "truncated NLRI");

    // Every failure above was reported as the session's last error, and the
    // good peer never left Established.
    let last = bgpd.peer(cases[0].into()).last_error;
    assert!(last.contains("Connection Not Synchronized"), "{last}");
    let good_peer = bgpd.peer(good.into());
    assert_eq!(good_peer.state, i32::from(SessionState::Established));
    assert_eq!(good_peer.established_transitions, 1);
    // And it still talks: bgpd answers its KEEPALIVE-driven session.
    healthy.send(&message(KEEPALIVE, &[]));
    assert!(good_peer.messages_received.unwrap().keepalive >= 1);
}
