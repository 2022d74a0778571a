// Per-session message counters by type and direction, for the admin API
// (what `show bgp neighbor` prints in FRR and BIRD). Message types are
// those of RFC 4271 §4.1 and RFC 2918.

use crate::wire::Message;

/// Messages of each type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounters {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl MessageCounters {
    pub(crate) fn count(&mut self, message: &Message) {
        let counter = match message {
            Message::Open(_) => &mut self.open,
            Message::Update(_) => &mut self.update,
            Message::Notification(_) => &mut self.notification,
            Message::Keepalive => &mut self.keepalive,
            Message::RouteRefresh(_) => &mut self.route_refresh,
        };
        *counter = counter.saturating_add(1);
    }

    /// Both counts added, type by type.
    pub fn plus(&self, other: &MessageCounters) -> MessageCounters {
        MessageCounters {
            open: self.open.saturating_add(other.open),
            update: self.update.saturating_add(other.update),
            notification: self.notification.saturating_add(other.notification),
            keepalive: self.keepalive.saturating_add(other.keepalive),
            route_refresh: self.route_refresh.saturating_add(other.route_refresh),
        }
    }

    pub fn total(&self) -> u64 {
        [
            self.open,
            self.update,
            self.notification,
            self.keepalive,
            self.route_refresh,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

/// Messages received from and sent to the peer over the session's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCountersByDirection {
    pub received: MessageCounters,
    pub sent: MessageCounters,
}
