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

#[cfg(test)]
mod tests {
    use crate::api::parse::from_yaml_strict;
    use crate::api::Rollout;
    use crate::rollout::validation::{validate, validate_spec};
    use crate::state::State;

    fn rollout(canary: &str) -> Rollout {
        let text = format!(
            "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: demo}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: demo}}}}
  template:
    metadata: {{labels: {{app: demo}}}}
    spec: {{containers: [{{name: app, image: app:1}}]}}
  strategy:
    canary:
{canary}"
        );
        from_yaml_strict(&text).expect("the test rollout decodes")
    }

    fn spec_error(canary: &str) -> String {
        validate_spec(&rollout(canary).spec).map_err(|e| e.to_string()).err().unwrap_or_default()
    }

    const ALB: &str = "      trafficRouting: {alb: {ingress: web, servicePort: 80}}\n";
    const SERVICES: &str = "      stableService: stable\n      canaryService: canary\n";

    #[test]
    fn ping_pong_follows_argo_s_rule_5() {
        let pp = "      pingPong: {pingService: ping, pongService: pong}\n";
        assert_eq!(
            spec_error(&format!("{pp}{ALB}")),
            "spec.strategy.canary.trafficRouting.alb.rootService: Invalid value: \"\": Root service field is required for the configuration with ALB and ping-pong feature enabled"
        );
        let root = "      trafficRouting: {alb: {ingress: web, servicePort: 80, rootService: root}}\n";
        // With ping-pong, ALB needs neither stableService nor canaryService.
        assert_eq!(spec_error(&format!("{pp}{root}")), "");
        assert_eq!(
            spec_error(&format!("      pingPong: {{pingService: ping, pongService: ping}}\n{root}")),
            "spec.strategy.canary.pingPong.pingService: Invalid value: \"ping\": This rollout uses the same service for the ping and pong services, but two different services are required."
        );
        assert_eq!(
            spec_error(&format!("      pingPong: {{pingService: ping, pongService: \"\"}}\n{root}")),
            "spec.strategy.canary.pingPong.pongService: Invalid value: \"\": Ping service and Pong service must to be set to use Ping-Pong feature"
        );
        assert_eq!(
            spec_error(&format!("{pp}{SERVICES}      trafficRouting: {{smi: {{}}}}\n")),
            "spec.strategy.canary.trafficRouting.alb: Invalid value: null: Ping-pong feature works with the ALB, Istio, and plugin-based traffic routers only"
        );
        // Without ping-pong, ALB needs both Services.
        assert_eq!(
            spec_error(ALB),
            "spec.strategy.canary.stableService: Invalid value: \"\": Canary service and Stable service must to be set to use Traffic Routing"
        );
    }

    #[test]
    fn the_alb_block_needs_one_ingress_field_and_a_stickiness_aws_accepts() {
        assert_eq!(spec_error(&format!("{SERVICES}{ALB}")), "");
        assert_eq!(
            spec_error(&format!("{SERVICES}      trafficRouting: {{alb: {{servicePort: 80}}}}\n")),
            "spec.strategy.canary.trafficRouting.alb: Invalid value: {...}: Either Ingress or Ingresses must be configured. Neither are configured."
        );
        assert_eq!(
            spec_error(&format!("{SERVICES}      trafficRouting: {{alb: {{ingress: a, ingresses: [b], servicePort: 80}}}}\n")),
            "spec.strategy.canary.trafficRouting.alb: Invalid value: {...}: Either Ingress or Ingresses must be configured. Both are configured."
        );
        assert_eq!(
            spec_error(&format!(
                "{SERVICES}      trafficRouting: {{alb: {{ingress: a, servicePort: 80, stickinessConfig: {{enabled: true, durationSeconds: 0}}}}}}\n"
            )),
            "spec.strategy.canary.trafficRouting.alb.stickinessConfig.durationSeconds: Invalid value: 0: TargetGroupStickinessConfig's duration must be between 1 and 604800 seconds (7 days)!"
        );
        assert!(spec_error(&format!("{SERVICES}      trafficRouting: {{alb: {{ingress: a, servicePort: 80}}, maxTrafficWeight: 1000}}\n"))
            .starts_with("spec.strategy.canary.trafficRouting.maxTrafficWeight: Invalid value: 1000"));
    }

    #[test]
    fn header_routes_are_exact_only_and_mirror_routes_are_refused_naming_the_router() {
        let tr = "      trafficRouting: {alb: {ingress: web, servicePort: 80}, managedRoutes: [{name: r}]}\n";
        let header = |value: &str| {
            spec_error(&format!(
                "{SERVICES}{tr}      steps: [{{setHeaderRoute: {{name: r, match: [{{headerName: X, headerValue: {value}}}]}}}}]\n"
            ))
        };
        assert_eq!(header("{exact: yes}"), "");
        assert_eq!(
            header("{prefix: y}"),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0]: Invalid value: {...}: SetHeaderRoute match value invalid. ALB supports 'exact' value only"
        );
        assert_eq!(
            header("{exact: yes, regex: y.*}"),
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0]: Invalid value: {...}: SetHeaderRoute match value invalid. ALB supports 'exact' value only"
        );
        assert_eq!(
            spec_error(&format!("{SERVICES}{tr}      steps: [{{setMirrorRoute: {{name: r, match: [{{method: {{exact: GET}}}}]}}}}]\n")),
            "spec.strategy.canary.steps[0].setMirrorRoute: Invalid value: \"r\": the ALB router cannot mirror traffic (Argo Rollouts would silently ignore this step): remove the step or the alb router"
        );
    }

    fn object<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
        serde_json::from_value(json).expect("the test object decodes")
    }

    #[test]
    fn the_ingresses_and_ping_pong_services_must_exist() {
        let mut state = State::default();
        for name in ["stable", "canary", "ping"] {
            state.services.insert(name.into(), object(serde_json::json!({"metadata": {"name": name}, "spec": {"selector": {"app": "demo"}}})));
        }
        let ro = rollout(&format!("{SERVICES}{ALB}"));
        assert_eq!(
            validate(&ro, &state).map_err(|e| e.to_string()),
            Err("spec.strategy.canary.trafficRouting.alb.ingress: Invalid value: \"web\": ingress.networking.k8s.io \"web\" not found".into())
        );
        let ingress = |service: &str| {
            object(serde_json::json!({"metadata": {"name": "web"}, "spec": {"rules": [{"http": {"paths": [
                {"pathType": "ImplementationSpecific", "backend": {"service": {"name": service, "port": {"name": "use-annotation"}}}}]}}]}}))
        };
        state.ingresses.insert("web".into(), ingress("other"));
        assert_eq!(
            validate(&ro, &state).map_err(|e| e.to_string()),
            Err("spec.strategy.canary.trafficRouting.alb.ingress: Invalid value: \"web\": ingress `web` has no rules using service stable backend".into())
        );
        state.ingresses.insert("web".into(), ingress("stable"));
        assert_eq!(validate(&ro, &state).map_err(|e| e.to_string()), Ok(()));

        let pp = rollout(
            "      pingPong: {pingService: ping, pongService: pong}\n      trafficRouting: {alb: {ingress: web, servicePort: 80, rootService: stable}}\n",
        );
        assert_eq!(
            validate(&pp, &state).map_err(|e| e.to_string()),
            Err("spec.strategy.canary.pingPong.pongService: Invalid value: \"pong\": service \"pong\" not found".into())
        );
    }
}
