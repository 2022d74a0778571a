// Our OPEN (RFC 4271 §4.2 with RFC 5492 capabilities), the checks on the
// peer's OPEN in the order of RFC 4271 §6.2 (plus RFC 6286 identifiers,
// RFC 6793 AS_TRANS, RFC 5492 §5 unsupported capability), and what the two
// OPENs negotiate: hold and keepalive time (§4.2, §10), families
// (RFC 4760), and the optional features both sides advertised.

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::config::SessionConfig;
use super::notification::notification;
use crate::wire::iana::{AS_TRANS, capability_code, notification as code};
use crate::wire::{
    AddPathFamily, AddPathMode, Capability, CodecParams, ExtendedNextHop, Family, GracefulRestart,
    Notification, Open,
};

/// RFC 4271 §4.2: the smallest non-zero hold time.
const MIN_HOLD_TIME: u16 = 3;

/// RFC 4271 §10: KeepaliveTime is one third of HoldTime.
const KEEPALIVES_PER_HOLD_TIME: u16 = 3;

/// What a session agreed on with its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's real AS (from the 4-octet AS capability when sent).
    pub remote_as: u32,
    pub remote_id: Ipv4Addr,
    /// Seconds; 0 means neither hold timer nor keepalives.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs; 0 when `hold_time` is 0.
    pub keepalive_time: u16,
    pub four_octet_as: bool,
    /// Families both sides advertised, in our configured order.
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    /// Next-hop encodings both sides advertised (RFC 8950).
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// RFC 7911: families whose NLRI we receive with path identifiers. Empty
    /// while we do not advertise ADD-PATH ourselves.
    pub add_path_receive: Vec<Family>,
    /// RFC 7911: families whose NLRI we send with path identifiers.
    pub add_path_send: Vec<Family>,
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Every capability the peer sent, unknown ones included, for display.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    /// What the codec needs to know of this negotiation.
    pub fn codec_params(&self) -> CodecParams {
        CodecParams {
            four_octet_as: self.four_octet_as,
            extended_message: self.extended_message,
            add_path_receive: self.add_path_receive.clone(),
            add_path_send: self.add_path_send.clone(),
        }
    }
}

/// Our OPEN for `config`.
pub fn build_open(config: &SessionConfig) -> Open {
    Open {
        my_as: two_octet_as(config.local_as),
        hold_time: offered_hold_time(config.hold_time),
        bgp_id: config.local_id,
        capabilities: our_capabilities(config),
    }
}

/// Checks the peer's OPEN and negotiates, or gives the NOTIFICATION to
/// send. The version number is the codec's to check: `Open` holds none.
pub(crate) fn negotiate(config: &SessionConfig, open: &Open) -> Result<Negotiated, Notification> {
    let peer_four_octet_as = open.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(asn) => Some(*asn),
        _ => None,
    });
    // RFC 6793 §4.2.1: AS_TRANS in My AS only stands for a 4-octet AS
    // carried in the capability.
    if open.my_as == AS_TRANS && peer_four_octet_as.is_none() {
        return Err(open_error(code::open::BAD_PEER_AS));
    }
    let remote_as = peer_four_octet_as.unwrap_or(u32::from(open.my_as));
    if remote_as != config.remote_as {
        return Err(open_error(code::open::BAD_PEER_AS));
    }
    if open.hold_time != 0 && open.hold_time < MIN_HOLD_TIME {
        return Err(open_error(code::open::UNACCEPTABLE_HOLD_TIME));
    }
    if !acceptable_bgp_id(config, open.bgp_id) {
        return Err(open_error(code::open::BAD_BGP_IDENTIFIER));
    }

    let ours = advertised_families(config);
    let theirs = peer_families(&open.capabilities);
    let families: Vec<Family> = ours.into_iter().filter(|f| theirs.contains(f)).collect();
    if families.is_empty() {
        // RFC 5492 §5: the data lists the capabilities the peer lacks.
        return Err(Notification {
            code: code::OPEN_MESSAGE_ERROR,
            subcode: code::open::UNSUPPORTED_CAPABILITY,
            data: encode_multiprotocol_capabilities(&advertised_families(config)),
        });
    }

    let peer_has = |wanted: &Capability| open.capabilities.iter().any(|c| c == wanted);
    let hold_time = offered_hold_time(config.hold_time).min(open.hold_time);
    let peer_extended_next_hop: Vec<ExtendedNextHop> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(list) => Some(list.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    let peer_add_path: Vec<AddPathFamily> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::AddPath(list) => Some(list.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    let (add_path_receive, add_path_send) = add_path_directions(&[], &peer_add_path, &families);

    Ok(Negotiated {
        remote_as,
        remote_id: open.bgp_id,
        hold_time,
        keepalive_time: keepalive_time(config.keepalive_time, hold_time),
        // We always advertise 4-octet AS.
        four_octet_as: peer_four_octet_as.is_some(),
        families,
        route_refresh: config.route_refresh && peer_has(&Capability::RouteRefresh),
        enhanced_route_refresh: config.enhanced_route_refresh
            && peer_has(&Capability::EnhancedRouteRefresh),
        extended_message: config.extended_message && peer_has(&Capability::ExtendedMessage),
        extended_next_hop: config
            .extended_next_hop
            .iter()
            .copied()
            .filter(|e| peer_extended_next_hop.contains(e))
            .collect(),
        add_path_receive,
        add_path_send,
        peer_graceful_restart: open.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        }),
        peer_capabilities: open.capabilities.clone(),
    })
}

/// RFC 4271 §10: a third of the hold time unless configured lower; a
/// configured 0 with a non-zero hold time would get us dropped, so it also
/// means a third.
pub(crate) fn keepalive_time(configured: Option<u16>, hold_time: u16) -> u16 {
    let most = hold_time / KEEPALIVES_PER_HOLD_TIME;
    match configured {
        Some(k) if k > 0 => k.min(most),
        _ => most,
    }
}

/// The 2-octet My AS field: AS_TRANS when the AS needs 4 octets (RFC 6793 §4.2.1).
fn two_octet_as(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds.
fn offered_hold_time(configured: u16) -> u16 {
    if configured == 0 {
        0
    } else {
        configured.max(MIN_HOLD_TIME)
    }
}

fn our_capabilities(config: &SessionConfig) -> Vec<Capability> {
    let mut caps: Vec<Capability> = config
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    if config.route_refresh {
        caps.push(Capability::RouteRefresh);
    }
    if config.enhanced_route_refresh {
        caps.push(Capability::EnhancedRouteRefresh);
    }
    caps.push(Capability::FourOctetAs(config.local_as));
    if config.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if !config.extended_next_hop.is_empty() {
        caps.push(Capability::ExtendedNextHop(
            config.extended_next_hop.clone(),
        ));
    }
    if let Some(gr) = &config.graceful_restart {
        caps.push(Capability::GracefulRestart(gr.clone()));
    }
    caps
}

/// The families we advertise; without any Multiprotocol capability a
/// speaker implicitly offers IPv4 unicast only (RFC 4760 §8).
fn advertised_families(config: &SessionConfig) -> Vec<Family> {
    if config.families.is_empty() {
        vec![Family::IPV4_UNICAST]
    } else {
        config.families.clone()
    }
}

fn peer_families(capabilities: &[Capability]) -> Vec<Family> {
    let families: Vec<Family> = capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if families.is_empty() {
        vec![Family::IPV4_UNICAST]
    } else {
        families
    }
}

/// RFC 4271 §6.2 and RFC 6286 §2.2: the identifier must be non-zero and,
/// between speakers of one AS, differ from ours. Like FRR we also refuse
/// multicast and broadcast-looking identifiers, which only a
/// misconfiguration produces.
fn acceptable_bgp_id(config: &SessionConfig, id: Ipv4Addr) -> bool {
    !(id.is_unspecified()
        || id.is_multicast()
        || id.is_broadcast()
        || (config.is_internal() && id == config.local_id))
}

/// RFC 7911 §4: we receive path identifiers for a family when we said
/// Receive (or Both) and the peer said Send (or Both), and send them the
/// other way round. Only negotiated families count.
fn add_path_directions(
    ours: &[AddPathFamily],
    theirs: &[AddPathFamily],
    families: &[Family],
) -> (Vec<Family>, Vec<Family>) {
    let can_send = |m: AddPathMode| matches!(m, AddPathMode::Send | AddPathMode::Both);
    let can_receive = |m: AddPathMode| matches!(m, AddPathMode::Receive | AddPathMode::Both);
    let direction = |we: &dyn Fn(AddPathMode) -> bool, they: &dyn Fn(AddPathMode) -> bool| {
        families
            .iter()
            .copied()
            .filter(|f| {
                ours.iter().any(|a| a.family == *f && we(a.mode))
                    && theirs.iter().any(|a| a.family == *f && they(a.mode))
            })
            .collect::<Vec<Family>>()
    };
    (
        direction(&can_receive, &can_send),
        direction(&can_send, &can_receive),
    )
}

fn open_error(subcode: u8) -> Notification {
    notification(code::OPEN_MESSAGE_ERROR, subcode)
}

/// RFC 4760 §8 Multiprotocol capabilities as code, length, value triples
/// (value: AFI, reserved octet, SAFI), the RFC 5492 §5 NOTIFICATION data.
fn encode_multiprotocol_capabilities(families: &[Family]) -> Bytes {
    const VALUE_LEN: u8 = 4;
    let mut data = Vec::with_capacity(families.len() * 6);
    for family in families {
        data.push(capability_code::MULTIPROTOCOL);
        data.push(VALUE_LEN);
        data.extend_from_slice(&family.afi.0.to_be_bytes());
        data.push(0);
        data.push(family.safi.0);
    }
    Bytes::from(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Afi, Safi};

    fn config() -> SessionConfig {
        SessionConfig::new(65001, Ipv4Addr::new(10, 0, 0, 1), 65002)
    }

    fn peer_open() -> Open {
        Open {
            my_as: 65002,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(10, 0, 0, 2),
            capabilities: vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65002),
            ],
        }
    }

    fn error_of(config: &SessionConfig, open: &Open) -> (u8, u8, Vec<u8>) {
        let n = negotiate(config, open).unwrap_err();
        (n.code, n.subcode, n.data.to_vec())
    }

    #[test]
    fn our_open_carries_every_configured_capability() {
        let mut c = config();
        c.local_as = 4_200_000_000;
        c.extended_next_hop = vec![ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        }];
        c.graceful_restart = Some(GracefulRestart {
            restart_time: 120,
            ..GracefulRestart::default()
        });
        let open = build_open(&c);
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.hold_time, 90);
        assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            open.capabilities,
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(4_200_000_000),
                Capability::ExtendedMessage,
                Capability::ExtendedNextHop(c.extended_next_hop.clone()),
                Capability::GracefulRestart(GracefulRestart {
                    restart_time: 120,
                    ..GracefulRestart::default()
                }),
            ]
        );
    }

    #[test]
    fn a_minimal_open_advertises_four_octet_as_only() {
        let mut c = config();
        c.families.clear();
        c.route_refresh = false;
        c.enhanced_route_refresh = false;
        c.extended_message = false;
        c.hold_time = 1;
        let open = build_open(&c);
        assert_eq!(open.my_as, 65001);
        assert_eq!(open.hold_time, 3, "never offers 1 or 2 (RFC 4271 §4.2)");
        assert_eq!(open.capabilities, vec![Capability::FourOctetAs(65001)]);
    }

    #[test]
    fn a_good_open_negotiates_the_common_features() {
        let mut c = config();
        c.families = vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST];
        let mut open = peer_open();
        open.capabilities.push(Capability::Unknown {
            code: 73,
            value: Bytes::from_static(b"x"),
        });
        let n = negotiate(&c, &open).unwrap();
        assert_eq!(n.remote_as, 65002);
        assert_eq!(n.remote_id, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((n.hold_time, n.keepalive_time), (90, 30));
        assert!(n.four_octet_as);
        assert_eq!(n.families, vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST]);
        assert!(n.route_refresh);
        assert!(!n.enhanced_route_refresh);
        assert!(!n.extended_message);
        assert_eq!(n.peer_capabilities, open.capabilities);
        assert_eq!(
            n.codec_params(),
            CodecParams {
                four_octet_as: true,
                ..CodecParams::default()
            }
        );
    }

    #[test]
    fn optional_features_need_both_sides() {
        let nh = ExtendedNextHop {
            family: Family::IPV4_UNICAST,
            next_hop_afi: Afi::IPV6,
        };
        let other_nh = ExtendedNextHop {
            family: Family::IPV6_UNICAST,
            next_hop_afi: Afi::IPV4,
        };
        let mut c = config();
        c.extended_next_hop = vec![nh];
        let mut open = peer_open();
        open.capabilities.extend([
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
            Capability::ExtendedNextHop(vec![other_nh, nh]),
            Capability::GracefulRestart(GracefulRestart::default()),
            Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::Both,
            }]),
        ]);
        let n = negotiate(&c, &open).unwrap();
        assert!(n.enhanced_route_refresh && n.extended_message);
        assert_eq!(n.extended_next_hop, vec![nh]);
        assert_eq!(n.peer_graceful_restart, Some(GracefulRestart::default()));
        // We advertised no ADD-PATH, so no path identifiers either way.
        assert!(n.add_path_receive.is_empty() && n.add_path_send.is_empty());
        assert!(n.codec_params().extended_message);

        c.extended_message = false;
        c.enhanced_route_refresh = false;
        c.route_refresh = false;
        let n = negotiate(&c, &open).unwrap();
        assert!(!n.extended_message && !n.enhanced_route_refresh && !n.route_refresh);
    }

    #[test]
    fn add_path_directions_pair_receive_with_send() {
        let v4 = Family::IPV4_UNICAST;
        let v6 = Family::IPV6_UNICAST;
        let ap = |family, mode| AddPathFamily { family, mode };
        let ours = [ap(v4, AddPathMode::Receive), ap(v6, AddPathMode::Both)];
        let theirs = [ap(v4, AddPathMode::Both), ap(v6, AddPathMode::Receive)];
        assert_eq!(
            add_path_directions(&ours, &theirs, &[v4, v6]),
            (vec![v4], vec![v6])
        );
        assert_eq!(
            add_path_directions(&ours, &theirs, &[v6]),
            (vec![], vec![v6])
        );
    }

    #[test]
    fn a_peer_without_multiprotocol_capabilities_offers_ipv4_unicast() {
        let mut open = peer_open();
        open.capabilities = vec![Capability::FourOctetAs(65002)];
        assert_eq!(
            negotiate(&config(), &open).unwrap().families,
            vec![Family::IPV4_UNICAST]
        );
    }

    #[test]
    fn a_two_octet_peer_is_checked_on_my_as() {
        let mut open = peer_open();
        open.capabilities = vec![Capability::Multiprotocol(Family::IPV4_UNICAST)];
        let n = negotiate(&config(), &open).unwrap();
        assert!(!n.four_octet_as);
        assert_eq!(n.remote_as, 65002);
        open.my_as = 65003;
        assert_eq!(error_of(&config(), &open), (2, 2, vec![]));
    }

    #[test]
    fn bad_peer_as() {
        let mut open = peer_open();
        open.capabilities[3] = Capability::FourOctetAs(65003);
        assert_eq!(error_of(&config(), &open), (2, 2, vec![]));
    }

    #[test]
    fn four_octet_peer_as_behind_as_trans() {
        let mut c = config();
        c.remote_as = 4_200_000_000;
        let mut open = peer_open();
        open.my_as = AS_TRANS;
        open.capabilities[3] = Capability::FourOctetAs(4_200_000_000);
        assert_eq!(negotiate(&c, &open).unwrap().remote_as, 4_200_000_000);
    }

    #[test]
    fn as_trans_without_the_capability_is_a_bad_peer_as() {
        let mut c = config();
        c.remote_as = u32::from(AS_TRANS);
        let mut open = peer_open();
        open.my_as = AS_TRANS;
        open.capabilities.remove(3);
        assert_eq!(error_of(&c, &open), (2, 2, vec![]));
    }

    #[test]
    fn hold_times_of_one_and_two_are_unacceptable() {
        for hold in [1, 2] {
            let mut open = peer_open();
            open.hold_time = hold;
            assert_eq!(error_of(&config(), &open), (2, 6, vec![]));
        }
    }

    #[test]
    fn bad_bgp_identifiers() {
        for id in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 5),
        ] {
            let mut open = peer_open();
            open.bgp_id = id;
            assert_eq!(error_of(&config(), &open), (2, 3, vec![]), "{id}");
        }
    }

    #[test]
    fn our_own_identifier_is_bad_for_ibgp_only() {
        let mut open = peer_open();
        open.bgp_id = Ipv4Addr::new(10, 0, 0, 1);
        // eBGP: RFC 6286 §2.2 allows it.
        assert!(negotiate(&config(), &open).is_ok());
        let mut c = config();
        c.remote_as = 65001;
        open.my_as = 65001;
        open.capabilities[3] = Capability::FourOctetAs(65001);
        assert_eq!(error_of(&c, &open), (2, 3, vec![]));
    }

    #[test]
    fn checks_run_in_rfc_order() {
        // Bad AS and bad hold time and bad id: the AS is reported.
        let mut open = peer_open();
        open.capabilities[3] = Capability::FourOctetAs(1);
        open.hold_time = 1;
        open.bgp_id = Ipv4Addr::UNSPECIFIED;
        assert_eq!(error_of(&config(), &open).1, 2);
        open.capabilities[3] = Capability::FourOctetAs(65002);
        assert_eq!(error_of(&config(), &open).1, 6);
        open.hold_time = 90;
        assert_eq!(error_of(&config(), &open).1, 3);
    }

    #[test]
    fn no_common_family_lists_ours_in_the_notification() {
        let mut open = peer_open();
        open.capabilities[0] = Capability::Multiprotocol(Family::new(Afi(25), Safi(70)));
        open.capabilities.remove(1);
        assert_eq!(
            error_of(&config(), &open),
            (2, 7, vec![1, 4, 0, 1, 0, 1, /* */ 1, 4, 0, 2, 0, 1])
        );
    }

    #[test]
    fn hold_time_negotiation_table() {
        // (ours, theirs, configured keepalive) → (hold, keepalive)
        let table = [
            (90, 90, None, 90, 30),
            (90, 30, None, 30, 10),
            (30, 90, None, 30, 10),
            (0, 90, None, 0, 0),
            (90, 0, None, 0, 0),
            (0, 0, None, 0, 0),
            (3, 90, None, 3, 1),
            (90, 3, None, 3, 1),
            (90, 90, Some(10), 90, 10),
            (90, 9, Some(10), 9, 3),
            (90, 90, Some(0), 90, 30),
            (0, 90, Some(10), 0, 0),
            (4, 90, None, 4, 1),
        ];
        for (ours, theirs, keepalive, hold, expected_keepalive) in table {
            let mut c = config();
            c.hold_time = ours;
            c.keepalive_time = keepalive;
            let mut open = peer_open();
            open.hold_time = theirs;
            let n = negotiate(&c, &open).unwrap();
            assert_eq!(
                (n.hold_time, n.keepalive_time),
                (hold, expected_keepalive),
                "ours {ours} theirs {theirs} keepalive {keepalive:?}"
            );
        }
    }
}
