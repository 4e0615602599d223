//! `graphite`: Graphite's render API. The query is sent as Argo sends it: every whitespace
//! character removed, read as URL query parameters, `format=json` set, and encoded again
//! (keys sorted, values escaped). The first target's non-null values are the result.

use std::time::Duration;

use rollouts_core::api::GraphiteMetric;
use serde_json::Value;

use super::{http, value_answer, Ctx, Measured, Provider};

/// Argo's whole-request timeout for Graphite.
pub const TIMEOUT: Duration = Duration::from_secs(10);

impl Provider for GraphiteMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        let url = render_url(&self.address, &self.query)?;
        let client = http::client(TIMEOUT, false)?;
        let (status, body) = http::send_text(client.get(url)).await?;
        if status >= 400 {
            return Err(format!("error response: {body}"));
        }
        let points = first_target_values(&body)?;
        if points.is_empty() {
            return Err("no values found".to_string());
        }
        Ok(value_answer(Value::Array(points.into_iter().flatten().collect())))
    }
}

/// `<address>/render?<query>`: the address's path joined with `render`, and the query as
/// Argo rewrites it (see [`render_query`]).
pub fn render_url(address: &str, query: &str) -> Result<reqwest::Url, String> {
    let invalid = || format!("Graphite address {address:?} is not a valid URL (provider.graphite.address)");
    let mut url = reqwest::Url::parse(address).map_err(|_| invalid())?;
    if address.is_empty() || url.cannot_be_a_base() {
        return Err(invalid());
    }
    let path = format!("{}/render", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(Some(&render_query(query)?));
    url.set_fragment(None);
    Ok(url)
}

/// The render query as Argo builds it: whitespace (Go's `\s`: space, tab, newline, carriage
/// return, form feed) removed, anything after a `#` dropped (Go parses it as the fragment),
/// the `&`-separated pairs decoded (a pair with a `;` or a bad `%` escape is dropped, as
/// Go's `url.ParseQuery` does), `format` replaced by `json`, and everything encoded again
/// with the keys sorted.
pub fn render_query(query: &str) -> Result<String, String> {
    let compact: String = query.chars().filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')).collect();
    if let Some(c) = compact.chars().find(|c| c.is_ascii_control()) {
        return Err(format!("provider.graphite.query: invalid control character {c:?} in the query"));
    }
    let raw = compact.split_once('#').map_or(compact.as_str(), |(q, _)| q);
    let mut pairs: std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> = std::collections::BTreeMap::new();
    for part in raw.split('&') {
        if part.is_empty() || part.contains(';') {
            continue;
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        let (Some(key), Some(value)) = (query_unescape(key), query_unescape(value)) else { continue };
        pairs.entry(key).or_default().push(value);
    }
    pairs.insert(b"format".to_vec(), vec![b"json".to_vec()]);
    let mut out = String::new();
    for (key, values) in &pairs {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&query_escape(key));
            out.push('=');
            out.push_str(&query_escape(value));
        }
    }
    Ok(out)
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; None for a broken escape.
fn query_unescape(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok().filter(|_| hex.iter().all(u8::is_ascii_hexdigit))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space is `+`, every other
/// byte `%XX`.
fn query_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The values of the first target's datapoints (None for a null value), read as Argo's
/// client reads them: a value is null, a number or a number in a string; a timestamp is
/// null, a number or an integer in a string. Every target must read, not only the first.
/// A value JSON cannot hold as a number (`"NaN"`, `"+Inf"`) stays a string.
pub fn first_target_values(body: &str) -> Result<Vec<Option<Value>>, String> {
    let bad = |why: String| format!("could not read the Graphite response: {why}");
    let doc: Value = serde_json::from_str(body).map_err(|e| bad(e.to_string()))?;
    let targets = match &doc {
        Value::Null => return Ok(Vec::new()),
        Value::Array(targets) => targets,
        other => return Err(bad(format!("expected a list of targets, got {}", kind(other)))),
    };
    let mut first = None;
    for (t, target) in targets.iter().enumerate() {
        let points = match target {
            Value::Object(o) => match o.get("datapoints") {
                None | Some(Value::Null) => &[][..],
                Some(Value::Array(points)) => points.as_slice(),
                Some(other) => return Err(bad(format!("target {t}: datapoints is {}, not a list", kind(other)))),
            },
            Value::Null => &[][..],
            other => return Err(bad(format!("target {t} is {}, not an object", kind(other)))),
        };
        let values = points.iter().enumerate().map(|(i, p)| datapoint(p).map_err(|why| bad(format!("target {t}, datapoint {i}: {why}"))));
        let values = values.collect::<Result<Vec<_>, _>>()?;
        first.get_or_insert(values);
    }
    Ok(first.unwrap_or_default())
}

/// One `[value, timestamp]` pair: its value.
fn datapoint(point: &Value) -> Result<Option<Value>, String> {
    let Some([value, timestamp]) = point.as_array().map(Vec::as_slice).and_then(|p| <&[Value; 2]>::try_from(p).ok()) else {
        return Err(format!("{point} is not a [value, timestamp] pair"));
    };
    match timestamp {
        Value::Null | Value::Number(_) => {}
        Value::String(s) if s.parse::<i64>().is_ok() => {}
        other => return Err(format!("the timestamp {other} is not a number")),
    }
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(Value::Number(n.clone()))),
        Value::String(s) => match s.parse::<f64>() {
            Ok(f) => Ok(Some(serde_json::Number::from_f64(f).map_or_else(|| Value::String(s.clone()), Value::Number))),
            Err(_) => Err(format!("the value {s:?} is not a number")),
        },
        other => Err(format!("the value {other} is not a number")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::vendor_stub::{closed_port, start_typed as start};
    use super::*;
    use rollouts_core::analysis::condition::eval_condition;
    use rollouts_core::analysis::run::MeasureContext;
    use serde_json::json;

    /// The query of Argo's Graphite documentation, as a template would write it.
    const DOC_QUERY: &str = "target=summarize(\n  asPercent(\n    sumSeries(app.checkout.exception.*.outcome.{CLIENT_ERROR,SUCCESS}.count),\n    sumSeries(app.checkout.exception.*.outcome.*.count)\n  ),\n  '5min',\n  'avg'\n)\n&from=-5min";

    /// What Argo's client sends for [`DOC_QUERY`] (worked out by hand from Go's
    /// `url.Values.Encode`: keys sorted, `(),'*{}` escaped).
    const DOC_RAW_QUERY: &str = "format=json&from=-5min&target=summarize%28asPercent%28sumSeries%28app.checkout.exception.%2A.outcome.%7BCLIENT_ERROR%2CSUCCESS%7D.count%29%2CsumSeries%28app.checkout.exception.%2A.outcome.%2A.count%29%29%2C%275min%27%2C%27avg%27%29";

    fn metric(address: &str, query: &str) -> GraphiteMetric {
        GraphiteMetric { address: address.to_string(), query: query.to_string() }
    }

    async fn measure(m: &GraphiteMetric) -> Measured {
        let context = MeasureContext::default();
        m.measure(&Ctx::new(None, "argo-rollouts", std::time::SystemTime::UNIX_EPOCH, &context)).await
    }

    #[test]
    fn the_query_loses_its_whitespace_and_is_encoded_as_go_encodes_it() {
        assert_eq!(render_query(DOC_QUERY).unwrap(), DOC_RAW_QUERY);
        // format is always json; repeated keys keep their order; `+` and `%20` are spaces.
        assert_eq!(render_query("target=a&format=png&target=b").unwrap(), "format=json&target=a&target=b");
        assert_eq!(render_query("target=alias(a,%22x%20y%22)&title=a+b").unwrap(), "format=json&target=alias%28a%2C%22x+y%22%29&title=a+b");
        // Go drops pairs with a `;` or a broken escape, empty pairs, and the fragment.
        assert_eq!(render_query("target=a;b&x=%zz&&until=now#frag&y=1").unwrap(), "format=json&until=now");
        assert_eq!(render_query("target").unwrap(), "format=json&target=");
        assert_eq!(render_query("target=x%2").unwrap(), "format=json");
        assert_eq!(render_query("target=é~!$").unwrap(), "format=json&target=%C3%A9~%21%24");
        assert!(render_query("target=a\u{0b}b").unwrap_err().starts_with("provider.graphite.query: invalid control character"));
    }

    #[test]
    fn the_render_path_joins_the_address_path() {
        let url = |a: &str| render_url(a, "target=x").map(|u| u.to_string());
        assert_eq!(url("http://g:8080").unwrap(), "http://g:8080/render?format=json&target=x");
        assert_eq!(url("http://g:8080/").unwrap(), "http://g:8080/render?format=json&target=x");
        assert_eq!(url("https://g/graphite/").unwrap(), "https://g/graphite/render?format=json&target=x");
        assert_eq!(url("http://g/graphite?old=1#top").unwrap(), "http://g/graphite/render?format=json&target=x");
        assert_eq!(url("").unwrap_err(), r#"Graphite address "" is not a valid URL (provider.graphite.address)"#);
        assert_eq!(url("graphite:8080").unwrap_err(), r#"Graphite address "graphite:8080" is not a valid URL (provider.graphite.address)"#);
    }

    #[test]
    fn datapoints_read_as_argos_client_reads_them() {
        let body = json!([
            {"target": "a", "datapoints": [[null, 1], [97.5, 2], ["3.25", "3"], [1, null], ["NaN", 4.0]]},
            {"target": "b", "datapoints": [[5, 1]]}
        ]);
        assert_eq!(
            first_target_values(&body.to_string()).unwrap(),
            vec![None, Some(json!(97.5)), Some(json!(3.25)), Some(json!(1)), Some(json!("NaN"))]
        );
        assert_eq!(first_target_values("[]").unwrap(), Vec::new());
        assert_eq!(first_target_values("null").unwrap(), Vec::new());
        assert_eq!(first_target_values(r#"[{"target": "a"}]"#).unwrap(), Vec::new());
        let err = |body: &str| first_target_values(body).unwrap_err();
        assert_eq!(
            err(r#"[{"datapoints": [[1, 2, 3]]}]"#),
            "could not read the Graphite response: target 0, datapoint 0: [1,2,3] is not a [value, timestamp] pair"
        );
        assert_eq!(
            err(r#"[{"datapoints": [["x", 2]]}]"#),
            r#"could not read the Graphite response: target 0, datapoint 0: the value "x" is not a number"#
        );
        assert_eq!(
            err(r#"[{"datapoints": [[1, true]]}]"#),
            "could not read the Graphite response: target 0, datapoint 0: the timestamp true is not a number"
        );
        // Every target must read, as Go unmarshals the whole answer.
        assert_eq!(
            err(r#"[{"datapoints": [[1, 2]]}, {"datapoints": [[{}, 2]]}]"#),
            "could not read the Graphite response: target 1, datapoint 0: the value {} is not a number"
        );
        assert_eq!(err(r#"{"error": "x"}"#), "could not read the Graphite response: expected a list of targets, got an object");
        assert!(err("<html>").starts_with("could not read the Graphite response: "));
    }

    #[tokio::test]
    async fn a_render_request_as_argo_sends_it_and_conditions_on_the_values() {
        let double = start(|r| match r.raw_query.as_deref() {
            Some(DOC_RAW_QUERY) => (
                200,
                "application/json",
                json!([
                    {"target": "summarize(...)", "datapoints": [[null, 1_700_000_000], [97.0, 1_700_000_300]]},
                    {"target": "other", "datapoints": [[1.0, 1_700_000_300]]}
                ])
                .to_string(),
            ),
            Some("format=json&target=failing") => {
                (200, "application/json", json!([{"target": "failing", "datapoints": [[42.5, 1], [null, 2], [40.0, 3]]}]).to_string())
            }
            _ => (400, "text/plain", "unexpected request".to_string()),
        })
        .await;
        let passing = measure(&metric(&double.base, DOC_QUERY)).await.unwrap();
        assert_eq!(passing.value, json!([97.0]));
        assert!(eval_condition(&passing.value, "result[0] >= 90").unwrap());
        let seen = double.only();
        assert_eq!((seen.method.as_str(), seen.path.as_str(), seen.raw_query.as_deref()), ("GET", "/render", Some(DOC_RAW_QUERY)));
        assert_eq!(seen.body, "");

        let failing = measure(&metric(&format!("{}/", double.base), "target = failing")).await.unwrap();
        assert_eq!(failing.value, json!([42.5, 40.0]));
        assert!(!eval_condition(&failing.value, "result[0] >= 90").unwrap());
        assert_eq!(double.seen()[1].path, "/render");
    }

    #[tokio::test]
    async fn errors_no_datapoints_and_a_dead_server() {
        let double = start(|r| match r.raw_query.as_deref() {
            Some("format=json&target=empty") => (200, "application/json", r#"[{"target": "empty", "datapoints": []}]"#.to_string()),
            Some("format=json&target=none") => (200, "application/json", "[]".to_string()),
            Some("format=json&target=nulls") => {
                (200, "application/json", r#"[{"target": "nulls", "datapoints": [[null, 1]]}]"#.to_string())
            }
            Some("format=json&target=junk") => (200, "text/html", "<html>".to_string()),
            _ => (500, "text/plain", "Internal Server Error: bad target".to_string()),
        })
        .await;
        let err = |q: &'static str| {
            let m = metric(&double.base, q);
            async move { measure(&m).await.unwrap_err() }
        };
        assert_eq!(err("target=empty").await, "no values found");
        assert_eq!(err("target=none").await, "no values found");
        assert!(err("target=junk").await.starts_with("could not read the Graphite response: "));
        assert_eq!(err("target=boom").await, "error response: Internal Server Error: bad target");
        // Only null values: datapoints exist, so the result is an empty list (Argo's
        // conditions then see an empty result), not "no values found".
        assert_eq!(measure(&metric(&double.base, "target=nulls")).await.unwrap().value, json!([]));

        let closed = format!("http://127.0.0.1:{}", closed_port());
        assert!(!measure(&metric(&closed, "target=x")).await.unwrap_err().is_empty());
        assert_eq!(
            measure(&metric("", "target=x")).await.unwrap_err(),
            r#"Graphite address "" is not a valid URL (provider.graphite.address)"#
        );
    }
}
