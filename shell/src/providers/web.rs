//! `web`: an HTTP request; the first match of `jsonPath` in a JSON body (or the body text
//! when it is not JSON) is the result.

use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::WebMetric;
use serde_json::Value;

use super::http;
use super::{error_answer, Ctx, Measured, Provider};

impl Provider for WebMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        let w = self;
        let client = http::client(http::timeout_secs(w.timeout_seconds, 10), w.insecure)?;
        let method = w.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let method = match method.as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            other => return Err(format!("unsupported web metric method {other:?}")),
        };
        let mut req = http::with_headers(client.request(method, &w.url), &w.headers);
        if let Some(body) = &w.json_body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        } else if let Some(body) = &w.body {
            req = req.body(body.clone());
        }
        let (status, text) = http::send_text(req).await?;
        if !(200..300).contains(&status) {
            return Err(format!("received non 2xx response code: {status}"));
        }
        Ok(web_answer(&text, w.json_path.as_deref()))
    }
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
    fn web_bodies_are_read_with_kubernetes_jsonpath() {
        let body = r#"{"data": {"ok": true, "successPercent": 0.95}}"#;
        assert_eq!(web_answer(body, Some("{$.data.ok}")).value, json!(true));
        assert_eq!(web_answer(body, Some("{$.data}")).value, json!({"ok": true, "successPercent": 0.95}));
        assert_eq!(web_answer(body, None).value, json!({"data": {"ok": true, "successPercent": 0.95}}));
        assert_eq!(web_answer("plain text", Some("{$.x}")).value, json!("plain text"));
        assert!(web_answer(body, Some("{$.missing}")).error.unwrap().contains("matched nothing"));
    }
}
