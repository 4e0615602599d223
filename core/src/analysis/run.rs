//! The AnalysisRun machine: when each metric is measured, what an answer does to the
//! counters, and the metric and run phases (Argo's `reconcileAnalysisRun`,
//! `assessMetricStatus`, `assessRunStatus`, `calculateNextReconcileTime`).
//!
//! # The caller's loop
//!
//! 1. Call [`reconcile_run`] (or [`settle_run`]) with the run and `now`. Write `status`
//!    back, start every [`MeasureRequest`] of `measure`, stop every measurement listed in
//!    `terminated` (delete its Job), and reconcile again at `wake`.
//! 2. When a measurement answers, call [`record_answer`], write the status back and
//!    reconcile right away at the same `now`: `record_answer` only books the answer,
//!    phases are assessed by the reconcile.
//! 3. Whenever a reconcile returned a status different from the one it was given,
//!    reconcile again. Argo gets that second pass for free from the watch event of its own
//!    status update, and relies on it: a metric that completes Failed, Error or
//!    Inconclusive makes the run *terminating* only on the next reconcile (fail-fast,
//!    scenario AR-07), and an in-flight Job has no wake-up of its own. [`settle_run`]
//!    runs that loop for callers without such an event.
//!
//! # Where this differs from Argo Rollouts, on purpose
//!
//! - Every provider is asynchronous: a due measurement is recorded as Running with a
//!   `resumeAt` (the provider's timeout; none for a Job) and handed to the shell. If the
//!   answer has not come by `resumeAt`, the same request is handed out again (the shell
//!   may have restarted). Argo measures synchronous providers inside the reconcile.
//! - A measurement is due when `now >= lastFinishedAt + interval`, not strictly after:
//!   timestamps are whole seconds, so the equality case is real, and it is the instant
//!   the previous reconcile asked to be woken at. The same holds for `initialDelay`.
//!   Intervals shorter than a second count as one second.
//! - `startedAt` is set before measurements are planned, so a zero `initialDelay`
//!   measures in the first reconcile (Argo: in the immediate requeue after it).
//! - A terminating run stops in-flight measurements at once, even before their
//!   `resumeAt`, and a stopped measurement is always Successful with message
//!   `Metric Terminated` (Argo asks the provider's `Terminate`).
//! - Completed runs are left alone: no `ttlStrategy` deletion (the owner's history limits
//!   delete runs).
//! - A metric whose counters already complete it is never measured again before the
//!   reconcile assesses it (Argo measures and assesses in one reconcile, so it cannot
//!   see that state; here the answer is booked in between).
//! - Secrets: the shell reads them for each measurement; a missing one is a measurement
//!   error (Argo: the whole run errors). The shell must redact secret values from
//!   `MeasurementAnswer::error`, as Argo does with `*****`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{args, condition, validate};
use crate::api::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, IntOrString, Measurement, Metric,
    MetricProvider, MetricResult, ProviderKind, RunSummary, SecretKeyRef,
};
use crate::time::{parse_duration, Seconds, Timestamp};

/// Argo's `DefaultMeasurementHistoryLimit`.
const DEFAULT_MEASUREMENT_HISTORY_LIMIT: usize = 10;
/// Argo's `DefaultErrorRetryInterval`: after an Error measurement, whatever the interval.
const ERROR_RETRY_INTERVAL: Seconds = Seconds(10);
/// Argo's default `consecutiveErrorLimit`.
const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// The message of a measurement stopped because the run is terminating.
const METRIC_TERMINATED: &str = "Metric Terminated";
/// The run message when `spec.terminate` is set.
const RUN_TERMINATED: &str = "Run Terminated";
/// The shortest time between two measurements of a metric.
const MIN_INTERVAL: Seconds = Seconds(1);
/// How long to wait for a provider's answer when it has no timeout of its own.
const DEFAULT_ANSWER_TIMEOUT: Seconds = Seconds(30);

/// How often Argo asks Kayenta whether a canary judgement has finished.
const KAYENTA_RESUME_DELAY: Seconds = Seconds(15);

/// The answer to one measurement, as the shell (or the simulator) reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasurementAnswer {
    /// The provider's result as JSON (`Value::Null` when it returned nothing); judged with the metric's conditions.
    pub value: serde_json::Value,
    /// A provider or transport error: the measurement becomes Error with this message.
    pub error: Option<String>,
    /// Providers that judge themselves (a Job's exit code) give the phase directly; conditions are then not evaluated.
    /// `Pending` / `Running` report progress: the measurement stays in flight.
    pub phase: Option<AnalysisPhase>,
    /// Provider metadata recorded on the measurement.
    pub metadata: BTreeMap<String, String>,
    /// The measurement's value as recorded, when it is not `value` rendered (CloudWatch's
    /// `result` is the result objects, its recorded value Go's print of their values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// Why the provider decided `phase` (a failed Job's reason), recorded as the
    /// measurement's message and so shown in the run's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The shell could not resolve the measurement's secret arguments (a missing Secret
    /// or key): the whole run becomes Error, as Argo's argument resolution does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_error: Option<String>,
}

/// A measurement to start now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureRequest {
    /// The metric's name.
    pub metric: String,
    /// Argo's measurement number N = count + error + 1 of the metric result when it was started (a Job metric's Job is named `<run uid>.<metric>.<N>`); identifies the measurement in the answer.
    pub index: i32,
    /// The provider with every non-secret `{{args.*}}` resolved (args::resolve_metrics).
    pub provider: MetricProvider,
    /// Arguments the shell must read from Secrets (args::secret_args): their `{{args.<name>}}` placeholders are still in `provider`.
    pub secrets: BTreeMap<String, SecretKeyRef>,
    /// What a provider may need besides its spec.
    pub context: MeasureContext,
}

/// What a provider may need besides its spec: Argo's providers get the run and the
/// measurement too. Kayenta is the one that reads these today (its scope windows and the
/// canary execution it resumes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasureContext {
    /// The metric's `interval`, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_at: Option<Timestamp>,
    /// The in-flight measurement's metadata when it is asked for again (Argo's `Resume`):
    /// an asynchronous provider finds what it started there (`canaryExecutionId`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resume: BTreeMap<String, String>,
}

impl MeasureContext {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The outcome of one reconcile of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReconcile {
    /// The run's new status (equal to the old one when nothing changed).
    pub status: AnalysisRunStatus,
    /// Measurements to start now; each is already recorded in `status` as a Running measurement.
    pub measure: Vec<MeasureRequest>,
    /// In-flight measurements stopped because the run is terminating: (metric, index). Their Jobs must be deleted.
    pub terminated: Vec<(String, i32)>,
    /// When the run next needs a reconcile, if ever.
    pub wake: Option<Timestamp>,
}

/// One reconcile of a run at `now`: validates the spec, stops, re-sends or starts
/// measurements, assesses every metric and the run, trims the measurement history and
/// says when to come back. A completed run is returned unchanged.
pub fn reconcile_run(run: &AnalysisRun, now: Timestamp) -> RunReconcile {
    let mut out = RunReconcile {
        status: run.status.clone(),
        measure: Vec::new(),
        terminated: Vec::new(),
        wake: None,
    };
    if is_completed(&run.status) {
        return out;
    }
    let prepared = match prepare(run) {
        Ok(p) => p,
        Err(message) => {
            out.status.phase = Some(AnalysisPhase::Error);
            out.status.message = message;
            out.status.completed_at = Some(now);
            return out;
        }
    };
    let status = &mut out.status;
    if status.started_at.is_none() {
        status.started_at = Some(now);
    }
    let terminating = terminating(run.spec.terminate, status);
    let secrets = args::secret_args(&run.spec.args);
    let metrics = &prepared.metrics;

    for (i, task) in plan(status, metrics, terminating, now) {
        let Some(metric) = metrics.get(i) else {
            continue;
        };
        match task {
            Task::Start => {
                let index = start_measurement(status, metrics, i, &prepared.dry_run, now);
                out.measure.push(request(metric, index, &secrets, status));
            }
            Task::Resend => {
                let Some(result) = result_mut(status, &metric.name) else {
                    continue;
                };
                let index = measurement_index(result);
                if let Some(m) = result.measurements.last_mut() {
                    m.resume_at = answer_timeout(&metric.provider).map(|t| now.plus(t));
                }
                out.measure.push(request(metric, index, &secrets, status));
            }
            Task::Stop => {
                let Some(result) = result_mut(status, &metric.name) else {
                    continue;
                };
                let index = measurement_index(result);
                if let Some(m) = result.measurements.last_mut() {
                    m.phase = AnalysisPhase::Successful;
                    m.message = METRIC_TERMINATED.to_string();
                    m.finished_at = Some(now);
                    m.resume_at = None;
                }
                count_measurement(result, AnalysisPhase::Successful);
                out.terminated.push((metric.name.clone(), index));
            }
        }
    }

    let (phase, message) = assess_run(status, metrics, &prepared.dry_run, run.spec.terminate);
    if status.phase != Some(phase) {
        // Argo rewrites the message only on a phase transition.
        status.phase = Some(phase);
        status.message = message;
        if phase.completed() {
            status.completed_at = Some(now);
        }
    }
    trim_measurements(
        status,
        metrics,
        &prepared.retention,
        DEFAULT_MEASUREMENT_HISTORY_LIMIT,
    );
    out.wake = next_wake(status, metrics, now);
    out
}

/// [`reconcile_run`] repeated at the same `now` until the status stops changing (at most
/// a few passes): what Argo reaches through the watch events of its own status updates.
/// The requests and stops of all passes are merged; a measurement started and stopped
/// within the same call appears in neither list (it never needs to exist).
pub fn settle_run(run: &AnalysisRun, now: Timestamp) -> RunReconcile {
    // Each pass can only start, stop or assess; three are always enough, eight is slack.
    const MAX_PASSES: usize = 8;
    let mut current = run.clone();
    let mut out = reconcile_run(&current, now);
    for _ in 1..MAX_PASSES {
        if out.status == current.status {
            break;
        }
        current.status = out.status.clone();
        let next = reconcile_run(&current, now);
        out.measure.extend(next.measure);
        out.terminated.extend(next.terminated);
        out.status = next.status;
        out.wake = next.wake;
    }
    let started: BTreeSet<(String, i32)> = out
        .measure
        .iter()
        .map(|m| (m.metric.clone(), m.index))
        .collect();
    let stopped: BTreeSet<(String, i32)> = out.terminated.iter().cloned().collect();
    out.measure
        .retain(|m| !stopped.contains(&(m.metric.clone(), m.index)));
    out.terminated.retain(|t| !started.contains(t));
    out
}

/// Completes the in-flight measurement `index` of `metric` with an answer. Returns the new status, or None when the answer is stale (no such in-flight measurement: already answered, or from before a restart).
///
/// Only the measurement and the metric's counters change; the caller reconciles right
/// after, which assesses the phases. An answer whose `phase` is Pending or Running only
/// records its value and metadata and leaves the measurement in flight.
pub fn record_answer(
    run: &AnalysisRun,
    metric: &str,
    index: i32,
    answer: &MeasurementAnswer,
    now: Timestamp,
) -> Option<AnalysisRunStatus> {
    if is_completed(&run.status) {
        return None;
    }
    let mut status = run.status.clone();
    let result = result_mut(&mut status, metric)?;
    let in_flight = result
        .measurements
        .last()
        .is_some_and(|m| m.finished_at.is_none());
    if result.phase.completed() || !in_flight || measurement_index(result) != index {
        return None;
    }
    if let Some(e) = &answer.args_error {
        let message = format!("Unable to resolve metric arguments: {e}");
        let measurement = result.measurements.last_mut()?;
        measurement.phase = AnalysisPhase::Error;
        measurement.message = message.clone();
        measurement.finished_at = Some(now);
        measurement.resume_at = None;
        status.phase = Some(AnalysisPhase::Error);
        status.message = message;
        status.completed_at = Some(now);
        return Some(status);
    }
    let (phase, message) = judge(run, metric, answer);
    let measurement = result.measurements.last_mut()?;
    measurement.value = answer.recorded.clone().unwrap_or_else(|| render_value(&answer.value));
    measurement
        .metadata
        .extend(answer.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
    if phase.completed() {
        measurement.phase = phase;
        measurement.message = message;
        measurement.finished_at = Some(now);
        measurement.resume_at = None;
        count_measurement(result, phase);
    }
    Some(status)
}

/// The measurements in flight, as the requests that started them, for a shell that
/// restarted and lost track of them (a Job request is safe to repeat: its name is
/// deterministic). Empty for a completed run or one whose arguments do not resolve.
pub fn in_flight_requests(run: &AnalysisRun) -> Vec<MeasureRequest> {
    if is_completed(&run.status) {
        return Vec::new();
    }
    let Ok(metrics) = args::resolve_metrics(&run.spec.metrics, &run.spec.args) else {
        return Vec::new();
    };
    let secrets = args::secret_args(&run.spec.args);
    metrics
        .iter()
        .filter_map(|metric| {
            let result = result_of(&run.status, &metric.name)?;
            let last = result.measurements.last()?;
            let in_flight = last.finished_at.is_none() && !result.phase.completed();
            in_flight.then(|| request(metric, measurement_index(result), &secrets, &run.status))
        })
        .collect()
}

/// Argo's `IsTerminating`: `spec.terminate`, or a non-dry-run metric already Failed,
/// Error or Inconclusive. A terminating run takes no new measurements.
pub fn is_terminating(run: &AnalysisRun) -> bool {
    terminating(run.spec.terminate, &run.status)
}

/// Argo's `IsWorse`: whether `new` is a worse phase than `current`, in the order
/// Successful < Running < Pending < Inconclusive < Error < Failed.
pub fn is_worse(current: AnalysisPhase, new: AnalysisPhase) -> bool {
    severity(new) > severity(current)
}

/// Argo's `Worst`: the worse of two phases (the left one on a tie).
pub fn worst(left: AnalysisPhase, right: AnalysisPhase) -> AnalysisPhase {
    if is_worse(left, right) {
        right
    } else {
        left
    }
}

fn severity(phase: AnalysisPhase) -> u8 {
    match phase {
        AnalysisPhase::Successful => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Pending => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
    }
}

fn is_completed(status: &AnalysisRunStatus) -> bool {
    status.phase.is_some_and(AnalysisPhase::completed)
}

fn terminating(terminate: bool, status: &AnalysisRunStatus) -> bool {
    terminate
        || status.metric_results.iter().any(|r| {
            !r.dry_run
                && matches!(
                    r.phase,
                    AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
                )
        })
}

/// The spec as the reconcile uses it: arguments resolved, rules matched.
struct Prepared {
    metrics: Vec<Metric>,
    dry_run: BTreeSet<String>,
    retention: BTreeMap<String, i32>,
}

/// Everything that makes a run Error before any measurement, with Argo's messages.
fn prepare(run: &AnalysisRun) -> Result<Prepared, String> {
    let metrics = args::resolve_metrics(&run.spec.metrics, &run.spec.args)
        .map_err(|e| format!("Unable to resolve metric arguments: {e}"))?;
    let invalid = |e: String| format!("Analysis spec invalid: {e}");
    validate::validate_metrics(&metrics).map_err(invalid)?;
    // Argo only finds a broken condition when the first answer is judged; failing the
    // run up front names the field instead of erroring every measurement.
    // (`validate_metrics` checks this too; a Secret's placeholder is left for the
    // measurement, where the shell has substituted it.)
    for (i, metric) in metrics.iter().enumerate() {
        let conditions = [
            ("successCondition", &metric.success_condition),
            ("failureCondition", &metric.failure_condition),
        ];
        for (field, expression) in conditions {
            let Some(expression) = expression
                .as_deref()
                .filter(|e| !e.is_empty() && !e.contains("{{"))
            else {
                continue;
            };
            condition::check_condition(expression).map_err(|e| {
                invalid(format!(
                    "metrics[{i}]: invalid {field} \"{expression}\": {e}"
                ))
            })?;
        }
    }
    let dry_run = validate::dry_run_metrics(&run.spec.dry_run, &metrics).map_err(invalid)?;
    let retention =
        validate::retention_limits(&run.spec.measurement_retention, &metrics).map_err(invalid)?;
    Ok(Prepared {
        metrics,
        dry_run,
        retention,
    })
}

/// What to do with one metric this reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    /// Take a new measurement.
    Start,
    /// Hand out the in-flight measurement again: its answer is overdue.
    Resend,
    /// Stop the in-flight measurement: the run is terminating.
    Stop,
}

/// Argo's `generateMetricTasks`, by index into `metrics`.
fn plan(
    status: &AnalysisRunStatus,
    metrics: &[Metric],
    terminating: bool,
    now: Timestamp,
) -> Vec<(usize, Task)> {
    let mut tasks = Vec::new();
    for (i, metric) in metrics.iter().enumerate() {
        let result = result_of(status, &metric.name);
        if let Some(r) = result {
            if r.phase.completed() || assess_metric(metric, r, terminating).completed() {
                continue;
            }
        }
        let last = result.and_then(|r| r.measurements.last());
        if let Some(m) = last.filter(|m| m.finished_at.is_none()) {
            if terminating {
                tasks.push((i, Task::Stop));
            } else {
                match m.resume_at {
                    Some(at) if at > now => {}
                    Some(_) => tasks.push((i, Task::Resend)),
                    // A Job answers through its watch, never by timeout. Anything else
                    // in flight without a deadline was not started by us (a status
                    // written before a restart, or by Argo): ask again, as Argo resumes it.
                    None if metric.provider.job.is_some() => {}
                    None => tasks.push((i, Task::Resend)),
                }
            }
            continue;
        }
        if terminating {
            continue;
        }
        let (Some(result), Some(last)) = (result, last) else {
            if !is_blank(&metric.initial_delay) {
                let Some(started) = status.started_at else {
                    continue;
                };
                let Ok(delay) = parse_duration(metric.initial_delay.as_deref().unwrap_or_default())
                else {
                    continue;
                };
                if now < started.plus(delay) {
                    continue;
                }
            }
            tasks.push((i, Task::Start));
            continue;
        };
        if count_reached(metric, result) {
            continue;
        }
        let (Some(interval), Some(finished)) = (next_interval(metric, last), last.finished_at)
        else {
            continue;
        };
        if now >= finished.plus(interval) {
            tasks.push((i, Task::Start));
        }
    }
    tasks
}

/// The time between the last finished measurement and the next one; None when the
/// interval does not parse (that metric is never measured again, as in Argo).
fn next_interval(metric: &Metric, last: &Measurement) -> Option<Seconds> {
    if last.phase == AnalysisPhase::Error {
        return Some(ERROR_RETRY_INTERVAL);
    }
    match metric.interval.as_deref().filter(|s| !s.is_empty()) {
        // Whole seconds: `500ms` or `0s` would make a metric due again at the very instant
        // it was answered, measuring in a loop without time ever passing. Argo spins the
        // same way, only throttled by its work queue.
        Some(interval) => parse_duration(interval).ok().map(|d| d.max(MIN_INTERVAL)),
        // Only reachable with a count > 1 and no interval, which validation rejects; Argo
        // retries such a metric every 10 s but never requeues for it. Both use 10 s here
        // so the run cannot stall.
        None => Some(ERROR_RETRY_INTERVAL),
    }
}

/// Argo's `calculateNextReconcileTime`, never at or before `now`.
fn next_wake(status: &AnalysisRunStatus, metrics: &[Metric], now: Timestamp) -> Option<Timestamp> {
    if is_completed(status) {
        return None;
    }
    let mut wake: Option<Timestamp> = None;
    for metric in metrics {
        let result = result_of(status, &metric.name);
        if result.is_some_and(|r| r.phase.completed()) {
            continue;
        }
        let at = match (result, result.and_then(|r| r.measurements.last())) {
            (Some(result), Some(last)) => match last.finished_at {
                None => match last.resume_at {
                    Some(at) => at,
                    None => continue,
                },
                Some(finished) => {
                    if count_reached(metric, result) {
                        continue;
                    }
                    match next_interval(metric, last) {
                        Some(interval) => finished.plus(interval),
                        None => continue,
                    }
                }
            },
            (None, _) | (Some(_), None) => {
                if is_blank(&metric.initial_delay) {
                    continue;
                }
                let Ok(delay) = parse_duration(metric.initial_delay.as_deref().unwrap_or_default())
                else {
                    continue;
                };
                status.started_at.unwrap_or(now).plus(delay)
            }
        };
        // Anything due at `now` was done by this reconcile; a due time in the past can
        // only come from a status we did not write, and must not become a busy loop.
        let at = at.max(now.plus(Seconds(1)));
        wake = Some(wake.map_or(at, |w| w.min(at)));
    }
    wake
}

/// Argo's `assessMetricStatus`.
fn assess_metric(metric: &Metric, result: &MetricResult, terminating: bool) -> AnalysisPhase {
    if result.phase.completed() {
        return result.phase;
    }
    let Some(last) = result.measurements.last() else {
        // Told to stop before the first measurement: nothing went wrong.
        return if terminating {
            AnalysisPhase::Successful
        } else {
            AnalysisPhase::Pending
        };
    };
    if !last.phase.completed() {
        return AnalysisPhase::Running;
    }
    if let Some((phase, _)) = limit_check(metric, result) {
        return phase;
    }
    let success_limit = consecutive_success_limit(metric);
    if success_limit > 0 && result.consecutive_success >= success_limit {
        return AnalysisPhase::Successful;
    }
    if count_reached(metric, result) {
        // Out of measurements without the required streak of successes.
        return match (success_limit > 0, failure_limit(metric) >= 0) {
            (true, true) => AnalysisPhase::Inconclusive,
            (true, false) => AnalysisPhase::Failed,
            (false, _) => AnalysisPhase::Successful,
        };
    }
    if terminating {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    }
}

/// Argo's `assessMetricFailureInconclusiveOrError`: the limits a result exceeds, the
/// last exceeded one winning, with its message.
fn limit_check(metric: &Metric, result: &MetricResult) -> Option<(AnalysisPhase, String)> {
    let mut hit = None;
    let failure = failure_limit(metric);
    if failure >= 0 && result.failed > failure {
        hit = Some((
            AnalysisPhase::Failed,
            format!("failed ({}) > failureLimit ({failure})", result.failed),
        ));
    }
    let inconclusive = inconclusive_limit(metric);
    if result.inconclusive > inconclusive {
        hit = Some((
            AnalysisPhase::Inconclusive,
            format!(
                "inconclusive ({}) > inconclusiveLimit ({inconclusive})",
                result.inconclusive
            ),
        ));
    }
    let errors = consecutive_error_limit(metric);
    if result.consecutive_error > errors {
        hit = Some((
            AnalysisPhase::Error,
            format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({errors})",
                result.consecutive_error
            ),
        ));
    }
    hit
}

/// Argo's `assessRunStatus`: updates every metric's phase and message and both
/// summaries, and returns the run's phase and message.
fn assess_run(
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    dry_run: &BTreeSet<String>,
    terminate: bool,
) -> (AnalysisPhase, String) {
    let terminating = terminating(terminate, status);
    let mut worst_phase: Option<AnalysisPhase> = None;
    let mut worst_message = if terminate {
        RUN_TERMINATED.to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut run_summary = RunSummary::default();
    let mut dry_run_summary = RunSummary::default();

    for metric in metrics {
        let dry = dry_run.contains(&metric.name);
        let summary = if dry {
            &mut dry_run_summary
        } else {
            &mut run_summary
        };
        summary.count = summary.count.saturating_add(1);
        let Some(result) = result_mut(status, &metric.name) else {
            // Not started yet (an initial delay).
            everything_completed = false;
            continue;
        };
        let phase = assess_metric(metric, result, terminating);
        if result.phase != phase {
            if let Some(last) = result.measurements.last() {
                result.message = last.message.clone();
            }
            result.phase = phase;
        }
        if !phase.completed() {
            everything_completed = false;
            continue;
        }
        let hit = limit_check(metric, result);
        if dry {
            // Dry-run metrics never decide the run; they only keep "nothing went wrong"
            // from reading as "nothing completed".
            worst_phase.get_or_insert(AnalysisPhase::Successful);
            if let Some((_, why)) = &hit {
                result.message = format!("Metric assessed {} due to {why}", phase.as_str());
            }
        } else if worst_phase.is_none_or(|w| is_worse(w, phase)) {
            worst_phase = Some(phase);
            if let Some((_, why)) = &hit {
                worst_message = format!(
                    "Metric \"{}\" assessed {} due to {why}",
                    metric.name,
                    phase.as_str()
                );
                if !result.message.is_empty() {
                    worst_message.push_str(&format!(": \"Error Message: {}\"", result.message));
                }
            }
        }
        tally(summary, hit.map(|(p, _)| p));
    }
    status.run_summary = Some(run_summary);
    status.dry_run_summary = Some(dry_run_summary);
    let worst_message = worst_message.trim().to_string();
    if terminating {
        return (
            worst_phase.unwrap_or(AnalysisPhase::Successful),
            worst_message,
        );
    }
    match worst_phase {
        Some(phase) if everything_completed => (phase, worst_message),
        Some(_) | None => (AnalysisPhase::Running, String::new()),
    }
}

/// Argo counts a completed metric in the summary by the limit it exceeded, and as
/// successful when it exceeded none (even when it completed Inconclusive by count).
fn tally(summary: &mut RunSummary, limit_phase: Option<AnalysisPhase>) {
    let slot = match limit_phase {
        Some(AnalysisPhase::Failed) => &mut summary.failed,
        Some(AnalysisPhase::Inconclusive) => &mut summary.inconclusive,
        Some(AnalysisPhase::Error) => &mut summary.error,
        Some(AnalysisPhase::Successful | AnalysisPhase::Pending | AnalysisPhase::Running)
        | None => &mut summary.successful,
    };
    *slot = slot.saturating_add(1);
}

/// Keeps the newest measurements of each metric: the retention limit when one is set
/// above 0, else `default_limit`. Results of metrics no longer in the spec are kept
/// whole, as Argo does.
fn trim_measurements(
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    retention: &BTreeMap<String, i32>,
    default_limit: usize,
) {
    for result in &mut status.metric_results {
        if !metrics.iter().any(|m| m.name == result.name) {
            continue;
        }
        let limit = retention
            .get(&result.name)
            .and_then(|l| usize::try_from(*l).ok())
            .filter(|l| *l > 0)
            .unwrap_or(default_limit);
        let excess = result.measurements.len().saturating_sub(limit);
        result.measurements.drain(..excess);
    }
}

/// Records a new Running measurement of `metrics[i]` and returns its index. A metric's
/// result is created with its first measurement, in spec order.
fn start_measurement(
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    i: usize,
    dry_run: &BTreeSet<String>,
    now: Timestamp,
) -> i32 {
    let Some(metric) = metrics.get(i) else {
        return 0;
    };
    let pos = match status
        .metric_results
        .iter()
        .position(|r| r.name == metric.name)
    {
        Some(pos) => pos,
        None => {
            let spec_index = |name: &str| metrics.iter().position(|m| m.name == name);
            let pos = status
                .metric_results
                .iter()
                .position(|r| spec_index(&r.name).is_none_or(|j| j > i))
                .unwrap_or(status.metric_results.len());
            status.metric_results.insert(
                pos,
                MetricResult {
                    name: metric.name.clone(),
                    phase: AnalysisPhase::Running,
                    dry_run: dry_run.contains(&metric.name),
                    metadata: provider_metadata(&metric.provider),
                    ..MetricResult::default()
                },
            );
            pos
        }
    };
    let Some(result) = status.metric_results.get_mut(pos) else {
        return 0;
    };
    let index = measurement_index(result);
    result.measurements.push(Measurement {
        phase: AnalysisPhase::Running,
        started_at: Some(now),
        resume_at: answer_timeout(&metric.provider).map(|t| now.plus(t)),
        ..Measurement::default()
    });
    index
}

fn request(
    metric: &Metric,
    index: i32,
    secrets: &BTreeMap<String, SecretKeyRef>,
    status: &AnalysisRunStatus,
) -> MeasureRequest {
    let resume = result_of(status, &metric.name)
        .and_then(|r| r.measurements.last())
        .filter(|m| m.finished_at.is_none())
        .map(|m| m.metadata.clone())
        .unwrap_or_default();
    MeasureRequest {
        metric: metric.name.clone(),
        index,
        provider: metric.provider.clone(),
        secrets: secrets.clone(),
        context: MeasureContext {
            interval: metric.interval.clone().filter(|i| !i.is_empty()),
            run_started_at: status.started_at,
            resume,
        },
    }
}

/// Argo's measurement number of the next (or the in-flight) measurement: counters only
/// move when the last measurement finishes, so it is stable while one is in flight.
fn measurement_index(result: &MetricResult) -> i32 {
    result.count.saturating_add(result.error).saturating_add(1)
}

/// How long to wait for an answer before asking again; None for a Job, which answers
/// through the Job's status however long it runs.
fn answer_timeout(provider: &MetricProvider) -> Option<Seconds> {
    let positive_or =
        |t: Option<i64>, default: i64| Seconds(t.filter(|t| *t > 0).unwrap_or(default));
    match provider.kinds().first() {
        Some(ProviderKind::Job) => None,
        Some(ProviderKind::Prometheus) => Some(positive_or(
            provider.prometheus.as_ref().and_then(|p| p.timeout),
            30,
        )),
        Some(ProviderKind::Web) => Some(positive_or(
            provider.web.as_ref().and_then(|w| w.timeout_seconds),
            10,
        )),
        // Argo resumes a Kayenta judgement every 15 s.
        Some(ProviderKind::Kayenta) => Some(KAYENTA_RESUME_DELAY),
        Some(
            ProviderKind::Datadog
            | ProviderKind::Wavefront
            | ProviderKind::NewRelic
            | ProviderKind::CloudWatch
            | ProviderKind::Graphite
            | ProviderKind::Influxdb
            | ProviderKind::SkyWalking
            | ProviderKind::Plugin,
        )
        | None => Some(DEFAULT_ANSWER_TIMEOUT),
    }
}

/// Argo's providers' `GetMetadata`, recorded on a new metric result. Secret arguments
/// are still placeholders here, so no secret reaches the status.
fn provider_metadata(provider: &MetricProvider) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    if let Some(p) = provider.prometheus.as_ref().filter(|p| !p.query.is_empty()) {
        metadata.insert("ResolvedPrometheusQuery".to_string(), p.query.clone());
    }
    if let Some(n) = provider.new_relic.as_ref().filter(|n| !n.query.is_empty()) {
        metadata.insert("ResolvedNewRelicQuery".to_string(), n.query.clone());
    }
    metadata
}

/// The phase and message of an answered measurement.
fn judge(run: &AnalysisRun, metric: &str, answer: &MeasurementAnswer) -> (AnalysisPhase, String) {
    if let Some(error) = &answer.error {
        return (AnalysisPhase::Error, error.clone());
    }
    if let Some(phase) = answer.phase {
        return (phase, answer.message.clone().unwrap_or_default());
    }
    let metrics = match args::resolve_metrics(&run.spec.metrics, &run.spec.args) {
        Ok(metrics) => metrics,
        Err(e) => {
            return (
                AnalysisPhase::Error,
                format!("Unable to resolve metric arguments: {e}"),
            )
        }
    };
    let Some(resolved) = metrics.iter().find(|m| m.name == metric) else {
        return (
            AnalysisPhase::Error,
            format!("metric {metric:?} is no longer in the run's spec"),
        );
    };
    match condition::evaluate_result(resolved, &answer.value) {
        Ok(phase) if phase.completed() => (phase, String::new()),
        // Conditions only ever judge; an unfinished verdict would leave the measurement
        // in flight with nobody left to answer it.
        Ok(phase) => (
            AnalysisPhase::Error,
            format!("conditions evaluated to {}", phase.as_str()),
        ),
        Err(message) => (AnalysisPhase::Error, message),
    }
}

/// The measurement's `value`: a JSON string as is, nothing as "", anything else as
/// compact JSON (`[0.99]`).
fn render_value(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            serde_json::to_string(value).unwrap_or_default()
        }
    }
}

/// Argo's counter bookkeeping for a finished measurement. Errors do not count towards
/// `count`.
fn count_measurement(result: &mut MetricResult, phase: AnalysisPhase) {
    let bump = |n: &mut i32| *n = n.saturating_add(1);
    match phase {
        AnalysisPhase::Successful => {
            bump(&mut result.successful);
            bump(&mut result.count);
            result.consecutive_error = 0;
            bump(&mut result.consecutive_success);
        }
        AnalysisPhase::Failed => {
            bump(&mut result.failed);
            bump(&mut result.count);
            result.consecutive_error = 0;
            result.consecutive_success = 0;
        }
        AnalysisPhase::Inconclusive => {
            bump(&mut result.inconclusive);
            bump(&mut result.count);
            result.consecutive_error = 0;
            result.consecutive_success = 0;
        }
        AnalysisPhase::Error => {
            bump(&mut result.error);
            bump(&mut result.consecutive_error);
            result.consecutive_success = 0;
        }
        AnalysisPhase::Pending | AnalysisPhase::Running => {}
    }
}

fn result_of<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status.metric_results.iter().find(|r| r.name == name)
}

fn result_mut<'a>(status: &'a mut AnalysisRunStatus, name: &str) -> Option<&'a mut MetricResult> {
    status.metric_results.iter_mut().find(|r| r.name == name)
}

fn is_blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// Go's `IntOrString.IntValue()`: a string that is not a number is 0.
fn int_value(v: &IntOrString) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => s
            .parse::<i64>()
            .map(|n| n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
            .unwrap_or(0),
    }
}

/// Argo's `EffectiveCount`: how many measurements the metric takes, None = unbounded. A
/// metric without count and interval is measured once.
fn effective_count(metric: &Metric) -> Option<i32> {
    match metric.count.as_ref().map(int_value).unwrap_or(0) {
        0 if is_blank(&metric.interval) => Some(1),
        0 => None,
        count => Some(count),
    }
}

fn count_reached(metric: &Metric, result: &MetricResult) -> bool {
    effective_count(metric).is_some_and(|count| result.count >= count)
}

fn failure_limit(metric: &Metric) -> i32 {
    metric.failure_limit.as_ref().map(int_value).unwrap_or(0)
}

fn inconclusive_limit(metric: &Metric) -> i32 {
    metric
        .inconclusive_limit
        .as_ref()
        .map(int_value)
        .unwrap_or(0)
}

fn consecutive_error_limit(metric: &Metric) -> i32 {
    metric
        .consecutive_error_limit
        .as_ref()
        .map(int_value)
        .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
}

fn consecutive_success_limit(metric: &Metric) -> i32 {
    metric
        .consecutive_success_limit
        .as_ref()
        .map(int_value)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
