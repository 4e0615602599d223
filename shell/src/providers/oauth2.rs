//! OAuth2 client credentials (RFC 6749 §4.4) for `prometheus` and `web`
//! (`authentication.oauth2: {tokenUrl, clientId, clientSecret, scopes}`), the way Go's
//! `clientcredentials` package fetches a token for Argo: a form POST of
//! `grant_type=client_credentials` (and `scope`, space-separated) to `tokenUrl`, first with
//! the client's id and secret as HTTP Basic credentials (each form-escaped), then, when that
//! is refused, with both in the form instead. The token is fetched anew for every
//! measurement (Argo builds a new client per measurement, so it caches nothing either).

use serde::Deserialize;
use serde_json::Value;

use super::{http, Ctx};

/// `authentication.oauth2`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OAuth2 {
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Whether `authentication.oauth2` asks for a token: Argo uses OAuth2 only when `tokenUrl` is
/// set, and ignores the block otherwise.
pub fn configured(oauth2: Option<&Value>) -> bool {
    oauth2.and_then(|o| o.get("tokenUrl")).and_then(Value::as_str).is_some_and(|u| !u.is_empty())
}

/// A bearer token from `oauth2: {tokenUrl, clientId, clientSecret, scopes}`; the secret and
/// the token are marked for redaction in `ctx`.
pub async fn token(ctx: &Ctx<'_>, oauth2: &Value, client: &reqwest::Client) -> Result<String, String> {
    let config: OAuth2 = serde_json::from_value(oauth2.clone()).map_err(|e| format!("authentication.oauth2 is invalid: {e}"))?;
    if !config.client_secret.is_empty() {
        ctx.redact_also("authentication.oauth2.clientSecret", &config.client_secret);
    }
    if config.token_url.is_empty() || config.client_id.is_empty() || config.client_secret.is_empty() {
        // Argo's words; what is missing is named after them.
        let missing: Vec<&str> = [("tokenUrl", &config.token_url), ("clientId", &config.client_id), ("clientSecret", &config.client_secret)]
            .into_iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k)
            .collect();
        return Err(format!("missing mandatory parameter in metric for OAuth2 setup: authentication.oauth2.{}", missing.join(", ")));
    }
    let url = reqwest::Url::parse(&config.token_url)
        .map_err(|e| format!("authentication.oauth2.tokenUrl {:?} is not a URL: {e}", config.token_url))?;
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    if !config.scopes.is_empty() {
        form.push(("scope", config.scopes.join(" ")));
    }
    // Go's auto-detection: credentials in the header first; on any failure, in the form.
    let in_header = client
        .post(url.clone())
        .basic_auth(query_escape(&config.client_id), Some(query_escape(&config.client_secret)))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_encode(&form));
    let access_token = match fetch(in_header).await {
        Ok(t) => t,
        Err(_) => {
            form.push(("client_id", config.client_id.clone()));
            form.push(("client_secret", config.client_secret.clone()));
            let in_form = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form_encode(&form));
            fetch(in_form).await.map_err(|e| format!("authentication.oauth2: cannot fetch a token from tokenUrl: {e}"))?
        }
    };
    ctx.redact_also("authentication.oauth2 access token", &access_token);
    Ok(access_token)
}

/// One token request: the access token, or why there is none (status, and the RFC 6749
/// `error` and `error_description` when the endpoint gives them).
async fn fetch(req: reqwest::RequestBuilder) -> Result<String, String> {
    let resp = req.send().await.map_err(|e| http::transport(&e))?;
    let status = resp.status();
    let form_encoded = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("text/plain"));
    let text = resp.text().await.map_err(|e| http::transport(&e))?;
    // Some endpoints (GitHub's) answer in form encoding, as Go's client accepts.
    let fields: Value = if form_encoded {
        let parsed = reqwest::Url::parse(&format!("http://form/?{text}")).map_err(|e| e.to_string())?;
        Value::Object(parsed.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    let field = |name: &str| fields.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if !status.is_success() {
        let mut message = format!("{status}");
        if let Some(code) = field("error") {
            message.push_str(&format!(": {code}"));
            if let Some(description) = field("error_description") {
                message.push_str(&format!(" ({description})"));
            }
        }
        return Err(message);
    }
    if fields.is_null() {
        return Err(format!("{status} with a body that is not a token response"));
    }
    field("access_token").map(str::to_string).ok_or_else(|| "the server's response has no access_token".to_string())
}

/// `application/x-www-form-urlencoded` pairs.
fn form_encode(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect::<Vec<_>>().join("&")
}

/// Go's `url.QueryEscape`: everything but ASCII letters, digits and `-_.~` is
/// percent-encoded, a space becomes `+`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A local HTTP server for the tests of the providers that send requests: it records every
/// request and answers each with what the test's function says.
#[cfg(test)]
pub(crate) mod recorder {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// One request the server received.
    #[derive(Clone, Debug)]
    pub struct Recorded {
        pub method: String,
        pub path: String,
        pub query: BTreeMap<String, String>,
        pub headers: http::HeaderMap,
        pub body: String,
    }

    impl Recorded {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        /// The body's form fields.
        pub fn form(&self) -> BTreeMap<String, String> {
            let url = reqwest::Url::parse(&format!("http://form/?{}", self.body)).unwrap();
            url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        }
    }

    /// Standard base64, for the expected Basic header (the crate has no base64 dependency).
    pub fn base64_of(s: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A status, a content type and a body.
    pub type Reply = (u16, &'static str, String);

    /// The server; stops when dropped.
    pub struct Server {
        pub base: String,
        pub requests: Arc<Mutex<Vec<Recorded>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        pub fn requests(&self) -> Vec<Recorded> {
            self.requests.lock().unwrap().clone()
        }

        pub fn on(&self, path: &str) -> Vec<Recorded> {
            self.requests().into_iter().filter(|r| r.path == path).collect()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Serves on 127.0.0.1, answering every request with `reply(request)`.
    pub async fn serve(reply: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Server {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            let reply = reply.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let url = reqwest::Url::parse(&format!("http://local{}", parts.uri)).unwrap();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: url.path().to_string(),
                    query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                    headers: parts.headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, content_type, text) = reply(&recorded);
                seen.lock().unwrap().push(recorded);
                (http::StatusCode::from_u16(status).unwrap(), [(http::header::CONTENT_TYPE, content_type)], text)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { base, requests, task }
    }
}

#[cfg(test)]
mod tests {
    use super::recorder::{base64_of, serve, Recorded, Reply};
    use super::*;
    use rollouts_core::analysis::run::MeasureContext;
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    const SECRET: &str = "s3cr3t/+&=";

    fn token_endpoint(r: &Recorded) -> Reply {
        let basic = format!("Basic {}", base64_of(&format!("my-client:{}", query_escape(SECRET))));
        if r.method == "POST" && r.header("authorization") == Some(basic.as_str()) && r.form().get("grant_type").map(String::as_str) == Some("client_credentials") {
            (200, "application/json", json!({"access_token": "tok-123", "token_type": "bearer", "expires_in": 3600}).to_string())
        } else {
            (401, "application/json", json!({"error": "invalid_client", "error_description": "bad client credentials"}).to_string())
        }
    }

    fn client() -> reqwest::Client {
        http::client(Duration::from_secs(5), false).unwrap()
    }

    #[tokio::test]
    async fn the_token_request_is_a_client_credentials_form_with_basic_client_auth() {
        let server = serve(token_endpoint).await;
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", SystemTime::UNIX_EPOCH, &context);
        let config = json!({"tokenUrl": format!("{}/oauth/token", server.base), "clientId": "my-client", "clientSecret": SECRET, "scopes": ["read", "metrics"]});
        assert_eq!(token(&ctx, &config, &client()).await, Ok("tok-123".to_string()));
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].path, "/oauth/token");
        assert_eq!(requests[0].header("content-type"), Some("application/x-www-form-urlencoded"));
        let form = requests[0].form();
        assert_eq!(form.get("grant_type").map(String::as_str), Some("client_credentials"));
        assert_eq!(form.get("scope").map(String::as_str), Some("read metrics"));
        assert!(!form.contains_key("client_secret"), "the secret travels once, in the header: {form:?}");
    }

    #[tokio::test]
    async fn a_refused_header_is_retried_with_the_credentials_in_the_form() {
        let server = serve(|r: &Recorded| {
            let form = r.form();
            if r.header("authorization").is_none() && form.get("client_id").map(String::as_str) == Some("my-client") && form.get("client_secret").map(String::as_str) == Some(SECRET) {
                // Form-encoded answers are accepted, as Go's client does.
                (200, "application/x-www-form-urlencoded", "access_token=tok-form&token_type=bearer".to_string())
            } else {
                (400, "application/json", json!({"error": "invalid_request"}).to_string())
            }
        })
        .await;
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", SystemTime::UNIX_EPOCH, &context);
        let config = json!({"tokenUrl": format!("{}/token", server.base), "clientId": "my-client", "clientSecret": SECRET});
        assert_eq!(token(&ctx, &config, &client()).await, Ok("tok-form".to_string()));
        assert_eq!(server.requests().len(), 2);
        assert!(!server.requests()[1].form().contains_key("scope"), "no scopes, no scope field");
    }

    #[tokio::test]
    async fn a_refused_token_request_is_an_error_naming_the_field_and_the_status_never_the_secret() {
        let server = serve(token_endpoint).await;
        let context = MeasureContext::default();
        let ctx = Ctx::new(None, "argo-rollouts", SystemTime::UNIX_EPOCH, &context);
        let config = json!({"tokenUrl": format!("{}/token", server.base), "clientId": "other-client", "clientSecret": SECRET});
        let err = token(&ctx, &config, &client()).await.unwrap_err();
        assert_eq!(err, "authentication.oauth2: cannot fetch a token from tokenUrl: 401 Unauthorized: invalid_client (bad client credentials)");
        assert!(!err.contains(SECRET));

        let missing = json!({"tokenUrl": format!("{}/token", server.base), "clientId": "my-client"});
        let err = token(&ctx, &missing, &client()).await.unwrap_err();
        assert_eq!(err, "missing mandatory parameter in metric for OAuth2 setup: authentication.oauth2.clientSecret");

        let bad_url = json!({"tokenUrl": "not a url", "clientId": "my-client", "clientSecret": SECRET});
        assert!(token(&ctx, &bad_url, &client()).await.unwrap_err().starts_with("authentication.oauth2.tokenUrl \"not a url\" is not a URL"));

        let no_token = serve(|_: &Recorded| (200, "application/json", json!({"token_type": "bearer"}).to_string())).await;
        let config = json!({"tokenUrl": format!("{}/token", no_token.base), "clientId": "my-client", "clientSecret": SECRET});
        assert_eq!(
            token(&ctx, &config, &client()).await.unwrap_err(),
            "authentication.oauth2: cannot fetch a token from tokenUrl: the server's response has no access_token"
        );
        assert_eq!(server.requests().len(), 2, "a refused header is retried once in the form");
    }

    #[test]
    fn only_a_token_url_turns_oauth2_on() {
        assert!(configured(Some(&json!({"tokenUrl": "http://127.0.0.1/t"}))));
        assert!(!configured(Some(&json!({"tokenUrl": "", "clientId": "x"}))));
        assert!(!configured(None));
        assert_eq!(query_escape("a b/c~d*"), "a+b%2Fc~d%2A");
        assert_eq!(base64_of("my-client:pw"), "bXktY2xpZW50OnB3");
    }
}
