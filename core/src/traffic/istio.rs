//! Istio, as Argo writes it (`rollout/trafficrouting/istio/istio.go`): VirtualService route
//! weights, DestinationRule subsets, header and mirror routes.
//!
//! - **Weights** (host-level and subset-level): in each weighted route (the HTTP routes
//!   named in `routes`, else the only one or the first unnamed one; the TLS routes matching
//!   `tlsRoutes`' port and SNI hosts, the TCP routes matching `tcpRoutes`' port, else the
//!   only one), a destination whose short host (before the first `.`) is the canary Service
//!   or whose subset is the canary subset gets the canary weight; the stable one
//!   `100 − w − experiments − the additional subsets' weights` (never below 0); an
//!   experiment's Service gets its weight (appended when missing, sorted by host); a
//!   destination in `additionalSubsetNames` keeps its weight; any other is removed.
//! - **Subsets** (`destinationRule`): the canary and stable subsets get
//!   `rollouts-pod-template-hash` (removed while the hash is empty), an experiment's subset
//!   (named after its Service) its hash, and the rule the `managed-by-rollouts` annotation;
//!   other subsets are dropped, except `additionalSubsetNames` (kept: Argo drops them too,
//!   which leaves the VirtualService pointing at subsets that no longer exist).
//! - **Header routes**: `{name, match: [{headers: {h: {exact|prefix|regex}}}…], route:
//!   [{destination: {host, subset, port}, weight: 100}]}` to the DestinationRule's host (or
//!   the canary Service) and the canary subset, on the port of the first weighted
//!   destination. **Mirror routes**: `{name, match: [{method, uri, headers}…], route: <the
//!   weighted route's destinations>, mirror: {host, subset, port}, mirrorPercentage:
//!   {value}}` (default 100). Managed routes come first, in `managedRoutes` order; a
//!   managed route not in force is removed (Argo's `RemoveManagedRoutes`).
//!
//! Every VirtualService and the DestinationRule get one merge patch each when they differ.
//! When the canary's weight is 0 the VirtualServices are patched before the
//! DestinationRule (traffic leaves the old canary before its subset moves), otherwise after
//! (the subset points at the new canary before traffic reaches it).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::{json, Map, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::{merge_diff, merge_patch};
use crate::api::{
    keys, virtual_service_namespace_name, IstioDestinationRule, IstioTrafficRouting, IstioVirtualService, RouteKind,
    SetHeaderRoute, SetMirrorRoute,
};
use crate::objects::ReplicaSetExt;
use crate::state::{route_key, Action, EventType};

/// Argo's short host of a destination: the part before the first `.` (nothing when the
/// host starts with one).
fn short_host(destination: &Value) -> &str {
    let host = destination.pointer("/destination/host").and_then(Value::as_str).unwrap_or_default();
    match host.find('.') {
        Some(0) => "",
        Some(i) => &host[..i],
        None => host,
    }
}

fn subset_of(destination: &Value) -> &str {
    destination.pointer("/destination/subset").and_then(Value::as_str).unwrap_or_default()
}

fn weight_of(destination: &Value) -> i64 {
    destination.get("weight").and_then(Value::as_i64).unwrap_or(0)
}

fn destinations(route: &Value) -> &[Value] {
    route.get("route").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn name_of(route: &Value) -> &str {
    route.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// Which Services and subsets are the canary's and the stable's.
struct Targets<'a> {
    canary_service: &'a str,
    stable_service: &'a str,
    rule: Option<&'a IstioDestinationRule>,
}

impl Targets<'_> {
    fn is_canary(&self, d: &Value) -> bool {
        let host = short_host(d);
        !host.is_empty()
            && (host == self.canary_service || self.rule.is_some_and(|r| !subset_of(d).is_empty() && subset_of(d) == r.canary_subset_name))
    }

    fn is_stable(&self, d: &Value) -> bool {
        let host = short_host(d);
        !host.is_empty()
            && (host == self.stable_service || self.rule.is_some_and(|r| !subset_of(d).is_empty() && subset_of(d) == r.stable_subset_name))
    }

    fn is_additional_subset(&self, d: &Value) -> bool {
        let subset = subset_of(d);
        !subset.is_empty() && self.rule.is_some_and(|r| r.additional_subset_names.iter().any(|s| s == subset))
    }

    /// Argo's `validateVirtualServiceRouteDestinations`: both sides are in the route.
    fn validate(&self, route: &[Value]) -> Result<(), RouterError> {
        match self.rule {
            Some(r) => {
                if !route.iter().any(|d| subset_of(d) == r.canary_subset_name && !r.canary_subset_name.is_empty()) {
                    return Err(invalid(format!("Canary DestinationRule subset '{}' not found in route", r.canary_subset_name)));
                }
                if !route.iter().any(|d| subset_of(d) == r.stable_subset_name && !r.stable_subset_name.is_empty()) {
                    return Err(invalid(format!("Stable DestinationRule subset '{}' not found in route", r.stable_subset_name)));
                }
            }
            None => {
                if !route.iter().any(|d| !self.canary_service.is_empty() && short_host(d) == self.canary_service) {
                    return Err(invalid(format!("Canary Service '{}' not found in route", self.canary_service)));
                }
                if !route.iter().any(|d| !self.stable_service.is_empty() && short_host(d) == self.stable_service) {
                    return Err(invalid(format!("Stable Service '{}' not found in route", self.stable_service)));
                }
            }
        }
        Ok(())
    }
}

fn invalid(message: String) -> RouterError {
    RouterError::Invalid(message)
}

/// Argo's `processRoutes`: the destinations of a weighted route with the plan's weights.
fn weighted(route: &[Value], plan: &TrafficPlan, targets: &Targets<'_>) -> Vec<Value> {
    let mut additional: BTreeMap<&str, i64> =
        plan.additional.iter().map(|d| (d.service_name.as_str(), i64::from(d.weight))).collect();
    let mut stable = 100 - i64::from(plan.weight) - additional.values().sum::<i64>();
    stable -= route.iter().filter(|d| targets.is_additional_subset(d)).map(weight_of).sum::<i64>();
    let stable = stable.max(0);
    let mut out = Vec::new();
    for d in route {
        let host = short_host(d);
        let mut d = d.clone();
        if host.is_empty() {
            out.push(d);
            continue;
        }
        let weight = if targets.is_canary(&d) {
            i64::from(plan.weight)
        } else if targets.is_stable(&d) {
            stable
        } else if let Some(w) = additional.remove(host) {
            w
        } else if targets.is_additional_subset(&d) {
            out.push(d);
            continue;
        } else {
            continue;
        };
        if weight_of(&d) != weight || d.get("weight").is_none() {
            d["weight"] = json!(weight);
        }
        out.push(d);
    }
    // What is left are experiment Services not in the route yet (sorted by host).
    for (host, weight) in additional {
        out.push(json!({"destination": {"host": host}, "weight": weight}));
    }
    out
}

/// Argo's `getHttpRouteIndexesToPatch`, on the routes that are not managed ones.
fn http_indexes(names: &[String], routes: &[Value]) -> Result<Vec<usize>, RouterError> {
    if names.is_empty() {
        if routes.len() == 1 {
            return Ok(vec![0]);
        }
        if routes.len() > 1 {
            return Err(invalid(
                "spec.http[] should be set in VirtualService and it must have exactly one route when omitting spec.strategy.canary.trafficRouting.istio.virtualService.routes"
                    .into(),
            ));
        }
        return Ok(Vec::new());
    }
    names
        .iter()
        .map(|n| {
            routes
                .iter()
                .position(|r| name_of(r) == n)
                .ok_or_else(|| invalid(format!("HTTP Route '{n}' is not found in the defined Virtual Service.")))
        })
        .collect()
}

/// The ports and SNI hosts of a TLS or TCP route's matches: `None` when they name several
/// ports (such a route never matches a rollout's entry).
fn port_and_sni(route: &Value) -> Option<(i64, BTreeSet<String>)> {
    let matches = route.get("match").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let ports: BTreeSet<i64> = matches.iter().map(|m| m.get("port").and_then(Value::as_i64).unwrap_or(0)).collect();
    if ports.len() > 1 {
        return None;
    }
    let sni = matches
        .iter()
        .flat_map(|m| m.get("sniHosts").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    Some((ports.into_iter().next().unwrap_or(0), sni))
}

/// Argo's `getTlsRouteIndexesToPatch` / `getTcpRouteIndexesToPatch`: by port (and SNI hosts
/// for TLS); none configured: the only route.
fn port_indexes(wanted: &[(i64, Option<BTreeSet<String>>)], routes: &[Value], kind: &str) -> Result<Vec<usize>, RouterError> {
    if wanted.is_empty() {
        if routes.len() > 1 {
            let field = if kind == "TLS" { "tls" } else { "tcp" };
            let config = if kind == "TLS" { "tlsRoutes" } else { "tcpRoutes" };
            return Err(invalid(format!(
                "spec.{field}[] should be set in VirtualService and it must have exactly one route when omitting spec.strategy.canary.trafficRouting.istio.virtualService.{config}"
            )));
        }
        return Ok((0..routes.len()).collect());
    }
    let mut out = Vec::new();
    for (port, sni) in wanted {
        let found: Vec<usize> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                port_and_sni(r).is_some_and(|(p, hosts)| p == *port && sni.as_ref().is_none_or(|s| *s == hosts))
            })
            .map(|(i, _)| i)
            .collect();
        if found.is_empty() {
            return Err(invalid(format!("No matching {kind} routes found in the defined Virtual Service.")));
        }
        out.extend(found);
    }
    Ok(out)
}

/// The destination a header or mirror route sends to: the DestinationRule's host (or the
/// canary Service), the canary subset, the port of the first weighted destination.
fn canary_destination(plan: &TrafficPlan, rule: Option<&IstioDestinationRule>, rule_host: Option<&str>, port: Option<&Value>) -> Value {
    let host = rule_host.filter(|h| !h.is_empty()).unwrap_or(&plan.canary_service);
    let mut d = Map::new();
    d.insert("host".into(), json!(host));
    if let Some(number) = port.and_then(|p| p.get("number")).and_then(Value::as_i64).filter(|n| *n > 0) {
        d.insert("port".into(), json!({"number": number}));
    }
    if let Some(subset) = rule.map(|r| r.canary_subset_name.as_str()).filter(|s| !s.is_empty()) {
        d.insert("subset".into(), json!(subset));
    }
    Value::Object(d)
}

fn string_match(m: &crate::api::StringMatch) -> Value {
    let mut out = Map::new();
    for (k, v) in [("exact", &m.exact), ("regex", &m.regex), ("prefix", &m.prefix)] {
        if !v.is_empty() {
            out.insert(k.into(), json!(v));
        }
    }
    Value::Object(out)
}

fn header_route(route: &SetHeaderRoute, destination: &Value) -> Value {
    let matches: Vec<Value> = route
        .matches
        .iter()
        .flatten()
        .map(|m| json!({"headers": {m.header_name.clone(): string_match(&m.header_value)}}))
        .collect();
    json!({"name": route.name, "match": matches, "route": [{"destination": destination, "weight": 100}]})
}

fn mirror_route(route: &SetMirrorRoute, weighted: &[Value], mirror: &Value) -> Value {
    let matches: Vec<Value> = route
        .matches
        .iter()
        .flatten()
        .map(|m| {
            let mut out = Map::new();
            if let Some(method) = &m.method {
                out.insert("method".into(), string_match(method));
            }
            if let Some(path) = &m.path {
                out.insert("uri".into(), string_match(path));
            }
            if !m.headers.is_empty() {
                let headers: Map<String, Value> = m.headers.iter().map(|(k, v)| (k.clone(), string_match(v))).collect();
                out.insert("headers".into(), Value::Object(headers));
            }
            Value::Object(out)
        })
        .collect();
    json!({
        "name": route.name,
        "match": matches,
        "route": weighted,
        "mirror": mirror,
        "mirrorPercentage": {"value": route.percentage.unwrap_or(100)},
    })
}

/// The `spec` a VirtualService whose spec is `spec` must have for the plan: the keys
/// `http`, `tls`, `tcp` it has, rewritten.
pub fn desired_spec(
    spec: &Value,
    vs: &IstioVirtualService,
    cfg: &IstioTrafficRouting,
    plan: &TrafficPlan,
    rule_host: Option<&str>,
) -> Result<Map<String, Value>, RouterError> {
    let targets = Targets {
        canary_service: &plan.canary_service,
        stable_service: &plan.stable_service,
        rule: cfg.destination_rule.as_ref(),
    };
    let list = |key: &str| spec.get(key).and_then(Value::as_array);
    if list("http").is_none() && list("tls").is_none() && list("tcp").is_none() {
        return Err(invalid("Unable to get any of the HTTP, TCP or TLS routes for the Istio VirtualService".into()));
    }
    let mut out = Map::new();
    if let Some(http) = list("http") {
        let managed = |r: &Value| plan.managed_routes.iter().any(|m| m == name_of(r));
        let mut base: Vec<Value> = http.iter().filter(|r| !managed(r)).cloned().collect();
        let indexes = http_indexes(&vs.routes, &base)?;
        for &i in &indexes {
            targets.validate(destinations(&base[i]))?;
        }
        for &i in &indexes {
            let new = weighted(destinations(&base[i]), plan, &targets);
            base[i]["route"] = Value::Array(new);
        }
        let first = indexes.first().map(|&i| destinations(&base[i]).to_vec()).unwrap_or_default();
        let port = first.first().and_then(|d| d.pointer("/destination/port"));
        let destination = canary_destination(plan, cfg.destination_rule.as_ref(), rule_host, port);
        let mut routes = Vec::new();
        for name in &plan.managed_routes {
            if let Some(h) = plan.header_routes.iter().find(|h| &h.name == name) {
                routes.push(header_route(h, &destination));
            }
            if let Some(m) = plan.mirror_routes.iter().find(|m| &m.name == name) {
                routes.push(mirror_route(m, &first, &destination));
            }
        }
        routes.extend(base);
        out.insert("http".into(), Value::Array(routes));
    }
    for (key, kind) in [("tls", "TLS"), ("tcp", "TCP")] {
        let Some(routes) = list(key) else { continue };
        let wanted: Vec<(i64, Option<BTreeSet<String>>)> = if key == "tls" {
            vs.tls_routes.iter().map(|t| (t.port, Some(t.sni_hosts.iter().cloned().collect()))).collect()
        } else {
            vs.tcp_routes.iter().map(|t| (t.port, None)).collect()
        };
        let indexes = port_indexes(&wanted, routes, kind)?;
        let mut routes = routes.clone();
        for &i in &indexes {
            targets.validate(destinations(&routes[i]))?;
        }
        for &i in &indexes {
            let new = weighted(destinations(&routes[i]), plan, &targets);
            routes[i]["route"] = Value::Array(new);
        }
        out.insert(key.into(), Value::Array(routes));
    }
    Ok(out)
}

/// The subsets and annotations a DestinationRule must have for the plan.
fn desired_rule(live: &Value, rule: &IstioDestinationRule, plan: &TrafficPlan) -> Value {
    let subsets = live.pointer("/spec/subsets").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut additional: BTreeMap<&str, &str> =
        plan.additional.iter().map(|d| (d.service_name.as_str(), d.pod_template_hash.as_str())).collect();
    let mut out = Vec::new();
    for mut subset in subsets {
        let name = subset.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let hash = if name == rule.canary_subset_name {
            plan.canary_hash.as_str()
        } else if name == rule.stable_subset_name {
            plan.stable_hash.as_str()
        } else if let Some(hash) = additional.remove(name.as_str()) {
            hash
        } else if rule.additional_subset_names.contains(&name) {
            out.push(subset);
            continue;
        } else {
            continue;
        };
        let mut labels = subset.get("labels").and_then(Value::as_object).cloned().unwrap_or_default();
        if hash.is_empty() {
            labels.remove(keys::POD_TEMPLATE_HASH);
        } else {
            labels.insert(keys::POD_TEMPLATE_HASH.into(), json!(hash));
        }
        subset["labels"] = Value::Object(labels);
        out.push(subset);
    }
    for (service, hash) in additional {
        out.push(json!({"name": service, "labels": {keys::POD_TEMPLATE_HASH: hash}}));
    }
    let mut annotations = live.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    annotations.insert(keys::MANAGED_BY_ROLLOUTS.into(), json!(plan.rollout));
    json!({"metadata": {"annotations": annotations}, "spec": {"subsets": out}})
}

/// Argo's `shouldDelayDestinationRuleUpdate`: without canary and stable Services, the
/// subsets do not move while a ReplicaSet that takes traffic (the canary's or the stable's,
/// not the canary's while aborting or rolling back) is not fully available; its name.
pub fn delayed_by<'a>(
    cfg: &IstioTrafficRouting,
    plan: &TrafficPlan,
    replica_sets: impl IntoIterator<Item = &'a ReplicaSet>,
    leaving_canary: bool,
) -> Option<String> {
    if cfg.destination_rule.is_none() || !plan.canary_service.is_empty() || !plan.stable_service.is_empty() {
        return None;
    }
    replica_sets
        .into_iter()
        .filter(|rs| rs.spec_replicas() != 0)
        .filter(|rs| {
            let hash = rs.pod_hash();
            !hash.is_empty() && (hash == plan.stable_hash || (hash == plan.canary_hash && !leaving_canary))
        })
        .find(|rs| rs.available() == 0 || rs.available() < rs.spec_replicas())
        .map(|rs| rs.name().to_string())
}

/// Brings the VirtualServices and the DestinationRule of the configuration to what the plan
/// wants (applied to `routes` as well).
pub fn reconcile(
    cfg: &IstioTrafficRouting,
    plan: &TrafficPlan,
    routes: &mut BTreeMap<String, Value>,
) -> Result<Vec<Action>, RouterError> {
    let mut rule_actions = Vec::new();
    let mut rule_host = None;
    if let Some(rule) = &cfg.destination_rule {
        let key = route_key(RouteKind::DestinationRule, &rule.name);
        let Some(live) = routes.get_mut(&key) else {
            return Err(RouterError::NotFound { kind: "DestinationRule", name: rule.name.clone() });
        };
        rule_host = live.pointer("/spec/host").and_then(Value::as_str).map(str::to_string);
        let current = json!({
            "metadata": {"annotations": live.pointer("/metadata/annotations").cloned().unwrap_or(json!({}))},
            "spec": {"subsets": live.pointer("/spec/subsets").cloned().unwrap_or(json!([]))},
        });
        if let Some(patch) = merge_diff(&current, &desired_rule(live, rule, plan)) {
            merge_patch(live, &patch);
            rule_actions.push(Action::PatchRoute { kind: RouteKind::DestinationRule, namespace: None, name: rule.name.clone(), patch });
            rule_actions.push(Action::RecordEvent {
                kind: EventType::Normal,
                reason: "UpdatedDestinationRule".into(),
                message: format!(
                    "DestinationRule {} subset updated ({}: {}, {}: {})",
                    rule.name, rule.canary_subset_name, plan.canary_hash, rule.stable_subset_name, plan.stable_hash
                ),
            });
        }
    }
    let mut service_actions = Vec::new();
    for vs in cfg.all_virtual_services() {
        let (namespace, name) = virtual_service_namespace_name(&vs.name);
        let Some(live) = routes.get_mut(&route_key(RouteKind::VirtualService, &name)) else {
            return Err(RouterError::NotFound { kind: "VirtualService", name });
        };
        let spec = live.get("spec").cloned().unwrap_or(json!({}));
        let wanted = desired_spec(&spec, vs, cfg, plan, rule_host.as_deref())?;
        let current: Map<String, Value> = wanted.keys().filter_map(|k| spec.get(k).map(|v| (k.clone(), v.clone()))).collect();
        // A list differs whole: a changed route list is sent whole.
        let Some(patch) = merge_diff(&json!({"spec": current}), &json!({"spec": wanted})) else { continue };
        merge_patch(live, &patch);
        service_actions.push(Action::PatchRoute { kind: RouteKind::VirtualService, namespace, name: name.clone(), patch });
        service_actions.push(Action::RecordEvent {
            kind: EventType::Normal,
            reason: "Updated VirtualService".into(),
            message: format!("VirtualService `{name}` set to desiredWeight '{}'", plan.weight),
        });
    }
    Ok(if plan.weight == 0 {
        service_actions.into_iter().chain(rule_actions).collect()
    } else {
        rule_actions.into_iter().chain(service_actions).collect()
    })
}

#[cfg(test)]
mod tests;
