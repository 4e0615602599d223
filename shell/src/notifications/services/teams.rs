//! The Microsoft Teams service: a POST of a MessageCard to the incoming-webhook URL of the
//! recipient (`recipientUrls: {<recipient>: <url>}`, usually from the Secret), or of the
//! template's `teams.template` as is. The card carries the message as `text` (or
//! `teams.text`), `title`, `summary`, `themeColor`, `sections` (with `facts` as one more
//! section) and `potentialAction`. A connector answers `1`.
//!
//! The card's context key is `@context`, as the MessageCard format documents it
//! (notifications-engine writes `context`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{snippet, transport_error, Http, SendError};
use crate::notifications::subscriptions::Destination;
use crate::notifications::templates::Notification;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    #[serde(default)]
    pub recipient_urls: BTreeMap<String, String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

pub struct Teams {
    pub opts: Options,
}

/// The request body: the template's card as is, or a MessageCard.
pub fn card(n: &Notification) -> Result<String, SendError> {
    let teams = n.teams.clone().unwrap_or_default();
    if !teams.template.is_empty() {
        return Ok(teams.template);
    }
    let parse = |field: &str, text: &str| -> Result<Value, SendError> {
        serde_json::from_str(text).map_err(|e| SendError::permanent(format!("teams: the template's {field} are not JSON: {e}")))
    };
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "title": teams.title,
        "summary": teams.summary,
        "text": if teams.text.is_empty() { n.message.clone() } else { teams.text.clone() },
    });
    if !teams.theme_color.is_empty() {
        card["themeColor"] = teams.theme_color.clone().into();
    }
    let mut sections = Vec::new();
    if !teams.sections.is_empty() {
        match parse("sections", &teams.sections)? {
            Value::Array(items) => sections.extend(items),
            other => sections.push(other),
        }
    }
    if !teams.facts.is_empty() {
        sections.push(json!({"facts": parse("facts", &teams.facts)?}));
    }
    if !sections.is_empty() {
        card["sections"] = Value::Array(sections);
    }
    if !teams.potential_action.is_empty() {
        card["potentialAction"] = parse("potentialAction", &teams.potential_action)?;
    }
    Ok(card.to_string())
}

impl Teams {
    pub async fn send(&self, http: &Http, n: &Notification, dest: &Destination) -> Result<(), SendError> {
        let url = self
            .opts
            .recipient_urls
            .get(&dest.recipient)
            .ok_or_else(|| SendError::permanent(format!("teams {}: no webhook configured for recipient {:?}", dest.service, dest.recipient)))?;
        let body = card(n)?;
        let resp = http
            .client(self.opts.insecure_skip_verify)
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // A connector answers 200 "1"; a Workflows webhook 202 with no body.
        if status.is_success() && matches!(text.trim(), "1" | "") {
            return Ok(());
        }
        Err(SendError {
            message: format!("teams {}: webhook post error (status {}): {}", dest.service, status.as_u16(), snippet(&text, 200)),
            retryable: status.is_server_error() || status.as_u16() == 429,
            retry_after: None,
        })
    }
}
