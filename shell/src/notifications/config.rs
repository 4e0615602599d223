//! The notification configuration: the ConfigMap's keys and the Secret's values, parsed and
//! compiled once per change, with errors that name the key.
//!
//! Keys, as notifications-engine reads them:
//! - `trigger.<name>`: a YAML list of conditions `{when, oncePer, send: [templates]}`;
//! - `template.<name>`: `{message, email, slack, teams, webhook, …}`, Go templates;
//! - `service.<type>` or `service.<type>.<name>`: a service's options, where `$key` is the
//!   value of `key` in the Secret;
//! - `defaultTriggers` (and `defaultTriggers.<service>`): the triggers of a subscription that
//!   names none;
//! - `subscriptions`: default subscriptions `{recipients: [service:recipient], triggers,
//!   selector}`;
//! - `context`: free-form values, `.context` in templates.
//!
//! Argo's catalog of triggers and templates (`on-rollout-aborted`, …) is built in: a
//! ConfigMap that defines a trigger or template of the same name replaces it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml_ng::Value as Yaml;

use super::services::Service;
use super::subscriptions::DefaultSubscription;
use super::templates::{CompiledTemplate, TemplateSpec};
use super::triggers::{CompiledTrigger, Condition};

/// Argo's ConfigMap name.
pub const CONFIG_MAP: &str = "argo-rollouts-notification-configmap";
/// Argo's Secret name.
pub const SECRET: &str = "argo-rollouts-notification-secret";

/// Argo's catalog (manifests/notifications): the default triggers and their templates, as
/// the data of a ConfigMap.
const CATALOG: &str = include_str!("catalog.yaml");

/// A key of the ConfigMap that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The ConfigMap key (`trigger.on-purple`, `service.webhook.ci`).
    pub key: String,
    pub message: String,
}

fn error(key: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.to_string() }
}

/// A configured service: its type, and the service, or why it cannot be used (an
/// unsupported type, an option of the wrong type). A broken service fails only the
/// notifications sent through it.
pub struct ServiceEntry {
    /// `webhook`, `slack`, `teams`, `email`, …
    pub kind: String,
    pub service: Result<Service, String>,
    /// The Secret's values this service's options use: redacted from its errors.
    pub secret_values: Vec<String>,
}

/// The parsed configuration.
pub struct Config {
    /// Services by name (`service.webhook.ci` → `ci`; `service.slack` → `slack`).
    pub services: BTreeMap<String, ServiceEntry>,
    /// Triggers by name, as written.
    pub triggers: BTreeMap<String, Vec<Condition>>,
    pub(crate) compiled_triggers: BTreeMap<String, CompiledTrigger>,
    /// Templates by name, as written.
    pub templates: BTreeMap<String, TemplateSpec>,
    pub(crate) compiled_templates: BTreeMap<String, CompiledTemplate>,
    /// `defaultTriggers`.
    pub default_triggers: Vec<String>,
    /// `defaultTriggers.<service>`.
    pub service_default_triggers: BTreeMap<String, Vec<String>>,
    /// `subscriptions`.
    pub subscriptions: Vec<DefaultSubscription>,
    /// `context`.
    pub context: BTreeMap<String, String>,
    /// The Secret's values by key (`.secrets` in templates).
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for Config {
    // Never prints the Secret or the services' options.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("triggers", &self.triggers.keys().collect::<Vec<_>>())
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .field("default_triggers", &self.default_triggers)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Parses the ConfigMap's `data` with the Secret's values (both decoded to strings),
    /// on top of Argo's catalog.
    pub fn parse(data: &BTreeMap<String, String>, secret: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut merged = catalog();
        for (k, v) in data {
            merged.insert(k.clone(), v.clone());
        }
        Config::parse_exactly(&merged, secret)
    }

    /// Parses the ConfigMap's `data` alone, without the catalog.
    pub fn parse_exactly(data: &BTreeMap<String, String>, secret: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            services: BTreeMap::new(),
            triggers: BTreeMap::new(),
            compiled_triggers: BTreeMap::new(),
            templates: BTreeMap::new(),
            compiled_templates: BTreeMap::new(),
            default_triggers: Vec::new(),
            service_default_triggers: BTreeMap::new(),
            subscriptions: Vec::new(),
            context: BTreeMap::new(),
            secrets: secret.clone(),
        };
        for (key, value) in data {
            if let Some(name) = key.strip_prefix("trigger.") {
                let conditions: Vec<Condition> =
                    serde_yaml_ng::from_str(value).map_err(|e| error(key, format!("not a list of conditions: {e}")))?;
                let compiled = CompiledTrigger::compile(&conditions).map_err(|e| error(key, e))?;
                cfg.compiled_triggers.insert(name.to_string(), compiled);
                cfg.triggers.insert(name.to_string(), conditions);
            } else if let Some(name) = key.strip_prefix("template.") {
                let spec: TemplateSpec =
                    serde_yaml_ng::from_str(value).map_err(|e| error(key, format!("not a template: {e}")))?;
                let compiled = CompiledTemplate::compile(name, &spec).map_err(|e| error(key, e))?;
                cfg.compiled_templates.insert(name.to_string(), compiled);
                cfg.templates.insert(name.to_string(), spec);
            } else if let Some(rest) = key.strip_prefix("service.") {
                let (kind, name) = match rest.split('.').collect::<Vec<_>>()[..] {
                    [kind] if !kind.is_empty() => (kind, kind),
                    [kind, name] if !kind.is_empty() && !name.is_empty() => (kind, name),
                    _ => return Err(error(key, "expected service.<type> or service.<type>.<name>")),
                };
                let (options, secret_values) = substitute_secrets(value, secret).map_err(|e| error(key, e))?;
                let service = Service::from_options(kind, options).map_err(|e| super::redact(&e, &secret_values));
                cfg.services.insert(name.to_string(), ServiceEntry { kind: kind.to_string(), service, secret_values });
            } else if key == "defaultTriggers" {
                cfg.default_triggers = string_list(key, value)?;
            } else if let Some(service) = key.strip_prefix("defaultTriggers.") {
                cfg.service_default_triggers.insert(service.to_string(), string_list(key, value)?);
            } else if key == "subscriptions" {
                cfg.subscriptions = DefaultSubscription::parse_list(value).map_err(|e| error(key, e))?;
            } else if key == "context" {
                cfg.context = serde_yaml_ng::from_str::<Option<BTreeMap<String, String>>>(value)
                    .map_err(|e| error(key, format!("not a map of strings: {e}")))?
                    .unwrap_or_default();
            }
        }
        Ok(cfg)
    }

    /// The Secret's values, for redaction wherever a service's error or a rendered
    /// notification might show one.
    pub fn secret_values(&self) -> Vec<String> {
        self.secrets.values().cloned().collect()
    }
}

/// Argo's catalog as ConfigMap data.
pub fn catalog() -> BTreeMap<String, String> {
    static PARSED: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| {
        // The catalog is part of the binary and tested; an unreadable one is a build bug
        // that the tests catch, so it degrades to an empty catalog rather than a panic.
        serde_yaml_ng::from_str::<Yaml>(CATALOG)
            .ok()
            .and_then(|v| v.get("data").cloned())
            .and_then(|d| serde_yaml_ng::from_value(d).ok())
            .unwrap_or_default()
    });
    PARSED.clone()
}

fn string_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    serde_yaml_ng::from_str::<Option<Vec<String>>>(value)
        .map(Option::unwrap_or_default)
        .map_err(|e| error(key, format!("not a list of trigger names: {e}")))
}

// A constant, valid pattern.
static SECRET_REF: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\$[\w-]+").expect("a valid pattern"));

/// Parses a service's YAML and replaces, in every string, each `$key` with the Secret's value
/// of `key` (an unknown key stays as written, as in the engine); returns the options and the
/// secret values used.
pub fn substitute_secrets(yaml: &str, secret: &BTreeMap<String, String>) -> Result<(Yaml, Vec<String>), String> {
    let mut value: Yaml = serde_yaml_ng::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let mut used = Vec::new();
    walk_strings(&mut value, &mut |s: &mut String| {
        if !s.contains('$') {
            return;
        }
        let replaced = SECRET_REF.replace_all(s, |caps: &regex::Captures<'_>| {
            let whole = &caps[0];
            match secret.get(&whole[1..]) {
                Some(v) => {
                    used.push(v.clone());
                    v.clone()
                }
                None => {
                    tracing::warn!(reference = whole, "a notification service names a key the notification Secret does not have");
                    whole.to_string()
                }
            }
        });
        *s = replaced.into_owned();
    });
    Ok((value, used))
}

fn walk_strings(value: &mut Yaml, f: &mut dyn FnMut(&mut String)) {
    match value {
        Yaml::String(s) => f(s),
        Yaml::Sequence(items) => items.iter_mut().for_each(|v| walk_strings(v, f)),
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| walk_strings(v, f)),
        Yaml::Tagged(t) => walk_strings(&mut t.value, f),
        Yaml::Null | Yaml::Bool(_) | Yaml::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_catalog_has_argos_nine_triggers_each_with_its_template() {
        let cfg = Config::parse(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        let names: Vec<&str> = cfg.triggers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "on-analysis-run-error",
                "on-analysis-run-failed",
                "on-analysis-run-running",
                "on-rollout-aborted",
                "on-rollout-completed",
                "on-rollout-paused",
                "on-rollout-step-completed",
                "on-rollout-updated",
                "on-scaling-replica-set",
            ]
        );
        for (name, conditions) in &cfg.triggers {
            for c in conditions {
                assert!(c.when.is_empty(), "{name}: the catalog's triggers fire on every event");
                for t in &c.send {
                    assert!(cfg.templates.contains_key(t), "{name} sends {t}, which the catalog defines");
                }
            }
        }
    }

    #[test]
    fn every_key_kind_is_read_and_a_configmap_key_replaces_the_catalogs() {
        let data = map(&[
            ("trigger.on-rollout-aborted", "- send: [mine]\n  when: rollout.spec.replicas > 1\n"),
            ("template.mine", "message: hello {{.rollout.metadata.name}}\n"),
            ("service.webhook.ci", "url: $url\nheaders:\n- name: Authorization\n  value: Bearer $token\n"),
            ("service.slack", "token: $slack-token\n"),
            ("defaultTriggers", "- on-rollout-aborted\n"),
            ("defaultTriggers.slack", "[on-rollout-completed]"),
            ("subscriptions", "- recipients: [slack:ops]\n  triggers: [on-rollout-aborted]\n  selector: team=a\n"),
            ("context", "env: prod\n"),
            ("unrelated", "ignored"),
        ]);
        let secret = map(&[("url", "http://127.0.0.1:1/hook"), ("token", "s3cret"), ("slack-token", "xoxb-1")]);
        let cfg = Config::parse(&data, &secret).unwrap();
        assert_eq!(cfg.triggers["on-rollout-aborted"][0].send, ["mine"]);
        assert_eq!(cfg.triggers["on-rollout-aborted"][0].when, "rollout.spec.replicas > 1");
        assert!(cfg.templates.contains_key("rollout-aborted"), "the catalog's templates stay");
        assert_eq!(cfg.services["ci"].kind, "webhook");
        assert_eq!(cfg.services["slack"].kind, "slack");
        let mut used = cfg.services["ci"].secret_values.clone();
        used.sort();
        assert_eq!(used, ["http://127.0.0.1:1/hook", "s3cret"]);
        assert_eq!(cfg.default_triggers, ["on-rollout-aborted"]);
        assert_eq!(cfg.service_default_triggers["slack"], ["on-rollout-completed"]);
        assert_eq!(cfg.subscriptions.len(), 1);
        assert_eq!(cfg.context["env"], "prod");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cret") && !debug.contains("xoxb"), "{debug}");
    }

    #[test]
    fn secret_references_are_replaced_in_every_string_and_unknown_ones_stay() {
        let secret = map(&[("user", "alice"), ("pass-word", "p@ss")]);
        let (v, used) = substitute_secrets("basicAuth:\n  username: $user\n  password: x$pass-word\nurl: http://h/$missing\nport: 25\n", &secret).unwrap();
        assert_eq!(v["basicAuth"]["username"], Yaml::from("alice"));
        assert_eq!(v["basicAuth"]["password"], Yaml::from("xp@ss"));
        assert_eq!(v["url"], Yaml::from("http://h/$missing"));
        assert_eq!(v["port"], Yaml::from(25));
        assert_eq!(used, ["alice", "p@ss"]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (("trigger.on-x", "send: [a]"), "trigger.on-x: not a list of conditions"),
            (("trigger.on-y", "- send: [a]\n  when: rollout.spec.replicas >"), "trigger.on-y: condition 0 `when`"),
            (("template.t", "message: '{{.x'"), "template.t: message:"),
            (("service.a.b.c", "url: x"), "service.a.b.c: expected service.<type> or service.<type>.<name>"),
            (("defaultTriggers", "a: b"), "defaultTriggers: not a list of trigger names"),
            (("subscriptions", "- recipients: [a]\n  selector: 'a in (b'"), "subscriptions: "),
            (("service.webhook", "url: [unclosed"), "service.webhook: not YAML"),
        ];
        for ((k, v), want) in cases {
            let e = Config::parse_exactly(&map(&[(k, v)]), &BTreeMap::new()).unwrap_err();
            assert!(e.to_string().starts_with(want), "{k}: {e}");
            assert_eq!(e.key, k);
        }
    }

    #[test]
    fn an_unsupported_service_type_fails_only_that_service() {
        let cfg = Config::parse_exactly(&map(&[("service.opsgenie", "apiKeys: {}")]), &BTreeMap::new()).unwrap();
        let e = cfg.services["opsgenie"].service.as_ref().err().unwrap();
        assert!(e.contains("opsgenie") && e.contains("not supported"), "{e}");
    }

    #[test]
    fn a_service_option_of_the_wrong_type_is_named_without_the_secret() {
        let secret = map(&[("port", "not-a-port-s3cret")]);
        let cfg = Config::parse_exactly(&map(&[("service.email", "host: h\nport: $port\nfrom: a@b")]), &secret).unwrap();
        let e = cfg.services["email"].service.as_ref().err().unwrap();
        assert!(e.contains("port"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
