//! The Slack service: Web API `chat.postMessage` (JSON, `Authorization: Bearer <token>`) to the
//! recipient channel, with the message as `text` and the template's `attachments` and
//! `blocks`; a template's `groupingKey` threads messages (kept in memory, like the engine's),
//! `deliveryPolicy: Update | PostAndUpdate` updates the thread's first message
//! (`chat.update`). Options: `token`, `username`, `icon` (`:emoji:` or a URL), `apiURL`
//! (default `https://slack.com/api/`), `disableUnfurl`, `insecureSkipVerify`.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{snippet, transport_error, Http, SendError};
use crate::notifications::subscriptions::Destination;
use crate::notifications::templates::Notification;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub icon: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub signing_secret: String,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default, rename = "apiURL")]
    pub api_url: String,
    #[serde(default)]
    pub disable_unfurl: bool,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

pub struct Slack {
    pub opts: Options,
}

/// The default Web API base.
pub const API_URL: &str = "https://slack.com/api/";

/// (recipient, grouping key) → the first message's `ts` and channel id.
type Threads = BTreeMap<(String, String), (String, String)>;

/// The thread of each grouping key, for the life of the process (as in the engine).
static THREADS: LazyLock<Mutex<Threads>> = LazyLock::new(Mutex::default);

fn threads() -> std::sync::MutexGuard<'static, Threads> {
    THREADS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Slack {
    /// The message body without `channel`: text, identity, attachments, blocks.
    pub fn message(&self, n: &Notification) -> Result<Map<String, Value>, SendError> {
        let mut body = Map::new();
        body.insert("text".into(), n.message.clone().into());
        let slack = n.slack.clone().unwrap_or_default();
        let username = if slack.username.is_empty() { &self.opts.username } else { &slack.username };
        if !username.is_empty() {
            body.insert("username".into(), username.clone().into());
        }
        let icon = if slack.icon.is_empty() { &self.opts.icon } else { &slack.icon };
        if icon.len() > 2 && icon.starts_with(':') && icon.ends_with(':') {
            body.insert("icon_emoji".into(), icon.clone().into());
        } else if icon.starts_with("http://") || icon.starts_with("https://") {
            body.insert("icon_url".into(), icon.clone().into());
        } else if !icon.is_empty() {
            tracing::warn!(icon = %icon, "the Slack icon is neither an :emoji: nor a URL; sending without it");
        }
        for (field, text) in [("attachments", &slack.attachments), ("blocks", &slack.blocks)] {
            if text.trim().is_empty() {
                continue;
            }
            let parsed: Value = serde_json::from_str(text)
                .map_err(|e| SendError::permanent(format!("slack: the template's {field} are not JSON: {e}")))?;
            body.insert(field.into(), parsed);
        }
        if self.opts.disable_unfurl {
            body.insert("unfurl_links".into(), false.into());
            body.insert("unfurl_media".into(), false.into());
        }
        Ok(body)
    }

    pub async fn send(&self, http: &Http, n: &Notification, dest: &Destination) -> Result<(), SendError> {
        let base = if self.opts.api_url.is_empty() { API_URL.to_string() } else { self.opts.api_url.clone() };
        let base = if base.ends_with('/') { base } else { format!("{base}/") };
        let slack = n.slack.clone().unwrap_or_default();
        let group = (dest.recipient.clone(), slack.grouping_key.clone());
        let thread = if slack.grouping_key.is_empty() { None } else { threads().get(&group).cloned() };
        let policy = slack.delivery_policy.as_str();
        let message = self.message(n)?;
        if thread.is_none() || matches!(policy, "" | "Post" | "PostAndUpdate") {
            let mut body = message.clone();
            body.insert("channel".into(), dest.recipient.clone().into());
            if let Some((ts, _)) = &thread {
                body.insert("thread_ts".into(), ts.clone().into());
                if slack.notify_broadcast {
                    body.insert("reply_broadcast".into(), true.into());
                }
            }
            let answer = self.call(http, &base, "chat.postMessage", Value::Object(body)).await?;
            let ts = answer.get("ts").and_then(Value::as_str).unwrap_or_default().to_string();
            let channel = answer.get("channel").and_then(Value::as_str).unwrap_or(&dest.recipient).to_string();
            if !slack.grouping_key.is_empty() && thread.is_none() && !ts.is_empty() {
                threads().insert(group, (ts, channel));
            }
        }
        if let Some((ts, channel)) = thread.filter(|_| matches!(policy, "Update" | "PostAndUpdate")) {
            let mut body = message;
            body.insert("channel".into(), channel.into());
            body.insert("ts".into(), ts.into());
            self.call(http, &base, "chat.update", Value::Object(body)).await?;
        }
        Ok(())
    }

    async fn call(&self, http: &Http, base: &str, method: &str, body: Value) -> Result<Value, SendError> {
        let resp = http
            .client(self.opts.insecure_skip_verify)
            .post(format!("{base}{method}"))
            .bearer_auth(&self.opts.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        if status.as_u16() == 429 {
            return Err(SendError { message: format!("slack {method}: rate limited"), retryable: true, retry_after });
        }
        if !status.is_success() {
            let message = format!("slack {method}: status {}: {}", status.as_u16(), snippet(&text, 200));
            return Err(SendError { message, retryable: status.is_server_error(), retry_after: None });
        }
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| SendError::transient(format!("slack {method}: the answer is not JSON: {}", snippet(&text, 200))))?;
        if answer.get("ok") != Some(&json!(true)) {
            let error = answer.get("error").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(SendError { message: format!("slack {method}: {error}"), retryable: error == "ratelimited", retry_after });
        }
        Ok(answer)
    }
}
