// `podctl ipam blocks [--node N]`: the address blocks carved from the pools,
// which node each is affine to, how full it is, and how long an empty one
// has been empty (it returns to its pool after ipamd's grace period; one
// that stays is what `podctl ipam check` calls a leaked block).

use podroute_proto::ipam::v1::Block;
use serde::Serialize;

use crate::human;
use crate::output::{RenderError, View};

/// One block; the JSON field names are a documented, stable schema
/// (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct BlockView {
    pub cidr: String,
    pub pool: String,
    /// The node the block is affine to; empty when unclaimed.
    pub node: String,
    pub capacity: u64,
    pub allocated: u64,
    pub cooling: u64,
    /// Addresses of this block allocated to pods of other nodes.
    pub borrowed_by_others: u64,
    pub disable_bgp_export: bool,
    /// When the block became empty; null while in use.
    pub empty_since_unix_ms: Option<u64>,
    /// Seconds it has been empty, as of podctl's clock; null while in use.
    pub empty_for_s: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct BlocksReport {
    pub blocks: Vec<BlockView>,
    /// The `--node` asked for, for the "no blocks" message.
    #[serde(skip)]
    pub node: Option<String>,
}

impl BlockView {
    /// `block` as seen at `now_ms` (Unix ms).
    pub fn new(block: Block, now_ms: u64) -> Self {
        let empty_since = (block.empty_since_unix_ms != 0).then_some(block.empty_since_unix_ms);
        BlockView {
            empty_for_s: empty_since.map(|since| now_ms.saturating_sub(since) / 1000),
            empty_since_unix_ms: empty_since,
            cidr: block.cidr,
            pool: block.pool,
            node: block.node,
            capacity: block.capacity,
            allocated: block.allocated,
            cooling: block.cooling,
            borrowed_by_others: block.borrowed_by_others,
            disable_bgp_export: block.disable_bgp_export,
        }
    }
}

pub fn render_blocks(report: &BlocksReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    if report.blocks.is_empty() {
        return Ok(match &report.node {
            Some(node) => format!("no blocks affine to node {node}\n"),
            None => "no blocks: none claimed yet\n".to_string(),
        });
    }
    let rows: Vec<Vec<String>> = report
        .blocks
        .iter()
        .map(|b| {
            vec![
                b.cidr.clone(),
                b.pool.clone(),
                if b.node.is_empty() {
                    "-".into()
                } else {
                    b.node.clone()
                },
                format!("{}/{}", b.allocated, b.capacity),
                b.cooling.to_string(),
                b.borrowed_by_others.to_string(),
                b.empty_for_s.map_or("-".into(), human::duration),
            ]
        })
        .collect();
    Ok(human::table(
        &[
            "CIDR",
            "POOL",
            "NODE",
            "ALLOCATED",
            "COOLING",
            "BORROWED BY OTHERS",
            "EMPTY FOR",
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn report() -> BlocksReport {
        let used = Block {
            cidr: "10.244.3.0/26".into(),
            pool: "default-ipv4".into(),
            node: "node-a".into(),
            capacity: 64,
            allocated: 12,
            cooling: 1,
            borrowed_by_others: 2,
            ..Block::default()
        };
        let empty = Block {
            cidr: "10.244.3.64/26".into(),
            node: "node-b".into(),
            allocated: 0,
            cooling: 0,
            borrowed_by_others: 0,
            disable_bgp_export: true,
            empty_since_unix_ms: NOW - 11_520_000,
            ..used.clone()
        };
        BlocksReport {
            blocks: vec![BlockView::new(used, NOW), BlockView::new(empty, NOW)],
            node: None,
        }
    }

    #[test]
    fn blocks_table() {
        assert_eq!(
            render_blocks(&report(), View::TABLE).unwrap(),
            "\
CIDR            POOL          NODE    ALLOCATED  COOLING  BORROWED BY OTHERS  EMPTY FOR
10.244.3.0/26   default-ipv4  node-a  12/64      1        2                   -
10.244.3.64/26  default-ipv4  node-b  0/64       0        0                   3h12m
"
        );
        let none = BlocksReport {
            blocks: Vec::new(),
            node: Some("node-c".into()),
        };
        assert_eq!(
            render_blocks(&none, View::TABLE).unwrap(),
            "no blocks affine to node node-c\n"
        );
    }

    #[test]
    fn blocks_json_schema() {
        let json: serde_json::Value =
            serde_json::from_str(&render_blocks(&report(), View::JSON).unwrap()).unwrap();
        assert_eq!(
            json["blocks"][0],
            serde_json::json!({
                "cidr": "10.244.3.0/26",
                "pool": "default-ipv4",
                "node": "node-a",
                "capacity": 64,
                "allocated": 12,
                "cooling": 1,
                "borrowed_by_others": 2,
                "disable_bgp_export": false,
                "empty_since_unix_ms": null,
                "empty_for_s": null,
            })
        );
        assert_eq!(json["blocks"][1]["empty_since_unix_ms"], NOW - 11_520_000);
        assert_eq!(json["blocks"][1]["empty_for_s"], 11_520);
        assert_eq!(json["blocks"][1]["disable_bgp_export"], true);
    }
}
