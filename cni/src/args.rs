// CNI_ARGS parsing (CNI spec 1.1 "Parameters", CONVENTIONS.md "CNI_ARGS":
// "K=V;K=V") and the checks on CNI_CONTAINERID and CNI_IFNAME the spec asks
// for, plus the names podroute gives its kernel objects and ipamd records:
// the host-side veth name, its alias (which marks the veth as ours) and the
// ipamd handle, all derived from the attachment (network, container, ifname).

/// CNI_ARGS: "K=V;K=V" (CONVENTIONS.md). Known keys: K8S_POD_NAMESPACE,
/// K8S_POD_NAME, K8S_POD_UID, K8S_POD_INFRA_CONTAINER_ID, IgnoreUnknown.
/// The first three have fields; every other pair is kept in `other`, in
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub other: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("CNI_ARGS: {0:?} is not KEY=VALUE")]
    NotKeyValue(String),
    #[error("CNI_ARGS: empty key in {0:?}")]
    EmptyKey(String),
}

/// Who owns a host veth, as read back from its alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethOwner {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    /// (namespace, pod name); None when the ADD had no pod identity.
    pub pod: Option<(String, String)>,
}

impl VethOwner {
    /// Whether this veth is attachment (network, container, ifname).
    pub fn is_attachment(&self, network: &str, container_id: &str, ifname: &str) -> bool {
        self.network == network && self.container_id == container_id && self.ifname == ifname
    }
}

/// Every host veth name starts with this.
pub const HOST_VETH_PREFIX: &str = "podr";
/// Every alias of a host veth of ours starts with this.
pub const VETH_ALIAS_PREFIX: &str = "podroute:";
/// Longest link alias the kernel takes (IFALIASZ 256, less the NUL).
pub const MAX_ALIAS_LEN: usize = 255;
/// Longest interface name (IFNAMSIZ 16, less the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

impl CniArgs {
    /// (namespace, pod name) when both are present: the pod identity the
    /// veth name and alias use.
    pub fn pod(&self) -> Option<(&str, &str)> {
        Some((self.pod_namespace.as_deref()?, self.pod_name.as_deref()?))
    }
}

/// Parses CNI_ARGS. An empty string gives the default; empty pairs (a
/// trailing ';', ";;") are skipped; the value is everything after the first
/// '=' and may be empty (an empty K8S_POD_* value counts as absent); a key
/// given twice keeps its last value. Unknown keys are kept in `other`, never
/// an error: this plugin ignores what it does not know, as IgnoreUnknown asks.
pub fn parse_cni_args(s: &str) -> Result<CniArgs, ArgsError> {
    let mut args = CniArgs::default();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ArgsError::NotKeyValue(pair.to_owned()))?;
        if key.is_empty() {
            return Err(ArgsError::EmptyKey(pair.to_owned()));
        }
        let present = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "K8S_POD_NAMESPACE" => args.pod_namespace = present,
            "K8S_POD_NAME" => args.pod_name = present,
            "K8S_POD_UID" => args.pod_uid = present,
            _ => args.other.push((key.to_owned(), value.to_owned())),
        }
    }
    Ok(args)
}

/// Host-side veth name: "podr" + 11 lowercase hex chars (the high 44 bits)
/// of FNV-1a 64 of "{ns}/{pod}" (when ifname != "eth0": "{ns}/{pod}/{ifname}");
/// without pod identity, of "{containerID}/{ifname}". Always 15 bytes, a
/// valid interface name. Stable forever: never change the hash, or veths of
/// running pods are no longer found.
pub fn host_veth_name(pod: Option<(&str, &str)>, container_id: &str, ifname: &str) -> String {
    let key = match pod {
        Some((ns, name)) if ifname == "eth0" => format!("{ns}/{name}"),
        Some((ns, name)) => format!("{ns}/{name}/{ifname}"),
        None => format!("{container_id}/{ifname}"),
    };
    format!("{HOST_VETH_PREFIX}{:011x}", fnv1a64(key.as_bytes()) >> 20)
}

/// "{network}:{containerID}.{ifname}" — the ipamd handle, the spec's
/// (network, CNI_CONTAINERID, CNI_IFNAME) key. ipamd takes letters, digits
/// and ".-_:" only; a valid network name and container ID hold nothing
/// else, and a byte of the ifname outside that set is written ":XX" (hex),
/// which cannot collide since ':' appears in none of the three parts.
/// "eth0" and "net1" come out unchanged. The network ends at the first ':',
/// so `ipam_handle_prefix` selects exactly one network's handles.
pub fn ipam_handle(network: &str, container_id: &str, ifname: &str) -> String {
    let mut handle = format!("{}{container_id}.", ipam_handle_prefix(network));
    for byte in ifname.bytes() {
        if is_handle_byte(byte) && byte != b':' {
            handle.push(char::from(byte));
        } else {
            handle.push_str(&format!(":{byte:02x}"));
        }
    }
    handle
}

/// What every handle of `network` starts with, and no other network's
/// ("pod:" is not a prefix of "pod.x:..."): GC's scope in ipamd.
pub fn ipam_handle_prefix(network: &str) -> String {
    format!("{network}:")
}

/// Link alias marking a host veth as ours:
/// "podroute:{network}:{containerID}:{ifname}:{ns}/{pod}" ("-/-" without pod
/// identity). The kernel takes at most 255 bytes: a longer pod name is cut
/// to fit (the owner fields are never cut), and when even the namespace
/// does not fit the pod part is "-/-".
pub fn veth_alias(
    network: &str,
    container_id: &str,
    ifname: &str,
    pod: Option<(&str, &str)>,
) -> String {
    let head = format!("{VETH_ALIAS_PREFIX}{network}:{container_id}:{ifname}:");
    let pod = pod.filter(|(ns, name)| !ns.is_empty() && !name.is_empty());
    let tail = pod
        .and_then(|(ns, name)| {
            let room = MAX_ALIAS_LEN.checked_sub(head.len() + ns.len() + 1)?;
            let name = truncate_at_char(name, room);
            (!name.is_empty()).then(|| format!("{ns}/{name}"))
        })
        .unwrap_or_else(|| "-/-".to_owned());
    head + &tail
}

/// Reads an alias written by [`veth_alias`]; None when it is not one (not
/// ours, or damaged).
pub fn parse_veth_alias(alias: &str) -> Option<VethOwner> {
    let rest = alias.strip_prefix(VETH_ALIAS_PREFIX)?;
    let mut parts = rest.splitn(4, ':');
    let (network, container_id, ifname, pod) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !is_spec_identifier(network) || !valid_container_id(container_id) || !valid_ifname(ifname) {
        return None;
    }
    let pod = match pod {
        "-/-" => None,
        _ => {
            let (ns, name) = pod.split_once('/')?;
            if ns.is_empty() || name.is_empty() {
                return None;
            }
            Some((ns.to_owned(), name.to_owned()))
        }
    };
    Some(VethOwner {
        network: network.to_owned(),
        container_id: container_id.to_owned(),
        ifname: ifname.to_owned(),
        pod,
    })
}

/// CNI_IFNAME check: 1..=15 bytes, not "." or "..", no '/', ':' or
/// whitespace (the spec's rule, which is the kernel's dev_valid_name).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
}

/// CNI_CONTAINERID check per spec: non-empty, starts with an alphanumeric
/// character, then alphanumerics, '_', '.', '-'.
pub fn valid_container_id(id: &str) -> bool {
    is_spec_identifier(id)
}

/// The spec's rule for container IDs and network names: an ASCII letter or
/// digit, then letters, digits, '_', '.' or '-'.
pub(crate) fn is_spec_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's
/// hashers, so names made from it can be found again after an upgrade.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

/// Bytes ipamd accepts in a handle.
fn is_handle_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kubernetes_args() {
        let args = parse_cni_args(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e2d3c-aaaa-bbbb",
        )
        .unwrap();
        assert_eq!(args.pod_namespace.as_deref(), Some("default"));
        assert_eq!(args.pod_name.as_deref(), Some("web-0"));
        assert_eq!(args.pod_uid.as_deref(), Some("0f1e2d3c-aaaa-bbbb"));
        assert_eq!(
            args.other,
            vec![
                ("IgnoreUnknown".to_owned(), "1".to_owned()),
                ("K8S_POD_INFRA_CONTAINER_ID".to_owned(), "abc123".to_owned()),
            ]
        );
        assert_eq!(args.pod(), Some(("default", "web-0")));
    }

    #[test]
    fn empty_args_and_empty_pairs() {
        assert_eq!(parse_cni_args("").unwrap(), CniArgs::default());
        assert_eq!(parse_cni_args(";;").unwrap(), CniArgs::default());
        let args = parse_cni_args("K8S_POD_NAME=a;").unwrap();
        assert_eq!(args.pod_name.as_deref(), Some("a"));
        // Only the name: no pod identity.
        assert_eq!(args.pod(), None);
    }

    #[test]
    fn values_may_hold_equals_and_be_empty() {
        let args = parse_cni_args("A=b=c;K8S_POD_NAMESPACE=;B=").unwrap();
        assert_eq!(args.pod_namespace, None);
        assert_eq!(
            args.other,
            vec![
                ("A".to_owned(), "b=c".to_owned()),
                ("B".to_owned(), String::new())
            ]
        );
    }

    #[test]
    fn last_value_wins() {
        let args = parse_cni_args("K8S_POD_NAME=a;K8S_POD_NAME=b").unwrap();
        assert_eq!(args.pod_name.as_deref(), Some("b"));
    }

    #[test]
    fn malformed_args_are_errors() {
        let err = parse_cni_args("K8S_POD_NAME=a;abc").unwrap_err();
        assert_eq!(err, ArgsError::NotKeyValue("abc".to_owned()));
        assert_eq!(err.to_string(), r#"CNI_ARGS: "abc" is not KEY=VALUE"#);
        let err = parse_cni_args("=x").unwrap_err();
        assert_eq!(err, ArgsError::EmptyKey("=x".to_owned()));
        assert_eq!(err.to_string(), r#"CNI_ARGS: empty key in "=x""#);
    }

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn host_veth_names_are_pinned() {
        // These names are on nodes: the hash must never change.
        assert_eq!(
            host_veth_name(Some(("default", "web-0")), "c1", "eth0"),
            format!("podr{:011x}", fnv1a64(b"default/web-0") >> 20)
        );
        assert_eq!(
            host_veth_name(Some(("default", "web-0")), "c1", "eth0"),
            "podr2019a4a4401"
        );
        assert_eq!(
            host_veth_name(Some(("kube-system", "coredns-abc")), "c1", "eth0"),
            "podrc07f64372e8"
        );
        assert_eq!(
            host_veth_name(Some(("default", "web-0")), "c1", "net1"),
            "podrd75142c9e38"
        );
        assert_eq!(host_veth_name(None, "abc123", "eth0"), "podr2b5118d26ad");
    }

    #[test]
    fn host_veth_name_depends_on_the_right_inputs() {
        let pod = Some(("ns", "pod"));
        // With pod identity the container ID does not matter (a restarted
        // sandbox gets the same name) ...
        assert_eq!(
            host_veth_name(pod, "c1", "eth0"),
            host_veth_name(pod, "c2", "eth0")
        );
        // ... but a second interface of the pod does.
        assert_ne!(
            host_veth_name(pod, "c1", "eth0"),
            host_veth_name(pod, "c1", "net1")
        );
        assert_ne!(
            host_veth_name(None, "c1", "eth0"),
            host_veth_name(None, "c2", "eth0")
        );
        let name = host_veth_name(pod, "c1", "eth0");
        assert_eq!(name.len(), MAX_IFNAME_LEN);
        assert!(name.starts_with(HOST_VETH_PREFIX));
        assert!(valid_ifname(&name));
    }

    #[test]
    fn ipam_handles() {
        assert_eq!(
            ipam_handle("podroute", "abc123", "eth0"),
            "podroute:abc123.eth0"
        );
        // Bytes ipamd refuses are escaped, injectively.
        assert_eq!(ipam_handle("n", "c", "a@b"), "n:c.a:40b");
        assert_eq!(ipam_handle("n", "c", "é"), "n:c.:c3:a9");
        // One network's prefix never selects another's handles.
        assert!(ipam_handle("pod", "c", "eth0").starts_with(&ipam_handle_prefix("pod")));
        assert!(!ipam_handle("pod.x", "c", "eth0").starts_with(&ipam_handle_prefix("pod")));
        assert_ne!(ipam_handle("n", "c", "a@b"), ipam_handle("n", "c", "a_b"));
        let handle = ipam_handle("k8s-pod-network", &"f".repeat(64), "eth0");
        assert!(handle.len() <= 253);
        assert!(handle.bytes().all(is_handle_byte));
    }

    #[test]
    fn alias_round_trip() {
        let alias = veth_alias("podroute", "abc123", "eth0", Some(("default", "web-0")));
        assert_eq!(alias, "podroute:podroute:abc123:eth0:default/web-0");
        assert_eq!(
            parse_veth_alias(&alias),
            Some(VethOwner {
                network: "podroute".to_owned(),
                container_id: "abc123".to_owned(),
                ifname: "eth0".to_owned(),
                pod: Some(("default".to_owned(), "web-0".to_owned())),
            })
        );
        let alias = veth_alias("net.1", "abc", "net1", None);
        assert_eq!(alias, "podroute:net.1:abc:net1:-/-");
        let owner = parse_veth_alias(&alias).unwrap();
        assert_eq!(owner.pod, None);
        assert_eq!(owner.network, "net.1");
        // An empty half of the pod identity is no identity.
        assert_eq!(
            veth_alias("n", "c", "eth0", Some(("", "p"))),
            "podroute:n:c:eth0:-/-"
        );
    }

    #[test]
    fn long_pod_names_are_cut_to_fit_the_kernel() {
        let long = "p".repeat(253);
        let alias = veth_alias(
            "podroute",
            &"c".repeat(64),
            "eth0",
            Some(("default", &long)),
        );
        assert_eq!(alias.len(), MAX_ALIAS_LEN);
        let owner = parse_veth_alias(&alias).unwrap();
        assert_eq!(owner.container_id, "c".repeat(64));
        let (ns, name) = owner.pod.unwrap();
        assert_eq!(ns, "default");
        assert!(long.starts_with(&name));
        // A cut never splits a character.
        let alias = veth_alias("n", "c", "eth0", Some(("ns", &"é".repeat(200))));
        assert!(alias.len() <= MAX_ALIAS_LEN);
        assert!(parse_veth_alias(&alias).is_some());
        // No room even for the namespace: no pod part.
        let alias = veth_alias(&"n".repeat(240), "c", "eth0", Some(("default", "web")));
        assert!(alias.ends_with(":-/-"));
    }

    #[test]
    fn foreign_aliases_are_not_ours() {
        for alias in [
            "",
            "podroute",
            "calico:n:c:eth0:-/-",
            "podroute:n:c:eth0",
            "podroute::c:eth0:-/-",
            "podroute:n::eth0:-/-",
            "podroute:n:c::-/-",
            "podroute:n:c:eth0:nopod",
            "podroute:n:c:eth0:/p",
            "podroute:n:c:eth0:ns/",
            "podroute:-n:c:eth0:-/-",
        ] {
            assert_eq!(parse_veth_alias(alias), None, "{alias:?}");
        }
    }

    #[test]
    fn ifname_rules() {
        for ok in [
            "eth0",
            "net1",
            "a",
            "x".repeat(15).as_str(),
            "eth0.100",
            "veth-é",
        ] {
            assert!(valid_ifname(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "x".repeat(16).as_str(),
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{a0}b",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn container_id_rules() {
        for ok in ["a", "0", "abc123", "a_b.c-d", "A9"] {
            assert!(valid_container_id(ok), "{ok:?}");
        }
        for bad in ["", "_a", ".a", "-a", "a/b", "a b", "a:b", "é"] {
            assert!(!valid_container_id(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn host_veth_name_is_always_a_valid_ifname(
            ns in "\\PC{0,64}",
            pod in "\\PC{0,64}",
            cid in "\\PC{0,80}",
            ifname in "\\PC{0,20}",
            with_pod: bool,
        ) {
            let identity = with_pod.then_some((ns.as_str(), pod.as_str()));
            let name = host_veth_name(identity, &cid, &ifname);
            prop_assert!(valid_ifname(&name));
            prop_assert_eq!(name.len(), MAX_IFNAME_LEN);
            prop_assert!(name.starts_with(HOST_VETH_PREFIX));
        }

        #[test]
        fn alias_round_trips_for_valid_owners(
            // Short enough that nothing is cut (at most 245 bytes).
            network in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}",
            cid in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,64}",
            ifname in "[a-z][a-z0-9]{0,14}",
            pod in proptest::option::of(("[a-z0-9][a-z0-9-]{0,39}", "[a-z0-9][a-z0-9.-]{0,90}")),
        ) {
            let alias = veth_alias(&network, &cid, &ifname, pod.as_ref().map(|(n, p)| (n.as_str(), p.as_str())));
            prop_assert!(alias.len() <= MAX_ALIAS_LEN);
            let owner = parse_veth_alias(&alias).unwrap();
            prop_assert_eq!(owner.network, network);
            prop_assert_eq!(owner.container_id, cid);
            prop_assert_eq!(owner.ifname, ifname);
            prop_assert_eq!(owner.pod, pod);
        }

        #[test]
        fn handles_only_hold_bytes_ipamd_takes(
            network in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}",
            cid in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,64}",
            ifname in "\\PC{1,15}",
        ) {
            let handle = ipam_handle(&network, &cid, &ifname);
            prop_assert!(handle.bytes().all(is_handle_byte));
        }

        #[test]
        fn cni_args_never_panic(s in "\\PC{0,100}") {
            let _ = parse_cni_args(&s);
        }
    }
}
