//! `rollouts analyze -f TEMPLATE [-a NAME=VALUE]… [--answer METRIC=RESULT]… [--at TIME]`:
//! runs an AnalysisTemplate once, so that it can be tried before it guards a rollout.
//!
//! The run is the core's: the template is decoded and validated as the controller does,
//! then every metric is measured once — by its provider from this machine, or offline from
//! `--answer` — and judged by its conditions. One measurement decides: `count`,
//! `interval`, `initialDelay` and the limits are not applied, so any Failed measurement
//! fails the run (dry-run metrics excepted, as in a rollout). Exit 0 when the run is
//! Successful, 1 when it is Failed, Error or Inconclusive, 2 when the template cannot be
//! read or is invalid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;
use rollouts_core::analysis::args::flatten_templates;
use rollouts_core::analysis::run::{record_answer, reconcile_run, MeasurementAnswer};
use rollouts_core::analysis::validate::validate_metrics;
use rollouts_core::api::parse::from_value_strict;
use rollouts_core::api::{AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisTemplate, Argument, IntOrString, Metric};
use rollouts_core::secrets::SecretValues;
use rollouts_core::time::Timestamp;
use serde_json::Value;

use super::tabwriter;
use crate::kubeapi::KubeArgs;
use crate::providers::{self, Ctx};

/// Exit code for a run that is not Successful.
const EXIT_NOT_SUCCESSFUL: u8 = 1;
/// Exit code for a template that cannot be read, or that the controller would refuse.
const EXIT_BAD_TEMPLATE: u8 = 2;
/// Rounds of measure-and-judge before giving up (each metric needs one; an asynchronous
/// provider such as Kayenta is asked again while it answers Running).
const MAX_ROUNDS: usize = 240;
/// How long to wait before asking an asynchronous provider again.
const RESUME_DELAY: Duration = Duration::from_secs(15);

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The AnalysisTemplate or ClusterAnalysisTemplate (YAML or JSON; the first template of
    /// the file is run, the others may be the ones it references in `spec.templates`).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// A value for one of the template's arguments (repeatable).
    #[arg(short = 'a', long = "argument", value_name = "NAME=VALUE")]
    args: Vec<String>,
    /// Judge METRIC's result without asking its provider (repeatable): a JSON value
    /// (`[0.97]`, `{"ok":true}`), else the text; for a job metric `Successful` or `Failed`.
    #[arg(long = "answer", value_name = "METRIC=RESULT")]
    answers: Vec<String>,
    /// The instant the measurements are taken at (RFC 3339; default now): the end of the
    /// providers' query windows and `now()` of Prometheus range queries.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// A bad invocation or template: printed, exit 2.
struct BadInput(String);

pub fn run(args: AnalyzeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(analyze(&args)) {
        Ok(AnalysisPhase::Successful) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_NOT_SUCCESSFUL),
        Err(BadInput(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_BAD_TEMPLATE)
        }
    }
}

async fn analyze(args: &AnalyzeArgs) -> Result<AnalysisPhase, BadInput> {
    let (at, now) = instant(args.at.as_deref())?;
    let (template, run) = prepare(args, at)?;
    let answers = parse_answers(&args.answers, &run.spec.metrics)?;

    // A cluster is only needed for Secrets; without one, the providers that need none still
    // measure, and a Secret read says why it cannot be.
    let connection = args.kube.connect().await.ok();
    let namespace = connection.as_ref().map_or_else(|| args.kube.namespace.clone().unwrap_or_else(|| "default".to_string()), |c| c.namespace.clone());
    let client = connection.as_ref().map(|c| &c.client);

    let mut run = run;
    let mut taken: BTreeMap<String, MeasurementAnswer> = BTreeMap::new();
    let mut clock = at;
    for _ in 0..MAX_ROUNDS {
        let outcome = reconcile_run(&run, clock);
        run.status = outcome.status;
        if run.status.phase.is_some_and(AnalysisPhase::completed) || outcome.measure.is_empty() {
            break;
        }
        for req in outcome.measure {
            let answer = match answers.get(&req.metric) {
                Some(a) => a.clone(),
                None => {
                    let values = match (&client, req.secrets.is_empty()) {
                        (_, true) => SecretValues::default(),
                        (Some(c), false) => match providers::read_secrets(c, &namespace, &req.secrets).await {
                            Ok(v) => v,
                            Err(e) => return Ok(report(&template, at, &run, Some(&format!("cannot read the secret arguments: {e}")))),
                        },
                        (None, false) => {
                            let names: Vec<&str> = req.secrets.keys().map(String::as_str).collect();
                            return Err(BadInput(format!(
                                "argument(s) {} come from Secrets and there is no cluster to read them from: give them with -a NAME=VALUE",
                                names.join(", ")
                            )));
                        }
                    };
                    let controller_ns = providers::controller_namespace();
                    let when = now + Duration::from_secs(u64::try_from(clock.0 - at.0).unwrap_or(0));
                    let ctx = Ctx::new(client, &controller_ns, when, &req.context).with_run_namespace(&namespace);
                    values.redact(providers::measure_resolved(&ctx, &values, &req.provider).await)
                }
            };
            taken.insert(req.metric.clone(), answer.clone());
            if let Some(status) = record_answer(&run, &req.metric, req.index, &answer, clock) {
                run.status = status;
            }
        }
        // Only an asynchronous provider (Kayenta: Running) leaves a measurement in flight.
        if run.status.metric_results.iter().any(|r| r.measurements.last().is_some_and(|m| m.finished_at.is_none())) {
            tokio::time::sleep(RESUME_DELAY).await;
            clock = clock.plus(rollouts_core::time::Seconds(RESUME_DELAY.as_secs() as i64));
        }
    }
    Ok(report(&template, at, &run, None))
}

/// The instant of the measurements, as the core's timestamp and the providers' time.
fn instant(at: Option<&str>) -> Result<(Timestamp, SystemTime), BadInput> {
    match at {
        None => {
            let now = SystemTime::now();
            Ok((Timestamp::from_system_time(now), now))
        }
        Some(text) => {
            let t = Timestamp::parse_rfc3339(text).ok_or_else(|| BadInput(format!("--at {text:?} is not an RFC 3339 time (2026-12-05T10:00:00Z)")))?;
            let secs = u64::try_from(t.0).map_err(|_| BadInput(format!("--at {text:?} is before 1970")))?;
            Ok((t, SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
        }
    }
}

/// Reads the template and builds the run the controller would, with one measurement per metric.
fn prepare(args: &AnalyzeArgs, at: Timestamp) -> Result<(AnalysisTemplate, AnalysisRun), BadInput> {
    let path = args.file.display().to_string();
    let templates = read_templates(&args.file).map_err(|e| BadInput(format!("{path}: {e}")))?;
    let Some(first) = templates.first().cloned() else {
        return Err(BadInput(format!("{path}: no AnalysisTemplate or ClusterAnalysisTemplate in the file")));
    };
    let referenced = referenced(&first, &templates).map_err(|e| BadInput(format!("{path}: {e}")))?;
    let flat = flatten_templates(&referenced, &[]).map_err(|e| BadInput(format!("{path}: {e}")))?;
    let mut run_args = flat.args;
    for given in &args.args {
        let Some((name, value)) = given.split_once('=') else {
            return Err(BadInput(format!("-a {given:?}: expected NAME=VALUE")));
        };
        let Some(arg) = run_args.iter_mut().find(|a| a.name == name) else {
            let known: Vec<&str> = run_args.iter().map(|a| a.name.as_str()).collect();
            return Err(BadInput(format!("-a {name}: the template has no argument {name:?} (it has: {})", known.join(", "))));
        };
        *arg = Argument { name: name.to_string(), value: Some(value.to_string()), value_from: None };
    }
    validate_metrics(&flat.metrics).map_err(|e| BadInput(format!("{path}: {e}")))?;
    let metrics = flat.metrics.into_iter().map(once).collect();
    let name = first.metadata.name.clone().unwrap_or_else(|| "analyze".to_string());
    let mut run = AnalysisRun {
        api_version: "argoproj.io/v1alpha1".to_string(),
        kind: "AnalysisRun".to_string(),
        spec: AnalysisRunSpec { metrics, args: run_args, dry_run: flat.dry_run, measurement_retention: flat.measurement_retention, ..AnalysisRunSpec::default() },
        ..AnalysisRun::default()
    };
    run.metadata.name = Some(name);
    run.metadata.uid = Some("analyze".to_string());
    // The run's own checks (arguments without values, dry-run names, …) are the controller's:
    // a run that errors before measuring anything is a template the controller would refuse.
    let first_pass = reconcile_run(&run, at);
    if first_pass.status.phase == Some(AnalysisPhase::Error) && first_pass.measure.is_empty() {
        return Err(BadInput(format!("{path}: {}", first_pass.status.message)));
    }
    Ok((first, run))
}

/// The metric measured once, without waiting: one measurement decides it.
fn once(mut m: Metric) -> Metric {
    m.count = Some(IntOrString::Int(1));
    m.interval = None;
    m.initial_delay = None;
    m.failure_limit = Some(IntOrString::Int(0));
    m.inconclusive_limit = Some(IntOrString::Int(0));
    m.consecutive_error_limit = Some(IntOrString::Int(0));
    m.consecutive_success_limit = None;
    m
}

/// Every AnalysisTemplate and ClusterAnalysisTemplate of the file, decoded strictly.
fn read_templates(path: &Path) -> Result<Vec<AnalysisTemplate>, String> {
    let text = super::files::read_capped(path, super::files::MAX_MANIFEST_BYTES, "template file").map_err(|e| format!("cannot read: {e}"))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != "AnalysisTemplate" && kind != "ClusterAnalysisTemplate" {
            continue;
        }
        let template = from_value_strict::<AnalysisTemplate>(&value).map_err(|e| format!("{kind} (document {}): {e}", i + 1))?;
        out.push(template);
    }
    Ok(out)
}

/// The template and the ones it references (`spec.templates`), each once, from the file.
fn referenced(first: &AnalysisTemplate, all: &[AnalysisTemplate]) -> Result<Vec<AnalysisTemplate>, String> {
    let mut out: Vec<AnalysisTemplate> = vec![first.clone()];
    let mut i = 0;
    while let Some(t) = out.get(i).cloned() {
        for r in &t.spec.templates {
            if out.iter().any(|o| o.metadata.name.as_deref() == Some(r.template_name.as_str())) {
                continue;
            }
            let found = all.iter().find(|o| o.metadata.name.as_deref() == Some(r.template_name.as_str()));
            out.push(found.cloned().ok_or_else(|| format!("template {:?} is referenced but not in the file", r.template_name))?);
        }
        i += 1;
    }
    Ok(out)
}

/// `--answer METRIC=RESULT`: the answers to give instead of asking the providers.
fn parse_answers(given: &[String], metrics: &[Metric]) -> Result<BTreeMap<String, MeasurementAnswer>, BadInput> {
    let mut out = BTreeMap::new();
    for g in given {
        let Some((name, text)) = g.split_once('=') else {
            return Err(BadInput(format!("--answer {g:?}: expected METRIC=RESULT")));
        };
        let Some(metric) = metrics.iter().find(|m| m.name == name) else {
            let known: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            return Err(BadInput(format!("--answer {name}: the template has no metric {name:?} (it has: {})", known.join(", "))));
        };
        let answer = if metric.provider.job.is_some() {
            let phase = match text {
                "Successful" => AnalysisPhase::Successful,
                "Failed" => AnalysisPhase::Failed,
                other => return Err(BadInput(format!("--answer {name}={other}: a job metric's answer is Successful or Failed"))),
            };
            MeasurementAnswer { phase: Some(phase), ..MeasurementAnswer::default() }
        } else {
            let value = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string()));
            MeasurementAnswer { value, ..MeasurementAnswer::default() }
        };
        out.insert(name.to_string(), answer);
    }
    Ok(out)
}

/// Prints each metric's measurement and verdict and the run's phase; returns the phase.
fn report(template: &AnalysisTemplate, at: Timestamp, run: &AnalysisRun, stopped: Option<&str>) -> AnalysisPhase {
    let phase = match stopped {
        Some(_) => AnalysisPhase::Error,
        None => run.status.phase.unwrap_or(AnalysisPhase::Error),
    };
    println!("Template:  {} ({})", template.metadata.name.as_deref().unwrap_or_default(), if template.kind.is_empty() { "AnalysisTemplate" } else { &template.kind });
    println!("At:        {}", at.to_rfc3339());
    println!();
    let mut table = String::from("METRIC\tPROVIDER\tCONDITION\tVALUE\tVERDICT\tMESSAGE\n");
    for metric in &run.spec.metrics {
        let result = run.status.metric_results.iter().find(|r| r.name == metric.name);
        let last = result.and_then(|r| r.measurements.last());
        let provider = metric.provider.kinds().first().map_or_else(|| "-".to_string(), |k| format!("{k:?}"));
        let condition = match (&metric.success_condition, &metric.failure_condition) {
            (Some(s), _) if !s.is_empty() => format!("success: {s}"),
            (_, Some(f)) if !f.is_empty() => format!("failure: {f}"),
            _ => "-".to_string(),
        };
        let value = last.map(|m| m.value.clone()).filter(|v| !v.is_empty()).unwrap_or_else(|| "-".to_string());
        let verdict = last.map_or("-", |m| m.phase.as_str());
        let message = last.map(|m| m.message.clone()).filter(|m| !m.is_empty()).unwrap_or_default();
        table.push_str(&format!("{}\t{provider}\t{condition}\t{value}\t{verdict}\t{message}\n", metric.name));
    }
    print!("{}", tabwriter::align(&table));
    println!();
    match stopped {
        Some(why) => println!("Phase:     Error ({why})"),
        None if run.status.message.is_empty() => println!("Phase:     {}", phase.as_str()),
        None => println!("Phase:     {} ({})", phase.as_str(), run.status.message),
    }
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_measurement_decides_every_metric() {
        let m = once(Metric { name: "m".into(), count: Some(IntOrString::Int(5)), interval: Some("1m".into()), failure_limit: Some(IntOrString::Int(3)), ..Metric::default() });
        assert_eq!(m.count, Some(IntOrString::Int(1)));
        assert_eq!(m.interval, None);
        assert_eq!(m.failure_limit, Some(IntOrString::Int(0)));
    }

    #[test]
    fn answers_are_json_or_text_and_jobs_take_a_phase() {
        let metrics = vec![
            Metric { name: "rate".into(), ..Metric::default() },
            Metric { name: "job".into(), provider: rollouts_core::api::MetricProvider { job: Some(Default::default()), ..Default::default() }, ..Metric::default() },
        ];
        let a = parse_answers(&["rate=[0.97]".into(), "job=Failed".into()], &metrics).ok().unwrap();
        assert_eq!(a["rate"].value, serde_json::json!([0.97]));
        assert_eq!(a["job"].phase, Some(AnalysisPhase::Failed));
        let text = parse_answers(&["rate=ok".into()], &metrics).ok().unwrap();
        assert_eq!(text["rate"].value, serde_json::json!("ok"));
        let Err(BadInput(e)) = parse_answers(&["nope=1".into()], &metrics) else { panic!("an unknown metric is refused") };
        assert!(e.contains("no metric \"nope\"") && e.contains("rate, job"), "{e}");
        let Err(BadInput(e)) = parse_answers(&["job=maybe".into()], &metrics) else { panic!("a job answer is a phase") };
        assert!(e.contains("Successful or Failed"), "{e}");
    }
}
