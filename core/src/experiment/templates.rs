//! Template reconciliation: one ReplicaSet (and optionally one Service) per template, its
//! size, its scale-down delay and its status (Argo's `reconcileTemplate`,
//! experiments/experiment.go; `newReplicaSetFromTemplate`, `addScaleDownDelay`,
//! experiments/replicaset.go; `CreateService`, experiments/service.go).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{desired_replicas, passed_duration, Ctx, ExperimentWakeReason};
use crate::api::{
    keys, TemplateSpec, TemplateStatus, TemplateStatusCode, EXPERIMENT_NAME_ANNOTATION,
    EXPERIMENT_TEMPLATE_NAME_ANNOTATION,
};
use crate::objects::ReplicaSetExt;
use crate::state::{Action, EventType, ReplicaSetPatch};
use crate::time::{Seconds, Timestamp};

impl Ctx<'_> {
    /// Argo's `reconcileTemplate`.
    pub(super) fn reconcile_template(&mut self, template: &TemplateSpec) {
        let mut ts = self
            .ex
            .status
            .template_statuses
            .iter()
            .find(|t| t.name == template.name)
            .cloned()
            .unwrap_or_else(|| TemplateStatus { name: template.name.clone(), ..TemplateStatus::default() });
        let prev = ts.clone();
        let desired = desired_replicas(self.ex, &self.ex.status, template);

        match self.template_rss.get(&template.name).cloned() {
            None => self.create_replica_set(template, &mut ts),
            Some(rs) => self.reconcile_replica_set(template, &mut ts, rs, desired),
        }

        let rs = self.template_rss.get(&template.name);
        let counts = rs.map_or((0, 0, 0), |rs| (rs.status_replicas(), rs.ready(), rs.available()));
        ts.replicas = counts.0;
        ts.updated_replicas = counts.0;
        ts.ready_replicas = counts.1;
        ts.available_replicas = counts.2;
        if (prev.replicas, prev.updated_replicas, prev.ready_replicas, prev.available_replicas)
            != (ts.replicas, ts.updated_replicas, ts.ready_replicas, ts.available_replicas)
        {
            ts.last_transition_time = Some(self.now);
        }

        // Completed statuses are sticky.
        if !ts.status.is_some_and(TemplateStatusCode::completed) {
            if desired == ts.available_replicas {
                ts.status = Some(if passed_duration(self.ex, &self.ex.status, self.now) || self.terminating {
                    TemplateStatusCode::Successful
                } else {
                    TemplateStatusCode::Running
                });
            } else {
                let deadline_seconds = self.ex.spec.progress_deadline_seconds();
                let from = ts.last_transition_time.unwrap_or(self.now);
                if self.now >= from.plus(Seconds(i64::from(deadline_seconds))) {
                    ts.status = Some(TemplateStatusCode::Failed);
                    ts.message =
                        format!("Template '{}' exceeded its progressDeadlineSeconds ({deadline_seconds})", template.name);
                } else if self.terminating {
                    ts.status = Some(TemplateStatusCode::Successful);
                } else {
                    ts.status = Some(TemplateStatusCode::Progressing);
                }
            }
        }

        if prev.status != ts.status {
            let status = ts.status.map_or("", TemplateStatusCode::as_str);
            let mut msg = format!(
                "Template '{}' transitioned from {} -> {status}",
                template.name,
                prev.status.map_or("", TemplateStatusCode::as_str)
            );
            if !ts.message.is_empty() {
                msg = format!("{msg}: {}", ts.message);
            }
            let kind = match ts.status {
                Some(TemplateStatusCode::Failed | TemplateStatusCode::Error) => EventType::Warning,
                Some(TemplateStatusCode::Progressing | TemplateStatusCode::Running | TemplateStatusCode::Successful)
                | None => EventType::Normal,
            };
            self.event(kind, format!("Template{status}"), msg);
        }
        match self.status.template_statuses.iter_mut().find(|t| t.name == ts.name) {
            Some(slot) => *slot = ts,
            None => self.status.template_statuses.push(ts),
        }
    }

    /// Argo's `createReplicaSetForTemplate`: created with 0 replicas, scaled by the next
    /// reconcile.
    fn create_replica_set(&mut self, template: &TemplateSpec, ts: &mut TemplateStatus) {
        let rs = self.new_replica_set(template, ts.collision_count);
        let name = rs.name().to_string();
        if self.observed.replica_sets.contains_key(&name) {
            // Divergence: Argo bumps the collision count, whose hash does not change the
            // name `<experiment>-<template>`, and then waits forever; the clash is
            // reported instead.
            ts.status = Some(TemplateStatusCode::Error);
            ts.message = format!(
                "Failed to create ReplicaSet for template '{}': replicasets.apps \"{name}\" already exists and is not owned by the experiment",
                template.name
            );
            return;
        }
        self.actions.push(Action::CreateReplicaSet { replica_set: Box::new(rs.clone()) });
        let mut created = rs;
        created.metadata.creation_timestamp = Some(crate::objects::to_kube_time(self.now));
        self.template_rss.insert(template.name.clone(), created);
        ts.last_transition_time = Some(self.now);
    }

    /// The ReplicaSet of a template exists: its Service, its scale-down delay, its size.
    fn reconcile_replica_set(&mut self, template: &TemplateSpec, ts: &mut TemplateStatus, rs: ReplicaSet, desired: i32) {
        match &template.service {
            Some(service) if desired != 0 => {
                let name = if service.name.is_empty() { rs.name().to_string() } else { service.name.clone() };
                self.ensure_service(template, ts, &rs, &name);
            }
            Some(_) => {
                if rs.available() == 0 {
                    self.delete_service(&template.name, ts);
                }
            }
            None => self.delete_service(&template.name, ts),
        }

        let mut rs = rs;
        if desired == 0 {
            self.add_scale_down_delay(&mut rs);
        }
        if rs.spec_replicas() != desired {
            let mut target = desired;
            if desired == 0 {
                // Wait for the scale-down deadline; an unreadable one does not hold it.
                let deadline = rs.annotation(keys::SCALE_DOWN_DEADLINE).filter(|d| !d.is_empty()).and_then(Timestamp::parse_rfc3339);
                if let Some(deadline) = deadline.filter(|d| *d > self.now) {
                    self.wake_at(deadline, ExperimentWakeReason::ScaleDownDeadline);
                    target = template.replicas();
                }
            }
            self.scale(&mut rs, target);
            // Argo resets it whenever the size is not the desired one, even while the
            // scale-down waits for its deadline.
            ts.last_transition_time = Some(self.now);
        }
        self.template_rss.insert(template.name.clone(), rs);
    }

    /// Argo's `addScaleDownDelay`: sets `scale-down-deadline` (now + delay) once, or
    /// removes it when the delay is 0.
    fn add_scale_down_delay(&mut self, rs: &mut ReplicaSet) {
        let delay = self.ex.spec.scale_down_delay_seconds();
        let value = if delay == 0 {
            if !rs.has_scale_down_deadline() {
                return;
            }
            None
        } else {
            if rs.has_scale_down_deadline() {
                return;
            }
            Some(self.now.plus(Seconds(i64::from(delay))).to_rfc3339())
        };
        let mut patch = ReplicaSetPatch::default();
        patch.annotations.insert(keys::SCALE_DOWN_DEADLINE.to_string(), value.clone());
        self.actions.push(Action::PatchReplicaSet { name: rs.name().to_string(), patch });
        let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match value {
            Some(v) => annotations.insert(keys::SCALE_DOWN_DEADLINE.to_string(), v),
            None => annotations.remove(keys::SCALE_DOWN_DEADLINE),
        };
    }

    /// Argo's `scaleReplicaSetAndRecordEvent`.
    fn scale(&mut self, rs: &mut ReplicaSet, to: i32) {
        let from = rs.spec_replicas();
        if from == to {
            return;
        }
        let direction = if from < to { "up" } else { "down" };
        let name = rs.name().to_string();
        self.actions.push(Action::PatchReplicaSet {
            name: name.clone(),
            patch: ReplicaSetPatch { replicas: Some(to), ..ReplicaSetPatch::default() },
        });
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        self.event(EventType::Normal, "ScalingReplicaSet", format!("Scaled {direction} ReplicaSet {name} from {from} to {to}"));
    }

    /// Argo's `createTemplateService`: a Service selecting the ReplicaSet's labels, with a
    /// port per container port (none without ports).
    fn ensure_service(&mut self, template: &TemplateSpec, ts: &mut TemplateStatus, rs: &ReplicaSet, name: &str) {
        let ports = service_ports(rs);
        if ports.is_empty() {
            return;
        }
        if !self.template_services.contains_key(&template.name) {
            if self.observed.services.contains_key(name) {
                ts.status = Some(TemplateStatusCode::Error);
                ts.message = format!(
                    "Failed to create Service {name} for template '{}': service {name} already exists and is not owned by experiment template {}",
                    template.name, template.name
                );
                return;
            }
            let svc = self.new_service(template, rs, name, ports);
            self.actions.push(Action::CreateService { service: Box::new(svc.clone()) });
            self.template_services.insert(template.name.clone(), svc);
        }
        let svc_name =
            self.template_services.get(&template.name).and_then(|s| s.metadata.name.clone()).unwrap_or_default();
        ts.service_name = svc_name;
        ts.pod_template_hash = rs.pod_hash().to_string();
    }

    /// Argo's `deleteTemplateService`.
    fn delete_service(&mut self, template: &str, ts: &mut TemplateStatus) {
        if let Some(svc) = self.template_services.remove(template) {
            self.actions.push(Action::DeleteService { name: svc.metadata.name.unwrap_or_default() });
            ts.service_name.clear();
            ts.pod_template_hash.clear();
        }
    }

    /// Argo's `newReplicaSetFromTemplate`.
    ///
    /// Divergence: the hash never equals the one the template was copied with. An
    /// `experiment` step copies the stable or canary ReplicaSet's pod template, hash label
    /// included; Argo removes the label and hashes the rest, which gives the rollout's own
    /// hash back whenever the copy equals the Rollout's template — then the rollout's
    /// stable or canary Service also selects the experiment's pods (Argo issue 380; on a
    /// real cluster API-server defaulting usually makes the two differ). Here the
    /// collision count is bumped until the hash differs from the copied one.
    pub(super) fn new_replica_set(&self, template: &TemplateSpec, collision_count: Option<i32>) -> ReplicaSet {
        let mut pod_template = template.template.clone();
        let copied_hash = pod_template
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
            .and_then(|labels| labels.remove(keys::POD_TEMPLATE_HASH));
        let mut count = collision_count;
        let mut hash = crate::hash::pod_template_hash(&pod_template, count);
        // Bounded: another count gives another 32-bit hash; a second clash is astronomically
        // unlikely, and the loop still ends.
        for _ in 0..8 {
            if copied_hash.as_deref() != Some(hash.as_str()) {
                break;
            }
            count = Some(count.unwrap_or(0).saturating_add(1));
            hash = crate::hash::pod_template_hash(&pod_template, count);
        }
        let mut labels = pod_template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        labels.insert(keys::POD_TEMPLATE_HASH.to_string(), hash.clone());
        pod_template.metadata.get_or_insert_with(ObjectMeta::default).labels = Some(labels.clone());
        let mut selector = template.selector.clone().unwrap_or_default();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(keys::POD_TEMPLATE_HASH.to_string(), hash);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{}", self.name(), template.name)),
                namespace: self.ex.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(self.object_annotations(&template.name)),
                owner_references: Some(vec![self.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: (template.min_ready_seconds != 0).then_some(template.min_ready_seconds),
                selector,
                template: Some(pod_template),
            }),
            status: None,
        }
    }

    fn new_service(&self, template: &TemplateSpec, rs: &ReplicaSet, name: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: self.ex.metadata.namespace.clone(),
                annotations: Some(self.object_annotations(&template.name)),
                owner_references: Some(vec![self.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: rs.metadata.labels.clone(),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn object_annotations(&self, template: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXPERIMENT_NAME_ANNOTATION.to_string(), self.name().to_string()),
            (EXPERIMENT_TEMPLATE_NAME_ANNOTATION.to_string(), template.to_string()),
        ])
    }
}

/// One Service port per container port of the ReplicaSet's pod template.
fn service_ports(rs: &ReplicaSet) -> Vec<ServicePort> {
    let containers = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| ServicePort {
            name: p.name.clone().filter(|n| !n.is_empty()),
            protocol: p.protocol.clone(),
            port: p.container_port,
            target_port: Some(IntOrString::Int(p.container_port)),
            ..ServicePort::default()
        })
        .collect()
}
