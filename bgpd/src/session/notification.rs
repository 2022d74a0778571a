// The NOTIFICATIONs the FSM builds (RFC 4271 §6, RFC 6608 FSM error
// subcodes, RFC 4486 Cease subcodes, RFC 9003 shutdown communication), why
// a session went down, and the code/subcode → words table that `last_error`
// and logs show.

use std::fmt;

use bytes::Bytes;

use crate::wire::Notification;
use crate::wire::iana::notification as code;

/// Why a session attempt ended; shown as the peer's last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// No KEEPALIVE or UPDATE within the hold time; we sent code 4.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We found an error (OPEN check, FSM error, decode error) and sent this.
    NotificationSent(Notification),
    /// The peer closed the TCP connection without a NOTIFICATION.
    ConnectionClosed,
    /// The outgoing TCP connect failed.
    ConnectFailed,
    /// `Event::Stop`; the NOTIFICATION sent, unless no connection was
    /// open to carry it (an outgoing connect in progress was aborted).
    AdminStop { notification: Option<Notification> },
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::NotificationReceived(n) => write!(f, "received {}", NotificationText(n)),
            DownReason::NotificationSent(n) => write!(f, "sent {}", NotificationText(n)),
            DownReason::ConnectionClosed => f.write_str("connection closed by peer"),
            DownReason::ConnectFailed => f.write_str("connect failed"),
            DownReason::AdminStop {
                notification: Some(n),
            } => write!(f, "stopped by admin, sent {}", NotificationText(n)),
            DownReason::AdminStop { notification: None } => f.write_str("stopped by admin"),
        }
    }
}

/// Displays a NOTIFICATION as `Cease / Administrative Shutdown: "maintenance"`.
pub struct NotificationText<'a>(pub &'a Notification);

impl fmt::Display for NotificationText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let (code_name, subcode_name) = describe_notification(n.code, n.subcode);
        match code_name {
            Some(name) => f.write_str(name)?,
            None => write!(f, "error code {}", n.code)?,
        }
        match subcode_name {
            Some(name) => write!(f, " / {name}")?,
            // Subcode 0 is "unspecific" for codes without subcodes.
            None if n.subcode == 0 => {}
            None => write!(f, " / subcode {}", n.subcode)?,
        }
        if let Some(message) = shutdown_communication(n) {
            write!(f, ": {message:?}")?;
        }
        Ok(())
    }
}

/// Names for an error code and subcode (RFC 4271 §4.5, RFC 4486, RFC 5492,
/// RFC 6608, RFC 7313, RFC 8538); `None` for values without a name.
pub fn describe_notification(
    error_code: u8,
    subcode: u8,
) -> (Option<&'static str>, Option<&'static str>) {
    let code_name = match error_code {
        code::MESSAGE_HEADER_ERROR => "Message Header Error",
        code::OPEN_MESSAGE_ERROR => "OPEN Message Error",
        code::UPDATE_MESSAGE_ERROR => "UPDATE Message Error",
        code::HOLD_TIMER_EXPIRED => "Hold Timer Expired",
        code::FSM_ERROR => "Finite State Machine Error",
        code::CEASE => "Cease",
        code::ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH Message Error",
        _ => return (None, None),
    };
    let subcode_name = match (error_code, subcode) {
        (code::MESSAGE_HEADER_ERROR, code::header::CONNECTION_NOT_SYNCHRONIZED) => {
            Some("Connection Not Synchronized")
        }
        (code::MESSAGE_HEADER_ERROR, code::header::BAD_MESSAGE_LENGTH) => {
            Some("Bad Message Length")
        }
        (code::MESSAGE_HEADER_ERROR, code::header::BAD_MESSAGE_TYPE) => Some("Bad Message Type"),
        (code::OPEN_MESSAGE_ERROR, code::open::UNSUPPORTED_VERSION_NUMBER) => {
            Some("Unsupported Version Number")
        }
        (code::OPEN_MESSAGE_ERROR, code::open::BAD_PEER_AS) => Some("Bad Peer AS"),
        (code::OPEN_MESSAGE_ERROR, code::open::BAD_BGP_IDENTIFIER) => Some("Bad BGP Identifier"),
        (code::OPEN_MESSAGE_ERROR, code::open::UNSUPPORTED_OPTIONAL_PARAMETER) => {
            Some("Unsupported Optional Parameter")
        }
        (code::OPEN_MESSAGE_ERROR, code::open::UNACCEPTABLE_HOLD_TIME) => {
            Some("Unacceptable Hold Time")
        }
        (code::OPEN_MESSAGE_ERROR, code::open::UNSUPPORTED_CAPABILITY) => {
            Some("Unsupported Capability")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::MALFORMED_ATTRIBUTE_LIST) => {
            Some("Malformed Attribute List")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => {
            Some("Unrecognized Well-known Attribute")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::MISSING_WELL_KNOWN_ATTRIBUTE) => {
            Some("Missing Well-known Attribute")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::ATTRIBUTE_FLAGS_ERROR) => {
            Some("Attribute Flags Error")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::ATTRIBUTE_LENGTH_ERROR) => {
            Some("Attribute Length Error")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::INVALID_ORIGIN_ATTRIBUTE) => {
            Some("Invalid ORIGIN Attribute")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::INVALID_NEXT_HOP_ATTRIBUTE) => {
            Some("Invalid NEXT_HOP Attribute")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::OPTIONAL_ATTRIBUTE_ERROR) => {
            Some("Optional Attribute Error")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::INVALID_NETWORK_FIELD) => {
            Some("Invalid Network Field")
        }
        (code::UPDATE_MESSAGE_ERROR, code::update::MALFORMED_AS_PATH) => Some("Malformed AS_PATH"),
        (code::FSM_ERROR, code::fsm::UNEXPECTED_IN_OPENSENT) => {
            Some("Receive Unexpected Message in OpenSent State")
        }
        (code::FSM_ERROR, code::fsm::UNEXPECTED_IN_OPENCONFIRM) => {
            Some("Receive Unexpected Message in OpenConfirm State")
        }
        (code::FSM_ERROR, code::fsm::UNEXPECTED_IN_ESTABLISHED) => {
            Some("Receive Unexpected Message in Established State")
        }
        (code::CEASE, code::cease::MAX_PREFIXES_REACHED) => {
            Some("Maximum Number of Prefixes Reached")
        }
        (code::CEASE, code::cease::ADMINISTRATIVE_SHUTDOWN) => Some("Administrative Shutdown"),
        (code::CEASE, code::cease::PEER_DECONFIGURED) => Some("Peer De-configured"),
        (code::CEASE, code::cease::ADMINISTRATIVE_RESET) => Some("Administrative Reset"),
        (code::CEASE, code::cease::CONNECTION_REJECTED) => Some("Connection Rejected"),
        (code::CEASE, code::cease::OTHER_CONFIGURATION_CHANGE) => {
            Some("Other Configuration Change")
        }
        (code::CEASE, code::cease::CONNECTION_COLLISION_RESOLUTION) => {
            Some("Connection Collision Resolution")
        }
        (code::CEASE, code::cease::OUT_OF_RESOURCES) => Some("Out of Resources"),
        (code::CEASE, code::cease::HARD_RESET) => Some("Hard Reset"),
        (code::ROUTE_REFRESH_MESSAGE_ERROR, code::route_refresh::INVALID_MESSAGE_LENGTH) => {
            Some("Invalid Message Length")
        }
        _ => None,
    };
    (Some(code_name), subcode_name)
}

/// RFC 9003 §2: the longest shutdown communication.
const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;

/// Cease / Administrative Shutdown carrying `message` as an RFC 9003
/// shutdown communication (a length octet, then UTF-8), cut at a character
/// boundary to 255 octets. An empty message gives an empty data field.
pub fn admin_shutdown(message: &str) -> Notification {
    let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let text = &message.as_bytes()[..end];
    let data = if text.is_empty() {
        Bytes::new()
    } else {
        let mut data = Vec::with_capacity(text.len() + 1);
        // `end` ≤ 255, so the length fits its octet.
        data.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
        data.extend_from_slice(text);
        Bytes::from(data)
    };
    Notification {
        code: code::CEASE,
        subcode: code::cease::ADMINISTRATIVE_SHUTDOWN,
        data,
    }
}

/// A Cease NOTIFICATION (RFC 4486) without data.
pub fn cease(subcode: u8) -> Notification {
    notification(code::CEASE, subcode)
}

pub(crate) fn notification(error_code: u8, subcode: u8) -> Notification {
    Notification {
        code: error_code,
        subcode,
        data: Bytes::new(),
    }
}

/// RFC 4271 §6.5.
pub(crate) fn hold_timer_expired() -> Notification {
    notification(code::HOLD_TIMER_EXPIRED, 0)
}

/// RFC 6608 §3: an FSM error for a message that state does not expect.
pub(crate) fn fsm_error(subcode: u8) -> Notification {
    notification(code::FSM_ERROR, subcode)
}

/// The RFC 9003 shutdown communication of a Cease / Administrative
/// Shutdown or Reset, if it carries a well-formed one.
fn shutdown_communication(n: &Notification) -> Option<&str> {
    let carries_one = n.code == code::CEASE
        && (n.subcode == code::cease::ADMINISTRATIVE_SHUTDOWN
            || n.subcode == code::cease::ADMINISTRATIVE_RESET);
    if !carries_one {
        return None;
    }
    let (&len, rest) = n.data.split_first()?;
    let text = rest.get(..usize::from(len))?;
    std::str::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_shutdown_encodes_rfc9003_length_and_text() {
        let n = admin_shutdown("maintenance");
        assert_eq!((n.code, n.subcode), (6, 2));
        assert_eq!(&n.data[..], b"\x0bmaintenance");
        assert_eq!(admin_shutdown("").data.len(), 0);
    }

    #[test]
    fn admin_shutdown_cuts_long_messages_at_a_char_boundary() {
        let long = "é".repeat(200); // 400 octets
        let n = admin_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(n.data.len(), 255);
        assert!(std::str::from_utf8(&n.data[1..]).is_ok());
    }

    #[test]
    fn down_reasons_read_as_words() {
        let cases = [
            (
                DownReason::NotificationReceived(admin_shutdown("maintenance")),
                "received Cease / Administrative Shutdown: \"maintenance\"",
            ),
            (DownReason::HoldTimerExpired, "hold timer expired"),
            (
                DownReason::NotificationSent(notification(2, 2)),
                "sent OPEN Message Error / Bad Peer AS",
            ),
            (
                DownReason::NotificationSent(hold_timer_expired()),
                "sent Hold Timer Expired",
            ),
            (
                DownReason::NotificationReceived(notification(5, 3)),
                "received Finite State Machine Error / Receive Unexpected Message in Established State",
            ),
            (
                DownReason::NotificationReceived(notification(42, 9)),
                "received error code 42 / subcode 9",
            ),
            (
                DownReason::NotificationReceived(notification(6, 77)),
                "received Cease / subcode 77",
            ),
            (
                DownReason::AdminStop {
                    notification: Some(cease(2)),
                },
                "stopped by admin, sent Cease / Administrative Shutdown",
            ),
            (
                DownReason::AdminStop { notification: None },
                "stopped by admin",
            ),
            (DownReason::ConnectFailed, "connect failed"),
            (DownReason::ConnectionClosed, "connection closed by peer"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }

    #[test]
    fn a_truncated_shutdown_communication_is_not_shown() {
        let n = Notification {
            code: 6,
            subcode: 2,
            data: Bytes::from_static(b"\x20short"),
        };
        assert_eq!(
            NotificationText(&n).to_string(),
            "Cease / Administrative Shutdown"
        );
    }
}
