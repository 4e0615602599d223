//! Traffic routing orchestration (Argo's `reconcileTrafficRouting`, rule set E): the weight
//! and routes the routers must carry out in this reconcile, `status.canary.weights`, and
//! the `TrafficWeightUpdated` event. What each router writes is in [`crate::traffic`].

use super::context::Ctx;
use crate::api::{
    RolloutTrafficRouting, SetHeaderRoute, SetMirrorRoute, StepKind, TrafficWeights, WeightDestination,
};
use crate::objects::ReplicaSetExt;
use crate::replicas;
use crate::state::{Action, WakeReason};
use crate::traffic::{
    alb, ambassador, apisix, appmesh, gateway_api, istio, nginx, smi, traefik, PingPongServices, TrafficPlan,
};

/// How long the canary keeps its weight after an update is fully promoted: the time the
/// stable Service's new selector (and its endpoints) has to reach the proxies before they
/// send it everything.
pub const STABLE_SERVICE_SETTLE: crate::time::Seconds = crate::time::Seconds(5);

/// `status.canary.stablePingPong` when the ping Service is the stable one.
pub(super) const PING: &str = "ping";
/// `status.canary.stablePingPong` when the pong Service is the stable one.
pub(super) const PONG: &str = "pong";

/// Why the routes of the plan must be removed rather than kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Routes {
    /// The header and mirror routes reached by the steps stay in force.
    InForce,
    /// Managed routes are removed (fully promoted, aborted, no available canary, full
    /// promotion).
    Removed,
}

impl Ctx<'_> {
    /// Argo's `reconcileTrafficRouting`, for every router configured, in one pass: they all
    /// get the same plan.
    pub(super) fn reconcile_traffic_routing(&mut self) {
        let Some(tr) = self.ro.spec.canary().and_then(|c| c.traffic_routing.clone()) else {
            self.new_status.canary.weights = None;
            return;
        };
        let gateway = tr.gateway_api_config().ok().flatten();
        if tr.nginx.is_none() && gateway.is_none() && tr.istio.is_none() && tr.smi.is_none() && tr.alb.is_none() && !tr.has_proxy_router() {
            self.new_status.canary.weights = None;
            return;
        }
        let max_weight = self.ro.spec.max_traffic_weight();
        let mut canary_hash = self.new_rs().map(|r| r.pod_hash().to_string()).unwrap_or_default();
        let stable_hash = self.stable_rs().map(|r| r.pod_hash().to_string()).unwrap_or_default();
        let index = self.current_step_index();
        let dynamic = self.ro.spec.canary().is_some_and(|c| c.dynamic_stable_scale);
        // Which weights carry the running Experiment's destinations (Argo adds them while
        // the canary has no pod and at the steps, not once past them).
        let (weight, routes, experiment) = if let Some(previous) = self.dynamically_rolling_back_to() {
            // Traffic goes back from the previous canary, which the weights remember.
            canary_hash = previous;
            (self.abort_or_stable_rollback_weight(), Routes::Removed, false)
        } else if self.is_fully_promoted() {
            let weights = self.ro.status.canary.weights.as_ref();
            let canary_weight = weights.map_or(0, |w| w.canary.weight);
            // The weights were last written while another ReplicaSet was the stable: the stable
            // Service has been (or is being) pointed at new pods. (Back to the stable's own
            // template, nothing of the stable moves: 0 at once.)
            let stable_moved = weights.is_some_and(|w| w.stable.pod_template_hash != stable_hash);
            if canary_weight > 0 && stable_moved {
                // Argo sets 0 in the reconcile that points the stable Service at the new
                // pods: a proxy that reads the weight before the selector (or before the
                // Service's endpoints follow it) sends everything back to the old pods for
                // a while (argoproj/argo-rollouts#1826). The canary, whose Service selects
                // the same pods, keeps its share and routing stays as it is, until the
                // selector change is written and has had STABLE_SERVICE_SETTLE to reach
                // the proxies.
                if self.switched_stable_service() {
                    return;
                }
                let promoted_at = self.ro.status.duration.as_ref().and_then(|d| d.finished_at);
                if let Some(until) = promoted_at.map(|at| at.plus(STABLE_SERVICE_SETTLE)).filter(|until| self.now < *until) {
                    self.wake_at(until, WakeReason::StableServiceSettle);
                    return;
                }
            }
            (0, Routes::Removed, false)
        } else if self.pause.is_aborted(&self.ro.status) {
            let w = self.abort_or_stable_rollback_weight();
            if !dynamic || w == 0 {
                let service = self.ro.spec.canary().map(|c| c.canary_service.clone()).unwrap_or_default();
                self.ensure_service_targets(&service, self.stable_rs.clone(), false);
            }
            (w, Routes::Removed, false)
        } else if self.new_rs().is_none_or(|r| r.available() == 0) {
            (0, Routes::Removed, true)
        } else if self.ro.status.promote_full {
            let w = if dynamic {
                let replicas = self.replicas();
                let available = self.new_rs().map_or(0, |r| r.available());
                if replicas > 0 { (i64::from(max_weight) * i64::from(available) / i64::from(replicas)) as i32 } else { 0 }
            } else {
                self.ro.status.canary.weights.as_ref().map_or(0, |w| w.canary.weight)
            };
            (w, Routes::Removed, false)
        } else if let Some(i) = index {
            let steps = self.ro.spec.steps();
            let (w, experiment) = if !self.at_desired_canary_counts() {
                // Traffic never leads pods: the previous setWeight until the canary has
                // its count for this one.
                (steps[..i.min(steps.len())].iter().rev().find_map(|s| s.set_weight).unwrap_or(0), true)
            } else if i != steps.len() {
                (replicas::current_set_weight(&self.ro.spec, &self.ro.status), true)
            } else {
                (max_weight, false)
            };
            (w, Routes::InForce, experiment)
        } else {
            (0, Routes::InForce, false)
        };
        let (additional, additional_ports) = if experiment { self.experiment_destinations() } else { Default::default() };
        // The stable must be able to take what the canary does not get.
        if !self.stable_can_take(max_weight - weight) {
            return;
        }
        let (header_routes, mirror_routes) = match routes {
            Routes::InForce if self.rollout_revision() > 1 => self.routes_in_force(&tr),
            Routes::InForce | Routes::Removed => (Vec::new(), Vec::new()),
        };
        let (canary_service, stable_service) =
            self.ro.spec.canary().map(|c| (c.canary_service.clone(), c.stable_service.clone())).unwrap_or_default();
        let plan = TrafficPlan {
            rollout: self.name().to_string(),
            rollout_uid: self.ro.metadata.uid.clone().unwrap_or_default(),
            canary_service,
            stable_service,
            weight,
            max_weight,
            max_weight_set: tr.max_traffic_weight.is_some(),
            additional,
            additional_ports,
            experiment_services: self.experiment_services(),
            header_routes,
            mirror_routes,
            managed_routes: tr.managed_routes.iter().map(|r| r.name.clone()).collect(),
            canary_hash: canary_hash.clone(),
            stable_hash: stable_hash.clone(),
            ping_pong: self.ping_pong_services(),
        };
        if let Some(cfg) = &tr.istio {
            let leaving_canary = self.pause.is_aborted(&self.ro.status) || self.dynamically_rolling_back_to().is_some();
            if istio::delayed_by(cfg, &plan, self.state.replica_sets.values().map(|rs| &**rs), leaving_canary).is_some() {
                // Argo's "delaying destination rule switch": nothing moves until the
                // ReplicaSet is fully available (its status change wakes us).
                return;
            }
        }
        if let Err(e) = self.run_routers(&tr, gateway.as_ref(), &plan) {
            // Validation refuses what a router cannot do before anything moves; an object
            // that changed since is reported, and no router writes anything.
            self.warning("TrafficRoutingError", e);
            return;
        }
        let weights = TrafficWeights {
            canary: WeightDestination {
                weight,
                service_name: plan.canary_service.clone(),
                pod_template_hash: canary_hash,
            },
            stable: WeightDestination {
                weight: plan.stable_weight(),
                service_name: plan.stable_service.clone(),
                pod_template_hash: stable_hash,
            },
            additional: plan.additional.clone(),
            // The Gateway API plugin reports every weight verified; NGINX cannot say.
            verified: gateway.as_ref().map(|_| true),
        };
        let previous = self.ro.status.canary.weights.as_ref();
        let modified = previous.is_none_or(|p| p.canary != weights.canary || p.stable != weights.stable || p.additional != weights.additional);
        if modified {
            let detail = match previous {
                None => format!("to {weight}"),
                Some(p) if p.canary.weight != weight => format!("from {} to {weight}", p.canary.weight),
                Some(_) => String::new(),
            };
            self.event("TrafficWeightUpdated", format!("Traffic weight updated {detail}").trim_end().to_string());
            self.new_status.canary.weights = Some(weights);
        } else if let Some(w) = self.new_status.canary.weights.as_mut() {
            w.verified = weights.verified;
        }
        if self.new_status.canary.weights.as_ref().is_some_and(|w| w.verified == Some(false)) {
            self.wake_at(self.now.plus(crate::time::Seconds(10)), WakeReason::TrafficVerify);
        }
    }

    /// Whether this reconcile points the stable Service at other pods.
    fn switched_stable_service(&self) -> bool {
        let Some(stable) = self.ro.spec.canary().map(|c| c.stable_service.as_str()).filter(|s| !s.is_empty()) else {
            return false;
        };
        self.actions.iter().any(|a| matches!(a, Action::SetServiceSelector { service, .. } if service == stable))
    }

    /// Every configured router carries out the plan, in a fixed order (Istio, NGINX, ALB,
    /// SMI, Ambassador, App Mesh, Traefik, APISIX, the Gateway API: Argo's order, the Gateway
    /// API
    /// being its plugin): all their actions,
    /// or none and the first failure, named after its router.
    fn run_routers(
        &mut self,
        tr: &RolloutTrafficRouting,
        gateway: Option<&crate::api::GatewayApiTrafficRouting>,
        plan: &TrafficPlan,
    ) -> Result<(), String> {
        // The routers write on a copy, kept only when every one of them succeeds.
        let mut routes = self.state.routes.clone();
        let mut ingresses = self.state.ingresses.clone();
        let mut actions = Vec::new();
        if let Some(cfg) = &tr.istio {
            // With pingPong and neither stableService nor canaryService, Istio's
            // destinations are the ping and pong Services (Argo's non-preferred lookup).
            let (stable, canary) = plan.services(false);
            let mesh_plan =
                TrafficPlan { stable_service: stable.to_string(), canary_service: canary.to_string(), ..plan.clone() };
            actions.extend(istio::reconcile(cfg, &mesh_plan, &mut routes).map_err(|e| format!("istio: {e}"))?);
        }
        if let Some(cfg) = &tr.nginx {
            let namespace = self.ro.metadata.namespace.clone();
            actions.extend(nginx::reconcile(cfg, plan, &mut ingresses, namespace).map_err(|e| format!("nginx: {e}"))?);
        }
        if let Some(cfg) = &tr.alb {
            actions.extend(alb::reconcile(cfg, plan, &mut ingresses).map_err(|e| format!("alb: {e}"))?);
        }
        if let Some(cfg) = &tr.smi {
            actions.extend(smi::reconcile(cfg, plan, &mut routes).map_err(|e| format!("smi: {e}"))?);
        }
        // Ambassador, App Mesh, Traefik, APISIX (Argo's order), then the Gateway API (a
        // plugin: last).
        let mut wake = None;
        if let Some(cfg) = &tr.ambassador {
            let out = ambassador::reconcile(cfg, plan, &mut routes, self.now).map_err(|e| format!("ambassador: {e}"))?;
            actions.extend(out.actions);
            wake = out.wake_at;
        }
        if let Some(cfg) = &tr.app_mesh {
            let namespace = self.ro.metadata.namespace.as_deref().unwrap_or_default();
            actions.extend(appmesh::reconcile(cfg, plan, &mut routes, namespace).map_err(|e| format!("appMesh: {e}"))?);
        }
        if let Some(cfg) = &tr.traefik {
            actions.extend(traefik::reconcile(cfg, plan, &mut routes).map_err(|e| format!("traefik: {e}"))?);
        }
        if let Some(cfg) = &tr.apisix {
            actions.extend(apisix::reconcile(cfg, plan, &mut routes).map_err(|e| format!("apisix: {e}"))?);
        }
        if let Some(cfg) = gateway {
            actions.extend(gateway_api::reconcile(cfg, plan, &mut routes).map_err(|e| format!("gatewayAPI: {e}"))?);
        }
        if let Some(at) = wake {
            self.wake_at(at, WakeReason::RouterCleanup);
        }
        self.state.routes = routes;
        self.state.ingresses = ingresses;
        self.actions.extend(actions);
        Ok(())
    }

    /// With `pingPong`, the ping and pong Services by role, as the status read at the start
    /// of this reconcile says (`stablePingPong` `ping`: ping is the stable; else pong).
    pub(super) fn ping_pong_services(&self) -> Option<PingPongServices> {
        let pp = self.ro.spec.canary()?.ping_pong.as_ref()?;
        let (stable, canary) = if self.ro.status.canary.stable_ping_pong == PING {
            (&pp.ping_service, &pp.pong_service)
        } else {
            (&pp.pong_service, &pp.ping_service)
        };
        Some(PingPongServices { stable: stable.clone(), canary: canary.clone() })
    }

    /// `GetCurrentCanaryStep`'s index: `None` without steps; may equal the step count.
    fn current_step_index(&self) -> Option<usize> {
        let steps = self.ro.spec.steps();
        if steps.is_empty() {
            return None;
        }
        Some(usize::try_from(self.ro.status.current_step_index.unwrap_or(0)).unwrap_or(0).min(steps.len()))
    }

    /// Argo's `IsDynamicallyRollingBackToStable`: back on the stable template with
    /// `dynamicStableScale` while the weights still send traffic to another ReplicaSet and
    /// the stable is not fully available; returns that ReplicaSet's hash.
    pub(super) fn dynamically_rolling_back_to(&self) -> Option<String> {
        let canary = self.ro.spec.canary()?;
        if !self.is_fully_promoted() || canary.traffic_routing.is_none() || !canary.dynamic_stable_scale {
            return None;
        }
        let previous = self.ro.status.canary.weights.as_ref()?.canary.pod_template_hash.clone();
        let new = self.new_rs()?;
        if previous == new.pod_hash() || new.available() >= self.replicas() {
            return None;
        }
        Some(previous)
    }

    /// Argo's `calculateDesiredWeightOnAbortOrStableRollback` (rule G.8).
    fn abort_or_stable_rollback_weight(&self) -> i32 {
        let dynamic = self.ro.spec.canary().is_some_and(|c| c.dynamic_stable_scale);
        let replicas = self.replicas();
        let Some(stable) = self.stable_rs() else { return 0 };
        if !dynamic || replicas == 0 || self.new_rs().is_none() {
            return 0;
        }
        let max = i64::from(self.ro.spec.max_traffic_weight());
        let stable_available = i64::from(stable.available());
        let desired = i64::from(replicas::desired_canary_weight(
            &self.ro.spec,
            &self.ro.status,
            self.counts(self.new_rs.as_deref()),
            self.counts(self.stable_rs.as_deref()).filter(|_| !self.stable_is_new()),
        ));
        let expected = (max - max * stable_available / i64::from(replicas)).max(0);
        let Some(current) = self.ro.status.canary.weights.as_ref().map(|w| i64::from(w.canary.weight)) else {
            return expected.max(desired) as i32;
        };
        if desired <= 0 {
            return expected.min(current) as i32;
        }
        let stable_share = max * stable_available / i64::from(replicas);
        if stable_share < max - desired {
            return current as i32;
        }
        desired.min(current) as i32
    }

    /// Argo's `checkReplicasAvailable` on the stable ReplicaSet for `stable_weight`.
    fn stable_can_take(&self, stable_weight: i32) -> bool {
        let Some(stable) = self.stable_rs() else { return false };
        let max = i64::from(self.ro.spec.max_traffic_weight());
        let needed = if max > 0 { i64::from(stable_weight) * i64::from(self.replicas()) / max } else { 0 };
        i64::from(stable.available()) >= needed
            || replicas::replica_progress_threshold_met(&self.ro.spec, self.counts(self.stable_rs.as_deref()), needed)
    }

    /// The header and mirror routes the steps reached so far put in force (a later step of
    /// the same route replaces it; one without `match` removes it), in `managedRoutes` order.
    fn routes_in_force(&self, tr: &RolloutTrafficRouting) -> (Vec<SetHeaderRoute>, Vec<SetMirrorRoute>) {
        let steps = self.ro.spec.steps();
        let reached = self.current_step_index().map_or(0, |i| (i + 1).min(steps.len()));
        let mut headers: std::collections::BTreeMap<&str, &SetHeaderRoute> = std::collections::BTreeMap::new();
        let mut mirrors: std::collections::BTreeMap<&str, &SetMirrorRoute> = std::collections::BTreeMap::new();
        for step in &steps[..reached] {
            match step.kind() {
                StepKind::SetHeaderRoute(h) => {
                    headers.insert(&h.name, h);
                }
                StepKind::SetMirrorRoute(m) => {
                    mirrors.insert(&m.name, m);
                }
                StepKind::SetWeight(_)
                | StepKind::Pause(_)
                | StepKind::Experiment(_)
                | StepKind::Analysis(_)
                | StepKind::SetCanaryScale(_)
                | StepKind::Plugin(_)
                | StepKind::Empty => {}
            }
        }
        let order = tr.managed_routes.iter().map(|r| r.name.as_str());
        let header_routes = order
            .clone()
            .filter_map(|n| headers.get(n))
            .filter(|h| h.matches.as_ref().is_some_and(|m| !m.is_empty()))
            .map(|h| (*h).clone())
            .collect();
        let mirror_routes = order
            .filter_map(|n| mirrors.get(n))
            .filter(|m| m.matches.as_ref().is_some_and(|m| !m.is_empty()))
            .map(|m| (*m).clone())
            .collect();
        (header_routes, mirror_routes)
    }
}
