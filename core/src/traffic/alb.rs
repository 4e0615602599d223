//! AWS ALB, as Argo writes it (`rollout/trafficrouting/alb/alb.go`, `utils/ingress`): no
//! object of its own, only annotations (and, for header routes, paths) on the Ingresses the
//! user wrote, which the AWS Load Balancer Controller turns into listener rules.
//!
//! - `<prefix>/actions.<rootService or stableService>`: a forward action whose target
//!   groups are the canary Service with the canary weight, each experiment Service with
//!   its weight, and the stable Service with `100 − canary − experiments` (as Argo: 100,
//!   not `maxTrafficWeight`, which validation refuses with ALB), every one on
//!   `servicePort` written as a string; with `stickinessConfig.enabled`, the
//!   `TargetGroupStickinessConfig`. The JSON is Argo's byte for byte (its key order).
//! - With `pingPong`, the target groups are the ping and pong Services (the one
//!   `status.canary.stablePingPong` names is the stable), not `stableService` /
//!   `canaryService`.
//! - A header route in force: `<prefix>/actions.<route>` (the canary, weight 100) and
//!   `<prefix>/conditions.<route>` (one `http-header` condition per header name, its exact
//!   values), and a path `/*` to the Service `<route>` on port `use-annotation` first in
//!   every rule, paths ordered by `managedRoutes`; a managed route not in force loses all
//!   three.
//! - `rollouts.argoproj.io/managed-alb-annotations`: per rollout, the keys it wrote.
//!
//! Annotations of others are kept. Beyond Argo: one merge patch per Ingress per reconcile
//! (Argo patches weight and header route separately; the Ingress ends the same), and every
//! Ingress of `ingresses` is visited (Argo stops at the first one that needs no change).
//! Weight verification against AWS (`--aws-verify-target-group`) cannot run here: the
//! weights' `verified` stays null.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::merge::merge_diff;
use crate::api::{AlbTrafficRouting, SetHeaderRoute, ALB_MAX_STICKINESS_SECONDS, MANAGED_ALB_ANNOTATIONS};
use crate::state::{Action, EventType};

/// The port name an Ingress path uses to say "the action annotation decides".
pub const USE_ANNOTATION: &str = "use-annotation";

/// Argo's `ALBAction` (field order is Argo's JSON key order).
#[derive(Serialize)]
struct AlbAction<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    #[serde(rename = "ForwardConfig")]
    forward_config: ForwardConfig<'a>,
}

#[derive(Serialize)]
struct ForwardConfig<'a> {
    #[serde(rename = "TargetGroups")]
    target_groups: Vec<TargetGroup<'a>>,
    #[serde(rename = "TargetGroupStickinessConfig", skip_serializing_if = "Option::is_none")]
    stickiness: Option<Stickiness>,
}

#[derive(Serialize)]
struct TargetGroup<'a> {
    #[serde(rename = "ServiceName")]
    service_name: &'a str,
    #[serde(rename = "ServicePort")]
    service_port: String,
    #[serde(rename = "Weight")]
    weight: i64,
}

#[derive(Serialize)]
struct Stickiness {
    #[serde(rename = "Enabled")]
    enabled: bool,
    #[serde(rename = "DurationSeconds")]
    duration_seconds: i64,
}

/// Argo's `ALBCondition`.
#[derive(Serialize)]
struct Condition<'a> {
    field: &'a str,
    #[serde(rename = "httpHeaderConfig")]
    http_header_config: HeaderConfig<'a>,
}

#[derive(Serialize)]
struct HeaderConfig<'a> {
    #[serde(rename = "httpHeaderName")]
    http_header_name: &'a str,
    values: Vec<&'a str>,
}

/// The stickiness block, or Argo's error for a duration AWS refuses.
fn stickiness(cfg: &AlbTrafficRouting) -> Result<Option<Stickiness>, RouterError> {
    let Some(s) = cfg.stickiness_config.as_ref().filter(|s| s.enabled) else { return Ok(None) };
    if !(1..=ALB_MAX_STICKINESS_SECONDS).contains(&s.duration_seconds) {
        return Err(RouterError::Invalid(stickiness_error()));
    }
    Ok(Some(Stickiness { enabled: true, duration_seconds: s.duration_seconds }))
}

/// Argo's wording for a stickiness duration out of AWS's range.
pub fn stickiness_error() -> String {
    "TargetGroupStickinessConfig's duration must be between 1 and 604800 seconds (7 days)!".to_string()
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The weighted forward action (`actions.<rootService>`) for the plan.
pub fn forward_action(cfg: &AlbTrafficRouting, plan: &TrafficPlan) -> Result<String, RouterError> {
    let (stable, canary) = plan.services(true);
    let port = cfg.service_port.to_string();
    let mut target_groups =
        vec![TargetGroup { service_name: canary, service_port: port.clone(), weight: i64::from(plan.weight) }];
    let mut stable_weight = 100 - i64::from(plan.weight);
    for d in &plan.additional {
        target_groups.push(TargetGroup { service_name: &d.service_name, service_port: port.clone(), weight: i64::from(d.weight) });
        stable_weight -= i64::from(d.weight);
    }
    target_groups.push(TargetGroup { service_name: stable, service_port: port, weight: stable_weight });
    let action = AlbAction { kind: "forward", forward_config: ForwardConfig { target_groups, stickiness: stickiness(cfg)? } };
    Ok(to_json(&action))
}

/// A header route's action: everything to the canary.
fn header_action(cfg: &AlbTrafficRouting, plan: &TrafficPlan) -> Result<String, RouterError> {
    let (_, canary) = plan.services(true);
    let target_groups = vec![TargetGroup { service_name: canary, service_port: cfg.service_port.to_string(), weight: 100 }];
    let action = AlbAction { kind: "forward", forward_config: ForwardConfig { target_groups, stickiness: stickiness(cfg)? } };
    Ok(to_json(&action))
}

/// A header route's conditions: one `http-header` condition per header name, with the
/// exact values of its matches (validation allows nothing but `exact` with ALB).
fn header_conditions(route: &SetHeaderRoute) -> String {
    let mut conditions: Vec<Condition<'_>> = Vec::new();
    for m in route.matches.iter().flatten() {
        match conditions.iter_mut().find(|c| c.http_header_config.http_header_name == m.header_name) {
            Some(c) => c.http_header_config.values.push(&m.header_value.exact),
            None => conditions.push(Condition {
                field: "http-header",
                http_header_config: HeaderConfig { http_header_name: &m.header_name, values: vec![&m.header_value.exact] },
            }),
        }
    }
    to_json(&conditions)
}

/// The keys each rollout manages, from the `managed-alb-annotations` annotation.
fn managed_keys(annotations: &BTreeMap<String, String>) -> Result<BTreeMap<String, Vec<String>>, RouterError> {
    match annotations.get(MANAGED_ALB_ANNOTATIONS).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| {
            RouterError::Invalid(format!("annotation {MANAGED_ALB_ANNOTATIONS} is not a JSON map of key lists: {e}"))
        }),
    }
}

/// Whether a path of the Ingress sends traffic to `service`.
pub fn has_rule_with_service(ingress: &Ingress, service: &str) -> bool {
    super::nginx::has_rule_with_service(ingress, service)
}

fn path_service(p: &HTTPIngressPath) -> Option<&str> {
    p.backend.service.as_ref().map(|s| s.name.as_str())
}

/// Argo's `CreateAnnotationBasedPath`: `/*` to `route` on `use-annotation`, first in every
/// rule, unless some rule already has it.
fn add_route_path(ingress: &mut Ingress, route: &str) {
    if has_rule_with_service(ingress, route) {
        return;
    }
    let path = HTTPIngressPath {
        path: Some("/*".to_string()),
        path_type: "ImplementationSpecific".to_string(),
        backend: IngressBackend {
            service: Some(IngressServiceBackend {
                name: route.to_string(),
                port: Some(ServiceBackendPort { name: Some(USE_ANNOTATION.to_string()), number: None }),
            }),
            resource: None,
        },
    };
    for rule in ingress.spec.iter_mut().flat_map(|s| s.rules.iter_mut().flatten()) {
        if let Some(http) = rule.http.as_mut() {
            http.paths.insert(0, path.clone());
        }
    }
}

/// Argo's `RemovePathByServiceName`: the first path to `route` of every rule.
fn remove_route_path(ingress: &mut Ingress, route: &str) {
    for rule in ingress.spec.iter_mut().flat_map(|s| s.rules.iter_mut().flatten()) {
        if let Some(http) = rule.http.as_mut() {
            if let Some(i) = http.paths.iter().position(|p| path_service(p) == Some(route)) {
                http.paths.remove(i);
            }
        }
    }
}

/// Argo's `SortHttpPaths`: managed routes' paths first, in `managedRoutes` order; the
/// others after them, in their order.
fn sort_paths(ingress: &mut Ingress, managed: &[String]) {
    let rank = |p: &HTTPIngressPath| {
        path_service(p).and_then(|s| managed.iter().position(|m| m == s)).unwrap_or(managed.len())
    };
    for rule in ingress.spec.iter_mut().flat_map(|s| s.rules.iter_mut().flatten()) {
        if let Some(http) = rule.http.as_mut() {
            http.paths.sort_by_key(rank);
        }
    }
}

/// The part of an Ingress this router writes, as JSON: annotations and spec.
fn managed_part(ingress: &Ingress) -> Value {
    json!({
        "metadata": {"annotations": ingress.metadata.annotations.clone().unwrap_or_default()},
        "spec": serde_json::to_value(ingress.spec.clone().unwrap_or_default()).unwrap_or(Value::Null),
    })
}

/// The Ingress `live` as the plan wants it.
pub fn desired_ingress(cfg: &AlbTrafficRouting, plan: &TrafficPlan, live: &Ingress) -> Result<Ingress, RouterError> {
    let name = live.metadata.name.as_deref().unwrap_or_default();
    let action_service = cfg.action_service(&plan.stable_service);
    if !has_rule_with_service(live, action_service) {
        return Err(RouterError::Invalid(format!("ingress `{name}` does not have service `{action_service}` in rules")));
    }
    let mut desired = live.clone();
    let mut annotations = live.metadata.annotations.clone().unwrap_or_default();
    let mut managed = managed_keys(&annotations)?;
    let mine = managed.entry(plan.rollout.clone()).or_default();
    let mut manage = |key: String, add: bool| {
        if add && !mine.contains(&key) {
            mine.push(key);
        } else if !add {
            mine.retain(|k| *k != key);
        }
    };
    let weight_key = cfg.action_key(action_service);
    annotations.insert(weight_key.clone(), forward_action(cfg, plan)?);
    manage(weight_key, true);
    for route in &plan.managed_routes {
        let (action_key, condition_key) = (cfg.action_key(route), cfg.condition_key(route));
        match plan.header_routes.iter().find(|h| h.name == *route) {
            Some(h) => {
                annotations.insert(action_key.clone(), header_action(cfg, plan)?);
                annotations.insert(condition_key.clone(), header_conditions(h));
                manage(action_key, true);
                manage(condition_key, true);
                add_route_path(&mut desired, route);
            }
            None => {
                annotations.remove(&action_key);
                annotations.remove(&condition_key);
                manage(action_key, false);
                manage(condition_key, false);
                remove_route_path(&mut desired, route);
            }
        }
    }
    sort_paths(&mut desired, &plan.managed_routes);
    annotations.insert(MANAGED_ALB_ANNOTATIONS.to_string(), to_json(&managed));
    desired.metadata.annotations = Some(annotations);
    Ok(desired)
}

/// Brings every Ingress of the configuration to what the plan wants: a merge patch of
/// its annotations (and paths) where it differs, with Argo's `PatchingALBIngress` event,
/// applied to `ingresses` as well. The first error stops.
pub fn reconcile(
    cfg: &AlbTrafficRouting,
    plan: &TrafficPlan,
    ingresses: &mut BTreeMap<String, Ingress>,
) -> Result<Vec<Action>, RouterError> {
    let mut actions = Vec::new();
    for name in cfg.ingress_names() {
        let live = ingresses.get_mut(name).ok_or_else(|| RouterError::NotFound { kind: "Ingress", name: name.to_string() })?;
        let desired = desired_ingress(cfg, plan, live)?;
        let Some(patch) = merge_diff(&managed_part(live), &managed_part(&desired)) else { continue };
        let weight_key = cfg.action_key(cfg.action_service(&plan.stable_service));
        let message = if patch.pointer("/metadata/annotations").and_then(|a| a.get(&weight_key)).is_some() {
            format!("Updating Ingress `{name}` to desiredWeight '{}'", plan.weight)
        } else if plan.header_routes.is_empty() {
            format!("Updating Ingress `{name}` removing managed routes")
        } else {
            let routes: Vec<&str> = plan.header_routes.iter().map(|h| h.name.as_str()).collect();
            format!("Updating Ingress `{name}` to headerRoute '{}'", routes.join(","))
        };
        actions.push(Action::RecordEvent { kind: EventType::Normal, reason: "PatchingALBIngress".into(), message });
        actions.push(Action::PatchIngress { name: name.to_string(), patch });
        *live = desired;
    }
    Ok(actions)
}

#[cfg(test)]
mod tests;
