// Transport tests against the real kernel over loopback (root, as in CI):
// connect and accept on IPv4 and IPv6, TCP MD5 accepted and refused, source
// binding on 127.0.0.2 (Linux answers all of 127/8 on lo), GTSM's minimum
// TTL (loopback does not decrement the TTL, so 254 vs 255 shows it).

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
/// How long a connection that must not complete is given. Refused SYNs are
/// dropped silently, so the client only ever sees this deadline pass.
const SHORT: Duration = Duration::from_millis(500);

fn listen(address: IpAddr) -> (Listener, SocketAddr) {
    let listener = Listener::bind(&[address], 0).unwrap();
    let local = listener.local_addrs().unwrap()[0];
    (listener, local)
}

fn options(peer: SocketAddr) -> ConnectOptions {
    ConnectOptions {
        timeout: SHORT,
        ..ConnectOptions::new(peer)
    }
}

/// Connects and accepts at once; returns (client, server, peer as seen by
/// the server, local address as seen by the server).
async fn pair(
    listener: &Listener,
    opts: &ConnectOptions,
) -> io::Result<(TcpStream, TcpStream, SocketAddr, SocketAddr)> {
    let (client, accepted) = tokio::join!(connect(opts), async {
        tokio::time::timeout(SHORT, listener.accept()).await
    });
    let client = client?;
    let (server, peer, local) = accepted.map_err(|_| io::ErrorKind::TimedOut)??;
    Ok((client, server, peer, local))
}

/// Both directions carry bytes (within a deadline: a dropped segment must
/// fail the test, not hang it).
async fn exchange(a: &mut TcpStream, b: &mut TcpStream) {
    let both_ways = async {
        a.write_all(b"open").await.unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"open");
        b.write_all(b"keep").await.unwrap();
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"keep");
    };
    let deadline = Duration::from_secs(5);
    tokio::time::timeout(deadline, both_ways)
        .await
        .expect("bytes lost between the two ends");
}

fn assert_refused(result: io::Result<(TcpStream, TcpStream, SocketAddr, SocketAddr)>) {
    match result {
        Ok((client, _, peer, _)) => panic!(
            "connection from {peer} completed ({:?})",
            client.local_addr()
        ),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}"),
    }
}

#[tokio::test]
async fn connect_and_accept_v4_and_v6() {
    for address in [V4, V6] {
        let (listener, local) = listen(address);
        let (mut client, mut server, peer, server_local) =
            pair(&listener, &options(local)).await.unwrap();
        assert_eq!(server_local, local);
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), local);
        for stream in [&client, &server] {
            assert!(stream.nodelay().unwrap());
            assert_eq!(tos(stream).unwrap(), TOS_CS6, "{address}");
        }
        exchange(&mut client, &mut server).await;
    }
}

#[tokio::test]
async fn one_listener_many_addresses() {
    let listener = Listener::bind(&[V4, V6], 0).unwrap();
    let locals = listener.local_addrs().unwrap();
    assert_eq!(locals.len(), 2);
    for local in locals {
        let (_, _, _, server_local) = pair(&listener, &options(local)).await.unwrap();
        assert_eq!(server_local, local);
    }
}

#[tokio::test]
async fn wildcard_v4_and_v6_share_a_port() {
    // V6ONLY on the IPv6 socket: without it, [::]:p collides with 0.0.0.0:p.
    let v4 = Listener::bind(&[IpAddr::V4(Ipv4Addr::UNSPECIFIED)], 0).unwrap();
    let port = v4.local_addrs().unwrap()[0].port();
    let v6 = Listener::bind(&[IpAddr::V6(Ipv6Addr::UNSPECIFIED)], port).unwrap();
    let (_, _, peer, _) = pair(&v4, &options(SocketAddr::new(V4, port)))
        .await
        .unwrap();
    assert_eq!(peer.ip(), V4);
    let (_, _, peer, _) = pair(&v6, &options(SocketAddr::new(V6, port)))
        .await
        .unwrap();
    assert_eq!(peer.ip(), V6, "IPv6 peers are not v4-mapped");
}

#[tokio::test]
async fn md5_same_key_connects() {
    for address in [V4, V6] {
        let (listener, local) = listen(address);
        listener.set_md5(address, Some("s3cret")).unwrap();
        let opts = ConnectOptions {
            md5_password: Some("s3cret".into()),
            ..options(local)
        };
        let (mut client, mut server, _, _) = pair(&listener, &opts).await.unwrap();
        exchange(&mut client, &mut server).await;
    }
}

#[tokio::test]
async fn md5_missing_or_wrong_key_does_not_connect() {
    for address in [V4, V6] {
        let (listener, local) = listen(address);
        listener.set_md5(address, Some("s3cret")).unwrap();
        assert_refused(pair(&listener, &options(local)).await);
        let wrong = ConnectOptions {
            md5_password: Some("guess".into()),
            ..options(local)
        };
        assert_refused(pair(&listener, &wrong).await);
    }
    // A signed SYN to a listener without a key is dropped too.
    let (listener, local) = listen(V4);
    let signed = ConnectOptions {
        md5_password: Some("s3cret".into()),
        ..options(local)
    };
    assert_refused(pair(&listener, &signed).await);
}

#[tokio::test]
async fn md5_key_removed() {
    let (listener, local) = listen(V4);
    listener.set_md5(V4, Some("s3cret")).unwrap();
    listener.set_md5(V4, None).unwrap();
    pair(&listener, &options(local)).await.unwrap();
    // Removing an absent key is not an error; a key of another family is
    // ignored by a socket of this one.
    listener.set_md5(V4, None).unwrap();
    listener.set_md5(V6, Some("s3cret")).unwrap();
    pair(&listener, &options(local)).await.unwrap();
}

#[tokio::test]
async fn md5_key_for_another_peer_does_not_apply() {
    let (listener, local) = listen(V4);
    listener
        .set_md5("127.0.0.9".parse().unwrap(), Some("s3cret"))
        .unwrap();
    pair(&listener, &options(local)).await.unwrap();
}

#[tokio::test]
async fn source_address_is_bound() {
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let (listener, local) = listen(V4);
    let opts = ConnectOptions {
        source: Some(source),
        ..options(local)
    };
    let (client, _, peer, _) = pair(&listener, &opts).await.unwrap();
    assert_eq!(peer.ip(), source);
    assert_eq!(client.local_addr().unwrap().ip(), source);

    // MD5 keys follow the source address, not the host.
    let (listener, local) = listen(V4);
    listener.set_md5(source, Some("s3cret")).unwrap();
    let signed = ConnectOptions {
        md5_password: Some("s3cret".into()),
        ..opts.clone()
    };
    let signed = ConnectOptions {
        peer: local,
        ..signed
    };
    pair(&listener, &signed).await.unwrap();
    let unsigned = ConnectOptions {
        md5_password: None,
        ..signed
    };
    assert_refused(pair(&listener, &unsigned).await);
    // From 127.0.0.1 no key is required.
    pair(&listener, &options(local)).await.unwrap();
}

#[tokio::test]
async fn ttl_is_set_and_read_back() {
    let default_v4: u8 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for address in [V4, V6] {
        let (listener, local) = listen(address);
        for (mode, sent, min) in [
            (TtlMode::Hops(1), 1, 0),
            (TtlMode::Hops(7), 7, 0),
            (TtlMode::Gtsm { hops: 1 }, 255, 255),
            (TtlMode::Gtsm { hops: 3 }, 255, 253),
        ] {
            let opts = ConnectOptions {
                ttl: mode,
                ..options(local)
            };
            let (client, server, _, _) = pair(&listener, &opts).await.unwrap();
            assert_eq!(ttl(&client).unwrap(), sent, "{address} {mode:?}");
            assert_eq!(min_ttl(&client).unwrap(), min, "{address} {mode:?}");
            apply_ttl(&server, mode).unwrap();
            assert_eq!(ttl(&server).unwrap(), sent, "{address} {mode:?}");
            assert_eq!(min_ttl(&server).unwrap(), min, "{address} {mode:?}");
        }
        let (client, server, _, _) = pair(&listener, &options(local)).await.unwrap();
        for stream in [&client, &server] {
            if address.is_ipv4() {
                assert_eq!(ttl(stream).unwrap(), default_v4);
            }
            assert_eq!(min_ttl(stream).unwrap(), 0);
        }
    }
}

#[tokio::test]
async fn gtsm_on_listener_drops_distant_syns() {
    for address in [V4, V6] {
        let (listener, local) = listen(address);
        listener.set_min_ttl(Some(1)).unwrap();
        // TTL 254 looks one hop further than allowed: the SYN is dropped.
        let far = ConnectOptions {
            ttl: TtlMode::Hops(254),
            ..options(local)
        };
        assert_refused(pair(&listener, &far).await);
        let gtsm = ConnectOptions {
            ttl: TtlMode::Gtsm { hops: 1 },
            ..options(local)
        };
        let (mut client, mut server, _, _) = pair(&listener, &gtsm).await.unwrap();
        // The client drops our segments too until we send with TTL 255.
        apply_ttl(&server, TtlMode::Gtsm { hops: 1 }).unwrap();
        exchange(&mut client, &mut server).await;
        // And off again.
        listener.set_min_ttl(None).unwrap();
        pair(&listener, &far).await.unwrap();
    }
}

#[tokio::test]
async fn gtsm_on_accepted_socket_drops_distant_segments() {
    // The per-peer form: the handshake completes, then the accepted socket
    // gets GTSM and the peer's data, sent with TTL 254, never arrives.
    let (listener, local) = listen(V4);
    let far = ConnectOptions {
        ttl: TtlMode::Hops(254),
        ..options(local)
    };
    let (mut client, mut server, _, _) = pair(&listener, &far).await.unwrap();
    apply_ttl(&server, TtlMode::Gtsm { hops: 1 }).unwrap();
    client.write_all(b"open").await.unwrap();
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(SHORT, server.read_exact(&mut buf)).await;
    assert!(read.is_err(), "data from TTL 254 was accepted");
}

#[tokio::test]
async fn connect_errors_name_the_peer() {
    // A port nobody listens on: refused at once, not at the deadline.
    let (listener, local) = listen(V4);
    drop(listener);
    let e = connect(&options(local)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains(&local.to_string()), "{e}");

    // A source address of the wrong family.
    let opts = ConnectOptions {
        source: Some(V6),
        ..options(local)
    };
    let e = connect(&opts).await.unwrap_err();
    assert!(e.to_string().starts_with("bind to ::1"), "{e}");

    // A key longer than the kernel takes.
    let opts = ConnectOptions {
        md5_password: Some("x".repeat(MD5_MAX_KEY_LEN + 1)),
        ..options(local)
    };
    let e = connect(&opts).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn gtsm_min_ttl_is_256_minus_hops() {
    assert_eq!(TtlMode::Gtsm { hops: 1 }.min_ttl(), Some(255));
    assert_eq!(TtlMode::Gtsm { hops: 255 }.min_ttl(), Some(1));
    assert_eq!(TtlMode::Hops(2).min_ttl(), None);
    assert_eq!(TtlMode::Gtsm { hops: 2 }.send_ttl(), Some(GTSM_TTL));
    assert_eq!(TtlMode::OsDefault.send_ttl(), None);
}
