//! What Argo checks of the Traefik, Ambassador and APISIX routers' configuration and
//! objects, and the steps they cannot carry (refused before anything moves, naming step
//! and router).

use super::{invalid, required, ValidationError};
use crate::api::{CanaryStrategy, Rollout, RolloutTrafficRouting, RouteKind};
use crate::state::{route_key, State};
use crate::traffic::{ambassador, apisix, traefik, TrafficPlan};

const P: &str = "spec.strategy.canary.trafficRouting";

/// Whether one of these routers (or App Mesh) needs the canary and stable Services (all
/// of them do).
pub(super) fn services_required(tr: &RolloutTrafficRouting) -> bool {
    tr.has_proxy_router()
}

/// Each block names its object; no `maxTrafficWeight` (their weights are out of 100).
pub(super) fn validate_config(tr: &RolloutTrafficRouting) -> Result<(), ValidationError> {
    if let Some(t) = &tr.traefik {
        if t.weighted_traefik_service_name.is_empty() {
            return Err(required(&format!("{P}.traefik.weightedTraefikServiceName"), "the TraefikService's name is required"));
        }
    }
    if let Some(a) = &tr.ambassador {
        if a.mappings.is_empty() {
            return Err(invalid(&format!("{P}.ambassador.mappings"), "[]", "must provide at least one mapping"));
        }
        if let Some(i) = a.mappings.iter().position(String::is_empty) {
            return Err(required(&format!("{P}.ambassador.mappings[{i}]"), "a Mapping's name is required"));
        }
    }
    if let Some(a) = &tr.apisix {
        match &a.route {
            None => return Err(required(&format!("{P}.apisix.route"), "the ApisixRoute is required")),
            Some(r) if r.name.is_empty() => {
                return Err(required(&format!("{P}.apisix.route.name"), "the ApisixRoute's name is required"))
            }
            Some(_) => {}
        }
    }
    if let (Some(w), true) = (tr.max_traffic_weight, tr.has_proxy_router()) {
        return Err(invalid(
            &format!("{P}.maxTrafficWeight"),
            w,
            "maxTrafficWeight is only supported with nginx and plugins (Traefik, Ambassador, APISIX and App Mesh weights are out of 100)",
        ));
    }
    Ok(())
}

/// A `setHeaderRoute` (`mirror` false) or `setMirrorRoute` (`mirror` true) step beside a
/// router that cannot carry it: Traefik and Ambassador carry neither, APISIX no mirror
/// (Argo accepts such a step when another router carries it and these do nothing; alone,
/// it refuses it).
pub(super) fn check_step_carried(c: &CanaryStrategy, path: &str, name: &str, mirror: bool) -> Result<(), ValidationError> {
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    let what = if mirror { "mirror routes" } else { "header routes" };
    let refusing = [
        ("Traefik", tr.traefik.is_some(), "a TraefikService only weighs services"),
        ("Ambassador", tr.ambassador.is_some(), "a canary Mapping only carries a weight"),
        ("APISIX", tr.apisix.is_some() && mirror, "Argo's APISIX router does not mirror"),
    ];
    if let Some((router, _, why)) = refusing.into_iter().find(|(_, set, _)| *set) {
        return Err(invalid(
            path,
            format!("{name:?}"),
            &format!("the {router} router cannot carry {what} ({why}): remove the step or the {} router", router.to_lowercase()),
        ));
    }
    Ok(())
}

/// The objects named exist and can carry a plan (Argo checks the Ambassador Mappings before
/// reconciling; the TraefikService and the ApisixRoute it reads when setting the weight:
/// their errors are found here, before anything moves).
pub(super) fn validate_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    let Some(c) = ro.spec.canary() else { return Ok(()) };
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    let plan = TrafficPlan {
        canary_service: c.canary_service.clone(),
        stable_service: c.stable_service.clone(),
        max_weight: 100,
        ..TrafficPlan::default()
    };
    if let Some(t) = &tr.traefik {
        let name = &t.weighted_traefik_service_name;
        let path = format!("{P}.traefik.weightedTraefikServiceName");
        let Some(live) = state.routes.get(&route_key(RouteKind::TraefikService, name)) else {
            return Err(invalid(&path, format!("{name:?}"), &format!("traefikservices.traefik.io {name:?} not found")));
        };
        if let Err(e) = traefik::desired_services(live.get("spec").unwrap_or(&serde_json::Value::Null), &plan) {
            return Err(invalid(&path, format!("{name:?}"), &e.to_string()));
        }
    }
    if let Some(a) = &tr.ambassador {
        let path = format!("{P}.ambassador.mappings");
        for name in &a.mappings {
            let Some(live) = state.routes.get(&route_key(RouteKind::Mapping, name)) else {
                return Err(invalid(&path, format!("{name:?}"), &format!("mappings.getambassador.io {name:?} not found")));
            };
            if let Err(e) = ambassador::check_base(name, live) {
                // Argo's path: the Mapping's field.
                return Err(invalid("spec.weight", format!("{name:?}"), &e.to_string()));
            }
        }
    }
    if let Some(a) = &tr.apisix {
        let name = a.route.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        let path = format!("{P}.apisix.route.name");
        let Some(live) = state.routes.get(&route_key(RouteKind::ApisixRoute, &name)) else {
            return Err(invalid(&path, format!("{name:?}"), &format!("apisixroutes.apisix.apache.org {name:?} not found")));
        };
        if let Err(e) = apisix::desired_http(live.get("spec").unwrap_or(&serde_json::Value::Null), a, &plan) {
            return Err(invalid(&path, format!("{name:?}"), &e.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{validate_references, validate_spec};
    use crate::api::RolloutSpec;
    use crate::state::{route_key, State};
    use serde_json::json;

    fn spec(router: serde_json::Value, steps: serde_json::Value) -> RolloutSpec {
        serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                "trafficRouting": router, "steps": steps}}}))
        .unwrap()
    }

    #[test]
    fn steps_a_router_cannot_carry_are_refused_naming_step_and_router() {
        let header = json!([{"setHeaderRoute": {"name": "h", "match": [{"headerName": "a", "headerValue": {"exact": "b"}}]}}]);
        let traefik = json!({"managedRoutes": [{"name": "h"}], "traefik": {"weightedTraefikServiceName": "ts"}});
        let err = validate_spec(&spec(traefik, header.clone())).unwrap_err().to_string();
        assert!(err.starts_with("spec.strategy.canary.steps[0].setHeaderRoute"), "{err}");
        assert!(err.contains("the Traefik router cannot carry header routes"), "{err}");
        let ambassador = json!({"managedRoutes": [{"name": "h"}], "ambassador": {"mappings": ["m"]}});
        assert!(validate_spec(&spec(ambassador, header.clone())).unwrap_err().to_string().contains("Ambassador router"));
        // APISIX carries header routes, not mirrors.
        let apisix = json!({"managedRoutes": [{"name": "h"}], "apisix": {"route": {"name": "r"}}});
        validate_spec(&spec(apisix.clone(), header)).unwrap();
        let mirror = json!([{"setMirrorRoute": {"name": "h", "match": [{"path": {"prefix": "/"}}]}}]);
        let err = validate_spec(&spec(apisix, mirror)).unwrap_err().to_string();
        assert!(err.contains("the APISIX router cannot carry mirror routes"), "{err}");
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let err = validate_spec(&spec(json!({"traefik": {}}), json!([]))).unwrap_err().to_string();
        assert!(err.contains("trafficRouting.traefik.weightedTraefikServiceName"), "{err}");
        let err = validate_spec(&spec(json!({"ambassador": {"mappings": []}}), json!([]))).unwrap_err().to_string();
        assert!(err.contains("must provide at least one mapping"), "{err}");
        let err = validate_spec(&spec(json!({"apisix": {}}), json!([]))).unwrap_err().to_string();
        assert!(err.contains("trafficRouting.apisix.route"), "{err}");
        let err = validate_spec(&spec(json!({"maxTrafficWeight": 1000, "traefik": {"weightedTraefikServiceName": "t"}}), json!([])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxTrafficWeight"), "{err}");
    }

    #[test]
    fn missing_or_unusable_objects_are_invalid_spec_with_argo_s_wording() {
        let mut ro: crate::api::Rollout = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {}})).unwrap();
        ro.spec = spec(json!({"ambassador": {"mappings": ["m"]}}), json!([]));
        let state = State::default();
        let err = super::validate_references(&ro, &state).unwrap_err().to_string();
        assert!(err.contains("mappings.getambassador.io \"m\" not found"), "{err}");
        let mut state = State::default();
        state.routes.insert(route_key(crate::api::RouteKind::Mapping, "m"), json!({"spec": {"weight": 10}}));
        let err = super::validate_references(&ro, &state).unwrap_err().to_string();
        assert!(err.contains("Ambassador mapping \"m\" can not define weight"), "{err}");
        ro.spec = spec(json!({"traefik": {"weightedTraefikServiceName": "ts"}}), json!([]));
        state.routes.insert(
            route_key(crate::api::RouteKind::TraefikService, "ts"),
            json!({"spec": {"weighted": {"services": [{"name": "web-stable"}]}}}),
        );
        let err = validate_references(&ro, &state).unwrap_err().to_string();
        assert!(err.contains("traefik canary service was not found"), "{err}");
    }
}
