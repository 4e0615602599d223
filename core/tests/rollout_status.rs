//! Status fields a canary update maintains beside its phase: the `Completed` condition and
//! `status.duration`'s manual-pause bookkeeping (Argo's `calculateStatusDuration`,
//! scenarios PAU-01/02).

mod common;

use rollouts_core::api::{ConditionStatus, ConditionType, Rollout};
use rollouts_core::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use rollouts_core::time::Seconds;
use rollouts_core::{Object, Timestamp};

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

/// `progressDeadlineAbort` with a 10 s deadline, steps [setWeight 50, a step analysis of
/// three measurements 10 s apart, setWeight 50 again, pause]; updated at 1m.
const STEP_ANALYSIS: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: three-checks}
    spec:
      metrics:
        - name: three-checks
          interval: 10s
          count: 3
          successCondition: result == 1
          provider: {prometheus: {address: "http://prometheus.example.com:9090", query: vector(1)}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web}
    spec:
      replicas: 2
      progressDeadlineSeconds: 10
      progressDeadlineAbort: true
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "web:1"}]}
      strategy:
        canary:
          steps:
            - setWeight: 50
            - analysis: {templates: [{templateName: three-checks}]}
            - setWeight: 50
            - pause: {}
cluster:
  podStartup: 1s
metrics:
  three-checks: [{value: 1}]
events:
  - {at: 1m, setImage: {rollout: web, container: web, image: "web:2"}}
"#;

/// Argo's `RolloutProgressing` counts a step moving on as progress by itself. The deadline
/// is not measured during the analysis step, which outlasts it; the next step (the same
/// weight: no pod moves) then completes with nothing but the step index changing. That
/// refreshes the Progressing condition, so the deadline does not fire and the update is
/// not aborted.
#[test]
fn a_step_moving_on_is_progress_even_when_no_pod_moves() {
    let sim = simulate(&parse_scenario(&format!("{STEP_ANALYSIS}until: 3m\n")).unwrap()).unwrap();
    let last = &sim.final_state["web"];
    assert_eq!((last.phase.as_str(), last.current_step_index, last.aborted), ("Paused", Some(3), false), "{last:?}");
    let runs: Vec<_> = last.analysis_runs.iter().map(|r| r.phase.as_str()).collect();
    assert_eq!(runs, ["Successful"]);
}

/// A fresh controller fed `objects` at `now`, the Rollout last (as after a restart); the
/// rollout it ends with.
fn restarted(objects: &[Object], now: Timestamp) -> Rollout {
    common::restart_controller(objects, now).0.rollout.expect("the rollout")
}

/// `Healthy` needs every step done, not only the stable being the current template. A
/// status whose `currentStepIndex` is behind the steps (set back by another writer: the
/// controller itself moves the index to the end whenever the stable is its template) makes
/// the canary walk its remaining steps again, and it is not healthy while it does.
#[test]
fn a_canary_whose_status_is_behind_its_steps_is_not_healthy() {
    // The first deploy, healthy at 50s, its status set back to the analysis step.
    let sim = simulate(&parse_scenario(&format!("{STEP_ANALYSIS}until: 50s\n")).unwrap()).unwrap();
    let mut objects = sim.final_objects["web"].clone();
    for o in &mut objects {
        if let Object::Rollout(ro) = o {
            let mut json = (**ro).clone();
            assert_eq!(json["status"]["currentStepIndex"], 4);
            json["status"]["currentStepIndex"] = 1.into();
            *ro = std::sync::Arc::new(json);
        }
    }
    let rollout = restarted(&objects, SIMULATION_EPOCH.plus(Seconds(sim.outcome.t)));
    assert_eq!(rollout.status.current_step_index, Some(1));
    assert_eq!(rollout.status.stable_rs, rollout.status.current_pod_hash);
    let healthy = rollout.status.conditions.iter().find(|c| c.kind == ConditionType::Healthy).expect("a Healthy condition");
    assert_eq!((healthy.status, healthy.message.as_str()), (ConditionStatus::False, "Rollout is not healthy"));
}
