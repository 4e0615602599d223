//! The workers of the controller: one task per rollout, AnalysisRun or Experiment that has
//! something to do, and the rollouts whose worker was let go because they had nothing to do.
//!
//! A Healthy rollout that sees no event and asked for no wake-up for
//! `--worker-idle-timeout` gives its worker up: the task ends and its `State` (the decoded
//! Rollout, its ReplicaSets, pods and Services) is freed; the router's cache still holds
//! every object. The next event that concerns the rollout, or its resync, starts a new worker
//! from the cache, which reconciles as after a controller restart (level-triggered: the
//! result is the same). With thousands of rollouts most are idle most of the time, and the
//! controller's memory then grows with its cache, not with a task and a `State` per rollout.
//!
//! A rollout that waits (for its pods, a pause's end, an analysis step's next measurement)
//! keeps its worker while fewer than `--max-workers` run. Over that, the workers that said
//! they may go ([`Idle::Waiting`]: no event for [`worker::WAITING_QUIET`], nothing pending but
//! a wake-up, and the cache holding the Rollout as their last write left it) are let go,
//! those that said so first before the others, and their wake-up becomes their resync. A
//! burst (every rollout created or updated at once) then keeps about `--max-workers` States
//! alive, not one per rollout: the memory measured at 1,000 rollouts was mostly theirs. A
//! rollout that needs a worker while `--max-workers` run waits in a queue ([`Dormant::Queued`])
//! until one goes, [`QUEUED_AT_MOST`] at most.
//!
//! The hand-over has no window in which two workers act for one rollout or an event is
//! lost: the worker asks ([`Idle::Ask`]) and goes on serving its channel; the pool drops the
//! channel's sender, so the worker drains what was sent before and then sees the channel
//! closed; it ends and says what it left pending ([`Idle::Ended`]). An event routed to the
//! rollout meanwhile only marks it wanted: its worker starts again once the old one ended.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rollouts_core::state::Event;
use tokio::sync::mpsc::{self, UnboundedSender, WeakUnboundedSender};

use super::router::{RolloutKey, Routed, Router, WorkerKind};
use super::{experiment, worker};

/// A worker's channel.
pub type Sender = UnboundedSender<Box<Event>>;

/// What an idle rollout worker tells the pool.
pub enum Idle {
    /// Nothing to do for the idle timeout: let go of me (the channel I read, to tell me from a
    /// newer worker of a rollout of the same name).
    Ask(RolloutKey, WeakUnboundedSender<Box<Event>>),
    /// I wait for an event, or until `until`: let go of me if too many workers run.
    Waiting { key: RolloutKey, channel: WeakUnboundedSender<Box<Event>>, until: Option<Instant> },
    /// My channel closed and I ended; `settled`: nothing was left to do but the wake-up
    /// `until`.
    Ended { key: RolloutKey, settled: bool, until: Option<Instant> },
}

/// Where idle workers ask to be let go, and when.
pub struct Dormancy {
    /// Idle this long, a worker asks to go (`ZERO`: never).
    pub after: Duration,
    /// Rollout workers kept while they wait, at most (0: no bound).
    pub cap: usize,
    pub tx: UnboundedSender<Idle>,
}

/// A worker that said it may be let go while it waits.
struct Offer {
    /// Its place in the order of offers.
    seq: u64,
    channel: WeakUnboundedSender<Box<Event>>,
    until: Option<Instant>,
}

/// A waiting worker is not let go this close to its wake-up: it may be reconciling by the
/// time its channel closes.
const WAKE_GUARD: Duration = Duration::from_millis(200);

/// A rollout whose worker waits for room this long at most: started then even while
/// `--max-workers` run (none of them could be let go: they all have something to do).
const QUEUED_AT_MOST: Duration = Duration::from_secs(5);
/// Starts over the bound, at most one per this long.
const FORCED_GAP: Duration = Duration::from_millis(20);

/// A rollout without a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dormant {
    /// Its worker was let go and has not ended yet; `wanted`: something arrived meanwhile.
    Ending { wanted: bool },
    /// Its worker ended; a new one starts at the next event, or at `resync`.
    Asleep { resync: Instant },
    /// It has something to do but `--max-workers` run: its worker starts, from the cache,
    /// when one of them goes, or after [`QUEUED_AT_MOST`]. `seq`: its place in the queue.
    Queued { seq: u64, since: Instant },
}

/// The running workers and the dormant rollouts.
#[derive(Default)]
pub struct Pool {
    running: BTreeMap<RolloutKey, Sender>,
    dormant: BTreeMap<RolloutKey, Dormant>,
    /// Running workers that may be let go, and the order they said so in.
    offers: BTreeMap<RolloutKey, Offer>,
    order: BTreeMap<u64, RolloutKey>,
    next_seq: u64,
    /// Asleep rollouts by their resync; queued ones in order.
    schedule: BTreeSet<(Instant, RolloutKey)>,
    queue: BTreeMap<u64, RolloutKey>,
    /// The next start over the bound, not before.
    next_forced: Option<Instant>,
    /// Workers kept while over it are those with something to do (0: no bound).
    cap: usize,
}

impl Pool {
    /// A pool that lets waiting workers go while more than `cap` run (0: never).
    pub fn new(cap: usize) -> Self {
        Pool { cap, ..Pool::default() }
    }

    /// Running workers.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Carries out what the router decided.
    pub fn dispatch(&mut self, routed: Routed, router: &mut Router, shared: &Arc<worker::Shared>) {
        match routed {
            Routed::Start(key, events) => {
                if self.cap > 0 && key.is_rollout() && self.running.len() >= self.cap && !self.running.contains_key(&key) {
                    // The cache holds what `events` say: its worker gets them when it starts.
                    self.enqueue(key, Instant::now());
                    return;
                }
                self.spawn(key, events, shared);
            }
            Routed::Deliver(key, events) => {
                if self.running.contains_key(&key) {
                    // It has something to do again.
                    self.withdraw(&key);
                    let tx = &self.running[&key];
                    for e in events {
                        let _ = tx.send(Box::new(e));
                    }
                    return;
                }
                // The router's cache already holds what the events say: a new worker gets it.
                match self.dormant.get_mut(&key) {
                    Some(Dormant::Ending { wanted }) => *wanted = true,
                    Some(Dormant::Asleep { .. }) => self.wake(key, router, shared),
                    Some(Dormant::Queued { .. }) | None => {}
                }
            }
            Routed::Stop(key) => {
                self.withdraw(&key);
                if let Some(tx) = self.running.remove(&key) {
                    let _ = tx.send(Box::new(Event::Deleted { kind: key.object_kind(), name: key.name.clone() }));
                    // Room for a queued one.
                    self.fill(router, shared);
                } else if self.wake_up(&key).is_some() {
                    // No worker will see the deletion: its series go here (and again when an
                    // ending worker ends, see `idle`).
                    shared.metrics.observe_rollout(&key.namespace, &key.name, None, false);
                }
            }
        }
    }

    /// Starts the worker of `key` with `events`, over the bound or not, and lets waiting
    /// workers go if too many run.
    fn spawn(&mut self, key: RolloutKey, events: Vec<Event>, shared: &Arc<worker::Shared>) {
        let (tx, rx) = mpsc::unbounded_channel();
        for e in events {
            let _ = tx.send(Box::new(e));
        }
        tracing::debug!(rollout = %key, "worker started");
        match key.kind {
            WorkerKind::Rollout | WorkerKind::AnalysisRun => {
                tokio::spawn(worker::run(key.clone(), rx, tx.downgrade(), shared.clone()));
            }
            WorkerKind::Experiment => {
                tokio::spawn(experiment::run(key.clone(), rx, shared.clone()));
            }
        }
        self.wake_up(&key);
        self.withdraw(&key);
        self.running.insert(key, tx);
        self.make_room(Instant::now());
    }

    /// Takes a message of an idle worker.
    pub fn idle(&mut self, message: Idle, router: &mut Router, shared: &Arc<worker::Shared>) {
        self.take_idle(message, router, shared);
        self.fill(router, shared);
    }

    fn take_idle(&mut self, message: Idle, router: &mut Router, shared: &Arc<worker::Shared>) {
        match message {
            Idle::Ask(key, channel) => {
                if self.is_running(&key, &channel) {
                    self.let_go(key);
                }
            }
            Idle::Waiting { key, channel, until } => self.offer(key, channel, until, Instant::now()),
            Idle::Ended { key, settled, until } => match self.dormant.get(&key).copied() {
                Some(Dormant::Ending { wanted }) if wanted || !settled => self.wake(key, router, shared),
                Some(Dormant::Ending { .. }) => {
                    let now = Instant::now();
                    let resync = until.map_or(now + shared.resync, |at| at.min(now + shared.resync));
                    tracing::debug!(rollout = %key, "worker let go until the next event, its wake-up or the resync");
                    self.sleep(key, resync);
                }
                Some(Dormant::Asleep { .. } | Dormant::Queued { .. }) => {}
                None if self.running.contains_key(&key) => {}
                // Deleted while its worker was ending: that worker may have counted it again.
                None => shared.metrics.observe_rollout(&key.namespace, &key.name, None, false),
            },
        }
    }

    /// Whether `channel` is that of the running worker of `key`.
    fn is_running(&self, key: &RolloutKey, channel: &WeakUnboundedSender<Box<Event>>) -> bool {
        match (self.running.get(key), channel.upgrade()) {
            (Some(tx), Some(theirs)) => tx.same_channel(&theirs),
            _ => false,
        }
    }

    /// Takes a waiting worker's offer to go, and lets go of workers if too many run.
    fn offer(&mut self, key: RolloutKey, channel: WeakUnboundedSender<Box<Event>>, until: Option<Instant>, now: Instant) {
        if !self.is_running(&key, &channel) {
            // A worker that was let go, or replaced, since.
            return;
        }
        self.withdraw(&key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.offers.insert(key, Offer { seq, channel, until });
        self.make_room(now);
    }

    /// Forgets the offer of `key`'s worker.
    fn withdraw(&mut self, key: &RolloutKey) {
        if let Some(offer) = self.offers.remove(key) {
            self.order.remove(&offer.seq);
        }
    }

    /// Lets a running worker go: dropping the sender closes its channel once the worker
    /// drained it; it ends and says so ([`Idle::Ended`]).
    fn let_go(&mut self, key: RolloutKey) {
        self.withdraw(&key);
        self.running.remove(&key);
        self.wake_up(&key);
        self.dormant.insert(key, Dormant::Ending { wanted: false });
    }

    /// Puts a rollout to sleep until `resync`.
    fn sleep(&mut self, key: RolloutKey, resync: Instant) {
        self.wake_up(&key);
        self.schedule.insert((resync, key.clone()));
        self.dormant.insert(key, Dormant::Asleep { resync });
    }

    /// Queues a rollout for a worker.
    fn enqueue(&mut self, key: RolloutKey, now: Instant) {
        match self.dormant.get_mut(&key) {
            // Already waiting for room.
            Some(Dormant::Queued { .. }) => return,
            // Its worker ends, then it starts again (and is queued then if need be).
            Some(Dormant::Ending { wanted }) => {
                *wanted = true;
                return;
            }
            Some(Dormant::Asleep { .. }) | None => {}
        }
        self.wake_up(&key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert(seq, key.clone());
        self.dormant.insert(key, Dormant::Queued { seq, since: now });
    }

    /// Takes a rollout out of the dormant ones (and out of the schedule or the queue).
    fn wake_up(&mut self, key: &RolloutKey) -> Option<Dormant> {
        let dormant = self.dormant.remove(key)?;
        match dormant {
            Dormant::Asleep { resync } => {
                self.schedule.remove(&(resync, key.clone()));
            }
            Dormant::Queued { seq, .. } => {
                self.queue.remove(&seq);
            }
            Dormant::Ending { .. } => {}
        }
        Some(dormant)
    }

    /// The queued rollout to start now, if any: the first in the queue while fewer than
    /// `cap` run, or the first that waited [`QUEUED_AT_MOST`] (one per [`FORCED_GAP`]).
    fn next_queued(&mut self, now: Instant) -> Option<RolloutKey> {
        let (_, key) = self.queue.first_key_value()?;
        if self.running.len() < self.cap {
            return Some(key.clone());
        }
        let Some(Dormant::Queued { since, .. }) = self.dormant.get(key) else { return Some(key.clone()) };
        if *since + QUEUED_AT_MOST <= now && self.next_forced.is_none_or(|at| at <= now) {
            self.next_forced = Some(now + FORCED_GAP);
            return Some(key.clone());
        }
        None
    }

    /// Starts queued rollouts while there is room (or they waited long enough).
    fn fill(&mut self, router: &mut Router, shared: &Arc<worker::Shared>) {
        let now = Instant::now();
        while let Some(key) = self.next_queued(now) {
            // Out of the queue: each turn takes one, a rollout gone meanwhile starts nothing.
            self.wake_up(&key);
            for routed in router.restart(key) {
                match routed {
                    // Room was made for it: not queued again.
                    Routed::Start(key, events) => self.spawn(key, events, shared),
                    other => self.dispatch(other, router, shared),
                }
            }
        }
    }

    /// While more workers run than the cap, lets go of those waiting, in the order they
    /// offered; those about to wake up stay.
    fn make_room(&mut self, now: Instant) {
        if self.cap == 0 {
            return;
        }
        while self.running.len() > self.cap {
            let Some((_, key)) = self.order.pop_first() else { return };
            let Some(offer) = self.offers.remove(&key) else { continue };
            let waking = offer.until.is_some_and(|at| at <= now + WAKE_GUARD);
            if waking || !self.is_running(&key, &offer.channel) {
                continue;
            }
            tracing::debug!(rollout = %key, running = self.running.len(), "too many workers; letting a waiting one go");
            self.let_go(key);
        }
    }

    /// When the next dormant rollout is due for its resync.
    pub fn next_resync(&self) -> Option<Instant> {
        let asleep = self.schedule.first().map(|(at, _)| *at);
        let queued = self.queue.first_key_value().and_then(|(_, key)| match self.dormant.get(key) {
            Some(Dormant::Queued { since, .. }) => Some((*since + QUEUED_AT_MOST).max(self.next_forced.unwrap_or(*since))),
            _ => None,
        });
        asleep.into_iter().chain(queued).min()
    }

    /// Starts the workers of the dormant rollouts whose resync is due.
    pub fn resync_due(&mut self, now: Instant, router: &mut Router, shared: &Arc<worker::Shared>) {
        let due: Vec<RolloutKey> = self.schedule.iter().take_while(|(at, _)| *at <= now).map(|(_, k)| k.clone()).collect();
        for key in due {
            self.wake(key, router, shared);
        }
        self.fill(router, shared);
    }

    /// Starts a dormant rollout's worker again, from the router's cache.
    fn wake(&mut self, key: RolloutKey, router: &mut Router, shared: &Arc<worker::Shared>) {
        self.wake_up(&key);
        tracing::debug!(rollout = %key, "waking an idle rollout");
        for routed in router.restart(key) {
            self.dispatch(routed, router, shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::error::TryRecvError;
    use tokio::sync::mpsc::UnboundedReceiver;

    fn key(name: &str) -> RolloutKey {
        RolloutKey::rollout("ns", name)
    }

    /// A running worker of `name`, as `dispatch` starts one: its receiving end, and a weak
    /// sender as the worker keeps.
    fn run(pool: &mut Pool, name: &str) -> (UnboundedReceiver<Box<Event>>, WeakUnboundedSender<Box<Event>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let weak = tx.downgrade();
        pool.running.insert(key(name), tx);
        (rx, weak)
    }

    /// Rollouts whose worker was let go and has not ended yet.
    fn ending(pool: &Pool) -> usize {
        pool.dormant.values().filter(|d| matches!(d, Dormant::Ending { .. })).count()
    }

    fn let_go(rx: &mut UnboundedReceiver<Box<Event>>) -> bool {
        matches!(rx.try_recv(), Err(TryRecvError::Disconnected))
    }

    #[test]
    fn over_the_cap_waiting_workers_go_in_the_order_they_offered_and_no_others() {
        let now = Instant::now();
        let mut pool = Pool::new(2);
        let (mut a, a_tx) = run(&mut pool, "a");
        let (mut b, b_tx) = run(&mut pool, "b");
        pool.offer(key("b"), b_tx.clone(), None, now);
        pool.offer(key("a"), a_tx.clone(), Some(now + Duration::from_secs(60)), now);
        assert!(!let_go(&mut a) && !let_go(&mut b), "two running, the cap is two");
        // A third starts: the first to offer goes, the other stays.
        let (mut c, _) = run(&mut pool, "c");
        pool.make_room(now);
        assert!(let_go(&mut b), "b offered first");
        assert!(!let_go(&mut a) && !let_go(&mut c));
        assert_eq!(pool.dormant.get(&key("b")), Some(&Dormant::Ending { wanted: false }));
        assert_eq!((pool.running(), ending(&pool)), (2, 1));
        // A fourth: a goes; then nobody else offered, so the fifth makes three running.
        let (mut d, _) = run(&mut pool, "d");
        pool.make_room(now);
        assert!(let_go(&mut a));
        let (mut e, _) = run(&mut pool, "e");
        pool.make_room(now);
        assert!(!let_go(&mut c) && !let_go(&mut d) && !let_go(&mut e));
        assert_eq!((pool.running(), ending(&pool)), (3, 2));
        assert!(pool.offers.is_empty() && pool.order.is_empty());
    }

    #[test]
    fn a_worker_about_to_wake_or_replaced_since_it_offered_stays() {
        let now = Instant::now();
        let mut pool = Pool::new(1);
        let (mut a, a_tx) = run(&mut pool, "a");
        let (mut b, b_tx) = run(&mut pool, "b");
        // a wakes within the guard: it may be reconciling when its channel closes.
        pool.offer(key("a"), a_tx, Some(now + WAKE_GUARD / 2), now);
        assert!(!let_go(&mut a));
        // b offered, then a new worker of b replaced it: the offer is not the new worker's.
        pool.withdraw(&key("b"));
        let (mut b2, _) = run(&mut pool, "b");
        pool.offer(key("b"), b_tx, None, now);
        assert!(let_go(&mut b), "the old worker's sender was replaced");
        assert!(!let_go(&mut b2), "the new worker did not offer");
        assert_eq!(ending(&pool), 0);
        assert!(pool.offers.is_empty() && pool.order.is_empty());
    }

    #[test]
    fn an_offer_renewed_or_withdrawn_leaves_one_entry_or_none() {
        let now = Instant::now();
        let mut pool = Pool::new(5);
        let (_a, a_tx) = run(&mut pool, "a");
        for _ in 0..3 {
            pool.offer(key("a"), a_tx.clone(), None, now);
        }
        assert_eq!((pool.offers.len(), pool.order.len()), (1, 1));
        pool.withdraw(&key("a"));
        assert!(pool.offers.is_empty() && pool.order.is_empty());
    }

    #[test]
    fn queued_rollouts_start_in_order_when_there_is_room_or_one_by_one_after_waiting_too_long() {
        let now = Instant::now();
        let mut pool = Pool::new(1);
        let (_a, _) = run(&mut pool, "a");
        for name in ["q1", "q2", "q3"] {
            pool.enqueue(key(name), now);
        }
        pool.enqueue(key("q1"), now + Duration::from_secs(1));
        assert_eq!(pool.queue.len(), 3, "queued once");
        assert_eq!(pool.next_queued(now), None, "no room, not waited long enough");
        assert_eq!(pool.next_resync(), Some(now + QUEUED_AT_MOST));
        // Waited long enough: one now, the next one FORCED_GAP later.
        let late = now + QUEUED_AT_MOST;
        assert_eq!(pool.next_queued(late), Some(key("q1")));
        pool.wake_up(&key("q1"));
        assert_eq!(pool.next_queued(late), None);
        assert_eq!(pool.next_resync(), Some(late + FORCED_GAP));
        assert_eq!(pool.next_queued(late + FORCED_GAP), Some(key("q2")));
        pool.wake_up(&key("q2"));
        // Room: the next at once.
        pool.running.clear();
        assert_eq!(pool.next_queued(now), Some(key("q3")));
        pool.wake_up(&key("q3"));
        assert_eq!(pool.next_queued(now), None);
        assert!(pool.dormant.is_empty() && pool.queue.is_empty());
    }

    #[test]
    fn a_start_while_the_old_worker_ends_is_not_lost_and_asleep_rollouts_keep_their_order() {
        let now = Instant::now();
        let mut pool = Pool::new(1);
        let (_a, a_tx) = run(&mut pool, "a");
        pool.offer(key("a"), a_tx, None, now);
        let (_b, _) = run(&mut pool, "b");
        pool.make_room(now);
        assert_eq!(pool.dormant.get(&key("a")), Some(&Dormant::Ending { wanted: false }));
        pool.enqueue(key("a"), now);
        assert_eq!(pool.dormant.get(&key("a")), Some(&Dormant::Ending { wanted: true }), "started again once it ended");
        pool.wake_up(&key("a"));
        pool.sleep(key("x"), now + Duration::from_secs(9));
        pool.sleep(key("y"), now + Duration::from_secs(3));
        pool.sleep(key("x"), now + Duration::from_secs(5));
        assert_eq!(pool.schedule.len(), 2, "one entry per rollout");
        assert_eq!(pool.next_resync(), Some(now + Duration::from_secs(3)));
        pool.enqueue(key("y"), now);
        assert_eq!(pool.next_resync(), Some(now + Duration::from_secs(5)), "queued, y left the schedule");
        assert!(matches!(pool.dormant.get(&key("y")), Some(Dormant::Queued { .. })));
    }

    #[test]
    fn without_a_cap_no_waiting_worker_goes() {
        let now = Instant::now();
        let mut pool = Pool::new(0);
        let mut receivers = Vec::new();
        for name in ["a", "b", "c"] {
            let (rx, tx) = run(&mut pool, name);
            pool.offer(key(name), tx, None, now);
            receivers.push(rx);
        }
        assert!(receivers.iter_mut().all(|rx| !let_go(rx)));
        assert_eq!(ending(&pool), 0);
    }
}
