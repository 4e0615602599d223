//! What Argo checks of the App Mesh router's configuration and objects
//! (`getReferencedAppMeshResources`, `ValidateAppMeshVirtualRouter`), and the steps it
//! cannot carry (refused before anything moves, naming step and router).

use serde_json::Value;

use super::{invalid, required, ValidationError};
use crate::api::{CanaryStrategy, Rollout, RolloutTrafficRouting, RouteKind};
use crate::state::{route_key, State};
use crate::traffic::{appmesh, TrafficPlan};

const P: &str = "spec.strategy.canary.trafficRouting.appMesh";
/// Argo's path for the VirtualService's reference errors (lowercase `appmesh`).
const VS_PATH: &str = "spec.strategy.canary.trafficRouting.appmesh.virtualService";

/// The VirtualService and both VirtualNodes are named (Argo needs them all: it refuses a
/// missing VirtualService and dereferences the node references).
pub(super) fn validate_config(tr: &RolloutTrafficRouting) -> Result<(), ValidationError> {
    let Some(m) = &tr.app_mesh else { return Ok(()) };
    match &m.virtual_service {
        None => return Err(invalid(VS_PATH, "null", "must provide virtual-service")),
        Some(vs) if vs.name.is_empty() => {
            return Err(required(&format!("{P}.virtualService.name"), "the App Mesh VirtualService's name is required"))
        }
        Some(_) => {}
    }
    let Some(group) = &m.virtual_node_group else {
        return Err(required(&format!("{P}.virtualNodeGroup"), "the canary and stable VirtualNodes are required"));
    };
    for (field, node) in [
        ("canaryVirtualNodeRef", &group.canary_virtual_node_ref),
        ("stableVirtualNodeRef", &group.stable_virtual_node_ref),
    ] {
        if node.as_ref().is_none_or(|n| n.name.is_empty()) {
            return Err(required(&format!("{P}.virtualNodeGroup.{field}.name"), "the VirtualNode's name is required"));
        }
    }
    Ok(())
}

/// A `setHeaderRoute` (`mirror` false) or `setMirrorRoute` (`mirror` true) step beside App
/// Mesh, which carries neither (Argo's `SetHeaderRoute`/`SetMirrorRoute` do nothing).
pub(super) fn check_step_carried(c: &CanaryStrategy, path: &str, name: &str, mirror: bool) -> Result<(), ValidationError> {
    if c.traffic_routing.as_ref().is_none_or(|tr| tr.app_mesh.is_none()) {
        return Ok(());
    }
    let what = if mirror { "mirror routes" } else { "header routes" };
    Err(invalid(
        path,
        format!("{name:?}"),
        &format!("the App Mesh router cannot carry {what} (a VirtualRouter route only weighs its targets): remove the step or the appMesh router"),
    ))
}

/// Argo's `ValidateAppMeshVirtualRouter`: routes, each of a supported type with exactly two
/// weighted targets.
pub fn validate_virtual_router(router: &Value) -> Result<(), ValidationError> {
    let name = router.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let value = format!("{name:?}");
    let routes = router.pointer("/spec/routes").and_then(Value::as_array).filter(|r| !r.is_empty());
    let Some(routes) = routes else {
        return Err(invalid("spec.routes", &value, &format!("No routes defined for AppMesh virtual-router {name}")));
    };
    for (i, route) in routes.iter().enumerate() {
        let path = format!("spec.routes[{i}]");
        if !route.is_object() {
            return Err(invalid(&path, &value, &format!("Invalid route was found for AppMesh virtual-router {name} at index {i}")));
        }
        let route_name = route.get("name").and_then(Value::as_str).unwrap_or_default();
        let Some((route_type, rule)) = appmesh::route_rule(route) else {
            return Err(invalid(
                &path,
                &value,
                &format!(
                    "Error getting route details for AppMesh virtual-router {name} and route {route_name}. Error: Route has unsupported route type"
                ),
            ));
        };
        let targets_path = format!("{path}.{route_type}.action.weightedTargets");
        let Some(targets) = rule.pointer("/action/weightedTargets").and_then(Value::as_array) else {
            return Err(invalid(
                &targets_path,
                &value,
                &format!("Invalid route action found for AppMesh virtual-router {name} and route {route_name}"),
            ));
        };
        if targets.len() != 2 {
            return Err(invalid(
                &targets_path,
                &value,
                &format!(
                    "Invalid number of weightedTargets ({}) for AppMesh virtual-router {name} and route {route_name}, expected 2",
                    targets.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The VirtualService exists and routes through a VirtualRouter that exists and is
/// well-formed (Argo's referenced-resource checks); the VirtualNodes exist and the router's
/// routes can carry a weight (Argo finds those when reconciling: found here, before anything
/// moves).
pub(super) fn validate_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    let Some(c) = ro.spec.canary() else { return Ok(()) };
    let Some(m) = c.traffic_routing.as_ref().and_then(|tr| tr.app_mesh.as_ref()) else { return Ok(()) };
    let namespace = ro.metadata.namespace.as_deref().unwrap_or_default();
    let vs_name = m.virtual_service.as_ref().map(|v| v.name.clone()).unwrap_or_default();
    let value = format!("{:?}", format!("{vs_name}.{namespace}"));
    let Some(vs) = state.routes.get(&route_key(RouteKind::AppMeshVirtualService, &vs_name)) else {
        return Err(invalid(VS_PATH, &value, &format!("virtualservices.appmesh.k8s.aws {vs_name:?} not found")));
    };
    let (_, router_name) = appmesh::virtual_router_ref(vs).map_err(|e| invalid(VS_PATH, &value, &e.to_string()))?;
    let Some(router) = state.routes.get(&route_key(RouteKind::VirtualRouter, &router_name)) else {
        return Err(invalid(VS_PATH, &value, &format!("virtualrouters.appmesh.k8s.aws {router_name:?} not found")));
    };
    validate_virtual_router(router)?;
    let plan = TrafficPlan { max_weight: 100, ..TrafficPlan::default() };
    let spec = router.get("spec").unwrap_or(&Value::Null);
    if let Err(e) = appmesh::desired_routes(&router_name, spec, m, &plan, namespace) {
        return Err(invalid(VS_PATH, &value, &e.to_string()));
    }
    let group = m.virtual_node_group.as_ref();
    for (field, node) in group.into_iter().flat_map(|g| {
        [("canaryVirtualNodeRef", &g.canary_virtual_node_ref), ("stableVirtualNodeRef", &g.stable_virtual_node_ref)]
    }) {
        let name = node.as_ref().map(|n| n.name.clone()).unwrap_or_default();
        if !state.routes.contains_key(&route_key(RouteKind::VirtualNode, &name)) {
            let path = format!("{P}.virtualNodeGroup.{field}.name");
            return Err(invalid(&path, format!("{name:?}"), &format!("virtualnodes.appmesh.k8s.aws {name:?} not found")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn router(routes: Value) -> Value {
        json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter", "metadata": {"name": "vr"}, "spec": {"routes": routes}})
    }

    fn target(name: &str) -> Value {
        json!({"virtualNodeRef": {"name": name}, "weight": 0})
    }

    #[test]
    fn a_virtual_router_is_well_formed_with_two_targets_per_route_of_every_supported_type() {
        for t in appmesh::ROUTE_TYPES {
            let r = router(json!([{"name": "primary", t: {"action": {"weightedTargets": [target("a"), target("b")]}}}]));
            assert_eq!(validate_virtual_router(&r), Ok(()), "{t}");
        }
    }

    #[test]
    fn argo_s_messages_for_a_malformed_virtual_router() {
        let err = |routes: Value| validate_virtual_router(&router(routes)).unwrap_err().to_string();
        assert_eq!(err(json!([])), "spec.routes: Invalid value: \"vr\": No routes defined for AppMesh virtual-router vr");
        assert_eq!(
            err(json!(["x"])),
            "spec.routes[0]: Invalid value: \"vr\": Invalid route was found for AppMesh virtual-router vr at index 0"
        );
        assert_eq!(
            err(json!([{"name": "p", "udpRoute": {}}])),
            "spec.routes[0]: Invalid value: \"vr\": Error getting route details for AppMesh virtual-router vr and route p. Error: Route has unsupported route type"
        );
        assert_eq!(
            err(json!([{"name": "p", "httpRoute": {"action": {}}}])),
            "spec.routes[0].httpRoute.action.weightedTargets: Invalid value: \"vr\": Invalid route action found for AppMesh virtual-router vr and route p"
        );
        for n in [1, 3] {
            let targets: Vec<Value> = (0..n).map(|i| target(&format!("n{i}"))).collect();
            assert_eq!(
                err(json!([{"name": "p", "httpRoute": {"action": {"weightedTargets": targets}}}])),
                format!("spec.routes[0].httpRoute.action.weightedTargets: Invalid value: \"vr\": Invalid number of weightedTargets ({n}) for AppMesh virtual-router vr and route p, expected 2")
            );
        }
    }

    fn spec(router: Value, steps: Value) -> crate::api::RolloutSpec {
        serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                "trafficRouting": router, "steps": steps}}}))
        .unwrap()
    }

    fn mesh() -> Value {
        json!({"virtualService": {"name": "vs"},
               "virtualNodeGroup": {"canaryVirtualNodeRef": {"name": "vn-canary"}, "stableVirtualNodeRef": {"name": "vn-stable"}}})
    }

    #[test]
    fn header_and_mirror_steps_are_refused_naming_step_and_router() {
        let router = json!({"managedRoutes": [{"name": "h"}], "appMesh": mesh()});
        let header = json!([{"setHeaderRoute": {"name": "h", "match": [{"headerName": "a", "headerValue": {"exact": "b"}}]}}]);
        let err = super::super::validate_spec(&spec(router.clone(), header)).unwrap_err().to_string();
        assert!(err.starts_with("spec.strategy.canary.steps[0].setHeaderRoute"), "{err}");
        assert!(err.contains("the App Mesh router cannot carry header routes"), "{err}");
        let mirror = json!([{"setMirrorRoute": {"name": "h", "match": [{"path": {"prefix": "/"}}]}}]);
        let err = super::super::validate_spec(&spec(router, mirror)).unwrap_err().to_string();
        assert!(err.contains("the App Mesh router cannot carry mirror routes"), "{err}");
        super::super::validate_spec(&spec(json!({"appMesh": mesh()}), json!([{"setWeight": 10}]))).unwrap();
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let err = |router: Value| super::super::validate_spec(&spec(router, json!([]))).unwrap_err().to_string();
        assert_eq!(
            err(json!({"appMesh": {}})),
            "spec.strategy.canary.trafficRouting.appmesh.virtualService: Invalid value: null: must provide virtual-service"
        );
        assert!(err(json!({"appMesh": {"virtualService": {"name": "vs"}}})).contains("appMesh.virtualNodeGroup"));
        let mut m = mesh();
        m["virtualNodeGroup"]["stableVirtualNodeRef"]["name"] = json!("");
        assert!(err(json!({"appMesh": m})).contains("appMesh.virtualNodeGroup.stableVirtualNodeRef.name"));
        assert!(err(json!({"appMesh": mesh(), "maxTrafficWeight": 1000})).contains("maxTrafficWeight"));
        let mut s = spec(json!({"appMesh": mesh()}), json!([]));
        s.strategy.canary.as_mut().unwrap().canary_service.clear();
        assert!(super::super::validate_spec(&s).unwrap_err().to_string().contains("spec.strategy.canary.canaryService"));
    }

    #[test]
    fn missing_or_unusable_objects_are_invalid_spec_with_argo_s_wording() {
        let mut ro: Rollout = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {}})).unwrap();
        ro.spec = spec(json!({"appMesh": mesh()}), json!([]));
        let mut state = State::default();
        let err = |state: &State| validate_references(&ro, state).unwrap_err().to_string();
        let prefix = "spec.strategy.canary.trafficRouting.appmesh.virtualService: Invalid value: \"vs.ns\": ";
        assert_eq!(err(&state), format!("{prefix}virtualservices.appmesh.k8s.aws \"vs\" not found"));
        let vs = route_key(RouteKind::AppMeshVirtualService, "vs");
        state.routes.insert(vs.clone(), json!({"spec": {"provider": {"virtualNode": {"virtualNodeRef": {"name": "x"}}}}}));
        assert_eq!(err(&state), format!("{prefix}Virtual-service is not associated with virtual-router"));
        state.routes.insert(vs, json!({"spec": {"provider": {"virtualRouter": {"virtualRouterRef": {"name": "vr"}}}}}));
        assert_eq!(err(&state), format!("{prefix}virtualrouters.appmesh.k8s.aws \"vr\" not found"));
        state.routes.insert(route_key(RouteKind::VirtualRouter, "vr"), router(json!([])));
        assert!(err(&state).contains("No routes defined for AppMesh virtual-router vr"));
        let targets = json!([target("vn-canary"), {"virtualNodeRef": {"name": "vn-stable"}}]);
        state.routes.insert(route_key(RouteKind::VirtualRouter, "vr"), router(json!([{"name": "p", "httpRoute": {"action": {"weightedTargets": targets}}}])));
        assert!(err(&state).ends_with("spec.routes[0].httpRoute.action.weightedTargets[1].weight: Invalid value: \"vr\": not well-formed"));
        let targets = json!([target("vn-canary"), target("vn-stable")]);
        state.routes.insert(route_key(RouteKind::VirtualRouter, "vr"), router(json!([{"name": "p", "httpRoute": {"action": {"weightedTargets": targets}}}])));
        assert!(err(&state).contains("virtualnodes.appmesh.k8s.aws \"vn-canary\" not found"));
        for n in ["vn-canary", "vn-stable"] {
            state.routes.insert(route_key(RouteKind::VirtualNode, n), json!({"spec": {}}));
        }
        assert_eq!(validate_references(&ro, &state), Ok(()));
    }
}
