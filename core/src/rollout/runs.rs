//! Advancing the rollout's AnalysisRuns: the run machine is reconciled for every run the
//! rollout owns, its measurements become [`Action::Measure`] (or a Job for job metrics),
//! and its status changes become merge patches.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::analysis::run::{record_answer, reconcile_run, MeasureRequest, MeasurementAnswer};
use crate::api::{AnalysisPhase, AnalysisRun, AnalysisRunStatus};
use crate::api::merge::merge_diff;
use crate::state::{Action, State};
use crate::time::Timestamp;

/// Labels and annotations Argo puts on analysis Jobs.
pub const JOB_RUN_NAME: &str = "analysisrun.argoproj.io/name";
/// See [`JOB_RUN_NAME`].
pub const JOB_RUN_NAMESPACE: &str = "analysisrun.argoproj.io/namespace";
/// See [`JOB_RUN_NAME`].
pub const JOB_METRIC_NAME: &str = "analysisrun.argoproj.io/metric-name";
/// See [`JOB_RUN_NAME`].
pub const JOB_RUN_UID: &str = "analysisrun.argoproj.io/uid";

/// The merge patch of a run's status, if it changed.
pub(super) fn status_patch(name: &str, old: &AnalysisRunStatus, new: &AnalysisRunStatus) -> Option<Action> {
    if old == new {
        return None;
    }
    let o = serde_json::to_value(old).unwrap_or_default();
    let n = serde_json::to_value(new).unwrap_or_default();
    merge_diff(&o, &n).map(|d| Action::PatchAnalysisRun {
        name: name.to_string(),
        patch: serde_json::Value::Object(serde_json::Map::from_iter([("status".to_string(), d)])),
    })
}

/// The Job name of a job metric's measurement: `<run>.<metric>.<N>`, at most 63
/// characters (it becomes a label value). Argo uses the run's UID; the run's name is as
/// unique (names carry collision suffixes) and known before the run is observed.
pub fn job_name(run: &str, metric: &str, index: i32) -> String {
    let suffix = format!(".{metric}.{index}");
    let full = format!("{run}{suffix}");
    if full.len() <= 63 {
        return full.to_lowercase();
    }
    let hash = crate::hash::short_hash(&full);
    let keep = 63usize.saturating_sub(suffix.len() + hash.len() + 1);
    let head: String = run.chars().take(keep).collect();
    format!("{head}-{hash}{suffix}").chars().take(63).collect::<String>().to_lowercase()
}

/// Advances every observed, unfinished run: Job completions are recorded, the machine is
/// reconciled, and its requests become actions. Returns the actions and the earliest
/// wake-up.
pub(super) fn advance_runs(state: &mut State, now: Timestamp) -> (Vec<Action>, Option<Timestamp>) {
    let mut actions = Vec::new();
    let mut wake: Option<Timestamp> = None;
    let names: Vec<String> = state.analysis_runs.keys().cloned().collect();
    for name in names {
        let Some(run) = state.analysis_runs.get(&name).cloned() else { continue };
        // Runs created in this step are advanced once the API server has them (they need a
        // UID to own their Jobs).
        if run.metadata.uid.is_none() || run.status.phase.is_some_and(AnalysisPhase::completed) {
            continue;
        }
        let mut run = run;
        for (metric, index, job) in in_flight_jobs(&run) {
            let Some(answer) = state.jobs.get(&job).and_then(job_answer) else { continue };
            if let Some(status) = record_answer(&run, &metric, index, &answer, now) {
                run.status = status;
            }
        }
        let outcome = reconcile_run(&run, now);
        let old = state.analysis_runs.get(&name).map(|r| r.status.clone()).unwrap_or_default();
        actions.extend(status_patch(&name, &old, &outcome.status));
        run.status = outcome.status;
        for req in outcome.measure {
            actions.push(measure_action(&run, req));
        }
        for (metric, index) in outcome.terminated {
            if is_job_metric(&run, &metric) {
                let job = job_name(&name, &metric, index);
                if state.jobs.remove(&job).is_some() {
                    actions.push(Action::DeleteJob { name: job });
                }
            }
        }
        if let Some(w) = outcome.wake.filter(|w| *w > now) {
            wake = Some(wake.map_or(w, |cur| cur.min(w)));
        }
        state.analysis_runs.insert(name, run);
    }
    (actions, wake)
}

fn is_job_metric(run: &AnalysisRun, metric: &str) -> bool {
    run.spec.metrics.iter().any(|m| m.name == metric && m.provider.job.is_some())
}

/// The Jobs that runs wait for (a running measurement of a job metric) and that have not
/// been seen, asked for again: after a failed write (a status patch whose answer was lost
/// took effect, the create after it never ran; or the create itself failed) and on resync
/// (a controller killed between the two). The Job's name is fixed by the measurement, so a
/// Job that exists after all answers `AlreadyExists`, which is success.
pub(super) fn awaited_jobs(state: &State) -> Vec<Action> {
    let mut out = Vec::new();
    for run in state.analysis_runs.values() {
        // A run not created yet owns no Job; a finished one has nothing in flight.
        if run.metadata.uid.is_none() {
            continue;
        }
        let name = run.metadata.name.clone().unwrap_or_default();
        for req in crate::analysis::run::in_flight_requests(run).into_iter().filter(|r| r.provider.job.is_some()) {
            if !state.jobs.contains_key(&job_name(&name, &req.metric, req.index)) {
                out.push(measure_action(run, req));
            }
        }
    }
    out
}

/// In-flight measurements of job metrics: (metric, index, job name).
fn in_flight_jobs(run: &AnalysisRun) -> Vec<(String, i32, String)> {
    let name = run.metadata.name.clone().unwrap_or_default();
    run.status
        .metric_results
        .iter()
        .filter(|r| is_job_metric(run, &r.name))
        .filter(|r| r.measurements.last().is_some_and(|m| m.phase == AnalysisPhase::Running))
        .map(|r| {
            let index = r.count + r.error + 1;
            (r.name.clone(), index, job_name(&name, &r.name, index))
        })
        .collect()
}

/// A finished Job's verdict: Complete ⇒ Successful, Failed ⇒ Failed with the Job's reason
/// and message (Argo leaves the measurement's message empty; the reason is what a user
/// looks for first: `BackoffLimitExceeded`, `DeadlineExceeded`).
fn job_answer(job: &Job) -> Option<MeasurementAnswer> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let done = conditions.iter().find(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"))?;
    let (phase, message) = if done.type_ == "Complete" {
        (AnalysisPhase::Successful, None)
    } else {
        let why = [done.reason.as_deref(), done.message.as_deref()].into_iter().flatten().filter(|s| !s.is_empty()).collect::<Vec<_>>();
        let message = if why.is_empty() { "job failed".to_string() } else { format!("job failed: {}", why.join(": ")) };
        (AnalysisPhase::Failed, Some(message))
    };
    let mut metadata = BTreeMap::new();
    if let Some(n) = &job.metadata.name {
        metadata.insert("job-name".to_string(), n.clone());
    }
    if let Some(ns) = &job.metadata.namespace {
        metadata.insert("job-namespace".to_string(), ns.clone());
    }
    Some(MeasurementAnswer { phase: Some(phase), metadata, message, ..Default::default() })
}

/// The action that takes a measurement: a Job for job metrics, else `Measure`.
fn measure_action(run: &AnalysisRun, req: MeasureRequest) -> Action {
    let run_name = run.metadata.name.clone().unwrap_or_default();
    let Some(job) = req.provider.job.clone() else {
        return Action::Measure {
            run: run_name,
            metric: req.metric,
            index: req.index,
            provider: Box::new(req.provider),
            secrets: req.secrets,
            context: req.context,
        };
    };
    let meta = job.metadata.unwrap_or_default();
    let mut labels = meta.labels;
    labels.insert(JOB_RUN_UID.to_string(), run.metadata.uid.clone().unwrap_or_default());
    let mut annotations = meta.annotations;
    annotations.insert(JOB_RUN_NAME.to_string(), run_name.clone());
    annotations.insert(JOB_RUN_NAMESPACE.to_string(), run.metadata.namespace.clone().unwrap_or_default());
    annotations.insert(JOB_METRIC_NAME.to_string(), req.metric.clone());
    Action::CreateJob {
        job: Box::new(Job {
            metadata: ObjectMeta {
                name: Some(job_name(&run_name, &req.metric, req.index)),
                namespace: run.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: crate::api::API_VERSION.to_string(),
                    kind: "AnalysisRun".to_string(),
                    name: run_name,
                    uid: run.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(job.spec),
            status: None,
        }),
    }
}
