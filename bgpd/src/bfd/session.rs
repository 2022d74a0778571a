// One BFD session in asynchronous mode (RFC 5880 §6), sans-I/O: received
// Control packets and the time go in, packets to send and the next
// deadline come out. States and transitions of §6.8.6, timers of §6.8.2-4
// and §6.8.7 (jitter drawn from a seeded generator, so tests are exact),
// the slow 1 s rate while not Up (§6.8.3), and the Poll/Final sequence when
// our intervals change. No Demand mode, no Echo function, no
// authentication. The C bit stays clear: our BFD shares fate with the
// control plane (RFC 5882 §4.3).

use std::time::{Duration, Instant};

use super::packet::{BfdState, ControlPacket, Diagnostic};
use super::resume::Saved;
use crate::config::BfdConfig;

/// RFC 5880 §6.8.3: the least Desired Min TX Interval while not Up.
pub const SLOW_TX_INTERVAL: Duration = Duration::from_secs(1);
/// RFC 5880 §6.8.1: bfd.RemoteMinRxInterval starts at 1 µs.
const INITIAL_REMOTE_MIN_RX: Duration = Duration::from_micros(1);

/// What the peer task and the admin API see of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdStatus {
    pub state: BfdState,
    pub remote_state: BfdState,
    pub local_diagnostic: Diagnostic,
    pub remote_diagnostic: Diagnostic,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// The interval between our packets, before jitter.
    pub tx_interval: Duration,
    /// How long without a packet before we declare the session down.
    pub detection_time: Duration,
    pub remote_min_rx: Duration,
    pub remote_min_tx: Duration,
    pub remote_multiplier: u8,
    pub remote_control_plane_independent: bool,
    pub up_transitions: u64,
    /// When `state` last changed.
    pub since: Instant,
}

/// Why a packet that decoded was still discarded by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Your Discriminator is not ours (RFC 5880 §6.8.6).
    WrongDiscriminator,
}

#[derive(Debug)]
pub struct Session {
    config: BfdConfig,
    state: BfdState,
    remote_state: BfdState,
    local_diag: Diagnostic,
    remote_diag: Diagnostic,
    local_disc: u32,
    remote_disc: u32,
    remote_min_rx: Duration,
    remote_min_tx: Duration,
    remote_mult: u8,
    remote_cpi: bool,
    /// Desired Min TX and Required Min RX as we now announce them.
    announced_tx: Duration,
    announced_rx: Duration,
    /// The values our own timers use: during a Poll Sequence an increased
    /// TX interval and a reduced RX interval wait for the Final (§6.8.3).
    used_tx: Duration,
    used_rx: Duration,
    /// A Poll Sequence is running: our packets carry P until an F comes.
    polling: bool,
    next_tx: Instant,
    detect_at: Option<Instant>,
    up_transitions: u64,
    since: Instant,
    rng: u64,
    /// False for a session resumed after a restart until a packet from the
    /// peer shows its side is still Up: until then it shows as Init, so
    /// the peer's Down (it gave up meanwhile) is no Up -> Down failure.
    confirmed: bool,
}

impl Session {
    /// A session in Down that sends its first packet at `now`. `seed`
    /// drives the transmit jitter.
    pub fn new(config: BfdConfig, local_disc: u32, seed: u64, now: Instant) -> Session {
        let announced_tx = config.min_tx.max(SLOW_TX_INTERVAL);
        Session {
            config,
            state: BfdState::Down,
            remote_state: BfdState::Down,
            local_diag: Diagnostic::NONE,
            remote_diag: Diagnostic::NONE,
            local_disc,
            remote_disc: 0,
            remote_min_rx: INITIAL_REMOTE_MIN_RX,
            remote_min_tx: Duration::ZERO,
            remote_mult: 0,
            remote_cpi: false,
            announced_tx,
            announced_rx: config.min_rx,
            used_tx: announced_tx,
            used_rx: config.min_rx,
            polling: false,
            next_tx: now,
            detect_at: None,
            up_transitions: 0,
            since: now,
            rng: seed | 1,
            confirmed: true,
        }
    }

    /// A session resumed in Up after a restart of the daemon, as `saved`
    /// left it: the peer, if it kept its side Up, goes on without noticing.
    /// The detection timer starts now, as if a packet had just come.
    pub fn resume(config: BfdConfig, saved: &Saved, seed: u64, now: Instant) -> Session {
        let mut session = Session::new(config, saved.local_discriminator, seed, now);
        session.state = BfdState::Up;
        session.remote_state = BfdState::Up;
        session.remote_disc = saved.remote_discriminator;
        session.remote_min_rx = saved.remote_min_rx;
        session.remote_min_tx = saved.remote_min_tx;
        session.remote_mult = saved.remote_multiplier;
        session.announced_tx = config.min_tx;
        session.used_tx = config.min_tx;
        session.detect_at = Some(now + session.detection_time());
        session.confirmed = false;
        session
    }

    /// What a restarted daemon needs to resume this session, if it is Up.
    pub fn saved(&self, peer: std::net::IpAddr, local: std::net::IpAddr) -> Option<Saved> {
        (self.state == BfdState::Up && self.remote_disc != 0).then_some(Saved {
            peer,
            local,
            local_discriminator: self.local_disc,
            remote_discriminator: self.remote_disc,
            remote_min_rx: self.remote_min_rx,
            remote_min_tx: self.remote_min_tx,
            remote_multiplier: self.remote_mult,
        })
    }

    pub fn state(&self) -> BfdState {
        self.state
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_disc
    }

    pub fn config(&self) -> BfdConfig {
        self.config
    }

    pub fn polling(&self) -> bool {
        self.polling
    }

    /// RFC 5880 §6.8.6, after the checks `ControlPacket::decode` made.
    /// Returns a packet to send at once: the Final answering a Poll.
    pub fn receive(
        &mut self,
        packet: &ControlPacket,
        now: Instant,
    ) -> Result<Option<ControlPacket>, Discard> {
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_disc {
            return Err(Discard::WrongDiscriminator);
        }
        self.confirmed = true;
        self.remote_disc = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_diag = packet.diagnostic;
        self.remote_cpi = packet.control_plane_independent;
        self.remote_min_tx = packet.desired_min_tx;
        self.remote_mult = packet.detect_mult;
        let faster = packet.required_min_rx < self.remote_min_rx;
        self.remote_min_rx = packet.required_min_rx;
        if packet.final_ && self.polling {
            self.end_poll();
        }
        self.detect_at = Some(now + self.detection_time());
        if self.state == BfdState::AdminDown {
            return Ok(None);
        }
        if packet.state == BfdState::AdminDown {
            if self.state != BfdState::Down {
                self.go(BfdState::Down, Diagnostic::NEIGHBOR_DOWN, now);
            }
        } else {
            match (self.state, packet.state) {
                (BfdState::Down, BfdState::Down) => self.go(BfdState::Init, self.local_diag, now),
                (BfdState::Down, BfdState::Init)
                | (BfdState::Init, BfdState::Init | BfdState::Up) => {
                    self.go(BfdState::Up, Diagnostic::NONE, now)
                }
                (BfdState::Up, BfdState::Down) => {
                    self.go(BfdState::Down, Diagnostic::NEIGHBOR_DOWN, now)
                }
                _ => {}
            }
        }
        // The peer now lets us send faster: do not wait out a slow timer.
        if faster {
            let soon = now + self.jittered(self.tx_interval());
            self.next_tx = self.next_tx.min(soon);
        }
        // §6.8.7: answer a Poll with a Final without respect to the timer.
        Ok(packet.poll.then(|| {
            let mut reply = self.packet();
            reply.poll = false;
            reply.final_ = true;
            reply
        }))
    }

    /// Fires the detection timer and the transmit timer if due; returns the
    /// packet to send, if any.
    pub fn poll_timers(&mut self, now: Instant) -> Option<ControlPacket> {
        if self.detect_at.is_some_and(|at| at <= now) {
            self.detect_at = None;
            // §6.8.1: the remote is forgotten after a Detection Time of
            // silence; §6.8.4: Init or Up go Down.
            self.remote_disc = 0;
            self.remote_state = BfdState::Down;
            if matches!(self.state, BfdState::Init | BfdState::Up) {
                self.go(BfdState::Down, Diagnostic::DETECTION_TIME_EXPIRED, now);
            }
        }
        if self.next_tx > now {
            return None;
        }
        self.next_tx = now + self.jittered(self.tx_interval());
        // §6.8.7: nothing periodic when the remote asks for no packets.
        (!self.remote_min_rx.is_zero()).then(|| self.packet())
    }

    /// When `poll_timers` next has something to do.
    pub fn next_deadline(&self) -> Instant {
        match self.detect_at {
            Some(at) => at.min(self.next_tx),
            None => self.next_tx,
        }
    }

    /// New intervals or multiplier for a running session (a Poll Sequence
    /// while Up, §6.8.3).
    pub fn reconfigure(&mut self, config: BfdConfig, now: Instant) {
        self.config = config;
        self.apply_timers(now);
    }

    /// AdminDown (diagnostic 7): the peer sees the session go down without
    /// taking it for a failure (RFC 5882 §3.2).
    pub fn admin_down(&mut self, now: Instant) {
        if self.state != BfdState::AdminDown {
            self.go(BfdState::AdminDown, Diagnostic::ADMIN_DOWN, now);
        }
    }

    /// The Control packet describing our side now.
    pub fn packet(&self) -> ControlPacket {
        ControlPacket {
            diagnostic: self.local_diag,
            state: self.state,
            poll: self.polling,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.multiplier,
            my_discriminator: self.local_disc,
            your_discriminator: self.remote_disc,
            desired_min_tx: self.announced_tx,
            required_min_rx: self.announced_rx,
            required_min_echo_rx: Duration::ZERO,
        }
    }

    pub fn status(&self) -> BfdStatus {
        BfdStatus {
            state: if self.confirmed || self.state != BfdState::Up {
                self.state
            } else {
                BfdState::Init
            },
            remote_state: self.remote_state,
            local_diagnostic: self.local_diag,
            remote_diagnostic: self.remote_diag,
            local_discriminator: self.local_disc,
            remote_discriminator: self.remote_disc,
            tx_interval: self.tx_interval(),
            detection_time: self.detection_time(),
            remote_min_rx: self.remote_min_rx,
            remote_min_tx: self.remote_min_tx,
            remote_multiplier: self.remote_mult,
            remote_control_plane_independent: self.remote_cpi,
            up_transitions: self.up_transitions,
            since: self.since,
        }
    }

    /// §6.8.7: the larger of our Desired Min TX and the remote's Required
    /// Min RX.
    pub fn tx_interval(&self) -> Duration {
        self.used_tx.max(self.remote_min_rx)
    }

    /// §6.8.4, asynchronous mode: the remote's Detect Mult times the larger
    /// of our Required Min RX and the remote's Desired Min TX.
    pub fn detection_time(&self) -> Duration {
        self.used_rx.max(self.remote_min_tx) * u32::from(self.remote_mult)
    }

    fn go(&mut self, state: BfdState, diag: Diagnostic, now: Instant) {
        if state == BfdState::Up {
            self.up_transitions = self.up_transitions.saturating_add(1);
        }
        self.state = state;
        self.local_diag = diag;
        self.since = now;
        self.apply_timers(now);
    }

    /// Recomputes what we announce (§6.8.3: at least 1 s while not Up).
    /// While Up a change starts a Poll Sequence and the slower of old and
    /// new stays in use until the Final; otherwise it applies at once.
    fn apply_timers(&mut self, now: Instant) {
        let tx = if self.state == BfdState::Up {
            self.config.min_tx
        } else {
            self.config.min_tx.max(SLOW_TX_INTERVAL)
        };
        let rx = self.config.min_rx;
        if (tx, rx) == (self.announced_tx, self.announced_rx) {
            return;
        }
        self.announced_tx = tx;
        self.announced_rx = rx;
        if self.state == BfdState::Up {
            self.polling = true;
            self.used_tx = self.used_tx.min(tx);
            self.used_rx = self.used_rx.max(rx);
        } else {
            self.end_poll();
        }
        let soon = now + self.jittered(self.tx_interval());
        self.next_tx = self.next_tx.min(soon);
    }

    fn end_poll(&mut self) {
        self.polling = false;
        self.used_tx = self.announced_tx;
        self.used_rx = self.announced_rx;
    }

    /// §6.8.7: 75-100 % of the interval, at most 90 % when Detect Mult is 1.
    fn jittered(&mut self, interval: Duration) -> Duration {
        // xorshift64: enough to keep peers' packets from synchronising.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = if self.config.multiplier == 1 {
            1501
        } else {
            2501
        };
        let per_10k = 7500 + u32::try_from(self.rng % span).unwrap_or(0);
        interval * per_10k / 10_000
    }
}

#[cfg(test)]
mod tests;
