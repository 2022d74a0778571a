// Graceful restart (RFC 4724): the capability we advertise (§3: restart
// time, R bit when we restarted with our forwarding state preserved, F bit
// per family), when a lost session leaves the peer's routes stale instead
// of withdrawing them (§4.2), and the receiving speaker's per-peer timers
// (restart time while the peer is away, stale routes time until its
// End-of-RIB) as a pure state machine the RIB task drives.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::GracefulRestartConfig;
use crate::rib::loc_rib::PeerId;
use crate::session::DownReason;
use crate::wire::{Afi, Family, GracefulRestart, GracefulRestartFamily};

/// Our capability with a peer's `config` for `families`; None when GR is
/// off for it. `restarting`: R bit; `forwarding`: F bit of every family.
pub fn capability(
    config: Option<GracefulRestartConfig>,
    families: &[Family],
    restarting: bool,
    forwarding: bool,
) -> Option<GracefulRestart> {
    let config = config?;
    Some(GracefulRestart {
        restarting,
        notification: false,
        restart_time: config.restart_time,
        families: families
            .iter()
            .map(|&family| GracefulRestartFamily {
                family,
                forwarding_preserved: forwarding,
            })
            .collect(),
    })
}

/// RFC 4724 §4.2: whether a lost session's paths stay (stale) while the
/// peer restarts. Not after a NOTIFICATION either way (RFC 8538 is not
/// implemented), not after BFD saw the forwarding path fail (RFC 5882
/// §4.3.1), and not with a restart time of 0.
pub fn keeps_stale(reason: &DownReason, peer: Option<&GracefulRestart>, bfd_failure: bool) -> bool {
    let lost = matches!(
        reason,
        DownReason::ConnectionClosed | DownReason::HoldTimerExpired
    );
    lost && !bfd_failure && peer.is_some_and(|gr| gr.restart_time > 0)
}

/// The families whose stale paths may wait for End-of-RIB after the peer
/// is back: it sent GR again with F=1 for them (RFC 4724 §4.2); the stale
/// paths of every other family go at once.
pub fn kept_families(peer: Option<&GracefulRestart>, negotiated: &[Family]) -> Vec<Family> {
    let Some(gr) = peer else {
        return Vec::new();
    };
    negotiated
        .iter()
        .copied()
        .filter(|f| {
            gr.families
                .iter()
                .any(|g| g.family == *f && g.forwarding_preserved)
        })
        .collect()
}

/// Which of the Loc-RIB's prefixes a family's sweep covers: Some(true)
/// IPv4, Some(false) IPv6.
pub fn family_filter(family: Family) -> Option<bool> {
    match family.afi {
        Afi::IPV4 => Some(true),
        Afi::IPV6 => Some(false),
        _ => None,
    }
}

/// Where the helper procedure stands with one peer, for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HelperState {
    #[default]
    None,
    /// The session was lost; stale paths kept until `until` unless it is
    /// back by then.
    Restarting { until: Instant },
    /// Back; stale paths kept until its End-of-RIB, or `until`.
    WaitingForEndOfRib { until: Instant },
}

impl HelperState {
    /// None once its deadline passed (the RIB sweeps then).
    pub fn current(self, now: Instant) -> HelperState {
        match self {
            HelperState::Restarting { until } | HelperState::WaitingForEndOfRib { until }
                if until <= now =>
            {
                HelperState::None
            }
            other => other,
        }
    }
}

/// A peer's graceful restart, as the admin API shows it.
#[derive(Debug, Clone, Default)]
pub struct GracefulStatus {
    /// What our OPEN carries (next OPEN when no session is up).
    pub local: Option<GracefulRestart>,
    /// What the peer's OPEN carried, when GR is in effect.
    pub peer: Option<GracefulRestart>,
    pub helper: HelperState,
}

/// The RIB task's timers of the helper procedure, per peer.
#[derive(Debug, Default)]
pub struct HelperTimers {
    peers: HashMap<PeerId, Helper>,
}

#[derive(Debug)]
struct Helper {
    deadline: Instant,
    /// None while the peer is away; then the families whose End-of-RIB
    /// is awaited.
    waiting: Option<Vec<Family>>,
}

/// What the RIB must sweep now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Every stale path of the peer.
    All,
    /// The stale paths of these families.
    Families(Vec<Family>),
}

impl HelperTimers {
    /// The session was lost with GR in effect: stale paths wait up to the
    /// peer's restart time for it to come back.
    pub fn restarting(&mut self, peer: PeerId, now: Instant, restart_time: Duration) {
        let helper = Helper {
            deadline: now + restart_time,
            waiting: None,
        };
        self.peers.insert(peer, helper);
    }

    /// The session is back. `kept`: families whose stale paths wait for
    /// End-of-RIB (at most `stale_time`); `negotiated`: all of this
    /// session's. Returns what to sweep at once.
    pub fn session_up(
        &mut self,
        peer: PeerId,
        now: Instant,
        kept: &[Family],
        stale_time: Duration,
    ) -> Option<Sweep> {
        self.peers.remove(&peer)?;
        if kept.is_empty() {
            return Some(Sweep::All);
        }
        self.peers.insert(
            peer,
            Helper {
                deadline: now + stale_time,
                waiting: Some(kept.to_vec()),
            },
        );
        // Stale paths of the families not kept go now.
        let others: Vec<Family> = [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
            .into_iter()
            .filter(|f| !kept.contains(f))
            .collect();
        (!others.is_empty()).then_some(Sweep::Families(others))
    }

    /// The peer's End-of-RIB for `family`: true when that family's stale
    /// paths are to be swept now.
    pub fn end_of_rib(&mut self, peer: PeerId, family: Family) -> bool {
        let Some(helper) = self.peers.get_mut(&peer) else {
            return false;
        };
        let Some(waiting) = &mut helper.waiting else {
            return false;
        };
        let before = waiting.len();
        waiting.retain(|f| *f != family);
        let swept = waiting.len() != before;
        if waiting.is_empty() {
            self.peers.remove(&peer);
        }
        swept
    }

    /// Forgets `peer` (its paths went another way).
    pub fn remove(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers.values().map(|h| h.deadline).min()
    }

    /// Peers whose time ran out, with whether their session is still away
    /// (then their identity can go too); forgotten here.
    pub fn expired(&mut self, now: Instant) -> Vec<(PeerId, bool)> {
        let due: Vec<(PeerId, bool)> = self
            .peers
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(&p, h)| (p, h.waiting.is_none()))
            .collect();
        for (peer, _) in &due {
            self.peers.remove(peer);
        }
        due
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::Notification;

    fn gr(families: &[(Family, bool)], restart_time: u16) -> GracefulRestart {
        GracefulRestart {
            restarting: false,
            notification: false,
            restart_time,
            families: families
                .iter()
                .map(|&(family, f)| GracefulRestartFamily {
                    family,
                    forwarding_preserved: f,
                })
                .collect(),
        }
    }

    #[test]
    fn only_a_lost_connection_without_bfd_failure_keeps_routes() {
        let peer = gr(&[(Family::IPV4_UNICAST, true)], 120);
        assert!(keeps_stale(
            &DownReason::ConnectionClosed,
            Some(&peer),
            false
        ));
        assert!(keeps_stale(
            &DownReason::HoldTimerExpired,
            Some(&peer),
            false
        ));
        assert!(!keeps_stale(
            &DownReason::ConnectionClosed,
            Some(&peer),
            true
        ));
        assert!(!keeps_stale(&DownReason::ConnectionClosed, None, false));
        let n = Notification::cease(2);
        assert!(!keeps_stale(
            &DownReason::NotificationReceived(n.clone()),
            Some(&peer),
            false
        ));
        assert!(!keeps_stale(
            &DownReason::NotificationSent(n),
            Some(&peer),
            false
        ));
        assert!(!keeps_stale(
            &DownReason::ConnectionClosed,
            Some(&gr(&[], 0)),
            false
        ));
    }

    #[test]
    fn families_without_the_f_bit_are_not_kept() {
        let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        let peer = gr(
            &[(Family::IPV4_UNICAST, true), (Family::IPV6_UNICAST, false)],
            120,
        );
        assert_eq!(
            kept_families(Some(&peer), &both),
            vec![Family::IPV4_UNICAST]
        );
        assert_eq!(kept_families(None, &both), Vec::<Family>::new());
    }

    #[test]
    fn our_capability_carries_r_and_f_bits_for_each_family() {
        let config = Some(GracefulRestartConfig {
            restart_time: 90,
            stale_routes_time: Duration::from_secs(300),
        });
        let families = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
        let cap = capability(config, &families, true, true).unwrap();
        assert!(cap.restarting);
        assert_eq!(cap.restart_time, 90);
        assert_eq!(cap.families.len(), 2);
        assert!(cap.families.iter().all(|f| f.forwarding_preserved));
        let fresh = capability(config, &families, false, false).unwrap();
        assert!(!fresh.restarting);
        assert!(fresh.families.iter().all(|f| !f.forwarding_preserved));
        assert_eq!(capability(None, &families, true, true), None);
    }

    #[test]
    fn helper_timers_restart_then_end_of_rib() {
        let t0 = Instant::now();
        let mut timers = HelperTimers::default();
        timers.restarting(1, t0, Duration::from_secs(120));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(120)));
        // Back with F=1 for IPv4 only: IPv6's stale paths go at once.
        let sweep = timers.session_up(
            1,
            t0 + Duration::from_secs(5),
            &[Family::IPV4_UNICAST],
            Duration::from_secs(360),
        );
        assert_eq!(sweep, Some(Sweep::Families(vec![Family::IPV6_UNICAST])));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(365)));
        assert!(!timers.end_of_rib(1, Family::IPV6_UNICAST));
        assert!(timers.end_of_rib(1, Family::IPV4_UNICAST));
        assert_eq!(timers.next_deadline(), None);
        // A session that comes up with no helper state sweeps nothing.
        assert_eq!(timers.session_up(1, t0, &[], Duration::from_secs(1)), None);
    }

    #[test]
    fn helper_timers_expire_and_say_whether_the_peer_is_away() {
        let t0 = Instant::now();
        let mut timers = HelperTimers::default();
        timers.restarting(1, t0, Duration::from_secs(10));
        timers.restarting(2, t0, Duration::from_secs(10));
        timers.session_up(2, t0, &[Family::IPV4_UNICAST], Duration::from_secs(5));
        assert!(timers.expired(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(
            timers.expired(t0 + Duration::from_secs(5)),
            vec![(2, false)]
        );
        assert_eq!(
            timers.expired(t0 + Duration::from_secs(10)),
            vec![(1, true)]
        );
        assert_eq!(timers.next_deadline(), None);
        // Back without GR (or with F=0 everywhere): everything at once.
        timers.restarting(3, t0, Duration::from_secs(10));
        assert_eq!(
            timers.session_up(3, t0, &[], Duration::from_secs(5)),
            Some(Sweep::All)
        );
    }

    #[test]
    fn helper_state_ends_at_its_deadline() {
        let t0 = Instant::now();
        let s = HelperState::Restarting {
            until: t0 + Duration::from_secs(1),
        };
        assert_eq!(s.current(t0), s);
        assert_eq!(s.current(t0 + Duration::from_secs(1)), HelperState::None);
    }
}
