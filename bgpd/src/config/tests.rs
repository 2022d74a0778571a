// Tests for parsing, validation, diff and watch of the configuration file.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::wire::{Community, LargeCommunity};

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
        missing
            .to_string()
            .contains("spec.routerID: is required without Node documents"),
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
         peer 10.0.1.1 is already defined by document 2 (BGPPeer \"a\")"
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

// ---- route policy, maxPrefix, maxPaths, kernelTable ----

const EBGP_PEER: &str = "peerIP: 10.0.1.1\nasNumber: 65000\n";

/// The import policy of peer 10.0.1.1 configured with `extra`.
fn import_policy(extra: &str) -> RoutePolicy {
    let config = ok(&with_peer(&format!("{EBGP_PEER}{extra}")));
    peer(&config, "10.0.1.1")
        .import_policy
        .expect("an import policy")
}

fn policy_error(extra: &str) -> (String, Problem) {
    invalid(&with_peer(&format!("{EBGP_PEER}{extra}")))
}

fn range(prefix: &str, ge: u8, le: u8) -> PrefixMatch {
    PrefixMatch {
        prefix: prefix.parse().unwrap(),
        ge,
        le,
    }
}

#[test]
fn policy_rules_resolve() {
    let policy = import_policy(
        r#"importPolicy:
  defaultAction: accept
  rules:
    - name: customers
      match:
        prefixes: [{prefix: 10.0.0.0/8, ge: 24, le: 26}, "10.1.0.0/16", {prefix: "fd00::/8", ge: 48}, {prefix: 172.16.0.0/12, le: 16}]
        communities: ["65000:100", no-export, no-advertise, no-export-subconfed]
        largeCommunities: ["65000:1:2", "4294967295:0:4294967295"]
        asPath: "_65001$"
        nextHop: ["192.0.2.0/24", "fd00::1"]
      set:
        localPref: 200
        med: 10
        addCommunities: ["65001:1"]
        removeCommunities: ["0:0"]
        addLargeCommunities: ["65001:0:1"]
        removeLargeCommunities: ["65001:0:2"]
        prepend: {count: 2, asNumber: 65009}
      action: accept
    - set: {prepend: {}}
    - action: reject
"#,
    );
    assert_eq!(policy.default_action, Some(PolicyAction::Accept));
    assert_eq!(policy.rules.len(), 3);
    let rule = &policy.rules[0];
    assert_eq!(rule.name, "customers");
    assert_eq!(rule.action, Some(PolicyAction::Accept));
    let m = &rule.matches;
    assert_eq!(
        m.prefixes,
        Some(vec![
            range("10.0.0.0/8", 24, 26),
            range("10.1.0.0/16", 16, 16),
            range("fd00::/8", 48, 128),
            range("172.16.0.0/12", 12, 16),
        ])
    );
    assert_eq!(
        m.communities,
        Some(vec![
            Community(65000 << 16 | 100),
            Community(0xFFFF_FF01),
            Community(0xFFFF_FF02),
            Community(0xFFFF_FF03),
        ])
    );
    let lc = |a, b, c| LargeCommunity {
        global_admin: a,
        local_data_1: b,
        local_data_2: c,
    };
    assert_eq!(
        m.large_communities,
        Some(vec![lc(65000, 1, 2), lc(u32::MAX, 0, u32::MAX)])
    );
    assert_eq!(m.as_path.as_ref().map(AsPathRegex::as_str), Some("_65001$"));
    let hops: Vec<String> = m.next_hop.iter().flatten().map(|n| n.to_string()).collect();
    assert_eq!(hops, ["192.0.2.0/24", "fd00::1/128"]);
    assert_eq!(
        rule.set,
        PolicySet {
            local_pref: Some(200),
            med: Some(10),
            add_communities: vec![Community(65001 << 16 | 1)],
            remove_communities: vec![Community(0)],
            add_large_communities: vec![lc(65001, 0, 1)],
            remove_large_communities: vec![lc(65001, 0, 2)],
            prepend: Some(Prepend {
                count: 2,
                as_number: Some(65009)
            }),
        }
    );
    // Unnamed rules are named by position; prepend defaults to one copy of
    // our AS; no `match` matches everything; no action continues.
    let rule = &policy.rules[1];
    assert_eq!(rule.name, "rules[1]");
    assert_eq!(rule.matches, PolicyMatch::default());
    assert_eq!(
        rule.set.prepend,
        Some(Prepend {
            count: 1,
            as_number: None
        })
    );
    assert_eq!(rule.action, None);
    assert_eq!(policy.rules[2].action, Some(PolicyAction::Reject));
}

#[test]
fn prefix_ge_le_rules() {
    let entry = |spec: &str| {
        format!(
            "importPolicy:\n  rules:\n    - match: {{prefixes: [{spec}]}}\n      action: accept\n"
        )
    };
    let field = "spec.importPolicy.rules[0].match.prefixes[0]";
    // ge == prefix length and le == maximum are fine.
    let policy = import_policy(&entry("{prefix: 10.0.0.0/8, ge: 8, le: 32}"));
    assert_eq!(
        policy.rules[0].matches.prefixes,
        Some(vec![range("10.0.0.0/8", 8, 32)])
    );
    let policy = import_policy(&entry("{prefix: 10.0.0.0/8, ge: 20, le: 20}"));
    assert_eq!(
        policy.rules[0].matches.prefixes,
        Some(vec![range("10.0.0.0/8", 20, 20)])
    );

    let (f, problem) = policy_error(&entry("{prefix: 10.0.0.0/16, ge: 8}"));
    assert_eq!(f, format!("{field}.ge"));
    assert!(matches!(
        problem,
        Problem::PrefixLengthTooShort { value: 8, len: 16 }
    ));
    let (f, problem) = policy_error(&entry("{prefix: 10.0.0.0/16, le: 15}"));
    assert_eq!(f, format!("{field}.le"));
    assert!(matches!(problem, Problem::PrefixLengthTooShort { .. }));
    let (f, problem) = policy_error(&entry("{prefix: 10.0.0.0/8, ge: 33}"));
    assert_eq!(f, format!("{field}.ge"));
    assert_eq!(
        problem.to_string(),
        "33 is longer than an IPv4 prefix can be (at most 32)"
    );
    let (f, problem) = policy_error(&entry("{prefix: \"fd00::/8\", le: 129}"));
    assert_eq!(f, format!("{field}.le"));
    assert!(matches!(
        problem,
        Problem::PrefixLengthTooLong { max: 128, .. }
    ));
    let (f, problem) = policy_error(&entry("{prefix: 10.0.0.0/8, ge: 26, le: 24}"));
    assert_eq!(f, format!("{field}.ge"));
    assert!(matches!(problem, Problem::GeAboveLe { ge: 26, le: 24 }));
    let (f, problem) = policy_error(&entry("10.0.0.1/8"));
    assert_eq!(f, format!("{field}.prefix"));
    assert!(matches!(problem, Problem::NotCanonical { .. }));
    let (f, problem) = policy_error(&entry("{prefix: nonsense}"));
    assert_eq!(f, format!("{field}.prefix"));
    assert!(matches!(problem, Problem::BadPrefix { .. }));
    // Unknown keys in the long form are refused by serde, with the line.
    let e = err(&with_peer(&format!(
        "{EBGP_PEER}{}",
        entry("{prefix: 10.0.0.0/8, gt: 9}")
    )));
    assert!(e.to_string().contains("unknown field `gt`"), "{e}");
}

#[test]
fn the_whole_error_names_the_field() {
    let e = err(&with_peer(&format!(
        "{EBGP_PEER}importPolicy:\n  rules:\n    - action: accept\n    - match: {{prefixes: [{{prefix: 10.0.0.0/16, ge: 8}}]}}\n      action: reject\n"
    )));
    assert_eq!(
        e.to_string(),
        "bgpd.yaml: document 2 (BGPPeer \"tor1\"): \
         spec.importPolicy.rules[1].match.prefixes[0].ge: \
         8 is shorter than the prefix's own length 16 (ge and le count from it)"
    );
}

#[test]
fn bad_communities_are_refused() {
    let rule = |key: &str, value: &str| {
        format!(
            "exportPolicy:\n  rules:\n    - match: {{{key}: [\"{value}\"]}}\n      action: accept\n"
        )
    };
    for bad in [
        "65536:1",
        "1:65536",
        "1",
        "1:2:3",
        "a:b",
        "no_export",
        "-1:2",
        "+1:2",
        "",
    ] {
        let (field, problem) = policy_error(&rule("communities", bad));
        assert_eq!(
            field, "spec.exportPolicy.rules[0].match.communities[0]",
            "{bad}"
        );
        assert!(matches!(problem, Problem::Community(_)), "{bad}");
    }
    for bad in ["1:2", "1:2:3:4", "4294967296:0:0", "x:1:2", "1::2"] {
        let (field, problem) = policy_error(&rule("largeCommunities", bad));
        assert_eq!(
            field, "spec.exportPolicy.rules[0].match.largeCommunities[0]",
            "{bad}"
        );
        assert!(matches!(problem, Problem::LargeCommunity(_)), "{bad}");
    }
    let (field, problem) =
        policy_error("importPolicy:\n  rules:\n    - set: {addCommunities: [\"1:1\", \"big\"]}\n");
    assert_eq!(field, "spec.importPolicy.rules[0].set.addCommunities[1]");
    assert_eq!(
        problem.to_string(),
        "\"big\" is not a community: write \"A:B\" (each 0 to 65535) or no-export, \
         no-advertise, no-export-subconfed (RFC 1997)"
    );
    let (field, _) =
        policy_error("importPolicy:\n  rules:\n    - set: {removeLargeCommunities: [\"1:1\"]}\n");
    assert_eq!(
        field,
        "spec.importPolicy.rules[0].set.removeLargeCommunities[0]"
    );
}

#[test]
fn bad_rules_are_refused() {
    let (field, problem) = policy_error(
        "importPolicy:\n  rules:\n    - match: {asPath: \"(65001\"}\n      action: accept\n",
    );
    assert_eq!(field, "spec.importPolicy.rules[0].match.asPath");
    assert!(
        matches!(&problem, Problem::AsPathRegex { given, reason } if given == "(65001" && reason.contains("unclosed group")),
        "{problem}"
    );
    let (field, problem) = policy_error(
        "importPolicy:\n  rules:\n    - match: {communities: []}\n      action: accept\n",
    );
    assert_eq!(field, "spec.importPolicy.rules[0].match.communities");
    assert!(matches!(problem, Problem::EmptyList));
    let (field, problem) =
        policy_error("importPolicy:\n  rules:\n    - match: {prefixes: [10.0.0.0/8]}\n");
    assert_eq!(field, "spec.importPolicy.rules[0]");
    assert!(matches!(problem, Problem::RuleDoesNothing));
    let (field, problem) = policy_error(
        "importPolicy:\n  rules:\n    - {name: a, action: accept}\n    - {name: a, action: reject}\n",
    );
    assert_eq!(field, "spec.importPolicy.rules[1].name");
    assert!(matches!(problem, Problem::Duplicate(n) if n == "a"));
    for (count, ok_) in [(0, false), (1, true), (32, true), (33, false)] {
        let text = format!("importPolicy:\n  rules:\n    - set: {{prepend: {{count: {count}}}}}\n");
        if ok_ {
            import_policy(&text);
        } else {
            let (field, problem) = policy_error(&text);
            assert_eq!(field, "spec.importPolicy.rules[0].set.prepend.count");
            assert!(matches!(problem, Problem::PrependCount(c) if c == count));
        }
    }
    let (field, problem) =
        policy_error("importPolicy:\n  rules:\n    - set: {prepend: {asNumber: 23456}}\n");
    assert_eq!(field, "spec.importPolicy.rules[0].set.prepend.asNumber");
    assert!(matches!(problem, Problem::ReservedAs(23456)));
    let (field, problem) = policy_error(
        "nextHopSelf: true\nexportPolicy:\n  rules:\n    - match: {nextHop: [10.0.0.1/8]}\n      action: accept\n",
    );
    assert_eq!(field, "spec.exportPolicy.rules[0].match.nextHop[0]");
    assert!(matches!(problem, Problem::NotCanonical { .. }));
    let e = err(&with_peer(&format!(
        "{EBGP_PEER}importPolicy: {{defaultAction: allow}}"
    )));
    assert!(e.to_string().contains("unknown variant `allow`"), "{e}");
}

#[test]
fn cluster_default_policies_apply_to_peers_without_their_own() {
    let text = format!(
        "{GLOBAL}  importPolicy: {{defaultAction: accept}}\n  exportPolicy:\n    rules: [{{match: {{communities: [no-export]}}, action: reject}}]\n\
         ---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: a}}\n\
         spec: {{peerIP: 10.0.1.1, asNumber: 65000}}\n---\n\
         apiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: b}}\n\
         spec: {{peerIP: 10.0.1.3, asNumber: 65000, importPolicy: {{defaultAction: reject}}}}\n"
    );
    let config = ok(&text);
    let default_import = config.bgp.import_policy.clone().unwrap();
    assert_eq!(default_import.default_action, Some(PolicyAction::Accept));
    let a = peer(&config, "10.0.1.1");
    assert_eq!(a.import_policy.as_ref(), Some(&default_import));
    assert_eq!(a.export_policy, config.bgp.export_policy);
    let b = peer(&config, "10.0.1.3");
    assert_eq!(
        b.import_policy.unwrap().default_action,
        Some(PolicyAction::Reject),
        "the peer's own policy replaces the default as a whole"
    );
    assert_eq!(b.export_policy, config.bgp.export_policy);

    // Errors in the defaults name the BGPConfiguration's field.
    let (field, _) = invalid(&format!(
        "{GLOBAL}  exportPolicy:\n    rules: [{{match: {{asPath: \"[\"}}, action: accept}}]\n"
    ));
    assert_eq!(field, "spec.exportPolicy.rules[0].match.asPath");
}

#[test]
fn policy_defaults_when_unset() {
    let config = ok(&with_peer(EBGP_PEER));
    let tor1 = peer(&config, "10.0.1.1");
    assert_eq!(tor1.import_policy, None);
    assert_eq!(tor1.export_policy, None);
    assert_eq!(tor1.max_prefix, None);
    assert_eq!(tor1.next_hop_self, None);
    assert!(tor1.next_hop_self(config.bgp.as_number), "eBGP default");
    assert_eq!(config.bgp.max_paths, DEFAULT_MAX_PATHS);
    assert_eq!(config.bgp.kernel_table, DEFAULT_KERNEL_TABLE);

    let config = ok(&with_peer("peerIP: 10.0.1.1\nasNumber: 65001\n"));
    assert!(
        !peer(&config, "10.0.1.1").next_hop_self(65001),
        "iBGP default"
    );
    let config = ok(&with_peer(
        "peerIP: 10.0.1.1\nasNumber: 65001\nnextHopSelf: true",
    ));
    let ibgp = peer(&config, "10.0.1.1");
    assert_eq!(ibgp.next_hop_self, Some(true));
    assert!(ibgp.next_hop_self(65001));
    let config = ok(&with_peer(&format!("{EBGP_PEER}nextHopSelf: false")));
    assert!(!peer(&config, "10.0.1.1").next_hop_self(65001));
}

#[test]
fn max_paths_and_kernel_table() {
    let config = ok(&format!("{GLOBAL}  maxPaths: 1\n  kernelTable: 100\n"));
    assert_eq!((config.bgp.max_paths, config.bgp.kernel_table), (1, 100));
    assert_eq!(ok(&format!("{GLOBAL}  maxPaths: 64\n")).bgp.max_paths, 64);
    for bad in [0, 65] {
        let (field, problem) = invalid(&format!("{GLOBAL}  maxPaths: {bad}\n"));
        assert_eq!(field, "spec.maxPaths");
        assert!(matches!(problem, Problem::MaxPaths(n) if n == bad));
    }
    for bad in [0, 255] {
        let (field, problem) = invalid(&format!("{GLOBAL}  kernelTable: {bad}\n"));
        assert_eq!(field, "spec.kernelTable");
        assert!(matches!(problem, Problem::KernelTable(t) if t == bad));
    }
}

#[test]
fn max_prefix() {
    let max_prefix = |extra: &str| {
        let config = ok(&with_peer(&format!("{EBGP_PEER}maxPrefix: {extra}")));
        peer(&config, "10.0.1.1").max_prefix.unwrap()
    };
    let m = max_prefix("{limit: 1000, warningPercent: 80, action: teardown, restartAfter: 30}");
    assert_eq!(
        m,
        MaxPrefix {
            limit: 1000,
            warning_percent: 80,
            action: MaxPrefixAction::Teardown {
                restart_after: Some(Duration::from_secs(30))
            },
        }
    );
    assert_eq!(m.warning_threshold(), 800);
    let m = max_prefix("{limit: 10}");
    assert_eq!(m.warning_percent, DEFAULT_MAX_PREFIX_WARNING_PERCENT);
    assert_eq!(
        m.action,
        MaxPrefixAction::Teardown {
            restart_after: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(m.warning_threshold(), 8, "75% of 10, rounded up");
    let m = max_prefix("{limit: 1, warningPercent: 1, action: teardown, restartAfter: 0}");
    assert_eq!(
        m.action,
        MaxPrefixAction::Teardown {
            restart_after: None
        }
    );
    assert_eq!(m.warning_threshold(), 1);
    let m = max_prefix("{limit: 4294967295, warningPercent: 100, action: warn}");
    assert_eq!(m.action, MaxPrefixAction::Warn);
    assert_eq!(m.warning_threshold(), u32::MAX);

    for (spec, field, check) in [
        (
            "{limit: 0}",
            "spec.maxPrefix.limit",
            (|p: &Problem| matches!(p, Problem::ZeroLimit)) as fn(&Problem) -> bool,
        ),
        (
            "{limit: 5, warningPercent: 0}",
            "spec.maxPrefix.warningPercent",
            |p| matches!(p, Problem::WarningPercent(0)),
        ),
        (
            "{limit: 5, warningPercent: 101}",
            "spec.maxPrefix.warningPercent",
            |p| matches!(p, Problem::WarningPercent(101)),
        ),
        (
            "{limit: 5, action: warn, restartAfter: 5}",
            "spec.maxPrefix.restartAfter",
            |p| matches!(p, Problem::RestartAfterWithWarn),
        ),
    ] {
        let (f, problem) = policy_error(&format!("maxPrefix: {spec}"));
        assert_eq!(f, field, "{spec}");
        assert!(check(&problem), "{spec}: {problem}");
    }
    let e = err(&with_peer(&format!(
        "{EBGP_PEER}maxPrefix: {{warningPercent: 5}}"
    )));
    assert!(e.to_string().contains("missing field `limit`"), "{e}");
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

#[test]
fn diff_policy_and_route_settings_do_not_restart() {
    let old = two_peers("", "", "");
    for extra in [
        "importPolicy: {defaultAction: accept}",
        "exportPolicy: {rules: [{action: accept}]}",
        "nextHopSelf: false",
        "maxPrefix: {limit: 10}",
    ] {
        let new = two_peers("", extra, "");
        let change = diff(&old, &new);
        assert_eq!(change.peers_updated, ips(&["10.0.1.1"]), "{extra}");
        assert!(change.peers_changed.is_empty(), "{extra}");
        assert_eq!(change.peers_unchanged, ips(&["10.0.1.3"]), "{extra}");
        assert_eq!(change.global, GlobalChange::default(), "{extra}");
    }
    // A new cluster default reaches the peers that inherit it, as an update.
    let new = two_peers(
        "importPolicy: {defaultAction: accept}",
        "",
        "importPolicy: {defaultAction: reject}",
    );
    let old_b = two_peers("", "", "importPolicy: {defaultAction: reject}");
    let change = diff(&old_b, &new);
    assert_eq!(change.peers_updated, ips(&["10.0.1.1"]));
    assert_eq!(change.peers_unchanged, ips(&["10.0.1.3"]));
    assert!(change.peers_changed.is_empty());
    assert!(!change.global.restart_all);
}

#[test]
fn diff_max_paths_and_kernel_table_do_not_restart() {
    let old = two_peers("", "", "");
    let new = two_peers("maxPaths: 4\nkernelTable: 100", "", "");
    let change = diff(&old, &new);
    assert_eq!(change.global.max_paths, Some(4));
    assert_eq!(change.global.kernel_table, Some(100));
    assert!(!change.global.restart_all && !change.global.rebind_listener);
    assert!(change.peers_changed.is_empty() && change.peers_updated.is_empty());
    assert!(!change.is_empty());
    let same = diff(&new, &new);
    assert_eq!(
        (same.global.max_paths, same.global.kernel_table),
        (None, None)
    );
}

/// The text of the first ```yaml block after `heading` in CONFIG.md.
fn config_md_yaml(heading: &str) -> &'static str {
    let doc = include_str!("../../CONFIG.md");
    let section = &doc[doc.find(heading).expect("the section")..];
    let start = section.find("```yaml\n").expect("an example") + "```yaml\n".len();
    let example = &section[start..];
    &example[..example.find("```").expect("the example's end")]
}

#[test]
fn config_md_example_is_valid() {
    let example = config_md_yaml("## Example");
    let read = |_: &Path| Ok("s3cret\n".to_owned());
    let config = parse(example, "CONFIG.md", read).unwrap();
    assert_eq!(config.peers.len(), 2);
    assert_eq!(config.bgp.max_paths, 4);
    let node3 = peer(&config, "fd00::3");
    assert_eq!((node3.hold_time, node3.keepalive_time), (9, 3));
    assert_eq!(node3.ttl, TtlMode::OsDefault);
    assert_eq!(node3.import_policy, None);
    assert_eq!(node3.export_policy, config.bgp.export_policy);
    let tor1 = peer(&config, "10.0.1.1");
    assert_eq!(tor1.ttl, TtlMode::Gtsm { hops: 1 });
    let import = tor1.import_policy.as_ref().unwrap();
    let names: Vec<&str> = import.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["no-own-aggregate", "prefer-direct", "default-and-pods"]
    );
    assert_eq!(tor1.max_prefix.unwrap().limit, 1000);

    // What the example's policies do with routes from and to tor1.
    use crate::rib::PathAttributes;
    use crate::rib::policy::{self, Direction, PolicyContext, Verdict};
    use crate::wire::{AsPath, AsSegment, PathAttribute};
    let ctx = PolicyContext {
        local_as: config.bgp.as_number,
        ebgp: tor1.is_ebgp(config.bgp.as_number),
    };
    let from = |path: Vec<u32>| PathAttributes {
        attributes: vec![PathAttribute::AsPath(AsPath {
            segments: vec![AsSegment::Sequence(path)],
        })],
        next_hops: vec!["10.0.1.1".parse().unwrap()],
    };
    let import = |prefix: &str, path: Vec<u32>| {
        policy::evaluate(
            tor1.import_policy.as_ref(),
            &ctx,
            &prefix.parse().unwrap(),
            &from(path),
            Direction::Import,
        )
    };
    assert_eq!(import("10.244.7.0/26", vec![65000]), Verdict::Reject);
    assert_eq!(
        import("10.1.0.0/16", vec![65000, 65009]),
        Verdict::Accept(None)
    );
    assert!(matches!(
        import("0.0.0.0/0", vec![65000]),
        Verdict::Accept(Some(_))
    ));
    assert_eq!(
        import("10.1.2.0/27", vec![65000]),
        Verdict::Reject,
        "RFC 8212"
    );
    // Learned routes are not exported to tor1; our own prefixes are,
    // tagged and prepended.
    let learned = policy::evaluate(
        tor1.export_policy.as_ref(),
        &ctx,
        &"10.1.0.0/16".parse().unwrap(),
        &from(vec![65000]),
        Direction::Export,
    );
    assert_eq!(learned, Verdict::Reject);
    let own = PathAttributes {
        attributes: vec![],
        next_hops: vec![],
    };
    let Verdict::Accept(Some(out)) = policy::evaluate_originated(
        tor1.export_policy.as_ref(),
        &ctx,
        &"10.244.1.0/26".parse().unwrap(),
        &own,
    ) else {
        panic!("our own prefix is exported")
    };
    assert_eq!(policy::render_as_path(out.as_path()), "65001");
}

#[test]
fn config_md_policy_snippets_are_valid() {
    let policy = config_md_yaml("## Route policy");
    let policy = import_policy(policy);
    assert_eq!(policy.default_action, Some(PolicyAction::Reject));
    assert_eq!(policy.rules.len(), 1);
    let max_prefix = config_md_yaml("## maxPrefix");
    let config = ok(&with_peer(&format!("{EBGP_PEER}{max_prefix}")));
    assert_eq!(
        peer(&config, "10.0.1.1")
            .max_prefix
            .unwrap()
            .warning_percent,
        80
    );
}

// ---- graceful restart, BFD, route reflection ----

const IBGP_PEER: &str = "peerIP: 10.0.1.1\nasNumber: 65001\n";

#[test]
fn graceful_restart_is_on_by_default_and_bfd_off() {
    let config = ok(&with_peer(IBGP_PEER));
    assert_eq!(
        config.bgp.graceful_restart,
        Some(GracefulRestartConfig::default())
    );
    assert_eq!(config.bgp.bfd, None);
    assert_eq!(config.bgp.cluster_id, None);
    let p = peer(&config, "10.0.1.1");
    assert_eq!(
        p.graceful_restart,
        Some(GracefulRestartConfig {
            restart_time: 120,
            stale_routes_time: Duration::from_secs(360),
        })
    );
    assert_eq!(p.bfd, None);
    assert!(!p.route_reflector_client);
}

#[test]
fn peer_settings_override_the_cluster_defaults_field_by_field() {
    let text = format!(
        "{GLOBAL}  gracefulRestart: {{restartTime: 30}}\n  bfd: {{minRx: 100, multiplier: 5}}\n  \
         routeReflectorClusterID: 10.0.0.1\n---\napiVersion: podroute.io/v1\nkind: BGPPeer\n\
         metadata: {{name: a}}\nspec:\n  peerIP: 10.0.1.1\n  asNumber: 65001\n  \
         gracefulRestart: {{staleRoutesTime: 10}}\n  bfd: {{minTx: 50}}\n  routeReflectorClient: true\n\
         ---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: b}}\nspec:\n  \
         peerIP: 10.0.1.3\n  asNumber: 65000\n  gracefulRestart: {{enabled: false}}\n  bfd: {{enabled: false}}\n"
    );
    let config = ok(&text);
    assert_eq!(config.bgp.cluster_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    let a = peer(&config, "10.0.1.1");
    assert_eq!(
        a.graceful_restart,
        Some(GracefulRestartConfig {
            restart_time: 30,
            stale_routes_time: Duration::from_secs(10),
        })
    );
    assert_eq!(
        a.bfd,
        Some(BfdConfig {
            min_rx: Duration::from_millis(100),
            min_tx: Duration::from_millis(50),
            multiplier: 5,
        })
    );
    assert!(a.route_reflector_client);
    let b = peer(&config, "10.0.1.3");
    assert_eq!(b.graceful_restart, None);
    assert_eq!(b.bfd, None);
}

#[test]
fn graceful_restart_off_in_the_cluster_can_be_enabled_per_peer() {
    let text = format!(
        "{GLOBAL}  gracefulRestart: {{enabled: false}}\n---\napiVersion: podroute.io/v1\n\
         kind: BGPPeer\nmetadata: {{name: a}}\nspec:\n  peerIP: 10.0.1.1\n  asNumber: 65001\n  \
         gracefulRestart: {{enabled: true}}\n"
    );
    let config = ok(&text);
    assert_eq!(config.bgp.graceful_restart, None);
    assert_eq!(
        peer(&config, "10.0.1.1").graceful_restart,
        Some(GracefulRestartConfig::default())
    );
}

#[test]
fn bad_graceful_restart_bfd_and_reflector_settings_are_refused() {
    for (spec, field, problem) in [
        (
            "gracefulRestart: {restartTime: 4096}",
            "spec.gracefulRestart.restartTime",
            Problem::RestartTime(4096),
        ),
        (
            "gracefulRestart: {restartTime: 0}",
            "spec.gracefulRestart.restartTime",
            Problem::RestartTime(0),
        ),
        (
            "gracefulRestart: {staleRoutesTime: 0}",
            "spec.gracefulRestart.staleRoutesTime",
            Problem::ZeroSeconds,
        ),
        ("bfd: {minRx: 5}", "spec.bfd.minRx", Problem::BfdInterval(5)),
        (
            "bfd: {minTx: 60001}",
            "spec.bfd.minTx",
            Problem::BfdInterval(60001),
        ),
        (
            "bfd: {multiplier: 1}",
            "spec.bfd.multiplier",
            Problem::BfdMultiplier(1),
        ),
        (
            "bfd: {multiplier: 256}",
            "spec.bfd.multiplier",
            Problem::BfdMultiplier(256),
        ),
    ] {
        let (got_field, got) = invalid(&with_peer(&format!("{IBGP_PEER}{spec}")));
        assert_eq!(got_field, field, "{spec}");
        assert_eq!(got.to_string(), problem.to_string(), "{spec}");
    }
    let (field, problem) = invalid(&with_peer(
        "peerIP: 10.0.1.1\nasNumber: 65000\nrouteReflectorClient: true",
    ));
    assert_eq!(field, "spec.routeReflectorClient");
    assert!(matches!(problem, Problem::ReflectorClientOnEbgp(65000)));
    let e = err(&with_peer(&format!("{IBGP_PEER}bfd: {{minRX: 100}}")));
    assert!(e.to_string().contains("unknown field `minRX`"), "{e}");
}

#[test]
fn diff_bfd_updates_graceful_restart_and_reflection_restart() {
    let old = two_peers("", "", "");
    let updated = two_peers("", "bfd: {minRx: 100}", "");
    let change = diff(&old, &updated);
    assert_eq!(change.peers_updated, ips(&["10.0.1.1"]));
    assert!(change.peers_changed.is_empty());
    for extra in [
        "gracefulRestart: {restartTime: 5}",
        "gracefulRestart: {enabled: false}",
    ] {
        let change = diff(&old, &two_peers("", extra, ""));
        assert_eq!(change.peers_changed, ips(&["10.0.1.1"]), "{extra}");
    }
    let ibgp = |extra: &str| {
        ok(&format!(
            "{GLOBAL}---\napiVersion: podroute.io/v1\nkind: BGPPeer\nmetadata: {{name: a}}\n\
             spec:\n  peerIP: 10.0.1.1\n  asNumber: 65001\n{}",
            indent(extra)
        ))
    };
    let change = diff(&ibgp(""), &ibgp("routeReflectorClient: true"));
    assert_eq!(change.peers_changed, ips(&["10.0.1.1"]));
    let change = diff(
        &old,
        &two_peers("routeReflectorClusterID: 10.9.9.9", "", ""),
    );
    assert!(change.global.restart_all);
    assert_eq!(change.peers_changed, ips(&["10.0.1.1", "10.0.1.3"]));
}

#[test]
fn a_speaker_with_reflector_clients_takes_its_router_id_as_cluster_id() {
    let config = ok(&with_peer(&format!(
        "{IBGP_PEER}routeReflectorClient: true"
    )));
    assert_eq!(config.bgp.cluster_id, Some(Ipv4Addr::new(10, 0, 1, 2)));
    // Without clients, no cluster ID: the speaker does not reflect.
    assert_eq!(ok(&with_peer(IBGP_PEER)).bgp.cluster_id, None);
}
