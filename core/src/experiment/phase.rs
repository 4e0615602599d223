//! The Experiment's phase, conditions and requeue time, and the spec checks (Argo's
//! `calculateStatus`, `assessTemplates`, `assessAnalysisRuns`, `calculateEnqueueDuration`,
//! experiments/experiment.go; `calculateExperimentConditions`, experiments/conditions.go;
//! `VerifyExperimentSpec` and the condition helpers, utils/conditions/experiments.go;
//! `recordEvent`, experiments/controller.go).

use std::collections::BTreeSet;

use super::{desired_replicas, duration, duration_text, passed_duration, required_analyses_successful, Ctx};
use super::{ExperimentWake, ExperimentWakeReason};
use crate::analysis::condition::go_quote;
use crate::analysis::run::is_worse;
use crate::api::{
    AnalysisPhase, ConditionStatus, Experiment, ExperimentCondition, ExperimentConditionType, ExperimentStatus,
    TemplateStatusCode,
};
use crate::state::EventType;
use crate::time::{parse_duration, Seconds, Timestamp};

/// The message of a completed required analysis set.
pub const REQUIRED_ANALYSIS_COMPLETED_MESSAGE: &str = "Required AnalysisRuns completed";

/// Argo's `VerifyExperimentSpec`: the first problem of the spec, with Argo's message, per
/// template in order: a missing selector, a selector selecting every pod,
/// `minReadySeconds` above `progressDeadlineSeconds`, an empty name, a repeated name.
/// Beyond Argo: an unreadable `spec.duration` (Argo ignores it and never ends the
/// experiment by duration).
pub fn verify_spec(ex: &Experiment) -> Option<String> {
    let name = ex.metadata.name.as_deref().unwrap_or_default();
    let mut names = BTreeSet::new();
    for (i, t) in ex.spec.templates.iter().enumerate() {
        let Some(selector) = &t.selector else {
            return Some(format!("Rollout has missing field '.Spec.Templates[{i}].Selector'"));
        };
        // Argo compares with an empty selector, so `matchLabels: {}` slips through there.
        if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        {
            return Some(format!(
                "This experiment is selecting all pods at index {i}. A non-empty selector is required."
            ));
        }
        if t.min_ready_seconds > ex.spec.progress_deadline_seconds() {
            return Some(format!(
                "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index {i}"
            ));
        }
        if t.name.is_empty() {
            return Some(format!("Experiment {name} has empty template name at index {i}"));
        }
        if !names.insert(t.name.as_str()) {
            return Some(format!("Experiment {name} has repeated template name '{}' in templates", t.name));
        }
    }
    if let Some(text) = duration_text(ex) {
        if let Err(e) = parse_duration(text) {
            return Some(format!("spec.duration: {e}"));
        }
    }
    None
}

/// The status of an Experiment whose spec is invalid (`None` when it is valid): the
/// observed status with an `InvalidSpec` condition; nothing else is reconciled.
pub(super) fn invalid_spec_status(ex: &Experiment, now: Timestamp) -> Option<ExperimentStatus> {
    let message = verify_spec(ex)?;
    let prev = condition(&ex.status, ExperimentConditionType::InvalidSpec).cloned();
    let cond = match prev.clone() {
        Some(mut p) if p.message == message => {
            p.last_update_time = now;
            p
        }
        Some(_) | None => new_condition(ExperimentConditionType::InvalidSpec, ConditionStatus::True, "InvalidSpec", message, now),
    };
    let mut status = ex.status.clone();
    if prev.is_some_and(|p| p.message != cond.message) {
        remove_condition(&mut status, ExperimentConditionType::InvalidSpec);
    }
    set_condition(&mut status, cond);
    Some(status)
}

fn new_condition(
    kind: ExperimentConditionType,
    status: ConditionStatus,
    reason: &str,
    message: String,
    now: Timestamp,
) -> ExperimentCondition {
    ExperimentCondition { kind, status, last_update_time: now, last_transition_time: now, reason: reason.to_string(), message }
}

fn condition(status: &ExperimentStatus, kind: ExperimentConditionType) -> Option<&ExperimentCondition> {
    status.conditions.iter().find(|c| c.kind == kind)
}

fn remove_condition(status: &mut ExperimentStatus, kind: ExperimentConditionType) {
    status.conditions.retain(|c| c.kind != kind);
}

/// Argo's `SetExperimentCondition`: nothing changes when the status and reason are the
/// same; the transition time is kept when the status is.
fn set_condition(status: &mut ExperimentStatus, mut cond: ExperimentCondition) {
    if let Some(current) = condition(status, cond.kind) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time;
        }
    }
    remove_condition(status, cond.kind);
    status.conditions.push(cond);
}

/// Argo's `templateStatusOrder` (best to worst); a status not yet set ranks as the best.
fn template_rank(status: Option<TemplateStatusCode>) -> u8 {
    match status {
        None | Some(TemplateStatusCode::Successful) => 0,
        Some(TemplateStatusCode::Running) => 1,
        Some(TemplateStatusCode::Progressing) => 2,
        Some(TemplateStatusCode::Error) => 3,
        Some(TemplateStatusCode::Failed) => 4,
    }
}

impl Ctx<'_> {
    /// Argo's `calculateStatus`: the phase (a completed phase is final), `availableAt`,
    /// then the conditions.
    pub(super) fn calculate_status(&mut self) {
        match self.status.phase {
            None => self.status.phase = Some(AnalysisPhase::Pending),
            Some(AnalysisPhase::Pending | AnalysisPhase::Running) => {
                let (template_phase, template_message) = self.assess_templates();
                let (analyses_phase, analyses_message) = self.assess_analyses();
                if template_phase == AnalysisPhase::Running && self.status.available_at.is_none() {
                    self.status.available_at = Some(self.now);
                }
                let has_required = self.ex.spec.analyses.iter().any(|a| a.required_for_completion);
                let (phase, message) = if template_phase.completed() {
                    if template_phase == AnalysisPhase::Successful && (analyses_phase.completed() || has_required) {
                        (analyses_phase, analyses_message)
                    } else {
                        (template_phase, template_message)
                    }
                } else if (analyses_phase.completed() && analyses_phase != AnalysisPhase::Successful)
                    || required_analyses_successful(self.ex, &self.status)
                {
                    (analyses_phase, analyses_message)
                } else {
                    (template_phase, template_message)
                };
                self.status.phase = Some(phase);
                self.status.message = message;
            }
            Some(AnalysisPhase::Successful | AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive) => {}
        }
        self.calculate_conditions();
    }

    /// Argo's `assessTemplates`: the worst template status as a phase (Progressing is
    /// Pending; a template without a status is Progressing), with its message.
    fn assess_templates(&self) -> (AnalysisPhase, String) {
        let mut worst = TemplateStatusCode::Successful;
        let mut message = String::new();
        for t in &self.ex.spec.templates {
            match self.status.template_statuses.iter().find(|s| s.name == t.name) {
                None => {
                    if template_rank(Some(TemplateStatusCode::Progressing)) > template_rank(Some(worst)) {
                        worst = TemplateStatusCode::Progressing;
                    }
                }
                Some(ts) => {
                    if let Some(s) = ts.status.filter(|s| template_rank(Some(*s)) > template_rank(Some(worst))) {
                        worst = s;
                        message = ts.message.clone();
                    }
                }
            }
        }
        let phase = match worst {
            TemplateStatusCode::Progressing => AnalysisPhase::Pending,
            TemplateStatusCode::Running => AnalysisPhase::Running,
            TemplateStatusCode::Successful => AnalysisPhase::Successful,
            TemplateStatusCode::Failed => AnalysisPhase::Failed,
            TemplateStatusCode::Error => AnalysisPhase::Error,
        };
        (phase, message)
    }

    /// Argo's `assessAnalysisRuns`: the worst analysis phase (Pending reported as
    /// Running), or Successful once every required analysis has succeeded and nothing
    /// is worse than Successful. No analyses: Successful.
    fn assess_analyses(&self) -> (AnalysisPhase, String) {
        let mut worst = AnalysisPhase::Successful;
        let mut message = String::new();
        for a in &self.ex.spec.analyses {
            let Some(status) = self.status.analysis_runs.iter().find(|r| r.name == a.name) else { continue };
            if let Some(p) = status.phase.filter(|p| is_worse(worst, *p)) {
                worst = p;
                message = status.message.clone();
            }
        }
        if required_analyses_successful(self.ex, &self.status) && is_worse(worst, AnalysisPhase::Running) {
            return (AnalysisPhase::Successful, REQUIRED_ANALYSIS_COMPLETED_MESSAGE.to_string());
        }
        if worst == AnalysisPhase::Pending {
            worst = AnalysisPhase::Running;
        }
        (worst, message)
    }

    /// Argo's `calculateExperimentConditions`.
    fn calculate_conditions(&mut self) {
        let name = go_quote(self.name());
        if condition(&self.ex.status, ExperimentConditionType::InvalidSpec).is_some() {
            remove_condition(&mut self.status, ExperimentConditionType::InvalidSpec);
        }
        let progressing = ExperimentConditionType::Progressing;
        if self.status.phase == Some(AnalysisPhase::Successful) {
            let msg = format!("Experiment {name} has successfully ran and completed.");
            let cond = new_condition(progressing, ConditionStatus::False, "ExperimentCompleted", msg, self.now);
            set_condition(&mut self.status, cond);
        } else if self.made_progress() {
            let msg = format!("Experiment {name} is progressing.");
            let mut cond = new_condition(progressing, ConditionStatus::True, "ReplicaSetUpdated", msg, self.now);
            if let Some(current) = condition(&self.ex.status, progressing) {
                if current.status == ConditionStatus::True {
                    cond.last_transition_time = current.last_transition_time;
                }
                remove_condition(&mut self.status, progressing);
            }
            set_condition(&mut self.status, cond);
        } else if self.ex.status.available_at.is_some() && !passed_duration(self.ex, &self.ex.status, self.now) {
            let msg = format!("Experiment {name} is running.");
            let cond = new_condition(progressing, ConditionStatus::True, "NewReplicaSetAvailable", msg, self.now);
            set_condition(&mut self.status, cond);
        }
    }

    /// Argo's `ExperimentProgressing`: a new template status, or a changed replica count.
    fn made_progress(&self) -> bool {
        let old = &self.ex.status.template_statuses;
        let new = &self.status.template_statuses;
        if old.len() < new.len() {
            return true;
        }
        old.iter().any(|o| {
            new.iter().find(|n| n.name == o.name).is_some_and(|n| {
                (o.replicas, o.updated_replicas, o.ready_replicas, o.available_replicas)
                    != (n.replicas, n.updated_replicas, n.ready_replicas, n.available_replicas)
            })
        })
    }

    /// Argo's `recordEvent`: `Experiment<Phase>` when the phase changes.
    pub(super) fn phase_event(&mut self) {
        if self.status.phase == self.ex.status.phase {
            return;
        }
        let new = self.status.phase.map_or("", AnalysisPhase::as_str);
        let old = self.ex.status.phase.map_or("", AnalysisPhase::as_str);
        let kind = match self.status.phase {
            Some(AnalysisPhase::Error | AnalysisPhase::Failed | AnalysisPhase::Inconclusive) => EventType::Warning,
            Some(AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful) | None => EventType::Normal,
        };
        self.event(kind, format!("Experiment{new}"), format!("Experiment transitioned from {old} -> {new}"));
    }
}

/// Argo's `calculateEnqueueDuration`: `availableAt + duration`, and the progress deadline
/// of every Progressing or Running template not at its desired count. Computed from the
/// status being written (Argo reads the observed one and relies on the status write to
/// come back as a watch event; the times are the same).
pub(super) fn requeue(ex: &Experiment, status: &ExperimentStatus, now: Timestamp) -> Vec<ExperimentWake> {
    let mut out = Vec::new();
    if let (Some(at), Some(d)) = (status.available_at, duration(ex)) {
        // A finished experiment's decision no longer depends on its duration.
        if !passed_duration(ex, status, now) && !super::has_finished(status) {
            out.push(ExperimentWake { at: at.plus(d), reason: ExperimentWakeReason::Duration });
        }
    }
    let deadline = Seconds(i64::from(ex.spec.progress_deadline_seconds()));
    for t in &ex.spec.templates {
        let Some(ts) = status.template_statuses.iter().find(|s| s.name == t.name) else { continue };
        if !matches!(ts.status, Some(TemplateStatusCode::Progressing | TemplateStatusCode::Running)) {
            continue;
        }
        if let Some(ltt) = ts.last_transition_time.filter(|_| ts.available_replicas != desired_replicas(ex, status, t)) {
            out.push(ExperimentWake { at: ltt.plus(deadline), reason: ExperimentWakeReason::ProgressDeadline });
        }
    }
    out.retain(|w| w.at > now);
    out
}
