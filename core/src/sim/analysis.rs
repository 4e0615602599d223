//! The simulated cluster's analysis side: AnalysisRuns stored like an API server stores
//! them, Jobs that finish after a while, and metric providers answered from the
//! scenario's `metrics:` script.
//!
//! A scripted answer is `{value: <any JSON>}`, `{error: "<message>"}` or
//! `{phase: Successful|Failed|Inconclusive|Error}` (a Job's outcome, or a provider that
//! judges itself), with an optional `after: <duration>` (default 0; Jobs default to the
//! cluster's `podStartup`). Each measurement of a metric takes the next answer; the last
//! one repeats.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};

use super::cluster::{merge_patch, Cluster};
use crate::analysis::run::MeasurementAnswer;
use crate::api::{AnalysisPhase, SecretKeyRef};
use crate::objects::to_kube_time;
use crate::state::{Action, Event, Object, ObjectKind};
use crate::time::{Seconds, Timestamp};

/// What secret values are replaced with wherever they could be shown.
pub const REDACTED: &str = "*****";

/// A job metric's Job.
#[derive(Clone, Debug)]
pub struct SimJob {
    /// The Job as stored.
    pub job: Job,
    /// The rollout whose run created it.
    pub rollout: String,
}

impl Cluster {
    fn emit_run(&mut self, rollout: &str, name: &str) {
        if let Some(v) = self.analysis_runs.get(name).cloned() {
            self.emit(rollout, Event::Applied(Object::AnalysisRun(v)));
        }
    }

    /// Carries out the analysis actions of the controller of `rollout`.
    pub(super) fn execute_analysis(&mut self, rollout: &str, action: &Action) {
        match action {
            Action::CreateAnalysisRun { run } => {
                let name = run.metadata.name.clone().unwrap_or_default();
                if self.analysis_runs.contains_key(&name) {
                    return;
                }
                let mut v = serde_json::to_value(run).unwrap_or(Value::Null);
                v["metadata"]["uid"] = json!(format!("uid-run-{name}"));
                v["metadata"]["creationTimestamp"] = json!(self.now.to_rfc3339());
                self.analysis_runs.insert(name.clone(), v);
                self.emit_run(rollout, &name);
            }
            Action::PatchAnalysisRun { name, patch } => {
                let Some(v) = self.analysis_runs.get_mut(name) else { return };
                merge_patch(v, patch);
                self.emit_run(rollout, name);
            }
            Action::DeleteAnalysisRun { name } => {
                if self.analysis_runs.remove(name).is_none() {
                    return;
                }
                // Its Jobs are garbage-collected with it.
                let owned: Vec<String> = self
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.job.metadata.owner_references.iter().flatten().any(|o| &o.name == name))
                    .map(|(n, _)| n.clone())
                    .collect();
                for j in owned {
                    self.jobs.remove(&j);
                    self.emit(rollout, Event::Deleted { kind: ObjectKind::Job, name: j });
                }
                self.emit(rollout, Event::Deleted { kind: ObjectKind::AnalysisRun, name: name.clone() });
            }
            Action::Measure { run, metric, index, secrets, .. } => {
                let (mut answer, after) = self.next_answer(metric, Seconds(0));
                let secret_values = self.secret_values(secrets, &mut answer);
                redact(&mut answer, &secret_values);
                let event = Event::Measured { run: run.clone(), metric: metric.clone(), index: *index, answer };
                self.pending.push((self.now.plus(after), rollout.to_string(), event));
            }
            Action::CreateJob { job } => {
                let name = job.metadata.name.clone().unwrap_or_default();
                if self.jobs.contains_key(&name) {
                    return;
                }
                let metric = job
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(crate::rollout::runs::JOB_METRIC_NAME))
                    .cloned()
                    .unwrap_or_default();
                let (answer, after) = self.next_answer(&metric, self.pod_startup());
                let mut stored = (**job).clone();
                stored.metadata.creation_timestamp = Some(to_kube_time(self.now));
                stored.status = Some(JobStatus { active: Some(1), ..Default::default() });
                self.jobs.insert(name.clone(), SimJob { job: stored.clone(), rollout: rollout.to_string() });
                self.emit(rollout, Event::Applied(Object::Job(Box::new(stored.clone()))));
                let failed = answer.error.is_some()
                    || matches!(answer.phase, Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive));
                let mut done = stored;
                done.status = Some(JobStatus {
                    active: Some(0),
                    succeeded: Some(if failed { 0 } else { 1 }),
                    failed: Some(if failed { 1 } else { 0 }),
                    conditions: Some(vec![JobCondition {
                        type_: if failed { "Failed" } else { "Complete" }.into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                self.pending.push((self.now.plus(after), rollout.to_string(), Event::Applied(Object::Job(Box::new(done)))));
            }
            Action::DeleteJob { name } => {
                if self.jobs.remove(name).is_some() {
                    self.pending.retain(|(_, _, e)| !matches!(e, Event::Applied(Object::Job(j)) if j.metadata.name.as_deref() == Some(name.as_str())));
                    self.emit(rollout, Event::Deleted { kind: ObjectKind::Job, name: name.clone() });
                }
            }
            // Not analysis actions: `Cluster::execute` carries them out.
            Action::CreateReplicaSet { .. }
            | Action::PatchReplicaSet { .. }
            | Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::RecordEvent { .. }
            | Action::WakeAt { .. } => {}
        }
    }

    /// The next scripted answer of a metric and its delay.
    fn next_answer(&mut self, metric: &str, default_after: Seconds) -> (MeasurementAnswer, Seconds) {
        let Some(script) = self.metrics.get(metric).filter(|s| !s.is_empty()).cloned() else {
            let msg = format!("metrics.{metric}: the scenario has no answers for metric {metric:?}");
            if !self.errors.contains(&msg) {
                self.errors.push(msg);
            }
            return (MeasurementAnswer { error: Some("no scripted answer".into()), ..Default::default() }, default_after);
        };
        let given = self.answers_given.entry(metric.to_string()).or_insert(0);
        let Some(entry) = script.get((*given).min(script.len().saturating_sub(1))).cloned() else {
            return (MeasurementAnswer::default(), default_after);
        };
        *given += 1;
        let after = entry.after.unwrap_or(default_after);
        let answer = MeasurementAnswer {
            value: entry.value.unwrap_or(Value::Null),
            error: entry.error,
            phase: entry.phase,
            metadata: BTreeMap::new(),
            args_error: None,
        };
        (answer, after)
    }

    /// The values of the Secrets a measurement needs. A missing Secret or key makes the
    /// measurement an error, as it would in a cluster.
    fn secret_values(&self, secrets: &BTreeMap<String, SecretKeyRef>, answer: &mut MeasurementAnswer) -> Vec<String> {
        let mut values = Vec::new();
        for r in secrets.values() {
            let secret: Option<Secret> = self
                .others
                .get(&("Secret".to_string(), r.name.clone()))
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let value = secret.as_ref().and_then(|s| {
                s.string_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key).cloned())
                    .or_else(|| s.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()))
            });
            match value {
                Some(v) => values.push(v),
                None => {
                    // Argo's words for the same failure.
                    answer.args_error = Some(match secret {
                        None => format!("secrets \"{}\" not found", r.name),
                        Some(_) => format!("key '{}' does not exist in secret '{}'", r.key, r.name),
                    });
                    answer.value = Value::Null;
                }
            }
        }
        values
    }

    /// Answers and Job completions due by now go to their controllers.
    pub(super) fn deliver_pending(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|(t, _, _)| *t <= now);
        self.pending = later;
        for (_, rollout, event) in due {
            if let Event::Applied(Object::Job(job)) = &event {
                let name = job.metadata.name.clone().unwrap_or_default();
                match self.jobs.get_mut(&name) {
                    Some(j) => j.job = (**job).clone(),
                    None => continue,
                }
            }
            self.emit(&rollout, event);
        }
    }

    /// The next time a scripted answer or Job completion is due.
    pub(super) fn next_pending(&self) -> Option<Timestamp> {
        self.pending.iter().map(|(t, _, _)| *t).filter(|t| *t > self.now).min()
    }
}

/// Replaces secret values in everything an answer could show.
fn redact(answer: &mut MeasurementAnswer, secrets: &[String]) {
    let hide = |s: &str| secrets.iter().filter(|v| !v.is_empty()).fold(s.to_string(), |acc, v| acc.replace(v.as_str(), REDACTED));
    if let Some(e) = &answer.error {
        answer.error = Some(hide(e));
    }
    if let Value::String(s) = &answer.value {
        answer.value = Value::String(hide(s));
    }
    for v in answer.metadata.values_mut() {
        *v = hide(v);
    }
}
