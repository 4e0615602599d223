//! Triggers: conditions in expr-lang over the template variables (`rollout`, …), each with
//! the templates it sends and an optional `oncePer` expression.
//!
//! A condition without `when` fires whenever its event does: Argo Rollouts' triggers fire on
//! events, and its catalog's conditions have no `when` (notifications-engine alone would
//! read an empty condition as false; Argo's recorder sends on it).

use std::panic::{catch_unwind, AssertUnwindSafe};

use base64::Engine;
use expr::{Context, Environment, Program, Value as ExprValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::Digest;

/// One condition of a trigger, as written in the ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub once_per: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub when: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send: Vec<String>,
}

/// A condition's outcome for one set of variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionResult {
    /// `[<index>].<sha1 of when, URL-safe base64>`, the engine's key.
    pub key: String,
    /// The `oncePer` value, when the condition has one and fired.
    pub once_per: Option<String>,
    pub templates: Vec<String>,
    pub triggered: bool,
    /// Why the condition could not be evaluated (it then did not fire).
    pub error: Option<String>,
}

struct CompiledCondition {
    when: Option<Program>,
    once_per: Option<Program>,
    key: String,
    send: Vec<String>,
}

/// A trigger's conditions, compiled once per configuration.
pub struct CompiledTrigger(Vec<CompiledCondition>);

/// The engine's condition hash: SHA-1 of the text, URL-safe base64 without padding.
pub fn condition_hash(when: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(when.as_bytes()))
}

fn compile(expression: &str) -> Result<Program, String> {
    rollouts_core::analysis::condition::check_condition(expression)?;
    catch_unwind(|| expr::compile(expression))
        .map_err(|_| "the expression parser panicked".to_string())?
        .map_err(|e| e.to_string().replace('\n', " "))
}

impl CompiledTrigger {
    /// Compiles every condition; the error names the condition and the field.
    pub fn compile(conditions: &[Condition]) -> Result<CompiledTrigger, String> {
        let mut out = Vec::new();
        for (i, c) in conditions.iter().enumerate() {
            let when = match c.when.trim() {
                "" => None,
                w => Some(compile(w).map_err(|e| format!("condition {i} `when`: {e}"))?),
            };
            let once_per = match c.once_per.trim() {
                "" => None,
                o => Some(compile(o).map_err(|e| format!("condition {i} `oncePer`: {e}"))?),
            };
            out.push(CompiledCondition { when, once_per, key: format!("[{i}].{}", condition_hash(&c.when)), send: c.send.clone() });
        }
        Ok(CompiledTrigger(out))
    }

    /// Evaluates every condition with `vars` (a JSON object: `rollout`, …).
    pub fn run(&self, vars: &Value) -> Vec<ConditionResult> {
        let ctx = context(vars);
        let env = Environment::new();
        self.0
            .iter()
            .map(|c| {
                let mut result =
                    ConditionResult { key: c.key.clone(), once_per: None, templates: c.send.clone(), triggered: false, error: None };
                match &c.when {
                    None => result.triggered = true,
                    Some(p) => match evaluate(&env, p, &ctx) {
                        Ok(ExprValue::Bool(b)) => result.triggered = b,
                        Ok(other) => result.error = Some(format!("`when` gave {} instead of a boolean", describe(&other))),
                        Err(e) => result.error = Some(format!("`when`: {e}")),
                    },
                }
                if result.triggered {
                    if let Some(p) = &c.once_per {
                        match evaluate(&env, p, &ctx) {
                            Ok(v) => result.once_per = Some(go_string(&v)),
                            // The engine logs and sends as if there were no `oncePer`.
                            Err(e) => result.error = Some(format!("`oncePer`: {e}")),
                        }
                    }
                }
                result
            })
            .collect()
    }
}

fn evaluate(env: &Environment<'_>, program: &Program, ctx: &Context) -> Result<ExprValue, String> {
    catch_unwind(AssertUnwindSafe(|| env.run(program, ctx)))
        .map_err(|_| "the evaluator panicked".to_string())?
        .map_err(|e| e.to_string())
}

/// The expression context: each top-level variable.
fn context(vars: &Value) -> Context {
    let mut ctx = Context::default();
    if let Value::Object(map) = vars {
        for (k, v) in map {
            ctx.insert(k.clone(), to_expr(v));
        }
    }
    ctx
}

/// JSON as expr values (integers stay integers).
pub fn to_expr(v: &Value) -> ExprValue {
    match v {
        Value::Null => ExprValue::Nil,
        Value::Bool(b) => ExprValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ExprValue::Integer(i),
            None => n.as_f64().map_or(ExprValue::Nil, ExprValue::Float),
        },
        Value::String(s) => ExprValue::String(s.clone()),
        Value::Array(a) => ExprValue::Array(a.iter().map(to_expr).collect()),
        Value::Object(o) => ExprValue::Map(o.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect()),
    }
}

fn describe(v: &ExprValue) -> String {
    match v {
        ExprValue::Nil => "nil".into(),
        ExprValue::String(s) => format!("the string {s:?}"),
        other => format!("{other:?}"),
    }
}

/// A value as Go's `%v` prints it, for `oncePer`.
fn go_string(v: &ExprValue) -> String {
    match v {
        ExprValue::Nil => "<nil>".into(),
        ExprValue::Bool(b) => b.to_string(),
        ExprValue::Integer(i) => i.to_string(),
        ExprValue::Float(f) => f.to_string(),
        ExprValue::String(s) => s.clone(),
        ExprValue::Array(items) => format!("[{}]", items.iter().map(go_string).collect::<Vec<_>>().join(" ")),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trigger(yaml: &str) -> CompiledTrigger {
        let conditions: Vec<Condition> = serde_yaml_ng::from_str(yaml).unwrap();
        CompiledTrigger::compile(&conditions).unwrap()
    }

    fn vars() -> Value {
        json!({"rollout": {
            "metadata": {"name": "demo", "annotations": {"rollout.argoproj.io/revision": "3"}},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "app", "image": "argoproj/rollouts-demo:purple"}]}}},
            "status": {"phase": "Degraded", "abort": true, "currentStepIndex": 1}
        }})
    }

    #[test]
    fn conditions_are_expr_over_the_rollout() {
        let t = trigger(
            "- when: rollout.spec.template.spec.containers[0].image == 'argoproj/rollouts-demo:purple'\n  send: [purple]\n\
             - when: rollout.status.phase in ['Healthy', 'Paused']\n  send: [other]\n\
             - when: rollout.status.abort && rollout.spec.replicas > 3\n  send: [big]\n",
        );
        let r = t.run(&vars());
        assert_eq!(r.iter().map(|c| c.triggered).collect::<Vec<_>>(), [true, false, true]);
        assert_eq!(r[0].templates, ["purple"]);
        assert!(r.iter().all(|c| c.error.is_none()), "{r:?}");
    }

    #[test]
    fn a_condition_without_when_fires_and_keys_are_the_engines() {
        let r = trigger("- send: [a]\n- when: 'true'\n  send: [b]\n").run(&vars());
        assert!(r[0].triggered && r[1].triggered);
        // SHA-1("") in URL-safe base64, as the engine (and Argo's recorder) computes it.
        assert_eq!(r[0].key, "[0].2jmj7l5rSw0yVb_vlWAYkK_YBwk");
        assert_eq!(r[1].key, format!("[1].{}", condition_hash("true")));
    }

    #[test]
    fn once_per_is_evaluated_only_when_the_condition_fires() {
        let r = trigger(
            "- when: rollout.status.abort\n  oncePer: rollout.metadata.annotations['rollout.argoproj.io/revision']\n  send: [a]\n\
             - when: 'false'\n  oncePer: rollout.spec.replicas\n  send: [b]\n",
        )
        .run(&vars());
        assert_eq!(r[0].once_per.as_deref(), Some("3"));
        assert_eq!(r[1].once_per, None);
    }

    #[test]
    fn a_failing_or_non_boolean_condition_does_not_fire_and_says_why() {
        let r = trigger("- when: rollout.status.phase\n  send: [a]\n- when: rollout.nope.deeper == 1\n  send: [b]\n").run(&vars());
        assert!(!r[0].triggered);
        assert!(r[0].error.as_deref().unwrap().contains("instead of a boolean"), "{r:?}");
        assert!(!r[1].triggered);
    }

    #[test]
    fn a_malformed_condition_is_refused_at_compile_time_naming_it() {
        let conditions: Vec<Condition> = serde_yaml_ng::from_str("- send: [a]\n- when: 'a =='\n  send: [b]\n").unwrap();
        let e = CompiledTrigger::compile(&conditions).err().unwrap();
        assert!(e.starts_with("condition 1 `when`:"), "{e}");
    }
}
