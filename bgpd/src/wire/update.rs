// UPDATE message body (RFC 4271 §4.3) and its error handling: lengths and
// NLRI fields per RFC 4271 §6.3 and RFC 7606 §5.3, attribute-level actions
// per RFC 7606 §3 and §7 (collected in `Update::malformed`), duplicate
// attributes (RFC 7606 §3 g), AS4_PATH/AS4_AGGREGATOR merging (RFC 6793
// §4.2.3) and End-of-RIB markers (RFC 4724 §2).
#![deny(clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};

use super::CodecParams;
use super::as_path::merge_as4_path;
use super::attribute::{Aggregator, AsPath, MpUnreach, PathAttribute};
use super::attribute_codec::{
    AttributeProblem, Decoded, attribute_name, decode_attribute, encode_attribute,
};
use super::error::{DecodeError, EncodeError, ErrorAction, NlriField};
use super::family::{Afi, Family};
use super::iana::{AS_TRANS, attr_flag, attr_type};
use super::message::{MalformedAttribute, Update};
use super::nlri::{decode_prefixes, encode_prefixes};
use super::reader::Reader;

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE
    /// for IPv4 unicast, an UPDATE with an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: vec![PathAttribute::MpUnreach(MpUnreach {
                family,
                withdrawn: Vec::new(),
            })],
            ..Update::default()
        }
    }

    /// The family this UPDATE marks the End-of-RIB of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || !self.malformed.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreach(unreach)] if unreach.withdrawn.is_empty() => {
                Some(unreach.family)
            }
            _ => None,
        }
    }

    /// RFC 4724 §2.
    pub fn is_end_of_rib(&self) -> bool {
        self.end_of_rib_family().is_some()
    }

    /// Whether RFC 7606 says every prefix announced here is withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.malformed
            .iter()
            .any(|m| m.action == ErrorAction::TreatAsWithdraw)
    }
}

/// Decodes the UPDATE body (everything after the 19-octet header).
pub(crate) fn decode_update(body: Bytes, params: &CodecParams) -> Result<Update, DecodeError> {
    let mut reader = Reader::new(body);
    let list_error = |reason: String| DecodeError::MalformedAttributeList { reason };
    let withdrawn_len = reader
        .u16()
        .ok_or_else(|| list_error("no withdrawn routes length".to_string()))?;
    let available = reader.remaining();
    let withdrawn_field = reader.take(usize::from(withdrawn_len)).ok_or_else(|| {
        list_error(format!(
            "withdrawn routes length {withdrawn_len} exceeds the {available} octets left"
        ))
    })?;
    let attributes_len = reader
        .u16()
        .ok_or_else(|| list_error("no total path attribute length".to_string()))?;
    let available = reader.remaining();
    let attributes_field = reader.take(usize::from(attributes_len)).ok_or_else(|| {
        list_error(format!(
            "total path attribute length {attributes_len} exceeds the {available} octets left"
        ))
    })?;
    let nlri_field = reader.rest();

    let ipv4_add_path = params.add_path_receive.contains(&Family::IPV4_UNICAST);
    let withdrawn = decode_prefixes(withdrawn_field, Afi::IPV4, ipv4_add_path).map_err(|e| {
        DecodeError::InvalidNetworkField {
            field: NlriField::Withdrawn,
            reason: e.to_string(),
        }
    })?;
    let nlri = decode_prefixes(nlri_field, Afi::IPV4, ipv4_add_path).map_err(|e| {
        DecodeError::InvalidNetworkField {
            field: NlriField::Nlri,
            reason: e.to_string(),
        }
    })?;

    let mut update = Update {
        withdrawn,
        nlri,
        ..Update::default()
    };
    let mut seen = [false; 256];
    let mut as4 = As4Attributes::default();
    decode_attributes(attributes_field, params, &mut update, &mut seen, &mut as4)?;
    if !params.four_octet_as {
        as4.merge_into(&mut update.attributes);
    }
    check_mandatory(&mut update, &seen);
    Ok(update)
}

/// What an old (2-octet AS) speaker sent alongside AS_PATH/AGGREGATOR.
#[derive(Default)]
struct As4Attributes {
    path: Option<AsPath>,
    aggregator: Option<Aggregator>,
}

impl As4Attributes {
    /// RFC 6793 §4.2.3.
    fn merge_into(self, attributes: &mut [PathAttribute]) {
        let aggregator = attributes.iter_mut().find_map(|a| match a {
            PathAttribute::Aggregator(aggregator) => Some(aggregator),
            _ => None,
        });
        if let Some(aggregator) = aggregator {
            if aggregator.asn != u32::from(AS_TRANS) {
                // Aggregated by an old speaker: both AS4 attributes are stale.
                return;
            }
            if let Some(as4_aggregator) = self.aggregator {
                *aggregator = as4_aggregator;
            }
        }
        let Some(as4_path) = self.path else {
            return;
        };
        for attribute in attributes.iter_mut() {
            if let PathAttribute::AsPath(path) = attribute {
                *path = merge_as4_path(path, &as4_path);
            }
        }
    }
}

fn decode_attributes(
    field: Bytes,
    params: &CodecParams,
    update: &mut Update,
    seen: &mut [bool; 256],
    as4: &mut As4Attributes,
) -> Result<(), DecodeError> {
    let total = field.len();
    let mut reader = Reader::new(field.clone());
    while !reader.is_empty() {
        let start = total - reader.remaining();
        let (Some(flags), Some(type_code)) = (reader.u8(), reader.u8()) else {
            return Err(overrun(
                "one octet left where an attribute header was expected",
            ));
        };
        let value_len = if flags & attr_flag::EXTENDED_LENGTH != 0 {
            reader.u16().map(usize::from)
        } else {
            reader.u8().map(usize::from)
        };
        let Some(value_len) = value_len else {
            return Err(overrun(&format!(
                "attribute type {type_code} header is truncated"
            )));
        };
        let available = reader.remaining();
        let Some(value) = reader.take(value_len) else {
            return Err(overrun(&format!(
                "{} ({type_code}) length {value_len} overruns the {available} octets left",
                attribute_name(type_code)
            )));
        };
        let end = total - reader.remaining();
        let name = attribute_name(type_code);

        let already_seen = seen
            .get_mut(usize::from(type_code))
            .map(|slot| std::mem::replace(slot, true))
            .unwrap_or(false);
        if already_seen {
            // RFC 7606 §3 g.
            if matches!(
                type_code,
                attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI
            ) {
                return Err(DecodeError::MalformedAttributeList {
                    reason: format!("{name} appears more than once"),
                });
            }
            update.malformed.push(MalformedAttribute {
                type_code,
                action: ErrorAction::AttributeDiscard,
                reason: format!("duplicate {name} ({type_code}): all but the first discarded"),
            });
            continue;
        }

        let decoded = match decode_attribute(flags, type_code, value, params) {
            Ok(decoded) => Some(decoded),
            Err(AttributeProblem {
                action: ErrorAction::SessionReset,
                subcode,
                reason,
                ..
            }) => {
                return Err(DecodeError::AttributeError {
                    type_code,
                    subcode,
                    attribute: field.slice(start..end),
                    reason,
                });
            }
            Err(AttributeProblem {
                action,
                reason,
                keep,
                ..
            }) => {
                update.malformed.push(MalformedAttribute {
                    type_code,
                    action,
                    reason,
                });
                keep
            }
        };
        match decoded {
            Some(Decoded::Attribute(attribute)) => update.attributes.push(attribute),
            Some(Decoded::As4Path(path)) => as4.path = Some(path),
            Some(Decoded::As4Aggregator(aggregator)) => as4.aggregator = Some(aggregator),
            None => {}
        }
    }
    Ok(())
}

/// RFC 7606 §3 d: missing well-known mandatory attributes when the UPDATE
/// announces something. NEXT_HOP is only needed for the IPv4 NLRI field
/// (RFC 4760 §3).
fn check_mandatory(update: &mut Update, seen: &[bool; 256]) {
    let announces_mp = update.attributes.iter().any(|a| match a {
        PathAttribute::MpReach(reach) => !reach.nlri.is_empty(),
        _ => false,
    });
    if update.nlri.is_empty() && !announces_mp {
        return;
    }
    let mut required = vec![attr_type::ORIGIN, attr_type::AS_PATH];
    if !update.nlri.is_empty() {
        required.push(attr_type::NEXT_HOP);
    }
    for type_code in required {
        if !seen.get(usize::from(type_code)).copied().unwrap_or(false) {
            update.malformed.push(MalformedAttribute {
                type_code,
                action: ErrorAction::TreatAsWithdraw,
                reason: format!("missing well-known attribute {}", attribute_name(type_code)),
            });
        }
    }
}

/// An attribute runs past the attribute section. RFC 7606 §4 would allow
/// treat-as-withdraw, but the unparsed rest may hide an MP_REACH_NLRI or
/// MP_UNREACH_NLRI whose prefixes we could then neither withdraw nor
/// remove, so we reset the session.
fn overrun(reason: &str) -> DecodeError {
    DecodeError::MalformedAttributeList {
        reason: reason.to_string(),
    }
}

/// Appends the UPDATE body.
pub(crate) fn encode_update(
    update: &Update,
    params: &CodecParams,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let ipv4_add_path = params.add_path_send.contains(&Family::IPV4_UNICAST);

    let withdrawn_at = out.len();
    out.put_u16(0);
    encode_prefixes(&update.withdrawn, Family::IPV4_UNICAST, ipv4_add_path, out)?;
    patch_length(out, withdrawn_at, "withdrawn routes")?;

    let attributes_at = out.len();
    out.put_u16(0);
    let mut scratch = BytesMut::new();
    for attribute in &update.attributes {
        encode_attribute(attribute, params, &mut scratch, out)?;
    }
    patch_length(out, attributes_at, "path attributes")?;

    encode_prefixes(&update.nlri, Family::IPV4_UNICAST, ipv4_add_path, out)
}

/// Fills in the 2-octet length placed at `at` with what follows it.
fn patch_length(out: &mut BytesMut, at: usize, field: &'static str) -> Result<(), EncodeError> {
    let length = out.len().saturating_sub(at + 2);
    let encoded =
        u16::try_from(length).map_err(|_| EncodeError::UpdateFieldTooLong { field, length })?;
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&encoded.to_be_bytes());
    }
    Ok(())
}
