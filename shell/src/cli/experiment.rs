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
    use rollouts_core::api::EXPERIMENT_TEMPLATE_NAME_ANNOTATION;
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

    /// The objects of `testdata/experiment-analysis.yaml` of the kinds `keep` says, as the
    /// cluster would hand them over.
    fn fixture(keep: impl Fn(&str) -> bool) -> ExperimentObjects {
        let mut objects = ExperimentObjects::default();
        for doc in serde_yaml_ng::Deserializer::from_str(include_str!("testdata/experiment-analysis.yaml")) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap().to_string();
            if !keep(&kind) {
                continue;
            }
            match kind.as_str() {
                "Experiment" => objects.experiment = value,
                "ReplicaSet" => objects.replica_sets.push(serde_json::from_value(value).unwrap()),
                "Pod" => objects.pods.push(serde_json::from_value(value).unwrap()),
                "AnalysisRun" => objects.analysis_runs.push(value),
                other => panic!("the fixture has a {other}"),
            }
        }
        objects
    }

    /// Seven days after the fixture's objects were created (Argo's "7d" ages).
    fn a_week_later() -> Timestamp {
        at("2019-11-06T07:28:43Z")
    }

    fn render(objects: &ExperimentObjects, colour: bool) -> String {
        super::super::tree::render_experiment(&experiment_view(objects), a_week_later(), colour)
    }

    #[test]
    fn get_experiment_prints_argos_header_and_tree() {
        // Argo's TestGetExperiment, byte for byte: the fixture's ReplicaSets carry the template
        // name as a label (an old controller), so the images have no tags.
        let objects = fixture(|kind| kind != "AnalysisRun");
        assert_eq!(
            render(&objects, false),
            "Name:            rollout-experiment-analysis-6f646bf7b7-1-vcv27\n\
             Namespace:       jesse-test\n\
             Status:          ◌ Running\n\
             Images:          argoproj/rollouts-demo:blue\n\
            \x20                argoproj/rollouts-demo:yellow\n\
             \n\
             NAME                                                                     KIND        STATUS     AGE  INFO\n\
             Σ rollout-experiment-analysis-6f646bf7b7-1-vcv27                         Experiment  ◌ Running  7d\n\
             ├──⧉ rollout-experiment-analysis-6f646bf7b7-1-vcv27-baseline-7d768b8b5f  ReplicaSet  ✔ Healthy  7d\n\
             │  └──□ rollout-experiment-analysis-6f646bf7b7-1-vcv27-baseline-7dczdst  Pod         ✔ Running  7d   ready:1/1\n\
             └──⧉ rollout-experiment-analysis-6f646bf7b7-1-vcv27-canary-7699dcf5d     ReplicaSet  ✔ Healthy  7d\n\
            \x20  └──□ rollout-experiment-analysis-6f646bf7b7-1-vcv27-canary-7699vgr24  Pod         ✔ Running  7d   ready:1/1\n"
        );
    }

    /// The template name as today's controllers write it: an annotation.
    fn annotate_templates(objects: &mut ExperimentObjects) {
        for rs in &mut objects.replica_sets {
            if let Some(t) = rs.metadata.labels.as_ref().and_then(|l| l.get(EXPERIMENT_TEMPLATE_NAME_ANNOTATION)).cloned() {
                rs.metadata.annotations.get_or_insert_with(Default::default).insert(EXPERIMENT_TEMPLATE_NAME_ANNOTATION.into(), t);
            }
        }
    }

    #[test]
    fn the_tree_ends_with_the_experiments_analysis_runs_and_their_jobs() {
        let mut objects = fixture(|_| true);
        annotate_templates(&mut objects);
        assert_eq!(
            render(&objects, false),
            "Name:            rollout-experiment-analysis-6f646bf7b7-1-vcv27\n\
             Namespace:       jesse-test\n\
             Status:          ◌ Running\n\
             Images:          argoproj/rollouts-demo:blue (Σ:baseline)\n\
            \x20                argoproj/rollouts-demo:yellow (Σ:canary)\n\
             \n\
             NAME                                                                     KIND         STATUS     AGE  INFO\n\
             Σ rollout-experiment-analysis-6f646bf7b7-1-vcv27                         Experiment   ◌ Running  7d\n\
             ├──⧉ rollout-experiment-analysis-6f646bf7b7-1-vcv27-baseline-7d768b8b5f  ReplicaSet   ✔ Healthy  7d\n\
             │  └──□ rollout-experiment-analysis-6f646bf7b7-1-vcv27-baseline-7dczdst  Pod          ✔ Running  7d   ready:1/1\n\
             ├──⧉ rollout-experiment-analysis-6f646bf7b7-1-vcv27-canary-7699dcf5d     ReplicaSet   ✔ Healthy  7d\n\
             │  └──□ rollout-experiment-analysis-6f646bf7b7-1-vcv27-canary-7699vgr24  Pod          ✔ Running  7d   ready:1/1\n\
             └──α rollout-experiment-analysis-6f646bf7b7-1-vcv27-stress-test          AnalysisRun  ◌ Running  7d   ✔ 4,✖ 4,? 1,⚠ 1\n\
            \x20  └──⊞ 4e2d824d-01af-11ea-b38c-42010aa80083.stress.1                    Job          ◌ Running  7d\n"
        );
    }

    #[test]
    fn a_finished_experiment_shows_its_message_and_no_images_once_scaled_down() {
        let mut objects = fixture(|kind| kind != "AnalysisRun");
        objects.experiment["status"]["phase"] = json!("Failed");
        objects.experiment["status"]["message"] = json!("Template 'canary' exceeded its progressDeadlineSeconds (30)");
        for rs in &mut objects.replica_sets {
            rs.spec.as_mut().unwrap().replicas = Some(0);
            rs.status = Some(serde_json::from_value(json!({"replicas": 0, "observedGeneration": 1})).unwrap());
        }
        objects.pods.clear();
        let text = render(&objects, false);
        let header: Vec<&str> = text.lines().take(5).collect();
        assert_eq!(
            header,
            [
                "Name:            rollout-experiment-analysis-6f646bf7b7-1-vcv27",
                "Namespace:       jesse-test",
                "Status:          ✖ Failed",
                "Message:         Template 'canary' exceeded its progressDeadlineSeconds (30)",
                "",
            ]
        );
        assert!(text.contains("Σ rollout-experiment-analysis-6f646bf7b7-1-vcv27                         Experiment  ✖ Failed      7d\n"), "{text}");
        assert!(text.contains("└──⧉ rollout-experiment-analysis-6f646bf7b7-1-vcv27-canary-7699dcf5d     ReplicaSet  • ScaledDown  7d\n"), "{text}");
    }

    #[test]
    fn colours_follow_the_rollout_tree() {
        let mut objects = fixture(|_| true);
        annotate_templates(&mut objects);
        let text = render(&objects, true);
        // The running experiment's name and icon in hi-blue, healthy icons green, the run's
        // counts in their icons' colours; the tree characters uncoloured.
        assert!(text.contains("Status:          \x1b[94m◌\x1b[0m Running\n"), "{text}");
        assert!(text.contains("Σ \x1b[94mrollout-experiment-analysis-6f646bf7b7-1-vcv27\x1b[0m"), "{text}");
        assert!(text.contains("\x1b[32m✔\x1b[0m Healthy"), "{text}");
        assert!(text.contains("\x1b[32m✔\x1b[0m 4,\x1b[31m✖\x1b[0m 4,\x1b[33m?\x1b[0m 1,\x1b[31m⚠\x1b[0m 1"), "{text}");
        // Colour codes do not move the columns.
        let plain: Vec<usize> = render(&objects, false).lines().map(|l| l.find("7d").unwrap_or(0)).collect();
        let strip = |l: &str| l.replace("\x1b[94m", "").replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[33m", "").replace("\x1b[0m", "");
        let coloured: Vec<usize> = text.lines().map(|l| strip(l).find("7d").unwrap_or(0)).collect();
        assert_eq!(plain, coloured);
    }

    #[test]
    fn an_experiment_without_status_shows_no_phase() {
        let mut objects = fixture(|kind| kind == "Experiment");
        objects.experiment.as_object_mut().unwrap().remove("status");
        let text = render(&objects, false);
        assert!(text.contains("\nStatus:\n"), "{text}");
        assert!(text.ends_with("NAME                                              KIND        STATUS  AGE  INFO\n\
                                Σ rollout-experiment-analysis-6f646bf7b7-1-vcv27  Experiment          7d\n"), "{text}");
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
