//! The blue-green strategy: preview and active services, the promotion pause, and the
//! delayed scale-down of the previous active ReplicaSet.

use super::context::Ctx;
use crate::api::{PauseReason, RolloutStatus};
use crate::objects::{format_label_selector, service_selected_hash, total_replicas, ReplicaSetExt};
use crate::state::WakeReason;
use crate::time::Seconds;

impl Ctx<'_> {
    fn active_service(&self) -> String {
        self.ro.spec.blue_green().map(|b| b.active_service.clone()).unwrap_or_default()
    }

    /// The hash the active Service selects now, or "".
    fn active_selector(&self) -> String {
        self.state.services.get(&self.active_service()).map(|s| service_selected_hash(s).to_string()).unwrap_or_default()
    }

    fn preview_selector(&self) -> String {
        let name = self.ro.spec.blue_green().map(|b| b.preview_service.clone()).unwrap_or_default();
        self.state.services.get(&name).map(|s| service_selected_hash(s).to_string()).unwrap_or_default()
    }

    /// Argo's `rolloutBlueGreen`.
    pub(super) fn rollout_blue_green(&mut self) {
        self.sync_revision_and_create();
        self.reconcile_preview_service();
        if self.template_changed() {
            self.sync_status_blue_green();
            return;
        }
        self.restart_pods();
        self.reconcile_blue_green_replica_sets();
        self.reconcile_blue_green_pause();
        self.reconcile_active_service();
        self.reconcile_analysis_runs();
        self.reconcile_ephemeral_metadata();
        self.sync_status_blue_green();
    }

    /// Argo's `reconcileBlueGreenReplicaSets`.
    pub(super) fn reconcile_blue_green_replica_sets(&mut self) {
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
        // The ReplicaSet behind the active service is kept at full size.
        let active = self.active_selector();
        if !active.is_empty() {
            let active_rs = self.all_rs().find(|rs| rs.pod_hash() == active).map(|rs| rs.name().to_string());
            if let Some(name) = active_rs {
                let replicas = self.replicas();
                self.scale_rs(&name, replicas);
            }
        }
        self.reconcile_new_replica_set_blue_green();
        self.scale_down_old_replica_sets_blue_green();
        self.reconcile_revision_history_limit();
    }

    /// Argo's `NewRSNewReplicas` for blue-green.
    fn blue_green_new_rs_replicas(&self) -> i32 {
        let replicas = self.replicas();
        let Some(bg) = self.ro.spec.blue_green() else { return replicas };
        let Some(preview) = bg.preview_replica_count else { return replicas };
        let active = &self.ro.status.blue_green.active_selector;
        let active_rs = self.all_rs().find(|rs| !active.is_empty() && rs.pod_hash() == active.as_str());
        let new_name = self.new_rs.clone().unwrap_or_default();
        if active_rs.is_none_or(|rs| rs.name() == new_name) || self.ro.status.promote_full {
            return replicas;
        }
        if self.new_hash() != self.ro.status.current_pod_hash {
            return preview;
        }
        let not_paused = !self.ro.spec.paused && self.ro.status.pause_conditions.is_empty();
        if not_paused && self.ro.status.blue_green.scale_up_preview_check_point {
            return replicas;
        }
        preview
    }

    /// Argo's `reconcileNewReplicaSet` (blue-green part).
    fn reconcile_new_replica_set_blue_green(&mut self) {
        let Some(new) = self.new_rs.clone() else { return };
        let count = self.blue_green_new_rs_replicas();
        self.reconcile_new_replica_set(&new, count);
    }

    /// Argo's `isReplicaSetReferenced`.
    fn is_referenced_blue_green(&self, name: &str) -> bool {
        let Some(hash) = self.rs(name).map(|rs| rs.pod_hash().to_string()) else { return false };
        if hash.is_empty() {
            return false;
        }
        let s = &self.ro.status;
        if [&s.stable_rs, &s.current_pod_hash, &s.blue_green.active_selector, &s.blue_green.preview_selector]
            .into_iter()
            .any(|r| *r == hash)
        {
            return true;
        }
        self.active_selector() == hash || self.preview_selector() == hash
    }

    /// Argo's `scaleDownOldReplicaSetsForBlueGreen` with the scale-down-delay helper.
    fn scale_down_old_replica_sets_blue_green(&mut self) {
        if self.ro.status.pause_conditions.iter().any(|c| c.reason == PauseReason::InconclusiveAnalysisRun) {
            return;
        }
        let bg = self.ro.spec.blue_green().cloned().unwrap_or_default();
        if bg.post_promotion_analysis.is_some()
            && bg.scale_down_delay_seconds.is_none()
            && !self.skip_post_promotion()
            && !self.post_promotion_succeeded_now()
        {
            // Without a scale-down delay, the old ReplicaSet stays until post-promotion
            // analysis has passed.
            return;
        }
        let mut others: Vec<String> =
            self.other_rs.iter().filter(|n| self.rs(n).is_some_and(|rs| rs.spec_replicas() > 0)).cloned().collect();
        others.sort_by_key(|n| {
            self.rs(n).map(|rs| (std::cmp::Reverse(rs.revision().unwrap_or(0)), std::cmp::Reverse(rs.created())))
        });
        let replicas = self.replicas();
        let mut annotated = 0i32;
        for name in others {
            if self.is_referenced_blue_green(&name) {
                continue;
            }
            let Some(spec) = self.rs(&name).map(|rs| rs.spec_replicas()) else { continue };
            if spec == 0 {
                continue;
            }
            let desired = self.scale_down_delay_helper(&name, &mut annotated, replicas);
            if spec != desired {
                self.scale_rs(&name, desired);
            }
        }
    }

    fn needs_controller_pause(&self) -> bool {
        let Some(bg) = self.ro.spec.blue_green() else { return false };
        !bg.auto_promotion_enabled() || bg.auto_promotion_seconds > 0
    }

    /// Argo's `ReadyForPause`: the new ReplicaSet has its desired size, all available.
    fn ready_for_pause(&self) -> bool {
        let Some(new) = self.new_rs() else { return false };
        let desired = self.blue_green_new_rs_replicas();
        new.spec_replicas() == desired && new.available() == desired
    }

    fn is_fast_tracked(&self) -> bool {
        let Some(new) = self.new_rs() else { return false };
        if new.has_scale_down_deadline() || self.ro.status.promote_full {
            return true;
        }
        let active = self.active_selector();
        active.is_empty() || active == new.pod_hash()
    }

    /// Argo's `CompletedBlueGreenPause`.
    fn completed_blue_green_pause(&self) -> bool {
        if self.pause.has_add_pause() {
            return false;
        }
        if self.ro.status.blue_green.scale_up_preview_check_point || !self.needs_controller_pause() {
            return true;
        }
        let Some(bg) = self.ro.spec.blue_green() else { return true };
        let cond = self.ro.status.pause_conditions.iter().find(|c| c.reason == PauseReason::BlueGreenPause);
        if bg.auto_promotion_enabled() {
            if bg.auto_promotion_seconds == 0 {
                return true;
            }
            // The boundary counts as elapsed: stored start times are whole seconds.
            cond.is_some_and(|c| self.now >= c.start_time.plus(Seconds(i64::from(bg.auto_promotion_seconds))))
        } else {
            self.ro.status.controller_pause && cond.is_none()
        }
    }

    /// Argo's `reconcileBlueGreenPause`.
    fn reconcile_blue_green_pause(&mut self) {
        if self.ro.status.abort || !self.ready_for_pause() || self.halt_progress() {
            return;
        }
        let new_hash = self.new_hash();
        if self.is_fast_tracked()
            || self.active_selector() == new_hash
            || self.ro.status.blue_green.scale_up_preview_check_point
            || !self.needs_controller_pause()
        {
            self.pause.remove_pause(PauseReason::BlueGreenPause);
            return;
        }
        if !self.completed_pre_promotion_analysis() {
            return;
        }
        let cond = self.ro.status.pause_conditions.iter().find(|c| c.reason == PauseReason::BlueGreenPause).cloned();
        match cond {
            Some(cond) => {
                if self.completed_blue_green_pause() {
                    self.pause.remove_pause(PauseReason::BlueGreenPause);
                } else if let Some(bg) = self.ro.spec.blue_green() {
                    if bg.auto_promotion_seconds > 0 && bg.auto_promotion_enabled() {
                        let at = cond.start_time.plus(Seconds(i64::from(bg.auto_promotion_seconds)));
                        self.wake_at(at, WakeReason::AutoPromotion);
                    }
                }
            }
            None => {
                if !self.ro.status.controller_pause {
                    self.pause.add_pause(PauseReason::BlueGreenPause);
                }
            }
        }
    }

    /// Argo's `reconcileActiveService`.
    fn reconcile_active_service(&mut self) {
        if self.halt_progress() {
            return;
        }
        let Some(new) = self.new_rs() else { return };
        if !self.ready_for_pause() || !self.is_saturated(new) {
            return;
        }
        let new_hash = new.pod_hash().to_string();
        let mut target = self.active_selector();
        if self.is_fast_tracked() || (self.completed_blue_green_pause() && self.completed_pre_promotion_analysis()) {
            target = new_hash;
        }
        if self.ro.status.abort {
            target = self.ro.status.stable_rs.clone();
        }
        if target.is_empty() {
            return;
        }
        let active = self.active_service();
        self.switch_service_selector(&active, &target);
    }

    /// Argo's `shouldFullPromote` for blue-green.
    fn should_full_promote_blue_green(&self, s: &RolloutStatus) -> Option<String> {
        if self.stable_rs.is_none() {
            return Some("Initial deploy".into());
        }
        if s.blue_green.active_selector.is_empty() {
            return Some("Initial deploy".into());
        }
        if s.blue_green.active_selector != s.current_pod_hash {
            return None;
        }
        if self.ro.status.promote_full {
            return Some("Full promotion requested".into());
        }
        if self.is_rollback_within_window() {
            return Some("Rollback within window".into());
        }
        if self.pause.is_aborted(&self.ro.status) {
            return None;
        }
        if self.ro.spec.blue_green().is_some_and(|b| b.post_promotion_analysis.is_some()) {
            // Moving back to a ReplicaSet still within its scale-down delay skips analysis.
            if let Some(new) = self.new_rs().filter(|r| r.has_scale_down_deadline()) {
                return Some(format!("Rollback to '{}' within scaleDownDelay", new.name()));
            }
            if !self.post_promotion_succeeded() {
                return None;
            }
        }
        Some("Completed blue-green update".into())
    }

    /// Argo's `calculateScaleUpPreviewCheckPoint`.
    fn scale_up_preview_check_point(&self) -> bool {
        let Some(preview) = self.ro.spec.blue_green().and_then(|b| b.preview_replica_count) else { return false };
        if self.ro.status.blue_green.scale_up_preview_check_point {
            return true;
        }
        // A halted rollout sets nothing new: a timed pause that ends while it is paused
        // would otherwise change the status on whichever reconcile comes next, with no
        // wake-up asked for it (the pause's timer is not armed while halted).
        if self.halt_progress() {
            return false;
        }
        if !self.completed_pre_promotion_analysis() || !self.completed_blue_green_pause() {
            return false;
        }
        self.new_rs().is_some_and(|rs| rs.available() == preview)
    }

    /// Argo's `syncRolloutStatusBlueGreen`.
    fn sync_status_blue_green(&mut self) {
        let mut s = self.base_status();
        s.stable_rs = self.ro.status.stable_rs.clone();
        if self.template_changed() {
            self.reset_status(&mut s);
        }
        if self.ro.status.promote_full || self.is_rollback_within_window() {
            self.pause.clear_pauses();
            self.pause.remove_abort();
        }
        s.blue_green.preview_selector = self.preview_selector();
        s.blue_green.active_selector = self.active_selector();
        if let Some(reason) = self.should_full_promote_blue_green(&s) {
            self.promote_stable(&mut s, &reason);
        } else {
            s.blue_green.scale_up_preview_check_point = self.scale_up_preview_check_point();
        }
        let active = s.blue_green.active_selector.clone();
        match self.all_rs().find(|rs| !active.is_empty() && rs.pod_hash() == active) {
            Some(rs) => {
                s.hpa_replicas = rs.status_replicas();
                s.available_replicas = rs.available();
                s.ready_replicas = rs.ready();
                s.selector = rs.spec.as_ref().map(|sp| format_label_selector(&sp.selector)).unwrap_or_default();
            }
            None => {
                s.hpa_replicas = total_replicas(self.all_rs().map(|r| r.status_replicas()));
                s.available_replicas = total_replicas(self.all_rs().map(|r| r.available()));
                s.selector = self.canary_selector();
            }
        }
        let s = self.calculate_conditions(s);
        self.persist_status(s);
    }
}
