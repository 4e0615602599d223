//! Status fields a canary update maintains beside its phase: the `Completed` condition and
//! `status.duration`'s manual-pause bookkeeping (Argo's `calculateStatusDuration`,
//! scenarios PAU-01/02).

use rollouts_core::api::{ConditionStatus, ConditionType, Rollout};
use rollouts_core::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use rollouts_core::Object;

/// A canary paused indefinitely at its second step from 1m10s (the update at 1m), promoted
/// at 2m40s.
const PAUSED_THEN_PROMOTED: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "web:1"}]}
      strategy:
        canary:
          steps: [{setWeight: 50}, {pause: {}}]
events:
  - {at: 1m, setImage: {rollout: web, container: web, image: "web:2"}}
  - {at: 2m40s, promote: {rollout: web}}
"#;

/// The rollout as the cluster holds it when the simulation stops at `until`.
fn rollout_at(until: &str) -> Rollout {
    let text = format!("{PAUSED_THEN_PROMOTED}until: {until}\n");
    let sim = simulate(&parse_scenario(&text).unwrap()).unwrap();
    sim.final_objects["web"]
        .iter()
        .find_map(|o| match o {
            Object::Rollout(r) => Some(serde_json::from_value((**r).clone()).expect("a Rollout")),
            _ => None,
        })
        .expect("the rollout")
}

fn completed(rollout: &Rollout) -> ConditionStatus {
    rollout
        .status
        .conditions
        .iter()
        .find(|c| c.kind == ConditionType::Completed)
        .map(|c| c.status)
        .expect("a Completed condition")
}

#[test]
fn the_completed_condition_is_false_during_an_update_and_true_after_it() {
    assert_eq!(completed(&rollout_at("50s")), ConditionStatus::True, "first deploy");
    assert_eq!(completed(&rollout_at("2m")), ConditionStatus::False, "paused mid-update");
    assert_eq!(completed(&rollout_at("4m")), ConditionStatus::True, "promoted");
}

#[test]
fn an_indefinite_pause_counts_as_manual_wait_until_promoted() {
    let paused = rollout_at("2m").status.duration.expect("duration");
    let started = paused.manual_pause_started_at.expect("a manual pause in progress");
    assert_eq!(paused.total_manual_pause_duration_seconds, 0);
    let done = rollout_at("4m").status.duration.expect("duration");
    assert_eq!(done.manual_pause_started_at, None, "the pause ended with the promote");
    // From the pause condition to the promote's reconcile at 2m40s.
    let paused_for = 160 - started.since(SIMULATION_EPOCH).0;
    assert!(paused_for > 0, "paused at {started:?}");
    assert_eq!(i64::from(done.total_manual_pause_duration_seconds), paused_for);
}

/// Argo's `Available` condition: true while the rollout's available pods (all revisions)
/// reach `spec.replicas`, before, during and after the update.
#[test]
fn the_available_condition_holds_while_enough_pods_are_available() {
    for until in ["50s", "2m", "4m"] {
        let rollout = rollout_at(until);
        let available = rollout.status.conditions.iter().find(|c| c.kind == ConditionType::Available).expect("an Available condition");
        assert_eq!(
            (available.status, available.message.as_str()),
            (ConditionStatus::True, "Rollout has minimum availability"),
            "at {until}"
        );
    }
}

/// Argo's `Healthy` condition and the `Progressing` condition's `NewReplicaSetAvailable`:
/// a canary whose stable is its current template, all steps done and all pods available,
/// is healthy; paused mid-update it is not.
#[test]
fn a_completed_canary_is_healthy_and_a_paused_one_is_not() {
    let condition = |rollout: &Rollout, kind: ConditionType| {
        rollout.status.conditions.iter().find(|c| c.kind == kind).cloned().unwrap_or_else(|| panic!("a {kind:?} condition"))
    };
    for until in ["50s", "4m"] {
        let rollout = rollout_at(until);
        let healthy = condition(&rollout, ConditionType::Healthy);
        assert_eq!((healthy.status, healthy.message.as_str()), (ConditionStatus::True, "Rollout is healthy"), "at {until}");
        let progressing = condition(&rollout, ConditionType::Progressing);
        assert_eq!(progressing.reason.as_str(), "NewReplicaSetAvailable", "at {until}");
    }
    let paused = condition(&rollout_at("2m"), ConditionType::Healthy);
    assert_eq!((paused.status, paused.message.as_str()), (ConditionStatus::False, "Rollout is not healthy"));
}

/// `status.duration`'s end: an update still paused mid-way has not finished; the promotion
/// through its steps finishes it as `Promoted`.
#[test]
fn an_update_finishes_when_promoted_not_when_it_starts() {
    let paused = rollout_at("2m").status.duration.expect("duration");
    assert_eq!((paused.finished_at, paused.completion_status), (None, None));
    let done = rollout_at("4m").status.duration.expect("duration");
    assert_eq!(done.completion_status, Some(rollouts_core::api::CompletionStatus::Promoted));
    let finished = done.finished_at.expect("a finish time");
    let at = finished.since(SIMULATION_EPOCH).0;
    assert!((160..=170).contains(&at), "finished {at} s in, not just after the promote at 2m40s");
}
