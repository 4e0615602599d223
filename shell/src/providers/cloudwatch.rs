//! `cloudWatch`: one GetMetricData call over `[now − interval, now]` (interval default 5m)
//! with the metric's queries, signed with SigV4 for the `monitoring` service.
//!
//! `result` is the list of MetricDataResult objects with the AWS SDK for Go's field names
//! (`Id`, `Label`, `Values`, `Timestamps`, `StatusCode`, `Messages`), so Argo's conditions
//! (`all(result[0].Values, {# <= 0.01})`) read the same. The response's `Messages` are
//! recorded as the measurement's `messages` metadata.
//!
//! The request uses CloudWatch's AWS JSON 1.0 protocol (`X-Amz-Target:
//! GraniteServiceVersion20100801.GetMetricData`). The endpoint is
//! `https://monitoring.<region>.amazonaws.com`, or the SDKs' `$AWS_ENDPOINT_URL_CLOUDWATCH`,
//! then `$AWS_ENDPOINT_URL`. Credentials and region: [`super::sigv4`].
//!
//! Where this differs from Argo, on purpose: every page is read (`NextToken`; Argo reads the
//! first only), a page's results joining the earlier results of the same `Id`; Argo prints
//! the messages' fields as Go pointers (addresses), this prints their text; no retries (the
//! SDK retries throttling and 5xx three times; the metric's `consecutiveErrorLimit` does
//! here); `Timestamps` are RFC 3339 text (Go's conditions see `time.Time` values). As in
//! Argo, the recorded value is the values alone (`[[0.005 0.008]]`, [`argo_value`]) while
//! `result` is the objects.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::{CloudWatchMetric, CloudWatchMetricDataQuery, IntOrString};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{http, sigv4, Ctx, Measured, Provider};

/// The `X-Amz-Target` of GetMetricData in CloudWatch's JSON protocol.
pub const GET_METRIC_DATA_TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";
/// The content type of the AWS JSON 1.0 protocol.
pub const JSON_1_0: &str = "application/x-amz-json-1.0";
/// CloudWatch's signing name.
pub const SIGNING_SERVICE: &str = "monitoring";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A bound on `NextToken` pages, so that a server that keeps answering one cannot hold the
/// measurement forever.
const MAX_PAGES: usize = 100;

impl Provider for CloudWatchMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        measure_with(self, ctx, &|name| std::env::var(name).ok()).await
    }
}

/// Measures `spec` with the environment read through `var` (tests give their own).
pub async fn measure_with(spec: &CloudWatchMetric, ctx: &Ctx<'_>, var: &(dyn Fn(&str) -> Option<String> + Sync)) -> Measured {
    let interval = interval(spec.interval.as_deref())?;
    let queries = request_queries(&spec.metric_data_queries)?;
    let region = sigv4::region_with(var, None, None)?;
    let creds = sigv4::credentials_with(ctx, var, None)?;
    let url = endpoint(var, &region);
    let client = http::client(REQUEST_TIMEOUT, false)?;
    let end = ctx.now();
    let start = end.checked_sub(interval).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut output = Output::default();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let body = request_body(start, end, &queries, next_token.as_deref());
        let mut req = client
            .post(&url)
            .header("content-type", JSON_1_0)
            .header("x-amz-target", GET_METRIC_DATA_TARGET)
            .body(body.to_string())
            .build()
            .map_err(|e| format!("cannot build the GetMetricData request: {}", http::transport(&e)))?;
        sigv4::sign(&mut req, &creds, &region, SIGNING_SERVICE, ctx.now())?;
        let page = send(&client, req).await?;
        next_token = page.next_token.clone().filter(|t| !t.is_empty());
        output.join(page);
        if next_token.is_none() {
            return Ok(answer(&output));
        }
    }
    Err(format!("GetMetricData answered more than {MAX_PAGES} pages (NextToken)"))
}

/// The endpoint: `$AWS_ENDPOINT_URL_CLOUDWATCH`, else `$AWS_ENDPOINT_URL` (both ignored
/// when `$AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true), else the region's.
pub fn endpoint(var: &dyn Fn(&str) -> Option<String>, region: &str) -> String {
    let ignore = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let configured = ["AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_ENDPOINT_URL"].iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
    match configured {
        Some(url) if !ignore => url,
        _ if region.starts_with("cn-") => format!("https://monitoring.{region}.amazonaws.com.cn"),
        _ => format!("https://monitoring.{region}.amazonaws.com"),
    }
}

/// The query window: the metric's `interval` as a Go duration, 5m when unset.
fn interval(spec: Option<&str>) -> Result<Duration, String> {
    match spec.filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_INTERVAL),
        Some(s) => {
            let nanos = rollouts_core::time::parse_go_duration(s).map_err(|e| format!("cloudWatch.interval: {e}"))?;
            Ok(Duration::from_nanos(nanos.max(0).unsigned_abs()))
        }
    }
}

/// `metricStat` as Argo's spec types read it (unknown fields are ignored, as Go does).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricStatSpec {
    #[serde(default)]
    metric: MetricSpec,
    #[serde(default)]
    period: Option<IntOrString>,
    #[serde(default)]
    stat: String,
    #[serde(default)]
    unit: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricSpec {
    #[serde(default)]
    dimensions: Option<Vec<DimensionSpec>>,
    #[serde(default)]
    metric_name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DimensionSpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

/// Kubernetes' `IntOrString.IntValue()`: a string that is not a number is 0.
fn int_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => s.trim().parse().unwrap_or(0),
    }
}

/// The `MetricDataQueries` of the request, field for field as Argo hands them to the SDK:
/// a metricStat always carries `Period` (0 when unset) and `Stat`; `Unit` only when set.
fn request_queries(queries: &[CloudWatchMetricDataQuery]) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let mut query = Map::new();
        query.insert("Id".into(), json!(q.id));
        if let Some(e) = &q.expression {
            query.insert("Expression".into(), json!(e));
        }
        if let Some(l) = &q.label {
            query.insert("Label".into(), json!(l));
        }
        if let Some(raw) = &q.metric_stat {
            let stat = MetricStatSpec::deserialize(raw).map_err(|e| format!("cloudWatch.metricDataQueries[{i}].metricStat: {e}"))?;
            let mut metric = Map::new();
            if let Some(dims) = &stat.metric.dimensions {
                let dims: Vec<Value> = dims.iter().map(|d| json!({"Name": d.name, "Value": d.value})).collect();
                metric.insert("Dimensions".into(), Value::Array(dims));
            }
            metric.insert("MetricName".into(), json!(stat.metric.metric_name));
            if let Some(ns) = &stat.metric.namespace {
                metric.insert("Namespace".into(), json!(ns));
            }
            let mut metric_stat = Map::new();
            metric_stat.insert("Metric".into(), Value::Object(metric));
            metric_stat.insert("Period".into(), json!(stat.period.as_ref().map_or(0, int_value)));
            metric_stat.insert("Stat".into(), json!(stat.stat));
            if !stat.unit.is_empty() {
                metric_stat.insert("Unit".into(), json!(stat.unit));
            }
            query.insert("MetricStat".into(), Value::Object(metric_stat));
        }
        if let Some(p) = &q.period {
            query.insert("Period".into(), json!(int_value(p)));
        }
        if let Some(r) = q.return_data {
            query.insert("ReturnData".into(), json!(r));
        }
        out.push(Value::Object(query));
    }
    Ok(out)
}

/// Epoch seconds with milliseconds, as the SDKs write timestamps in the JSON protocol.
fn epoch_seconds(t: SystemTime) -> Value {
    let millis = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    match serde_json::Number::from_f64(millis as f64 / 1000.0) {
        Some(n) => Value::Number(n),
        None => json!(0),
    }
}

fn request_body(start: SystemTime, end: SystemTime, queries: &[Value], next_token: Option<&str>) -> Value {
    let mut body = json!({"StartTime": epoch_seconds(start), "EndTime": epoch_seconds(end), "MetricDataQueries": queries});
    if let (Some(token), Some(map)) = (next_token, body.as_object_mut()) {
        map.insert("NextToken".into(), json!(token));
    }
    body
}

/// A GetMetricData response (one page, or the pages joined).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    /// The results, one per query that returns data.
    #[serde(default)]
    pub metric_data_results: Vec<DataResult>,
    /// The next page's token.
    #[serde(default)]
    pub next_token: Option<String>,
    /// Messages about the whole request.
    #[serde(default)]
    pub messages: Vec<Message>,
}

/// One `MetricDataResult`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataResult {
    /// The query's `Id`.
    #[serde(default)]
    pub id: Option<String>,
    /// The label.
    #[serde(default)]
    pub label: Option<String>,
    /// The data points' values.
    #[serde(default)]
    pub values: Vec<f64>,
    /// The data points' times (epoch seconds or RFC 3339 text).
    #[serde(default)]
    pub timestamps: Vec<Value>,
    /// `Complete`, `PartialData`, `InternalError` or `Forbidden`.
    #[serde(default)]
    pub status_code: Option<String>,
    /// Messages about this result.
    #[serde(default)]
    pub messages: Vec<Message>,
}

/// A `MessageData`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    /// The code.
    #[serde(default)]
    pub code: Option<String>,
    /// The text.
    #[serde(default)]
    pub value: Option<String>,
}

impl Output {
    /// Adds a later page: results of an `Id` already seen continue that result.
    fn join(&mut self, page: Output) {
        for r in page.metric_data_results {
            match self.metric_data_results.iter_mut().find(|old| old.id.is_some() && old.id == r.id) {
                Some(old) => {
                    old.values.extend(r.values);
                    old.timestamps.extend(r.timestamps);
                    old.messages.extend(r.messages);
                    if r.status_code.is_some() {
                        old.status_code = r.status_code;
                    }
                }
                None => self.metric_data_results.push(r),
            }
        }
        self.messages.extend(page.messages);
    }
}

async fn send(client: &reqwest::Client, req: reqwest::Request) -> Result<Output, String> {
    const OP: &str = "operation error CloudWatch: GetMetricData";
    let resp = client.execute(req).await.map_err(|e| format!("{OP}, request send failed: {}", http::transport(&e)))?;
    let status = resp.status().as_u16();
    let request_id = resp.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let error_type = resp.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = resp.text().await.map_err(|e| format!("{OP}, reading the response failed: {}", http::transport(&e)))?;
    if !(200..300).contains(&status) {
        let (code, message) = aws_error(&text, error_type.as_deref());
        return Err(format!("{OP}, https response error StatusCode: {status}, RequestID: {request_id}, api error {code}: {message}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{OP}, cannot read the response: {e}"))
}

/// The code and message of an AWS error body: JSON (`__type`, `message`), or the XML of
/// the Query protocol (`<Code>`, `<Message>`).
fn aws_error(body: &str, error_type: Option<&str>) -> (String, String) {
    // `__type` may be qualified: `com.amazonaws.cloudwatch#InvalidParameterValue`.
    let short = |t: &str| t.rsplit('#').next().unwrap_or(t).split(':').next().unwrap_or(t).to_string();
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) {
        let code = map.get("__type").or_else(|| map.get("code")).and_then(Value::as_str).map(short);
        let message = ["message", "Message"].iter().find_map(|k| map.get(*k)).and_then(Value::as_str);
        return (
            code.or_else(|| error_type.map(short)).unwrap_or_else(|| "UnknownError".into()),
            message.unwrap_or_default().trim_end().to_string(),
        );
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find(&close)?;
        Some(body[start..start + len].trim().to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), message) => (code, message.unwrap_or_default()),
        (None, _) => (error_type.map(short).unwrap_or_else(|| "UnknownError".into()), body.trim().chars().take(200).collect()),
    }
}

/// The measurement: `result` is the list of MetricDataResult objects; the response's
/// messages go to the `messages` metadata.
fn answer(output: &Output) -> MeasurementAnswer {
    let result: Vec<Value> = output.metric_data_results.iter().map(result_object).collect();
    let mut metadata = BTreeMap::new();
    if !output.messages.is_empty() {
        metadata.insert("messages".to_string(), go_messages(&output.messages));
    }
    MeasurementAnswer { value: Value::Array(result), recorded: Some(argo_value(output)), metadata, ..MeasurementAnswer::default() }
}

/// A MetricDataResult with the Go SDK's field names; timestamps as RFC 3339 text.
fn result_object(r: &DataResult) -> Value {
    let messages: Vec<Value> = r.messages.iter().map(|m| json!({"Code": m.code, "Value": m.value})).collect();
    json!({
        "Id": r.id,
        "Label": r.label,
        "Messages": messages,
        "StatusCode": r.status_code.clone().unwrap_or_default(),
        "Timestamps": r.timestamps.iter().map(timestamp_text).collect::<Vec<_>>(),
        "Values": r.values.iter().map(|v| serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number)).collect::<Vec<_>>(),
    })
}

fn timestamp_text(t: &Value) -> Value {
    let Some(secs) = t.as_f64() else { return t.clone() };
    let nanos = (secs * 1e9).round();
    match jiff::Timestamp::from_nanosecond(nanos as i128) {
        Ok(ts) => Value::String(ts.to_string()),
        Err(_) => t.clone(),
    }
}

/// Messages as Go's `%+v` prints them, with the text where Go shows pointers.
fn go_messages(messages: &[Message]) -> String {
    let one = |m: &Message| format!("{{Code:{} Value:{}}}", m.code.as_deref().unwrap_or("<nil>"), m.value.as_deref().unwrap_or("<nil>"));
    format!("[{}]", messages.iter().map(one).collect::<Vec<_>>().join(" "))
}

/// The measurement value Argo records: the results' values as Go prints a `[][]float64`
/// (`[[0.005 0.008] []]`). Not recorded yet: a `MeasurementAnswer` has one value, which is
/// both `result` and the recorded value, so the value shows the result objects as JSON
/// until an answer can carry a value of its own.
pub fn argo_value(output: &Output) -> String {
    let row = |r: &DataResult| format!("[{}]", r.values.iter().map(|v| go_float(*v)).collect::<Vec<_>>().join(" "));
    format!("[{}]", output.metric_data_results.iter().map(row).collect::<Vec<_>>().join(" "))
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits,
/// in exponent form when the decimal exponent is below −4 or at least 6.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::http::{HeaderMap, StatusCode};
    use rollouts_core::analysis::condition::evaluate_result;
    use rollouts_core::analysis::run::MeasureContext;
    use rollouts_core::api::{AnalysisPhase, Metric};

    /// 2025-01-01T00:00:00Z.
    const NOW: u64 = 1_735_689_600;

    struct Seen {
        headers: HeaderMap,
        body: Value,
    }

    type Reply = (u16, Vec<(&'static str, &'static str)>, String);

    /// A stand-in for CloudWatch on 127.0.0.1: records each request, answers the replies in turn.
    async fn aws(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            let replies = replies.clone();
            async move {
                let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                record.lock().unwrap().push(Seen { headers, body });
                let (status, headers, text) = replies.lock().unwrap().pop_front().unwrap_or((500, vec![], "no more replies".into()));
                let mut map = HeaderMap::new();
                for (k, v) in headers {
                    map.insert(k, v.parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), map, text)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://127.0.0.1:{port}"), seen)
    }

    fn env(endpoint: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| match name {
            "AWS_ENDPOINT_URL" => Some(endpoint.to_string()),
            "AWS_ACCESS_KEY_ID" => Some("AKIATESTKEY".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("testsecret".into()),
            "AWS_REGION" => Some("us-east-1".into()),
            "HOME" => Some("/nonexistent".into()),
            _ => None,
        }
    }

    fn spec(yaml: &str) -> CloudWatchMetric {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const SEED: &str = r#"
interval: 10m
metricDataQueries:
  - id: rate
    expression: errors / requests
    label: error rate
  - id: errors
    metricStat:
      metric:
        namespace: App
        metricName: Errors
        dimensions: [{name: Service, value: web}]
      period: 300
      stat: Sum
      unit: Count
    returnData: false
  - id: requests
    metricStat:
      metric: {namespace: App, metricName: Requests}
      stat: Sum
    period: "60"
"#;

    async fn measure_at(spec: &CloudWatchMetric, endpoint: &str) -> Measured {
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "ns", SystemTime::UNIX_EPOCH + Duration::from_secs(NOW), &context);
        let vars = env(endpoint);
        let measured = tokio::time::timeout(Duration::from_secs(20), measure_with(spec, &ctx, &vars)).await.expect("the measurement finished");
        // What the framework does with the answer: every credential read is redacted.
        measured.map(|a| ctx.redact(a)).map_err(|e| ctx.redact(super::super::error_answer(e)).error.unwrap_or_default())
    }

    fn judge(condition: &str, result: &Value) -> Result<AnalysisPhase, String> {
        let metric = Metric { name: "error-rate".into(), success_condition: Some(condition.into()), ..Metric::default() };
        evaluate_result(&metric, result)
    }

    fn results_page(values: &str, extra: &str) -> String {
        format!(
            r#"{{"MetricDataResults":[{{"Id":"rate","Label":"error rate","Timestamps":[1735689540,1735689480],"Values":{values},"StatusCode":"Complete"}}]{extra}}}"#
        )
    }

    #[tokio::test]
    async fn get_metric_data_is_a_signed_json_request_over_the_interval_before_now() {
        let page = results_page("[0.005,0.008]", r#","Messages":[{"Code":"MaxQueryTimeRangeExceed","Value":"too long"}]"#);
        let (endpoint, seen) = aws(vec![(200, vec![("x-amzn-requestid", "r1")], page)]).await;
        let answer = measure_at(&spec(SEED), &endpoint).await.unwrap();

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let h = |name: &str| seen[0].headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert_eq!(h("x-amz-target"), "GraniteServiceVersion20100801.GetMetricData");
        assert_eq!(h("content-type"), "application/x-amz-json-1.0");
        assert_eq!(h("x-amz-date"), "20250101T000000Z");
        let auth = h("authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIATESTKEY/20250101/us-east-1/monitoring/aws4_request, SignedHeaders="), "{auth}");
        assert!(auth.contains("x-amz-target"), "the target is signed: {auth}");
        let expected = json!({
            "StartTime": 1_735_689_000.0,
            "EndTime": 1_735_689_600.0,
            "MetricDataQueries": [
                {"Id": "rate", "Expression": "errors / requests", "Label": "error rate"},
                {"Id": "errors", "ReturnData": false, "MetricStat": {
                    "Metric": {"Namespace": "App", "MetricName": "Errors", "Dimensions": [{"Name": "Service", "Value": "web"}]},
                    "Period": 300, "Stat": "Sum", "Unit": "Count"}},
                {"Id": "requests", "Period": 60, "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Requests"}, "Period": 0, "Stat": "Sum"}},
            ],
        });
        assert_eq!(seen[0].body, expected);

        assert_eq!(
            answer.value,
            json!([{"Id": "rate", "Label": "error rate", "Messages": [], "StatusCode": "Complete",
                    "Timestamps": ["2024-12-31T23:59:00Z", "2024-12-31T23:58:00Z"],
                    "Values": [0.005, 0.008]}])
        );
        assert_eq!(answer.metadata.get("messages").map(String::as_str), Some("[{Code:MaxQueryTimeRangeExceed Value:too long}]"));
        assert_eq!(answer.error, None);
        // Argo's documented condition reads this `result`.
        assert_eq!(judge("all(result[0].Values, {# <= 0.01})", &answer.value), Ok(AnalysisPhase::Successful));
        assert_eq!(judge("all(result[0].Values, {# <= 0.006})", &answer.value), Ok(AnalysisPhase::Failed));
        assert_eq!(judge("result[0].StatusCode == 'Complete' && result[0].Id == 'rate'", &answer.value), Ok(AnalysisPhase::Successful));
    }

    #[tokio::test]
    async fn pages_are_read_and_joined_by_id() {
        let first = results_page("[0.005,0.008]", r#","NextToken":"page-2""#);
        let second = r#"{"MetricDataResults":[{"Id":"rate","Timestamps":[1735689420],"Values":[0.5],"StatusCode":"Complete"},{"Id":"other","Values":[1],"StatusCode":"PartialData"}]}"#;
        let (endpoint, seen) = aws(vec![(200, vec![], first), (200, vec![], second.into())]).await;
        let answer = measure_at(&spec(SEED), &endpoint).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].body.get("NextToken"), None);
        assert_eq!(seen[1].body["NextToken"], "page-2");
        assert_eq!(seen[1].body["StartTime"], seen[0].body["StartTime"]);
        assert_eq!(answer.value[0]["Values"], json!([0.005, 0.008, 0.5]));
        assert_eq!(answer.value[0]["Timestamps"].as_array().map(Vec::len), Some(3));
        assert_eq!(answer.value[1]["Id"], "other");
        assert_eq!(answer.value[1]["Label"], Value::Null);
        assert_eq!(answer.value[1]["StatusCode"], "PartialData");
        assert_eq!(judge("all(result[0].Values, {# <= 0.01})", &answer.value), Ok(AnalysisPhase::Failed));
        assert!(!answer.metadata.contains_key("messages"));
    }

    #[tokio::test]
    async fn an_aws_error_is_the_measurement_error_with_aws_code_and_message() {
        let json_error = r#"{"__type":"com.amazonaws.cloudwatch#InvalidParameterValue","message":"The value 0 for parameter MetricDataQueries.member.1.MetricStat.Period is not valid."}"#;
        let xml_error = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>";
        let (endpoint, _) = aws(vec![
            (400, vec![("x-amzn-requestid", "req-1")], json_error.into()),
            (403, vec![], xml_error.into()),
            (200, vec![], "not json".into()),
        ])
        .await;
        let e = measure_at(&spec(SEED), &endpoint).await.unwrap_err();
        assert_eq!(
            e,
            "operation error CloudWatch: GetMetricData, https response error StatusCode: 400, RequestID: req-1, \
             api error InvalidParameterValue: The value 0 for parameter MetricDataQueries.member.1.MetricStat.Period is not valid."
        );
        let e = measure_at(&spec(SEED), &endpoint).await.unwrap_err();
        assert!(e.ends_with("StatusCode: 403, RequestID: , api error InvalidClientTokenId: The security token included in the request is invalid."), "{e}");
        let e = measure_at(&spec(SEED), &endpoint).await.unwrap_err();
        assert!(e.starts_with("operation error CloudWatch: GetMetricData, cannot read the response:"), "{e}");
        // A server that is not there: a transport error, without the credentials.
        let e = measure_at(&spec(SEED), "http://127.0.0.1:9").await.unwrap_err();
        assert!(e.starts_with("operation error CloudWatch: GetMetricData, request send failed:"), "{e}");
        assert!(!e.contains("AKIATESTKEY") && !e.contains("testsecret"), "{e}");
    }

    #[tokio::test]
    async fn spec_and_setup_errors_name_what_is_wrong() {
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "ns", SystemTime::UNIX_EPOCH + Duration::from_secs(NOW), &context);
        let none = |_: &str| None;
        let bad_interval = spec("interval: 5 minutes\nmetricDataQueries: [{id: a, expression: '1'}]");
        assert_eq!(measure_with(&bad_interval, &ctx, &none).await.unwrap_err(), "cloudWatch.interval: time: unknown unit \" minutes\" in duration \"5 minutes\"");
        let bad_stat = spec("metricDataQueries: [{id: a, expression: '1'}, {id: b, metricStat: {metric: {dimensions: 3}}}]");
        let e = measure_with(&bad_stat, &ctx, &none).await.unwrap_err();
        assert!(e.starts_with("cloudWatch.metricDataQueries[1].metricStat: invalid type: integer `3`"), "{e}");
        let ok = spec("metricDataQueries: [{id: a, expression: '1'}]");
        let e = measure_with(&ok, &ctx, &none).await.unwrap_err();
        assert!(e.starts_with("no AWS region"), "{e}");
        let region_only = |n: &str| (n == "AWS_REGION").then(|| "us-east-1".to_string());
        let e = measure_with(&ok, &ctx, &region_only).await.unwrap_err();
        assert!(e.starts_with("no AWS credentials were found"), "{e}");
    }

    #[test]
    fn the_endpoint_is_the_sdk_variables_else_the_region() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string());
        assert_eq!(endpoint(&vars(&[]), "eu-west-1"), "https://monitoring.eu-west-1.amazonaws.com");
        assert_eq!(endpoint(&vars(&[]), "cn-north-1"), "https://monitoring.cn-north-1.amazonaws.com.cn");
        assert_eq!(endpoint(&vars(&[("AWS_ENDPOINT_URL", "http://a")]), "eu-west-1"), "http://a");
        let both = vars(&[("AWS_ENDPOINT_URL", "http://a"), ("AWS_ENDPOINT_URL_CLOUDWATCH", "http://cw")]);
        assert_eq!(endpoint(&both, "eu-west-1"), "http://cw");
        let ignored = vars(&[("AWS_ENDPOINT_URL", "http://a"), ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]);
        assert_eq!(endpoint(&ignored, "eu-west-1"), "https://monitoring.eu-west-1.amazonaws.com");
    }

    #[test]
    fn argo_value_is_go_printing_the_values() {
        let output: Output = serde_json::from_str(
            r#"{"MetricDataResults":[{"Id":"a","Values":[0.005,1,100000,1234567,0.00001,-2.5]},{"Id":"b","Values":[]}]}"#,
        )
        .unwrap();
        assert_eq!(argo_value(&output), "[[0.005 1 100000 1.234567e+06 1e-05 -2.5] []]");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.0001), "0.0001");
    }
}
