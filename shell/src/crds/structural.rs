//! From the core's JSON schemas (schemars, JSON Schema 2020-12) to the *structural* OpenAPI
//! schemas a `apiextensions.k8s.io/v1` CRD must carry.
//!
//! What changes on the way, and why:
//! - every `$ref` is inlined (CRD schemas cannot reference anything);
//! - `Option<T>`'s "or null" is dropped: since 1.20 the apiserver prunes a `null` in a
//!   non-nullable field, which the core reads as absent anyway;
//! - a value that is an integer or a string becomes `x-kubernetes-int-or-string: true`;
//! - a union of string constants (an enum whose variants have docs) becomes one `enum`;
//! - arbitrary JSON (`serde_json::Value`) becomes `x-kubernetes-preserve-unknown-fields: true`,
//!   and a map of arbitrary JSON an object that keeps unknown fields;
//! - the pod template and the Job spec are kept whole (`type: object` + preserve unknown
//!   fields, as Argo's older CRDs did): their full schemas would put the Rollout CRD over the
//!   256 KiB a client-side `kubectl apply` can store, and the core checks them field by field;
//! - the root `metadata` is `type: object` only (the apiserver validates it itself);
//! - `default`s are dropped: the core applies Argo's defaults, and a CRD default would be
//!   written into stored objects (and `default: null` is refused by 1.20);
//! - `additionalProperties: false` (from `deny_unknown_fields`) is dropped: pruning already
//!   removes undeclared fields, and v1 CRDs refuse it.
//!
//! Anything else that has no structural equivalent is an error naming the field, never
//! silently dropped.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Map, Value};

/// Kubernetes types embedded whole and kept as they are written (see the module docs).
const KEPT_WHOLE: &[&str] = &["io.k8s.api.core.v1.PodTemplateSpec", "io.k8s.api.batch.v1.JobSpec"];

/// Object metadata: only allowed as the root `metadata`.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Formats the apiserver knows. Others (schemars' `uint32`, ...) are dropped: the apiserver
/// would ignore them on 1.20 and warn about them on newer versions.
const KNOWN_FORMATS: &[&str] = &["int32", "int64", "float", "double", "byte", "date", "date-time", "password"];

/// A part of a schema that has no structural equivalent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if path.is_empty() { "<root>" } else { path.as_str() })]
pub struct SchemaError {
    /// Field path in the object (`spec.strategy.canary.steps[]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError { path: path.to_string(), message: message.into() })
}

/// Converts a schemars root schema (with its `$defs`) into a structural schema.
pub fn structural(root: &Value) -> Result<JSONSchemaProps, SchemaError> {
    let empty = Map::new();
    let defs = root.get("$defs").and_then(Value::as_object).unwrap_or(&empty);
    let mut converter = Converter { defs, expanding: Vec::new() };
    let mut converted = Value::Object(converter.convert(root, "")?);
    // The apiserver refuses anything but `type: object` for the root metadata, even a description.
    if let Some(meta) = converted.pointer_mut("/properties/metadata") {
        *meta = serde_json::json!({"type": "object"});
    }
    let props: JSONSchemaProps = serde_json::from_value(converted.clone())
        .map_err(|e| SchemaError { path: String::new(), message: format!("not a CRD schema: {e}") })?;
    // JSONSchemaProps drops keys it does not know; a difference means we emitted one.
    let round_trip = serde_json::to_value(&props).map_err(|e| SchemaError {
        path: String::new(),
        message: format!("cannot serialize the schema: {e}"),
    })?;
    if let Some(path) = first_difference(&converted, &round_trip, "") {
        return err(&path, "a keyword the CRD schema does not have");
    }
    Ok(props)
}

struct Converter<'a> {
    defs: &'a Map<String, Value>,
    /// Definitions being inlined, to refuse recursive types (CRDs cannot express them).
    expanding: Vec<String>,
}

impl Converter<'_> {
    fn convert(&mut self, node: &Value, path: &str) -> Result<Map<String, Value>, SchemaError> {
        let m = match node {
            Value::Bool(true) => return Ok(preserve_any()),
            Value::Object(m) => m,
            other => return err(path, format!("not a schema: {other}")),
        };
        let mut out = match m.get("$ref") {
            Some(r) => self.resolve(r, path)?,
            None => Map::new(),
        };
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = m.get(key) {
                let union = self.union(branches, path)?;
                merge(&mut out, union);
            }
        }
        let mut title = None;
        let mut open_object = false;
        for (k, v) in m {
            match k.as_str() {
                "$ref" | "anyOf" | "oneOf" | "$defs" | "$schema" => {}
                "type" => {
                    out.insert("type".into(), Value::String(single_type(v, path)?));
                }
                "description" => {
                    out.insert(k.clone(), Value::String(describe(v)));
                }
                "title" => title = v.as_str().map(str::to_string),
                "properties" => {
                    let Some(props) = v.as_object() else { return err(path, "`properties` is not a map") };
                    let mut converted = Map::new();
                    for (name, schema) in props {
                        converted.insert(name.clone(), Value::Object(self.convert(schema, &join(path, name))?));
                    }
                    out.insert(k.clone(), Value::Object(converted));
                }
                "required" => {
                    out.insert(k.clone(), v.clone());
                }
                "additionalProperties" => match v {
                    Value::Bool(false) => {}
                    Value::Bool(true) => open_object = true,
                    schema => {
                        let converted = self.convert(schema, &format!("{path}[*]"))?;
                        if converted.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
                            && !converted.contains_key("type")
                        {
                            open_object = true;
                        } else {
                            out.insert(k.clone(), Value::Object(converted));
                        }
                    }
                },
                "items" => {
                    if v.is_array() {
                        return err(path, "tuples (`items` as a list) cannot be expressed");
                    }
                    out.insert(k.clone(), Value::Object(self.convert(v, &format!("{path}[]"))?));
                }
                "enum" => {
                    let values: Vec<Value> = v.as_array().into_iter().flatten().filter(|x| !x.is_null()).cloned().collect();
                    out.insert(k.clone(), Value::Array(values));
                }
                "const" => {
                    if v.is_null() {
                        return err(path, "`const: null` cannot be expressed");
                    }
                    out.insert("enum".into(), Value::Array(vec![v.clone()]));
                }
                "format" => {
                    if v.as_str().is_some_and(|f| KNOWN_FORMATS.contains(&f)) {
                        out.insert(k.clone(), v.clone());
                    }
                }
                "minimum" | "maximum" | "minLength" | "maxLength" | "pattern" | "minItems" | "maxItems" => {
                    out.insert(k.clone(), v.clone());
                }
                // Defaults are the core's business; examples and deprecation are documentation the
                // CRD cannot carry (`example` is single-valued in OpenAPI v3).
                "default" | "examples" | "deprecated" | "readOnly" | "writeOnly" => {}
                // Quadratic to validate: refused by structural schemas.
                "uniqueItems" => {}
                "x-kubernetes-validations" => {
                    return err(path, "`x-kubernetes-validations` is unknown to Kubernetes 1.20");
                }
                x if x.starts_with("x-kubernetes-") => {
                    out.insert(k.clone(), v.clone());
                }
                other => return err(path, format!("`{other}` has no equivalent in a CRD schema")),
            }
        }
        if let Some(title) = title.filter(|t| !t.is_empty()) {
            let description = match out.get("description").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{title}\n\n{d}"),
                _ => title,
            };
            out.insert("description".into(), Value::String(description));
        }
        if open_object {
            if out.contains_key("properties") {
                return err(path, "declared fields plus arbitrary others cannot be expressed");
            }
            out.insert("type".into(), Value::String("object".into()));
            out.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
        }
        if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            out.remove("type");
        }
        // Only annotations (`Option<serde_json::Value>` with a doc comment): any JSON value.
        const ANNOTATIONS: &[&str] = &["description", "title", "default", "examples", "deprecated", "readOnly", "writeOnly"];
        if m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) {
            out.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
        }
        let typed = out.contains_key("type")
            || out.contains_key("x-kubernetes-int-or-string")
            || out.contains_key("x-kubernetes-preserve-unknown-fields");
        if !typed {
            return err(path, "no type");
        }
        Ok(out)
    }

    fn resolve(&mut self, reference: &Value, path: &str) -> Result<Map<String, Value>, SchemaError> {
        let Some(name) = reference.as_str().and_then(|r| r.strip_prefix("#/$defs/")) else {
            return err(path, format!("unsupported reference {reference}"));
        };
        if KEPT_WHOLE.contains(&name) {
            return Ok(preserve_object());
        }
        if name == OBJECT_META {
            if path != "metadata" {
                return err(path, "object metadata below the root would be pruned to nothing");
            }
            let mut m = Map::new();
            m.insert("type".into(), Value::String("object".into()));
            return Ok(m);
        }
        if self.expanding.iter().any(|n| n == name) {
            return err(path, format!("`{name}` is recursive: a CRD schema cannot express it"));
        }
        let Some(def) = self.defs.get(name) else {
            return err(path, format!("no definition `{name}`"));
        };
        self.expanding.push(name.to_string());
        let converted = self.convert(def, path);
        self.expanding.pop();
        converted
    }

    /// `anyOf` / `oneOf`: "T or null", "integer or string", or string constants.
    fn union(&mut self, branches: &Value, path: &str) -> Result<Map<String, Value>, SchemaError> {
        let Some(branches) = branches.as_array() else { return err(path, "a union that is not a list") };
        let branches: Vec<&Value> = branches.iter().filter(|b| !is_null_schema(b)).collect();
        if let [only] = branches.as_slice() {
            return self.convert(only, path);
        }
        let converted = branches.iter().map(|b| self.convert(b, path)).collect::<Result<Vec<_>, _>>()?;
        let type_of = |m: &Map<String, Value>| m.get("type").and_then(Value::as_str).map(str::to_string);
        let mut types: Vec<String> = converted.iter().filter_map(type_of).collect();
        types.sort();
        let mut out = Map::new();
        if types == ["integer", "string"] && converted.iter().all(|m| !m.contains_key("enum")) {
            out.insert("x-kubernetes-int-or-string".into(), Value::Bool(true));
            return Ok(out);
        }
        if types.len() == converted.len() && types.iter().all(|t| t == "string") {
            let mut values = Vec::new();
            for m in &converted {
                match m.get("enum").and_then(Value::as_array) {
                    Some(v) => values.extend(v.iter().cloned()),
                    None => return err(path, "a union of strings that are not all constants"),
                }
            }
            out.insert("type".into(), Value::String("string".into()));
            out.insert("enum".into(), Value::Array(values));
            return Ok(out);
        }
        err(path, format!("a union of {} shapes cannot be expressed in a structural schema", converted.len()))
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null") || v.get("const").is_some_and(Value::is_null)
}

/// The one non-null type of `type` (a string or a list with `"null"`).
fn single_type(v: &Value, path: &str) -> Result<String, SchemaError> {
    let types: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return err(path, "`type` is neither a string nor a list"),
    };
    let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match types.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => err(path, "only `null` is allowed"),
        many => err(path, format!("several types ({}) cannot be expressed", many.join(", "))),
    }
}

/// Rustdoc to plain text: intra-doc links (``[`Foo`]``) lose their brackets.
fn describe(v: &Value) -> String {
    v.as_str().unwrap_or_default().replace("[`", "`").replace("`]", "`")
}

/// Overlays `top` on `base`: the field's own keywords (its description) win over the
/// referenced type's.
fn merge(base: &mut Map<String, Value>, top: Map<String, Value>) {
    for (k, v) in top {
        base.insert(k, v);
    }
}

fn preserve_any() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    m
}

fn preserve_object() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    m.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
    m
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The path of the first place where `a` and `b` differ (keys compared as sets).
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                let p = join(path, k);
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &p) {
                            return Some(d);
                        }
                    }
                    None => return Some(p),
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| join(path, k))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (v, w))| first_difference(v, w, &format!("{path}[{i}]")))
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(v: Value) -> Result<Value, SchemaError> {
        structural(&v).map(|p| serde_json::to_value(p).unwrap())
    }

    #[test]
    fn options_lose_their_null() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": ["integer", "null"], "format": "int32"},
            "b": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "null"}], "description": "field doc"}
        }, "$defs": {"B": {"type": "object", "description": "type doc", "properties": {"c": {"type": "string"}}, "additionalProperties": false}}});
        assert_eq!(
            convert(s).unwrap(),
            json!({"type": "object", "properties": {
                "a": {"type": "integer", "format": "int32"},
                "b": {"type": "object", "description": "field doc", "properties": {"c": {"type": "string"}}}
            }})
        );
    }

    #[test]
    fn integer_or_string_is_int_or_string() {
        let s = json!({"type": "object", "properties": {"n": {"anyOf": [{"type": "integer", "format": "int32"}, {"type": "string"}]}}});
        assert_eq!(convert(s).unwrap()["properties"]["n"], json!({"x-kubernetes-int-or-string": true}));
    }

    #[test]
    fn documented_enum_variants_become_one_enum() {
        let s = json!({"type": "object", "properties": {"p": {"oneOf": [
            {"type": "string", "const": "A", "description": "first"},
            {"type": "string", "enum": ["B", "C"]}
        ]}}});
        assert_eq!(convert(s).unwrap()["properties"]["p"], json!({"type": "string", "enum": ["A", "B", "C"]}));
    }

    #[test]
    fn arbitrary_json_is_preserved() {
        let s = json!({"type": "object", "properties": {"any": true, "map": {"type": "object", "additionalProperties": true}}});
        let c = convert(s).unwrap();
        assert_eq!(c["properties"]["any"], json!({"x-kubernetes-preserve-unknown-fields": true}));
        assert_eq!(c["properties"]["map"], json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    }

    #[test]
    fn defaults_are_dropped() {
        let s = json!({"type": "object", "properties": {"s": {"type": "string", "default": ""}, "o": {"type": ["string", "null"], "default": null}}});
        let c = convert(s).unwrap();
        assert_eq!(c["properties"]["s"], json!({"type": "string"}));
        assert_eq!(c["properties"]["o"], json!({"type": "string"}));
    }

    #[test]
    fn what_cannot_be_expressed_is_an_error_naming_the_field() {
        let union = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "u": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "string"}}]}}}}});
        assert_eq!(convert(union).unwrap_err().path, "spec.u");
        let recursive = json!({"$ref": "#/$defs/R", "$defs": {"R": {"type": "object", "properties": {"r": {"$ref": "#/$defs/R"}}}}});
        let e = convert(recursive).unwrap_err();
        assert_eq!(e.path, "r");
        assert!(e.message.contains("recursive"), "{e}");
        let untyped = json!({"type": "object", "properties": {"x": {"description": "no type", "minimum": 1}}});
        assert_eq!(convert(untyped).unwrap_err().to_string(), "x: no type");
        let documented_any = json!({"type": "object", "properties": {"x": {"description": "any JSON"}}});
        assert_eq!(
            convert(documented_any).unwrap()["properties"]["x"],
            json!({"description": "any JSON", "x-kubernetes-preserve-unknown-fields": true})
        );
        let unknown = json!({"type": "object", "properties": {"x": {"type": "string", "contentEncoding": "base64"}}});
        assert!(convert(unknown).unwrap_err().message.contains("contentEncoding"));
        let meta = json!({"type": "object", "properties": {"spec": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}}});
        assert_eq!(convert(meta).unwrap_err().path, "spec");
    }

    #[test]
    fn pod_templates_are_kept_whole() {
        let s = json!({"type": "object", "properties": {"template": {"$ref": "#/$defs/io.k8s.api.core.v1.PodTemplateSpec", "description": "The pod template."}}});
        assert_eq!(
            convert(s).unwrap()["properties"]["template"],
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": "The pod template."})
        );
    }
}
