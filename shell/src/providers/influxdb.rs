//! `influxdb`: a Flux query through InfluxDB's v2 query API, with the credentials of a
//! Secret in the controller's namespace (the metric's `profile`, default `influxdb`: keys
//! `address`, `org`, `authToken`). The answer is annotated CSV; the `_value` of every record,
//! typed by its `#datatype` annotation, is the result, as Argo's client returns them.

use std::collections::BTreeMap;
use std::time::Duration;

use rollouts_core::api::InfluxdbMetric;
use rollouts_core::time::parse_go_duration;
use serde_json::{json, Value};

use super::{http, value_answer, Ctx, Measured, Provider};

/// The Secret read when the metric names no `profile`.
pub const DEFAULT_PROFILE: &str = "influxdb";

/// Argo's query timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);

impl Provider for InfluxdbMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let profile = self.profile.as_deref().filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PROFILE);
        let secret = ctx.secret(None, profile).await?;
        let credentials = Credentials::from_secret(ctx.controller_namespace(), profile, secret.as_ref())?;
        query(&credentials, &self.query).await
    }
}

/// Where and as whom to query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The server's base URL.
    pub address: String,
    /// The organization (`org` query parameter).
    pub org: String,
    /// The API token (`Authorization: Token <token>`).
    pub token: String,
}

impl Credentials {
    /// The credentials in the Secret `namespace/name` (None: it does not exist). Every key
    /// must be there and non-empty, as Argo requires; the error names the missing keys.
    pub fn from_secret(namespace: &str, name: &str, secret: Option<&BTreeMap<String, String>>) -> Result<Credentials, String> {
        let Some(data) = secret else {
            return Err(format!("secret {namespace}/{name} (provider.influxdb.profile) not found"));
        };
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty()).cloned();
        match (get("authToken"), get("org"), get("address")) {
            (Some(token), Some(org), Some(address)) => Ok(Credentials { address, org, token }),
            (token, org, address) => {
                let missing: Vec<&str> = [(token.is_none(), "authToken"), (org.is_none(), "org"), (address.is_none(), "address")]
                    .into_iter()
                    .filter(|(m, _)| *m)
                    .map(|(_, k)| k)
                    .collect();
                Err(format!(
                    "authToken, org, or address not found: secret {namespace}/{name} (provider.influxdb.profile) lacks {}",
                    missing.join(", ")
                ))
            }
        }
    }
}

/// `<address>/api/v2/query?org=<org>`, as Argo's client builds it (the address's path kept).
pub fn query_url(address: &str, org: &str) -> Result<reqwest::Url, String> {
    let invalid = || format!("InfluxDB address {address:?} is not a valid URL (key address of the provider.influxdb.profile secret)");
    let base = if address.ends_with('/') { address.to_string() } else { format!("{address}/") };
    let base = reqwest::Url::parse(&base).ok().filter(|u| !u.cannot_be_a_base()).ok_or_else(invalid)?;
    let mut url = base.join("api/v2/query").map_err(|_| invalid())?;
    url.set_fragment(None);
    url.query_pairs_mut().clear().append_pair("org", org);
    Ok(url)
}

/// The request body: the Flux query with the dialect Argo's client asks for (annotations
/// `datatype`, `group` and `default`, a header row, comma-separated).
pub fn query_body(flux: &str) -> Value {
    json!({
        "dialect": {"annotations": ["datatype", "group", "default"], "delimiter": ",", "header": true},
        "query": flux,
        "type": "flux",
    })
}

/// POSTs the Flux query and reads the annotated CSV.
pub async fn query(credentials: &Credentials, flux: &str) -> Measured {
    let url = query_url(&credentials.address, &credentials.org)?;
    let req = http::client(TIMEOUT, false)?
        .post(url)
        .header("Authorization", format!("Token {}", credentials.token))
        .header("Accept", "application/csv")
        .header("Content-Type", "application/json")
        .body(query_body(flux).to_string());
    let resp = req.send().await.map_err(|e| http::transport(&e))?;
    let status = resp.status();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (content_type, influx_error) = (header("content-type"), header("x-influxdb-error"));
    let text = resp.text().await.map_err(|e| http::transport(&e))?;
    if !status.is_success() {
        return Err(http_error(status, &content_type, &influx_error, &text));
    }
    let values = record_values(&text)?;
    if values.is_empty() {
        return Err("no results returned from flux query".to_string());
    }
    Ok(value_answer(Value::Array(values)))
}

/// A non-2xx answer in the words of Argo's client: `<code>: <message>` from a JSON error
/// body, else `<status>: <body>`, else what the status means.
fn http_error(status: reqwest::StatusCode, content_type: &str, influx_error: &str, body: &str) -> String {
    let status_line = status.canonical_reason().map_or_else(|| status.as_str().to_string(), |r| format!("{} {r}", status.as_str()));
    let is_json = content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let (code, message) = if is_json {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => {
                let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                (text("code"), text("message"))
            }
            Err(e) => return format!("could not read the InfluxDB error (HTTP status {}): {e}", status.as_u16()),
        }
    } else {
        (status_line.clone(), body.to_string())
    };
    let (code, message) = match (code.is_empty() && message.is_empty(), status.as_u16()) {
        (true, 429) => ("too many requests".to_string(), "exceeded rate limit".to_string()),
        (true, 503) => ("unavailable".to_string(), "service temporarily unavailable".to_string()),
        (true, _) => (status_line, influx_error.to_string()),
        (false, _) => (code, message),
    };
    if code.is_empty() || message.is_empty() {
        format!("Unexpected status code {}", status.as_u16())
    } else {
        format!("{code}: {message}")
    }
}

/// One column of the table being read.
#[derive(Clone, Debug, Default)]
struct Column {
    name: String,
    datatype: String,
    default: String,
}

/// The `_value` of every record of every table, in order, typed by the `#datatype`
/// annotation (null when the record has no `_value` or it is empty without a default).
///
/// Argo ignores the error its client reports after the last record it read (an error
/// table, a malformed row): it judges the records read so far or says "no results". Here
/// the error is the answer, so a failed query is not judged on part of its data.
pub fn record_values(csv: &str) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    let mut columns: Option<Vec<Column>> = None;
    // Within one table's annotations and header: which row comes next.
    #[derive(PartialEq)]
    enum Expect {
        Records,
        /// Annotation rows, then the header row (once `#datatype` was seen).
        Annotations {
            datatype: bool,
        },
        ErrorMessage,
    }
    let mut expect = Expect::Records;
    for row in parse_csv(csv)? {
        if row.len() <= 1 {
            continue;
        }
        if row[0].starts_with('#') && expect == Expect::Records {
            columns = Some(vec![Column::default(); row.len() - 1]);
            expect = Expect::Annotations { datatype: false };
        }
        let Some(cols) = columns.as_mut() else {
            return Err("could not read the InfluxDB answer: no annotations before the first row".to_string());
        };
        if row.len() - 1 != cols.len() {
            return Err(format!("could not read the InfluxDB answer: a row has {} columns, its table {}", row.len() - 1, cols.len()));
        }
        let cells = &row[1..];
        match row[0].as_str() {
            "#datatype" => {
                cells.iter().zip(cols.iter_mut()).for_each(|(d, c)| c.datatype = d.clone());
                expect = Expect::Annotations { datatype: true };
            }
            "#default" => cells.iter().zip(cols.iter_mut()).for_each(|(d, c)| c.default = d.clone()),
            "" => match expect {
                Expect::Annotations { datatype: false } => {
                    return Err("could not read the InfluxDB answer: a table without a #datatype annotation".to_string());
                }
                Expect::Annotations { datatype: true } => {
                    if cells[0] == "error" {
                        expect = Expect::ErrorMessage;
                    } else {
                        cells.iter().zip(cols.iter_mut()).for_each(|(n, c)| c.name = n.clone());
                        expect = Expect::Records;
                    }
                }
                Expect::ErrorMessage => {
                    let message = Some(cells[0].as_str()).filter(|m| !m.is_empty()).unwrap_or("unknown query error");
                    let reference = cells.get(1).filter(|r| !r.is_empty()).map(|r| format!(",{r}")).unwrap_or_default();
                    return Err(format!("{message}{reference}"));
                }
                Expect::Records => {
                    let mut value = Value::Null;
                    for (cell, col) in cells.iter().zip(cols.iter()) {
                        // Every cell is typed, as the client does: a bad one fails the answer.
                        let typed = typed(if cell.is_empty() { &col.default } else { cell }, col)?;
                        if col.name == "_value" {
                            value = typed;
                        }
                    }
                    values.push(value);
                }
            },
            // Other annotations (#group, unknown ones) carry nothing the result needs.
            _ => {}
        }
    }
    Ok(values)
}

/// A cell as the Go client types it; JSON has no time or duration, so a time stays its
/// RFC 3339 text and a duration becomes nanoseconds (what Go's `time.Duration` counts).
fn typed(cell: &str, col: &Column) -> Result<Value, String> {
    if cell.is_empty() {
        return Ok(Value::Null);
    }
    let bad = |why: String| format!("could not read the InfluxDB answer: column {} ({}): {why}", col.name, col.datatype);
    match col.datatype.as_str() {
        "string" | "base64Binary" => Ok(Value::String(cell.to_string())),
        "dateTime:RFC3339" | "dateTime:RFC3339Nano" => {
            cell.parse::<jiff::Timestamp>().map_err(|e| bad(e.to_string()))?;
            Ok(Value::String(cell.to_string()))
        }
        "duration" => parse_go_duration(cell).map(Value::from).map_err(|e| bad(e.to_string())),
        "double" => {
            let f: f64 = cell.parse().map_err(|_| bad(format!("{cell:?} is not a number")))?;
            // NaN and ±Inf have no JSON number: they stay strings.
            Ok(serde_json::Number::from_f64(f).map_or_else(|| Value::String(cell.to_string()), Value::Number))
        }
        "boolean" => Ok(Value::Bool(!cell.eq_ignore_ascii_case("false"))),
        "long" => cell.parse::<i64>().map(Value::from).map_err(|_| bad(format!("{cell:?} is not an integer"))),
        "unsignedLong" => cell.parse::<u64>().map(Value::from).map_err(|_| bad(format!("{cell:?} is not an unsigned integer"))),
        other => Err(format!("could not read the InfluxDB answer: {} has unknown data type {other}", col.name)),
    }
}

/// RFC 4180 rows as Go's `encoding/csv` reads them: quoted fields may hold commas, quotes
/// (doubled) and newlines; `\r\n` ends a row like `\n`; empty lines are skipped.
fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_field_start => {
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some('\r') if chars.peek() == Some(&'\n') => {}
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                        None => return Err(format!("could not read the InfluxDB answer: line {line}: a quoted field does not end")),
                    }
                }
                match chars.peek() {
                    None | Some(',' | '\n' | '\r') => at_field_start = false,
                    Some(_) => return Err(format!("could not read the InfluxDB answer: line {line}: text after a closing quote")),
                }
            }
            '"' => return Err(format!("could not read the InfluxDB answer: line {line}: a quote inside an unquoted field")),
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                if !(row.is_empty() && field.is_empty() && at_field_start) {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                at_field_start = true;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if !(row.is_empty() && field.is_empty() && at_field_start) {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::vendor_stub::{closed_port, start_typed as start};
    use rollouts_core::analysis::condition::eval_condition;
    use rollouts_core::analysis::run::MeasureContext;

    /// Argo's documented query.
    const FLUX: &str = "from(bucket: \"app_istio\")\n  |> range(start: -15m)\n  |> filter(fn: (r) => r[\"destination_workload\"] == \"checkout\")\n  |> filter(fn: (r) => r[\"_measurement\"] == \"istio:istio_requests_errors_percentage:rate1m:5xx\")\n";

    /// An answer in the documented annotated CSV (two tables, as a grouped query gives).
    fn csv(values: [&str; 3]) -> String {
        format!(
            "#group,false,false,true,true,false,false,true,true\r\n\
             #datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
             #default,_result,,,,,,,\r\n\
             ,result,table,_start,_stop,_time,_value,_field,_measurement\r\n\
             ,,0,2024-03-01T12:00:00Z,2024-03-01T12:15:00Z,2024-03-01T12:05:00Z,{},rate,errors\r\n\
             ,,0,2024-03-01T12:00:00Z,2024-03-01T12:15:00Z,2024-03-01T12:10:00Z,{},rate,errors\r\n\
             ,,1,2024-03-01T12:00:00Z,2024-03-01T12:15:00Z,2024-03-01T12:10:00Z,{},rate,\"errors, other\"\r\n\
             \r\n",
            values[0], values[1], values[2]
        )
    }

    fn credentials(address: &str) -> Credentials {
        Credentials { address: address.to_string(), org: "my org".to_string(), token: "the-token".to_string() }
    }

    #[tokio::test]
    async fn a_flux_query_as_the_v2_api_documents_it_and_conditions_on_the_values() {
        let double = start(|r| {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            match (r.header("authorization"), body["query"].as_str()) {
                (Some("Token the-token"), Some(FLUX)) => (200, "text/csv; charset=utf-8", csv(["0.001", "0.002", "0"])),
                (Some("Token the-token"), Some("failing")) => (200, "text/csv; charset=utf-8", csv(["0.2", "0.002", "0.5"])),
                (Some(_), _) => (400, "application/json", json!({"code": "invalid", "message": "unexpected request"}).to_string()),
                (None, _) => (401, "application/json", json!({"code": "unauthorized", "message": "unauthorized access"}).to_string()),
            }
        })
        .await;
        let passing = query(&credentials(&double.base), FLUX).await.unwrap();
        assert_eq!(passing.value, json!([0.001, 0.002, 0.0]));
        assert!(eval_condition(&passing.value, "result[0] <= 0.01").unwrap());

        let seen = double.only();
        assert_eq!((seen.method.as_str(), seen.path.as_str(), seen.raw_query.as_deref()), ("POST", "/api/v2/query", Some("org=my+org")));
        assert_eq!(seen.header("authorization"), Some("Token the-token"));
        assert_eq!(seen.header("accept"), Some("application/csv"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!(
            body,
            json!({"dialect": {"annotations": ["datatype", "group", "default"], "delimiter": ",", "header": true}, "query": FLUX, "type": "flux"})
        );

        let failing = query(&credentials(&format!("{}/", double.base)), "failing").await.unwrap();
        assert_eq!(failing.value, json!([0.2, 0.002, 0.5]));
        assert!(!eval_condition(&failing.value, "result[0] <= 0.01").unwrap());
        assert_eq!(double.seen()[1].path, "/api/v2/query");
    }

    #[tokio::test]
    async fn errors_from_the_server_and_the_transport() {
        let double = start(|r| match serde_json::from_str::<Value>(&r.body).unwrap_or_default()["query"].as_str() {
            Some("empty") => (200, "text/csv; charset=utf-8", "\r\n".to_string()),
            Some("error-table") => (
                200,
                "text/csv; charset=utf-8",
                "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"failed to initialize execute state: could not find bucket \"\"x\"\"\",897\r\n".to_string(),
            ),
            Some("bad-token") => (401, "application/json; charset=utf-8", json!({"code": "unauthorized", "message": "unauthorized access"}).to_string()),
            Some("proxy") => (502, "text/html", "<html>Bad Gateway</html>".to_string()),
            _ => (503, "text/plain", String::new()),
        })
        .await;
        let err = |q: &'static str| {
            let c = credentials(&double.base);
            async move { query(&c, q).await.unwrap_err() }
        };
        assert_eq!(err("empty").await, "no results returned from flux query");
        assert_eq!(err("error-table").await, r#"failed to initialize execute state: could not find bucket "x",897"#);
        assert_eq!(err("bad-token").await, "unauthorized: unauthorized access");
        assert_eq!(err("proxy").await, "502 Bad Gateway: <html>Bad Gateway</html>");
        assert_eq!(err("down").await, "Unexpected status code 503");
        let closed = credentials(&format!("http://127.0.0.1:{}", closed_port()));
        assert!(!query(&closed, "q").await.unwrap_err().is_empty());
        assert_eq!(
            query(&credentials("influx:8086"), "q").await.unwrap_err(),
            r#"InfluxDB address "influx:8086" is not a valid URL (key address of the provider.influxdb.profile secret)"#
        );
    }

    #[test]
    fn the_secret_needs_all_three_keys() {
        let secret = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let full = secret(&[("address", "http://influx:8086"), ("org", "o"), ("authToken", "t"), ("extra", "x")]);
        assert_eq!(
            Credentials::from_secret("argo-rollouts", "influxdb", Some(&full)).unwrap(),
            Credentials { address: "http://influx:8086".to_string(), org: "o".to_string(), token: "t".to_string() }
        );
        assert_eq!(
            Credentials::from_secret("argo-rollouts", "influxdb", None).unwrap_err(),
            "secret argo-rollouts/influxdb (provider.influxdb.profile) not found"
        );
        assert_eq!(
            Credentials::from_secret("ops", "my-influx", Some(&secret(&[("address", "http://i"), ("authToken", "")]))).unwrap_err(),
            "authToken, org, or address not found: secret ops/my-influx (provider.influxdb.profile) lacks authToken, org"
        );
    }

    #[tokio::test]
    async fn the_profile_secret_is_read_from_the_controller_namespace() {
        // Offline there is no cluster: the error names the Secret the metric's profile picks.
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "rollouts-system", std::time::SystemTime::UNIX_EPOCH, &context);
        let default = InfluxdbMetric { profile: None, query: FLUX.to_string() };
        assert_eq!(default.measure(&ctx).await.unwrap_err(), "secret rollouts-system/influxdb cannot be read: no cluster (offline)");
        let named = InfluxdbMetric { profile: Some("team-influx".to_string()), query: FLUX.to_string() };
        assert_eq!(named.measure(&ctx).await.unwrap_err(), "secret rollouts-system/team-influx cannot be read: no cluster (offline)");
    }

    #[test]
    fn urls_keep_the_address_path() {
        let url = |a: &str| query_url(a, "o&p").unwrap().to_string();
        assert_eq!(url("http://influx:8086"), "http://influx:8086/api/v2/query?org=o%26p");
        assert_eq!(url("https://cloud.example/influx/"), "https://cloud.example/influx/api/v2/query?org=o%26p");
        assert_eq!(url("http://influx:8086?x=1"), "http://influx:8086/api/v2/query?org=o%26p");
    }

    #[test]
    fn record_values_are_typed_by_their_annotations() {
        let all_types = "#datatype,string,long,double,boolean,unsignedLong,duration,dateTime:RFC3339Nano,string\n\
                         #default,,,,,,,,fallback\n\
                         ,result,table,x,flag,n,d,_time,_value\n\
                         ,,0,1.5,False,7,1m30s,2024-03-01T12:00:00.5Z,\n\
                         ,,0,NaN,yes,8,-2ms,2024-03-01T12:00:01Z,\"quoted, with \"\"quotes\"\"\nand a newline\"\n";
        assert_eq!(record_values(all_types).unwrap(), vec![json!("fallback"), json!("quoted, with \"quotes\"\nand a newline")]);
        let typed_value = |datatype: &str, cell: &str| {
            record_values(&format!("#datatype,string,{datatype}\n,result,_value\n,,{cell}\n")).map(|mut v| v.remove(0))
        };
        assert_eq!(typed_value("long", "-3").unwrap(), json!(-3));
        assert_eq!(typed_value("unsignedLong", "18446744073709551615").unwrap(), json!(u64::MAX));
        assert_eq!(typed_value("double", "+Inf").unwrap(), json!("+Inf"));
        assert_eq!(typed_value("boolean", "false").unwrap(), json!(false));
        assert_eq!(typed_value("boolean", "true").unwrap(), json!(true));
        assert_eq!(typed_value("duration", "1h").unwrap(), json!(3_600_000_000_000_i64));
        assert_eq!(typed_value("dateTime:RFC3339", "2024-03-01T12:00:00Z").unwrap(), json!("2024-03-01T12:00:00Z"));
        assert_eq!(typed_value("double", "").unwrap(), Value::Null);
        assert_eq!(
            typed_value("long", "1.5").unwrap_err(),
            r#"could not read the InfluxDB answer: column _value (long): "1.5" is not an integer"#
        );
        assert_eq!(typed_value("complex", "1").unwrap_err(), "could not read the InfluxDB answer: _value has unknown data type complex");
        // A record without a `_value` column still counts (its value is null), as in Argo.
        assert_eq!(record_values("#datatype,string,long\n,result,count\n,,3\n").unwrap(), vec![Value::Null]);
        // Malformed answers.
        assert_eq!(
            record_values(",result,_value\n,,1\n").unwrap_err(),
            "could not read the InfluxDB answer: no annotations before the first row"
        );
        assert_eq!(
            record_values("#group,false,false\n,result,_value\n").unwrap_err(),
            "could not read the InfluxDB answer: a table without a #datatype annotation"
        );
        assert_eq!(
            record_values("#datatype,string,long\n,result,_value\n,,1,2\n").unwrap_err(),
            "could not read the InfluxDB answer: a row has 3 columns, its table 2"
        );
        assert!(record_values("#datatype,string,long\n,result,_value\n,,\"1\n").unwrap_err().contains("a quoted field does not end"));
        assert!(record_values("#datatype,string,long\n,result,_value\n,,1\"\n").unwrap_err().contains("a quote inside an unquoted field"));
    }
}
