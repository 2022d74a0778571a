// The BGP wire codec: bytes in, typed messages out, and back (RFC 4271 §4
// and the RFCs named in each submodule). Pure: no sockets, no clock.
// `BgpCodec` frames a TCP stream with tokio-util; `CodecParams` carries what
// the session negotiated that changes the wire format.

pub mod attribute;
pub mod capability;
pub mod error;
pub mod family;
pub mod iana;
pub mod message;

pub use attribute::*;
pub use capability::*;
pub use error::ErrorAction;
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
