//! Webhook, Slack and Teams against servers on 127.0.0.1 that check the request each
//! service documents.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rollouts_shell::notifications::notifier::{render, variables_of};
use rollouts_shell::notifications::services::{Http, SendError};
use rollouts_shell::notifications::subscriptions::Destination;
use rollouts_shell::notifications::Config;
use serde_json::{json, Value};

use super::capture::Capture;

pub fn rollout() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "demo", "namespace": "shop", "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {
            "replicas": 3,
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
            "template": {"spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:yellow"}]}}
        },
        "status": {"currentStepIndex": 1, "abort": true, "phase": "Degraded"}
    })
}

pub fn config(data: &[(&str, &str)], secret: &[(&str, &str)]) -> Config {
    let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    Config::parse(&map(data), &map(secret)).unwrap()
}

/// Renders `template` for the rollout and sends it to `service:recipient`, with retries.
pub async fn send(cfg: &Config, template: &str, service: &str, recipient: &str) -> Result<u32, (SendError, u32)> {
    let dest = Destination { service: service.into(), recipient: recipient.into() };
    let svc = cfg.services[service].service.as_ref().unwrap();
    let vars = variables_of(rollout(), Value::Null, cfg);
    let n = render(cfg, &[template.to_string()], &vars, &dest, svc.kind()).unwrap();
    svc.send_with_retries(&Http::new().unwrap(), &n, &dest, |_, _| {}).await
}

#[tokio::test]
async fn webhook_sends_the_templates_method_path_body_with_headers_and_basic_auth() {
    let server = Capture::start((200, "ok")).await;
    let cfg = config(
        &[
            ("service.webhook.ci", "url: $ci-url/api/\nheaders:\n- name: X-Token\n  value: $token\n- name: Content-Type\n  value: application/json\nbasicAuth:\n  username: bot\n  password: $password\n"),
            ("template.ci-status", "webhook:\n  ci:\n    method: POST\n    path: /rollouts/{{.rollout.metadata.name}}\n    body: |\n      {\"rollout\": \"{{.rollout.metadata.name}}\", \"to\": \"{{.recipient}}\", \"step\": {{add .rollout.status.currentStepIndex 1}}}\n"),
        ],
        &[("ci-url", &server.url()), ("token", "t-123"), ("password", "pw")],
    );
    assert_eq!(send(&cfg, "ci-status", "ci", "builds").await.unwrap(), 1);
    let got = server.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/rollouts/demo"));
    assert_eq!(r.header("x-token"), "t-123");
    assert_eq!(r.header("authorization"), "Basic Ym90OnB3", "basic auth of bot:pw");
    assert_eq!(r.json(), json!({"rollout": "demo", "to": "builds", "step": 2}));
}

#[tokio::test]
async fn webhook_without_a_request_in_the_template_gets_the_url_with_the_message() {
    let server = Capture::start((204, "")).await;
    let cfg = config(&[("service.webhook", &format!("url: {}/hook", server.url()))], &[]);
    send(&cfg, "rollout-aborted", "webhook", "").await.unwrap();
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/hook"));
    assert_eq!(r.body, "Rollout demo has been aborted.");
}

#[tokio::test]
async fn webhook_retries_5xx_with_growing_waits_and_gives_up_at_once_on_4xx() {
    let server = Capture::start((200, "ok")).await;
    server.script(&[(503, "busy"), (502, "busy")]);
    let cfg = config(
        &[("service.webhook.ci", &format!("url: {}\nretryWaitMin: 100ms\nretryWaitMax: 1s\nretryMax: 3\n", server.url()))],
        &[],
    );
    let started = Instant::now();
    assert_eq!(send(&cfg, "rollout-aborted", "ci", "").await.unwrap(), 3, "two 5xx, then delivered");
    assert!(started.elapsed() >= Duration::from_millis(300), "waited 100 ms then 200 ms: {:?}", started.elapsed());

    server.script(&[(404, "no such hook")]);
    let (e, attempts) = send(&cfg, "rollout-aborted", "ci", "").await.unwrap_err();
    assert_eq!(attempts, 1);
    assert!(!e.retryable && e.message.contains("404") && e.message.contains("no such hook"), "{e:?}");

    server.script(&[(500, "down"); 4]);
    let (e, attempts) = send(&cfg, "rollout-aborted", "ci", "").await.unwrap_err();
    assert_eq!(attempts, 4, "retryMax 3: four attempts in all");
    assert!(e.message.contains("500"), "{e:?}");
    assert_eq!(server.requests().len(), 3 + 1 + 4);
}

#[tokio::test]
async fn slack_posts_chat_post_message_json_with_the_bearer_token_and_threads_by_grouping_key() {
    let server = Capture::start((200, r#"{"ok": true, "channel": "C123", "ts": "1700000000.000100"}"#)).await;
    let cfg = config(
        &[
            ("service.slack", &format!("token: $slack-token\napiURL: {}/api/\nusername: rollouts\nicon: ':rocket:'\n", server.url())),
            ("template.threaded", "message: step {{.rollout.status.currentStepIndex}}\nslack:\n  groupingKey: '{{.rollout.metadata.name}}'\n  notifyBroadcast: true\n"),
        ],
        &[("slack-token", "xoxb-test")],
    );
    send(&cfg, "rollout-aborted", "slack", "deploys").await.unwrap();
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/chat.postMessage"));
    assert_eq!(r.header("authorization"), "Bearer xoxb-test");
    assert!(r.header("content-type").starts_with("application/json"), "{}", r.header("content-type"));
    let body = r.json();
    assert_eq!(body["channel"], "deploys");
    assert_eq!(body["text"], "Rollout demo has been aborted.");
    assert_eq!(body["username"], "rollouts");
    assert_eq!(body["icon_emoji"], ":rocket:");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["title"], "demo");
    assert_eq!(attachment["color"], "#E01E5A");
    assert_eq!(attachment["fields"][1], json!({"title": "app", "value": "argoproj/rollouts-demo:yellow", "short": true}));

    send(&cfg, "threaded", "slack", "deploys").await.unwrap();
    send(&cfg, "threaded", "slack", "deploys").await.unwrap();
    let got = server.requests();
    assert!(got[1].json().get("thread_ts").is_none(), "the first message of a group starts the thread");
    assert_eq!(got[2].json()["thread_ts"], "1700000000.000100");
    assert_eq!(got[2].json()["reply_broadcast"], true);
}

#[tokio::test]
async fn slack_errors_are_reported_and_a_rate_limit_is_retried_after_its_delay() {
    let server = Capture::start((200, r#"{"ok": false, "error": "channel_not_found"}"#)).await;
    let cfg = config(&[("service.slack", &format!("token: xoxb-1\napiURL: {}\n", server.url()))], &[]);
    let (e, attempts) = send(&cfg, "rollout-aborted", "slack", "nope").await.unwrap_err();
    assert_eq!((e.message.as_str(), attempts), ("slack chat.postMessage: channel_not_found", 1));
    assert_eq!(server.requests()[0].path, "/chat.postMessage", "apiURL without a trailing slash");

    server.script(&[(429, "")]);
    let _ = server.requests();
    let started = Instant::now();
    let (e, attempts) = send(&cfg, "rollout-aborted", "slack", "nope").await.unwrap_err();
    assert_eq!(attempts, 2, "429 retried, then the answer's error: {e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "no Retry-After: the policy's first wait (1 s)");
}

#[tokio::test]
async fn teams_posts_a_message_card_to_the_recipients_webhook() {
    let server = Capture::start((200, "1")).await;
    let cfg = config(
        &[
            ("service.teams", "recipientUrls:\n  ops: $teams-ops\n"),
            (
                "template.card",
                "message: Rollout {{.rollout.metadata.name}} aborted\nteams:\n  title: '{{.rollout.metadata.name}}'\n  themeColor: '#FF0000'\n  facts: |\n    [{\"name\": \"Revision\", \"value\": \"{{index .rollout.metadata.annotations \"rollout.argoproj.io/revision\"}}\"}]\n  potentialAction: '[{\"@type\": \"OpenUri\", \"name\": \"Open\", \"targets\": [{\"os\": \"default\", \"uri\": \"https://example.invalid\"}]}]'\n",
            ),
        ],
        &[("teams-ops", &format!("{}/webhookb2/abc", server.url()))],
    );
    send(&cfg, "card", "teams", "ops").await.unwrap();
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/webhookb2/abc"));
    assert!(r.header("content-type").starts_with("application/json"));
    let card = r.json();
    assert_eq!(card["@type"], "MessageCard");
    assert_eq!(card["@context"], "https://schema.org/extensions");
    assert_eq!(card["title"], "demo");
    assert_eq!(card["text"], "Rollout demo aborted");
    assert_eq!(card["themeColor"], "#FF0000");
    assert_eq!(card["sections"], json!([{"facts": [{"name": "Revision", "value": "2"}]}]));
    assert_eq!(card["potentialAction"][0]["@type"], "OpenUri");

    server.script(&[(200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 400")]);
    let (e, _) = send(&cfg, "card", "teams", "ops").await.unwrap_err();
    assert!(e.message.contains("webhook post error") && e.message.contains("HTTP error 400"), "{e:?}");
    assert!(!e.message.contains("webhookb2"), "the webhook URL (a secret) is not in the error: {e:?}");

    let (e, _) = send(&cfg, "card", "teams", "unknown").await.unwrap_err();
    assert!(e.message.contains("no webhook configured for recipient \"unknown\""), "{e:?}");
}
