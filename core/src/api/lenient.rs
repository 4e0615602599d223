//! Lenient decoding of a Rollout, for display and for user commands.
//!
//! The controller decodes a Rollout strictly: a field it does not know makes the spec invalid.
//! The CLI must still show and drive a Rollout written for a newer Argo Rollouts (either CLI
//! works with either controller), so it decodes the same types leniently: every field the
//! strict decoder rejects is dropped, one at a time, until the rest decodes.

use serde_json::Value;

use super::parse::from_value_strict;
use super::{Rollout, SpecError};
use crate::rollout::decode_rollout;

/// How many offending fields are dropped before giving up on the spec.
const MAX_DROPPED_FIELDS: usize = 64;

/// A Rollout decoded for display, and the fields that had to be dropped to decode it.
#[derive(Debug, Clone)]
pub struct LenientRollout {
    /// The rollout, without the fields that were dropped.
    pub rollout: Rollout,
    /// Fields the core's types do not accept, with why (empty for a manifest the core knows).
    pub dropped: Vec<SpecError>,
}

/// Decodes `value` as a Rollout, dropping the fields the core's strict types reject. When the
/// spec still cannot be decoded, the result keeps the metadata and status and an empty spec.
pub fn rollout_lenient(value: &Value) -> LenientRollout {
    let mut value = value.clone();
    let mut dropped = Vec::new();
    while dropped.len() < MAX_DROPPED_FIELDS {
        match from_value_strict::<Rollout>(&value) {
            Ok(rollout) => return LenientRollout { rollout, dropped },
            Err(e) => {
                if e.path.is_empty() || !remove_path(&mut value, &e.path) {
                    dropped.push(e);
                    break;
                }
                dropped.push(e);
            }
        }
    }
    let (rollout, _) = decode_rollout(&value);
    LenientRollout { rollout, dropped }
}

/// One step of a `serde_path_to_error` path: `a.b[0].c` is `a`, `b`, `[0]`, `c`.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            out.push(Segment::Index(stripped[..end].parse().ok()?));
            rest = &stripped[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Removes the field at `path`; false when the path does not lead anywhere.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let Some(segments) = segments(path) else { return false };
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut node = value;
    for segment in parents {
        let next = match segment {
            Segment::Key(k) => node.get_mut(*k),
            Segment::Index(i) => node.get_mut(*i),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Segment::Key(k), Value::Object(map)) => map.remove(*k).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_known_manifest_decodes_without_dropping_anything() {
        let v = json!({"metadata": {"name": "a"}, "spec": {"replicas": 3, "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}});
        let r = rollout_lenient(&v);
        assert!(r.dropped.is_empty());
        assert_eq!(r.rollout.spec.replicas, Some(3));
    }

    #[test]
    fn fields_from_a_newer_argo_are_dropped_and_the_rest_is_kept() {
        let v = json!({
            "metadata": {"name": "a"},
            "spec": {
                "replicas": 5,
                "someNewField": true,
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}, "newStepOption": 1}]}}
            },
            "status": {"currentStepIndex": 1}
        });
        let r = rollout_lenient(&v);
        let paths: Vec<&str> = r.dropped.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.someNewField", "spec.strategy.canary.steps[1].newStepOption"]);
        assert_eq!(r.rollout.spec.replicas, Some(5));
        assert_eq!(r.rollout.spec.steps().len(), 2);
        assert_eq!(r.rollout.status.current_step_index, Some(1));
    }

    #[test]
    fn paths_are_split_into_keys_and_indexes() {
        assert_eq!(
            segments("spec.steps[1].pause").unwrap(),
            [Segment::Key("spec"), Segment::Key("steps"), Segment::Index(1), Segment::Key("pause")]
        );
        assert_eq!(segments("a[0][2]").unwrap(), [Segment::Key("a"), Segment::Index(0), Segment::Index(2)]);
        assert!(segments("a[x]").is_none());
    }
}
