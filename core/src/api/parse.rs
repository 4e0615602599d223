//! Strict decoding of manifests, the way `kubectl apply --validate=strict` checks them.
//!
//! Rollouts' own types reject unknown fields; embedded Kubernetes types (the pod
//! template, label selectors, metadata) silently ignore them when deserialized, so every
//! decode runs through `serde_ignored` and an ignored key is reported as an error with its
//! path. Errors name the field: `spec.strategy.canary.steps[1]: unknown field `pauze``.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A manifest that does not decode: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecError {
    /// Dotted path of the offending field (`spec.template.spec.containers[0].imagee`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line in the source text, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// Decodes `value` into `T`, failing on any field `T` does not know, except under the
/// object's top-level `status`: a status is written by a controller, perhaps another
/// version of this one or Argo Rollouts itself (`status.alb`, `status.canary.stepPluginStatuses`),
/// never by the user, so what this version does not model there is left alone.
pub fn from_value_strict<T: DeserializeOwned>(value: &Value) -> Result<T, SpecError> {
    // Most values decode: try without tracking the path, which only an error needs.
    let mut unknown = false;
    let mut note = |path: serde_ignored::Path<'_>| unknown |= !under_status(&path);
    if let Ok(t) = T::deserialize(serde_ignored::Deserializer::new(value, &mut note)) {
        if !unknown {
            return Ok(t);
        }
    }
    let mut unknown: Vec<String> = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        if !under_status(&path) {
            unknown.push(render_path(&path));
        }
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(ignored);
    match result {
        Ok(t) => match unknown.into_iter().next() {
            None => Ok(t),
            Some(path) => Err(unknown_field_error(&path)),
        },
        Err(e) => {
            let path = e.path().to_string();
            let mut message = strip_location(&e.into_inner().to_string());
            if message.starts_with("unknown field") {
                message = "unknown field".to_string();
            }
            Err(SpecError { path: if path == "." { String::new() } else { path }, message, line: None })
        }
    }
}

/// Decodes YAML text into `T` strictly. Errors carry the line where it is known.
pub fn from_yaml_strict<T: DeserializeOwned>(text: &str) -> Result<T, SpecError> {
    let value: Value = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(&e))?;
    from_value_strict(&value).map_err(|mut e| {
        e.line = e.line.or_else(|| line_of_path(text, &e.path));
        e
    })
}

/// Converts a YAML syntax or type error into a [`SpecError`] with its line.
pub fn yaml_error(e: &serde_yaml_ng::Error) -> SpecError {
    let text = e.to_string();
    // serde_yaml_ng renders "path: message at line L column C".
    let (path, rest) = match text.split_once(": ") {
        Some((p, r)) if !p.contains(' ') => (p.to_string(), r.to_string()),
        _ => (String::new(), text.clone()),
    };
    SpecError {
        path: if path == "." { String::new() } else { path },
        message: strip_location(&rest),
        line: e.location().map(|l| l.line()),
    }
}

/// Whether `path` lies under the top-level `status` key.
fn under_status(path: &serde_ignored::Path<'_>) -> bool {
    use serde_ignored::Path;
    match path {
        Path::Root => false,
        Path::Map { parent, key } => matches!(**parent, Path::Root) && key == "status" || under_status(parent),
        Path::Seq { parent, .. } | Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            under_status(parent)
        }
    }
}

/// Renders a `serde_ignored` path the way `serde_path_to_error` does (`a.b[0].c`).
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        Path::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            render_path(parent)
        }
    }
}

fn unknown_field_error(path: &str) -> SpecError {
    SpecError { path: path.to_string(), message: "unknown field".to_string(), line: None }
}

fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Best-effort line of the last key of `path` in `text` (first line that starts with `key:`).
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let key = path
        .rsplit('.')
        .next()
        .map(|k| k.split('[').next().unwrap_or(k))
        .filter(|k| !k.is_empty())?;
    text.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with("\":"))
    })
    .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Rollout;

    #[test]
    fn typo_in_a_step_names_the_step() {
        let v = serde_json::json!({"spec": {"strategy": {"canary": {"steps": [{"setWeight": 5}, {"pauze": {}}]}}}});
        let e = from_value_strict::<Rollout>(&v).unwrap_err();
        assert_eq!(e.to_string(), "spec.strategy.canary.steps[1].pauze: unknown field");
    }

    #[test]
    fn typo_in_the_pod_template_is_found_too() {
        let v = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "imagee": "x"}]}}}});
        let e = from_value_strict::<Rollout>(&v).unwrap_err();
        assert_eq!(e.to_string(), "spec.template.spec.containers[0].imagee: unknown field");
    }

    #[test]
    fn a_status_field_of_another_controller_version_is_left_alone() {
        let v = serde_json::json!({"spec": {"replicas": 2}, "status": {
            "alb": {"loadBalancer": {"name": "lb"}},
            "canary": {"stepPluginStatuses": [], "currentExperiment": "e"},
            "currentStepIndex": 1,
        }});
        let r = from_value_strict::<Rollout>(&v).expect("a status this version does not fully model");
        assert_eq!((r.status.current_step_index, r.status.canary.current_experiment.as_str()), (Some(1), "e"));
        // The spec stays strict, with or without a status.
        let v = serde_json::json!({"spec": {"status": 1}, "status": {"alb": {}}});
        assert_eq!(from_value_strict::<Rollout>(&v).unwrap_err().to_string(), "spec.status: unknown field");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let v = serde_json::json!({"spec": {"replicas": "five"}});
        let e = from_value_strict::<Rollout>(&v).unwrap_err();
        assert_eq!(e.path, "spec.replicas");
    }

    #[test]
    fn yaml_errors_carry_lines() {
        let text = "spec:\n  replicas: 2\n  strategy:\n    canary:\n      stepz: []\n";
        let e = from_yaml_strict::<Rollout>(text).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.path, "spec.strategy.canary.stepz");
    }
}
