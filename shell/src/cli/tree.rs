//! The text of `get rollout`: a header block and the tree of revisions, ReplicaSets, pods,
//! experiments and AnalysisRuns, laid out like Argo's plugin.

use std::fmt::Write as _;

use rollouts_core::Timestamp;

use super::age::human_duration;
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

fn replica_set_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => ICON_PROGRESSING,
        "Healthy" => ICON_OK,
        "ReplicaFailure" => ICON_BAD,
        "ScaledDown" => ICON_NEUTRAL,
        _ => " ",
    }
}

fn pod_icon(status: &str) -> &'static str {
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

fn analysis_icon(phase: &str) -> &'static str {
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
    for (i, (image, tags)) in info.images.iter().enumerate() {
        let label = if i == 0 { "Images:" } else { "" };
        if tags.is_empty() {
            field(label, image);
        } else {
            let tags: Vec<String> = tags.iter().map(|t| p.paint(t)).collect();
            field(label, &format!("{image} ({})", tags.join(", ")));
        }
    }
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

    #[test]
    fn colours_wrap_known_words_only() {
        let p = Painter { colour: true };
        assert_eq!(p.paint("✔"), "\x1b[32m✔\x1b[0m");
        assert_eq!(p.paint("canary"), "\x1b[33mcanary\x1b[0m");
        assert_eq!(p.paint("Healthy"), "Healthy");
        assert_eq!(Painter { colour: false }.paint("✔"), "✔");
    }
}
