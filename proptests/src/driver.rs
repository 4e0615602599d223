//! A small cluster that drives [`rollouts_core::step`] directly, following the run-loop
//! contract of `core/src/lib.rs`: every observation goes in as [`Event::Applied`] /
//! [`Event::Deleted`], the returned actions are executed in order, and the latest
//! [`Action::WakeAt`] is the only timer. User commands are the patches Argo's kubectl
//! plugin makes.
//!
//! It is the step-level harness of the properties: the simulator's cluster
//! ([`rollouts_core::sim::Cluster`]) with its own run loop, and two knobs:
//!
//! * [`Pods`]: `Instant` — a ReplicaSet's status follows its spec at once (every replica
//!   ready and available, none for a never-ready image), no pods; or `Simulated` — pods
//!   that become ready `startup` seconds after creation and available `minReadySeconds`
//!   later, created and deleted the way the simulator's ReplicaSet controller does it.
//! * [`Delivery`]: `Snapshot` — one `step` per watch event, each event carrying the object
//!   as it was when the change happened, delivered in order, in batches (so an event can
//!   be older than the controller's own later write); `Coalesced` — the same batches, each
//!   observed in full and then reconciled once, as the simulator does; or `Latest` — one
//!   `step` per event, each carrying the object as it is when delivered (an informer cache
//!   that is never behind the API server).

use std::collections::{BTreeMap, BTreeSet};

use rollouts_core::sim::scenario::{ClusterSpec, ImageBehaviour};
use rollouts_core::sim::{Cluster, PodModel, PodObjects};
use rollouts_core::state::{Action, Event, Object, State};
use rollouts_core::time::{Seconds, Timestamp};
use serde_json::Value;

use crate::experiments::Experiments;
use crate::scenario::{Cmd, Timed};

/// Reconciles allowed at one instant before the driver reports a hot loop. Pods start at
/// once here, so a whole update can happen at one instant, and with snapshot delivery every
/// watch event is a reconcile: replicas replaced one at a time (`maxSurge: 0` and a
/// `maxUnavailable` that rounds down to 0, so 1) cost reconciles by the square of the
/// replicas — 2,029 for 42 replicas, which a bound of 2,000 called a hot loop (CI,
/// 2026-12-05, `maxUnavailable: 1%`); the generator goes up to 50.
pub const MAX_STEPS_PER_INSTANT: usize = 20_000;

/// The start of every driven run (2024-01-01T00:00:00Z), as in the simulator.
pub const EPOCH: Timestamp = rollouts_core::sim::SIMULATION_EPOCH;

/// How pods behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pods {
    /// No pods; ReplicaSet statuses follow their specs at once.
    Instant,
    /// Pods ready `startup` seconds after creation.
    Simulated {
        /// Seconds from creation to Ready.
        startup: i64,
    },
}

/// What a watch event carries, and how events reach the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One `step` per watch event, each carrying the object as it was at the change (so
    /// it may be older than the controller's own later write): rule 1 of the run-loop
    /// contract, taken literally.
    Snapshot,
    /// The same snapshots, but each batch (the events caused by the previous batch's
    /// actions) is observed in full and followed by one reconcile: rule 5 of the
    /// contract, what the simulator does.
    Coalesced,
    /// One `step` per watch event, each carrying the object as it is when delivered (an
    /// informer cache never older than the API server).
    Latest,
}

/// One call of `step`, as recorded by the driver.
#[derive(Clone, Debug)]
pub struct Call {
    /// The state before.
    pub state: State,
    /// The event.
    pub event: Event,
    /// The time.
    pub now: Timestamp,
    /// The state `step` returned.
    pub state_after: State,
    /// The actions `step` returned.
    pub actions: Vec<Action>,
}

/// The cluster and the controller state it feeds.
pub struct Driver {
    /// The virtual clock.
    pub now: Timestamp,
    /// The simulated cluster (the Rollout, its ReplicaSets, pods and Services).
    pub cluster: Cluster,
    /// The rollout's Experiments (the cluster does not run them).
    pub experiments: Experiments,
    /// The controller's state.
    pub state: State,
    /// The controller's timer.
    pub wake: Option<Timestamp>,
    /// Watch-event payloads.
    pub delivery: Delivery,
    /// The rollout's name.
    rollout: String,
    /// Every `step` call, when recording.
    pub calls: Option<Vec<Call>>,
    /// Number of `step` calls made.
    pub steps: usize,
    /// Reconciles allowed at one instant before [`DriveError::HotLoop`].
    pub max_steps_per_instant: usize,
}

/// Why a driven run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveError {
    /// More than [`Driver::max_steps_per_instant`] reconciles at one instant.
    HotLoop {
        /// Seconds since [`EPOCH`].
        t: i64,
    },
}

impl Driver {
    /// A cluster holding `objects` (Services and one Rollout manifest), with instant pods
    /// and snapshot delivery, and the watch events a starting controller would get.
    pub fn new(objects: &[Value], unready_images: BTreeSet<String>) -> Self {
        Self::with(objects, unready_images, Pods::Instant, Delivery::Snapshot)
    }

    /// The same, with the given pod behaviour and delivery.
    pub fn with(objects: &[Value], unready_images: BTreeSet<String>, pods: Pods, delivery: Delivery) -> Self {
        let (pod_model, startup) = match pods {
            Pods::Instant => (PodModel::Instant, 0),
            Pods::Simulated { startup } => (PodModel::Simulated, startup),
        };
        let experiments = Experiments::new(unready_images.clone(), Seconds(startup));
        let images = unready_images.into_iter().map(|i| (i, ImageBehaviour { ready: false, startup: None })).collect();
        let mut cluster = Cluster::new(EPOCH, ClusterSpec { pod_startup: Seconds(startup), images }, BTreeMap::new());
        cluster.pod_model = pod_model;
        // Every version of the Rollout is a watch event of its own: `Delivery` decides.
        cluster.latest_rollout_only = false;
        // Every pod change is a watch event, as in a real cluster.
        cluster.pod_objects = PodObjects::Always;
        let mut rollout = String::new();
        for obj in objects {
            if obj.get("kind").and_then(Value::as_str) == Some("Rollout") {
                rollout = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            }
            // A manifest the cluster refuses is left out, as `kubectl apply` would refuse it.
            let _refused = cluster.apply_manifest(obj.clone()).is_err();
        }
        Driver {
            now: EPOCH,
            cluster,
            experiments,
            state: State::default(),
            wake: None,
            delivery,
            rollout,
            calls: None,
            steps: 0,
            max_steps_per_instant: MAX_STEPS_PER_INSTANT,
        }
    }

    /// Starts recording every `step` call.
    pub fn record(mut self) -> Self {
        self.calls = Some(Vec::new());
        self
    }

    /// Seconds since [`EPOCH`].
    pub fn t(&self) -> i64 {
        self.now.since(EPOCH).0
    }

    /// The Rollout as stored (spec, metadata, status).
    pub fn rollout(&self) -> Option<&Value> {
        self.cluster.rollouts.get(&self.rollout).map(|v| &**v)
    }

    /// One `step`, executing its actions.
    fn step(&mut self, event: Event) {
        let event = match self.delivery {
            Delivery::Snapshot | Delivery::Coalesced => event,
            Delivery::Latest => {
                let latest = match &event {
                    Event::Applied(Object::Experiment(v)) => {
                        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                        self.experiments.latest(name)
                    }
                    _ => self.cluster.latest(event),
                };
                match latest {
                    Some(e) => e,
                    None => return,
                }
            }
        };
        self.steps += 1;
        let state = std::mem::take(&mut self.state);
        let recorded = self.calls.as_ref().map(|_| (state.clone(), event.clone()));
        let (state, actions) = rollouts_core::step(state, event, self.now);
        if let (Some(calls), Some((before, event))) = (self.calls.as_mut(), recorded) {
            calls.push(Call { state: before, event, now: self.now, state_after: state.clone(), actions: actions.clone() });
        }
        self.state = state;
        self.execute(&actions);
    }

    /// [`Delivery::Coalesced`]: every event of the batch is observed, then one reconcile
    /// runs (run-loop contract, rule 5). Not recorded in [`Driver::calls`].
    fn step_batch(&mut self, batch: Vec<Event>) {
        self.steps += 1;
        let actions = rollouts_core::rollout::step_batch(&mut self.state, batch, self.now);
        self.execute(&actions);
    }

    fn execute(&mut self, actions: &[Action]) {
        self.wake = actions.iter().find_map(|a| match a {
            Action::WakeAt { at, .. } => Some(*at),
            _ => None,
        });
        let now = self.now;
        let rest: Vec<Action> = actions.iter().filter(|a| !self.experiments.execute(a, now)).cloned().collect();
        self.cluster.execute(&self.rollout, rest);
    }

    /// Delivers watch events in batches (each batch: the events of the previous one's
    /// actions, after the ReplicaSet controller and kubelet ran) until none is left at
    /// this instant.
    pub fn settle(&mut self) -> Result<(), DriveError> {
        let mut n = 0;
        loop {
            self.cluster.now = self.now;
            self.cluster.sync();
            let changed = self.experiments.advance(self.now);
            self.cluster.outbox.entry(self.rollout.clone()).or_default().extend(changed);
            let batch = self.cluster.take_outbox().remove(&self.rollout).unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            if self.delivery == Delivery::Coalesced {
                n += 1;
                if n > self.max_steps_per_instant {
                    return Err(DriveError::HotLoop { t: self.t() });
                }
                self.step_batch(batch);
                continue;
            }
            for ev in batch {
                n += 1;
                if n > self.max_steps_per_instant {
                    return Err(DriveError::HotLoop { t: self.t() });
                }
                self.step(ev);
            }
        }
    }

    /// Applies a user command as the kubectl plugin's change of the Rollout
    /// ([`rollouts_core::commands`], through the simulator's cluster). A command the CLI
    /// would refuse (nothing to promote) changes nothing.
    pub fn command(&mut self, cmd: &Cmd) {
        self.cluster.now = self.now;
        if let Ok(command) = cmd.event(self.t()).command() {
            let _refused_or_noted = self.cluster.command(&command);
        }
    }

    /// The next pod transition, of the rollout's pods or an Experiment's (or anything
    /// else an Experiment does by itself).
    fn next_pod_transition(&self) -> Option<Timestamp> {
        [self.cluster.next_pod_transition(), self.experiments.next_change(self.now)].into_iter().flatten().min()
    }

    /// Runs the commands at their times (seconds since [`EPOCH`]), then keeps going until
    /// nothing is left to happen or `horizon` seconds have passed. `observe` sees the
    /// cluster after every instant. Returns whether the run ended with nothing pending.
    pub fn run_observed(
        &mut self,
        events: &[Timed],
        horizon: i64,
        mut observe: impl FnMut(&Driver),
    ) -> Result<bool, DriveError> {
        let mut next = 0;
        let mut same_instant = 0;
        loop {
            let t = self.t();
            while let Some(e) = events.get(next).filter(|e| e.at <= t) {
                self.command(&e.cmd);
                next += 1;
            }
            if self.wake.is_some_and(|w| w <= self.now) {
                self.wake = None;
                self.cluster.outbox.entry(self.rollout.clone()).or_default().push(Event::Tick);
            }
            self.settle()?;
            observe(self);
            let upcoming = [events.get(next).map(|e| EPOCH.plus(Seconds(e.at))), self.wake, self.next_pod_transition()]
                .into_iter()
                .flatten()
                .min();
            match upcoming {
                None => return Ok(true),
                Some(n) if n > EPOCH.plus(Seconds(horizon)) => return Ok(false),
                // A wake-up already due: tick again at this instant, within bounds.
                Some(n) if n <= self.now => {
                    same_instant += 1;
                    if same_instant > self.max_steps_per_instant {
                        return Err(DriveError::HotLoop { t });
                    }
                }
                Some(n) => {
                    same_instant = 0;
                    self.now = n;
                }
            }
        }
    }

    /// [`Driver::run_observed`] without an observer.
    pub fn run(&mut self, events: &[Timed], horizon: i64) -> Result<bool, DriveError> {
        self.run_observed(events, horizon, |_| {})
    }

    /// Every object a controller starting now would list: Services, ReplicaSets, Pods,
    /// then the Rollout (so the first reconcile already sees everything).
    pub fn objects(&self) -> Vec<Object> {
        let mut v = self.cluster.objects_by_rollout().remove(&self.rollout).unwrap_or_default();
        v.extend(self.experiments.objects());
        // The cluster lists the Rollout first.
        if !v.is_empty() && matches!(v.first(), Some(Object::Rollout(_))) {
            let rollout = v.remove(0);
            v.push(rollout);
        }
        v
    }

    /// `(name, spec.replicas, status.availableReplicas)` of every ReplicaSet.
    pub fn replica_counts(&self) -> Vec<(String, i32, i32)> {
        self.cluster
            .replica_sets
            .iter()
            .map(|(n, rs)| {
                let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                (n.clone(), spec, rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0))
            })
            .collect()
    }
}
