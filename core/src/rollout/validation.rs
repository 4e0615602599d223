//! Spec validation (Argo's `ValidateRollout` and `ValidateRolloutReferencedResources`).
//!
//! The first error found is returned, formatted like a Kubernetes field error
//! (`<path>: Invalid value: <value>: <detail>`), and becomes the message of the
//! `InvalidSpec` condition.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::api::{
    keys, AnalysisRunArgument, Argument, CanaryStrategy, IntOrString, PodTemplateMetadata, Rollout, RolloutAnalysisTemplate,
    RolloutSpec, RolloutTrafficRouting, SetHeaderRoute, SetMirrorRoute, StepKind, StringMatch,
};
use crate::objects::service_managed_by;
use crate::state::State;

mod alb;
mod mesh;
mod appmesh;
mod proxies;

/// Why a Rollout is invalid, worded as a Kubernetes field error; the `Display` text
/// becomes the message of the `InvalidSpec` condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `<path>: Invalid value: <value>: <detail>`.
    #[error("{path}: Invalid value: {value}: {detail}")]
    Invalid {
        /// The field.
        path: String,
        /// The offending value, rendered.
        value: String,
        /// What is wrong with it.
        detail: String,
    },
    /// `<path>: Required value: <detail>`.
    #[error("{path}: Required value: {detail}")]
    Required {
        /// The missing field.
        path: String,
        /// What is required.
        detail: String,
    },
    /// `<path>: Invalid value: <value>: <why the analysis cannot be built>`.
    #[error("{path}: Invalid value: {value}: {source}")]
    Analysis {
        /// The field naming the templates.
        path: String,
        /// The template names, rendered.
        value: String,
        /// Why they do not make a run.
        #[source]
        source: Box<super::analysis::RunError>,
    },
    /// `<path>: Forbidden: <what> is not supported by this version of Rollouts`.
    #[error("{path}: Forbidden: {what} is not supported by this version of Rollouts")]
    Unsupported {
        /// The field of the unsupported feature.
        path: String,
        /// The feature.
        what: String,
    },
}

fn invalid(path: &str, value: impl Display, detail: &str) -> ValidationError {
    ValidationError::Invalid {
        path: path.to_string(),
        value: value.to_string(),
        detail: detail.to_string(),
    }
}

fn required(path: &str, detail: &str) -> ValidationError {
    ValidationError::Required {
        path: path.to_string(),
        detail: detail.to_string(),
    }
}

fn unsupported(path: &str, what: &str) -> ValidationError {
    ValidationError::Unsupported {
        path: path.to_string(),
        what: what.to_string(),
    }
}

/// Validates the rollout and the Services it references.
pub fn validate(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    validate_spec(&ro.spec)?;
    validate_references(ro, state)
}

/// Static validation of the spec.
pub fn validate_spec(spec: &RolloutSpec) -> Result<(), ValidationError> {
    for (path, v) in [
        ("spec.replicas", spec.replicas),
        ("spec.minReadySeconds", Some(spec.min_ready_seconds)),
        ("spec.revisionHistoryLimit", spec.revision_history_limit),
        ("spec.progressDeadlineSeconds", spec.progress_deadline_seconds),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            return Err(invalid(path, v, "must be greater than or equal to 0"));
        }
    }
    if spec.progress_deadline_seconds() <= spec.min_ready_seconds {
        return Err(invalid(
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds(),
            "must be greater than minReadySeconds",
        ));
    }
    if let Some(r) = &spec.workload_ref {
        if !matches!(r.scale_down.as_str(), "" | "never" | "onsuccess" | "progressively") {
            return Err(invalid("spec.workloadRef.scaleDown", &r.scale_down, "must be one of never, onsuccess, progressively"));
        }
    }
    let Some(selector) = &spec.selector else {
        return Err(required("spec.selector", "Rollout has missing field '.spec.selector'"));
    };
    let no_labels = BTreeMap::new();
    let match_labels = selector.match_labels.as_ref().unwrap_or(&no_labels);
    if match_labels.is_empty()
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
    {
        return Err(invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ));
    }
    let Some(template) = &spec.template else {
        return Err(required("spec.template", "Rollout has missing field '.spec.template'"));
    };
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);
    for (k, v) in match_labels {
        if labels.get(k) != Some(v) {
            return Err(invalid(
                "spec.template.metadata.labels",
                format!("{labels:?}"),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let containers = template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if containers.is_empty() {
        return Err(required("spec.template.spec.containers", "a pod needs at least one container"));
    }
    for (i, c) in containers.iter().enumerate() {
        if c.name.is_empty() {
            return Err(required(&format!("spec.template.spec.containers[{i}].name"), "a container needs a name"));
        }
        if c.image.as_deref().is_none_or(str::is_empty) {
            return Err(required(&format!("spec.template.spec.containers[{i}].image"), "a container needs an image"));
        }
    }
    if let Some(limit) = spec.analysis.as_ref() {
        for (path, v) in [
            ("spec.analysis.successfulRunHistoryLimit", limit.successful_run_history_limit),
            ("spec.analysis.unsuccessfulRunHistoryLimit", limit.unsuccessful_run_history_limit),
        ] {
            if let Some(v) = v.filter(|v| *v < 0) {
                return Err(invalid(path, v, "must be greater than or equal to 0"));
            }
        }
    }
    match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(_), Some(_)) => Err(invalid("spec.strategy", "canary, blueGreen", "Multiple Strategies can not be listed")),
        (None, None) => Err(required(
            "spec.strategy",
            "Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'",
        )),
        (Some(_), None) => validate_canary(spec),
        (None, Some(_)) => validate_blue_green(spec),
    }
}

fn validate_anti_affinity(path: &str, a: &crate::api::AntiAffinity) -> Result<(), ValidationError> {
    match (&a.preferred_during_scheduling_ignored_during_execution, &a.required_during_scheduling_ignored_during_execution)
    {
        (Some(_), Some(_)) | (None, None) => Err(invalid(
            path,
            "{...}",
            "AntiAffinity must have exactly one of preferredDuringSchedulingIgnoredDuringExecution or requiredDuringSchedulingIgnoredDuringExecution",
        )),
        (Some(p), None) if !(1..=100).contains(&p.weight) => Err(invalid(
            &format!("{path}.preferredDuringSchedulingIgnoredDuringExecution.weight"),
            p.weight,
            "AntiAffinity weight must be between 1 and 100",
        )),
        _ => Ok(()),
    }
}

fn validate_blue_green(spec: &RolloutSpec) -> Result<(), ValidationError> {
    let Some(bg) = spec.blue_green() else {
        return Ok(());
    };
    let p = "spec.strategy.blueGreen";
    if bg.active_service.is_empty() {
        return Err(required(&format!("{p}.activeService"), "Rollout has missing field '.spec.strategy.blueGreen.activeService'"));
    }
    if bg.active_service == bg.preview_service {
        return Err(invalid(
            &format!("{p}.activeService"),
            format!("{:?}", bg.active_service),
            "This rollout uses the same service for the active and preview services, but two different services are required.",
        ));
    }
    if let Some(limit) = bg.scale_down_delay_revision_limit {
        if limit > spec.revision_history_limit() {
            return Err(invalid(
                &format!("{p}.scaleDownDelayRevisionLimit"),
                limit,
                "This rollout's revision history limit can not be smaller than the rollout's scale down limit",
            ));
        }
    }
    for (field, v) in [
        ("previewReplicaCount", bg.preview_replica_count),
        ("scaleDownDelaySeconds", bg.scale_down_delay_seconds),
        ("abortScaleDownDelaySeconds", bg.abort_scale_down_delay_seconds),
        ("autoPromotionSeconds", Some(bg.auto_promotion_seconds)),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            return Err(invalid(&format!("{p}.{field}"), v, "must be greater than or equal to 0"));
        }
    }
    if let Some(mu) = &bg.max_unavailable {
        check_int_or_percent(&format!("{p}.maxUnavailable"), mu)?;
    }
    check_ephemeral_metadata(&format!("{p}.activeMetadata"), bg.active_metadata.as_ref())?;
    check_ephemeral_metadata(&format!("{p}.previewMetadata"), bg.preview_metadata.as_ref())?;
    if let Some(a) = &bg.anti_affinity {
        validate_anti_affinity(&format!("{p}.antiAffinity"), a)?;
    }
    Ok(())
}

/// Ephemeral metadata may not set the pod-template hash label: the ReplicaSet's selector
/// would no longer match its template (the API server refuses the ReplicaSet) or its pods
/// would move to another ReplicaSet. Divergence from Argo, which accepts it and then fails
/// every reconcile on the refused update.
fn check_ephemeral_metadata(path: &str, metadata: Option<&PodTemplateMetadata>) -> Result<(), ValidationError> {
    match metadata.and_then(|m| m.labels.get(keys::POD_TEMPLATE_HASH)) {
        Some(v) => Err(invalid(
            &format!("{path}.labels.{}", keys::POD_TEMPLATE_HASH),
            format!("{v:?}"),
            "the pod-template hash label is the controller's own",
        )),
        None => Ok(()),
    }
}

fn check_int_or_percent(path: &str, v: &IntOrString) -> Result<(), ValidationError> {
    match v {
        IntOrString::Int(n) if *n < 0 => Err(invalid(path, n, "must be greater than or equal to 0")),
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(s) => match s.strip_suffix('%').unwrap_or(s).parse::<i64>() {
            Ok(n) if n >= 0 => Ok(()),
            _ => Err(invalid(path, format!("{s:?}"), "must be an integer or a percentage such as \"25%\"")),
        },
    }
}

fn validate_canary(spec: &RolloutSpec) -> Result<(), ValidationError> {
    let Some(c) = spec.canary() else {
        return Ok(());
    };
    let p = "spec.strategy.canary";
    if let Some(s) = &c.max_surge {
        check_int_or_percent(&format!("{p}.maxSurge"), s)?;
    }
    if let Some(u) = &c.max_unavailable {
        check_int_or_percent(&format!("{p}.maxUnavailable"), u)?;
    }
    let zero = |v: &Option<IntOrString>| match v {
        Some(IntOrString::Int(0)) => true,
        Some(IntOrString::String(s)) => s.strip_suffix('%').unwrap_or(s).trim() == "0",
        _ => false,
    };
    if zero(&c.max_surge) && zero(&c.max_unavailable) {
        return Err(invalid(&format!("{p}.maxSurge"), 0, "MaxSurge and MaxUnavailable both can not be zero"));
    }
    if !c.canary_service.is_empty() && c.canary_service == c.stable_service {
        return Err(invalid(
            &format!("{p}.stableService"),
            format!("{:?}", c.stable_service),
            "This rollout uses the same service for the stable and canary services, but two different services are required.",
        ));
    }
    alb::validate_ping_pong(c)?;
    if let Some(tr) = &c.traffic_routing {
        validate_traffic_routing(c, tr)?;
    }
    check_ephemeral_metadata(&format!("{p}.canaryMetadata"), c.canary_metadata.as_ref())?;
    check_ephemeral_metadata(&format!("{p}.stableMetadata"), c.stable_metadata.as_ref())?;
    let routed = c.traffic_routing.is_some();
    if !routed && c.scale_down_delay_seconds.is_some() {
        return Err(invalid(
            &format!("{p}.scaleDownDelaySeconds"),
            c.scale_down_delay_seconds.unwrap_or(0),
            "Canary scaleDownDelaySeconds can only be used with traffic routing",
        ));
    }
    if !routed && c.dynamic_stable_scale {
        return Err(invalid(&format!("{p}.dynamicStableScale"), true, "Canary dynamicStableScale can only be used with traffic routing"));
    }
    if routed && c.dynamic_stable_scale && c.scale_down_delay_seconds.is_some() {
        return Err(invalid(&format!("{p}.dynamicStableScale"), true, "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds"));
    }
    if let Some(a) = &c.anti_affinity {
        validate_anti_affinity(&format!("{p}.antiAffinity"), a)?;
    }
    let max_weight = spec.max_traffic_weight();
    for (i, step) in c.steps.iter().enumerate() {
        // Formatted only for an error.
        let sp = || format!("{p}.steps[{i}]");
        let set = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.experiment.is_some(),
            step.analysis.is_some(),
            step.set_canary_scale.is_some(),
            step.set_header_route.is_some(),
            step.set_mirror_route.is_some(),
            step.plugin.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count();
        if set == 0 {
            return Err(invalid(
                &sp(),
                "{}",
                "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
            ));
        }
        if set > 1 {
            return Err(invalid(
                &sp(),
                "{...}",
                "Step must have exactly one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
            ));
        }
        match step.kind() {
            StepKind::SetWeight(w) => {
                if !(0..=max_weight).contains(&w) {
                    return Err(invalid(
                        &format!("{}.setWeight", sp()),
                        w,
                        &format!("SetWeight needs to be between 0 and {max_weight}"),
                    ));
                }
            }
            StepKind::Pause(pause) => match pause.duration_seconds() {
                Ok(Some(d)) if d.0 < 0 => {
                    return Err(invalid(
                        &format!("{}.pause.duration", sp()),
                        d.0,
                        "Duration needs to be greater than 0",
                    ))
                }
                Err(e) => {
                    return Err(invalid(
                        &format!("{}.pause.duration", sp()),
                        format!("{:?}", e.input),
                        "Duration needs to be greater than 0",
                    ))
                }
                Ok(_) => {}
            },
            StepKind::SetCanaryScale(_) if !routed => {
                return Err(required(&format!("{p}.trafficRouting"), "SetCanaryScale requires TrafficRouting to be set"))
            }
            StepKind::SetCanaryScale(_) => {}
            StepKind::SetHeaderRoute(h) => validate_header_route(c, &format!("{}.setHeaderRoute", sp()), h)?,
            StepKind::SetMirrorRoute(m) => validate_mirror_route(c, &format!("{}.setMirrorRoute", sp()), m)?,
            StepKind::Analysis(_) => {}
            StepKind::Experiment(e) => validate_experiment_step(c, max_weight, &format!("{}.experiment", sp()), e)?,
            StepKind::Plugin(_) => {
                return Err(unsupported(&format!("{}.plugin", sp()), "step plugins"))
            }
            StepKind::Empty => {}
        }
    }
    Ok(())
}

/// An `experiment` step: Argo's weight rules (a weight needs a router that can carry an
/// additional destination), and what the step's Experiment would otherwise be refused
/// for, or never be created for, once the rollout reached the step (names, `specRef`,
/// `duration`).
fn validate_experiment_step(
    c: &CanaryStrategy,
    max_weight: i32,
    path: &str,
    step: &crate::api::RolloutExperimentStep,
) -> Result<(), ValidationError> {
    if let Some(d) = step.duration.as_deref().filter(|d| !d.is_empty()) {
        if let Err(e) = crate::time::parse_duration(d) {
            return Err(invalid(&format!("{path}.duration"), format!("{d:?}"), &e.reason.to_string()));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (j, t) in step.templates.iter().enumerate() {
        let tp = format!("{path}.templates[{j}]");
        if t.name.is_empty() {
            return Err(invalid(&format!("{tp}.name"), "\"\"", &format!("Experiment has empty template name at index {j}")));
        }
        if !names.insert(t.name.as_str()) {
            return Err(invalid(
                &format!("{tp}.name"),
                format!("{:?}", t.name),
                &format!("Experiment has repeated template name '{}' in templates", t.name),
            ));
        }
        if !matches!(t.spec_ref.as_str(), super::experiment::SPEC_REF_CANARY | super::experiment::SPEC_REF_STABLE) {
            return Err(invalid(
                &format!("{tp}.specRef"),
                format!("{:?}", t.spec_ref),
                "Invalid template step SpecRef: must be canary or stable",
            ));
        }
        if let Some(w) = t.weight {
            let wp = format!("{tp}.weight");
            let Some(tr) = &c.traffic_routing else {
                return Err(invalid(&wp, w, "Experiment template weight cannot be set unless TrafficRouting is enabled"));
            };
            // The Gateway API is a plugin in Argo (which also allows SMI, ALB and Istio);
            // NGINX cannot send traffic to a third backend.
            if tr.gateway_api_config().ok().flatten().is_none() && tr.istio.is_none() && tr.smi.is_none() && tr.alb.is_none() {
                return Err(invalid(
                    &wp,
                    w,
                    "Experiment template weight is only available for TrafficRouting with SMI, ALB, Istio and Plugins at this time",
                ));
            }
            if !(0..=max_weight).contains(&w) {
                return Err(invalid(&wp, w, &format!("Experiment template weight needs to be between 0 and {max_weight}")));
            }
        }
    }
    let mut analyses = std::collections::BTreeSet::new();
    for (j, a) in step.analyses.iter().enumerate() {
        let ap = format!("{path}.analyses[{j}]");
        if a.name.is_empty() {
            return Err(required(&format!("{ap}.name"), "analysis name is required"));
        }
        if !analyses.insert(a.name.as_str()) {
            return Err(invalid(
                &format!("{ap}.name"),
                format!("{:?}", a.name),
                &format!("Experiment has repeated analysis name '{}' in analyses", a.name),
            ));
        }
        if a.template_name.is_empty() {
            return Err(required(&format!("{ap}.templateName"), "templateName is required"));
        }
    }
    Ok(())
}

/// The routers this version drives (NGINX, the Gateway API) and what Argo checks of a
/// `trafficRouting` block.
fn validate_traffic_routing(c: &CanaryStrategy, tr: &RolloutTrafficRouting) -> Result<(), ValidationError> {
    let p = "spec.strategy.canary.trafficRouting";
    if let Some(other) = tr.unsupported_routers().first() {
        return Err(unsupported(&format!("{p}.{other}"), &format!("the {other} traffic router")));
    }
    let gateway = tr.gateway_api_config().map_err(|e| invalid(&e.path, "{...}", &e.message))?;
    if tr.nginx.is_none() && gateway.is_none() && tr.istio.is_none() && tr.smi.is_none() && tr.alb.is_none() && !tr.has_proxy_router() {
        return Err(required(p, "a traffic router (nginx, gatewayAPI, istio, smi, alb, traefik, ambassador, apisix or appMesh) is required"));
    }
    mesh::validate_config(tr)?;
    alb::validate_config(tr)?;
    proxies::validate_config(tr)?;
    appmesh::validate_config(tr)?;
    for (field, name) in [("stableService", &c.stable_service), ("canaryService", &c.canary_service)] {
        if name.is_empty() && (mesh::services_required(c, tr) || alb::services_required(c, tr) || proxies::services_required(tr)) {
            return Err(invalid(
                &format!("spec.strategy.canary.{field}"),
                "\"\"",
                "Canary service and Stable service must to be set to use Traffic Routing",
            ));
        }
    }
    if let Some(nginx) = &tr.nginx {
        let np = format!("{p}.nginx");
        match (nginx.stable_ingress.is_empty(), nginx.stable_ingresses.is_empty()) {
            (false, false) => {
                return Err(invalid(&np, "{...}", "Either StableIngress or StableIngresses must be configured. Both are configured."))
            }
            (true, true) => {
                return Err(invalid(&np, "{...}", "Either StableIngress or StableIngresses must be configured. Neither are configured."))
            }
            _ => {}
        }
    }
    if let Some(g) = &gateway {
        if g.routes().is_empty() {
            return Err(invalid(
                &format!("{p}.plugins[\"{}\"]", crate::api::GATEWAY_API_PLUGIN),
                "{...}",
                "No routes configured. At least one of 'httpRoutes', 'grpcRoutes', 'tcpRoutes', 'httpRoute', 'grpcRoute' or 'tcpRoute' must be set",
            ));
        }
    }
    if let Some(w) = tr.max_traffic_weight {
        if w <= 0 {
            return Err(invalid(&format!("{p}.maxTrafficWeight"), w, "must be greater than 0"));
        }
    }
    Ok(())
}

/// Exactly one of `exact`, `prefix`, `regex` (Argo's `hasMultipleMatchValues`).
fn validate_string_match(path: &str, m: &StringMatch) -> Result<(), ValidationError> {
    let set = [!m.exact.is_empty(), !m.prefix.is_empty(), !m.regex.is_empty()].into_iter().filter(|b| *b).count();
    match set {
        0 => Err(invalid(path, "{...}", "StringMatch value missed, match value must have one of the following: exact, regex, prefix")),
        1 => Ok(()),
        _ => Err(invalid(path, "{...}", "StringMatch match value must have exactly one of the following: exact, regex, prefix")),
    }
}

/// A managed route's step: the route is listed in `managedRoutes`.
fn validate_managed_route(c: &CanaryStrategy, path: &str, name: &str) -> Result<(), ValidationError> {
    let Some(tr) = &c.traffic_routing else {
        return Err(invalid(path, "{...}", "SetHeaderRoute and SetMirrorRoute require TrafficRouting to be set"));
    };
    if tr.managed_routes.is_empty() {
        return Err(required(
            "spec.strategy.canary.trafficRouting.managedRoutes",
            "Rollout has missing field 'spec.strategy.canary.trafficRouting.managedRoutes'",
        ));
    }
    if !tr.managed_routes.iter().any(|r| r.name == name) {
        return Err(invalid(
            path,
            format!("{name:?}"),
            "Steps define a route that does not exist in spec.strategy.canary.trafficRouting.managedRoutes",
        ));
    }
    Ok(())
}

/// `setHeaderRoute`: a managed route, valid matches, and a router that carries it (NGINX:
/// one header, through `canary-by-header`; the Gateway API: a route with
/// `useHeaderRoutes` that is not a TCPRoute).
fn validate_header_route(c: &CanaryStrategy, path: &str, h: &SetHeaderRoute) -> Result<(), ValidationError> {
    validate_managed_route(c, path, &h.name)?;
    mesh::check_step_carried(c, path, &h.name, "header routes")?;
    proxies::check_step_carried(c, path, &h.name, false)?;
    appmesh::check_step_carried(c, path, &h.name, false)?;
    let matches = h.matches.as_deref().unwrap_or_default();
    for (j, m) in matches.iter().enumerate() {
        if m.header_name.is_empty() {
            return Err(required(&format!("{path}.match[{j}].headerName"), "a header name is required"));
        }
        alb::check_header_match(c, &format!("{path}.match[{j}]"), m)?;
        validate_string_match(&format!("{path}.match[{j}].headerValue"), &m.header_value)?;
    }
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    if tr.nginx.is_some() {
        if matches.len() > 1 {
            return Err(invalid(
                &format!("{path}.match"),
                matches.len(),
                "the NGINX router routes on one header (canary-by-header): give one match",
            ));
        }
        let other = c
            .steps
            .iter()
            .filter_map(|s| s.set_header_route.as_ref())
            .find(|o| o.name != h.name && o.matches.as_ref().is_some_and(|m| !m.is_empty()));
        if let Some(other) = other {
            return Err(invalid(
                path,
                format!("{:?}", h.name),
                &format!("the NGINX router carries one header route at a time (canary-by-header), and route {:?} is another", other.name),
            ));
        }
    }
    if let Ok(Some(g)) = tr.gateway_api_config() {
        let carried = g.routes().iter().any(|(kind, r)| r.use_header_routes && *kind != crate::api::RouteKind::Tcp);
        if !carried && tr.nginx.is_none() && tr.istio.is_none() && tr.apisix.is_none() {
            return Err(invalid(
                path,
                format!("{:?}", h.name),
                "the Gateway API router adds header routes only to an HTTPRoute or GRPCRoute with useHeaderRoutes: true (or named by httpRoute/grpcRoute), and none is",
            ));
        }
    }
    Ok(())
}

/// `setMirrorRoute`: a managed route, valid matches, and a router that mirrors (the
/// Gateway API, through `RequestMirror`; not NGINX).
fn validate_mirror_route(c: &CanaryStrategy, path: &str, m: &SetMirrorRoute) -> Result<(), ValidationError> {
    validate_managed_route(c, path, &m.name)?;
    mesh::check_step_carried(c, path, &m.name, "mirror routes")?;
    alb::check_mirror_carried(c, path, &m.name)?;
    proxies::check_step_carried(c, path, &m.name, true)?;
    appmesh::check_step_carried(c, path, &m.name, true)?;
    let gateway = c.traffic_routing.as_ref().is_some_and(|tr| tr.gateway_api_config().ok().flatten().is_some());
    for (j, cond) in m.matches.as_deref().unwrap_or_default().iter().enumerate() {
        let mp = format!("{path}.match[{j}]");
        if let Some(method) = &cond.method {
            validate_string_match(&format!("{mp}.method"), method)?;
            if method.exact.is_empty() && gateway {
                return Err(invalid(&format!("{mp}.method"), "{...}", "the Gateway API matches methods exactly: use exact"));
            }
        }
        if let Some(p) = &cond.path {
            validate_string_match(&format!("{mp}.path"), p)?;
        }
        for (h, v) in &cond.headers {
            validate_string_match(&format!("{mp}.headers.{h}"), v)?;
        }
    }
    if let Some(pct) = m.percentage {
        if !(0..=100).contains(&pct) {
            return Err(invalid(&format!("{path}.percentage"), pct, "must be between 0 and 100"));
        }
    }
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    if tr.nginx.is_some() {
        return Err(invalid(
            path,
            format!("{:?}", m.name),
            "the NGINX router cannot mirror traffic (Argo Rollouts would silently ignore this step)",
        ));
    }
    if let Ok(Some(g)) = tr.gateway_api_config() {
        if !g.routes().iter().any(|(kind, r)| r.use_header_routes && *kind == crate::api::RouteKind::Http) {
            return Err(invalid(
                path,
                format!("{:?}", m.name),
                "the Gateway API router mirrors only on an HTTPRoute with useHeaderRoutes: true (or named by httpRoute), and none is",
            ));
        }
    }
    Ok(())
}

/// Every analysis the rollout runs: its field path, templates, arguments, and whether it
/// runs in the background (which may measure forever).
fn analyses(ro: &Rollout) -> Vec<(String, &[RolloutAnalysisTemplate], &[AnalysisRunArgument], bool)> {
    let mut out: Vec<(String, &[RolloutAnalysisTemplate], &[AnalysisRunArgument], bool)> = Vec::new();
    if let Some(bg) = ro.spec.blue_green() {
        if let Some(a) = &bg.pre_promotion_analysis {
            out.push(("spec.strategy.blueGreen.prePromotionAnalysis".into(), &a.templates, &a.args, false));
        }
        if let Some(a) = &bg.post_promotion_analysis {
            out.push(("spec.strategy.blueGreen.postPromotionAnalysis".into(), &a.templates, &a.args, false));
        }
    } else if let Some(c) = ro.spec.canary() {
        for (i, step) in c.steps.iter().enumerate() {
            if let Some(a) = &step.analysis {
                out.push((format!("spec.strategy.canary.steps[{i}].analysis"), &a.templates, &a.args, false));
            }
        }
        if let Some(a) = &c.analysis {
            out.push(("spec.strategy.canary.analysis".into(), &a.templates, &a.args, true));
        }
    }
    out
}

/// The analysis templates a rollout references exist, merge without conflicts, get every
/// argument they need, and (except background analysis) do not measure forever.
fn validate_analysis_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    for (path, templates, args, background) in analyses(ro) {
        let path = format!("{path}.templates");
        let names: Vec<&str> = templates.iter().map(|t| t.template_name.as_str()).collect();
        let value = format!("{:?}", format!("templateNames: [{}]", names.join(" ")));
        if templates.is_empty() {
            return Err(required(&path, "at least one template is required"));
        }
        let analysis_error = |source: super::analysis::RunError| ValidationError::Analysis {
            path: path.clone(),
            value: value.clone(),
            source: Box::new(source),
        };
        let (namespaced, cluster) =
            super::analysis::referenced_templates(state, templates).map_err(analysis_error)?;
        let flat = crate::analysis::args::flatten_templates(&namespaced, &cluster)
            .map_err(|e| analysis_error(e.into()))?;
        if !background {
            for m in &flat.metrics {
                let count = match &m.count {
                    None => 0,
                    Some(IntOrString::Int(n)) => i64::from(*n),
                    Some(IntOrString::String(s)) => s.parse::<i64>().unwrap_or(1),
                };
                if count == 0 && m.interval.as_deref().is_some_and(|i| !i.is_empty()) {
                    let template = names.join(" ");
                    return Err(invalid(
                        &path,
                        &value,
                        &format!("AnalysisTemplate {template} has metric {} which runs indefinitely. Invalid value for count: 0", m.name),
                    ));
                }
            }
        }
        let supplied: Vec<Argument> = args
            .iter()
            .map(|a| Argument {
                name: a.name.clone(),
                value: if a.value.is_some() || a.value_from.is_some() { Some(String::new()) } else { None },
                value_from: None,
            })
            .collect();
        crate::analysis::args::merge_args(&flat.args, &supplied).map_err(|e| analysis_error(e.into()))?;
        validate_field_refs(ro, path.trim_end_matches(".templates"), args)?;
    }
    // An experiment step's analyses are checked by the Experiment (a template it cannot
    // find makes the analysis, and so the step, Error, as in Argo); their arguments are
    // the rollout's to resolve.
    for (i, step) in ro.spec.steps().iter().enumerate() {
        let Some(e) = &step.experiment else { continue };
        for (j, a) in e.analyses.iter().enumerate() {
            validate_field_refs(ro, &format!("spec.strategy.canary.steps[{i}].experiment.analyses[{j}]"), &a.args)?;
        }
    }
    Ok(())
}

/// Argo's check of `valueFrom.fieldRef` arguments: a `metadata` path must resolve on the
/// Rollout.
fn validate_field_refs(ro: &Rollout, path: &str, args: &[AnalysisRunArgument]) -> Result<(), ValidationError> {
    for (i, a) in args.iter().enumerate() {
        let Some(field) = a.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) else { continue };
        if field.field_path.starts_with("metadata") && super::analysis::field_value(ro, &field.field_path).is_err() {
            let arg_path = format!("{path}.args[{i}].valueFrom.fieldRef.fieldPath");
            return Err(invalid(&arg_path, format!("{:?}", field.field_path), "the field could not be resolved"));
        }
    }
    Ok(())
}

/// The references of a rollout whose spec passed [`validate_spec`]: the analysis
/// templates it names, and the Services it names (they must exist, select the template's
/// pods, and not be managed by another rollout).
pub fn validate_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    validate_analysis_references(ro, state)?;
    validate_router_references(ro, state)?;
    mesh::validate_references(ro, state)?;
    alb::validate_references(ro, state)?;
    proxies::validate_references(ro, state)?;
    appmesh::validate_references(ro, state)?;
    let mut refs: Vec<(String, &str)> = Vec::new();
    if let Some(bg) = ro.spec.blue_green() {
        refs.push(("spec.strategy.blueGreen.activeService".into(), &bg.active_service));
        refs.push(("spec.strategy.blueGreen.previewService".into(), &bg.preview_service));
    } else if let Some(c) = ro.spec.canary() {
        refs.push(("spec.strategy.canary.stableService".into(), &c.stable_service));
        refs.push(("spec.strategy.canary.canaryService".into(), &c.canary_service));
        refs.extend(alb::ping_pong_references(c));
    }
    let name = ro.metadata.name.as_deref().unwrap_or("");
    let no_labels = BTreeMap::new();
    let labels = ro
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);
    for (path, svc_name) in refs {
        if svc_name.is_empty() {
            continue;
        }
        let Some(svc) = state.services.get(svc_name) else {
            return Err(invalid(&path, format!("{svc_name:?}"), &format!("service {svc_name:?} not found")));
        };
        if let Some(owner) = service_managed_by(svc) {
            if owner != name {
                return Err(invalid(&path, format!("{svc_name:?}"), &format!("Service {svc_name:?} is managed by another Rollout")));
            }
        }
        for (k, v) in svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .into_iter()
            .flatten()
        {
            if k == keys::POD_TEMPLATE_HASH {
                continue;
            }
            if labels.get(k) != Some(v) {
                return Err(invalid(
                    &path,
                    format!("{svc_name:?}"),
                    &format!("Service {svc_name:?} has unmatch label {k:?} in rollout"),
                ));
            }
        }
    }
    Ok(())
}

/// The objects the traffic routers work on exist and can carry the plan: each stable
/// Ingress has a rule for the stable Service and its canary Ingress, if any, is this
/// rollout's; each Gateway API route has backendRefs for both Services.
fn validate_router_references(ro: &Rollout, state: &State) -> Result<(), ValidationError> {
    let Some(c) = ro.spec.canary() else { return Ok(()) };
    let Some(tr) = &c.traffic_routing else { return Ok(()) };
    let p = "spec.strategy.canary.trafficRouting";
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let uid = ro.metadata.uid.as_deref().unwrap_or_default();
    if let Some(nginx) = &tr.nginx {
        let field = if nginx.stable_ingresses.is_empty() { "stableIngress" } else { "stableIngresses" };
        for stable in nginx.stable_ingress_names() {
            let path = format!("{p}.nginx.{field}");
            let Some(ingress) = state.ingresses.get(stable) else {
                return Err(invalid(&path, format!("{stable:?}"), &format!("ingress.networking.k8s.io {stable:?} not found")));
            };
            if !crate::traffic::nginx::has_rule_with_service(ingress, &c.stable_service) {
                return Err(invalid(
                    &path,
                    format!("{stable:?}"),
                    &format!("ingress `{stable}` has no rules using service {} backend", c.stable_service),
                ));
            }
            let canary = crate::traffic::nginx::canary_ingress_name(name, stable);
            if let Some(live) = state.ingresses.get(&canary) {
                let ours = live.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid);
                if !ours {
                    return Err(invalid(&path, format!("{stable:?}"), &format!("canary ingress `{canary}` controlled by different object")));
                }
            }
        }
    }
    if let Ok(Some(g)) = tr.gateway_api_config() {
        let path = if tr.gateway_api.is_some() {
            format!("{p}.gatewayAPI")
        } else {
            format!("{p}.plugins[\"{}\"]", crate::api::GATEWAY_API_PLUGIN)
        };
        let plan = crate::traffic::TrafficPlan {
            canary_service: c.canary_service.clone(),
            stable_service: c.stable_service.clone(),
            max_weight: ro.spec.max_traffic_weight(),
            managed_routes: tr.managed_routes.iter().map(|r| r.name.clone()).collect(),
            ..Default::default()
        };
        for (kind, route) in g.routes() {
            let Some(live) = state.routes.get(&crate::state::route_key(kind, &route.name)) else {
                let plural = format!("{}s", kind.as_str().to_ascii_lowercase());
                return Err(invalid(&path, format!("{:?}", route.name), &format!("{plural}.gateway.networking.k8s.io {:?} not found", route.name)));
            };
            let rules = live.pointer("/spec/rules").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
            if let Err(e) = crate::traffic::gateway_api::desired_rules(kind, &rules, &plan, route.use_header_routes) {
                return Err(invalid(&path, format!("{:?}", route.name), &e.to_string()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse::from_yaml_strict;
    use crate::api::AnalysisTemplate;

    fn rollout(strategy: &str) -> Rollout {
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
{strategy}"
        );
        from_yaml_strict(&text).expect("the test rollout decodes")
    }

    #[test]
    fn ephemeral_metadata_is_accepted_but_not_the_hash_label() {
        let rows = [
            ("canary: {canaryMetadata: {labels: {L}}}", "spec.strategy.canary.canaryMetadata"),
            ("canary: {stableMetadata: {labels: {L}}}", "spec.strategy.canary.stableMetadata"),
            ("blueGreen: {activeService: a, activeMetadata: {labels: {L}}}", "spec.strategy.blueGreen.activeMetadata"),
            (
                "blueGreen: {activeService: a, previewService: p, previewMetadata: {labels: {L}}}",
                "spec.strategy.blueGreen.previewMetadata",
            ),
        ];
        for (strategy, path) in rows {
            let with = |labels: &str| rollout(&format!("    {}", strategy.replace('L', labels)));
            assert_eq!(validate_spec(&with("role: x").spec).map_err(|e| e.to_string()), Ok(()), "{path}");
            let err = validate_spec(&with("rollouts-pod-template-hash: abc").spec).expect_err(path);
            assert_eq!(
                err.to_string(),
                format!("{path}.labels.rollouts-pod-template-hash: Invalid value: \"abc\": the pod-template hash label is the controller's own")
            );
        }
    }

    /// INV-05: a canary must be allowed to move, whether the limits are written as
    /// integers or as percentages.
    #[test]
    fn max_surge_and_max_unavailable_cannot_both_be_zero() {
        let rows = [
            ("0", "0", true),
            ("'0%'", "'0%'", true),
            ("0", "'0%'", true),
            ("'0'", "0", true),
            ("'0%'", "1", false),
            ("'25%'", "0", false),
            ("0", "'10%'", false),
        ];
        for (surge, unavailable, rejected) in rows {
            let ro = rollout(&format!("    canary: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}"));
            let result = validate_spec(&ro.spec).map_err(|e| e.to_string());
            let expected = if rejected {
                Err("spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can not be zero"
                    .to_string())
            } else {
                Ok(())
            };
            assert_eq!(result, expected, "maxSurge {surge}, maxUnavailable {unavailable}");
        }
    }

    /// Argo's `validateRolloutStrategyCanary`/`BlueGreen`: a surge or unavailability that is
    /// negative or neither an integer nor a percentage is refused, naming the field.
    #[test]
    fn negative_or_unparsable_surge_and_unavailability_are_refused() {
        let rows = [
            ("canary: {maxSurge: -1}", "spec.strategy.canary.maxSurge: Invalid value: -1: must be greater than or equal to 0"),
            ("canary: {maxUnavailable: -2}", "spec.strategy.canary.maxUnavailable: Invalid value: -2: must be greater than or equal to 0"),
            (
                "canary: {maxSurge: '-5%'}",
                "spec.strategy.canary.maxSurge: Invalid value: \"-5%\": must be an integer or a percentage such as \"25%\"",
            ),
            (
                "canary: {maxUnavailable: 'x%'}",
                "spec.strategy.canary.maxUnavailable: Invalid value: \"x%\": must be an integer or a percentage such as \"25%\"",
            ),
        ];
        for (strategy, expected) in rows {
            let ro = rollout(&format!("    {strategy}"));
            assert_eq!(validate_spec(&ro.spec).map_err(|e| e.to_string()), Err(expected.to_string()), "{strategy}");
        }
        for strategy in ["canary: {maxSurge: '25%', maxUnavailable: 0}", "canary: {maxSurge: 0, maxUnavailable: '1'}"] {
            let ro = rollout(&format!("    {strategy}"));
            assert_eq!(validate_spec(&ro.spec).map_err(|e| e.to_string()), Ok(()), "{strategy}");
        }
    }

    /// Argo's `ValidateVirtualService` reads the DestinationRule the Istio block names: a
    /// missing one is an invalid reference, named by its field.
    #[test]
    fn a_missing_istio_destination_rule_is_an_invalid_reference() {
        let ro = rollout(
            "    canary:
      canaryService: demo-canary
      stableService: demo-stable
      trafficRouting:
        istio:
          virtualService: {name: demo-vs, routes: [primary]}
          destinationRule: {name: demo-dr, canarySubsetName: canary, stableSubsetName: stable}",
        );
        assert_eq!(
            mesh::validate_references(&ro, &State::default()).map_err(|e| e.to_string()),
            Err("spec.strategy.canary.trafficRouting.istio.destinationRule.name: Invalid value: \"demo-dr\": \
                 destinationrules.networking.istio.io \"demo-dr\" not found"
                .to_string())
        );
    }

    /// Argo's test/e2e/functional/rollout-rollback-window.yaml: the argument reads a label
    /// the Rollout itself does not carry (only its pod template does), which Kubernetes
    /// resolves to "".
    #[test]
    fn a_field_ref_to_a_missing_label_is_valid() {
        let ro = rollout(
            "    canary:
      steps:
      - setWeight: 50
      - analysis:
          templates: [{templateName: sleep-job}]
          args:
          - name: rev
            valueFrom: {fieldRef: {fieldPath: \"metadata.labels['rev']\"}}",
        );
        let template: AnalysisTemplate = from_yaml_strict(
            "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: sleep-job}
spec:
  args: [{name: rev}]
  metrics:
  - name: sleep
    provider: {web: {url: \"http://example/{{args.rev}}\"}}",
        )
        .expect("the test template decodes");
        let mut state = State::default();
        state
            .analysis_templates
            .insert("sleep-job".into(), Ok(template));
        assert_eq!(validate(&ro, &state).map_err(|e| e.to_string()), Ok(()));
        assert_eq!(
            super::super::analysis::field_value(&ro, "metadata.labels['rev']")
                .ok()
                .as_deref(),
            Some("")
        );
        assert_eq!(
            super::super::analysis::field_value(&ro, "metadata.annotations['missing']")
                .ok()
                .as_deref(),
            Some("")
        );
    }
}
