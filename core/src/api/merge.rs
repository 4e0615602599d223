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

/// One merge patch doing what applying `first`, then `then`, does to any document; `None`
/// when no single merge patch can (`first` removes or replaces a member with a non-object
/// that `then` sets to an object: the composite would merge into the old member instead).
pub fn compose_merge_patches(first: &Value, then: &Value) -> Option<Value> {
    let (Value::Object(f), Value::Object(t)) = (first, then) else {
        return Some(then.clone());
    };
    let mut out = f.clone();
    for (k, tv) in t {
        let composed = match (f.get(k), tv) {
            (Some(fv @ Value::Object(_)), Value::Object(_)) => compose_merge_patches(fv, tv)?,
            (Some(_), Value::Object(_)) => return None,
            _ => tv.clone(),
        };
        out.insert(k.clone(), composed);
    }
    Some(Value::Object(out))
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

    #[test]
    fn composed_merge_patches_do_what_both_do_in_turn() {
        let docs = [
            json!({}),
            json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}),
            json!({"b": 5, "f": {"g": null}}),
        ];
        let patches = [
            json!({"a": 2}),
            json!({"a": null, "b": {"c": null, "x": 1}}),
            json!({"b": {"d": 4}, "e": [2, 3], "f": {"g": 1}}),
            json!({"e": null}),
            json!({"b": null}),
        ];
        for first in &patches {
            for then in &patches {
                let Some(both) = compose_merge_patches(first, then) else { continue };
                for doc in &docs {
                    let mut in_turn = doc.clone();
                    merge_patch(&mut in_turn, first);
                    merge_patch(&mut in_turn, then);
                    let mut at_once = doc.clone();
                    merge_patch(&mut at_once, &both);
                    assert_eq!(at_once, in_turn, "{first} then {then} on {doc}: {both}");
                }
            }
        }
        // Removed, then set to an object: no single merge patch says "replace whole".
        assert_eq!(compose_merge_patches(&json!({"b": null}), &json!({"b": {"x": 1}})), None);
        assert_eq!(compose_merge_patches(&json!({"a": 1}), &json!({"b": 2})), Some(json!({"a": 1, "b": 2})));
    }
}
