//! `prometheus`: an instant query at the measurement's time. A scalar gives a number, a
//! vector or matrix the list of every sample value (NaN and ±Inf stay strings: JSON has no
//! number for them).

use rollouts_core::api::PrometheusMetric;
use serde_json::Value;

use super::http;
use super::{error_answer, Ctx, Measured, Provider};
use rollouts_core::analysis::run::MeasurementAnswer;

/// Environment variable Argo reads for a default Prometheus address.
pub const PROMETHEUS_ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

impl Provider for PrometheusMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        let p = self;
        if p.range_query.is_some() {
            return Err("prometheus rangeQuery is not supported by this controller".to_string());
        }
        let address = if p.address.is_empty() { std::env::var(PROMETHEUS_ADDRESS_ENV).unwrap_or_default() } else { p.address.clone() };
        if address.is_empty() {
            return Err(format!("prometheus address is not set (provider.prometheus.address or {PROMETHEUS_ADDRESS_ENV})"));
        }
        let client = http::client(http::timeout_secs(p.timeout, 30), p.insecure)?;
        let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
        let mut req = http::with_headers(client.get(&url).query(&[("query", p.query.as_str())]), &p.headers);
        if let Some(basic) = p.authentication.as_ref().and_then(|a| a.get("basicAuth")) {
            let user = basic.get("username").and_then(Value::as_str).unwrap_or_default();
            let password = basic.get("password").and_then(Value::as_str);
            req = req.basic_auth(user, password);
        }
        let body = http::send_json(req).await?;
        let mut answer = prometheus_answer(&body);
        answer.metadata.insert("ResolvedPrometheusQuery".to_string(), p.query.clone());
        Ok(answer)
    }
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
}
