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
//! alive, not one per rollout: the memory measured at 1,000 rollouts was mostly theirs.
//!
//! The hand-over has no window in which two workers act for one rollout or an event is
//! lost: the worker asks ([`Idle::Ask`]) and goes on serving its channel; the pool drops the
//! channel's sender, so the worker drains what was sent before and then sees the channel
//! closed; it ends and says whether it is still idle ([`Idle::Ended`]). An event routed to the
//! rollout meanwhile only marks it wanted: its worker starts again once the old one ended.

use std::collections::BTreeMap;
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

/// A rollout without a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dormant {
    /// Its worker was let go and has not ended yet; `wanted`: something arrived meanwhile.
    Ending { wanted: bool },
    /// Its worker ended; a new one starts at the next event, or at `resync`.
    Asleep { resync: Instant },
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
    /// Workers kept while over it are those with something to do (0: no bound).
    cap: usize,
    /// Workers let go while waiting, since the start.
    evicted: u64,
}

impl Pool {
    /// A pool that lets waiting workers go while more than `cap` run (0: never).
    pub fn new(cap: usize) -> Self {
        Pool { cap, ..Pool::default() }
    }

    /// Workers let go while they waited, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Running workers.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Carries out what the router decided.
    pub fn dispatch(&mut self, routed: Routed, router: &mut Router, shared: &Arc<worker::Shared>) {
        match routed {
            Routed::Start(key, events) => {
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
                self.dormant.remove(&key);
                self.withdraw(&key);
                self.running.insert(key, tx);
                self.make_room(Instant::now());
            }
            Routed::Deliver(key, events) => {
                if self.running.contains_key(&key) {
                    // It has something to do again.
                    self.withdraw(&key);
                }
                if let Some(tx) = self.running.get(&key) {
                    for e in events {
                        let _ = tx.send(Box::new(e));
                    }
                    return;
                }
                // The router's cache already holds what the events say: a new worker gets it.
                match self.dormant.get_mut(&key) {
                    Some(Dormant::Ending { wanted }) => *wanted = true,
                    Some(Dormant::Asleep { .. }) => self.wake(key, router, shared),
                    None => {}
                }
            }
            Routed::Stop(key) => {
                self.withdraw(&key);
                if let Some(tx) = self.running.remove(&key) {
                    let _ = tx.send(Box::new(Event::Deleted { kind: key.object_kind(), name: key.name.clone() }));
                } else if self.dormant.remove(&key).is_some() {
                    // No worker will see the deletion: its series go here (and again when an
                    // ending worker ends, see `idle`).
                    shared.metrics.observe_rollout(&key.namespace, &key.name, None, false);
                }
            }
        }
    }

    /// Takes a message of an idle worker.
    pub fn idle(&mut self, message: Idle, router: &mut Router, shared: &Arc<worker::Shared>) {
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
                    self.dormant.insert(key, Dormant::Asleep { resync });
                }
                Some(Dormant::Asleep { .. }) => {}
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
        self.dormant.insert(key, Dormant::Ending { wanted: false });
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
            self.evicted += 1;
            self.let_go(key);
        }
    }

    /// When the next dormant rollout is due for its resync.
    pub fn next_resync(&self) -> Option<Instant> {
        self.dormant
            .values()
            .filter_map(|d| match d {
                Dormant::Asleep { resync } => Some(*resync),
                Dormant::Ending { .. } => None,
            })
            .min()
    }

    /// Starts the workers of the dormant rollouts whose resync is due.
    pub fn resync_due(&mut self, now: Instant, router: &mut Router, shared: &Arc<worker::Shared>) {
        let due: Vec<RolloutKey> = self
            .dormant
            .iter()
            .filter(|(_, d)| matches!(d, Dormant::Asleep { resync } if *resync <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.wake(key, router, shared);
        }
    }

    /// Starts a dormant rollout's worker again, from the router's cache.
    fn wake(&mut self, key: RolloutKey, router: &mut Router, shared: &Arc<worker::Shared>) {
        self.dormant.remove(&key);
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
        assert_eq!((pool.running(), pool.evicted()), (2, 1));
        // A fourth: a goes; then nobody else offered, so the fifth makes three running.
        let (mut d, _) = run(&mut pool, "d");
        pool.make_room(now);
        assert!(let_go(&mut a));
        let (mut e, _) = run(&mut pool, "e");
        pool.make_room(now);
        assert!(!let_go(&mut c) && !let_go(&mut d) && !let_go(&mut e));
        assert_eq!((pool.running(), pool.evicted()), (3, 2));
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
        assert_eq!(pool.evicted(), 0);
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
        assert_eq!(pool.evicted(), 0);
    }
}
