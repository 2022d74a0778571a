// Decode errors. Each knows the NOTIFICATION it must produce (RFC 4271 §6)
// and, for UPDATE attribute errors, the RFC 7606 §2 action.

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
