//! The Gateway API, natively: what Argo's `argoproj-labs/gatewayAPI` plugin does to
//! HTTPRoutes, GRPCRoutes and TCPRoutes (`pkg/plugin/httproute.go`), decided here and
//! written as one merge patch of the route's rules.
//!
//! - Weights: in every rule that is not a managed one, the backendRef named after the
//!   canary Service gets the canary weight and the one named after the stable Service the
//!   stable weight; a route without both is an error ("backendRef was not found in
//!   httpRoute"). The plugin gives the stable `100 − w`; here it is `maxTrafficWeight − w`
//!   (minus experiment weights), the same split when `maxTrafficWeight` is unset, and the
//!   right one when it is not (Gateway API weights are relative: weight ÷ sum).
//! - Experiment destinations: in every such rule, one more backendRef per weighted
//!   template of the running Experiment (its Service, port and weight); removed when the
//!   Experiment no longer runs. The plugin (`pkg/plugin/experiment.go`) adds them to the
//!   first rule of HTTPRoutes only and gives the stable `100 − Σ` experiment weights, not
//!   counting the canary's; here every rule of every route kind gets them, and the stable
//!   `maxTrafficWeight − w − Σ`, what `status.canary.weights` says.
//! - The label `rollouts.argoproj.io/gatewayapi-canary: in-progress` while the canary has
//!   weight, removed at 0.
//! - Header routes (routes with `useHeaderRoutes`): per rule that sends traffic to the
//!   canary or the stable Service, a rule named after the managed route (`<name>`,
//!   `<name>-1`, …) with the rule's matches plus the header matches, its filters, and one
//!   backendRef: the canary Service. It wins by the Gateway API's precedence (more header
//!   matches), not by position.
//! - Mirror routes (HTTPRoutes with `useHeaderRoutes`; the plugin has none): per such
//!   rule, a rule named after the managed route with the rule's matches narrowed by the
//!   mirror's, the same weighted backends, and a `RequestMirror` filter to the canary
//!   Service with the route's percentage.
//! - Managed rules not in force are removed (by name, or — rules written by older plugin
//!   versions — a rule whose only backendRef is the canary Service).

use serde_json::{json, Map, Value};

use super::{RouterError, TrafficPlan};
use crate::api::{merge::merge_diff, GatewayApiTrafficRouting, RouteKind, StringMatch, StringMatchKind};
use crate::state::{route_key, Action};

/// Whether the rule was written by this router for one of `managed` routes.
fn is_managed_rule(rule: &Value, managed: &[String], canary_service: &str) -> bool {
    if let Some(name) = rule.get("name").and_then(Value::as_str) {
        let by_name = managed.iter().any(|m| {
            name == m || name.strip_prefix(m.as_str()).and_then(|r| r.strip_prefix('-')).is_some_and(|n| n.parse::<u32>().is_ok())
        });
        if by_name {
            return true;
        }
    }
    let refs = backend_refs(rule);
    refs.len() == 1 && ref_name(&refs[0]) == canary_service
}

fn backend_refs(rule: &Value) -> &[Value] {
    rule.get("backendRefs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn ref_name(r: &Value) -> &str {
    r.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn rules_of(route: &Value) -> &[Value] {
    route.pointer("/spec/rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The header matches of a header route, as the Gateway API writes them (exact → `Exact`,
/// prefix `p` → `RegularExpression` `p.*`, regex → `RegularExpression`).
fn header_match(name: &str, value: &StringMatch) -> Value {
    match value.kind() {
        Some(StringMatchKind::Exact(v)) => json!({"name": name, "type": "Exact", "value": v}),
        Some(StringMatchKind::Prefix(p)) => json!({"name": name, "type": "RegularExpression", "value": format!("{p}.*")}),
        Some(StringMatchKind::Regex(r)) => json!({"name": name, "type": "RegularExpression", "value": r}),
        None => json!({"name": name, "type": "Exact", "value": ""}),
    }
}

/// The path match of a mirror route (prefix → `PathPrefix`).
fn path_match(value: &StringMatch) -> Option<Value> {
    Some(match value.kind()? {
        StringMatchKind::Exact(v) => json!({"type": "Exact", "value": v}),
        StringMatchKind::Prefix(p) => json!({"type": "PathPrefix", "value": p}),
        StringMatchKind::Regex(r) => json!({"type": "RegularExpression", "value": r}),
    })
}

/// The rule's matches (one empty match when it has none).
fn matches_of(rule: &Value) -> Vec<Value> {
    match rule.get("matches").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => m.clone(),
        _ => vec![json!({})],
    }
}

/// `match` with `headers` appended to its header matches.
fn with_headers(mut m: Value, headers: &[Value]) -> Value {
    if headers.is_empty() {
        return m;
    }
    let obj = m.as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut obj: Map<String, Value> = obj;
    let mut all = obj.get("headers").and_then(Value::as_array).cloned().unwrap_or_default();
    all.extend(headers.iter().cloned());
    obj.insert("headers".into(), Value::Array(all));
    m = Value::Object(obj);
    m
}

/// The canary backendRef of a managed rule: the canary Service with the port of the
/// source rule's canary backendRef.
fn canary_ref(rule: &Value, plan: &TrafficPlan) -> Value {
    let mut r = json!({"group": "", "kind": "Service", "name": plan.canary_service});
    if let Some(port) = backend_refs(rule).iter().find(|b| ref_name(b) == plan.canary_service).and_then(|b| b.get("port")) {
        r["port"] = port.clone();
    }
    r
}

fn rule_name(base: &str, index: usize) -> String {
    if index == 0 {
        base.to_string()
    } else {
        format!("{base}-{index}")
    }
}

/// Sets the weights of one rule's backendRefs: canary, stable and the experiment
/// destinations, which are added to a rule sending traffic to the canary or the stable
/// Service and taken out when they are no longer in the plan.
fn set_weights(refs: &mut Vec<Value>, plan: &TrafficPlan, stable_weight: i32, canary_found: &mut bool, stable_found: &mut bool) {
    let additional = |name: &str| plan.additional.iter().find(|d| !d.service_name.is_empty() && d.service_name == name);
    let rollouts_own = |name: &str| name == plan.canary_service || name == plan.stable_service;
    refs.retain(|r| {
        let name = ref_name(r);
        rollouts_own(name) || !plan.experiment_services.contains(name) || additional(name).is_some()
    });
    let mut routed = false;
    for r in refs.iter_mut() {
        let name = ref_name(r).to_string();
        if name == plan.canary_service {
            r["weight"] = json!(plan.weight);
            *canary_found = true;
            routed = true;
        } else if name == plan.stable_service {
            r["weight"] = json!(stable_weight);
            *stable_found = true;
            routed = true;
        } else if let Some(d) = additional(&name) {
            r["weight"] = json!(d.weight);
        }
    }
    if !routed {
        return;
    }
    for d in &plan.additional {
        if d.service_name.is_empty() || refs.iter().any(|r| ref_name(r) == d.service_name) {
            continue;
        }
        // A Service backend needs its port; the destination waits for it.
        let Some(port) = plan.additional_ports.get(&d.service_name) else { continue };
        refs.push(json!({"group": "", "kind": "Service", "name": d.service_name, "port": port, "weight": d.weight}));
    }
}

/// The rules the plan wants in a route whose rules are `rules`: weights set, managed rules
/// rebuilt for the routes in force.
pub fn desired_rules(kind: RouteKind, rules: &[Value], plan: &TrafficPlan, use_header_routes: bool) -> Result<Vec<Value>, RouterError> {
    let stable_weight = plan.stable_weight();
    let mut base: Vec<Value> = Vec::new();
    let (mut canary_found, mut stable_found) = (false, false);
    for rule in rules {
        if is_managed_rule(rule, &plan.managed_routes, &plan.canary_service) {
            continue;
        }
        let mut rule = rule.clone();
        if let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) {
            set_weights(refs, plan, stable_weight, &mut canary_found, &mut stable_found);
        }
        base.push(rule);
    }
    if !canary_found || !stable_found {
        let what = match kind {
            RouteKind::Http => "httpRoute",
            RouteKind::Grpc => "grpcRoute",
            RouteKind::Tcp => "tcpRoute",
            RouteKind::VirtualService
            | RouteKind::DestinationRule
            | RouteKind::TrafficSplit
            | RouteKind::TraefikService
            | RouteKind::Mapping
            | RouteKind::ApisixRoute
            | RouteKind::AppMeshVirtualService
            | RouteKind::VirtualRouter
            | RouteKind::VirtualNode => kind.as_str(),
        };
        return Err(RouterError::Invalid(format!("backendRef was not found in {what}")));
    }
    let sources: Vec<&Value> = base
        .iter()
        .filter(|r| backend_refs(r).iter().any(|b| ref_name(b) == plan.canary_service || ref_name(b) == plan.stable_service))
        .collect();
    let mut managed = Vec::new();
    if use_header_routes && kind != RouteKind::Tcp {
        for route in &plan.header_routes {
            let Some(conditions) = route.matches.as_ref().filter(|m| !m.is_empty()) else { continue };
            let headers: Vec<Value> = conditions.iter().map(|m| header_match(&m.header_name, &m.header_value)).collect();
            for (i, source) in sources.iter().enumerate() {
                let mut rule = json!({
                    "name": rule_name(&route.name, i),
                    "matches": matches_of(source).into_iter().map(|m| with_headers(m, &headers)).collect::<Vec<_>>(),
                    "backendRefs": [canary_ref(source, plan)],
                });
                if let Some(filters) = source.get("filters").filter(|f| f.as_array().is_some_and(|a| !a.is_empty())) {
                    rule["filters"] = filters.clone();
                }
                managed.push(rule);
            }
        }
    }
    if use_header_routes && kind == RouteKind::Http {
        for route in &plan.mirror_routes {
            let Some(conditions) = route.matches.as_ref().filter(|m| !m.is_empty()) else { continue };
            for (i, source) in sources.iter().enumerate() {
                let mut matches = Vec::new();
                for m in matches_of(source) {
                    for c in conditions {
                        let headers: Vec<Value> = c.headers.iter().map(|(h, v)| header_match(h, v)).collect();
                        let mut merged = with_headers(m.clone(), &headers);
                        if let Some(path) = c.path.as_ref().and_then(path_match) {
                            merged["path"] = path;
                        }
                        if let Some(method) = c.method.as_ref().filter(|m| !m.exact.is_empty()) {
                            merged["method"] = json!(method.exact);
                        }
                        matches.push(merged);
                    }
                }
                let mut filters = source.get("filters").and_then(Value::as_array).cloned().unwrap_or_default();
                let mut mirror_ref = canary_ref(source, plan);
                if let Some(o) = mirror_ref.as_object_mut() {
                    o.remove("group");
                    o.remove("kind");
                }
                filters.push(json!({
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": mirror_ref, "percent": route.percentage.unwrap_or(100)},
                }));
                managed.push(json!({
                    "name": rule_name(&route.name, i),
                    "matches": matches,
                    "filters": filters,
                    "backendRefs": backend_refs(source),
                }));
            }
        }
    }
    base.extend(managed);
    Ok(base)
}

/// Brings every route of the configuration to what the plan wants: one merge patch per
/// route that differs (applied to `routes` as well).
pub fn reconcile(
    cfg: &GatewayApiTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut std::collections::BTreeMap<String, Value>,
) -> Result<Vec<Action>, RouterError> {
    let namespace = Some(cfg.namespace.clone()).filter(|n| !n.is_empty());
    let mut actions = Vec::new();
    for (kind, route_ref) in cfg.routes() {
        let key = route_key(kind, &route_ref.name);
        let Some(live) = routes.get_mut(&key) else {
            return Err(RouterError::NotFound { kind: kind.as_str(), name: route_ref.name.clone() });
        };
        let rules = desired_rules(kind, rules_of(live), plan, route_ref.use_header_routes)?;
        let mut labels = live.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some((key, value)) = cfg.in_progress_label() {
            if plan.weight > 0 {
                labels.insert(key.to_string(), json!(value));
            } else {
                labels.remove(key);
            }
        }
        let current = json!({
            "metadata": {"labels": live.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
            "spec": {"rules": rules_of(live)},
        });
        let wanted = json!({"metadata": {"labels": labels}, "spec": {"rules": rules}});
        // A list differs whole: a changed `rules` is sent whole (a merge patch replaces it).
        let Some(patch) = merge_diff(&current, &wanted) else { continue };
        crate::api::merge::merge_patch(live, &patch);
        actions.push(Action::PatchRoute { kind, namespace: namespace.clone(), name: route_ref.name.clone(), patch });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests;
