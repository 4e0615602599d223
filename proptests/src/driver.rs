//! A small cluster that drives [`rollouts_core::step`] directly, following the run-loop
//! contract of `core/src/lib.rs`: every observation goes in as [`Event::Applied`] /
//! [`Event::Deleted`], the returned actions are executed in order, and the latest
//! [`Action::WakeAt`] is the only timer. User commands are the patches Argo's kubectl
//! plugin makes.
//!
//! It is the step-level harness of the properties, independent of the simulator, with
//! two knobs:
//!
//! * [`Pods`]: `Instant` — a ReplicaSet's status follows its spec at once (every replica
//!   ready and available, none for a never-ready image), no pods; or `Simulated` — pods
//!   that become ready `startup` seconds after creation and available `minReadySeconds`
//!   later, created and deleted the way the simulator's ReplicaSet controller does it.
//! * [`Delivery`]: `Snapshot` — one `step` per watch event, each event carrying the object
//!   as it was when the change happened, delivered in order, in batches (so an event can
//!   be older than the controller's own later write); `Coalesced` — the same batches, each
//!   observed in full and then reconciled once, as the simulator does; or `Latest` — one
//!   `step` per event, each carrying the object as it is when delivered (an informer cache
//!   that is never behind the API server).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, Service};
use rollouts_core::objects::to_kube_time;
use rollouts_core::state::{Action, Event, Object, ObjectKind, State};
use rollouts_core::time::{Seconds, Timestamp};
use serde_json::{json, Value};

use crate::scenario::{Cmd, Timed};
use crate::spec::{CONTAINER, IMAGES};

/// Reconciles allowed at one instant before the driver reports a hot loop.
pub const MAX_STEPS_PER_INSTANT: usize = 2_000;

/// The start of every driven run (2024-01-01T00:00:00Z), as in the simulator.
pub const EPOCH: Timestamp = Timestamp::from_unix(1_704_067_200);

/// How pods behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pods {
    /// No pods; ReplicaSet statuses follow their specs at once.
    Instant,
    /// Pods ready `startup` seconds after creation.
    Simulated {
        /// Seconds from creation to Ready.
        startup: i64,
    },
}

/// What a watch event carries, and how events reach the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One `step` per watch event, each carrying the object as it was at the change (so
    /// it may be older than the controller's own later write): rule 1 of the run-loop
    /// contract, taken literally.
    Snapshot,
    /// The same snapshots, but each batch (the events caused by the previous batch's
    /// actions) is observed in full and followed by one reconcile: rule 5 of the
    /// contract, what the simulator does.
    Coalesced,
    /// One `step` per watch event, each carrying the object as it is when delivered (an
    /// informer cache never older than the API server).
    Latest,
}

/// One call of `step`, as recorded by the driver.
#[derive(Clone, Debug)]
pub struct Call {
    /// The state before.
    pub state: State,
    /// The event.
    pub event: Event,
    /// The time.
    pub now: Timestamp,
    /// The state `step` returned.
    pub state_after: State,
    /// The actions `step` returned.
    pub actions: Vec<Action>,
}

/// A pod as the driver tracks it.
#[derive(Clone, Debug)]
struct DriverPod {
    replica_set: String,
    created: Timestamp,
    ready_at: Option<Timestamp>,
    ready_announced: bool,
}

/// The cluster and the controller state it feeds.
pub struct Driver {
    /// The virtual clock.
    pub now: Timestamp,
    /// The Rollout as stored (spec, metadata, status).
    pub rollout: Value,
    /// ReplicaSets as stored.
    pub replica_sets: BTreeMap<String, ReplicaSet>,
    /// Services as stored.
    pub services: BTreeMap<String, Service>,
    /// The controller's state.
    pub state: State,
    /// The controller's timer.
    pub wake: Option<Timestamp>,
    /// Images whose pods never become ready.
    pub unready_images: BTreeSet<String>,
    /// Pod behaviour.
    pub pods_mode: Pods,
    /// Watch-event payloads.
    pub delivery: Delivery,
    pods: BTreeMap<String, DriverPod>,
    next_pod: u64,
    /// Watch events not yet delivered (the next batch).
    queue: Vec<Event>,
    /// Every `step` call, when recording.
    pub calls: Option<Vec<Call>>,
    /// Number of `step` calls made.
    pub steps: usize,
    /// Reconciles allowed at one instant before [`DriveError::HotLoop`].
    pub max_steps_per_instant: usize,
}

/// Why a driven run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveError {
    /// More than [`Driver::max_steps_per_instant`] reconciles at one instant.
    HotLoop {
        /// Seconds since [`EPOCH`].
        t: i64,
    },
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn rs_images(rs: &ReplicaSet) -> Vec<String> {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|p| p.containers.iter().filter_map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

fn rs_spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

impl Driver {
    /// A cluster holding `objects` (Services and one Rollout manifest), with instant pods
    /// and snapshot delivery, and the watch events a starting controller would get.
    pub fn new(objects: &[Value], unready_images: BTreeSet<String>) -> Self {
        Self::with(objects, unready_images, Pods::Instant, Delivery::Snapshot)
    }

    /// The same, with the given pod behaviour and delivery.
    pub fn with(objects: &[Value], unready_images: BTreeSet<String>, pods_mode: Pods, delivery: Delivery) -> Self {
        let mut d = Driver {
            now: EPOCH,
            rollout: Value::Null,
            replica_sets: BTreeMap::new(),
            services: BTreeMap::new(),
            state: State::default(),
            wake: None,
            unready_images,
            pods_mode,
            delivery,
            pods: BTreeMap::new(),
            next_pod: 0,
            queue: Vec::new(),
            calls: None,
            steps: 0,
            max_steps_per_instant: MAX_STEPS_PER_INSTANT,
        };
        for obj in objects {
            match obj.get("kind").and_then(Value::as_str) {
                Some("Service") => {
                    let mut obj = obj.clone();
                    obj["metadata"]["namespace"] = json!("default");
                    if let Ok(svc) = serde_json::from_value::<Service>(obj) {
                        let name = svc.metadata.name.clone().unwrap_or_default();
                        d.queue.push(Event::Applied(Object::Service(Box::new(svc.clone()))));
                        d.services.insert(name, svc);
                    }
                }
                Some("Rollout") => {
                    let mut obj = obj.clone();
                    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                    merge_patch(
                        &mut obj,
                        &json!({"metadata": {
                            "namespace": "default",
                            "uid": format!("uid-rollout-{name}"),
                            "generation": 1,
                            "creationTimestamp": EPOCH.to_rfc3339(),
                        }}),
                    );
                    d.rollout = obj;
                }
                _ => {}
            }
        }
        d.emit_rollout();
        d
    }

    /// Starts recording every `step` call.
    pub fn record(mut self) -> Self {
        self.calls = Some(Vec::new());
        self
    }

    fn emit_rollout(&mut self) {
        if !self.rollout.is_null() {
            self.queue.push(Event::Applied(Object::Rollout(self.rollout.clone())));
        }
    }

    fn emit_rs(&mut self, name: &str) {
        if let Some(rs) = self.replica_sets.get(name) {
            self.queue.push(Event::Applied(Object::ReplicaSet(Box::new(rs.clone()))));
        }
    }

    /// Seconds since [`EPOCH`].
    pub fn t(&self) -> i64 {
        self.now.since(EPOCH).0
    }

    fn image_ready(&self, images: &[String]) -> bool {
        images.iter().all(|i| !self.unready_images.contains(i))
    }

    /// The status the instant kubelet gives a ReplicaSet.
    fn instant_status(&self, rs: &mut ReplicaSet) {
        let spec = rs_spec_replicas(rs).max(0);
        let n = if self.image_ready(&rs_images(rs)) { spec } else { 0 };
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

    /// Executes the controller's actions.
    fn execute(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::CreateReplicaSet { replica_set } => {
                    let mut rs = (**replica_set).clone();
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    if self.replica_sets.contains_key(&name) {
                        continue;
                    }
                    rs.metadata.creation_timestamp = Some(to_kube_time(self.now));
                    rs.metadata.uid = Some(format!("uid-rs-{name}"));
                    rs.metadata.generation = Some(1);
                    match self.pods_mode {
                        Pods::Instant => self.instant_status(&mut rs),
                        Pods::Simulated { .. } => {
                            rs.status = Some(ReplicaSetStatus { observed_generation: Some(1), ..Default::default() })
                        }
                    }
                    self.replica_sets.insert(name.clone(), rs);
                    self.emit_rs(&name);
                }
                Action::PatchReplicaSet { name, patch } => {
                    let Some(rs) = self.replica_sets.get(name) else { continue };
                    let mut v = serde_json::to_value(rs).unwrap_or(Value::Null);
                    let old_spec = v.get("spec").cloned();
                    merge_patch(&mut v, &patch.to_merge_patch());
                    let spec_changed = v.get("spec") != old_spec.as_ref();
                    let Ok(mut rs) = serde_json::from_value::<ReplicaSet>(v) else { continue };
                    if spec_changed {
                        let g = rs.metadata.generation.unwrap_or(1) + 1;
                        rs.metadata.generation = Some(g);
                        rs.status.get_or_insert_with(Default::default).observed_generation = Some(g);
                    }
                    if self.pods_mode == Pods::Instant {
                        self.instant_status(&mut rs);
                    }
                    self.replica_sets.insert(name.clone(), rs);
                    self.emit_rs(name);
                }
                Action::DeleteReplicaSet { name } => {
                    if self.replica_sets.remove(name).is_some() {
                        let pods: Vec<String> =
                            self.pods.iter().filter(|(_, p)| &p.replica_set == name).map(|(n, _)| n.clone()).collect();
                        for p in pods {
                            self.pods.remove(&p);
                            self.queue.push(Event::Deleted { kind: ObjectKind::Pod, name: p });
                        }
                        self.queue.push(Event::Deleted { kind: ObjectKind::ReplicaSet, name: name.clone() });
                    }
                }
                Action::SetServiceSelector { service, hash, managed_by } => {
                    let Some(svc) = self.services.get_mut(service) else { continue };
                    svc.spec
                        .get_or_insert_with(Default::default)
                        .selector
                        .get_or_insert_with(BTreeMap::new)
                        .insert("rollouts-pod-template-hash".into(), hash.clone());
                    if let Some(owner) = managed_by {
                        svc.metadata
                            .annotations
                            .get_or_insert_with(BTreeMap::new)
                            .insert("argo-rollouts.argoproj.io/managed-by-rollouts".into(), owner.clone());
                    }
                    let svc = svc.clone();
                    self.queue.push(Event::Applied(Object::Service(Box::new(svc))));
                }
                Action::PatchRolloutStatus { patch } | Action::PatchRollout { patch } => self.patch_rollout(patch),
                Action::EvictPod { name } => {
                    if self.pods.remove(name).is_some() {
                        self.queue.push(Event::Deleted { kind: ObjectKind::Pod, name: name.clone() });
                    }
                }
                // Analysis is not modelled: the generated rollouts have no analysis steps,
                // so the core never asks for runs, measurements or jobs here.
                Action::CreateAnalysisRun { .. }
                | Action::PatchAnalysisRun { .. }
                | Action::DeleteAnalysisRun { .. }
                | Action::Measure { .. }
                | Action::CreateJob { .. }
                | Action::DeleteJob { .. }
                | Action::RecordEvent { .. }
                | Action::WakeAt { .. } => {}
            }
        }
    }

    /// Merge-patches the stored Rollout, bumping the generation when the spec changes.
    fn patch_rollout(&mut self, patch: &Value) {
        if self.rollout.is_null() {
            return;
        }
        let old_spec = self.rollout.get("spec").cloned();
        merge_patch(&mut self.rollout, patch);
        if self.rollout.get("spec") != old_spec.as_ref() {
            let g = self.rollout.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            self.rollout["metadata"]["generation"] = json!(g + 1);
        }
        self.emit_rollout();
    }

    /// The payload to deliver for a queued event under [`Delivery::Latest`]: the object
    /// as it is now (`None`: it is gone, a `Deleted` event follows).
    fn latest(&self, event: Event) -> Option<Event> {
        match event {
            Event::Applied(Object::Rollout(_)) => {
                (!self.rollout.is_null()).then(|| Event::Applied(Object::Rollout(self.rollout.clone())))
            }
            Event::Applied(Object::ReplicaSet(rs)) => {
                let name = rs.metadata.name.clone().unwrap_or_default();
                self.replica_sets.get(&name).map(|r| Event::Applied(Object::ReplicaSet(Box::new(r.clone()))))
            }
            Event::Applied(Object::Service(svc)) => {
                let name = svc.metadata.name.clone().unwrap_or_default();
                self.services.get(&name).map(|s| Event::Applied(Object::Service(Box::new(s.clone()))))
            }
            Event::Applied(Object::Pod(pod)) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                self.pods.get(&name).map(|p| Event::Applied(Object::Pod(Box::new(self.kube_pod(&name, p)))))
            }
            Event::Applied(
                Object::AnalysisRun(_)
                | Object::AnalysisTemplate(_)
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

    /// One `step`, executing its actions.
    fn step(&mut self, event: Event) {
        let event = match self.delivery {
            Delivery::Snapshot | Delivery::Coalesced => event,
            Delivery::Latest => match self.latest(event) {
                Some(e) => e,
                None => return,
            },
        };
        self.steps += 1;
        let state = std::mem::take(&mut self.state);
        let recorded = self.calls.as_ref().map(|_| (state.clone(), event.clone()));
        let (state, actions) = rollouts_core::step(state, event, self.now);
        if let (Some(calls), Some((before, event))) = (self.calls.as_mut(), recorded) {
            calls.push(Call {
                state: before,
                event,
                now: self.now,
                state_after: state.clone(),
                actions: actions.clone(),
            });
        }
        self.state = state;
        self.wake = actions.iter().find_map(|a| match a {
            Action::WakeAt { at, .. } => Some(*at),
            _ => None,
        });
        self.execute(&actions);
    }

    /// Delivers watch events in batches (each batch: the events of the previous one's
    /// actions, after the ReplicaSet controller and kubelet ran) until none is left at
    /// this instant.
    pub fn settle(&mut self) -> Result<(), DriveError> {
        let mut n = 0;
        loop {
            self.sync_pods();
            let batch = std::mem::take(&mut self.queue);
            if batch.is_empty() {
                return Ok(());
            }
            if self.delivery == Delivery::Coalesced {
                n += 1;
                if n > self.max_steps_per_instant {
                    return Err(DriveError::HotLoop { t: self.t() });
                }
                self.observe_then_reconcile(batch);
                continue;
            }
            for ev in batch {
                n += 1;
                if n > self.max_steps_per_instant {
                    return Err(DriveError::HotLoop { t: self.t() });
                }
                self.step(ev);
            }
        }
    }

    /// [`Delivery::Coalesced`]: every event of the batch is observed, then one reconcile
    /// runs (run-loop contract, rule 5). Not recorded in [`Driver::calls`].
    fn observe_then_reconcile(&mut self, batch: Vec<Event>) {
        self.steps += 1;
        let mut actions = Vec::new();
        for ev in batch {
            actions.extend(rollouts_core::observe(&mut self.state, ev, self.now));
        }
        actions.extend(rollouts_core::reconcile(&mut self.state, self.now));
        self.wake = actions.iter().find_map(|a| match a {
            Action::WakeAt { at, .. } => Some(*at),
            _ => None,
        });
        self.execute(&actions);
    }

    /// The ReplicaSet controller and kubelet of [`Pods::Simulated`]: pod counts follow the
    /// specs (not-ready pods go first, then the newest), readiness is announced, statuses
    /// are recomputed; every change is a watch event.
    fn sync_pods(&mut self) {
        let Pods::Simulated { startup } = self.pods_mode else { return };
        let now = self.now;
        let names: Vec<String> = self.replica_sets.keys().cloned().collect();
        for name in &names {
            let Some(rs) = self.replica_sets.get(name) else { continue };
            let desired = rs_spec_replicas(rs).max(0) as usize;
            let ready = self.image_ready(&rs_images(rs));
            let mut mine: Vec<(String, DriverPod)> =
                self.pods.iter().filter(|(_, p)| &p.replica_set == name).map(|(n, p)| (n.clone(), p.clone())).collect();
            if mine.len() < desired {
                for _ in mine.len()..desired {
                    self.next_pod += 1;
                    let pod_name = format!("{name}-{:05}", self.next_pod);
                    let pod = DriverPod {
                        replica_set: name.clone(),
                        created: now,
                        ready_at: ready.then(|| now.plus(Seconds(startup))),
                        ready_announced: false,
                    };
                    let kube = self.kube_pod(&pod_name, &pod);
                    self.pods.insert(pod_name, pod);
                    self.queue.push(Event::Applied(Object::Pod(Box::new(kube))));
                }
            } else if mine.len() > desired {
                mine.sort_by(|(an, a), (bn, b)| {
                    let ar = a.ready_at.is_some_and(|t| t <= now);
                    let br = b.ready_at.is_some_and(|t| t <= now);
                    ar.cmp(&br).then(b.created.cmp(&a.created)).then(bn.cmp(an))
                });
                let excess = mine.len() - desired;
                for (pod_name, _) in mine.into_iter().take(excess) {
                    self.pods.remove(&pod_name);
                    self.queue.push(Event::Deleted { kind: ObjectKind::Pod, name: pod_name });
                }
            }
        }
        let became_ready: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| !p.ready_announced && p.ready_at.is_some_and(|t| t <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for n in became_ready {
            if let Some(p) = self.pods.get_mut(&n) {
                p.ready_announced = true;
            }
            if let Some(p) = self.pods.get(&n) {
                let kube = self.kube_pod(&n, p);
                self.queue.push(Event::Applied(Object::Pod(Box::new(kube))));
            }
        }
        for name in &names {
            let Some(rs) = self.replica_sets.get(name) else { continue };
            let min_ready = i64::from(rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0));
            let mine: Vec<&DriverPod> = self.pods.values().filter(|p| &p.replica_set == name).collect();
            let replicas = mine.len() as i32;
            let ready = mine.iter().filter(|p| p.ready_at.is_some_and(|t| t <= now)).count() as i32;
            let available =
                mine.iter().filter(|p| p.ready_at.is_some_and(|t| t.plus(Seconds(min_ready)) <= now)).count() as i32;
            let status = ReplicaSetStatus {
                replicas,
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                fully_labeled_replicas: Some(replicas),
                observed_generation: rs.status.as_ref().and_then(|s| s.observed_generation),
                conditions: None,
                terminating_replicas: None,
            };
            if rs.status.as_ref() != Some(&status) {
                if let Some(rs) = self.replica_sets.get_mut(name) {
                    rs.status = Some(status);
                }
                self.emit_rs(name);
            }
        }
    }

    /// The next time a pod becomes ready or available, after now.
    fn next_pod_transition(&self) -> Option<Timestamp> {
        self.pods
            .values()
            .flat_map(|p| {
                let min_ready = self
                    .replica_sets
                    .get(&p.replica_set)
                    .and_then(|rs| rs.spec.as_ref())
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0);
                p.ready_at.into_iter().flat_map(move |r| [r, r.plus(Seconds(i64::from(min_ready)))])
            })
            .filter(|t| *t > self.now)
            .min()
    }

    fn kube_pod(&self, name: &str, pod: &DriverPod) -> Pod {
        let ready = pod.ready_at.is_some_and(|t| t <= self.now);
        let since = if ready { pod.ready_at.unwrap_or(pod.created) } else { pod.created };
        let labels = self
            .replica_sets
            .get(&pod.replica_set)
            .and_then(|rs| rs.spec.as_ref())
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "default",
                "labels": labels,
                "creationTimestamp": pod.created.to_rfc3339(),
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": pod.replica_set,
                    "uid": format!("uid-rs-{}", pod.replica_set), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "status": {
                "phase": if ready { "Running" } else { "Pending" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                "lastTransitionTime": since.to_rfc3339()}],
            },
        }))
        .unwrap_or_default()
    }

    /// Applies a user command as the kubectl plugin's patch of the Rollout.
    pub fn command(&mut self, cmd: &Cmd) {
        let (ro, _) = rollouts_core::rollout::decode_rollout(&self.rollout);
        let st = &ro.status;
        let steps = ro.spec.steps().len() as i32;
        let mut spec_patch: Option<Value> = None;
        let mut status_patch: Option<Value> = None;
        match cmd {
            Cmd::SetImage(i) => {
                let containers: Vec<Value> = self
                    .rollout
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|mut c| {
                        if c.get("name").and_then(Value::as_str) == Some(CONTAINER) {
                            c["image"] = json!(IMAGES[*i]);
                        }
                        c
                    })
                    .collect();
                spec_patch = Some(json!({"template": {"spec": {"containers": containers}}}));
            }
            Cmd::Promote | Cmd::PromoteFull => {
                if ro.spec.paused {
                    spec_patch = Some(json!({"paused": false}));
                }
                if *cmd == Cmd::PromoteFull {
                    if st.current_pod_hash != st.stable_rs {
                        status_patch = Some(json!({"promoteFull": true}));
                    }
                } else if !st.pause_conditions.is_empty() {
                    status_patch = Some(json!({"pauseConditions": null}));
                } else if ro.spec.canary().is_some() && steps > 0 {
                    let idx = st.current_step_index.unwrap_or(0);
                    status_patch = Some(json!({"pauseConditions": null, "currentStepIndex": (idx + 1).min(steps)}));
                }
            }
            Cmd::Abort => status_patch = Some(json!({"abort": true})),
            Cmd::Retry => status_patch = Some(json!({"abort": false})),
            Cmd::Pause => spec_patch = Some(json!({"paused": true})),
            Cmd::Resume => spec_patch = Some(json!({"paused": false})),
            Cmd::Scale(n) => spec_patch = Some(json!({"replicas": n})),
            Cmd::Restart => spec_patch = Some(json!({"restartAt": self.now.to_rfc3339()})),
        }
        if let Some(p) = spec_patch {
            self.patch_rollout(&json!({ "spec": p }));
        }
        if let Some(p) = status_patch {
            self.patch_rollout(&json!({ "status": p }));
        }
    }

    /// Runs the commands at their times (seconds since [`EPOCH`]), then keeps going until
    /// nothing is left to happen or `horizon` seconds have passed. `observe` sees the
    /// cluster after every instant. Returns whether the run ended with nothing pending.
    pub fn run_observed(
        &mut self,
        events: &[Timed],
        horizon: i64,
        mut observe: impl FnMut(&Driver),
    ) -> Result<bool, DriveError> {
        let mut next = 0;
        let mut same_instant = 0;
        loop {
            let t = self.t();
            while let Some(e) = events.get(next).filter(|e| e.at <= t) {
                self.command(&e.cmd);
                next += 1;
            }
            if self.wake.is_some_and(|w| w <= self.now) {
                self.wake = None;
                self.queue.push(Event::Tick);
            }
            self.settle()?;
            observe(self);
            let upcoming = [events.get(next).map(|e| EPOCH.plus(Seconds(e.at))), self.wake, self.next_pod_transition()]
                .into_iter()
                .flatten()
                .min();
            match upcoming {
                None => return Ok(true),
                Some(n) if n > EPOCH.plus(Seconds(horizon)) => return Ok(false),
                // A wake-up already due: tick again at this instant, within bounds.
                Some(n) if n <= self.now => {
                    same_instant += 1;
                    if same_instant > self.max_steps_per_instant {
                        return Err(DriveError::HotLoop { t });
                    }
                }
                Some(n) => {
                    same_instant = 0;
                    self.now = n;
                }
            }
        }
    }

    /// [`Driver::run_observed`] without an observer.
    pub fn run(&mut self, events: &[Timed], horizon: i64) -> Result<bool, DriveError> {
        self.run_observed(events, horizon, |_| {})
    }

    /// Every object a controller starting now would list: Services, ReplicaSets, Pods,
    /// then the Rollout (so the first reconcile already sees everything).
    pub fn objects(&self) -> Vec<Object> {
        let mut v: Vec<Object> = self.services.values().map(|s| Object::Service(Box::new(s.clone()))).collect();
        v.extend(self.replica_sets.values().map(|r| Object::ReplicaSet(Box::new(r.clone()))));
        v.extend(self.pods.iter().map(|(n, p)| Object::Pod(Box::new(self.kube_pod(n, p)))));
        if !self.rollout.is_null() {
            v.push(Object::Rollout(self.rollout.clone()));
        }
        v
    }

    /// `(name, spec.replicas, status.availableReplicas)` of every ReplicaSet.
    pub fn replica_counts(&self) -> Vec<(String, i32, i32)> {
        self.replica_sets
            .iter()
            .map(|(n, rs)| {
                (n.clone(), rs_spec_replicas(rs), rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0))
            })
            .collect()
    }
}
