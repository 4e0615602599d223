//! An Experiment's status as written: Argo's two-way merge patch of `status`, without the
//! empty strings the 1.20 API server refuses (it reads `""` as `null`).

use rollouts_core::api::ExperimentStatus;
use serde_json::{Map, Value};

/// The merge patch of `status` turning `old` into `new` (Argo's two-way merge patch of the
/// status), empty strings left out of both; `None` when nothing changes.
pub fn status_patch(old: &ExperimentStatus, new: &ExperimentStatus) -> Option<Value> {
    if old == new {
        return None;
    }
    let json = |s: &ExperimentStatus| {
        let mut v = serde_json::to_value(s).unwrap_or(Value::Object(Map::new()));
        drop_empty_strings(&mut v);
        v
    };
    merge_diff(&json(old), &json(new))
}

/// Removes every `""` member of every object in `v`.
fn drop_empty_strings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, member| member.as_str() != Some(""));
            map.values_mut().for_each(drop_empty_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// The RFC 7386 merge patch turning `old` into `new`: objects diffed member by member (a
/// member that went away is `null`), anything else replaced whole. `None` when equal.
fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    let (Value::Object(old), Value::Object(new)) = (old, new) else { return Some(new.clone()) };
    let mut patch = Map::new();
    for (k, n) in new {
        match old.get(k) {
            Some(o) => {
                if let Some(d) = merge_diff(o, n) {
                    patch.insert(k.clone(), d);
                }
            }
            None => {
                patch.insert(k.clone(), n.clone());
            }
        }
    }
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        patch.insert(k.clone(), Value::Null);
    }
    Some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollouts_core::api::merge::merge_patch;
    use serde_json::json;

    fn status(v: Value) -> ExperimentStatus {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_status_patch_holds_what_changed_nulls_what_went_away_and_no_empty_string() {
        let old = status(json!({
            "phase": "Running", "message": "waiting",
            "templateStatuses": [{"name": "a", "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                                  "status": "Running"}],
            "availableAt": "2024-01-01T00:00:00Z"
        }));
        let new = status(json!({
            "phase": "Running",
            "templateStatuses": [{"name": "a", "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                                  "status": "Running"}],
            "availableAt": "2024-01-01T00:00:00Z",
            "analysisRuns": [{"name": "x", "analysisRun": "", "phase": ""}]
        }));
        let patch = status_patch(&old, &new).unwrap();
        assert_eq!(patch, json!({"message": null, "analysisRuns": [{"name": "x"}]}));
        assert_eq!(status_patch(&new, &new), None);
        // Applied to the old status, the patch gives the new one.
        let mut applied = serde_json::to_value(&old).unwrap();
        merge_patch(&mut applied, &patch);
        assert_eq!(status(applied), new);
    }

    #[test]
    fn a_status_cleared_by_retry_is_written_whole() {
        let new = status(json!({"phase": "Pending", "templateStatuses": [{"name": "a", "replicas": 0, "updatedReplicas": 0,
            "readyReplicas": 0, "availableReplicas": 0, "status": "Progressing"}]}));
        let patch = status_patch(&ExperimentStatus::default(), &new).unwrap();
        assert_eq!(patch["phase"], "Pending");
        assert_eq!(patch["templateStatuses"][0]["status"], "Progressing");
    }
}
