//! The Experiments a driven rollout creates, run by the core's Experiment machine
//! ([`rollouts_core::experiment::reconcile`], through its [`ExperimentWorld`]) beside the
//! [`crate::driver::Driver`]'s cluster: the rollout's `CreateExperiment`,
//! `PatchExperiment` and `DeleteExperiment` actions are carried out here, every
//! Experiment is reconciled until it rests at each instant, and each change reaches the
//! rollout as a watch event.
//!
//! Template pods start after the driver's pod startup (at once with instant pods) and
//! never become available for an image the scenario declares unready. The outcome of an
//! analysis is scripted by its template's name, [`outcome_template`]: the run is
//! `Running` when first seen and takes the named phase the given seconds later.

use std::collections::{BTreeMap, BTreeSet};

use rollouts_core::api::{AnalysisPhase, AnalysisTemplate, Experiment};
use rollouts_core::experiment::world::ExperimentWorld;
use rollouts_core::state::{Action, Event, Object, ObjectKind};
use rollouts_core::time::{Seconds, Timestamp};
use serde_json::{json, Value};

/// Reconciles of one Experiment allowed at one instant before it is left for the next.
const MAX_RECONCILES_PER_INSTANT: usize = 50;

/// The name of an analysis template whose run ends `phase` (`Successful`, `Failed`,
/// `Error` or `Inconclusive`) `after` seconds after it starts.
pub fn outcome_template(phase: AnalysisPhase, after: i64) -> String {
    format!("outcome-{}-{after}", phase.as_str().to_lowercase())
}

/// The phase and delay an [`outcome_template`] name scripts.
fn scripted_outcome(template: &str) -> Option<(AnalysisPhase, i64)> {
    let rest = template.strip_prefix("outcome-")?;
    let (phase, after) = rest.split_once('-')?;
    let phase = match phase {
        "successful" => AnalysisPhase::Successful,
        "failed" => AnalysisPhase::Failed,
        "error" => AnalysisPhase::Error,
        "inconclusive" => AnalysisPhase::Inconclusive,
        _ => return None,
    };
    Some((phase, after.parse().ok()?))
}

/// The AnalysisTemplate `name`: one web metric of the same name, measured once (the
/// driver decides the run's phase; a scenario scripts the metric's answer).
pub fn outcome_template_manifest(name: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [{"name": name, "provider": {"web": {"url": "http://check.example/"}}}]}
    })
}

fn template(name: &str) -> Option<AnalysisTemplate> {
    serde_json::from_value(outcome_template_manifest(name)).ok()
}

/// Every Experiment of one driven rollout.
#[derive(Clone, Debug, Default)]
pub struct Experiments {
    /// Each Experiment and its objects, by name.
    pub worlds: BTreeMap<String, ExperimentWorld>,
    /// The Experiment as the rollout last saw it, by name.
    delivered: BTreeMap<String, Experiment>,
    /// Deletions the rollout has not been told of yet.
    deleted: BTreeSet<String>,
    /// When each run was first seen, by (experiment, run).
    run_started: BTreeMap<(String, String), Timestamp>,
    /// The Experiment machine's own next wake-up, by Experiment.
    wakes: BTreeMap<String, Timestamp>,
    /// Images whose pods never become available.
    unready: BTreeSet<String>,
    /// Time from a template's scale-up to its pods being available.
    pod_startup: Seconds,
}

impl Experiments {
    /// No Experiment yet; pods of `unready` images never become available, the others
    /// `pod_startup` after a scale-up.
    pub fn new(unready: BTreeSet<String>, pod_startup: Seconds) -> Self {
        Experiments { unready, pod_startup, ..Self::default() }
    }

    /// Carries out `action` if it is an Experiment's; whether it was.
    pub fn execute(&mut self, action: &Action, now: Timestamp) -> bool {
        match action {
            Action::CreateExperiment { experiment } => {
                let name = experiment.metadata.name.clone().unwrap_or_default();
                if !self.worlds.contains_key(&name) {
                    let mut ex = (**experiment).clone();
                    ex.metadata.uid = Some(format!("uid-ex-{name}"));
                    ex.metadata.creation_timestamp = Some(rollouts_core::objects::to_kube_time(now));
                    ex.metadata.generation = Some(1);
                    let mut world = ExperimentWorld::new(ex);
                    world.pod_startup = self.pod_startup;
                    for a in &experiment.spec.analyses {
                        if let Some(t) = template(&a.template_name) {
                            world.analysis_templates.insert(a.template_name.clone(), Ok(t));
                        }
                    }
                    self.deleted.remove(&name);
                    self.worlds.insert(name, world);
                }
                true
            }
            Action::PatchExperiment { name, patch } => {
                if let Some(world) = self.worlds.get_mut(name) {
                    let mut value = serde_json::to_value(&world.experiment).unwrap_or(Value::Null);
                    rollouts_core::api::merge::merge_patch(&mut value, patch);
                    if let Ok(ex) = serde_json::from_value::<Experiment>(value) {
                        world.experiment = ex;
                    }
                }
                true
            }
            Action::DeleteExperiment { name } => {
                if self.worlds.remove(name).is_some() {
                    self.delivered.remove(name);
                    self.wakes.remove(name);
                    self.deleted.insert(name.clone());
                }
                true
            }
            Action::CreateReplicaSet { .. }
            | Action::PatchReplicaSet { .. }
            | Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::CreateService { .. }
            | Action::DeleteService { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
            | Action::CreateAnalysisRun { .. }
            | Action::PatchAnalysisRun { .. }
            | Action::DeleteAnalysisRun { .. }
            | Action::Measure { .. }
            | Action::CreateJob { .. }
            | Action::DeleteJob { .. }
            | Action::CreateIngress { .. }
            | Action::PatchIngress { .. }
            | Action::CreateRoute { .. }
            | Action::PatchRoute { .. }
            | Action::DeleteRoute { .. }
            | Action::RecordEvent { .. }
            | Action::ScaleDeployment { .. }
            | Action::WakeAt { .. } => false,
        }
    }

    /// Reconciles every Experiment at `now` until it rests (scripted run phases applied
    /// first), and returns the watch events the rollout gets for what changed.
    pub fn advance(&mut self, now: Timestamp) -> Vec<Event> {
        let mut events: Vec<Event> =
            std::mem::take(&mut self.deleted).into_iter().map(|name| Event::Deleted { kind: ObjectKind::Experiment, name }).collect();
        let names: Vec<String> = self.worlds.keys().cloned().collect();
        for name in names {
            let Some(world) = self.worlds.get_mut(&name) else { continue };
            let mut wake = None;
            for _ in 0..MAX_RECONCILES_PER_INSTANT {
                script_runs(world, &name, &mut self.run_started, now);
                let before = (world.experiment.clone(), world.replica_sets.clone(), world.services.clone(), world.analysis_runs.clone());
                let r = world.reconcile(now);
                wake = r.wake.map(|w| w.at);
                mark_unready(world, &self.unready);
                let after = (&world.experiment, &world.replica_sets, &world.services, &world.analysis_runs);
                if (&before.0, &before.1, &before.2, &before.3) == after {
                    break;
                }
            }
            match wake {
                Some(at) => self.wakes.insert(name.clone(), at),
                None => self.wakes.remove(&name),
            };
            if self.delivered.get(&name) != Some(&world.experiment) {
                self.delivered.insert(name.clone(), world.experiment.clone());
                events.push(Event::Applied(Object::Experiment(serde_json::to_value(&world.experiment).unwrap_or(Value::Null))));
            }
        }
        events
    }

    /// The earliest time after `now` at which an Experiment changes by itself (its own
    /// wake-up, pods becoming available, a scripted run ending).
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        let runs = self.run_started.iter().filter_map(|((ex, run), started)| {
            let world = self.worlds.get(ex)?;
            let r = world.analysis_runs.get(run)?;
            if r.status.phase.is_some_and(AnalysisPhase::completed) {
                return None;
            }
            let (_, after) = run_template(world, run).and_then(|t| scripted_outcome(&t))?;
            Some(started.plus(Seconds(after)))
        });
        self.wakes
            .values()
            .copied()
            .chain(self.worlds.values().filter_map(|w| w.next_pod_change(now)))
            .chain(runs)
            .filter(|t| *t > now)
            .min()
    }

    /// Every Experiment as a watch event (for a controller starting now).
    pub fn objects(&self) -> Vec<Object> {
        self.worlds
            .values()
            .map(|w| Object::Experiment(serde_json::to_value(&w.experiment).unwrap_or(Value::Null)))
            .collect()
    }

    /// The Experiment an event is about, as it is now (`None` once it is gone).
    pub fn latest(&self, name: &str) -> Option<Event> {
        let w = self.worlds.get(name)?;
        Some(Event::Applied(Object::Experiment(serde_json::to_value(&w.experiment).ok()?)))
    }
}

/// The template name of the analysis whose run is `run`.
fn run_template(world: &ExperimentWorld, run: &str) -> Option<String> {
    let analysis = world.experiment.status.analysis_runs.iter().find(|r| r.analysis_run == run)?;
    world.experiment.spec.analyses.iter().find(|a| a.name == analysis.name).map(|a| a.template_name.clone())
}

/// Runs are `Running` when first seen, and take their scripted phase when it is due.
fn script_runs(world: &mut ExperimentWorld, ex: &str, started: &mut BTreeMap<(String, String), Timestamp>, now: Timestamp) {
    let runs: Vec<String> = world.analysis_runs.keys().cloned().collect();
    for run in runs {
        let Some(current) = world.analysis_runs.get(&run).map(|r| r.status.phase) else { continue };
        if current.is_some_and(AnalysisPhase::completed) {
            continue;
        }
        let Some((phase, after)) = run_template(world, &run).and_then(|t| scripted_outcome(&t)) else { continue };
        let since = *started.entry((ex.to_string(), run.clone())).or_insert(now);
        if now >= since.plus(Seconds(after)) {
            world.set_run_phase(&run, phase, "");
        } else if current.is_none() {
            world.set_run_phase(&run, AnalysisPhase::Running, "");
        }
    }
}

/// Template ReplicaSets running an unready image never become available.
fn mark_unready(world: &mut ExperimentWorld, unready: &BTreeSet<String>) {
    for (name, rs) in &world.replica_sets {
        let images = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.spec.as_ref());
        if images.is_some_and(|s| s.containers.iter().any(|c| c.image.as_ref().is_some_and(|i| unready.contains(i)))) {
            world.never_ready.insert(name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip() {
        for phase in [AnalysisPhase::Successful, AnalysisPhase::Failed, AnalysisPhase::Error, AnalysisPhase::Inconclusive] {
            assert_eq!(scripted_outcome(&outcome_template(phase, 42)), Some((phase, 42)));
        }
        assert_eq!(scripted_outcome("bar"), None);
    }
}
