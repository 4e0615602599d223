//! The objects a Rollout's spec names, so that a shell watching the cluster knows which
//! Services and templates to hand to the rollout's `State`.

use std::collections::BTreeSet;

use crate::api::{Rollout, RouteKind};

/// Names of the objects a Rollout refers to, in its namespace (or cluster-wide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Services: stable/canary and ping/pong (canary), active/preview (blue-green), and the Services of
    /// experiment templates the routers send traffic to (named by a step, or in
    /// `status.canary.weights.additional`).
    pub services: BTreeSet<String>,
    /// AnalysisTemplates named by analysis steps, background, pre/post-promotion analysis
    /// and experiment steps.
    pub templates: BTreeSet<String>,
    /// ClusterAnalysisTemplates (`clusterScope: true`).
    pub cluster_templates: BTreeSet<String>,
    /// Ingresses: the NGINX router's stable Ingresses and the canary Ingresses it writes,
    /// the ALB router's Ingresses.
    pub ingresses: BTreeSet<String>,
    /// Router objects held as raw JSON: Gateway API routes, Istio VirtualServices and the
    /// DestinationRule, the SMI TrafficSplit.
    pub routes: BTreeSet<RouteRef>,
    /// The object `workloadRef` names: (kind, name).
    pub workload: Option<(String, String)>,
}

/// A router object (see [`RouteKind`]) a Rollout names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteRef {
    /// Its kind.
    pub kind: RouteKind,
    /// Its namespace; `None` for the Rollout's own.
    pub namespace: Option<String>,
    /// Its name; empty for every object of the kind in that namespace (App Mesh's
    /// VirtualRouter, which the Rollout does not name: its VirtualService does).
    pub name: String,
}

impl RouteRef {
    /// Whether the reference covers the object of `kind` called `name` (in the reference's
    /// namespace, which the caller checks).
    pub fn covers(&self, kind: RouteKind, name: &str) -> bool {
        self.kind == kind && (self.name.is_empty() || self.name == name)
    }
}

impl References {
    fn template(&mut self, name: &str, cluster_scope: bool) {
        if name.is_empty() {
            return;
        }
        let set = if cluster_scope { &mut self.cluster_templates } else { &mut self.templates };
        set.insert(name.to_string());
    }

    fn service(&mut self, name: &str) {
        if !name.is_empty() {
            self.services.insert(name.to_string());
        }
    }
}

/// The Services and analysis templates `ro`'s spec names. Templates that templates name
/// (`spec.templates`) are not followed: they are known only once the first is read.
pub fn references(ro: &Rollout) -> References {
    let mut refs = References::default();
    if let Some(w) = ro.spec.workload_ref.as_ref().filter(|w| !w.name.is_empty()) {
        refs.workload = Some((w.kind.clone(), w.name.clone()));
    }
    if let Some(bg) = ro.spec.blue_green() {
        refs.service(&bg.active_service);
        refs.service(&bg.preview_service);
        for analysis in [&bg.pre_promotion_analysis, &bg.post_promotion_analysis].into_iter().flatten() {
            analysis.templates.iter().for_each(|t| refs.template(&t.template_name, t.cluster_scope));
        }
    }
    if let Some(c) = ro.spec.canary() {
        refs.service(&c.stable_service);
        refs.service(&c.canary_service);
        if let Some(pp) = &c.ping_pong {
            refs.service(&pp.ping_service);
            refs.service(&pp.pong_service);
        }
        if let Some(analysis) = &c.analysis {
            analysis.templates.iter().for_each(|t| refs.template(&t.template_name, t.cluster_scope));
        }
        if let Some(tr) = &c.traffic_routing {
            if let Some(nginx) = &tr.nginx {
                let rollout = ro.metadata.name.as_deref().unwrap_or_default();
                for stable in nginx.stable_ingress_names().into_iter().filter(|n| !n.is_empty()) {
                    refs.ingresses.insert(stable.to_string());
                    refs.ingresses.insert(crate::traffic::nginx::canary_ingress_name(rollout, stable));
                }
            }
            if let Some(alb) = &tr.alb {
                refs.ingresses.extend(alb.ingress_names().into_iter().filter(|n| !n.is_empty()).map(str::to_string));
            }
            if let Some(istio) = &tr.istio {
                for vs in istio.all_virtual_services() {
                    let (namespace, name) = crate::api::virtual_service_namespace_name(&vs.name);
                    refs.routes.insert(RouteRef { kind: RouteKind::VirtualService, namespace, name });
                }
                if let Some(rule) = istio.destination_rule.as_ref().filter(|r| !r.name.is_empty()) {
                    refs.routes.insert(RouteRef { kind: RouteKind::DestinationRule, namespace: None, name: rule.name.clone() });
                }
            }
            if let Some(smi) = &tr.smi {
                let rollout = ro.metadata.name.as_deref().unwrap_or_default();
                let name = smi.split_name(rollout).to_string();
                refs.routes.insert(RouteRef { kind: RouteKind::TrafficSplit, namespace: None, name });
            }
            if let Some(t) = &tr.traefik {
                let name = t.weighted_traefik_service_name.clone();
                refs.routes.insert(RouteRef { kind: RouteKind::TraefikService, namespace: None, name });
            }
            if let Some(a) = &tr.ambassador {
                for m in &a.mappings {
                    refs.routes.insert(RouteRef { kind: RouteKind::Mapping, namespace: None, name: m.clone() });
                    let name = crate::traffic::ambassador::canary_mapping_name(m);
                    refs.routes.insert(RouteRef { kind: RouteKind::Mapping, namespace: None, name });
                }
            }
            if let Some(route) = tr.apisix.as_ref().and_then(|a| a.route.as_ref()) {
                refs.routes.insert(RouteRef { kind: RouteKind::ApisixRoute, namespace: None, name: route.name.clone() });
                // The header routes it creates, one per managed route.
                for m in &tr.managed_routes {
                    refs.routes.insert(RouteRef { kind: RouteKind::ApisixRoute, namespace: None, name: m.name.clone() });
                }
            }
            if let Some(m) = &tr.app_mesh {
                if let Some(vs) = &m.virtual_service {
                    let name = vs.name.clone();
                    refs.routes.insert(RouteRef { kind: RouteKind::AppMeshVirtualService, namespace: None, name });
                }
                // The VirtualRouter is the one the VirtualService names: any in the namespace.
                refs.routes.insert(RouteRef { kind: RouteKind::VirtualRouter, namespace: None, name: String::new() });
                let group = m.virtual_node_group.as_ref();
                for node in group.into_iter().flat_map(|g| [&g.canary_virtual_node_ref, &g.stable_virtual_node_ref]).flatten() {
                    refs.routes.insert(RouteRef { kind: RouteKind::VirtualNode, namespace: None, name: node.name.clone() });
                }
            }
            if let Ok(Some(gateway)) = tr.gateway_api_config() {
                let namespace = Some(gateway.namespace.clone()).filter(|n| !n.is_empty());
                for (kind, route) in gateway.routes() {
                    refs.routes.insert(RouteRef { kind, namespace: namespace.clone(), name: route.name });
                }
            }
        }
        for step in &c.steps {
            if let Some(analysis) = &step.analysis {
                analysis.templates.iter().for_each(|t| refs.template(&t.template_name, t.cluster_scope));
            }
            if let Some(experiment) = &step.experiment {
                experiment.analyses.iter().for_each(|a| refs.template(&a.template_name, a.cluster_scope));
                experiment.templates.iter().filter_map(|t| t.service.as_ref()).for_each(|s| refs.service(&s.name));
            }
        }
        // A template Service named after its ReplicaSet is known once the weights name it.
        for d in ro.status.canary.weights.iter().flat_map(|w| w.additional.iter()) {
            refs.service(&d.service_name);
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::lenient::rollout_lenient;
    use serde_json::json;

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_canary_names_its_services_and_every_analysis_template() {
        let ro = rollout_lenient(&json!({"metadata": {"name": "r"}, "spec": {"strategy": {"canary": {
            "stableService": "stable", "canaryService": "canary",
            "analysis": {"templates": [{"templateName": "bg"}, {"templateName": "global", "clusterScope": true}]},
            "steps": [
                {"setWeight": 20},
                {"analysis": {"templates": [{"templateName": "step"}]}},
                {"experiment": {"templates": [{"name": "c", "specRef": "canary"}], "analyses": [{"name": "a", "templateName": "exp"}]}}
            ]
        }}}}))
        .rollout;
        let refs = references(&ro);
        assert_eq!(names(&refs.services), ["canary", "stable"]);
        assert_eq!(names(&refs.templates), ["bg", "exp", "step"]);
        assert_eq!(names(&refs.cluster_templates), ["global"]);
    }

    #[test]
    fn a_canary_names_the_services_of_its_experiment_templates() {
        let ro = rollout_lenient(&json!({"metadata": {"name": "r"}, "spec": {"strategy": {"canary": {
            "stableService": "stable", "canaryService": "canary",
            "steps": [{"experiment": {"templates": [
                {"name": "a", "specRef": "canary", "service": {"name": "named"}},
                {"name": "b", "specRef": "stable", "service": {}},
                {"name": "c", "specRef": "stable", "weight": 5}
            ]}}]
        }}}, "status": {"canary": {"weights": {
            "canary": {"weight": 10, "serviceName": "canary", "podTemplateHash": "h2"},
            "stable": {"weight": 85, "serviceName": "stable", "podTemplateHash": "h1"},
            "additional": [{"weight": 5, "serviceName": "r-h2-2-0-c-h3", "podTemplateHash": "h3"}]
        }}}}))
        .rollout;
        let refs = references(&ro);
        assert_eq!(names(&refs.services), ["canary", "named", "r-h2-2-0-c-h3", "stable"]);
    }

    #[test]
    fn a_blue_green_names_active_preview_and_promotion_analyses() {
        let ro = rollout_lenient(&json!({"metadata": {"name": "r"}, "spec": {"strategy": {"blueGreen": {
            "activeService": "active", "previewService": "",
            "prePromotionAnalysis": {"templates": [{"templateName": "pre"}]},
            "postPromotionAnalysis": {"templates": [{"templateName": "post", "clusterScope": true}]}
        }}}}))
        .rollout;
        let refs = references(&ro);
        assert_eq!(names(&refs.services), ["active"]);
        assert_eq!(names(&refs.templates), ["pre"]);
        assert_eq!(names(&refs.cluster_templates), ["post"]);
    }
}
