//! The webhook service: an HTTP request to `url`, by default a GET whose body is the
//! message; a template's `webhook.<service name>` sets the method, a path appended to the
//! URL, and the body. Options: `url`, `headers: [{name, value}]`, `basicAuth: {username,
//! password}`, `insecureSkipVerify`, `retryMax` (3), `retryWaitMin` (1s), `retryWaitMax` (5s).
//! A network error, a 5xx or a 429 is retried.

use std::time::Duration;

use serde::Deserialize;

use super::{snippet, transport_error, Http, RetryPolicy, SendError};
use crate::notifications::subscriptions::Destination;
use crate::notifications::templates::Notification;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default, deserialize_with = "super::duration")]
    pub retry_wait_min: Option<Duration>,
    #[serde(default, deserialize_with = "super::duration")]
    pub retry_wait_max: Option<Duration>,
    #[serde(default)]
    pub retry_max: Option<u32>,
}

#[derive(Deserialize)]
pub struct Header {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Deserialize)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

pub struct Webhook {
    pub opts: Options,
}

impl Webhook {
    pub fn retry(&self) -> RetryPolicy {
        let d = RetryPolicy::default();
        // Zero means the default, as in the engine.
        RetryPolicy {
            retries: self.opts.retry_max.filter(|r| *r > 0).unwrap_or(d.retries),
            wait_min: self.opts.retry_wait_min.filter(|w| !w.is_zero()).unwrap_or(d.wait_min),
            wait_max: self.opts.retry_wait_max.filter(|w| !w.is_zero()).unwrap_or(d.wait_max),
        }
    }

    pub async fn send(&self, http: &Http, n: &Notification, dest: &Destination) -> Result<(), SendError> {
        if self.opts.url.is_empty() {
            return Err(SendError::permanent(format!("webhook {}: no url configured", dest.service)));
        }
        let (mut method, mut body, mut url) = ("GET".to_string(), n.message.clone(), self.opts.url.clone());
        if let Some(w) = n.webhook.get(&dest.service) {
            body = w.body.clone();
            if !w.method.is_empty() {
                method = w.method.to_uppercase();
            }
            if !w.path.is_empty() {
                url = format!("{}/{}", url.trim_end_matches('/'), w.path.trim_start_matches('/'));
            }
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| SendError::permanent(format!("webhook {}: invalid method {method:?}", dest.service)))?;
        let mut req = http.client(self.opts.insecure_skip_verify).request(method.clone(), &url).body(body);
        for h in &self.opts.headers {
            req = req.header(&h.name, &h.value);
        }
        if let Some(auth) = &self.opts.basic_auth {
            req = req.basic_auth(&auth.username, Some(&auth.password));
        }
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let message = format!("webhook {}: {method} request failed with status {}: {}", dest.service, status.as_u16(), snippet(&text, 200));
        Err(SendError { message, retryable: status.is_server_error() || status.as_u16() == 429, retry_after: None })
    }
}
