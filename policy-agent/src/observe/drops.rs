// The kernel packet counters of our DROP rules (iptables-save -c, both
// families): one read at a time, shared by every caller that asked while
// it ran and reused for FRESH_FOR after it (a scrape, GetStatus and
// `podctl status --watch` may all ask at once), also read every POLL_EVERY
// while a pod is isolated; and what successive reads tell: packets dropped
// since the agent started per direction and reason, and per isolated pod
// and direction when its counters last grew and by how much recently.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::agent::View;
use crate::apply::read_rule_packets;
use crate::apply::runner::Runner;
use crate::model::cluster::{Direction, ObjectKey};
use crate::render::{DropIndex, DropReason, Family};

/// How long a read is reused: a second is as fresh as a scrape needs, and
/// bounds the forks `podctl status --watch 0.1` costs to one a second.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// How often the counters are read while some pod is isolated, scraped or
/// not: when drops were last seen is known to within this.
pub const POLL_EVERY: Duration = Duration::from_secs(10);

/// Drops within this are recent (GetStatus `recent_packets`; podctl status
/// calls a pod's drops a problem only while they are).
pub const RECENT: Duration = Duration::from_secs(300);

/// Kernel packet counters by (family, rule hash).
pub type RulePackets = HashMap<(Family, String), u64>;

type RuleKey = (Family, String);

/// Where the counters come from: iptables-save where the agent programs,
/// or a fake in tests.
pub trait CounterSource: fmt::Debug + Send + Sync + 'static {
    /// Blocking (it runs the tools); called from a blocking task.
    fn read(&self) -> Result<RulePackets, String>;
}

impl CounterSource for Runner {
    fn read(&self) -> Result<RulePackets, String> {
        read_rule_packets(self).map_err(|e| e.to_string())
    }
}

/// One read of the counters, against the rules of the view in force when
/// it was taken.
#[derive(Debug, Clone)]
pub struct CounterRead {
    pub view: Arc<View>,
    pub packets: Result<Arc<RulePackets>, String>,
    /// When it finished.
    pub at: Instant,
}

/// Reads the counters for the observer: single-flight, with a short cache.
#[derive(Debug)]
pub struct DropReader {
    source: Arc<dyn CounterSource>,
    view: watch::Receiver<Option<Arc<View>>>,
    fresh_for: Duration,
    /// Held by the read in flight, across the tools it runs; no other lock
    /// is. Reads so fold one after another, each against the view it took.
    flight: tokio::sync::Mutex<()>,
    last: Mutex<LastRead>,
    counters: Mutex<DropCounters>,
    read_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct LastRead {
    read: Option<CounterRead>,
    /// Reads finished since start, to tell a caller whether one finished
    /// after it asked.
    finished: u64,
}

impl DropReader {
    pub fn new(
        source: Arc<dyn CounterSource>,
        view: watch::Receiver<Option<Arc<View>>>,
        fresh_for: Duration,
    ) -> Self {
        DropReader {
            source,
            view,
            fresh_for,
            flight: tokio::sync::Mutex::new(()),
            last: Mutex::new(LastRead::default()),
            counters: Mutex::new(DropCounters::default()),
            read_errors: AtomicU64::new(0),
        }
    }

    /// The counters of the view in force: the last read if it is of that
    /// view and younger than `fresh_for`, else a read that finished after
    /// this call (the one in flight at the call, shared), else a new one.
    /// None before the first sync.
    pub fn read(self: &Arc<Self>) -> impl Future<Output = Option<CounterRead>> + Send + 'static {
        // Taken at the call, not when first polled: a read in flight now
        // is one this caller may share.
        let asked = self.last().finished;
        let reader = self.clone();
        async move {
            let view = reader.view.borrow().clone()?;
            if let Some(read) = reader.reusable(&view, None) {
                return Some(read);
            }
            // A task of its own: a caller that gives up (a GetStatus past
            // its deadline) does not cancel the read; later callers share it.
            tokio::spawn(async move { reader.read_once(asked).await })
                .await
                .ok()
                .flatten()
        }
    }

    async fn read_once(&self, asked: u64) -> Option<CounterRead> {
        let _flight = self.flight.lock().await;
        let view = self.view.borrow().clone()?;
        if let Some(read) = self.reusable(&view, Some(asked)) {
            return Some(read);
        }
        let packets = if view.drops.is_empty() {
            Ok(Arc::default())
        } else {
            let source = self.source.clone();
            tokio::task::spawn_blocking(move || source.read())
                .await
                .map_err(|e| format!("the counter read failed: {e}"))
                .and_then(|read| read.map(Arc::new))
        };
        let at = Instant::now();
        match &packets {
            Ok(packets) => self.counters().fold(packets, &view.drops, at),
            Err(e) => {
                self.read_errors.fetch_add(1, Ordering::Relaxed);
                // A scrape every few seconds would repeat it at warn.
                tracing::debug!("cannot read the drop counters: {e}");
            }
        }
        let read = CounterRead { view, packets, at };
        let mut last = self.last();
        last.finished += 1;
        last.read = Some(read.clone());
        Some(read)
    }

    /// The last read, if it is of `view` and fresh, or finished after the
    /// caller asked (`asked`: reads finished then).
    fn reusable(&self, view: &Arc<View>, asked: Option<u64>) -> Option<CounterRead> {
        let last = self.last();
        let read = last.read.as_ref()?;
        let shared = asked.is_some_and(|asked| last.finished > asked);
        let fresh = read.at.elapsed() < self.fresh_for;
        (Arc::ptr_eq(&read.view, view) && (shared || fresh)).then(|| read.clone())
    }

    fn last(&self) -> MutexGuard<'_, LastRead> {
        // Each update is whole (two assignments): consistent after a panic.
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the reads so far tell. A short lock: never held across a read.
    pub fn counters(&self) -> MutexGuard<'_, DropCounters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads that failed since start.
    pub fn read_errors(&self) -> u64 {
        self.read_errors.load(Ordering::Relaxed)
    }
}

/// Reads the counters every POLL_EVERY while some pod is isolated (a policy
/// DROP rule is in force), and at once on the first view, so that when a
/// pod's drops grew is known without a scrape. Ends when the reconcile
/// loop's view sender is gone.
pub async fn poll(reader: Arc<DropReader>) {
    let mut views = reader.view.clone();
    let mut ticks = tokio::time::interval(POLL_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() {
                    return;
                }
                let view = views.borrow_and_update().clone();
                let Some(view) = view else {
                    continue;
                };
                let first = reader.counters().note_view(&view.drops);
                // The first read is the baseline of the rules the agent
                // found in force: the sooner, the less it hides.
                if first && isolates(&view.drops) {
                    reader.read().await;
                }
            }
            _ = ticks.tick() => {
                let isolated = views.borrow().as_ref().is_some_and(|v| isolates(&v.drops));
                if isolated {
                    reader.read().await;
                }
            }
        }
    }
}

fn isolates(index: &DropIndex) -> bool {
    index.values().any(|d| d.reason == DropReason::Policy)
}

/// What successive reads of the kernel counters tell: packets our DROP
/// rules dropped since the agent started, per direction and reason; and
/// per isolated pod and direction, when its policy DROP counters were last
/// seen growing and by how much within RECENT. A counter restarts at zero
/// when its chain is rewritten (its endpoint's isolating policies or
/// address changed) and then carries another rule hash, or reads lower
/// than before; what it counted between the last read and the rewrite is
/// not seen.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// The last read, per (family, rule hash) of a rule in the index.
    last: HashMap<RuleKey, u64>,
    totals: BTreeMap<(Direction, DropReason), u64>,
    /// Rules of the first view the agent had not read yet: they may have
    /// been in force before it started, counting since, so their first
    /// read tells how many but not when. None until a view is noted.
    carried: Option<HashSet<RuleKey>>,
    recency: BTreeMap<(ObjectKey, Direction), Recency>,
}

#[derive(Debug, Default)]
struct Recency {
    /// The read that last saw the counters grow.
    last_drop: Option<Instant>,
    /// (read, packets it saw dropped) within RECENT of the last read,
    /// oldest first.
    seen: VecDeque<(Instant, u64)>,
}

/// A pod's recent drops in one direction, as GetStatus tells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recent {
    /// Whole seconds since a read saw the counters grow; None if none did.
    pub last_drop_seconds_ago: Option<u64>,
    /// Packets seen dropped by reads at most RECENT ago (by those seconds).
    pub packets: u64,
}

impl DropCounters {
    /// Notes the rules of a view the agent programmed; returns whether it
    /// was the first noted, whose rules may predate the agent.
    pub fn note_view(&mut self, index: &DropIndex) -> bool {
        match &mut self.carried {
            None => {
                self.carried = Some(index.keys().cloned().collect());
                true
            }
            // A rule gone is rewritten if it comes back: counting anew.
            Some(carried) => {
                carried.retain(|key| index.contains_key(key));
                false
            }
        }
    }

    /// Folds a read of the rules of `index`, taken at `at`.
    pub fn fold(&mut self, read: &RulePackets, index: &DropIndex, at: Instant) {
        self.note_view(index);
        let carried = self.carried.get_or_insert_default();
        let mut last = HashMap::with_capacity(index.len());
        let mut grew: BTreeMap<(&ObjectKey, Direction), u64> = BTreeMap::new();
        for (key, drop) in index {
            let Some(&now) = read.get(key) else {
                continue;
            };
            // (added to the totals, seen dropped now)
            let (delta, news) = match self.last.get(key) {
                Some(&before) if now >= before => (now - before, now - before),
                // Reset by a rewrite (or iptables -Z): all it counted is new.
                Some(_) => (now, now),
                // Perhaps counted before the agent started: totals include
                // it (METRICS.md says so), recency does not.
                None if carried.remove(key) => (now, 0),
                // A rule the agent wrote: it started at zero since.
                None => (now, now),
            };
            *self
                .totals
                .entry((drop.direction, drop.reason))
                .or_default() += delta;
            if let (DropReason::Policy, Some(pod)) = (drop.reason, &drop.endpoint) {
                *grew.entry((pod, drop.direction)).or_default() += news;
            }
            last.insert(key.clone(), now);
        }
        self.last = last;
        // Forget pods and directions no longer isolated here.
        let isolated: BTreeSet<(&ObjectKey, Direction)> = index
            .values()
            .filter(|d| d.reason == DropReason::Policy)
            .filter_map(|d| Some((d.endpoint.as_ref()?, d.direction)))
            .collect();
        self.recency
            .retain(|(pod, direction), _| isolated.contains(&(pod, *direction)));
        for ((pod, direction), packets) in grew {
            if packets == 0 {
                continue;
            }
            let recency = self.recency.entry((pod.clone(), direction)).or_default();
            recency.last_drop = Some(at);
            recency.seen.push_back((at, packets));
        }
        for recency in self.recency.values_mut() {
            while recency
                .seen
                .front()
                .is_some_and(|(seen, _)| !is_recent(*seen, at))
            {
                recency.seen.pop_front();
            }
        }
    }

    /// `pod`'s recent drops in `direction`, as of `now`.
    pub fn recent(&self, pod: &ObjectKey, direction: Direction, now: Instant) -> Recent {
        let Some(recency) = self.recency.get(&(pod.clone(), direction)) else {
            return Recent::default();
        };
        Recent {
            last_drop_seconds_ago: recency
                .last_drop
                .map(|at| now.saturating_duration_since(at).as_secs()),
            packets: recency
                .seen
                .iter()
                .filter(|(seen, _)| is_recent(*seen, now))
                .map(|(_, packets)| packets)
                .sum(),
        }
    }

    /// The pods and directions whose drops were seen growing (and are
    /// still isolated that way).
    pub fn seen_dropping(&self) -> impl Iterator<Item = (&ObjectKey, Direction)> {
        self.recency
            .keys()
            .map(|(pod, direction)| (pod, *direction))
    }

    pub fn total(&self, direction: Direction, reason: DropReason) -> u64 {
        self.totals
            .get(&(direction, reason))
            .copied()
            .unwrap_or_default()
    }
}

/// Whether a drop seen at `seen` is recent at `now`: by whole seconds,
/// as `last_drop_seconds_ago` counts them.
fn is_recent(seen: Instant, now: Instant) -> bool {
    now.saturating_duration_since(seen).as_secs() <= RECENT.as_secs()
}

#[cfg(test)]
mod tests {
    use std::sync::Condvar;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::observe::tests::{DENY_X, read, view};

    /// Counts its reads; each blocks until the gate is opened.
    #[derive(Debug, Default)]
    struct GatedSource {
        reads: AtomicUsize,
        open: Mutex<bool>,
        opened: Condvar,
        packets: RulePackets,
    }

    impl GatedSource {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    impl CounterSource for GatedSource {
        fn read(&self) -> Result<RulePackets, String> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let open = self.open.lock().unwrap();
            drop(self.opened.wait_while(open, |open| !*open).unwrap());
            Ok(self.packets.clone())
        }
    }

    /// Polls until `f` holds; panics after a generous deadline.
    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "{what}: not within 30s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether two answers are one read (each read's packets are a new Arc).
    fn same(a: &CounterRead, b: &CounterRead) -> bool {
        match (&a.packets, &b.packets) {
            (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn reader(source: &Arc<GatedSource>, fresh_for: Duration) -> Arc<DropReader> {
        let view = Arc::new(view(DENY_X));
        let (_, rx) = watch::channel(Some(view));
        Arc::new(DropReader::new(source.clone(), rx, fresh_for))
    }

    #[tokio::test]
    async fn callers_during_a_read_share_it() {
        let source = Arc::new(GatedSource::default());
        // Nothing is fresh: only sharing the read in flight saves forks.
        let reader = reader(&source, Duration::ZERO);
        let first = tokio::spawn(reader.read());
        until("the first read started", || {
            source.reads.load(Ordering::SeqCst) == 1
        })
        .await;
        // Three more callers while it runs; then the first gives up (a
        // GetStatus past its deadline): its read goes on for the others.
        let waiting: Vec<_> = (0..3).map(|_| reader.read()).collect();
        first.abort();
        source.open();
        let reads: Vec<CounterRead> = futures_util::future::join_all(waiting)
            .await
            .into_iter()
            .map(|read| read.expect("a view"))
            .collect();
        assert!(reads.iter().all(|r| same(r, &reads[0])), "one read");
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        // A caller after it finished reads again: nothing is fresh.
        let again = reader.read().await.expect("a view");
        assert!(!same(&again, &reads[0]));
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_fresh_read_is_reused_until_the_view_changes() {
        let source = Arc::new(GatedSource::default());
        source.open();
        let view = Arc::new(view(DENY_X));
        let (tx, rx) = watch::channel(Some(view));
        let reader = Arc::new(DropReader::new(
            source.clone(),
            rx,
            Duration::from_secs(3600),
        ));
        let first = reader.read().await.expect("a view");
        let second = reader.read().await.expect("a view");
        assert!(same(&second, &first));
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        // Another view: its rules were not read yet.
        tx.send_replace(Some(Arc::new(super::super::tests::view(DENY_X))));
        let third = reader.read().await.expect("a view");
        assert!(!same(&third, &first));
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_is_read_before_the_first_sync_or_without_drop_rules() {
        let source = Arc::new(GatedSource::default());
        let (tx, rx) = watch::channel(None);
        let reader = Arc::new(DropReader::new(source.clone(), rx, Duration::ZERO));
        assert!(reader.read().await.is_none());
        let mut empty = view(DENY_X);
        empty.drops = Arc::default();
        tx.send_replace(Some(Arc::new(empty)));
        let read = reader.read().await.expect("a view");
        assert!(read.packets.expect("no read, no error").is_empty());
        assert_eq!(source.reads.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn totals_grow_across_reads_rewrites_and_resets() {
        let view = view(DENY_X);
        let policy_in = |n: u64| {
            read(&view, move |d| {
                if d.reason == DropReason::Policy
                    && d.direction == Direction::Ingress
                    && d.family == Family::V4
                {
                    n
                } else {
                    0
                }
            })
        };
        let now = Instant::now();
        let mut totals = DropCounters::default();
        totals.fold(&policy_in(4), &view.drops, now);
        assert_eq!(totals.total(Direction::Ingress, DropReason::Policy), 4);
        totals.fold(&policy_in(10), &view.drops, now);
        assert_eq!(totals.total(Direction::Ingress, DropReason::Policy), 10);
        // Counters zeroed (iptables -Z, or the chain rewritten as it was):
        // what it shows now is new.
        totals.fold(&policy_in(3), &view.drops, now);
        assert_eq!(totals.total(Direction::Ingress, DropReason::Policy), 13);
        // The rule gone from the kernel, then back from zero.
        totals.fold(&HashMap::new(), &view.drops, now);
        totals.fold(&policy_in(2), &view.drops, now);
        assert_eq!(totals.total(Direction::Ingress, DropReason::Policy), 15);
        assert_eq!(totals.total(Direction::Egress, DropReason::Policy), 0);

        // The policies of x/a change: its chain, and so its drop rule's
        // hash, are new; the new rule's count adds to the total.
        let other = super::super::tests::view(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
        );
        let mut moved = HashMap::new();
        for (key, drop) in other.drops.iter() {
            if drop.reason == DropReason::Policy && drop.family == Family::V4 {
                assert!(!view.drops.contains_key(key), "a new hash");
                moved.insert(key.clone(), 6);
            }
        }
        totals.fold(&moved, &other.drops, now);
        assert_eq!(totals.total(Direction::Ingress, DropReason::Policy), 21);
    }

    /// x/a's ingress policy DROP (IPv4) at `n` in `view`, others at 0.
    fn xa_in(view: &View, n: u64) -> RulePackets {
        read(view, move |d| {
            if d.reason == DropReason::Policy
                && d.direction == Direction::Ingress
                && d.family == Family::V4
            {
                n
            } else {
                0
            }
        })
    }

    #[test]
    fn recency_is_when_a_read_saw_the_counters_grow() {
        let view = view(DENY_X);
        let xa = ObjectKey::new("x", "a");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut counters = DropCounters::default();
        let recent = |c: &DropCounters, now: u64| {
            let r = c.recent(&xa, Direction::Ingress, at(now));
            (r.last_drop_seconds_ago, r.packets)
        };
        // The first view's rules may have counted before the agent
        // started: their first read is a baseline, not news.
        assert!(counters.note_view(&view.drops));
        assert!(!counters.note_view(&view.drops));
        counters.fold(&xa_in(&view, 5), &view.drops, t0);
        assert_eq!(recent(&counters, 0), (None, 0));
        assert_eq!(counters.seen_dropping().count(), 0);
        assert_eq!(counters.total(Direction::Ingress, DropReason::Policy), 5);
        // 2 more at 10 s, then none: the last drop stays the 10 s read.
        counters.fold(&xa_in(&view, 7), &view.drops, at(10));
        assert_eq!(recent(&counters, 10), (Some(0), 2));
        counters.fold(&xa_in(&view, 7), &view.drops, at(20));
        assert_eq!(recent(&counters, 70), (Some(60), 2));
        // Recent up to RECENT, by whole seconds.
        assert_eq!(recent(&counters, 10 + 300), (Some(300), 2));
        assert_eq!(recent(&counters, 10 + 301), (Some(301), 0));
        // 4 more at 400 s; the 10 s ones are forgotten.
        counters.fold(&xa_in(&view, 11), &view.drops, at(400));
        assert_eq!(recent(&counters, 450), (Some(50), 4));
        assert_eq!(recent(&counters, 705), (Some(305), 0));
        // The egress side dropped nothing.
        let egress = counters.recent(&xa, Direction::Egress, at(400));
        assert_eq!(egress, Recent::default());

        // x/a's policies change: a new chain, counting from zero since
        // the agent wrote it, so all it shows is news.
        let other = super::super::tests::view(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n",
        );
        counters.note_view(&other.drops);
        counters.fold(&xa_in(&other, 3), &other.drops, at(500));
        assert_eq!(recent(&counters, 500), (Some(0), 7));

        // x/a no longer isolated: forgotten.
        let open = super::super::tests::view("");
        counters.fold(&HashMap::new(), &open.drops, at(600));
        assert_eq!(recent(&counters, 600), (None, 0));
        assert_eq!(counters.seen_dropping().count(), 0);
    }

    #[test]
    fn a_first_view_rule_that_went_and_came_back_counts_anew() {
        let view = view(DENY_X);
        let open = super::super::tests::view("");
        let t0 = Instant::now();
        let mut counters = DropCounters::default();
        counters.note_view(&view.drops);
        counters.note_view(&open.drops);
        // Back: the agent wrote it again, so it counted from zero.
        counters.note_view(&view.drops);
        counters.fold(&xa_in(&view, 2), &view.drops, t0);
        let recent = counters.recent(&ObjectKey::new("x", "a"), Direction::Ingress, t0);
        assert_eq!(
            recent,
            Recent {
                last_drop_seconds_ago: Some(0),
                packets: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn polls_while_a_pod_is_isolated() {
        let source = Arc::new(GatedSource::default());
        source.open();
        let (tx, rx) = watch::channel(None);
        let reader = Arc::new(DropReader::new(source.clone(), rx, Duration::ZERO));
        let poller = tokio::spawn(poll(reader.clone()));
        let reads = || source.reads.load(Ordering::SeqCst);
        // Virtual time: the poller's timer fires as this sleeps.
        tokio::time::sleep(POLL_EVERY * 3).await;
        assert_eq!(reads(), 0, "no view");
        tx.send_replace(Some(Arc::new(view(DENY_X))));
        until("reads on the timer", || reads() >= 3).await;
        // Nothing isolated: nothing read.
        tx.send_replace(Some(Arc::new(super::super::tests::view(""))));
        tokio::time::sleep(POLL_EVERY).await;
        let settled = reads();
        tokio::time::sleep(POLL_EVERY * 5).await;
        assert_eq!(reads(), settled);
        // The reconcile loop gone: the poller ends.
        drop(tx);
        poller.await.unwrap();
    }
}
