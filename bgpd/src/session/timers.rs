// Timer values and the idle-hold backoff: RFC 4271 §8.2.2 (the large hold
// timer while waiting for OPEN), §10 (timer values) and §8.1.1's optional
// DampPeerOscillations / IdleHoldTimer, which we always run.

use std::time::{Duration, Instant};

/// RFC 4271 §8.2.2: "a large value (suggested 4 minutes)" for the hold
/// timer between sending our OPEN and receiving the peer's.
pub(crate) const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// First idle hold after a failed session: long enough not to spin on a
/// peer that refuses us at once, short enough for pod routes to come back
/// quickly after a one-off failure.
pub(crate) const IDLE_HOLD_INITIAL: Duration = Duration::from_secs(1);

/// Longest idle hold: a peer that keeps failing is retried every minute.
pub(crate) const IDLE_HOLD_MAX: Duration = Duration::from_secs(60);

/// How long an Established session must last for its end to count as a
/// one-off failure when the hold time is 0 (otherwise: the hold time).
pub(crate) const STABLE_WITHOUT_HOLD_TIME: Duration = Duration::from_secs(90);

/// The idle hold after each failed attempt: 1 s, doubling on every failure
/// up to 60 s. A session that stayed Established longer than its hold time
/// was stable, so its end starts the sequence over; `Start` does too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdleHoldBackoff {
    next: Duration,
}

impl IdleHoldBackoff {
    pub(crate) fn new() -> IdleHoldBackoff {
        IdleHoldBackoff {
            next: IDLE_HOLD_INITIAL,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = IDLE_HOLD_INITIAL;
    }

    /// The wait after a failure, and what the following failure will wait.
    /// `established_for` is how long the session had been Established and
    /// `hold_time` its negotiated hold time, when it got that far.
    pub(crate) fn after_failure(&mut self, established_for: Option<(Duration, u16)>) -> Duration {
        if let Some((lasted, hold_time)) = established_for {
            let stable_after = if hold_time == 0 {
                STABLE_WITHOUT_HOLD_TIME
            } else {
                Duration::from_secs(u64::from(hold_time))
            };
            if lasted > stable_after {
                self.reset();
            }
        }
        let wait = self.next;
        self.next = (wait * 2).min(IDLE_HOLD_MAX);
        wait
    }
}

/// `now` plus `seconds`, or no deadline for 0 (RFC 4271 §4.4: a zero hold
/// time disables the hold and keepalive timers).
pub(crate) fn deadline_in(now: Instant, seconds: u16) -> Option<Instant> {
    (seconds > 0).then(|| now + Duration::from_secs(u64::from(seconds)))
}

/// The earliest of some optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// Whether an optional deadline has passed.
pub(crate) fn expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        let mut b = IdleHoldBackoff::new();
        let waits: Vec<u64> = (0..9).map(|_| b.after_failure(None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_stable_session_starts_the_backoff_over() {
        let mut b = IdleHoldBackoff::new();
        for _ in 0..5 {
            b.after_failure(None);
        }
        // Up for 30 s with hold time 90: not stable, keeps doubling.
        assert_eq!(b.after_failure(Some((secs(30), 90))), secs(32));
        // Up for 91 s with hold time 90: stable.
        assert_eq!(b.after_failure(Some((secs(91), 90))), secs(1));
        assert_eq!(b.after_failure(None), secs(2));
        // Hold time 0: stable after 90 s.
        assert_eq!(b.after_failure(Some((secs(89), 0))), secs(4));
        assert_eq!(b.after_failure(Some((secs(91), 0))), secs(1));
        b.reset();
        assert_eq!(b.after_failure(None), secs(1));
    }

    #[test]
    fn zero_seconds_is_no_deadline() {
        let now = Instant::now();
        assert_eq!(deadline_in(now, 0), None);
        assert_eq!(deadline_in(now, 3), Some(now + secs(3)));
        assert_eq!(
            earliest([None, Some(now + secs(2)), Some(now + secs(1))]),
            Some(now + secs(1))
        );
        assert!(expired(Some(now), now));
        assert!(!expired(None, now));
    }
}
