//! Creating, finding and retiring ReplicaSets: names, revisions, annotations, the
//! injected anti-affinity, and revision-history cleanup.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, PodTemplateSpec, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use serde_json::Value;

use super::context::Ctx;
use super::status::{condition, get_condition, set_condition};
use crate::api::{keys, AntiAffinity, ConditionReason, ConditionStatus, ConditionType, Rollout};
use crate::objects::{to_kube_time, ReplicaSetExt};
use crate::state::{Action, ReplicaSetPatch};

const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// Whether two pod templates are the same, ignoring what the controller injects (the
/// hash label and the anti-affinity term) and the fields Kubernetes defaults (the
/// ReplicaSet stored by the API server is defaulted, the Rollout's template is not).
pub fn templates_equal(live: &PodTemplateSpec, desired: &PodTemplateSpec, ro: &Rollout) -> bool {
    // Nothing below touches a container's image: different images, different templates.
    fn images(t: &PodTemplateSpec) -> impl Iterator<Item = Option<&str>> {
        t.spec.as_ref().map_or(&[][..], |s| s.containers.as_slice()).iter().map(|c| c.image.as_deref())
    }
    if !images(live).eq(images(desired)) {
        return false;
    }
    let mut live = live.clone();
    let mut desired = desired.clone();
    for t in [&mut live, &mut desired] {
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(keys::POD_TEMPLATE_HASH);
        }
        if let Some(spec) = t.spec.as_mut() {
            // The deprecated field is filled in on the live object only.
            spec.service_account = None;
        }
    }
    if let Some(spec) = live.spec.as_mut() {
        spec.affinity = remove_injected_anti_affinity(spec.affinity.take(), ro);
    }
    let normalize = |t: &PodTemplateSpec| {
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        apply_pod_defaults(&mut v);
        prune_empty(&mut v);
        v
    };
    normalize(&live) == normalize(&desired)
}

/// Fills in the defaults the API server writes into a ReplicaSet's pod template, so a
/// defaulted live template compares equal to the user's.
fn apply_pod_defaults(template: &mut Value) {
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let defaults = [
        ("restartPolicy", Value::from("Always")),
        ("terminationGracePeriodSeconds", Value::from(30)),
        ("dnsPolicy", Value::from("ClusterFirst")),
        ("schedulerName", Value::from("default-scheduler")),
        ("securityContext", serde_json::json!({})),
    ];
    for (k, v) in defaults {
        spec.entry(k).or_insert(v);
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("terminationMessagePath").or_insert_with(|| "/dev/termination-log".into());
            c.entry("terminationMessagePolicy").or_insert_with(|| "File".into());
            let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
            let tag = image.rsplit('/').next().unwrap_or("").split_once(':').map(|(_, t)| t.to_string());
            let policy = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest") {
                "IfNotPresent"
            } else {
                "Always"
            };
            c.entry("imagePullPolicy").or_insert_with(|| policy.into());
            c.entry("resources").or_insert_with(|| serde_json::json!({}));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    p.entry("protocol").or_insert_with(|| "TCP".into());
                }
            }
        }
    }
}

/// Removes empty objects/arrays and nulls, which the API server may add or drop.
fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                prune_empty(x);
            }
            m.retain(|_, x| !(x.is_null() || x.as_object().is_some_and(|o| o.is_empty()) || x.as_array().is_some_and(|a| a.is_empty())));
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// The anti-affinity strategy configured on the rollout, if complete.
fn anti_affinity(ro: &Rollout) -> Option<&AntiAffinity> {
    let a = ro
        .spec
        .blue_green()
        .and_then(|b| b.anti_affinity.as_ref())
        .or_else(|| ro.spec.canary().and_then(|c| c.anti_affinity.as_ref()))?;
    (a.preferred_during_scheduling_ignored_during_execution.is_some()
        || a.required_during_scheduling_ignored_during_execution.is_some())
    .then_some(a)
}

fn injected_term(ro: &Rollout, stable_hash: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: keys::POD_TEMPLATE_HASH.to_string(),
                operator: "In".to_string(),
                values: Some(vec![stable_hash.to_string()]),
            }]),
            ..Default::default()
        }),
        namespaces: Some(vec![ro.metadata.namespace.clone().unwrap_or_default()]),
        topology_key: HOSTNAME_TOPOLOGY.to_string(),
        ..Default::default()
    }
}

fn is_injected(term: &PodAffinityTerm) -> bool {
    term.label_selector
        .as_ref()
        .and_then(|s| s.match_expressions.as_ref())
        .is_some_and(|e| e.iter().any(|r| r.key == keys::POD_TEMPLATE_HASH))
}

/// The new ReplicaSet's affinity: the template's, plus an anti-affinity term against the
/// stable pods when `antiAffinity` is configured and a different stable exists.
pub(super) fn generate_affinity(ro: &Rollout, template_hash: &str) -> Option<Affinity> {
    let base = ro.spec.template.as_ref().and_then(|t| t.spec.as_ref()).and_then(|s| s.affinity.clone());
    let stable = &ro.status.stable_rs;
    let Some(strategy) = anti_affinity(ro) else { return base };
    if stable.is_empty() || stable == template_hash {
        return base;
    }
    let mut affinity = base.unwrap_or_default();
    let anti = affinity.pod_anti_affinity.get_or_insert_with(PodAntiAffinity::default);
    let term = injected_term(ro, stable);
    match &strategy.preferred_during_scheduling_ignored_during_execution {
        Some(p) => anti
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm { weight: p.weight, pod_affinity_term: term }),
        None => anti.required_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term),
    }
    Some(affinity)
}

fn remove_injected_anti_affinity(affinity: Option<Affinity>, ro: &Rollout) -> Option<Affinity> {
    let mut affinity = affinity?;
    if anti_affinity(ro).is_none() {
        return Some(affinity);
    }
    if let Some(anti) = affinity.pod_anti_affinity.as_mut() {
        if let Some(p) = anti.preferred_during_scheduling_ignored_during_execution.as_mut() {
            p.retain(|t| !is_injected(&t.pod_affinity_term));
            if p.is_empty() {
                anti.preferred_during_scheduling_ignored_during_execution = None;
            }
        }
        if let Some(r) = anti.required_during_scheduling_ignored_during_execution.as_mut() {
            r.retain(|t| !is_injected(t));
            if r.is_empty() {
                anti.required_during_scheduling_ignored_during_execution = None;
            }
        }
        if anti.preferred_during_scheduling_ignored_during_execution.is_none()
            && anti.required_during_scheduling_ignored_during_execution.is_none()
        {
            affinity.pod_anti_affinity = None;
        }
    }
    if affinity == Affinity::default() {
        None
    } else {
        Some(affinity)
    }
}

/// Whether the injected term on a ReplicaSet points at an old stable hash.
fn injected_affinity_needs_update(affinity: Option<&Affinity>, ro: &Rollout, template_hash: &str) -> bool {
    let stable = &ro.status.stable_rs;
    if anti_affinity(ro).is_none() || stable == template_hash {
        return false;
    }
    let Some(anti) = affinity.and_then(|a| a.pod_anti_affinity.as_ref()) else { return false };
    let terms = anti
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .map(|t| &t.pod_affinity_term)
        .chain(anti.required_during_scheduling_ignored_during_execution.iter().flatten());
    for term in terms.filter(|t| is_injected(t)) {
        let current = term
            .label_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .and_then(|e| e.iter().find(|r| r.key == keys::POD_TEMPLATE_HASH))
            .and_then(|r| r.values.as_ref())
            .and_then(|v| v.first());
        if current != Some(stable) {
            return true;
        }
    }
    false
}

impl Ctx<'_> {
    /// Rollout annotations copied onto its new ReplicaSet.
    fn copied_annotations(&self) -> BTreeMap<String, String> {
        self.ro
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !keys::NOT_COPIED_TO_REPLICA_SETS.contains(&k.as_str()))
            .collect()
    }

    /// Argo's `syncReplicaSetRevision`: the new ReplicaSet gets the rollout's annotations,
    /// the highest revision (keeping a history when reused), minReadySeconds and the
    /// anti-affinity; then the rollout records the revision.
    pub(super) fn sync_replica_set_revision(&mut self) {
        let Some(name) = self.new_rs.clone() else {
            return;
        };
        let new_revision = self.max_old_revision + 1;
        let Some(rs) = self.rs(&name) else { return };
        let mut patch = ReplicaSetPatch::default();
        for (k, v) in self.ro.metadata.annotations.iter().flatten() {
            if !keys::NOT_COPIED_TO_REPLICA_SETS.contains(&k.as_str())
                && rs.annotation(k) != Some(v.as_str())
            {
                patch.annotations.insert(k.clone(), Some(v.clone()));
            }
        }
        let old_revision = rs.annotation(keys::REVISION);
        let old_revision_num = old_revision.map_or(Some(0), |r| r.parse::<i64>().ok());
        let bumped = old_revision_num.is_some_and(|old| old < new_revision);
        if bumped {
            patch.annotations.insert(keys::REVISION.to_string(), Some(new_revision.to_string()));
        }
        // Reusing an old ReplicaSet (a rollback) keeps its former revisions. Argo appends
        // to the history whenever any annotation changed; only a real renumbering does here.
        if let Some(old) = old_revision.filter(|_| bumped) {
            let history = rs.annotation(keys::REVISION_HISTORY).unwrap_or("");
            let joined = if history.is_empty() {
                old.to_string()
            } else {
                format!("{history},{old}")
            };
            patch
                .annotations
                .insert(keys::REVISION_HISTORY.to_string(), Some(joined));
        }
        let min_ready = self.ro.spec.min_ready_seconds;
        let rs_min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let current_affinity = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.affinity.as_ref());
        let affinity_stale =
            injected_affinity_needs_update(current_affinity, &self.ro, &self.template_hash);
        let revision = rs.annotation(keys::REVISION).map(str::to_string);
        if !patch.annotations.is_empty() || rs_min_ready != min_ready || affinity_stale {
            patch.min_ready_seconds = (rs_min_ready != min_ready).then_some(min_ready);
            if affinity_stale {
                patch.affinity = Some(generate_affinity(&self.ro, &self.template_hash).map(Box::new));
            }
            self.patch_rs(&name, patch);
            return;
        }
        if let Some(rev) = revision {
            self.set_rollout_revision(&rev);
        }
        if get_condition(&self.ro.status, ConditionType::Progressing).is_none() {
            let mut new = self.ro.status.clone();
            let msg = format!("Found new replica set {name:?}");
            set_condition(
                &mut new,
                condition(
                    ConditionType::Progressing,
                    ConditionStatus::True,
                    ConditionReason::FoundNewReplicaSet,
                    &msg,
                    self.now,
                ),
            );
            self.write_status(new);
        }
    }

    /// Argo's `getAllReplicaSetsAndSyncRevision(createIfNotExisted = true)`.
    pub(super) fn sync_revision_and_create(&mut self) {
        self.sync_replica_set_revision();
        if self.new_rs.is_none() {
            self.create_new_replica_set();
        }
    }

    /// Creates the ReplicaSet for the current template at zero replicas.
    fn create_new_replica_set(&mut self) {
        let ro = &self.ro;
        let hash = self.template_hash.clone();
        let name = format!("{}-{}", self.name(), hash);
        let revision = (self.max_old_revision + 1).to_string();
        let mut template = ro.spec.template.clone().unwrap_or_default();
        let mut labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        labels.insert(keys::POD_TEMPLATE_HASH.to_string(), hash.clone());
        template.metadata.get_or_insert_with(ObjectMeta::default).labels = Some(labels.clone());
        template.spec.get_or_insert_with(Default::default).affinity = generate_affinity(ro, &hash);
        let mut selector = ro.spec.selector.clone().unwrap_or_default();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(keys::POD_TEMPLATE_HASH.to_string(), hash.clone());
        let mut annotations = self.copied_annotations();
        super::ephemeral::inject_into_new(&ro.spec, self.stable_rs.is_some(), &mut template, &mut annotations);
        annotations.insert(keys::REVISION.to_string(), revision.clone());
        annotations.insert(keys::DESIRED_REPLICAS.to_string(), self.replicas().to_string());
        let owner = OwnerReference {
            api_version: crate::api::API_VERSION.to_string(),
            kind: "Rollout".to_string(),
            name: self.name().to_string(),
            uid: ro.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: ro.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(ro.spec.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.actions.push(Action::CreateReplicaSet { replica_set: Box::new(rs.clone()) });
        let mut observed = rs;
        observed.metadata.creation_timestamp = Some(to_kube_time(self.now));
        // The API server starts every object at generation 1; the working copy does too,
        // so that the creation's own watch event cannot undo a scale made before it arrives.
        observed.metadata.generation = Some(1);
        self.state.replica_sets.insert(name.clone(), std::sync::Arc::new(observed));
        self.classify();
        self.set_rollout_revision(&revision);
        self.event("NewReplicaSetCreated", format!("Created ReplicaSet {name} (revision {revision})"));
        let mut new = self.ro.status.clone();
        let msg = format!("Created new replica set {name:?}");
        set_condition(
            &mut new,
            condition(
                ConditionType::Progressing,
                ConditionStatus::True,
                ConditionReason::NewReplicaSetCreated,
                &msg,
                self.now,
            ),
        );
        self.write_status(new);
    }

    /// Argo's `reconcileRevisionHistoryLimit`: deletes the oldest scaled-down "other"
    /// ReplicaSets beyond `revisionHistoryLimit`.
    pub(super) fn reconcile_revision_history_limit(&mut self) {
        let limit = self.ro.spec.revision_history_limit().max(0) as usize;
        let mut cleanable: Vec<&ReplicaSet> =
            self.other_rs.iter().filter_map(|n| self.rs(n)).filter(|rs| !rs.is_deleting()).collect();
        if cleanable.len() <= limit {
            return;
        }
        cleanable.sort_by(|a, b| (a.created(), a.name()).cmp(&(b.created(), b.name())));
        let diff = cleanable.len() - limit;
        let doomed: Vec<String> = cleanable[..diff]
            .iter()
            .filter(|rs| rs.status_replicas() == 0 && rs.spec_replicas() == 0 && !rs.generation_unobserved())
            .map(|rs| rs.name().to_string())
            .collect();
        for name in doomed {
            let hash = self.rs(&name).map(|rs| rs.pod_hash().to_string()).unwrap_or_default();
            self.state.replica_sets.remove(&name);
            self.actions.push(Action::DeleteReplicaSet { name });
            // The ReplicaSet's runs and Experiments go with it.
            if !hash.is_empty() {
                self.delete_runs_of_hash(&hash);
                self.delete_experiments_of_hash(&hash);
            }
        }
        self.classify();
    }
}
