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
    /// My channel closed after I asked and I ended; `idle`: nothing was left to do.
    Ended { key: RolloutKey, idle: bool },
}

/// Where idle workers ask to be let go, and after how long.
pub struct Dormancy {
    pub after: Duration,
    pub tx: UnboundedSender<Idle>,
}

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
}

impl Pool {
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
                self.running.insert(key, tx);
            }
            Routed::Deliver(key, events) => {
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
                let same = match (self.running.get(&key), channel.upgrade()) {
                    (Some(tx), Some(theirs)) => tx.same_channel(&theirs),
                    _ => false,
                };
                if same {
                    // Dropping the sender closes the channel once the worker drained it.
                    self.running.remove(&key);
                    self.dormant.insert(key, Dormant::Ending { wanted: false });
                }
            }
            Idle::Ended { key, idle } => match self.dormant.get(&key).copied() {
                Some(Dormant::Ending { wanted }) if wanted || !idle => self.wake(key, router, shared),
                Some(Dormant::Ending { .. }) => {
                    tracing::debug!(rollout = %key, "idle; worker let go until the next event or the resync");
                    self.dormant.insert(key, Dormant::Asleep { resync: Instant::now() + shared.resync });
                }
                Some(Dormant::Asleep { .. }) => {}
                None if self.running.contains_key(&key) => {}
                // Deleted while its worker was ending: that worker may have counted it again.
                None => shared.metrics.observe_rollout(&key.namespace, &key.name, None, false),
            },
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
