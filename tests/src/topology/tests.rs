// Topology checking: good files resolve as containerlab would read them, and
// every bad one is refused with the file, the field and the reason.

use super::*;
use std::fs;

/// A folder with the bind files the test topologies name.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tor")).unwrap();
        fs::write(dir.path().join("tor/frr.conf"), "hostname tor\n").unwrap();
        fs::write(dir.path().join("tor/daemons"), "bgpd=yes\n").unwrap();
        fs::write(dir.path().join("bird.conf"), "router id 1.1.1.1;\n").unwrap();
        fs::write(dir.path().join("gobgpd.toml"), "[global.config]\n").unwrap();
        Dir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.path().join("lab.clab.yml")
    }

    fn parse(&self, text: &str) -> Result<Topology, TopologyError> {
        Topology::parse(text, &self.file())
    }

    /// Parses `text` expecting an error at `field` whose reason holds `needle`.
    fn refuse(&self, text: &str, field: &str, needle: &str) {
        let err = self
            .parse(text)
            .expect_err("the topology should be refused");
        assert_eq!(err.file, self.file());
        assert_eq!(err.field, field, "{err}");
        assert!(
            err.reason.contains(needle),
            "reason `{}` lacks `{needle}`",
            err.reason
        );
        // The message a person sees names all three.
        let shown = err.to_string();
        assert!(shown.starts_with(&self.file().display().to_string()) && shown.contains(field));
    }
}

const GOOD: &str = r#"
name: two-node-tor
topology:
  defaults:
    kind: linux
  kinds:
    linux:
      image: nicolaka/netshoot
      env: { ROLE: host }
  nodes:
    tor:
      image: quay.io/frrouting/frr:8.4.1
      binds:
        - tor/frr.conf:/etc/frr/frr.conf
        - tor/daemons:/etc/frr/daemons:ro
      labels: { rack: 1 }
    n1:
      exec:
        - ip addr add 10.0.1.2/24 dev eth1
      env: { NODE: n1 }
      sysctls: { net.ipv4.conf.all.rp_filter: 0 }
    n2:
  links:
    - endpoints: ["tor:eth1", "n1:eth1"]
      mtu: 9000
    - type: veth
      endpoints:
        - { node: tor, interface: eth2, mac: "02:AA:00:00:00:01", ipv4: 10.0.2.1/24 }
        - { node: n2, interface: eth1, ipv6: "fd00:2::2/64" }
"#;

#[test]
fn resolves_a_full_topology() {
    let dir = Dir::new();
    let topo = dir.parse(GOOD).unwrap();
    assert_eq!(topo.name, "two-node-tor");
    assert!(topo.warnings.is_empty(), "{:?}", topo.warnings);
    assert_eq!(topo.nodes.len(), 3);

    let tor = &topo.nodes["tor"];
    assert_eq!(tor.role, Role::Frr);
    assert_eq!(tor.kind, NodeKind::Linux);
    assert_eq!(
        tor.bind_for("/etc/frr/frr.conf"),
        Some(dir.0.path().join("tor/frr.conf").as_path())
    );
    assert!(tor.binds[1].read_only);
    assert_eq!(tor.labels["rack"], "1");
    // The kind's env reaches every node of the kind; a node's own env adds to it.
    assert_eq!(tor.env["ROLE"], "host");

    let n1 = &topo.nodes["n1"];
    assert_eq!(n1.role, Role::Linux);
    assert_eq!(n1.image, "nicolaka/netshoot");
    assert_eq!(n1.env["NODE"], "n1");
    assert_eq!(n1.env["ROLE"], "host");
    assert_eq!(n1.exec, ["ip addr add 10.0.1.2/24 dev eth1"]);
    assert_eq!(n1.sysctls["net.ipv4.conf.all.rp_filter"], "0");
    // A node given as an empty entry inherits everything.
    assert_eq!(topo.nodes["n2"].image, "nicolaka/netshoot");

    assert_eq!(topo.links.len(), 2);
    assert_eq!(topo.links[0].mtu, Some(9000));
    assert_eq!(
        (
            topo.links[0].a.node.as_str(),
            topo.links[0].a.interface.as_str()
        ),
        ("tor", "eth1")
    );
    let l1 = &topo.links[1];
    assert_eq!(l1.a.mac.as_deref(), Some("02:aa:00:00:00:01"));
    assert_eq!(
        l1.a.addresses,
        vec!["10.0.2.1/24".parse::<IpNetwork>().unwrap()]
    );
    assert_eq!(
        l1.b.addresses,
        vec!["fd00:2::2/64".parse::<IpNetwork>().unwrap()]
    );
}

#[test]
fn per_link_address_lists() {
    let dir = Dir::new();
    let topo = dir
        .parse(
            "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x}\n    b: {kind: linux, image: x}\n  links:\n    - endpoints: [a:e1, b:e1]\n      ipv4: [10.0.0.1/30, 10.0.0.2/30]\n      ipv6: [\"fd00::1/64\", \"fd00::2/64\"]\n",
        )
        .unwrap();
    let link = &topo.links[0];
    assert_eq!(link.a.addresses.len(), 2);
    assert_eq!(link.b.addresses[0].to_string(), "10.0.0.2/30");
    assert_eq!(link.b.addresses[1].to_string(), "fd00::2/64");
}

#[test]
fn unknown_fields_are_reported_not_lost() {
    let dir = Dir::new();
    let topo = dir
        .parse("name: l\nmgmt: {network: x}\ntopology:\n  nodes:\n    a: {kind: linux, image: x, startup-config: c.cfg}\n")
        .unwrap();
    assert_eq!(
        topo.warnings,
        [
            "mgmt: not used by podlab",
            "topology.nodes.a.startup-config: not used by podlab"
        ]
    );
}

#[test]
fn a_root_user_is_what_podlab_does_anyway() {
    let dir = Dir::new();
    let topo = dir
        .parse("name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x, user: root}\n    b: {kind: linux, image: x, user: 0}\n    c: {kind: linux, image: x, user: nobody}\n")
        .unwrap();
    assert_eq!(
        topo.warnings,
        ["topology.nodes.c.user: podlab runs every node as root, not `nobody`"]
    );
}

#[test]
fn roles_need_their_config() {
    let dir = Dir::new();
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    r: {kind: linux, image: frrouting/frr}\n",
        "topology.nodes.r.binds",
        "/etc/frr/frr.conf",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    r: {kind: linux, image: bird2}\n",
        "topology.nodes.r.binds",
        "bird.conf",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    r: {kind: linux, image: gobgp}\n",
        "topology.nodes.r.binds",
        "gobgpd -f",
    );
    let topo = dir
        .parse("name: l\ntopology:\n  nodes:\n    r: {kind: linux, image: jauderho/gobgp, cmd: gobgpd -f /etc/gobgp/g.toml, binds: [gobgpd.toml:/etc/gobgp/g.toml]}\n    b: {kind: linux, image: bird, binds: [bird.conf:/etc/bird/bird.conf]}\n")
        .unwrap();
    assert_eq!(topo.nodes["r"].role, Role::Gobgp);
    assert_eq!(topo.nodes["b"].role, Role::Bird);
}

#[test]
fn bad_files_are_refused_with_file_field_and_reason() {
    let dir = Dir::new();
    let base = "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x}\n    b: {kind: linux, image: x}\n";
    let with_links = |links: &str| format!("{base}  links:\n{links}");

    dir.refuse(
        &with_links("    - endpoints: [a:eth1, c:eth1]\n"),
        "topology.links[0].endpoints[1]",
        "unknown node `c`",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:eth1, b:eth1]\n    - endpoints: [a:eth1, b:eth2]\n"),
        "topology.links[1].endpoints",
        "duplicate endpoint a:eth1",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:eth1, a:eth1]\n"),
        "topology.links[0].endpoints",
        "duplicate endpoint",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:eth1]\n"),
        "topology.links[0].endpoints",
        "exactly 2",
    );
    dir.refuse(
        &with_links("    - endpoints: [a-eth1, b:eth1]\n"),
        "topology.links[0].endpoints[0]",
        "not node:interface",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:averyveryverylongname, b:eth1]\n"),
        "topology.links[0].endpoints[0]",
        "1 to 15 characters",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:lo, b:eth1]\n"),
        "topology.links[0].endpoints[0]",
        "reserved",
    );
    dir.refuse(
        &with_links("    - endpoints: [host:veth9, b:eth1]\n"),
        "topology.links[0].endpoints[0]",
        "outside the lab",
    );
    dir.refuse(
        &with_links("    - type: macvlan\n      endpoints: [a:e, b:e]\n"),
        "topology.links[0].type",
        "veth",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:e, b:e]\n      mtu: 20\n"),
        "topology.links[0].mtu",
        "68..=65535",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:e, b:e]\n      ipv4: [10.0.0.1/24]\n"),
        "topology.links[0].ipv4",
        "one address per endpoint",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:e, b:e]\n      ipv4: [10.0.0.1/24, 10.0.0.300/24]\n"),
        "topology.links[0].ipv4[1]",
        "not an address",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:e, b:e]\n      ipv4: [10.0.0.1, 10.0.0.2/24]\n"),
        "topology.links[0].ipv4[0]",
        "prefix length",
    );
    dir.refuse(
        &with_links("    - endpoints: [a:e, b:e]\n      ipv6: [10.0.0.1/24, 10.0.0.2/24]\n"),
        "topology.links[0].ipv6[0]",
        "not an ipv6",
    );
    dir.refuse(
        &with_links(
            "    - type: veth\n      endpoints: [{node: a, interface: e, mac: 'zz'}, b:e]\n",
        ),
        "topology.links[0].endpoints[0].mac",
        "not a MAC",
    );
    dir.refuse(
        &with_links("    - type: veth\n      endpoints: [{node: a, interface: e, mac: '01:00:5e:00:00:01'}, b:e]\n"),
        "topology.links[0].endpoints[0].mac",
        "multicast",
    );

    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x, binds: [missing.conf:/etc/x.conf]}\n",
        "topology.nodes.a.binds[0]",
        "does not exist",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x, binds: [bird.conf]}\n",
        "topology.nodes.a.binds[0]",
        "host-path:container-path",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x, binds: ['bird.conf:/x:rx']}\n",
        "topology.nodes.a.binds[0]",
        "unknown bind option",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {image: x}\n",
        "topology.nodes.a.kind",
        "missing",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: linux}\n",
        "topology.nodes.a.image",
        "needs an image",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: nokia_srlinux, image: x}\n",
        "topology.nodes.a.kind",
        "nokia_srlinux",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a b: {kind: linux, image: x}\n",
        "topology.nodes.a b",
        "letters, digits",
    );
    dir.refuse(
        "name: 'bad/name'\ntopology:\n  nodes:\n    a: {kind: linux, image: x}\n",
        "name",
        "letters, digits",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes: {}\n",
        "topology.nodes",
        "at least one node",
    );
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    averyveryverylongbridge: {kind: bridge}\n",
        "topology.nodes.averyveryverylongbridge",
        "at most 15",
    );
}

#[test]
fn yaml_errors_name_the_line() {
    let dir = Dir::new();
    let err = dir
        .parse("name: l\ntopology:\n  nodes:\n    a: [unclosed\n")
        .unwrap_err();
    assert!(err.field.starts_with("line "), "{err}");
    assert!(err.reason.starts_with("invalid YAML"), "{err}");
    // A wrong type names its place too.
    let err = dir.parse("name: l\ntopology:\n  links: 3\n").unwrap_err();
    assert!(err.field.starts_with("line 3"), "{err}");
    let err = dir.parse("topology: {}\n").unwrap_err();
    assert!(err.reason.contains("name"), "{err}");
}

#[test]
fn load_names_an_unreadable_file() {
    let err = Topology::load(Path::new("/nonexistent/lab.clab.yml")).unwrap_err();
    assert_eq!(err.field, "(file)");
    assert!(err.reason.contains("cannot read"), "{err}");
}

#[test]
fn namespace_names_carry_the_lab() {
    assert_eq!(
        Topology::netns_name("two-node-tor", "tor"),
        "podlab-two-node-tor.tor"
    );
    // Lab `a` with node `b-n1` and lab `a-b` with node `n1` stay apart.
    assert_ne!(
        Topology::netns_name("a", "b-n1"),
        Topology::netns_name("a-b", "n1")
    );
    assert!(!Topology::netns_name("a-b", "n1").starts_with(&Topology::netns_prefix("a")));
}

#[test]
fn names_that_could_escape_or_overflow_are_refused() {
    let dir = Dir::new();
    dir.refuse(
        "name: l\ntopology:\n  nodes:\n    a: {kind: linux, image: x, sysctls: {kernel.panic: 1}}\n",
        "topology.nodes.a.sysctls",
        "kernel.panic",
    );
    dir.refuse(
        &format!(
            "name: {}\ntopology:\n  nodes:\n    a: {{kind: linux, image: x}}\n",
            "x".repeat(33)
        ),
        "name",
        "longer than 32",
    );
    for bad in ["..", "../etc", "/etc", "a.b", "", "-a"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_name("t2nt1234x0").is_ok());
}
