//! The simulated ReplicaSet controller and kubelet: pod counts follow `spec.replicas`
//! (not-ready pods are deleted first, then the newest), pods become ready after their
//! image's startup time, and every ReplicaSet's status is recomputed from its pods.
//!
//! Pods are counts ([`super::pods::PodSet`]). They are shown to a controller as Pod
//! objects only where [`PodObjects`] says so: the core needs them only to evict pods
//! created before `spec.restartAt` and to patch their ephemeral metadata.

use std::sync::Arc;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};

use super::cluster::Cluster;
use super::pods::{kube_pod, parse_pod_name, pod_name, PodMeta, PodRange};
use crate::objects::ReplicaSetExt;
use crate::state::{Event, MetadataPatch, Object, ObjectKind};
use crate::time::{Seconds, Timestamp};

/// The most pods one rollout may have while they are shown as objects.
pub const MAX_POD_OBJECTS: u64 = 100_000;

/// When a controller is shown individual Pod objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodObjects {
    /// Only for a rollout with `spec.restartAt` or ephemeral metadata (the rules that look
    /// at pods), from the moment it is set: then every existing pod of the rollout is
    /// announced, and every later change. When it is cleared, the pods are announced
    /// deleted.
    WhenNeeded,
    /// Always, for every rollout, as a real cluster's watch does.
    Always,
}

/// Whether the cluster runs pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodModel {
    /// Pods are created, become ready after their image's startup time, and are deleted
    /// (not-ready first, then the newest).
    Simulated,
    /// No pods: a ReplicaSet's status follows its spec the moment it is written (every
    /// replica ready and available, none for an image that never becomes ready).
    Instant,
}

/// The labels and annotations of the ReplicaSet's pod template: those of a pod it creates.
fn template_meta(rs: &ReplicaSet) -> PodMeta {
    let meta = rs.spec.as_ref().and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref());
    PodMeta { labels: meta.and_then(|m| m.labels.clone()), annotations: meta.and_then(|m| m.annotations.clone()) }
}

/// Whether a stored Rollout configures ephemeral metadata (its controller patches pods).
fn configures_ephemeral_metadata(rollout: &serde_json::Value) -> bool {
    ["canary/canaryMetadata", "canary/stableMetadata", "blueGreen/previewMetadata", "blueGreen/activeMetadata"]
        .iter()
        .any(|p| rollout.pointer(&format!("/spec/strategy/{p}")).is_some_and(|v| !v.is_null()))
}

fn images_of(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.iter().filter_map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

fn min_ready_of(rs: &ReplicaSet) -> Seconds {
    Seconds(i64::from(rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0).max(0)))
}

fn to_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Cluster {
    /// Whether the controller of `rollout` is shown individual pods now.
    pub fn shows_pods(&self, rollout: &str) -> bool {
        // An Experiment's pods are watched by no rollout.
        if !self.rollouts.contains_key(rollout) {
            return false;
        }
        match self.pod_objects {
            PodObjects::Always => true,
            PodObjects::WhenNeeded => self.rollouts.get(rollout).is_some_and(|r| {
                r.get("spec").and_then(|s| s.get("restartAt")).is_some_and(|v| !v.is_null()) || configures_ephemeral_metadata(r)
            }),
        }
    }

    /// Pods of the rollout's ReplicaSets.
    fn pod_count_of(&self, rollout: &str) -> u64 {
        self.replica_sets_of(rollout).filter_map(|(name, _)| self.pods.get(name)).map(|p| p.len()).sum()
    }

    /// Announces pods `range` of ReplicaSet `rs` as they are now, or as deleted.
    fn emit_pods(&mut self, owner: &str, rs: &str, ranges: &[PodRange], deleted: bool) {
        if !self.shows_pods(owner) || ranges.is_empty() {
            return;
        }
        let count = self.pod_count_of(owner).max(ranges.iter().map(|r| r.end - r.start).sum());
        if count > MAX_POD_OBJECTS {
            let msg = format!(
                "rollout {owner:?}: restartAt and ephemeral metadata need every pod as an object, and the simulator makes at most {MAX_POD_OBJECTS} of them per rollout ({count} here)"
            );
            if !self.errors.contains(&msg) {
                self.errors.push(msg);
            }
            return;
        }
        for n in ranges.iter().flat_map(|r| r.clone()) {
            let event = if deleted {
                Event::Deleted { kind: ObjectKind::Pod, name: pod_name(rs, n) }
            } else {
                let Some(pods) = self.pods.get(rs) else { continue };
                let Some(cohort) = pods.cohort_of(n) else { continue };
                Event::Applied(Object::Pod(Arc::new(kube_pod(rs, n, cohort, &self.namespace, pods.meta(n, cohort), self.now))))
            };
            self.emit(owner, event);
        }
    }

    /// Every pod of the rollout's ReplicaSets, announced as existing or as deleted: a
    /// rollout that starts or stops being shown pods.
    pub(super) fn emit_all_pods(&mut self, rollout: &str, deleted: bool) {
        let sets: Vec<(String, Vec<PodRange>)> = self
            .replica_sets_of(rollout)
            .filter_map(|(name, _)| Some((name.clone(), self.pods.get(name)?.ranges())))
            .collect();
        for (rs, ranges) in sets {
            self.emit_pods(rollout, &rs, &ranges, deleted);
        }
    }

    /// Calls [`Cluster::emit_all_pods`] when patching or replacing `rollout` changed
    /// whether its controller is shown pods (`was`: before).
    pub(super) fn pods_shown_changed(&mut self, rollout: &str, was: bool) {
        let now = self.shows_pods(rollout);
        if now != was {
            self.emit_all_pods(rollout, !now);
        }
    }

    /// A ReplicaSet and its pods are gone.
    pub(super) fn delete_pods_of(&mut self, owner: &str, rs: &str) {
        let ranges = self.pods.get(rs).map(|p| p.ranges()).unwrap_or_default();
        self.emit_pods(owner, rs, &ranges, true);
        self.pods.remove(rs);
    }

    /// Evicts one pod by name; whether it existed.
    pub(super) fn evict(&mut self, owner: &str, name: &str) -> bool {
        let Some((rs, n)) = parse_pod_name(name) else { return false };
        let rs = rs.to_string();
        if !self.pods.get_mut(&rs).is_some_and(|p| p.remove_pod(n)) {
            return false;
        }
        let evicted = std::iter::once(n..n + 1).collect::<Vec<PodRange>>();
        self.emit_pods(owner, &rs, &evicted, true);
        true
    }

    /// Merge-patches one pod's labels and annotations by name (it keeps running); whether
    /// it exists and changed.
    pub(super) fn patch_pod_metadata(&mut self, owner: &str, name: &str, patch: &MetadataPatch) -> bool {
        let Some((rs, n)) = parse_pod_name(name) else { return false };
        let rs = rs.to_string();
        if !self.pods.get_mut(&rs).is_some_and(|p| p.patch_meta(n, patch)) {
            return false;
        }
        self.emit_pods(owner, &rs, std::slice::from_ref(&(n..n + 1)), false);
        true
    }

    /// The pods of every rollout that configures ephemeral metadata, as the API server
    /// returns them (the `objects` of a simulation show them; other pods' metadata is
    /// their ReplicaSet's template's and is left out).
    pub(super) fn ephemeral_metadata_pods(&self) -> Vec<k8s_openapi::api::core::v1::Pod> {
        let mut out = Vec::new();
        for (rollout, _) in self.rollouts.iter().filter(|(_, r)| configures_ephemeral_metadata(r)) {
            for (rs, _) in self.replica_sets_of(rollout) {
                let Some(pods) = self.pods.get(rs) else { continue };
                let shown = pods.pods().take(usize::try_from(MAX_POD_OBJECTS).unwrap_or(usize::MAX));
                out.extend(shown.map(|(n, c)| kube_pod(rs, n, c, &self.namespace, pods.meta(n, c), self.now)));
            }
        }
        out
    }

    fn image_behaviour(&self, images: &[String]) -> (bool, Seconds) {
        let mut ready = true;
        let mut startup = self.spec.pod_startup;
        for img in images {
            if let Some(b) = self.spec.images.get(img) {
                ready &= b.ready;
                if let Some(s) = b.startup {
                    startup = startup.max(s);
                }
            }
        }
        (ready, startup)
    }

    /// [`PodModel::Instant`]: the status a ReplicaSet has the moment it is written.
    pub(super) fn instant_status(&self, rs: &mut ReplicaSet) {
        match self.pod_model {
            PodModel::Simulated => {}
            PodModel::Instant => {
                let spec = rs.spec_replicas().max(0);
                let n = if self.image_behaviour(&images_of(rs)).0 { spec } else { 0 };
                rs.status = Some(ReplicaSetStatus {
                    replicas: spec,
                    ready_replicas: Some(n),
                    available_replicas: Some(n),
                    fully_labeled_replicas: Some(spec),
                    observed_generation: rs.metadata.generation,
                    conditions: None,
                    terminating_replicas: None,
                });
            }
        }
    }

    /// The ReplicaSet controller and the kubelet: reconciles pod counts and readiness,
    /// then recomputes every ReplicaSet's status, emitting events for what changed.
    pub fn sync(&mut self) {
        if self.pod_model == PodModel::Instant {
            return;
        }
        let now = self.now;
        // The ReplicaSets whose pod count is not the desired one.
        let off: Vec<(String, u64, u64)> = self
            .replica_sets
            .iter()
            .filter_map(|(name, rs)| {
                let desired = u64::try_from(rs.spec_replicas()).unwrap_or(0);
                let have = self.pods.get(name).map_or(0, |p| p.len());
                (have != desired).then(|| (name.clone(), desired, have))
            })
            .collect();
        self.pods.retain(|_, p| !p.is_empty());
        for (name, desired, have) in &off {
            let (name, desired, have) = (name, *desired, *have);
            let Some(rs) = self.replica_sets.get(name) else { continue };
            // The ReplicaSets of Rollouts and of Experiments get pods (an Experiment's
            // are shown to no controller); others are left alone.
            let owner = match (Self::owner_of(rs), Self::experiment_of(rs)) {
                (Some(rollout), _) => rollout,
                (None, Some(_)) => String::new(),
                (None, None) => continue,
            };
            if have < desired {
                let (ready, startup) = self.image_behaviour(&images_of(rs));
                let first = self.next_pod.saturating_add(1);
                self.next_pod = self.next_pod.saturating_add(desired - have);
                let range = self.pods.entry(name.clone()).or_default().create(
                    first,
                    desired - have,
                    now,
                    ready.then(|| now.plus(startup)),
                    template_meta(rs),
                );
                self.emit_pods(&owner, name, &[range], false);
            } else if have > desired {
                let removed = self.pods.get_mut(name).map(|p| p.remove_newest(have - desired, now)).unwrap_or_default();
                self.emit_pods(&owner, name, &removed, true);
            }
            if self.pods.get(name).is_some_and(|p| p.is_empty()) {
                self.pods.remove(name);
            }
        }
        self.refresh_statuses();
    }

    /// Pods whose readiness changed at this instant are re-announced, and ReplicaSet
    /// statuses recomputed.
    fn refresh_statuses(&mut self) {
        let now = self.now;
        // One pass over each map (in name order, as the events were always emitted), the
        // events emitted afterwards.
        let ready: Vec<(String, Vec<PodRange>)> = self
            .pods
            .iter_mut()
            .filter_map(|(name, p)| Some(p.became_ready(now)).filter(|r| !r.is_empty()).map(|r| (name.clone(), r)))
            .collect();
        for (name, ready) in ready {
            let Some(owner) = self.replica_sets.get(&name).and_then(Self::owner_of) else { continue };
            self.emit_pods(&owner, &name, &ready, false);
        }
        let mut changed = Vec::new();
        for (name, rs) in self.replica_sets.iter_mut() {
            let pods = self.pods.get(name);
            let replicas = to_i32(pods.map_or(0, |p| p.len()));
            let status = ReplicaSetStatus {
                replicas,
                ready_replicas: Some(to_i32(pods.map_or(0, |p| p.ready(now)))),
                available_replicas: Some(to_i32(pods.map_or(0, |p| p.available(now, min_ready_of(rs))))),
                fully_labeled_replicas: Some(replicas),
                observed_generation: rs.metadata.generation,
                conditions: None,
                terminating_replicas: None,
            };
            if rs.status.as_ref() != Some(&status) {
                rs.status = Some(status);
                changed.push(name.clone());
            }
        }
        for name in changed {
            self.emit_rs(&name);
        }
    }

    /// The next time a pod becomes ready or available, after now.
    pub fn next_pod_transition(&self) -> Option<Timestamp> {
        self.pods
            .iter()
            .filter_map(|(rs, pods)| {
                let min_ready = self.replica_sets.get(rs).map_or(Seconds(0), min_ready_of);
                pods.next_transition(self.now, min_ready)
            })
            .min()
    }

    /// A watch event carrying the object as the cluster holds it now rather than as it
    /// was at the change (an informer cache never behind the API server); `None` when the
    /// object is gone (its `Deleted` event follows).
    pub fn latest(&self, event: Event) -> Option<Event> {
        let name_of = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.name.clone().unwrap_or_default();
        match event {
            Event::Applied(Object::Rollout(v)) => {
                let name = v.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default();
                self.rollouts.get(name).map(|r| Event::Applied(Object::Rollout(r.clone())))
            }
            Event::Applied(Object::ReplicaSet(rs)) => {
                self.replica_sets.get(&name_of(&rs.metadata)).map(|r| Event::Applied(Object::ReplicaSet(Arc::new(r.clone()))))
            }
            Event::Applied(Object::Service(svc)) => {
                self.services.get(&name_of(&svc.metadata)).map(|s| Event::Applied(Object::Service(Arc::new(s.clone()))))
            }
            Event::Applied(Object::Pod(pod)) => {
                let name = name_of(&pod.metadata);
                let (rs, n) = parse_pod_name(&name)?;
                let pods = self.pods.get(rs)?;
                let cohort = pods.cohort_of(n)?;
                Some(Event::Applied(Object::Pod(Arc::new(kube_pod(rs, n, cohort, &self.namespace, pods.meta(n, cohort), self.now)))))
            }
            Event::Applied(Object::Ingress(ing)) => {
                self.ingresses.get(&name_of(&ing.metadata)).map(|i| Event::Applied(Object::Ingress(Box::new(i.clone()))))
            }
            Event::Applied(Object::Workload(w)) => {
                let s = |p: &str| w.pointer(p).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
                self.others.get(&(s("/kind"), s("/metadata/name"))).map(|v| Event::Applied(Object::Workload(v.clone())))
            }
            Event::Applied(Object::Route(route)) => {
                let id = super::routers::route_id(&route, &self.namespace);
                self.routes.get(&id).map(|r| Event::Applied(Object::Route(r.clone())))
            }
            Event::Applied(
                Object::AnalysisRun(_)
                | Object::AnalysisTemplate(_)
                | Object::Experiment(_)
                | Object::ClusterAnalysisTemplate(_)
                | Object::Job(_),
            )
            | Event::Deleted { .. }
            | Event::Tick
            | Event::Resync
            | Event::Measured { .. }
            | Event::ActionFailed { .. } => Some(event),
        }
    }

    /// The Pod objects of ReplicaSet `rs` a controller starting now would list (none
    /// where [`PodObjects`] hides them).
    pub(super) fn pod_objects_of(&self, owner: &str, rs: &str) -> Vec<Object> {
        let Some(pods) = self.pods.get(rs).filter(|_| self.shows_pods(owner)) else { return Vec::new() };
        pods.pods()
            .take(usize::try_from(MAX_POD_OBJECTS).unwrap_or(usize::MAX))
            .map(|(n, c)| Object::Pod(Arc::new(kube_pod(rs, n, c, &self.namespace, pods.meta(n, c), self.now))))
            .collect()
    }
}
