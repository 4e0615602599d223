//! `prometheus`: an instant query at the measurement's time, or a range query
//! (`rangeQuery {start, end, step}`). A scalar gives a number, a vector or matrix the list of
//! every sample value (NaN and ±Inf stay strings: JSON has no number for them).
//!
//! The request is Argo's (metricproviders/prometheus/prometheus.go with Prometheus's Go
//! client): the address from the spec, else `$ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`; a whole-query
//! timeout (`timeout`, seconds, default 30); `headers` set last, so they win over any
//! authentication; then SigV4 (Amazon Managed Prometheus: only for an address containing
//! `aps-workspaces`, as in Argo, and ignored elsewhere), else an OAuth2 bearer token, else
//! basic authentication. Errors read as the Go client's (`bad_data: …`,
//! `client_error: client error: 401`).
//!
//! Divergences: the query is a GET with its parameters in the URL (Argo's client POSTs a
//! form and falls back to GET on 405); the instant query's `time` is the measurement's time
//! (`rollouts analyze --at`) where Argo sends the clock's; a `timeout` of 0 means the
//! default rather than a query that times out at once; `sigv4.roleArn` is refused (assuming
//! a role needs a call to AWS STS that this controller does not make).

// The expression language's values are another crate's enum: a catch-all arm means "any
// other kind is not a time", which is also right for kinds a newer expr-lang adds.
#![allow(clippy::wildcard_enum_match_arm)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, SystemTime};

use expr::{Context, Environment, Value as ExprValue};
use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::{PrometheusMetric, PrometheusRangeQueryArgs};
use rollouts_core::time::parse_go_duration;
use serde::Deserialize;
use serde_json::Value;

use super::{error_answer, http, oauth2, sigv4, web, Ctx, Measured, Provider};

/// Environment variable Argo reads for a default Prometheus address.
pub const PROMETHEUS_ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Default whole-query timeout, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// The process environment, as [`measure_with`] reads it.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Provider for PrometheusMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        measure_with(self, ctx, &process_env).await
    }
}

/// One query, the environment (the default address, AWS's settings) read through `var`.
async fn measure_with(p: &PrometheusMetric, ctx: &Ctx<'_>, var: &(dyn Fn(&str) -> Option<String> + Sync)) -> Measured {
    let address = address(p, var)?;
    let auth = Authentication::of(p.authentication.as_ref())?;
    auth.redact(ctx);
    let timeout = timeout(p.timeout)?;
    let (endpoint, params) = query(p, ctx.now())?;
    let client = http::client(timeout, p.insecure)?;
    let url = format!("{}/api/v1/{endpoint}", address.trim_end_matches('/'));
    let mut req = client.get(&url).query(&params).build().map_err(|e| format!("cannot build the query request: {}", http::transport(&e)))?;
    if let Some(sigv4) = auth.sigv4.as_ref().filter(|s| address.contains("aps-workspaces") && !s.is_empty()) {
        sign(ctx, &mut req, sigv4, var)?;
    } else if oauth2::configured(auth.oauth2.as_ref()) {
        let token = oauth2::token(ctx, auth.oauth2.as_ref().unwrap_or(&Value::Null), &client).await?;
        req.headers_mut().insert(reqwest::header::AUTHORIZATION, bearer(&token)?);
    } else if let Some(basic) = auth.basic_auth.as_ref().filter(|b| !b.username.is_empty() || !b.password.is_empty()) {
        let header = basic.header(&client)?;
        // An answer that echoes the header would otherwise show the encoded password.
        if let Some(encoded) = header.to_str().ok().and_then(|h| h.strip_prefix("Basic ")) {
            ctx.redact_also("authentication.basicAuth (encoded)", encoded);
        }
        req.headers_mut().insert(reqwest::header::AUTHORIZATION, header);
    }
    web::set_headers(&mut req, &p.headers)?;
    let resp = client.execute(req).await.map_err(|e| transport(&e, timeout))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| transport(&e, timeout))?;
    let body = api_body(status, &text)?;
    let mut answer = prometheus_answer(&body);
    if !p.query.is_empty() {
        answer.metadata.insert("ResolvedPrometheusQuery".to_string(), p.query.clone());
    }
    Ok(answer)
}

/// The server's URL: the spec's, else the environment's; either must be a URL.
fn address(p: &PrometheusMetric, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let address = if p.address.is_empty() { var(PROMETHEUS_ADDRESS_ENV).unwrap_or_default() } else { p.address.clone() };
    if address.is_empty() {
        return Err(format!("prometheus address is not configured (provider.prometheus.address, or {PROMETHEUS_ADDRESS_ENV})"));
    }
    match reqwest::Url::parse(&address) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(address),
        // Argo's words, typo included.
        _ => Err("prometheus address is not is url format".to_string()),
    }
}

fn timeout(secs: Option<i64>) -> Result<Duration, String> {
    match secs {
        Some(t) if t < 0 => Err("prometheus timeout should not be negative".to_string()),
        other => Ok(http::timeout_secs(other, DEFAULT_TIMEOUT_SECS)),
    }
}

/// An endpoint of the query API (`query` or `query_range`) and its parameters.
type ApiCall = (&'static str, Vec<(&'static str, String)>);

/// The endpoint and its parameters, in the order Go encodes them.
fn query(p: &PrometheusMetric, now: SystemTime) -> Result<ApiCall, String> {
    let Some(range) = &p.range_query else {
        return Ok(("query", vec![("query", p.query.clone()), ("time", seconds(unix_nanos(now)?.into()))]));
    };
    let (start, end, step) = range_times(range, now)?;
    Ok(("query_range", vec![("end", seconds(end.into())), ("query", p.query.clone()), ("start", seconds(start.into())), ("step", seconds(step.into()))]))
}

/// A range query's start and end (Unix nanoseconds) and step (nanoseconds), with Argo's
/// messages naming the field.
pub fn range_times(range: &PrometheusRangeQueryArgs, now: SystemTime) -> Result<(i64, i64, i64), String> {
    let now = unix_nanos(now)?;
    let start = eval_time(&range.start, now).map_err(|e| format!("failed to parse rangeQuery.start as time: {e}"))?;
    let end = eval_time(&range.end, now).map_err(|e| format!("failed to parse rangeQuery.end as time: {e}"))?;
    let step = parse_go_duration(&range.step).map_err(|e| format!("failed to parse rangeQuery.step as duration: {e}"))?;
    Ok((start, end, step))
}

fn unix_nanos(t: SystemTime) -> Result<i64, String> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).map_err(|_| "the measurement's time is before 1970".to_string())?;
    i64::try_from(d.as_nanos()).map_err(|_| "the measurement's time is after 2262".to_string())
}

/// Seconds as Prometheus's API takes them (and Go's client writes them): a decimal number
/// without trailing zeros.
fn seconds(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let (whole, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{}", format!("{frac:09}").trim_end_matches('0'))
    }
}

/// What [`eval_time`] adds to every time on its second evaluation.
const PROBE_SHIFT: i64 = 1_000_000_007;

/// Evaluates a time expression (`now() - duration("1h")`) at `now` (Unix nanoseconds), to
/// Unix nanoseconds. The functions are Go expr's: `now()`, `duration("1h30m")` (Go's
/// syntax), `date("2024-05-01T10:00:00Z")` (RFC 3339, or a date or civil date-time taken
/// as UTC).
///
/// The Rust evaluator is built without its time types (its `now()` would read the clock),
/// so times and durations are both integers of nanoseconds. To still refuse what Go's typed
/// evaluator refuses (a duration, a number, the sum of two times), the expression is
/// evaluated twice, every time moved by [`PROBE_SHIFT`] the second time: a time moves by
/// exactly that much, a duration or number does not move, a sum of times moves twice as far.
pub fn eval_time(expression: &str, now: i64) -> Result<i64, String> {
    // Screens length and nesting (a deeply nested expression would overflow the evaluator's
    // stack) and reports syntax errors in one line.
    rollouts_core::analysis::condition::check_condition(expression)?;
    let program = expr::compile(expression).map_err(|e| e.to_string())?;
    let at = |shift: i64| -> Result<ExprValue, String> {
        let env = time_environment(now.wrapping_add(shift), shift);
        catch_unwind(AssertUnwindSafe(|| env.run(&program, &Context::default())))
            .map_err(|_| "evaluation logic panicked".to_string())?
            .map_err(|e| e.to_string())
    };
    let (first, second) = (at(0)?, at(PROBE_SHIFT)?);
    let moved = match (&first, &second) {
        (ExprValue::Integer(a), ExprValue::Integer(b)) => Some((i128::from(*b) - i128::from(*a), i128::from(*a))),
        // Go rejects a Duration times a float; the arithmetic here makes one a Float.
        (ExprValue::Float(a), ExprValue::Float(b)) if a.is_finite() && b.is_finite() => {
            Some(((b - a).round() as i128, a.round() as i128))
        }
        _ => None,
    };
    match moved {
        Some((shift, at_now)) if shift == i128::from(PROBE_SHIFT) => {
            i64::try_from(at_now).map_err(|_| "the time is out of range (1678 to 2262)".to_string())
        }
        Some((0, _)) => Err("expected time.Time, but got a duration or a number (a time is now() or date(...), plus or minus durations)".to_string()),
        Some(_) => Err("expected time.Time, but got a combination of times (a time is now() or date(...), plus or minus durations)".to_string()),
        None => Err(format!("expected time.Time, but got {}", go_type_name(&first))),
    }
}

/// Go expr's date functions over times as integers of nanoseconds, every time moved by
/// `shift`.
fn time_environment(now: i64, shift: i64) -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function("now", move |call| {
        if !call.args.is_empty() {
            return Err("now() takes no arguments".to_string().into());
        }
        Ok(ExprValue::Integer(now))
    });
    env.add_function("duration", |call| match call.args.as_slice() {
        [ExprValue::String(s)] => parse_go_duration(s).map(ExprValue::Integer).map_err(|e| e.to_string().into()),
        _ => Err("duration() takes one string, such as \"1h30m\"".to_string().into()),
    });
    env.add_function("date", move |call| match call.args.as_slice() {
        [ExprValue::String(s)] => parse_date(s).map(|t| ExprValue::Integer(t.wrapping_add(shift))).map_err(Into::into),
        _ => Err("date() takes one string, such as \"2024-05-01T10:00:00Z\"".to_string().into()),
    });
    env
}

/// An RFC 3339 timestamp, or a date or civil date-time taken as UTC, to Unix nanoseconds.
fn parse_date(s: &str) -> Result<i64, String> {
    let ts = s
        .parse::<jiff::Timestamp>()
        .or_else(|_| s.parse::<jiff::civil::DateTime>().and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC)).map(|z| z.timestamp()))
        .or_else(|_| s.parse::<jiff::civil::Date>().and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC)).map(|z| z.timestamp()))
        .map_err(|_| format!("date({s:?}): not a date (RFC 3339, such as 2024-05-01T10:00:00Z)"))?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| format!("date({s:?}) is out of range (1678 to 2262)"))
}

/// Go's `%T` of what a non-time expression gave.
fn go_type_name(v: &ExprValue) -> &'static str {
    match v {
        ExprValue::Nil => "<nil>",
        ExprValue::Bool(_) => "bool",
        ExprValue::Integer(_) => "int",
        ExprValue::Float(_) => "float64",
        ExprValue::String(_) => "string",
        ExprValue::Array(_) => "[]interface {}",
        ExprValue::Map(_) | ExprValue::KeyedMap(_) => "map[string]interface {}",
        _ => "an unsupported value",
    }
}

/// `authentication`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authentication {
    #[serde(default)]
    sigv4: Option<Sigv4>,
    #[serde(default)]
    oauth2: Option<Value>,
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
}

impl Authentication {
    fn of(spec: Option<&Value>) -> Result<Self, String> {
        let auth: Authentication = match spec {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("authentication is invalid: {e}"))?,
            None => Authentication::default(),
        };
        // Argo checks both settings before any request.
        if let Some(b) = auth.basic_auth.as_ref().filter(|b| !b.username.is_empty() || !b.password.is_empty()) {
            if b.username.is_empty() {
                return Err("missing mandatory parameter in metric for basic auth setup: username".to_string());
            }
            if b.password.is_empty() {
                return Err("missing mandatory parameter in metric for basic auth setup: password".to_string());
            }
        }
        Ok(auth)
    }
}

impl Authentication {
    /// Marks the spec's credentials as secret, whatever happens next.
    fn redact(&self, ctx: &Ctx<'_>) {
        if let Some(b) = self.basic_auth.as_ref().filter(|b| !b.password.is_empty()) {
            ctx.redact_also("authentication.basicAuth.password", &b.password);
        }
        if let Some(secret) = self.oauth2.as_ref().and_then(|o| o.get("clientSecret")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            ctx.redact_also("authentication.oauth2.clientSecret", secret);
        }
    }
}

/// `authentication.sigv4`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sigv4 {
    #[serde(default)]
    region: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    role_arn: String,
}

impl Sigv4 {
    fn is_empty(&self) -> bool {
        self.region.is_empty() && self.profile.is_empty() && self.role_arn.is_empty()
    }
}

/// Signs the query for Amazon Managed Prometheus (service `aps`) with the default chain's
/// credentials, the environment read through `var`.
fn sign(ctx: &Ctx<'_>, req: &mut reqwest::Request, sigv4: &Sigv4, var: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if !sigv4.role_arn.is_empty() {
        return Err("authentication.sigv4.roleArn is not supported: assuming a role needs a call to AWS STS; give the role's credentials instead".to_string());
    }
    let profile = Some(sigv4.profile.as_str()).filter(|p| !p.is_empty());
    let region = sigv4::region_with(var, Some(&sigv4.region), profile).map_err(|e| format!("authentication.sigv4.region: {e}"))?;
    let credentials = sigv4::credentials_with(ctx, var, profile).map_err(|e| format!("authentication.sigv4: {e}"))?;
    sigv4::sign(req, &credentials, &region, "aps", ctx.now()).map_err(|e| format!("authentication.sigv4: {e}"))
}

/// `authentication.basicAuth`.
#[derive(Debug, Default, Deserialize)]
struct BasicAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

impl BasicAuth {
    /// The `Authorization` value (built by reqwest, which has the base64 encoder).
    fn header(&self, client: &reqwest::Client) -> Result<reqwest::header::HeaderValue, String> {
        let req = client.get("http://basic.invalid/").basic_auth(&self.username, Some(&self.password)).build().map_err(|e| http::transport(&e))?;
        req.headers().get(reqwest::header::AUTHORIZATION).cloned().ok_or_else(|| "authentication.basicAuth: no header built".to_string())
    }
}

fn bearer(token: &str) -> Result<reqwest::header::HeaderValue, String> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "authentication.oauth2: the token endpoint gave a token that cannot be a header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A transport error without the URL; a timeout says which setting it was.
fn transport(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("the prometheus query timed out after {}s (timeout)", timeout.as_secs())
    } else {
        http::transport(e)
    }
}

/// The body of an API answer, with the Go client's errors: a non-2xx status other than
/// the API's own error codes (400, 422, 503, which carry a JSON error) is `client_error`
/// or `server_error`, an error answer is `<errorType>: <error>`.
fn api_body(status: u16, text: &str) -> Result<Value, String> {
    let api_error = matches!(status, 400 | 422 | 503);
    if !(200..300).contains(&status) && !api_error {
        return Err(match status / 100 {
            4 => format!("client_error: client error: {status}"),
            5 => format!("server_error: server error: {status}"),
            _ => format!("bad_response: bad response code {status}"),
        });
    }
    let body: Value = serde_json::from_str(text).map_err(|e| format!("bad_response: {e}"))?;
    let failed = body.get("status").and_then(Value::as_str) == Some("error");
    if failed {
        let kind = body.get("errorType").and_then(Value::as_str).unwrap_or("unknown");
        let error = body.get("error").and_then(Value::as_str).unwrap_or_default();
        return Err(format!("{kind}: {error}"));
    }
    if api_error {
        return Err("bad_response: inconsistent body for response code".to_string());
    }
    Ok(body)
}

/// Reads a successful Prometheus query API response.
pub fn prometheus_answer(body: &Value) -> MeasurementAnswer {
    if body.get("status").and_then(Value::as_str) != Some("success") {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("unknown error");
        return error_answer(format!("prometheus query failed: {error}"));
    }
    let sample = |v: &Value| -> Value {
        // A sample is [timestamp, "value"]; NaN and ±Inf have no JSON number, they stay strings.
        let s = v.get(1).and_then(Value::as_str).unwrap_or_default();
        s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or_else(|| Value::String(s.to_string()), Value::Number)
    };
    let data = body.get("data").cloned().unwrap_or_default();
    let result = data.get("result").cloned().unwrap_or_default();
    let series = result.as_array().into_iter().flatten();
    let mut answer = match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => MeasurementAnswer { value: sample(&result), ..MeasurementAnswer::default() },
        Some("vector") => MeasurementAnswer {
            value: Value::Array(series.map(|r| sample(r.get("value").unwrap_or(&Value::Null))).collect()),
            ..MeasurementAnswer::default()
        },
        Some("matrix") => MeasurementAnswer {
            value: Value::Array(
                series.flat_map(|r| r.get("values").and_then(Value::as_array).cloned().unwrap_or_default()).map(|v| sample(&v)).collect(),
            ),
            ..MeasurementAnswer::default()
        },
        // Argo's words; the type is named after them.
        other => error_answer(format!("Prometheus metric type not supported: {}", other.unwrap_or("none"))),
    };
    let warnings: Vec<String> =
        body.get("warnings").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(|w| format!("{w:?}")).collect();
    if !warnings.is_empty() {
        // Argo's format: each warning quoted, joined by ", ".
        answer.metadata.insert("warnings".to_string(), warnings.join(", "));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::super::oauth2::recorder::{base64_of, serve, Recorded, Reply};
    use super::*;
    use rollouts_core::analysis::run::MeasureContext;
    use rollouts_core::api::{MetricProvider, WebMetricHeader};
    use rollouts_core::secrets::SecretValues;
    use serde_json::json;

    /// 2024-05-01T10:00:00Z.
    const NOW_SECS: u64 = 1_714_557_600;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn vector(value: &str) -> String {
        json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [NOW_SECS, value]}]}}).to_string()
    }

    async fn measure(p: &PrometheusMetric) -> MeasurementAnswer {
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", now(), &context);
        let provider = MetricProvider { prometheus: Some(p.clone()), ..MetricProvider::default() };
        super::super::measure_resolved(&ctx, &SecretValues::default(), &provider).await
    }

    fn metric(address: &str, query: &str) -> PrometheusMetric {
        PrometheusMetric { address: address.to_string(), query: query.to_string(), ..PrometheusMetric::default() }
    }

    #[test]
    fn prometheus_vectors_give_every_sample_and_scalars_a_number() {
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, "0.97"]}, {"metric": {}, "value": [1.0, "1"]}
        ]}});
        assert_eq!(prometheus_answer(&vector).value, json!([0.97, 1.0]));
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"a": "1"}, "values": [[1.0, "1"], [2.0, "2"]]}, {"metric": {"a": "2"}, "values": [[1.0, "3"]]}
        ]}, "warnings": ["too many samples", "x"]});
        let answer = prometheus_answer(&matrix);
        assert_eq!(answer.value, json!([1.0, 2.0, 3.0]));
        assert_eq!(answer.metadata.get("warnings").map(String::as_str), Some(r#""too many samples", "x""#));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}});
        assert_eq!(prometheus_answer(&scalar).value, json!(0.5));
        let nan = json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1.0, "NaN"]}]}});
        assert_eq!(prometheus_answer(&nan).value, json!(["NaN"]));
        let string = json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}});
        assert_eq!(prometheus_answer(&string).error.as_deref(), Some("Prometheus metric type not supported: string"));
    }

    #[test]
    fn api_errors_read_as_the_go_clients() {
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "1:5: parse error"}).to_string();
        assert_eq!(api_body(400, &bad), Err("bad_data: 1:5: parse error".to_string()));
        assert_eq!(api_body(401, "Unauthorized"), Err("client_error: client error: 401".to_string()));
        assert_eq!(api_body(502, "<html>"), Err("server_error: server error: 502".to_string()));
        assert!(api_body(200, "<html>").unwrap_err().starts_with("bad_response: "));
        assert_eq!(api_body(503, &vector("1")), Err("bad_response: inconsistent body for response code".to_string()));
    }

    #[test]
    fn range_times_are_expr_expressions_at_the_measurements_time() {
        let at = i64::try_from(NOW_SECS).unwrap() * 1_000_000_000;
        let hour = 3_600_000_000_000;
        assert_eq!(eval_time("now()", at), Ok(at));
        assert_eq!(eval_time(r#"now() - duration("1h")"#, at), Ok(at - hour));
        assert_eq!(eval_time(r#"now() - 2 * duration("30m") + duration("1.5s")"#, at), Ok(at - hour + 1_500_000_000));
        assert_eq!(eval_time(r#"(now() - duration("1h")) - duration("1h")"#, at), Ok(at - 2 * hour));
        assert_eq!(eval_time(r#"date("2024-05-01T09:00:00Z")"#, at), Ok(at - hour));
        assert_eq!(eval_time(r#"date("2024-05-01") + duration("9h")"#, at), Ok(at - hour));
        assert!(eval_time(r#"duration("1h")"#, at).unwrap_err().starts_with("expected time.Time, but got a duration"));
        assert!(eval_time(r#"now() + now()"#, at).unwrap_err().contains("combination of times"));
        assert!(eval_time(r#"now() - now()"#, at).unwrap_err().contains("a duration or a number"));
        assert_eq!(eval_time(r#"now() > 0"#, at), Err("expected time.Time, but got bool".to_string()));
        assert!(eval_time(r#"duration("1d")"#, at).unwrap_err().contains("unknown unit \"d\""));
        assert!(eval_time("now(", at).is_err());
        assert!(eval_time(&format!("{}now(){}", "(".repeat(5000), ")".repeat(5000)), at).is_err(), "deep nesting is refused, not a crash");

        let range = |start: &str, end: &str, step: &str| PrometheusRangeQueryArgs { start: start.into(), end: end.into(), step: step.into() };
        assert!(range_times(&range("now() -", "now()", "1m"), now()).unwrap_err().starts_with("failed to parse rangeQuery.start as time: "));
        assert!(range_times(&range("now()", r#"duration("5m")"#, "1m"), now()).unwrap_err().starts_with("failed to parse rangeQuery.end as time: expected time.Time"));
        assert_eq!(
            range_times(&range("now()", "now()", "1x"), now()),
            Err(r#"failed to parse rangeQuery.step as duration: time: unknown unit "x" in duration "1x""#.to_string())
        );
        assert_eq!(seconds(1_714_557_600_250_000_000), "1714557600.25");
        assert_eq!(seconds(60_000_000_000), "60");
    }

    #[tokio::test]
    async fn a_range_query_sends_start_end_and_step_computed_from_the_measurements_time() {
        let server = serve(|_: &Recorded| {
            let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {}, "values": [[NOW_SECS - 60, "0.9"], [NOW_SECS, "0.95"]]}
            ]}});
            (200, "application/json", matrix.to_string())
        })
        .await;
        let mut p = metric(&format!("{}/prefix/", server.base), "rate(x[1m])");
        p.range_query = Some(PrometheusRangeQueryArgs {
            start: r#"now() - duration("10m")"#.to_string(),
            end: "now()".to_string(),
            step: "1m30s".to_string(),
        });
        let answer = measure(&p).await;
        assert_eq!(answer.error, None);
        assert_eq!(answer.value, json!([0.9, 0.95]));
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(requests[0].path, "/prefix/api/v1/query_range");
        let q = |k: &str| requests[0].query.get(k).cloned().unwrap_or_default();
        assert_eq!(q("query"), "rate(x[1m])");
        assert_eq!(q("start"), (NOW_SECS - 600).to_string());
        assert_eq!(q("end"), NOW_SECS.to_string());
        assert_eq!(q("step"), "90");
        assert_eq!(answer.metadata.get("ResolvedPrometheusQuery").map(String::as_str), Some("rate(x[1m])"));

        // An instant query is taken at the measurement's time too.
        let answer = measure(&metric(&server.base, "up")).await;
        let last = server.requests().pop().unwrap();
        assert_eq!((last.path.as_str(), last.query.get("time").cloned()), ("/api/v1/query", Some(NOW_SECS.to_string())));
        assert_eq!(answer.value, json!([0.9, 0.95]));
    }

    #[tokio::test]
    async fn basic_auth_and_headers_are_sent_and_headers_win() {
        let server = serve(|_: &Recorded| (200, "application/json", vector("1"))).await;
        let mut p = metric(&server.base, "up");
        p.authentication = Some(json!({"basicAuth": {"username": "grafana", "password": "pa:ss"}}));
        p.headers = vec![WebMetricHeader { key: "X-Scope-OrgID".into(), value: "tenant_a".into() }];
        assert_eq!(measure(&p).await.value, json!([1.0]));
        let r = server.requests().pop().unwrap();
        let expected = format!("Basic {}", base64_of("grafana:pa:ss"));
        assert_eq!(r.header("authorization"), Some(expected.as_str()));
        assert_eq!(r.header("x-scope-orgid"), Some("tenant_a"));

        // `headers` are set last, as Argo's round tripper does: an Authorization header wins.
        p.headers.push(WebMetricHeader { key: "Authorization".into(), value: "Bearer from-headers".into() });
        measure(&p).await;
        let r = server.requests().pop().unwrap();
        assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(r.header("authorization"), Some("Bearer from-headers"));

        p.authentication = Some(json!({"basicAuth": {"username": "grafana"}}));
        assert_eq!(measure(&p).await.error.as_deref(), Some("missing mandatory parameter in metric for basic auth setup: password"));
    }

    #[tokio::test]
    async fn oauth2_fetches_a_token_and_sends_it_as_bearer() {
        let server = serve(|r: &Recorded| -> Reply {
            if r.path == "/token" {
                let ok = r.header("authorization") == Some(format!("Basic {}", base64_of("rollouts:client-pw")).as_str());
                return if ok {
                    (200, "application/json", json!({"access_token": "tok-abc", "token_type": "Bearer"}).to_string())
                } else {
                    (401, "application/json", json!({"error": "invalid_client"}).to_string())
                };
            }
            if r.header("authorization") == Some("Bearer tok-abc") {
                (200, "application/json", vector("0.99"))
            } else {
                (401, "text/plain", "Unauthorized".to_string())
            }
        })
        .await;
        let mut p = metric(&server.base, "up");
        let oauth = |secret: &str| json!({"oauth2": {"tokenUrl": format!("{}/token", server.base), "clientId": "rollouts", "clientSecret": secret, "scopes": ["metrics"]}});
        p.authentication = Some(oauth("client-pw"));
        let answer = measure(&p).await;
        assert_eq!((answer.error, answer.value), (None, json!([0.99])));
        let token_requests = server.on("/token");
        assert_eq!(token_requests.len(), 1);
        assert_eq!(token_requests[0].form().get("scope").map(String::as_str), Some("metrics"));
        assert_eq!(server.on("/api/v1/query").len(), 1);

        // A refused client is an Error that says so, without the secret; no query is sent.
        p.authentication = Some(oauth("wrong-pw"));
        let answer = measure(&p).await;
        let error = answer.error.unwrap();
        assert_eq!(error, "authentication.oauth2: cannot fetch a token from tokenUrl: 401 Unauthorized: invalid_client");
        assert_eq!(server.on("/api/v1/query").len(), 1);

        p.authentication = Some(json!({"oauth2": {"tokenUrl": format!("{}/token", server.base), "clientId": "rollouts"}}));
        assert!(measure(&p).await.error.unwrap().starts_with("missing mandatory parameter in metric for OAuth2 setup"));
    }

    #[tokio::test]
    async fn secrets_never_show_in_errors() {
        // The token endpoint echoes what it got into its error description.
        let server = serve(|r: &Recorded| -> Reply {
            let description = format!("bad credentials: {}", r.form().get("client_secret").cloned().unwrap_or_default());
            (401, "application/json", json!({"error": "invalid_client", "error_description": description}).to_string())
        })
        .await;
        let mut p = metric(&server.base, "up");
        p.authentication = Some(json!({"oauth2": {"tokenUrl": format!("{}/token", server.base), "clientId": "rollouts", "clientSecret": "hunter2-secret"}}));
        let error = measure(&p).await.error.unwrap();
        assert!(error.starts_with("authentication.oauth2: cannot fetch a token from tokenUrl: 401 Unauthorized: invalid_client (bad credentials: *****"), "{error}");
        assert!(!error.contains("hunter2-secret"), "{error}");

        // A server error that echoes the basic-auth password: redacted from the measurement.
        let echo = serve(|r: &Recorded| -> Reply {
            let error = format!("denied for {}", r.header("authorization").unwrap_or_default());
            (400, "application/json", json!({"status": "error", "errorType": "bad_data", "error": error}).to_string())
        })
        .await;
        let mut p = metric(&echo.base, "up");
        p.authentication = Some(json!({"basicAuth": {"username": "u", "password": "pw-hunter2"}}));
        assert_eq!(measure(&p).await.error.as_deref(), Some("bad_data: denied for Basic *****"));
        // And the password itself, were it echoed (here through a header, which wins).
        p.headers = vec![WebMetricHeader { key: "Authorization".into(), value: "pw-hunter2".into() }];
        assert_eq!(measure(&p).await.error.as_deref(), Some("bad_data: denied for *****"));
    }

    #[tokio::test]
    async fn addresses_timeouts_and_sigv4_follow_argo() {
        assert_eq!(measure(&metric("not-a-url", "up")).await.error.as_deref(), Some("prometheus address is not is url format"));
        let mut p = metric("http://127.0.0.1:1", "up");
        p.timeout = Some(-1);
        assert_eq!(measure(&p).await.error.as_deref(), Some("prometheus timeout should not be negative"));

        // A server that never answers: the whole query times out after `timeout`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let mut p = metric(&format!("http://{silent}"), "up");
        p.timeout = Some(1);
        let started = std::time::Instant::now();
        assert_eq!(measure(&p).await.error.as_deref(), Some("the prometheus query timed out after 1s (timeout)"));
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();

        // SigV4 is used for Amazon Managed Prometheus only; elsewhere it is ignored, as in Argo.
        let server = serve(|_: &Recorded| (200, "application/json", vector("1"))).await;
        let mut p = metric(&server.base, "up");
        p.authentication = Some(json!({"sigv4": {"region": "eu-west-1"}}));
        assert_eq!(measure(&p).await.value, json!([1.0]));
        assert_eq!(server.requests()[0].header("authorization"), None);
        let mut amp = metric("http://127.0.0.1:1/aps-workspaces/workspaces/ws-1", "up");
        amp.authentication = Some(json!({"sigv4": {"region": "eu-west-1", "roleArn": "arn:aws:iam::1:role/r"}}));
        assert!(measure(&amp).await.error.unwrap().starts_with("authentication.sigv4.roleArn is not supported"));
    }

    /// Measures with the environment `vars` instead of the process's; redacted like the controller's answers.
    async fn measure_in(p: &PrometheusMetric, vars: &[(&str, &str)]) -> MeasurementAnswer {
        let vars: std::collections::BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", now(), &context);
        let measured = measure_with(p, &ctx, &|name| vars.get(name).cloned()).await;
        ctx.redact(measured.unwrap_or_else(error_answer))
    }

    #[tokio::test]
    async fn amazon_managed_prometheus_queries_are_signed_for_aps_at_the_measurements_time() {
        let server = serve(|_: &Recorded| (200, "application/json", vector("1"))).await;
        let aws = [("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "aws-secret-key"), ("AWS_SESSION_TOKEN", "aws-session")];
        let mut p = metric(&format!("{}/aps-workspaces/workspaces/ws-1", server.base), "up");
        p.authentication = Some(json!({"sigv4": {"region": "eu-west-1"}, "basicAuth": {"username": "u", "password": "p"}}));
        p.headers = vec![WebMetricHeader { key: "X-Scope-OrgID".into(), value: "tenant_a".into() }];
        let answer = measure_in(&p, &aws).await;
        assert_eq!((answer.error, answer.value), (None, json!([1.0])));
        let r = server.requests().pop().unwrap();
        assert_eq!(r.path, "/aps-workspaces/workspaces/ws-1/api/v1/query");
        let auth = r.header("authorization").unwrap_or_default();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240501/eu-west-1/aps/aws4_request, SignedHeaders="), "{auth}");
        assert_eq!(r.header("x-amz-date"), Some("20240501T100000Z"));
        assert_eq!(r.header("x-amz-security-token"), Some("aws-session"));
        assert_eq!(r.header("x-scope-orgid"), Some("tenant_a"));

        // The region may come from the environment; without one, or without credentials, the
        // measurement is an Error naming the setting.
        p.authentication = Some(json!({"sigv4": {"profile": "none-such"}}));
        let with_region: Vec<(&str, &str)> = aws.iter().copied().chain([("AWS_REGION", "us-east-2")]).collect();
        assert_eq!(measure_in(&p, &with_region).await.error, None);
        assert!(server.requests().pop().unwrap().header("authorization").unwrap_or_default().contains("/us-east-2/aps/"));
        assert!(measure_in(&p, &aws).await.error.unwrap().starts_with("authentication.sigv4.region: "));
        let error = measure_in(&p, &[("AWS_REGION", "us-east-2")]).await.error.unwrap();
        assert!(error.starts_with("authentication.sigv4: "), "{error}");
    }

    #[tokio::test]
    async fn the_address_comes_from_the_environment_when_the_spec_has_none() {
        let server = serve(|_: &Recorded| (200, "application/json", vector("0.5"))).await;
        let p = metric("", "up");
        assert_eq!(measure_in(&p, &[(PROMETHEUS_ADDRESS_ENV, &server.base)]).await.value, json!([0.5]));
        assert!(measure_in(&p, &[]).await.error.unwrap().starts_with("prometheus address is not configured"));
        assert_eq!(measure_in(&p, &[(PROMETHEUS_ADDRESS_ENV, "localhost")]).await.error.as_deref(), Some("prometheus address is not is url format"));
    }
}
