//! The simulated cluster: an API server that stores objects, a ReplicaSet controller that
//! creates and deletes pods, and pods that become ready after a delay.
//!
//! It answers the core's actions the way the real control plane would and turns every
//! change into the watch events a controller would see.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{json, Value};

use super::changes::Change;
use super::pods::PodSet;
pub use super::replica_controller::{PodModel, PodObjects};
use super::scenario::{ClusterSpec, Command, MetricAnswer};
use crate::api::keys;
use crate::api::merge::merge_patch_owned;
use crate::commands::{self, CommandError};
use crate::rollout::References;
use super::routers::references_of;
use crate::state::{Event, Object};
use crate::time::Timestamp;
pub use super::executor::Worker;

/// The simulated cluster: objects as an API server stores them, a ReplicaSet controller
/// and kubelet ([`Cluster::sync`]), scripted metric providers, and per rollout the watch
/// events its controller has not seen yet ([`Cluster::outbox`]). The simulator and the
/// property-test driver both run controllers against it.
pub struct Cluster {
    /// The simulated time.
    pub now: Timestamp,
    /// How pods behave.
    pub spec: ClusterSpec,
    /// The namespace every object is in.
    pub(super) namespace: String,
    /// Rollouts as stored JSON (spec, metadata, status).
    pub rollouts: BTreeMap<String, Arc<Value>>,
    /// ReplicaSets as stored, by name.
    pub replica_sets: BTreeMap<String, ReplicaSet>,
    /// The names of each rollout's ReplicaSets.
    pub(super) owned: BTreeMap<String, BTreeSet<String>>,
    /// Services as stored, by name.
    pub services: BTreeMap<String, Service>,
    /// Pods, by ReplicaSet name.
    pub pods: BTreeMap<String, PodSet>,
    /// When controllers are shown individual Pod objects.
    pub pod_objects: PodObjects,
    /// Whether pods are simulated at all.
    pub pod_model: PodModel,
    /// Objects of other kinds (Secrets, ConfigMaps, ...), by (kind, name).
    pub others: BTreeMap<(String, String), Value>,
    /// Ingresses (`networking.k8s.io/v1`), by name.
    pub ingresses: BTreeMap<String, Ingress>,
    /// Gateway API routes as stored JSON, by (kind, namespace, name).
    pub routes: BTreeMap<(String, String, String), Value>,
    /// What each Rollout's spec names (the Ingresses and routes its controller is shown).
    pub(super) refs: BTreeMap<String, References>,
    /// AnalysisTemplates and ClusterAnalysisTemplates, by (kind, name).
    pub templates: BTreeMap<(String, String), Value>,
    /// AnalysisRuns as stored JSON.
    pub analysis_runs: BTreeMap<String, Value>,
    /// Experiments as stored, by name.
    pub experiments: BTreeMap<String, crate::api::Experiment>,
    /// Jobs of job metrics.
    pub jobs: BTreeMap<String, super::analysis::SimJob>,
    /// Scripted metric answers, by metric name.
    pub metrics: BTreeMap<String, Vec<MetricAnswer>>,
    /// How many answers each metric has given.
    pub answers_given: BTreeMap<String, usize>,
    /// Answers (and Job completions) due later: (when, for whom, event).
    pub pending: Vec<(Timestamp, Worker, Event)>,
    /// Problems with the scenario found while running (a metric without answers).
    pub errors: Vec<String>,
    /// The number of the last pod created.
    pub(super) next_pod: u64,
    /// Watch events not yet delivered, per rollout.
    pub outbox: BTreeMap<String, Vec<Event>>,
    /// Watch events not yet delivered to the workers of AnalysisRuns no Rollout owns.
    pub run_outbox: BTreeMap<String, Vec<Event>>,
    /// Experiments one of whose objects changed since their last reconcile.
    pub experiments_due: BTreeSet<String>,
    /// Whether a Rollout's watch event replaces the ones of the same Rollout not yet
    /// delivered (the default), as a controller's work queue and informer cache make it see
    /// only the newest version; `false` delivers every version, each as it was.
    pub latest_rollout_only: bool,
    /// Whether [`Cluster::changes`] is kept.
    pub record_changes: bool,
    /// What the controllers changed, and the notes, when [`Cluster::record_changes`].
    pub changes: Vec<Change>,
    /// Commands that changed nothing, with why.
    pub notes: Vec<Change>,
    /// Kubernetes Events recorded by the controllers: (time, the object they are on,
    /// reason, message).
    pub recorded: Vec<(Timestamp, String, String, String)>,
}

impl Cluster {
    /// An empty cluster at `now`.
    pub fn new(now: Timestamp, spec: ClusterSpec, metrics: BTreeMap<String, Vec<MetricAnswer>>) -> Self {
        Cluster {
            now,
            spec,
            namespace: "default".into(),
            rollouts: BTreeMap::new(),
            replica_sets: BTreeMap::new(),
            owned: BTreeMap::new(),
            services: BTreeMap::new(),
            pods: BTreeMap::new(),
            pod_objects: PodObjects::WhenNeeded,
            pod_model: PodModel::Simulated,
            others: BTreeMap::new(),
            ingresses: BTreeMap::new(),
            routes: BTreeMap::new(),
            refs: BTreeMap::new(),
            templates: BTreeMap::new(),
            analysis_runs: BTreeMap::new(),
            experiments: BTreeMap::new(),
            jobs: BTreeMap::new(),
            metrics,
            answers_given: BTreeMap::new(),
            pending: Vec::new(),
            errors: Vec::new(),
            next_pod: 0,
            outbox: BTreeMap::new(),
            run_outbox: BTreeMap::new(),
            experiments_due: BTreeSet::new(),
            latest_rollout_only: true,
            record_changes: false,
            changes: Vec::new(),
            notes: Vec::new(),
            recorded: Vec::new(),
        }
    }

    /// Time from pod creation to Ready.
    pub(super) fn pod_startup(&self) -> crate::time::Seconds {
        self.spec.pod_startup
    }

    pub(super) fn emit(&mut self, rollout: &str, event: Event) {
        self.outbox.entry(rollout.to_string()).or_default().push(event);
    }

    /// Delivers a watch event to a worker (an Experiment's is only made due).
    pub(super) fn emit_to(&mut self, worker: &Worker, event: Event) {
        match worker {
            Worker::Rollout(r) => self.emit(r, event),
            Worker::Experiment(e) => {
                self.experiments_due.insert(e.clone());
            }
            Worker::AnalysisRun(r) => self.run_outbox.entry(r.clone()).or_default().push(event),
        }
    }

    fn emit_rollout(&mut self, name: &str) {
        if !self.rollouts.contains_key(name) {
            return;
        }
        if !self.latest_rollout_only {
            let v = self.rollouts.get(name).cloned().unwrap_or_default();
            return self.emit(name, Event::Applied(Object::Rollout(v)));
        }
        // A placeholder, filled with the stored Rollout when the batch is taken: the
        // manifest is copied once per delivery, not once per write.
        if let Some(queued) = self.outbox.get_mut(name) {
            queued.retain(|e| !matches!(e, Event::Applied(Object::Rollout(_))));
        }
        self.emit(name, Event::Applied(Object::Rollout(Arc::default())));
    }

    /// The watch events not yet delivered, per rollout, taken out of the outbox, each
    /// Rollout event carrying the Rollout as stored now (see [`Cluster::latest_rollout_only`]).
    pub fn take_outbox(&mut self) -> BTreeMap<String, Vec<Event>> {
        let mut outbox = std::mem::take(&mut self.outbox);
        for (name, events) in outbox.iter_mut() {
            for event in events.iter_mut() {
                if let Event::Applied(Object::Rollout(v)) = event {
                    if v.is_null() {
                        *v = self.rollouts.get(name).cloned().unwrap_or_default();
                    }
                }
            }
        }
        outbox
    }

    pub(super) fn emit_service(&mut self, name: &str) {
        let Some(svc) = self.services.get(name).cloned() else { return };
        if let Some(o) = svc.metadata.owner_references.iter().flatten().find(|o| o.kind == "Experiment") {
            self.experiments_due.insert(o.name.clone());
        }
        let names: Vec<String> = self.rollouts.keys().cloned().collect();
        for r in names {
            self.emit(&r, Event::Applied(Object::Service(Arc::new(svc.clone()))));
        }
    }

    pub(super) fn owner_of(rs: &ReplicaSet) -> Option<String> {
        rs.metadata
            .owner_references
            .as_ref()?
            .iter()
            .find(|o| o.kind == "Rollout")
            .map(|o| o.name.clone())
    }

    /// The Experiment owning a ReplicaSet (a template's).
    pub(super) fn experiment_of(rs: &ReplicaSet) -> Option<String> {
        rs.metadata.owner_references.as_ref()?.iter().find(|o| o.kind == "Experiment").map(|o| o.name.clone())
    }

    pub(super) fn emit_rs(&mut self, name: &str) {
        let Some(rs) = self.replica_sets.get(name) else { return };
        if let Some(experiment) = Self::experiment_of(rs) {
            self.experiments_due.insert(experiment);
        }
        if let Some(owner) = Self::owner_of(rs) {
            let rs = rs.clone();
            self.emit(&owner, Event::Applied(Object::ReplicaSet(Arc::new(rs))));
        }
    }

    /// Forgets which ReplicaSets `rollout` owns (it was deleted, and they with it).
    pub(super) fn forget_owned(&mut self, rollout: &str) {
        self.owned.remove(rollout);
    }

    /// The ReplicaSets of `rollout`, by name.
    pub(super) fn replica_sets_of<'a>(&'a self, rollout: &str) -> impl Iterator<Item = (&'a String, &'a ReplicaSet)> + 'a {
        self.owned.get(rollout).into_iter().flatten().filter_map(|n| self.replica_sets.get_key_value(n))
    }

    /// Creates or replaces an object from a manifest.
    pub fn apply_manifest(&mut self, mut obj: Value) -> Result<(), String> {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.entry("namespace").or_insert_with(|| json!("default"));
        }
        match kind.as_str() {
            "Rollout" => {
                let existing = self.rollouts.get(&name).cloned();
                let changed = existing.as_ref().is_some_and(|old| old.get("spec") != obj.get("spec"));
                let meta = obj.get_mut("metadata").and_then(Value::as_object_mut).ok_or("metadata must be a map")?;
                match &existing {
                    None => {
                        meta.insert("uid".into(), json!(format!("uid-rollout-{name}")));
                        meta.insert("generation".into(), json!(1));
                        meta.insert("creationTimestamp".into(), json!(self.now.to_rfc3339()));
                        if let Some(o) = obj.as_object_mut() {
                            o.remove("status");
                        }
                    }
                    Some(old) => {
                        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                        for key in ["uid", "creationTimestamp"] {
                            if let Some(v) = old.pointer(&format!("/metadata/{key}")) {
                                meta.insert(key.into(), v.clone());
                            }
                        }
                        // The revision annotation is the controller's; an apply keeps it.
                        if let Some(rev) = old.pointer("/metadata/annotations/rollout.argoproj.io~1revision").cloned() {
                            let ann = meta.entry("annotations").or_insert_with(|| json!({}));
                            if let Some(a) = ann.as_object_mut() {
                                a.entry(keys::REVISION).or_insert(rev);
                            }
                        }
                        meta.insert("generation".into(), json!(if changed { generation + 1 } else { generation }));
                        let status = old.get("status").cloned();
                        if let Some(o) = obj.as_object_mut() {
                            match status {
                                Some(s) => o.insert("status".into(), s),
                                None => o.remove("status"),
                            };
                        }
                    }
                }
                // A new controller lists everything at start, the Rollout last, so that its
                // first reconcile already sees the Services it names.
                if existing.is_none() {
                    let services: Vec<Service> = self.services.values().cloned().collect();
                    for svc in services {
                        self.emit(&name, Event::Applied(Object::Service(Arc::new(svc))));
                    }
                    let templates: Vec<((String, String), Value)> =
                        self.templates.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    for ((kind, _), t) in templates {
                        self.emit(&name, template_event(&kind, t));
                    }
                }
                let showed_pods = self.shows_pods(&name);
                let refs = references_of(&obj);
                let refs_changed = self.refs.get(&name) != Some(&refs);
                self.refs.insert(name.clone(), refs);
                self.rollouts.insert(name.clone(), Arc::new(obj));
                if refs_changed {
                    self.emit_router_objects_to(&name);
                }
                self.emit_rollout(&name);
                self.pods_shown_changed(&name, showed_pods);
            }
            "Service" => {
                let svc: Service = serde_json::from_value(obj).map_err(|e| format!("Service {name}: {e}"))?;
                self.services.insert(name.clone(), svc);
                self.emit_service(&name);
            }
            "AnalysisTemplate" | "ClusterAnalysisTemplate" => {
                if kind == "ClusterAnalysisTemplate" {
                    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("namespace");
                    }
                }
                self.templates.insert((kind.clone(), name), obj.clone());
                let names: Vec<String> = self.rollouts.keys().cloned().collect();
                for r in names {
                    self.emit(&r, template_event(&kind, obj.clone()));
                }
                // Experiments not yet available verify their templates exist.
                let experiments: Vec<String> = self.experiments.keys().cloned().collect();
                self.experiments_due.extend(experiments);
            }
            "Experiment" => self.apply_experiment(&obj)?,
            "Ingress" => self.apply_ingress(obj)?,
            _ if crate::api::RouteKind::of_object(&obj).is_some() => self.apply_route(obj),
            _ => {
                // The API server's generation: 1 when created, one more whenever the spec
                // (a PodTemplate's template) changes.
                let old = self.others.get(&(kind.clone(), name.clone()));
                let old_generation = old.and_then(|o| o.pointer("/metadata/generation")).and_then(Value::as_i64);
                let same_spec = old.is_some_and(|o| o.get("spec") == obj.get("spec") && o.get("template") == obj.get("template"));
                let generation = match old_generation {
                    None => 1,
                    Some(g) if same_spec => g,
                    Some(g) => g + 1,
                };
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("generation".into(), serde_json::json!(generation));
                }
                self.others.insert((kind.clone(), name.clone()), obj);
                self.emit_workload(&kind, &name);
            }
        }
        Ok(())
    }

    /// Applies a user command the way Argo's kubectl plugin changes the Rollout
    /// ([`crate::commands::plan`]). `Ok(Some(note))`: the CLI would have refused it
    /// because there is nothing to do (nothing to promote, already at that revision);
    /// nothing changed and the note says why. `Err`: a mistake in the scenario.
    pub fn command(&mut self, cmd: &Command) -> Result<Option<String>, String> {
        let (name, command) = match cmd {
            Command::Apply(obj) => return self.apply_manifest(obj.clone()).map(|()| None),
            Command::Delete(d) => return self.delete_object(&d.kind, &d.name).map(|()| None),
            Command::Terminate(t) => return self.terminate_experiment(&t.experiment),
            Command::SetImage(c) => {
                (&c.rollout, commands::Command::SetImage { container: c.container.clone(), image: c.image.clone() })
            }
            Command::Promote(c) => (&c.rollout, commands::Command::Promote { full: c.full }),
            Command::Abort(c) => (&c.rollout, commands::Command::Abort),
            Command::Retry(c) => (&c.rollout, commands::Command::Retry),
            Command::Pause(c) => (&c.rollout, commands::Command::Pause),
            Command::Resume(c) => (&c.rollout, commands::Command::Resume),
            Command::Restart(c) => (&c.rollout, commands::Command::Restart { at: self.now }),
            Command::Undo(c) => (&c.rollout, commands::Command::Undo { to_revision: c.to_revision.unwrap_or(0) }),
            Command::Scale(c) => (&c.rollout, commands::Command::Scale { replicas: c.replicas }),
        };
        let name = name.clone();
        let obj = self.rollouts.get(&name).ok_or_else(|| format!("rollout {name:?} not found"))?;
        let owned: Vec<&ReplicaSet> = self.replica_sets_of(&name).map(|(_, rs)| rs).collect();
        if let (Some((_, kind, workload)), commands::Command::SetImage { .. } | commands::Command::Undo { .. }) =
            (commands::workload_of(obj), &command)
        {
            // The template is in the referenced workload: the command changes it instead.
            let key = (kind.clone(), workload.clone());
            let live = self.others.get(&key).ok_or_else(|| format!("{kind} {workload:?} (the workloadRef of rollout {name:?}) not found"))?;
            let change = match commands::plan_workload(&command, obj, live, &owned) {
                Ok(commands::Change::Skip(why)) => return Ok(Some(why.to_string())),
                Ok(change) => change,
                Err(e) => return Err(e.to_string()),
            };
            if let Some(live) = self.others.get_mut(&key) {
                let before = live.clone();
                change.apply_to(live);
                if live.get("spec") != before.get("spec") || live.get("template") != before.get("template") {
                    let generation = before.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.insert("generation".into(), serde_json::json!(generation + 1));
                    }
                }
            }
            self.emit_workload(&kind, &workload);
            return Ok(None);
        }
        let change = match commands::plan(&command, obj, &owned) {
            Ok(commands::Change::Skip(why)) => return Ok(Some(why.to_string())),
            Ok(change) => change,
            Err(e @ (CommandError::NothingToPromote { .. } | CommandError::AlreadyFullyPromoted { .. })) => {
                return Ok(Some(e.to_string()))
            }
            Err(
                e @ (CommandError::NoSuchContainer { .. }
                | CommandError::TemplateInWorkload { .. }
                | CommandError::UndoOfWorkload { .. }
                | CommandError::RevisionNotInHistory { .. }
                | CommandError::NoPreviousRevision { .. }
                | CommandError::NegativeReplicas { .. }),
            ) => return Err(e.to_string()),
        };
        self.change_rollout(&name, true, |obj| change.apply_to(obj));
        Ok(None)
    }

    /// Applies a JSON merge patch to a stored rollout (see [`Cluster::change_rollout`]).
    pub(super) fn patch_rollout(&mut self, name: &str, patch: Value) {
        // A status or metadata patch (nearly all of them) cannot change the spec: no copy of
        // a spec that grows with the number of steps for each of them.
        let touches_spec = patch.get("spec").is_some();
        self.change_rollout(name, touches_spec, |obj| {
            merge_patch_owned(obj, patch);
            true
        });
    }

    /// Changes a stored rollout as the API server would, bumping the generation when the
    /// spec changes, and emits the watch event (unless `change` says nothing changed).
    fn change_rollout(&mut self, name: &str, touches_spec: bool, change: impl FnOnce(&mut Value) -> bool) {
        let showed_pods = self.shows_pods(name);
        let Some(obj) = self.rollouts.get_mut(name).map(Arc::make_mut) else { return };
        let old_spec = if touches_spec { obj.get("spec").cloned() } else { None };
        if !change(obj) {
            return;
        }
        if touches_spec && obj.get("spec") != old_spec.as_ref() {
            let g = obj.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(1);
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("generation".into(), json!(g + 1));
            }
        }
        self.emit_rollout(name);
        self.pods_shown_changed(name, showed_pods);
    }

    /// Records a note about the run (a command that changed nothing).
    pub fn note(&mut self, rollout: &str, text: String) {
        let t = self.now.since(super::SIMULATION_EPOCH).0;
        if self.record_changes {
            self.changes.push(Change { t, rollout: rollout.to_string(), what: format!("Note {text}") });
        }
        self.notes.push(Change { t, rollout: rollout.to_string(), what: text });
    }

    /// Every rollout's objects, as a controller starting now would list them.
    pub fn objects_by_rollout(&self) -> BTreeMap<String, Vec<Object>> {
        let mut out = BTreeMap::new();
        for (name, obj) in &self.rollouts {
            let mut objs = vec![Object::Rollout(obj.clone())];
            for svc in self.services.values() {
                objs.push(Object::Service(Arc::new(svc.clone())));
            }
            objs.extend(self.router_objects_of(name));
            objs.extend(self.workload_objects_of(name));
            for (rs_name, rs) in self.replica_sets_of(name) {
                objs.push(Object::ReplicaSet(Arc::new(rs.clone())));
                objs.extend(self.pod_objects_of(name, rs_name));
            }
            for t in self.templates.iter().map(|((kind, _), t)| template_event(kind, t.clone())) {
                if let Event::Applied(o) = t {
                    objs.push(o);
                }
            }
            for run in self.analysis_runs.values() {
                if run.pointer("/metadata/ownerReferences/0/name").and_then(Value::as_str) == Some(name.as_str())
                    && run.pointer("/metadata/ownerReferences/0/kind").and_then(Value::as_str) == Some("Rollout")
                {
                    objs.push(Object::AnalysisRun(run.clone()));
                }
            }
            let worker = Worker::Rollout(name.clone());
            for j in self.jobs.values().filter(|j| j.owner == worker) {
                objs.push(Object::Job(Box::new(j.job.clone())));
            }
            for ex in self.experiments.values().filter(|ex| super::experiments::rollout_of(ex) == Some(name.as_str())) {
                objs.push(Object::Experiment(serde_json::to_value(ex).unwrap_or_default()));
            }
            out.insert(name.clone(), objs);
        }
        out
    }

}

fn template_event(kind: &str, obj: Value) -> Event {
    if kind == "ClusterAnalysisTemplate" {
        Event::Applied(Object::ClusterAnalysisTemplate(obj))
    } else {
        Event::Applied(Object::AnalysisTemplate(obj))
    }
}
