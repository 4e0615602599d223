//! `datadog`: a metric query against Datadog's API, v1 (`GET /api/v1/query`, the last point
//! of the first series) or v2 (`POST /api/v2/query/scalar`, one number, or one per group of
//! a `by {tag}` query).
//!
//! Credentials, in Argo's order: the Secret `secretRef.name` (in the controller's namespace,
//! or the run's when `secretRef.namespaced`); without a `secretRef`, the environment
//! (`DD_API_KEY`, `DD_APP_KEY` and `DD_ADDRESS`, all three set), then the Secret `datadog`
//! in the controller's namespace (`api-key`, `app-key`, optional `address`).

use std::collections::BTreeMap;
use std::time::Duration;

use rollouts_core::api::DatadogMetric;
use rollouts_core::time::parse_go_duration;
use serde_json::{json, Value};

use super::http;
use super::{value_answer, Ctx, Measured, Provider};

/// Where Datadog is asked when the credentials name no address.
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";
/// The Secret read when the metric has no `secretRef` and the environment has no keys.
pub const DEFAULT_SECRET: &str = "datadog";
/// The query window when `interval` is not set (Argo's CRD default).
const DEFAULT_INTERVAL: &str = "5m";
/// The request timeout when `requestTimeout` is not set (Argo's CRD default).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many groups are kept in the `groups` metadata (the lowest and highest
/// values), so that a high-cardinality tag cannot bloat the run's status.
const MAX_GROUPS_IN_METADATA: usize = 100;

/// Datadog's keys and the site to ask. Deliberately not `Debug`: it holds the keys.
pub struct Credentials {
    /// Base URL (`https://api.datadoghq.com`, `https://api.datadoghq.eu`, ...).
    pub address: String,
    /// Sent as `DD-API-KEY`.
    pub api_key: String,
    /// Sent as `DD-APPLICATION-KEY`.
    pub app_key: String,
}

/// One place credentials may be found, tried in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finder {
    /// `DD_API_KEY`, `DD_APP_KEY` and `DD_ADDRESS`.
    Environment,
    /// A Secret: in `namespace`, or the controller's when None.
    Secret {
        /// The Secret's namespace (None: the controller's).
        namespace: Option<String>,
        /// The Secret's name.
        name: String,
    },
}

/// The places to look for credentials, in order, for a metric's `secretRef` and the run's
/// namespace (None when the measurement does not know it, e.g. offline).
pub fn finders(secret_ref: Option<&Value>, run_namespace: Option<&str>) -> Result<Vec<Finder>, String> {
    let name = secret_ref.and_then(|r| r.get("name")).and_then(Value::as_str).unwrap_or_default();
    let namespaced = secret_ref.and_then(|r| r.get("namespaced")).and_then(Value::as_bool).unwrap_or(false);
    if namespaced {
        if name.is_empty() {
            return Err("secret name is required for namespaced credentials".to_string());
        }
        let Some(namespace) = run_namespace else {
            return Err(format!(
                "datadog secretRef {name:?} is namespaced, but this measurement does not know the run's namespace"
            ));
        };
        return Ok(vec![Finder::Secret { namespace: Some(namespace.to_string()), name: name.to_string() }]);
    }
    if !name.is_empty() {
        return Ok(vec![Finder::Secret { namespace: None, name: name.to_string() }]);
    }
    Ok(vec![Finder::Environment, Finder::Secret { namespace: None, name: DEFAULT_SECRET.to_string() }])
}

/// Credentials from the environment (`lookup` reads one variable): only when `DD_API_KEY`,
/// `DD_APP_KEY` and `DD_ADDRESS` are all set and both keys are non-empty.
pub fn from_environment(lookup: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
    let api_key = lookup("DD_API_KEY")?;
    let app_key = lookup("DD_APP_KEY")?;
    let address = lookup("DD_ADDRESS")?;
    (!api_key.is_empty() && !app_key.is_empty()).then_some(Credentials { address, api_key, app_key })
}

/// Credentials from a Secret's values: only when `api-key` and `app-key` are non-empty.
pub fn from_secret(values: &BTreeMap<String, String>) -> Option<Credentials> {
    let api_key = values.get("api-key").filter(|k| !k.is_empty())?.clone();
    let app_key = values.get("app-key").filter(|k| !k.is_empty())?.clone();
    let address = values.get("address").cloned().unwrap_or_default();
    Some(Credentials { address, api_key, app_key })
}

/// Datadog's query API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `GET /api/v1/query`.
    V1,
    /// `POST /api/v2/query/scalar`.
    V2,
}

/// A validated query: what to ask, over which window, with which timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The API version.
    pub version: ApiVersion,
    /// v1: the query. v2: the named queries (a single `query` is named `query`).
    pub queries: BTreeMap<String, String>,
    /// v2: the formula over the named queries.
    pub formula: Option<String>,
    /// v2: the aggregator (default `last`).
    pub aggregator: String,
    /// The window, seconds before now.
    pub interval_secs: i64,
    /// The whole request's timeout.
    pub timeout: Duration,
}

/// Checks the spec as Argo does before it asks Datadog (its messages) and works out the
/// request.
pub fn query_of(dd: &DatadogMetric) -> Result<Query, String> {
    let query = dd.query.as_deref().filter(|q| !q.is_empty());
    let queries = dd.queries.clone().unwrap_or_default();
    let formula = dd.formula.clone().filter(|f| !f.is_empty());
    let aggregator = dd.aggregator.clone().filter(|a| !a.is_empty());
    // Divergence: Argo's CRD defaults `apiVersion` to v1, ours does not; an unset version is
    // v1 here rather than Argo's undefaulted quirk (a v2 body sent to the v1 URL).
    let version = match dd.api_version.as_deref().unwrap_or_default() {
        "" | "v1" => ApiVersion::V1,
        "v2" => ApiVersion::V2,
        other => return Err(format!("unsupported Datadog apiVersion {other:?}: v1 or v2")),
    };
    if query.is_none() && queries.is_empty() {
        return Err("Must have either a query or queries. Please review the Analysis Template.".to_string());
    }
    if query.is_some() && !queries.is_empty() {
        return Err("Cannot have both a query and queries. Please review the Analysis Template.".to_string());
    }
    if version == ApiVersion::V1 && query.is_none() {
        return Err("Query is empty. API Version v1 only supports using the query parameter in your Analysis Template.".to_string());
    }
    if formula.is_some() && queries.is_empty() {
        return Err("Formula are only valid when queries are set. Please review the Analysis Template.".to_string());
    }
    if formula.is_none() && queries.len() > 1 {
        return Err("When multiple queries are provided you must include a formula.".to_string());
    }
    if version == ApiVersion::V1 && aggregator.is_some() {
        return Err("Aggregator is not supported in v1. Please review the Analysis Template.".to_string());
    }
    let timeout = match dd.request_timeout.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_REQUEST_TIMEOUT,
        Some(t) => {
            let nanos = parse_go_duration(t)
                .map_err(|e| format!("Could not parse the request timeout: {e}. Please review the Analysis Template."))?;
            if nanos <= 0 {
                return Err("Request timeout must be a positive duration (e.g. 30s). Please review the Analysis Template.".to_string());
            }
            Duration::from_nanos(nanos.unsigned_abs())
        }
    };
    let interval = dd.interval.as_deref().filter(|i| !i.is_empty()).unwrap_or(DEFAULT_INTERVAL);
    let interval_secs = parse_go_duration(interval).map_err(|e| e.to_string())? / 1_000_000_000;
    let queries = match query {
        Some(q) => BTreeMap::from([("query".to_string(), q.to_string())]),
        None => queries,
    };
    Ok(Query { version, queries, formula, aggregator: aggregator.unwrap_or_else(|| "last".to_string()), interval_secs, timeout })
}

impl Provider for DatadogMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let query = query_of(self)?;
        let credentials = find_credentials(ctx, self.secret_ref.as_ref()).await?;
        ask(&query, &credentials, ctx.now_jiff().as_second()).await
    }
}

/// Tries the finders in order; the first with both keys wins.
async fn find_credentials(ctx: &Ctx<'_>, secret_ref: Option<&Value>) -> Result<Credentials, String> {
    let mut read_errors = Vec::new();
    for finder in finders(secret_ref, ctx.run_namespace())? {
        let found = match finder {
            Finder::Environment => from_environment(|name| std::env::var(name).ok()),
            // A missing Secret or key is no error: the next finder is tried, as in Argo.
            Finder::Secret { namespace, name } => match ctx.secret(namespace.as_deref(), &name).await {
                Ok(values) => values.as_ref().and_then(from_secret),
                Err(e) => {
                    read_errors.push(e);
                    None
                }
            },
        };
        if let Some(c) = found {
            ctx.redact_also("datadog api-key", &c.api_key);
            ctx.redact_also("datadog app-key", &c.app_key);
            return Ok(c);
        }
    }
    let mut message = "failed to find the credentials for datadog metrics provider".to_string();
    if !read_errors.is_empty() {
        message = format!("{message} ({})", read_errors.join("; "));
    }
    Err(message)
}

/// Asks Datadog at `now` (Unix seconds) and reads the answer.
pub async fn ask(query: &Query, credentials: &Credentials, now: i64) -> Measured {
    let address = if credentials.address.is_empty() { DEFAULT_ADDRESS } else { credentials.address.as_str() };
    let address = address.trim_end_matches('/');
    let client = http::client(query.timeout, false)?;
    let from = now.saturating_sub(query.interval_secs);
    let req = match query.version {
        ApiVersion::V1 => {
            let q = query.queries.values().next().map(String::as_str).unwrap_or_default();
            client.get(format!("{address}/api/v1/query")).query(&[("from", from.to_string()), ("query", q.to_string()), ("to", now.to_string())])
        }
        ApiVersion::V2 => client.post(format!("{address}/api/v2/query/scalar")).body(v2_body(query, from, now).to_string()),
    };
    let req = req
        .header("Content-Type", "application/json")
        .header("DD-API-KEY", &credentials.api_key)
        .header("DD-APPLICATION-KEY", &credentials.app_key);
    let (status, text) = http::send_text(req).await?;
    if status == 401 || status == 403 {
        return Err(format!("received authentication error response code: {status} {text}"));
    }
    if status != 200 {
        return Err(format!("received non 2xx response code: {status} {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("Could not parse JSON body: {e}"))?;
    match query.version {
        ApiVersion::V1 => v1_answer(&body),
        ApiVersion::V2 => v2_answer(&body),
    }
}

/// The `scalar_request` of the v2 API: times in milliseconds, one entry per named query.
pub fn v2_body(query: &Query, from: i64, to: i64) -> Value {
    let queries: Vec<Value> = query
        .queries
        .iter()
        .map(|(name, q)| json!({"aggregator": query.aggregator, "data_source": "metrics", "name": name, "query": q}))
        .collect();
    let formulas: Vec<Value> = query.formula.iter().map(|f| json!({"formula": f})).collect();
    json!({"data": {"attributes": {
        "from": from.saturating_mul(1000),
        "to": to.saturating_mul(1000),
        "queries": queries,
        "formulas": formulas,
    }, "type": "scalar_request"}})
}

/// A v1 answer: the last point of the first series; nothing when there is no point.
pub fn v1_answer(body: &Value) -> Measured {
    if body.get("status").and_then(Value::as_str) == Some("error") {
        let error = body.get("error").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(format!("There were errors in your query: {error}"));
    }
    let first = body.get("series").and_then(Value::as_array).and_then(|s| s.first());
    let points = first.and_then(|s| s.get("pointlist")).and_then(Value::as_array);
    let Some(last) = points.and_then(|p| p.last()) else {
        return Ok(value_answer(Value::Null));
    };
    let point = last.as_array().filter(|p| p.len() == 2).ok_or("Datapoint does not have 2 values")?;
    // Divergence: Argo reads a null point (no data in the last bucket) as 0; it stays null
    // here, so the conditions report that no data came back instead of judging a made-up 0.
    match &point[1] {
        Value::Number(n) => Ok(value_answer(go_number(n.as_f64().unwrap_or_default()))),
        Value::Null => Ok(value_answer(Value::Null)),
        other => Err(format!("Could not parse JSON body: datapoint value {other} is not a number")),
    }
}

/// A v2 answer: the first number of the first number column; for a `by {tag}` query every
/// number and, in metadata `groups`, which group each belongs to.
pub fn v2_answer(body: &Value) -> Measured {
    // Datadog documents `errors` at the top of the response; Argo reads `data.errors`.
    let errors = [body.get("errors"), body.get("data").and_then(|d| d.get("errors"))];
    if let Some(e) = errors.into_iter().flatten().filter_map(Value::as_str).find(|e| !e.is_empty()) {
        return Err(format!("There were errors in your query: {e}"));
    }
    let columns = body.pointer("/data/attributes/columns").and_then(Value::as_array).cloned().unwrap_or_default();
    let column_type = |c: &Value| c.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let numbers = columns.iter().find(|c| matches!(column_type(c).as_str(), "" | "number"));
    let groups: Vec<&Value> = columns.iter().filter(|c| column_type(c) == "group").collect();
    let grouped = !groups.is_empty();
    let Some(numbers) = numbers else {
        return Ok(value_answer(Value::Null));
    };
    let name = numbers.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut values = Vec::new();
    let mut labelled = Vec::new();
    for (i, v) in numbers.get("values").and_then(Value::as_array).into_iter().flatten().enumerate() {
        // Null is Datadog's "no data for this group": skipped with its label.
        if v.is_null() {
            continue;
        }
        let f = v.as_f64().ok_or_else(|| format!("could not parse numeric value {v} in column {name:?}"))?;
        values.push(f);
        if grouped {
            let label = group_label(&groups, i).ok_or_else(|| format!("could not parse group label at index {i}"))?;
            labelled.push((label, f));
        }
    }
    if values.is_empty() {
        return Ok(value_answer(Value::Null));
    }
    if !grouped {
        return Ok(value_answer(go_number(values[0])));
    }
    let mut answer = value_answer(Value::Array(values.into_iter().map(go_number).collect()));
    let (shown, truncated) = groups_metadata(labelled);
    answer.metadata.insert("groups".to_string(), shown.to_string());
    if truncated {
        answer.metadata.insert("groups_truncated".to_string(), "true".to_string());
    }
    Ok(answer)
}

/// The label of row `i`: every group column's tag values for that row, joined by `,`.
fn group_label(columns: &[&Value], i: usize) -> Option<String> {
    let mut parts = Vec::new();
    for column in columns {
        let tags = column.get("values")?.as_array()?.get(i)?.as_array()?;
        if tags.is_empty() {
            return None;
        }
        for tag in tags {
            parts.push(tag.as_str()?.to_string());
        }
    }
    Some(parts.join(","))
}

/// The groups as `[{"name", "value"}]`; above [`MAX_GROUPS_IN_METADATA`], only the lowest
/// and the highest halves (the outlier is at one end or the other), and `true`.
fn groups_metadata(mut groups: Vec<(String, f64)>) -> (Value, bool) {
    let truncated = groups.len() > MAX_GROUPS_IN_METADATA;
    if truncated {
        groups.sort_by(|a, b| a.1.total_cmp(&b.1));
        let low = MAX_GROUPS_IN_METADATA / 2;
        let high = MAX_GROUPS_IN_METADATA - low;
        groups.drain(low..groups.len() - high);
    }
    let shown = groups.into_iter().map(|(name, value)| json!({"name": name, "value": go_number(value)})).collect();
    (Value::Array(shown), truncated)
}

/// A number as Go's `FormatFloat(f, 'f', -1)` shows it: whole numbers without `.0`.
fn go_number(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every integer below is exact in f64
    if f.fract() == 0.0 && f.abs() < EXACT {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::super::vendor_stub::{pairs, start};
    use super::*;
    use rollouts_core::analysis::condition::eval_condition;

    /// 2024-01-01T00:00:00Z.
    const NOW: i64 = 1_704_067_200;

    fn credentials(base: &str) -> Credentials {
        Credentials { address: base.to_string(), api_key: "the-api-key".to_string(), app_key: "the-app-key".to_string() }
    }

    fn v1_metric(query: &str) -> DatadogMetric {
        DatadogMetric { query: Some(query.to_string()), interval: Some("5m".to_string()), ..DatadogMetric::default() }
    }

    #[tokio::test]
    async fn v1_asks_the_query_api_with_both_keys_and_takes_the_last_point_of_the_first_series() {
        let stub = start(|_| {
            let body = json!({"status": "ok", "res_type": "time_series", "series": [
                {"metric": "trace.http.request.errors", "pointlist": [[1_704_066_900_000.0, 0.5], [1_704_067_200_000.0, 0.01]]},
                {"metric": "other", "pointlist": [[1_704_067_200_000.0, 99.0]]}
            ]});
            (200, body.to_string())
        })
        .await;
        let query = query_of(&v1_metric("sum:requests.error.rate{service:canary}")).unwrap();
        let answer = ask(&query, &credentials(&stub.base), NOW).await.unwrap();
        assert_eq!(answer, value_answer(json!(0.01)));
        assert!(eval_condition(&answer.value, "result < 0.05").unwrap());

        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/api/v1/query"));
        assert_eq!(
            r.query,
            pairs(&[("from", "1704066900"), ("query", "sum:requests.error.rate{service:canary}"), ("to", "1704067200")])
        );
        assert_eq!(r.header("dd-api-key"), Some("the-api-key"));
        assert_eq!(r.header("dd-application-key"), Some("the-app-key"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    #[tokio::test]
    async fn v1_a_failing_value_an_empty_series_and_error_statuses() {
        let stub = start(|r| match r.query.iter().find(|(k, _)| k == "query").map(|(_, v)| v.as_str()) {
            Some("high") => (200, json!({"series": [{"pointlist": [[1.0, 0.2], [2.0, 0.3]]}]}).to_string()),
            Some("empty") => (200, json!({"status": "ok", "series": []}).to_string()),
            Some("null-last") => (200, json!({"series": [{"pointlist": [[1.0, 0.2], [2.0, null]]}]}).to_string()),
            Some("forbidden") => (403, json!({"errors": ["Forbidden"]}).to_string()),
            _ => (500, json!({"errors": ["Internal error"]}).to_string()),
        })
        .await;
        let c = credentials(&format!("{}/", stub.base));
        let high = ask(&query_of(&v1_metric("high")).unwrap(), &c, NOW).await.unwrap();
        assert_eq!(high.value, json!(0.3));
        assert!(!eval_condition(&high.value, "result < 0.05").unwrap());
        assert_eq!(ask(&query_of(&v1_metric("empty")).unwrap(), &c, NOW).await.unwrap(), value_answer(Value::Null));
        assert_eq!(ask(&query_of(&v1_metric("null-last")).unwrap(), &c, NOW).await.unwrap(), value_answer(Value::Null));
        assert_eq!(
            ask(&query_of(&v1_metric("forbidden")).unwrap(), &c, NOW).await.unwrap_err(),
            r#"received authentication error response code: 403 {"errors":["Forbidden"]}"#
        );
        assert_eq!(
            ask(&query_of(&v1_metric("boom")).unwrap(), &c, NOW).await.unwrap_err(),
            r#"received non 2xx response code: 500 {"errors":["Internal error"]}"#
        );
        // The trailing slash of the address is not doubled.
        assert!(stub.seen().iter().all(|r| r.path == "/api/v1/query"));
    }

    fn v2_metric() -> DatadogMetric {
        DatadogMetric {
            api_version: Some("v2".to_string()),
            interval: Some("10m".to_string()),
            queries: Some(BTreeMap::from([
                ("a".to_string(), "sum:requests.errors{service:canary}.as_count()".to_string()),
                ("b".to_string(), "sum:requests.total{service:canary}.as_count()".to_string()),
            ])),
            formula: Some("a / b".to_string()),
            aggregator: Some("sum".to_string()),
            request_timeout: Some("30s".to_string()),
            ..DatadogMetric::default()
        }
    }

    #[tokio::test]
    async fn v2_posts_a_scalar_request_and_takes_the_first_number() {
        let stub = start(|_| {
            let body = json!({"data": {"type": "scalar_response", "attributes": {"columns": [
                {"name": "a / b", "type": "number", "values": [null, 0.02], "meta": {"unit": null}}
            ]}}});
            (200, body.to_string())
        })
        .await;
        let query = query_of(&v2_metric()).unwrap();
        assert_eq!(query.timeout, Duration::from_secs(30));
        let answer = ask(&query, &credentials(&stub.base), NOW).await.unwrap();
        assert_eq!(answer, value_answer(json!(0.02)));

        let seen = stub.seen();
        let r = &seen[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/v2/query/scalar"));
        assert!(r.query.is_empty());
        assert_eq!(r.header("dd-api-key"), Some("the-api-key"));
        assert_eq!(r.header("dd-application-key"), Some("the-app-key"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"data": {"type": "scalar_request", "attributes": {
                "from": 1_704_066_600_000_i64,
                "to": 1_704_067_200_000_i64,
                "queries": [
                    {"aggregator": "sum", "data_source": "metrics", "name": "a", "query": "sum:requests.errors{service:canary}.as_count()"},
                    {"aggregator": "sum", "data_source": "metrics", "name": "b", "query": "sum:requests.total{service:canary}.as_count()"}
                ],
                "formulas": [{"formula": "a / b"}]
            }}})
        );
    }

    #[tokio::test]
    async fn v2_a_single_query_is_named_query_with_the_last_aggregator_and_no_formula() {
        let stub = start(|_| (200, json!({"data": {"attributes": {"columns": []}}}).to_string())).await;
        let dd = DatadogMetric { api_version: Some("v2".to_string()), query: Some("avg:latency{*}".to_string()), ..DatadogMetric::default() };
        let answer = ask(&query_of(&dd).unwrap(), &credentials(&stub.base), NOW).await.unwrap();
        assert_eq!(answer, value_answer(Value::Null));
        let body: Value = serde_json::from_str(&stub.seen()[0].body).unwrap();
        assert_eq!(
            body["data"]["attributes"],
            json!({"from": 1_704_066_900_000_i64, "to": 1_704_067_200_000_i64, "formulas": [],
                   "queries": [{"aggregator": "last", "data_source": "metrics", "name": "query", "query": "avg:latency{*}"}]})
        );
    }

    #[tokio::test]
    async fn v2_grouped_answers_a_list_with_the_groups_in_metadata_and_errors_are_errors() {
        let stub = start(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            match body.pointer("/data/attributes/queries/0/query").and_then(Value::as_str) {
                Some("grouped") => (
                    200,
                    json!({"data": {"type": "scalar_response", "attributes": {"columns": [
                        {"name": "region", "type": "group", "values": [["us-east"], ["eu-west"], ["ap-south"]]},
                        {"name": "host", "type": "group", "values": [["a"], ["b"], ["c"]]},
                        {"name": "query", "type": "number", "values": [0.01, null, 0.09]}
                    ]}}})
                    .to_string(),
                ),
                Some("bad-query") => (200, json!({"data": {"attributes": {"columns": []}}, "errors": "unknown metric"}).to_string()),
                _ => (401, json!({"errors": ["Unauthorized"]}).to_string()),
            }
        })
        .await;
        let c = credentials(&stub.base);
        let v2 = |q: &str| DatadogMetric { api_version: Some("v2".to_string()), query: Some(q.to_string()), ..DatadogMetric::default() };
        let grouped = ask(&query_of(&v2("grouped")).unwrap(), &c, NOW).await.unwrap();
        assert_eq!(grouped.value, json!([0.01, 0.09]));
        assert_eq!(grouped.metadata["groups"], r#"[{"name":"us-east,a","value":0.01},{"name":"ap-south,c","value":0.09}]"#);
        assert!(!grouped.metadata.contains_key("groups_truncated"));
        assert!(!eval_condition(&grouped.value, "all(result, # < 0.05)").unwrap());
        assert_eq!(
            ask(&query_of(&v2("bad-query")).unwrap(), &c, NOW).await.unwrap_err(),
            "There were errors in your query: unknown metric"
        );
        assert_eq!(
            ask(&query_of(&v2("anything")).unwrap(), &c, NOW).await.unwrap_err(),
            r#"received authentication error response code: 401 {"errors":["Unauthorized"]}"#
        );
    }

    #[test]
    fn v2_many_groups_keep_the_lowest_and_highest_fifty() {
        let n = 150;
        let labels: Vec<Value> = (0..n).map(|i| json!([format!("h{i}")])).collect();
        let values: Vec<Value> = (0..n).map(|i| json!(f64::from(i))).collect();
        let body = json!({"data": {"attributes": {"columns": [
            {"name": "host", "type": "group", "values": labels},
            {"name": "q", "type": "number", "values": values}
        ]}}});
        let answer = v2_answer(&body).unwrap();
        assert_eq!(answer.value.as_array().unwrap().len(), 150);
        let groups: Vec<Value> = serde_json::from_str(&answer.metadata["groups"]).unwrap();
        assert_eq!(groups.len(), 100);
        assert_eq!(groups[49], json!({"name": "h49", "value": 49}));
        assert_eq!(groups[50], json!({"name": "h100", "value": 100}));
        assert_eq!(answer.metadata["groups_truncated"], "true");
        let bad_label = json!({"data": {"attributes": {"columns": [
            {"name": "host", "type": "group", "values": [[]]}, {"name": "q", "type": "number", "values": [1]}
        ]}}});
        assert_eq!(v2_answer(&bad_label).unwrap_err(), "could not parse group label at index 0");
    }

    #[test]
    fn specs_are_checked_with_argos_messages() {
        let err = |dd: DatadogMetric| query_of(&dd).unwrap_err();
        assert!(err(DatadogMetric::default()).starts_with("Must have either a query or queries."));
        let mut both = v2_metric();
        both.query = Some("q".to_string());
        assert!(err(both).starts_with("Cannot have both a query and queries."));
        let v1_queries = DatadogMetric { queries: v2_metric().queries, formula: Some("a+b".to_string()), ..DatadogMetric::default() };
        assert!(err(v1_queries).starts_with("Query is empty. API Version v1"));
        let no_formula = DatadogMetric { formula: None, ..v2_metric() };
        assert_eq!(err(no_formula), "When multiple queries are provided you must include a formula.");
        let v1_aggregator = DatadogMetric { aggregator: Some("avg".to_string()), ..v1_metric("q") };
        assert!(err(v1_aggregator).starts_with("Aggregator is not supported in v1."));
        let zero_timeout = DatadogMetric { request_timeout: Some("0s".to_string()), ..v1_metric("q") };
        assert!(err(zero_timeout).starts_with("Request timeout must be a positive duration"));
        let bad_timeout = DatadogMetric { request_timeout: Some("soon".to_string()), ..v1_metric("q") };
        assert!(err(bad_timeout).starts_with(r#"Could not parse the request timeout: time: invalid duration "soon""#));
        let v3 = DatadogMetric { api_version: Some("v3".to_string()), ..v1_metric("q") };
        assert!(err(v3).contains("unsupported Datadog apiVersion \"v3\""));
        // Defaults: v1, a 5 minute window, 10 s.
        let q = query_of(&DatadogMetric { query: Some("q".to_string()), ..DatadogMetric::default() }).unwrap();
        assert_eq!((q.version, q.interval_secs, q.timeout), (ApiVersion::V1, 300, Duration::from_secs(10)));
    }

    #[test]
    fn credentials_come_from_the_secret_ref_else_the_environment_else_the_datadog_secret() {
        let controller = |name: &str| Finder::Secret { namespace: None, name: name.to_string() };
        assert_eq!(finders(None, Some("apps")).unwrap(), vec![Finder::Environment, controller("datadog")]);
        assert_eq!(finders(Some(&json!({})), None).unwrap(), vec![Finder::Environment, controller("datadog")]);
        assert_eq!(finders(Some(&json!({"name": "dd-keys"})), Some("apps")).unwrap(), vec![controller("dd-keys")]);
        assert_eq!(
            finders(Some(&json!({"name": "dd-keys", "namespaced": true})), Some("apps")).unwrap(),
            vec![Finder::Secret { namespace: Some("apps".to_string()), name: "dd-keys".to_string() }]
        );
        assert_eq!(
            finders(Some(&json!({"namespaced": true})), Some("apps")).unwrap_err(),
            "secret name is required for namespaced credentials"
        );
        assert!(finders(Some(&json!({"name": "dd-keys", "namespaced": true})), None)
            .unwrap_err()
            .contains("does not know the run's namespace"));
    }

    #[test]
    fn the_environment_needs_all_three_variables_and_a_secret_both_keys() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let all = from_environment(env(&[("DD_API_KEY", "k"), ("DD_APP_KEY", "a"), ("DD_ADDRESS", "https://api.datadoghq.eu")])).unwrap();
        assert_eq!((all.api_key.as_str(), all.app_key.as_str(), all.address.as_str()), ("k", "a", "https://api.datadoghq.eu"));
        assert!(from_environment(env(&[("DD_API_KEY", "k"), ("DD_APP_KEY", "a")])).is_none());
        assert!(from_environment(env(&[("DD_API_KEY", ""), ("DD_APP_KEY", "a"), ("DD_ADDRESS", "")])).is_none());
        let secret = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let found = from_secret(&secret(&[("api-key", "k"), ("app-key", "a")])).unwrap();
        assert_eq!(found.address, "");
        assert!(from_secret(&secret(&[("api-key", "k")])).is_none());
        assert!(from_secret(&secret(&[("api-key", "k"), ("app-key", "")])).is_none());
    }

    #[tokio::test]
    async fn without_credentials_the_measurement_is_an_error_that_names_no_value() {
        let context = rollouts_core::analysis::run::MeasureContext::default();
        let now = std::time::UNIX_EPOCH + Duration::from_secs(NOW as u64);
        let ctx = Ctx::new(None, "argo-rollouts", now, &context);
        let dd = DatadogMetric { secret_ref: Some(json!({"name": "dd-keys"})), ..v1_metric("q") };
        let err = dd.measure(&ctx).await.unwrap_err();
        assert!(err.starts_with("failed to find the credentials for datadog metrics provider"), "{err}");
        assert!(err.contains("argo-rollouts/dd-keys"), "{err}");
    }
}
