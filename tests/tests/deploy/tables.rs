// What the manifests must agree with, written down once: the image, the
// flags still to come, the programs in the image, the Secrets, the RBAC
// each component needs and the privileges each container is given, with
// the reason for each, and the sample nodes the BGP resources are resolved
// for.

/// Where the image is pushed: a name that resolves nowhere, since no
/// registry publishes podroute (deploy/README.md: build, push, then set
/// yours with kustomize's `images` or sed).
pub const IMAGE_REPOSITORY: &str = "registry.example.invalid/podroute";
/// Everything of ours that has a namespace has this one.
pub const NAMESPACE: &str = "podroute-system";
pub const OVERLAYS: [&str; 4] = ["mesh", "tor", "route-reflector", "etcd"];
/// The image's default user (the Dockerfile's USER), which ipamd runs as.
pub const IMAGE_UID: i64 = 65532;

/// Flags the plan adds to the daemons on other branches (kube mode): until
/// they are merged the binaries here refuse them, so they are taken out
/// (with their value, when they take one) before the arguments are parsed.
/// A flag of this list that the binary knows fails the test: delete it
/// from here once merged.
pub const EXPECTED_NEW: [(&str, &str, bool); 0] = [];

/// Our programs in the image: binary, the crate (`cargo build -p`) that
/// builds it.
pub const OUR_BINARIES: [(&str, &str); 5] = [
    ("podroute-bgpd", "podroute-bgpd"),
    ("podroute-ipamd", "podroute-ipam"),
    ("podroute-policy-agent", "podroute-policy"),
    ("podroute-cni", "podroute-cni"),
    ("podctl", "podctl"),
];
/// Our programs that leave the image: built statically (glibc's
/// crt-static), since what runs them there has other libraries than the
/// image: program, why.
pub const STATIC_BINARIES: [(&str, &str); 1] = [(
    "podroute-cni",
    "install-cni copies it onto the host, where the container runtime runs it with the host's glibc (older than bookworm's on RHEL 8, Ubuntu 20.04, Debian 11, Amazon Linux 2)",
)];
/// Our scripts in the image: program, file in the repository.
pub const OUR_SCRIPTS: [(&str, &str); 1] =
    [("podroute-create-defaults", "deploy/create-defaults.sh")];
/// Programs of debian:bookworm-slim itself (Essential packages) that
/// manifests run.
pub const BASE_TOOLS: [&str; 6] = ["sh", "install", "chown", "rm", "rmdir", "sleep"];
/// Programs our code runs, and the Debian package the Dockerfile must
/// install for each. The policy agent's are found in its source (every
/// `runner.run("..")`, `runner.output("..")`, `Command::new("..")` and
/// iptables tool name) and must all be here.
pub const RUNTIME_TOOLS: [(&str, &str); 9] = [
    ("iptables-save", "iptables"),
    ("iptables-restore", "iptables"),
    ("ip6tables-save", "iptables"),
    ("ip6tables-restore", "iptables"),
    ("ipset", "ipset"),
    ("conntrack", "conntrack"),
    ("ip", "iproute2"),
    ("kill", "procps"),
    ("curl", "curl"),
];

/// Secrets pods mount: name, who makes it, the builds that may mount it.
pub const SECRETS: [(&str, &str, &[&str]); 3] = [
    (
        "podroute-node-tls",
        "podroute-ipamd --tls-secret (the nodes' client certificate for ipamd)",
        &[
            "deploy/podroute.yaml",
            "overlays/mesh",
            "overlays/tor",
            "overlays/route-reflector",
            "overlays/etcd",
        ],
    ),
    (
        "podroute-bgp-passwords",
        "the operator (TCP MD5 keys of the ToR sessions)",
        &["overlays/tor"],
    ),
    (
        "podroute-etcd-tls",
        "the operator (ipamd's etcd client certificate)",
        &["overlays/etcd"],
    ),
];

/// One RBAC grant: the ServiceAccount, where (None: cluster-wide), API
/// group, resource, verbs, resource names (empty: any), and what in the
/// code needs it.
pub struct Grant {
    pub account: &'static str,
    pub namespace: Option<&'static str>,
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub names: &'static [&'static str],
    pub why: &'static str,
}

/// What each component reads and writes: the ClusterRoles and Roles must
/// grant exactly this, nothing more, nothing less.
pub const RBAC: [Grant; 12] = [
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: mesh members, addresses, AS and reflector labels",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgpconfigurations",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: the BGPConfiguration named default",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgppeers",
        verbs: &["list", "watch"],
        names: &[],
        why: "bgpd --kube: every BGPPeer",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "podroute.io",
        resource: "bgppeers/status",
        verbs: &["patch"],
        names: &[],
        why: "bgpd --kube: server-side apply of this node's session entries",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: endpoints (policy-agent/src/source/kube.rs)",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: namespace selectors",
    },
    Grant {
        account: "podroute-node",
        namespace: None,
        group: "networking.k8s.io",
        resource: "networkpolicies",
        verbs: &["list", "watch"],
        names: &[],
        why: "policy agent: the policies",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "ippools",
        verbs: &["list", "watch", "create"],
        names: &[],
        why: "ipamd --kube: the pools; podroute-create-defaults: the default pool",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "ippools/status",
        verbs: &["patch"],
        names: &[],
        why: "ipamd --kube: capacity, allocated, blocks",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        names: &[],
        why: "ipamd --kube: pool selection by labels; deleted nodes' blocks",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "",
        resource: "pods",
        verbs: &["get", "list", "watch"],
        names: &[],
        why: "ipamd --kube: pods gone longer than --pod-gc-grace; get: a live read before each release",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: None,
        group: "podroute.io",
        resource: "bgpconfigurations",
        verbs: &["create"],
        names: &[],
        why: "podroute-create-defaults: the default BGPConfiguration",
    },
];

/// ipamd's Secrets (--tls-secret), in its own namespace only.
pub const RBAC_SECRETS: [Grant; 2] = [
    Grant {
        account: "podroute-ipamd",
        namespace: Some(NAMESPACE),
        group: "",
        resource: "secrets",
        verbs: &["create"],
        names: &[],
        why: "--tls-secret: make them when missing (create takes no name)",
    },
    Grant {
        account: "podroute-ipamd",
        namespace: Some(NAMESPACE),
        group: "",
        resource: "secrets",
        verbs: &["get", "update"],
        names: &["podroute-ipamd-tls", "podroute-node-tls"],
        why: "--tls-secret: read and renew its two",
    },
];

/// A container's privileges: workload, container, runs as root, the
/// capabilities added to an empty set (everything is dropped first).
pub const PRIVILEGES: [(&str, &str, bool, &[&str]); 12] = [
    // Copy into root's host folders: root, and nothing else.
    ("podroute-node", "install-tls", true, &[]),
    ("podroute-node", "install-cni", true, &[]),
    // rtnetlink routes; BGP's port 179. No raw socket.
    (
        "podroute-node",
        "bgpd",
        true,
        &["NET_ADMIN", "NET_BIND_SERVICE"],
    ),
    // iptables, ipset, conntrack.
    (
        "podroute-node",
        "policy-agent",
        true,
        &["NET_ADMIN", "NET_RAW"],
    ),
    // The hostPath store folder handed to ipamd's user.
    ("podroute-ipamd", "store-owner", true, &["CHOWN"]),
    ("podroute-ipamd", "create-defaults", false, &[]),
    ("podroute-ipamd", "ipamd", false, &[]),
    ("podroute-cleanup", "routes", true, &["NET_ADMIN"]),
    (
        "podroute-cleanup",
        "policy",
        true,
        &["NET_ADMIN", "NET_RAW"],
    ),
    // rm -rf of root's files, and of ipamd's store, whose folder is
    // 65532's (mode 0755): unlinking there needs write permission on it,
    // which root has only with DAC_OVERRIDE. No FOWNER: no folder removed
    // from is sticky, and rm changes no owner or mode.
    ("podroute-cleanup", "files", true, &["DAC_OVERRIDE"]),
    ("podroute-cleanup", "folders", true, &[]),
    ("podroute-cleanup", "done", false, &[]),
];

/// Stand-ins for what Kubernetes fills in, to expand `$(VAR)` as the
/// kubelet would.
pub const NODE_NAME: &str = "node-a";
pub const CLUSTER_IP: &str = "10.96.0.10";

/// Sample nodes each build is checked with: name, address, labels,
/// annotations (as deploy/README.md tells operators to set them).
pub type SampleNode = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

pub const MESH_NODES: [SampleNode; 3] = [
    ("node-a", "10.0.0.1", &[], &[]),
    ("node-b", "10.0.0.2", &[], &[]),
    ("node-c", "10.0.0.3", &[], &[]),
];
pub const TOR_NODES: [SampleNode; 3] = [
    (
        "node-a",
        "10.0.1.1",
        &[("rack", "rack1")],
        &[("podroute.io/as-number", "65011")],
    ),
    (
        "node-b",
        "10.0.1.2",
        &[("rack", "rack1")],
        &[("podroute.io/as-number", "65011")],
    ),
    (
        "node-c",
        "10.0.2.1",
        &[("rack", "rack2")],
        &[("podroute.io/as-number", "65021")],
    ),
];
pub const RR_NODES: [SampleNode; 4] = [
    (
        "rr-1",
        "10.0.0.101",
        &[("podroute.io/route-reflector-cluster-id", "10.0.0.100")],
        &[],
    ),
    (
        "rr-2",
        "10.0.0.102",
        &[("podroute.io/route-reflector-cluster-id", "10.0.0.100")],
        &[],
    ),
    ("node-a", "10.0.0.1", &[], &[]),
    ("node-b", "10.0.0.2", &[], &[]),
];
