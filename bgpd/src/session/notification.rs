// The NOTIFICATIONs the FSM builds (RFC 4271 §6, RFC 6608 FSM error
// subcodes, RFC 4486 Cease subcodes, RFC 9003 shutdown communication) and
// why a session went down, in the words `last_error` and logs show (the
// code/subcode names are wire::Notification's Display).

use std::fmt;

use bytes::Bytes;

use crate::wire::Notification;

/// Why a session attempt ended; shown as the peer's last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// No KEEPALIVE or UPDATE within the hold time; we sent code 4.
    HoldTimerExpired,
    /// BFD declared the path down (RFC 5882); no NOTIFICATION sent.
    BfdDown,
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
            DownReason::BfdDown => f.write_str("BFD down"),
            DownReason::NotificationReceived(n) => write!(f, "received {n}"),
            DownReason::NotificationSent(n) => write!(f, "sent {n}"),
            DownReason::ConnectionClosed => f.write_str("connection closed by peer"),
            DownReason::ConnectFailed => f.write_str("connect failed"),
            DownReason::AdminStop {
                notification: Some(n),
            } => write!(f, "stopped by admin, sent {n}"),
            DownReason::AdminStop { notification: None } => f.write_str("stopped by admin"),
        }
    }
}

/// Cease / Administrative Shutdown carrying `message` as an RFC 9003
/// shutdown communication.
pub fn admin_shutdown(message: &str) -> Notification {
    Notification::administrative_shutdown(message)
}

/// A Cease NOTIFICATION (RFC 4486) without data.
pub fn cease(subcode: u8) -> Notification {
    Notification::cease(subcode)
}

pub(crate) fn notification(error_code: u8, subcode: u8) -> Notification {
    Notification::new(error_code, subcode, Bytes::new())
}

/// RFC 4271 §6.5.
pub(crate) fn hold_timer_expired() -> Notification {
    Notification::hold_timer_expired()
}

/// RFC 6608 §3: an FSM error for a message that state does not expect.
pub(crate) fn fsm_error(subcode: u8) -> Notification {
    Notification::fsm_error(subcode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_reasons_read_as_words() {
        let cases = [
            (
                DownReason::NotificationReceived(admin_shutdown("maintenance")),
                "received Cease / Administrative Shutdown: \"maintenance\"",
            ),
            (DownReason::HoldTimerExpired, "hold timer expired"),
            (DownReason::BfdDown, "BFD down"),
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
}
