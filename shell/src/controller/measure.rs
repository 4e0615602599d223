//! Metric providers: the shell takes the measurements the core asks for
//! (`Action::Measure`) and reports each answer as `Event::Measured`.
//!
//! Prometheus (instant queries) and web are spoken here; other providers answer with an
//! error naming them. Secret arguments are read from Secrets in the run's namespace just
//! before the request and redacted (`*****`) from everything the answer carries back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::{MetricProvider, PrometheusMetric, SecretKeyRef, WebMetric, WebMetricHeader};
use rollouts_core::secrets::{self, SecretValues};
use serde_json::Value;

/// Environment variable Argo reads for a default Prometheus address.
const PROMETHEUS_ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Takes one measurement.
pub async fn measure(
    client: &Client,
    namespace: &str,
    provider: &MetricProvider,
    secrets: &BTreeMap<String, SecretKeyRef>,
) -> MeasurementAnswer {
    let values = match read_secrets(client, namespace, secrets).await {
        Ok(v) => v,
        Err(message) => return MeasurementAnswer { args_error: Some(message), ..MeasurementAnswer::default() },
    };
    let provider = match values.substitute(provider) {
        Ok(p) => p,
        Err(message) => return error_answer(message),
    };
    let answer = if let Some(p) = &provider.prometheus {
        prometheus(p).await
    } else if let Some(w) = &provider.web {
        web(w).await
    } else {
        let kind = provider.kinds().first().map(|k| format!("{k:?}")).unwrap_or_else(|| "none".to_string());
        error_answer(format!("metric provider {kind} is not supported by this controller"))
    };
    values.redact(answer)
}

fn error_answer(message: String) -> MeasurementAnswer {
    MeasurementAnswer { error: Some(message), ..MeasurementAnswer::default() }
}

/// Reads the Secrets the arguments name and resolves the arguments through the core. The
/// error names the argument or the Secret, never a value.
async fn read_secrets(
    client: &Client,
    namespace: &str,
    refs: &BTreeMap<String, SecretKeyRef>,
) -> Result<SecretValues, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut found = BTreeMap::new();
    for name in secrets::secret_names(refs) {
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                found.insert(name, secret);
            }
            // Reported by the core, in Argo's words.
            Ok(None) => {}
            Err(e) => return Err(format!("failed to read secret {name:?}: {}", status_message(&e))),
        }
    }
    secrets::resolve(refs, &found).map_err(|e| e.to_string())
}

fn status_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn http_client(timeout: Duration, insecure: bool) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot build an HTTP client: {e}"))
}

fn with_headers(mut req: reqwest::RequestBuilder, headers: &[WebMetricHeader]) -> reqwest::RequestBuilder {
    for h in headers {
        req = req.header(&h.key, &h.value);
    }
    req
}

/// An instant Prometheus query: a scalar gives a number, a vector or matrix the list of
/// every sample value.
async fn prometheus(p: &PrometheusMetric) -> MeasurementAnswer {
    if p.range_query.is_some() {
        return error_answer("prometheus rangeQuery is not supported by this controller".to_string());
    }
    let address = if p.address.is_empty() { std::env::var(PROMETHEUS_ADDRESS_ENV).unwrap_or_default() } else { p.address.clone() };
    if address.is_empty() {
        return error_answer(format!("prometheus address is not set (provider.prometheus.address or {PROMETHEUS_ADDRESS_ENV})"));
    }
    let timeout = Duration::from_secs(p.timeout.filter(|t| *t > 0).map_or(30, |t| t.unsigned_abs()));
    let client = match http_client(timeout, p.insecure) {
        Ok(c) => c,
        Err(e) => return error_answer(e),
    };
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let mut req = with_headers(client.get(&url).query(&[("query", p.query.as_str())]), &p.headers);
    if let Some(basic) = p.authentication.as_ref().and_then(|a| a.get("basicAuth")) {
        let user = basic.get("username").and_then(Value::as_str).unwrap_or_default();
        let password = basic.get("password").and_then(Value::as_str);
        req = req.basic_auth(user, password);
    }
    let body: Value = match send_json(req).await {
        Ok(b) => b,
        Err(e) => return error_answer(e),
    };
    let mut answer = prometheus_answer(&body);
    answer.metadata.insert("ResolvedPrometheusQuery".to_string(), p.query.clone());
    answer
}

/// Reads a Prometheus query API response.
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
    let mut answer = match data.get("resultType").and_then(Value::as_str) {
        Some("scalar") => MeasurementAnswer { value: sample(&result), ..MeasurementAnswer::default() },
        Some("vector") => MeasurementAnswer {
            value: Value::Array(result.as_array().into_iter().flatten().map(|r| sample(r.get("value").unwrap_or(&Value::Null))).collect()),
            ..MeasurementAnswer::default()
        },
        Some("matrix") => MeasurementAnswer {
            value: Value::Array(
                result
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| r.get("values").and_then(Value::as_array).cloned().unwrap_or_default())
                    .map(|v| sample(&v))
                    .collect(),
            ),
            ..MeasurementAnswer::default()
        },
        other => error_answer(format!("Prometheus metric type not supported: {}", other.unwrap_or("none"))),
    };
    if let Some(w) = body.get("warnings").and_then(Value::as_array).filter(|w| !w.is_empty()) {
        answer.metadata.insert("warnings".to_string(), Value::Array(w.clone()).to_string());
    }
    answer
}

async fn send_json(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.without_url().to_string())?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Ok(v),
        Err(_) if !status.is_success() => Err(format!("received non 2xx response code: {}", status.as_u16())),
        Err(e) => Err(format!("could not parse JSON body: {e}")),
    }
}

/// An HTTP request; the first match of `jsonPath` in a JSON body (or the body text) is the result.
async fn web(w: &WebMetric) -> MeasurementAnswer {
    let timeout = Duration::from_secs(w.timeout_seconds.filter(|t| *t > 0).map_or(10, |t| t.unsigned_abs()));
    let client = match http_client(timeout, w.insecure) {
        Ok(c) => c,
        Err(e) => return error_answer(e),
    };
    let method = w.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let method = match method.as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        other => return error_answer(format!("unsupported web metric method {other:?}")),
    };
    let mut req = with_headers(client.request(method, &w.url), &w.headers);
    if let Some(body) = &w.json_body {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    } else if let Some(body) = &w.body {
        req = req.body(body.clone());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return error_answer(e.without_url().to_string()),
    };
    let status = resp.status();
    if !status.is_success() {
        return error_answer(format!("received non 2xx response code: {}", status.as_u16()));
    }
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return error_answer(e.without_url().to_string()),
    };
    web_answer(&text, w.json_path.as_deref())
}

/// The result of a web metric's body: the first match of the JSONPath (Kubernetes style,
/// `{$.data.ok}`) in a JSON body, or the body text when it is not JSON.
pub fn web_answer(body: &str, json_path: Option<&str>) -> MeasurementAnswer {
    let Ok(doc) = serde_json::from_str::<Value>(body) else {
        return MeasurementAnswer { value: Value::String(body.to_string()), ..MeasurementAnswer::default() };
    };
    let path = json_path.unwrap_or("{$}").trim();
    let inner = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path).trim();
    let inner = if inner.starts_with('$') { inner.to_string() } else { format!("$.{}", inner.trim_start_matches('.')) };
    let parsed = match serde_json_path::JsonPath::parse(&inner) {
        Ok(p) => p,
        Err(e) => return error_answer(format!("invalid jsonPath {path:?}: {e}")),
    };
    match parsed.query(&doc).first() {
        Some(v) => MeasurementAnswer { value: v.clone(), ..MeasurementAnswer::default() },
        None => error_answer(format!("jsonPath {path:?} matched nothing in the response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prometheus_vectors_give_every_sample_and_scalars_a_number() {
        let vector = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, "0.97"]}, {"metric": {}, "value": [1.0, "1"]}
        ]}});
        assert_eq!(prometheus_answer(&vector).value, json!([0.97, 1.0]));
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}});
        assert_eq!(prometheus_answer(&scalar).value, json!(0.5));
        let nan = json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1.0, "NaN"]}]}});
        assert_eq!(prometheus_answer(&nan).value, json!(["NaN"]));
        let failed = json!({"status": "error", "error": "parse error at char 3"});
        assert_eq!(prometheus_answer(&failed).error.as_deref(), Some("prometheus query failed: parse error at char 3"));
        let string = json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}});
        assert!(prometheus_answer(&string).error.unwrap().contains("not supported: string"));
    }

    #[test]
    fn web_bodies_are_read_with_kubernetes_jsonpath() {
        let body = r#"{"data": {"ok": true, "successPercent": 0.95}}"#;
        assert_eq!(web_answer(body, Some("{$.data.ok}")).value, json!(true));
        assert_eq!(web_answer(body, Some("{$.data}")).value, json!({"ok": true, "successPercent": 0.95}));
        assert_eq!(web_answer(body, None).value, json!({"data": {"ok": true, "successPercent": 0.95}}));
        assert_eq!(web_answer("plain text", Some("{$.x}")).value, json!("plain text"));
        assert!(web_answer(body, Some("{$.missing}")).error.unwrap().contains("matched nothing"));
    }
}
