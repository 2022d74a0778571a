// From the documents as written (schema.rs) to the resolved configuration
// (mod.rs): every rule a file must satisfy and every default. Timer rules are
// RFC 4271 §4.2/§4.4/§10, TTL rules RFC 5082 (GTSM), keys RFC 2385.
// Errors are (field path, problem); parse() adds the file and document.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnetwork::IpNetwork;

use std::time::Duration;

use super::schema::{BfdSpec, BgpConfigurationSpec, BgpPeerSpec, GracefulRestartSpec, Resource};
use super::validate_policy::{max_prefix, route_policy};
use super::{
    BFD_INTERVAL_MS_RANGE, BGP_PORT, BfdConfig, BgpConfiguration, DEFAULT_CONNECT_RETRY_TIME,
    DEFAULT_HOLD_TIME, DEFAULT_KERNEL_TABLE, DEFAULT_MAX_PATHS, EBGP_DEFAULT_TTL,
    GracefulRestartConfig, MAX_PATHS_LIMIT, MAX_RESTART_TIME, MIN_HOLD_TIME, Password, PeerConfig,
    Problem, RESERVED_KERNEL_TABLES, SHUTDOWN_MESSAGE_MAX, Shutdown,
};
use crate::session::transport::{MD5_MAX_KEY_LEN, TtlMode};
use crate::wire::Family;

pub(super) type Invalid = (String, Problem);

/// AS_TRANS, RFC 6793 §9: stands in for a 4-octet AS in 2-octet fields.
const AS_TRANS: u32 = 23456;
/// RFC 7300: the last 32-bit AS number is reserved.
const AS_LAST: u32 = u32::MAX;

pub(super) fn at(field: impl Into<String>) -> impl FnOnce(Problem) -> Invalid {
    let field = field.into();
    move |problem| (field, problem)
}

pub(crate) fn bgp_configuration(
    resource: Resource<BgpConfigurationSpec>,
) -> Result<BgpConfiguration, Invalid> {
    let spec = resource.spec;
    let as_number = as_number(spec.as_number.0).map_err(at("spec.asNumber"))?;
    // Unset only with Node documents, where cluster::resolve puts the
    // node's router ID here; parse() refuses it unset otherwise.
    let router_id = spec.router_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
    if spec.router_id == Some(Ipv4Addr::UNSPECIFIED) {
        return Err(at("spec.routerID")(Problem::RouterId(router_id)));
    }
    let listen_port = match spec.listen_port.unwrap_or(BGP_PORT) {
        0 => None,
        port => Some(port),
    };
    let listen_addresses = match spec.listen_addresses {
        Some(list) if !list.is_empty() => {
            let mut seen = BTreeSet::new();
            for (i, address) in list.iter().enumerate() {
                if !seen.insert(address.to_canonical()) {
                    let field = format!("spec.listenAddresses[{i}]");
                    return Err(at(field)(Problem::Duplicate(address.to_string())));
                }
            }
            list.into_iter().map(|a| a.to_canonical()).collect()
        }
        _ => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
    };
    let mut originate = BTreeSet::new();
    for (i, text) in spec.originate.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.originate[{i}]");
        let prefix = canonical_prefix(text).map_err(at(field.clone()))?;
        if !originate.insert(prefix) {
            return Err(at(field)(Problem::Duplicate(prefix.to_string())));
        }
    }
    let hold_time =
        hold_time(spec.hold_time.unwrap_or(DEFAULT_HOLD_TIME)).map_err(at("spec.holdTime"))?;
    let keepalive_time =
        keepalive_time(hold_time, spec.keepalive_time).map_err(at("spec.keepaliveTime"))?;
    let connect_retry_time = seconds(spec.connect_retry_time, DEFAULT_CONNECT_RETRY_TIME)
        .map_err(at("spec.connectRetryTime"))?;
    let max_paths = match spec.max_paths {
        None => DEFAULT_MAX_PATHS,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_PATHS_LIMIT).contains(n))
            .ok_or_else(|| at("spec.maxPaths")(Problem::MaxPaths(n)))?,
    };
    let kernel_table = spec.kernel_table.unwrap_or(DEFAULT_KERNEL_TABLE);
    if RESERVED_KERNEL_TABLES.contains(&kernel_table) {
        return Err(at("spec.kernelTable")(Problem::KernelTable(kernel_table)));
    }
    let import_policy = spec
        .import_policy
        .map(|p| route_policy(p, "spec.importPolicy"))
        .transpose()?;
    let export_policy = spec
        .export_policy
        .map(|p| route_policy(p, "spec.exportPolicy"))
        .transpose()?;
    let graceful_restart = graceful_restart(
        spec.graceful_restart.unwrap_or_default(),
        Some(GracefulRestartConfig::default()),
        "spec.gracefulRestart",
    )?;
    let bfd = spec
        .bfd
        .map(|b| bfd(b, BfdConfig::default(), "spec.bfd"))
        .transpose()?
        .flatten();
    Ok(BgpConfiguration {
        name: resource.metadata.name,
        as_number,
        router_id,
        listen_port,
        listen_addresses,
        originate,
        hold_time,
        keepalive_time,
        connect_retry_time,
        max_paths,
        kernel_table,
        import_policy,
        export_policy,
        cluster_id: spec.route_reflector_cluster_id,
        graceful_restart,
        bfd,
    })
}

/// `gracefulRestart`, each field over `base`'s (the cluster default, or
/// the built-in one); `enabled` defaults to whether `base` is on.
fn graceful_restart(
    spec: GracefulRestartSpec,
    base: Option<GracefulRestartConfig>,
    field: &str,
) -> Result<Option<GracefulRestartConfig>, Invalid> {
    if !spec.enabled.unwrap_or(base.is_some()) {
        return Ok(None);
    }
    let base = base.unwrap_or_default();
    let restart_time = match spec.restart_time {
        None => base.restart_time,
        Some(t) => u16::try_from(t)
            .ok()
            .filter(|t| (1..=MAX_RESTART_TIME).contains(t))
            .ok_or_else(|| at(format!("{field}.restartTime"))(Problem::RestartTime(t)))?,
    };
    let stale_routes_time = match spec.stale_routes_time {
        None => base.stale_routes_time,
        Some(0) => return Err(at(format!("{field}.staleRoutesTime"))(Problem::ZeroSeconds)),
        Some(t) => Duration::from_secs(t.into()),
    };
    Ok(Some(GracefulRestartConfig {
        restart_time,
        stale_routes_time,
    }))
}

/// `bfd`, each field over `base`'s; `enabled: false` turns it off.
fn bfd(spec: BfdSpec, base: BfdConfig, field: &str) -> Result<Option<BfdConfig>, Invalid> {
    if !spec.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let interval = |value: Option<u32>, base: Duration, name: &str| match value {
        None => Ok(base),
        Some(ms) if BFD_INTERVAL_MS_RANGE.contains(&ms) => Ok(Duration::from_millis(ms.into())),
        Some(ms) => Err(at(format!("{field}.{name}"))(Problem::BfdInterval(ms))),
    };
    let multiplier = match spec.multiplier {
        None => base.multiplier,
        Some(m) => u8::try_from(m)
            .ok()
            .filter(|m| *m >= 2)
            .ok_or_else(|| at(format!("{field}.multiplier"))(Problem::BfdMultiplier(m)))?,
    };
    Ok(Some(BfdConfig {
        min_rx: interval(spec.min_rx, base.min_rx, "minRx")?,
        min_tx: interval(spec.min_tx, base.min_tx, "minTx")?,
        multiplier,
    }))
}

pub(crate) fn peer(
    bgp: &BgpConfiguration,
    resource: Resource<BgpPeerSpec>,
    read_file: &impl Fn(&Path) -> io::Result<String>,
) -> Result<PeerConfig, Invalid> {
    let spec = resource.spec;
    let Some(peer_ip) = spec.peer_ip else {
        return Err(at("spec.peerIP")(Problem::Required(" (or peerSelector)")));
    };
    let Some(peer_as) = spec.as_number else {
        return Err(at("spec.asNumber")(Problem::Required(" with peerIP")));
    };
    // One spelling per peer: an IPv4-mapped IPv6 address is the IPv4 peer.
    let address = peer_ip.to_canonical();
    if !usable_peer_address(address) {
        return Err(at("spec.peerIP")(Problem::PeerAddress(address)));
    }
    let as_number = as_number(peer_as.0).map_err(at("spec.asNumber"))?;
    let port = match spec.port.unwrap_or(BGP_PORT) {
        0 => return Err(at("spec.port")(Problem::ZeroPort)),
        port => port,
    };
    let source_address = spec.source_address.map(|a| a.to_canonical());
    if let Some(source_address) = source_address
        && source_address.is_ipv4() != address.is_ipv4()
    {
        let problem = Problem::SourceFamily {
            source_address,
            peer: address,
        };
        return Err(at("spec.sourceAddress")(problem));
    }

    let password = match (spec.password, spec.password_file) {
        (Some(_), Some(_)) => return Err(at("spec.passwordFile")(Problem::PasswordAndFile)),
        (Some(password), None) => Some(md5_key(password).map_err(at("spec.password"))?),
        (None, Some(path)) => {
            let text = read_file(&path).map_err(|source| {
                let problem = Problem::PasswordFile {
                    path: path.clone(),
                    source,
                };
                at("spec.passwordFile")(problem)
            })?;
            // Editors and `echo` end files with a newline that is not part
            // of the key.
            let key = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            Some(md5_key(key.to_owned()).map_err(at("spec.passwordFile"))?)
        }
        (None, None) => None,
    };

    let hold_time =
        hold_time(spec.hold_time.unwrap_or(bgp.hold_time)).map_err(at("spec.holdTime"))?;
    let keepalive_time = match (spec.hold_time, spec.keepalive_time) {
        // Nothing of the peer's own: the speaker's pair, already checked.
        (None, None) => bgp.keepalive_time,
        (_, keepalive) => keepalive_time(hold_time, keepalive).map_err(at("spec.keepaliveTime"))?,
    };
    let connect_retry_time = seconds(spec.connect_retry_time, bgp.connect_retry_time)
        .map_err(at("spec.connectRetryTime"))?;

    let ebgp = as_number != bgp.as_number;
    let ttl = match (spec.ebgp_multihop, spec.ttl_security) {
        (Some(_), Some(_)) => return Err(at("spec.ttlSecurity")(Problem::MultihopAndTtlSecurity)),
        (None, Some(hops)) => TtlMode::Gtsm {
            hops: hop_count(hops).map_err(at("spec.ttlSecurity"))?,
        },
        (Some(_), None) if !ebgp => {
            return Err(at("spec.ebgpMultihop")(Problem::MultihopOnIbgp(as_number)));
        }
        (Some(hops), None) => TtlMode::Hops(hop_count(hops).map_err(at("spec.ebgpMultihop"))?),
        (None, None) if ebgp => TtlMode::Hops(EBGP_DEFAULT_TTL),
        (None, None) => TtlMode::OsDefault,
    };

    let families = match spec.families {
        // As BIRD and Calico do: a session carries its own transport's
        // family unless told otherwise, so no route ever gets a next hop
        // of the other family by default.
        None if peer_ip.is_ipv4() => BTreeSet::from([Family::IPV4_UNICAST]),
        None => BTreeSet::from([Family::IPV6_UNICAST]),
        Some(names) => {
            let mut families = BTreeSet::new();
            for (i, name) in names.iter().enumerate() {
                let field = format!("spec.families[{i}]");
                let family = parse_family(name).map_err(at(field.clone()))?;
                if !families.insert(family) {
                    return Err(at(field)(Problem::Duplicate(name.clone())));
                }
            }
            if families.is_empty() {
                return Err(at("spec.families")(Problem::NoFamily));
            }
            families
        }
    };

    let message = spec.shutdown_message.unwrap_or_default();
    if message.len() > SHUTDOWN_MESSAGE_MAX {
        let problem = Problem::ShutdownMessageLength { len: message.len() };
        return Err(at("spec.shutdownMessage")(problem));
    }
    let shutdown = spec
        .shutdown
        .unwrap_or(false)
        .then_some(Shutdown { message });

    // A peer's own policy replaces the cluster default as a whole.
    let import_policy = match spec.import_policy {
        Some(p) => Some(route_policy(p, "spec.importPolicy")?),
        None => bgp.import_policy.clone(),
    };
    let export_policy = match spec.export_policy {
        Some(p) => Some(route_policy(p, "spec.exportPolicy")?),
        None => bgp.export_policy.clone(),
    };
    let max_prefix = spec
        .max_prefix
        .map(|m| max_prefix(m, "spec.maxPrefix"))
        .transpose()?;

    let graceful_restart = match spec.graceful_restart {
        None => bgp.graceful_restart,
        Some(gr) => graceful_restart(gr, bgp.graceful_restart, "spec.gracefulRestart")?,
    };
    let bfd = match spec.bfd {
        None => bgp.bfd,
        Some(b) => bfd(b, bgp.bfd.unwrap_or_default(), "spec.bfd")?,
    };
    let route_reflector_client = spec.route_reflector_client.unwrap_or(false);
    if route_reflector_client && ebgp {
        return Err(at("spec.routeReflectorClient")(
            Problem::ReflectorClientOnEbgp(as_number),
        ));
    }

    Ok(PeerConfig {
        name: resource.metadata.name,
        address,
        port,
        as_number,
        source_address,
        password,
        hold_time,
        keepalive_time,
        connect_retry_time,
        passive: spec.passive.unwrap_or(false),
        ttl,
        families,
        description: spec.description.unwrap_or_default(),
        shutdown,
        next_hop_self: spec.next_hop_self,
        import_policy,
        export_policy,
        max_prefix,
        graceful_restart,
        bfd,
        route_reflector_client,
    })
}

pub(super) fn as_number(asn: u32) -> Result<u32, Problem> {
    match asn {
        0 | AS_TRANS | AS_LAST => Err(Problem::ReservedAs(asn)),
        asn => Ok(asn),
    }
}

fn hold_time(hold: u16) -> Result<u16, Problem> {
    if hold != 0 && hold < MIN_HOLD_TIME {
        return Err(Problem::HoldTime(hold));
    }
    Ok(hold)
}

/// The keepalive interval for `hold`: a third of it unless set; below it
/// when set; zero exactly when the hold time is zero.
fn keepalive_time(hold: u16, keepalive: Option<u16>) -> Result<u16, Problem> {
    match (hold, keepalive) {
        (0, None | Some(0)) => Ok(0),
        (0, Some(k)) => Err(Problem::KeepaliveWithoutHold(k)),
        (h, None) => Ok(h / 3),
        (_, Some(0)) => Err(Problem::KeepaliveZero),
        (h, Some(k)) if k >= h => Err(Problem::KeepaliveNotBelowHold {
            keepalive: k,
            hold: h,
        }),
        (_, Some(k)) => Ok(k),
    }
}

fn seconds(value: Option<u16>, default: u16) -> Result<u16, Problem> {
    match value.unwrap_or(default) {
        0 => Err(Problem::ZeroSeconds),
        s => Ok(s),
    }
}

fn hop_count(hops: u32) -> Result<u8, Problem> {
    u8::try_from(hops)
        .ok()
        .filter(|&h| h >= 1)
        .ok_or(Problem::Hops(hops))
}

fn md5_key(key: String) -> Result<Password, Problem> {
    if key.is_empty() || key.len() > MD5_MAX_KEY_LEN {
        return Err(Problem::PasswordLength { len: key.len() });
    }
    Ok(Password(key))
}

fn usable_peer_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

fn parse_family(name: &str) -> Result<Family, Problem> {
    match name {
        "ipv4-unicast" => Ok(Family::IPV4_UNICAST),
        "ipv6-unicast" => Ok(Family::IPV6_UNICAST),
        other => Err(Problem::UnknownFamily(other.to_owned())),
    }
}

/// A prefix whose host bits are zero; otherwise the error shows the
/// canonical form, since `10.244.1.5/26` is usually a typo for
/// `10.244.1.0/26` but could be meant as `10.244.1.5/32`.
pub(super) fn canonical_prefix(text: &str) -> Result<IpNetwork, Problem> {
    let prefix: IpNetwork =
        text.parse()
            .map_err(|e: ipnetwork::IpNetworkError| Problem::BadPrefix {
                given: text.to_owned(),
                reason: e.to_string(),
            })?;
    if prefix.ip() != prefix.network() {
        let canonical = IpNetwork::new(prefix.network(), prefix.prefix())
            .map(|p| p.to_string())
            .unwrap_or_default();
        return Err(Problem::NotCanonical {
            given: text.to_owned(),
            canonical,
        });
    }
    Ok(prefix)
}
