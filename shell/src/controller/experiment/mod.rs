//! One task per Experiment (standalone, or created by a rollout's `experiment` step): the
//! caller's loop of `rollouts_core::experiment` (see its module doc).
//!
//! The worker keeps what the router delivers (the Experiment, the ReplicaSets, Services and
//! AnalysisRuns it controls or whose names it would use, the templates its analyses name),
//! reconciles once per batch of events or at the wake-up the core asked for, executes the
//! actions in order, records the rollout events on the owning Rollout and writes the status
//! when it changed.
//!
//! Objects created or patched by an action are kept as the API server answered, so the next
//! reconcile sees them before their watch events arrive; a watch event older than what is
//! held (same uid, lower `resourceVersion`) is ignored, so that a late event never undoes a
//! write. A failed action stops the batch: what it and the skipped actions were about is read
//! again, the status is not written (it describes the actions as done), and the reconcile is
//! retried with backoff, as the rollout workers do.
//!
//! With `--record`, each reconcile is a trace record (`"rollout": "experiment <ns>/<name>"`):
//! every event the worker took since the previous one (watch events, API answers, re-reads),
//! the actions, and the status write as a `PatchExperiment` of `status`; `rollouts replay`
//! feeds the events to the same [`Replayer`] and compares.
//!
//! Like Argo's controller, the status is written with a merge patch of the object (the
//! Experiment CRD has no status subresource), holding only the fields that changed and `null`
//! for those that went away. Empty strings are left out of what is written: the core reads an
//! absent string as empty, and the 1.20 API server reads `""` as `null`, which a `string`
//! field of a CRD refuses.

mod observed;
mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use rollouts_core::api::{Experiment, ExperimentStatus};
use rollouts_core::experiment::{self, ExperimentReconcile};
use rollouts_core::state::{Action, Event, EventType, Object, ObjectKind};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use super::metrics::elapsed;
use super::router::RolloutKey;
use super::worker::{action_name, already_exists, code, message, now, until, Failure, Shared, MAX_BACKOFF};
use crate::kubeapi::{analysis_run_resource, experiment_resource};
use observed::{recorded_actions, Observations};
pub use observed::Replayer;
use status::status_patch;

/// Runs an Experiment's reconciles until its channel closes (it was deleted).
pub async fn run(key: RolloutKey, mut rx: UnboundedReceiver<Box<Event>>, shared: Arc<Shared>) {
    let mut seen = Observations::recording(shared.trace.is_some());
    let mut wake: Option<rollouts_core::Timestamp> = None;
    let mut backoff = Duration::ZERO;
    let mut retry = false;
    let labels = shared.metrics.rollout_labels(&key.namespace, &key.name);
    let exec = Executor { key: &key, shared: &shared };
    loop {
        let sleep = if std::mem::take(&mut retry) { Duration::ZERO } else { wake.map_or(shared.resync, until) };
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(e) => seen.apply(*e),
                None => break,
            },
            () = tokio::time::sleep(sleep) => {}
        }
        while let Ok(e) = rx.try_recv() {
            seen.apply(*e);
        }
        let Some(ex) = seen.experiment.clone() else {
            if let Some(error) = seen.undecodable.take() {
                tracing::warn!(experiment = %key, %error, "the Experiment cannot be read; not reconciled until it changes");
                exec.record_event(&exec.own_reference(None), EventType::Warning, "InvalidSpec", &error);
            }
            wake = None;
            continue;
        };
        let started = Instant::now();
        let now = now();
        let r = experiment::reconcile(&ex, &seen.observed(), now);
        if let (Some(trace), Some(log)) = (&shared.trace, seen.log.as_mut()) {
            trace.record(&key, now, &std::mem::take(log), &recorded_actions(&ex, &r), false);
        }
        // Boxed, as a rollout worker's (see `worker::run`).
        let ok = Box::pin(exec.execute(&ex, &r, &mut seen)).await;
        shared.metrics.experiment_reconcile.get_or_create(&labels).observe(elapsed(started));
        shared.metrics.observe_experiment(&key.namespace, &key.name, seen.experiment.as_ref());
        wake = r.wake.map(|w| w.at);
        if ok {
            backoff = Duration::ZERO;
        } else {
            shared.metrics.experiment_reconcile_error.get_or_create(&labels).inc();
            backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
            tracing::info!(experiment = %key, backoff = ?backoff, "retrying after a failed action");
            tokio::time::sleep(backoff).await;
            retry = true;
        }
    }
    shared.metrics.observe_experiment(&key.namespace, &key.name, None);
    tracing::info!(experiment = %key, "deleted; worker stopped");
}

/// Carries out one Experiment's reconciles.
struct Executor<'a> {
    key: &'a RolloutKey,
    shared: &'a Shared,
}

impl Executor<'_> {
    fn ns(&self) -> &str {
        &self.key.namespace
    }

    /// Executes the actions in order, then the rollout events and the status write; on the
    /// first failure re-reads what the failed and skipped actions were about (and the
    /// Experiment) and returns false.
    async fn execute(&self, ex: &Experiment, r: &ExperimentReconcile, seen: &mut Observations) -> bool {
        for (i, action) in r.actions.iter().enumerate() {
            let Err(error) = super::worker::within_request_timeout(self.execute_one(ex, action, seen)).await else { continue };
            tracing::warn!(experiment = %self.key, action = action_name(action), %error, "action failed");
            let mut targets: Vec<(ObjectKind, String)> = r.actions[i..].iter().filter_map(target).collect();
            targets.sort();
            targets.dedup();
            targets.push((ObjectKind::Experiment, self.key.name.clone()));
            self.reread(&targets, seen).await;
            return false;
        }
        if let Some(rollout) = owning_rollout(ex) {
            for action in &r.rollout_events {
                if let Action::RecordEvent { kind, reason, message } = action {
                    // Queued: the recorder writes it in the background, best effort.
                    self.record_event(&rollout, *kind, reason, message);
                }
            }
        }
        match super::worker::within_request_timeout(self.write_status(ex, &r.status)).await {
            Ok(Some(written)) => {
                seen.apply(Event::Applied(Object::Experiment(written)));
                true
            }
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(experiment = %self.key, %error, "cannot write the status");
                self.reread(&[(ObjectKind::Experiment, self.key.name.clone())], seen).await;
                false
            }
        }
    }

    /// Writes `status` when it differs from the Experiment's; the object as written.
    async fn write_status(&self, ex: &Experiment, status: &ExperimentStatus) -> Result<Option<Value>, Failure> {
        let Some(patch) = status_patch(&ex.status, status) else { return Ok(None) };
        let api: Api<DynamicObject> = Api::namespaced_with(self.shared.client.clone(), self.ns(), &experiment_resource());
        let written = api
            .patch(&self.key.name, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": patch })))
            .await
            .map_err(|e| message(&e))?;
        Ok(Some(serde_json::to_value(written).map_err(|e| e.to_string())?))
    }

    async fn execute_one(&self, ex: &Experiment, action: &Action, seen: &mut Observations) -> Result<(), Failure> {
        let client = self.shared.client.clone();
        let ns = self.ns();
        let params = PatchParams::default();
        match action {
            Action::CreateReplicaSet { replica_set } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, ns);
                let mut rs = (**replica_set).clone();
                rs.metadata.namespace = Some(ns.to_string());
                let created = create_controlled(&api, &rs, "replicaset", ex).await?;
                seen.apply(Event::Applied(Object::ReplicaSet(Arc::new(created))));
                Ok(())
            }
            Action::PatchReplicaSet { name, patch } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, ns);
                let rs = api.patch(name, &params, &Patch::Merge(patch.to_merge_patch())).await.map_err(|e| message(&e))?;
                seen.apply(Event::Applied(Object::ReplicaSet(Arc::new(rs))));
                Ok(())
            }
            Action::CreateService { service } => {
                let api: Api<Service> = Api::namespaced(client, ns);
                let mut svc = (**service).clone();
                svc.metadata.namespace = Some(ns.to_string());
                let created = create_controlled(&api, &svc, "service", ex).await?;
                seen.apply(Event::Applied(Object::Service(Arc::new(created))));
                Ok(())
            }
            Action::DeleteService { name } => {
                let api: Api<Service> = Api::namespaced(client, ns);
                match api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if code(&e) == Some(404) => {}
                    Err(e) => return Err(message(&e)),
                }
                seen.remove(ObjectKind::Service, name);
                Ok(())
            }
            Action::CreateAnalysisRun { run } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &analysis_run_resource());
                let mut value = serde_json::to_value(run).map_err(|e| e.to_string())?;
                value["metadata"]["namespace"] = ns.into();
                let obj: DynamicObject = serde_json::from_value(value).map_err(|e| e.to_string())?;
                let created = create_controlled(&api, &obj, "analysisrun", ex).await?;
                seen.apply(Event::Applied(Object::AnalysisRun(serde_json::to_value(created).map_err(|e| e.to_string())?)));
                Ok(())
            }
            Action::PatchAnalysisRun { name, patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &analysis_run_resource());
                let run = api.patch(name, &params, &Patch::Merge(patch)).await.map_err(|e| message(&e))?;
                seen.apply(Event::Applied(Object::AnalysisRun(serde_json::to_value(run).map_err(|e| e.to_string())?)));
                Ok(())
            }
            Action::RecordEvent { kind, reason, message: note } => {
                self.record_event(&self.own_reference(Some(ex)), *kind, reason, note);
                Ok(())
            }
            Action::WakeAt { .. } => Ok(()),
            // The rollout machine's actions: the Experiment machine never returns them.
            Action::DeleteReplicaSet { .. }
            | Action::SetServiceSelector { .. }
            | Action::PatchRolloutStatus { .. }
            | Action::PatchRollout { .. }
            | Action::EvictPod { .. }
            | Action::PatchPodMetadata { .. }
            | Action::DeleteAnalysisRun { .. }
            | Action::CreateExperiment { .. }
            | Action::PatchExperiment { .. }
            | Action::DeleteExperiment { .. }
            | Action::Measure { .. }
            | Action::CreateJob { .. }
            | Action::DeleteJob { .. }
            | Action::ScaleDeployment { .. }
            | Action::CreateIngress { .. }
            | Action::PatchIngress { .. }
            | Action::CreateRoute { .. }
            | Action::PatchRoute { .. }
            | Action::DeleteRoute { .. } => Err(format!("{} is not an action of an Experiment", action_name(action))),
        }
    }

    /// Reads objects again after a failure (gone ones are removed).
    async fn reread(&self, targets: &[(ObjectKind, String)], seen: &mut Observations) {
        for (kind, name) in targets {
            match super::worker::within_request_timeout(async { self.read(*kind, name).await.map_err(|e| e.to_string()) }).await {
                Ok(Some(obj)) => seen.apply(Event::Applied(obj)),
                Ok(None) => seen.remove(*kind, name),
                Err(e) => tracing::warn!(experiment = %self.key, ?kind, %name, error = %e, "cannot re-read"),
            }
        }
    }

    async fn read(&self, kind: ObjectKind, name: &str) -> Result<Option<Object>, kube::Error> {
        let (client, ns) = (self.shared.client.clone(), self.ns());
        let raw = |o: Option<DynamicObject>| o.and_then(|o| serde_json::to_value(o).ok());
        Ok(match kind {
            ObjectKind::Experiment => {
                raw(Api::namespaced_with(client, ns, &experiment_resource()).get_opt(name).await?).map(Object::Experiment)
            }
            ObjectKind::AnalysisRun => {
                raw(Api::namespaced_with(client, ns, &analysis_run_resource()).get_opt(name).await?).map(Object::AnalysisRun)
            }
            ObjectKind::ReplicaSet => {
                Api::<ReplicaSet>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::ReplicaSet(Arc::new(o)))
            }
            ObjectKind::Service => Api::<Service>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Service(Arc::new(o))),
            ObjectKind::Rollout
            | ObjectKind::Pod
            | ObjectKind::Job
            | ObjectKind::AnalysisTemplate
            | ObjectKind::ClusterAnalysisTemplate
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
            | ObjectKind::PodTemplate => None,
        })
    }

    /// The Experiment, as the object of its events.
    fn own_reference(&self, ex: Option<&Experiment>) -> ObjectReference {
        ObjectReference {
            api_version: Some(rollouts_core::api::API_VERSION.to_string()),
            kind: Some("Experiment".to_string()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: ex.and_then(|e| e.metadata.uid.clone()),
            ..ObjectReference::default()
        }
    }

    /// Records a Kubernetes Event on `object`; a failure is logged, never fatal.
    fn record_event(&self, object: &ObjectReference, kind: EventType, reason: &str, note: &str) {
        let name = object.name.as_deref().unwrap_or_default();
        tracing::info!(experiment = %self.key, object = %name, kind = object.kind.as_deref().unwrap_or_default(), reason, message = note, "event");
        self.shared.record_event(&self.key.namespace, object, kind, reason, note);
    }
}

/// The Rollout owning the Experiment (an `experiment` step's), as the object of its events.
fn owning_rollout(ex: &Experiment) -> Option<ObjectReference> {
    let owner = ex.metadata.owner_references.iter().flatten().find(|o| o.kind == "Rollout")?;
    Some(ObjectReference {
        api_version: Some(owner.api_version.clone()),
        kind: Some("Rollout".to_string()),
        name: Some(owner.name.clone()),
        namespace: ex.metadata.namespace.clone(),
        uid: Some(owner.uid.clone()),
        ..ObjectReference::default()
    })
}

/// Creates an object the Experiment controls; the object as created. One that already exists
/// is taken when the Experiment is its controller (created before, by a retry or a previous
/// controller), else the create fails naming both.
async fn create_controlled<K>(api: &Api<K>, obj: &K, what: &str, ex: &Experiment) -> Result<K, Failure>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(created) => Ok(created),
        Err(e) if already_exists(&e) => {
            let name = obj.meta().name.clone().unwrap_or_default();
            let existing = api.get(&name).await.map_err(|e| message(&e))?;
            if controlled_by(existing.meta(), ex) {
                Ok(existing)
            } else {
                Err(format!(
                    "{what} {name:?} already exists and is not controlled by experiment {:?}",
                    ex.metadata.name.as_deref().unwrap_or_default()
                ))
            }
        }
        Err(e) => Err(message(&e)),
    }
}

/// Whether the Experiment is the object's controller (by uid).
fn controlled_by(meta: &ObjectMeta, ex: &Experiment) -> bool {
    let uid = ex.metadata.uid.as_deref().unwrap_or_default();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Experiment" && !uid.is_empty() && o.uid == uid)
}

/// The object an action is about (to read again after a failure).
fn target(action: &Action) -> Option<(ObjectKind, String)> {
    match action {
        Action::CreateReplicaSet { replica_set } => Some((ObjectKind::ReplicaSet, replica_set.metadata.name.clone()?)),
        Action::PatchReplicaSet { name, .. } => Some((ObjectKind::ReplicaSet, name.clone())),
        Action::CreateService { service } => Some((ObjectKind::Service, service.metadata.name.clone()?)),
        Action::DeleteService { name } => Some((ObjectKind::Service, name.clone())),
        Action::CreateAnalysisRun { run } => Some((ObjectKind::AnalysisRun, run.metadata.name.clone()?)),
        Action::PatchAnalysisRun { name, .. } => Some((ObjectKind::AnalysisRun, name.clone())),
        Action::RecordEvent { .. }
        | Action::WakeAt { .. }
        | Action::DeleteReplicaSet { .. }
        | Action::SetServiceSelector { .. }
        | Action::PatchRolloutStatus { .. }
        | Action::PatchRollout { .. }
        | Action::EvictPod { .. }
        | Action::PatchPodMetadata { .. }
        | Action::DeleteAnalysisRun { .. }
        | Action::CreateExperiment { .. }
        | Action::PatchExperiment { .. }
        | Action::DeleteExperiment { .. }
        | Action::Measure { .. }
        | Action::CreateJob { .. }
        | Action::DeleteJob { .. }
        | Action::ScaleDeployment { .. }
        | Action::CreateIngress { .. }
        | Action::PatchIngress { .. }
        | Action::CreateRoute { .. }
        | Action::PatchRoute { .. }
        | Action::DeleteRoute { .. } => None,
    }
}
