//! The simulated cluster's Experiments: stored as an API server stores them (uid,
//! creationTimestamp, generation), shown to the Rollout that owns them like its
//! AnalysisRuns, garbage-collected with their owner (and collecting what they own), and
//! reconciled by the experiment controller ([`crate::experiment::reconcile`]) whenever one
//! of their objects changes or their wake-up is due.
//!
//! An Experiment's ReplicaSets get pods from the simulated ReplicaSet controller like a
//! rollout's; its AnalysisRuns are driven by a worker of their own (see
//! [`super::Worker::AnalysisRun`]) and measured from the scenario's `metrics:` script.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::changes::Change;
use super::cluster::{Cluster, Worker};
use super::routers::Refused;
use crate::api::merge::{merge_diff, merge_patch};
use crate::api::parse::from_value_strict;
use crate::api::{AnalysisRun, AnalysisTemplate, Experiment, SpecError};
use crate::experiment::{reconcile, ExperimentWake, Observed};
use crate::objects::to_kube_time;
use crate::state::{Action, Event, Object, ObjectKind};

/// The Rollout that owns an Experiment (an `experiment` step's); `None` for a standalone
/// one.
pub(super) fn rollout_of(ex: &Experiment) -> Option<&str> {
    ex.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Rollout" && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

/// Whether owner references name the Experiment `name` (as the garbage collector reads
/// them).
fn owned_by_experiment(refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>, name: &str) -> bool {
    refs.into_iter().flatten().any(|o| o.kind == "Experiment" && o.name == name)
}

impl Cluster {
    /// The Experiment as its watchers see it: JSON, as the API server returns it.
    pub(super) fn experiment_object(ex: &Experiment) -> Object {
        let mut v = serde_json::to_value(ex).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), json!(crate::api::API_VERSION));
            o.insert("kind".into(), json!("Experiment"));
        }
        Object::Experiment(v)
    }

    /// Tells the Experiment's owner (a Rollout) and the experiment controller that it
    /// changed.
    fn emit_experiment(&mut self, name: &str) {
        let Some(ex) = self.experiments.get(name) else { return };
        let owner = rollout_of(ex).map(str::to_string);
        let object = Self::experiment_object(ex);
        if let Some(owner) = owner {
            self.emit(&owner, Event::Applied(object));
        }
        self.experiments_due.insert(name.to_string());
    }

    /// What the API server adds to an Experiment it creates.
    fn stamp_new_experiment(&self, ex: &mut Experiment) {
        let name = ex.metadata.name.clone().unwrap_or_default();
        ex.metadata.uid = Some(format!("uid-experiment-{name}"));
        ex.metadata.creation_timestamp = Some(to_kube_time(self.now));
        ex.metadata.generation = Some(1);
        // Like Argo's CRD, ours has no status subresource: a status given at creation is
        // kept (a scenario may start an Experiment midway).
        ex.metadata.namespace.get_or_insert_with(|| self.namespace.clone());
    }

    /// Creates or replaces an Experiment from a manifest (`objects:`, `apply:`). A
    /// replacement keeps the uid, creation time and status, and bumps the generation
    /// when the spec changes.
    pub(super) fn apply_experiment(&mut self, obj: &Value) -> Result<(), String> {
        let mut ex: Experiment = from_value_strict(obj).map_err(|e| format!("Experiment: {e}"))?;
        let name = ex.metadata.name.clone().unwrap_or_default();
        match self.experiments.get(&name) {
            None => self.stamp_new_experiment(&mut ex),
            Some(old) => {
                ex.metadata.uid = old.metadata.uid.clone();
                ex.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
                let generation = old.metadata.generation.unwrap_or(1);
                ex.metadata.generation = Some(if old.spec == ex.spec { generation } else { generation + 1 });
                ex.metadata.namespace.get_or_insert_with(|| self.namespace.clone());
                ex.status = old.status.clone();
            }
        }
        self.experiments.insert(name.clone(), ex);
        self.emit_experiment(&name);
        Ok(())
    }

    /// `CreateExperiment`: done when it exists with the same owner, refused (already
    /// exists) when someone else's holds the name.
    pub(super) fn create_experiment(&mut self, ex: Experiment) -> Result<bool, Refused> {
        let name = ex.metadata.name.clone().unwrap_or_default();
        if let Some(existing) = self.experiments.get(&name) {
            if rollout_of(existing).is_some() && rollout_of(existing) == rollout_of(&ex) {
                return Ok(false);
            }
            let error = format!("experiments.argoproj.io \"{name}\" already exists");
            return Err(Box::new((Action::CreateExperiment { experiment: Box::new(ex) }, error)));
        }
        let mut ex = ex;
        self.stamp_new_experiment(&mut ex);
        self.experiments.insert(name.clone(), ex);
        self.emit_experiment(&name);
        Ok(true)
    }

    /// `PatchExperiment` (and `terminate experiment`): an RFC 7386 merge patch; the
    /// generation follows the spec. Whether the Experiment exists and changed.
    pub(super) fn patch_experiment(&mut self, name: &str, patch: &Value) -> bool {
        let Some(ex) = self.experiments.get(name) else { return false };
        let mut v = serde_json::to_value(ex).unwrap_or(Value::Null);
        merge_patch(&mut v, patch);
        let Ok(mut patched) = serde_json::from_value::<Experiment>(v) else { return false };
        if patched == *ex {
            return false;
        }
        if patched.spec != ex.spec {
            patched.metadata.generation = Some(ex.metadata.generation.unwrap_or(1) + 1);
        }
        self.experiments.insert(name.to_string(), patched);
        self.emit_experiment(name);
        true
    }

    /// Deletes an Experiment and, as the garbage collector does, what it owns: its
    /// ReplicaSets (and their pods), Services and AnalysisRuns (and their Jobs). Whether
    /// it existed.
    pub(super) fn delete_experiment(&mut self, name: &str) -> bool {
        let Some(ex) = self.experiments.remove(name) else { return false };
        let replica_sets: Vec<String> = self
            .replica_sets
            .iter()
            .filter(|(_, rs)| owned_by_experiment(rs.metadata.owner_references.as_ref(), name))
            .map(|(n, _)| n.clone())
            .collect();
        for rs in replica_sets {
            self.delete_replica_set(&rs);
        }
        let services: Vec<String> = self
            .services
            .iter()
            .filter(|(_, s)| owned_by_experiment(s.metadata.owner_references.as_ref(), name))
            .map(|(n, _)| n.clone())
            .collect();
        for svc in services {
            self.delete_service(&svc);
        }
        let runs: Vec<String> = self
            .analysis_runs
            .iter()
            .filter(|(_, r)| {
                r.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|o| o.get("kind") == Some(&json!("Experiment")) && o.get("name") == Some(&json!(name)))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for run in runs {
            self.analysis_runs.remove(&run);
            let jobs: Vec<String> = self
                .jobs
                .iter()
                .filter(|(_, j)| j.job.metadata.owner_references.iter().flatten().any(|o| o.kind == "AnalysisRun" && o.name == run))
                .map(|(n, _)| n.clone())
                .collect();
            for j in jobs {
                self.jobs.remove(&j);
            }
            self.emit_to(&Worker::AnalysisRun(run.clone()), Event::Deleted { kind: ObjectKind::AnalysisRun, name: run });
        }
        self.experiments_due.remove(name);
        if let Some(owner) = rollout_of(&ex) {
            let owner = owner.to_string();
            self.emit(&owner, Event::Deleted { kind: ObjectKind::Experiment, name: name.to_string() });
        }
        true
    }

    /// `kubectl argo rollouts terminate experiment NAME`: sets `spec.terminate`.
    pub(super) fn terminate_experiment(&mut self, name: &str) -> Result<Option<String>, String> {
        let ex = self.experiments.get(name).ok_or_else(|| format!("experiment {name:?} not found"))?;
        if ex.spec.terminate {
            return Ok(Some(format!("experiment {name:?} is already terminating")));
        }
        self.patch_experiment(name, &crate::commands::terminate_patch());
        Ok(None)
    }

    /// The Experiments of `rollout` (its `experiment` steps'), by name.
    pub(super) fn experiments_of<'a>(&'a self, rollout: &'a str) -> impl Iterator<Item = &'a Experiment> + 'a {
        self.experiments.values().filter(move |ex| rollout_of(ex) == Some(rollout))
    }

    /// The ReplicaSets an Experiment owns, by name.
    pub(super) fn replica_sets_of_experiment<'a>(
        &'a self,
        experiment: &'a str,
    ) -> impl Iterator<Item = &'a k8s_openapi::api::apps::v1::ReplicaSet> + 'a {
        self.replica_sets.values().filter(move |rs| Self::experiment_of(rs).as_deref() == Some(experiment))
    }

    /// The experiment controller, once for Experiment `name`: reconciles it against the
    /// cluster as it is now, carries out its actions, records its events on the owning
    /// Rollout, and writes its status when it changed. Returns when it wants to be
    /// reconciled again.
    pub(super) fn reconcile_experiment(&mut self, name: &str) -> Option<ExperimentWake> {
        let ex = self.experiments.get(name)?.clone();
        // What the controller's informers hold: every run and template of the namespace,
        // as decoded (one that does not decode is left out, a template kept as its error).
        let runs: BTreeMap<String, AnalysisRun> = self
            .analysis_runs
            .iter()
            .filter_map(|(n, v)| Some((n.clone(), from_value_strict::<AnalysisRun>(v).ok()?)))
            .collect();
        let mut templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>> = BTreeMap::new();
        let mut cluster_templates: BTreeMap<String, Result<AnalysisTemplate, SpecError>> = BTreeMap::new();
        for ((kind, template), v) in &self.templates {
            let decoded = from_value_strict::<AnalysisTemplate>(v);
            if kind == "ClusterAnalysisTemplate" {
                cluster_templates.insert(template.clone(), decoded);
            } else {
                templates.insert(template.clone(), decoded);
            }
        }
        let outcome = {
            let observed = Observed {
                replica_sets: &self.replica_sets,
                services: &self.services,
                analysis_runs: &runs,
                analysis_templates: &templates,
                cluster_analysis_templates: &cluster_templates,
            };
            reconcile(&ex, &observed, self.now)
        };
        self.execute_as(&Worker::Experiment(name.to_string()), outcome.actions);
        if let Some(owner) = rollout_of(&ex) {
            self.execute_as(&Worker::Rollout(owner.to_string()), outcome.rollout_events);
        }
        let Some(stored) = self.experiments.get_mut(name) else { return outcome.wake };
        if stored.status != outcome.status {
            let old = serde_json::to_value(&stored.status).unwrap_or(Value::Null);
            let new = serde_json::to_value(&outcome.status).unwrap_or(Value::Null);
            stored.status = outcome.status;
            if self.record_changes {
                let diff = merge_diff(&old, &new).unwrap_or(Value::Null);
                let t = self.now.since(super::SIMULATION_EPOCH).0;
                let what = format!("PatchExperimentStatus {}", json!({"status": diff}));
                self.changes.push(Change { t, rollout: name.to_string(), what });
            }
            self.emit_experiment(name);
        }
        outcome.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::{parse_scenario, ClusterSpec};
    use crate::sim::{simulate, SIMULATION_EPOCH};

    fn cluster() -> Cluster {
        Cluster::new(SIMULATION_EPOCH, ClusterSpec::default(), BTreeMap::new())
    }

    /// An Experiment manifest; owned by Rollout `owner` when given.
    fn experiment(owner: Option<&str>) -> Value {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "ex", "namespace": "default"},
            "spec": {"templates": [{"name": "canary", "selector": {"matchLabels": {"app": "x"}},
                                     "template": {"metadata": {"labels": {"app": "x"}},
                                                  "spec": {"containers": [{"name": "app", "image": "x:1"}]}}}]}
        });
        if let Some(owner) = owner {
            v["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": owner,
                                                       "uid": format!("uid-rollout-{owner}"), "controller": true}]);
        }
        v
    }

    fn create(owner: Option<&str>) -> Action {
        Action::CreateExperiment { experiment: Box::new(serde_json::from_value(experiment(owner)).unwrap()) }
    }

    fn seen(c: &mut Cluster, rollout: &str) -> Vec<String> {
        c.take_outbox()
            .remove(rollout)
            .unwrap_or_default()
            .iter()
            .map(|e| match e {
                Event::Applied(Object::Experiment(v)) => {
                    format!("Experiment generation={} terminate={}", v["metadata"]["generation"], v["spec"]["terminate"])
                }
                Event::Deleted { kind, name } => format!("Deleted {kind:?} {name}"),
                Event::ActionFailed { error, .. } => format!("Failed: {error}"),
                Event::Applied(_) | Event::Tick | Event::Resync | Event::Measured { .. } => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_rollouts_experiment_is_stored_like_an_api_server_and_shown_to_it() {
        let mut c = cluster();
        c.execute("demo", vec![create(Some("demo"))]);
        let ex = &c.experiments["ex"];
        assert_eq!(ex.metadata.uid.as_deref(), Some("uid-experiment-ex"));
        assert_eq!(ex.metadata.generation, Some(1));
        assert!(ex.metadata.creation_timestamp.is_some());
        assert_eq!(seen(&mut c, "demo"), ["Experiment generation=1 terminate=null"]);
        assert!(c.experiments_due.contains("ex"));
        // Created again by its owner: done, nothing changes.
        c.experiments_due.clear();
        c.execute("demo", vec![create(Some("demo"))]);
        assert!(seen(&mut c, "demo").is_empty() && c.experiments_due.is_empty());
        // Someone else's name: the API server's already exists.
        c.execute("other", vec![create(Some("other"))]);
        assert_eq!(seen(&mut c, "other")[0], "Failed: experiments.argoproj.io \"ex\" already exists");
    }

    #[test]
    fn a_step_experiment_whose_name_is_taken_gets_argos_collision_suffix() {
        // The step's Experiment would be `demo-8497df98bc-2-1`; a standalone one holds it.
        let text = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Experiment
    metadata: {name: demo-8497df98bc-2-1}
    spec:
      templates:
        - name: other
          selector: {matchLabels: {app: other}}
          template: {metadata: {labels: {app: other}}, spec: {containers: [{name: app, image: "other:1"}]}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 4
      selector: {matchLabels: {app: demo}}
      template: {metadata: {labels: {app: demo}}, spec: {containers: [{name: app, image: "example/app:1"}]}}
      strategy:
        canary:
          steps:
            - setWeight: 25
            - experiment: {duration: 10s, templates: [{name: canary, specRef: canary}]}
events:
  - {at: 10s, setImage: {rollout: demo, container: app, image: "example/app:2"}}
expect:
  - {at: 11s, rollout: demo, currentStepIndex: 1, experiments: [{name: demo-8497df98bc-2-1-1}]}
  - {at: 1m, rollout: demo, phase: Healthy, stableRevision: 2}
  - {at: 1m, rollout: demo-8497df98bc-2-1, phase: Running}
"#;
        let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
        assert!(sim.outcome.failed_expectations.is_empty(), "{:#?}", sim.outcome.failed_expectations);
    }

    #[test]
    fn a_spec_patch_bumps_the_generation_and_a_no_op_patch_changes_nothing() {
        let mut c = cluster();
        c.execute("demo", vec![create(Some("demo"))]);
        c.take_outbox();
        let terminate = Action::PatchExperiment { name: "ex".into(), patch: crate::commands::terminate_patch() };
        c.execute("demo", vec![terminate.clone()]);
        assert_eq!(seen(&mut c, "demo"), ["Experiment generation=2 terminate=true"]);
        c.execute("demo", vec![terminate]);
        assert!(seen(&mut c, "demo").is_empty());
    }

    #[test]
    fn terminate_sets_spec_terminate_once_and_names_a_missing_experiment() {
        let scenario = |events: &str| {
            let mut v = serde_json::json!({"objects": [experiment(None)]});
            v["events"] = serde_json::from_str(events).unwrap();
            parse_scenario(&serde_json::to_string(&v).unwrap()).unwrap()
        };
        let twice = r#"[{"at": "5s", "terminate": {"experiment": "ex"}}, {"at": "6s", "terminate": {"experiment": "ex"}}]"#;
        let sim = simulate(&scenario(twice)).unwrap();
        assert_eq!(sim.objects["Experiment/default/ex"]["spec"]["terminate"], json!(true));
        assert_eq!(sim.final_state["ex"].phase, "Successful");
        let notes: Vec<(&str, &str)> = sim.notes.iter().map(|n| (n.rollout.as_str(), n.what.as_str())).collect();
        assert_eq!(notes, [("ex", "events[1]: experiment \"ex\" is already terminating")]);
        let missing = r#"[{"at": "5s", "terminate": {"experiment": "nope"}}]"#;
        let err = simulate(&scenario(missing)).unwrap_err();
        assert_eq!(err.to_string(), "events[0] at 5s: experiment \"nope\" not found");
    }

    #[test]
    fn deleting_an_experiment_collects_what_it_owns_and_tells_its_rollout() {
        let text = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: t}
    spec:
      metrics:
        - name: m
          interval: 10s
          provider: {job: {spec: {template: {spec: {containers: [{name: c, image: check}], restartPolicy: Never}}}}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Experiment
    metadata: {name: ex}
    spec:
      templates:
        - name: canary
          selector: {matchLabels: {app: x}}
          service: {}
          template: {metadata: {labels: {app: x}}, spec: {containers: [{name: app, image: "x:1", ports: [{containerPort: 80}]}]}}
      analyses: [{name: a, templateName: t}]
metrics:
  m: [{phase: Successful, after: 30s}]
events:
  - {at: 5s, delete: {kind: Experiment, name: ex}}
expect:
  - {at: 4s, rollout: ex, phase: Running, objects: {"Service/default/ex-canary": {}, "AnalysisRun/default/ex-a": {}, "Job/default/ex-a.m.1": {}}}
  - {at: 5s, rollout: ex, objects: {"Experiment/default/ex": null, "ReplicaSet/default/ex-canary": null, "Service/default/ex-canary": null,
                                     "AnalysisRun/default/ex-a": null, "Job/default/ex-a.m.1": null}}
"#;
        let sim = simulate(&parse_scenario(text).unwrap()).unwrap();
        assert!(sim.outcome.failed_expectations.is_empty(), "{:#?}", sim.outcome.failed_expectations);
        // The Job's completion, due after the deletion, finds nothing to finish.
        assert!(sim.outcome.settled);
        assert!(sim.objects.keys().all(|k| k.starts_with("AnalysisTemplate/")), "{:?}", sim.objects.keys());

        let mut c = cluster();
        c.execute("demo", vec![create(Some("demo"))]);
        c.take_outbox();
        c.execute("demo", vec![Action::DeleteExperiment { name: "ex".into() }]);
        assert_eq!(seen(&mut c, "demo"), ["Deleted Experiment ex"]);
        assert!(c.experiments.is_empty());
    }
}
