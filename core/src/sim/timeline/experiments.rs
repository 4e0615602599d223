//! The Experiments in the timeline: a rollout's step Experiments in its entries, and the
//! rows of a standalone Experiment.

use serde::{Deserialize, Serialize};

use super::{rs_entry, runs_of, Entry, RsEntry};
use crate::api::Experiment;
use crate::objects::ReplicaSetExt;
use crate::sim::cluster::Cluster;
use crate::time::Seconds;

/// One template of an [`ExperimentEntry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateEntry {
    /// Template name.
    pub name: String,
    /// `Progressing`, `Running`, `Successful`, `Failed` or `Error` (`""` before the first
    /// assessment).
    pub status: String,
    /// Pods of its ReplicaSet.
    pub replicas: i32,
    /// Available pods.
    pub available: i32,
}

/// An Experiment in an [`Entry`]: its phase and its templates in spec order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentEntry {
    /// Name.
    pub name: String,
    /// Phase (`Pending` before the first reconcile).
    pub phase: String,
    /// Its templates.
    pub templates: Vec<TemplateEntry>,
}

/// The Experiments of `rollout`, oldest first.
pub(super) fn experiments_of<'a>(cluster: &'a Cluster, rollout: &'a str) -> Vec<&'a Experiment> {
    let mut out: Vec<&Experiment> = cluster.experiments_of(rollout).collect();
    out.sort_by(|a, b| {
        (&a.metadata.creation_timestamp.as_ref().map(|t| t.0), &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp.as_ref().map(|t| t.0), &b.metadata.name))
    });
    out
}

/// The ReplicaSets of an Experiment's templates, in template order, with role
/// `experiment` and the revision of the Experiment (an `experiment` step's; 0 for a
/// standalone one).
pub(super) fn experiment_replica_sets(cluster: &Cluster, ex: &Experiment) -> Vec<RsEntry> {
    let name = ex.metadata.name.as_deref().unwrap_or_default();
    let revision = ex
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::api::keys::REVISION))
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    let mut rss: Vec<(usize, RsEntry)> = cluster
        .replica_sets_of_experiment(name)
        .map(|rs| {
            let template = rs.annotation(crate::api::EXPERIMENT_TEMPLATE_NAME_ANNOTATION).unwrap_or_default();
            let order = ex.spec.templates.iter().position(|t| t.name == template).unwrap_or(usize::MAX);
            (order, rs_entry(rs, revision, "experiment"))
        })
        .collect();
    rss.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    rss.into_iter().map(|(_, r)| r).collect()
}

/// `{name, phase, templates}` of an Experiment as stored.
pub(super) fn experiment_summary(cluster: &Cluster, ex: &Experiment) -> ExperimentEntry {
    let name = ex.metadata.name.clone().unwrap_or_default();
    let templates = ex
        .spec
        .templates
        .iter()
        .map(|t| {
            let status = ex.status.template_statuses.iter().find(|s| s.name == t.name);
            // The counts as the ReplicaSet has them now (the status lags a reconcile).
            let rs = cluster.replica_sets_of_experiment(&name).find(|rs| {
                rs.annotation(crate::api::EXPERIMENT_TEMPLATE_NAME_ANNOTATION) == Some(t.name.as_str())
            });
            TemplateEntry {
                name: t.name.clone(),
                status: status.and_then(|s| s.status).map_or("", |s| s.as_str()).to_string(),
                replicas: rs.map_or(0, |rs| rs.status_replicas()),
                available: rs.map_or(0, |rs| rs.available()),
            }
        })
        .collect();
    ExperimentEntry { name, phase: ex.status.phase.map_or("Pending", |p| p.as_str()).to_string(), templates }
}

/// Builds the row of the standalone Experiment `name`: its phase and message, its
/// ReplicaSets (role `experiment`), its AnalysisRuns, and itself in `experiments`.
pub(in crate::sim) fn experiment_entry(cluster: &Cluster, name: &str, t: Seconds) -> Option<Entry> {
    let ex = cluster.experiments.get(name)?;
    let summary = experiment_summary(cluster, ex);
    Some(Entry {
        t: t.0,
        at: t.human(),
        rollout: name.to_string(),
        phase: summary.phase.clone(),
        message: ex.status.message.clone(),
        current_step_index: None,
        step_count: 0,
        set_weight: None,
        actual_weight: 0,
        stable_hash: String::new(),
        canary_hash: String::new(),
        pause_conditions: Vec::new(),
        aborted: false,
        replica_sets: experiment_replica_sets(cluster, ex),
        analysis_runs: runs_of(cluster, "Experiment", name),
        experiments: vec![summary],
        weights: None,
    })
}

