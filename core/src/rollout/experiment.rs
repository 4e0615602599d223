//! The canary `experiment` step (Argo's `rollout/experiment.go`): the step's Experiment is
//! created from the stable and canary ReplicaSets, its phase drives the step (Inconclusive
//! pauses, Failed or Error aborts, Successful completes it), Experiments of other steps are
//! terminated, finished ones are pruned with the AnalysisRun history limits, and all of
//! them are terminated on abort and full promotion.
//!
//! The Experiment the rollout follows is the one `status.canary.currentExperiment` names
//! ([`Ctx::current_experiment`]); every other Experiment the rollout owns is "other".

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::context::Ctx;
use crate::api::{
    keys, AnalysisPhase, Experiment, ExperimentAnalysisTemplateRef, ExperimentSpec, PauseReason, Rollout,
    RolloutExperimentStep, RolloutExperimentTemplate, StepKind, TemplateService, TemplateSpec, WeightDestination,
};
use crate::experiment::has_finished;
use crate::objects::ReplicaSetExt;
use crate::state::Action;

/// `specRef` of a template copied from the canary (new) ReplicaSet.
pub const SPEC_REF_CANARY: &str = "canary";
/// `specRef` of a template copied from the stable ReplicaSet.
pub const SPEC_REF_STABLE: &str = "stable";

/// The start of the abort message when the step's Experiment fails (Argo's wording).
const ABORT_MESSAGE: &str = "Experiment analysis phase is error/failed";

/// Why the step's Experiment cannot be built in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExperimentStepError {
    /// `specRef` is neither `canary` nor `stable` (validation refuses it first).
    #[error("Invalid template step SpecRef: must be canary or stable")]
    InvalidSpecRef,
    /// The ReplicaSet a template is copied from does not exist (yet).
    #[error("the {spec_ref} ReplicaSet of template {template:?} does not exist")]
    MissingReplicaSet {
        /// The template.
        template: String,
        /// `canary` or `stable`.
        spec_ref: String,
    },
    /// An analysis argument cannot be resolved.
    #[error("analyses[{analysis:?}]: {source}")]
    Argument {
        /// The analysis.
        analysis: String,
        /// Why.
        #[source]
        source: Box<super::analysis::RunError>,
    },
}

/// Whether the rollout is the Experiment's controller (by UID when both have one, else by
/// kind and name: optimistic copies and hand-made states carry no UID).
pub(super) fn owned_by(ro: &Rollout, ex: &Experiment) -> bool {
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let uid = ro.metadata.uid.as_deref().unwrap_or_default();
    ex.metadata.owner_references.iter().flatten().filter(|o| o.controller == Some(true)).any(|o| {
        if !uid.is_empty() && !o.uid.is_empty() {
            o.uid == uid
        } else {
            o.kind == "Rollout" && o.name == name
        }
    })
}

/// The name of the Experiment the status names, when the rollout owns it.
pub(super) fn current_experiment_of(ro: &Rollout, experiments: &BTreeMap<String, Experiment>) -> Option<String> {
    let name = &ro.status.canary.current_experiment;
    experiments.get(name).filter(|ex| !name.is_empty() && owned_by(ro, ex)).map(|_| name.clone())
}

fn phase(ex: &Experiment) -> Option<AnalysisPhase> {
    ex.status.phase
}

impl Ctx<'_> {
    /// The Experiment this reconcile follows (Argo's `c.currentEx`).
    pub(super) fn current_experiment(&self) -> Option<&Experiment> {
        self.current_experiment.as_deref().and_then(|n| self.state.experiments.get(n))
    }

    /// Names of the Experiments the rollout owns, but the current one.
    fn other_experiments(&self) -> Vec<String> {
        self.state
            .experiments
            .iter()
            .filter(|(name, ex)| Some(name.as_str()) != self.current_experiment.as_deref() && owned_by(&self.ro, ex))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether an inconclusive analysis or experiment holds the rollout.
    fn inconclusive_pause(&self) -> bool {
        self.ro.status.pause_conditions.iter().any(|c| {
            matches!(c.reason, PauseReason::InconclusiveAnalysisRun | PauseReason::InconclusiveExperiment)
        })
    }

    /// Argo's `reconcileExperiments`.
    pub(super) fn reconcile_experiments(&mut self) {
        let has_step = self.ro.spec.steps().iter().any(|s| s.experiment.is_some());
        if self.state.experiments.is_empty() && !has_step {
            return;
        }
        if self.pause.is_aborted(&self.ro.status) || self.ro.status.promote_full {
            let mut all = self.other_experiments();
            all.extend(self.current_experiment.clone());
            self.cancel_experiments(&all);
            return;
        }
        // Divergence from Argo, which only stops here for an inconclusive AnalysisRun:
        // after an inconclusive Experiment its status no longer names it, so Argo creates
        // a new one (`-1`, `-2`, ...) on every reconcile of the paused rollout. Here the
        // pause holds everything until a person promotes (which then runs the step again).
        if self.inconclusive_pause() {
            return;
        }
        let index = self.ro.status.current_step_index.unwrap_or(0);
        let step = match self.current_step().map(|s| s.kind()) {
            Some(StepKind::Experiment(step)) => Some(step.clone()),
            Some(
                StepKind::SetWeight(_)
                | StepKind::Pause(_)
                | StepKind::Analysis(_)
                | StepKind::SetCanaryScale(_)
                | StepKind::SetHeaderRoute(_)
                | StepKind::SetMirrorRoute(_)
                | StepKind::Plugin(_)
                | StepKind::Empty,
            )
            | None => None,
        };
        let mut current = self.current_experiment.clone();
        if let Some(step) = &step {
            if current.is_none() {
                // An Experiment copies the stable ReplicaSet: none before the first one.
                if self.stable_rs.is_none() {
                    return;
                }
                match self.build_experiment(step, index) {
                    Ok(ex) => {
                        let name = self.create_experiment(ex);
                        self.event("ExperimentCreated", format!("Created Experiment '{name}'"));
                        current = Some(name);
                    }
                    Err(e) => {
                        self.warning("ExperimentError", format!("cannot create the Experiment of step {index}: {e}"));
                        return;
                    }
                }
            }
            if let Some(name) = current.clone() {
                self.follow_experiment(&name);
            }
        }
        let mut others = self.other_experiments();
        if step.is_none() {
            others.extend(current);
        }
        self.cancel_experiments(&others);
        self.delete_old_experiments(&others);
    }

    /// Reads the step's Experiment: Inconclusive pauses, Failed or Error aborts,
    /// Successful completes the step (see `completed_current_step`), anything else keeps
    /// it current.
    fn follow_experiment(&mut self, name: &str) {
        let Some(ex) = self.state.experiments.get(name) else { return };
        match phase(ex) {
            Some(AnalysisPhase::Inconclusive) => self.pause.add_pause(PauseReason::InconclusiveExperiment),
            Some(AnalysisPhase::Error | AnalysisPhase::Failed) => {
                let message = if ex.status.message.is_empty() {
                    ABORT_MESSAGE.to_string()
                } else {
                    format!("{ABORT_MESSAGE}: {}", ex.status.message)
                };
                self.pause.add_abort(message);
            }
            // Divergence: a rollout paused by its user (`spec.paused`) cannot complete the
            // step, so its successful Experiment stays current until the rollout is resumed.
            // Argo stops naming it and, on the next reconcile, creates the step's Experiment
            // again (`-1`, `-2`, ...), runs it, prunes the old ones, and so on for as long as
            // the rollout stays paused (found by the property tests).
            Some(AnalysisPhase::Successful) if self.ro.spec.paused => {
                self.current_experiment = Some(name.to_string());
                self.new_status.canary.current_experiment = name.to_string();
            }
            // The status no longer names a successful Experiment.
            Some(AnalysisPhase::Successful) => {}
            Some(AnalysisPhase::Pending | AnalysisPhase::Running) | None => {
                self.current_experiment = Some(name.to_string());
                self.new_status.canary.current_experiment = name.to_string();
            }
        }
    }

    /// Whether the current step's Experiment succeeded (the step is complete).
    pub(super) fn step_experiment_succeeded(&self) -> bool {
        self.current_experiment().is_some_and(|ex| phase(ex) == Some(AnalysisPhase::Successful))
    }

    /// Argo's `GetExperimentFromTemplate`: the Experiment of experiment step `index`.
    fn build_experiment(&self, step: &RolloutExperimentStep, index: i32) -> Result<Experiment, ExperimentStepError> {
        let ro = &self.ro;
        let hash = self.new_hash();
        let revision = ro.metadata.annotations.as_ref().and_then(|a| a.get(keys::REVISION)).cloned().unwrap_or_default();
        let rollout_name = self.name().to_string();
        // The rollout's labels carry its controller instance id, if any.
        let mut labels = ro.metadata.labels.clone().unwrap_or_default();
        labels.insert(keys::POD_TEMPLATE_HASH.to_string(), hash.clone());
        let templates = step
            .templates
            .iter()
            .map(|t| self.experiment_template(t))
            .collect::<Result<Vec<_>, _>>()?;
        let stable_hash = self.stable_rs().map(|r| r.pod_hash().to_string());
        let analyses = step
            .analyses
            .iter()
            .map(|a| {
                let args = super::analysis::rollout_args(&a.args, ro, &hash, stable_hash.as_deref())
                    .map_err(|e| ExperimentStepError::Argument { analysis: a.name.clone(), source: Box::new(e) })?;
                Ok(ExperimentAnalysisTemplateRef {
                    name: a.name.clone(),
                    template_name: a.template_name.clone(),
                    cluster_scope: a.cluster_scope,
                    args,
                    required_for_completion: a.required_for_completion,
                })
            })
            .collect::<Result<Vec<_>, ExperimentStepError>>()?;
        Ok(Experiment {
            api_version: crate::api::API_VERSION.to_string(),
            kind: "Experiment".to_string(),
            metadata: ObjectMeta {
                name: Some(format!("{rollout_name}-{hash}-{revision}-{index}")),
                namespace: ro.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(keys::REVISION.to_string(), revision)])),
                owner_references: Some(vec![OwnerReference {
                    api_version: crate::api::API_VERSION.to_string(),
                    kind: "Rollout".to_string(),
                    name: rollout_name,
                    uid: ro.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: ExperimentSpec {
                templates,
                duration: step.duration.clone().filter(|d| !d.is_empty()),
                progress_deadline_seconds: ro.spec.progress_deadline_seconds,
                terminate: false,
                analyses,
                scale_down_delay_seconds: step.scale_down_delay_seconds,
                dry_run: step.dry_run.clone(),
                measurement_retention: Vec::new(),
                analysis_run_metadata: step.analysis_run_metadata.clone(),
            },
            status: Default::default(),
        })
    }

    /// One template: the pod template, `minReadySeconds` and selector of the canary or
    /// stable ReplicaSet, the step's labels added to the template and the selector, its
    /// annotations to the template, and a Service when it has a weight or asks for one.
    fn experiment_template(&self, t: &RolloutExperimentTemplate) -> Result<TemplateSpec, ExperimentStepError> {
        let source: Option<&ReplicaSet> = match t.spec_ref.as_str() {
            SPEC_REF_CANARY => self.new_rs(),
            SPEC_REF_STABLE => self.stable_rs(),
            _ => return Err(ExperimentStepError::InvalidSpecRef),
        };
        let Some(rs_spec) = source.and_then(|rs| rs.spec.as_ref()) else {
            return Err(ExperimentStepError::MissingReplicaSet { template: t.name.clone(), spec_ref: t.spec_ref.clone() });
        };
        let mut template = rs_spec.template.clone().unwrap_or_default();
        let mut selector = t.selector.clone().unwrap_or_else(|| rs_spec.selector.clone());
        if let Some(meta) = &t.metadata {
            if !meta.labels.is_empty() {
                let m = template.metadata.get_or_insert_with(Default::default);
                m.labels.get_or_insert_with(BTreeMap::new).extend(meta.labels.clone());
                selector.match_labels.get_or_insert_with(BTreeMap::new).extend(meta.labels.clone());
            }
            if !meta.annotations.is_empty() {
                let m = template.metadata.get_or_insert_with(Default::default);
                m.annotations.get_or_insert_with(BTreeMap::new).extend(meta.annotations.clone());
            }
        }
        let service = (t.weight.is_some() || t.service.is_some())
            .then(|| TemplateService { name: t.service.as_ref().map(|s| s.name.clone()).unwrap_or_default() });
        Ok(TemplateSpec {
            name: t.name.clone(),
            replicas: t.replicas,
            min_ready_seconds: rs_spec.min_ready_seconds.unwrap_or(0),
            selector: Some(selector),
            template,
            service,
        })
    }

    /// Argo's `createExperimentWithCollisionHandling`: an Experiment of that name that is
    /// this rollout's, still going and with the same spec is taken as it is (a reconcile
    /// from a stale cache); otherwise the next free name `<name>-1`, `<name>-2`, ... is
    /// used. Returns the name.
    fn create_experiment(&mut self, mut ex: Experiment) -> String {
        let base = ex.metadata.name.clone().unwrap_or_default();
        let mut name = base.clone();
        let mut n: u32 = 0;
        while let Some(existing) = self.state.experiments.get(&name) {
            let same_spec = ExperimentSpec { terminate: false, ..existing.spec.clone() } == ex.spec;
            if owned_by(&self.ro, existing) && !has_finished(&existing.status) && same_spec {
                return name;
            }
            n = n.saturating_add(1);
            name = format!("{base}-{n}");
        }
        ex.metadata.name = Some(name.clone());
        self.actions.push(Action::CreateExperiment { experiment: Box::new(ex.clone()) });
        ex.metadata.creation_timestamp = Some(crate::objects::to_kube_time(self.now));
        self.state.experiments.insert(name.clone(), ex);
        name
    }

    /// Sets `spec.terminate` on Experiments still going (Argo's `cancelExperiments`).
    pub(super) fn cancel_experiments(&mut self, names: &[String]) {
        for name in names {
            let Some(ex) = self.state.experiments.get_mut(name) else { continue };
            if ex.spec.terminate || has_finished(&ex.status) {
                continue;
            }
            ex.spec.terminate = true;
            self.actions.push(Action::PatchExperiment {
                name: name.clone(),
                patch: serde_json::json!({"spec": {"terminate": true}}),
            });
        }
    }

    /// Argo's `FilterExperimentsToDelete`: Experiments without the pod-template-hash label,
    /// or whose ReplicaSet is gone or being deleted, and finished ones beyond the
    /// successful / unsuccessful history limits (`spec.analysis`, newest kept). Pending and
    /// Running ones are not counted.
    fn delete_old_experiments(&mut self, others: &[String]) {
        if others.is_empty() {
            return;
        }
        let limits = self.ro.spec.analysis.as_ref();
        let max_ok = limits.and_then(|l| l.successful_run_history_limit).unwrap_or(crate::api::defaults::RUN_HISTORY_LIMIT);
        let max_bad =
            limits.and_then(|l| l.unsuccessful_run_history_limit).unwrap_or(crate::api::defaults::RUN_HISTORY_LIMIT);
        let hashes: BTreeMap<&str, bool> = self.all_rs().map(|r| (r.pod_hash(), r.is_deleting())).collect();
        let mut exs: Vec<&Experiment> = others.iter().filter_map(|n| self.state.experiments.get(n)).collect();
        let key = |e: &Experiment| {
            (e.metadata.creation_timestamp.as_ref().map(|t| t.0), e.metadata.name.clone().unwrap_or_default())
        };
        // Newest first.
        exs.sort_by_key(|e| std::cmp::Reverse(key(e)));
        let (mut ok, mut bad) = (0, 0);
        let mut doomed = Vec::new();
        for ex in exs {
            let hash = ex.metadata.labels.as_ref().and_then(|l| l.get(keys::POD_TEMPLATE_HASH));
            if hash.is_none_or(|h| hashes.get(h.as_str()).is_none_or(|deleting| *deleting)) {
                doomed.push(ex);
                continue;
            }
            match phase(ex) {
                Some(AnalysisPhase::Successful) => {
                    ok += 1;
                    if ok > max_ok {
                        doomed.push(ex);
                    }
                }
                Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive) => {
                    bad += 1;
                    if bad > max_bad {
                        doomed.push(ex);
                    }
                }
                Some(AnalysisPhase::Pending | AnalysisPhase::Running) | None => {}
            }
        }
        let doomed: Vec<String> = doomed
            .into_iter()
            .filter(|ex| ex.metadata.deletion_timestamp.is_none())
            .filter_map(|ex| ex.metadata.name.clone())
            .collect();
        self.delete_experiments(doomed);
    }

    /// Deletes the Experiments (but the current one) labelled with a ReplicaSet's hash,
    /// when the ReplicaSet is deleted.
    pub(super) fn delete_experiments_of_hash(&mut self, hash: &str) {
        let doomed: Vec<String> = self
            .other_experiments()
            .into_iter()
            .filter(|n| {
                self.state.experiments.get(n).is_some_and(|ex| {
                    ex.metadata.deletion_timestamp.is_none()
                        && ex.metadata.labels.as_ref().and_then(|l| l.get(keys::POD_TEMPLATE_HASH)).map(String::as_str)
                            == Some(hash)
                })
            })
            .collect();
        self.delete_experiments(doomed);
    }

    fn delete_experiments(&mut self, names: Vec<String>) {
        for name in names {
            self.state.experiments.remove(&name);
            self.actions.push(Action::DeleteExperiment { name });
        }
    }

    /// Argo's `calculateWeightDestinationsFromExperiment`: while the Experiment of the
    /// latest experiment step reached is Running, each of its templates with a `weight`
    /// gets that share of the traffic, through its Service. Returns the destinations and
    /// each one's Service port (for the routers that write backends).
    pub(super) fn experiment_destinations(&self) -> (Vec<WeightDestination>, BTreeMap<String, i32>) {
        let mut destinations = Vec::new();
        let mut ports = BTreeMap::new();
        let Some(step) = self.latest_experiment_step() else { return (destinations, ports) };
        let Some(ex) = self.current_experiment().filter(|ex| phase(ex) == Some(AnalysisPhase::Running)) else {
            return (destinations, ports);
        };
        for ts in &ex.status.template_statuses {
            let Some(weight) = step.templates.iter().find(|t| t.name == ts.name).and_then(|t| t.weight) else {
                continue;
            };
            destinations.push(WeightDestination {
                weight,
                service_name: ts.service_name.clone(),
                pod_template_hash: ts.pod_template_hash.clone(),
            });
            let template = ex.spec.templates.iter().find(|t| t.name == ts.name);
            if let Some(port) = self.service_port(&ts.service_name).or_else(|| template.and_then(container_port)) {
                ports.insert(ts.service_name.clone(), port);
            }
        }
        (destinations, ports)
    }

    /// Argo's `GetCurrentExperimentStep`: the nearest experiment step at or before the
    /// current one (none past the last step).
    fn latest_experiment_step(&self) -> Option<&RolloutExperimentStep> {
        let steps = self.ro.spec.steps();
        let index = usize::try_from(self.ro.status.current_step_index.unwrap_or(0)).ok()?;
        let reached = steps.get(..index.checked_add(1)?)?;
        reached.iter().rev().find_map(|s| s.experiment.as_ref())
    }

    /// The port of an observed Service: the one named `http`, else the first.
    fn service_port(&self, name: &str) -> Option<i32> {
        let ports = self.state.services.get(name)?.spec.as_ref()?.ports.as_ref()?;
        ports.iter().find(|p| p.name.as_deref() == Some("http")).or_else(|| ports.first()).map(|p| p.port)
    }

    /// Every Service an Experiment of this rollout may have had in a router's objects:
    /// the additional destinations written last, and every template Service of its
    /// Experiments (the routers remove those not in the plan).
    pub(super) fn experiment_services(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .ro
            .status
            .canary
            .weights
            .iter()
            .flat_map(|w| w.additional.iter().map(|d| d.service_name.clone()))
            .collect();
        for ex in self.state.experiments.values().filter(|ex| owned_by(&self.ro, ex)) {
            names.extend(ex.status.template_statuses.iter().map(|t| t.service_name.clone()));
        }
        names.retain(|n| !n.is_empty());
        names
    }
}

/// The port the experiment machine gives a template's Service (its first container port
/// named `http`, else the first one): the port a route sends the template's traffic to.
fn container_port(t: &TemplateSpec) -> Option<i32> {
    let ports: Vec<_> = t
        .template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .collect();
    ports.iter().find(|p| p.name.as_deref() == Some("http")).or_else(|| ports.first()).map(|p| p.container_port)
}

#[cfg(test)]
#[path = "experiment_tests.rs"]
mod tests;
