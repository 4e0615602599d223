//! `skywalking`: a GraphQL query to SkyWalking's OAP server, with the variable `duration`
//! covering the metric's `interval` up to the measurement's time, by the minute. The
//! response's `data` is the result.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rollouts_core::api::SkyWalkingMetric;
use rollouts_core::time::parse_go_duration;
use serde_json::{json, Value};

use super::{http, value_answer, Ctx, Measured, Provider};

/// Argo's whole-request timeout for SkyWalking.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Go's layout `2006-01-02 1504`, the time format of SkyWalking's `Duration` input at
/// `MINUTE` step.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H%M";

/// The `Content-Type` and `Accept` Argo's GraphQL client sends.
const JSON_UTF8: &str = "application/json; charset=utf-8";

impl Provider for SkyWalkingMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let interval = window(self.interval.as_deref())?;
        // Argo formats the times in the controller's local time zone (Go's time.Now()).
        let duration = duration_variable(ctx.now_jiff(), interval, &TimeZone::system())?;
        ask(&self.address, &self.query, duration).await
    }
}

/// The query window: `interval` as a Go duration (Argo requires it).
pub fn window(interval: Option<&str>) -> Result<SignedDuration, String> {
    let nanos = parse_go_duration(interval.unwrap_or_default()).map_err(|e| format!("provider.skywalking.interval: {e}"))?;
    Ok(SignedDuration::from_nanos(nanos))
}

/// The `duration` variable: `{start: now - interval, end: now, step: MINUTE}`, the times in
/// `tz` formatted as Go's `2006-01-02 1504`.
pub fn duration_variable(now: Timestamp, interval: SignedDuration, tz: &TimeZone) -> Result<Value, String> {
    let start = now.checked_sub(interval).map_err(|e| format!("provider.skywalking.interval: the window start is out of range: {e}"))?;
    let format = |t: Timestamp| t.to_zoned(tz.clone()).strftime(TIME_FORMAT).to_string();
    Ok(json!({"start": format(start), "end": format(now), "step": "MINUTE"}))
}

/// POSTs the query with the `duration` variable to `<address>/graphql` and reads the answer.
pub async fn ask(address: &str, query: &str, duration: Value) -> Measured {
    // Argo appends `/graphql` as is; a trailing slash on the address is not doubled here.
    let endpoint = format!("{}/graphql", address.trim_end_matches('/'));
    let url = reqwest::Url::parse(&endpoint)
        .ok()
        .filter(|u| !address.is_empty() && !u.cannot_be_a_base())
        .ok_or_else(|| format!("SkyWalking address {address:?} is not a valid URL (provider.skywalking.address)"))?;
    let body = json!({"query": query, "variables": {"duration": duration}});
    let req =
        http::client(TIMEOUT, false)?.post(url).header("Content-Type", JSON_UTF8).header("Accept", JSON_UTF8).body(format!("{body}\n"));
    let (status, text) = http::send_text(req).await?;
    graphql_answer(status, &text)
}

/// A GraphQL response as Argo's client reads it: the first error wins (`graphql: <message>`);
/// else `data` is the result, and a missing or null `data` is an error. Like Argo's client,
/// the status code is not looked at when the body is a GraphQL response.
pub fn graphql_answer(status: u16, body: &str) -> Measured {
    let decoding = |why: String| {
        if (200..300).contains(&status) {
            format!("decoding response: {why}")
        } else {
            format!("decoding response: {why} (HTTP status {status})")
        }
    };
    // Go's json.Decoder reads the first value and ignores what follows it.
    let doc = match serde_json::Deserializer::from_str(body).into_iter::<Value>().next() {
        Some(Ok(doc)) => doc,
        Some(Err(e)) => return Err(decoding(e.to_string())),
        None => return Err(decoding("empty body".to_string())),
    };
    let (data, errors) = match &doc {
        Value::Object(o) => (o.get("data"), o.get("errors")),
        Value::Null => (None, None),
        other => return Err(decoding(format!("expected a GraphQL response object, got {other}"))),
    };
    match errors {
        None | Some(Value::Null) => {}
        Some(Value::Array(errors)) => {
            if let Some(first) = errors.first() {
                let message = first.get("message").and_then(Value::as_str).unwrap_or_default();
                return Err(format!("graphql: {message}"));
            }
        }
        Some(other) => return Err(decoding(format!("errors is {other}, not a list"))),
    }
    match data {
        None | Some(Value::Null) => Err("no results returned from SkyWalking query".to_string()),
        Some(data) => Ok(value_answer(data.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vendor_stub::start_typed as start;
    use rollouts_core::analysis::condition::eval_condition;
    use rollouts_core::analysis::run::MeasureContext;
    use std::time::SystemTime;

    /// Argo's documented query.
    const QUERY: &str = "query queryData($duration: Duration!) {\n  service_apdex: readMetricsValues(\n    condition: { name: \"service_apdex\", entity: { scope: Service, serviceName: \"checkout\", normal: true } },\n    duration: $duration) {\n      label values { values { value } }\n    }\n}\n";
    /// Argo's documented condition, with `#.value` for its `.value` (the core's expression
    /// language does not read the `.field` shorthand inside a predicate yet).
    const CONDITION: &str = "all(result.service_apdex.values.values, {asFloat(#.value) >= 9900})";
    /// 2024-03-01T12:34:56Z.
    const NOW: u64 = 1_709_296_496;

    fn metric(address: &str, query: &str) -> SkyWalkingMetric {
        SkyWalkingMetric { address: address.to_string(), query: query.to_string(), interval: Some("3m".to_string()) }
    }

    async fn measure(m: &SkyWalkingMetric) -> Measured {
        let context = MeasureContext::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
        m.measure(&Ctx::new(None, "argo-rollouts", now, &context)).await
    }

    fn apdex(values: &[i64]) -> String {
        let values: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
        json!({"data": {"service_apdex": {"label": null, "values": {"values": values}}}}).to_string()
    }

    #[test]
    fn the_window_is_the_interval_up_to_now_in_go_layout() {
        let now = Timestamp::from_second(i64::try_from(NOW).unwrap()).unwrap();
        let utc = duration_variable(now, window(Some("3m")).unwrap(), &TimeZone::UTC).unwrap();
        assert_eq!(utc, json!({"start": "2024-03-01 1231", "end": "2024-03-01 1234", "step": "MINUTE"}));
        let india = TimeZone::fixed(jiff::tz::offset(5)).to_owned();
        let shifted = duration_variable(now, window(Some("1h30m")).unwrap(), &india).unwrap();
        assert_eq!(shifted, json!({"start": "2024-03-01 1604", "end": "2024-03-01 1734", "step": "MINUTE"}));
        // Across midnight and the year.
        let new_year = Timestamp::from_second(1_704_067_260).unwrap();
        let across = duration_variable(new_year, window(Some("5m")).unwrap(), &TimeZone::UTC).unwrap();
        assert_eq!(across, json!({"start": "2023-12-31 2356", "end": "2024-01-01 0001", "step": "MINUTE"}));
        assert_eq!(window(None).unwrap_err(), r#"provider.skywalking.interval: time: invalid duration """#);
        assert_eq!(window(Some("3")).unwrap_err(), r#"provider.skywalking.interval: time: missing unit in duration "3""#);
    }

    #[test]
    fn graphql_answers_read_as_argos_client_reads_them() {
        assert_eq!(graphql_answer(200, r#"{"data": {"a": 1}}"#).unwrap().value, json!({"a": 1}));
        assert_eq!(graphql_answer(200, r#"{"data": [1, 2]} trailing"#).unwrap().value, json!([1, 2]));
        assert_eq!(graphql_answer(200, r#"{"data": null}"#).unwrap_err(), "no results returned from SkyWalking query");
        assert_eq!(graphql_answer(200, "{}").unwrap_err(), "no results returned from SkyWalking query");
        assert_eq!(graphql_answer(200, "null").unwrap_err(), "no results returned from SkyWalking query");
        assert_eq!(
            graphql_answer(200, r#"{"data": {"a": 1}, "errors": [{"message": "Field 'x' is undefined"}, {"message": "second"}]}"#)
                .unwrap_err(),
            "graphql: Field 'x' is undefined"
        );
        assert_eq!(graphql_answer(200, r#"{"data": {"a": 1}, "errors": []}"#).unwrap().value, json!({"a": 1}));
        assert!(graphql_answer(200, "[1]").unwrap_err().starts_with("decoding response: expected a GraphQL response object"));
        assert_eq!(graphql_answer(502, "").unwrap_err(), "decoding response: empty body (HTTP status 502)");
        assert!(graphql_answer(500, "<html>").unwrap_err().ends_with("(HTTP status 500)"));
    }

    #[tokio::test]
    async fn a_graphql_post_with_the_duration_and_conditions_on_the_data() {
        let double = start(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            match body.pointer("/query").and_then(Value::as_str) {
                Some(QUERY) => (200, "application/json", apdex(&[9950, 10000])),
                Some("failing") => (200, "application/json", apdex(&[9950, 7000])),
                _ => (400, "application/json", json!({"errors": [{"message": "unexpected request"}]}).to_string()),
            }
        })
        .await;
        let passing = measure(&metric(&double.base, QUERY)).await.unwrap();
        assert_eq!(passing.value, json!({"service_apdex": {"label": null, "values": {"values": [{"value": 9950}, {"value": 10000}]}}}));
        assert!(eval_condition(&passing.value, CONDITION).unwrap());

        let seen = double.only();
        assert_eq!((seen.method.as_str(), seen.path.as_str(), seen.raw_query.as_deref()), ("POST", "/graphql", None));
        assert_eq!(seen.header("content-type"), Some(JSON_UTF8));
        assert_eq!(seen.header("accept"), Some(JSON_UTF8));
        let now = Timestamp::from_second(i64::try_from(NOW).unwrap()).unwrap();
        let expected = duration_variable(now, SignedDuration::from_mins(3), &TimeZone::system()).unwrap();
        let body: Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(body, json!({"query": QUERY, "variables": {"duration": expected}}));

        let failing = measure(&metric(&format!("{}/", double.base), "failing")).await.unwrap();
        assert!(!eval_condition(&failing.value, CONDITION).unwrap());
        assert_eq!(double.seen()[1].path, "/graphql");
    }

    #[tokio::test]
    async fn errors_from_the_server_the_spec_and_the_transport() {
        let double = start(|r| match serde_json::from_str::<Value>(&r.body).unwrap_or_default()["query"].as_str() {
            Some("nothing") => (200, "application/json", r#"{"data": null}"#.to_string()),
            Some("invalid") => {
                (200, "application/json", r#"{"errors": [{"message": "Validation error of type FieldUndefined"}]}"#.to_string())
            }
            _ => (502, "text/html", "<html>Bad Gateway</html>".to_string()),
        })
        .await;
        let err = |q: &'static str| {
            let m = metric(&double.base, q);
            async move { measure(&m).await.unwrap_err() }
        };
        assert_eq!(err("nothing").await, "no results returned from SkyWalking query");
        assert_eq!(err("invalid").await, "graphql: Validation error of type FieldUndefined");
        assert!(err("down").await.starts_with("decoding response: "));
        let no_interval = SkyWalkingMetric { interval: None, ..metric(&double.base, "nothing") };
        assert_eq!(measure(&no_interval).await.unwrap_err(), r#"provider.skywalking.interval: time: invalid duration """#);
        assert_eq!(
            measure(&metric("", "q")).await.unwrap_err(),
            r#"SkyWalking address "" is not a valid URL (provider.skywalking.address)"#
        );
        let closed = format!("http://127.0.0.1:{}", crate::providers::vendor_stub::closed_port());
        assert!(!measure(&metric(&closed, "q")).await.unwrap_err().is_empty());
        // Nothing reached the server but the three queries.
        assert_eq!(double.seen().len(), 3);
    }
}
