//! What an Experiment worker holds between reconciles: the objects its decisions read, kept
//! newest first (a late watch event never undoes a write), and the trace's view of a
//! reconcile, which [`Replayer`] re-runs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rollouts_core::api::parse::from_value_strict;
use rollouts_core::api::{AnalysisRun, AnalysisTemplate, Experiment, SpecError};
use rollouts_core::experiment::{self, ExperimentReconcile, Observed};
use rollouts_core::state::{Action, Event, Object, ObjectKind};
use serde_json::Value;

use super::status::status_patch;

/// What the Experiment's decisions read, as last observed or written.
#[derive(Default)]
pub(super) struct Observations {
    /// Every event taken since the last reconcile, when recording a trace.
    pub(super) log: Option<Vec<Event>>,
    /// The Experiment, as last seen (`None` once deleted, or while it cannot be decoded).
    pub(super) experiment: Option<Experiment>,
    /// Why the Experiment as last delivered cannot be decoded (reported once).
    pub(super) undecodable: Option<String>,
    replica_sets: BTreeMap<String, ReplicaSet>,
    services: BTreeMap<String, Service>,
    analysis_runs: BTreeMap<String, AnalysisRun>,
    analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
    cluster_analysis_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>>,
}

impl Observations {
    /// Nothing observed yet; every event taken is logged for the trace when `record`.
    pub(super) fn recording(record: bool) -> Self {
        Observations { log: record.then(Vec::new), ..Observations::default() }
    }

    pub(super) fn observed(&self) -> Observed<'_> {
        Observed {
            replica_sets: &self.replica_sets,
            services: &self.services,
            analysis_runs: &self.analysis_runs,
            analysis_templates: &self.analysis_templates,
            cluster_analysis_templates: &self.cluster_analysis_templates,
        }
    }

    /// Takes a watch event, a re-read or an API answer (without its `managedFields`, which
    /// nothing here reads, as the watches drop them).
    pub(super) fn apply(&mut self, event: Event) {
        if let Some(log) = self.log.as_mut() {
            log.push(event.clone());
        }
        match event {
            Event::Applied(Object::Experiment(v)) => match from_value_strict::<Experiment>(&without_managed_fields(v)) {
                Ok(ex) => {
                    let newer = self.experiment.as_ref().is_none_or(|held| not_older(&held.metadata, &ex.metadata));
                    if newer {
                        self.experiment = Some(ex);
                        self.undecodable = None;
                    }
                }
                Err(e) => {
                    self.experiment = None;
                    self.undecodable = Some(format!("the Experiment cannot be read: {e}"));
                }
            },
            Event::Applied(Object::ReplicaSet(rs)) => {
                let mut rs = std::sync::Arc::unwrap_or_clone(rs);
                rs.metadata.managed_fields = None;
                keep_newest(&mut self.replica_sets, rs, |r| &r.metadata);
            }
            Event::Applied(Object::Service(svc)) => {
                let mut svc = std::sync::Arc::unwrap_or_clone(svc);
                svc.metadata.managed_fields = None;
                keep_newest(&mut self.services, svc, |s| &s.metadata);
            }
            Event::Applied(Object::AnalysisRun(v)) => {
                // A run this version cannot decode is left out, as the rollout machine does.
                if let Ok(run) = from_value_strict::<AnalysisRun>(&without_managed_fields(v)) {
                    keep_newest(&mut self.analysis_runs, run, |r| &r.metadata);
                }
            }
            Event::Applied(Object::AnalysisTemplate(v)) => {
                if let Some(name) = v.pointer("/metadata/name").and_then(Value::as_str) {
                    self.analysis_templates.insert(name.to_string(), from_value_strict::<AnalysisTemplate>(&v));
                }
            }
            Event::Applied(Object::ClusterAnalysisTemplate(v)) => {
                if let Some(name) = v.pointer("/metadata/name").and_then(Value::as_str) {
                    self.cluster_analysis_templates.insert(name.to_string(), from_value_strict::<AnalysisTemplate>(&v));
                }
            }
            Event::Deleted { kind, name } => self.remove(kind, &name),
            Event::Applied(
                Object::Rollout(_)
                | Object::Pod(_)
                | Object::Job(_)
                | Object::Ingress(_)
                | Object::Route(_)
                | Object::Workload(_),
            )
            | Event::Measured { .. }
            | Event::ActionFailed { .. }
            | Event::Tick
            | Event::Resync => {}
        }
    }

    pub(super) fn remove(&mut self, kind: ObjectKind, name: &str) {
        match kind {
            ObjectKind::Experiment => {
                self.experiment = None;
                self.undecodable = None;
            }
            ObjectKind::ReplicaSet => {
                self.replica_sets.remove(name);
            }
            ObjectKind::Service => {
                self.services.remove(name);
            }
            ObjectKind::AnalysisRun => {
                self.analysis_runs.remove(name);
            }
            ObjectKind::AnalysisTemplate => {
                self.analysis_templates.remove(name);
            }
            ObjectKind::ClusterAnalysisTemplate => {
                self.cluster_analysis_templates.remove(name);
            }
            ObjectKind::Rollout
            | ObjectKind::Pod
            | ObjectKind::Job
            | ObjectKind::Ingress
            | ObjectKind::HttpRoute
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
            | ObjectKind::VirtualNode
            | ObjectKind::Deployment
            | ObjectKind::PodTemplate => {}
        }
    }
}

fn without_managed_fields(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// What a trace records of a reconcile: its actions, then the status write (as a
/// `PatchExperiment` of `status`) when there is one.
pub(super) fn recorded_actions(ex: &Experiment, r: &ExperimentReconcile) -> Vec<Action> {
    let mut actions = r.actions.clone();
    if let Some(patch) = status_patch(&ex.status, &r.status) {
        let name = ex.metadata.name.clone().unwrap_or_default();
        actions.push(Action::PatchExperiment { name, patch: serde_json::json!({ "status": patch }) });
    }
    actions
}

/// Re-runs an Experiment worker's recorded reconciles (`rollouts replay`).
#[derive(Default)]
pub struct Replayer(Observations);

impl Replayer {
    /// Takes one record's events and reconciles as the worker did; what it would record.
    pub fn step(&mut self, events: impl IntoIterator<Item = Event>, now: rollouts_core::Timestamp) -> Vec<Action> {
        for e in events {
            self.0.apply(e);
        }
        match self.0.experiment.clone() {
            Some(ex) => recorded_actions(&ex, &experiment::reconcile(&ex, &self.0.observed(), now)),
            None => Vec::new(),
        }
    }
}

/// Whether `incoming` may replace `held`: another object (uid), or not an older version of
/// the same. `resourceVersion`s are compared as numbers, which they are on every API server
/// backed by etcd; anything else is taken as newer.
fn not_older(held: &ObjectMeta, incoming: &ObjectMeta) -> bool {
    if held.uid != incoming.uid {
        return true;
    }
    let version = |m: &ObjectMeta| m.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
    match (version(held), version(incoming)) {
        (Some(held), Some(incoming)) => incoming >= held,
        (Some(_) | None, _) => true,
    }
}

fn keep_newest<T>(map: &mut BTreeMap<String, T>, obj: T, meta: impl Fn(&T) -> &ObjectMeta) {
    let Some(name) = meta(&obj).name.clone() else { return };
    if map.get(&name).is_none_or(|held| not_older(meta(held), meta(&obj))) {
        map.insert(name, obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use crate::controller::worker::action_name;
    use serde_json::json;

    fn meta(uid: &str, version: &str) -> ObjectMeta {
        ObjectMeta { name: Some("x".into()), uid: Some(uid.into()), resource_version: Some(version.into()), ..ObjectMeta::default() }
    }

    #[test]
    fn a_late_watch_event_does_not_undo_a_write_but_a_new_object_replaces_the_old() {
        assert!(!not_older(&meta("u", "20"), &meta("u", "19")), "an older version of the same object");
        assert!(not_older(&meta("u", "20"), &meta("u", "20")));
        assert!(not_older(&meta("u", "20"), &meta("u", "21")));
        assert!(not_older(&meta("u", "20"), &meta("v", "3")), "recreated under the same name");
        assert!(not_older(&meta("u", "20"), &meta("u", "opaque")));
    }

    #[test]
    fn a_replayer_decides_what_the_worker_recorded() {
        let ex = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
            "spec": {"templates": [{"name": "a", "selector": {"matchLabels": {"app": "a"}},
                                    "template": {"metadata": {"labels": {"app": "a"}}}}]}
        });
        let now = rollouts_core::Timestamp::from_unix(1_700_000_000);
        let mut replayer = Replayer::default();
        let actions = replayer.step([Event::Applied(Object::Experiment(ex))], now);
        let names: Vec<&str> = actions.iter().map(action_name).collect();
        assert_eq!(names, ["CreateReplicaSet", "RecordEvent", "RecordEvent", "PatchExperiment"], "{actions:?}");
        let Some(Action::PatchExperiment { name, patch }) = actions.last() else { unreachable!() };
        assert_eq!((name.as_str(), &patch["status"]["phase"]), ("e", &json!("Pending")));
        // Without an Experiment (deleted), nothing is decided.
        let actions = replayer.step([Event::Deleted { kind: ObjectKind::Experiment, name: "e".into() }], now);
        assert!(actions.is_empty());
    }

    #[test]
    fn observations_keep_the_newest_and_forget_the_deleted() {
        let mut seen = Observations::default();
        let rs = |version: &str, replicas: i32| {
            let mut rs = ReplicaSet { metadata: meta("u", version), ..ReplicaSet::default() };
            rs.spec = Some(k8s_openapi::api::apps::v1::ReplicaSetSpec { replicas: Some(replicas), ..Default::default() });
            Event::Applied(Object::ReplicaSet(Arc::new(rs)))
        };
        seen.apply(rs("10", 2));
        seen.apply(rs("9", 0));
        assert_eq!(seen.replica_sets["x"].spec.as_ref().unwrap().replicas, Some(2));
        seen.apply(Event::Deleted { kind: ObjectKind::ReplicaSet, name: "x".into() });
        assert!(seen.replica_sets.is_empty());

        seen.apply(Event::Applied(Object::Experiment(json!({"metadata": {"name": "e"}, "spec": {"templatez": []}}))));
        assert!(seen.experiment.is_none());
        assert!(seen.undecodable.as_deref().is_some_and(|e| e.contains("templatez")), "{:?}", seen.undecodable);
        seen.apply(Event::Applied(Object::Experiment(json!({"metadata": {"name": "e"}, "spec": {"templates": []}}))));
        assert!(seen.experiment.is_some() && seen.undecodable.is_none());
    }
}
