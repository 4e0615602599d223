//! SMI, as Argo writes it (`rollout/trafficrouting/smi/smi.go`): a TrafficSplit named
//! `trafficSplitName` (default the Rollout's name), created and owned by the Rollout, whose
//! `spec.service` is `rootService` (default the stable Service) and whose backends are the
//! canary Service with the canary weight, the experiments' Services with theirs, and the
//! stable Service with `100 − canary − experiments` (as Argo: 100, not `maxTrafficWeight`,
//! which validation refuses with SMI).
//!
//! The API version is the controller's (`--traffic-split-api-version`, default
//! `v1alpha1`): a TrafficSplit that exists keeps its version, one created is written in the
//! default one and converted by the shell ([`in_version`]). `v1alpha1` weights are
//! quantities (`"10"`), later versions integers.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::{merge_diff, merge_patch};
use crate::api::{RouteKind, SmiTrafficRouting, SMI_DEFAULT_VERSION, SMI_GROUP};
use crate::state::{route_key, Action, EventType};

/// A weight as the TrafficSplit `version` writes it.
fn weight_in(version: &str, weight: i64) -> Value {
    if version == "v1alpha1" {
        json!(weight.to_string())
    } else {
        json!(weight)
    }
}

/// A weight as written in any version (a quantity such as `"10"` or `"500m"`, or an
/// integer), in whole units (a fraction rounded down).
pub fn weight_value(weight: &Value) -> Option<i64> {
    match weight {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64)),
        Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse::<i64>().ok().map(|m| m.div_euclid(1000)),
            None => s.parse::<i64>().ok(),
        },
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The version part of an `apiVersion` (`split.smi-spec.io/v1alpha2` → `v1alpha2`).
fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}

/// `object` (a TrafficSplit) written in TrafficSplit API version `version`: its
/// `apiVersion`, and its backends' weights as that version writes them.
pub fn in_version(object: &Value, version: &str) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!(format!("{SMI_GROUP}/{version}"));
    if let Some(backends) = out.pointer_mut("/spec/backends").and_then(Value::as_array_mut) {
        for b in backends {
            if let Some(w) = b.get("weight").and_then(weight_value) {
                b["weight"] = weight_in(version, w);
            }
        }
    }
    out
}

/// The TrafficSplit's `spec` for the plan, in `version`.
pub fn desired_spec(cfg: &SmiTrafficRouting, plan: &TrafficPlan, version: &str) -> Value {
    let root = if cfg.root_service.is_empty() { &plan.stable_service } else { &cfg.root_service };
    let mut backends = vec![json!({"service": plan.canary_service, "weight": weight_in(version, i64::from(plan.weight))})];
    let mut stable = 100 - i64::from(plan.weight);
    for d in &plan.additional {
        backends.push(json!({"service": d.service_name, "weight": weight_in(version, i64::from(d.weight))}));
        stable -= i64::from(d.weight);
    }
    backends.push(json!({"service": plan.stable_service, "weight": weight_in(version, stable)}));
    json!({"service": root, "backends": backends})
}

/// Whether the Rollout `uid` controls the object.
fn controlled_by(object: &Value, uid: &str) -> bool {
    object.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten().any(|o| {
        o.get("controller").and_then(Value::as_bool) == Some(true) && o.get("uid").and_then(Value::as_str) == Some(uid)
    })
}

/// Argo's error for a TrafficSplit the Rollout does not own, if `live` is one.
pub fn check_owner(live: &Value, name: &str, uid: &str) -> Result<(), RouterError> {
    if controlled_by(live, uid) {
        Ok(())
    } else {
        Err(RouterError::Invalid(format!("Rollout does not own TrafficSplit `{name}`")))
    }
}

/// Creates the TrafficSplit, or patches it to what the plan wants (applied to `routes` as
/// well).
pub fn reconcile(
    cfg: &SmiTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
) -> Result<Vec<Action>, RouterError> {
    let name = cfg.split_name(&plan.rollout).to_string();
    let key = route_key(RouteKind::TrafficSplit, &name);
    let Some(live) = routes.get_mut(&key) else {
        let object = json!({
            "apiVersion": format!("{SMI_GROUP}/{SMI_DEFAULT_VERSION}"),
            "kind": "TrafficSplit",
            "metadata": {
                "name": name,
                "ownerReferences": [{
                    "apiVersion": crate::api::API_VERSION,
                    "kind": "Rollout",
                    "name": plan.rollout,
                    "uid": plan.rollout_uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": desired_spec(cfg, plan, SMI_DEFAULT_VERSION),
        });
        routes.insert(key, object.clone());
        return Ok(vec![
            Action::CreateRoute { kind: RouteKind::TrafficSplit, object },
            Action::RecordEvent {
                kind: EventType::Normal,
                reason: "TrafficSplitCreated".into(),
                message: format!("TrafficSplit `{name}` created"),
            },
        ]);
    };
    check_owner(live, &name, &plan.rollout_uid)?;
    let version = version_of(live.get("apiVersion").and_then(Value::as_str).unwrap_or(SMI_DEFAULT_VERSION)).to_string();
    let current = json!({"spec": live.get("spec").cloned().unwrap_or(json!({}))});
    let wanted = json!({"spec": desired_spec(cfg, plan, &version)});
    let Some(patch) = merge_diff(&current, &wanted) else { return Ok(Vec::new()) };
    merge_patch(live, &patch);
    Ok(vec![Action::PatchRoute { kind: RouteKind::TrafficSplit, namespace: None, name, patch }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WeightDestination;

    fn plan(weight: i32) -> TrafficPlan {
        TrafficPlan {
            rollout: "web".into(),
            rollout_uid: "uid-web".into(),
            canary_service: "web-canary".into(),
            stable_service: "web-stable".into(),
            weight,
            max_weight: 100,
            ..TrafficPlan::default()
        }
    }

    #[test]
    fn the_split_is_created_owned_by_the_rollout_with_quantity_weights_in_v1alpha1() {
        let mut routes = BTreeMap::new();
        let actions = reconcile(&SmiTrafficRouting::default(), &plan(10), &mut routes).unwrap();
        let Action::CreateRoute { kind, object } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(*kind, RouteKind::TrafficSplit);
        assert_eq!(object["apiVersion"], "split.smi-spec.io/v1alpha1");
        assert_eq!(object["metadata"]["name"], "web");
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(
            object["spec"],
            json!({"service": "web-stable", "backends": [
                {"service": "web-canary", "weight": "10"}, {"service": "web-stable", "weight": "90"}]})
        );
        // Created: the next reconcile at the same weight writes nothing.
        assert_eq!(reconcile(&SmiTrafficRouting::default(), &plan(10), &mut routes).unwrap(), vec![]);
    }

    #[test]
    fn root_service_and_name_are_taken_from_the_configuration_and_experiments_take_from_the_stable() {
        let cfg = SmiTrafficRouting { root_service: "web".into(), traffic_split_name: "split".into() };
        let mut p = plan(10);
        p.additional = vec![WeightDestination { weight: 5, service_name: "exp".into(), pod_template_hash: "h".into() }];
        let spec = desired_spec(&cfg, &p, "v1alpha2");
        assert_eq!(
            spec,
            json!({"service": "web", "backends": [
                {"service": "web-canary", "weight": 10}, {"service": "exp", "weight": 5}, {"service": "web-stable", "weight": 85}]})
        );
        assert_eq!(cfg.split_name("r"), "split");
    }

    #[test]
    fn an_existing_split_keeps_its_version_and_gets_one_merge_patch() {
        let mut routes = BTreeMap::new();
        let mut live = json!({"apiVersion": "split.smi-spec.io/v1alpha3", "kind": "TrafficSplit",
            "metadata": {"name": "web", "ownerReferences": [{"controller": true, "uid": "uid-web"}]},
            "spec": {"service": "web-stable", "backends": [{"service": "web-canary", "weight": 0}, {"service": "web-stable", "weight": 100}]}});
        routes.insert(route_key(RouteKind::TrafficSplit, "web"), live.clone());
        let actions = reconcile(&SmiTrafficRouting::default(), &plan(30), &mut routes).unwrap();
        let [Action::PatchRoute { patch, .. }] = &actions[..] else { panic!("{actions:?}") };
        assert_eq!(patch["spec"]["backends"][0]["weight"], 30);
        assert_eq!(patch["spec"]["backends"][1]["weight"], 70);
        // Not ours: Argo's error, nothing written.
        live["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        routes.insert(route_key(RouteKind::TrafficSplit, "web"), live);
        let err = reconcile(&SmiTrafficRouting::default(), &plan(40), &mut routes).unwrap_err();
        assert_eq!(err.to_string(), "Rollout does not own TrafficSplit `web`");
    }

    #[test]
    fn weights_convert_between_versions() {
        let v1 = json!({"apiVersion": "split.smi-spec.io/v1alpha1", "spec": {"backends": [{"service": "a", "weight": "25"}]}});
        let v3 = in_version(&v1, "v1alpha3");
        assert_eq!(v3["apiVersion"], "split.smi-spec.io/v1alpha3");
        assert_eq!(v3["spec"]["backends"][0]["weight"], 25);
        assert_eq!(in_version(&v3, "v1alpha1"), v1);
        assert_eq!(weight_value(&json!("1500m")), Some(1));
        assert_eq!(weight_value(&json!(true)), None);
    }
}
