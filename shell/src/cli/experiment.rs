//! What `get experiment` and `list experiments` show about an Experiment, computed from the
//! objects read from the cluster. Pure: the same objects and `now` give the same view.
//!
//! The Experiment is read field by field rather than as the core's `Experiment` type, whose
//! spec refuses unknown fields: an object written by a newer Argo Rollouts still shows.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use rollouts_core::api::AnalysisPhase;
use rollouts_core::time::parse_duration;
use rollouts_core::Timestamp;
use serde_json::Value;

use super::age::human_duration;
use super::info::{created, experiment_info, images, meta_of, ExperimentInfo};
use super::tabwriter::align;

/// Everything about one experiment that the CLI reads from the cluster.
#[derive(Debug, Clone, Default)]
pub struct ExperimentObjects {
    /// The Experiment, as the API server returned it.
    pub experiment: Value,
    /// ReplicaSets in its namespace (those it owns are shown).
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods in its namespace (those its ReplicaSets own are shown).
    pub pods: Vec<Pod>,
    /// AnalysisRuns in its namespace, as JSON (those it owns are shown).
    pub analysis_runs: Vec<Value>,
}

/// The header and tree of `get experiment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentView {
    pub namespace: String,
    /// Images of its ReplicaSets with pods, tagged `Σ:<template>`, sorted by image.
    pub images: Vec<(String, Vec<String>)>,
    /// Its status, message, ReplicaSets (with pods) and AnalysisRuns.
    pub tree: ExperimentInfo,
}

/// Builds the view of `objects.experiment` and what it owns (Argo's `NewExperimentInfo` and
/// `ExperimentImages`).
pub fn experiment_view(objects: &ExperimentObjects) -> ExperimentView {
    let tree = experiment_info(&objects.experiment, &objects.replica_sets, &objects.pods, &objects.analysis_runs);
    ExperimentView {
        namespace: meta_of(&objects.experiment).namespace.unwrap_or_default(),
        images: images(&[], std::slice::from_ref(&tree)),
        tree,
    }
}

/// One experiment's columns in `list experiments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRow {
    pub namespace: String,
    pub name: String,
    /// `status.phase`, empty before the controller's first reconcile.
    pub status: String,
    /// `spec.duration` as a human duration, `-` without one (or an unreadable one).
    pub duration: String,
    /// Time left of the duration once every template is available, `-` otherwise.
    pub remaining: String,
    pub age: String,
}

/// The columns of an Experiment object at time `now` (Argo's `PrintExperimentTable`).
pub fn experiment_row(object: &Value, now: Timestamp) -> ExperimentRow {
    let meta = meta_of(object);
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_string();
    let status = text("/status/phase");
    let mut duration = "-".to_string();
    let mut remaining = "-".to_string();
    if let Some(seconds) = Some(text("/spec/duration")).filter(|d| !d.is_empty()).and_then(|d| parse_duration(&d).ok()) {
        duration = human_duration(seconds.0);
        let completed = serde_json::from_value::<AnalysisPhase>(Value::String(status.clone())).is_ok_and(|p| p.completed());
        let available_at = Timestamp::parse_rfc3339(&text("/status/availableAt"));
        if let (false, Some(available_at)) = (completed, available_at) {
            let left = available_at.plus(seconds).since(now).0;
            if left > 0 {
                remaining = human_duration(left);
            }
        }
    }
    ExperimentRow {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        status,
        duration,
        remaining,
        age: created(&meta).map(|c| human_duration(now.since(c).0)).unwrap_or_default(),
    }
}

/// The table of `experiments` (in the order given) at time `now`, aligned, with Argo's
/// cell padding; a NAMESPACE column first with `all_namespaces`.
pub fn experiments_table(experiments: &[Value], all_namespaces: bool, now: Timestamp) -> String {
    let mut text = String::new();
    if all_namespaces {
        text.push_str("NAMESPACE\t");
    }
    text.push_str("NAME\tSTATUS\tDURATION\tREMAINING\tAGE\n");
    for object in experiments {
        let row = experiment_row(object, now);
        if all_namespaces {
            text.push_str(&format!("{:<9}\t", row.namespace));
        }
        text.push_str(&format!(
            "{:<10}\t{:<6}\t{:<8}\t{:<9}\t{:<3}\n",
            row.name, row.status, row.duration, row.remaining, row.age
        ));
    }
    align(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    /// Argo's `newExperiment` of list_test.go: created a week ago, available an hour ago.
    fn my_experiment(namespace: &str, name: &str, duration: Option<&str>, phase: &str) -> Value {
        let mut exp = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2024-04-24T12:00:00Z"},
            "spec": {"templates": []},
            "status": {"phase": phase, "availableAt": "2024-05-01T11:00:00Z"}
        });
        if let Some(d) = duration {
            exp["spec"]["duration"] = json!(d);
        }
        exp
    }

    #[test]
    fn the_list_is_laid_out_like_argos() {
        let now = at("2024-05-01T12:00:01Z");
        let got = experiments_table(
            &[my_experiment("my-other-namespace", "my-experiment2", None, "Running"), my_experiment("test", "my-experiment", Some("3h"), "Running")],
            true,
            now,
        );
        // Argo's TestListExperiments (Go's tabwriter keeps the padding of the last cell; ours
        // trims trailing spaces, as `list rollouts` does).
        assert_eq!(
            got,
            "NAMESPACE           NAME            STATUS   DURATION  REMAINING  AGE\n\
             my-other-namespace  my-experiment2  Running  -         -          7d\n\
             test                my-experiment   Running  3h        119m       7d\n"
        );
        let one = experiments_table(&[my_experiment("test", "my-experiment", Some("3h"), "Running")], false, now);
        assert!(one.starts_with("NAME           STATUS   DURATION  REMAINING  AGE\nmy-experiment  Running  3h "), "{one}");
    }

    #[test]
    fn remaining_time_shows_only_while_the_duration_runs() {
        let now = at("2024-05-01T12:00:00Z");
        let row = |d: Option<&str>, phase: &str| experiment_row(&my_experiment("ns", "e", d, phase), now);
        assert_eq!(row(Some("90m"), "Running").remaining, "30m");
        assert_eq!(row(Some("90"), "Running").duration, "90s", "a bare number is seconds");
        // The duration is over, or the experiment ended early: nothing remains.
        assert_eq!(row(Some("30m"), "Running").remaining, "-");
        for phase in ["Successful", "Failed", "Error", "Inconclusive"] {
            assert_eq!(row(Some("3h"), phase).remaining, "-", "{phase}");
        }
        // Not yet available: the clock has not started.
        let mut pending = my_experiment("ns", "e", Some("3h"), "Pending");
        pending["status"] = json!({"phase": "Pending"});
        let r = experiment_row(&pending, now);
        assert_eq!((r.duration.as_str(), r.remaining.as_str()), ("3h", "-"));
        // Unreadable durations and a missing status read as Argo's dashes and an empty phase.
        let bad = experiment_row(&json!({"metadata": {"name": "x"}, "spec": {"duration": "soon"}}), now);
        assert_eq!((bad.status.as_str(), bad.duration.as_str(), bad.remaining.as_str(), bad.age.as_str()), ("", "-", "-", ""));
    }
}
