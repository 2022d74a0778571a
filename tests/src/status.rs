// What a lab looks like right now, read from the kernel rather than from
// memory of what was made: per node its namespace, the processes in it and
// its interfaces with their addresses.

use std::fs;

use serde::{Deserialize, Serialize};

use crate::lab::node_runtime;
use crate::netns;
use crate::role::Role;
use crate::topology::Topology;

#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub name: String,
    pub file: String,
    /// Every node's namespace exists.
    pub up: bool,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub role: Role,
    pub image: String,
    pub netns: String,
    pub present: bool,
    pub processes: Vec<Process>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interface {
    #[serde(rename = "ifname")]
    pub name: String,
    #[serde(rename = "operstate", default)]
    pub state: String,
    #[serde(rename = "addr_info", default, skip_serializing)]
    addr_info: Vec<AddrInfo>,
    #[serde(skip_deserializing)]
    pub addresses: Vec<String>,
}

/// One entry of `ip -j addr`'s `addr_info`.
#[derive(Debug, Clone, Deserialize)]
struct AddrInfo {
    local: String,
    prefixlen: u8,
    #[serde(default)]
    scope: String,
}

/// Reads the state of lab `name` whose topology is `topology`.
pub fn lab_status(name: &str, topology: &Topology) -> LabStatus {
    let nodes: Vec<NodeStatus> = topology
        .nodes
        .values()
        .map(|node| {
            let rt = node_runtime(name, &node.name);
            let present = netns::exists(&rt.netns);
            NodeStatus {
                name: node.name.clone(),
                role: node.role,
                image: node.image.clone(),
                present,
                processes: if present {
                    processes(&rt.netns)
                } else {
                    vec![]
                },
                interfaces: if present {
                    interfaces(&rt.netns)
                } else {
                    vec![]
                },
                netns: rt.netns,
            }
        })
        .collect();
    LabStatus {
        name: name.to_string(),
        file: topology.file.display().to_string(),
        up: !nodes.is_empty() && nodes.iter().all(|n| n.present),
        nodes,
    }
}

fn processes(ns: &str) -> Vec<Process> {
    netns::pids(ns)
        .unwrap_or_default()
        .into_iter()
        .map(|pid| Process {
            pid,
            name: fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        })
        .collect()
}

/// Interfaces other than `lo`, with their non-link-local addresses.
fn interfaces(ns: &str) -> Vec<Interface> {
    let Ok(json) = netns::ip(&["-n", ns, "-j", "addr", "show"]) else {
        return vec![];
    };
    parse_ip_addr_json(&json)
}

fn parse_ip_addr_json(json: &str) -> Vec<Interface> {
    let mut list: Vec<Interface> = serde_json::from_str(json).unwrap_or_default();
    list.retain(|i| i.name != "lo");
    for i in &mut list {
        i.addresses = i
            .addr_info
            .iter()
            .filter(|a| a.scope != "link")
            .map(|a| format!("{}/{}", a.local, a.prefixlen))
            .collect();
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_json() {
        let json = r#"[{"ifindex":1,"ifname":"lo","operstate":"UNKNOWN","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
            {"ifindex":2,"ifname":"eth1","operstate":"UP","addr_info":[
              {"family":"inet","local":"10.0.1.2","prefixlen":24,"scope":"global"},
              {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]},
            {"ifindex":3,"ifname":"eth2","operstate":"DOWN"}]"#;
        let list = parse_ip_addr_json(json);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "eth1");
        assert_eq!(list[0].state, "UP");
        assert_eq!(list[0].addresses, ["10.0.1.2/24"]);
        assert!(list[1].addresses.is_empty());
    }
}
