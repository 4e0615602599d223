//! APISIX, as Argo writes it (`rollout/trafficrouting/apisix/apisix.go`).
//!
//! - **Weights**: in the ApisixRoute `route.name`, each HTTP rule of `route.rules` (default:
//!   the rule named like the route) has its canary Service's backend weighted with the
//!   canary weight and its stable Service's with `100 − weight`; other backends are left
//!   alone.
//! - **Header routes**: each `setHeaderRoute` in force is an ApisixRoute of its own, named
//!   after the managed route and controlled by the Rollout: a copy of the weighted route
//!   whose rules send everything to the canary (its backend at weight 100, the stable's
//!   removed), one priority above the original, matching the headers as `match.exprs`
//!   (`Equal` for exact, `RegexMatch` for regex, `RegexMatch ^<prefix>.*` for prefix). Once
//!   created, later updates start from it (the priority is not raised again). A managed
//!   route no longer in force (a step without `match`, promotion, abort) is deleted if the
//!   Rollout controls it.
//! - No mirror routes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::merge_patch;
use crate::api::{ApisixTrafficRouting, RouteKind, SetHeaderRoute};
use crate::state::{route_key, Action};

fn invalid(message: impl Into<String>) -> RouterError {
    RouterError::Invalid(message.into())
}

/// The rule of `rules` (a `spec.http` list) named `name` (Argo's `GetHttpRoute`).
fn rule_mut<'a>(rules: &'a mut [Value], name: &str) -> Result<&'a mut Value, RouterError> {
    for rule in rules.iter_mut() {
        match rule.get("name").map(Value::as_str) {
            None => return Err(invalid("Apisix http route rule name field not found")),
            Some(None) => return Err(invalid("Failed type assertion for Apisix http route rule name")),
            Some(Some(n)) if n == name => return Ok(rule),
            Some(Some(_)) => {}
        }
    }
    Err(invalid(format!("Apisix http route rule {name} not found")))
}

/// The rule's backends (Argo's `GetBackends`).
fn backends_mut(rule: &mut Value) -> Result<&mut Vec<Value>, RouterError> {
    match rule.get_mut("backends") {
        None => Err(invalid("Apisix http route backends not found")),
        Some(b) => b.as_array_mut().ok_or_else(|| invalid("Failed type assertion for Apisix http route backends")),
    }
}

/// Sets the weight of the backend of Service `service` (Argo's `setBackendWeight`).
fn set_backend_weight(backends: &mut [Value], service: &str, weight: i64) -> Result<(), RouterError> {
    for backend in backends.iter_mut() {
        let Some(name) = backend.get("serviceName").and_then(Value::as_str) else {
            return Err(invalid("serviceName field was not found in backend"));
        };
        if name == service {
            backend["weight"] = json!(weight);
            return Ok(());
        }
    }
    Err(invalid(format!("apisix route {service} backend was not found")))
}

/// The `spec.http` rules of `spec` (`spec.http` of an ApisixRoute).
fn http_rules(spec: &Value) -> Result<Vec<Value>, RouterError> {
    spec.get("http")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| invalid("spec.http was not found in Apisix Route manifest"))
}

/// The weighted route's `spec.http` the plan wants, from its live `spec`.
pub fn desired_http(spec: &Value, cfg: &ApisixTrafficRouting, plan: &TrafficPlan) -> Result<Vec<Value>, RouterError> {
    let mut rules = http_rules(spec)?;
    let route = cfg.route.clone().unwrap_or_default();
    for rule_name in route.rule_names() {
        let rule = rule_mut(&mut rules, &rule_name)?;
        let backends = backends_mut(rule)?;
        set_backend_weight(backends, &plan.canary_service, i64::from(plan.weight))?;
        set_backend_weight(backends, &plan.stable_service, 100 - i64::from(plan.weight))?;
    }
    Ok(rules)
}

/// APISIX's `match.exprs` for a header route (Argo's `apisixExprs`).
pub fn header_exprs(route: &SetHeaderRoute) -> Vec<Value> {
    let mut exprs = Vec::new();
    for m in route.matches.iter().flatten() {
        let subject = json!({"scope": "Header", "name": m.header_name});
        let v = &m.header_value;
        if !v.exact.is_empty() {
            exprs.push(json!({"subject": subject, "op": "Equal", "value": v.exact}));
        }
        if !v.regex.is_empty() {
            exprs.push(json!({"subject": subject, "op": "RegexMatch", "value": v.regex}));
        }
        if !v.prefix.is_empty() {
            exprs.push(json!({"subject": subject, "op": "RegexMatch", "value": format!("^{}.*", v.prefix)}));
        }
    }
    exprs
}

/// A header route's `spec.http` from `rules` (the weighted route's when it is new, its own
/// otherwise): Argo's `processSetHeaderApisixRoute`.
fn header_http(
    mut rules: Vec<Value>,
    cfg: &ApisixTrafficRouting,
    plan: &TrafficPlan,
    route: &SetHeaderRoute,
    new: bool,
) -> Result<Vec<Value>, RouterError> {
    let names = cfg.route.clone().unwrap_or_default().rule_names();
    for rule_name in names {
        let rule = rule_mut(&mut rules, &rule_name)?;
        let backends = backends_mut(rule)?;
        set_backend_weight(backends, &plan.canary_service, 100)?;
        for b in backends.iter() {
            if b.get("serviceName").and_then(Value::as_str).is_none() {
                return Err(invalid("serviceName field was not found in backend"));
            }
        }
        backends.retain(|b| b.get("serviceName").and_then(Value::as_str) != Some(plan.stable_service.as_str()));
        if new {
            let priority = rule.get("priority").and_then(Value::as_i64).unwrap_or(0);
            rule["priority"] = json!(priority + 1);
        }
        if !rule.get("match").is_some_and(Value::is_object) {
            rule["match"] = json!({});
        }
        rule["match"]["exprs"] = Value::Array(header_exprs(route));
    }
    Ok(rules)
}

/// Whether the Rollout `uid` controls the object.
pub fn controlled_by(object: &Value, uid: &str) -> bool {
    object.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten().any(|o| {
        o.get("controller").and_then(Value::as_bool) == Some(true) && o.get("uid").and_then(Value::as_str) == Some(uid)
    })
}

/// Weighs the route's backends, and creates, updates or deletes the header routes (applied
/// to `routes` as well).
pub fn reconcile(
    cfg: &ApisixTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
) -> Result<Vec<Action>, RouterError> {
    let name = cfg.route.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let key = route_key(RouteKind::ApisixRoute, &name);
    let Some(base) = routes.get(&key).cloned() else {
        return Err(RouterError::NotFound { kind: "ApisixRoute", name });
    };
    let mut actions = Vec::new();
    // Header routes first, as Argo (the step's route before the weight), in managedRoutes
    // order.
    for managed in &plan.managed_routes {
        if *managed == name {
            continue;
        }
        let header_key = route_key(RouteKind::ApisixRoute, managed);
        let in_force = plan.header_routes.iter().find(|h| h.name == *managed);
        let live = routes.get(&header_key);
        if let Some(l) = live {
            if !controlled_by(l, &plan.rollout_uid) {
                if in_force.is_some() {
                    return Err(invalid(format!("duplicate ApisixRoute [{managed}] already exists")));
                }
                continue;
            }
        }
        match (in_force, live) {
            (None, None) => {}
            (None, Some(_)) => {
                routes.remove(&header_key);
                actions.push(Action::DeleteRoute { kind: RouteKind::ApisixRoute, namespace: None, name: managed.clone() });
            }
            (Some(route), None) => {
                let http = header_http(http_rules(base.get("spec").unwrap_or(&Value::Null))?, cfg, plan, route, true)?;
                let mut object = base.clone();
                if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    for k in ["resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"] {
                        meta.remove(k);
                    }
                }
                if let Some(obj) = object.as_object_mut() {
                    obj.remove("status");
                }
                object["metadata"]["name"] = json!(managed);
                object["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": crate::api::API_VERSION,
                    "kind": "Rollout",
                    "name": plan.rollout,
                    "uid": plan.rollout_uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]);
                object["spec"]["http"] = Value::Array(http);
                routes.insert(header_key, object.clone());
                actions.push(Action::CreateRoute { kind: RouteKind::ApisixRoute, object });
            }
            (Some(route), Some(l)) => {
                let spec = l.get("spec").cloned().unwrap_or_default();
                let http = header_http(http_rules(&spec)?, cfg, plan, route, false)?;
                if spec.get("http").and_then(Value::as_array) != Some(&http) {
                    let patch = json!({"spec": {"http": http}});
                    if let Some(l) = routes.get_mut(&header_key) {
                        merge_patch(l, &patch);
                    }
                    actions.push(Action::PatchRoute { kind: RouteKind::ApisixRoute, namespace: None, name: managed.clone(), patch });
                }
            }
        }
    }
    let spec = base.get("spec").cloned().unwrap_or_default();
    let http = desired_http(&spec, cfg, plan)?;
    if spec.get("http").and_then(Value::as_array) != Some(&http) {
        let patch = json!({"spec": {"http": http}});
        if let Some(live) = routes.get_mut(&key) {
            merge_patch(live, &patch);
        }
        actions.push(Action::PatchRoute { kind: RouteKind::ApisixRoute, namespace: None, name, patch });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApisixRouteRef, HeaderRoutingMatch, StringMatch};

    fn plan(weight: i32) -> TrafficPlan {
        TrafficPlan {
            rollout: "web".into(),
            rollout_uid: "uid-web".into(),
            canary_service: "web-canary".into(),
            stable_service: "web-stable".into(),
            weight,
            max_weight: 100,
            managed_routes: vec!["set-header".into()],
            ..TrafficPlan::default()
        }
    }

    fn cfg() -> ApisixTrafficRouting {
        ApisixTrafficRouting { route: Some(ApisixRouteRef { name: "web-route".into(), rules: Some(vec!["rule1".into()]) }) }
    }

    fn routes() -> BTreeMap<String, Value> {
        let route = json!({"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
            "metadata": {"name": "web-route", "uid": "u1", "resourceVersion": "7", "labels": {"a": "b"}},
            "spec": {"http": [
                {"name": "rule1", "match": {"paths": ["/*"]}, "backends": [
                    {"serviceName": "web-stable", "servicePort": 80}, {"serviceName": "web-canary", "servicePort": 80, "weight": 0}]},
                {"name": "other", "backends": [{"serviceName": "x", "servicePort": 80}]}]}});
        BTreeMap::from([(route_key(RouteKind::ApisixRoute, "web-route"), route)])
    }

    fn header(name: &str, prefix: &str) -> SetHeaderRoute {
        SetHeaderRoute {
            name: name.into(),
            matches: Some(vec![HeaderRoutingMatch {
                header_name: "agent".into(),
                header_value: StringMatch { prefix: prefix.into(), ..StringMatch::default() },
            }]),
        }
    }

    #[test]
    fn the_named_rules_backends_get_the_weights() {
        let mut r = routes();
        let actions = reconcile(&cfg(), &plan(30), &mut r).unwrap();
        let [Action::PatchRoute { name, patch, .. }] = &actions[..] else { panic!("{actions:?}") };
        assert_eq!(name, "web-route");
        assert_eq!(
            patch["spec"]["http"][0]["backends"],
            json!([{"serviceName": "web-stable", "servicePort": 80, "weight": 70},
                   {"serviceName": "web-canary", "servicePort": 80, "weight": 30}])
        );
        assert_eq!(patch["spec"]["http"][1], json!({"name": "other", "backends": [{"serviceName": "x", "servicePort": 80}]}));
        assert_eq!(reconcile(&cfg(), &plan(30), &mut r).unwrap(), vec![]);
        // Rules default to the route's name.
        let dflt = ApisixTrafficRouting { route: Some(ApisixRouteRef { name: "web-route".into(), rules: None }) };
        assert_eq!(
            reconcile(&dflt, &plan(10), &mut routes()).unwrap_err().to_string(),
            "Apisix http route rule web-route not found"
        );
    }

    #[test]
    fn a_header_route_is_an_owned_copy_sending_the_match_to_the_canary_and_goes_when_no_longer_in_force() {
        let mut r = routes();
        let mut p = plan(20);
        p.header_routes = vec![header("set-header", "Mozilla")];
        let actions = reconcile(&cfg(), &p, &mut r).unwrap();
        let Action::CreateRoute { kind: RouteKind::ApisixRoute, object } = &actions[0] else { panic!("{actions:?}") };
        assert_eq!(object["metadata"]["name"], "set-header");
        assert_eq!(object["metadata"]["labels"], json!({"a": "b"}));
        assert!(object["metadata"].get("uid").is_none() && object["metadata"].get("resourceVersion").is_none());
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-web");
        assert_eq!(
            object["spec"]["http"][0],
            json!({"name": "rule1", "priority": 1,
                "match": {"paths": ["/*"], "exprs": [{"subject": {"scope": "Header", "name": "agent"}, "op": "RegexMatch", "value": "^Mozilla.*"}]},
                "backends": [{"serviceName": "web-canary", "servicePort": 80, "weight": 100}]})
        );
        assert!(matches!(&actions[1], Action::PatchRoute { name, .. } if name == "web-route"));
        // The same plan again: nothing; a new match updates the copy without raising its
        // priority again.
        assert_eq!(reconcile(&cfg(), &p, &mut r).unwrap(), vec![]);
        p.header_routes = vec![header("set-header", "Chrome")];
        let actions = reconcile(&cfg(), &p, &mut r).unwrap();
        let [Action::PatchRoute { name, patch, .. }] = &actions[..] else { panic!("{actions:?}") };
        assert_eq!(name, "set-header");
        assert_eq!(patch["spec"]["http"][0]["priority"], 1);
        assert_eq!(patch["spec"]["http"][0]["match"]["exprs"][0]["value"], "^Chrome.*");
        // No longer in force: deleted.
        p.header_routes.clear();
        let actions = reconcile(&cfg(), &p, &mut r).unwrap();
        assert_eq!(
            actions,
            vec![Action::DeleteRoute { kind: RouteKind::ApisixRoute, namespace: None, name: "set-header".into() }]
        );
    }

    #[test]
    fn a_header_route_named_like_someone_else_s_route_is_argo_s_duplicate_error() {
        let mut r = routes();
        r.insert(route_key(RouteKind::ApisixRoute, "set-header"), json!({"metadata": {"name": "set-header"}, "spec": {"http": []}}));
        let mut p = plan(20);
        p.header_routes = vec![header("set-header", "x")];
        assert_eq!(reconcile(&cfg(), &p, &mut r).unwrap_err().to_string(), "duplicate ApisixRoute [set-header] already exists");
        // Not in force: someone else's route is left alone.
        p.header_routes.clear();
        assert_eq!(reconcile(&cfg(), &p, &mut r).unwrap().len(), 1);
    }

    #[test]
    fn exprs_follow_argo_s_operators() {
        let h = SetHeaderRoute {
            name: "h".into(),
            matches: Some(vec![
                HeaderRoutingMatch { header_name: "a".into(), header_value: StringMatch { exact: "1".into(), ..StringMatch::default() } },
                HeaderRoutingMatch { header_name: "b".into(), header_value: StringMatch { regex: "x+".into(), ..StringMatch::default() } },
            ]),
        };
        let exprs = header_exprs(&h);
        let ops: Vec<(&Value, &Value)> = exprs.iter().map(|e| (&e["op"], &e["value"])).collect();
        assert_eq!(ops, vec![(&json!("Equal"), &json!("1")), (&json!("RegexMatch"), &json!("x+"))]);
    }
}
