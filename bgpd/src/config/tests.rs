// Tests for parsing, validation, diff and watch of the configuration file.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::*;

const GLOBAL: &str = "\
apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: 65001
  routerID: 10.0.1.2
";

fn no_files(path: &Path) -> io::Result<String> {
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not in test", path.display()),
    ))
}

fn with_peer(peer_spec: &str) -> String {
    format!(
        "{GLOBAL}---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: tor1}}\nspec:\n{}",
        indent(peer_spec)
    )
}

fn indent(spec: &str) -> String {
    spec.lines().map(|l| format!("  {l}\n")).collect()
}

fn ok(text: &str) -> Config {
    match parse(text, "bgpd.yaml", no_files) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text, "bgpd.yaml", no_files) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

/// The field path and problem of an Invalid error.
fn invalid(text: &str) -> (String, Problem) {
    match err(text) {
        ConfigError::Invalid {
            location, problem, ..
        } => (location.field, problem),
        other => panic!("expected Invalid, got {other}"),
    }
}

fn peer(config: &Config, address: &str) -> PeerConfig {
    let address: IpAddr = address.parse().unwrap();
    config.peers[&address].clone()
}

#[test]
fn full_example_parses() {
    let text = r#"
apiVersion: podroute.io/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  asNumber: 65001
  routerID: 10.0.1.2
  listenPort: 1179
  listenAddresses: [10.0.1.2, "fd00::2"]
  originate: [10.244.1.0/26, "fd00:10:244:1::/64"]
  holdTime: 60
  keepaliveTime: 20
  connectRetryTime: 7
---
apiVersion: podroute.io/v1
kind: BGPPeer
metadata: {name: tor1}
spec:
  peerIP: 10.0.1.1
  asNumber: 65000
  sourceAddress: 10.0.1.2
  password: "s3cret"
  holdTime: 9
  keepaliveTime: 3
  passive: true
  ebgpMultihop: 2
  families: [ipv4-unicast]
  description: "top of rack 1"
  shutdown: true
  shutdownMessage: "maintenance"
  port: 1790
"#;
    let config = ok(text);
    let bgp = &config.bgp;
    assert_eq!(bgp.name, "default");
    assert_eq!(bgp.as_number, 65001);
    assert_eq!(bgp.router_id, Ipv4Addr::new(10, 0, 1, 2));
    assert_eq!(bgp.listen_port, Some(1179));
    assert_eq!(
        bgp.listen_addresses,
        vec![
            "10.0.1.2".parse::<IpAddr>().unwrap(),
            "fd00::2".parse().unwrap()
        ]
    );
    let originate: Vec<String> = bgp.originate.iter().map(|p| p.to_string()).collect();
    assert_eq!(originate, ["10.244.1.0/26", "fd00:10:244:1::/64"]);
    assert_eq!(
        (bgp.hold_time, bgp.keepalive_time, bgp.connect_retry_time),
        (60, 20, 7)
    );

    let tor1 = peer(&config, "10.0.1.1");
    assert_eq!(tor1.name, "tor1");
    assert_eq!(tor1.port, 1790);
    assert_eq!(tor1.as_number, 65000);
    assert_eq!(tor1.source_address, Some("10.0.1.2".parse().unwrap()));
    assert_eq!(tor1.password.as_ref().map(Password::expose), Some("s3cret"));
    assert_eq!((tor1.hold_time, tor1.keepalive_time), (9, 3));
    assert_eq!(tor1.connect_retry_time, 7, "inherited from the speaker");
    assert!(tor1.passive);
    assert_eq!(tor1.ttl, TtlMode::Hops(2));
    assert_eq!(tor1.families, BTreeSet::from([Family::IPV4_UNICAST]));
    assert_eq!(tor1.description, "top of rack 1");
    assert_eq!(
        tor1.shutdown,
        Some(Shutdown {
            message: "maintenance".into()
        })
    );
    assert!(tor1.is_ebgp(bgp.as_number));
}

#[test]
fn defaults_are_applied() {
    let text = format!(
        "{GLOBAL}---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: a}}\n\
         spec: {{peerIP: 10.0.1.1, asNumber: 65000}}\n---\n\
         apiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: b}}\n\
         spec: {{peerIP: \"fd00::1\", asNumber: 65001}}\n---\n"
    );
    let config = ok(&text);
    let bgp = &config.bgp;
    assert_eq!(bgp.listen_port, Some(BGP_PORT));
    assert_eq!(
        bgp.listen_addresses,
        vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        ]
    );
    assert!(bgp.originate.is_empty());
    assert_eq!(
        (bgp.hold_time, bgp.keepalive_time, bgp.connect_retry_time),
        (90, 30, 5)
    );

    let ebgp = peer(&config, "10.0.1.1");
    assert_eq!(ebgp.port, 179);
    assert_eq!((ebgp.hold_time, ebgp.keepalive_time), (90, 30));
    assert_eq!(ebgp.ttl, TtlMode::Hops(EBGP_DEFAULT_TTL));
    // An IPv4 session carries IPv4 unless told otherwise.
    assert_eq!(ebgp.families, BTreeSet::from([Family::IPV4_UNICAST]));
    assert!(!ebgp.passive);
    assert_eq!(ebgp.password, None);
    assert_eq!(ebgp.shutdown, None);
    assert_eq!(ebgp.description, "");

    let ibgp = peer(&config, "fd00::1");
    assert_eq!(ibgp.ttl, TtlMode::OsDefault);
    assert!(!ibgp.is_ebgp(bgp.as_number));
}

#[test]
fn as_number_forms() {
    let asn = |value: &str| {
        let text = GLOBAL.replace("asNumber: 65001", &format!("asNumber: {value}"));
        parse(&text, "bgpd.yaml", no_files).map(|c| c.bgp.as_number)
    };
    assert_eq!(asn("4200000001").unwrap(), 4_200_000_001);
    assert_eq!(asn("\"4200000001\"").unwrap(), 4_200_000_001);
    assert_eq!(asn("\"64086.59905\"").unwrap(), 64086 * 65536 + 59905);
    assert_eq!(asn("\"1.10\"").unwrap(), 65546);
    // Unquoted asdot is a YAML float: refused with the hint to quote it.
    let e = asn("1.10").unwrap_err().to_string();
    assert!(e.contains("quote it"), "{e}");
    assert!(e.contains("line 5"), "{e}");
    for bad in [
        "\"1.65536\"",
        "\"1.\"",
        "\"x\"",
        "-1",
        "4294967296",
        "\"+5\"",
    ] {
        assert!(asn(bad).is_err(), "{bad}");
    }
    for reserved in ["0", "23456", "4294967295"] {
        let text = GLOBAL.replace("asNumber: 65001", &format!("asNumber: {reserved}"));
        let (field, problem) = invalid(&text);
        assert_eq!(field, "spec.asNumber");
        assert!(matches!(problem, Problem::ReservedAs(_)), "{problem}");
    }
}

#[test]
fn error_names_file_document_field_and_reason() {
    let e = err(&with_peer("peerIP: 10.0.1.1\nasNumber: 65000\nholdTime: 2"));
    assert_eq!(
        e.to_string(),
        "bgpd.yaml: document 2 (BGPPeer \"tor1\"): spec.holdTime: 2 is not allowed \
         (0 or at least 3, RFC 4271 §4.2)"
    );
}

#[test]
fn yaml_errors_keep_line_and_column() {
    let e = err(&with_peer("peerIP: 10.0.1.1\nasNumber: 65000\nholdtime: 9"));
    let text = e.to_string();
    assert!(
        text.starts_with(
            "bgpd.yaml: document 2 (BGPPeer \"tor1\"): spec: unknown field `holdtime`"
        ),
        "{text}"
    );
    assert!(text.ends_with("at line 14 column 3"), "{text}");

    let e = err("apiVersion: podroute.io/v1\nkind: [unclosed\n");
    assert!(e.to_string().contains("line"), "{e}");

    let missing = err(&GLOBAL.replace("  routerID: 10.0.1.2\n", ""));
    assert!(
        missing.to_string().contains("missing field `routerID`"),
        "{missing}"
    );
}

#[test]
fn exactly_one_bgp_configuration() {
    let only_peer = with_peer("peerIP: 10.0.1.1\nasNumber: 65000").replace(GLOBAL, "");
    let e = err(only_peer.trim_start_matches("---\n"));
    assert!(matches!(
        e,
        ConfigError::Invalid {
            problem: Problem::NoBgpConfiguration,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "bgpd.yaml: no BGPConfiguration document (exactly one is required)"
    );

    let twice = format!("{GLOBAL}---\n{GLOBAL}");
    let e = err(&twice);
    assert!(
        e.to_string()
            .starts_with("bgpd.yaml: document 2 (BGPConfiguration \"default\"): a second"),
        "{e}"
    );
}

#[test]
fn unknown_kind_and_api_version_are_refused() {
    let (field, problem) = invalid(&GLOBAL.replace("BGPConfiguration", "IPPool"));
    assert_eq!(field, "kind");
    assert!(matches!(problem, Problem::UnknownKind(k) if k == "IPPool"));

    let (field, problem) = invalid(&GLOBAL.replace("podroute.io/v1", "podroute.io/v2"));
    assert_eq!(field, "apiVersion");
    assert!(matches!(problem, Problem::ApiVersion(v) if v == "podroute.io/v2"));

    let (field, problem) = invalid(&GLOBAL.replace("kind: BGPConfiguration\n", ""));
    assert_eq!(field, "kind");
    assert!(matches!(problem, Problem::MissingKind));
}

#[test]
fn empty_documents_are_skipped() {
    let text = format!("---\n{GLOBAL}---\n---\n");
    assert_eq!(ok(&text).peers.len(), 0);
}

#[test]
fn duplicate_peers_are_refused() {
    let doc = |name: &str, ip: &str| {
        format!(
            "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
             spec: {{peerIP: \"{ip}\", asNumber: 65000}}\n"
        )
    };
    let text = format!("{GLOBAL}{}{}", doc("a", "10.0.1.1"), doc("b", "10.0.1.1"));
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "bgpd.yaml: document 3 (BGPPeer \"b\"): spec.peerIP: \
         peer 10.0.1.1 is already defined by document 2"
    );
    // The v4-mapped spelling is the same peer.
    let text = format!(
        "{GLOBAL}{}{}",
        doc("a", "10.0.1.1"),
        doc("b", "::ffff:10.0.1.1")
    );
    assert!(matches!(
        err(&text),
        ConfigError::Invalid {
            problem: Problem::DuplicatePeer { .. },
            ..
        }
    ));
}

#[test]
fn hold_and_keepalive_rules() {
    let base = "peerIP: 10.0.1.1\nasNumber: 65000\n";
    let check = |extra: &str| parse(&with_peer(&format!("{base}{extra}")), "f", no_files);
    for hold in [1, 2] {
        let (field, problem) = invalid(&with_peer(&format!("{base}holdTime: {hold}")));
        assert_eq!(field, "spec.holdTime");
        assert!(matches!(problem, Problem::HoldTime(h) if h == hold));
    }
    // Peer's own hold time: keepalive a third of it.
    let config = check("holdTime: 9").unwrap();
    assert_eq!(peer(&config, "10.0.1.1").keepalive_time, 3);
    let config = check("holdTime: 3").unwrap();
    assert_eq!(peer(&config, "10.0.1.1").keepalive_time, 1);
    // Hold 0: no keepalives.
    let config = check("holdTime: 0").unwrap();
    assert_eq!(peer(&config, "10.0.1.1").keepalive_time, 0);
    let (field, problem) = invalid(&with_peer(&format!("{base}holdTime: 0\nkeepaliveTime: 5")));
    assert_eq!(field, "spec.keepaliveTime");
    assert!(matches!(problem, Problem::KeepaliveWithoutHold(5)));
    // Keepalive must stay below hold, including the speaker's hold.
    let (_, problem) = invalid(&with_peer(&format!("{base}holdTime: 9\nkeepaliveTime: 9")));
    assert!(matches!(
        problem,
        Problem::KeepaliveNotBelowHold {
            keepalive: 9,
            hold: 9
        }
    ));
    let (_, problem) = invalid(&with_peer(&format!("{base}keepaliveTime: 90")));
    assert!(matches!(
        problem,
        Problem::KeepaliveNotBelowHold { hold: 90, .. }
    ));
    let (_, problem) = invalid(&with_peer(&format!("{base}keepaliveTime: 0")));
    assert!(matches!(problem, Problem::KeepaliveZero));
    let config = check("keepaliveTime: 10").unwrap();
    assert_eq!(peer(&config, "10.0.1.1").keepalive_time, 10);
    // The speaker's own pair is checked too.
    let text = GLOBAL.replace(
        "  routerID",
        "  holdTime: 30\n  keepaliveTime: 30\n  routerID",
    );
    let (field, _) = invalid(&text);
    assert_eq!(field, "spec.keepaliveTime");
    let (field, problem) = invalid(&format!("{GLOBAL}  connectRetryTime: 0\n"));
    assert_eq!(field, "spec.connectRetryTime");
    assert!(matches!(problem, Problem::ZeroSeconds));
}

#[test]
fn passwords() {
    let base = "peerIP: 10.0.1.1\nasNumber: 65000\n";
    let (field, problem) = invalid(&with_peer(&format!("{base}password: a\npasswordFile: /p")));
    assert_eq!(field, "spec.passwordFile");
    assert!(matches!(problem, Problem::PasswordAndFile));

    let files = BTreeMap::from([
        (
            PathBuf::from("/etc/podroute/tor1.password"),
            "s3cret\n".to_owned(),
        ),
        (PathBuf::from("/crlf"), "key\r\n".to_owned()),
        (PathBuf::from("/empty"), "\n".to_owned()),
    ]);
    let read = |path: &Path| {
        files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    };
    let load_with = |file: &str| {
        parse(
            &with_peer(&format!("{base}passwordFile: {file}")),
            "bgpd.yaml",
            read,
        )
    };
    let config = load_with("/etc/podroute/tor1.password").unwrap();
    assert_eq!(
        peer(&config, "10.0.1.1").password.unwrap().expose(),
        "s3cret"
    );
    let config = load_with("/crlf").unwrap();
    assert_eq!(peer(&config, "10.0.1.1").password.unwrap().expose(), "key");
    let e = load_with("/missing").unwrap_err().to_string();
    assert_eq!(
        e,
        "bgpd.yaml: document 2 (BGPPeer \"tor1\"): spec.passwordFile: \
         cannot read password file /missing: No such file or directory"
    );
    let e = load_with("/empty").unwrap_err();
    assert!(e.to_string().contains("1 to 80 bytes long, not 0"), "{e}");

    let long = "x".repeat(81);
    let (field, problem) = invalid(&with_peer(&format!("{base}password: {long}")));
    assert_eq!(field, "spec.password");
    assert!(matches!(problem, Problem::PasswordLength { len: 81 }));
    let config = ok(&with_peer(&format!("{base}password: {}", "x".repeat(80))));
    // Debug never shows the key.
    let shown = format!("{config:?}");
    assert!(!shown.contains("xxxx"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn ttl_rules() {
    let ebgp = "peerIP: 10.0.1.1\nasNumber: 65000\n";
    let ibgp = "peerIP: 10.0.1.1\nasNumber: 65001\n";
    let ttl = |spec: String| peer(&ok(&with_peer(&spec)), "10.0.1.1").ttl;
    assert_eq!(
        ttl(format!("{ebgp}ttlSecurity: 1")),
        TtlMode::Gtsm { hops: 1 }
    );
    assert_eq!(
        ttl(format!("{ibgp}ttlSecurity: 3")),
        TtlMode::Gtsm { hops: 3 }
    );
    assert_eq!(ttl(format!("{ebgp}ebgpMultihop: 255")), TtlMode::Hops(255));

    let (field, problem) = invalid(&with_peer(&format!(
        "{ebgp}ebgpMultihop: 2\nttlSecurity: 1"
    )));
    assert_eq!(field, "spec.ttlSecurity");
    assert!(matches!(problem, Problem::MultihopAndTtlSecurity));
    for (key, value) in [
        ("ebgpMultihop", 0),
        ("ebgpMultihop", 256),
        ("ttlSecurity", 0),
        ("ttlSecurity", 300),
    ] {
        let (field, problem) = invalid(&with_peer(&format!("{ebgp}{key}: {value}")));
        assert_eq!(field, format!("spec.{key}"));
        assert!(matches!(problem, Problem::Hops(v) if v == value));
    }
    let (field, problem) = invalid(&with_peer(&format!("{ibgp}ebgpMultihop: 2")));
    assert_eq!(field, "spec.ebgpMultihop");
    assert!(matches!(problem, Problem::MultihopOnIbgp(65001)));
}

#[test]
fn families() {
    let base = "peerIP: 10.0.1.1\nasNumber: 65000\n";
    let (field, problem) = invalid(&with_peer(&format!(
        "{base}families: [ipv4-unicast, l2vpn-evpn]"
    )));
    assert_eq!(field, "spec.families[1]");
    assert!(matches!(problem, Problem::UnknownFamily(f) if f == "l2vpn-evpn"));
    let (field, problem) = invalid(&with_peer(&format!(
        "{base}families: [ipv6-unicast, ipv6-unicast]"
    )));
    assert_eq!(field, "spec.families[1]");
    assert!(matches!(problem, Problem::Duplicate(_)));
    let (field, problem) = invalid(&with_peer(&format!("{base}families: []")));
    assert_eq!(field, "spec.families");
    assert!(matches!(problem, Problem::NoFamily));
    let config = ok(&with_peer(&format!("{base}families: [ipv6-unicast]")));
    assert_eq!(
        peer(&config, "10.0.1.1").families,
        BTreeSet::from([Family::IPV6_UNICAST])
    );
}

#[test]
fn originate_must_be_canonical() {
    let text = format!("{GLOBAL}  originate: [10.244.1.0/26, 10.244.1.5/26]\n");
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "bgpd.yaml: document 1 (BGPConfiguration \"default\"): spec.originate[1]: \
         10.244.1.5/26 has host bits set; write the canonical form 10.244.1.0/26"
    );
    let (field, problem) = invalid(&format!("{GLOBAL}  originate: [\"fd00:10:244:1::1/64\"]\n"));
    assert_eq!(field, "spec.originate[0]");
    assert!(
        matches!(problem, Problem::NotCanonical { canonical, .. } if canonical == "fd00:10:244:1::/64")
    );
    let (_, problem) = invalid(&format!("{GLOBAL}  originate: [10.244.1.0/33]\n"));
    assert!(matches!(problem, Problem::BadPrefix { .. }));
    let (_, problem) = invalid(&format!("{GLOBAL}  originate: [10.0.0.0/8, 10.0.0.0/8]\n"));
    assert!(matches!(problem, Problem::Duplicate(_)));
}

#[test]
fn peer_addresses() {
    for bad in ["0.0.0.0", "224.0.0.5", "255.255.255.255", "::", "ff02::5"] {
        let (field, problem) = invalid(&with_peer(&format!("peerIP: \"{bad}\"\nasNumber: 65000")));
        assert_eq!(field, "spec.peerIP");
        assert!(matches!(problem, Problem::PeerAddress(_)), "{bad}");
    }
    let (field, problem) = invalid(&with_peer(
        "peerIP: 10.0.1.1\nasNumber: 65000\nsourceAddress: \"fd00::2\"",
    ));
    assert_eq!(field, "spec.sourceAddress");
    assert!(matches!(problem, Problem::SourceFamily { .. }));
    let (field, problem) = invalid(&with_peer("peerIP: 10.0.1.1\nasNumber: 65000\nport: 0"));
    assert_eq!(field, "spec.port");
    assert!(matches!(problem, Problem::ZeroPort));
}

#[test]
fn listen_port_zero_means_no_listener() {
    let config = ok(&format!("{GLOBAL}  listenPort: 0\n"));
    assert_eq!(config.bgp.listen_port, None);
    let (field, _) = invalid(&format!(
        "{GLOBAL}  listenAddresses: [10.0.0.1, 10.0.0.1]\n"
    ));
    assert_eq!(field, "spec.listenAddresses[1]");
    let (field, problem) = invalid(&GLOBAL.replace("10.0.1.2", "0.0.0.0"));
    assert_eq!(field, "spec.routerID");
    assert!(matches!(problem, Problem::RouterId(_)));
}

#[test]
fn shutdown_message_length() {
    let base = "peerIP: 10.0.1.1\nasNumber: 65000\nshutdown: true\n";
    let long = "m".repeat(256);
    let (field, problem) = invalid(&with_peer(&format!("{base}shutdownMessage: {long}")));
    assert_eq!(field, "spec.shutdownMessage");
    assert!(matches!(
        problem,
        Problem::ShutdownMessageLength { len: 256 }
    ));
    let config = ok(&with_peer(base));
    assert_eq!(
        peer(&config, "10.0.1.1").shutdown,
        Some(Shutdown {
            message: String::new()
        })
    );
}

#[test]
fn load_reads_password_file_relative_to_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tor1.password"), "s3cret\n").unwrap();
    let path = dir.path().join("bgpd.yaml");
    std::fs::write(
        &path,
        with_peer("peerIP: 10.0.1.1\nasNumber: 65000\npasswordFile: tor1.password"),
    )
    .unwrap();
    let config = load(&path).unwrap();
    assert_eq!(
        peer(&config, "10.0.1.1").password.unwrap().expose(),
        "s3cret"
    );
    let e = load(&dir.path().join("absent.yaml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("absent.yaml"), "{e}");
}

// ---- diff ----

fn two_peers(global_extra: &str, a_extra: &str, b_extra: &str) -> Config {
    let doc = |name: &str, ip: &str, extra: &str| {
        format!(
            "---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
             spec:\n  peerIP: {ip}\n  asNumber: 65000\n{}",
            indent(extra)
        )
    };
    ok(&format!(
        "{GLOBAL}{}{}{}",
        indent(global_extra),
        doc("a", "10.0.1.1", a_extra),
        doc("b", "10.0.1.3", b_extra)
    ))
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn diff_identical_is_empty() {
    let config = two_peers("", "", "");
    let change = diff(&config, &config);
    assert!(change.is_empty());
    assert_eq!(change.peers_unchanged, ips(&["10.0.1.1", "10.0.1.3"]));
}

#[test]
fn diff_peers_added_removed_changed_updated() {
    let old = two_peers("", "", "description: x");
    let mut new = two_peers("", "holdTime: 30", "description: y");
    let added: IpAddr = "10.0.1.9".parse().unwrap();
    let mut extra = new.peers[&ips(&["10.0.1.1"])[0]].clone();
    extra.address = added;
    new.peers.insert(added, extra);
    let change = diff(&old, &new);
    assert_eq!(change.peers_added, vec![added]);
    assert_eq!(change.peers_changed, ips(&["10.0.1.1"]));
    assert_eq!(change.peers_updated, ips(&["10.0.1.3"]));
    assert!(change.peers_unchanged.is_empty());
    assert_eq!(change.global, GlobalChange::default());

    let back = diff(&new, &old);
    assert_eq!(back.peers_removed, vec![added]);
}

#[test]
fn diff_session_fields_each_restart() {
    let old = two_peers("", "", "");
    for extra in [
        "password: k",
        "passive: true",
        "ebgpMultihop: 2",
        "families: [ipv4-unicast, ipv6-unicast]",
        "port: 1179",
        "sourceAddress: 10.0.1.2",
        "shutdown: true",
        "keepaliveTime: 10",
        "connectRetryTime: 9",
    ] {
        let new = two_peers("", extra, "");
        let change = diff(&old, &new);
        assert_eq!(change.peers_changed, ips(&["10.0.1.1"]), "{extra}");
        assert_eq!(change.peers_unchanged, ips(&["10.0.1.3"]), "{extra}");
    }
}

#[test]
fn diff_global_changes() {
    let old = two_peers("originate: [10.244.1.0/26, 10.244.2.0/26]", "", "");

    // Originate only: re-advertise, no restart.
    let new = two_peers("originate: [10.244.1.0/26, 10.244.3.0/26]", "", "");
    let change = diff(&old, &new);
    assert!(!change.global.restart_all && !change.global.rebind_listener);
    assert_eq!(
        change.global.originate_added,
        vec!["10.244.3.0/26".parse().unwrap()]
    );
    assert_eq!(
        change.global.originate_removed,
        vec!["10.244.2.0/26".parse().unwrap()]
    );
    assert!(change.peers_changed.is_empty());

    // Router ID: every session restarts.
    let mut new = old.clone();
    new.bgp.router_id = Ipv4Addr::new(10, 0, 1, 99);
    let change = diff(&old, &new);
    assert!(change.global.restart_all);
    assert_eq!(change.peers_changed, ips(&["10.0.1.1", "10.0.1.3"]));

    // Listener only.
    let new = two_peers(
        "originate: [10.244.1.0/26, 10.244.2.0/26]\nlistenPort: 1179",
        "",
        "",
    );
    let change = diff(&old, &new);
    assert!(change.global.rebind_listener && !change.global.restart_all);
    assert!(change.peers_changed.is_empty());

    // A speaker default reaches the peers that inherit it, and only those.
    let new = two_peers(
        "originate: [10.244.1.0/26, 10.244.2.0/26]\nholdTime: 30",
        "",
        "holdTime: 90\nkeepaliveTime: 30",
    );
    let change = diff(&old, &new);
    assert!(!change.global.restart_all);
    assert_eq!(change.peers_changed, ips(&["10.0.1.1"]));
    assert_eq!(change.peers_unchanged, ips(&["10.0.1.3"]));
}

// ---- watch ----

const TEST_PERIOD: Duration = Duration::from_millis(20);
/// Long enough for several polls; a reload we expect arrives far sooner.
const DEADLINE: Duration = Duration::from_secs(5);
/// How long we wait to be sure that nothing arrives: ten polls.
const QUIET: Duration = Duration::from_millis(200);

async fn next(rx: &mut tokio::sync::mpsc::Receiver<ReloadTrigger>) -> ReloadTrigger {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no reload in time")
        .expect("watch ended")
}

async fn quiet(rx: &mut tokio::sync::mpsc::Receiver<ReloadTrigger>) {
    if let Ok(got) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!("unexpected reload: {got:?}");
    }
}

/// One test, run in sequence: the SIGHUP reaches every watch in the
/// process, and would break the other cases' quiet periods.
#[tokio::test]
async fn watch_reloads() {
    fires_on_change_not_on_same_content().await;
    follows_configmap_symlink_swap().await;
    fires_on_sighup().await;
}

async fn fires_on_change_not_on_same_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bgpd.yaml");
    std::fs::write(&path, GLOBAL).unwrap();
    let mut rx = watch::watch_every(path.clone(), TEST_PERIOD).unwrap();
    quiet(&mut rx).await;

    std::fs::write(&path, format!("{GLOBAL}  holdTime: 30\n")).unwrap();
    assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);

    // Same bytes again (a new mtime): no reload.
    std::fs::write(&path, format!("{GLOBAL}  holdTime: 30\n")).unwrap();
    quiet(&mut rx).await;

    // An editor's rename-replace.
    let tmp = dir.path().join(".bgpd.yaml.swp");
    std::fs::write(&tmp, format!("{GLOBAL}  holdTime: 60\n")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
}

async fn follows_configmap_symlink_swap() {
    // Kubernetes mounts bgpd.yaml -> ..data/bgpd.yaml, ..data -> ..<timestamp>.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("..v1")).unwrap();
    std::fs::write(d.join("..v1/bgpd.yaml"), GLOBAL).unwrap();
    std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/bgpd.yaml", d.join("bgpd.yaml")).unwrap();
    let mut rx = watch::watch_every(d.join("bgpd.yaml"), TEST_PERIOD).unwrap();
    quiet(&mut rx).await;

    std::fs::create_dir(d.join("..v2")).unwrap();
    std::fs::write(
        d.join("..v2/bgpd.yaml"),
        format!("{GLOBAL}  holdTime: 30\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    assert_eq!(next(&mut rx).await, ReloadTrigger::FileChanged);
}

async fn fires_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bgpd.yaml");
    std::fs::write(&path, GLOBAL).unwrap();
    let mut rx = watch::watch_every(path, TEST_PERIOD).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(next(&mut rx).await, ReloadTrigger::Signal);
}

#[test]
fn config_md_example_is_valid() {
    let doc = include_str!("../../CONFIG.md");
    let start = doc.find("```yaml\n").expect("an example") + "```yaml\n".len();
    let example = &doc[start..];
    let example = &example[..example.find("```").expect("the example's end")];
    let read = |_: &Path| Ok("s3cret\n".to_owned());
    let config = parse(example, "CONFIG.md", read).unwrap();
    assert_eq!(config.peers.len(), 2);
    let node3 = peer(&config, "fd00::3");
    assert_eq!((node3.hold_time, node3.keepalive_time), (9, 3));
    assert_eq!(node3.ttl, TtlMode::OsDefault);
    assert_eq!(peer(&config, "10.0.1.1").ttl, TtlMode::Gtsm { hops: 1 });
}
