// What a reload changes: compares two validated configurations and says
// which sessions to start, stop or restart, and what the speaker must redo
// (restart everything, re-advertise, rebind the listener). Pure, so the
// daemon's reload path is a small match over the result.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{Config, PeerConfig};

/// The difference between the running configuration and a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    pub global: GlobalChange,
    /// Only in the new configuration: start a session.
    pub peers_added: Vec<IpAddr>,
    /// Only in the old configuration: stop the session (Cease).
    pub peers_removed: Vec<IpAddr>,
    /// In both, and something the session depends on changed (or
    /// `global.restart_all`): tear the session down and start it anew.
    pub peers_changed: Vec<IpAddr>,
    /// In both, and only fields the session does not depend on changed
    /// (description, nextHopSelf, import/export policy, including an
    /// inherited cluster default, maxPrefix): keep the session, update the
    /// stored config and act on it (re-run export, re-evaluate imports by
    /// ROUTE-REFRESH or from what was kept, recheck the prefix count).
    pub peers_updated: Vec<IpAddr>,
    /// In both, identical.
    pub peers_unchanged: Vec<IpAddr>,
}

/// Changes to the BGPConfiguration itself. Changes of its timer and policy
/// defaults show up as changed or updated peers, since peers carry
/// resolved values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalChange {
    /// asNumber or routerID changed: they are in every OPEN, so every
    /// session restarts (all common peers are in `peers_changed`).
    pub restart_all: bool,
    /// listenPort or listenAddresses changed: close and rebind the
    /// listener; established sessions stay.
    pub rebind_listener: bool,
    /// Prefixes to start announcing; no session restarts.
    pub originate_added: Vec<IpNetwork>,
    /// Prefixes to withdraw; no session restarts.
    pub originate_removed: Vec<IpNetwork>,
    /// The new `maxPaths` when it changed: recompute the ECMP sets; no
    /// session restarts.
    pub max_paths: Option<usize>,
    /// The new `kernelTable` when it changed; it takes effect at the next
    /// start of the daemon.
    pub kernel_table: Option<u32>,
}

impl ConfigChange {
    /// True when the new configuration changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.global == GlobalChange::default()
            && self.peers_added.is_empty()
            && self.peers_removed.is_empty()
            && self.peers_changed.is_empty()
            && self.peers_updated.is_empty()
    }
}

/// Compares `old` (running) with `new` (just loaded).
pub fn diff(old: &Config, new: &Config) -> ConfigChange {
    // The cluster ID goes into every reflected route; like the AS and the
    // router ID, a change restarts every session.
    let restart_all = old.bgp.as_number != new.bgp.as_number
        || old.bgp.router_id != new.bgp.router_id
        || old.bgp.cluster_id != new.bgp.cluster_id;
    let global = GlobalChange {
        restart_all,
        rebind_listener: old.bgp.listen_port != new.bgp.listen_port
            || old.bgp.listen_addresses != new.bgp.listen_addresses,
        originate_added: new
            .bgp
            .originate
            .difference(&old.bgp.originate)
            .copied()
            .collect(),
        originate_removed: old
            .bgp
            .originate
            .difference(&new.bgp.originate)
            .copied()
            .collect(),
        max_paths: (old.bgp.max_paths != new.bgp.max_paths).then_some(new.bgp.max_paths),
        kernel_table: (old.bgp.kernel_table != new.bgp.kernel_table)
            .then_some(new.bgp.kernel_table),
    };

    let mut change = ConfigChange {
        global,
        ..ConfigChange::default()
    };
    let addresses: BTreeSet<IpAddr> = old.peers.keys().chain(new.peers.keys()).copied().collect();
    for address in addresses {
        match (old.peers.get(&address), new.peers.get(&address)) {
            (None, Some(_)) => change.peers_added.push(address),
            (Some(_), None) => change.peers_removed.push(address),
            (Some(a), Some(b)) if restart_all || !same_session(a, b) => {
                change.peers_changed.push(address)
            }
            (Some(a), Some(b)) if a != b => change.peers_updated.push(address),
            (Some(_), Some(_)) => change.peers_unchanged.push(address),
            (None, None) => {}
        }
    }
    change
}

/// Equal in every field a running session depends on. Spelled out field by
/// field (no `..`) so a new field must be classified here to compile.
fn same_session(a: &PeerConfig, b: &PeerConfig) -> bool {
    let PeerConfig {
        // metadata.name and description are shown by podctl only; a
        // change of either is an update, not a restart.
        name: _,
        address,
        port,
        as_number,
        source_address,
        password,
        hold_time,
        keepalive_time,
        connect_retry_time,
        passive,
        ttl,
        families,
        description: _,
        shutdown,
        // Applied to routes, not to the session: an update
        // (`peers_updated`), never a restart.
        next_hop_self: _,
        import_policy: _,
        export_policy: _,
        max_prefix: _,
        // Retimed in place (a BFD Poll Sequence, RFC 5880 §6.8.3), or
        // started and stopped beside the running session.
        bfd: _,
        // In the OPEN (RFC 4724 capability): a restart.
        graceful_restart,
        // Which routes go to the peer and how they are marked (RFC 4456):
        // a restart, so the peer relearns everything under the new role.
        route_reflector_client,
    } = a;
    *address == b.address
        && *port == b.port
        && *as_number == b.as_number
        && *source_address == b.source_address
        && *password == b.password
        && *hold_time == b.hold_time
        && *keepalive_time == b.keepalive_time
        && *connect_retry_time == b.connect_retry_time
        && *passive == b.passive
        && *ttl == b.ttl
        && *families == b.families
        && *shutdown == b.shutdown
        && *graceful_restart == b.graceful_restart
        && *route_reflector_client == b.route_reflector_client
}
