// Store key layout and the JSON encoding of the records kept under it:
//   pools/<name>                  an IpPool
//   blocks/<address>-<prefixlen>  a BlockRecord ("blocks/10.244.3.0-26", "blocks/fd00::-122")
//   handles/<handle>              a HandleRecord
// A key and its RecordKey map one to one: parse only accepts the canonical text.

use ipnetwork::IpNetwork;

use super::pool::validate_pool;
use super::{BlockRecord, HandleRecord, IpPool, net};

pub const POOLS_PREFIX: &str = "pools/";
pub const BLOCKS_PREFIX: &str = "blocks/";
pub const HANDLES_PREFIX: &str = "handles/";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    Pool(String),
    Block(IpNetwork),
    Handle(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Pool(IpPool),
    Block(BlockRecord),
    Handle(HandleRecord),
}

/// A stored key or value that cannot be used. The service reports it (with the
/// key) and `check` lists it as an unreadable record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("key {0:?} is not an IPAM record key (pools/, blocks/<addr>-<len>, handles/)")]
    UnknownKey(String),
    #[error("record {key}: not valid JSON for its kind: {reason}")]
    Undecodable { key: String, reason: String },
    #[error("record {key} holds the record of {found}")]
    KeyMismatch { key: String, found: String },
    #[error("record {key} is not usable: {reason}")]
    Invalid { key: String, reason: String },
}

impl RecordKey {
    pub fn to_key(&self) -> String {
        match self {
            RecordKey::Pool(name) => format!("{POOLS_PREFIX}{name}"),
            RecordKey::Block(cidr) => format!("{BLOCKS_PREFIX}{}-{}", cidr.ip(), cidr.prefix()),
            RecordKey::Handle(handle) => format!("{HANDLES_PREFIX}{handle}"),
        }
    }

    /// The key's meaning; None for anything that is not a canonical record key.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(name) = key.strip_prefix(POOLS_PREFIX) {
            return (!name.is_empty()).then(|| RecordKey::Pool(name.to_string()));
        }
        if let Some(handle) = key.strip_prefix(HANDLES_PREFIX) {
            return (!handle.is_empty()).then(|| RecordKey::Handle(handle.to_string()));
        }
        let block = key.strip_prefix(BLOCKS_PREFIX)?;
        let (addr, prefix) = block.rsplit_once('-')?;
        let cidr = IpNetwork::new(addr.parse().ok()?, prefix.parse().ok()?).ok()?;
        let parsed = RecordKey::Block(cidr);
        // Host bits set, "010", "fd00:0::", "+26": not ours.
        (net::is_network_address(&cidr) && parsed.to_key() == key).then_some(parsed)
    }
}

impl Record {
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Pool(p) => RecordKey::Pool(p.name().to_string()),
            Record::Block(b) => RecordKey::Block(b.cidr),
            Record::Handle(h) => RecordKey::Handle(h.handle.clone()),
        }
    }

    /// The stored bytes: JSON.
    pub fn encode(&self) -> Vec<u8> {
        let encoded = match self {
            Record::Pool(p) => serde_json::to_vec(p),
            Record::Block(b) => serde_json::to_vec(b),
            Record::Handle(h) => serde_json::to_vec(h),
        };
        // Plain structs with string and integer map keys always serialize.
        encoded.expect("IPAM records serialize to JSON")
    }
}

/// Decode the value stored under `key`, checking that it is the record that key
/// names and that the allocator can rely on it.
pub fn decode(key: &RecordKey, bytes: &[u8]) -> Result<Record, RecordError> {
    let key_text = key.to_key();
    let undecodable = |e: serde_json::Error| RecordError::Undecodable {
        key: key_text.clone(),
        reason: e.to_string(),
    };
    let invalid = |reason: String| RecordError::Invalid {
        key: key_text.clone(),
        reason,
    };
    let record = match key {
        RecordKey::Pool(_) => {
            let pool: IpPool = serde_json::from_slice(bytes).map_err(undecodable)?;
            validate_pool(&pool, &[]).map_err(|e| invalid(e.to_string()))?;
            Record::Pool(pool)
        }
        RecordKey::Block(_) => {
            let block: BlockRecord = serde_json::from_slice(bytes).map_err(undecodable)?;
            block.validate().map_err(invalid)?;
            Record::Block(block)
        }
        RecordKey::Handle(_) => Record::Handle(serde_json::from_slice(bytes).map_err(undecodable)?),
    };
    let found = record.key();
    if &found != key {
        return Err(RecordError::KeyMismatch {
            key: key_text,
            found: found.to_key(),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Allocation, HandleAddress, IpPoolSpec};

    fn sample_pool() -> IpPool {
        IpPool::new(
            "default-ipv6",
            IpPoolSpec {
                cidr: "fd00:10:244::/56".parse().unwrap(),
                block_size: Some(122),
                disabled: false,
                node_selector: "zone in (a,b)".into(),
                disable_bgp_export: true,
                reserved_cidrs: vec!["fd00:10:244::/126".parse().unwrap()],
            },
        )
    }

    fn sample_block() -> BlockRecord {
        let mut b = BlockRecord::claimed("10.244.3.0/26".parse().unwrap(), "default-ipv4", "n1");
        b.allocate(
            7,
            Allocation {
                handle: "k8s-pod-network.abc.eth0".into(),
                node: "n1".into(),
                pod_namespace: "default".into(),
                pod_name: "web-0".into(),
                allocated_at_ms: 1_700_000_000_000,
            },
        );
        b.cooling.insert(3, 1_700_000_000_001);
        b
    }

    fn sample_handle() -> HandleRecord {
        HandleRecord {
            handle: "k8s-pod-network.abc.eth0".into(),
            node: "n1".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            addresses: vec![HandleAddress {
                address: "10.244.3.7".parse().unwrap(),
                block: "10.244.3.0/26".parse().unwrap(),
                pool: "default-ipv4".into(),
                borrowed: false,
            }],
            created_at_ms: 5,
        }
    }

    #[test]
    fn keys_round_trip() {
        let cases = [
            (RecordKey::Pool("default-ipv4".into()), "pools/default-ipv4"),
            (
                RecordKey::Block("10.244.3.0/26".parse().unwrap()),
                "blocks/10.244.3.0-26",
            ),
            (
                RecordKey::Block("fd00::/122".parse().unwrap()),
                "blocks/fd00::-122",
            ),
            (
                RecordKey::Block("fd00:10:244::40/122".parse().unwrap()),
                "blocks/fd00:10:244::40-122",
            ),
            (
                RecordKey::Block("0.0.0.0/0".parse().unwrap()),
                "blocks/0.0.0.0-0",
            ),
            (
                RecordKey::Handle("k8s-pod-network.abc:eth0".into()),
                "handles/k8s-pod-network.abc:eth0",
            ),
        ];
        for (key, text) in cases {
            assert_eq!(key.to_key(), text);
            assert_eq!(RecordKey::parse(text), Some(key));
        }
    }

    #[test]
    fn odd_keys_are_refused() {
        for text in [
            "",
            "pools/",
            "handles/",
            "blocks/",
            "blocks/10.244.3.0",
            "blocks/10.244.3.0-",
            "blocks/10.244.3.1-26",
            "blocks/10.244.3.0-33",
            "blocks/10.244.3.0-+26",
            "blocks/10.244.3.0-026",
            "blocks/fd00:0::-122",
            "blocks/fd00::-129",
            "blocks/x-1",
            "other/thing",
            "Pools/x",
        ] {
            assert_eq!(RecordKey::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn records_round_trip() {
        for record in [
            Record::Pool(sample_pool()),
            Record::Block(sample_block()),
            Record::Handle(sample_handle()),
        ] {
            let bytes = record.encode();
            assert_eq!(decode(&record.key(), &bytes).unwrap(), record);
        }
        let text = String::from_utf8(Record::Block(sample_block()).encode()).unwrap();
        assert!(text.contains("\"emptySinceMs\":null"), "{text}");
        assert!(text.contains("\"allocatedAtMs\""), "{text}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let key = RecordKey::Block("10.244.3.0/26".parse().unwrap());
        let e = decode(&key, b"{not json").unwrap_err();
        assert!(matches!(e, RecordError::Undecodable { .. }));
        assert!(e.to_string().contains("blocks/10.244.3.0-26"), "{e}");

        // A block stored under another block's key.
        let other = RecordKey::Block("10.244.3.64/26".parse().unwrap());
        let e = decode(&other, &Record::Block(sample_block()).encode()).unwrap_err();
        assert!(matches!(e, RecordError::KeyMismatch { .. }), "{e}");

        // A pool's bytes under a handle key.
        let e = decode(
            &RecordKey::Handle("h".into()),
            &Record::Pool(sample_pool()).encode(),
        )
        .unwrap_err();
        assert!(matches!(e, RecordError::Undecodable { .. }), "{e}");

        // An allocation offset outside the block.
        let mut b = sample_block();
        b.allocations.insert(64, b.allocations[&7].clone());
        let e = decode(&key, &Record::Block(b).encode()).unwrap_err();
        assert!(matches!(e, RecordError::Invalid { .. }), "{e}");

        // A pool that does not validate.
        let mut p = sample_pool();
        p.spec.block_size = Some(7);
        let e = decode(
            &RecordKey::Pool("default-ipv6".into()),
            &Record::Pool(p).encode(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("blockSize"), "{e}");

        let handle = sample_handle();
        let e = decode(
            &RecordKey::Handle("other".into()),
            &Record::Handle(handle).encode(),
        )
        .unwrap_err();
        assert!(matches!(e, RecordError::KeyMismatch { .. }), "{e}");
    }
}
