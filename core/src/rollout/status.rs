//! Status bookkeeping: conditions, the base status, persisting with a merge patch, the
//! progress deadline and the update's duration.

use serde_json::{Map, Value};

use super::context::Ctx;
use super::phase::calculate_phase;
use crate::api::{
    CompletionStatus, ConditionReason, ConditionStatus, ConditionType, PauseReason, Rollout,
    RolloutCondition, RolloutDurationStatus, RolloutStatus, StepKind,
};
use crate::objects::{total_replicas, ReplicaSetExt};
use crate::state::{Action, State, WakeReason};
use crate::time::{Seconds, Timestamp};

/// A new condition with both times set to `now`.
pub(super) fn condition(
    kind: ConditionType,
    status: ConditionStatus,
    reason: ConditionReason,
    message: &str,
    now: Timestamp,
) -> RolloutCondition {
    RolloutCondition {
        kind,
        status,
        last_update_time: now,
        last_transition_time: now,
        reason: reason.as_str().to_string(),
        message: message.to_string(),
    }
}

pub(super) fn get_condition(status: &RolloutStatus, kind: ConditionType) -> Option<&RolloutCondition> {
    status.conditions.iter().find(|c| c.kind == kind)
}

/// Argo's `SetRolloutCondition`: replaces the condition only when status or reason
/// changed, keeping `lastTransitionTime` when the status did not. Returns whether it wrote.
pub(super) fn set_condition(status: &mut RolloutStatus, mut cond: RolloutCondition) -> bool {
    if let Some(cur) = get_condition(status, cond.kind) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return false;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time;
        }
    }
    status.conditions.retain(|c| c.kind != cond.kind);
    status.conditions.push(cond);
    true
}

/// [`set_condition`] of a fresh condition, built only when it would be written (a
/// reconcile at rest re-asserts every condition, and the strings cost more than the check).
pub(super) fn update_condition(
    status: &mut RolloutStatus,
    kind: ConditionType,
    condition_status: ConditionStatus,
    reason: ConditionReason,
    message: &str,
    now: Timestamp,
) -> bool {
    if get_condition(status, kind)
        .is_some_and(|c| c.status == condition_status && c.has_reason(reason))
    {
        return false;
    }
    set_condition(
        status,
        condition(kind, condition_status, reason, message, now),
    )
}

pub(super) fn remove_condition(status: &mut RolloutStatus, kind: ConditionType) {
    status.conditions.retain(|c| c.kind != kind);
}


/// The status-subresource patch action from `old` to `new`, if anything changed.
pub(super) fn status_patch(old: &RolloutStatus, new: &RolloutStatus) -> Option<Action> {
    let diff = new.merge_patch_from(old)?;
    Some(Action::PatchRolloutStatus { patch: Value::Object(Map::from_iter([("status".to_string(), Value::Object(diff))])) })
}

/// The actions with their [`Action::PatchRolloutStatus`] composed into one, at the place
/// of the last one or after the last ReplicaSet write, whichever is later: everything the
/// status reports is then written before it, and a batch costs one status write however
/// many times its reconcile revised the status (a new ReplicaSet's condition, then the
/// step's status). Patches that no single merge patch can compose stay apart.
pub(crate) fn coalesce_status_patches(actions: Vec<Action>) -> Vec<Action> {
    status_after_scaling(compose_status_patches(actions))
}

/// The batch's status patches moved after its last ReplicaSet write, the rest in order.
/// After a promote, the step's status and the scaling of the next step come in one batch:
/// the pods start one status write sooner (the reaction time of the scale bench), and the
/// status never reports a scale before it is written. Either order is safe after a crash:
/// the scale follows from the spec and the status the API server holds.
fn status_after_scaling(mut actions: Vec<Action>) -> Vec<Action> {
    let Some(last_scale) = actions.iter().rposition(|a| matches!(a, Action::PatchReplicaSet { .. })) else {
        return actions;
    };
    if !actions[..last_scale].iter().any(|a| matches!(a, Action::PatchRolloutStatus { .. })) {
        return actions;
    }
    let tail = actions.split_off(last_scale + 1);
    let (status, rest): (Vec<Action>, Vec<Action>) =
        actions.into_iter().partition(|a| matches!(a, Action::PatchRolloutStatus { .. }));
    rest.into_iter().chain(status).chain(tail).collect()
}

/// The status patches of `actions` composed into one, at the place of the last one.
fn compose_status_patches(actions: Vec<Action>) -> Vec<Action> {
    if actions.iter().filter(|a| matches!(a, Action::PatchRolloutStatus { .. })).count() < 2 {
        return actions;
    }
    let mut out: Vec<Action> = Vec::with_capacity(actions.len());
    let mut pending: Option<usize> = None;
    for action in actions {
        let Action::PatchRolloutStatus { patch } = action else {
            out.push(action);
            continue;
        };
        let composed = pending.and_then(|i| {
            let Action::PatchRolloutStatus { patch: first } = &out[i] else { return None };
            crate::api::merge::compose_merge_patches(first, &patch).map(|p| (i, p))
        });
        let patch = match composed {
            Some((i, p)) => {
                let _composed_into_p = out.remove(i);
                p
            }
            None => patch,
        };
        out.push(Action::PatchRolloutStatus { patch });
        pending = Some(out.len() - 1);
    }
    out
}

/// Writes the `InvalidSpec` condition (Argo's `createInvalidRolloutCondition`).
pub(super) fn invalid_spec(state: &mut State, ro: &Rollout, error: &str, now: Timestamp) -> Vec<Action> {
    let name = ro.metadata.name.as_deref().unwrap_or("");
    let message = format!("The Rollout \"{name}\" is invalid: {error}");
    let old = ro.status.clone();
    let mut new = old.clone();
    let prev = get_condition(&old, ConditionType::InvalidSpec).cloned();
    if prev.as_ref().is_none_or(|p| p.message != message) {
        remove_condition(&mut new, ConditionType::InvalidSpec);
        set_condition(
            &mut new,
            condition(
                ConditionType::InvalidSpec,
                ConditionStatus::True,
                ConditionReason::InvalidSpec,
                &message,
                now,
            ),
        );
    }
    new.observed_generation = ro.metadata.generation.unwrap_or(0).to_string();
    let (phase, msg) = calculate_phase(&ro.spec, &new);
    new.phase = Some(phase);
    new.message = msg;
    match status_patch(&old, &new) {
        Some(a) => {
            if let Some(r) = state.rollout.as_mut() {
                r.status = new;
            }
            vec![a]
        }
        None => Vec::new(),
    }
}

impl Ctx<'_> {
    /// Argo's `calculateBaseStatus`.
    pub(super) fn base_status(&self) -> RolloutStatus {
        let mut prev_conditions = self.ro.status.conditions.clone();
        // Validation passed to get here, so any InvalidSpec condition is stale.
        prev_conditions.retain(|c| c.kind != ConditionType::InvalidSpec);
        let mut s = self.new_status.clone();
        s.current_pod_hash = self.new_hash();
        s.replicas = total_replicas(self.all_rs().map(|r| r.status_replicas()));
        s.updated_replicas = self.new_rs().map_or(0, |r| r.status_replicas());
        s.ready_replicas = total_replicas(self.all_rs().map(|r| r.ready()));
        s.collision_count = self.ro.status.collision_count;
        s.conditions = prev_conditions;
        s.promote_full = s.current_pod_hash != s.stable_rs && self.ro.status.promote_full;
        s
    }

    /// Argo's `resetRolloutStatus`: the update starts over.
    pub(super) fn reset_status(&mut self, s: &mut RolloutStatus) {
        self.pause.clear_pauses();
        self.pause.remove_abort();
        s.restarted_at = self.ro.spec.restart_at;
        self.new_status.restarted_at = self.ro.spec.restart_at;
        s.promote_full = false;
        s.blue_green.pre_promotion_analysis_run_status = None;
        s.blue_green.post_promotion_analysis_run_status = None;
        s.blue_green.scale_up_preview_check_point = false;
        s.canary.current_step_analysis_run_status = None;
        s.canary.current_background_analysis_run_status = None;
        s.current_step_index = if self.ro.spec.steps().is_empty() { None } else { Some(0) };
        self.update_reset = true;
    }

    /// Argo's `checkPausedConditions`; returns whether it wrote the status (the reconcile
    /// then ends).
    pub(super) fn check_paused_conditions(&mut self) -> bool {
        let generation = self.ro.metadata.generation.unwrap_or(0).to_string();
        if self.ro.status.observed_generation != generation {
            return false;
        }
        let status = &self.ro.status;
        let prog = get_condition(status, ConditionType::Progressing);
        let prog_paused = prog.is_some_and(|c| c.has_reason(ConditionReason::RolloutPaused));
        let is_paused = !status.pause_conditions.is_empty() || self.ro.spec.paused;
        let abort_cond = prog.is_some_and(|c| c.has_reason(ConditionReason::RolloutAborted));
        let now = self.now;
        let mut updates = Vec::new();
        if is_paused != prog_paused && !abort_cond {
            updates.push(if is_paused {
                condition(
                    ConditionType::Progressing,
                    ConditionStatus::Unknown,
                    ConditionReason::RolloutPaused,
                    "Rollout is paused",
                    now,
                )
            } else {
                condition(
                    ConditionType::Progressing,
                    ConditionStatus::Unknown,
                    ConditionReason::RolloutResumed,
                    "Rollout is resumed",
                    now,
                )
            });
        }
        if !status.abort && abort_cond {
            updates.push(condition(
                ConditionType::Progressing,
                ConditionStatus::Unknown,
                ConditionReason::RolloutRetry,
                "Retrying Rollout after abort",
                now,
            ));
        }
        let paused_true =
            get_condition(status, ConditionType::Paused).is_some_and(|c| c.status == ConditionStatus::True);
        if is_paused != paused_true && !abort_cond {
            let st = if is_paused {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            };
            updates.push(condition(
                ConditionType::Paused,
                st,
                ConditionReason::RolloutPaused,
                "Rollout is paused",
                now,
            ));
        }
        if updates.is_empty() {
            return false;
        }
        let mut new = self.ro.status.clone();
        for c in updates {
            set_condition(&mut new, c);
        }
        self.write_status(new)
    }

    /// Writes a status computed outside the normal path (conditions only), with
    /// observedGeneration and phase; returns whether anything changed.
    pub(super) fn write_status(&mut self, mut new: RolloutStatus) -> bool {
        new.observed_generation = self.ro.metadata.generation.unwrap_or(0).to_string();
        let (phase, message) = calculate_phase(&self.ro.spec, &new);
        new.phase = Some(phase);
        new.message = message;
        match status_patch(&self.ro.status, &new) {
            Some(a) => {
                self.actions.push(a);
                self.ro.status = new;
                true
            }
            None => false,
        }
    }

    /// Argo's `calculateRolloutConditions`.
    pub(super) fn calculate_conditions(&mut self, mut s: RolloutStatus) -> RolloutStatus {
        let now = self.now;
        self.evaluate_progress_deadline_abort(&s);
        let old = &self.ro.status;
        let is_paused = !old.pause_conditions.is_empty() || self.ro.spec.paused;
        let is_aborted = self.pause.is_aborted(old);
        let healthy_cond_exists = get_condition(old, ConditionType::Healthy).is_some();
        let current = get_condition(old, ConditionType::Progressing).cloned();

        let mut became_unhealthy = false;
        if !is_paused && self.rollout_healthy(&s) {
            update_condition(
                &mut s,
                ConditionType::Healthy,
                ConditionStatus::True,
                ConditionReason::RolloutHealthy,
                "Rollout is healthy",
                now,
            );
        } else if healthy_cond_exists {
            became_unhealthy = update_condition(
                &mut s,
                ConditionType::Healthy,
                ConditionStatus::False,
                ConditionReason::RolloutHealthy,
                "Rollout is not healthy",
                now,
            );
        }

        if is_aborted {
            let mut message = format!("Rollout aborted update to revision {}", self.rollout_revision());
            if !self.pause.abort_message.is_empty() {
                message = format!("{message}: {}", self.pause.abort_message);
            }
            let cond = condition(
                ConditionType::Progressing,
                ConditionStatus::False,
                ConditionReason::RolloutAborted,
                &message,
                now,
            );
            if set_condition(&mut s, cond) {
                self.warning(ConditionReason::RolloutAborted.as_str(), message);
            }
        }

        let rs_name = self.new_rs.clone();
        // Progress is not estimated while paused: the Progressing condition says
        // RolloutPaused (written by `check_paused_conditions`), and overwriting it here
        // would make every reconcile flip it back and forth.
        if !is_aborted && !is_paused {
            if self.rollout_healthy(&s) {
                let msg = format!(
                    "ReplicaSet {:?} has successfully progressed.",
                    rs_name.clone().unwrap_or_default()
                );
                update_condition(
                    &mut s,
                    ConditionType::Progressing,
                    ConditionStatus::True,
                    ConditionReason::NewReplicaSetAvailable,
                    &msg,
                    now,
                );
            } else if self.rollout_progressing(&s) || became_unhealthy {
                let mut msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => format!("Rollout {:?} is progressing.", self.name()),
                };
                let reason = if s.stable_rs == s.current_pod_hash && became_unhealthy {
                    msg = "Rollout does not have minimum availability".to_string();
                    ConditionReason::ReplicaSetNotAvailable
                } else {
                    ConditionReason::ReplicaSetUpdated
                };
                let mut cond = condition(ConditionType::Progressing, ConditionStatus::True, reason, &msg, now);
                if let Some(cur) = &current {
                    if cur.status == ConditionStatus::True {
                        cond.last_transition_time = cur.last_transition_time;
                    }
                    remove_condition(&mut s, ConditionType::Progressing);
                }
                set_condition(&mut s, cond);
            } else if !self.progress_not_measured() && self.timed_out(&s) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => format!("Rollout {:?} has timed out progressing.", self.name()),
                };
                let cond = condition(
                    ConditionType::Progressing,
                    ConditionStatus::False,
                    ConditionReason::ProgressDeadlineExceeded,
                    &msg,
                    now,
                );
                set_condition(&mut s, cond);
            }
        }

        let available = if self.ro.spec.blue_green().is_some() {
            let active = s.blue_green.active_selector.clone();
            self.all_rs().find(|r| !active.is_empty() && r.pod_hash() == active).is_some_and(|r| self.is_saturated(r))
        } else {
            total_replicas(self.all_rs().map(|r| r.available())) >= self.replicas()
        };
        let (available_status, message) = if available {
            (ConditionStatus::True, "Rollout has minimum availability")
        } else {
            (
                ConditionStatus::False,
                "Rollout does not have minimum availability",
            )
        };
        update_condition(
            &mut s,
            ConditionType::Available,
            available_status,
            ConditionReason::Available,
            message,
            now,
        );

        if !s.stable_rs.is_empty() && s.stable_rs == s.current_pod_hash {
            update_condition(
                &mut s,
                ConditionType::Completed,
                ConditionStatus::True,
                ConditionReason::RolloutCompleted,
                "RolloutCompleted",
                now,
            );
        } else if update_condition(
            &mut s,
            ConditionType::Completed,
            ConditionStatus::False,
            ConditionReason::RolloutCompleted,
            "RolloutCompleted",
            now,
        ) {
            let msg = format!(
                "Rollout not completed, started update to revision {} ({})",
                self.rollout_revision() + 1,
                s.current_pod_hash
            );
            self.event("RolloutNotCompleted", msg);
        }
        s
    }

    /// Argo's `evaluateProgressDeadlineAbort`: with `progressDeadlineAbort`, an update in
    /// flight whose Progressing condition had already timed out, and that made no progress
    /// in this reconcile, is aborted. It runs before the conditions are computed so that the
    /// `RolloutAborted` condition of this same reconcile carries the timeout message.
    fn evaluate_progress_deadline_abort(&mut self, s: &RolloutStatus) {
        if !self.ro.spec.progress_deadline_abort || self.pause.is_aborted(&self.ro.status) {
            return;
        }
        let completed = !s.stable_rs.is_empty() && s.stable_rs == s.current_pod_hash;
        if completed || self.rollout_progressing(s) || self.progress_not_measured() {
            return;
        }
        if !self.timed_out(&self.ro.status) {
            return;
        }
        let msg = match &self.new_rs {
            Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
            None => format!("Rollout {:?} has timed out progressing.", self.name()),
        };
        self.pause.add_abort(msg.clone());
        self.warning(ConditionReason::RolloutAborted.as_str(), msg);
    }

    /// Argo's `RolloutHealthy`.
    pub(super) fn rollout_healthy(&self, s: &RolloutStatus) -> bool {
        let replicas = self.replicas();
        let completed = if let Some(bg) = self.ro.spec.blue_green() {
            let active_ok = s.blue_green.active_selector == s.current_pod_hash;
            let preview_ok = bg.preview_service.is_empty() || s.blue_green.preview_selector == s.current_pod_hash;
            active_ok && preview_ok
        } else {
            let steps = self.ro.spec.steps().len() as i32;
            let all_steps = steps == 0 || s.current_step_index.is_none_or(|i| i == steps);
            let stable_current = !s.stable_rs.is_empty() && s.stable_rs == s.current_pod_hash;
            all_steps && stable_current && s.replicas == replicas
        };
        s.updated_replicas == replicas
            && s.available_replicas == replicas
            && self.ro.status.observed_generation == self.ro.metadata.generation.unwrap_or(0).to_string()
            && completed
    }

    /// Argo's `RolloutProgressing`: something moved since the last status.
    fn rollout_progressing(&self, s: &RolloutStatus) -> bool {
        let old = &self.ro.status;
        let strategy = if self.ro.spec.blue_green().is_some() {
            old.blue_green.active_selector != s.blue_green.active_selector
                || old.blue_green.preview_selector != s.blue_green.preview_selector
        } else {
            let step_moved = matches!((s.current_step_index, old.current_step_index), (Some(a), Some(b)) if a != b);
            s.stable_rs != old.stable_rs || step_moved || s.current_step_hash != old.current_step_hash
        };
        s.updated_replicas != old.updated_replicas
            || (s.replicas - s.updated_replicas) < (old.replicas - old.updated_replicas)
            || s.ready_replicas > old.ready_replicas
            || s.available_replicas > old.available_replicas
            || strategy
    }

    /// Whether the progress deadline is suspended: at a pause, analysis or experiment
    /// step, paused, or while old ReplicaSets wait for their scale-down deadline.
    fn progress_not_measured(&self) -> bool {
        if let Some(step) = self.current_step() {
            if matches!(step.kind(), StepKind::Pause(_) | StepKind::Analysis(_) | StepKind::Experiment(_)) {
                return true;
            }
        }
        if get_condition(&self.ro.status, ConditionType::Paused).is_some_and(|c| c.status == ConditionStatus::True) {
            return true;
        }
        self.other_rs
            .iter()
            .filter_map(|n| self.rs(n))
            .any(|rs| rs.has_scale_down_deadline() && rs.spec_replicas() > 0)
    }

    /// Argo's `RolloutTimedOut`.
    fn timed_out(&self, s: &RolloutStatus) -> bool {
        let Some(cond) = get_condition(s, ConditionType::Progressing) else {
            return false;
        };
        if cond.has_reason(ConditionReason::RolloutAborted)
            || cond.has_reason(ConditionReason::RolloutPaused)
        {
            return false;
        }
        if cond.has_reason(ConditionReason::ProgressDeadlineExceeded) {
            return true;
        }
        let deadline = Seconds(i64::from(self.ro.spec.progress_deadline_seconds()));
        cond.last_update_time.plus(deadline) < self.now
    }

    /// Argo's `IsSaturated`.
    pub(super) fn is_saturated(&self, rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> bool {
        let replicas = self.replicas();
        let desired = rs.annotation(crate::api::keys::DESIRED_REPLICAS).and_then(|d| d.parse::<i32>().ok());
        rs.spec_replicas() == replicas && desired == Some(replicas) && rs.available() == replicas
    }

    /// The canary step at `status.currentStepIndex`.
    pub(super) fn current_step(&self) -> Option<&crate::api::CanaryStep> {
        let steps = self.ro.spec.steps();
        if steps.is_empty() {
            return None;
        }
        let idx = self.ro.status.current_step_index.unwrap_or(0);
        usize::try_from(idx).ok().and_then(|i| steps.get(i))
    }

    /// Argo's `persistRolloutStatus`: pause fields, observedGeneration, phase, duration;
    /// patch if anything changed, else schedule the progress-deadline check.
    pub(super) fn persist_status(&mut self, mut s: RolloutStatus) {
        let old = &self.ro.status;
        self.pause.apply(old, &mut s, self.now);
        // Argo copies the `workload-generation` annotation its resolver writes.
        s.workload_observed_generation = match &self.ro.spec.workload_ref {
            Some(_) => self.ro.metadata.annotations.as_ref().and_then(|a| a.get(super::workload::WORKLOAD_GENERATION)).cloned().unwrap_or_default(),
            None => String::new(),
        };
        s.observed_generation = self.ro.metadata.generation.unwrap_or(0).to_string();
        let (phase, message) = calculate_phase(&self.ro.spec, &s);
        s.phase = Some(phase);
        s.message = message;
        s.duration = self.duration(old, &s);
        match status_patch(old, &s) {
            Some(a) => {
                let was_paused = !old.pause_conditions.is_empty();
                self.actions.push(a);
                self.state_change_events(was_paused, &s);
                self.ro.status = s;
            }
            None => self.requeue_stuck_rollout(&s),
        }
    }

    fn state_change_events(&mut self, was_paused: bool, new: &RolloutStatus) {
        let is = !new.pause_conditions.is_empty();
        if was_paused != is {
            if is {
                let reason = new.pause_conditions[0].reason.as_str();
                self.event("RolloutPaused", format!("Rollout is paused ({reason})"));
            } else if new.aborted_at.is_none() {
                // An abort clears the pause conditions too; that is not a resume.
                self.event("RolloutResumed", "Rollout is resumed".to_string());
            }
        }
    }

    /// Argo's `requeueStuckRollout`: wake when the progress deadline could pass.
    fn requeue_stuck_rollout(&mut self, s: &RolloutStatus) {
        let Some(cond) = get_condition(&self.ro.status, ConditionType::Progressing).cloned() else { return };
        let paused = !self.ro.status.pause_conditions.is_empty() || self.ro.spec.paused;
        if self.rollout_healthy(s)
            || cond.has_reason(ConditionReason::ProgressDeadlineExceeded)
            || paused
            || self.ro.status.abort
            || self.progress_not_measured()
        {
            return;
        }
        let deadline = cond.last_update_time.plus(Seconds(i64::from(self.ro.spec.progress_deadline_seconds())));
        // One second past the deadline: the comparison is strict.
        self.wake_at(deadline.plus(Seconds(1)), WakeReason::ProgressDeadline);
    }

    /// `status.duration`: when the update started, time spent waiting for people, when and
    /// how it finished.
    fn duration(&self, old: &RolloutStatus, new: &RolloutStatus) -> Option<RolloutDurationStatus> {
        let now = self.now;
        let mut d = old.duration.clone().unwrap_or_default();
        if self.update_reset {
            d = RolloutDurationStatus { rollout_started_at: Some(now), ..Default::default() };
        }
        let manual = self.ro.spec.paused
            || new.pause_conditions.iter().any(|p| match p.reason {
                PauseReason::InconclusiveAnalysisRun | PauseReason::InconclusiveExperiment => true,
                PauseReason::CanaryPauseStep => self
                    .current_step()
                    .is_some_and(|s| matches!(s.kind(), StepKind::Pause(p) if p.duration.is_none())),
                PauseReason::BlueGreenPause => {
                    self.ro.spec.blue_green().is_some_and(|b| !b.auto_promotion_enabled())
                }
            });
        match (d.manual_pause_started_at, manual) {
            (None, true) => d.manual_pause_started_at = Some(now),
            (Some(start), false) => {
                let waited = now.since(start).0.clamp(0, i64::from(i32::MAX)) as i32;
                d.total_manual_pause_duration_seconds = d.total_manual_pause_duration_seconds.saturating_add(waited);
                d.manual_pause_started_at = None;
            }
            _ => {}
        }
        let stable_changed = !new.stable_rs.is_empty() && new.stable_rs != old.stable_rs;
        if stable_changed {
            d.finished_at = Some(now);
            d.completion_status = Some(self.completion_kind(old));
        } else if new.abort && !old.abort {
            d.finished_at = Some(now);
            d.completion_status = Some(CompletionStatus::Aborted);
        } else if self.update_reset && stable_changed_back(old, new) {
            // Reverting to the stable template finishes the update at once.
            d.finished_at = Some(now);
            d.completion_status = Some(CompletionStatus::FastRolledBack);
        } else if old.abort && !new.abort && d.completion_status == Some(CompletionStatus::Aborted) {
            d.finished_at = None;
            d.completion_status = None;
        }
        if d == RolloutDurationStatus::default() {
            None
        } else {
            Some(d)
        }
    }

    fn completion_kind(&self, old: &RolloutStatus) -> CompletionStatus {
        let new_older_than_stable = match (self.new_rs(), self.stable_rs()) {
            (Some(n), Some(s)) => (n.created(), n.name()) < (s.created(), s.name()),
            _ => false,
        };
        if old.promote_full {
            CompletionStatus::FastPromoted
        } else if new_older_than_stable {
            if self.is_rollback_within_window() {
                CompletionStatus::FastRolledBack
            } else {
                CompletionStatus::RolledBack
            }
        } else {
            CompletionStatus::Promoted
        }
    }

    /// Sets the selector fields common to both strategies' status.
    pub(super) fn canary_selector(&self) -> String {
        self.selector.clone()
    }
}

/// The template went back to the stable ReplicaSet in this reconcile.
fn stable_changed_back(old: &RolloutStatus, new: &RolloutStatus) -> bool {
    !new.stable_rs.is_empty()
        && new.current_pod_hash == new.stable_rs
        && old.current_pod_hash != new.current_pod_hash
        && !old.current_pod_hash.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_condition_keeps_transition_time_when_status_holds() {
        let mut s = RolloutStatus::default();
        let a = condition(
            ConditionType::Progressing,
            ConditionStatus::True,
            ConditionReason::ReplicaSetUpdated,
            "a",
            Timestamp(1),
        );
        assert!(set_condition(&mut s, a.clone()));
        assert!(!set_condition(&mut s, a));
        let b = condition(
            ConditionType::Progressing,
            ConditionStatus::True,
            ConditionReason::NewReplicaSetAvailable,
            "b",
            Timestamp(5),
        );
        assert!(set_condition(&mut s, b));
        let c = get_condition(&s, ConditionType::Progressing).unwrap();
        assert_eq!((c.last_transition_time, c.last_update_time), (Timestamp(1), Timestamp(5)));
    }

    /// A promote's batch: the step's status, then the next step's scale. The pods are asked
    /// for first; the events and wake-ups keep their places.
    #[test]
    fn a_batchs_status_patch_goes_after_its_replica_set_writes() {
        let status = |n: i32| Action::PatchRolloutStatus { patch: serde_json::json!({"status": {"currentStepIndex": n}}) };
        let scale = |name: &str| Action::PatchReplicaSet {
            name: name.to_string(),
            patch: crate::state::ReplicaSetPatch { replicas: Some(1), ..Default::default() },
        };
        let event = Action::RecordEvent {
            kind: crate::state::EventType::Normal,
            reason: "RolloutStepCompleted".into(),
            message: "done".into(),
        };
        let wake = Action::WakeAt { at: Timestamp(9), reason: crate::state::WakeReason::PauseStepElapsed };
        let batch = vec![event.clone(), status(1), scale("new"), status(2), scale("old"), wake.clone()];
        assert_eq!(coalesce_status_patches(batch), vec![event.clone(), scale("new"), scale("old"), status(2), wake.clone()]);
        // Nothing to move: the status is already last, or there is no scale.
        let batch = vec![scale("new"), event.clone(), status(1)];
        assert_eq!(coalesce_status_patches(batch.clone()), batch);
        let batch = vec![status(1), event, wake];
        assert_eq!(coalesce_status_patches(batch.clone()), batch);
    }
}
