// Codec tests that cross modules: hand-written byte captures of each
// message (laid out from the RFC figures and from what FRR and BIRD send),
// every error path with its exact NOTIFICATION or RFC 7606 action, framing,
// and property tests.
#![allow(clippy::unwrap_used)]

mod captures;
mod errors;
mod framing;
mod proptests;

use bytes::{BufMut, Bytes, BytesMut};

use super::{CodecParams, DecodeError, Message, Notification, decode_message, encode_message};

/// Bytes from a hex string with any whitespace, for readable captures.
pub(super) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A whole message: marker, length, type, then `body`.
pub(super) fn frame(message_type: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(&[0xff; 16]);
    out.put_u16(u16::try_from(19 + body.len()).unwrap());
    out.put_u8(message_type);
    out.put_slice(body);
    out.freeze()
}

pub(super) fn two_octet() -> CodecParams {
    CodecParams::default()
}

pub(super) fn four_octet() -> CodecParams {
    CodecParams {
        four_octet_as: true,
        ..CodecParams::default()
    }
}

/// Decodes, checks that encoding gives the same bytes back, returns it.
pub(super) fn decode_exact(bytes: &[u8], params: &CodecParams) -> Message {
    let message = decode_message(Bytes::copy_from_slice(bytes), params).unwrap();
    let again = encode_message(&message, params).unwrap();
    assert_eq!(&again[..], bytes, "re-encoding differs for {message:?}");
    message
}

/// Decodes expecting an error, returns the NOTIFICATION it maps to.
pub(super) fn decode_error(bytes: &[u8], params: &CodecParams) -> (DecodeError, Notification) {
    let error = decode_message(Bytes::copy_from_slice(bytes), params).unwrap_err();
    let notification = error.notification();
    (error, notification)
}
