//! What Argo checks of the Istio and SMI routers' configuration and objects, and the steps
//! they cannot carry (refused before anything moves, naming step and router).

use super::{invalid, ValidationError};
use crate::api::{virtual_service_namespace_name, CanaryStrategy, Rollout, RolloutTrafficRouting, RouteKind};
use crate::state::{route_key, State};
use crate::traffic::TrafficPlan;

const P: &str = "spec.strategy.canary.trafficRouting";

/// Whether the canary and stable Services are required (Argo's
/// `requireCanaryStableServices`): by every router but Istio at subset level or with
/// ping-pong Services.
pub(super) fn services_required(c: &CanaryStrategy, tr: &RolloutTrafficRouting) -> bool {
    tr.nginx.is_some()
        || tr.gateway_api_config().ok().flatten().is_some()
        || tr.smi.is_some()
        || tr.istio.as_ref().is_some_and(|i| i.destination_rule.is_none() && c.ping_pong.is_none())
}

/// The Istio and SMI blocks: one of `virtualService`/`virtualServices`, a complete
/// `destinationRule`, no `maxTrafficWeight` (their weights are out of 100).
pub(super) fn validate_config(tr: &RolloutTrafficRouting) -> Result<(), ValidationError> {
    if let Some(istio) = &tr.istio {
        let ip = format!("{P}.istio");
        if istio.virtual_service.is_some() != istio.virtual_services.is_empty() {
            return Err(invalid(&ip, "{...}", "either VirtualService or VirtualServices must be configured"));
        }
        for (i, vs) in istio.all_virtual_services().into_iter().enumerate() {
            if vs.name.is_empty() {
                let field = if istio.virtual_services.is_empty() { "virtualService.name".into() } else { format!("virtualServices[{i}].name") };
                return Err(invalid(&format!("{ip}.{field}"), "\"\"", "the VirtualService's name is required"));
            }
        }
        if let Some(rule) = &istio.destination_rule {
            for (field, value) in
                [("name", &rule.name), ("canarySubsetName", &rule.canary_subset_name), ("stableSubsetName", &rule.stable_subset_name)]
            {
                if value.is_empty() {
                    return Err(invalid(&format!("{ip}.destinationRule.{field}"), "\"\"", "must be set"));
                }
            }
            if rule.canary_subset_name == rule.stable_subset_name {
                return Err(invalid(
                    &format!("{ip}.destinationRule.stableSubsetName"),
                    format!("{:?}", rule.stable_subset_name),
                    "the canary and stable subsets must differ",
                ));
            }
        }
    }
    if let (Some(w), true) = (tr.max_traffic_weight, tr.istio.is_some() || tr.smi.is_some()) {
        return Err(invalid(&format!("{P}.maxTrafficWeight"), w, "maxTrafficWeight is only supported with nginx and plugins (Istio and SMI weights are out of 100)"));
    }
    Ok(())
}

/// A `setHeaderRoute` or `setMirrorRoute` step on a configuration with SMI, which has no
/// header matching or mirroring (Argo accepts the step beside Istio and does nothing for
/// SMI; alone, it refuses it).
pub(super) fn check_step_carried(c: &CanaryStrategy, path: &str, name: &str, what: &str) -> Result<(), ValidationError> {
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    if tr.smi.is_some() {
        return Err(invalid(
            path,
            format!("{name:?}"),
            &format!("the SMI router cannot carry {what} (a TrafficSplit only splits by weight): remove the step or the smi router"),
        ));
    }
    Ok(())
}

/// The VirtualServices and the DestinationRule exist and can carry the plan (Argo's
/// `ValidateVirtualService` and the references it reads); the TrafficSplit, if it exists,
/// is this rollout's.
pub(super) fn validate_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    let Some(c) = ro.spec.canary() else { return Ok(()) };
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    if let Some(istio) = &tr.istio {
        let rule_host = match &istio.destination_rule {
            Some(rule) => {
                let Some(live) = state.routes.get(&route_key(RouteKind::DestinationRule, &rule.name)) else {
                    return Err(invalid(
                        &format!("{P}.istio.destinationRule.name"),
                        format!("{:?}", rule.name),
                        &format!("destinationrules.networking.istio.io {:?} not found", rule.name),
                    ));
                };
                live.pointer("/spec/host").and_then(serde_json::Value::as_str).map(str::to_string)
            }
            None => None,
        };
        // With ping-pong and neither stable nor canary Service, the routes name the ping
        // and pong Services (which is which does not matter to this check).
        let (stable_service, canary_service) = match &c.ping_pong {
            Some(pp) if c.stable_service.is_empty() && c.canary_service.is_empty() => {
                (pp.ping_service.clone(), pp.pong_service.clone())
            }
            Some(_) | None => (c.stable_service.clone(), c.canary_service.clone()),
        };
        let plan = TrafficPlan {
            canary_service,
            stable_service,
            max_weight: 100,
            managed_routes: tr.managed_routes.iter().map(|r| r.name.clone()).collect(),
            ..TrafficPlan::default()
        };
        let field = if istio.virtual_services.is_empty() { "virtualService" } else { "virtualServices" };
        let path = format!("{P}.istio.{field}.name");
        for vs in istio.all_virtual_services() {
            let (_, name) = virtual_service_namespace_name(&vs.name);
            let Some(live) = state.routes.get(&route_key(RouteKind::VirtualService, &name)) else {
                return Err(invalid(&path, format!("{name:?}"), &format!("virtualservices.networking.istio.io {name:?} not found")));
            };
            let spec = live.get("spec").cloned().unwrap_or_default();
            if let Err(e) = crate::traffic::istio::desired_spec(&spec, vs, istio, &plan, rule_host.as_deref()) {
                return Err(invalid(&path, format!("{name:?}"), &format!("Istio VirtualService has invalid routes. Error: {e}")));
            }
        }
    }
    if let Some(smi) = &tr.smi {
        let rollout = ro.metadata.name.as_deref().unwrap_or_default();
        let name = smi.split_name(rollout);
        if let Some(live) = state.routes.get(&route_key(RouteKind::TrafficSplit, name)) {
            let uid = ro.metadata.uid.as_deref().unwrap_or_default();
            if let Err(e) = crate::traffic::smi::check_owner(live, name, uid) {
                return Err(invalid(&format!("{P}.smi.trafficSplitName"), format!("{name:?}"), &e.to_string()));
            }
        }
    }
    Ok(())
}
