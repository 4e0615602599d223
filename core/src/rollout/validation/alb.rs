//! What Argo checks of the ALB router and of ping-pong Services (rule 5 of its spec
//! validation, rule 8 of its references), and the steps ALB cannot carry.

use super::{invalid, ValidationError};
use crate::api::{CanaryStrategy, HeaderRoutingMatch, Rollout, RolloutTrafficRouting, ALB_MAX_STICKINESS_SECONDS};
use crate::state::State;

const P: &str = "spec.strategy.canary";

/// Argo's `PingPongWithRouterOnlyMessage`.
const PING_PONG_ROUTERS: &str = "Ping-pong feature works with the ALB, Istio, and plugin-based traffic routers only";
/// Argo's `InvalidPingPongProvidedMessage`.
const PING_PONG_BOTH: &str = "Ping service and Pong service must to be set to use Ping-Pong feature";
/// Argo's `DuplicatedPingPongServicesMessage`.
const PING_PONG_DISTINCT: &str =
    "This rollout uses the same service for the ping and pong services, but two different services are required.";
/// Argo's `MissedAlbRootServiceMessage`.
const ALB_ROOT_SERVICE: &str = "Root service field is required for the configuration with ALB and ping-pong feature enabled";
/// Argo's `InvalidSetHeaderRouteALBValuePolicy`.
const ALB_EXACT_ONLY: &str = "SetHeaderRoute match value invalid. ALB supports 'exact' value only";

/// Whether ALB needs `stableService` and `canaryService` (not with ping-pong, whose
/// Services take their place).
pub(super) fn services_required(c: &CanaryStrategy, tr: &RolloutTrafficRouting) -> bool {
    tr.alb.is_some() && c.ping_pong.is_none()
}

/// `pingPong`: a router that can use it (ALB, Istio, plugins), both Services, distinct,
/// and ALB's `rootService`.
pub(super) fn validate_ping_pong(c: &CanaryStrategy) -> Result<(), ValidationError> {
    let Some(pp) = &c.ping_pong else { return Ok(()) };
    if let Some(tr) = &c.traffic_routing {
        let plugins = tr.plugins.as_ref().and_then(serde_json::Value::as_object).is_some_and(|p| !p.is_empty());
        if tr.alb.is_none() && tr.istio.is_none() && !plugins {
            return Err(invalid(&format!("{P}.trafficRouting.alb"), "null", PING_PONG_ROUTERS));
        }
    }
    if pp.ping_service.is_empty() {
        return Err(invalid(&format!("{P}.pingPong.pingService"), "\"\"", PING_PONG_BOTH));
    }
    if pp.pong_service.is_empty() {
        return Err(invalid(&format!("{P}.pingPong.pongService"), "\"\"", PING_PONG_BOTH));
    }
    if pp.ping_service == pp.pong_service {
        return Err(invalid(&format!("{P}.pingPong.pingService"), format!("{:?}", pp.ping_service), PING_PONG_DISTINCT));
    }
    if c.traffic_routing.as_ref().and_then(|tr| tr.alb.as_ref()).is_some_and(|alb| alb.root_service.is_empty()) {
        return Err(invalid(&format!("{P}.trafficRouting.alb.rootService"), "\"\"", ALB_ROOT_SERVICE));
    }
    Ok(())
}

/// The `alb` block: one of `ingress`/`ingresses` (Argo's wording), a stickiness duration
/// AWS accepts, no `maxTrafficWeight` (ALB weights are out of 100).
pub(super) fn validate_config(tr: &RolloutTrafficRouting) -> Result<(), ValidationError> {
    let Some(alb) = &tr.alb else { return Ok(()) };
    let ap = format!("{P}.trafficRouting.alb");
    match (alb.ingress.is_empty(), alb.ingresses.is_empty()) {
        (false, false) => return Err(invalid(&ap, "{...}", "Either Ingress or Ingresses must be configured. Both are configured.")),
        (true, true) => return Err(invalid(&ap, "{...}", "Either Ingress or Ingresses must be configured. Neither are configured.")),
        (true, false) | (false, true) => {}
    }
    if let Some(s) = alb.stickiness_config.as_ref().filter(|s| s.enabled) {
        if !(1..=ALB_MAX_STICKINESS_SECONDS).contains(&s.duration_seconds) {
            return Err(invalid(
                &format!("{ap}.stickinessConfig.durationSeconds"),
                s.duration_seconds,
                &crate::traffic::alb::stickiness_error(),
            ));
        }
    }
    if let Some(w) = tr.max_traffic_weight {
        return Err(invalid(
            &format!("{P}.trafficRouting.maxTrafficWeight"),
            w,
            "maxTrafficWeight is only supported with nginx and plugins (ALB weights are out of 100)",
        ));
    }
    Ok(())
}

/// A `setHeaderRoute` match with ALB: an exact value and nothing else (Argo's
/// `hasALBInvalidValues`).
pub(super) fn check_header_match(c: &CanaryStrategy, path: &str, m: &HeaderRoutingMatch) -> Result<(), ValidationError> {
    if c.traffic_routing.as_ref().is_none_or(|tr| tr.alb.is_none()) {
        return Ok(());
    }
    let v = &m.header_value;
    if v.exact.is_empty() || !v.regex.is_empty() || !v.prefix.is_empty() {
        return Err(invalid(path, "{...}", ALB_EXACT_ONLY));
    }
    Ok(())
}

/// A `setMirrorRoute` step with ALB, which cannot mirror (Argo's ALB reconciler ignores
/// the step).
pub(super) fn check_mirror_carried(c: &CanaryStrategy, path: &str, name: &str) -> Result<(), ValidationError> {
    if c.traffic_routing.as_ref().is_some_and(|tr| tr.alb.is_some()) {
        return Err(invalid(
            path,
            format!("{name:?}"),
            "the ALB router cannot mirror traffic (Argo Rollouts would silently ignore this step): remove the step or the alb router",
        ));
    }
    Ok(())
}

/// The ALB Ingresses exist and each has a rule for the root (or stable) Service.
pub(super) fn validate_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    let Some(c) = ro.spec.canary() else { return Ok(()) };
    let Some(alb) = c.traffic_routing.as_ref().and_then(|tr| tr.alb.as_ref()) else { return Ok(()) };
    let field = if alb.ingresses.is_empty() { "ingress" } else { "ingresses" };
    let path = format!("{P}.trafficRouting.alb.{field}");
    let service = alb.action_service(&c.stable_service);
    for name in alb.ingress_names() {
        let Some(ingress) = state.ingresses.get(name) else {
            return Err(invalid(&path, format!("{name:?}"), &format!("ingress.networking.k8s.io {name:?} not found")));
        };
        if !crate::traffic::alb::has_rule_with_service(ingress, service) {
            return Err(invalid(&path, format!("{name:?}"), &format!("ingress `{name}` has no rules using service {service} backend")));
        }
    }
    Ok(())
}

/// The ping and pong Services, for the Services check (they must exist, select the
/// template's pods, and not be managed by another rollout).
pub(super) fn ping_pong_references(c: &CanaryStrategy) -> Vec<(String, &str)> {
    c.ping_pong
        .iter()
        .flat_map(|pp| {
            [
                (format!("{P}.pingPong.pingService"), pp.ping_service.as_str()),
                (format!("{P}.pingPong.pongService"), pp.pong_service.as_str()),
            ]
        })
        .collect()
}
