//! The controller's delivery (the notifier, without a cluster): who gets an event's
//! notification, once per occurrence, retries, conditions and `oncePer`.

use std::time::Duration;

use rollouts_core::state::{EventType, State};
use rollouts_shell::notifications::notifier::Notifier;
use serde_json::{json, Value};

use super::capture::Capture;
use super::services::{config, rollout};

const ABORTED: &str = "Rollout aborted update to revision 2";

fn state(ro: Value) -> State {
    State { rollout: Some(serde_json::from_value(ro).unwrap()), ..State::default() }
}

fn subscribed(annotations: Value) -> Value {
    let mut ro = rollout();
    ro["metadata"]["annotations"] = annotations;
    ro
}

fn hook_config(server: &Capture, extra: &[(&str, &str)]) -> rollouts_shell::notifications::Config {
    let mut data = vec![
        ("service.webhook.hook", format!("url: {}\nretryWaitMin: 50ms\nretryWaitMax: 100ms\nretryMax: 1\n", server.url())),
        (
            "template.rollout-aborted",
            "webhook:\n  hook:\n    method: POST\n    path: /{{.rollout.metadata.name}}\n    body: '{{.recipient}}'\n".to_string(),
        ),
    ];
    data.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config(&pairs, &[])
}

fn notify(n: &Notifier, st: &State, reason: &str, message: &str) {
    let before = n.before(st);
    n.notify("shop", "demo", st, EventType::Warning, reason, message, &before);
}

/// Waits a little so that a notification that should not come would have.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

fn recipients(server: &Capture) -> Vec<String> {
    let mut r: Vec<String> = server.requests().into_iter().map(|r| r.body).collect();
    r.sort();
    r
}

#[tokio::test]
async fn an_event_goes_once_to_each_subscription_and_not_again_when_recorded_again_or_after_a_restart() {
    let server = Capture::start((200, "ok")).await;
    let cfg = || hook_config(&server, &[("subscriptions", "- recipients: ['hook:c']\n  triggers: [on-rollout-aborted]\n")]);
    let ro = subscribed(json!({
        "rollout.argoproj.io/revision": "2",
        "notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "a; b",
    }));
    let st = state(ro.clone());
    let first = Notifier::offline(cfg());
    notify(&first, &st, "RolloutAborted", ABORTED);
    server.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(recipients(&server), ["a", "b", "c"], "the annotation's two recipients and the default subscription");
    assert!(server.requests().iter().all(|r| r.method == "POST" && r.path == "/demo"));

    // The same event recorded again (a reconcile repeated after a failed status write).
    notify(&first, &st, "RolloutAborted", ABORTED);
    settle().await;
    assert_eq!(server.requests().len(), 3, "sent again: {:?}", recipients(&server));

    // A restarted controller reads the record from the Rollout's annotation.
    let record = first.recorded("shop", "demo").await.expect("a record");
    let entries: serde_json::Map<String, Value> = serde_json::from_str(&record).unwrap();
    assert_eq!(entries.len(), 3, "{record}");
    assert!(entries.keys().all(|k| k.contains(":on-rollout-aborted:[0].2jmj7l5rSw0yVb_vlWAYkK_YBwk:hook:")), "{record}");
    let mut annotated = ro.clone();
    annotated["metadata"]["annotations"]["notified.notifications.argoproj.io"] = record.into();
    let restarted = Notifier::offline(cfg());
    notify(&restarted, &state(annotated.clone()), "RolloutAborted", ABORTED);
    settle().await;
    assert_eq!(server.requests().len(), 3, "sent again after a restart: {:?}", recipients(&server));

    // A later abort (the status moved on: a retry, a new condition) is a new occurrence.
    let mut later = annotated;
    later["status"]["conditions"] = json!([{"type": "Progressing", "status": "True", "reason": "RolloutRetry", "lastTransitionTime": "2024-01-01T00:00:00Z", "lastUpdateTime": "2024-01-01T00:00:00Z", "message": "retried"}]);
    notify(&restarted, &state(later), "RolloutAborted", ABORTED);
    server.wait_for(6, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn events_without_a_subscription_or_a_trigger_send_nothing() {
    let server = Capture::start((200, "ok")).await;
    let n = Notifier::offline(hook_config(&server, &[]));
    let st = state(subscribed(json!({"notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "a"})));
    notify(&n, &st, "RolloutCompleted", "Rollout completed update to revision 2");
    let unconfigured = state(subscribed(json!({"notifications.argoproj.io/subscribe.on-switch-service.hook": "a"})));
    notify(&n, &unconfigured, "SwitchService", "Switched selector");
    settle().await;
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // The subscribed event still goes out.
    notify(&n, &st, "RolloutAborted", ABORTED);
    server.wait_for(1, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_failed_delivery_is_retried_then_left_unrecorded_so_the_event_can_be_sent_later() {
    let server = Capture::start((200, "ok")).await;
    server.script(&[(500, "down"), (500, "down")]);
    let n = Notifier::offline(hook_config(&server, &[]));
    let st = state(subscribed(json!({"notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "a"})));
    notify(&n, &st, "RolloutAborted", ABORTED);
    server.wait_for(2, Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(server.requests().len(), 2, "retryMax 1: two attempts");
    assert_eq!(n.recorded("shop", "demo").await.as_deref(), Some("{}"), "nothing recorded as sent");
    notify(&n, &st, "RolloutAborted", ABORTED);
    server.wait_for(3, Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(n.recorded("shop", "demo").await.map(|r| r.matches("hook:a").count()), Some(1));
}

#[tokio::test]
async fn conditions_choose_what_is_sent_and_once_per_sends_once_per_value() {
    let server = Capture::start((200, "ok")).await;
    let trigger = "- when: rollout.status.abort == true\n  oncePer: rollout.metadata.annotations['rollout.argoproj.io/revision']\n  send: [rollout-aborted]\n\
                   - when: rollout.spec.replicas > 5\n  send: [rollout-aborted]\n";
    let n = Notifier::offline(hook_config(&server, &[("trigger.on-rollout-aborted", trigger)]));
    let st = state(subscribed(json!({
        "rollout.argoproj.io/revision": "2",
        "notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "a",
    })));
    notify(&n, &st, "RolloutAborted", ABORTED);
    server.wait_for(1, Duration::from_secs(10)).await;
    // Another abort of the same revision: once per revision.
    notify(&n, &st, "RolloutAborted", "Rollout aborted update to revision 2: analysis failed");
    settle().await;
    assert_eq!(server.requests().len(), 1, "oncePer: one per revision");
    let record = n.recorded("shop", "demo").await.unwrap();
    assert!(record.contains("\"2:on-rollout-aborted:[0]."), "{record}");
}

/// A namespace's subscription annotations hold for every rollout in it, beside the rollout's own.
#[tokio::test]
async fn a_namespace_subscription_notifies_every_rollout_in_it() {
    let server = Capture::start((200, "ok")).await;
    let n = Notifier::offline(hook_config(&server, &[]));
    let annotations = [("notifications.argoproj.io/subscribe.on-rollout-aborted.hook".to_string(), "ops".to_string())].into();
    n.set_namespace_annotations("shop", &annotations);
    n.set_namespace_annotations("other", &[("notifications.argoproj.io/subscribe.on-rollout-aborted.hook".to_string(), "elsewhere".to_string())].into());
    let st = state(subscribed(json!({"notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "team"})));
    notify(&n, &st, "RolloutAborted", ABORTED);
    server.wait_for(2, Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(recipients(&server), ["ops", "team"], "the namespace's and the rollout's, not another namespace's");
    // Without the namespace's annotation any more, only the rollout's own remains.
    n.set_namespace_annotations("shop", &Default::default());
    let later = state(subscribed(json!({"notifications.argoproj.io/subscribe.on-rollout-aborted.hook": "team", "rollout.argoproj.io/revision": "3"})));
    notify(&n, &later, "RolloutAborted", "Rollout aborted update to revision 3");
    server.wait_for(3, Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(recipients(&server), ["ops", "team", "team"]);
}
