//! Carrying out the controllers' actions in the simulated cluster, as the API server would
//! answer them, for any of Argo's controllers ([`Worker`]): the rollout controller, the
//! experiment controller, and the worker of an AnalysisRun no Rollout owns.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSetStatus;

use super::changes::{describe, Change};
use super::cluster::Cluster;
use crate::api::keys;
use crate::objects::to_kube_time;
use crate::state::{Action, Event, ObjectKind};

/// Whose actions the cluster carries out, and who a watch event is for: Argo's
/// controllers, one worker per object they drive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Worker {
    /// The controller of the Rollout of that name.
    Rollout(String),
    /// The experiment controller, for the Experiment of that name. It reads the cluster
    /// when it reconciles: a watch event for it only makes it due.
    Experiment(String),
    /// The analysis worker of an AnalysisRun no Rollout owns (an Experiment's), as the
    /// real controller runs one: a core `State` holding only the run.
    AnalysisRun(String),
}

impl Worker {
    /// The name of the object the worker drives (the column of a change line).
    pub fn name(&self) -> &str {
        match self {
            Worker::Rollout(n) | Worker::Experiment(n) | Worker::AnalysisRun(n) => n,
        }
    }
}

impl std::fmt::Display for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Worker::Rollout(n) => write!(f, "rollout {n}"),
            Worker::Experiment(n) => write!(f, "experiment {n}"),
            Worker::AnalysisRun(n) => write!(f, "analysisrun {n}"),
        }
    }
}

impl Cluster {
    /// Carries out the controller's actions for `rollout`.
    ///
    /// Like the controller's executor, the first action the API server refuses (a create
    /// of an Ingress that exists, a patch of a route that does not) stops the list: the
    /// controller is told with [`Event::ActionFailed`] and shown again what the failed and
    /// skipped actions were about, and the Rollout.
    pub fn execute(&mut self, rollout: &str, actions: Vec<Action>) {
        self.execute_as(&Worker::Rollout(rollout.to_string()), actions);
    }

    /// Carries out the actions of any worker (see [`Cluster::execute`]). Only a rollout's
    /// actions can be refused (the router objects); the others are recorded as failed.
    pub fn execute_as(&mut self, worker: &Worker, actions: Vec<Action>) {
        let mut actions = actions.into_iter();
        while let Some(a) = actions.next() {
            let what = if self.record_changes { describe(&a) } else { None };
            let t = self.now.since(super::SIMULATION_EPOCH).0;
            let by = worker.name().to_string();
            match self.execute_one(worker, a) {
                Ok(true) => {
                    if let Some(what) = what {
                        self.changes.push(Change { t, rollout: by, what });
                    }
                }
                Ok(false) => {}
                Err(refused) => {
                    let (action, error) = *refused;
                    if let Some(what) = what {
                        self.changes.push(Change { t, rollout: by, what: format!("Failed {what}: {error}") });
                    }
                    if let Worker::Rollout(rollout) = worker {
                        let skipped: Vec<Action> = actions.collect();
                        self.action_failed(rollout, action, error, &skipped);
                    }
                    return;
                }
            }
        }
    }

    /// Carries out one action; whether it changed anything, or the action back with the
    /// API server's error.
    fn execute_one(&mut self, worker: &Worker, a: Action) -> Result<bool, super::routers::Refused> {
        // Actions only a rollout's controller takes; another worker's would be a bug.
        let rollout = match worker {
            Worker::Rollout(r) => r.as_str(),
            Worker::Experiment(_) | Worker::AnalysisRun(_) => "",
        };
        Ok(match a {
            Action::CreateReplicaSet { replica_set } => {
                let mut rs = *replica_set;
                let name = rs.metadata.name.clone().unwrap_or_default();
                if self.replica_sets.contains_key(&name) {
                    return Ok(false);
                }
                rs.metadata.creation_timestamp = Some(to_kube_time(self.now));
                rs.metadata.uid = Some(format!("uid-rs-{name}"));
                rs.metadata.generation = Some(1);
                rs.status = Some(ReplicaSetStatus { observed_generation: Some(1), ..Default::default() });
                self.instant_status(&mut rs);
                if let Some(owner) = Self::owner_of(&rs) {
                    self.owned.entry(owner).or_default().insert(name.clone());
                }
                self.replica_sets.insert(name.clone(), rs);
                self.emit_rs(&name);
                true
            }
            Action::PatchReplicaSet { name, patch } => {
                let Some(mut rs) = self.replica_sets.remove(&name) else { return Ok(false) };
                // Only a patch of the spec can change it (and so the generation).
                if crate::rollout::apply_rs_patch(&mut rs, &patch) {
                    let g = rs.metadata.generation.unwrap_or(1) + 1;
                    rs.metadata.generation = Some(g);
                    rs.status.get_or_insert_with(Default::default).observed_generation = Some(g);
                }
                self.instant_status(&mut rs);
                self.replica_sets.insert(name.clone(), rs);
                self.emit_rs(&name);
                true
            }
            Action::DeleteReplicaSet { name } => self.delete_replica_set(&name),
            Action::SetServiceSelector { service, hash, managed_by } => {
                let Some(svc) = self.services.get_mut(&service) else { return Ok(false) };
                svc.spec
                    .get_or_insert_with(Default::default)
                    .selector
                    .get_or_insert_with(BTreeMap::new)
                    .insert(keys::POD_TEMPLATE_HASH.to_string(), hash);
                if let Some(owner) = managed_by {
                    svc.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(keys::MANAGED_BY_ROLLOUTS.to_string(), owner);
                }
                self.emit_service(&service);
                true
            }
            Action::CreateService { service } => {
                let name = service.metadata.name.clone().unwrap_or_default();
                if self.services.contains_key(&name) {
                    return Ok(false);
                }
                let mut service = *service;
                service.metadata.creation_timestamp = Some(to_kube_time(self.now));
                service.metadata.uid = Some(format!("uid-service-{name}"));
                self.services.insert(name.clone(), service);
                self.emit_service(&name);
                true
            }
            Action::DeleteService { name } => self.delete_service(&name),
            Action::PatchRolloutStatus { patch } | Action::PatchRollout { patch } => {
                self.patch_rollout(rollout, patch);
                true
            }
            Action::EvictPod { name } => self.evict(rollout, &name),
            Action::PatchPodMetadata { name, patch } => self.patch_pod_metadata(rollout, &name, &patch),
            a @ (Action::CreateAnalysisRun { .. }
            | Action::PatchAnalysisRun { .. }
            | Action::DeleteAnalysisRun { .. }
            | Action::Measure { .. }
            | Action::CreateJob { .. }
            | Action::DeleteJob { .. }) => {
                self.execute_analysis(worker, &a);
                true
            }
            Action::CreateExperiment { experiment } => return self.create_experiment(*experiment),
            Action::PatchExperiment { name, patch } => self.patch_experiment(&name, &patch),
            Action::DeleteExperiment { name } => self.delete_experiment(&name),
            Action::RecordEvent { reason, message, .. } => {
                self.recorded.push((self.now, worker.name().to_string(), reason, message));
                true
            }
            Action::CreateIngress { .. }
            | Action::PatchIngress { .. }
            | Action::CreateRoute { .. }
            | Action::PatchRoute { .. }
            | Action::DeleteRoute { .. } => {
                return self.execute_router(rollout, a)
            }
            Action::ScaleDeployment { name, replicas } => return self.scale_deployment(name, replicas),
            Action::WakeAt { .. } => false,
        })
    }

    /// Deletes a ReplicaSet and its pods; whether it existed.
    pub(super) fn delete_replica_set(&mut self, name: &str) -> bool {
        let Some(rs) = self.replica_sets.remove(name) else { return false };
        let rollout = Self::owner_of(&rs);
        if let Some(owned) = rollout.as_ref().and_then(|o| self.owned.get_mut(o)) {
            owned.remove(name);
        }
        match &rollout {
            Some(r) => {
                self.delete_pods_of(r, name);
                self.emit(r, Event::Deleted { kind: ObjectKind::ReplicaSet, name: name.to_string() });
            }
            None => {
                self.pods.remove(name);
            }
        }
        if let Some(experiment) = Self::experiment_of(&rs) {
            self.experiments_due.insert(experiment);
        }
        true
    }

    /// Deletes a Service; whether it existed. Every rollout is told (they may name it),
    /// and the Experiment that owns it.
    pub(super) fn delete_service(&mut self, name: &str) -> bool {
        let Some(svc) = self.services.remove(name) else { return false };
        let names: Vec<String> = self.rollouts.keys().cloned().collect();
        for r in names {
            self.emit(&r, Event::Deleted { kind: ObjectKind::Service, name: name.to_string() });
        }
        if let Some(o) = svc.metadata.owner_references.iter().flatten().find(|o| o.kind == "Experiment") {
            self.experiments_due.insert(o.name.clone());
        }
        true
    }

}
