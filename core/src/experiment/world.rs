//! A minimal simulated cluster for one Experiment, for tests and property tests: it
//! carries out the Experiment's actions, brings pods up after a delay, and lets the caller
//! decide the phases of AnalysisRuns. Deterministic; time is a parameter.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Service;

use super::{reconcile, ExperimentReconcile, Observed};
use crate::api::{AnalysisPhase, AnalysisRun, AnalysisTemplate, Experiment, SpecError};
use crate::objects::ReplicaSetExt;
use crate::state::Action;
use crate::time::{Seconds, Timestamp};

/// One Experiment and the objects it works on.
#[derive(Clone, Debug, Default)]
pub struct ExperimentWorld {
    /// The Experiment, its status as last written.
    pub experiment: Experiment,
    /// ReplicaSets by name.
    pub replica_sets: BTreeMap<String, ReplicaSet>,
    /// Services by name.
    pub services: BTreeMap<String, Service>,
    /// AnalysisRuns by name.
    pub analysis_runs: BTreeMap<String, AnalysisRun>,
    /// AnalysisTemplates by name.
    pub analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    /// ClusterAnalysisTemplates by name.
    pub cluster_analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    /// Time from scaling up to the new pods being available.
    pub pod_startup: Seconds,
    /// ReplicaSets whose pods never become available.
    pub never_ready: BTreeSet<String>,
    /// Every action executed, with its time.
    pub log: Vec<(Timestamp, Action)>,
    ready_at: BTreeMap<String, Timestamp>,
}

impl ExperimentWorld {
    /// A world holding `experiment` and nothing else; pods start in 1 s.
    pub fn new(experiment: Experiment) -> Self {
        ExperimentWorld { experiment, pod_startup: Seconds(1), ..Self::default() }
    }

    /// What the Experiment may look at.
    pub fn observed(&self) -> Observed<'_> {
        Observed {
            replica_sets: &self.replica_sets,
            services: &self.services,
            analysis_runs: &self.analysis_runs,
            analysis_templates: &self.analysis_templates,
            cluster_analysis_templates: &self.cluster_analysis_templates,
        }
    }

    /// Brings pods up to `now`, reconciles, executes the actions and writes the status.
    pub fn reconcile(&mut self, now: Timestamp) -> ExperimentReconcile {
        self.settle_pods(now);
        let r = reconcile(&self.experiment, &self.observed(), now);
        for a in &r.actions {
            self.execute(a, now);
        }
        self.experiment.status = r.status.clone();
        self.settle_pods(now);
        r
    }

    /// Sets an AnalysisRun's phase (and message), as its own controller would.
    pub fn set_run_phase(&mut self, name: &str, phase: AnalysisPhase, message: &str) {
        if let Some(run) = self.analysis_runs.get_mut(name) {
            run.status.phase = Some(phase);
            run.status.message = message.to_string();
        }
    }

    /// The next time pods become available, after `now`.
    pub fn next_pod_change(&self, now: Timestamp) -> Option<Timestamp> {
        self.ready_at.values().copied().filter(|t| *t > now).min()
    }

    fn execute(&mut self, action: &Action, now: Timestamp) {
        self.log.push((now, action.clone()));
        match action {
            Action::CreateReplicaSet { replica_set } => {
                self.replica_sets.entry(replica_set.name().to_string()).or_insert_with(|| {
                    let mut rs = (**replica_set).clone();
                    rs.status = Some(ReplicaSetStatus::default());
                    rs
                });
            }
            Action::PatchReplicaSet { name, patch } => {
                let Some(rs) = self.replica_sets.get_mut(name) else { return };
                let before = rs.spec_replicas();
                for (k, v) in &patch.annotations {
                    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                    match v {
                        Some(v) => annotations.insert(k.clone(), v.clone()),
                        None => annotations.remove(k),
                    };
                }
                if let Some(r) = patch.replicas {
                    rs.spec.get_or_insert_with(Default::default).replicas = Some(r);
                    if r > before {
                        self.ready_at.insert(name.clone(), now.plus(self.pod_startup));
                    }
                }
            }
            Action::DeleteReplicaSet { name } => {
                self.replica_sets.remove(name);
            }
            Action::CreateService { service } => {
                let name = service.metadata.name.clone().unwrap_or_default();
                self.services.entry(name).or_insert_with(|| (**service).clone());
            }
            Action::DeleteService { name } => {
                self.services.remove(name);
            }
            Action::CreateAnalysisRun { run } => {
                let name = run.metadata.name.clone().unwrap_or_default();
                self.analysis_runs.entry(name).or_insert_with(|| (**run).clone());
            }
            Action::PatchAnalysisRun { name, patch } => {
                let Some(run) = self.analysis_runs.get_mut(name) else { return };
                if patch.pointer("/spec/terminate") == Some(&serde_json::Value::Bool(true)) {
                    run.spec.terminate = true;
                    // A terminated run ends at once (its measurements so far passed).
                    if !run.status.phase.is_some_and(AnalysisPhase::completed) {
                        run.status.phase = Some(AnalysisPhase::Successful);
                        run.status.message = "Run Terminated".to_string();
                    }
                }
            }
            Action::DeleteAnalysisRun { name } => {
                self.analysis_runs.remove(name);
            }
            Action::SetServiceSelector { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
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
            | Action::CreateExperiment { .. }
            | Action::PatchExperiment { .. }
            | Action::DeleteExperiment { .. }
            | Action::WakeAt { .. } => {}
        }
    }

    /// Pods follow `spec.replicas`: a scale-down at once, a scale-up available after
    /// `pod_startup` (never, for a ReplicaSet in `never_ready`).
    fn settle_pods(&mut self, now: Timestamp) {
        for (name, rs) in &mut self.replica_sets {
            let spec = rs.spec_replicas();
            let status = rs.status.get_or_insert_with(Default::default);
            status.replicas = spec;
            let available = if self.never_ready.contains(name) {
                0
            } else if self.ready_at.get(name).is_none_or(|t| now >= *t) {
                spec
            } else {
                status.available_replicas.unwrap_or(0).min(spec)
            };
            status.ready_replicas = Some(available);
            status.available_replicas = Some(available);
        }
    }
}
