//! What the HTTP providers share: the client, headers, and reading a JSON answer.

use std::time::Duration;

use rollouts_core::api::WebMetricHeader;
use serde_json::Value;

/// An HTTP client with a whole-request timeout; `insecure` skips TLS verification.
pub fn client(timeout: Duration, insecure: bool) -> Result<reqwest::Client, String> {
    install_crypto();
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// `req` with the metric's extra headers.
pub fn with_headers(mut req: reqwest::RequestBuilder, headers: &[WebMetricHeader]) -> reqwest::RequestBuilder {
    for h in headers {
        req = req.header(&h.key, &h.value);
    }
    req
}

/// A transport error, with its causes (`connection refused`), naming the server without
/// the URL's query or user info (which may carry credentials).
pub fn transport(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        let mut shown = url.clone();
        shown.set_query(None);
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        text = text.replace(url.as_str(), shown.as_str());
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sends `req` and decodes the JSON body; a non-2xx status without a JSON body is an error
/// naming the status.
pub async fn send_json(req: reqwest::RequestBuilder) -> Result<Value, String> {
    let (status, text) = send_text(req).await?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Ok(v),
        Err(_) if !(200..300).contains(&status) => Err(format!("received non 2xx response code: {status}")),
        Err(e) => Err(format!("could not parse JSON body: {e}")),
    }
}

/// Sends `req`: the status code and the body text.
pub async fn send_text(req: reqwest::RequestBuilder) -> Result<(u16, String), String> {
    let resp = req.send().await.map_err(|e| transport(&e))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| transport(&e))?;
    Ok((status, text))
}

/// Seconds as a whole-request timeout: `secs` when positive, else `default`.
pub fn timeout_secs(secs: Option<i64>, default: u64) -> Duration {
    Duration::from_secs(secs.filter(|t| *t > 0).map_or(default, |t| t.unsigned_abs()))
}

/// Installs rustls' process-wide crypto provider (ring) once: the controller does at start,
/// `rollouts analyze` and the tests reach the providers without it. Installing twice is a
/// no-op.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
