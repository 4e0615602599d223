//! The canary strategy without a traffic router: steps, replica-weighted scaling, pauses.

use super::context::Ctx;
use crate::api::{PauseReason, StepKind};
use crate::objects::{total_replicas, ReplicaSetExt};
use crate::replicas;
use crate::state::WakeReason;

impl Ctx<'_> {
    /// Argo's `rolloutCanary`.
    pub(super) fn rollout_canary(&mut self) {
        if self.template_or_steps_changed() {
            self.sync_replica_set_revision();
            self.sync_status_canary();
            return;
        }
        self.sync_revision_and_create();
        if self.restart_pods() {
            // The experiments were not reconciled: the one followed stays named (Argo
            // writes no status at all after evicting pods).
            self.new_status.canary.current_experiment = self.ro.status.canary.current_experiment.clone();
            self.sync_status_canary();
            return;
        }
        self.reconcile_ephemeral_metadata();
        self.reconcile_revision_history_limit();
        self.reconcile_ping_pong_service();
        self.reconcile_stable_and_canary_service();
        self.reconcile_traffic_routing();
        self.reconcile_experiments();
        self.reconcile_analysis_runs();
        if self.pause.has_add_pause() {
            // An inconclusive run paused the rollout: nothing moves until a person decides.
            self.sync_status_canary();
            return;
        }
        if !self.reconcile_canary_replica_sets() {
            self.reconcile_canary_pause();
        }
        self.sync_status_canary();
    }

    /// Argo's `PodTemplateOrStepsChanged`.
    pub(super) fn template_or_steps_changed(&self) -> bool {
        let status = &self.ro.status;
        if status.current_step_hash.is_empty() || status.current_step_hash != self.steps_hash {
            return true;
        }
        self.template_changed()
    }

    /// Argo's `CheckPodSpecChange`.
    pub(super) fn template_changed(&self) -> bool {
        let status = &self.ro.status;
        !status.current_pod_hash.is_empty() && status.current_pod_hash != self.new_hash()
    }

    /// Desired (new, stable) replica counts.
    fn desired_canary_counts(&self) -> (i32, i32) {
        replicas::replica_counts_for_canary(
            &self.ro.spec,
            &self.ro.status,
            self.counts(self.new_rs.as_deref()),
            self.counts(self.stable_rs.as_deref()),
            self.stable_is_new(),
            &self.other_counts(),
        )
    }

    /// Argo's `AtDesiredReplicaCountsForCanary` for this reconcile's ReplicaSets.
    pub(super) fn at_desired_canary_counts(&self) -> bool {
        replicas::at_desired_replica_counts_for_canary(
            &self.ro.spec,
            &self.ro.status,
            self.counts(self.new_rs.as_deref()),
            self.counts(self.stable_rs.as_deref()),
            self.stable_is_new(),
            &self.other_counts(),
        )
    }

    /// Argo's `reconcileCanaryReplicaSets`: at most one scaling move; returns whether one
    /// was made.
    pub(super) fn reconcile_canary_replica_sets(&mut self) -> bool {
        if self.halt_progress() {
            return false;
        }
        // Moving back to a ReplicaSet still waiting for its scale-down removes the deadline.
        if let Some(n) = self.new_rs.clone() {
            if !self.should_delay_scale_down_on_abort() {
                self.remove_scale_down_delay(&n);
            }
        }
        if let Some(s) = self.stable_rs.clone() {
            if Some(&s) != self.new_rs.as_ref() || self.should_delay_scale_down_on_abort() {
                self.remove_scale_down_delay(&s);
            }
        }
        // Counted once: scaling the stable ReplicaSet ends this function, and nothing else
        // before the new one is scaled changes a replica count.
        let (new_count, stable_count) = self.desired_canary_counts();
        if let Some(stable) = self.stable_rs.clone().filter(|_| !self.stable_is_new()) {
            if self.scale_rs(&stable, stable_count) {
                return true;
            }
        }
        if let Some(new) = self.new_rs.clone() {
            if self.reconcile_new_replica_set(&new, new_count) {
                return true;
            }
        }
        self.reconcile_other_replica_sets_canary()
    }

    /// Argo's `reconcileOtherReplicaSets` + `scaleDownOldReplicaSetsForCanary`.
    fn reconcile_other_replica_sets_canary(&mut self) -> bool {
        let mut others: Vec<String> =
            self.other_rs.iter().filter(|n| self.rs(n).is_some_and(|rs| rs.spec_replicas() > 0)).cloned().collect();
        if others.is_empty() {
            return false;
        }
        // Unhealthy pods go first, so they cannot block the rollout.
        others.sort_by_key(|n| self.rs(n).map(|rs| (rs.created(), rs.name().to_string())));
        // Counted wide: several ReplicaSets may each report up to `i32::MAX`.
        let mut scaled_down: i64 = 0;
        for name in &others {
            let Some(rs) = self.rs(name) else { continue };
            let (spec, available) = (rs.spec_replicas(), rs.available());
            if spec == 0 || spec == available || available > spec {
                continue;
            }
            self.scale_rs(name, available);
            scaled_down += i64::from(spec - available);
        }
        let available: i32 = total_replicas(self.all_rs().map(|r| r.available()));
        let max_unavailable = replicas::canary_fenceposts(&self.ro.spec).map(|(_, u)| u).unwrap_or(0);
        let min_available = self.replicas() - max_unavailable;
        let mut max_scale_down = available - min_available;
        if max_scale_down <= 0 {
            return scaled_down > 0;
        }
        // Newest revision first.
        others.sort_by_key(|n| {
            self.rs(n).map(|rs| (std::cmp::Reverse(rs.revision().unwrap_or(0)), std::cmp::Reverse(rs.created())))
        });
        let routed = self.ro.spec.has_traffic_routing();
        let dynamic = self.ro.spec.canary().is_some_and(|c| c.dynamic_stable_scale);
        let mut annotated = 0;
        for name in others {
            if self.is_still_referenced(&name) || (routed && self.selected_by_a_service(&name)) {
                continue;
            }
            if max_scale_down <= 0 {
                break;
            }
            let Some((spec, has_deadline)) = self.rs(&name).map(|rs| (rs.spec_replicas(), rs.has_scale_down_deadline())) else {
                continue;
            };
            if spec == 0 {
                continue;
            }
            let desired = if !routed {
                if spec > max_scale_down { spec - max_scale_down } else { 0 }
            } else if (self.is_fully_promoted() || has_deadline) && !dynamic {
                // The previous stable keeps serving until its scale-down delay passes.
                self.scale_down_delay_helper(&name, &mut annotated, spec)
            } else {
                // Fully promoted with dynamicStableScale (traffic already left it), or an
                // intermediate ReplicaSet of an interrupted update that no traffic reaches.
                0
            };
            if spec == desired {
                continue;
            }
            self.scale_rs(&name, desired);
            max_scale_down -= spec - desired;
            scaled_down += i64::from(spec - desired);
        }
        scaled_down > 0
    }

    /// Whether the canary or stable Service selects this ReplicaSet's pods.
    fn selected_by_a_service(&self, name: &str) -> bool {
        let Some(hash) = self.rs(name).map(|rs| rs.pod_hash().to_string()).filter(|h| !h.is_empty()) else {
            return false;
        };
        let Some(c) = self.ro.spec.canary() else { return false };
        [&c.canary_service, &c.stable_service]
            .into_iter()
            .filter_map(|s| self.state.services.get(s.as_str()))
            .any(|svc| crate::objects::service_selected_hash(svc) == hash)
    }

    /// Argo's `IsStillReferenced`: the status still points at this ReplicaSet.
    fn is_still_referenced(&self, name: &str) -> bool {
        let Some(hash) = self.rs(name).map(|rs| rs.pod_hash().to_string()) else { return false };
        if hash.is_empty() {
            return false;
        }
        let s = &self.ro.status;
        let mut refs = vec![&s.stable_rs, &s.current_pod_hash];
        if let Some(w) = &s.canary.weights {
            refs.push(&w.canary.pod_template_hash);
            refs.push(&w.stable.pod_template_hash);
        }
        refs.into_iter().any(|r| *r == hash)
    }

    /// Argo's `reconcileCanaryPause`.
    fn reconcile_canary_pause(&mut self) {
        if self.ro.spec.paused || self.ro.status.promote_full {
            return;
        }
        let Some(step) = self.current_step().cloned() else { return };
        let StepKind::Pause(_) = step.kind() else { return };
        let cond = self.ro.status.pause_conditions.iter().find(|c| c.reason == PauseReason::CanaryPauseStep).cloned();
        match cond {
            None => {
                if !self.ro.status.controller_pause {
                    self.pause.add_pause(PauseReason::CanaryPauseStep);
                }
            }
            Some(_) => self.pause_step_wake(),
        }
    }

    /// Asks to be woken when the current timed pause step ends.
    pub(super) fn pause_step_wake(&mut self) {
        let Some(StepKind::Pause(pause)) = self.current_step().map(|s| s.kind()) else { return };
        let Ok(Some(d)) = pause.duration_seconds() else { return };
        let start = self.ro.status.pause_conditions.iter().find(|c| c.reason == PauseReason::CanaryPauseStep);
        if let Some(c) = start {
            self.wake_at(c.start_time.plus(d), WakeReason::PauseStepElapsed);
        }
    }

    /// Argo's `completedCurrentCanaryStep`.
    fn completed_current_step(&self) -> bool {
        if self.ro.spec.paused {
            return false;
        }
        let Some(step) = self.current_step() else { return false };
        match step.kind() {
            StepKind::Pause(pause) => {
                let cond = self.ro.status.pause_conditions.iter().find(|c| c.reason == PauseReason::CanaryPauseStep);
                if self.ro.status.controller_pause && cond.is_none() {
                    return true;
                }
                match (pause.duration_seconds(), cond) {
                    // The boundary counts as elapsed: stored start times are whole seconds.
                    (Ok(Some(d)), Some(c)) => self.now >= c.start_time.plus(d),
                    _ => false,
                }
            }
            StepKind::SetWeight(_) if self.new_status.canary.weights.as_ref().is_some_and(|w| w.verified == Some(false)) => {
                // A router that can verify has not confirmed the weight yet.
                false
            }
            StepKind::SetWeight(_) | StepKind::SetCanaryScale(_) => self.at_desired_canary_counts(),
            StepKind::Analysis(_) => self.step_run_succeeded(),
            StepKind::Experiment(_) => self.step_experiment_succeeded(),
            // Header and mirror routes are written by the routers in this reconcile;
            // plugin steps are refused by validation.
            StepKind::SetHeaderRoute(_) | StepKind::SetMirrorRoute(_) => true,
            StepKind::Plugin(_) | StepKind::Empty => false,
        }
    }

    /// Argo's `shouldFullPromote` for a canary.
    fn should_full_promote_canary(&self) -> Option<String> {
        if self.stable_rs.is_none() {
            return Some("Initial deploy".into());
        }
        if self.pause.is_aborted(&self.ro.status) {
            return None;
        }
        self.new_rs()?;
        if !self.new_rs_progress_met() {
            return None;
        }
        if self.ro.status.promote_full {
            return Some("Full promotion requested".into());
        }
        if self.is_rollback_within_window() {
            return Some("Rollback within window".into());
        }
        let steps = self.ro.spec.steps().len() as i32;
        let done = steps == 0 || self.ro.status.current_step_index == Some(steps);
        done.then(|| format!("Completed all {steps} canary steps"))
    }

    /// The new ReplicaSet has at least `spec.replicas` pods available, or meets
    /// `replicaProgressThreshold` for `spec.replicas` (Argo's `shouldFullPromote`: a canary
    /// that HPA scaled below its available pods may still complete).
    fn new_rs_progress_met(&self) -> bool {
        let replicas = self.replicas();
        let counts = self.counts(self.new_rs.as_deref());
        counts.is_some_and(|c| c.available >= replicas)
            || replicas::replica_progress_threshold_met(&self.ro.spec, counts, i64::from(replicas))
    }

    /// Argo's `isRollbackWithinWindow`.
    pub(super) fn is_rollback_within_window(&self) -> bool {
        let (Some(new), Some(stable)) = (self.new_rs(), self.stable_rs()) else { return false };
        let key = |rs: &k8s_openapi::api::apps::v1::ReplicaSet| (rs.created(), rs.name().to_string());
        if key(new) >= key(stable) {
            return false;
        }
        let Some(window) = self.ro.spec.rollback_window.as_ref().map(|w| w.revisions).filter(|r| *r > 0) else {
            return false;
        };
        let between = self
            .all_rs()
            .filter(|rs| rs.annotation("experiments.argoproj.io/experiment-name").is_none())
            .filter(|rs| key(rs) < key(stable) && key(new) < key(rs))
            .count();
        (between as i64) < i64::from(window)
    }

    /// Argo's `promoteStable`.
    pub(super) fn promote_stable(&mut self, s: &mut crate::api::RolloutStatus, reason: &str) {
        self.pause.clear_pauses();
        self.pause.remove_abort();
        s.promote_full = false;
        s.blue_green.scale_up_preview_check_point = false;
        if self.ro.spec.canary().is_some() {
            let steps = self.ro.spec.steps().len() as i32;
            s.current_step_index = if steps > 0 { Some(steps) } else { None };
        }
        if s.stable_rs != s.current_pod_hash {
            if self.ro.spec.canary().is_some_and(|c| c.ping_pong.is_some()) {
                // The Service that followed the new ReplicaSet becomes the stable one.
                let flipped = if s.canary.stable_ping_pong == super::traffic::PING { super::traffic::PONG } else { super::traffic::PING };
                s.canary.stable_ping_pong = flipped.to_string();
            }
            s.stable_rs = s.current_pod_hash.clone();
            let revision = self.rollout_revision();
            let hash = s.current_pod_hash.clone();
            self.event("RolloutCompleted", format!("Rollout completed update to revision {revision} ({hash}): {reason}"));
        }
        // `workloadRef.scaleDown: onsuccess`: the Deployment goes once the first revision is
        // promoted and Healthy (the status of the previous reconcile, as Argo reads it).
        let on_success = self.ro.spec.workload_ref.as_ref().is_some_and(|w| w.scale_down == "onsuccess");
        if on_success && self.rollout_revision() == 1 && self.ro.status.phase == Some(crate::api::RolloutPhase::Healthy) {
            self.scale_deployment(0);
        }
    }

    /// Argo's `syncRolloutStatusCanary`.
    pub(super) fn sync_status_canary(&mut self) {
        let mut s = self.base_status();
        s.available_replicas = total_replicas(self.all_rs().map(|r| r.available()));
        s.hpa_replicas = total_replicas(self.all_rs().map(|r| r.status_replicas()));
        s.selector = self.canary_selector();
        s.stable_rs = self.ro.status.stable_rs.clone();
        s.current_step_hash = self.steps_hash.clone();
        let step_count = self.ro.spec.steps().len() as i32;
        let mut index = if step_count > 0 { Some(self.ro.status.current_step_index.unwrap_or(0)) } else { None };

        if self.template_or_steps_changed() {
            self.reset_status(&mut s);
            let new_hash = self.new_rs().map(|r| r.pod_hash().to_string());
            let new_active = self.new_rs().is_some_and(|r| r.spec_replicas() > 0);
            if new_hash.is_some() && new_hash.as_deref() == Some(self.ro.status.stable_rs.as_str()) {
                if step_count > 0 {
                    self.event("SkipSteps", "Rollback to stable ReplicaSets".into());
                    s.current_step_index = Some(step_count);
                }
            } else if self.is_rollback_within_window() && new_active && step_count > 0 {
                self.event("SkipSteps", "Rollback to active ReplicaSets within RollbackWindow".into());
                s.current_step_index = Some(step_count);
            }
            let s = self.calculate_conditions(s);
            self.persist_status(s);
            return;
        }

        if self.ro.status.promote_full || self.is_rollback_within_window() {
            self.pause.clear_pauses();
            self.pause.remove_abort();
            if step_count > 0 {
                index = Some(step_count);
            }
        }

        if let Some(reason) = self.should_full_promote_canary() {
            s.current_step_index = index;
            self.promote_stable(&mut s, &reason);
            let s = self.calculate_conditions(s);
            self.persist_status(s);
            return;
        }

        if self.pause.is_aborted(&self.ro.status) {
            if step_count > 0 {
                s.current_step_index = Some(if s.stable_rs == s.current_pod_hash { step_count } else { 0 });
            }
            let s = self.calculate_conditions(s);
            self.persist_status(s);
            return;
        }

        if self.completed_current_step() {
            let step = self.current_step().map(|st| st.describe()).unwrap_or_default();
            let next = index.unwrap_or(0) + 1;
            index = Some(next);
            s.canary.current_step_analysis_run_status = None;
            self.event("RolloutStepCompleted", format!("Rollout step {next}/{step_count} completed ({step})"));
            self.pause.remove_pause(PauseReason::CanaryPauseStep);
        }

        s.current_step_index = index;
        let s = self.calculate_conditions(s);
        self.persist_status(s);
    }
}
