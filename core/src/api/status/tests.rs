//! [`RolloutStatus::merge_patch_from`] against the definition it shortcuts: the merge diff
//! of the two serialized statuses.

use serde_json::{json, Value};

use super::RolloutStatus;
use crate::api::merge::merge_diff;

/// Two different values for every field of a status, as JSON.
fn choices() -> Vec<(&'static str, [Value; 2])> {
    let run = |name: &str, phase: &str| json!({"name": name, "status": phase});
    let condition = |kind: &str, reason: &str| {
        json!({"type": kind, "status": "True", "lastUpdateTime": "2024-01-01T00:00:00Z",
               "lastTransitionTime": "2024-01-01T00:00:00Z", "reason": reason, "message": "m"})
    };
    vec![
        ("abort", [json!(true), json!(true)]),
        ("pauseConditions", [
            json!([{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}]),
            json!([{"reason": "BlueGreenPause", "startTime": "2024-01-01T00:01:00Z"}]),
        ]),
        ("controllerPause", [json!(true), json!(true)]),
        ("abortedAt", [json!("2024-01-01T00:00:00Z"), json!("2024-01-01T00:02:00Z")]),
        ("currentPodHash", [json!("a"), json!("b")]),
        ("currentStepHash", [json!("a"), json!("b")]),
        ("replicas", [json!(1), json!(2)]),
        ("updatedReplicas", [json!(1), json!(2)]),
        ("readyReplicas", [json!(1), json!(2)]),
        ("availableReplicas", [json!(1), json!(2)]),
        // 0 is written: only an absent index is left out.
        ("currentStepIndex", [json!(0), json!(3)]),
        ("collisionCount", [json!(0), json!(1)]),
        ("observedGeneration", [json!("1"), json!("2")]),
        ("conditions", [
            json!([condition("Progressing", "NewReplicaSetAvailable")]),
            json!([condition("Progressing", "ReplicaSetUpdated"), condition("Available", "AvailableReason")]),
        ]),
        ("canary", [
            json!({"currentStepAnalysisRunStatus": run("r1", "Running"), "stablePingPong": "ping"}),
            json!({"currentStepAnalysisRunStatus": run("r1", "Successful"), "currentExperiment": "e"}),
        ]),
        ("blueGreen", [
            json!({"activeSelector": "a", "scaleUpPreviewCheckPoint": true}),
            json!({"activeSelector": "b", "previewSelector": "p"}),
        ]),
        ("HPAReplicas", [json!(1), json!(5)]),
        ("selector", [json!("app=a"), json!("app=b")]),
        ("stableRS", [json!("a"), json!("b")]),
        ("restartedAt", [json!("2024-01-01T00:00:00Z"), json!("2024-01-01T00:05:00Z")]),
        ("promoteFull", [json!(true), json!(true)]),
        ("phase", [json!("Paused"), json!("Healthy")]),
        ("message", [json!("CanaryPauseStep"), json!("")]),
        ("duration", [
            json!({"rolloutStartedAt": "2024-01-01T00:00:00Z"}),
            json!({"rolloutStartedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:09:00Z", "completionStatus": "Promoted"}),
        ]),
        ("workloadObservedGeneration", [json!("1"), json!("2")]),
    ]
}

/// A status with each field absent (0), the first value (1) or the second (2).
fn status(picks: &[u64]) -> RolloutStatus {
    let mut object = serde_json::Map::new();
    for ((key, values), pick) in choices().into_iter().zip(picks) {
        if *pick > 0 {
            object.insert(key.to_string(), values[*pick as usize - 1].clone());
        }
    }
    serde_json::from_value(Value::Object(object)).expect("a status")
}

#[test]
fn every_field_is_covered() {
    let full = serde_json::to_value(status(&[1; 25])).unwrap();
    let keys: Vec<&str> = choices().iter().map(|(k, _)| *k).collect();
    let written: Vec<&str> = full.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(written, keys, "choices() lists every field of a status in order, each one written");
}

#[test]
fn the_typed_patch_is_the_json_diff() {
    let fields = choices().len();
    // A fixed linear congruential sequence: many field combinations, the same every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % 3
    };
    for case in 0..2_000 {
        let old: Vec<u64> = (0..fields).map(|_| next()).collect();
        // Half the cases change a few fields only, as a reconcile does.
        let new: Vec<u64> =
            old.iter().map(|o| if case % 2 == 0 && next() != 0 { *o } else { next() }).collect();
        let (old, new) = (status(&old), status(&new));
        let expected = merge_diff(&serde_json::to_value(&old).unwrap(), &serde_json::to_value(&new).unwrap());
        let typed = new.merge_patch_from(&old).map(Value::Object);
        assert_eq!(
            typed.as_ref().map(Value::to_string),
            expected.as_ref().map(Value::to_string),
            "case {case}: old {old:?} new {new:?}"
        );
    }
}
