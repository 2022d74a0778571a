// NOTIFICATION helpers (RFC 4271 §4.5, §6): constructors for the common
// ones, the Cease shutdown communication (RFC 9003 §2, updating RFC 8203:
// one length octet then at most 255 octets of UTF-8), and a Display that
// names code and subcode in words for logs and `podctl`.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::Capability;
use super::error::DecodeError;
use super::family::Family;
use super::iana::{MAX_SHUTDOWN_COMMUNICATION_LEN, notification as code};
use super::message::Notification;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Bytes) -> Notification {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// RFC 4271 §6.5.
    pub fn hold_timer_expired() -> Notification {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, Bytes::new())
    }

    /// RFC 6608 §4: an event the state machine did not expect.
    pub fn fsm_error(subcode: u8) -> Notification {
        Notification::new(code::FSM_ERROR, subcode, Bytes::new())
    }

    /// A Cease (RFC 4486 §4) without data.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(code::CEASE, subcode, Bytes::new())
    }

    /// Cease / Administrative Shutdown with a shutdown communication
    /// (RFC 9003 §2), truncated to 255 octets at a character boundary.
    pub fn administrative_shutdown(message: &str) -> Notification {
        Notification::new(
            code::CEASE,
            code::cease::ADMINISTRATIVE_SHUTDOWN,
            shutdown_communication(message),
        )
    }

    /// Cease / Administrative Reset with a shutdown communication.
    pub fn administrative_reset(message: &str) -> Notification {
        Notification::new(
            code::CEASE,
            code::cease::ADMINISTRATIVE_RESET,
            shutdown_communication(message),
        )
    }

    /// Cease / Maximum Number of Prefixes Reached, with the family and the
    /// limit as RFC 4486 §4 suggests.
    pub fn max_prefixes_reached(family: Family, limit: u32) -> Notification {
        let mut data = BytesMut::with_capacity(7);
        data.put_u16(family.afi.0);
        data.put_u8(family.safi.0);
        data.put_u32(limit);
        Notification::new(
            code::CEASE,
            code::cease::MAX_PREFIXES_REACHED,
            data.freeze(),
        )
    }

    /// OPEN Message Error / Unsupported Capability listing what we need
    /// and the peer did not offer (RFC 5492 §5).
    pub fn unsupported_capability(capabilities: &[Capability]) -> Notification {
        DecodeError::UnsupportedCapability {
            capabilities: capabilities.to_vec(),
        }
        .notification()
    }

    /// OPEN Message Error / Bad Peer AS (RFC 4271 §6.2).
    pub fn bad_peer_as() -> Notification {
        Notification::new(
            code::OPEN_MESSAGE_ERROR,
            code::open::BAD_PEER_AS,
            Bytes::new(),
        )
    }

    /// OPEN Message Error / Unacceptable Hold Time (RFC 4271 §6.2).
    pub fn unacceptable_hold_time() -> Notification {
        Notification::new(
            code::OPEN_MESSAGE_ERROR,
            code::open::UNACCEPTABLE_HOLD_TIME,
            Bytes::new(),
        )
    }

    /// The RFC 9003 shutdown communication of a Cease / Administrative
    /// Shutdown or Reset, read tolerantly: a length past the data is cut
    /// to what is there, bad UTF-8 is replaced. `None` if there is none.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                code::cease::ADMINISTRATIVE_SHUTDOWN | code::cease::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&length, text) = self.data.split_first()?;
        if length == 0 {
            return None;
        }
        let text = text.get(..usize::from(length)).unwrap_or(text);
        Some(String::from_utf8_lossy(text).into_owned())
    }

    /// The error code in words (RFC 4271 §4.5).
    pub fn code_name(&self) -> Option<&'static str> {
        Some(match self.code {
            code::MESSAGE_HEADER_ERROR => "Message Header Error",
            code::OPEN_MESSAGE_ERROR => "OPEN Message Error",
            code::UPDATE_MESSAGE_ERROR => "UPDATE Message Error",
            code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
            code::FSM_ERROR => "Finite State Machine Error",
            code::CEASE => "Cease",
            code::ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH Message Error",
            _ => return None,
        })
    }

    /// The subcode in words, where the code defines it.
    pub fn subcode_name(&self) -> Option<&'static str> {
        use code::{cease, fsm, header, open, update};
        Some(match (self.code, self.subcode) {
            (code::MESSAGE_HEADER_ERROR, header::CONNECTION_NOT_SYNCHRONIZED) => {
                "Connection Not Synchronized"
            }
            (code::MESSAGE_HEADER_ERROR, header::BAD_MESSAGE_LENGTH) => "Bad Message Length",
            (code::MESSAGE_HEADER_ERROR, header::BAD_MESSAGE_TYPE) => "Bad Message Type",
            (code::OPEN_MESSAGE_ERROR, open::UNSPECIFIC) => "Unspecific",
            (code::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_VERSION_NUMBER) => {
                "Unsupported Version Number"
            }
            (code::OPEN_MESSAGE_ERROR, open::BAD_PEER_AS) => "Bad Peer AS",
            (code::OPEN_MESSAGE_ERROR, open::BAD_BGP_IDENTIFIER) => "Bad BGP Identifier",
            (code::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
                "Unsupported Optional Parameter"
            }
            (code::OPEN_MESSAGE_ERROR, open::UNACCEPTABLE_HOLD_TIME) => "Unacceptable Hold Time",
            (code::OPEN_MESSAGE_ERROR, open::UNSUPPORTED_CAPABILITY) => "Unsupported Capability",
            (code::UPDATE_MESSAGE_ERROR, update::MALFORMED_ATTRIBUTE_LIST) => {
                "Malformed Attribute List"
            }
            (code::UPDATE_MESSAGE_ERROR, update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
                "Unrecognized Well-known Attribute"
            }
            (code::UPDATE_MESSAGE_ERROR, update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
                "Missing Well-known Attribute"
            }
            (code::UPDATE_MESSAGE_ERROR, update::ATTRIBUTE_FLAGS_ERROR) => "Attribute Flags Error",
            (code::UPDATE_MESSAGE_ERROR, update::ATTRIBUTE_LENGTH_ERROR) => {
                "Attribute Length Error"
            }
            (code::UPDATE_MESSAGE_ERROR, update::INVALID_ORIGIN_ATTRIBUTE) => {
                "Invalid ORIGIN Attribute"
            }
            (code::UPDATE_MESSAGE_ERROR, update::INVALID_NEXT_HOP_ATTRIBUTE) => {
                "Invalid NEXT_HOP Attribute"
            }
            (code::UPDATE_MESSAGE_ERROR, update::OPTIONAL_ATTRIBUTE_ERROR) => {
                "Optional Attribute Error"
            }
            (code::UPDATE_MESSAGE_ERROR, update::INVALID_NETWORK_FIELD) => "Invalid Network Field",
            (code::UPDATE_MESSAGE_ERROR, update::MALFORMED_AS_PATH) => "Malformed AS_PATH",
            (code::FSM_ERROR, fsm::UNEXPECTED_IN_OPENSENT) => {
                "Receive Unexpected Message in OpenSent State"
            }
            (code::FSM_ERROR, fsm::UNEXPECTED_IN_OPENCONFIRM) => {
                "Receive Unexpected Message in OpenConfirm State"
            }
            (code::FSM_ERROR, fsm::UNEXPECTED_IN_ESTABLISHED) => {
                "Receive Unexpected Message in Established State"
            }
            (code::CEASE, cease::MAX_PREFIXES_REACHED) => "Maximum Number of Prefixes Reached",
            (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN) => "Administrative Shutdown",
            (code::CEASE, cease::PEER_DECONFIGURED) => "Peer De-configured",
            (code::CEASE, cease::ADMINISTRATIVE_RESET) => "Administrative Reset",
            (code::CEASE, cease::CONNECTION_REJECTED) => "Connection Rejected",
            (code::CEASE, cease::OTHER_CONFIGURATION_CHANGE) => "Other Configuration Change",
            (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION) => {
                "Connection Collision Resolution"
            }
            (code::CEASE, cease::OUT_OF_RESOURCES) => "Out of Resources",
            (code::CEASE, cease::HARD_RESET) => "Hard Reset",
            (code::ROUTE_REFRESH_MESSAGE_ERROR, code::route_refresh::INVALID_MESSAGE_LENGTH) => {
                "Invalid Message Length"
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Notification {
    /// `Cease / Administrative Shutdown: "maintenance"`, `Hold Timer
    /// Expired`, `UPDATE Message Error / Malformed AS_PATH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "error code {}", self.code)?,
        }
        match self.subcode_name() {
            Some(name) => write!(f, " / {name}")?,
            None if self.subcode != 0 => write!(f, " / subcode {}", self.subcode)?,
            None => {}
        }
        if let Some(message) = self.shutdown_message() {
            write!(f, ": {message:?}")?;
        } else if !self.data.is_empty() {
            write!(f, " ({} octets of data)", self.data.len())?;
        }
        Ok(())
    }
}

/// RFC 9003 §2: length octet then UTF-8, cut at a character boundary so
/// that it fits 255 octets.
fn shutdown_communication(message: &str) -> Bytes {
    let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let text = message.get(..end).unwrap_or_default();
    let mut data = BytesMut::with_capacity(1 + text.len());
    data.put_u8(u8::try_from(text.len()).unwrap_or(u8::MAX));
    data.put_slice(text.as_bytes());
    data.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trip_and_display() {
        let notification = Notification::administrative_shutdown("maintenance");
        assert_eq!(notification.code, 6);
        assert_eq!(notification.subcode, 2);
        assert_eq!(&notification.data[..], b"\x0bmaintenance");
        assert_eq!(
            notification.shutdown_message().as_deref(),
            Some("maintenance")
        );
        assert_eq!(
            notification.to_string(),
            "Cease / Administrative Shutdown: \"maintenance\""
        );
    }

    #[test]
    fn shutdown_communication_is_cut_at_a_char_boundary() {
        // 127 two-octet characters = 254 octets, then one more: 256.
        let long = "é".repeat(128);
        let notification = Notification::administrative_reset(&long);
        assert_eq!(notification.data[0], 254);
        assert_eq!(notification.data.len(), 255);
        assert_eq!(notification.shutdown_message(), Some("é".repeat(127)));
    }

    #[test]
    fn shutdown_message_is_tolerant() {
        // Length says 20, only 3 octets follow, one of them bad UTF-8.
        let sloppy = Notification::new(6, 2, Bytes::from_static(b"\x14ab\xff"));
        assert_eq!(sloppy.shutdown_message().as_deref(), Some("ab\u{fffd}"));
        assert_eq!(Notification::cease(2).shutdown_message(), None);
        assert_eq!(
            Notification::new(6, 2, Bytes::from_static(b"\x00")).shutdown_message(),
            None
        );
        // Not a shutdown: data is not text.
        assert_eq!(
            Notification::new(3, 11, Bytes::from_static(b"\x05x")).shutdown_message(),
            None
        );
    }

    #[test]
    fn display_names_codes_and_subcodes() {
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "Hold Timer Expired"
        );
        assert_eq!(
            Notification::new(3, 11, Bytes::new()).to_string(),
            "UPDATE Message Error / Malformed AS_PATH"
        );
        assert_eq!(
            Notification::new(1, 2, Bytes::from_static(&[0x10, 0x01])).to_string(),
            "Message Header Error / Bad Message Length (2 octets of data)"
        );
        assert_eq!(
            Notification::new(9, 3, Bytes::new()).to_string(),
            "error code 9 / subcode 3"
        );
        assert_eq!(Notification::cease(0).to_string(), "Cease");
    }

    #[test]
    fn max_prefixes_carries_family_and_limit() {
        let notification = Notification::max_prefixes_reached(Family::IPV6_UNICAST, 1000);
        assert_eq!(&notification.data[..], &[0, 2, 1, 0, 0, 3, 0xe8]);
    }
}
