//! One task per rollout (or per AnalysisRun no rollout owns): it owns the `State`, takes
//! every event that arrived (coalescing them like a work queue), reconciles once, executes
//! the actions in order, and sleeps until the next event or the wake-up the core asked for.
//! A run's State has no Rollout: the core's step advances its runs all the same.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplate, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, DynamicObject, EvictParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder};
use kube::{Api, Client};
use rollouts_core::state::{Action, Event, EventType, Object, ObjectKind, State};
use rollouts_core::{step_batch, Timestamp};
use tokio::sync::mpsc::{UnboundedReceiver, WeakUnboundedSender};

use super::metrics::{elapsed, EventKind, EventLabels, Metrics, RolloutLabels};
use super::router::RolloutKey;
use super::trace::Trace;
use crate::kubeapi::{analysis_run_resource, experiment_resource, rollout_resource, route_resource};

/// What every worker shares.
pub struct Shared {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub trace: Option<Trace>,
    /// A periodic Tick when the core asked for no wake-up (Argo's resync).
    pub resync: Duration,
    /// Sends the notifications of recorded events.
    pub notifier: crate::notifications::Notifier,
}

/// Longest wait between retries of a failing reconcile.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait for the API server's answer to one write or read of a worker. A request
/// that outlives it (an API server that stopped answering mid-request, a connection lost
/// without a reset) is a failed action: the objects are read again and the reconcile is
/// retried with backoff, rather than the worker waiting forever. Watches are not affected.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one API request of a worker under [`REQUEST_TIMEOUT`].
pub(super) async fn within_request_timeout<T>(request: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from the API server within {}s", REQUEST_TIMEOUT.as_secs())))
}

/// Fire timers a little after the second they name: the core works in whole seconds.
const WAKE_MARGIN: Duration = Duration::from_millis(20);

/// The current time as the core sees it.
pub fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// How long until `at` (and a margin), as a sleep.
pub(super) fn until(at: Timestamp) -> Duration {
    let target = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix()).unwrap_or(0));
    target.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO) + WAKE_MARGIN
}

/// Runs a rollout's (or a run's) reconciles until its channel closes (it was deleted).
pub async fn run(key: RolloutKey, mut rx: UnboundedReceiver<Event>, me: WeakUnboundedSender<Event>, shared: Arc<Shared>) {
    let mut state = State::default();
    let mut wake: Option<Timestamp> = None;
    let mut backoff = Duration::ZERO;
    let mut first = true;
    let labels = RolloutLabels { namespace: key.namespace.clone(), name: key.name.clone() };
    loop {
        let mut events = Vec::new();
        let sleep = wake.map_or(shared.resync, until);
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(e) => events.push(e),
                None => break,
            },
            () = tokio::time::sleep(sleep) => events.push(Event::Tick),
        }
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        let started = Instant::now();
        let now = now();
        if std::mem::take(&mut first) {
            // After the objects the router listed: take up what a previous controller left in flight.
            events.push(Event::Resync);
        }
        let before = shared.notifier.before(&state);
        let actions = step_batch(&mut state, events.iter().cloned(), now);
        if let Some(trace) = &shared.trace {
            trace.record(&key, now, &events, &actions);
        }
        wake = actions.iter().find_map(|a| match a {
            Action::WakeAt { at, .. } => Some(*at),
            _ => None,
        });
        let exec = Executor { key: &key, shared: &shared, me: &me, state: &state, before: &before };
        let ok = exec.execute(&actions).await;
        if key.is_rollout() {
            shared.metrics.reconcile.get_or_create(&labels).observe(elapsed(started));
            shared.metrics.observe_rollout(&key.namespace, &key.name, state.rollout.as_ref(), state.spec_error.is_some());
        }
        if ok {
            backoff = Duration::ZERO;
        } else {
            if key.is_rollout() {
                shared.metrics.reconcile_error.get_or_create(&labels).inc();
            }
            backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
            tracing::info!(rollout = %key, backoff = ?backoff, "retrying after a failed action");
            tokio::time::sleep(backoff).await;
        }
    }
    if key.is_rollout() {
        shared.metrics.observe_rollout(&key.namespace, &key.name, None, false);
    }
    tracing::info!(rollout = %key, "deleted; worker stopped");
}

/// Carries out one reconcile's actions.
struct Executor<'a> {
    key: &'a RolloutKey,
    shared: &'a Shared,
    me: &'a WeakUnboundedSender<Event>,
    state: &'a State,
    /// The rollout before this reconcile, for the notifications of its events.
    before: &'a crate::notifications::notifier::Before,
}

/// Why an action failed.
pub(super) type Failure = String;

impl Executor<'_> {
    fn send(&self, event: Event) {
        if let Some(tx) = self.me.upgrade() {
            let _ = tx.send(event);
        }
    }

    fn client(&self) -> Client {
        self.shared.client.clone()
    }

    /// The namespace of a router object the rollout names, when not its own (Gateway API
    /// routes' `namespace`, an Istio VirtualService's `name.namespace`).
    fn route_namespace(&self, kind: rollouts_core::api::RouteKind, name: &str) -> Option<String> {
        let ro = self.state.rollout.as_ref()?;
        rollouts_core::rollout::references(ro).routes.into_iter().find(|r| r.kind == kind && r.name == name)?.namespace
    }

    fn ns(&self) -> &str {
        &self.key.namespace
    }

    /// Executes `actions` in order; on the first failure reports it, re-reads what the
    /// failed and skipped actions were about, and returns false.
    async fn execute(&self, actions: &[Action]) -> bool {
        for (i, action) in actions.iter().enumerate() {
            let Err(error) = within_request_timeout(self.execute_one(action)).await else { continue };
            tracing::warn!(rollout = %self.key, action = action_name(action), %error, "action failed");
            self.send(Event::ActionFailed { action: Box::new(action.clone()), error });
            let mut targets: BTreeSet<(ObjectKind, String)> =
                actions[i..].iter().filter_map(target).collect();
            targets.insert((self.key.object_kind(), self.key.name.clone()));
            for (kind, name) in targets {
                match within_request_timeout(async { self.read(kind, &name).await.map_err(|e| e.to_string()) }).await {
                    Ok(Some(obj)) => self.send(Event::Applied(obj)),
                    Ok(None) => self.send(Event::Deleted { kind, name }),
                    Err(e) => tracing::warn!(rollout = %self.key, ?kind, %name, error = %e, "cannot re-read"),
                }
            }
            return false;
        }
        true
    }

    async fn execute_one(&self, action: &Action) -> Result<(), Failure> {
        let client = self.client();
        let ns = self.ns().to_string();
        let params = PatchParams::default();
        match action {
            Action::CreateReplicaSet { replica_set } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                let mut rs = (**replica_set).clone();
                rs.metadata.namespace = Some(ns.clone());
                // Successes come back through the watch, like every other change.
                match api.create(&PostParams::default(), &rs).await {
                    Ok(_) => Ok(()),
                    Err(e) if code(&e) == Some(409) => {
                        // Created before (a retry, or a restarted controller): fine if it is ours.
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        let existing = api.get(&name).await.map_err(|e| message(&e))?;
                        let ours = existing
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.kind == "Rollout" && o.name == self.key.name);
                        if ours {
                            Ok(())
                        } else {
                            Err(format!("replicaset {name:?} already exists and is not owned by rollout {:?}", self.key.name))
                        }
                    }
                    Err(e) => Err(message(&e)),
                }
            }
            Action::PatchReplicaSet { name, patch } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                api.patch(name, &params, &Patch::Merge(patch.to_merge_patch())).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteReplicaSet { name } => {
                let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            // An Experiment template's Service (the Experiment workers create theirs in
            // `experiment.rs`; the rollout machine does not return these today).
            Action::CreateService { service } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                let mut svc = (**service).clone();
                svc.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &svc).await {
                    Ok(_) => Ok(()),
                    Err(e) if code(&e) == Some(409) => {
                        // Created before: fine if its controller is the one this Service names.
                        let name = svc.metadata.name.clone().unwrap_or_default();
                        let existing = api.get(&name).await.map_err(|e| message(&e))?;
                        let controller = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                            m.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
                        };
                        let wanted = controller(&svc.metadata);
                        if wanted.is_some() && controller(&existing.metadata) == wanted {
                            Ok(())
                        } else {
                            Err(format!("service {name:?} already exists and has another controller"))
                        }
                    }
                    Err(e) => Err(message(&e)),
                }
            }
            Action::DeleteService { name } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::SetServiceSelector { service, hash, managed_by } => {
                let api: Api<Service> = Api::namespaced(client, &ns);
                let mut patch = serde_json::json!({
                    "spec": {"selector": {rollouts_core::api::keys::POD_TEMPLATE_HASH: hash}}
                });
                if let Some(owner) = managed_by {
                    patch["metadata"] = serde_json::json!({
                        "annotations": {rollouts_core::api::keys::MANAGED_BY_ROLLOUTS: owner}
                    });
                }
                api.patch(service, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::PatchRolloutStatus { patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &rollout_resource());
                api.patch_status(&self.key.name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::PatchRollout { patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &rollout_resource());
                api.patch(&self.key.name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::EvictPod { name } => {
                let api: Api<Pod> = Api::namespaced(client, &ns);
                match api.evict(name, &EvictParams::default()).await {
                    Ok(_) => Ok(()),
                    // A disruption budget refused it: the core asks again later.
                    Err(e) if code(&e) == Some(429) => {
                        tracing::info!(rollout = %self.key, pod = %name, "eviction refused by a disruption budget");
                        Ok(())
                    }
                    Err(e) => gone_is_fine(Err(e)),
                }
            }
            Action::PatchPodMetadata { name, patch } => {
                // In place: a pod's labels and annotations change without a restart.
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let patch = serde_json::json!({ "metadata": patch.to_merge_patch() });
                gone_is_fine(api.patch(name, &params, &Patch::Merge(patch)).await.map(drop))
            }
            Action::CreateAnalysisRun { run } => create_argo_object(client, &ns, &analysis_run_resource(), run).await,
            Action::PatchAnalysisRun { name, patch } => {
                // Like Argo's, the AnalysisRun CRD has no status subresource.
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &analysis_run_resource());
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteAnalysisRun { name } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &analysis_run_resource());
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::CreateExperiment { experiment } => {
                create_argo_object(client, &ns, &experiment_resource(), experiment).await
            }
            Action::PatchExperiment { name, patch } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &experiment_resource());
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteExperiment { name } => {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &experiment_resource());
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::CreateIngress { ingress } => {
                let api: Api<Ingress> = Api::namespaced(client, &ns);
                let mut ing = (**ingress).clone();
                ing.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &ing).await {
                    Ok(_) => Ok(()),
                    // Created meanwhile: the re-read lets the core patch it or say whose it is.
                    Err(e) => Err(message(&e)),
                }
            }
            Action::PatchIngress { name, patch } => {
                let api: Api<Ingress> = Api::namespaced(client, &ns);
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::CreateRoute { kind, object } => {
                let mut object = object.clone();
                if *kind == rollouts_core::api::RouteKind::TrafficSplit {
                    // The controller's TrafficSplit version (v1alpha1 weights are quantities).
                    let api_version = crate::kubeapi::route_api_version(*kind);
                    let version = api_version.rsplit_once('/').map_or(api_version.as_str(), |(_, v)| v);
                    object = rollouts_core::traffic::smi::in_version(&object, version);
                }
                if *kind == rollouts_core::api::RouteKind::Mapping {
                    // A clone of the base Mapping, written in the controller's Mapping API
                    // (--ambassador-api-version) whatever the base was read as.
                    let resource = route_resource(*kind);
                    object["apiVersion"] = serde_json::json!(resource.api_version);
                    object["kind"] = serde_json::json!(resource.kind);
                }
                let route_ns = object.pointer("/metadata/namespace").and_then(serde_json::Value::as_str).unwrap_or(&ns).to_string();
                let obj: DynamicObject = match serde_json::from_value(object) {
                    Ok(o) => o,
                    Err(e) => return Err(format!("{} is not an object: {e}", kind.as_str())),
                };
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                // Created meanwhile: the re-read lets the core patch it or say whose it is.
                api.create(&PostParams::default(), &obj).await.map(drop).map_err(|e| message(&e))
            }
            Action::PatchRoute { kind, namespace, name, patch } => {
                let route_ns = namespace.clone().unwrap_or_else(|| ns.clone());
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::DeleteRoute { kind, namespace, name } => {
                let route_ns = namespace.clone().unwrap_or_else(|| ns.clone());
                let api: Api<DynamicObject> = Api::namespaced_with(client, &route_ns, &route_resource(*kind));
                gone_is_fine(api.delete(name, &DeleteParams::background()).await.map(drop))
            }
            Action::Measure { run, metric, index, provider, secrets, context } => {
                let (client, me) = (self.client(), self.me.clone());
                let (run, metric, index, provider, secrets, context) =
                    (run.clone(), metric.clone(), *index, provider.clone(), secrets.clone(), context.clone());
                tokio::spawn(async move {
                    let answer = crate::providers::measure(&client, &ns, &provider, &secrets, &context).await;
                    if let Some(tx) = me.upgrade() {
                        let _ = tx.send(Event::Measured { run, metric, index, answer });
                    }
                });
                Ok(())
            }
            Action::CreateJob { job } => {
                let api: Api<Job> = Api::namespaced(client, &ns);
                let mut job = (**job).clone();
                job.metadata.namespace = Some(ns.clone());
                match api.create(&PostParams::default(), &job).await {
                    Ok(_) => Ok(()),
                    Err(e) if code(&e) == Some(409) => Ok(()),
                    Err(e) => Err(message(&e)),
                }
            }
            Action::DeleteJob { name } => {
                let api: Api<Job> = Api::namespaced(client, &ns);
                gone_is_fine(api.delete(name, &DeleteParams::foreground()).await.map(drop))
            }
            Action::ScaleDeployment { name, replicas } => {
                let api: Api<Deployment> = Api::namespaced(client, &ns);
                let patch = serde_json::json!({"spec": {"replicas": replicas}});
                api.patch(name, &params, &Patch::Merge(patch)).await.map(drop).map_err(|e| message(&e))
            }
            Action::RecordEvent { kind, reason, message: note } => {
                self.record_event(*kind, reason, note).await;
                let (ns, name) = (&self.key.namespace, &self.key.name);
                self.shared.notifier.notify(ns, name, self.state, *kind, reason, note, self.before);
                Ok(())
            }
            Action::WakeAt { .. } => Ok(()),
        }
    }

    /// Records a Kubernetes Event on the rollout; a failure is logged, never fatal.
    async fn record_event(&self, kind: EventType, reason: &str, note: &str) {
        let type_label = match kind {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        self.shared
            .metrics
            .events
            .get_or_create(&EventLabels {
                namespace: self.key.namespace.clone(),
                name: self.key.name.clone(),
                event: EventKind { r#type: type_label.to_string(), reason: reason.to_string() },
            })
            .inc();
        tracing::info!(rollout = %self.key, reason, message = note, "event");
        let reference = ObjectReference {
            api_version: Some(rollouts_core::api::API_VERSION.to_string()),
            kind: Some("Rollout".to_string()),
            name: Some(self.key.name.clone()),
            namespace: Some(self.key.namespace.clone()),
            uid: self.state.rollout.as_ref().and_then(|r| r.metadata.uid.clone()),
            ..ObjectReference::default()
        };
        let event = KubeEvent {
            type_: match kind {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(note.to_string()),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.shared.recorder.publish(&event, &reference).await {
            tracing::warn!(rollout = %self.key, reason, error = %e, "cannot record event");
        }
    }

    /// Reads an object back (after a failed action).
    async fn read(&self, kind: ObjectKind, name: &str) -> Result<Option<Object>, kube::Error> {
        let (client, ns) = (self.client(), self.ns());
        fn dynamic(o: Option<DynamicObject>, f: fn(serde_json::Value) -> Object) -> Option<Object> {
            o.and_then(|o| serde_json::to_value(o).ok()).map(f)
        }
        Ok(match kind {
            ObjectKind::Rollout => {
                dynamic(Api::namespaced_with(client, ns, &rollout_resource()).get_opt(name).await?, |v| Object::Rollout(v.into()))
            }
            ObjectKind::AnalysisRun => {
                dynamic(Api::namespaced_with(client, ns, &analysis_run_resource()).get_opt(name).await?, Object::AnalysisRun)
            }
            ObjectKind::Experiment => {
                dynamic(Api::namespaced_with(client, ns, &experiment_resource()).get_opt(name).await?, Object::Experiment)
            }
            ObjectKind::ReplicaSet => {
                Api::<ReplicaSet>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::ReplicaSet(Box::new(o)))
            }
            ObjectKind::Service => Api::<Service>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Service(Box::new(o))),
            ObjectKind::Pod => Api::<Pod>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Pod(Box::new(o))),
            ObjectKind::Job => Api::<Job>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Job(Box::new(o))),
            ObjectKind::Ingress => {
                Api::<Ingress>::namespaced(client, ns).get_opt(name).await?.map(|o| Object::Ingress(Box::new(o)))
            }
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
                let Some(route) = kind.route_kind() else { return Ok(None) };
                let route_ns = self.route_namespace(route, name).unwrap_or_else(|| ns.to_string());
                dynamic(Api::namespaced_with(client, &route_ns, &route_resource(route)).get_opt(name).await?, Object::Route)
            }
            ObjectKind::Deployment => {
                Api::<Deployment>::namespaced(client, ns).get_opt(name).await?.and_then(|o| serde_json::to_value(o).ok()).map(Object::Workload)
            }
            ObjectKind::PodTemplate => {
                Api::<PodTemplate>::namespaced(client, ns).get_opt(name).await?.and_then(|o| serde_json::to_value(o).ok()).map(Object::Workload)
            }
            // Templates are only read, never written: nothing to re-read.
            ObjectKind::AnalysisTemplate | ObjectKind::ClusterAnalysisTemplate => return Ok(None),
        })
    }
}

/// The object an action is about.
fn target(action: &Action) -> Option<(ObjectKind, String)> {
    match action {
        Action::CreateReplicaSet { replica_set } => {
            Some((ObjectKind::ReplicaSet, replica_set.metadata.name.clone().unwrap_or_default()))
        }
        Action::PatchReplicaSet { name, .. } | Action::DeleteReplicaSet { name } => Some((ObjectKind::ReplicaSet, name.clone())),
        Action::SetServiceSelector { service, .. } => Some((ObjectKind::Service, service.clone())),
        Action::CreateService { service } => Some((ObjectKind::Service, service.metadata.name.clone().unwrap_or_default())),
        Action::DeleteService { name } => Some((ObjectKind::Service, name.clone())),
        Action::PatchRolloutStatus { .. } | Action::PatchRollout { .. } | Action::RecordEvent { .. } | Action::WakeAt { .. } => None,
        Action::EvictPod { name } | Action::PatchPodMetadata { name, .. } => Some((ObjectKind::Pod, name.clone())),
        Action::CreateAnalysisRun { run } => Some((ObjectKind::AnalysisRun, run.metadata.name.clone().unwrap_or_default())),
        Action::PatchAnalysisRun { name, .. } | Action::DeleteAnalysisRun { name } => Some((ObjectKind::AnalysisRun, name.clone())),
        Action::Measure { run, .. } => Some((ObjectKind::AnalysisRun, run.clone())),
        Action::CreateExperiment { experiment } => {
            Some((ObjectKind::Experiment, experiment.metadata.name.clone().unwrap_or_default()))
        }
        Action::PatchExperiment { name, .. } | Action::DeleteExperiment { name } => Some((ObjectKind::Experiment, name.clone())),
        Action::CreateJob { job } => Some((ObjectKind::Job, job.metadata.name.clone().unwrap_or_default())),
        Action::DeleteJob { name } => Some((ObjectKind::Job, name.clone())),
        Action::ScaleDeployment { name, .. } => Some((ObjectKind::Deployment, name.clone())),
        Action::CreateIngress { ingress } => Some((ObjectKind::Ingress, ingress.metadata.name.clone().unwrap_or_default())),
        Action::PatchIngress { name, .. } => Some((ObjectKind::Ingress, name.clone())),
        Action::CreateRoute { kind, object } => {
            Some(((*kind).into(), object.pointer("/metadata/name").and_then(serde_json::Value::as_str).unwrap_or_default().to_string()))
        }
        Action::PatchRoute { kind, name, .. } | Action::DeleteRoute { kind, name, .. } => Some(((*kind).into(), name.clone())),
    }
}

/// A short name of an action, for logs.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CreateReplicaSet { .. } => "CreateReplicaSet",
        Action::PatchReplicaSet { .. } => "PatchReplicaSet",
        Action::DeleteReplicaSet { .. } => "DeleteReplicaSet",
        Action::SetServiceSelector { .. } => "SetServiceSelector",
        Action::CreateService { .. } => "CreateService",
        Action::DeleteService { .. } => "DeleteService",
        Action::PatchRolloutStatus { .. } => "PatchRolloutStatus",
        Action::PatchRollout { .. } => "PatchRollout",
        Action::EvictPod { .. } => "EvictPod",
        Action::PatchPodMetadata { .. } => "PatchPodMetadata",
        Action::CreateAnalysisRun { .. } => "CreateAnalysisRun",
        Action::PatchAnalysisRun { .. } => "PatchAnalysisRun",
        Action::DeleteAnalysisRun { .. } => "DeleteAnalysisRun",
        Action::CreateExperiment { .. } => "CreateExperiment",
        Action::PatchExperiment { .. } => "PatchExperiment",
        Action::DeleteExperiment { .. } => "DeleteExperiment",
        Action::Measure { .. } => "Measure",
        Action::CreateJob { .. } => "CreateJob",
        Action::DeleteJob { .. } => "DeleteJob",
        Action::ScaleDeployment { .. } => "ScaleDeployment",
        Action::CreateIngress { .. } => "CreateIngress",
        Action::PatchIngress { .. } => "PatchIngress",
        Action::CreateRoute { .. } => "CreateRoute",
        Action::PatchRoute { .. } => "PatchRoute",
        Action::DeleteRoute { .. } => "DeleteRoute",
        Action::RecordEvent { .. } => "RecordEvent",
        Action::WakeAt { .. } => "WakeAt",
    }
}

/// Creates an object of one of Argo's kinds (an AnalysisRun, an Experiment) in `ns`. One
/// that already exists is done: the rollout names them deterministically and re-reads them.
async fn create_argo_object(
    client: Client,
    ns: &str,
    resource: &kube::core::ApiResource,
    object: &impl serde::Serialize,
) -> Result<(), Failure> {
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, resource);
    let mut value = serde_json::to_value(object).map_err(|e| e.to_string())?;
    value["metadata"]["namespace"] = ns.into();
    let obj: DynamicObject = serde_json::from_value(value).map_err(|e| e.to_string())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some(409) => Ok(()),
        Err(e) => Err(message(&e)),
    }
}

/// The HTTP status of an API error.
pub(super) fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// What an error says (the API server's message for an API error).
pub(super) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Deleting what is already gone is done.
fn gone_is_fine(r: Result<(), kube::Error>) -> Result<(), Failure> {
    match r {
        Err(e) if code(&e) == Some(404) => Ok(()),
        Err(e) => Err(message(&e)),
        Ok(()) => Ok(()),
    }
}
