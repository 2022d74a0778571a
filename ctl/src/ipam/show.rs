// `podctl ipam show --ip A`: who holds one address (handle, pod, node,
// block, pool) or why it is free (cooling down after a release, reserved,
// in a block nobody claimed, in no pool at all), like `calicoctl ipam show
// --ip`.

use std::fmt::Write as _;
use std::net::IpAddr;

use podroute_proto::ipam::v1::ShowAddressResponse;
use serde::Serialize;

use crate::human;
use crate::output::{RenderError, View};

/// What an address is, in one word (JSON `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressState {
    /// Held by a handle.
    Allocated,
    /// Released recently; not handed out again until the cool-down ends.
    Cooling,
    /// Inside one of its pool's reservedCIDRs: never handed out.
    Reserved,
    /// In a claimed block, not held by anyone.
    Free,
    /// In a pool, in a block no node has claimed yet.
    Unclaimed,
    /// In no pool: ipamd never hands it out.
    NotInPool,
}

/// One address; the JSON field names are a documented, stable schema
/// (ctl/OUTPUT.md).
#[derive(Debug, Serialize)]
pub struct AddressView {
    pub address: String,
    pub state: AddressState,
    /// The state in a sentence.
    pub reason: String,
    /// Empty strings where a field does not apply.
    pub pool: String,
    pub block: String,
    pub block_node: String,
    pub handle: String,
    pub node: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub borrowed: bool,
    pub reserved: bool,
    /// Null unless allocated.
    pub allocated_at_unix_ms: Option<u64>,
    /// Null unless released and cooling down.
    pub cooling_until_unix_ms: Option<u64>,
    /// Seconds of cool-down left, as of podctl's clock; null unless cooling.
    pub cooling_remaining_s: Option<u64>,
}

/// Parses `--ip`: an address, or one with its host prefix (/32, /128) as
/// other podctl commands print allocations.
pub fn parse_address(text: &str) -> Result<IpAddr, String> {
    let bad = || format!("{text:?} is not an IP address (e.g. 10.244.3.7 or fd00:10:244::7)");
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let host = if ip.is_ipv4() { "32" } else { "128" };
    match prefix {
        None => Ok(ip),
        Some(p) if p == host => Ok(ip),
        Some(_) => Err(format!(
            "{text:?} is a prefix, not one address: give the address alone"
        )),
    }
}

impl AddressView {
    /// The daemon's answer about `asked`, as seen at `now_ms` (Unix ms).
    pub fn new(asked: IpAddr, r: ShowAddressResponse, now_ms: u64) -> Self {
        let address = if r.address.is_empty() {
            asked.to_string()
        } else {
            r.address.clone()
        };
        let cooling_until = (r.cooling_until_unix_ms != 0).then_some(r.cooling_until_unix_ms);
        let cooling_remaining_s = cooling_until
            .filter(|&until| until > now_ms)
            .map(|until| (until - now_ms).div_ceil(1000));
        let state = if r.allocated {
            AddressState::Allocated
        } else if r.pool.is_empty() {
            AddressState::NotInPool
        } else if r.reserved {
            AddressState::Reserved
        } else if cooling_remaining_s.is_some() {
            AddressState::Cooling
        } else if r.block.is_empty() {
            AddressState::Unclaimed
        } else {
            AddressState::Free
        };
        let reason = reason(state, &r, cooling_remaining_s.unwrap_or(0));
        AddressView {
            address,
            state,
            reason,
            allocated_at_unix_ms: (r.allocated && r.allocated_at_unix_ms != 0)
                .then_some(r.allocated_at_unix_ms),
            cooling_until_unix_ms: cooling_until,
            cooling_remaining_s,
            pool: r.pool,
            block: r.block,
            block_node: r.block_node,
            handle: r.handle,
            node: r.node,
            pod_namespace: r.pod_namespace,
            pod_name: r.pod_name,
            borrowed: r.borrowed,
            reserved: r.reserved,
        }
    }
}

/// Renders `address`; `now_ms` turns instants into ages.
pub fn render_address(
    address: &AddressView,
    view: View,
    now_ms: u64,
) -> Result<String, RenderError> {
    if let Some(text) = view.structured(address)? {
        return Ok(text);
    }
    let view = address;
    let mut out = String::new();
    let mut line = |key: &str, value: &str| {
        if !value.is_empty() {
            let _ = writeln!(out, "{key:<14}{value}");
        }
    };
    line("Address:", &view.address);
    line("State:", &view.reason);
    line("Handle:", &view.handle);
    if !view.pod_name.is_empty() {
        line("Pod:", &format!("{}/{}", view.pod_namespace, view.pod_name));
    }
    line("Node:", &view.node);
    if !view.block.is_empty() {
        let owner = if view.block_node.is_empty() {
            "affine to no node".to_string()
        } else {
            format!("affine to {}", view.block_node)
        };
        let borrowed = if view.borrowed { ", borrowed" } else { "" };
        line("Block:", &format!("{} ({owner}{borrowed})", view.block));
    }
    line("Pool:", &view.pool);
    if let Some(at) = view.allocated_at_unix_ms {
        line(
            "Allocated:",
            &format!("{} ago", human::duration(now_ms.saturating_sub(at) / 1000)),
        );
    }
    if let Some(left) = view.cooling_remaining_s {
        line("Cooling:", &format!("{} left", human::duration(left)));
    }
    Ok(out)
}

fn reason(state: AddressState, r: &ShowAddressResponse, cooling_left_s: u64) -> String {
    match state {
        AddressState::Allocated => {
            let pod = if r.pod_name.is_empty() {
                String::new()
            } else {
                format!(" for pod {}/{}", r.pod_namespace, r.pod_name)
            };
            let borrowed = if r.borrowed {
                format!(
                    " (borrowed from {}'s block)",
                    if r.block_node.is_empty() {
                        "no node"
                    } else {
                        &r.block_node
                    }
                )
            } else {
                String::new()
            };
            format!(
                "allocated to handle {}{pod} on node {}{borrowed}",
                r.handle, r.node
            )
        }
        AddressState::Cooling => format!(
            "free, cooling down: released recently, handed out again in {}",
            human::duration(cooling_left_s)
        ),
        AddressState::Reserved => format!(
            "reserved: inside a reservedCIDRs range of pool {}, never handed out",
            r.pool
        ),
        AddressState::Free => format!("free: in block {} of pool {}", r.block, r.pool),
        AddressState::Unclaimed => format!(
            "free: in pool {}, in a block no node has claimed yet",
            r.pool
        ),
        AddressState::NotInPool => {
            "not in any IP pool: ipamd never hands it out (`podctl ipam pools` lists the pools)"
                .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn held() -> ShowAddressResponse {
        ShowAddressResponse {
            address: "10.244.3.7".into(),
            pool: "default-ipv4".into(),
            block: "10.244.3.0/26".into(),
            block_node: "node-a".into(),
            allocated: true,
            handle: "podroute.0123abcd.eth0".into(),
            node: "node-b".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            borrowed: true,
            allocated_at_unix_ms: NOW - 11_520_000,
            ..ShowAddressResponse::default()
        }
    }

    #[test]
    fn parses_addresses_and_host_prefixes() {
        assert_eq!(parse_address("10.244.3.7"), Ok(ip("10.244.3.7")));
        assert_eq!(parse_address("10.244.3.7/32"), Ok(ip("10.244.3.7")));
        assert_eq!(parse_address("fd00::7/128"), Ok(ip("fd00::7")));
        assert!(
            parse_address("10.244.3.0/26")
                .unwrap_err()
                .contains("is a prefix")
        );
        assert!(
            parse_address("web-0")
                .unwrap_err()
                .contains("is not an IP address")
        );
    }

    #[test]
    fn an_allocated_address_names_its_holder() {
        let view = AddressView::new(ip("10.244.3.7"), held(), NOW);
        assert_eq!(view.state, AddressState::Allocated);
        assert_eq!(
            render_address(&view, View::TABLE, NOW).unwrap(),
            "\
Address:      10.244.3.7
State:        allocated to handle podroute.0123abcd.eth0 for pod default/web-0 on node node-b (borrowed from node-a's block)
Handle:       podroute.0123abcd.eth0
Pod:          default/web-0
Node:         node-b
Block:        10.244.3.0/26 (affine to node-a, borrowed)
Pool:         default-ipv4
Allocated:    3h12m ago
"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_address(&view, View::JSON, NOW).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "address": "10.244.3.7",
                "state": "allocated",
                "reason": view.reason,
                "pool": "default-ipv4",
                "block": "10.244.3.0/26",
                "block_node": "node-a",
                "handle": "podroute.0123abcd.eth0",
                "node": "node-b",
                "pod_namespace": "default",
                "pod_name": "web-0",
                "borrowed": true,
                "reserved": false,
                "allocated_at_unix_ms": NOW - 11_520_000,
                "cooling_until_unix_ms": null,
                "cooling_remaining_s": null,
            })
        );
    }

    #[test]
    fn a_free_address_says_why() {
        let free = ShowAddressResponse {
            address: "10.244.3.9".into(),
            pool: "default-ipv4".into(),
            block: "10.244.3.0/26".into(),
            block_node: "node-a".into(),
            ..ShowAddressResponse::default()
        };
        let cooling = ShowAddressResponse {
            cooling_until_unix_ms: NOW + 24_500,
            ..free.clone()
        };
        let view = AddressView::new(ip("10.244.3.9"), cooling.clone(), NOW);
        assert_eq!(view.state, AddressState::Cooling);
        assert_eq!(view.cooling_remaining_s, Some(25));
        let text = render_address(&view, View::TABLE, NOW).unwrap();
        assert!(
            text.contains(
                "State:        free, cooling down: released recently, handed out again in 25s\n"
            ),
            "{text}"
        );
        assert!(text.contains("Cooling:      25s left\n"), "{text}");
        // A cool-down that has ended by podctl's clock is just free.
        let ended = AddressView::new(ip("10.244.3.9"), cooling, NOW + 30_000);
        assert_eq!(ended.state, AddressState::Free);
        assert_eq!(ended.cooling_remaining_s, None);

        let view = AddressView::new(ip("10.244.3.9"), free.clone(), NOW);
        assert_eq!(
            view.reason,
            "free: in block 10.244.3.0/26 of pool default-ipv4"
        );

        let reserved = ShowAddressResponse {
            reserved: true,
            ..free.clone()
        };
        let view = AddressView::new(ip("10.244.3.9"), reserved, NOW);
        assert_eq!(view.state, AddressState::Reserved);

        let unclaimed = ShowAddressResponse {
            block: String::new(),
            block_node: String::new(),
            ..free
        };
        let view = AddressView::new(ip("10.244.3.9"), unclaimed, NOW);
        assert_eq!(view.state, AddressState::Unclaimed);

        let nowhere = AddressView::new(ip("192.0.2.1"), ShowAddressResponse::default(), NOW);
        assert_eq!(nowhere.state, AddressState::NotInPool);
        assert_eq!(nowhere.address, "192.0.2.1");
        let text = render_address(&nowhere, View::TABLE, NOW).unwrap();
        assert_eq!(
            text,
            "Address:      192.0.2.1\nState:        not in any IP pool: ipamd never hands it out (`podctl ipam pools` lists the pools)\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render_address(&nowhere, View::JSON, NOW).unwrap()).unwrap();
        assert_eq!(json["state"], "not_in_pool");
        assert_eq!(json["pool"], "");
    }
}
