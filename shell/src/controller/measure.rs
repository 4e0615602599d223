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
use serde_json::Value;

/// How secret values appear in anything the controller reports.
pub const REDACTED: &str = "*****";

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
    let provider = match substitute(provider, &values) {
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
    redact(answer, values.values())
}

fn error_answer(message: String) -> MeasurementAnswer {
    MeasurementAnswer { error: Some(message), ..MeasurementAnswer::default() }
}

/// Reads each secret argument's value. The error names the argument and the Secret, never a value.
async fn read_secrets(
    client: &Client,
    namespace: &str,
    secrets: &BTreeMap<String, SecretKeyRef>,
) -> Result<BTreeMap<String, String>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for (arg, r) in secrets {
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("failed to read secret {:?} for argument {arg:?}: {}", r.name, status_message(&e)))?
            .ok_or_else(|| format!("secret \"{}\" not found", r.name))?;
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(&r.key)).cloned())
            .ok_or_else(|| format!("key \"{}\" not found in secret \"{}\"", r.key, r.name))?;
        out.insert(arg.clone(), value);
    }
    Ok(out)
}

fn status_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Puts secret values in for their `{{args.<name>}}` placeholders, in every string of the
/// provider spec.
fn substitute(provider: &MetricProvider, values: &BTreeMap<String, String>) -> Result<MetricProvider, String> {
    if values.is_empty() {
        return Ok(provider.clone());
    }
    let mut v = serde_json::to_value(provider).map_err(|e| e.to_string())?;
    fn walk(v: &mut Value, values: &BTreeMap<String, String>) {
        match v {
            Value::String(s) => {
                for (name, value) in values {
                    for placeholder in [format!("{{{{args.{name}}}}}"), format!("{{{{ args.{name} }}}}")] {
                        if s.contains(&placeholder) {
                            *s = s.replace(&placeholder, value);
                        }
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, values)),
            Value::Object(m) => m.values_mut().for_each(|v| walk(v, values)),
            _ => {}
        }
    }
    walk(&mut v, values);
    serde_json::from_value(v).map_err(|e| format!("the provider does not decode after substituting secrets: {e}"))
}

/// Replaces every secret value in what the answer carries back.
fn redact<'a>(mut answer: MeasurementAnswer, secrets: impl Iterator<Item = &'a String> + Clone) -> MeasurementAnswer {
    let scrub = |s: &str| -> String {
        let mut out = s.to_string();
        for secret in secrets.clone().filter(|s| !s.is_empty()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
        out
    };
    fn scrub_value(v: &mut Value, scrub: &dyn Fn(&str) -> String) {
        match v {
            Value::String(s) => *s = scrub(s),
            Value::Array(a) => a.iter_mut().for_each(|v| scrub_value(v, scrub)),
            Value::Object(m) => m.values_mut().for_each(|v| scrub_value(v, scrub)),
            _ => {}
        }
    }
    answer.error = answer.error.map(|e| scrub(&e));
    answer.args_error = answer.args_error.map(|e| scrub(&e));
    answer.metadata = answer.metadata.into_iter().map(|(k, v)| (k, scrub(&v))).collect();
    scrub_value(&mut answer.value, &scrub);
    answer
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

    #[test]
    fn secrets_are_substituted_and_never_come_back() {
        let provider: MetricProvider = serde_json::from_value(json!({"web": {
            "url": "http://127.0.0.1:1/check?token={{args.api-token}}",
            "headers": [{"key": "Authorization", "value": "Bearer {{args.api-token}}"}]
        }}))
        .unwrap();
        let values = BTreeMap::from([("api-token".to_string(), "s3cr3t".to_string())]);
        let p = substitute(&provider, &values).unwrap();
        let w = p.web.unwrap();
        assert_eq!(w.url, "http://127.0.0.1:1/check?token=s3cr3t");
        assert_eq!(w.headers[0].value, "Bearer s3cr3t");
        let answer = MeasurementAnswer {
            value: json!({"echo": "token=s3cr3t"}),
            error: Some("GET http://x/?token=s3cr3t failed".into()),
            metadata: BTreeMap::from([("url".to_string(), "s3cr3t".to_string())]),
            ..MeasurementAnswer::default()
        };
        let redacted = redact(answer, values.values());
        let text = serde_json::to_string(&redacted).unwrap();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains(REDACTED));
    }
}
