//! NGINX Ingress: the canary Ingress `<rollout>-<stableIngress>-canary`, written exactly as
//! Argo Rollouts writes it (`rollout/trafficrouting/nginx/nginx.go`).
//!
//! One canary Ingress per stable Ingress, owned by the Rollout: the stable Ingress's rules
//! that send a path to the stable Service, with those backends switched to the canary
//! Service; its TLS, `ingressClassName` and `kubernetes.io/ingress.class`; the
//! annotations `additionalIngressAnnotations` (prefix added), `canaryIngressAnnotations`
//! (verbatim), then `canary: "true"` and `canary-weight` (and `canary-weight-total` with
//! `maxTrafficWeight`), which always win. Annotations already on the live canary Ingress
//! that are not wanted are kept (another controller may have put them there).
//!
//! Beyond Argo, which ignores header routes on NGINX: a header route in force is written as
//! the canary Ingress's `canary-by-header` / `-value` / `-pattern` annotations
//! (ingress-nginx serves one canary Ingress per host and path, so weight and header share
//! it), and removed with the route.
//!
//! Experiment destinations (`TrafficPlan::additional`) are ignored, as Argo's NGINX
//! reconciler ignores them: a canary Ingress carries one weight, and ingress-nginx has no
//! third backend for a path. Validation refuses a template `weight` when NGINX is the only
//! router; beside the Gateway API, NGINX keeps sending `weight` to the canary and the rest
//! to the stable Service.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

use super::{RouterError, TrafficPlan};
use crate::api::{merge::merge_diff, NginxTrafficRouting, StringMatchKind};
use crate::state::{Action, EventType};

const CANARY_SUFFIX: &str = "-canary";
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The header-route annotations this router writes (after the prefix).
const HEADER_KEYS: [&str; 3] = ["canary-by-header", "canary-by-header-value", "canary-by-header-pattern"];

/// `<rollout>-<stableIngress>-canary`, the first part cut to 246 characters so that the
/// name fits Kubernetes' 253.
pub fn canary_ingress_name(rollout: &str, stable_ingress: &str) -> String {
    let mut prefix = format!("{rollout}-{stable_ingress}");
    let max = 253 - CANARY_SUFFIX.len();
    if prefix.len() > max {
        let mut cut = max;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix + CANARY_SUFFIX
}

/// Whether a path of the Ingress sends traffic to `service`.
pub fn has_rule_with_service(ingress: &Ingress, service: &str) -> bool {
    rules(ingress).iter().any(|r| {
        r.http.iter().flat_map(|h| &h.paths).any(|p| p.backend.service.as_ref().is_some_and(|s| s.name == service))
    })
}

fn rules(ingress: &Ingress) -> &[k8s_openapi::api::networking::v1::IngressRule] {
    ingress.spec.as_ref().and_then(|s| s.rules.as_deref()).unwrap_or_default()
}

/// The canary Ingress the plan asks for, from the stable Ingress `stable`.
pub fn desired_canary_ingress(
    cfg: &NginxTrafficRouting,
    plan: &TrafficPlan,
    stable: &Ingress,
    namespace: Option<String>,
) -> Result<Ingress, RouterError> {
    let stable_name = stable.metadata.name.as_deref().unwrap_or_default();
    let prefix = cfg.prefix();
    let mut canary_rules = Vec::new();
    for rule in rules(stable) {
        let mut rule = rule.clone();
        let mut uses_stable = false;
        for path in rule.http.iter_mut().flat_map(|h| h.paths.iter_mut()) {
            if let Some(svc) = path.backend.service.as_mut().filter(|s| s.name == plan.stable_service) {
                uses_stable = true;
                svc.name = plan.canary_service.clone();
            }
        }
        if uses_stable {
            canary_rules.push(rule);
        }
    }
    if canary_rules.is_empty() {
        return Err(RouterError::Invalid(format!(
            "ingress `{stable_name}` has no rules using service {} backend",
            plan.stable_service
        )));
    }
    let spec = stable.spec.as_ref();
    let mut annotations = BTreeMap::new();
    if let Some(class) = stable.metadata.annotations.as_ref().and_then(|a| a.get(INGRESS_CLASS_ANNOTATION)) {
        annotations.insert(INGRESS_CLASS_ANNOTATION.to_string(), class.clone());
    }
    for (k, v) in &cfg.additional_ingress_annotations {
        let key = if k.starts_with(prefix) { k.clone() } else { format!("{prefix}/{k}") };
        annotations.insert(key, v.clone());
    }
    for (k, v) in &cfg.canary_ingress_annotations {
        annotations.insert(k.clone(), v.clone());
    }
    for (k, v) in header_annotations(plan) {
        annotations.insert(format!("{prefix}/{k}"), v);
    }
    annotations.insert(format!("{prefix}/canary"), "true".to_string());
    annotations.insert(format!("{prefix}/canary-weight"), plan.weight.to_string());
    if plan.max_weight_set {
        annotations.insert(format!("{prefix}/canary-weight-total"), plan.max_weight.to_string());
    }
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(canary_ingress_name(&plan.rollout, stable_name)),
            namespace,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::api::API_VERSION.to_string(),
                kind: "Rollout".to_string(),
                name: plan.rollout.clone(),
                uid: plan.rollout_uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: spec.and_then(|s| s.ingress_class_name.clone()),
            rules: Some(canary_rules),
            tls: spec.and_then(|s| s.tls.clone()),
            ..IngressSpec::default()
        }),
        status: None,
    })
}

/// The `canary-by-header*` annotations (without the prefix) of the header route in force.
fn header_annotations(plan: &TrafficPlan) -> Vec<(&'static str, String)> {
    let Some(m) = plan.header_routes.last().and_then(|r| r.matches.as_ref()).and_then(|m| m.first()) else {
        return Vec::new();
    };
    let mut out = vec![("canary-by-header", m.header_name.clone())];
    match m.header_value.kind() {
        Some(StringMatchKind::Exact(v)) => out.push(("canary-by-header-value", v.to_string())),
        Some(StringMatchKind::Prefix(p)) => {
            out.push(("canary-by-header-pattern", format!("^{}", crate::api::regex_escape(p))));
        }
        Some(StringMatchKind::Regex(r)) => out.push(("canary-by-header-pattern", r.to_string())),
        None => {}
    }
    out
}

/// Whether the Rollout `uid` controls the object.
fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The part of an Ingress the router manages, as JSON: annotations, labels, spec.
fn managed_part(ingress: &Ingress) -> Value {
    json!({
        "metadata": {
            "annotations": ingress.metadata.annotations.clone().unwrap_or_default(),
            "labels": ingress.metadata.labels.clone().unwrap_or_default(),
        },
        "spec": serde_json::to_value(ingress.spec.clone().unwrap_or_default()).unwrap_or(Value::Null),
    })
}

/// Brings every canary Ingress of the plan to what it wants: the actions (a create, or a
/// merge patch of what differs, with Argo's events), applied to `ingresses` as well. The
/// first error stops (Argo's reconciler returns it).
pub fn reconcile(
    cfg: &NginxTrafficRouting,
    plan: &TrafficPlan,
    ingresses: &mut BTreeMap<String, Ingress>,
    namespace: Option<String>,
) -> Result<Vec<Action>, RouterError> {
    let mut actions = Vec::new();
    for stable_name in cfg.stable_ingress_names() {
        let stable = ingresses
            .get(stable_name)
            .ok_or_else(|| RouterError::NotFound { kind: "Ingress", name: stable_name.to_string() })?;
        let mut desired = desired_canary_ingress(cfg, plan, stable, namespace.clone())?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        let Some(live) = ingresses.get_mut(&name) else {
            actions.push(event(format!("Creating canary ingress `{name}` with weight `{}`", plan.weight), "CreatingCanaryIngress"));
            actions.push(Action::CreateIngress { ingress: Box::new(desired.clone()) });
            ingresses.insert(name, desired);
            continue;
        };
        if !controlled_by(&live.metadata, &plan.rollout_uid) {
            return Err(RouterError::Invalid(format!("canary ingress `{name}` controlled by different object")));
        }
        // Live annotations that are not wanted stay, except the header-route ones this
        // router writes (unless the user asks for them).
        let wanted = desired.metadata.annotations.get_or_insert_with(BTreeMap::new);
        let prefix = cfg.prefix();
        let user_set = |k: &str| {
            cfg.canary_ingress_annotations.contains_key(k)
                || cfg.additional_ingress_annotations.keys().any(|a| a == k || format!("{prefix}/{a}") == k)
        };
        for (k, v) in live.metadata.annotations.iter().flatten() {
            let ours = HEADER_KEYS.iter().any(|h| *k == format!("{prefix}/{h}")) && !user_set(k);
            if !ours && !wanted.contains_key(k) {
                wanted.insert(k.clone(), v.clone());
            }
        }
        let Some(patch) = merge_diff(&managed_part(live), &managed_part(&desired)) else { continue };
        actions.push(event(format!("Updating Ingress `{name}` to desiredWeight '{}'", plan.weight), "PatchingCanaryIngress"));
        live.metadata.annotations = desired.metadata.annotations.take();
        live.metadata.labels = None;
        live.spec = desired.spec.take();
        actions.push(Action::PatchIngress { name, patch });
    }
    Ok(actions)
}

fn event(message: String, reason: &str) -> Action {
    Action::RecordEvent { kind: EventType::Normal, reason: reason.to_string(), message }
}

#[cfg(test)]
mod tests;
