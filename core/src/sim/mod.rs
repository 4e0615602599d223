//! The offline simulator: a simulated cluster, scripted user commands, and a virtual clock
//! that jumps to the next thing that can happen. The controller logic is the very
//! [`crate::step`] the real controller runs.

mod analysis;
mod changes;
mod cluster;
mod duplicate_keys;
mod executor;
mod experiments;
mod pods;
mod replica_controller;
mod routers;
mod workloads;
pub mod scenario;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use scenario::{parse_scenario, Scenario};
pub use changes::{render_changes, Change};
pub use timeline::{render_table, Entry};

use crate::state::{Action, Event, State, WakeReason};
use crate::time::{Seconds, Timestamp};
pub use cluster::{Cluster, PodModel, PodObjects, Worker};
use crate::experiment::ExperimentWake;

/// Wall-clock time of `t = 0` in every simulation (2024-01-01T00:00:00Z).
pub const SIMULATION_EPOCH: Timestamp = Timestamp::from_unix(1_704_067_200);
/// How long a scenario without `until` may run before it is declared unsettled.
pub const DEFAULT_LIMIT: Seconds = Seconds(24 * 3600);
/// Reconciles of one rollout (or Experiment, or AnalysisRun) allowed at one instant
/// before the simulation gives up (a hot loop).
const MAX_STEPS_PER_INSTANT: usize = 5_000;

/// The result of a simulation. Serialized, it is the JSON timeline of `rollouts simulate
/// --output json`: `scenario`, `timeline`, `final`, `objects` (the contract), plus
/// `outcome`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Simulation {
    /// Scenario name.
    pub scenario: String,
    /// Every change, in time order.
    pub timeline: Vec<Entry>,
    /// The last entry of every rollout (and standalone Experiment).
    #[serde(rename = "final")]
    pub final_state: BTreeMap<String, Entry>,
    /// Every object the simulated cluster holds at the end but Pods and Events, by
    /// `"Kind/namespace/name"` (cluster-scoped kinds: `"Kind//name"`), as stored; the
    /// pods of a rollout with ephemeral metadata are shown too (their labels are what it
    /// changes).
    pub objects: BTreeMap<String, serde_json::Value>,
    /// How the simulation ended.
    pub outcome: Outcome,
    /// Every rollout's objects as the cluster holds them at the end (the Rollout, its
    /// ReplicaSets and pods, all Services, the Ingresses and routes it names), as watch
    /// events a fresh controller would receive on start. Not part of the JSON output.
    #[serde(skip)]
    pub final_objects: BTreeMap<String, Vec<crate::state::Object>>,
    /// Scripted commands that changed nothing because the CLI would have refused them
    /// (nothing to promote, already at that revision), with why. Not part of the JSON
    /// output; `rollouts simulate` prints them under the table.
    #[serde(skip)]
    pub notes: Vec<Change>,
    /// What the controllers changed in the cluster, in order, when
    /// [`SimOptions::record_changes`] asked for it. Not part of the JSON output.
    #[serde(skip)]
    pub changes: Vec<Change>,
}

/// How to run a simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Keep one line per cluster change in [`Simulation::changes`] (costs time).
    pub record_changes: bool,
}

/// How a simulation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Every rollout settled (nothing more would happen without a user).
    pub settled: bool,
    /// Seconds since the start when the simulation stopped.
    pub t: i64,
    /// Same, human form.
    pub at: String,
    /// Expectations that did not hold.
    pub failed_expectations: Vec<String>,
}

/// Why a simulation could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A scripted command could not be applied (no such rollout, no such container, ...).
    #[error("events[{index}] at {at}: {message}")]
    Command {
        /// Index in `events`.
        index: usize,
        /// Its time.
        at: String,
        /// What went wrong.
        message: String,
    },
    /// An object could not be created.
    #[error("objects[{index}]: {message}")]
    Object {
        /// Index in `objects`.
        index: usize,
        /// What went wrong.
        message: String,
    },
    /// The scenario is missing something the simulation needed.
    #[error("{0}")]
    Scenario(String),
    /// The controller of one rollout kept acting at one instant without settling (a bug).
    #[error("the controller of {rollout} did not settle at {at} (more than {MAX_STEPS_PER_INSTANT} reconciles)")]
    HotLoop {
        /// Which controller: `rollout <name>`, `experiment <name>` or `analysisrun <name>`.
        rollout: String,
        /// When.
        at: String,
    },
}

struct Controller {
    state: State,
    wake: Option<(Timestamp, WakeReason)>,
}

impl Controller {
    fn new() -> Self {
        Controller { state: State::default(), wake: None }
    }
}

/// Argo's controllers in the simulation: one per Rollout, one per AnalysisRun no Rollout
/// owns (an Experiment's), and the experiment controller's wake-up per Experiment.
#[derive(Default)]
struct Controllers {
    rollouts: BTreeMap<String, Controller>,
    runs: BTreeMap<String, Controller>,
    experiments: BTreeMap<String, ExperimentWake>,
}

impl Controllers {
    /// The earliest wake-up asked for.
    fn next_wake(&self) -> Option<Timestamp> {
        let controllers = self.rollouts.values().chain(self.runs.values()).filter_map(|c| c.wake.map(|(at, _)| at));
        controllers.chain(self.experiments.values().map(|w| w.at)).min()
    }

    /// Turns the wake-ups due at `now` into a `Tick` for their controller (an Experiment
    /// is made due).
    fn fire(&mut self, cluster: &mut Cluster, now: Timestamp) {
        for (name, c) in self.rollouts.iter_mut() {
            if c.wake.is_some_and(|(at, _)| at <= now) {
                c.wake = None;
                cluster.outbox.entry(name.clone()).or_default().push(Event::Tick);
            }
        }
        for (name, c) in self.runs.iter_mut() {
            if c.wake.is_some_and(|(at, _)| at <= now) {
                c.wake = None;
                cluster.run_outbox.entry(name.clone()).or_default().push(Event::Tick);
            }
        }
        let due: Vec<String> = self.experiments.iter().filter(|(_, w)| w.at <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            self.experiments.remove(&name);
            cluster.experiments_due.insert(name);
        }
    }

    /// The controller whose wake-up is due at `now` (a hot loop's culprit).
    fn due_at(&self, now: Timestamp) -> Option<Worker> {
        let due = |c: &Controller| c.wake.is_some_and(|(at, _)| at <= now);
        self.rollouts
            .iter()
            .find(|(_, c)| due(c))
            .map(|(n, _)| Worker::Rollout(n.clone()))
            .or_else(|| self.runs.iter().find(|(_, c)| due(c)).map(|(n, _)| Worker::AnalysisRun(n.clone())))
            .or_else(|| self.experiments.iter().find(|(_, w)| w.at <= now).map(|(n, _)| Worker::Experiment(n.clone())))
    }
}

/// Runs a scenario to the end.
pub fn simulate(scenario: &Scenario) -> Result<Simulation, SimError> {
    simulate_with(scenario, SimOptions::default())
}

/// Runs a scenario to the end, with options.
pub fn simulate_with(scenario: &Scenario, options: SimOptions) -> Result<Simulation, SimError> {
    let t0 = SIMULATION_EPOCH;
    let mut cluster = Cluster::new(t0, scenario.cluster.clone(), scenario.metrics.clone());
    cluster.record_changes = options.record_changes;
    for (index, obj) in scenario.objects.iter().enumerate() {
        cluster.apply_manifest(obj.clone()).map_err(|message| SimError::Object { index, message })?;
    }
    let mut events: Vec<(usize, &scenario::ScenarioEvent)> = scenario.events.iter().enumerate().collect();
    events.sort_by_key(|(i, e)| (e.at, *i));
    let mut next_event = 0;
    let limit = scenario.until.unwrap_or(DEFAULT_LIMIT);
    let mut controllers = Controllers::default();
    let mut timeline: Vec<Entry> = Vec::new();
    let mut last: BTreeMap<String, Entry> = BTreeMap::new();
    let mut decoded = timeline::Decoded::default();
    let mut now = t0;
    let mut same_instant = 0usize;
    // Expectations on objects are checked against the cluster as it is at their time.
    let mut object_checks: Vec<(usize, &scenario::Expectation)> =
        scenario.expect.iter().enumerate().filter(|(_, e)| !e.objects.is_empty()).collect();
    object_checks.sort_by_key(|(i, e)| (e.at, *i));
    let mut object_failures: Vec<(usize, String)> = Vec::new();
    let mut next_check = 0;
    let settled;
    loop {
        let t = now.since(t0);
        while let Some((index, ev)) = events.get(next_event) {
            if ev.at > t {
                break;
            }
            let cmd = ev.command().map_err(|message| SimError::Command { index: *index, at: ev.at.human(), message })?;
            let note = cluster
                .command(&cmd)
                .map_err(|message| SimError::Command { index: *index, at: ev.at.human(), message })?;
            if let Some(note) = note {
                cluster.note(cmd.subject().unwrap_or_default(), format!("events[{index}]: {note}"));
            }
            next_event += 1;
        }
        controllers.fire(&mut cluster, now);
        // Only a rollout (or Experiment) whose controller was told about a change can have
        // a new entry; an Experiment's step shows in its Rollout's.
        let touched = settle(&mut cluster, &mut controllers, now)?;
        let mut rows: BTreeSet<String> = BTreeSet::new();
        let mut standalone: BTreeSet<String> = BTreeSet::new();
        for worker in &touched {
            match worker {
                Worker::Rollout(name) => {
                    rows.insert(name.clone());
                }
                Worker::Experiment(name) => match cluster.experiments.get(name).map(experiments::rollout_of) {
                    Some(Some(owner)) => {
                        rows.insert(owner.to_string());
                    }
                    Some(None) => {
                        standalone.insert(name.clone());
                    }
                    None => {}
                },
                Worker::AnalysisRun(_) => {}
            }
        }
        let entries = rows
            .iter()
            .filter(|n| cluster.rollouts.contains_key(*n))
            .filter_map(|name| timeline::entry(&cluster, &mut decoded, name, t))
            .chain(standalone.iter().filter_map(|name| timeline::experiment_entry(&cluster, name, t)));
        for e in entries.collect::<Vec<_>>() {
            if last.get(&e.rollout).is_none_or(|l| !l.same_state(&e)) {
                last.insert(e.rollout.clone(), e.clone());
                timeline.push(e);
            }
        }
        let next = [
            events.get(next_event).map(|(_, e)| t0.plus(e.at)),
            controllers.next_wake(),
            cluster.next_pod_transition(),
            cluster.next_pending(),
        ]
        .into_iter()
        .flatten()
        .min();
        // The cluster stays as it is now until `next`: check what falls in between.
        while let Some((i, exp)) = object_checks.get(next_check) {
            if next.is_some_and(|n| t0.plus(exp.at) >= n) {
                break;
            }
            if let Err(e) = timeline::check_objects(exp, &cluster) {
                object_failures.push((*i, e));
            }
            next_check += 1;
        }
        match next {
            None => {
                settled = true;
                break;
            }
            Some(n) if n > t0.plus(limit) => {
                settled = scenario.until.is_some() && all_quiet(&controllers, &cluster, next_event, &events, t0);
                break;
            }
            // Something due at this very instant again (a wake-up for now): bounded, so
            // that a controller asking for it forever is reported instead of spinning.
            Some(n) if n <= now => {
                same_instant += 1;
                if same_instant > MAX_STEPS_PER_INSTANT {
                    let rollout = controllers.due_at(now).map(|w| w.to_string()).unwrap_or_default();
                    return Err(SimError::HotLoop { rollout, at: now.since(t0).human() });
                }
            }
            Some(n) => {
                same_instant = 0;
                now = n;
            }
        }
    }
    let end = if scenario.until.is_some() || !settled { limit } else { now.since(t0) };
    for (i, exp) in &object_checks[next_check..] {
        if let Err(e) = timeline::check_objects(exp, &cluster) {
            object_failures.push((*i, e));
        }
    }
    let failed_expectations = scenario
        .expect
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            let timeline_failure = timeline::check_expectation(e, &timeline).err();
            let object_failure = object_failures.iter().filter(move |(j, _)| *j == i).map(|(_, f)| f.clone());
            timeline_failure.into_iter().chain(object_failure)
        })
        .collect();
    Ok(Simulation {
        scenario: scenario.name.clone().unwrap_or_default(),
        timeline,
        final_state: last,
        objects: cluster.object_map(),
        outcome: Outcome { settled, t: end.0, at: end.human(), failed_expectations },
        final_objects: cluster.objects_by_rollout(),
        changes: std::mem::take(&mut cluster.changes),
        notes: std::mem::take(&mut cluster.notes),
    })
}

/// Nothing is left to happen by itself (used when `until` cuts the run short).
fn all_quiet(
    controllers: &Controllers,
    cluster: &Cluster,
    next_event: usize,
    events: &[(usize, &scenario::ScenarioEvent)],
    _t0: Timestamp,
) -> bool {
    controllers.next_wake().is_none()
        && cluster.next_pod_transition().is_none()
        && cluster.next_pending().is_none()
        && next_event >= events.len()
}

/// Delivers watch events and executes actions until nothing changes at `now`. Returns
/// the rollouts and Experiments whose controllers were told about a change.
fn settle(cluster: &mut Cluster, controllers: &mut Controllers, now: Timestamp) -> Result<BTreeSet<Worker>, SimError> {
    cluster.now = now;
    let mut steps: BTreeMap<Worker, usize> = BTreeMap::new();
    let mut count = |worker: Worker| -> Result<(), SimError> {
        let n = steps.entry(worker.clone()).or_insert(0);
        *n += 1;
        if *n > MAX_STEPS_PER_INSTANT {
            return Err(SimError::HotLoop { rollout: worker.to_string(), at: now.since(SIMULATION_EPOCH).human() });
        }
        Ok(())
    };
    let mut touched = BTreeSet::new();
    loop {
        // Answers due now include those to measurements started at this very instant.
        cluster.deliver_pending();
        cluster.sync();
        if let Some(e) = cluster.errors.first() {
            return Err(SimError::Scenario(e.clone()));
        }
        let outbox = cluster.take_outbox();
        let run_outbox = std::mem::take(&mut cluster.run_outbox);
        let experiments_due = std::mem::take(&mut cluster.experiments_due);
        if outbox.values().all(Vec::is_empty) && run_outbox.values().all(Vec::is_empty) && experiments_due.is_empty() {
            return Ok(touched);
        }
        for (name, events) in outbox {
            if events.is_empty() {
                continue;
            }
            count(Worker::Rollout(name.clone()))?;
            touched.insert(Worker::Rollout(name.clone()));
            let c = controllers.rollouts.entry(name.clone()).or_insert_with(Controller::new);
            // Like a controller's work queue: every watch event that arrived is applied,
            // then one reconcile sees the newest version of everything.
            let actions = crate::rollout::step_batch(&mut c.state, events, now);
            c.wake = wake_of(&actions);
            cluster.execute(&name, actions);
        }
        // An Experiment's AnalysisRuns: a worker per run, a core `State` holding only it,
        // as the controller's standalone AnalysisRun worker.
        for (name, events) in run_outbox {
            if events.is_empty() {
                continue;
            }
            let worker = Worker::AnalysisRun(name.clone());
            count(worker.clone())?;
            let c = controllers.runs.entry(name.clone()).or_insert_with(Controller::new);
            let actions = crate::rollout::step_batch(&mut c.state, events, now);
            c.wake = wake_of(&actions);
            if c.state.analysis_runs.is_empty() {
                controllers.runs.remove(&name);
            }
            cluster.execute_as(&worker, actions);
        }
        for name in experiments_due {
            let worker = Worker::Experiment(name.clone());
            count(worker.clone())?;
            match cluster.reconcile_experiment(&name) {
                Some(wake) => controllers.experiments.insert(name, wake),
                None => controllers.experiments.remove(&name),
            };
            touched.insert(worker);
        }
    }
}

/// The wake-up among a reconcile's actions.
fn wake_of(actions: &[Action]) -> Option<(Timestamp, WakeReason)> {
    actions.iter().find_map(|a| if let Action::WakeAt { at, reason } = a { Some((*at, *reason)) } else { None })
}
