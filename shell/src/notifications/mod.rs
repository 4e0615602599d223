//! Notifications, configured as Argo Rollouts configures them (its notifications-engine):
//! the `argo-rollouts-notification-configmap` (`trigger.<name>`, `template.<name>`,
//! `service.<type>[.<name>]`, `defaultTriggers`, `subscriptions`, `context`), the
//! `argo-rollouts-notification-secret` (`$key` in a service's configuration), and
//! subscriptions by annotation on a Rollout
//! (`notifications.argoproj.io/subscribe.<trigger>.<service>: <recipient>;<recipient>`).
//!
//! Every event the core records on a Rollout (`RolloutAborted`) fires the trigger named after
//! it (`on-rollout-aborted`), as Argo's event recorder does. Delivery is the shell's: queued,
//! sent in the background with bounded retries, never in the way of a reconcile; what was sent
//! is written on the Rollout (`notified.notifications.argoproj.io`) so that an event a
//! restarted controller records again is not sent twice.
//!
//! - [`config`]: the ConfigMap and Secret, parsed and compiled (errors name the key);
//! - [`subscriptions`]: who is subscribed to what (annotations, default subscriptions);
//! - [`triggers`]: the `when` / `oncePer` conditions (expr-lang);
//! - [`templates`]: Go templates with the Sprig functions ([`sprig`]);
//! - [`services`]: webhook, Slack, Microsoft Teams, e-mail (and the CLI's console);
//! - [`sent`]: the record of sent notifications on the Rollout;
//! - [`notifier`]: the controller's side: the watched configuration and the delivery queue.

pub mod config;
pub mod notifier;
pub mod sent;
pub mod services;
pub mod sprig;
pub mod subscriptions;
pub mod templates;
pub mod triggers;

pub use config::{Config, ConfigError, CONFIG_MAP, SECRET};
pub use notifier::Notifier;

/// The trigger an event reason fires: `on-` and the reason in kebab case
/// (`RolloutStepCompleted` → `on-rollout-step-completed`, `AnalysisRunFailed` →
/// `on-analysis-run-failed`), as Argo's recorder names it.
pub fn trigger_for_reason(reason: &str) -> String {
    // Argo's two rules: a capital followed by lower-case letters starts a word
    // (`(.)([A-Z][a-z]+)`), and a capital after a lower-case letter or digit does
    // (`([a-z0-9])([A-Z])`).
    let chars: Vec<char> = reason.chars().collect();
    let mut first = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = i > 0 && c.is_ascii_uppercase() && chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
        if starts_word && !first.ends_with('-') {
            first.push('-');
        }
        first.push(c);
    }
    let mut out = String::new();
    let mut prev: Option<char> = None;
    for c in first.chars() {
        if c.is_ascii_uppercase() && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit()) {
            out.push('-');
        }
        out.push(c);
        prev = Some(c);
    }
    format!("on-{}", out.to_lowercase())
}

/// Replaces every secret value in `text` with `***`: error messages of a service may echo
/// what it was configured with (a URL carrying a token), and they end up in logs.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    // Longest first, so a secret containing another is replaced whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_reasons_become_argo_trigger_names() {
        for (reason, trigger) in [
            ("RolloutAborted", "on-rollout-aborted"),
            ("RolloutCompleted", "on-rollout-completed"),
            ("RolloutStepCompleted", "on-rollout-step-completed"),
            ("RolloutUpdated", "on-rollout-updated"),
            ("RolloutPaused", "on-rollout-paused"),
            ("ScalingReplicaSet", "on-scaling-replica-set"),
            ("AnalysisRunRunning", "on-analysis-run-running"),
            ("AnalysisRunError", "on-analysis-run-error"),
            ("AnalysisRunFailed", "on-analysis-run-failed"),
            ("SwitchService", "on-switch-service"),
            ("NewReplicaSetCreated", "on-new-replica-set-created"),
        ] {
            assert_eq!(trigger_for_reason(reason), trigger, "{reason}");
        }
    }

    #[test]
    fn redaction_replaces_every_secret_value_longest_first() {
        let secrets = vec!["tok".to_string(), "token-123".to_string()];
        assert_eq!(redact("url https://x/?t=token-123 and tok", &secrets), "url https://x/?t=*** and ***");
        // Too short to be told from ordinary text: kept.
        assert_eq!(redact("a b", &["a".to_string()]), "a b");
    }
}
