//! The simulated cluster's traffic-router objects: Ingresses (`networking.k8s.io/v1`), Gateway
//! API routes (HTTPRoute, GRPCRoute, TCPRoute), Istio VirtualServices and DestinationRules
//! and SMI TrafficSplits, stored as an API server stores
//! them, shown to the controllers of the Rollouts that name them (like the controller's
//! watches: [`crate::rollout::references`]), and written by the controllers' actions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{json, Value};

use super::cluster::Cluster;
use crate::api::merge::merge_patch;
use crate::api::RouteKind;
use crate::objects::to_kube_time;
use crate::rollout::References;
use crate::state::{Action, Event, Object, ObjectKind};

/// The key of a stored route: (kind, namespace, name).
pub type RouteId = (String, String, String);

/// An action the API server refused, with its message.
pub(super) type Refused = Box<(Action, String)>;

/// What a Rollout manifest names (nothing when its spec does not decode).
pub(super) fn references_of(obj: &Value) -> References {
    let (ro, error) = crate::rollout::decode_rollout(obj);
    if error.is_some() {
        return References::default();
    }
    crate::rollout::references(&ro)
}

/// The resource name the API server uses in its messages (`ingresses.networking.k8s.io`).
fn resource_of(kind: &str) -> String {
    match kind {
        "Ingress" => "ingresses.networking.k8s.io".into(),
        "HTTPRoute" => "httproutes.gateway.networking.k8s.io".into(),
        "GRPCRoute" => "grpcroutes.gateway.networking.k8s.io".into(),
        "TCPRoute" => "tcproutes.gateway.networking.k8s.io".into(),
        "VirtualService" | "DestinationRule" => format!("{}s.networking.istio.io", kind.to_lowercase()),
        "TrafficSplit" => "trafficsplits.split.smi-spec.io".into(),
        "TraefikService" => "traefikservices.traefik.io".into(),
        "Mapping" => "mappings.getambassador.io".into(),
        "ApisixRoute" => "apisixroutes.apisix.apache.org".into(),
        "AppMeshVirtualService" => "virtualservices.appmesh.k8s.aws".into(),
        "VirtualRouter" | "VirtualNode" => format!("{}s.appmesh.k8s.aws", kind.to_lowercase()),
        "Rollout" | "AnalysisTemplate" | "ClusterAnalysisTemplate" | "AnalysisRun" | "Experiment" => {
            format!("{}s.argoproj.io", kind.to_lowercase())
        }
        other => format!("{}s", other.to_lowercase()),
    }
}

pub(super) fn not_found(kind: &str, name: &str) -> String {
    format!("{} \"{name}\" not found", resource_of(kind))
}

fn already_exists(kind: &str, name: &str) -> String {
    format!("{} \"{name}\" already exists", resource_of(kind))
}

impl Cluster {
    /// The namespace of rollout `name` (the cluster's when it has none).
    fn namespace_of_rollout(&self, name: &str) -> String {
        self.rollouts
            .get(name)
            .and_then(|r| r.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .unwrap_or(&self.namespace)
            .to_string()
    }

    /// The rollouts whose spec names Ingress `name`.
    fn rollouts_naming_ingress(&self, name: &str) -> Vec<String> {
        self.refs.iter().filter(|(_, r)| r.ingresses.contains(name)).map(|(n, _)| n.clone()).collect()
    }

    /// The rollouts whose spec names the route `id`.
    fn rollouts_naming_route(&self, id: &RouteId) -> Vec<String> {
        let (kind, namespace, name) = id;
        self.refs
            .iter()
            .filter(|(rollout, refs)| {
                refs.routes.iter().any(|r| {
                    r.kind.key_name() == kind
                        && (r.name.is_empty() || &r.name == name)
                        && r.namespace.clone().unwrap_or_else(|| self.namespace_of_rollout(rollout)) == *namespace
                })
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Shows Ingress `name` to the controllers that watch it.
    pub(super) fn emit_ingress(&mut self, name: &str) {
        let Some(ing) = self.ingresses.get(name).cloned() else { return };
        for r in self.rollouts_naming_ingress(name) {
            self.emit(&r, Event::Applied(Object::Ingress(Box::new(ing.clone()))));
        }
    }

    /// Shows the route `id` to the controllers that watch it.
    pub(super) fn emit_route(&mut self, id: &RouteId) {
        let Some(route) = self.routes.get(id).cloned() else { return };
        for r in self.rollouts_naming_route(id) {
            self.emit(&r, Event::Applied(Object::Route(route.clone())));
        }
    }

    /// Tells the controllers that watch it that an Ingress is gone.
    fn emit_ingress_deleted(&mut self, name: &str, watchers: Vec<String>) {
        for r in watchers {
            self.emit(&r, Event::Deleted { kind: ObjectKind::Ingress, name: name.to_string() });
        }
    }

    /// Every Ingress and route rollout `rollout` names, as watch events (a controller
    /// starts watching them, or its Rollout now names others).
    pub(super) fn emit_router_objects_to(&mut self, rollout: &str) {
        let objects = self.router_objects_of(rollout).into_iter().chain(self.workload_objects_of(rollout));
        for event in objects.collect::<Vec<_>>().into_iter().map(Event::Applied) {
            self.emit(rollout, event);
        }
    }

    /// The Ingresses and routes rollout `rollout` names, as the cluster holds them.
    pub(super) fn router_objects_of(&self, rollout: &str) -> Vec<Object> {
        let Some(refs) = self.refs.get(rollout) else { return Vec::new() };
        let namespace = self.namespace_of_rollout(rollout);
        let mut out = Vec::new();
        for name in &refs.ingresses {
            if let Some(ing) = self.ingresses.get(name) {
                out.push(Object::Ingress(Box::new(ing.clone())));
            }
        }
        for r in &refs.routes {
            let ns = r.namespace.clone().unwrap_or_else(|| namespace.clone());
            // A reference without a name covers every object of its kind there.
            let covered = self.routes.iter().filter(|((k, n, name), _)| k == r.kind.key_name() && *n == ns && (r.name.is_empty() || *name == r.name));
            out.extend(covered.map(|(_, route)| Object::Route(route.clone())));
        }
        out
    }

    /// Creates or replaces an Ingress from a manifest (`objects:` or `apply:`).
    pub(super) fn apply_ingress(&mut self, obj: Value) -> Result<(), String> {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut ing: Ingress = serde_json::from_value(obj).map_err(|e| format!("Ingress {name}: {e}"))?;
        match self.ingresses.get(&name) {
            Some(old) => {
                ing.metadata.uid.clone_from(&old.metadata.uid);
                ing.metadata.creation_timestamp.clone_from(&old.metadata.creation_timestamp);
                let generation = old.metadata.generation.unwrap_or(1);
                ing.metadata.generation = Some(if old.spec == ing.spec { generation } else { generation + 1 });
            }
            None => self.stamp_ingress(&mut ing, &name),
        }
        self.ingresses.insert(name.clone(), ing);
        self.emit_ingress(&name);
        Ok(())
    }

    /// Creates or replaces a Gateway API route from a manifest.
    pub(super) fn apply_route(&mut self, mut obj: Value) {
        let id = route_id(&obj, &self.namespace);
        let old = self.routes.get(&id);
        let stamp = match old {
            Some(old) => {
                let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                let changed = old.get("spec") != obj.get("spec");
                json!({
                    "uid": old.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                    "creationTimestamp": old.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null),
                    "generation": if changed { generation + 1 } else { generation },
                })
            }
            None => json!({
                "uid": format!("uid-{}-{}", id.0.to_lowercase(), id.2),
                "creationTimestamp": self.now.to_rfc3339(),
                "generation": 1,
            }),
        };
        if let (Some(meta), Some(stamp)) = (obj.get_mut("metadata").and_then(Value::as_object_mut), stamp.as_object()) {
            for (k, v) in stamp {
                meta.insert(k.clone(), v.clone());
            }
        }
        self.routes.insert(id.clone(), obj);
        self.emit_route(&id);
    }

    /// What an API server adds to an Ingress it creates.
    fn stamp_ingress(&self, ing: &mut Ingress, name: &str) {
        ing.metadata.uid = Some(format!("uid-ingress-{name}"));
        ing.metadata.creation_timestamp = Some(to_kube_time(self.now));
        ing.metadata.generation = Some(1);
        if ing.metadata.namespace.is_none() {
            ing.metadata.namespace = Some(self.namespace.clone());
        }
    }

    /// Carries out a traffic-router action of the controller of `rollout`: whether it
    /// changed anything, or the action back with the API server's error.
    pub(super) fn execute_router(&mut self, rollout: &str, action: Action) -> Result<bool, Refused> {
        match action {
            Action::CreateIngress { ingress } => {
                let name = ingress.metadata.name.clone().unwrap_or_default();
                if self.ingresses.contains_key(&name) {
                    return Err(Box::new((Action::CreateIngress { ingress }, already_exists("Ingress", &name))));
                }
                let mut ing = *ingress;
                self.stamp_ingress(&mut ing, &name);
                self.ingresses.insert(name.clone(), ing);
                self.emit_ingress(&name);
                Ok(true)
            }
            Action::PatchIngress { name, patch } => {
                let Some(live) = self.ingresses.get(&name) else {
                    let error = not_found("Ingress", &name);
                    return Err(Box::new((Action::PatchIngress { name, patch }, error)));
                };
                let mut v = serde_json::to_value(live).unwrap_or(Value::Null);
                merge_patch(&mut v, &patch);
                let mut ing: Ingress = match serde_json::from_value(v) {
                    Ok(ing) => ing,
                    Err(e) => {
                        let error = format!("Ingress.networking.k8s.io \"{name}\" is invalid: {e}");
                        return Err(Box::new((Action::PatchIngress { name, patch }, error)));
                    }
                };
                if ing == *live {
                    return Ok(false);
                }
                if ing.spec != live.spec {
                    ing.metadata.generation = Some(live.metadata.generation.unwrap_or(1) + 1);
                }
                self.ingresses.insert(name.clone(), ing);
                self.emit_ingress(&name);
                Ok(true)
            }
            Action::CreateRoute { kind, object } => {
                let mut obj = object.clone();
                if obj.pointer("/metadata/namespace").is_none() {
                    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("namespace".into(), json!(self.namespace_of_rollout(rollout)));
                    }
                }
                let id = route_id(&obj, &self.namespace);
                if self.routes.contains_key(&id) {
                    let error = already_exists(kind.key_name(), &id.2);
                    return Err(Box::new((Action::CreateRoute { kind, object }, error)));
                }
                self.apply_route(obj);
                Ok(true)
            }
            Action::PatchRoute { kind, namespace, name, patch } => {
                let ns = namespace.clone().unwrap_or_else(|| self.namespace_of_rollout(rollout));
                let id = (kind.key_name().to_string(), ns, name.clone());
                let Some(live) = self.routes.get_mut(&id) else {
                    let error = not_found(kind.key_name(), &name);
                    return Err(Box::new((Action::PatchRoute { kind, namespace, name, patch }, error)));
                };
                let before = live.clone();
                merge_patch(live, &patch);
                drop_empty_metadata_maps(live);
                if *live == before {
                    return Ok(false);
                }
                if live.get("spec") != before.get("spec") {
                    let generation = before.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("generation".into(), json!(generation + 1));
                    }
                }
                self.emit_route(&id);
                Ok(true)
            }
            Action::DeleteRoute { kind, namespace, name } => {
                let ns = namespace.unwrap_or_else(|| self.namespace_of_rollout(rollout));
                let id = (kind.key_name().to_string(), ns, name.clone());
                let watchers = self.rollouts_naming_route(&id);
                if self.routes.remove(&id).is_none() {
                    return Ok(false);
                }
                for r in watchers {
                    self.emit(&r, Event::Deleted { kind: ObjectKind::from(kind), name: name.clone() });
                }
                Ok(true)
            }
            other @ (Action::CreateReplicaSet { .. }
            | Action::PatchReplicaSet { .. }
            | Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::CreateService { .. }
            | Action::DeleteService { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
            | Action::CreateAnalysisRun { .. }
            | Action::PatchAnalysisRun { .. }
            | Action::DeleteAnalysisRun { .. }
            | Action::Measure { .. }
            | Action::CreateJob { .. }
            | Action::DeleteJob { .. }
            | Action::ScaleDeployment { .. }
            | Action::CreateExperiment { .. }
            | Action::PatchExperiment { .. }
            | Action::DeleteExperiment { .. }
            | Action::RecordEvent { .. }
            | Action::WakeAt { .. }) => Err(Box::new((other, "not a traffic-router action".into()))),
        }
    }

    /// Reports a refused action to the controller of `rollout` the way the controller's
    /// executor does: the failure, then what the failed and the skipped actions were about
    /// as the cluster holds it (or its deletion), then the Rollout.
    pub(super) fn action_failed(&mut self, rollout: &str, action: Action, error: String, skipped: &[Action]) {
        let mut targets: Vec<(ObjectKind, String, Option<String>)> = Vec::new();
        for a in std::iter::once(&action).chain(skipped) {
            let target = match a {
                Action::CreateIngress { ingress } => {
                    Some((ObjectKind::Ingress, ingress.metadata.name.clone().unwrap_or_default(), None))
                }
                Action::PatchIngress { name, .. } => Some((ObjectKind::Ingress, name.clone(), None)),
                Action::PatchRoute { kind, namespace, name, .. } | Action::DeleteRoute { kind, namespace, name } => {
                    Some((ObjectKind::from(*kind), name.clone(), namespace.clone()))
                }
                Action::CreateRoute { kind, object } => Some((
                    ObjectKind::from(*kind),
                    object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    object.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
                )),
                Action::CreateReplicaSet { replica_set } => {
                    Some((ObjectKind::ReplicaSet, replica_set.metadata.name.clone().unwrap_or_default(), None))
                }
                Action::PatchReplicaSet { name, .. } | Action::DeleteReplicaSet { name } => {
                    Some((ObjectKind::ReplicaSet, name.clone(), None))
                }
                Action::SetServiceSelector { service, .. } => Some((ObjectKind::Service, service.clone(), None)),
                Action::CreateService { service } => {
                    Some((ObjectKind::Service, service.metadata.name.clone().unwrap_or_default(), None))
                }
                Action::DeleteService { name } => Some((ObjectKind::Service, name.clone(), None)),
                Action::CreateExperiment { experiment } => {
                    Some((ObjectKind::Experiment, experiment.metadata.name.clone().unwrap_or_default(), None))
                }
                Action::PatchExperiment { name, .. } | Action::DeleteExperiment { name } => {
                    Some((ObjectKind::Experiment, name.clone(), None))
                }
                Action::CreateAnalysisRun { .. }
                | Action::PatchAnalysisRun { .. }
                | Action::DeleteAnalysisRun { .. }
                | Action::Measure { .. }
                | Action::CreateJob { .. }
                | Action::DeleteJob { .. }
                | Action::PatchRolloutStatus { .. }
                | Action::PatchRollout { .. }
                | Action::EvictPod { .. }
                | Action::PatchPodMetadata { .. }
                | Action::RecordEvent { .. }
                | Action::WakeAt { .. } => None,
                Action::ScaleDeployment { name, .. } => Some((ObjectKind::Deployment, name.clone(), None)),
            };
            if let Some(t) = target.filter(|t| !targets.contains(t)) {
                targets.push(t);
            }
        }
        self.emit(rollout, Event::ActionFailed { action: Box::new(action), error });
        let namespace = self.namespace_of_rollout(rollout);
        for (kind, name, ns) in targets {
            let event = match kind {
                ObjectKind::Ingress => self.ingresses.get(&name).map(|i| Event::Applied(Object::Ingress(Box::new(i.clone())))),
                ObjectKind::HttpRoute
                | ObjectKind::GrpcRoute
                | ObjectKind::TcpRoute
                | ObjectKind::VirtualService
                | ObjectKind::DestinationRule
                | ObjectKind::TrafficSplit
                | ObjectKind::TraefikService
                | ObjectKind::Mapping
                | ObjectKind::ApisixRoute
                | ObjectKind::AppMeshVirtualService
                | ObjectKind::VirtualRouter
                | ObjectKind::VirtualNode => {
                    let kind_name = kind.route_kind().map(RouteKind::key_name).unwrap_or_default().to_string();
                    let id = (kind_name, ns.unwrap_or_else(|| namespace.clone()), name.clone());
                    self.routes.get(&id).map(|r| Event::Applied(Object::Route(r.clone())))
                }
                ObjectKind::ReplicaSet => {
                    self.replica_sets.get(&name).map(|rs| Event::Applied(Object::ReplicaSet(Arc::new(rs.clone()))))
                }
                ObjectKind::Service => self.services.get(&name).map(|s| Event::Applied(Object::Service(Arc::new(s.clone())))),
                ObjectKind::Deployment | ObjectKind::PodTemplate => {
                    let kind_name = if kind == ObjectKind::Deployment { "Deployment" } else { "PodTemplate" };
                    self.others.get(&(kind_name.to_string(), name.clone())).map(|v| Event::Applied(Object::Workload(v.clone())))
                }
                ObjectKind::Experiment => self.experiments.get(&name).map(|ex| Event::Applied(Self::experiment_object(ex))),
                ObjectKind::Rollout
                | ObjectKind::Pod
                | ObjectKind::AnalysisRun
                | ObjectKind::AnalysisTemplate
                | ObjectKind::ClusterAnalysisTemplate
                | ObjectKind::Job => continue,
            };
            self.emit(rollout, event.unwrap_or(Event::Deleted { kind, name }));
        }
        if let Some(v) = self.rollouts.get(rollout).cloned() {
            self.emit(rollout, Event::Applied(Object::Rollout(v)));
        }
    }

    /// Deletes an object as `kubectl delete` would (a scenario's `delete:` event). A Rollout
    /// takes with it what it owns (the garbage collector follows owner references): its
    /// ReplicaSets and their pods, its AnalysisRuns and their Jobs, its canary Ingresses,
    /// its Experiments; an Experiment its ReplicaSets, Services and AnalysisRuns.
    pub fn delete_object(&mut self, kind: &str, name: &str) -> Result<(), String> {
        match kind {
            "Rollout" => {
                if self.rollouts.remove(name).is_none() {
                    return Err(not_found(kind, name));
                }
                self.refs.remove(name);
                let owned: Vec<String> = self.replica_sets_of(name).map(|(n, _)| n.clone()).collect();
                for rs in owned {
                    self.replica_sets.remove(&rs);
                    self.delete_pods_of(name, &rs);
                }
                self.forget_owned(name);
                let runs: Vec<String> = self
                    .analysis_runs
                    .iter()
                    .filter(|(_, r)| owned_by(r.pointer("/metadata/ownerReferences"), "Rollout", name))
                    .map(|(n, _)| n.clone())
                    .collect();
                for run in &runs {
                    self.analysis_runs.remove(run);
                }
                self.jobs.retain(|_, j| {
                    !j.job.metadata.owner_references.iter().flatten().any(|o| o.kind == "AnalysisRun" && runs.contains(&o.name))
                });
                let experiments: Vec<String> = self.experiments_of(name).filter_map(|e| e.metadata.name.clone()).collect();
                for experiment in experiments {
                    self.delete_experiment(&experiment);
                }
                let ingresses: Vec<String> = self
                    .ingresses
                    .iter()
                    .filter(|(_, i)| i.metadata.owner_references.iter().flatten().any(|o| o.kind == "Rollout" && o.name == name))
                    .map(|(n, _)| n.clone())
                    .collect();
                for ing in ingresses {
                    self.delete_object("Ingress", &ing)?;
                }
                // And the router objects it owns (its TrafficSplit).
                let owned_routes: Vec<RouteId> = self
                    .routes
                    .iter()
                    .filter(|(_, r)| owned_by(r.pointer("/metadata/ownerReferences"), "Rollout", name))
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in owned_routes {
                    self.routes.remove(&id);
                }
                // Its controller stops: what was queued for it is dropped.
                self.outbox.remove(name);
                self.emit(name, Event::Deleted { kind: ObjectKind::Rollout, name: name.to_string() });
                Ok(())
            }
            "Ingress" => {
                let watchers = self.rollouts_naming_ingress(name);
                if self.ingresses.remove(name).is_none() {
                    return Err(not_found(kind, name));
                }
                self.emit_ingress_deleted(name, watchers);
                Ok(())
            }
            k if RouteKind::from_kind(k).is_some() => {
                // By the objects' own kind (App Mesh's VirtualService is stored apart from
                // Istio's, and both answer to `VirtualService`).
                let (id, route_kind) = self
                    .routes
                    .iter()
                    .find(|((_, _, n), r)| n == name && r.get("kind").and_then(Value::as_str) == Some(kind))
                    .map(|(id, r)| (id.clone(), RouteKind::of_object(r)))
                    .ok_or_else(|| not_found(kind, name))?;
                let watchers = self.rollouts_naming_route(&id);
                self.routes.remove(&id);
                let kind = route_kind.or_else(|| RouteKind::from_kind(kind)).map_or(ObjectKind::HttpRoute, ObjectKind::from);
                for r in watchers {
                    self.emit(&r, Event::Deleted { kind, name: name.to_string() });
                }
                Ok(())
            }
            "Service" => {
                if self.services.remove(name).is_none() {
                    return Err(not_found(kind, name));
                }
                let names: Vec<String> = self.rollouts.keys().cloned().collect();
                for r in names {
                    self.emit(&r, Event::Deleted { kind: ObjectKind::Service, name: name.to_string() });
                }
                Ok(())
            }
            "Experiment" => {
                if !self.delete_experiment(name) {
                    return Err(not_found(kind, name));
                }
                Ok(())
            }
            "AnalysisTemplate" | "ClusterAnalysisTemplate" => {
                if self.templates.remove(&(kind.to_string(), name.to_string())).is_none() {
                    return Err(not_found(kind, name));
                }
                let object_kind =
                    if kind == "AnalysisTemplate" { ObjectKind::AnalysisTemplate } else { ObjectKind::ClusterAnalysisTemplate };
                let names: Vec<String> = self.rollouts.keys().cloned().collect();
                for r in names {
                    self.emit(&r, Event::Deleted { kind: object_kind, name: name.to_string() });
                }
                Ok(())
            }
            _ => match self.others.remove(&(kind.to_string(), name.to_string())) {
                Some(_) => Ok(()),
                None => Err(not_found(kind, name)),
            },
        }
    }

    /// Every object the cluster holds but Pods (and Events, which it does not keep), as
    /// `"Kind/namespace/name"` → the object (cluster-scoped kinds: `"Kind//name"`). The
    /// pods of a rollout with ephemeral metadata are the exception: they are shown, since
    /// their labels and annotations are what that rollout changes.
    pub fn object_map(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let ns_of = |v: &Value| v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(&self.namespace).to_string();
        let mut put = |kind: &str, v: Value| {
            let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            let namespace = if kind == "ClusterAnalysisTemplate" { String::new() } else { ns_of(&v) };
            out.insert(format!("{kind}/{namespace}/{name}"), sorted(v));
        };
        for r in self.rollouts.values() {
            put("Rollout", Arc::unwrap_or_clone(r.clone()));
        }
        for rs in self.replica_sets.values() {
            put("ReplicaSet", with_kind(serde_json::to_value(rs), "apps/v1", "ReplicaSet"));
        }
        for svc in self.services.values() {
            put("Service", with_kind(serde_json::to_value(svc), "v1", "Service"));
        }
        for ing in self.ingresses.values() {
            put("Ingress", with_kind(serde_json::to_value(ing), "networking.k8s.io/v1", "Ingress"));
        }
        // By the object's own kind (App Mesh's VirtualService as `VirtualService/...`).
        for ((kind, _, _), route) in &self.routes {
            put(route.get("kind").and_then(Value::as_str).unwrap_or(kind), route.clone());
        }
        for ((kind, _), t) in &self.templates {
            put(kind, t.clone());
        }
        for run in self.analysis_runs.values() {
            put("AnalysisRun", with_kind(Ok(run.clone()), "argoproj.io/v1alpha1", "AnalysisRun"));
        }
        for ex in self.experiments.values() {
            put("Experiment", with_kind(serde_json::to_value(ex), "argoproj.io/v1alpha1", "Experiment"));
        }
        for j in self.jobs.values() {
            put("Job", with_kind(serde_json::to_value(&j.job), "batch/v1", "Job"));
        }
        for pod in self.ephemeral_metadata_pods() {
            put("Pod", with_kind(serde_json::to_value(pod), "v1", "Pod"));
        }
        for ((kind, _), v) in &self.others {
            if kind != "Pod" && kind != "Event" {
                put(kind, v.clone());
            }
        }
        out
    }
}

/// The `apiVersion` and `kind` an API server returns with an object (typed objects
/// serialize without them).
fn with_kind(v: Result<Value, serde_json::Error>, api_version: &str, kind: &str) -> Value {
    let mut v = v.unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), json!(api_version));
        o.insert("kind".into(), json!(kind));
    }
    v
}

/// An API server stores no empty `labels` or `annotations` (they are `omitempty`): a
/// patch that removes the last one leaves none.
fn drop_empty_metadata_maps(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["labels", "annotations"] {
            if meta.get(key).is_some_and(|v| v.as_object().is_some_and(serde_json::Map::is_empty) || v.is_null()) {
                meta.remove(key);
            }
        }
    }
}

/// `v` with the keys of every map in sorted order (the stored JSON keeps the order it
/// was written in).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => other,
    }
}

/// Whether owner references (JSON) name an owner of `kind` called `name`.
fn owned_by(refs: Option<&Value>, kind: &str, name: &str) -> bool {
    refs.and_then(Value::as_array).into_iter().flatten().any(|o| {
        o.get("kind").and_then(Value::as_str) == Some(kind) && o.get("name").and_then(Value::as_str) == Some(name)
    })
}

/// The key of a route manifest.
pub(super) fn route_id(obj: &Value, default_namespace: &str) -> RouteId {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
    (
        RouteKind::of_object(obj).map(|k| k.key_name().to_string()).or_else(|| s("/kind")).unwrap_or_default(),
        s("/metadata/namespace").unwrap_or_else(|| default_namespace.to_string()),
        s("/metadata/name").unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::{parse_scenario, ClusterSpec};
    use crate::sim::{simulate, SIMULATION_EPOCH};

    fn cluster() -> Cluster {
        Cluster::new(SIMULATION_EPOCH, ClusterSpec::default(), BTreeMap::new())
    }

    fn rollout(router: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
                "strategy": {"canary": {"stableService": "web-stable", "canaryService": "web-canary", "trafficRouting": router}}
            }
        })
    }

    fn ingress(name: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
               "spec": {"rules": [{"host": "web", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}}]}}]}})
    }

    fn route(kind: &str, namespace: &str, name: &str) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace},
               "spec": {"rules": [{"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]}]}})
    }

    fn kinds(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Applied(Object::Ingress(i)) => format!("Ingress {}", i.metadata.name.clone().unwrap_or_default()),
                Event::Applied(Object::Route(r)) => format!(
                    "{} {}/{}",
                    r["kind"].as_str().unwrap_or_default(),
                    r["metadata"]["namespace"].as_str().unwrap_or_default(),
                    r["metadata"]["name"].as_str().unwrap_or_default()
                ),
                Event::Applied(Object::Rollout(_)) => "Rollout".into(),
                Event::Applied(_) => "other".into(),
                Event::Deleted { kind, name } => format!("Deleted {kind:?} {name}"),
                Event::ActionFailed { error, .. } => format!("Failed: {error}"),
                Event::Tick | Event::Resync | Event::Measured { .. } => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_rollout_is_shown_the_ingresses_and_routes_it_names_and_no_others() {
        let mut c = cluster();
        c.apply_manifest(ingress("web-ingress")).unwrap();
        c.apply_manifest(ingress("unrelated")).unwrap();
        c.apply_manifest(route("HTTPRoute", "gw", "web-route")).unwrap();
        // Same name, other namespace: not the one the Rollout names.
        c.apply_manifest(route("HTTPRoute", "default", "web-route")).unwrap();
        c.apply_manifest(rollout(json!({
            "nginx": {"stableIngress": "web-ingress"},
            "gatewayAPI": {"namespace": "gw", "httpRoute": "web-route"}
        })))
        .unwrap();
        let events = c.take_outbox().remove("web").unwrap_or_default();
        assert_eq!(kinds(&events), ["Ingress web-ingress", "HTTPRoute gw/web-route", "Rollout"]);
        // A change of a named route reaches it; of another one, not.
        c.apply_manifest(route("HTTPRoute", "default", "web-route")).unwrap();
        c.apply_manifest(route("HTTPRoute", "gw", "web-route")).unwrap();
        assert_eq!(kinds(&c.take_outbox().remove("web").unwrap_or_default()), ["HTTPRoute gw/web-route"]);
    }

    #[test]
    fn creating_an_ingress_that_exists_fails_like_the_api_server_and_shows_the_live_one() {
        let mut c = cluster();
        c.apply_manifest(ingress("web-ingress")).unwrap();
        c.apply_manifest(rollout(json!({"nginx": {"stableIngress": "web-ingress"}}))).unwrap();
        c.apply_manifest(ingress("web-web-ingress-canary")).unwrap();
        c.take_outbox();
        let mut canary: Ingress = serde_json::from_value(ingress("web-web-ingress-canary")).unwrap();
        canary.metadata.annotations = Some([("nginx.ingress.kubernetes.io/canary".to_string(), "true".to_string())].into());
        let patch = json!({"metadata": {"annotations": {"x": "y"}}});
        c.execute(
            "web",
            vec![
                Action::CreateIngress { ingress: Box::new(canary) },
                Action::PatchIngress { name: "web-ingress".into(), patch },
            ],
        );
        let events = c.take_outbox().remove("web").unwrap_or_default();
        assert_eq!(
            kinds(&events),
            [
                "Failed: ingresses.networking.k8s.io \"web-web-ingress-canary\" already exists",
                "Ingress web-web-ingress-canary",
                "Ingress web-ingress",
                "Rollout"
            ]
        );
        // The live one is left as it was, and the skipped patch was not made.
        assert!(c.ingresses["web-web-ingress-canary"].metadata.annotations.is_none());
        assert!(c.ingresses["web-ingress"].metadata.annotations.is_none());
    }

    #[test]
    fn a_route_patch_goes_to_the_routes_namespace_and_bumps_the_generation_of_a_spec_change() {
        let mut c = cluster();
        c.apply_manifest(route("HTTPRoute", "gw", "web-route")).unwrap();
        c.apply_manifest(rollout(json!({"gatewayAPI": {"namespace": "gw", "httpRoute": "web-route"}}))).unwrap();
        c.take_outbox();
        let patch = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"rules": [{"backendRefs": [{"name": "web-stable", "weight": 90}, {"name": "web-canary", "weight": 10}]}]}});
        c.execute("web", vec![Action::PatchRoute { kind: RouteKind::Http, namespace: Some("gw".into()), name: "web-route".into(), patch }]);
        let stored = &c.routes[&("HTTPRoute".to_string(), "gw".to_string(), "web-route".to_string())];
        assert_eq!(stored["metadata"]["generation"], json!(2));
        assert_eq!(stored["spec"]["rules"][0]["backendRefs"][1]["weight"], json!(10));
        assert_eq!(kinds(&c.take_outbox().remove("web").unwrap_or_default()), ["HTTPRoute gw/web-route"]);
        // The label removed: no empty labels left.
        c.execute(
            "web",
            vec![Action::PatchRoute {
                kind: RouteKind::Http,
                namespace: Some("gw".into()),
                name: "web-route".into(),
                patch: json!({"metadata": {"labels": {"a": null}}}),
            }],
        );
        let stored = &c.routes[&("HTTPRoute".to_string(), "gw".to_string(), "web-route".to_string())];
        assert!(stored["metadata"].get("labels").is_none(), "{stored}");
        c.take_outbox();
        // A route that does not exist is the API server's not found.
        c.execute("web", vec![Action::PatchRoute { kind: RouteKind::Tcp, namespace: None, name: "nope".into(), patch: json!({}) }]);
        assert_eq!(
            kinds(&c.take_outbox().remove("web").unwrap_or_default()),
            ["Failed: tcproutes.gateway.networking.k8s.io \"nope\" not found", "Deleted TcpRoute nope", "Rollout"]
        );
    }

    #[test]
    fn deleting_a_rollout_collects_the_ingresses_it_owns_only() {
        let mut c = cluster();
        c.apply_manifest(ingress("web-ingress")).unwrap();
        c.apply_manifest(rollout(json!({"nginx": {"stableIngress": "web-ingress"}}))).unwrap();
        let mut owned: Ingress = serde_json::from_value(ingress("web-web-ingress-canary")).unwrap();
        owned.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "Rollout".into(),
            name: "web".into(),
            uid: "uid-rollout-web".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        c.execute("web", vec![Action::CreateIngress { ingress: Box::new(owned) }]);
        c.take_outbox();
        c.delete_object("Rollout", "web").unwrap();
        assert!(c.rollouts.is_empty());
        assert_eq!(c.ingresses.keys().collect::<Vec<_>>(), ["web-ingress"]);
        assert_eq!(kinds(&c.take_outbox().remove("web").unwrap_or_default()), ["Deleted Rollout web"]);
        assert!(c.delete_object("Rollout", "web").unwrap_err().contains("rollouts.argoproj.io \"web\" not found"));
    }

    #[test]
    fn the_objects_map_is_keyed_by_kind_namespace_and_name_with_sorted_keys() {
        let mut c = cluster();
        c.apply_manifest(route("GRPCRoute", "gw", "r")).unwrap();
        c.apply_manifest(json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate", "metadata": {"name": "t"}, "spec": {}}))
            .unwrap();
        let map = c.object_map();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["ClusterAnalysisTemplate//t", "GRPCRoute/gw/r"]);
        let text = serde_json::to_string(&map["GRPCRoute/gw/r"]).unwrap();
        assert!(text.starts_with(r#"{"apiVersion":"gateway.networking.k8s.io/v1","kind":"GRPCRoute","metadata":{"creationTimestamp""#), "{text}");
    }

    #[test]
    fn without_a_router_an_entry_has_null_weights_and_the_table_a_dash() {
        let text = "objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: plain}
    spec:
      replicas: 1
      selector: {matchLabels: {app: plain}}
      template:
        metadata: {labels: {app: plain}}
        spec: {containers: [{name: app, image: app:1}]}
      strategy: {canary: {steps: [{setWeight: 50}]}}
";
        let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
        let json = serde_json::to_value(&sim).unwrap();
        assert_eq!(json["final"]["plain"]["weights"], Value::Null);
        assert!(json["objects"]["Rollout/default/plain"].is_object());
        let table = crate::sim::render_table(&sim.timeline);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header[..6], ["TIME", "ROLLOUT", "PHASE", "STEP", "WEIGHT", "TRAFFIC"]);
        assert!(table.lines().skip(1).all(|l| l.split_whitespace().nth(5) == Some("-")), "{table}");
    }
}
