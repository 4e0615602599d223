//! The record of sent notifications, kept on the Rollout in the annotation
//! `notified.notifications.argoproj.io` as notifications-engine keeps it: a JSON object from
//! key to the Unix time of sending, at most [`MAX_ENTRIES`] (the oldest dropped first).
//!
//! A key is `[<oncePer>:]<trigger>:<condition key>:<service>:<recipient>`, the engine's. The
//! engine evaluates conditions on every change of an object; here a trigger fires on an
//! event, so a key without `oncePer` is prefixed with the event's occurrence (a digest of the
//! event and of the Rollout's status before the reconcile that recorded it): the same event
//! recorded again (a reconcile repeated because its status write failed, or a controller that
//! restarted before the status landed) is the same occurrence and is not sent twice, while
//! the same reason later (a second abort after a retry) is a new one.

use std::collections::BTreeMap;

/// The annotation.
pub const ANNOTATION: &str = "notified.notifications.argoproj.io";
/// The engine's bound on entries.
pub const MAX_ENTRIES: usize = 100;

/// Sent keys and when they were sent (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent(pub BTreeMap<String, i64>);

impl Sent {
    /// Reads the annotation's value; anything unreadable is an empty record, as in the engine.
    pub fn parse(value: Option<&str>) -> Sent {
        value.and_then(|v| serde_json::from_str(v).ok()).map(Sent).unwrap_or_default()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Records `key` as sent at `now`, dropping the oldest entries beyond [`MAX_ENTRIES`].
    pub fn insert(&mut self, key: String, now: i64) {
        self.0.insert(key, now);
        while self.0.len() > MAX_ENTRIES {
            let Some(oldest) = self.0.iter().min_by_key(|(k, t)| (**t, (*k).clone())).map(|(k, _)| k.clone()) else { break };
            self.0.remove(&oldest);
        }
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_string())
    }
}

/// The key of one notification: condition `condition_key` of `trigger` sent to
/// `service:recipient`, once per `once_per` when the condition has one, else once per
/// `occurrence`.
pub fn key(once_per: Option<&str>, occurrence: &str, trigger: &str, condition_key: &str, service: &str, recipient: &str) -> String {
    let base = format!("{trigger}:{condition_key}:{service}:{recipient}");
    match once_per {
        Some(v) => format!("{v}:{base}"),
        None => format!("{occurrence}:{base}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_and_writes_the_engines_json() {
        let s = Sent::parse(Some(r#"{"on-rollout-aborted:[0].abc:slack:ops":1700000000}"#));
        assert!(s.contains("on-rollout-aborted:[0].abc:slack:ops"));
        assert_eq!(s.to_annotation(), r#"{"on-rollout-aborted:[0].abc:slack:ops":1700000000}"#);
        assert_eq!(Sent::parse(Some("not json")), Sent::default());
        assert_eq!(Sent::parse(None), Sent::default());
    }

    #[test]
    fn the_record_keeps_the_newest_hundred() {
        let mut s = Sent::default();
        for i in 0..150 {
            s.insert(format!("k{i:03}"), 1000 + i);
        }
        assert_eq!(s.0.len(), MAX_ENTRIES);
        assert!(!s.contains("k049"));
        assert!(s.contains("k050") && s.contains("k149"));
    }

    #[test]
    fn keys_are_once_per_value_or_once_per_occurrence() {
        assert_eq!(key(Some("3"), "occ", "on-x", "[0].h", "slack", "ops"), "3:on-x:[0].h:slack:ops");
        assert_eq!(key(None, "occ", "on-x", "[0].h", "webhook", ""), "occ:on-x:[0].h:webhook:");
    }
}
