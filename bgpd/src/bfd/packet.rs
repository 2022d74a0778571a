// The BFD Control packet (RFC 5880 §4.1) without authentication, and the
// reception checks of §6.8.6 that need no session state. Bytes in, a typed
// packet or the reason it is discarded out; never a panic.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// RFC 5880 §4.1: the protocol version we speak.
pub const BFD_VERSION: u8 = 1;
/// RFC 5880 §4.1: length of a Control packet without authentication.
pub const CONTROL_LEN: usize = 24;
/// RFC 5880 §6.8.6: the minimum Length when the A bit is set.
const CONTROL_LEN_WITH_AUTH: usize = 26;

/// Session states on the wire (RFC 5880 §4.1, "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BfdState {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl BfdState {
    fn from_bits(bits: u8) -> BfdState {
        match bits & 0x3 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BfdState::AdminDown => "admin-down",
            BfdState::Down => "down",
            BfdState::Init => "init",
            BfdState::Up => "up",
        }
    }
}

impl fmt::Display for BfdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Diagnostic code (RFC 5880 §4.1, "Diag"); five bits, unknown values kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Diagnostic(pub u8);

impl Diagnostic {
    pub const NONE: Diagnostic = Diagnostic(0);
    pub const DETECTION_TIME_EXPIRED: Diagnostic = Diagnostic(1);
    pub const ECHO_FAILED: Diagnostic = Diagnostic(2);
    pub const NEIGHBOR_DOWN: Diagnostic = Diagnostic(3);
    pub const FORWARDING_RESET: Diagnostic = Diagnostic(4);
    pub const PATH_DOWN: Diagnostic = Diagnostic(5);
    pub const CONCATENATED_PATH_DOWN: Diagnostic = Diagnostic(6);
    pub const ADMIN_DOWN: Diagnostic = Diagnostic(7);
    pub const REVERSE_CONCATENATED_PATH_DOWN: Diagnostic = Diagnostic(8);
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.0 {
            0 => "no diagnostic",
            1 => "control detection time expired",
            2 => "echo function failed",
            3 => "neighbor signaled session down",
            4 => "forwarding plane reset",
            5 => "path down",
            6 => "concatenated path down",
            7 => "administratively down",
            8 => "reverse concatenated path down",
            n => return write!(f, "diagnostic {n}"),
        };
        f.write_str(text)
    }
}

/// A Control packet (RFC 5880 §4.1). Intervals are carried in
/// microseconds on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    pub diagnostic: Diagnostic,
    pub state: BfdState,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub required_min_echo_rx: Duration,
}

/// Why a received datagram was discarded (RFC 5880 §6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes, shorter than a Control packet")]
    Short(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("Length {length} outside 24..={datagram} (the datagram)")]
    Length { length: usize, datagram: usize },
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    #[error("Multipoint bit set")]
    Multipoint,
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("Your Discriminator is zero in state {0}")]
    ZeroYourDiscriminator(BfdState),
    /// Authentication is not supported: such packets are counted and
    /// dropped.
    #[error("authenticated packet (A bit); authentication is not supported")]
    Authenticated,
}

impl ControlPacket {
    /// Decodes `datagram`, applying the checks of RFC 5880 §6.8.6 that
    /// need no session.
    pub fn decode(datagram: &[u8]) -> Result<ControlPacket, DecodeError> {
        let [b0, b1, detect_mult, length, rest @ ..] = datagram else {
            return Err(DecodeError::Short(datagram.len()));
        };
        if datagram.len() < CONTROL_LEN {
            return Err(DecodeError::Short(datagram.len()));
        };
        let version = b0 >> 5;
        if version != BFD_VERSION {
            return Err(DecodeError::Version(version));
        }
        let authenticated = b1 & 0x04 != 0;
        let length = usize::from(*length);
        let min = if authenticated {
            CONTROL_LEN_WITH_AUTH
        } else {
            CONTROL_LEN
        };
        if length < min || length > datagram.len() {
            return Err(DecodeError::Length {
                length,
                datagram: datagram.len(),
            });
        }
        if authenticated {
            return Err(DecodeError::Authenticated);
        }
        if *detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if b1 & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |i: usize| -> u32 {
            rest.get(i * 4..i * 4 + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_be_bytes)
        };
        let state = BfdState::from_bits(b1 >> 6);
        let my_discriminator = word(0);
        let your_discriminator = word(1);
        if my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if your_discriminator == 0 && !matches!(state, BfdState::Down | BfdState::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        let micros = |i| Duration::from_micros(u64::from(word(i)));
        Ok(ControlPacket {
            diagnostic: Diagnostic(b0 & 0x1f),
            state,
            poll: b1 & 0x20 != 0,
            final_: b1 & 0x10 != 0,
            control_plane_independent: b1 & 0x08 != 0,
            demand: b1 & 0x02 != 0,
            detect_mult: *detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: micros(2),
            required_min_rx: micros(3),
            required_min_echo_rx: micros(4),
        })
    }

    /// The 24 bytes on the wire. Intervals above u32::MAX µs (71 min) are
    /// clamped.
    pub fn encode(&self) -> [u8; CONTROL_LEN] {
        let mut out = [0u8; CONTROL_LEN];
        out[0] = (BFD_VERSION << 5) | (self.diagnostic.0 & 0x1f);
        out[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.demand) << 1);
        out[2] = self.detect_mult;
        out[3] = CONTROL_LEN as u8;
        let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let words = [
            self.my_discriminator,
            self.your_discriminator,
            micros(self.desired_min_tx),
            micros(self.required_min_rx),
            micros(self.required_min_echo_rx),
        ];
        for (i, w) in words.iter().enumerate() {
            out[4 + i * 4..8 + i * 4].copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diagnostic: Diagnostic::NONE,
            state: BfdState::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 7,
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            required_min_echo_rx: Duration::ZERO,
        }
    }

    #[test]
    fn encodes_the_rfc_layout() {
        let bytes = sample().encode();
        assert_eq!(
            bytes,
            [
                0x20, 0xc0, 3, 24, 1, 2, 3, 4, 0, 0, 0, 7, 0, 4, 0x93, 0xe0, 0, 4, 0x93, 0xe0, 0,
                0, 0, 0
            ]
        );
        assert_eq!(ControlPacket::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn reception_checks_discard() {
        let good = sample().encode();
        let with = |f: &dyn Fn(&mut [u8; 24])| {
            let mut b = good;
            f(&mut b);
            ControlPacket::decode(&b)
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(DecodeError::Short(23))
        );
        assert_eq!(with(&|b| b[0] = 0x40), Err(DecodeError::Version(2)));
        assert_eq!(
            with(&|b| b[3] = 23),
            Err(DecodeError::Length {
                length: 23,
                datagram: 24
            })
        );
        assert_eq!(
            with(&|b| b[3] = 25),
            Err(DecodeError::Length {
                length: 25,
                datagram: 24
            })
        );
        assert_eq!(with(&|b| b[2] = 0), Err(DecodeError::ZeroDetectMult));
        assert_eq!(with(&|b| b[1] |= 0x01), Err(DecodeError::Multipoint));
        assert_eq!(
            with(&|b| b[4..8].fill(0)),
            Err(DecodeError::ZeroMyDiscriminator)
        );
        assert_eq!(
            with(&|b| b[8..12].fill(0)),
            Err(DecodeError::ZeroYourDiscriminator(BfdState::Up))
        );
        // Your Discriminator 0 is fine in Down (and AdminDown).
        let down = with(&|b| {
            b[8..12].fill(0);
            b[1] = 1 << 6;
        });
        assert_eq!(down.map(|p| p.state), Ok(BfdState::Down));
        // A: too short for an auth section, then discarded as unsupported.
        assert!(matches!(
            with(&|b| b[1] |= 0x04),
            Err(DecodeError::Length { .. })
        ));
        let mut long = [0u8; 28];
        long[..24].copy_from_slice(&good);
        long[1] |= 0x04;
        long[3] = 28;
        assert_eq!(
            ControlPacket::decode(&long),
            Err(DecodeError::Authenticated)
        );
        // A longer datagram than Length is fine (trailing bytes ignored).
        let mut padded = [0u8; 30];
        padded[..24].copy_from_slice(&good);
        assert_eq!(ControlPacket::decode(&padded), Ok(sample()));
    }

    fn arb_packet() -> impl Strategy<Value = ControlPacket> {
        (
            0u8..32,
            0u8..4,
            any::<[bool; 4]>(),
            1u8..,
            1u32..,
            any::<u32>(),
            any::<[u32; 3]>(),
        )
            .prop_map(|(diag, state, bits, mult, my, your, t)| {
                let state = BfdState::from_bits(state);
                let your = if matches!(state, BfdState::Down | BfdState::AdminDown) {
                    your
                } else {
                    your.max(1)
                };
                let us = |v: u32| Duration::from_micros(v.into());
                ControlPacket {
                    diagnostic: Diagnostic(diag),
                    state,
                    poll: bits[0],
                    final_: bits[1],
                    control_plane_independent: bits[2],
                    demand: bits[3],
                    detect_mult: mult,
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx: us(t[0]),
                    required_min_rx: us(t[1]),
                    required_min_echo_rx: us(t[2]),
                }
            })
    }

    proptest! {
        #[test]
        fn round_trips(packet in arb_packet()) {
            prop_assert_eq!(ControlPacket::decode(&packet.encode()), Ok(packet));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = ControlPacket::decode(&bytes) {
                // Whatever decodes encodes back to the same first 24 bytes,
                // but for the ignored bits (version, M, A, Length).
                prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
            }
        }
    }
}
