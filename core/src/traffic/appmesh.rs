//! AWS App Mesh, as Argo writes it (`rollout/trafficrouting/appmesh/appmesh.go`).
//!
//! - `UpdateHash`: the stable VirtualNode's `spec.podSelector.matchLabels` gets
//!   `rollouts-pod-template-hash` = the stable hash (`stable-hash` while there is none),
//!   then the canary VirtualNode's = the canary hash (`canary-hash` while there is none or
//!   it equals the stable's: App Mesh refuses two nodes with the same selector); both get
//!   the `managed-by-rollouts` annotation naming the rollout.
//! - `SetWeight`: the App Mesh VirtualService names a VirtualRouter
//!   (`spec.provider.virtualRouter.virtualRouterRef`); in each of its `spec.routes[]` (those
//!   named in `routes`, or all), the first of `httpRoute`, `tcpRoute`, `http2Route`,
//!   `grpcRoute` has `action.weightedTargets`: the target naming the canary VirtualNode (in
//!   the rollout's namespace) gets the weight, the stable's `100 − weight` (as Argo: 100, not
//!   `maxTrafficWeight`, which validation refuses here); other targets are left alone.
//!
//! No header or mirror routes (Argo's `SetHeaderRoute`/`SetMirrorRoute` do nothing;
//! validation refuses such steps), no experiment destinations, no weight verification.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::keys::{MANAGED_BY_ROLLOUTS, POD_TEMPLATE_HASH};
use crate::api::merge::merge_patch;
use crate::api::{AppMeshTrafficRouting, RouteKind};
use crate::state::{route_key, Action};

/// Argo's error when the VirtualService routes through no VirtualRouter.
pub const ERR_NOT_USING_VIRTUAL_ROUTER: &str = "Virtual-service is not associated with virtual-router";
/// Argo's error when the VirtualService is missing.
pub const ERR_VIRTUAL_SERVICE_MISSING: &str = "Virtual-service is missing";
/// Argo's error when the VirtualRouter is missing.
pub const ERR_VIRTUAL_ROUTER_MISSING: &str = "Virtual-router is missing";
/// Argo's error when a VirtualNode is missing.
pub const ERR_VIRTUAL_NODE_MISSING: &str = "Virtual-node is missing";
/// Argo's error for a malformed VirtualRouter field.
const NOT_WELL_FORMED: &str = "not well-formed";
/// The stable VirtualNode's hash while there is no stable ReplicaSet.
pub const DEFAULT_STABLE_HASH: &str = "stable-hash";
/// The canary VirtualNode's hash while there is no canary, or it is the stable.
pub const DEFAULT_CANARY_HASH: &str = "canary-hash";
/// The route types whose weighted targets Argo sets, in the order it looks for them.
pub const ROUTE_TYPES: [&str; 4] = ["httpRoute", "tcpRoute", "http2Route", "grpcRoute"];

/// Argo's `field.Invalid` for a VirtualRouter field (`<path>: Invalid value: "<router>": <detail>`).
fn invalid(path: &str, router: &str, detail: &str) -> RouterError {
    RouterError::Invalid(format!("{path}: Invalid value: {router:?}: {detail}"))
}

/// The hashes the stable and canary VirtualNodes get (Argo's `UpdateHash` placeholders).
pub fn node_hashes(plan: &TrafficPlan) -> (String, String) {
    let stable = if plan.stable_hash.is_empty() { DEFAULT_STABLE_HASH } else { plan.stable_hash.as_str() };
    let canary = if plan.canary_hash.is_empty() || plan.canary_hash == stable {
        DEFAULT_CANARY_HASH
    } else {
        plan.canary_hash.as_str()
    };
    (stable.to_string(), canary.to_string())
}

/// The route rule and its type (`httpRoute`…) of a VirtualRouter route: the first
/// supported type present.
pub fn route_rule(route: &Value) -> Option<(&'static str, &Value)> {
    ROUTE_TYPES.into_iter().find_map(|t| route.get(t).filter(|r| r.is_object()).map(|r| (t, r)))
}

/// The VirtualRouter the App Mesh VirtualService `vs` names: its namespace (when given)
/// and name.
pub fn virtual_router_ref(vs: &Value) -> Result<(Option<String>, String), RouterError> {
    let Some(r) = vs.pointer("/spec/provider/virtualRouter/virtualRouterRef") else {
        return Err(RouterError::Invalid(ERR_NOT_USING_VIRTUAL_ROUTER.into()));
    };
    let s = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((Some(s("namespace")).filter(|n| !n.is_empty()), s("name")))
}

/// The `spec.routes` the plan wants, from the live VirtualRouter (`router` its name, for
/// errors), or the error Argo reports. `namespace` is the rollout's: a target's
/// `virtualNodeRef.namespace` defaults to it, and only targets there are weighed.
pub fn desired_routes(
    router: &str,
    spec: &Value,
    cfg: &AppMeshTrafficRouting,
    plan: &TrafficPlan,
    namespace: &str,
) -> Result<Vec<Value>, RouterError> {
    let Some(routes) = spec.get("routes").and_then(Value::as_array) else {
        return Err(invalid("spec.routes", router, "No routes found"));
    };
    let filter: &[String] = cfg.virtual_service.as_ref().map_or(&[], |v| v.routes.as_slice());
    let group = cfg.virtual_node_group.as_ref();
    let node = |r: Option<&crate::api::AppMeshVirtualNodeReference>| r.map(|r| r.name.clone()).unwrap_or_default();
    let canary_node = node(group.and_then(|g| g.canary_virtual_node_ref.as_ref()));
    let stable_node = node(group.and_then(|g| g.stable_virtual_node_ref.as_ref()));
    let weight = i64::from(plan.weight);
    let mut out = routes.clone();
    for (i, route) in out.iter_mut().enumerate() {
        let path = format!("spec.routes[{i}]");
        if !route.is_object() {
            return Err(invalid(&path, router, NOT_WELL_FORMED));
        }
        let Some(name) = route.get("name").and_then(Value::as_str) else {
            return Err(invalid(&format!("{path}.name"), router, NOT_WELL_FORMED));
        };
        if !filter.is_empty() && !filter.iter().any(|f| f == name) {
            continue;
        }
        let Some((route_type, _)) = route_rule(route) else {
            return Err(invalid(&path, router, NOT_WELL_FORMED));
        };
        let targets_path = format!("{path}.{route_type}.action.weightedTargets");
        let Some(targets) = route.get_mut(route_type).and_then(|r| r.pointer_mut("/action/weightedTargets")).and_then(Value::as_array_mut)
        else {
            return Err(invalid(&targets_path, router, NOT_WELL_FORMED));
        };
        for (j, target) in targets.iter_mut().enumerate() {
            let target_path = format!("{targets_path}[{j}]");
            let Some(node_ref) = target.get("virtualNodeRef").filter(|r| r.is_object()) else {
                let what = if target.is_object() { format!("{target_path}.virtualNodeRef") } else { target_path };
                return Err(invalid(&what, router, NOT_WELL_FORMED));
            };
            let node_name = node_ref.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let node_namespace = node_ref.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(namespace);
            if !target.get("weight").is_some_and(Value::is_number) {
                return Err(invalid(&format!("{target_path}.weight"), router, NOT_WELL_FORMED));
            }
            if node_namespace != namespace {
                continue;
            }
            if node_name == stable_node {
                target["weight"] = json!(100 - weight);
            } else if node_name == canary_node {
                target["weight"] = json!(weight);
            }
        }
    }
    Ok(out)
}

/// Whether two route lists are the same, numbers compared as integers (Argo compares
/// weights as int64: `10.0` is `10`).
fn same_routes(a: &[Value], b: &[Value]) -> bool {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
            Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
            other @ (Value::Null | Value::Bool(_) | Value::String(_)) => other.clone(),
        }
    }
    a.iter().map(norm).eq(b.iter().map(norm))
}

/// The patch that gives VirtualNode `live` the hash `hash` and the managed-by annotation
/// naming `rollout`; `None` when it already has them.
fn node_patch(live: &Value, hash: &str, rollout: &str) -> Result<Option<Value>, RouterError> {
    let labels = live.pointer("/spec/podSelector/matchLabels");
    if labels.is_some_and(|l| !l.is_object() && !l.is_null()) {
        return Err(RouterError::Invalid(".spec.podSelector.matchLabels accessor error: not a map".into()));
    }
    let has_hash = labels.and_then(|l| l.get(POD_TEMPLATE_HASH)).and_then(Value::as_str) == Some(hash);
    let has_annotation = live.pointer("/metadata/annotations").and_then(|a| a.get(MANAGED_BY_ROLLOUTS)).and_then(Value::as_str) == Some(rollout);
    if has_hash && has_annotation {
        return Ok(None);
    }
    Ok(Some(json!({
        "metadata": {"annotations": {MANAGED_BY_ROLLOUTS: rollout}},
        "spec": {"podSelector": {"matchLabels": {POD_TEMPLATE_HASH: hash}}},
    })))
}

/// Argo's `UpdateHash` then `SetWeight`: the VirtualNodes' hashes (stable, then canary),
/// then the VirtualRouter's weights, as patches (applied to `routes` as well); nothing for
/// an object that already is what the plan wants. `namespace` is the rollout's.
pub fn reconcile(
    cfg: &AppMeshTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
    namespace: &str,
) -> Result<Vec<Action>, RouterError> {
    let mut actions = Vec::new();
    let (stable_hash, canary_hash) = node_hashes(plan);
    let group = cfg.virtual_node_group.as_ref();
    for (node, hash) in [
        (group.and_then(|g| g.stable_virtual_node_ref.as_ref()), stable_hash),
        (group.and_then(|g| g.canary_virtual_node_ref.as_ref()), canary_hash),
    ] {
        let name = node.map(|n| n.name.clone()).unwrap_or_default();
        let Some(live) = routes.get_mut(&route_key(RouteKind::VirtualNode, &name)) else {
            return Err(RouterError::Invalid(ERR_VIRTUAL_NODE_MISSING.into()));
        };
        if let Some(patch) = node_patch(live, &hash, &plan.rollout)? {
            merge_patch(live, &patch);
            actions.push(Action::PatchRoute { kind: RouteKind::VirtualNode, namespace: None, name, patch });
        }
    }
    let vs_name = cfg.virtual_service.as_ref().map(|v| v.name.clone()).unwrap_or_default();
    let Some(vs) = routes.get(&route_key(RouteKind::AppMeshVirtualService, &vs_name)) else {
        return Err(RouterError::Invalid(ERR_VIRTUAL_SERVICE_MISSING.into()));
    };
    let (router_namespace, router) = virtual_router_ref(vs)?;
    let Some(live) = routes.get_mut(&route_key(RouteKind::VirtualRouter, &router)) else {
        return Err(RouterError::Invalid(ERR_VIRTUAL_ROUTER_MISSING.into()));
    };
    let spec = live.get("spec").cloned().unwrap_or_default();
    let desired = desired_routes(&router, &spec, cfg, plan, namespace)?;
    if spec.get("routes").and_then(Value::as_array).is_some_and(|r| same_routes(r, &desired)) {
        return Ok(actions);
    }
    // A merge patch replaces the list whole, as Argo's update does.
    let patch = json!({"spec": {"routes": desired}});
    merge_patch(live, &patch);
    // The VirtualService's own namespace when its reference names none.
    let router_namespace = router_namespace.filter(|n| n != namespace);
    actions.push(Action::PatchRoute { kind: RouteKind::VirtualRouter, namespace: router_namespace, name: router, patch });
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppMeshVirtualNodeGroup, AppMeshVirtualNodeReference, AppMeshVirtualService};

    fn plan(weight: i32, canary: &str, stable: &str) -> TrafficPlan {
        TrafficPlan {
            rollout: "web".into(),
            canary_service: "web-canary".into(),
            stable_service: "web-stable".into(),
            weight,
            max_weight: 100,
            canary_hash: canary.into(),
            stable_hash: stable.into(),
            ..TrafficPlan::default()
        }
    }

    fn cfg(routes: &[&str]) -> AppMeshTrafficRouting {
        let node = |n: &str| Some(AppMeshVirtualNodeReference { name: n.into() });
        AppMeshTrafficRouting {
            virtual_service: Some(AppMeshVirtualService { name: "vs".into(), routes: routes.iter().map(|r| r.to_string()).collect() }),
            virtual_node_group: Some(AppMeshVirtualNodeGroup {
                canary_virtual_node_ref: node("vn-canary"),
                stable_virtual_node_ref: node("vn-stable"),
            }),
        }
    }

    fn targets(canary: i64, stable: i64) -> Value {
        json!({"action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "vn-canary"}, "weight": canary},
            {"virtualNodeRef": {"name": "vn-stable"}, "weight": stable}]}})
    }

    fn world(router_routes: Value) -> BTreeMap<String, Value> {
        let mesh = |kind: &str, name: &str, spec: Value| {
            json!({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec})
        };
        BTreeMap::from([
            (
                route_key(RouteKind::AppMeshVirtualService, "vs"),
                mesh("VirtualService", "vs", json!({"provider": {"virtualRouter": {"virtualRouterRef": {"name": "vr"}}}})),
            ),
            (route_key(RouteKind::VirtualRouter, "vr"), mesh("VirtualRouter", "vr", json!({"routes": router_routes}))),
            (
                route_key(RouteKind::VirtualNode, "vn-canary"),
                mesh("VirtualNode", "vn-canary", json!({"podSelector": {"matchLabels": {"app": "web", POD_TEMPLATE_HASH: "canary-tbd"}}})),
            ),
            (route_key(RouteKind::VirtualNode, "vn-stable"), mesh("VirtualNode", "vn-stable", json!({}))),
        ])
    }

    #[test]
    fn nodes_get_the_hashes_and_the_router_the_weights_then_nothing_more() {
        let mut r = world(json!([{"name": "primary", "httpRoute": targets(0, 100)}]));
        let actions = reconcile(&cfg(&[]), &plan(30, "c1", "s1"), &mut r, "default").unwrap();
        let names: Vec<String> = actions
            .iter()
            .map(|a| if let Action::PatchRoute { kind, name, .. } = a { format!("{} {name}", kind.as_str()) } else { format!("{a:?}") })
            .collect();
        assert_eq!(names, ["VirtualNode vn-stable", "VirtualNode vn-canary", "VirtualRouter vr"]);
        let Action::PatchRoute { patch, .. } = &actions[0] else { panic!() };
        assert_eq!(
            patch,
            &json!({"metadata": {"annotations": {MANAGED_BY_ROLLOUTS: "web"}},
                    "spec": {"podSelector": {"matchLabels": {POD_TEMPLATE_HASH: "s1"}}}})
        );
        // The canary node keeps its other labels.
        assert_eq!(
            r[&route_key(RouteKind::VirtualNode, "vn-canary")]["spec"]["podSelector"]["matchLabels"],
            json!({"app": "web", POD_TEMPLATE_HASH: "c1"})
        );
        assert_eq!(r[&route_key(RouteKind::VirtualRouter, "vr")]["spec"]["routes"][0]["httpRoute"], targets(30, 70));
        assert_eq!(reconcile(&cfg(&[]), &plan(30, "c1", "s1"), &mut r, "default").unwrap(), vec![]);
    }

    #[test]
    fn argo_s_placeholders_when_a_hash_is_missing_or_both_are_the_same() {
        assert_eq!(node_hashes(&plan(0, "", "")), ("stable-hash".into(), "canary-hash".into()));
        assert_eq!(node_hashes(&plan(0, "a", "a")), ("a".into(), "canary-hash".into()));
        assert_eq!(node_hashes(&plan(0, "b", "")), ("stable-hash".into(), "b".into()));
        assert_eq!(node_hashes(&plan(0, "b", "a")), ("a".into(), "b".into()));
    }

    #[test]
    fn every_route_type_and_only_the_routes_named_other_targets_and_namespaces_untouched() {
        let other = json!({"virtualNodeRef": {"name": "vn-canary", "namespace": "elsewhere"}, "weight": 5});
        let mut grpc = targets(0, 100);
        grpc["action"]["weightedTargets"].as_array_mut().unwrap().push(other.clone());
        let r = world(json!([
            {"name": "a", "tcpRoute": targets(0, 100)},
            {"name": "b", "grpcRoute": grpc},
            {"name": "c", "http2Route": targets(0, 100)}]));
        let spec = &r[&route_key(RouteKind::VirtualRouter, "vr")]["spec"];
        let out = desired_routes("vr", spec, &cfg(&["a", "b"]), &plan(40, "c", "s"), "default").unwrap();
        assert_eq!(out[0]["tcpRoute"], targets(40, 60));
        assert_eq!(out[1]["grpcRoute"]["action"]["weightedTargets"][2], other);
        assert_eq!(out[1]["grpcRoute"]["action"]["weightedTargets"][0]["weight"], 40);
        assert_eq!(out[2]["http2Route"], targets(0, 100));
        // Every route when none is named.
        let out = desired_routes("vr", spec, &cfg(&[]), &plan(40, "c", "s"), "default").unwrap();
        assert_eq!(out[2]["http2Route"], targets(40, 60));
    }

    #[test]
    fn argo_s_errors_for_missing_objects_and_malformed_routers() {
        let p = plan(10, "c", "s");
        let err = |mut r: BTreeMap<String, Value>| reconcile(&cfg(&[]), &p, &mut r, "default").unwrap_err().to_string();
        let mut r = world(json!([]));
        r.remove(&route_key(RouteKind::VirtualNode, "vn-stable"));
        assert_eq!(err(r), "Virtual-node is missing");
        let mut r = world(json!([]));
        r.remove(&route_key(RouteKind::AppMeshVirtualService, "vs"));
        assert_eq!(err(r), "Virtual-service is missing");
        let mut r = world(json!([]));
        r.remove(&route_key(RouteKind::VirtualRouter, "vr"));
        assert_eq!(err(r), "Virtual-router is missing");
        let mut r = world(json!([]));
        r.insert(route_key(RouteKind::AppMeshVirtualService, "vs"), json!({"spec": {"provider": {"virtualNode": {}}}}));
        assert_eq!(err(r), "Virtual-service is not associated with virtual-router");
        let mut r = world(json!([]));
        r.insert(route_key(RouteKind::VirtualRouter, "vr"), json!({"spec": {}}));
        assert_eq!(err(r), "spec.routes: Invalid value: \"vr\": No routes found");
        for (routes, path) in [
            (json!([{"httpRoute": targets(0, 100)}]), "spec.routes[0].name"),
            (json!([{"name": "x", "udpRoute": {}}]), "spec.routes[0]"),
            (json!([{"name": "x", "httpRoute": {"action": {}}}]), "spec.routes[0].httpRoute.action.weightedTargets"),
            (json!([{"name": "x", "httpRoute": {"action": {"weightedTargets": [{"weight": 1}]}}}]),
             "spec.routes[0].httpRoute.action.weightedTargets[0].virtualNodeRef"),
            (json!([{"name": "x", "httpRoute": {"action": {"weightedTargets": [{"virtualNodeRef": {"name": "a"}}]}}}]),
             "spec.routes[0].httpRoute.action.weightedTargets[0].weight"),
        ] {
            assert_eq!(err(world(routes)), format!("{path}: Invalid value: \"vr\": not well-formed"));
        }
    }

    #[test]
    fn weights_written_as_floats_are_the_same_weights() {
        let mut r = world(json!([{"name": "primary", "httpRoute": {"action": {"weightedTargets": [
            {"virtualNodeRef": {"name": "vn-canary"}, "weight": 10.0},
            {"virtualNodeRef": {"name": "vn-stable"}, "weight": 90.0}]}}}]));
        let actions = reconcile(&cfg(&[]), &plan(10, "c", "s"), &mut r, "default").unwrap();
        assert!(actions.iter().all(|a| matches!(a, Action::PatchRoute { kind: RouteKind::VirtualNode, .. })), "{actions:?}");
    }
}
