//! `wavefront`: a query through Wavefront's chart API at the measurement's time, one point
//! per series at second granularity. Each series gives the point closest to that time: one
//! series is a number, several a list. Metadata `timestamps` and `drift` say which point
//! was taken and how far (seconds) it is from the measurement's time; `warnings` carries
//! Wavefront's.
//!
//! The API token is the value of the key named like the metric's `address` in the Secret
//! `wavefront-api-tokens` (controller's namespace).

use std::collections::BTreeMap;
use std::time::Duration;

use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::WavefrontMetric;
use serde_json::Value;

use super::http;
use super::{Ctx, Measured, Provider};

/// The Secret holding one API token per Wavefront address.
pub const TOKENS_SECRET: &str = "wavefront-api-tokens";
/// Argo's Wavefront client sets no timeout; a query never waits longer than this here.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The token for `address` among the Secret's values.
pub fn token_for(values: &BTreeMap<String, String>, address: &str) -> Result<String, String> {
    values.get(address).cloned().ok_or_else(|| "API token not found".to_string())
}

/// The API's base URL for an address: Wavefront's client always uses `https://<address>`;
/// an address that already names its scheme is taken as it is.
pub fn base_url(address: &str) -> String {
    let address = address.trim_end_matches('/');
    if address.contains("://") {
        address.to_string()
    } else {
        format!("https://{address}")
    }
}

impl Provider for WavefrontMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let Some(values) = ctx.secret(None, TOKENS_SECRET).await? else {
            return Err(format!("secrets \"{TOKENS_SECRET}\" not found in namespace {}", ctx.controller_namespace()));
        };
        let token = token_for(&values, &self.address)?;
        ask(&base_url(&self.address), &token, &self.query, ctx.now_jiff().as_second()).await
    }
}

/// Queries at `now` (Unix seconds), as Argo does: start = end = now, at most one point,
/// series outside the window included (otherwise a one-instant window is mostly empty).
pub async fn ask(base: &str, token: &str, query: &str, now: i64) -> Measured {
    let client = http::client(HTTP_TIMEOUT, false)?;
    let millis = now.saturating_mul(1000).to_string();
    // Wavefront's Go client always sends its boolean parameters; names sorted as Go encodes them.
    let params = [
        ("autoEvents", "false"),
        ("e", millis.as_str()),
        ("g", "s"),
        ("i", "true"),
        ("includeObsoleteMetrics", "false"),
        ("listmode", "false"),
        ("p", "1"),
        ("q", query),
        ("s", millis.as_str()),
        ("strict", "false"),
    ];
    let req = client
        .get(format!("{base}/api/v2/chart/api"))
        .query(&params)
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", "application/json");
    let (status, text) = http::send_text(req).await?;
    if status != 200 {
        let reason = ::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or_default();
        return Err(format!("server returned {status} {reason}\n{}", text.trim_end()));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("could not parse the Wavefront response: {e}"))?;
    Ok(wavefront_answer(&body, now))
}

/// Reads a chart API response for a measurement taken at `start` (Unix seconds).
pub fn wavefront_answer(body: &Value, start: i64) -> MeasurementAnswer {
    let mut answer = MeasurementAnswer::default();
    if let Some(w) = body.get("warnings").and_then(Value::as_str).filter(|w| !w.is_empty()) {
        answer.metadata.insert("warnings".to_string(), w.to_string());
    }
    let series = body.get("timeseries").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut picked = Vec::new();
    for (i, s) in series.iter().enumerate() {
        match closest_point(s.get("data").and_then(Value::as_array).map_or(&[][..], Vec::as_slice), start) {
            Some(p) => picked.push(p),
            // Divergence: Argo reads a series without points as the value 0 at time 0.
            None => {
                answer.error = Some(format!("Wavefront series {i} has no data points"));
                return answer;
            }
        }
    }
    let number = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match picked.as_slice() {
        [] => {
            let detail = body.get("errorMessage").and_then(Value::as_str).filter(|m| !m.is_empty());
            answer.error = Some(match detail {
                Some(m) => format!("No TimeSeries found in response from Wavefront: {m}"),
                None => "No TimeSeries found in response from Wavefront".to_string(),
            });
        }
        [p] => {
            answer.value = number(p.value);
            answer.metadata.insert("timestamps".to_string(), p.time.to_string());
            answer.metadata.insert("drift".to_string(), p.drift.to_string());
        }
        many => {
            let list = |f: fn(&Point) -> i64| format!("[{}]", many.iter().map(|p| f(p).to_string()).collect::<Vec<_>>().join(","));
            answer.value = Value::Array(many.iter().map(|p| number(p.value)).collect());
            answer.metadata.insert("timestamps".to_string(), list(|p| p.time));
            answer.metadata.insert("drift".to_string(), list(|p| p.drift));
        }
    }
    answer
}

/// The point of a series taken for a measurement.
struct Point {
    value: f64,
    /// Its time, Unix seconds.
    time: i64,
    /// Its time minus the measurement's, seconds.
    drift: i64,
}

/// The `[time, value]` point closest to `start` (the first of equally close ones).
fn closest_point(points: &[Value], start: i64) -> Option<Point> {
    let mut best: Option<(f64, Point)> = None;
    for p in points {
        let (Some(time), Some(value)) = (p.get(0).and_then(Value::as_f64), p.get(1).and_then(Value::as_f64)) else {
            continue;
        };
        let delta = time - start as f64;
        if best.as_ref().is_none_or(|(d, _)| delta.abs() < d.abs()) {
            best = Some((delta, Point { value, time: time as i64, drift: delta as i64 }));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::super::vendor_stub::{pairs, start};
    use super::*;
    use rollouts_core::analysis::condition::eval_condition;
    use serde_json::json;

    /// 2024-01-01T00:00:00Z.
    const NOW: i64 = 1_704_067_200;

    #[tokio::test]
    async fn one_series_gives_the_point_closest_to_now_and_the_request_is_the_chart_apis() {
        let stub = start(|_| {
            let body = json!({
                "name": "ts(http.errors.rate)", "query": "ts(http.errors.rate)", "granularity": 1,
                "timeseries": [{"label": "http.errors.rate", "host": "canary", "tags": {"env": "prod"},
                                "data": [[1_704_067_140.0, 0.5], [1_704_067_195.0, 0.02], [1_704_067_260.0, 0.9]]}],
                "stats": {"keys": 3}, "warnings": "the query was slow"
            });
            (200, body.to_string())
        })
        .await;
        let answer = ask(&stub.base, "wf-token", "ts(http.errors.rate, env=prod)", NOW).await.unwrap();
        assert_eq!(answer.value, json!(0.02));
        assert_eq!(answer.error, None);
        assert_eq!(answer.metadata["timestamps"], "1704067195");
        assert_eq!(answer.metadata["drift"], "-5");
        assert_eq!(answer.metadata["warnings"], "the query was slow");
        assert!(eval_condition(&answer.value, "result < 0.05").unwrap());

        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/api/v2/chart/api"));
        assert_eq!(
            r.query,
            pairs(&[
                ("autoEvents", "false"),
                ("e", "1704067200000"),
                ("g", "s"),
                ("i", "true"),
                ("includeObsoleteMetrics", "false"),
                ("listmode", "false"),
                ("p", "1"),
                ("q", "ts(http.errors.rate, env=prod)"),
                ("s", "1704067200000"),
                ("strict", "false"),
            ])
        );
        assert_eq!(r.header("authorization"), Some("Bearer wf-token"));
        assert_eq!(r.header("accept"), Some("application/json"));
    }

    #[tokio::test]
    async fn several_series_a_failing_value_no_series_and_an_error_status() {
        let stub = start(|r| match r.query.iter().find(|(k, _)| k == "q").map(|(_, v)| v.as_str()) {
            Some("many") => (
                200,
                json!({"timeseries": [
                    {"label": "a", "data": [[1_704_067_210.0, 0.2]]},
                    {"label": "b", "data": [[1_704_067_100.0, 0.01], [1_704_067_190.0, 0.03]]}
                ]})
                .to_string(),
            ),
            Some("none") => (200, json!({"timeseries": [], "warnings": "no such metric"}).to_string()),
            _ => (400, r#"{"errorType":"SYNTAX","errorMessage":"bad query"}"#.to_string()),
        })
        .await;
        let many = ask(&stub.base, "t", "many", NOW).await.unwrap();
        assert_eq!(many.value, json!([0.2, 0.03]));
        assert_eq!(many.metadata["timestamps"], "[1704067210,1704067190]");
        assert_eq!(many.metadata["drift"], "[10,-10]");
        assert!(!eval_condition(&many.value, "all(result, # < 0.05)").unwrap());
        let none = ask(&stub.base, "t", "none", NOW).await.unwrap();
        assert_eq!(none.error.as_deref(), Some("No TimeSeries found in response from Wavefront"));
        assert_eq!(none.metadata["warnings"], "no such metric");
        assert_eq!(
            ask(&stub.base, "t", "bad(", NOW).await.unwrap_err(),
            "server returned 400 Bad Request\n{\"errorType\":\"SYNTAX\",\"errorMessage\":\"bad query\"}"
        );
    }

    #[test]
    fn the_token_is_the_key_named_like_the_address() {
        let values = BTreeMap::from([("example.wavefront.com".to_string(), "tok".to_string())]);
        assert_eq!(token_for(&values, "example.wavefront.com").unwrap(), "tok");
        assert_eq!(token_for(&values, "other.wavefront.com").unwrap_err(), "API token not found");
        assert_eq!(base_url("example.wavefront.com"), "https://example.wavefront.com");
        assert_eq!(base_url("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
    }

    #[tokio::test]
    async fn offline_the_tokens_secret_cannot_be_read() {
        let context = rollouts_core::analysis::run::MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", std::time::UNIX_EPOCH, &context);
        let metric = WavefrontMetric { address: "example.wavefront.com".to_string(), query: "ts(x)".to_string() };
        let err = metric.measure(&ctx).await.unwrap_err();
        assert!(err.contains("argo-rollouts/wavefront-api-tokens"), "{err}");
    }
}
