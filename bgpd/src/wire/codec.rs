// Message framing (RFC 4271 §4.1 header, §6.1 header errors; RFC 8654 §4
// extended length) and the bodies too small for their own file: KEEPALIVE
// (§4.4), NOTIFICATION (§4.5) and ROUTE-REFRESH (RFC 2918 §3, RFC 7313
// §3.2, §5). `BgpCodec` plugs all of it into tokio-util's framed streams.
#![deny(clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::CodecParams;
use super::error::{CodecError, DecodeError, EncodeError};
use super::family::{Afi, Family, Safi};
use super::iana::{
    HEADER_LEN, MARKER, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, NOTIFICATION_MIN_LEN,
    OPEN_MIN_LEN, ROUTE_REFRESH_LEN, UPDATE_MIN_LEN, message_type, route_refresh_subtype,
};
use super::message::{Message, Notification, RouteRefresh, RouteRefreshSubtype};
use super::open::{decode_open, encode_open};
use super::reader::Reader;
use super::update::{decode_update, encode_update};

/// Frames BGP messages on a byte stream. Start with `new()` (nothing
/// negotiated) and call `set_params` once both OPENs are in.
#[derive(Debug, Clone, Default)]
pub struct BgpCodec {
    params: CodecParams,
}

impl BgpCodec {
    pub fn new() -> BgpCodec {
        BgpCodec::default()
    }

    pub fn with_params(params: CodecParams) -> BgpCodec {
        BgpCodec { params }
    }

    /// Switches to what the session negotiated; applies to the next frame.
    pub fn set_params(&mut self, params: CodecParams) {
        self.params = params;
    }

    pub fn params(&self) -> &CodecParams {
        &self.params
    }
}

impl Decoder for BgpCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(header) = parse_header(src, &self.params)? else {
            src.reserve(HEADER_LEN.saturating_sub(src.len()));
            return Ok(None);
        };
        if src.len() < header.length {
            src.reserve(header.length - src.len());
            return Ok(None);
        }
        let frame = src.split_to(header.length).freeze();
        Ok(Some(decode_message(frame, &self.params)?))
    }
}

impl Encoder<&Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        encode_message_into(message, &self.params, dst).inspect_err(|_| dst.truncate(start))?;
        Ok(())
    }
}

impl Encoder<Message> for BgpCodec {
    type Error = CodecError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Message>::encode(self, &message, dst)
    }
}

/// Encodes one whole message, header included.
pub fn encode_message(message: &Message, params: &CodecParams) -> Result<BytesMut, EncodeError> {
    let mut out = BytesMut::new();
    encode_message_into(message, params, &mut out)?;
    Ok(out)
}

/// Decodes one whole message, header included; `frame` must be exactly
/// the message (its length field must match).
pub fn decode_message(frame: Bytes, params: &CodecParams) -> Result<Message, DecodeError> {
    let Some(header) = parse_header(&frame, params)? else {
        return Err(DecodeError::BadMessageLength {
            length: u16::try_from(frame.len()).unwrap_or(u16::MAX),
            message_type: 0,
        });
    };
    if header.length != frame.len() {
        return Err(DecodeError::BadMessageLength {
            length: u16::try_from(header.length).unwrap_or(u16::MAX),
            message_type: header.message_type,
        });
    }
    let mut reader = Reader::new(frame.clone());
    let _header = reader.take(HEADER_LEN);
    let body = reader.rest();
    match header.message_type {
        message_type::OPEN => decode_open(body).map(Message::Open),
        message_type::UPDATE => decode_update(body, params).map(Message::Update),
        message_type::NOTIFICATION => Ok(Message::Notification(decode_notification(body))),
        message_type::KEEPALIVE => Ok(Message::Keepalive),
        message_type::ROUTE_REFRESH => decode_route_refresh(frame, body).map(Message::RouteRefresh),
        // parse_header refuses other types.
        other => Err(DecodeError::BadMessageType {
            message_type: other,
        }),
    }
}

/// The largest message we may send or accept of `message_type`: OPEN and
/// KEEPALIVE stay within 4096 even with extended messages (RFC 8654 §4).
pub fn max_message_len(message_type: u8, params: &CodecParams) -> usize {
    match message_type {
        message_type::OPEN | message_type::KEEPALIVE => MAX_MESSAGE_LEN,
        _ if params.extended_message => MAX_EXTENDED_MESSAGE_LEN,
        _ => MAX_MESSAGE_LEN,
    }
}

#[derive(Debug, Clone, Copy)]
struct Header {
    length: usize,
    message_type: u8,
}

/// Checks the header once 19 octets are there (RFC 4271 §6.1): marker,
/// then length against the type's bounds, then type. `None` if short.
fn parse_header(buf: &[u8], params: &CodecParams) -> Result<Option<Header>, DecodeError> {
    let Some((marker, rest)) = buf.split_first_chunk::<16>() else {
        return Ok(None);
    };
    let Some((length, rest)) = rest.split_first_chunk::<2>() else {
        return Ok(None);
    };
    let Some(&message_type) = rest.first() else {
        return Ok(None);
    };
    if *marker != MARKER {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let length_field = u16::from_be_bytes(*length);
    let length = usize::from(length_field);
    let bad_length = DecodeError::BadMessageLength {
        length: length_field,
        message_type,
    };
    let min = match message_type {
        message_type::OPEN => OPEN_MIN_LEN,
        message_type::UPDATE => UPDATE_MIN_LEN,
        message_type::NOTIFICATION => NOTIFICATION_MIN_LEN,
        message_type::KEEPALIVE => HEADER_LEN,
        // Checked against the subtype in decode_route_refresh (RFC 7313 §5).
        message_type::ROUTE_REFRESH => HEADER_LEN,
        _ => {
            if !(HEADER_LEN..=max_message_len(message_type, params)).contains(&length) {
                return Err(bad_length);
            }
            return Err(DecodeError::BadMessageType { message_type });
        }
    };
    let max = match message_type {
        message_type::KEEPALIVE => HEADER_LEN,
        other => max_message_len(other, params),
    };
    if !(min..=max).contains(&length) {
        return Err(bad_length);
    }
    Ok(Some(Header {
        length,
        message_type,
    }))
}

fn encode_message_into(
    message: &Message,
    params: &CodecParams,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_slice(&MARKER);
    out.put_u16(0); // patched below
    let kind = match message {
        Message::Open(open) => {
            out.put_u8(message_type::OPEN);
            encode_open(open, out)?;
            message_type::OPEN
        }
        Message::Update(update) => {
            out.put_u8(message_type::UPDATE);
            encode_update(update, params, out)?;
            message_type::UPDATE
        }
        Message::Notification(notification) => {
            out.put_u8(message_type::NOTIFICATION);
            out.put_u8(notification.code);
            out.put_u8(notification.subcode);
            out.put_slice(&notification.data);
            message_type::NOTIFICATION
        }
        Message::Keepalive => {
            out.put_u8(message_type::KEEPALIVE);
            message_type::KEEPALIVE
        }
        Message::RouteRefresh(refresh) => {
            out.put_u8(message_type::ROUTE_REFRESH);
            out.put_u16(refresh.family.afi.0);
            out.put_u8(match refresh.subtype {
                RouteRefreshSubtype::Request => route_refresh_subtype::REQUEST,
                RouteRefreshSubtype::BeginningOfRefresh => {
                    route_refresh_subtype::BEGINNING_OF_REFRESH
                }
                RouteRefreshSubtype::EndOfRefresh => route_refresh_subtype::END_OF_REFRESH,
                RouteRefreshSubtype::Reserved(subtype) => subtype,
            });
            out.put_u8(refresh.family.safi.0);
            message_type::ROUTE_REFRESH
        }
    };
    let length = out.len() - start;
    let max = max_message_len(kind, params);
    if length > max {
        return Err(EncodeError::MessageTooLong {
            message_type: kind,
            length,
            max,
        });
    }
    let length_field = u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes();
    if let Some(slot) = out.get_mut(start + MARKER.len()..start + MARKER.len() + 2) {
        slot.copy_from_slice(&length_field);
    }
    Ok(())
}

/// RFC 4271 §4.5: the header guarantees code and subcode are there.
fn decode_notification(body: Bytes) -> Notification {
    let mut reader = Reader::new(body);
    let code = reader.u8().unwrap_or(0);
    let subcode = reader.u8().unwrap_or(0);
    Notification {
        code,
        subcode,
        data: reader.rest(),
    }
}

/// RFC 2918 §3 / RFC 7313 §3.2. A wrong length is a ROUTE-REFRESH Message
/// Error carrying the whole message for the enhanced subtypes (RFC 7313
/// §5), a header Bad Message Length otherwise.
fn decode_route_refresh(frame: Bytes, body: Bytes) -> Result<RouteRefresh, DecodeError> {
    let mut reader = Reader::new(body);
    let (afi, subtype, safi) = (reader.u16(), reader.u8(), reader.u8());
    let (Some(afi), Some(subtype), Some(safi), true) = (afi, subtype, safi, reader.is_empty())
    else {
        if matches!(
            subtype,
            Some(
                route_refresh_subtype::BEGINNING_OF_REFRESH | route_refresh_subtype::END_OF_REFRESH
            )
        ) {
            return Err(DecodeError::RouteRefreshInvalidLength { message: frame });
        }
        return Err(DecodeError::BadMessageLength {
            length: u16::try_from(frame.len()).unwrap_or(u16::MAX),
            message_type: message_type::ROUTE_REFRESH,
        });
    };
    debug_assert_eq!(frame.len(), ROUTE_REFRESH_LEN);
    Ok(RouteRefresh {
        family: Family::new(Afi(afi), Safi(safi)),
        subtype: match subtype {
            route_refresh_subtype::REQUEST => RouteRefreshSubtype::Request,
            route_refresh_subtype::BEGINNING_OF_REFRESH => RouteRefreshSubtype::BeginningOfRefresh,
            route_refresh_subtype::END_OF_REFRESH => RouteRefreshSubtype::EndOfRefresh,
            other => RouteRefreshSubtype::Reserved(other),
        },
    })
}
