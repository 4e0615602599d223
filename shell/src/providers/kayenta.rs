//! `kayenta`: a canary judgement by Kayenta, which runs asynchronously.
//!
//! Started: the canary config's id is looked up by name, the judgement is started with the
//! scopes and thresholds, and the measurement stays Running with metadata
//! `canaryExecutionId`. Resumed (the core asks again every 15 s with that metadata): the
//! execution is read; unfinished, it stays Running; finished, its score is the value and
//! the phase is Successful (score ≥ pass), Inconclusive (≥ marginal) or Failed.

use std::time::Duration;

use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::{AnalysisPhase, KayentaMetric, KayentaScope, KayentaScopeDetail};
use rollouts_core::time::{parse_go_duration, Timestamp};
use serde_json::{json, Map, Value};

use super::http;
use super::{Ctx, Measured, Provider};

/// Argo's HTTP timeout for every Kayenta request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The measurement metadata naming the judgement in flight.
pub const EXECUTION_ID: &str = "canaryExecutionId";

impl Provider for KayentaMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let client = http::client(HTTP_TIMEOUT, false)?;
        match ctx.context().resume.get(EXECUTION_ID) {
            Some(execution) => resume(&client, self, execution).await,
            None => {
                let now = Timestamp::from_unix(ctx.now_jiff().as_second());
                let context = ctx.context();
                let window = Window { now, interval: context.interval.as_deref(), run_started_at: context.run_started_at };
                start(&client, self, &window).await
            }
        }
    }
}

/// What a scope's default start and end are worked out from.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// The measurement's time: the default end.
    pub now: Timestamp,
    /// The metric's interval: the default start is `now - interval`...
    pub interval: Option<&'a str>,
    /// ... or, with `lookback`, the run's start.
    pub run_started_at: Option<Timestamp>,
}

/// The scopes of the judgement request, each with its start and end filled in.
pub fn scopes_request(k: &KayentaMetric, window: &Window<'_>) -> Result<Value, String> {
    let mut scopes = Map::new();
    for scope in &k.scopes {
        scopes.insert(scope.name.clone(), scope_request(scope, k.lookback, window)?);
    }
    Ok(Value::Object(scopes))
}

fn scope_request(scope: &KayentaScope, lookback: bool, window: &Window<'_>) -> Result<Value, String> {
    let (control, experiment) = (&scope.control_scope, &scope.experiment_scope);
    if control.start.is_empty() != experiment.start.is_empty() {
        return Err("controlScope.start and experimentScope.start must both be set or be empty".to_string());
    }
    if control.end.is_empty() != experiment.end.is_empty() {
        return Err("controlScope.end and experimentScope.end must both be set or be empty".to_string());
    }
    let start = if control.start.is_empty() { Some(default_start(lookback, window)?) } else { None };
    let end = control.end.is_empty().then(|| window.now.to_rfc3339());
    let detail = |d: &KayentaScopeDetail| {
        let mut out = json!({"scope": d.scope, "location": d.region, "step": d.step});
        let start = start.clone().unwrap_or_else(|| d.start.clone());
        let end = end.clone().unwrap_or_else(|| d.end.clone());
        out["start"] = Value::String(start);
        out["end"] = Value::String(end);
        out
    };
    Ok(json!({"controlScope": detail(control), "experimentScope": detail(experiment)}))
}

/// The run's start with `lookback`, else the measurement's time minus the metric's interval.
fn default_start(lookback: bool, window: &Window<'_>) -> Result<String, String> {
    if lookback {
        return window
            .run_started_at
            .map(Timestamp::to_rfc3339)
            .ok_or_else(|| "kayenta lookback needs the run's start time, which is not known yet".to_string());
    }
    let interval = window.interval.unwrap_or_default();
    let nanos = parse_go_duration(interval).map_err(|e| format!("Invalid duration {interval:?}: {e}"))?;
    // RFC 3339 with whole seconds drops a fraction: the floor.
    let start = window.now.unix().saturating_mul(1_000_000_000).saturating_sub(nanos).div_euclid(1_000_000_000);
    Ok(Timestamp::from_unix(start).to_rfc3339())
}

/// `<address>/<segments...>`, each segment escaped.
fn endpoint(address: &str, segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(address).map_err(|e| format!("invalid kayenta address {address:?}: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("invalid kayenta address {address:?}: it cannot have a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Looks the canary config up and starts the judgement: Running, with its execution id.
pub async fn start(client: &reqwest::Client, k: &KayentaMetric, window: &Window<'_>) -> Measured {
    let scopes = scopes_request(k, window)?;
    let config_id = canary_config_id(client, k).await?;
    let url = endpoint(&k.address, &["canary", &config_id])?;
    let body = json!({"scopes": scopes, "thresholds": {"pass": k.threshold.pass, "marginal": k.threshold.marginal}});
    let req = client
        .post(url)
        .query(&[
            ("application", k.application.as_str()),
            ("metricsAccountName", k.metrics_account_name.as_str()),
            ("configurationAccountName", k.configuration_account_name.as_str()),
            ("storageAccountName", k.storage_account_name.as_str()),
        ])
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let (status, text) = http::send_text(req).await?;
    if status != 200 {
        return Err(format!("Invalid Response: HTTP {status}"));
    }
    let started: Value = serde_json::from_str(&text).map_err(|e| format!("could not parse Kayenta's answer: {e}"))?;
    let execution = match started.get(EXECUTION_ID) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if execution.is_empty() {
        return Err("Invalid canaryExecutionId".to_string());
    }
    Ok(running(execution))
}

/// The id of the canary config named `canaryConfigName`.
async fn canary_config_id(client: &reqwest::Client, k: &KayentaMetric) -> Result<String, String> {
    let url = endpoint(&k.address, &["canaryConfig"])?;
    // Argo passes the storage account as the configuration account here; kept, since
    // Kayenta installs that depend on it would otherwise stop finding their configs.
    let req = client
        .get(url)
        .query(&[("application", k.application.as_str()), ("configurationAccountName", k.storage_account_name.as_str())]);
    let (status, text) = http::send_text(req).await?;
    if status != 200 {
        return Err(format!("Invalid Response: HTTP {status}"));
    }
    let configs: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("could not parse the canary configs: {e}"))?;
    configs
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(k.canary_config_name.as_str()))
        .map(|c| c.get("id").and_then(Value::as_str).unwrap_or_default().to_string())
        .ok_or_else(|| "Canary config not found".to_string())
}

/// Reads the judgement `execution`: still Running, or finished with its score.
pub async fn resume(client: &reqwest::Client, k: &KayentaMetric, execution: &str) -> Measured {
    let url = endpoint(&k.address, &["canary", execution])?;
    let (status, text) = http::send_text(client.get(url)).await?;
    if status != 200 {
        return Err(format!("Invalid Response: HTTP {status}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("could not parse Kayenta's answer: {e}"))?;
    match body.get("complete") {
        Some(Value::Bool(false)) => return Ok(running(execution.to_string())),
        Some(Value::Bool(true)) => {}
        Some(other) => return Err(format!(".complete accessor error: {other} is not a bool")),
        None => return Err("Missing Complete Status".to_string()),
    }
    let score = body.pointer("/result/judgeResult/score/score").and_then(Value::as_f64).ok_or("Missing Score")?;
    // Argo judges the score truncated to an integer.
    let score = score as i64;
    Ok(MeasurementAnswer {
        value: Value::from(score),
        phase: Some(judge(score, k.threshold.pass, k.threshold.marginal)),
        ..MeasurementAnswer::default()
    })
}

/// Argo's verdict for a score.
pub fn judge(score: i64, pass: i64, marginal: i64) -> AnalysisPhase {
    if score >= pass {
        AnalysisPhase::Successful
    } else if score >= marginal {
        AnalysisPhase::Inconclusive
    } else {
        AnalysisPhase::Failed
    }
}

fn running(execution: String) -> MeasurementAnswer {
    MeasurementAnswer {
        phase: Some(AnalysisPhase::Running),
        metadata: [(EXECUTION_ID.to_string(), execution)].into(),
        ..MeasurementAnswer::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::super::vendor_stub::{pairs, start as stub};
    use super::*;
    use rollouts_core::analysis::run::MeasureContext;
    use rollouts_core::api::KayentaThreshold;

    /// 2024-01-01T00:00:00Z.
    const NOW: i64 = 1_704_067_200;
    const CONFIG_ID: &str = "bf9795c0-170f-403e-bb7f-fef3f9a44d42";

    fn metric(address: &str) -> KayentaMetric {
        let detail = |hash: &str| KayentaScopeDetail {
            scope: format!("app=guestbook and rollouts-pod-template-hash={hash}"),
            region: "us-west-2".to_string(),
            step: 60,
            ..KayentaScopeDetail::default()
        };
        KayentaMetric {
            address: address.to_string(),
            application: "guestbook".to_string(),
            canary_config_name: "guestbook-canary".to_string(),
            metrics_account_name: "prometheus-prod".to_string(),
            configuration_account_name: "config-store".to_string(),
            storage_account_name: "object-store".to_string(),
            threshold: KayentaThreshold { pass: 90, marginal: 75 },
            scopes: vec![KayentaScope { name: "default".to_string(), control_scope: detail("stable"), experiment_scope: detail("canary") }],
            lookback: false,
        }
    }

    /// Kayenta as its REST API answers: the config list, a started judgement, and an
    /// execution that is unfinished the first time it is read, then scored 95; executions
    /// `marginal` and `failing` are finished with 80.6 and 12.
    async fn kayenta() -> super::super::vendor_stub::Stub {
        let reads = Arc::new(AtomicUsize::new(0));
        stub(move |r| {
            let finished = |score: f64| {
                json!({"complete": true, "status": "succeeded", "result": {"judgeResult": {"score": {"score": score, "classification": "Pass"}}}})
            };
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/canaryConfig") => (
                    200,
                    json!([
                        {"id": "69a6c352-7033-4ca1-858b-02497e5cc672", "name": "other", "applications": ["guestbook"]},
                        {"id": CONFIG_ID, "name": "guestbook-canary", "updatedTimestamp": 1_553_707_842_000_i64, "applications": ["guestbook"]}
                    ])
                    .to_string(),
                ),
                ("POST", p) if p == format!("/canary/{CONFIG_ID}") => (200, json!({"canaryExecutionId": "01EXECUTION"}).to_string()),
                ("GET", "/canary/01EXECUTION") => match reads.fetch_add(1, Ordering::SeqCst) {
                    0 => (200, json!({"complete": false, "status": "running"}).to_string()),
                    _ => (200, finished(95.0).to_string()),
                },
                ("GET", "/canary/marginal") => (200, finished(80.6).to_string()),
                ("GET", "/canary/failing") => (200, finished(12.0).to_string()),
                ("GET", "/canary/no-score") => (200, json!({"complete": true}).to_string()),
                _ => (404, json!({"error": "Not Found"}).to_string()),
            }
        })
        .await
    }

    fn context(resume: Option<&str>) -> MeasureContext {
        MeasureContext {
            interval: Some("5m".to_string()),
            run_started_at: Some(Timestamp::from_unix(NOW - 3600)),
            resume: resume.map(|e| [(EXECUTION_ID.to_string(), e.to_string())].into()).unwrap_or_default(),
        }
    }

    async fn measure(k: &KayentaMetric, resume: Option<&str>) -> Measured {
        let context = context(resume);
        let now = std::time::UNIX_EPOCH + Duration::from_secs(NOW as u64);
        let ctx = Ctx::new(None, "argo-rollouts", now, &context);
        k.measure(&ctx).await
    }

    #[tokio::test]
    async fn a_judgement_starts_runs_and_passes() {
        let server = kayenta().await;
        let k = metric(&server.base);

        let started = measure(&k, None).await.unwrap();
        assert_eq!(started.phase, Some(AnalysisPhase::Running));
        assert_eq!(started.metadata[EXECUTION_ID], "01EXECUTION");
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        let (lookup, post) = (&seen[0], &seen[1]);
        assert_eq!((lookup.method.as_str(), lookup.path.as_str()), ("GET", "/canaryConfig"));
        // Argo's quirk: the storage account is passed as the configuration account.
        assert_eq!(lookup.query, pairs(&[("application", "guestbook"), ("configurationAccountName", "object-store")]));
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", format!("/canary/{CONFIG_ID}").as_str()));
        assert_eq!(
            post.query,
            pairs(&[
                ("application", "guestbook"),
                ("metricsAccountName", "prometheus-prod"),
                ("configurationAccountName", "config-store"),
                ("storageAccountName", "object-store"),
            ])
        );
        assert_eq!(post.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&post.body).unwrap();
        let scope = |hash: &str| {
            json!({"scope": format!("app=guestbook and rollouts-pod-template-hash={hash}"), "location": "us-west-2", "step": 60,
                   "start": "2023-12-31T23:55:00Z", "end": "2024-01-01T00:00:00Z"})
        };
        assert_eq!(
            body,
            json!({"scopes": {"default": {"controlScope": scope("stable"), "experimentScope": scope("canary")}},
                   "thresholds": {"pass": 90, "marginal": 75}})
        );

        let unfinished = measure(&k, Some("01EXECUTION")).await.unwrap();
        assert_eq!(unfinished.phase, Some(AnalysisPhase::Running));
        assert_eq!(unfinished.metadata[EXECUTION_ID], "01EXECUTION");
        let finished = measure(&k, Some("01EXECUTION")).await.unwrap();
        assert_eq!((finished.phase, finished.value.clone()), (Some(AnalysisPhase::Successful), json!(95)));
        let reads: Vec<_> = server.seen().into_iter().skip(2).map(|r| (r.method, r.path)).collect();
        assert_eq!(reads, vec![("GET".to_string(), "/canary/01EXECUTION".to_string()); 2]);
    }

    #[tokio::test]
    async fn marginal_scores_are_inconclusive_low_ones_fail_and_errors_are_errors() {
        let server = kayenta().await;
        let k = metric(&server.base);
        let marginal = measure(&k, Some("marginal")).await.unwrap();
        assert_eq!((marginal.phase, marginal.value), (Some(AnalysisPhase::Inconclusive), json!(80)));
        let failing = measure(&k, Some("failing")).await.unwrap();
        assert_eq!((failing.phase, failing.value), (Some(AnalysisPhase::Failed), json!(12)));
        assert_eq!(measure(&k, Some("no-score")).await.unwrap_err(), "Missing Score");
        assert_eq!(measure(&k, Some("unknown")).await.unwrap_err(), "Invalid Response: HTTP 404");
        let missing_config = KayentaMetric { canary_config_name: "nope".to_string(), ..metric(&server.base) };
        assert_eq!(measure(&missing_config, None).await.unwrap_err(), "Canary config not found");
    }

    #[test]
    fn scopes_use_their_own_times_or_the_runs_start_with_lookback() {
        let window = Window { now: Timestamp::from_unix(NOW), interval: Some("5m"), run_started_at: Some(Timestamp::from_unix(NOW - 3600)) };
        let mut k = metric("http://127.0.0.1:1");
        k.lookback = true;
        let body = scopes_request(&k, &window).unwrap();
        assert_eq!(body["default"]["controlScope"]["start"], "2023-12-31T23:00:00Z");
        assert_eq!(body["default"]["experimentScope"]["end"], "2024-01-01T00:00:00Z");

        let mut own = metric("http://127.0.0.1:1");
        let scope = &mut own.scopes[0];
        for d in [&mut scope.control_scope, &mut scope.experiment_scope] {
            d.start = "2019-03-29T01:08:34Z".to_string();
            d.end = "2019-03-29T01:38:34Z".to_string();
        }
        let body = scopes_request(&own, &window).unwrap();
        assert_eq!(body["default"]["experimentScope"]["start"], "2019-03-29T01:08:34Z");
        assert_eq!(body["default"]["controlScope"]["end"], "2019-03-29T01:38:34Z");

        own.scopes[0].experiment_scope.start.clear();
        assert_eq!(scopes_request(&own, &window).unwrap_err(), "controlScope.start and experimentScope.start must both be set or be empty");
        own.scopes[0].experiment_scope.start = "2019-03-29T01:08:34Z".to_string();
        own.scopes[0].control_scope.end.clear();
        assert_eq!(scopes_request(&own, &window).unwrap_err(), "controlScope.end and experimentScope.end must both be set or be empty");

        let no_interval = Window { interval: None, ..window };
        assert_eq!(
            scopes_request(&metric("http://127.0.0.1:1"), &no_interval).unwrap_err(),
            r#"Invalid duration "": time: invalid duration """#
        );
        let not_started = Window { run_started_at: None, ..window };
        assert!(scopes_request(&k, &not_started).unwrap_err().contains("lookback"));
    }

    #[test]
    fn scores_are_judged_against_the_thresholds() {
        assert_eq!(judge(90, 90, 75), AnalysisPhase::Successful);
        assert_eq!(judge(89, 90, 75), AnalysisPhase::Inconclusive);
        assert_eq!(judge(75, 90, 75), AnalysisPhase::Inconclusive);
        assert_eq!(judge(74, 90, 75), AnalysisPhase::Failed);
    }
}
