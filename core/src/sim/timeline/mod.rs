//! Timeline entries (the simulator's JSON contract), the table view, and expectations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cluster::Cluster;
use super::scenario::Expectation;
use crate::api::Rollout;
use crate::objects::{service_selected_hash, ReplicaSetExt};
use crate::replicas;
use crate::time::Seconds;

mod experiments;

pub(super) use experiments::experiment_entry;
use experiments::{experiment_replica_sets, experiment_summary, experiments_of};
pub use experiments::{ExperimentEntry, TemplateEntry};

/// One ReplicaSet in an [`Entry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsEntry {
    /// Name.
    pub name: String,
    /// Pod-template hash.
    pub hash: String,
    /// Revision number.
    pub revision: i64,
    /// `stable`, `canary`, `active`, `preview`, `old`, or `experiment` (an Experiment
    /// template's).
    pub role: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// Ready pods.
    pub ready: i32,
    /// Available pods.
    pub available: i32,
    /// Container images.
    pub images: Vec<String>,
}

/// `{name, phase}` of an AnalysisRun.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// Name.
    pub name: String,
    /// Phase.
    pub phase: String,
}

/// One destination of [`WeightsEntry`]: every key always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightEntry {
    /// Its weight, out of `maxTrafficWeight`.
    pub weight: i32,
    /// The pod-template hash receiving it (`""` when none).
    pub pod_template_hash: String,
    /// The Service receiving it (`""` when none).
    pub service_name: String,
}

impl From<&crate::api::WeightDestination> for WeightEntry {
    fn from(d: &crate::api::WeightDestination) -> Self {
        WeightEntry { weight: d.weight, pod_template_hash: d.pod_template_hash.clone(), service_name: d.service_name.clone() }
    }
}

/// Argo's `status.canary.weights`, as the simulated cluster holds it, with every key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsEntry {
    /// The canary destination.
    pub canary: WeightEntry,
    /// The stable destination.
    pub stable: WeightEntry,
    /// Experiment destinations (`[]` when none).
    pub additional: Vec<WeightEntry>,
    /// Whether the router confirmed the weight (`null` when it cannot say).
    pub verified: Option<bool>,
}

impl WeightsEntry {
    /// The total weight: what the canary, the stable and the experiments share.
    fn total(&self) -> i64 {
        i64::from(self.canary.weight)
            + i64::from(self.stable.weight)
            + self.additional.iter().map(|a| i64::from(a.weight)).sum::<i64>()
    }
}

/// The state of one rollout at a time. Written whenever a field other than the time
/// changes. The keys are a contract: other tools read them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Seconds since the start.
    pub t: i64,
    /// Same, human form (`1m30s`).
    pub at: String,
    /// Rollout name.
    pub rollout: String,
    /// Healthy / Progressing / Paused / Degraded.
    pub phase: String,
    /// Phase message.
    pub message: String,
    /// `status.currentStepIndex` (null without steps).
    pub current_step_index: Option<i32>,
    /// Number of canary steps.
    pub step_count: i32,
    /// The weight the steps ask for now (null for blue-green).
    pub set_weight: Option<i32>,
    /// The traffic the canary really gets, in percent: with a traffic router its weight
    /// out of `maxTrafficWeight` (0 while the canary has no available pod); else its share
    /// of available pods (blue-green: the active service's share of the new ReplicaSet, 0
    /// or 100).
    pub actual_weight: i32,
    /// `status.stableRS`.
    pub stable_hash: String,
    /// `status.currentPodHash`.
    pub canary_hash: String,
    /// Reasons of `status.pauseConditions`.
    pub pause_conditions: Vec<String>,
    /// `status.abort`.
    pub aborted: bool,
    /// ReplicaSets, newest revision first.
    pub replica_sets: Vec<RsEntry>,
    /// AnalysisRuns.
    pub analysis_runs: Vec<RunEntry>,
    /// Experiments (a rollout's `experiment` steps', oldest first; a standalone
    /// Experiment's row: itself).
    pub experiments: Vec<ExperimentEntry>,
    /// `status.canary.weights` with a traffic router, every key present; `null` without.
    pub weights: Option<WeightsEntry>,
}

impl Entry {
    /// Whether two entries differ in anything but the time.
    pub fn same_state(&self, other: &Entry) -> bool {
        let mut a = self.clone();
        a.t = other.t;
        a.at = other.at.clone();
        &a == other
    }
}

/// Decoded Rollouts by name, reused while their `metadata.generation` (and so their
/// spec) stays the same: most changes are status writes, and decoding every step of a
/// long spec for each of them would make a simulation quadratic in the number of steps.
#[derive(Default)]
pub(super) struct Decoded(BTreeMap<String, Rollout>);

impl Decoded {
    fn get(&mut self, name: &str, obj: &Value) -> &Rollout {
        let generation = obj.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64);
        let reused = match self.0.get_mut(name) {
            Some(ro) if generation.is_some() && ro.metadata.generation == generation => {
                crate::rollout::metadata_and_status(obj).map(|(metadata, status)| {
                    ro.metadata = metadata;
                    ro.status = status;
                })
            }
            _ => None,
        };
        if reused.is_none() {
            self.0.insert(name.to_string(), crate::rollout::decode_rollout(obj).0);
        }
        self.0.entry(name.to_string()).or_default()
    }
}

/// Builds the entry for rollout `name` from the cluster's objects.
pub(super) fn entry(cluster: &Cluster, decoded: &mut Decoded, name: &str, t: Seconds) -> Option<Entry> {
    let obj = cluster.rollouts.get(name)?;
    let ro = decoded.get(name, obj);
    let st = &ro.status;
    let is_bg = ro.spec.blue_green().is_some();
    let active = ro
        .spec
        .blue_green()
        .and_then(|b| cluster.services.get(&b.active_service))
        .map(|s| service_selected_hash(s).to_string())
        .unwrap_or_default();
    let mut rss: Vec<RsEntry> = cluster
        .replica_sets_of(name)
        .map(|(_, rs)| {
            let hash = rs.pod_hash().to_string();
            let role = if is_bg {
                if !active.is_empty() && hash == active {
                    "active"
                } else if hash == st.current_pod_hash {
                    "preview"
                } else {
                    "old"
                }
            } else if !hash.is_empty() && hash == st.stable_rs {
                "stable"
            } else if hash == st.current_pod_hash {
                "canary"
            } else {
                "old"
            };
            rs_entry(rs, rs.revision().unwrap_or(0), role)
        })
        .collect();
    rss.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.name.cmp(&b.name)));
    let steps = ro.spec.steps().len() as i32;
    let weights = st.canary.weights.as_ref().map(|w| WeightsEntry {
        canary: (&w.canary).into(),
        stable: (&w.stable).into(),
        additional: w.additional.iter().map(WeightEntry::from).collect(),
        verified: w.verified,
    });
    let actual_weight = match &weights {
        Some(w) => routed_weight(w, &st.current_pod_hash, ro.spec.max_traffic_weight(), &rss),
        None => actual_weight(ro, &rss, &active),
    };
    // The Experiments' ReplicaSets follow the rollout's own, oldest Experiment first
    // (their pods are not the canary's: the weight above leaves them out).
    let experiments = experiments_of(cluster, name);
    for ex in &experiments {
        rss.extend(experiment_replica_sets(cluster, ex));
    }
    Some(Entry {
        t: t.0,
        at: t.human(),
        rollout: name.to_string(),
        phase: st.phase.map(|p| p.as_str().to_string()).unwrap_or_else(|| "Progressing".into()),
        message: st.message.clone(),
        current_step_index: if steps > 0 { st.current_step_index } else { None },
        step_count: steps,
        set_weight: if is_bg { None } else { Some(replicas::current_set_weight(&ro.spec, st)) },
        actual_weight,
        stable_hash: st.stable_rs.clone(),
        canary_hash: st.current_pod_hash.clone(),
        pause_conditions: st.pause_conditions.iter().map(|p| p.reason.as_str().to_string()).collect(),
        aborted: st.abort,
        replica_sets: rss,
        analysis_runs: runs_of(cluster, "Rollout", name),
        experiments: experiments.iter().map(|ex| experiment_summary(cluster, ex)).collect(),
        weights,
    })
}

/// A ReplicaSet's row.
fn rs_entry(rs: &k8s_openapi::api::apps::v1::ReplicaSet, revision: i64, role: &str) -> RsEntry {
    RsEntry {
        name: rs.name().to_string(),
        hash: rs.pod_hash().to_string(),
        revision,
        role: role.to_string(),
        desired: rs.spec_replicas(),
        ready: rs.ready(),
        available: rs.available(),
        images: rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers.iter().filter_map(|c| c.image.clone()).collect())
            .unwrap_or_default(),
    }
}

/// The AnalysisRuns of the `owner_kind` (Rollout or Experiment) named `owner`, oldest
/// first.
fn runs_of(cluster: &Cluster, owner_kind: &str, owner: &str) -> Vec<RunEntry> {
    let mut runs: Vec<(String, RunEntry)> = cluster
        .analysis_runs
        .values()
        .filter(|r| {
            r.pointer("/metadata/ownerReferences/0/name").and_then(Value::as_str) == Some(owner)
                && r.pointer("/metadata/ownerReferences/0/kind").and_then(Value::as_str) == Some(owner_kind)
        })
        .map(|r| {
            let created = r.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string();
            let name = r.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let phase = r.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").to_string();
            (created, RunEntry { name, phase })
        })
        .collect();
    runs.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
    runs.into_iter().map(|(_, r)| r).collect()
}

/// The canary's share of available pods (percent, rounded half up); blue-green: 100 when
/// the active service selects the current template, else 0.
fn actual_weight(ro: &Rollout, rss: &[RsEntry], active: &str) -> i32 {
    let current = &ro.status.current_pod_hash;
    if ro.spec.blue_green().is_some() {
        return if !current.is_empty() && active == current { 100 } else { 0 };
    }
    let total: i64 = rss.iter().map(|r| i64::from(r.available)).sum();
    if total == 0 {
        return 0;
    }
    let canary: i64 = rss.iter().filter(|r| &r.hash == current).map(|r| i64::from(r.available)).sum();
    ((canary * 200 + total) / (2 * total)) as i32
}

/// The current template's traffic share from the router's weights, in percent of
/// `maxTrafficWeight` (rounded half up): the weights of every destination serving the
/// current pod-template hash (the canary's while updating; canary and stable once fully
/// promoted, so 100 as Argo's CLI shows; the stable's while rolling back to it), 0 when no
/// available pod of that ReplicaSet could take it.
fn routed_weight(w: &WeightsEntry, current: &str, max_weight: i32, rss: &[RsEntry]) -> i32 {
    let available: i64 = rss.iter().filter(|r| !current.is_empty() && r.hash == current).map(|r| i64::from(r.available)).sum();
    let max = i64::from(max_weight);
    if available == 0 || max <= 0 {
        return 0;
    }
    let weight: i64 = std::iter::once(&w.canary)
        .chain(std::iter::once(&w.stable))
        .chain(w.additional.iter())
        .filter(|d| d.pod_template_hash == current)
        .map(|d| i64::from(d.weight))
        .sum::<i64>()
        .clamp(0, max);
    ((weight * 200 + max) / (2 * max)) as i32
}

/// `part` as a percent of `total`: whole when it is, else with up to two decimals.
fn percent(part: i64, total: i64) -> String {
    if total <= 0 {
        return "0".into();
    }
    if (part * 100) % total == 0 {
        return (part * 100 / total).to_string();
    }
    let hundredths = (part * 10_000 * 2 + total) / (2 * total);
    let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The TRAFFIC cell: `canary%/stable%` of the router's weights (experiments appended as
/// `+n%`), `-` without a router.
fn traffic_cell(w: Option<&WeightsEntry>) -> String {
    let Some(w) = w else { return "-".into() };
    let total = w.total();
    let mut cell = format!("{}/{}", percent(i64::from(w.canary.weight), total), percent(i64::from(w.stable.weight), total));
    for a in &w.additional {
        cell.push_str(&format!("+{}", percent(i64::from(a.weight), total)));
    }
    cell
}

/// Renders the timeline as aligned columns, one line per entry.
pub fn render_table(entries: &[Entry]) -> String {
    let header =
        ["TIME", "ROLLOUT", "PHASE", "STEP", "WEIGHT", "TRAFFIC", "REPLICASETS (desired/ready/available)", "ANALYSIS", "MESSAGE"];
    let rows: Vec<[String; 9]> = entries
        .iter()
        .map(|e| {
            let experiment_row = is_experiment_row(e);
            let step = match e.current_step_index {
                Some(i) => format!("{i}/{}", e.step_count),
                None => "-".into(),
            };
            let weight = match e.set_weight {
                Some(w) => format!("{w}/{}", e.actual_weight),
                None if experiment_row => "-".into(),
                None => format!("-/{}", e.actual_weight),
            };
            let rss = e
                .replica_sets
                .iter()
                .filter(|r| match r.role.as_str() {
                    // A rollout's row shows an Experiment's ReplicaSets while they have pods.
                    "experiment" => experiment_row || r.desired > 0 || r.ready > 0,
                    _ => r.desired > 0 || r.ready > 0 || r.role != "old",
                })
                .map(|r| {
                    let counts = format!("{}/{}/{}", r.desired, r.ready, r.available);
                    match (r.role.as_str(), template_of(e, &r.name)) {
                        ("experiment", Some(t)) if experiment_row => format!("{t} {counts}"),
                        ("experiment", Some(t)) => format!("r{} exp:{t} {counts}", r.revision),
                        _ => format!("r{} {} {counts}", r.revision, r.role),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut message = if e.aborted && !e.message.contains("abort") {
                format!("aborted; {}", e.message)
            } else {
                e.message.clone()
            };
            if !e.pause_conditions.is_empty() && !message.contains(&e.pause_conditions[0]) {
                message = format!("{message} [{}]", e.pause_conditions.join(","));
            }
            // Runs are named `<rollout>-<hash>-<revision>[-<step>|-pre|-post]`.
            let prefix = format!("{}-", e.rollout);
            // So are a rollout's Experiments (`<rollout>-<hash>-<revision>-<step>`), and a
            // standalone Experiment's runs (`<experiment>-<analysis>`).
            let experiments = e
                .experiments
                .iter()
                .filter(|_| !experiment_row)
                .map(|x| format!("exp {} {}", x.name.strip_prefix(&prefix).unwrap_or(&x.name), x.phase));
            let runs = e
                .analysis_runs
                .iter()
                .map(|r| format!("{} {}", r.name.strip_prefix(&prefix).unwrap_or(&r.name), r.phase))
                .chain(experiments)
                .collect::<Vec<_>>()
                .join(", ");
            let runs = if runs.is_empty() { "-".to_string() } else { runs };
            let traffic = if experiment_row { "-".to_string() } else { traffic_cell(e.weights.as_ref()) };
            [e.at.clone(), e.rollout.clone(), e.phase.clone(), step, weight, traffic, rss, runs, message]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Whether an entry is a standalone Experiment's row (named for the one Experiment it
/// lists, with no canary weight).
fn is_experiment_row(e: &Entry) -> bool {
    e.set_weight.is_none() && e.experiments.len() == 1 && e.experiments[0].name == e.rollout
}

/// The template of an Experiment of the entry whose ReplicaSet (`<experiment>-<template>`)
/// is `rs`.
fn template_of<'a>(e: &'a Entry, rs: &str) -> Option<&'a str> {
    e.experiments.iter().find_map(|x| {
        let t = rs.strip_prefix(x.name.as_str())?.strip_prefix('-')?;
        x.templates.iter().find(|tt| tt.name == t).map(|tt| tt.name.as_str())
    })
}

/// Checks one expectation against the timeline; `Err` says what differs.
pub fn check_expectation(exp: &Expectation, timeline: &[Entry]) -> Result<(), String> {
    let entry = timeline
        .iter()
        .rfind(|e| e.rollout == exp.rollout && e.t <= exp.at.0)
        .ok_or_else(|| format!("at {}: rollout {:?} has no state yet", exp.at.human(), exp.rollout))?;
    let mut problems = Vec::new();
    let mut check = |what: &str, want: Value, got: Value| {
        if want != got {
            problems.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    if let Some(p) = &exp.phase {
        check("phase", p.clone().into(), entry.phase.clone().into());
    }
    if let Some(m) = &exp.message {
        check("message", m.clone().into(), entry.message.clone().into());
    }
    if let Some(i) = exp.current_step_index {
        check("currentStepIndex", i.into(), entry.current_step_index.into());
    }
    if let Some(w) = exp.set_weight {
        check("setWeight", w.into(), entry.set_weight.into());
    }
    if let Some(w) = exp.actual_weight {
        check("actualWeight", w.into(), entry.actual_weight.into());
    }
    if let Some(a) = exp.aborted {
        check("aborted", a.into(), entry.aborted.into());
    }
    if let Some(p) = &exp.pause_conditions {
        check("pauseConditions", serde_json::json!(p), serde_json::json!(entry.pause_conditions));
    }
    if let Some(n) = exp.replica_set_count {
        // The rollout's own: an Experiment's are not counted.
        let own = entry.replica_sets.iter().filter(|rs| rs.role != "experiment").count();
        check("replicaSetCount", n.into(), own.into());
    }
    if let Some(r) = exp.stable_revision {
        let got = entry.replica_sets.iter().find(|rs| rs.hash == entry.stable_hash).map(|rs| rs.revision);
        check("stableRevision", r.into(), got.into());
    }
    if let Some(runs) = &exp.analysis_runs {
        if runs.len() != entry.analysis_runs.len() {
            let got: Vec<String> = entry.analysis_runs.iter().map(|r| format!("{} {}", r.name, r.phase)).collect();
            problems.push(format!("analysisRuns: expected {} run(s), got {} [{}]", runs.len(), got.len(), got.join(", ")));
        } else {
            for (i, (want, got)) in runs.iter().zip(&entry.analysis_runs).enumerate() {
                let got = serde_json::to_value(got).unwrap_or(Value::Null);
                for (k, v) in want.as_object().into_iter().flatten() {
                    if got.get(k) != Some(v) {
                        problems.push(format!(
                            "analysisRuns[{i}] {k}: expected {v}, got {}",
                            got.get(k).cloned().unwrap_or(Value::Null)
                        ));
                    }
                }
            }
        }
    }
    if let Some(want) = &exp.experiments {
        let got: Vec<Value> = entry.experiments.iter().map(|x| serde_json::to_value(x).unwrap_or(Value::Null)).collect();
        if want.len() != got.len() {
            let names: Vec<String> = entry.experiments.iter().map(|x| format!("{} {}", x.name, x.phase)).collect();
            problems.push(format!(
                "experiments: expected {} experiment(s), got {} [{}]",
                want.len(),
                got.len(),
                names.join(", ")
            ));
        } else {
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                match_subset(w, g, &format!("experiments[{i}]"), &mut problems);
            }
        }
    }
    for (rev, want) in &exp.replica_sets {
        let got = entry.replica_sets.iter().find(|rs| rs.revision.to_string() == *rev);
        let absent = want.get("absent").and_then(Value::as_bool).unwrap_or(false);
        match (got, absent) {
            (None, true) => {}
            (Some(_), true) => problems.push(format!("revision {rev}: expected no ReplicaSet")),
            (None, false) => problems.push(format!("revision {rev}: no such ReplicaSet")),
            (Some(rs), false) => {
                let got = serde_json::to_value(rs).unwrap_or(Value::Null);
                for (k, v) in want.as_object().into_iter().flatten() {
                    if got.get(k) != Some(v) {
                        problems.push(format!(
                            "revision {rev} {k}: expected {v}, got {}",
                            got.get(k).cloned().unwrap_or(Value::Null)
                        ));
                    }
                }
            }
        }
    }
    if let Some(want) = &exp.weights {
        let got = serde_json::to_value(&entry.weights).unwrap_or(Value::Null);
        if want.is_null() || got.is_null() {
            if *want != got {
                problems.push(format!("weights: expected {want}, got {got}"));
            }
        } else {
            match_subset(want, &got, "weights", &mut problems);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("at {} ({}): {}", exp.at.human(), exp.rollout, problems.join("; ")))
    }
}

/// Checks the `objects` of an expectation against the cluster as it is now.
pub(super) fn check_objects(exp: &Expectation, cluster: &Cluster) -> Result<(), String> {
    if exp.objects.is_empty() {
        return Ok(());
    }
    let objects = cluster.object_map();
    let mut problems = Vec::new();
    for (key, want) in &exp.objects {
        match (objects.get(key), want.is_null()) {
            (None, true) => {}
            (Some(_), true) => problems.push(format!("{key}: expected no such object")),
            (None, false) => problems.push(format!("{key}: no such object")),
            (Some(got), false) => match_subset(want, got, key, &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("at {} ({}): {}", exp.at.human(), exp.rollout, problems.join("; ")))
    }
}

/// Whether `got` has what `want` gives: maps key by key (a `null` wants the key absent or
/// null), lists of the same length element by element, anything else equal. What differs
/// goes to `problems`, by path.
fn match_subset(want: &Value, got: &Value, path: &str, problems: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let child = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => match_subset(wv, gv, &child, problems),
                    None if wv.is_null() => {}
                    None => problems.push(format!("{child}: expected {wv}, got nothing")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                match_subset(wv, gv, &format!("{path}[{i}]"), problems);
            }
        }
        (w, g) if w == g => {}
        (w, g) => problems.push(format!("{path}: expected {w}, got {g}")),
    }
}
