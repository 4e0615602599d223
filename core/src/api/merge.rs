//! RFC 7386 JSON merge patches: applying one, and the one between two documents.

use serde_json::{json, Map, Value};

/// RFC 7386 JSON merge patch: `null` removes a field, objects merge, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    merge_patch_owned(target, patch.clone());
}

/// [`merge_patch`], moving the patch's values into `target` instead of copying them.
pub fn merge_patch_owned(target: &mut Value, patch: Value) {
    let Value::Object(p) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(&k);
            } else {
                merge_patch_owned(t.entry(k).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 7386 merge patch turning `old` into `new` (removed fields become `null`).
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            patch.insert(k.clone(), d);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            if patch.is_empty() {
                None
            } else {
                Some(Value::Object(patch))
            }
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_sets_removed_fields_to_null() {
        let old = serde_json::json!({"abort": true, "phase": "Degraded", "canary": {"a": 1, "b": 2}});
        let new = serde_json::json!({"phase": "Healthy", "canary": {"a": 1}});
        assert_eq!(
            merge_diff(&old, &new),
            Some(serde_json::json!({"abort": null, "phase": "Healthy", "canary": {"b": null}}))
        );
        assert_eq!(merge_diff(&new, &new), None);
    }
}
