//! Secret arguments of analysis: looking a key up in a Secret, putting the values into a
//! metric provider, and keeping them out of everything that could be shown.
//!
//! The core never holds secret values: an [`crate::Action::Measure`] names the arguments to
//! read (`valueFrom.secretKeyRef`) and leaves their `{{args.<name>}}` placeholders in the
//! provider. Whoever measures (the controller, the simulator) reads the Secrets, calls
//! [`resolve`], measures with [`SecretValues::substitute`]'s provider, and reports the answer
//! through [`SecretValues::redact`], so no value reaches a status, a log or a trace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::analysis::args::resolve_quoted_args;
use crate::analysis::run::MeasurementAnswer;
use crate::api::{Argument, MetricProvider, SecretKeyRef};

/// What secret values are replaced with wherever they could be shown.
pub const REDACTED: &str = "*****";

/// A secret argument that cannot be read. The messages are Argo's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// No Secret of that name in the namespace.
    #[error("secrets \"{name}\" not found")]
    NotFound {
        /// The Secret's name.
        name: String,
    },
    /// The Secret has no such key.
    #[error("key '{key}' does not exist in secret '{name}'")]
    MissingKey {
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
    },
}

/// The value of `key` in a Secret: `stringData` first (the API server merges it into `data`
/// on write, `stringData` winning), then `data`.
pub fn value_of(secret: &Secret, key: &str) -> Option<String> {
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| secret.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned()))
}

/// The Secrets a measurement's arguments name, each once.
pub fn secret_names(refs: &BTreeMap<String, SecretKeyRef>) -> std::collections::BTreeSet<String> {
    refs.values().map(|r| r.name.clone()).collect()
}

/// Reads every secret argument (`argument name → Secret and key`) from the Secrets found
/// (by name; a missing one is [`SecretError::NotFound`]). Arguments are read in name order
/// and the first failure is reported.
pub fn resolve(refs: &BTreeMap<String, SecretKeyRef>, secrets: &BTreeMap<String, Secret>) -> Result<SecretValues, SecretError> {
    let mut values = BTreeMap::new();
    for (arg, r) in refs {
        let secret = secrets.get(&r.name).ok_or_else(|| SecretError::NotFound { name: r.name.clone() })?;
        let value = value_of(secret, &r.key).ok_or_else(|| SecretError::MissingKey { name: r.name.clone(), key: r.key.clone() })?;
        values.insert(arg.clone(), value);
    }
    Ok(SecretValues(values))
}

/// Secret argument values, by argument name. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.keys().map(|k| (k, REDACTED))).finish()
    }
}

impl SecretValues {
    /// The provider with every `{{args.<name>}}` of a secret argument replaced by its value,
    /// by the same substitution as every other argument (`args::resolve_quoted_args`).
    /// The error, already redacted, says why the provider does not take the values.
    pub fn substitute(&self, provider: &MetricProvider) -> Result<MetricProvider, String> {
        if self.0.is_empty() {
            return Ok(provider.clone());
        }
        let args: Vec<Argument> =
            self.0.iter().map(|(name, value)| Argument { name: name.clone(), value: Some(value.clone()), value_from: None }).collect();
        let json = serde_json::to_string(provider).map_err(|e| e.to_string())?;
        let resolved = resolve_quoted_args(&json, &args).map_err(|e| self.redact_str(&e.to_string()))?;
        serde_json::from_str(&resolved)
            .map_err(|e| self.redact_str(&format!("the provider does not decode after substituting secrets: {e}")))
    }

    /// Adds a value to redact (a credential a provider read itself), under `label`.
    pub fn insert(&mut self, label: &str, value: &str) {
        self.0.insert(label.to_string(), value.to_string());
    }

    /// `text` with every non-empty secret value replaced by [`REDACTED`].
    pub fn redact_str(&self, text: &str) -> String {
        let mut out = text.to_string();
        for value in self.0.values().filter(|v| !v.is_empty()) {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), REDACTED);
            }
        }
        out
    }

    fn redact_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.redact_str(s),
            Value::Array(a) => a.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(m) => m.values_mut().for_each(|v| self.redact_value(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// The answer with every secret value replaced by [`REDACTED`] wherever it could be
    /// shown: the value, the errors and the metadata.
    pub fn redact(&self, mut answer: MeasurementAnswer) -> MeasurementAnswer {
        if self.0.is_empty() {
            return answer;
        }
        answer.error = answer.error.map(|e| self.redact_str(&e));
        answer.args_error = answer.args_error.map(|e| self.redact_str(&e));
        for v in answer.metadata.values_mut() {
            *v = self.redact_str(v);
        }
        self.redact_value(&mut answer.value);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn secret(data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
            string_data: Some(string_data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Secret::default()
        }
    }

    fn refs(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, SecretKeyRef> {
        pairs.iter().map(|(arg, name, key)| (arg.to_string(), SecretKeyRef { name: name.to_string(), key: key.to_string() })).collect()
    }

    #[test]
    fn a_key_is_read_from_string_data_before_data() {
        let s = secret(&[("token", "old"), ("user", "u")], &[("token", "new")]);
        assert_eq!(value_of(&s, "token").as_deref(), Some("new"));
        assert_eq!(value_of(&s, "user").as_deref(), Some("u"));
        assert_eq!(value_of(&s, "nope"), None);
    }

    #[test]
    fn a_missing_secret_or_key_has_argos_words() {
        let secrets = BTreeMap::from([("creds".to_string(), secret(&[("token", "t")], &[]))]);
        assert_eq!(
            resolve(&refs(&[("a", "other", "token")]), &secrets).unwrap_err().to_string(),
            "secrets \"other\" not found"
        );
        assert_eq!(
            resolve(&refs(&[("a", "creds", "k")]), &secrets).unwrap_err().to_string(),
            "key 'k' does not exist in secret 'creds'"
        );
        let values = resolve(&refs(&[("a", "creds", "token")]), &secrets).unwrap();
        assert_eq!(format!("{values:?}"), r#"{"a": "*****"}"#);
    }

    #[test]
    fn secrets_are_substituted_and_never_come_back() {
        let provider: MetricProvider = serde_json::from_value(json!({"web": {
            "url": "http://127.0.0.1:1/check?token={{args.api-token}}",
            "headers": [{"key": "Authorization", "value": "Bearer {{ args.api-token }}"}]
        }}))
        .unwrap();
        let secrets = BTreeMap::from([("creds".to_string(), secret(&[], &[("token", "s3\"cr3t")]))]);
        let values = resolve(&refs(&[("api-token", "creds", "token")]), &secrets).unwrap();
        let w = values.substitute(&provider).unwrap().web.unwrap();
        assert_eq!(w.url, "http://127.0.0.1:1/check?token=s3\"cr3t");
        assert_eq!(w.headers[0].value, "Bearer s3\"cr3t");
        let answer = MeasurementAnswer {
            value: json!({"echo": ["token=s3\"cr3t"]}),
            error: Some("GET http://x/?token=s3\"cr3t failed".into()),
            metadata: BTreeMap::from([("url".to_string(), "s3\"cr3t".to_string())]),
            args_error: Some("s3\"cr3t".into()),
            ..MeasurementAnswer::default()
        };
        let text = serde_json::to_string(&values.redact(answer)).unwrap();
        assert!(!text.contains("s3\\\"cr3t"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 4, "{text}");
    }
}
