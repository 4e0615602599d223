//! The text of `get rollout` and `get experiment`: a header block and the tree of revisions,
//! ReplicaSets, pods, experiments and AnalysisRuns, laid out like Argo's plugin.

use std::fmt::Write as _;

use rollouts_core::Timestamp;

use super::age::human_duration;
use super::experiment::ExperimentView;
use super::info::{revisions, AnalysisRunInfo, ExperimentInfo, JobInfo, ReplicaSetInfo, RolloutInfo, Strategy};
use super::tabwriter::align;

pub const ICON_WAITING: &str = "◷";
pub const ICON_PROGRESSING: &str = "◌";
pub const ICON_WARNING: &str = "⚠";
pub const ICON_UNKNOWN: &str = "?";
pub const ICON_OK: &str = "✔";
pub const ICON_BAD: &str = "✖";
pub const ICON_PAUSED: &str = "॥";
pub const ICON_NEUTRAL: &str = "•";

const ICON_ROLLOUT: &str = "⟳";
const ICON_REVISION: &str = "#";
const ICON_REPLICA_SET: &str = "⧉";
const ICON_POD: &str = "□";
const ICON_JOB: &str = "⊞";
const ICON_EXPERIMENT: &str = "Σ";
const ICON_ANALYSIS: &str = "α";

const RED: u8 = 31;
const GREEN: u8 = 32;
const YELLOW: u8 = 33;
const HI_BLUE: u8 = 94;

/// Icon of a rollout phase.
pub fn rollout_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => ICON_PROGRESSING,
        "Error" | "InvalidSpec" => ICON_WARNING,
        "Paused" => ICON_PAUSED,
        "Healthy" => ICON_OK,
        "Degraded" => ICON_BAD,
        "Unknown" => ICON_UNKNOWN,
        "ScaledDown" => ICON_NEUTRAL,
        _ => " ",
    }
}

pub(crate) fn replica_set_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => ICON_PROGRESSING,
        "Healthy" => ICON_OK,
        "ReplicaFailure" => ICON_BAD,
        "ScaledDown" => ICON_NEUTRAL,
        _ => " ",
    }
}

pub(crate) fn pod_icon(status: &str) -> &'static str {
    if status.starts_with("Init:") {
        return ICON_PROGRESSING;
    }
    if status.starts_with("Signal:") || status.starts_with("ExitCode:") {
        return ICON_BAD;
    }
    if status.ends_with("Error") || status.starts_with("Err") {
        return ICON_WARNING;
    }
    match status {
        "Pending" | "Terminating" | "ContainerCreating" => ICON_PROGRESSING,
        "Running" | "Completed" => ICON_OK,
        "Failed" | "InvalidImageName" | "CrashLoopBackOff" => ICON_BAD,
        "ImagePullBackOff" | "RegistryUnavailable" => ICON_WARNING,
        "Unknown" => ICON_UNKNOWN,
        _ => " ",
    }
}

pub(crate) fn analysis_icon(phase: &str) -> &'static str {
    match phase {
        "Successful" => ICON_OK,
        "Inconclusive" => ICON_UNKNOWN,
        "Failed" => ICON_BAD,
        "Error" => ICON_WARNING,
        "Running" => ICON_PROGRESSING,
        "Pending" => ICON_WAITING,
        _ => " ",
    }
}

/// Colours by well-known word: icons, ReplicaSet roles, and the running analysis phases.
fn colour_of(word: &str) -> Option<u8> {
    match word {
        ICON_WAITING | ICON_UNKNOWN | "canary" => Some(YELLOW),
        ICON_PROGRESSING | "preview" | "ping" | "pong" | "Pending" | "Running" => Some(HI_BLUE),
        ICON_WARNING | ICON_BAD => Some(RED),
        ICON_OK | "stable" | "active" => Some(GREEN),
        _ => None,
    }
}

/// Writes the view, with ANSI colours when `colour` is set.
struct Painter {
    colour: bool,
}

impl Painter {
    /// `text` in the colour of `word`.
    fn paint_as(&self, text: &str, word: &str) -> String {
        match colour_of(word) {
            Some(code) if self.colour => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }

    fn paint(&self, word: &str) -> String {
        self.paint_as(word, word)
    }
}

fn age(created: Option<Timestamp>, now: Timestamp) -> String {
    created.map(|c| human_duration(now.since(c).0)).unwrap_or_default()
}

/// Argo's `getPrefixes`: the branch of a child and the indentation of its own children.
fn prefixes(is_last: bool, sub: &str) -> (String, String) {
    if is_last {
        (format!("{sub}└──"), format!("{sub}   "))
    } else {
        (format!("{sub}├──"), format!("{sub}│  "))
    }
}

/// Renders `get rollout`'s output at time `now`.
pub fn render_rollout(info: &RolloutInfo, now: Timestamp, colour: bool) -> String {
    let p = Painter { colour };
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let line = format!("{label:<17}{value}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    field("Name:", &info.name);
    field("Namespace:", &info.namespace);
    field("Status:", &format!("{} {}", p.paint(rollout_icon(info.status.as_str())), info.status.as_str()));
    if !info.message.is_empty() {
        field("Message:", &info.message);
    }
    match info.strategy {
        Strategy::Canary => {
            field("Strategy:", "Canary");
            field("  Step:", info.step.as_deref().unwrap_or(""));
            field("  SetWeight:", &info.set_weight.unwrap_or(0).to_string());
            field("  ActualWeight:", &info.actual_weight.unwrap_or(0).to_string());
        }
        Strategy::BlueGreen => field("Strategy:", "BlueGreen"),
        Strategy::Unknown => field("Strategy:", ""),
    }
    image_fields(&mut field, &info.images, &p);
    field("Replicas:", "");
    field("  Desired:", &info.desired.to_string());
    field("  Current:", &info.current.to_string());
    field("  Updated:", &info.updated.to_string());
    field("  Ready:", &info.ready.to_string());
    field("  Available:", &info.available.to_string());
    out.push('\n');
    out.push_str(&align(&tree(info, now, &p)));
    out
}

/// The `Images:` lines: the first labelled, the others under it.
fn image_fields(field: &mut impl FnMut(&str, &str), images: &[(String, Vec<String>)], p: &Painter) {
    for (i, (image, tags)) in images.iter().enumerate() {
        let label = if i == 0 { "Images:" } else { "" };
        if tags.is_empty() {
            field(label, image);
        } else {
            let tags: Vec<String> = tags.iter().map(|t| p.paint(t)).collect();
            field(label, &format!("{image} ({})", tags.join(", ")));
        }
    }
}

/// Renders `get experiment`'s output at time `now`: Argo's header (name, namespace, status,
/// message, images) and the tree rooted at the experiment.
pub fn render_experiment(view: &ExperimentView, now: Timestamp, colour: bool) -> String {
    let p = Painter { colour };
    let exp = &view.tree;
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let line = format!("{label:<17}{value}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    field("Name:", &exp.name);
    field("Namespace:", &view.namespace);
    field("Status:", &format!("{} {}", p.paint(analysis_icon(&exp.status)), exp.status));
    if !exp.message.is_empty() {
        field("Message:", &exp.message);
    }
    image_fields(&mut field, &view.images, &p);
    out.push('\n');
    let mut rows = String::from("NAME\tKIND\tSTATUS\tAGE\tINFO\n");
    experiment_rows(&mut rows, exp, "", "", now, &p);
    out.push_str(&align(&rows));
    out
}

/// The tab-separated rows of the tree.
fn tree(info: &RolloutInfo, now: Timestamp, p: &Painter) -> String {
    let mut rows = String::from("NAME\tKIND\tSTATUS\tAGE\tINFO\n");
    let _ = writeln!(
        rows,
        "{ICON_ROLLOUT} {}\tRollout\t{} {}\t{}\t",
        info.name,
        p.paint(rollout_icon(info.status.as_str())),
        info.status.as_str(),
        age(info.created, now)
    );
    let revisions = revisions(info);
    for (i, revision) in revisions.iter().enumerate() {
        let (prefix, sub) = prefixes(i + 1 == revisions.len(), "");
        let _ = writeln!(rows, "{prefix}{ICON_REVISION} revision:{revision}\t\t \t\t");
        let replica_sets: Vec<&ReplicaSetInfo> =
            info.replica_sets.iter().filter(|r| r.revision == *revision).collect();
        let experiments: Vec<&ExperimentInfo> = info.experiments.iter().filter(|e| e.revision == *revision).collect();
        let runs: Vec<&AnalysisRunInfo> = info.analysis_runs.iter().filter(|a| a.revision == *revision).collect();
        let total = replica_sets.len() + experiments.len() + runs.len();
        let mut n = 0;
        let mut next = || {
            n += 1;
            prefixes(n == total, &sub)
        };
        for rs in replica_sets {
            let (prefix, sub) = next();
            replica_set_rows(&mut rows, rs, &prefix, &sub, now, p);
        }
        for exp in experiments {
            let (prefix, sub) = next();
            experiment_rows(&mut rows, exp, &prefix, &sub, now, p);
        }
        for run in runs {
            let (prefix, sub) = next();
            analysis_run_rows(&mut rows, run, &prefix, &sub, now, p);
        }
    }
    rows
}

fn replica_set_rows(rows: &mut String, rs: &ReplicaSetInfo, prefix: &str, sub: &str, now: Timestamp, p: &Painter) {
    let mut tags = rs.tags.clone();
    tags.sort();
    let mut info: Vec<String> = tags.iter().map(|t| p.paint(t.as_str())).collect();
    if let Some(deadline) = rs.scale_down_deadline {
        let left = deadline.since(now).0;
        info.push(if left < 0 { "delay:passed".into() } else { format!("delay:{}", human_duration(left)) });
    }
    let name = match tags.first() {
        Some(tag) => p.paint_as(&rs.name, tag.as_str()),
        None => rs.name.clone(),
    };
    let _ = writeln!(
        rows,
        "{prefix}{ICON_REPLICA_SET} {name}\tReplicaSet\t{} {}\t{}\t{}",
        p.paint(replica_set_icon(rs.status)),
        rs.status,
        age(rs.created, now),
        info.join(",")
    );
    for (i, pod) in rs.pods.iter().enumerate() {
        let (prefix, _) = prefixes(i + 1 == rs.pods.len(), sub);
        let mut info = format!("ready:{}", pod.ready);
        if pod.restarts > 0 {
            let _ = write!(info, ",restarts:{}", pod.restarts);
        }
        let _ = writeln!(
            rows,
            "{prefix}{ICON_POD} {}\tPod\t{} {}\t{}\t{info}",
            pod.name,
            p.paint(pod_icon(&pod.status)),
            pod.status,
            age(pod.created, now)
        );
    }
}

fn experiment_rows(rows: &mut String, exp: &ExperimentInfo, prefix: &str, sub: &str, now: Timestamp, p: &Painter) {
    let _ = writeln!(
        rows,
        "{prefix}{ICON_EXPERIMENT} {}\tExperiment\t{} {}\t{}\t",
        p.paint_as(&exp.name, &exp.status),
        p.paint(analysis_icon(&exp.status)),
        exp.status,
        age(exp.created, now)
    );
    let total = exp.replica_sets.len() + exp.analysis_runs.len();
    let mut n = 0;
    for rs in &exp.replica_sets {
        n += 1;
        let (prefix, sub) = prefixes(n == total, sub);
        replica_set_rows(rows, rs, &prefix, &sub, now, p);
    }
    for run in &exp.analysis_runs {
        n += 1;
        let (prefix, sub) = prefixes(n == total, sub);
        analysis_run_rows(rows, run, &prefix, &sub, now, p);
    }
}

fn analysis_run_rows(rows: &mut String, run: &AnalysisRunInfo, prefix: &str, sub: &str, now: Timestamp, p: &Painter) {
    let counts = [
        (ICON_OK, run.successful),
        (ICON_BAD, run.failed),
        (ICON_UNKNOWN, run.inconclusive),
        (ICON_WARNING, run.error),
    ];
    let info: Vec<String> = counts.iter().filter(|(_, n)| *n > 0).map(|(icon, n)| format!("{} {n}", p.paint(icon))).collect();
    let _ = writeln!(
        rows,
        "{prefix}{ICON_ANALYSIS} {}\tAnalysisRun\t{} {}\t{}\t{}",
        p.paint_as(&run.name, &run.status),
        p.paint(analysis_icon(&run.status)),
        run.status,
        age(run.created, now),
        info.join(",")
    );
    for (i, job) in run.jobs.iter().enumerate() {
        let (prefix, _) = prefixes(i + 1 == run.jobs.len(), sub);
        job_row(rows, job, &prefix, now, p);
    }
}

fn job_row(rows: &mut String, job: &JobInfo, prefix: &str, now: Timestamp, p: &Painter) {
    let _ = writeln!(
        rows,
        "{prefix}{ICON_JOB} {}\tJob\t{} {}\t{}\t",
        p.paint_as(&job.name, &job.status),
        p.paint(analysis_icon(&job.status)),
        job.status,
        age(job.started, now)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sort_in_argos_order() {
        use crate::cli::info::Tag;
        let mut tags = vec![Tag::Pong, Tag::Active, Tag::Stable];
        tags.sort();
        assert_eq!(tags, [Tag::Stable, Tag::Active, Tag::Pong]);
    }

    #[test]
    fn icons_follow_argo() {
        assert_eq!(rollout_icon("Paused"), "॥");
        assert_eq!(pod_icon("Init:0/1"), "◌");
        assert_eq!(pod_icon("ExitCode:1"), "✖");
        assert_eq!(pod_icon("CreateContainerConfigError"), "⚠");
        assert_eq!(pod_icon("ErrImagePull"), "⚠");
        assert_eq!(analysis_icon("Pending"), "◷");
        assert_eq!(analysis_icon(""), " ");
    }

    /// The seed's NGINX canary paused at `setWeight: 5`, as the cluster holds it.
    fn nginx_objects(weights: serde_json::Value, step: i64) -> crate::cli::info::Objects {
        use serde_json::json;
        let rs = |hash: &str, revision: &str, image: &str, replicas: i32| -> k8s_openapi::api::apps::v1::ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {
                    "name": format!("rollouts-demo-{hash}"), "namespace": "default", "generation": 1,
                    "creationTimestamp": "2024-05-01T10:00:00Z",
                    "labels": {"app": "rollouts-demo", "rollouts-pod-template-hash": hash},
                    "annotations": {"rollout.argoproj.io/revision": revision},
                    "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "rollouts-demo", "uid": "ro-uid", "controller": true}]
                },
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "rollouts-demo"}},
                         "template": {"metadata": {"labels": {"app": "rollouts-demo"}}, "spec": {"containers": [{"name": "rollouts-demo", "image": image}]}}},
                "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 1}
            }))
            .unwrap()
        };
        let mut ro: serde_json::Value = serde_yaml_ng::from_str(include_str!("../../../fixtures/rollouts/seed-nginx-canary.yaml")).unwrap();
        ro["metadata"]["namespace"] = json!("default");
        ro["metadata"]["uid"] = json!("ro-uid");
        ro["metadata"]["generation"] = json!(2);
        ro["metadata"]["creationTimestamp"] = json!("2024-05-01T10:00:00Z");
        ro["status"] = json!({
            "observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep",
            "currentStepIndex": step, "currentPodHash": "6f8c5b7d9", "stableRS": "5d8b9c6f4",
            "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-05-01T10:01:00Z"}],
            "canary": {"weights": weights}
        });
        crate::cli::info::Objects {
            rollout: ro,
            replica_sets: vec![
                rs("5d8b9c6f4", "1", "argoproj/rollouts-demo:blue", 1),
                rs("6f8c5b7d9", "2", "argoproj/rollouts-demo:yellow", 1),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_traffic_routed_canary_shows_the_routers_weight_as_actual_weight() {
        use crate::cli::info::rollout_info;
        use serde_json::json;
        let weights = |canary: i32| {
            json!({
                "canary": {"weight": canary, "podTemplateHash": "6f8c5b7d9", "serviceName": "rollouts-demo-canary"},
                "stable": {"weight": 100 - canary, "podTemplateHash": "5d8b9c6f4", "serviceName": "rollouts-demo-stable"}
            })
        };
        let now = Timestamp::parse_rfc3339("2024-05-01T10:05:00Z").unwrap();
        let text = render_rollout(&rollout_info(&nginx_objects(weights(5), 1)), now, false);
        assert_eq!(
            text,
            "Name:            rollouts-demo\n\
             Namespace:       default\n\
             Status:          ॥ Paused\n\
             Message:         CanaryPauseStep\n\
             Strategy:        Canary\n\
            \x20 Step:          1/2\n\
            \x20 SetWeight:     5\n\
            \x20 ActualWeight:  5\n\
             Images:          argoproj/rollouts-demo:blue (stable)\n\
            \x20                argoproj/rollouts-demo:yellow (canary)\n\
             Replicas:\n\
            \x20 Desired:       1\n\
            \x20 Current:       2\n\
            \x20 Updated:       1\n\
            \x20 Ready:         2\n\
            \x20 Available:     2\n\
             \n\
             NAME                             KIND        STATUS     AGE  INFO\n\
             ⟳ rollouts-demo                  Rollout     ॥ Paused   5m\n\
             ├──# revision:2\n\
             │  └──⧉ rollouts-demo-6f8c5b7d9  ReplicaSet  ✔ Healthy  5m   canary\n\
             └──# revision:1\n\
            \x20  └──⧉ rollouts-demo-5d8b9c6f4  ReplicaSet  ✔ Healthy  5m   stable\n"
        );
        // The router was told 0 (the canary had no available pod yet): that is what the
        // canary gets, whatever the step asks for.
        let info = rollout_info(&nginx_objects(weights(0), 1));
        assert_eq!((info.set_weight, info.actual_weight), (Some(5), Some(0)));
        // No weights recorded yet: the step's weight, as Argo shows it.
        let info = rollout_info(&nginx_objects(serde_json::Value::Null, 1));
        assert_eq!((info.set_weight, info.actual_weight), (Some(5), Some(5)));
        // Past the last step: all of maxTrafficWeight.
        let info = rollout_info(&nginx_objects(weights(100), 2));
        assert_eq!(info.actual_weight, Some(100));
    }

    #[test]
    fn colours_wrap_known_words_only() {
        let p = Painter { colour: true };
        assert_eq!(p.paint("✔"), "\x1b[32m✔\x1b[0m");
        assert_eq!(p.paint("canary"), "\x1b[33mcanary\x1b[0m");
        assert_eq!(p.paint("Healthy"), "Healthy");
        assert_eq!(Painter { colour: false }.paint("✔"), "✔");
    }
}
