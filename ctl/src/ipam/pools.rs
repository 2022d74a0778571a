// `podctl ipam pools` and `podctl ipam usage`: the IP pools with their
// spec and how full each one is, like `calicoctl get ippools -o wide` and
// `calicoctl ipam show`. Usage numbers come from ipamd's Usage call, which
// counts reserved ranges out of the capacity.

use podroute_proto::ipam::v1::{Pool, PoolUsage};
use serde::Serialize;

use crate::human;
use crate::output::{RenderError, View};

/// One pool's spec; the JSON field names are a documented, stable schema
/// (ctl/OUTPUT.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolView {
    pub name: String,
    pub cidr: String,
    /// Prefix length of the pool's blocks (26 means /26 blocks).
    pub block_size: u32,
    pub disabled: bool,
    /// Label selector text; empty selects every node.
    pub node_selector: String,
    pub disable_bgp_export: bool,
    pub reserved_cidrs: Vec<String>,
}

/// A pool with its usage (absent when the pool appeared between podctl's
/// two questions).
#[derive(Debug, Serialize)]
pub struct PoolRow {
    #[serde(flatten)]
    pub pool: PoolView,
    pub allocated: Option<u64>,
    pub capacity: Option<u64>,
    pub used_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct PoolsReport {
    pub pools: Vec<PoolRow>,
}

/// `podctl ipam usage`: one pool's counts.
#[derive(Debug, Serialize)]
pub struct UsageView {
    pub pool: String,
    pub cidr: String,
    pub disabled: bool,
    /// Addresses of the pool minus the reserved ones.
    pub capacity: u64,
    pub allocated: u64,
    pub cooling: u64,
    pub reserved: u64,
    /// Neither allocated nor cooling down: what can be handed out now.
    pub free: u64,
    pub used_percent: f64,
    pub blocks_total: u64,
    pub blocks_claimed: u64,
}

#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub pools: Vec<UsageView>,
}

/// Joins the pools with their usage, by pool name.
pub fn pools_report(pools: Vec<Pool>, usage: &[PoolUsage]) -> PoolsReport {
    let pools = pools
        .into_iter()
        .map(|pool| {
            let used = usage.iter().find(|u| u.pool == pool.name);
            PoolRow {
                pool: PoolView::from(pool),
                allocated: used.map(|u| u.allocated),
                capacity: used.map(|u| u.capacity),
                used_percent: used.map(|u| percent(u.allocated, u.capacity)),
            }
        })
        .collect();
    PoolsReport { pools }
}

pub fn usage_report(usage: Vec<PoolUsage>) -> UsageReport {
    UsageReport {
        pools: usage.into_iter().map(UsageView::from).collect(),
    }
}

pub fn render_pools(report: &PoolsReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    if report.pools.is_empty() {
        return Ok(NO_POOLS.to_string());
    }
    let rows: Vec<Vec<String>> = report
        .pools
        .iter()
        .map(|row| {
            let p = &row.pool;
            vec![
                p.name.clone(),
                p.cidr.clone(),
                format!("/{}", p.block_size),
                yes_no(p.disabled),
                selector(&p.node_selector),
                yes_no(!p.disable_bgp_export),
                match (row.allocated, row.capacity) {
                    (Some(a), Some(c)) => format!("{a}/{c}"),
                    _ => "-".into(),
                },
                row.used_percent.map_or("-".into(), format_percent),
            ]
        })
        .collect();
    Ok(human::table(
        &[
            "NAME",
            "CIDR",
            "BLOCK SIZE",
            "DISABLED",
            "SELECTOR",
            "BGP EXPORT",
            "ALLOCATED",
            "USED",
        ],
        &rows,
    ))
}

pub fn render_usage(report: &UsageReport, view: View) -> Result<String, RenderError> {
    if let Some(text) = view.structured(report)? {
        return Ok(text);
    }
    if report.pools.is_empty() {
        return Ok(NO_POOLS.to_string());
    }
    let rows: Vec<Vec<String>> = report
        .pools
        .iter()
        .map(|u| {
            vec![
                u.pool.clone(),
                u.cidr.clone(),
                format!("{}/{}", u.allocated, u.capacity),
                format_percent(u.used_percent),
                u.cooling.to_string(),
                u.reserved.to_string(),
                u.free.to_string(),
                format!("{}/{}", u.blocks_claimed, u.blocks_total),
                yes_no(u.disabled),
            ]
        })
        .collect();
    Ok(human::table(
        &[
            "POOL",
            "CIDR",
            "ALLOCATED",
            "USED",
            "COOLING",
            "RESERVED",
            "FREE",
            "BLOCKS CLAIMED",
            "DISABLED",
        ],
        &rows,
    ))
}

impl From<Pool> for PoolView {
    fn from(p: Pool) -> Self {
        PoolView {
            name: p.name,
            cidr: p.cidr,
            block_size: p.block_size,
            disabled: p.disabled,
            node_selector: p.node_selector,
            disable_bgp_export: p.disable_bgp_export,
            reserved_cidrs: p.reserved_cidrs,
        }
    }
}

impl From<PoolUsage> for UsageView {
    fn from(u: PoolUsage) -> Self {
        UsageView {
            free: u
                .capacity
                .saturating_sub(u.allocated)
                .saturating_sub(u.cooling),
            used_percent: percent(u.allocated, u.capacity),
            pool: u.pool,
            cidr: u.cidr,
            disabled: u.disabled,
            capacity: u.capacity,
            allocated: u.allocated,
            cooling: u.cooling,
            reserved: u.reserved,
            blocks_total: u.blocks_total,
            blocks_claimed: u.blocks_claimed,
        }
    }
}

const NO_POOLS: &str = "no IP pools: create one with `podctl ipam pool create NAME --cidr CIDR`\n";

/// `part` of `whole` in percent, to one decimal (0 for an empty whole).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Counts are far below 2^53, so the float conversion is exact.
    let ratio = part as f64 * 1000.0 / whole as f64;
    ratio.round() / 10.0
}

fn format_percent(p: f64) -> String {
    format!("{p:.1}%")
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The selector as Calico users know it: "all()" for every node.
pub fn selector(text: &str) -> String {
    if text.trim().is_empty() {
        "all()".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> Vec<Pool> {
        vec![
            Pool {
                name: "default-ipv4".into(),
                cidr: "10.244.0.0/16".into(),
                block_size: 26,
                ..Pool::default()
            },
            Pool {
                name: "edge-v6".into(),
                cidr: "fd00:10:244::/112".into(),
                block_size: 122,
                disabled: true,
                node_selector: "zone in (edge)".into(),
                disable_bgp_export: true,
                reserved_cidrs: vec!["fd00:10:244::/120".into()],
            },
        ]
    }

    fn usage() -> Vec<PoolUsage> {
        vec![PoolUsage {
            pool: "default-ipv4".into(),
            cidr: "10.244.0.0/16".into(),
            capacity: 65_536,
            allocated: 200,
            cooling: 3,
            reserved: 0,
            blocks_total: 1024,
            blocks_claimed: 4,
            ..PoolUsage::default()
        }]
    }

    #[test]
    fn percent_to_one_decimal() {
        assert_eq!(percent(200, 65_536), 0.3);
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(64, 64), 100.0);
        assert_eq!(percent(0, 0), 0.0);
    }

    #[test]
    fn pools_table() {
        let report = pools_report(pools(), &usage());
        let text = render_pools(&report, View::TABLE).unwrap();
        assert_eq!(
            text,
            "\
NAME          CIDR               BLOCK SIZE  DISABLED  SELECTOR        BGP EXPORT  ALLOCATED  USED
default-ipv4  10.244.0.0/16      /26         no        all()           yes         200/65536  0.3%
edge-v6       fd00:10:244::/112  /122        yes       zone in (edge)  no          -          -
"
        );
        let empty = pools_report(Vec::new(), &[]);
        assert!(
            render_pools(&empty, View::TABLE)
                .unwrap()
                .contains("podctl ipam pool create")
        );
    }

    #[test]
    fn pools_json_schema() {
        let report = pools_report(pools(), &usage());
        let json: serde_json::Value =
            serde_json::from_str(&render_pools(&report, View::JSON).unwrap()).unwrap();
        assert_eq!(
            json["pools"][0],
            serde_json::json!({
                "name": "default-ipv4",
                "cidr": "10.244.0.0/16",
                "block_size": 26,
                "disabled": false,
                "node_selector": "",
                "disable_bgp_export": false,
                "reserved_cidrs": [],
                "allocated": 200,
                "capacity": 65536,
                "used_percent": 0.3,
            })
        );
        assert_eq!(json["pools"][1]["reserved_cidrs"][0], "fd00:10:244::/120");
        assert_eq!(json["pools"][1]["allocated"], serde_json::Value::Null);
        assert_eq!(json["pools"][1]["used_percent"], serde_json::Value::Null);
    }

    #[test]
    fn usage_table_and_json() {
        let report = usage_report(usage());
        let text = render_usage(&report, View::TABLE).unwrap();
        assert_eq!(
            text,
            "\
POOL          CIDR           ALLOCATED  USED  COOLING  RESERVED  FREE   BLOCKS CLAIMED  DISABLED
default-ipv4  10.244.0.0/16  200/65536  0.3%  3        0         65333  4/1024          no
"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_usage(&report, View::JSON).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"pools": [{
                "pool": "default-ipv4",
                "cidr": "10.244.0.0/16",
                "disabled": false,
                "capacity": 65536,
                "allocated": 200,
                "cooling": 3,
                "reserved": 0,
                "free": 65333,
                "used_percent": 0.3,
                "blocks_total": 1024,
                "blocks_claimed": 4,
            }]})
        );
    }
}
