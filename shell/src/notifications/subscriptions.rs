//! Who receives what: subscription annotations on a Rollout and the ConfigMap's default
//! subscriptions, as destinations (service and recipient) per trigger.
//!
//! - `notifications.argoproj.io/subscribe.<trigger>.<service>: a;b` subscribes recipients `a`
//!   and `b` of `<service>` to `<trigger>`; an empty value is one subscription with an empty
//!   recipient (a webhook needs none);
//! - `notifications.argoproj.io/subscribe.<service>: …` (no trigger) subscribes to the
//!   service's `defaultTriggers.<service>`, else to `defaultTriggers`;
//! - `notifications.argoproj.io/subscriptions`: a YAML list of `{trigger: [..],
//!   destinations: [{service, recipients: [..]}]}`;
//! - the ConfigMap's `subscriptions`: `{recipients: [service:recipient], triggers: [..],
//!   selector: <label selector>}` for every Rollout whose labels match.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The annotation prefix of subscriptions.
pub const ANNOTATION_PREFIX: &str = "notifications.argoproj.io";

/// Where one notification goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Destination {
    /// The service's name (`service.<type>.<name>`, or the type when unnamed).
    pub service: String,
    /// Channel, address, Teams recipient name, … (may be empty).
    pub recipient: String,
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.service, self.recipient)
    }
}

impl Destination {
    /// `service:recipient` (the CLI's `--recipient` and default subscriptions' form); the
    /// recipient may be missing.
    pub fn parse(s: &str) -> Destination {
        let mut parts = s.split(':');
        let service = parts.next().unwrap_or_default().to_string();
        let recipient = parts.next().unwrap_or_default().to_string();
        Destination { service, recipient }
    }
}

/// Destinations by trigger, in the order found, without duplicates.
pub type Destinations = BTreeMap<String, Vec<Destination>>;

/// Splits an annotation's value into recipients: `;`-separated, trimmed, empty ones dropped.
pub fn parse_recipients(value: &str) -> Vec<String> {
    value.split(';').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect()
}

#[derive(Deserialize)]
struct AnnotationSubscription {
    #[serde(default)]
    trigger: Vec<String>,
    #[serde(default)]
    destinations: Vec<AnnotationDestination>,
}

#[derive(Deserialize)]
struct AnnotationDestination {
    #[serde(default)]
    service: String,
    #[serde(default)]
    recipients: Vec<String>,
}

fn add(dests: &mut Destinations, trigger: &str, service: &str, recipient: &str) {
    let list = dests.entry(trigger.to_string()).or_default();
    let d = Destination { service: service.to_string(), recipient: recipient.to_string() };
    if !list.contains(&d) {
        list.push(d);
    }
}

/// The destinations a Rollout's annotations subscribe, by trigger. Malformed
/// `subscriptions` annotations are skipped with a warning, as the engine does.
pub fn from_annotations(
    annotations: &BTreeMap<String, String>,
    default_triggers: &[String],
    service_default_triggers: &BTreeMap<String, Vec<String>>,
) -> Destinations {
    let prefix = format!("{ANNOTATION_PREFIX}/subscribe.");
    let yaml_key = format!("{ANNOTATION_PREFIX}/subscriptions");
    let mut dests = Destinations::new();
    let mut subscribe = |trigger: &str, service: &str, recipients: &[String]| {
        let triggers: Vec<String> = if !trigger.is_empty() {
            vec![trigger.to_string()]
        } else if let Some(t) = service_default_triggers.get(service) {
            t.clone()
        } else {
            default_triggers.to_vec()
        };
        for recipient in recipients {
            for t in &triggers {
                add(&mut dests, t, service, recipient);
            }
        }
    };
    for (key, value) in annotations {
        if let Some(rest) = key.strip_prefix(&prefix) {
            let parts: Vec<&str> = rest.split('.').collect();
            let (trigger, service) = match parts[..] {
                [service] => ("", service),
                [trigger, service, ..] => (trigger, service),
                [] => continue,
            };
            let recipients = if value.is_empty() { vec![String::new()] } else { parse_recipients(value) };
            subscribe(trigger, service, &recipients);
        } else if *key == yaml_key {
            match serde_yaml_ng::from_str::<Vec<AnnotationSubscription>>(value) {
                Ok(subs) => {
                    for s in subs {
                        let triggers = if s.trigger.is_empty() { vec![String::new()] } else { s.trigger };
                        for t in &triggers {
                            for d in &s.destinations {
                                subscribe(t, &d.service, &d.recipients);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(annotation = %key, error = %e, "cannot read the subscriptions annotation; ignoring it"),
            }
        }
    }
    dests
}

/// A default subscription of the ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultSubscription {
    /// `service:recipient`.
    pub recipients: Vec<String>,
    /// Empty: every default trigger.
    pub triggers: Vec<String>,
    pub selector: Selector,
}

#[derive(Deserialize)]
struct RawSubscription {
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    triggers: Vec<String>,
    #[serde(default)]
    selector: String,
}

impl DefaultSubscription {
    /// Parses the ConfigMap's `subscriptions`.
    pub fn parse_list(yaml: &str) -> Result<Vec<DefaultSubscription>, String> {
        let raw: Option<Vec<RawSubscription>> = serde_yaml_ng::from_str(yaml).map_err(|e| format!("not a list of subscriptions: {e}"))?;
        raw.unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let selector = Selector::parse(&r.selector).map_err(|e| format!("subscription {i}: selector {:?}: {e}", r.selector))?;
                Ok(DefaultSubscription { recipients: r.recipients, triggers: r.triggers, selector })
            })
            .collect()
    }
}

/// The default subscriptions' destinations for an object with these labels.
pub fn global(subs: &[DefaultSubscription], default_triggers: &[String], labels: &BTreeMap<String, String>) -> Destinations {
    let mut dests = Destinations::new();
    for s in subs {
        if !s.selector.matches(labels) {
            continue;
        }
        let triggers = if s.triggers.is_empty() { default_triggers } else { &s.triggers[..] };
        for t in triggers {
            for r in &s.recipients {
                let d = Destination::parse(r);
                add(&mut dests, t, &d.service, &d.recipient);
            }
        }
    }
    dests
}

/// Merges `other` into `into`, dropping duplicates.
pub fn merge(into: &mut Destinations, other: Destinations) {
    for (trigger, list) in other {
        for d in list {
            add(into, &trigger, &d.service, &d.recipient);
        }
    }
}

/// A Kubernetes label selector in its string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Parses a selector; the empty string selects everything.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for term in split_terms(s)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(label_key(key)?)
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(label_key(k)?, v.trim().to_string())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(label_key(k)?, v.trim().to_string())
            } else if let Some((k, set)) = set_term(term, " notin ")? {
                Requirement::NotIn(k, set)
            } else if let Some((k, set)) = set_term(term, " in ")? {
                Requirement::In(k, set)
            } else {
                Requirement::Exists(label_key(term)?)
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced ')'".into());
        }
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    terms.push(&s[start..]);
    Ok(terms)
}

fn set_term(term: &str, op: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let Some((k, rest)) = term.split_once(op) else { return Ok(None) };
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised set after{op}in {term:?}"))?;
    Ok(Some((label_key(k)?, inner.split(',').map(|v| v.trim().to_string()).collect())))
}

fn label_key(k: &str) -> Result<String, String> {
    let k = k.trim();
    let valid = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(k.to_string()) } else { Err(format!("invalid label key {k:?}")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn d(service: &str, recipient: &str) -> Destination {
        Destination { service: service.into(), recipient: recipient.into() }
    }

    #[test]
    fn recipients_are_semicolon_separated_trimmed_and_never_empty() {
        assert_eq!(parse_recipients("a; b ;;c;"), ["a", "b", "c"]);
        assert!(parse_recipients(" ; ").is_empty());
    }

    #[test]
    fn subscribe_annotations_name_trigger_service_and_recipients() {
        let ann = map(&[
            ("notifications.argoproj.io/subscribe.on-rollout-aborted.slack", "ops;dev"),
            ("notifications.argoproj.io/subscribe.on-rollout-aborted.ci", ""),
            ("notifications.argoproj.io/subscribe.on-rollout-completed.email", "a@x.io, b@x.io"),
            ("notifications.argoproj.io/subscribe.teams", "channel"),
            ("notifications.argoproj.io/subscribe.webhook", "w"),
            ("other.io/subscribe.on-x.slack", "nope"),
        ]);
        let defaults = vec!["on-rollout-completed".to_string()];
        let per_service = BTreeMap::from([("teams".to_string(), vec!["on-rollout-paused".to_string()])]);
        let dests = from_annotations(&ann, &defaults, &per_service);
        assert_eq!(dests["on-rollout-aborted"], [d("ci", ""), d("slack", "ops"), d("slack", "dev")]);
        assert_eq!(dests["on-rollout-completed"], [d("email", "a@x.io, b@x.io"), d("webhook", "w")]);
        assert_eq!(dests["on-rollout-paused"], [d("teams", "channel")]);
        assert_eq!(dests.len(), 3);
    }

    #[test]
    fn the_subscriptions_annotation_is_a_yaml_list() {
        let ann = map(&[(
            "notifications.argoproj.io/subscriptions",
            "- trigger: [on-rollout-aborted, on-rollout-paused]\n  destinations:\n  - service: slack\n    recipients: [a, b]\n",
        )]);
        let dests = from_annotations(&ann, &[], &BTreeMap::new());
        assert_eq!(dests["on-rollout-aborted"], [d("slack", "a"), d("slack", "b")]);
        assert_eq!(dests["on-rollout-paused"], [d("slack", "a"), d("slack", "b")]);
        let broken = map(&[("notifications.argoproj.io/subscriptions", "{not: [a list")]);
        assert!(from_annotations(&broken, &[], &BTreeMap::new()).is_empty());
    }

    #[test]
    fn default_subscriptions_apply_by_label_selector_and_default_triggers() {
        let subs = DefaultSubscription::parse_list(
            "- recipients: [slack:ops, webhook]\n  selector: team in (a, b),!skip\n- recipients: [email:x@y]\n  triggers: [on-rollout-aborted]\n",
        )
        .unwrap();
        let defaults = vec!["on-rollout-completed".to_string()];
        let a = global(&subs, &defaults, &map(&[("team", "a")]));
        assert_eq!(a["on-rollout-completed"], [d("slack", "ops"), d("webhook", "")]);
        assert_eq!(a["on-rollout-aborted"], [d("email", "x@y")]);
        let skipped = global(&subs, &defaults, &map(&[("team", "a"), ("skip", "")]));
        assert!(!skipped.contains_key("on-rollout-completed"));
        let other = global(&subs, &defaults, &map(&[("team", "c")]));
        assert!(!other.contains_key("on-rollout-completed"));
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels = map(&[("a", "1"), ("b", "2")]);
        for (sel, want) in [
            ("", true),
            ("a=1", true),
            ("a==1,b=2", true),
            ("a!=1", false),
            ("c!=1", true),
            ("a in (1,3)", true),
            ("a notin (1)", false),
            ("c notin (1)", true),
            ("c", false),
            ("!c", true),
            ("a", true),
        ] {
            assert_eq!(Selector::parse(sel).unwrap().matches(&labels), want, "{sel}");
        }
        assert!(Selector::parse("a in (1").is_err());
        assert!(Selector::parse("a b=c").is_err());
    }

    #[test]
    fn merging_drops_duplicates() {
        let mut a = Destinations::from([("t".to_string(), vec![d("s", "r")])]);
        merge(&mut a, Destinations::from([("t".to_string(), vec![d("s", "r"), d("s", "q")])]));
        assert_eq!(a["t"], [d("s", "r"), d("s", "q")]);
    }
}
