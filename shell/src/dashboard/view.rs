//! Argo's `RolloutInfo` JSON (pkg/apiclient/rollout/rollout.proto, encoded by Go's
//! `encoding/json`: camelCase names, empty fields left out), built from the CLI's view of a
//! rollout ([`crate::cli::info`]) and the raw objects it was computed from.
//!
//! Not rendered, on purpose: the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation (it repeats the whole spec, environment values included). No Secret is ever read.

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::{json, Map, Value};

use crate::cli::info::{self, AnalysisRunInfo, ExperimentInfo, Objects, ReplicaSetInfo, RolloutInfo, Strategy, Tag};
use crate::cli::tree::{analysis_icon, pod_icon, replica_set_icon, rollout_icon};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Measurement metadata naming the Job a job metric ran.
const JOB_NAME: &str = "job-name";

/// Argo's `RolloutInfo` of `objects.rollout`.
pub fn rollout_info(objects: &Objects) -> Value {
    let info = info::rollout_info(objects);
    rollout_json(&info, objects)
}

/// Argo's `ListRolloutInfos` entry: the rollout, its ReplicaSets and their pods only.
pub fn rollout_list_entry(objects: &Objects) -> Value {
    let lean = Objects {
        rollout: objects.rollout.clone(),
        replica_sets: objects.replica_sets.clone(),
        pods: objects.pods.clone(),
        analysis_runs: Vec::new(),
        experiments: Vec::new(),
    };
    rollout_info(&lean)
}

fn rollout_json(info: &RolloutInfo, objects: &Objects) -> Value {
    let ro = &objects.rollout;
    let text = |p: &str| ro.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let mut meta = Map::new();
    for key in ["name", "namespace", "labels", "uid", "generation", "creationTimestamp", "resourceVersion"] {
        if let Some(v) = ro.pointer(&format!("/metadata/{key}")) {
            meta.insert(key.to_string(), v.clone());
        }
    }
    if let Some(Value::Object(annotations)) = ro.pointer("/metadata/annotations") {
        let kept: Map<String, Value> = annotations.iter().filter(|(k, _)| *k != LAST_APPLIED).map(|(k, v)| (k.clone(), v.clone())).collect();
        meta.insert("annotations".into(), Value::Object(kept));
    }
    let containers = |key: &str| -> Value {
        let list = ro.pointer(&format!("/spec/template/spec/{key}")).and_then(Value::as_array).cloned().unwrap_or_default();
        list.iter().map(|c| json!({"name": c.get("name").cloned().unwrap_or(Value::Null), "image": c.get("image").cloned().unwrap_or(Value::Null)})).collect()
    };
    let restarted = text("/status/restartedAt");
    let steps = match info.step {
        Some(_) => ro.pointer("/spec/strategy/canary/steps").cloned().unwrap_or(Value::Null),
        None => Value::Null,
    };
    let strategy = match info.strategy {
        Strategy::Canary => "Canary",
        Strategy::BlueGreen => "BlueGreen",
        Strategy::Unknown => "",
    };
    let mut out = json!({
        "objectMeta": meta,
        "status": info.status.as_str(),
        "message": info.message,
        "icon": rollout_icon(info.status.as_str()),
        "strategy": strategy,
        "step": info.step.clone().unwrap_or_default(),
        "setWeight": info.set_weight.map(|w| w.to_string()).unwrap_or_default(),
        "actualWeight": info.actual_weight.map(|w| w.to_string()).unwrap_or_default(),
        "ready": info.ready,
        "current": info.current,
        "desired": info.desired,
        "updated": info.updated,
        "available": info.available,
        "restartedAt": if restarted.is_empty() { "Never".to_string() } else { go_time(&restarted) },
        "generation": text("/status/observedGeneration"),
        "replicaSets": info.replica_sets.iter().map(|rs| replica_set_json(rs, objects)).collect::<Vec<_>>(),
        "experiments": info.experiments.iter().map(|e| experiment_json(e, objects)).collect::<Vec<_>>(),
        "analysisRuns": info.analysis_runs.iter().map(|a| analysis_run_json(a, objects)).collect::<Vec<_>>(),
        // Argo always sends the containers, even none.
        "containers": containers("containers"),
        "steps": steps,
        "initContainers": containers("initContainers"),
    });
    omit_empty(&mut out, &["containers"]);
    out
}

fn replica_set_json(rs: &ReplicaSetInfo, objects: &Objects) -> Value {
    let raw: Option<&ReplicaSet> = objects.replica_sets.iter().find(|r| r.metadata.name.as_deref() == Some(rs.name.as_str()));
    let init_images: Vec<String> = raw
        .and_then(|r| r.spec.as_ref())
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.init_containers.as_ref())
        .map(|cs| cs.iter().map(|c| c.image.clone().unwrap_or_default()).collect())
        .unwrap_or_default();
    let pods: Vec<Value> = rs
        .pods
        .iter()
        .map(|p| {
            let raw = objects.pods.iter().find(|r| r.metadata.name.as_deref() == Some(p.name.as_str()));
            let mut v = json!({
                "objectMeta": short_meta(raw.map(|r| &r.metadata)),
                "status": p.status,
                "icon": pod_icon(&p.status),
                "ready": p.ready,
                "restarts": p.restarts,
            });
            omit_empty(&mut v, &[]);
            v
        })
        .collect();
    let mut v = json!({
        "objectMeta": short_meta(raw.map(|r| &r.metadata)),
        "status": rs.status,
        "icon": replica_set_icon(rs.status),
        "revision": rs.revision,
        "stable": rs.tags.contains(&Tag::Stable),
        "canary": rs.tags.contains(&Tag::Canary),
        "active": rs.tags.contains(&Tag::Active),
        "preview": rs.tags.contains(&Tag::Preview),
        "replicas": rs.replicas,
        "available": rs.available,
        "template": rs.template,
        "scaleDownDeadline": rs.scale_down_deadline.map(|t| t.to_rfc3339()).unwrap_or_default(),
        "images": rs.images,
        "pods": pods,
        "ping": rs.tags.contains(&Tag::Ping),
        "pong": rs.tags.contains(&Tag::Pong),
        "initContainerImages": init_images,
    });
    omit_empty(&mut v, &[]);
    v
}

fn experiment_json(exp: &ExperimentInfo, objects: &Objects) -> Value {
    let raw = objects.experiments.iter().find(|e| e.pointer("/metadata/name").and_then(Value::as_str) == Some(exp.name.as_str()));
    let mut v = json!({
        "objectMeta": raw.map(value_meta).unwrap_or_else(|| json!({"name": exp.name})),
        "icon": analysis_icon(&exp.status),
        "revision": exp.revision,
        "status": exp.status,
        "message": exp.message,
        "replicaSets": exp.replica_sets.iter().map(|rs| replica_set_json(rs, objects)).collect::<Vec<_>>(),
        "analysisRuns": exp.analysis_runs.iter().map(|a| analysis_run_json(a, objects)).collect::<Vec<_>>(),
    });
    omit_empty(&mut v, &[]);
    v
}

fn analysis_run_json(run: &AnalysisRunInfo, objects: &Objects) -> Value {
    let raw = objects.analysis_runs.iter().find(|a| a.pointer("/metadata/name").and_then(Value::as_str) == Some(run.name.as_str()));
    let mut jobs = Vec::new();
    let mut non_jobs = Vec::new();
    let results = raw.and_then(|r| r.pointer("/status/metricResults")).and_then(Value::as_array).cloned().unwrap_or_default();
    for result in &results {
        let metric = result.get("name").cloned().unwrap_or(Value::Null);
        for m in result.get("measurements").and_then(Value::as_array).into_iter().flatten() {
            let phase = m.get("phase").and_then(Value::as_str).unwrap_or("");
            let started = m.get("startedAt").cloned().unwrap_or(Value::Null);
            match m.pointer(&format!("/metadata/{JOB_NAME}")) {
                Some(job) => jobs.push(json!({
                    "objectMeta": {"name": job},
                    "status": phase,
                    "icon": analysis_icon(phase),
                    "metricName": metric,
                    "startedAt": started,
                })),
                None => non_jobs.push(json!({
                    "value": m.get("value").cloned().unwrap_or(Value::String(String::new())),
                    "status": phase,
                    "metricName": metric,
                    "startedAt": started,
                })),
            }
        }
    }
    let metrics: Vec<Value> = raw
        .and_then(|r| r.pointer("/spec/metrics"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| {
            let mut v = json!({
                "name": m.get("name").cloned().unwrap_or(Value::Null),
                "successCondition": m.get("successCondition").cloned().unwrap_or(Value::Null),
                "count": m.get("count").cloned().unwrap_or(Value::Null),
                "inconclusiveLimit": m.get("inconclusiveLimit").cloned().unwrap_or(Value::Null),
                "failureLimit": m.get("failureLimit").cloned().unwrap_or(Value::Null),
            });
            omit_empty(&mut v, &[]);
            v
        })
        .collect();
    let mut v = json!({
        "objectMeta": raw.map(value_meta).unwrap_or_else(|| json!({"name": run.name})),
        "icon": analysis_icon(&run.status),
        "revision": run.revision,
        "status": run.status,
        "successful": run.successful,
        "failed": run.failed,
        "inconclusive": run.inconclusive,
        "error": run.error,
        "jobs": jobs,
        "nonJobInfo": non_jobs,
        "metrics": metrics,
        "specAndStatus": raw.map(|r| json!({"spec": r.get("spec"), "status": r.get("status")})).unwrap_or(Value::Null),
    });
    omit_empty(&mut v, &[]);
    v
}

/// The identifying part of an object's metadata, as Argo sends it for owned objects.
fn short_meta(meta: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>) -> Value {
    let Some(meta) = meta else { return json!({}) };
    let mut v = json!({
        "name": meta.name,
        "namespace": meta.namespace,
        "uid": meta.uid,
        "creationTimestamp": meta.creation_timestamp,
    });
    omit_empty(&mut v, &[]);
    v
}

fn value_meta(object: &Value) -> Value {
    let mut v = json!({
        "name": object.pointer("/metadata/name"),
        "namespace": object.pointer("/metadata/namespace"),
        "uid": object.pointer("/metadata/uid"),
        "creationTimestamp": object.pointer("/metadata/creationTimestamp"),
    });
    omit_empty(&mut v, &[]);
    v
}

/// Go's `encoding/json` `omitempty`: drops `""`, `0`, `false`, `null`, `[]` and `{}` fields
/// of this object (not of nested ones), except those named in `keep`.
pub fn omit_empty(v: &mut Value, keep: &[&str]) {
    if let Value::Object(map) = v {
        map.retain(|k, v| {
            keep.contains(&k.as_str())
                || !match v {
                    Value::Null => true,
                    Value::Bool(b) => !*b,
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                }
        });
    }
}

/// Go's `time.Time.String()` of an RFC 3339 UTC time, as Argo renders `restartedAt`
/// (`2024-05-01 10:00:00 +0000 UTC`); other forms are passed through.
fn go_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z').and_then(|t| t.split_once('T')) {
        Some((date, time)) => format!("{date} {time} +0000 UTC"),
        None => rfc3339.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_left_out_as_go_does() {
        let mut v = json!({"a": "", "b": 0, "c": false, "d": [], "e": "x", "f": 1, "g": true, "containers": []});
        omit_empty(&mut v, &["containers"]);
        assert_eq!(v, json!({"e": "x", "f": 1, "g": true, "containers": []}));
    }

    #[test]
    fn restarted_at_reads_as_gos_time_string() {
        assert_eq!(go_time("2024-05-01T10:00:00Z"), "2024-05-01 10:00:00 +0000 UTC");
    }

    #[test]
    fn the_last_applied_annotation_is_not_rendered() {
        let objects = Objects {
            rollout: json!({
                "metadata": {"name": "r", "namespace": "n", "annotations": {LAST_APPLIED: "{\"spec\":{}}", "keep": "me"}},
                "spec": {"strategy": {"canary": {"steps": [{"pause": {}}]}}, "template": {"spec": {"containers": [{"name": "app", "image": "x:1", "env": [{"name": "K", "value": "v"}]}]}}},
                "status": {"currentStepIndex": 0},
            }),
            ..Objects::default()
        };
        let info = rollout_info(&objects);
        assert_eq!(info["objectMeta"]["annotations"], json!({"keep": "me"}));
        assert_eq!(info["containers"], json!([{"name": "app", "image": "x:1"}]));
        assert_eq!(info["strategy"], "Canary");
        assert_eq!(info["step"], "0/1");
        assert_eq!(info["restartedAt"], "Never");
        assert_eq!(info["steps"], json!([{"pause": {}}]));
        assert!(!info.to_string().contains("env"), "{info}");
    }
}
