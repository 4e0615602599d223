//! Ambassador, as Argo writes it (`rollout/trafficrouting/ambassador/ambassador.go`): for
//! each Mapping of `mappings`, a `<mapping>-canary` Mapping (the name cut to 246
//! characters first) cloned from it without its metadata, whose `spec.service` has the
//! stable Service's name replaced by the canary's (the first occurrence, as Argo) and whose
//! `spec.weight` is the canary weight. The base Mapping must not set a weight. Nothing is
//! created at weight 0; a canary Mapping brought back to weight 0 is deleted 5 s later
//! (Argo sleeps 5 s inside the reconcile "for propagation of mapping update").
//!
//! The 5 s are a wake-up here, never a sleep: the weight-0 write also records when the
//! Mapping may go, in the annotation [`DELETE_AFTER`], so a reconcile before then (or
//! after a controller restart) knows to wait, and one after deletes it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::{merge_diff, merge_patch};
use crate::api::{AmbassadorTrafficRouting, RouteKind};
use crate::state::{route_key, Action, EventType};
use crate::time::{Seconds, Timestamp};

/// The annotation on a canary Mapping at weight 0 saying when it is deleted (RFC 3339).
pub const DELETE_AFTER: &str = "rollouts.argoproj.io/canary-mapping-delete-after";

/// How long a canary Mapping stays at weight 0 before it is deleted (Argo's sleep).
pub const CLEANUP_DELAY: Seconds = Seconds(5);

/// Argo's `buildCanaryMappingName`: the base name cut to 246 characters, plus `-canary`.
pub fn canary_mapping_name(base: &str) -> String {
    let cut: String = base.chars().take(246).collect();
    format!("{cut}-canary")
}

/// A Mapping's `spec.weight` (0 when unset or not a whole number, as Argo reads it).
pub fn mapping_weight(mapping: &Value) -> i64 {
    mapping.pointer("/spec/weight").and_then(Value::as_i64).unwrap_or(0)
}

/// Argo's check of a base Mapping (`ValidateAmbassadorMapping`).
pub fn check_base(name: &str, mapping: &Value) -> Result<(), RouterError> {
    if mapping_weight(mapping) != 0 {
        return Err(RouterError::Invalid(format!("Ambassador mapping {name:?} can not define weight")));
    }
    Ok(())
}

/// The canary Mapping Argo builds from `base` for `plan` (`buildCanaryMapping`).
pub fn canary_mapping(base: &Value, plan: &TrafficPlan) -> Value {
    let mut canary = base.clone();
    let base_name = base.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut metadata = json!({"name": canary_mapping_name(base_name)});
    if let Some(ns) = base.pointer("/metadata/namespace") {
        metadata["namespace"] = ns.clone();
    }
    if let Some(obj) = canary.as_object_mut() {
        obj.insert("metadata".into(), metadata);
        // What the API server reports is not the clone's to carry.
        obj.remove("status");
    }
    let service = base.pointer("/spec/service").and_then(Value::as_str).unwrap_or_default();
    let service = service.replacen(plan.stable_service.as_str(), &plan.canary_service, 1);
    if !canary.get("spec").is_some_and(Value::is_object) {
        canary["spec"] = json!({});
    }
    canary["spec"]["service"] = json!(service);
    canary["spec"]["weight"] = json!(plan.weight);
    canary
}

/// What the Ambassador router does for a plan: its actions, and when it must look again
/// (a canary Mapping waiting to be deleted).
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Creates, patches and deletes of canary Mappings, and Argo's event.
    pub actions: Vec<Action>,
    /// When a canary Mapping at weight 0 may be deleted.
    pub wake_at: Option<Timestamp>,
}

/// Creates, weighs or deletes each base Mapping's canary Mapping for the plan (applied to
/// `routes` as well).
pub fn reconcile(
    cfg: &AmbassadorTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
    now: Timestamp,
) -> Result<Outcome, RouterError> {
    let mut out = Outcome::default();
    let mut errors = Vec::new();
    for base_name in &cfg.mappings {
        if let Err(e) = reconcile_one(base_name, plan, routes, now, &mut out) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        n => {
            // Argo's formatErrors.
            let all: String = errors.iter().map(|e| format!("[{e}]")).collect();
            return Err(RouterError::Invalid(format!("{n} errors found: {all}")));
        }
    }
    if out.actions.iter().any(|a| !matches!(a, Action::DeleteRoute { .. })) {
        out.actions.push(Action::RecordEvent {
            kind: EventType::Normal,
            reason: "CanaryMappingWeightUpdate".into(),
            message: format!("Set canary mapping weight to {}", plan.weight),
        });
    }
    Ok(out)
}

fn reconcile_one(
    base_name: &str,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
    now: Timestamp,
    out: &mut Outcome,
) -> Result<(), RouterError> {
    let name = canary_mapping_name(base_name);
    let key = route_key(RouteKind::Mapping, &name);
    let Some(live) = routes.get_mut(&key) else {
        if plan.weight == 0 {
            return Ok(());
        }
        let Some(base) = routes.get(&route_key(RouteKind::Mapping, base_name)) else {
            return Err(RouterError::Invalid(format!("Ambassador mapping {base_name:?} not found")));
        };
        check_base(base_name, base)?;
        let object = canary_mapping(base, plan);
        routes.insert(key, object.clone());
        out.actions.push(Action::CreateRoute { kind: RouteKind::Mapping, object });
        return Ok(());
    };
    let delete_after = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DELETE_AFTER))
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339);
    if plan.weight == 0 {
        if let (Some(at), 0) = (delete_after, mapping_weight(live)) {
            if now >= at {
                routes.remove(&key);
                out.actions.push(Action::DeleteRoute { kind: RouteKind::Mapping, namespace: None, name });
            } else {
                out.wake_at = Some(out.wake_at.map_or(at, |w| w.min(at)));
            }
            return Ok(());
        }
        let at = now.plus(CLEANUP_DELAY);
        let patch = json!({"metadata": {"annotations": {DELETE_AFTER: at.to_rfc3339()}}, "spec": {"weight": 0}});
        merge_patch(live, &patch);
        out.actions.push(Action::PatchRoute { kind: RouteKind::Mapping, namespace: None, name, patch });
        out.wake_at = Some(out.wake_at.map_or(at, |w| w.min(at)));
        return Ok(());
    }
    let current = json!({"spec": {"weight": live.pointer("/spec/weight").cloned().unwrap_or(Value::Null)},
        "metadata": {"annotations": {DELETE_AFTER: delete_after.map(|t| json!(t.to_rfc3339())).unwrap_or(Value::Null)}}});
    let wanted = json!({"spec": {"weight": plan.weight}, "metadata": {"annotations": {DELETE_AFTER: Value::Null}}});
    if let Some(patch) = merge_diff(&current, &wanted) {
        merge_patch(live, &patch);
        out.actions.push(Action::PatchRoute { kind: RouteKind::Mapping, namespace: None, name, patch });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(weight: i32) -> TrafficPlan {
        TrafficPlan {
            rollout: "web".into(),
            canary_service: "web-canary".into(),
            stable_service: "web-stable".into(),
            weight,
            max_weight: 100,
            ..TrafficPlan::default()
        }
    }

    fn base() -> Value {
        json!({"apiVersion": "getambassador.io/v2", "kind": "Mapping",
            "metadata": {"name": "web-mapping", "namespace": "apps", "uid": "u1", "labels": {"a": "b"}},
            "spec": {"prefix": "/", "service": "web-stable:80"}})
    }

    fn cfg() -> AmbassadorTrafficRouting {
        AmbassadorTrafficRouting { mappings: vec!["web-mapping".into()] }
    }

    #[test]
    fn the_canary_mapping_is_a_clone_without_metadata_pointing_at_the_canary_with_the_weight() {
        let mut routes = BTreeMap::from([(route_key(RouteKind::Mapping, "web-mapping"), base())]);
        let now = Timestamp::from_unix(1000);
        // At weight 0 nothing is created.
        assert_eq!(reconcile(&cfg(), &plan(0), &mut routes, now).unwrap(), Outcome::default());
        let out = reconcile(&cfg(), &plan(20), &mut routes, now).unwrap();
        let [Action::CreateRoute { kind: RouteKind::Mapping, object }, Action::RecordEvent { reason, message, .. }] = &out.actions[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(
            *object,
            json!({"apiVersion": "getambassador.io/v2", "kind": "Mapping",
                "metadata": {"name": "web-mapping-canary", "namespace": "apps"},
                "spec": {"prefix": "/", "service": "web-canary:80", "weight": 20}})
        );
        assert_eq!((reason.as_str(), message.as_str()), ("CanaryMappingWeightUpdate", "Set canary mapping weight to 20"));
        // The next weight is a patch of the weight alone.
        let out = reconcile(&cfg(), &plan(50), &mut routes, now).unwrap();
        let Action::PatchRoute { name, patch, .. } = &out.actions[0] else { panic!("{out:?}") };
        assert_eq!((name.as_str(), patch.clone()), ("web-mapping-canary", json!({"spec": {"weight": 50}})));
        assert_eq!(reconcile(&cfg(), &plan(50), &mut routes, now).unwrap(), Outcome::default());
    }

    #[test]
    fn back_at_weight_0_the_canary_mapping_goes_5_seconds_later_unless_weight_returns() {
        let mut routes = BTreeMap::from([(route_key(RouteKind::Mapping, "web-mapping"), base())]);
        let t = Timestamp::from_unix(1000);
        reconcile(&cfg(), &plan(50), &mut routes, t).unwrap();
        let out = reconcile(&cfg(), &plan(0), &mut routes, t).unwrap();
        assert_eq!(out.wake_at, Some(t.plus(Seconds(5))));
        let Action::PatchRoute { patch, .. } = &out.actions[0] else { panic!("{out:?}") };
        assert_eq!(patch["spec"]["weight"], 0);
        assert_eq!(patch["metadata"]["annotations"][DELETE_AFTER], "1970-01-01T00:16:45Z");
        // Before the 5 s: wait, write nothing.
        let out = reconcile(&cfg(), &plan(0), &mut routes, t.plus(Seconds(4))).unwrap();
        assert_eq!(out, Outcome { actions: vec![], wake_at: Some(t.plus(Seconds(5))) });
        // Weight again: the deletion is called off.
        let mut again = routes.clone();
        let out = reconcile(&cfg(), &plan(10), &mut again, t.plus(Seconds(4))).unwrap();
        let Action::PatchRoute { patch, .. } = &out.actions[0] else { panic!("{out:?}") };
        assert_eq!(*patch, json!({"spec": {"weight": 10}, "metadata": {"annotations": {DELETE_AFTER: null}}}));
        // At 5 s: deleted, and nothing more after.
        let out = reconcile(&cfg(), &plan(0), &mut routes, t.plus(Seconds(5))).unwrap();
        assert_eq!(
            out.actions,
            vec![Action::DeleteRoute { kind: RouteKind::Mapping, namespace: None, name: "web-mapping-canary".into() }]
        );
        assert_eq!(reconcile(&cfg(), &plan(0), &mut routes, t.plus(Seconds(6))).unwrap(), Outcome::default());
    }

    #[test]
    fn argo_s_errors_for_a_weighted_or_missing_base_and_a_long_name_is_cut() {
        let mut weighted = base();
        weighted["spec"]["weight"] = json!(10);
        let mut routes = BTreeMap::from([(route_key(RouteKind::Mapping, "web-mapping"), weighted)]);
        let cfg2 = AmbassadorTrafficRouting { mappings: vec!["web-mapping".into(), "gone".into()] };
        let err = reconcile(&cfg2, &plan(10), &mut routes, Timestamp::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2 errors found: [Ambassador mapping \"web-mapping\" can not define weight][Ambassador mapping \"gone\" not found]"
        );
        let long = "m".repeat(300);
        assert_eq!(canary_mapping_name(&long).len(), 246 + "-canary".len());
    }
}
