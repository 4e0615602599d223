//! Traefik, as Argo writes it (`rollout/trafficrouting/traefik/traefik.go`): the
//! TraefikService `weightedTraefikServiceName` lists the canary and stable Services under
//! `spec.weighted.services`; the canary's entry gets the canary weight and the stable's
//! `100 − weight` (as Argo: 100, not `maxTrafficWeight`, which validation refuses here).
//! Other entries are left alone; experiments add no entry (Argo passes them nowhere, and
//! validation refuses experiment weights with Traefik). No header or mirror routes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::merge_patch;
use crate::api::{RouteKind, TraefikTrafficRouting};
use crate::state::{route_key, Action};

/// The `spec.weighted.services` the plan wants, from the live TraefikService's `spec`.
pub fn desired_services(spec: &Value, plan: &TrafficPlan) -> Result<Vec<Value>, RouterError> {
    let Some(services) = spec.pointer("/weighted/services").and_then(Value::as_array) else {
        return Err(RouterError::Invalid("spec.weighted.services was not found in traefik service manifest".into()));
    };
    let mut out = services.clone();
    for (service, weight, what) in [
        (&plan.canary_service, i64::from(plan.weight), "canary"),
        (&plan.stable_service, 100 - i64::from(plan.weight), "stable"),
    ] {
        let mut found = false;
        for entry in out.iter_mut() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                return Err(RouterError::Invalid("name field was not found in service".into()));
            };
            if name == service {
                entry["weight"] = json!(weight);
                found = true;
                break;
            }
        }
        if !found {
            return Err(RouterError::Invalid(format!("traefik {what} service was not found")));
        }
    }
    Ok(out)
}

/// Patches the TraefikService's weighted services to what the plan wants (applied to
/// `routes` as well); nothing when they already are.
pub fn reconcile(
    cfg: &TraefikTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
) -> Result<Vec<Action>, RouterError> {
    let name = cfg.weighted_traefik_service_name.clone();
    let Some(live) = routes.get_mut(&route_key(RouteKind::TraefikService, &name)) else {
        return Err(RouterError::NotFound { kind: "TraefikService", name });
    };
    let spec = live.get("spec").cloned().unwrap_or_default();
    let services = desired_services(&spec, plan)?;
    if spec.pointer("/weighted/services").and_then(Value::as_array) == Some(&services) {
        return Ok(Vec::new());
    }
    // A merge patch replaces the list whole, as Argo's update does.
    let patch = json!({"spec": {"weighted": {"services": services}}});
    merge_patch(live, &patch);
    Ok(vec![Action::PatchRoute { kind: RouteKind::TraefikService, namespace: None, name, patch }])
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

    fn routes(services: Value) -> BTreeMap<String, Value> {
        let ts = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": {"name": "ts"},
            "spec": {"weighted": {"services": services}}});
        BTreeMap::from([(route_key(RouteKind::TraefikService, "ts"), ts)])
    }

    fn cfg() -> TraefikTrafficRouting {
        TraefikTrafficRouting { weighted_traefik_service_name: "ts".into() }
    }

    #[test]
    fn the_canary_gets_the_weight_and_the_stable_the_rest_other_entries_untouched() {
        let mut r = routes(json!([
            {"name": "web-stable", "port": 80},
            {"name": "web-canary", "port": 80, "weight": 0},
            {"name": "other", "port": 80, "weight": 7}]));
        let actions = reconcile(&cfg(), &plan(30), &mut r).unwrap();
        let [Action::PatchRoute { kind: RouteKind::TraefikService, name, patch, .. }] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(name, "ts");
        assert_eq!(
            patch["spec"]["weighted"]["services"],
            json!([
                {"name": "web-stable", "port": 80, "weight": 70},
                {"name": "web-canary", "port": 80, "weight": 30},
                {"name": "other", "port": 80, "weight": 7}])
        );
        // Applied to the copy: the same plan writes nothing more.
        assert_eq!(reconcile(&cfg(), &plan(30), &mut r).unwrap(), vec![]);
    }

    #[test]
    fn argo_s_errors_for_a_missing_object_list_or_service() {
        assert_eq!(
            reconcile(&cfg(), &plan(10), &mut BTreeMap::new()).unwrap_err().to_string(),
            "TraefikService `ts` not found"
        );
        let mut r = routes(json!([{"name": "web-stable"}]));
        assert_eq!(reconcile(&cfg(), &plan(10), &mut r).unwrap_err().to_string(), "traefik canary service was not found");
        let mut r = routes(json!([{"name": "web-canary"}]));
        assert_eq!(reconcile(&cfg(), &plan(10), &mut r).unwrap_err().to_string(), "traefik stable service was not found");
        let mut r = BTreeMap::from([(route_key(RouteKind::TraefikService, "ts"), json!({"spec": {}}))]);
        assert_eq!(
            reconcile(&cfg(), &plan(10), &mut r).unwrap_err().to_string(),
            "spec.weighted.services was not found in traefik service manifest"
        );
    }
}
