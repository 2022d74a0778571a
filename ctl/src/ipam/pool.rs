// `podctl ipam pool create|delete`: adding an IP pool (from flags, or from
// an IPPool manifest) and removing one. ipamd refuses to delete a pool
// while any of its addresses is held, and removes its empty blocks with it.

use podroute_proto::ipam::v1::Pool;
use serde::Serialize;

use super::pools::{PoolView, selector};
use crate::output::{RenderError, View};

/// The pool as ipamd stored it; the JSON field names are a documented,
/// stable schema (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct CreatedView {
    pub pool: PoolView,
}

#[derive(Debug, Serialize)]
pub struct DeletedView {
    pub pool: String,
    /// Empty blocks removed with the pool.
    pub blocks_removed: u32,
}

/// The flags of `podctl ipam pool create NAME --cidr C ...`.
#[derive(Debug, Clone, Default)]
pub struct PoolFlags {
    pub name: String,
    pub cidr: String,
    pub block_size: Option<u32>,
    pub node_selector: Option<String>,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    pub reserved: Vec<String>,
}

impl From<PoolFlags> for Pool {
    fn from(f: PoolFlags) -> Self {
        Pool {
            name: f.name,
            cidr: f.cidr,
            // 0 asks ipamd for its default (/26 for IPv4, /122 for IPv6).
            block_size: f.block_size.unwrap_or(0),
            disabled: f.disabled,
            node_selector: f.node_selector.unwrap_or_default(),
            disable_bgp_export: f.disable_bgp_export,
            reserved_cidrs: f.reserved,
        }
    }
}

pub fn render_created(created: &CreatedView, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(created)? {
        return Ok(text);
    }
    let p = &created.pool;
    let mut facts = vec![
        p.cidr.clone(),
        format!("/{} blocks", p.block_size),
        if p.disabled { "disabled" } else { "enabled" }.to_string(),
        format!("nodes {}", selector(&p.node_selector)),
        if p.disable_bgp_export {
            "not exported over BGP"
        } else {
            "exported over BGP"
        }
        .to_string(),
    ];
    if !p.reserved_cidrs.is_empty() {
        facts.push(format!("reserved {}", p.reserved_cidrs.join(" ")));
    }
    Ok(format!("pool {} created: {}\n", p.name, facts.join(", ")))
}

pub fn render_deleted(deleted: &DeletedView, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(deleted)? {
        return Ok(text);
    }
    Ok(match deleted.blocks_removed {
        0 => format!("pool {} deleted\n", deleted.pool),
        1 => format!("pool {} deleted, with its 1 empty block\n", deleted.pool),
        n => format!("pool {} deleted, with its {n} empty blocks\n", deleted.pool),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_the_pool() {
        let pool = Pool::from(PoolFlags {
            name: "blue".into(),
            cidr: "10.250.0.0/16".into(),
            reserved: vec!["10.250.0.0/28".into()],
            ..PoolFlags::default()
        });
        assert_eq!(pool.block_size, 0);
        assert_eq!(pool.node_selector, "");
        assert_eq!(pool.reserved_cidrs, ["10.250.0.0/28"]);
    }

    #[test]
    fn created_and_deleted() {
        let view = CreatedView {
            pool: PoolView::from(Pool {
                name: "blue".into(),
                cidr: "10.250.0.0/16".into(),
                block_size: 26,
                reserved_cidrs: vec!["10.250.0.0/28".into()],
                ..Pool::default()
            }),
        };
        assert_eq!(
            render_created(&view, View::TABLE).unwrap(),
            "pool blue created: 10.250.0.0/16, /26 blocks, enabled, nodes all(), exported over BGP, reserved 10.250.0.0/28\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_created(&view, View::JSON).unwrap()).unwrap();
        assert_eq!(json["pool"]["name"], "blue");
        assert_eq!(json["pool"]["block_size"], 26);
        assert_eq!(json["pool"]["reserved_cidrs"][0], "10.250.0.0/28");

        let deleted = DeletedView {
            pool: "blue".into(),
            blocks_removed: 3,
        };
        assert_eq!(
            render_deleted(&deleted, View::TABLE).unwrap(),
            "pool blue deleted, with its 3 empty blocks\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_deleted(&deleted, View::JSON).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"pool": "blue", "blocks_removed": 3})
        );
    }
}
