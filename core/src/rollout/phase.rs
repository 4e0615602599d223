//! `status.phase` and `status.message`, computed as Argo's `CalculateRolloutPhase`.

use crate::api::{ConditionReason, ConditionType, RolloutPhase, RolloutSpec, RolloutStatus};

/// The phase and message for a status, first matching rule wins.
pub fn calculate_phase(spec: &RolloutSpec, status: &RolloutStatus) -> (RolloutPhase, String) {
    for c in &status.conditions {
        if c.kind == ConditionType::InvalidSpec {
            return (RolloutPhase::Degraded, format!("InvalidSpec: {}", c.message));
        }
        if c.has_reason(ConditionReason::RolloutAborted)
            || c.has_reason(ConditionReason::ProgressDeadlineExceeded)
        {
            return (
                RolloutPhase::Degraded,
                format!("{}: {}", c.reason, c.message),
            );
        }
    }
    if spec.paused {
        return (RolloutPhase::Paused, "manually paused".into());
    }
    if let Some(p) = status.pause_conditions.first() {
        return (RolloutPhase::Paused, p.reason.as_str().into());
    }
    if spec.restart_at.is_some() && spec.restart_at != status.restarted_at {
        return (RolloutPhase::Progressing, "rollout is restarting".into());
    }
    let replicas = spec.replicas();
    if status.updated_replicas < replicas {
        return (RolloutPhase::Progressing, "more replicas need to be updated".into());
    }
    if status.available_replicas < status.updated_replicas {
        return (RolloutPhase::Progressing, "updated replicas are still becoming available".into());
    }
    if let Some(bg) = spec.blue_green() {
        if status.blue_green.active_selector.is_empty() || status.blue_green.active_selector != status.current_pod_hash {
            return (RolloutPhase::Progressing, "active service cutover pending".into());
        }
        if status.stable_rs.is_empty() || status.stable_rs != status.current_pod_hash {
            let post_running = bg.post_promotion_analysis.is_some()
                && !status
                    .blue_green
                    .post_promotion_analysis_run_status
                    .as_ref()
                    .is_some_and(|s| matches!(s.status.as_str(), "Successful" | "Failed" | "Error" | "Inconclusive"));
            let msg = if post_running {
                "waiting for analysis to complete"
            } else {
                "waiting for post-promotion verification to complete"
            };
            return (RolloutPhase::Progressing, msg.into());
        }
    } else if spec.canary().is_some() {
        if !spec.has_traffic_routing() && status.replicas > status.updated_replicas {
            return (RolloutPhase::Progressing, "old replicas are pending termination".into());
        }
        if status.stable_rs.is_empty() || status.stable_rs != status.current_pod_hash {
            return (RolloutPhase::Progressing, "waiting for all steps to complete".into());
        }
    }
    (RolloutPhase::Healthy, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BlueGreenStrategy, CanaryStrategy, ConditionStatus, RolloutCondition, RolloutStrategy};
    use crate::time::Timestamp;

    fn canary(replicas: i32) -> RolloutSpec {
        RolloutSpec {
            replicas: Some(replicas),
            strategy: RolloutStrategy { canary: Some(CanaryStrategy::default()), ..Default::default() },
            ..Default::default()
        }
    }

    fn cond(kind: ConditionType, reason: &str, message: &str) -> RolloutCondition {
        RolloutCondition {
            kind,
            status: ConditionStatus::False,
            last_update_time: Timestamp(0),
            last_transition_time: Timestamp(0),
            reason: reason.into(),
            message: message.into(),
        }
    }

    // The rows of scenarios.md PHS-01 that the server-side calculation covers.
    #[test]
    fn phs01_rows() {
        let s = RolloutStatus {
            conditions: vec![cond(ConditionType::Progressing, "ProgressDeadlineExceeded", "timed out")],
            ..Default::default()
        };
        assert_eq!(calculate_phase(&canary(1), &s), (RolloutPhase::Degraded, "ProgressDeadlineExceeded: timed out".into()));

        let mut paused = canary(1);
        paused.paused = true;
        assert_eq!(calculate_phase(&paused, &RolloutStatus::default()).1, "manually paused");

        let s = RolloutStatus { replicas: 5, updated_replicas: 4, available_replicas: 4, ..Default::default() };
        assert_eq!(calculate_phase(&canary(5), &s).1, "more replicas need to be updated");
        let s = RolloutStatus { replicas: 5, updated_replicas: 5, available_replicas: 4, ..Default::default() };
        assert_eq!(calculate_phase(&canary(5), &s).1, "updated replicas are still becoming available");
        let s = RolloutStatus { replicas: 7, updated_replicas: 5, available_replicas: 5, ..Default::default() };
        assert_eq!(calculate_phase(&canary(5), &s).1, "old replicas are pending termination");

        let mut bg = RolloutSpec {
            replicas: Some(5),
            strategy: RolloutStrategy { blue_green: Some(BlueGreenStrategy::default()), ..Default::default() },
            ..Default::default()
        };
        let mut s = RolloutStatus {
            replicas: 5,
            updated_replicas: 5,
            available_replicas: 5,
            current_pod_hash: "def5678".into(),
            stable_rs: "abc1234".into(),
            ..Default::default()
        };
        s.blue_green.active_selector = "abc1234".into();
        assert_eq!(calculate_phase(&bg, &s).1, "active service cutover pending");
        s.blue_green.active_selector = "def5678".into();
        assert_eq!(calculate_phase(&bg, &s).1, "waiting for post-promotion verification to complete");
        bg.strategy.blue_green.as_mut().unwrap().post_promotion_analysis = Some(Default::default());
        assert_eq!(calculate_phase(&bg, &s).1, "waiting for analysis to complete");

        let mut restart = canary(5);
        restart.restart_at = Some(Timestamp(100));
        let s = RolloutStatus { replicas: 5, updated_replicas: 5, available_replicas: 5, ..Default::default() };
        assert_eq!(calculate_phase(&restart, &s).1, "rollout is restarting");
    }
}
