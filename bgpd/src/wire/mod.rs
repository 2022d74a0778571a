// The BGP wire codec: bytes in, typed messages out, and back (RFC 4271 §4
// and the RFCs named in each submodule). Pure: no sockets, no clock.
// `BgpCodec` frames a TCP stream with tokio-util; `CodecParams` carries what
// the session negotiated that changes the wire format.

mod as_path;
pub mod attribute;
mod attribute_codec;
pub mod capability;
pub mod codec;
pub mod error;
pub mod family;
pub mod iana;
pub mod message;
mod nlri;
pub mod notification;
mod open;
mod reader;
mod update;

#[cfg(test)]
mod tests;

pub use attribute::*;
pub use attribute_codec::attribute_name;
pub use capability::*;
pub use codec::{BgpCodec, decode_message, encode_message, max_message_len};
pub use error::{CodecError, DecodeError, EncodeError, ErrorAction, NlriField};
pub use family::{Afi, Family, Safi};
pub use message::*;

/// Negotiated session properties that change how messages are laid out.
/// Before the OPENs are exchanged every field is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodecParams {
    /// RFC 6793: both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// RFC 8654: both sides sent the extended message capability, so
    /// messages other than OPEN and KEEPALIVE may be up to 65535 octets.
    pub extended_message: bool,
    /// RFC 7911: families whose NLRI we receive with path identifiers.
    pub add_path_receive: Vec<Family>,
    /// RFC 7911: families whose NLRI we send with path identifiers.
    pub add_path_send: Vec<Family>,
}
