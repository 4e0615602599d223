//! `web`: an HTTP request; the first match of `jsonPath` in a JSON body (or the body text
//! when it is not JSON) is the result.
//!
//! As Argo's (metricproviders/webmetric/webmetric.go): `method` is sent as written (GET when
//! empty; Argo has no list of methods); `body` (a string) or `jsonBody` (JSON, which sets
//! `Content-Type: application/json` over any header), not both and not with GET; `headers`
//! replace one another by name (Go's `Header.Set`); `timeoutSeconds` bounds the whole
//! request (10 when unset or not positive); `insecure` skips TLS verification;
//! `authentication.oauth2` fetches a token first and its `Authorization: Bearer` replaces
//! any header of that name; a status outside 2xx is an error.

use reqwest::header::{HeaderName, HeaderValue};
use rollouts_core::analysis::run::MeasurementAnswer;
use rollouts_core::api::{WebMetric, WebMetricHeader};
use serde_json::Value;

use super::{error_answer, http, oauth2, Ctx, Measured, Provider};

/// Default whole-request timeout, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

impl Provider for WebMetric {
    async fn measure(&self, ctx: &Ctx<'_>) -> Measured {
        let w = self;
        let oauth = w.authentication.as_ref().and_then(|a| a.get("oauth2"));
        if let Some(secret) = oauth.and_then(|o| o.get("clientSecret")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            ctx.redact_also("authentication.oauth2.clientSecret", secret);
        }
        let timeout = http::timeout_secs(w.timeout_seconds, DEFAULT_TIMEOUT_SECS);
        let client = http::client(timeout, w.insecure)?;
        let method_name = w.method.as_deref().filter(|m| !m.is_empty()).unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method_name.as_bytes()).map_err(|_| format!("method {method_name:?} is not an HTTP method"))?;
        let body = w.body.as_deref().filter(|b| !b.is_empty());
        if body.is_some() && w.json_body.is_some() {
            return Err("use either Body or JSONBody; both cannot exists for WebMetric payload".to_string());
        }
        if (body.is_some() || w.json_body.is_some()) && method_name == "GET" {
            return Err("Body/JSONBody can only be used with POST or PUT WebMetric Method types".to_string());
        }
        let url = reqwest::Url::parse(&w.url).map_err(|e| format!("url {:?} is not a URL: {e}", w.url))?;
        let mut req = reqwest::Request::new(method, url);
        set_headers(&mut req, &w.headers)?;
        if let Some(json) = &w.json_body {
            *req.body_mut() = Some(json.to_string().into());
            req.headers_mut().insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        } else if let Some(text) = body {
            *req.body_mut() = Some(text.to_string().into());
        }
        if oauth2::configured(oauth) {
            let token = oauth2::token(ctx, oauth.unwrap_or(&Value::Null), &client).await?;
            let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "authentication.oauth2: the token endpoint gave a token that cannot be a header".to_string())?;
            bearer.set_sensitive(true);
            req.headers_mut().insert(reqwest::header::AUTHORIZATION, bearer);
        }
        let resp = client.execute(req).await.map_err(|e| transport(&e, timeout.as_secs()))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport(&e, timeout.as_secs()))?;
        if !(200..300).contains(&status) {
            return Err(format!("received non 2xx response code: {status}"));
        }
        Ok(web_answer(&text, w.json_path.as_deref()))
    }
}

/// Sets `headers` on `req`, each replacing any header of the same name (Go's `Header.Set`,
/// which Argo's web and Prometheus providers use). The error names the header, never its
/// value (often a credential).
pub fn set_headers(req: &mut reqwest::Request, headers: &[WebMetricHeader]) -> Result<(), String> {
    for h in headers {
        let name = HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| format!("headers: {:?} is not a valid header name", h.key))?;
        let mut value = HeaderValue::from_str(&h.value).map_err(|_| format!("headers: the value of {:?} is not a valid header value", h.key))?;
        value.set_sensitive(true);
        req.headers_mut().insert(name, value);
    }
    Ok(())
}

/// A transport error without the URL; a timeout says which setting it was.
fn transport(e: &reqwest::Error, secs: u64) -> String {
    if e.is_timeout() {
        format!("the request timed out after {secs}s (timeoutSeconds)")
    } else {
        http::transport(e)
    }
}

/// The result of a web metric's body: the first match of the JSONPath (Kubernetes style,
/// `{$.data.ok}` or `{.data.ok}`) in a JSON body, or the body text when it is not JSON.
pub fn web_answer(body: &str, json_path: Option<&str>) -> MeasurementAnswer {
    let Ok(doc) = serde_json::from_str::<Value>(body) else {
        return MeasurementAnswer { value: Value::String(body.to_string()), ..MeasurementAnswer::default() };
    };
    let path = json_path.filter(|p| !p.trim().is_empty()).unwrap_or("{$}").trim();
    let parsed = match serde_json_path::JsonPath::parse(&rfc9535(path)) {
        Ok(p) => p,
        Err(e) => return error_answer(format!("jsonPath {path:?} is invalid: {e}")),
    };
    match parsed.query(&doc).first() {
        Some(v) => MeasurementAnswer { value: v.clone(), ..MeasurementAnswer::default() },
        // Argo's prefix; the k8s parser's detail ("x is not found") is not reproduced.
        None => error_answer(format!("Could not find JSONPath in body: {path} matched nothing")),
    }
}

/// A Kubernetes JSONPath template (`{.items[0].name}`, `{$..x}`, `{['a.b']}`) as an
/// RFC 9535 query, which always starts at `$`.
fn rfc9535(path: &str) -> String {
    let inner = path.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(path).trim();
    if inner.starts_with('$') {
        inner.to_string()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::oauth2::recorder::{serve, Recorded, Reply};
    use super::*;
    use rollouts_core::analysis::run::MeasureContext;
    use rollouts_core::api::MetricProvider;
    use rollouts_core::secrets::SecretValues;
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    async fn measure(w: &WebMetric) -> MeasurementAnswer {
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", SystemTime::UNIX_EPOCH, &context);
        let provider = MetricProvider { web: Some(w.clone()), ..MetricProvider::default() };
        super::super::measure_resolved(&ctx, &SecretValues::default(), &provider).await
    }

    fn header(key: &str, value: &str) -> WebMetricHeader {
        WebMetricHeader { key: key.into(), value: value.into() }
    }

    fn echo(r: &Recorded) -> Reply {
        let reply = json!({
            "method": r.method, "path": r.path, "body": r.body,
            "contentType": r.header("content-type"), "auth": r.header("authorization"), "tenant": r.header("x-tenant"),
            "data": {"ok": true, "rate": 0.95, "items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "dotted.key": "d"}
        });
        match r.path.as_str() {
            "/text" => (200, "text/plain", "plain text".to_string()),
            "/missing" => (404, "text/plain", "no".to_string()),
            _ => (200, "application/json", reply.to_string()),
        }
    }

    #[test]
    fn web_bodies_are_read_with_kubernetes_jsonpath() {
        let body = r#"{"data": {"ok": true, "successPercent": 0.95, "items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "a.b": 3}}"#;
        assert_eq!(web_answer(body, Some("{$.data.ok}")).value, json!(true));
        assert_eq!(web_answer(body, Some("{.data.successPercent}")).value, json!(0.95));
        assert_eq!(web_answer(body, Some("{.data.items[1].v}")).value, json!(2));
        assert_eq!(web_answer(body, Some("{.data.items[*].name}")).value, json!("a"));
        assert_eq!(web_answer(body, Some(r#"{.data.items[?(@.name=="b")].v}"#)).value, json!(2));
        assert_eq!(web_answer(body, Some("{..v}")).value, json!(1));
        assert_eq!(web_answer(body, Some("{.data['a.b']}")).value, json!(3));
        assert_eq!(web_answer(body, None).value, serde_json::from_str::<Value>(body).unwrap());
        assert_eq!(web_answer("plain text", Some("{$.x}")).value, json!("plain text"));
        assert_eq!(web_answer(body, Some("{$.missing}")).error.as_deref(), Some("Could not find JSONPath in body: {$.missing} matched nothing"));
        assert!(web_answer(body, Some("{.data[}")).error.unwrap().starts_with("jsonPath \"{.data[}\" is invalid"));
    }

    #[tokio::test]
    async fn methods_bodies_and_headers_are_sent_as_argo_sends_them() {
        let server = serve(echo).await;
        let url = format!("{}/api", server.base);
        // GET by default, headers set.
        let w = WebMetric { url: url.clone(), headers: vec![header("X-Tenant", "a"), header("x-tenant", "b")], json_path: Some("{$.data.rate}".into()), ..WebMetric::default() };
        assert_eq!(measure(&w).await.value, json!(0.95));
        let r = server.requests().pop().unwrap();
        assert_eq!((r.method.as_str(), r.headers.get_all("x-tenant").iter().count(), r.header("x-tenant")), ("GET", 1, Some("b")));

        // POST a string body.
        let w = WebMetric { url: url.clone(), method: Some("POST".into()), body: Some("a=1".into()), json_path: Some("{$.body}".into()), ..WebMetric::default() };
        assert_eq!(measure(&w).await.value, json!("a=1"));
        // PUT a JSON body: Content-Type is JSON, over the header's.
        let w = WebMetric {
            url: url.clone(),
            method: Some("PUT".into()),
            headers: vec![header("Content-Type", "text/plain")],
            json_body: Some(json!({"q": [1, 2]})),
            json_path: Some("{$}".into()),
            ..WebMetric::default()
        };
        let v = measure(&w).await.value;
        assert_eq!((v["method"].clone(), v["contentType"].clone()), (json!("PUT"), json!("application/json")));
        assert_eq!(serde_json::from_str::<Value>(v["body"].as_str().unwrap()).unwrap(), json!({"q": [1, 2]}));
        // Any method Argo would send.
        let w = WebMetric { url: url.clone(), method: Some("DELETE".into()), json_path: Some("{$.method}".into()), ..WebMetric::default() };
        assert_eq!(measure(&w).await.value, json!("DELETE"));
        // A text body is the result.
        let w = WebMetric { url: format!("{}/text", server.base), ..WebMetric::default() };
        assert_eq!(measure(&w).await.value, json!("plain text"));
    }

    #[tokio::test]
    async fn bad_requests_and_answers_are_errors_in_argos_words() {
        let server = serve(echo).await;
        let url = format!("{}/api", server.base);
        let both = WebMetric { url: url.clone(), method: Some("POST".into()), body: Some("x".into()), json_body: Some(json!({})), ..WebMetric::default() };
        assert_eq!(measure(&both).await.error.as_deref(), Some("use either Body or JSONBody; both cannot exists for WebMetric payload"));
        let get_with_body = WebMetric { url: url.clone(), json_body: Some(json!({})), ..WebMetric::default() };
        assert_eq!(measure(&get_with_body).await.error.as_deref(), Some("Body/JSONBody can only be used with POST or PUT WebMetric Method types"));
        let not_found = WebMetric { url: format!("{}/missing", server.base), ..WebMetric::default() };
        assert_eq!(measure(&not_found).await.error.as_deref(), Some("received non 2xx response code: 404"));
        assert_eq!(server.requests().len(), 1, "the refused specs sent nothing");
        let bad_method = WebMetric { url: url.clone(), method: Some("GE T".into()), ..WebMetric::default() };
        assert_eq!(measure(&bad_method).await.error.as_deref(), Some("method \"GE T\" is not an HTTP method"));
        let bad_url = WebMetric { url: "no-scheme".into(), ..WebMetric::default() };
        assert!(measure(&bad_url).await.error.unwrap().starts_with("url \"no-scheme\" is not a URL"));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let slow = WebMetric { url: format!("http://{silent}/"), timeout_seconds: Some(1), ..WebMetric::default() };
        let started = std::time::Instant::now();
        assert_eq!(measure(&slow).await.error.as_deref(), Some("the request timed out after 1s (timeoutSeconds)"));
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }

    #[tokio::test]
    async fn oauth2_bearer_replaces_an_authorization_header() {
        let server = serve(|r: &Recorded| -> Reply {
            if r.path == "/token" {
                return if r.header("authorization").is_some_and(|a| a.starts_with("Basic ")) {
                    (200, "application/json", json!({"access_token": "web-token", "token_type": "bearer"}).to_string())
                } else {
                    (401, "application/json", json!({"error": "invalid_client"}).to_string())
                };
            }
            echo(r)
        })
        .await;
        let oauth = json!({"oauth2": {"tokenUrl": format!("{}/token", server.base), "clientId": "c", "clientSecret": "web-secret"}});
        let w = WebMetric {
            url: format!("{}/api", server.base),
            headers: vec![header("Authorization", "Bearer stale")],
            json_path: Some("{$.auth}".into()),
            authentication: Some(oauth),
            ..WebMetric::default()
        };
        let answer = measure(&w).await;
        // The token is marked secret: the echoed header comes back redacted.
        assert_eq!((answer.error, answer.value), (None, json!("Bearer *****")));
        let api = server.on("/api");
        assert_eq!(api.len(), 1);
        assert_eq!(api[0].header("authorization"), Some("Bearer web-token"));
        assert_eq!(server.on("/token")[0].form().get("grant_type").map(String::as_str), Some("client_credentials"));

        let w = WebMetric { authentication: Some(json!({"oauth2": {"tokenUrl": format!("{}/token", server.base), "clientId": "c"}})), ..w };
        assert!(measure(&w).await.error.unwrap().starts_with("missing mandatory parameter in metric for OAuth2 setup"));
    }
}
