// Path attribute values on the wire (RFC 4271 §4.3, §5.1; RFC 1997, 4360,
// 4456, 4760 §3-4, 6793 §3, 8092, 8950 §3) and the per-attribute error
// handling of RFC 7606 §3 c and §7: which malformation means
// treat-as-withdraw, attribute discard or session reset.
#![deny(clippy::indexing_slicing)]

use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::CodecParams;
use super::as_path::{decode_as_path, encode_as_path};
use super::attribute::{
    Aggregator, AsPath, Community, ExtendedCommunity, LargeCommunity, MpReach, MpUnreach, Origin,
    PathAttribute, RawAttribute,
};
use super::error::{EncodeError, ErrorAction};
use super::family::{Afi, Family, Safi};
use super::iana::{AS_TRANS, attr_flag, attr_type, notification::update as subcode};
use super::nlri::{decode_prefixes, encode_prefixes};
use super::reader::Reader;

/// One attribute as decoded. AS4_PATH and AS4_AGGREGATOR are not path
/// attributes of the logical message: the UPDATE decoder folds them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    Attribute(PathAttribute),
    As4Path(AsPath),
    As4Aggregator(Aggregator),
}

/// An attribute that is not usable as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttributeProblem {
    pub(crate) action: ErrorAction,
    /// RFC 4271 §6.3 subcode for the NOTIFICATION if the action is a reset.
    pub(crate) subcode: u8,
    pub(crate) reason: String,
    /// What can still be kept: an MP_REACH_NLRI whose next hop is unusable
    /// keeps its prefixes so they can be treated as withdrawn.
    pub(crate) keep: Option<Decoded>,
}

/// The Optional and Transitive bits a known attribute must carry
/// (RFC 4271 §5, and each attribute's RFC).
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    const WELL_KNOWN: u8 = attr_flag::TRANSITIVE;
    const OPTIONAL_NON_TRANSITIVE: u8 = attr_flag::OPTIONAL;
    const OPTIONAL_TRANSITIVE: u8 = attr_flag::OPTIONAL | attr_flag::TRANSITIVE;
    match type_code {
        attr_type::ORIGIN
        | attr_type::AS_PATH
        | attr_type::NEXT_HOP
        | attr_type::LOCAL_PREF
        | attr_type::ATOMIC_AGGREGATE => Some(WELL_KNOWN),
        attr_type::MULTI_EXIT_DISC
        | attr_type::ORIGINATOR_ID
        | attr_type::CLUSTER_LIST
        | attr_type::MP_REACH_NLRI
        | attr_type::MP_UNREACH_NLRI => Some(OPTIONAL_NON_TRANSITIVE),
        attr_type::AGGREGATOR
        | attr_type::COMMUNITIES
        | attr_type::EXTENDED_COMMUNITIES
        | attr_type::AS4_PATH
        | attr_type::AS4_AGGREGATOR
        | attr_type::LARGE_COMMUNITY => Some(OPTIONAL_TRANSITIVE),
        _ => None,
    }
}

/// The attribute's name for logs and errors.
pub fn attribute_name(type_code: u8) -> &'static str {
    match type_code {
        attr_type::ORIGIN => "ORIGIN",
        attr_type::AS_PATH => "AS_PATH",
        attr_type::NEXT_HOP => "NEXT_HOP",
        attr_type::MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        attr_type::LOCAL_PREF => "LOCAL_PREF",
        attr_type::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        attr_type::AGGREGATOR => "AGGREGATOR",
        attr_type::COMMUNITIES => "COMMUNITIES",
        attr_type::ORIGINATOR_ID => "ORIGINATOR_ID",
        attr_type::CLUSTER_LIST => "CLUSTER_LIST",
        attr_type::MP_REACH_NLRI => "MP_REACH_NLRI",
        attr_type::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        attr_type::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        attr_type::AS4_PATH => "AS4_PATH",
        attr_type::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        attr_type::LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "unknown attribute",
    }
}

/// Decodes one attribute value. `flags` are as received.
pub(crate) fn decode_attribute(
    flags: u8,
    type_code: u8,
    value: Bytes,
    params: &CodecParams,
) -> Result<Decoded, AttributeProblem> {
    let Some(expected) = expected_flags(type_code) else {
        return decode_unknown(flags, type_code, value);
    };
    let decoded = decode_known(type_code, value, params);
    let flag_bits = flags & (attr_flag::OPTIONAL | attr_flag::TRANSITIVE);
    if flag_bits == expected {
        return decoded;
    }
    let reason = format!(
        "{} flags {flags:#04x}, expected optional/transitive bits {expected:#04x}",
        attribute_name(type_code)
    );
    // RFC 7606 §3 c: treat-as-withdraw, except where the attribute's own
    // rules say otherwise: RFC 6793 §6 discards AS4_* attributes, and
    // RFC 7606 §5.3 resets the session for a malformed MP_REACH/MP_UNREACH
    // (we do not do AFI/SAFI disable), as FRR does for their flags.
    match type_code {
        attr_type::AS4_PATH | attr_type::AS4_AGGREGATOR => Err(problem(
            ErrorAction::AttributeDiscard,
            subcode::ATTRIBUTE_FLAGS_ERROR,
            reason,
        )),
        attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI => Err(problem(
            ErrorAction::SessionReset,
            subcode::ATTRIBUTE_FLAGS_ERROR,
            reason,
        )),
        _ => Err(problem(
            ErrorAction::TreatAsWithdraw,
            subcode::ATTRIBUTE_FLAGS_ERROR,
            reason,
        )),
    }
}

fn decode_unknown(flags: u8, type_code: u8, value: Bytes) -> Result<Decoded, AttributeProblem> {
    if flags & attr_flag::OPTIONAL == 0 {
        // RFC 4271 §6.3: a well-known attribute we do not know.
        return Err(problem(
            ErrorAction::SessionReset,
            subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
            format!("unrecognized well-known attribute type {type_code}"),
        ));
    }
    Ok(Decoded::Attribute(PathAttribute::Unknown(RawAttribute {
        // The low four bits are unused (RFC 4271 §4.3), the extended
        // length bit is the encoder's business.
        flags: flags & (attr_flag::OPTIONAL | attr_flag::TRANSITIVE | attr_flag::PARTIAL),
        type_code,
        value,
    })))
}

fn decode_known(
    type_code: u8,
    value: Bytes,
    params: &CodecParams,
) -> Result<Decoded, AttributeProblem> {
    use ErrorAction::{AttributeDiscard, TreatAsWithdraw};
    let name = attribute_name(type_code);
    let length = value.len();
    let wrong_length = |action: ErrorAction, expected: &str| {
        problem(
            action,
            subcode::ATTRIBUTE_LENGTH_ERROR,
            format!("{name} length {length}, expected {expected}"),
        )
    };
    let mut reader = Reader::new(value.clone());
    let attribute = match type_code {
        // RFC 7606 §7.1.
        attr_type::ORIGIN => match (length, reader.u8()) {
            (1, Some(0)) => PathAttribute::Origin(Origin::Igp),
            (1, Some(1)) => PathAttribute::Origin(Origin::Egp),
            (1, Some(2)) => PathAttribute::Origin(Origin::Incomplete),
            (1, Some(other)) => {
                return Err(problem(
                    TreatAsWithdraw,
                    subcode::INVALID_ORIGIN_ATTRIBUTE,
                    format!("ORIGIN value {other} is not IGP, EGP or INCOMPLETE"),
                ));
            }
            _ => return Err(wrong_length(TreatAsWithdraw, "1")),
        },
        // RFC 7606 §7.2.
        attr_type::AS_PATH => match decode_as_path(value, params.four_octet_as) {
            Ok(path) => PathAttribute::AsPath(path),
            Err(reason) => {
                return Err(problem(
                    TreatAsWithdraw,
                    subcode::MALFORMED_AS_PATH,
                    format!("malformed AS_PATH: {reason}"),
                ));
            }
        },
        // RFC 7606 §7.3.
        attr_type::NEXT_HOP => match (length, reader.ipv4()) {
            (4, Some(address)) => PathAttribute::NextHop(address),
            _ => return Err(wrong_length(TreatAsWithdraw, "4")),
        },
        // RFC 7606 §7.4, §7.5 (for LOCAL_PREF from an external peer the
        // session discards the attribute instead; the codec cannot know).
        attr_type::MULTI_EXIT_DISC | attr_type::LOCAL_PREF => match (length, reader.u32()) {
            (4, Some(number)) if type_code == attr_type::MULTI_EXIT_DISC => {
                PathAttribute::MultiExitDisc(number)
            }
            (4, Some(number)) => PathAttribute::LocalPref(number),
            _ => return Err(wrong_length(TreatAsWithdraw, "4")),
        },
        // RFC 7606 §7.6.
        attr_type::ATOMIC_AGGREGATE => match length {
            0 => PathAttribute::AtomicAggregate,
            _ => return Err(wrong_length(AttributeDiscard, "0")),
        },
        // RFC 7606 §7.7: 6 octets from an old speaker, 8 from a new one.
        attr_type::AGGREGATOR => {
            let asn = if params.four_octet_as {
                reader.u32()
            } else {
                reader.u16().map(u32::from)
            };
            match (asn, reader.ipv4(), reader.is_empty()) {
                (Some(asn), Some(address), true) => {
                    PathAttribute::Aggregator(Aggregator { asn, address })
                }
                _ => {
                    let expected = if params.four_octet_as { "8" } else { "6" };
                    return Err(wrong_length(AttributeDiscard, expected));
                }
            }
        }
        // RFC 7606 §7.8.
        attr_type::COMMUNITIES => {
            non_zero_multiple(length, 4).map_err(|e| wrong_length(TreatAsWithdraw, &e))?;
            PathAttribute::Communities(read_all(&mut reader, |r| r.u32().map(Community)))
        }
        // RFC 7606 §7.9.
        attr_type::ORIGINATOR_ID => match (length, reader.ipv4()) {
            (4, Some(address)) => PathAttribute::OriginatorId(address),
            _ => return Err(wrong_length(TreatAsWithdraw, "4")),
        },
        // RFC 7606 §7.10.
        attr_type::CLUSTER_LIST => {
            non_zero_multiple(length, 4).map_err(|e| wrong_length(TreatAsWithdraw, &e))?;
            PathAttribute::ClusterList(read_all(&mut reader, Reader::ipv4))
        }
        attr_type::MP_REACH_NLRI => return decode_mp_reach(value, params),
        attr_type::MP_UNREACH_NLRI => return decode_mp_unreach(value, params),
        // RFC 7606 §7.14.
        attr_type::EXTENDED_COMMUNITIES => {
            non_zero_multiple(length, 8).map_err(|e| wrong_length(TreatAsWithdraw, &e))?;
            PathAttribute::ExtendedCommunities(read_all(&mut reader, |r| {
                let octets: [u8; 8] = r.take(8)?.as_ref().try_into().ok()?;
                Some(ExtendedCommunity(octets))
            }))
        }
        // RFC 8092 §6.
        attr_type::LARGE_COMMUNITY => {
            non_zero_multiple(length, 12).map_err(|e| wrong_length(TreatAsWithdraw, &e))?;
            PathAttribute::LargeCommunities(read_all(&mut reader, |r| {
                Some(LargeCommunity {
                    global_admin: r.u32()?,
                    local_data_1: r.u32()?,
                    local_data_2: r.u32()?,
                })
            }))
        }
        // RFC 6793 §6: a new speaker discards AS4_* from a new speaker;
        // a malformed one is discarded too.
        attr_type::AS4_PATH | attr_type::AS4_AGGREGATOR if params.four_octet_as => {
            return Err(problem(
                AttributeDiscard,
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
                format!("{name} from a 4-octet AS speaker (RFC 6793 §6)"),
            ));
        }
        attr_type::AS4_PATH => {
            return decode_as_path(value, true)
                .map(Decoded::As4Path)
                .map_err(|reason| {
                    problem(
                        AttributeDiscard,
                        subcode::MALFORMED_AS_PATH,
                        format!("malformed AS4_PATH: {reason}"),
                    )
                });
        }
        attr_type::AS4_AGGREGATOR => {
            return match (length, reader.u32(), reader.ipv4()) {
                (8, Some(asn), Some(address)) => {
                    Ok(Decoded::As4Aggregator(Aggregator { asn, address }))
                }
                _ => Err(wrong_length(AttributeDiscard, "8")),
            };
        }
        // Only reached for codes expected_flags() lists.
        _ => {
            return Ok(Decoded::Attribute(PathAttribute::Unknown(RawAttribute {
                flags: expected_flags(type_code).unwrap_or(attr_flag::OPTIONAL),
                type_code,
                value,
            })));
        }
    };
    Ok(Decoded::Attribute(attribute))
}

/// RFC 4760 §3 MP_REACH_NLRI. A header or NLRI that does not parse resets
/// the session (RFC 7606 §5.3, §7.11; RFC 4760 §7: Optional Attribute
/// Error); a next hop of the wrong size for the family, when the NLRI can
/// still be located, is treated as withdraw.
fn decode_mp_reach(value: Bytes, params: &CodecParams) -> Result<Decoded, AttributeProblem> {
    let reset = |reason: String| {
        problem(
            ErrorAction::SessionReset,
            subcode::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_REACH_NLRI: {reason}"),
        )
    };
    let mut reader = Reader::new(value.clone());
    let (Some(afi), Some(safi), Some(next_hop_len)) = (reader.u16(), reader.u8(), reader.u8())
    else {
        return Err(reset(format!(
            "{} octets cannot hold the header",
            value.len()
        )));
    };
    let family = Family::new(Afi(afi), Safi(safi));
    let available = reader.remaining();
    let Some(next_hop) = reader.take(usize::from(next_hop_len)) else {
        return Err(reset(format!(
            "next hop length {next_hop_len} overruns the {available} octets left"
        )));
    };
    // RFC 4760 §3: one reserved octet (formerly the SNPA count), ignored.
    if reader.u8().is_none() {
        return Err(reset("no reserved octet after the next hop".to_string()));
    }
    if !is_prefix_family(family) {
        return Ok(Decoded::Attribute(PathAttribute::Unknown(RawAttribute {
            flags: attr_flag::OPTIONAL,
            type_code: attr_type::MP_REACH_NLRI,
            value,
        })));
    }
    let add_path = params.add_path_receive.contains(&family);
    let nlri = decode_prefixes(reader.rest(), family.afi, add_path)
        .map_err(|error| reset(format!("{family} NLRI: {error}")))?;
    match decode_next_hops(family, next_hop) {
        Some(next_hops) => Ok(Decoded::Attribute(PathAttribute::MpReach(MpReach {
            family,
            next_hops,
            nlri,
        }))),
        None => Err(AttributeProblem {
            keep: Some(Decoded::Attribute(PathAttribute::MpReach(MpReach {
                family,
                next_hops: Vec::new(),
                nlri,
            }))),
            ..problem(
                ErrorAction::TreatAsWithdraw,
                subcode::OPTIONAL_ATTRIBUTE_ERROR,
                format!("MP_REACH_NLRI: next hop length {next_hop_len} is not valid for {family}"),
            )
        }),
    }
}

/// RFC 4760 §4 MP_UNREACH_NLRI; any parse failure resets the session.
fn decode_mp_unreach(value: Bytes, params: &CodecParams) -> Result<Decoded, AttributeProblem> {
    let mut reader = Reader::new(value.clone());
    let (Some(afi), Some(safi)) = (reader.u16(), reader.u8()) else {
        return Err(problem(
            ErrorAction::SessionReset,
            subcode::OPTIONAL_ATTRIBUTE_ERROR,
            format!(
                "MP_UNREACH_NLRI: {} octets cannot hold AFI/SAFI",
                value.len()
            ),
        ));
    };
    let family = Family::new(Afi(afi), Safi(safi));
    // An empty one is the End-of-RIB marker of any family (RFC 4724 §2).
    if !reader.is_empty() && !is_prefix_family(family) {
        return Ok(Decoded::Attribute(PathAttribute::Unknown(RawAttribute {
            flags: attr_flag::OPTIONAL,
            type_code: attr_type::MP_UNREACH_NLRI,
            value,
        })));
    }
    let add_path = params.add_path_receive.contains(&family);
    let withdrawn = decode_prefixes(reader.rest(), family.afi, add_path).map_err(|error| {
        problem(
            ErrorAction::SessionReset,
            subcode::OPTIONAL_ATTRIBUTE_ERROR,
            format!("MP_UNREACH_NLRI: {family} withdrawn routes: {error}"),
        )
    })?;
    Ok(Decoded::Attribute(PathAttribute::MpUnreach(MpUnreach {
        family,
        withdrawn,
    })))
}

/// RFC 4760 §3, RFC 2545 §3 (IPv6: global, or global + link-local),
/// RFC 8950 §3 (IPv4 NLRI with an IPv6 next hop).
fn decode_next_hops(family: Family, next_hop: Bytes) -> Option<Vec<IpAddr>> {
    let mut reader = Reader::new(next_hop.clone());
    match (family.afi, next_hop.len()) {
        (Afi::IPV4, 4) => Some(vec![IpAddr::V4(reader.ipv4()?)]),
        (Afi::IPV4 | Afi::IPV6, 16) => Some(vec![IpAddr::V6(reader.ipv6()?)]),
        (Afi::IPV4 | Afi::IPV6, 32) => {
            Some(vec![IpAddr::V6(reader.ipv6()?), IpAddr::V6(reader.ipv6()?)])
        }
        _ => None,
    }
}

/// Families whose NLRI are plain prefixes (RFC 4760 §5).
fn is_prefix_family(family: Family) -> bool {
    matches!(family.afi, Afi::IPV4 | Afi::IPV6)
        && matches!(family.safi, Safi::UNICAST | Safi::MULTICAST)
}

fn non_zero_multiple(length: usize, unit: usize) -> Result<(), String> {
    if length != 0 && length.is_multiple_of(unit) {
        Ok(())
    } else {
        Err(format!("a non-zero multiple of {unit}"))
    }
}

fn read_all<T>(reader: &mut Reader, mut read: impl FnMut(&mut Reader) -> Option<T>) -> Vec<T> {
    let mut items = Vec::new();
    while let Some(item) = read(reader) {
        items.push(item);
    }
    items
}

fn problem(action: ErrorAction, subcode: u8, reason: String) -> AttributeProblem {
    AttributeProblem {
        action,
        subcode,
        reason,
        keep: None,
    }
}

/// Appends one attribute, and with a 2-octet AS peer the AS4_PATH or
/// AS4_AGGREGATOR it needs (RFC 6793 §4.2.2).
pub(crate) fn encode_attribute(
    attribute: &PathAttribute,
    params: &CodecParams,
    scratch: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    scratch.clear();
    let type_code = match attribute {
        PathAttribute::Origin(origin) => {
            scratch.put_u8(match origin {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            });
            attr_type::ORIGIN
        }
        PathAttribute::AsPath(path) => {
            let substituted = encode_as_path(path, params.four_octet_as, scratch)?;
            put_attribute(out, attr_type::AS_PATH, None, scratch)?;
            if substituted {
                scratch.clear();
                encode_as_path(path, true, scratch)?;
                put_attribute(out, attr_type::AS4_PATH, None, scratch)?;
            }
            return Ok(());
        }
        PathAttribute::NextHop(address) => {
            scratch.put_slice(&address.octets());
            attr_type::NEXT_HOP
        }
        PathAttribute::MultiExitDisc(med) => {
            scratch.put_u32(*med);
            attr_type::MULTI_EXIT_DISC
        }
        PathAttribute::LocalPref(preference) => {
            scratch.put_u32(*preference);
            attr_type::LOCAL_PREF
        }
        PathAttribute::AtomicAggregate => attr_type::ATOMIC_AGGREGATE,
        PathAttribute::Aggregator(aggregator) => {
            if params.four_octet_as {
                scratch.put_u32(aggregator.asn);
            } else {
                scratch.put_u16(u16::try_from(aggregator.asn).unwrap_or(AS_TRANS));
            }
            scratch.put_slice(&aggregator.address.octets());
            put_attribute(out, attr_type::AGGREGATOR, None, scratch)?;
            if !params.four_octet_as && aggregator.asn > u32::from(u16::MAX) {
                scratch.clear();
                scratch.put_u32(aggregator.asn);
                scratch.put_slice(&aggregator.address.octets());
                put_attribute(out, attr_type::AS4_AGGREGATOR, None, scratch)?;
            }
            return Ok(());
        }
        PathAttribute::Communities(communities) => {
            require_non_empty(communities.len(), attr_type::COMMUNITIES)?;
            for community in communities {
                scratch.put_u32(community.0);
            }
            attr_type::COMMUNITIES
        }
        PathAttribute::OriginatorId(address) => {
            scratch.put_slice(&address.octets());
            attr_type::ORIGINATOR_ID
        }
        PathAttribute::ClusterList(ids) => {
            require_non_empty(ids.len(), attr_type::CLUSTER_LIST)?;
            for id in ids {
                scratch.put_slice(&id.octets());
            }
            attr_type::CLUSTER_LIST
        }
        PathAttribute::MpReach(reach) => {
            encode_mp_reach(reach, params, scratch)?;
            attr_type::MP_REACH_NLRI
        }
        PathAttribute::MpUnreach(unreach) => {
            scratch.put_u16(unreach.family.afi.0);
            scratch.put_u8(unreach.family.safi.0);
            if !unreach.withdrawn.is_empty() && !is_prefix_family(unreach.family) {
                return Err(EncodeError::UnsupportedFamily {
                    family: unreach.family,
                });
            }
            let add_path = params.add_path_send.contains(&unreach.family);
            encode_prefixes(&unreach.withdrawn, unreach.family, add_path, scratch)?;
            attr_type::MP_UNREACH_NLRI
        }
        PathAttribute::ExtendedCommunities(communities) => {
            require_non_empty(communities.len(), attr_type::EXTENDED_COMMUNITIES)?;
            for community in communities {
                scratch.put_slice(&community.0);
            }
            attr_type::EXTENDED_COMMUNITIES
        }
        PathAttribute::LargeCommunities(communities) => {
            require_non_empty(communities.len(), attr_type::LARGE_COMMUNITY)?;
            for community in communities {
                scratch.put_u32(community.global_admin);
                scratch.put_u32(community.local_data_1);
                scratch.put_u32(community.local_data_2);
            }
            attr_type::LARGE_COMMUNITY
        }
        PathAttribute::Unknown(raw) => {
            return put_attribute(out, raw.type_code, Some(raw.flags), &raw.value);
        }
    };
    put_attribute(out, type_code, None, scratch)
}

fn encode_mp_reach(
    reach: &MpReach,
    params: &CodecParams,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let family = reach.family;
    if !is_prefix_family(family) {
        return Err(EncodeError::UnsupportedFamily { family });
    }
    out.put_u16(family.afi.0);
    out.put_u8(family.safi.0);
    let invalid = || EncodeError::InvalidNextHops {
        family,
        count: reach.next_hops.len(),
    };
    match (family.afi, reach.next_hops.as_slice()) {
        (Afi::IPV4, [IpAddr::V4(address)]) => {
            out.put_u8(4);
            out.put_slice(&address.octets());
        }
        (Afi::IPV4 | Afi::IPV6, [IpAddr::V6(address)]) => {
            out.put_u8(16);
            out.put_slice(&address.octets());
        }
        (Afi::IPV4 | Afi::IPV6, [IpAddr::V6(global), IpAddr::V6(link_local)]) => {
            out.put_u8(32);
            out.put_slice(&global.octets());
            out.put_slice(&link_local.octets());
        }
        _ => return Err(invalid()),
    }
    out.put_u8(0); // reserved
    let add_path = params.add_path_send.contains(&family);
    encode_prefixes(&reach.nlri, family, add_path, out)
}

fn require_non_empty(count: usize, type_code: u8) -> Result<(), EncodeError> {
    if count == 0 {
        // RFC 7606 §7.8, §7.10, §7.14, RFC 8092 §6: the receiver would
        // treat the UPDATE as withdraw.
        return Err(EncodeError::EmptyAttribute { type_code });
    }
    Ok(())
}

/// Writes flags, type, length and value; the extended length bit is set
/// exactly when the value needs it (RFC 4271 §4.3).
fn put_attribute(
    out: &mut BytesMut,
    type_code: u8,
    flags: Option<u8>,
    value: &[u8],
) -> Result<(), EncodeError> {
    let flags = flags
        .or_else(|| expected_flags(type_code))
        .unwrap_or(attr_flag::OPTIONAL)
        & !(attr_flag::EXTENDED_LENGTH | 0x0f);
    match u8::try_from(value.len()) {
        Ok(length) => {
            out.put_u8(flags);
            out.put_u8(type_code);
            out.put_u8(length);
        }
        Err(_) => {
            let length = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong {
                type_code,
                length: value.len(),
            })?;
            out.put_u8(flags | attr_flag::EXTENDED_LENGTH);
            out.put_u8(type_code);
            out.put_u16(length);
        }
    }
    out.put_slice(value);
    Ok(())
}
