//! The Experiment machine: Argo's experiment controller (experiments/experiment.go,
//! replicaset.go, service.go, conditions.go; utils/experiment/experiment.go,
//! utils/conditions/experiments.go) as a pure function.
//!
//! ```text
//! reconcile(experiment, observed, now) -> ExperimentReconcile { status, actions, rollout_events, wake }
//! ```
//!
//! The caller (a controller worker per Experiment, the simulator, a test) owns the loop:
//!
//! 1. Pass the Experiment as last observed and what it may own ([`Observed`]: the
//!    namespace's ReplicaSets, Services and AnalysisRuns, claimed here by controller owner
//!    reference and the `experiment.argoproj.io/*` annotations, and the analysis templates).
//!    Objects created by earlier actions must be included, as the controller's optimistic
//!    copies or its cache: a run recorded in the status but absent is reported as an
//!    `Error`, as Argo does when its live read finds nothing.
//! 2. Execute [`ExperimentReconcile::actions`] in order. `RecordEvent`s there are events on
//!    the Experiment; [`ExperimentReconcile::rollout_events`] go on the owning Rollout.
//! 3. Write [`ExperimentReconcile::status`] when it differs from the observed status
//!    (Argo's two-way merge patch of `status`), then reconcile again on the next change
//!    or at [`ExperimentReconcile::wake`].
//!
//! Time is whole seconds: a deadline (duration, progress deadline, scale-down deadline) is
//! reached when `now` equals it, where Argo compares with nanoseconds and fires just after.

mod analyses;
mod phase;
mod templates;
#[cfg(test)]
mod tests;
pub mod world;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{
    AnalysisPhase, AnalysisRun, AnalysisTemplate, Experiment, ExperimentStatus, SpecError, TemplateSpec,
    EXPERIMENT_NAME_ANNOTATION, EXPERIMENT_TEMPLATE_NAME_ANNOTATION,
};
use crate::state::{Action, EventType};
use crate::time::{parse_duration, Seconds, Timestamp};

pub use phase::verify_spec;

/// What an Experiment's decisions depend on besides the Experiment itself, by name.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// ReplicaSets of the namespace (those the Experiment owns are claimed).
    pub replica_sets: &'a BTreeMap<String, ReplicaSet>,
    /// Services of the namespace (those the Experiment owns are claimed; the others are
    /// looked at for name clashes).
    pub services: &'a BTreeMap<String, Service>,
    /// AnalysisRuns of the namespace.
    pub analysis_runs: &'a BTreeMap<String, AnalysisRun>,
    /// AnalysisTemplates of the namespace, as decoded.
    pub analysis_templates: &'a BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    /// ClusterAnalysisTemplates, as decoded.
    pub cluster_analysis_templates: &'a BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
}

/// Why the Experiment wants to be reconciled again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExperimentWakeReason {
    /// `availableAt + duration` is reached.
    Duration,
    /// A template not at its desired count reaches its progress deadline.
    ProgressDeadline,
    /// A template ReplicaSet's `scale-down-deadline` passes.
    ScaleDownDeadline,
}

/// When and why to reconcile again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExperimentWake {
    /// When.
    pub at: Timestamp,
    /// Why.
    pub reason: ExperimentWakeReason,
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentReconcile {
    /// The new `status` (write it when it differs from the observed one).
    pub status: ExperimentStatus,
    /// What to do, in order. `RecordEvent`s are events on the Experiment.
    pub actions: Vec<Action>,
    /// `RecordEvent`s for the Rollout owning the Experiment (analysis phase changes, as
    /// Warnings); empty for a standalone Experiment.
    pub rollout_events: Vec<Action>,
    /// The earliest future time the decision can change without an observation.
    pub wake: Option<ExperimentWake>,
}

/// Reconciles an Experiment once: Argo's `syncHandler` + `experimentContext.reconcile`.
pub fn reconcile(ex: &Experiment, observed: &Observed<'_>, now: Timestamp) -> ExperimentReconcile {
    let unchanged = |status: ExperimentStatus| ExperimentReconcile {
        status,
        actions: Vec::new(),
        rollout_events: Vec::new(),
        wake: None,
    };
    if ex.metadata.deletion_timestamp.is_some() {
        return unchanged(ex.status.clone());
    }
    if let Some(status) = phase::invalid_spec_status(ex, now) {
        return unchanged(status);
    }
    // Argo refuses to reconcile (and retries) when two objects claim one template.
    let (Some(template_rss), Some(template_services)) = (
        claim(ex, observed.replica_sets, |rs| &rs.metadata),
        claim(ex, observed.services, |svc| &svc.metadata),
    ) else {
        return unchanged(ex.status.clone());
    };
    let mut ctx = Ctx {
        ex,
        observed,
        now,
        terminating: is_terminating(ex, &ex.status),
        status: ex.status.clone(),
        template_rss,
        template_services,
        actions: Vec::new(),
        rollout_events: Vec::new(),
        wakes: Vec::new(),
    };
    for template in &ex.spec.templates {
        ctx.reconcile_template(template);
    }
    for analysis in &ex.spec.analyses {
        ctx.reconcile_analysis(analysis);
    }
    ctx.calculate_status();
    ctx.phase_event();
    let wake = ctx.wake();
    ExperimentReconcile { status: ctx.status, actions: ctx.actions, rollout_events: ctx.rollout_events, wake }
}

/// One reconcile's working state.
struct Ctx<'a> {
    ex: &'a Experiment,
    observed: &'a Observed<'a>,
    now: Timestamp,
    /// Argo's `isTerminating`, from the status as observed.
    terminating: bool,
    /// The status being built, starting from the observed one.
    status: ExperimentStatus,
    /// Claimed ReplicaSets by template name, updated by this reconcile's own actions.
    template_rss: BTreeMap<String, ReplicaSet>,
    /// Claimed Services by template name, updated likewise.
    template_services: BTreeMap<String, Service>,
    actions: Vec<Action>,
    rollout_events: Vec<Action>,
    wakes: Vec<ExperimentWake>,
}

impl Ctx<'_> {
    fn name(&self) -> &str {
        self.ex.metadata.name.as_deref().unwrap_or_default()
    }

    fn event(&mut self, kind: EventType, reason: impl Into<String>, message: impl Into<String>) {
        self.actions.push(Action::RecordEvent { kind, reason: reason.into(), message: message.into() });
    }

    /// The controller owner reference of everything the Experiment creates.
    fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: crate::api::API_VERSION.to_string(),
            kind: "Experiment".to_string(),
            name: self.name().to_string(),
            uid: self.ex.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn wake_at(&mut self, at: Timestamp, reason: ExperimentWakeReason) {
        if at > self.now {
            self.wakes.push(ExperimentWake { at, reason });
        }
    }

    fn wake(&mut self) -> Option<ExperimentWake> {
        let mut wakes = std::mem::take(&mut self.wakes);
        wakes.extend(phase::requeue(self.ex, &self.status, self.now));
        wakes.into_iter().min_by_key(|w| (w.at, w.reason))
    }
}

/// The experiment's objects of one kind by template name: controller owner reference to
/// the Experiment and both `experiment.argoproj.io` annotations naming a template of the
/// spec. `None` when two objects claim one template.
fn claim<T: Clone>(
    ex: &Experiment,
    objects: &BTreeMap<String, T>,
    meta: impl Fn(&T) -> &ObjectMeta,
) -> Option<BTreeMap<String, T>> {
    let mut out = BTreeMap::new();
    for obj in objects.values() {
        let m = meta(obj);
        if !owned_by(ex, m) {
            continue;
        }
        let Some(template) = m.annotations.as_ref().and_then(|a| a.get(EXPERIMENT_TEMPLATE_NAME_ANNOTATION)) else {
            continue;
        };
        if template.is_empty() || !ex.spec.templates.iter().any(|t| t.name == *template) {
            continue;
        }
        if out.insert(template.clone(), obj.clone()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// Whether the Experiment is the object's controller and the object carries its name
/// annotation.
fn owned_by(ex: &Experiment, m: &ObjectMeta) -> bool {
    let name = ex.metadata.name.as_deref().unwrap_or_default();
    is_controller(ex, m)
        && m.annotations.as_ref().and_then(|a| a.get(EXPERIMENT_NAME_ANNOTATION)).is_some_and(|n| n == name)
}

/// Whether the Experiment is the object's controller. Without a UID (an object that never
/// went through an API server), the owner reference's kind and name stand in for it.
fn is_controller(ex: &Experiment, m: &ObjectMeta) -> bool {
    let name = ex.metadata.name.as_deref().unwrap_or_default();
    let controller = m.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    controller.is_some_and(|o| match ex.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => o.uid == uid,
        Some(_) | None => o.kind == "Experiment" && o.name == name,
    })
}

/// Argo's `HasFinished`: the phase is completed.
pub fn has_finished(status: &ExperimentStatus) -> bool {
    status.phase.is_some_and(AnalysisPhase::completed)
}

/// Argo's `IsTerminating`: `spec.terminate`, finished, a template Failed or Error, a run
/// Failed, Error or Inconclusive, or every required analysis Successful.
pub fn is_terminating(ex: &Experiment, status: &ExperimentStatus) -> bool {
    use crate::api::TemplateStatusCode as T;
    ex.spec.terminate
        || has_finished(status)
        || status.template_statuses.iter().any(|t| matches!(t.status, Some(T::Failed | T::Error)))
        || status.analysis_runs.iter().any(|r| {
            matches!(r.phase, Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive))
        })
        || required_analyses_successful(ex, status)
}

/// Argo's `RequiredAnalysisRunsSuccessful`: at least one analysis is required and every
/// required one is Successful.
pub fn required_analyses_successful(ex: &Experiment, status: &ExperimentStatus) -> bool {
    let mut required = ex.spec.analyses.iter().filter(|a| a.required_for_completion).peekable();
    required.peek().is_some()
        && required.all(|a| {
            status.analysis_runs.iter().any(|r| r.name == a.name && r.phase == Some(AnalysisPhase::Successful))
        })
}

/// `spec.duration`, when set.
fn duration_text(ex: &Experiment) -> Option<&str> {
    ex.spec.duration.as_deref().filter(|d| !d.is_empty())
}

/// `spec.duration`, when set and readable.
fn duration(ex: &Experiment) -> Option<Seconds> {
    duration_text(ex).and_then(|d| parse_duration(d).ok())
}

/// Argo's `PassedDurations`: `availableAt + duration` is reached.
pub fn passed_duration(ex: &Experiment, status: &ExperimentStatus, now: Timestamp) -> bool {
    match (duration(ex), status.available_at) {
        (Some(d), Some(at)) => now >= at.plus(d),
        (Some(_) | None, _) => false,
    }
}

/// Argo's `CalculateTemplateReplicasCount`: 0 once the experiment is finished or
/// terminating or the template is completed, else `replicas` (default 1).
pub fn desired_replicas(ex: &Experiment, status: &ExperimentStatus, template: &TemplateSpec) -> i32 {
    let completed = status
        .template_statuses
        .iter()
        .find(|t| t.name == template.name)
        .and_then(|t| t.status)
        .is_some_and(|s| s.completed());
    if is_terminating(ex, status) || completed {
        0
    } else {
        template.replicas()
    }
}
