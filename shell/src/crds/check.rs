//! Checks of CRD schemas and of objects against them, without an apiserver.
//!
//! - [`structural_violations`]: the rules of a structural schema (what the apiserver refuses
//!   or silently mishandles), plus our own policy for loading on Kubernetes 1.20: no
//!   defaults, no CEL rules, no `$ref`.
//! - [`fit`]: what the apiserver would prune or refuse in an object: undeclared fields,
//!   wrong types, missing required fields, values outside an `enum`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

/// Something wrong at a place in a schema or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted path (`spec.strategy.canary.steps[1].pause`); empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() { "<root>" } else { &self.path };
        write!(f, "{path}: {}", self.message)
    }
}

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];
const FORMATS: &[&str] = &["int32", "int64", "float", "double", "byte", "date", "date-time", "password"];

/// Every way `root` (a CRD's `openAPIV3Schema`) is not a structural schema that loads on
/// Kubernetes 1.20 and later. Empty when it is one.
pub fn structural_violations(root: &JSONSchemaProps) -> Vec<Finding> {
    let mut found = Vec::new();
    if root.type_.as_deref() != Some("object") {
        found.push(finding("", "the root must be `type: object`"));
    }
    if let Some(meta) = root.properties.as_ref().and_then(|p| p.get("metadata")) {
        let only_type = JSONSchemaProps { type_: Some("object".into()), ..Default::default() };
        if *meta != only_type {
            found.push(finding("metadata", "the root metadata may only say `type: object` (not even a description)"));
        }
    }
    walk(root, "", &mut found);
    found
}

fn walk(s: &JSONSchemaProps, path: &str, found: &mut Vec<Finding>) {
    let mut bad = |m: &str| found.push(finding(path, m));
    let int_or_string = s.x_kubernetes_int_or_string == Some(true);
    let preserve = s.x_kubernetes_preserve_unknown_fields == Some(true);
    match s.type_.as_deref() {
        None if !(int_or_string || preserve) => bad("no type (only int-or-string and preserve-unknown-fields nodes may omit it)"),
        Some(t) if !TYPES.contains(&t) => bad(&format!("unknown type `{t}`")),
        Some(_) if int_or_string => bad("an int-or-string node must not have a type"),
        _ => {}
    }
    if s.x_kubernetes_int_or_string == Some(false) || s.x_kubernetes_preserve_unknown_fields == Some(false) {
        bad("x-kubernetes extensions are written only when true");
    }
    if s.ref_path.is_some() || s.definitions.is_some() || s.schema.is_some() || s.id.is_some() {
        bad("`$ref`, `definitions`, `$schema` and `id` are not allowed");
    }
    if s.default.is_some() {
        bad("defaults are not allowed here (the core applies the defaults)");
    }
    if s.nullable == Some(true) {
        bad("nullable is not used: nulls are pruned and read as absent");
    }
    if s.x_kubernetes_validations.is_some() {
        bad("`x-kubernetes-validations` is unknown to Kubernetes 1.20");
    }
    if s.any_of.is_some() || s.all_of.is_some() || s.one_of.is_some() || s.not.is_some() {
        bad("logical junctors (anyOf, allOf, oneOf, not) are not used");
    }
    if s.unique_items == Some(true) {
        bad("`uniqueItems: true` is not allowed");
    }
    if s.additional_items.is_some() || s.pattern_properties.is_some() || s.dependencies.is_some() {
        bad("additionalItems, patternProperties and dependencies are not allowed");
    }
    if let Some(f) = s.format.as_deref() {
        if !FORMATS.contains(&f) {
            bad(&format!("unknown format `{f}`"));
        }
    }
    if s.properties.is_some() && s.type_.as_deref() != Some("object") {
        bad("`properties` on a node that is not an object");
    }
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Bool(_)) => bad("`additionalProperties` must be a schema"),
        Some(JSONSchemaPropsOrBool::Schema(inner)) => {
            if s.properties.is_some() {
                bad("`properties` and `additionalProperties` together");
            }
            if s.type_.as_deref() != Some("object") {
                bad("`additionalProperties` on a node that is not an object");
            }
            walk(inner, &format!("{path}[*]"), found);
        }
        None => {}
    }
    match (&s.items, s.type_.as_deref()) {
        (Some(JSONSchemaPropsOrArray::Schema(inner)), Some("array")) => walk(inner, &format!("{path}[]"), found),
        (Some(JSONSchemaPropsOrArray::Schemas(_)), _) => found.push(finding(path, "`items` must be one schema")),
        (Some(_), _) => found.push(finding(path, "`items` on a node that is not an array")),
        (None, Some("array")) => found.push(finding(path, "an array needs `items`")),
        (None, _) => {}
    }
    for (name, child) in s.properties.iter().flatten() {
        walk(child, &join(path, name), found);
    }
}

/// Every way `value` does not fit `schema` the way the apiserver would see it: fields it
/// would prune (not declared, not under a preserve-unknown-fields node), values of the wrong
/// type, missing required fields, values not in an `enum`. Empty when it fits.
///
/// The root `metadata` is the apiserver's own and is not looked into. A `null` fits
/// anywhere: the apiserver prunes it, and the core reads it as absent.
pub fn fit(schema: &JSONSchemaProps, value: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    fit_at(schema, value, "", &mut found);
    found
}

fn fit_at(s: &JSONSchemaProps, v: &Value, path: &str, found: &mut Vec<Finding>) {
    if v.is_null() || path == "metadata" {
        return;
    }
    if s.x_kubernetes_int_or_string == Some(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            found.push(finding(path, &format!("expected an integer or a string, found {}", kind_of(v))));
        }
        return;
    }
    let preserve = s.x_kubernetes_preserve_unknown_fields == Some(true);
    let expected = s.type_.as_deref();
    let type_ok = match expected {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(_) => false,
    };
    if !type_ok {
        found.push(finding(path, &format!("expected {}, found {}", expected.unwrap_or("?"), kind_of(v))));
        return;
    }
    if let Some(allowed) = &s.enum_ {
        if !allowed.iter().any(|a| a.0 == *v) {
            found.push(finding(path, &format!("{v} is not one of the allowed values")));
        }
    }
    match v {
        Value::Object(fields) => {
            for required in s.required.iter().flatten() {
                if fields.get(required).is_none_or(Value::is_null) {
                    found.push(finding(&join(path, required), "required but missing"));
                }
            }
            for (name, child) in fields {
                let at = join(path, name);
                match (s.properties.as_ref().and_then(|p| p.get(name)), &s.additional_properties) {
                    (Some(declared), _) => fit_at(declared, child, &at, found),
                    (None, Some(JSONSchemaPropsOrBool::Schema(values))) => fit_at(values, child, &at, found),
                    (None, _) if preserve => {}
                    (None, _) => found.push(finding(&at, "not declared in the schema: the apiserver would prune it")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &s.items {
                for (i, child) in items.iter().enumerate() {
                    fit_at(item, child, &format!("{path}[{i}]"), found);
                }
            }
        }
        _ => {}
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn finding(path: &str, message: &str) -> Finding {
    Finding { path: path.to_string(), message: message.to_string() }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> JSONSchemaProps {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn untyped_and_referencing_nodes_are_not_structural() {
        let s = schema(json!({"type": "object", "properties": {
            "a": {"description": "no type"},
            "b": {"$ref": "#/definitions/B"},
            "c": {"type": "array"},
            "d": {"type": "string", "default": "x"},
            "e": {"x-kubernetes-int-or-string": true},
            "f": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "g": {"type": "object", "additionalProperties": false}
        }}));
        let paths: Vec<String> = structural_violations(&s).into_iter().map(|f| f.path).collect();
        assert_eq!(paths, ["a", "b", "b", "c", "d", "g"]);
    }

    #[test]
    fn undeclared_fields_wrong_types_and_missing_required_fields_are_found() {
        let s = schema(json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"},
                "n": {"x-kubernetes-int-or-string": true},
                "phase": {"type": "string", "enum": ["A", "B"]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "kept": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "steps": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "integer"}}}}
            }}
        }}));
        let good = json!({"metadata": {"name": "x", "anything": 1}, "spec": {"name": "a", "n": "25%", "phase": "A",
            "labels": {"k": "v"}, "kept": {"deep": {"er": [1]}}, "steps": [{"w": 5}, {"w": null}]}});
        assert_eq!(fit(&s, &good), vec![]);
        let bad = json!({"spec": {"n": 1.5, "phase": "C", "labels": {"k": 1}, "steps": [{"w": "5"}, {"x": 1}], "extra": true}});
        let found: Vec<String> = fit(&s, &bad).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "spec.name: required but missing",
                "spec.n: expected an integer or a string, found a number",
                "spec.phase: \"C\" is not one of the allowed values",
                "spec.labels.k: expected string, found an integer",
                "spec.steps[0].w: expected integer, found a string",
                "spec.steps[1].x: not declared in the schema: the apiserver would prune it",
                "spec.extra: not declared in the schema: the apiserver would prune it",
            ]
        );
    }
}
