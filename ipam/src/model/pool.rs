// The IPPool resource (podroute.io/v1, the same document as a CRD or a manifest
// file) and its validation. A pool is a CIDR carved into blocks of `blockSize`;
// nodes its `nodeSelector` selects take blocks from it.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{API_VERSION, ErrorClass, Family, KIND_IP_POOL, net};
use podroute_labels::{Selector, SelectorError, is_dns_subdomain};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPool {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: IpPoolSpec,
}

/// The part of Kubernetes' ObjectMeta we use; other fields (uid, annotations, ...)
/// are accepted and dropped so a CRD object reads too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// An IPPool's settings. Unknown fields are refused: a misspelt
/// `blocksize` must not silently become /26.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Each printcolumn repeats `type_ =`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "podroute.io",
    version = "v1",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ipp",
    category = "podroute",
    status = "crate::model::crd::IpPoolStatus",
    derive = "PartialEq",
    doc = "A range of pod addresses, carved into blocks that nodes claim (ipam/README.md)",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr"),
    printcolumn(name = "Block Size", type_ = "integer", json_path = ".spec.blockSize"),
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
    printcolumn(name = "Allocated", type_ = "integer", json_path = ".status.allocated"),
    printcolumn(name = "Capacity", type_ = "integer", json_path = ".status.capacity"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct IpPoolSpec {
    /// The pool's network, e.g. 10.244.0.0/16 or fd00:10:244::/56.
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
    /// Prefix length of the blocks nodes claim: 20 to 32 for IPv4 (default
    /// 26), 116 to 128 for IPv6 (default 122).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 20, max = 128))]
    pub block_size: Option<u8>,
    /// No new blocks or addresses from this pool; what is allocated stays.
    #[serde(default)]
    pub disabled: bool,
    /// Label selector text, Kubernetes' or Calico's `&&` form
    /// (`podroute_labels::Selector::parse`); "" selects every node.
    #[serde(default)]
    pub node_selector: String,
    /// Do not announce this pool's blocks over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// Networks inside the pool never handed out.
    #[serde(default, rename = "reservedCIDRs")]
    #[schemars(with = "Vec<String>")]
    pub reserved_cidrs: Vec<IpNetwork>,
}

/// Block prefix length when the pool does not say (Calico's defaults).
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;
/// Allowed block prefix lengths: a block holds at most 4096 addresses, so its
/// offsets fit a u32 and one block record stays small.
pub const BLOCK_SIZE_RANGE_V4: (u8, u8) = (20, 32);
pub const BLOCK_SIZE_RANGE_V6: (u8, u8) = (116, 128);

/// Why a pool is refused, or a pool operation is. `class()` gives the gRPC code:
/// `NotFound` → NOT_FOUND; `Exists` → ALREADY_EXISTS; `InUse`, `BlockSizeFixed`,
/// `CidrFixed` → FAILED_PRECONDITION; the rest → INVALID_ARGUMENT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error(
        "pool name {0:?} is not a DNS subdomain (lower-case letters, digits, \"-\" and \".\", at most 253 characters)"
    )]
    InvalidName(String),
    #[error(
        "pool {name:?}: apiVersion {api_version:?} kind {kind:?} is not an IPPool (want apiVersion \"podroute.io/v1\", kind \"IPPool\")"
    )]
    WrongKind {
        name: String,
        api_version: String,
        kind: String,
    },
    #[error("{cidr} is not a network address: its host bits are set (did you mean {network}?)")]
    NotNetworkAddress { cidr: IpNetwork, network: IpNetwork },
    #[error(
        "pool {name:?}: blockSize {block_size} is out of range: {family} blocks are /{min} to /{max}"
    )]
    BlockSizeOutOfRange {
        name: String,
        block_size: u8,
        family: Family,
        min: u8,
        max: u8,
    },
    #[error("pool {name:?}: blockSize /{block_size} is larger than the pool {cidr}")]
    BlockLargerThanPool {
        name: String,
        block_size: u8,
        cidr: IpNetwork,
    },
    #[error("pool {name:?}: reserved CIDR {reserved} is not inside the pool {cidr}")]
    ReservedOutsidePool {
        name: String,
        reserved: IpNetwork,
        cidr: IpNetwork,
    },
    #[error("pool {name:?}: nodeSelector: {source}")]
    BadSelector {
        name: String,
        #[source]
        source: SelectorError,
    },
    #[error("pool {name:?} ({cidr}) overlaps pool {other:?} ({other_cidr})")]
    Overlaps {
        name: String,
        cidr: IpNetwork,
        other: String,
        other_cidr: IpNetwork,
    },
    /// Creating a pool whose name is taken by a pool with another spec.
    #[error("a pool named {0:?} already exists with another spec")]
    Exists(String),
    /// Deleting a pool some of whose addresses are held.
    #[error("pool {name:?} is in use: {allocated} of its addresses are allocated")]
    InUse { name: String, allocated: u64 },
    #[error("no pool named {0:?}")]
    NotFound(String),
    #[error("pool {name:?}: blockSize cannot change while the pool has blocks ({blocks} claimed)")]
    BlockSizeFixed { name: String, blocks: usize },
    #[error("pool {name:?}: cidr cannot change while the pool has blocks ({blocks} claimed)")]
    CidrFixed { name: String, blocks: usize },
}

impl PoolError {
    pub fn class(&self) -> ErrorClass {
        match self {
            PoolError::NotFound(_) => ErrorClass::NotFound,
            PoolError::Exists(_) => ErrorClass::AlreadyExists,
            PoolError::InUse { .. }
            | PoolError::BlockSizeFixed { .. }
            | PoolError::CidrFixed { .. } => ErrorClass::FailedPrecondition,
            _ => ErrorClass::InvalidArgument,
        }
    }
}

impl IpPool {
    /// A pool document with the usual apiVersion and kind.
    pub fn new(name: impl Into<String>, spec: IpPoolSpec) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: KIND_IP_POOL.to_string(),
            metadata: ObjectMeta {
                name: name.into(),
                labels: BTreeMap::new(),
            },
            spec,
        }
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn family(&self) -> Family {
        Family::of_net(&self.spec.cidr)
    }

    /// Prefix length of this pool's blocks.
    pub fn block_prefix(&self) -> u8 {
        self.spec.block_size.unwrap_or(match self.family() {
            Family::V4 => DEFAULT_BLOCK_SIZE_V4,
            Family::V6 => DEFAULT_BLOCK_SIZE_V6,
        })
    }

    /// The same pool with the default block size written out, as it is stored: a
    /// later change of the default must not change a pool's blocks.
    pub fn normalized(mut self) -> Self {
        self.spec.block_size = Some(self.block_prefix());
        self
    }

    /// True when `other` describes the same pool (defaults filled in).
    pub fn same_spec(&self, other: &IpPool) -> bool {
        self.name() == other.name()
            && self.clone().normalized().spec == other.clone().normalized().spec
    }
}

/// Validation: name is a DNS-1123 subdomain; apiVersion/kind are ours; cidr and
/// reserved CIDRs are network addresses; blockSize within v4 20..=32 / v6
/// 116..=128 and not larger than the pool; reserved CIDRs inside the pool; the
/// selector parses; no overlap with any pool of `others` (a pool of the same name
/// in `others` is skipped: it is the one being replaced).
pub fn validate_pool(pool: &IpPool, others: &[&IpPool]) -> Result<(), PoolError> {
    let name = pool.name().to_string();
    if !is_dns_subdomain(&name) {
        return Err(PoolError::InvalidName(name));
    }
    if pool.api_version != API_VERSION || pool.kind != KIND_IP_POOL {
        return Err(PoolError::WrongKind {
            name,
            api_version: pool.api_version.clone(),
            kind: pool.kind.clone(),
        });
    }
    let cidr = pool.spec.cidr;
    check_network_address(&cidr)?;
    let family = pool.family();
    let block_size = pool.block_prefix();
    let (min, max) = match family {
        Family::V4 => BLOCK_SIZE_RANGE_V4,
        Family::V6 => BLOCK_SIZE_RANGE_V6,
    };
    if !(min..=max).contains(&block_size) {
        return Err(PoolError::BlockSizeOutOfRange {
            name,
            block_size,
            family,
            min,
            max,
        });
    }
    if block_size < cidr.prefix() {
        return Err(PoolError::BlockLargerThanPool {
            name,
            block_size,
            cidr,
        });
    }
    for reserved in &pool.spec.reserved_cidrs {
        check_network_address(reserved)?;
        if !net::is_within(reserved, &cidr) {
            return Err(PoolError::ReservedOutsidePool {
                name,
                reserved: *reserved,
                cidr,
            });
        }
    }
    if let Err(source) = Selector::parse(&pool.spec.node_selector) {
        return Err(PoolError::BadSelector { name, source });
    }
    if let Some(other) = others
        .iter()
        .find(|o| o.name() != name && net::overlaps(&o.spec.cidr, &cidr))
    {
        return Err(PoolError::Overlaps {
            name,
            cidr,
            other: other.name().to_string(),
            other_cidr: other.spec.cidr,
        });
    }
    Ok(())
}

fn check_network_address(cidr: &IpNetwork) -> Result<(), PoolError> {
    if net::is_network_address(cidr) {
        return Ok(());
    }
    // Cannot fail: the prefix came from a valid network of the same family.
    let network = net::network_of(cidr.ip(), cidr.prefix()).unwrap_or(*cidr);
    Err(PoolError::NotNetworkAddress {
        cidr: *cidr,
        network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, cidr: &str) -> IpPool {
        IpPool::new(
            name,
            IpPoolSpec {
                cidr: cidr.parse().unwrap(),
                block_size: None,
                disabled: false,
                node_selector: String::new(),
                disable_bgp_export: false,
                reserved_cidrs: vec![],
            },
        )
    }

    #[test]
    fn defaults_and_accessors() {
        let p4 = pool("default-ipv4", "10.244.0.0/16");
        assert_eq!(p4.block_prefix(), 26);
        assert_eq!(p4.family(), Family::V4);
        let p6 = pool("default-ipv6", "fd00:10:244::/56");
        assert_eq!(p6.block_prefix(), 122);
        assert_eq!(p6.family(), Family::V6);
        assert_eq!(p6.clone().normalized().spec.block_size, Some(122));
        assert!(p6.same_spec(&p6.clone().normalized()));
        validate_pool(&p4, &[&p6]).unwrap();
        validate_pool(&p6, &[&p4]).unwrap();
    }

    #[test]
    fn yaml_and_json_field_names() {
        let json = r#"{"apiVersion":"podroute.io/v1","kind":"IPPool",
            "metadata":{"name":"p","labels":{"a":"b"},"uid":"ignored"},
            "spec":{"cidr":"10.0.0.0/24","blockSize":28,"disabled":true,
                    "nodeSelector":"zone=a","disableBGPExport":true,
                    "reservedCIDRs":["10.0.0.0/30"]}}"#;
        let p: IpPool = serde_json::from_str(json).unwrap();
        assert_eq!(p.spec.block_size, Some(28));
        assert!(p.spec.disabled && p.spec.disable_bgp_export);
        assert_eq!(p.spec.reserved_cidrs, vec!["10.0.0.0/30".parse().unwrap()]);
        assert_eq!(p.metadata.labels.get("a").map(String::as_str), Some("b"));
        let back: IpPool = serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"disableBGPExport\":true"), "{text}");
        assert!(text.contains("\"reservedCIDRs\""), "{text}");
        let typo = r#"{"apiVersion":"podroute.io/v1","kind":"IPPool","metadata":{"name":"p"},
            "spec":{"cidr":"10.0.0.0/24","blocksize":28}}"#;
        let err = serde_json::from_str::<IpPool>(typo).unwrap_err();
        assert!(err.to_string().contains("blocksize"), "{err}");
    }

    #[test]
    fn each_rule_is_enforced() {
        let ok = pool("p", "10.0.0.0/16");
        validate_pool(&ok, &[]).unwrap();

        let mut p = ok.clone();
        p.metadata.name = "Bad_Name".into();
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::InvalidName(_))
        ));

        let mut p = ok.clone();
        p.kind = "BGPPeer".into();
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::WrongKind { .. })
        ));

        let mut p = ok.clone();
        p.spec.cidr = "10.0.0.1/16".parse().unwrap();
        let e = validate_pool(&p, &[]).unwrap_err();
        assert!(e.to_string().contains("did you mean 10.0.0.0/16"), "{e}");

        for bad in [19, 33] {
            let mut p = ok.clone();
            p.spec.block_size = Some(bad);
            assert!(matches!(
                validate_pool(&p, &[]),
                Err(PoolError::BlockSizeOutOfRange { .. })
            ));
        }
        let mut p = pool("p6", "fd00::/120");
        p.spec.block_size = Some(115);
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::BlockSizeOutOfRange { .. })
        ));
        p.spec.block_size = Some(128);
        validate_pool(&p, &[]).unwrap();

        let mut p = pool("small", "10.0.0.0/28");
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::BlockLargerThanPool { .. })
        ));
        p.spec.block_size = Some(28);
        validate_pool(&p, &[]).unwrap();

        let mut p = ok.clone();
        p.spec.reserved_cidrs = vec!["10.1.0.0/24".parse().unwrap()];
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::ReservedOutsidePool { .. })
        ));
        p.spec.reserved_cidrs = vec!["10.0.0.1/24".parse().unwrap()];
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::NotNetworkAddress { .. })
        ));
        p.spec.reserved_cidrs = vec!["fd00::/64".parse().unwrap()];
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::ReservedOutsidePool { .. })
        ));

        let mut p = ok.clone();
        p.spec.node_selector = "zone in (".into();
        let e = validate_pool(&p, &[]).unwrap_err();
        assert!(e.to_string().contains("nodeSelector"), "{e}");

        let other = pool("other", "10.0.128.0/17");
        let e = validate_pool(&ok, &[&other]).unwrap_err();
        assert!(matches!(e, PoolError::Overlaps { .. }));
        assert!(e.to_string().contains("\"other\" (10.0.128.0/17)"), "{e}");
        // The pool itself, as stored, does not count.
        let same = pool("p", "10.0.0.0/8");
        validate_pool(&ok, &[&same]).unwrap();
    }

    #[test]
    fn absurd_but_valid_cidrs_do_not_panic() {
        let mut p = pool("all4", "0.0.0.0/0");
        p.spec.block_size = Some(20);
        validate_pool(&p, &[]).unwrap();
        let p = pool("all6", "::/0");
        validate_pool(&p, &[]).unwrap();
        let p = pool("host", "10.0.0.7/32");
        assert!(matches!(
            validate_pool(&p, &[]),
            Err(PoolError::BlockLargerThanPool { .. })
        ));
    }
}
