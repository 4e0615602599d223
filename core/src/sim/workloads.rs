//! The objects a `workloadRef` names, in the simulated cluster: a Deployment or a
//! PodTemplate given in `objects:` (kept with the other kinds the simulator has no
//! controller for), shown to the rollouts that name it, and scaled by `ScaleDeployment`.
//! No Deployment controller runs here: a Deployment's replicas are a number, not pods.

use serde_json::{json, Value};

use super::cluster::Cluster;
use super::routers::{not_found, Refused};
use crate::state::{Action, Event, Object};

impl Cluster {
    /// The object rollout `rollout`'s `workloadRef` names, as the cluster holds it.
    pub(super) fn workload_objects_of(&self, rollout: &str) -> Vec<Object> {
        let Some((kind, name)) = self.refs.get(rollout).and_then(|r| r.workload.clone()) else { return Vec::new() };
        self.others.get(&(kind, name)).map(|v| Object::Workload(v.clone())).into_iter().collect()
    }

    /// Shows the object `kind`/`name` to the rollouts whose `workloadRef` names it.
    pub(super) fn emit_workload(&mut self, kind: &str, name: &str) {
        let Some(v) = self.others.get(&(kind.to_string(), name.to_string())).cloned() else { return };
        let watchers: Vec<String> = self
            .refs
            .iter()
            .filter(|(_, r)| r.workload.as_ref().is_some_and(|(k, n)| k == kind && n == name))
            .map(|(rollout, _)| rollout.clone())
            .collect();
        for r in watchers {
            self.emit(&r, Event::Applied(Object::Workload(v.clone())));
        }
    }

    /// Sets a Deployment's `spec.replicas`, as the controller's scale does: its generation
    /// moves with the spec.
    pub(super) fn scale_deployment(&mut self, name: String, replicas: i32) -> Result<bool, Refused> {
        let key = ("Deployment".to_string(), name.clone());
        let Some(d) = self.others.get_mut(&key) else {
            let error = not_found("Deployment", &name);
            return Err(Box::new((Action::ScaleDeployment { name, replicas }, error)));
        };
        if d.pointer("/spec/replicas").and_then(Value::as_i64) == Some(i64::from(replicas)) {
            return Ok(false);
        }
        let generation = d.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        if let Some(spec) = d.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("replicas".into(), json!(replicas));
        }
        if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("generation".into(), json!(generation + 1));
        }
        self.emit_workload("Deployment", &name);
        Ok(true)
    }
}
