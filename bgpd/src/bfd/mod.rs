// BFD (RFC 5880 asynchronous mode, RFC 5881 single hop over UDP 3784)
// bound to BGP sessions (RFC 5882). packet.rs is the Control packet codec,
// session.rs the sans-I/O session, and socket.rs the one task that owns
// the UDP sockets and every session (`BfdHandle`).

pub mod packet;
pub mod session;

pub use packet::{BfdState, ControlPacket, DecodeError, Diagnostic};
pub use session::{BfdStatus, Session};
pub mod socket;

pub use socket::{BfdCounters, BfdHandle};
