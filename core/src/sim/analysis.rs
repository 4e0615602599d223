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

use super::cluster::{Cluster, Worker};
use crate::commands::merge_patch;
use crate::analysis::run::MeasurementAnswer;
use crate::api::AnalysisPhase;
use crate::objects::to_kube_time;
use crate::state::{Action, Event, Object, ObjectKind};
use crate::time::{Seconds, Timestamp};

/// A job metric's Job.
#[derive(Clone, Debug)]
pub struct SimJob {
    /// The Job as stored.
    pub job: Job,
    /// The worker whose run created it.
    pub owner: Worker,
}

impl Cluster {
    /// Who watches the run `name`: the Rollout owning it, or the run's own worker and the
    /// Experiment owning it; `by` (the worker that changed it) for a run of neither.
    fn watchers_of_run(&self, name: &str, by: &Worker) -> Vec<Worker> {
        let owner = self.analysis_runs.get(name).and_then(|v| v.pointer("/metadata/ownerReferences/0")).map(|o| {
            let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("kind"), s("name"))
        });
        match owner {
            Some((kind, owner)) if kind == "Rollout" => vec![Worker::Rollout(owner)],
            Some((kind, owner)) if kind == "Experiment" => {
                vec![Worker::AnalysisRun(name.to_string()), Worker::Experiment(owner)]
            }
            Some(_) | None => vec![by.clone()],
        }
    }

    fn emit_run(&mut self, by: &Worker, name: &str) {
        let Some(v) = self.analysis_runs.get(name).cloned() else { return };
        for w in self.watchers_of_run(name, by) {
            self.emit_to(&w, Event::Applied(Object::AnalysisRun(v.clone())));
        }
    }

    /// Carries out the analysis actions of `worker`.
    pub(super) fn execute_analysis(&mut self, worker: &Worker, action: &Action) {
        match action {
            Action::CreateAnalysisRun { run } => {
                let name = run.metadata.name.clone().unwrap_or_default();
                if self.analysis_runs.contains_key(&name) {
                    return;
                }
                let mut v = serde_json::to_value(run).unwrap_or(Value::Null);
                if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("uid".into(), json!(format!("uid-run-{name}")));
                    meta.insert("creationTimestamp".into(), json!(self.now.to_rfc3339()));
                }
                self.analysis_runs.insert(name.clone(), v);
                self.emit_run(worker, &name);
            }
            Action::PatchAnalysisRun { name, patch } => {
                let Some(v) = self.analysis_runs.get_mut(name) else { return };
                merge_patch(v, patch);
                self.emit_run(worker, name);
            }
            Action::DeleteAnalysisRun { name } => {
                let watchers = self.watchers_of_run(name, worker);
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
                    for w in &watchers {
                        self.emit_to(w, Event::Deleted { kind: ObjectKind::Job, name: j.clone() });
                    }
                }
                for w in &watchers {
                    self.emit_to(w, Event::Deleted { kind: ObjectKind::AnalysisRun, name: name.clone() });
                }
            }
            Action::Measure { run, metric, index, secrets, .. } => {
                let (answer, after) = self.next_answer(metric, Seconds(0));
                let answer = match crate::secrets::resolve(secrets, &self.secrets()) {
                    Ok(values) => values.redact(answer),
                    // As the controller reports it: the measurement did not happen.
                    Err(e) => MeasurementAnswer { args_error: Some(e.to_string()), ..MeasurementAnswer::default() },
                };
                let event = Event::Measured { run: run.clone(), metric: metric.clone(), index: *index, answer };
                self.pending.push((self.now.plus(after), worker.clone(), event));
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
                self.jobs.insert(name.clone(), SimJob { job: stored.clone(), owner: worker.clone() });
                self.emit_to(worker, Event::Applied(Object::Job(Box::new(stored.clone()))));
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
                        // What kube-controller-manager writes when the pods keep failing.
                        reason: failed.then(|| "BackoffLimitExceeded".into()),
                        message: failed.then(|| "Job has reached the specified backoff limit".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                self.pending.push((self.now.plus(after), worker.clone(), Event::Applied(Object::Job(Box::new(done)))));
            }
            Action::DeleteJob { name } => {
                if self.jobs.remove(name).is_some() {
                    self.pending.retain(|(_, _, e)| !matches!(e, Event::Applied(Object::Job(j)) if j.metadata.name.as_deref() == Some(name.as_str())));
                    self.emit_to(worker, Event::Deleted { kind: ObjectKind::Job, name: name.clone() });
                }
            }
            // Not analysis actions: `Cluster::execute` carries them out.
            Action::CreateReplicaSet { .. }
            | Action::PatchReplicaSet { .. }
            | Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::CreateService { .. }
            | Action::DeleteService { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
            | Action::CreateExperiment { .. }
            | Action::PatchExperiment { .. }
            | Action::DeleteExperiment { .. }
            | Action::RecordEvent { .. }
            | Action::CreateIngress { .. }
            | Action::PatchIngress { .. }
            | Action::CreateRoute { .. }
            | Action::PatchRoute { .. }
            | Action::DeleteRoute { .. }
            | Action::ScaleDeployment { .. }
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
            message: None,
            recorded: None,
            args_error: None,
        };
        (answer, after)
    }

    /// The Secrets in the cluster, by name (one that does not decode is left out).
    fn secrets(&self) -> BTreeMap<String, Secret> {
        self.others
            .iter()
            .filter(|((kind, _), _)| kind == "Secret")
            .filter_map(|((_, name), v)| Some((name.clone(), serde_json::from_value(v.clone()).ok()?)))
            .collect()
    }

    /// Answers and Job completions due by now go to their controllers.
    pub(super) fn deliver_pending(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|(t, _, _)| *t <= now);
        self.pending = later;
        for (_, worker, event) in due {
            if let Event::Applied(Object::Job(job)) = &event {
                let name = job.metadata.name.clone().unwrap_or_default();
                match self.jobs.get_mut(&name) {
                    Some(j) => j.job = (**job).clone(),
                    None => continue,
                }
            }
            self.emit_to(&worker, event);
        }
    }

    /// The next time a scripted answer or Job completion is due.
    pub(super) fn next_pending(&self) -> Option<Timestamp> {
        self.pending.iter().map(|(t, _, _)| *t).filter(|t| *t > self.now).min()
    }
}
