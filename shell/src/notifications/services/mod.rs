//! The notification services: webhook, Slack, Microsoft Teams (incoming webhook) and e-mail
//! (SMTP), configured by `service.<type>[.<name>]` as notifications-engine configures them.
//!
//! A service's options may hold secrets (tokens, passwords, URLs with a key): no option is
//! ever printed (`Debug` shows none) and errors never include the URLs they were sent to.

pub mod email;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value as Yaml;

use super::subscriptions::Destination;
use super::templates::Notification;

/// A configured service.
pub enum Service {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    Teams(teams::Teams),
    Email(email::Email),
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub message: String,
    /// Worth trying again (a timeout, a 5xx, a 429), or not (a 4xx, a bad template).
    pub retryable: bool,
    /// The server's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl SendError {
    pub fn permanent(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), retryable: false, retry_after: None }
    }

    pub fn transient(message: impl Into<String>) -> SendError {
        SendError { message: message.into(), retryable: true, retry_after: None }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How often and how patiently a failed send is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    pub wait_min: Duration,
    pub wait_max: Duration,
}

impl Default for RetryPolicy {
    /// The webhook service's defaults in notifications-engine: 3 retries, 1 s to 5 s apart.
    fn default() -> Self {
        RetryPolicy { retries: 3, wait_min: Duration::from_secs(1), wait_max: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The wait before try `n` (1-based retries): doubling from `wait_min`, at most
    /// `wait_max`; a server's `Retry-After` wins, up to a minute.
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(Duration::from_secs(60));
        }
        let doubled = self.wait_min.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        doubled.min(self.wait_max.max(self.wait_min))
    }
}

/// HTTP clients for the services: one that verifies certificates, one that does not (a
/// service's `insecureSkipVerify`).
#[derive(Clone)]
pub struct Http {
    verified: reqwest::Client,
    insecure: reqwest::Client,
}

/// A whole request's time limit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Http {
    pub fn new() -> Result<Http, String> {
        Ok(Http {
            verified: crate::providers::http::client(REQUEST_TIMEOUT, false)?,
            insecure: crate::providers::http::client(REQUEST_TIMEOUT, true)?,
        })
    }

    pub fn client(&self, insecure: bool) -> &reqwest::Client {
        if insecure { &self.insecure } else { &self.verified }
    }
}

impl Service {
    /// Builds a service of type `kind` from its options (secrets already substituted).
    pub fn from_options(kind: &str, options: Yaml) -> Result<Service, String> {
        match kind {
            "webhook" => Ok(Service::Webhook(webhook::Webhook { opts: options_of(kind, options)? })),
            "slack" => Ok(Service::Slack(slack::Slack { opts: options_of(kind, options)? })),
            "teams" => Ok(Service::Teams(teams::Teams { opts: options_of(kind, options)? })),
            "email" => Ok(Service::Email(email::Email { opts: options_of(kind, options)? })),
            other => Err(format!(
                "service type '{other}' is not supported (supported: webhook, slack, teams, email)"
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Service::Webhook(_) => "webhook",
            Service::Slack(_) => "slack",
            Service::Teams(_) => "teams",
            Service::Email(_) => "email",
        }
    }

    pub fn retry(&self) -> RetryPolicy {
        match self {
            Service::Webhook(w) => w.retry(),
            Service::Slack(_) | Service::Teams(_) | Service::Email(_) => RetryPolicy::default(),
        }
    }

    /// Sends one notification once (the caller retries).
    pub async fn send(&self, http: &Http, n: &Notification, dest: &Destination) -> Result<(), SendError> {
        match self {
            Service::Webhook(w) => w.send(http, n, dest).await,
            Service::Slack(s) => s.send(http, n, dest).await,
            Service::Teams(t) => t.send(http, n, dest).await,
            Service::Email(e) => e.send(n, dest).await,
        }
    }
}

impl Service {
    /// Sends, trying again as the service's [`RetryPolicy`] allows what may succeed later
    /// (`on_retry` hears each failure that is retried, and the wait); the last error, with
    /// the number of attempts.
    pub async fn send_with_retries(
        &self,
        http: &Http,
        n: &Notification,
        dest: &Destination,
        mut on_retry: impl FnMut(&SendError, Duration),
    ) -> Result<u32, (SendError, u32)> {
        let policy = self.retry();
        let mut tries = 0;
        loop {
            match self.send(http, n, dest).await {
                Ok(()) => return Ok(tries + 1),
                Err(e) if e.retryable && tries < policy.retries => {
                    tries += 1;
                    let wait = policy.wait(tries, e.retry_after);
                    on_retry(&e, wait);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err((e, tries + 1)),
            }
        }
    }
}

/// Decodes a service's options; the error names the option (`port: invalid type …`) but
/// never its value.
fn options_of<T: DeserializeOwned>(kind: &str, options: Yaml) -> Result<T, String> {
    let options = if options.is_null() { Yaml::Mapping(Default::default()) } else { options };
    serde_path_to_error::deserialize(options).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde's messages quote the offending value (`invalid type: string "xoxb-…"`):
        // keep what kind of value it was, not the value.
        let shown = match inner.split_once('"') {
            Some((head, rest)) => match rest.rsplit_once('"') {
                Some((_, tail)) => format!("{head}<value>{tail}"),
                None => head.to_string(),
            },
            None => inner,
        };
        format!("{kind} option {path}: {shown}")
    })
}

/// A Go duration in the options: nanoseconds (what notifications-engine reads from JSON) or
/// text (`1s`, `500ms`, `1m30s`).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Nanos(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Nanos(n)) => Ok(Some(Duration::from_nanos(n))),
        Some(Raw::Text(t)) => humantime::parse_duration(t.trim()).map(Some).map_err(serde::de::Error::custom),
    }
}

/// At most `max` characters of a response body, for an error message.
pub fn snippet(body: &str, max: usize) -> String {
    let body = body.trim();
    if body.chars().count() > max { format!("{}…", body.chars().take(max).collect::<String>()) } else { body.to_string() }
}

/// A transport error without its URL (which may carry a secret), with its causes.
pub fn transport_error(e: reqwest::Error) -> SendError {
    let text = crate::providers::http::transport(&e.without_url());
    SendError::transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_minimum_to_the_maximum_and_honour_retry_after() {
        let p = RetryPolicy { retries: 5, wait_min: Duration::from_millis(100), wait_max: Duration::from_millis(350) };
        let waits: Vec<u128> = (1..=4).map(|n| p.wait(n, None).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(p.wait(1, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.wait(1, Some(Duration::from_secs(600))), Duration::from_secs(60));
    }

    #[test]
    fn option_errors_name_the_option_not_its_value() {
        let e = Service::from_options("email", serde_yaml_ng::from_str("host: h\nport: xoxb-secret\n").unwrap()).unwrap_err();
        assert!(e.starts_with("email option port:"), "{e}");
        assert!(!e.contains("xoxb-secret"), "{e}");
    }

    #[test]
    fn durations_are_nanoseconds_or_text() {
        #[derive(Deserialize)]
        struct D {
            #[serde(default, deserialize_with = "duration")]
            d: Option<Duration>,
        }
        let parse = |y: &str| serde_yaml_ng::from_str::<D>(y).unwrap().d;
        assert_eq!(parse("d: 1000000000"), Some(Duration::from_secs(1)));
        assert_eq!(parse("d: 250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("d: 1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("{}"), None);
    }
}
