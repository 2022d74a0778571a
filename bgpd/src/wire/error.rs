// Decode and encode errors. Each decode error knows the NOTIFICATION it must
// produce (RFC 4271 §6.1-6.3, RFC 5492 §5, RFC 7313 §5); UPDATE attribute
// errors that do not reset the session are not errors at all but entries in
// `Update::malformed`, with their RFC 7606 §2 action.

use std::fmt;
use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};
use ipnetwork::IpNetwork;

use super::capability::Capability;
use super::family::Family;
use super::iana::{BGP_VERSION, notification as code};
use super::message::Notification;

/// What to do about a malformed UPDATE attribute (RFC 7606 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// Send the NOTIFICATION and reset the session.
    SessionReset,
    /// Keep the session; handle every prefix of the UPDATE as withdrawn.
    TreatAsWithdraw,
    /// Keep the session and the routes; drop only this attribute.
    AttributeDiscard,
}

impl fmt::Display for ErrorAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorAction::SessionReset => "session reset",
            ErrorAction::TreatAsWithdraw => "treat-as-withdraw",
            ErrorAction::AttributeDiscard => "attribute discard",
        })
    }
}

/// Which NLRI field of an UPDATE failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlriField {
    /// RFC 4271 §4.3 Withdrawn Routes.
    Withdrawn,
    /// RFC 4271 §4.3 Network Layer Reachability Information.
    Nlri,
}

impl fmt::Display for NlriField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NlriField::Withdrawn => "withdrawn routes",
            NlriField::Nlri => "NLRI",
        })
    }
}

/// A message that cannot be accepted: the session must send
/// `notification()` and close (RFC 4271 §6, RFC 7606 "session reset").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// RFC 4271 §6.1: the marker is not all ones.
    #[error("message header marker is not all ones (connection not synchronized)")]
    ConnectionNotSynchronized,
    /// RFC 4271 §6.1: length field out of range for the message type.
    #[error("bad message length {length} for message type {message_type}")]
    BadMessageLength { length: u16, message_type: u8 },
    /// RFC 4271 §6.1: unknown message type.
    #[error("bad message type {message_type}")]
    BadMessageType { message_type: u8 },
    /// RFC 4271 §6.2.
    #[error("OPEN: unsupported BGP version {version} (we speak {BGP_VERSION})")]
    UnsupportedVersion { version: u8 },
    /// RFC 4271 §6.2, RFC 6286 §2.2: the BGP Identifier must be non-zero.
    #[error("OPEN: bad BGP identifier {bgp_id}")]
    BadBgpIdentifier { bgp_id: Ipv4Addr },
    /// RFC 4271 §6.2: hold time 1 or 2 seconds.
    #[error("OPEN: unacceptable hold time {hold_time} s (must be 0 or at least 3)")]
    UnacceptableHoldTime { hold_time: u16 },
    /// RFC 4271 §6.2: an optional parameter other than Capabilities.
    #[error("OPEN: unsupported optional parameter type {param_type}")]
    UnsupportedOptionalParameter { param_type: u8 },
    /// RFC 4271 §6.2: optional parameters that do not parse (subcode 0).
    #[error("OPEN: malformed optional parameters: {reason}")]
    MalformedOptionalParameters { reason: String },
    /// RFC 4271 §6.2 (subcode 0): a capability we know with a bad value.
    #[error("OPEN: malformed capability code {code}: {reason}")]
    MalformedCapability { code: u8, reason: String },
    /// RFC 5492 §5: the peer lacks (or sent) capabilities we cannot work
    /// with. Not produced by the decoder; the session raises it.
    #[error(
        "OPEN: unsupported capabilities: {}",
        describe_capabilities(capabilities)
    )]
    UnsupportedCapability { capabilities: Vec<Capability> },
    /// RFC 4271 §6.3 / RFC 7606 §4: the lengths inside the UPDATE are
    /// inconsistent, or MP_REACH/MP_UNREACH appears twice (RFC 7606 §3 g).
    #[error("UPDATE: malformed attribute list: {reason}")]
    MalformedAttributeList { reason: String },
    /// RFC 4271 §6.3 / RFC 7606 §5.3: a prefix in the withdrawn routes or
    /// NLRI field does not parse.
    #[error("UPDATE: invalid network field in {field}: {reason}")]
    InvalidNetworkField { field: NlriField, reason: String },
    /// RFC 4271 §6.3: an attribute error that resets the session. `attribute`
    /// is the attribute as received (flags, type, length, value).
    #[error("UPDATE: attribute type {type_code}: {reason}")]
    AttributeError {
        type_code: u8,
        subcode: u8,
        attribute: Bytes,
        reason: String,
    },
    /// RFC 7313 §5: an enhanced ROUTE-REFRESH whose length is not 23.
    /// `message` is the complete message as received.
    #[error("ROUTE-REFRESH: invalid message length {}", message.len())]
    RouteRefreshInvalidLength { message: Bytes },
}

impl DecodeError {
    /// The NOTIFICATION to send before closing the session (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        use code::{header, open, update};
        let (error_code, subcode, data) = match self {
            DecodeError::ConnectionNotSynchronized => (
                code::MESSAGE_HEADER_ERROR,
                header::CONNECTION_NOT_SYNCHRONIZED,
                Bytes::new(),
            ),
            DecodeError::BadMessageLength { length, .. } => (
                code::MESSAGE_HEADER_ERROR,
                header::BAD_MESSAGE_LENGTH,
                Bytes::copy_from_slice(&length.to_be_bytes()),
            ),
            DecodeError::BadMessageType { message_type } => (
                code::MESSAGE_HEADER_ERROR,
                header::BAD_MESSAGE_TYPE,
                Bytes::copy_from_slice(&[*message_type]),
            ),
            // The data is the largest version we support, as 2 octets.
            DecodeError::UnsupportedVersion { .. } => (
                code::OPEN_MESSAGE_ERROR,
                open::UNSUPPORTED_VERSION_NUMBER,
                Bytes::copy_from_slice(&u16::from(BGP_VERSION).to_be_bytes()),
            ),
            DecodeError::BadBgpIdentifier { .. } => (
                code::OPEN_MESSAGE_ERROR,
                open::BAD_BGP_IDENTIFIER,
                Bytes::new(),
            ),
            DecodeError::UnacceptableHoldTime { .. } => (
                code::OPEN_MESSAGE_ERROR,
                open::UNACCEPTABLE_HOLD_TIME,
                Bytes::new(),
            ),
            DecodeError::UnsupportedOptionalParameter { .. } => (
                code::OPEN_MESSAGE_ERROR,
                open::UNSUPPORTED_OPTIONAL_PARAMETER,
                Bytes::new(),
            ),
            DecodeError::MalformedOptionalParameters { .. }
            | DecodeError::MalformedCapability { .. } => {
                (code::OPEN_MESSAGE_ERROR, open::UNSPECIFIC, Bytes::new())
            }
            DecodeError::UnsupportedCapability { capabilities } => (
                code::OPEN_MESSAGE_ERROR,
                open::UNSUPPORTED_CAPABILITY,
                capability_tlvs(capabilities),
            ),
            DecodeError::MalformedAttributeList { .. } => (
                code::UPDATE_MESSAGE_ERROR,
                update::MALFORMED_ATTRIBUTE_LIST,
                Bytes::new(),
            ),
            DecodeError::InvalidNetworkField { .. } => (
                code::UPDATE_MESSAGE_ERROR,
                update::INVALID_NETWORK_FIELD,
                Bytes::new(),
            ),
            DecodeError::AttributeError {
                subcode, attribute, ..
            } => (code::UPDATE_MESSAGE_ERROR, *subcode, attribute.clone()),
            DecodeError::RouteRefreshInvalidLength { message } => (
                code::ROUTE_REFRESH_MESSAGE_ERROR,
                code::route_refresh::INVALID_MESSAGE_LENGTH,
                message.clone(),
            ),
        };
        Notification {
            code: error_code,
            subcode,
            data,
        }
    }

    /// Always `SessionReset`: errors that allow a gentler RFC 7606 action
    /// are reported in `Update::malformed` instead.
    pub fn action(&self) -> ErrorAction {
        ErrorAction::SessionReset
    }
}

/// The capability TLVs for an Unsupported Capability NOTIFICATION
/// (RFC 5492 §5). A capability too long to encode is left out.
fn capability_tlvs(capabilities: &[Capability]) -> Bytes {
    let mut data = BytesMut::new();
    for capability in capabilities {
        let mut tlv = BytesMut::new();
        if super::open::encode_capability(capability, &mut tlv).is_ok() {
            data.put(tlv);
        }
    }
    data.freeze()
}

fn describe_capabilities(capabilities: &[Capability]) -> String {
    capabilities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A message that cannot be put on the wire as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// RFC 4271 §4.1 / RFC 8654 §4: longer than the peer accepts.
    #[error("message type {message_type} would be {length} bytes, more than the {max} allowed")]
    MessageTooLong {
        message_type: u8,
        length: usize,
        max: usize,
    },
    /// RFC 4271 §4.3: the extended length field holds at most 65535.
    #[error("attribute type {type_code} value of {length} bytes does not fit")]
    AttributeTooLong { type_code: u8, length: usize },
    /// RFC 5492 §4: a capability value holds at most 255 bytes.
    #[error("capability code {code} value of {length} bytes does not fit")]
    CapabilityTooLong { code: u8, length: usize },
    /// RFC 4271 §4.2: optional parameters hold at most 255 bytes.
    #[error("OPEN optional parameters of {length} bytes do not fit in 255")]
    OptionalParametersTooLong { length: usize },
    /// RFC 4271 §4.3: withdrawn routes or attributes over 65535 bytes.
    #[error("UPDATE {field} of {length} bytes does not fit")]
    UpdateFieldTooLong { field: &'static str, length: usize },
    /// RFC 7606 §7.8/§7.10/§7.14, RFC 8092 §6: an empty list attribute is
    /// malformed on receipt.
    #[error("attribute type {type_code} needs at least one entry")]
    EmptyAttribute { type_code: u8 },
    /// RFC 7606 §7.2: a zero-length segment is malformed on receipt.
    #[error("AS_PATH has an empty segment")]
    EmptyAsPathSegment,
    #[error("prefix {prefix} does not belong to family {family}")]
    WrongFamilyPrefix { family: Family, prefix: IpNetwork },
    /// RFC 7911 §3: path identifiers only where ADD-PATH was negotiated.
    #[error("NLRI carries a path id but ADD-PATH send is not negotiated for {family}")]
    UnexpectedPathId { family: Family },
    #[error("MP_REACH_NLRI for {family} cannot carry {count} next hops")]
    InvalidNextHops { family: Family, count: usize },
    #[error(
        "MP_REACH/MP_UNREACH for {family}: only IPv4/IPv6 unicast and multicast prefixes are encoded"
    )]
    UnsupportedFamily { family: Family },
    /// RFC 4724 §3: the restart time has 12 bits.
    #[error("graceful restart time {restart_time} exceeds 4095 s")]
    RestartTimeTooLarge { restart_time: u16 },
}

/// What `BgpCodec` returns: a decode error (send its NOTIFICATION), an
/// encode error, or an I/O error from the transport.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// The NOTIFICATION to send, if the error came from the peer's bytes.
    pub fn notification(&self) -> Option<Notification> {
        match self {
            CodecError::Decode(error) => Some(error.notification()),
            CodecError::Encode(_) | CodecError::Io(_) => None,
        }
    }
}
