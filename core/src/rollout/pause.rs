//! Pause conditions and the abort flag, collected during a reconcile and applied to the
//! new status at the end (Argo's `pauseContext`).

use crate::api::{PauseCondition, PauseReason, RolloutStatus};
use crate::time::Timestamp;

/// Pause and abort changes requested during one reconcile.
#[derive(Debug, Default)]
pub(super) struct PauseCtx {
    add: Vec<PauseReason>,
    remove: Vec<PauseReason>,
    clear: bool,
    add_abort: bool,
    remove_abort: bool,
    /// Detail appended to the abort message (`Rollout aborted update to revision N: <detail>`).
    pub abort_message: String,
}

impl PauseCtx {
    pub fn has_add_pause(&self) -> bool {
        !self.add.is_empty()
    }

    /// Whether the rollout counts as aborted in this reconcile.
    pub fn is_aborted(&self, old: &RolloutStatus) -> bool {
        if self.remove_abort {
            return false;
        }
        self.add_abort || old.abort
    }

    /// Aborts the update with a detail message.
    #[allow(dead_code)] // used by the analysis and progress-deadline paths
    pub fn add_abort(&mut self, message: String) {
        self.add_abort = true;
        self.abort_message = message;
    }

    pub fn remove_abort(&mut self) {
        self.remove_abort = true;
    }

    pub fn add_pause(&mut self, reason: PauseReason) {
        self.add.push(reason);
    }

    pub fn remove_pause(&mut self, reason: PauseReason) {
        self.remove.push(reason);
    }

    pub fn clear_pauses(&mut self) {
        self.clear = true;
    }

    /// Writes abort, abortedAt, pauseConditions and controllerPause into `new`, which is
    /// either a fresh status (pause fields empty) or, for a scaling event, a copy of the old
    /// one; as in Argo, the pause fields are only overwritten when conditions remain.
    pub fn apply(&self, old: &RolloutStatus, new: &mut RolloutStatus, now: Timestamp) {
        // An existing abortedAt is kept, or every reconcile would change the status.
        let aborted_at = old.aborted_at.unwrap_or(now);
        if self.add_abort || (!self.remove_abort && old.abort) {
            new.abort = true;
            new.aborted_at = Some(aborted_at);
            return;
        }
        new.abort = false;
        new.aborted_at = None;
        if self.clear {
            return;
        }
        let mut controller_pause = old.controller_pause;
        let mut conditions: Vec<PauseCondition> =
            old.pause_conditions.iter().filter(|c| !self.remove.contains(&c.reason)).cloned().collect();
        for reason in &self.add {
            if !old.pause_conditions.iter().any(|c| c.reason == *reason) && !conditions.iter().any(|c| c.reason == *reason)
            {
                conditions.push(PauseCondition { reason: *reason, start_time: now });
                controller_pause = true;
            }
        }
        if conditions.is_empty() {
            return;
        }
        new.controller_pause = controller_pause;
        new.pause_conditions = conditions;
    }
}
