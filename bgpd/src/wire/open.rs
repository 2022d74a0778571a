// OPEN message body (RFC 4271 §4.2) with its optional parameters: the
// Capabilities parameter (RFC 5492 §4; several per parameter and several
// parameters), the extended parameters length (RFC 9072), and each
// capability's value: RFC 4760 §8, 2918 §2, 8950 §3, 8654 §3, 4724 §3,
// 6793 §8, 7911 §4, 7313 §3.1.
#![deny(clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{
    AddPathFamily, AddPathMode, Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily,
};
use super::error::{DecodeError, EncodeError};
use super::family::{Afi, Family, Safi};
use super::iana::{
    BGP_VERSION, MIN_NONZERO_HOLD_TIME, OPT_PARAM_CAPABILITIES, OPT_PARAM_EXTENDED_LENGTH,
    add_path_mode, capability_code as code, graceful_restart as gr,
};
use super::message::Open;
use super::reader::Reader;

/// Largest value of a capability or of a non-extended optional parameter.
const MAX_TLV_VALUE_LEN: usize = u8::MAX as usize;

/// Decodes the OPEN body (everything after the 19-octet header).
pub(crate) fn decode_open(body: Bytes) -> Result<Open, DecodeError> {
    let mut reader = Reader::new(body);
    let malformed = |reason: &str| DecodeError::MalformedOptionalParameters {
        reason: reason.to_string(),
    };
    let version = reader.u8().ok_or_else(|| malformed("truncated OPEN"))?;
    if version != BGP_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let (Some(my_as), Some(hold_time), Some(bgp_id), Some(params_len)) =
        (reader.u16(), reader.u16(), reader.ipv4(), reader.u8())
    else {
        return Err(malformed("truncated OPEN"));
    };
    if hold_time != 0 && hold_time < MIN_NONZERO_HOLD_TIME {
        return Err(DecodeError::UnacceptableHoldTime { hold_time });
    }
    if bgp_id.is_unspecified() {
        return Err(DecodeError::BadBgpIdentifier { bgp_id });
    }

    // RFC 9072 §2: 255 followed by type 255 switches to 2-octet lengths.
    let extended = params_len == OPT_PARAM_EXTENDED_LENGTH
        && reader.peek_rest().first() == Some(&OPT_PARAM_EXTENDED_LENGTH);
    let params_len = if extended {
        reader.u8();
        usize::from(
            reader
                .u16()
                .ok_or_else(|| malformed("truncated extended parameters length"))?,
        )
    } else {
        usize::from(params_len)
    };
    let available = reader.remaining();
    let params = reader.take(params_len).ok_or_else(|| {
        malformed(&format!(
            "parameters length {params_len} exceeds the {available} octets left"
        ))
    })?;
    if !reader.is_empty() {
        return Err(malformed(&format!(
            "{} octets after the optional parameters",
            reader.remaining()
        )));
    }

    let mut capabilities = Vec::new();
    let mut params = Reader::new(params);
    while !params.is_empty() {
        let param_type = params
            .u8()
            .ok_or_else(|| malformed("truncated parameter"))?;
        let value_len = if extended {
            params.u16().map(usize::from)
        } else {
            params.u8().map(usize::from)
        }
        .ok_or_else(|| malformed("truncated parameter length"))?;
        let value = params.take(value_len).ok_or_else(|| {
            malformed(&format!(
                "parameter type {param_type} length {value_len} overruns the parameters"
            ))
        })?;
        if param_type != OPT_PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter { param_type });
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    Ok(Open {
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

/// Appends the OPEN body. Capabilities go into as few Capabilities
/// parameters as fit 255 octets each (RFC 5492 §4 allows several).
pub(crate) fn encode_open(open: &Open, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u8(BGP_VERSION);
    out.put_u16(open.my_as);
    out.put_u16(open.hold_time);
    out.put_slice(&open.bgp_id.octets());

    let mut params = BytesMut::new();
    let mut current = BytesMut::new();
    let mut tlv = BytesMut::new();
    for capability in &open.capabilities {
        tlv.clear();
        encode_capability(capability, &mut tlv)?;
        if tlv.len() > MAX_TLV_VALUE_LEN {
            return Err(EncodeError::OptionalParametersTooLong { length: tlv.len() });
        }
        if current.len() + tlv.len() > MAX_TLV_VALUE_LEN {
            put_capabilities_param(&mut params, &current);
            current.clear();
        }
        current.put_slice(&tlv);
    }
    if !current.is_empty() {
        put_capabilities_param(&mut params, &current);
    }
    let params_len =
        u8::try_from(params.len()).map_err(|_| EncodeError::OptionalParametersTooLong {
            length: params.len(),
        })?;
    // 255 would read as the RFC 9072 marker only if the first type were 255.
    out.put_u8(params_len);
    out.put_slice(&params);
    Ok(())
}

/// Appends one capability TLV (RFC 5492 §4).
pub(crate) fn encode_capability(
    capability: &Capability,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let mut value = BytesMut::new();
    let capability_code = match capability {
        Capability::Multiprotocol(family) => {
            value.put_u16(family.afi.0);
            value.put_u8(0); // reserved
            value.put_u8(family.safi.0);
            code::MULTIPROTOCOL
        }
        Capability::RouteRefresh => code::ROUTE_REFRESH,
        Capability::ExtendedNextHop(entries) => {
            for entry in entries {
                value.put_u16(entry.family.afi.0);
                value.put_u16(u16::from(entry.family.safi.0));
                value.put_u16(entry.next_hop_afi.0);
            }
            code::EXTENDED_NEXT_HOP
        }
        Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
        Capability::GracefulRestart(restart) => {
            if restart.restart_time > gr::TIME_MASK {
                return Err(EncodeError::RestartTimeTooLarge {
                    restart_time: restart.restart_time,
                });
            }
            let mut flags_and_time = restart.restart_time;
            if restart.restarting {
                flags_and_time |= gr::RESTART_STATE;
            }
            if restart.notification {
                flags_and_time |= gr::NOTIFICATION;
            }
            value.put_u16(flags_and_time);
            for family in &restart.families {
                value.put_u16(family.family.afi.0);
                value.put_u8(family.family.safi.0);
                value.put_u8(if family.forwarding_preserved {
                    gr::FORWARDING_STATE
                } else {
                    0
                });
            }
            code::GRACEFUL_RESTART
        }
        Capability::FourOctetAs(asn) => {
            value.put_u32(*asn);
            code::FOUR_OCTET_AS
        }
        Capability::AddPath(families) => {
            for entry in families {
                value.put_u16(entry.family.afi.0);
                value.put_u8(entry.family.safi.0);
                value.put_u8(match entry.mode {
                    AddPathMode::Receive => add_path_mode::RECEIVE,
                    AddPathMode::Send => add_path_mode::SEND,
                    AddPathMode::Both => add_path_mode::BOTH,
                    AddPathMode::Other(mode) => mode,
                });
            }
            code::ADD_PATH
        }
        Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
        Capability::Unknown { code, value: raw } => {
            value.put_slice(raw);
            *code
        }
    };
    let length = u8::try_from(value.len()).map_err(|_| EncodeError::CapabilityTooLong {
        code: capability_code,
        length: value.len(),
    })?;
    out.put_u8(capability_code);
    out.put_u8(length);
    out.put_slice(&value);
    Ok(())
}

fn put_capabilities_param(params: &mut BytesMut, capabilities: &[u8]) {
    params.put_u8(OPT_PARAM_CAPABILITIES);
    // Callers keep each parameter within 255 octets.
    params.put_u8(u8::try_from(capabilities.len()).unwrap_or(u8::MAX));
    params.put_slice(capabilities);
}

/// Decodes the capability TLVs of one Capabilities parameter.
fn decode_capabilities(value: Bytes, into: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let mut reader = Reader::new(value);
    while !reader.is_empty() {
        let (Some(capability_code), Some(length)) = (reader.u8(), reader.u8()) else {
            return Err(DecodeError::MalformedOptionalParameters {
                reason: "truncated capability header".to_string(),
            });
        };
        let value = reader.take(usize::from(length)).ok_or_else(|| {
            DecodeError::MalformedOptionalParameters {
                reason: format!(
                    "capability code {capability_code} length {length} overruns its parameter"
                ),
            }
        })?;
        into.push(decode_capability(capability_code, value)?);
    }
    Ok(())
}

fn decode_capability(capability_code: u8, value: Bytes) -> Result<Capability, DecodeError> {
    let malformed = |reason: String| DecodeError::MalformedCapability {
        code: capability_code,
        reason,
    };
    let length = value.len();
    let expect_len = |want: usize| {
        if length == want {
            Ok(())
        } else {
            Err(malformed(format!("length {length}, expected {want}")))
        }
    };
    let expect_multiple = |header: usize, entry: usize| {
        if length >= header && (length - header).is_multiple_of(entry) {
            Ok(())
        } else {
            Err(malformed(format!(
                "length {length} is not {header} + a multiple of {entry}"
            )))
        }
    };
    let truncated = || malformed("truncated".to_string());
    let mut reader = Reader::new(value.clone());
    let capability = match capability_code {
        code::MULTIPROTOCOL => {
            expect_len(4)?;
            let (Some(afi), Some(_reserved), Some(safi)) = (reader.u16(), reader.u8(), reader.u8())
            else {
                return Err(truncated());
            };
            Capability::Multiprotocol(Family::new(Afi(afi), Safi(safi)))
        }
        code::ROUTE_REFRESH => {
            expect_len(0)?;
            Capability::RouteRefresh
        }
        code::EXTENDED_NEXT_HOP => {
            expect_multiple(0, 6)?;
            let mut entries = Vec::new();
            while let (Some(afi), Some(safi), Some(next_hop_afi)) =
                (reader.u16(), reader.u16(), reader.u16())
            {
                let safi = u8::try_from(safi)
                    .map_err(|_| malformed(format!("SAFI {safi} does not fit one octet")))?;
                entries.push(ExtendedNextHop {
                    family: Family::new(Afi(afi), Safi(safi)),
                    next_hop_afi: Afi(next_hop_afi),
                });
            }
            Capability::ExtendedNextHop(entries)
        }
        code::EXTENDED_MESSAGE => {
            expect_len(0)?;
            Capability::ExtendedMessage
        }
        code::GRACEFUL_RESTART => {
            expect_multiple(2, 4)?;
            let flags_and_time = reader.u16().ok_or_else(truncated)?;
            let mut families = Vec::new();
            while let (Some(afi), Some(safi), Some(flags)) =
                (reader.u16(), reader.u8(), reader.u8())
            {
                families.push(GracefulRestartFamily {
                    family: Family::new(Afi(afi), Safi(safi)),
                    forwarding_preserved: flags & gr::FORWARDING_STATE != 0,
                });
            }
            Capability::GracefulRestart(GracefulRestart {
                restarting: flags_and_time & gr::RESTART_STATE != 0,
                notification: flags_and_time & gr::NOTIFICATION != 0,
                restart_time: flags_and_time & gr::TIME_MASK,
                families,
            })
        }
        code::FOUR_OCTET_AS => {
            expect_len(4)?;
            Capability::FourOctetAs(reader.u32().ok_or_else(truncated)?)
        }
        code::ADD_PATH => {
            expect_multiple(0, 4)?;
            let mut families = Vec::new();
            while let (Some(afi), Some(safi), Some(mode)) = (reader.u16(), reader.u8(), reader.u8())
            {
                families.push(AddPathFamily {
                    family: Family::new(Afi(afi), Safi(safi)),
                    mode: match mode {
                        add_path_mode::RECEIVE => AddPathMode::Receive,
                        add_path_mode::SEND => AddPathMode::Send,
                        add_path_mode::BOTH => AddPathMode::Both,
                        other => AddPathMode::Other(other),
                    },
                });
            }
            Capability::AddPath(families)
        }
        code::ENHANCED_ROUTE_REFRESH => {
            expect_len(0)?;
            Capability::EnhancedRouteRefresh
        }
        _ => Capability::Unknown {
            code: capability_code,
            value,
        },
    };
    Ok(capability)
}
