//! What `get rollout`, `list rollouts` and `status` show about a rollout, computed from the
//! objects read from the cluster. Pure: the same objects and `now` give the same view.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rollouts_core::api::{keys, AnalysisRunStatus, Rollout, RolloutPhase};
use rollouts_core::objects::{from_kube_time, ReplicaSetExt};
use rollouts_core::replicas::current_set_weight;
use rollouts_core::rollout::phase::calculate_phase;
use rollouts_core::Timestamp;
use serde_json::Value;

use rollouts_core::api::lenient::rollout_lenient;
use super::pods;

/// Annotation naming the experiment template a ReplicaSet was created for.
const EXPERIMENT_TEMPLATE_NAME: &str = "experiment.argoproj.io/template-name";
/// Measurement metadata naming the Job a job metric ran.
const JOB_NAME: &str = "job-name";

/// Everything about one rollout that the CLI reads from the cluster.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// The Rollout, as the API server returned it.
    pub rollout: Value,
    /// ReplicaSets in its namespace (those it or its experiments own are shown).
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods in its namespace (those its ReplicaSets own are shown).
    pub pods: Vec<Pod>,
    /// AnalysisRuns in its namespace, as JSON.
    pub analysis_runs: Vec<Value>,
    /// Experiments in its namespace, as JSON.
    pub experiments: Vec<Value>,
}

/// The strategy column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Canary,
    BlueGreen,
    /// Neither is set (an invalid spec).
    Unknown,
}

/// A ReplicaSet's role, in the order Argo lists the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    Stable,
    Canary,
    Active,
    Preview,
    Ping,
    Pong,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Stable => "stable",
            Tag::Canary => "canary",
            Tag::Active => "active",
            Tag::Preview => "preview",
            Tag::Ping => "ping",
            Tag::Pong => "pong",
        }
    }
}

/// The header and tree of `get rollout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutInfo {
    pub name: String,
    pub namespace: String,
    pub created: Option<Timestamp>,
    /// The phase as the client computes it.
    pub status: RolloutPhase,
    pub message: String,
    pub strategy: Strategy,
    /// `index/steps` for a canary with steps and a step index.
    pub step: Option<String>,
    /// Canary only: the weight the steps ask for.
    pub set_weight: Option<i32>,
    /// Canary only: the weight the canary really gets.
    pub actual_weight: Option<i32>,
    /// Running images, with the roles of the ReplicaSets running them, sorted by image.
    pub images: Vec<(String, Vec<String>)>,
    pub desired: i32,
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// Newest revision first.
    pub replica_sets: Vec<ReplicaSetInfo>,
    pub experiments: Vec<ExperimentInfo>,
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetInfo {
    pub name: String,
    pub created: Option<Timestamp>,
    pub revision: i64,
    /// `Healthy`, `Progressing`, `ScaledDown` or `ReplicaFailure`.
    pub status: &'static str,
    pub tags: Vec<Tag>,
    /// The `scale-down-deadline` annotation, when set.
    pub scale_down_deadline: Option<Timestamp>,
    /// `status.replicas`.
    pub replicas: i32,
    pub available: i32,
    pub images: Vec<String>,
    /// The experiment template it runs, for experiment ReplicaSets.
    pub template: String,
    pub pods: Vec<PodInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub created: Option<Timestamp>,
    pub status: String,
    pub ready: String,
    pub restarts: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisRunInfo {
    pub name: String,
    pub created: Option<Timestamp>,
    pub revision: i64,
    /// The run phase, empty before the first assessment.
    pub status: String,
    pub successful: i32,
    pub failed: i32,
    pub inconclusive: i32,
    pub error: i32,
    pub jobs: Vec<JobInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub name: String,
    pub started: Option<Timestamp>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentInfo {
    pub name: String,
    pub created: Option<Timestamp>,
    pub revision: i64,
    pub status: String,
    pub message: String,
    pub replica_sets: Vec<ReplicaSetInfo>,
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

/// The phase and message a client shows (Argo's `GetRolloutPhase`): a spec change the
/// controller has not seen yet, or a promote it has not acted on, reads as Progressing.
pub fn client_phase(ro: &Rollout) -> (RolloutPhase, String) {
    let generation = ro.metadata.generation.unwrap_or(0);
    let observed_current = match ro.status.observed_generation.parse::<i64>() {
        // Before 0.10 the field held a hash; a number above the generation is such a hash.
        Ok(observed) => observed >= generation,
        Err(_) => true,
    };
    if !observed_current {
        return (RolloutPhase::Progressing, "waiting for rollout spec update to be observed".into());
    }
    if ro.status.controller_pause && ro.status.pause_conditions.is_empty() {
        return (RolloutPhase::Progressing, "waiting for rollout to unpause".into());
    }
    // A `workloadRef`'s template changed and the controller has not written it back yet.
    let workload = ro.metadata.annotations.as_ref().and_then(|a| a.get(rollouts_core::rollout::workload::WORKLOAD_GENERATION));
    let observed = ro.status.workload_observed_generation.parse::<i64>().ok();
    if let (Some(w), Some(o)) = (workload.and_then(|w| w.parse::<i64>().ok()), observed) {
        if w != o {
            return (RolloutPhase::Progressing, "waiting for rollout spec update to be observed for the reference workload".into());
        }
    }
    if let Some(phase) = ro.status.phase {
        return (phase, ro.status.message.clone());
    }
    calculate_phase(&ro.spec, &ro.status)
}

/// The strategy of a rollout.
pub fn strategy(ro: &Rollout) -> Strategy {
    if ro.spec.canary().is_some() {
        Strategy::Canary
    } else if ro.spec.blue_green().is_some() {
        Strategy::BlueGreen
    } else {
        Strategy::Unknown
    }
}

/// `index/steps` when the canary has steps and the status an index.
pub fn step(ro: &Rollout) -> Option<String> {
    let steps = ro.spec.steps().len();
    match (ro.spec.canary(), ro.status.current_step_index) {
        (Some(_), Some(index)) if steps > 0 => Some(format!("{index}/{steps}")),
        _ => None,
    }
}

/// Whether the canary is at a step (Argo's `GetCurrentCanaryStep` is not nil).
fn at_a_step(ro: &Rollout) -> bool {
    let steps = ro.spec.steps().len();
    let index = ro.status.current_step_index.unwrap_or(0);
    steps > 0 && usize::try_from(index).is_ok_and(|i| i < steps)
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    !uid.is_empty()
        && meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o: &OwnerReference| o.uid == uid)
}

pub(super) fn meta_of(v: &Value) -> ObjectMeta {
    v.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default()
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(keys::REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub(super) fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(from_kube_time)
}

/// Argo's `getReplicaSetHealth`.
fn replica_set_status(rs: &ReplicaSet) -> &'static str {
    if rs.generation_unobserved() {
        return "Progressing";
    }
    let failed = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "ReplicaFailure" && c.status == "True"));
    if failed {
        return "ReplicaFailure";
    }
    let spec = rs.spec.as_ref().and_then(|s| s.replicas);
    if spec.is_some_and(|n| rs.available() < n) {
        return "Progressing";
    }
    if spec == Some(0) {
        return "ScaledDown";
    }
    "Healthy"
}

/// The tags of a rollout's ReplicaSet (none for an experiment's).
fn tags(ro: Option<&Rollout>, hash: &str) -> Vec<Tag> {
    let Some(ro) = ro else { return Vec::new() };
    let status = &ro.status;
    let mut tags = Vec::new();
    if let Some(canary) = ro.spec.canary() {
        let ping_pong = canary.ping_pong.is_some();
        let stable_is_ping = status.canary.stable_ping_pong == "ping";
        if status.stable_rs == hash {
            tags.push(Tag::Stable);
            if ping_pong {
                tags.push(if stable_is_ping { Tag::Ping } else { Tag::Pong });
            }
        } else if status.current_pod_hash == hash {
            tags.push(Tag::Canary);
            if ping_pong {
                tags.push(if stable_is_ping { Tag::Pong } else { Tag::Ping });
            }
        }
    }
    if ro.spec.blue_green().is_some() {
        if status.stable_rs == hash {
            tags.push(Tag::Stable);
        }
        if status.blue_green.active_selector == hash {
            tags.push(Tag::Active);
        } else if status.blue_green.preview_selector == hash {
            tags.push(Tag::Preview);
        }
    }
    tags
}

/// The ReplicaSets `owner_uid` owns among `replica_sets`, newest revision first, with their
/// pods among `pods`; tagged with their roles in `ro` (none for an experiment's).
pub(super) fn replica_set_infos(owner_uid: &str, ro: Option<&Rollout>, replica_sets: &[ReplicaSet], pods: &[Pod]) -> Vec<ReplicaSetInfo> {
    let mut infos: Vec<(ReplicaSetInfo, String)> = replica_sets
        .iter()
        .filter(|rs| owned_by(&rs.metadata, owner_uid))
        .map(|rs| {
            let annotation = |k: &str| rs.annotation(k).unwrap_or("").to_string();
            let images = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| s.containers.iter().map(|c| c.image.clone().unwrap_or_default()).collect())
                .unwrap_or_default();
            let deadline = rs
                .annotation(keys::SCALE_DOWN_DEADLINE)
                .filter(|v| !v.is_empty())
                .and_then(Timestamp::parse_rfc3339);
            let info = ReplicaSetInfo {
                name: rs.name().to_string(),
                created: created(&rs.metadata),
                revision: rs.revision().unwrap_or(0),
                status: replica_set_status(rs),
                tags: tags(ro, rs.pod_hash()),
                scale_down_deadline: deadline,
                replicas: rs.status_replicas(),
                available: rs.available(),
                images,
                template: annotation(EXPERIMENT_TEMPLATE_NAME),
                pods: Vec::new(),
            };
            (info, rs.metadata.uid.clone().unwrap_or_default())
        })
        .collect();
    infos.sort_by(|(a, _), (b, _)| b.revision.cmp(&a.revision).then_with(|| a.name.cmp(&b.name)));
    for (info, uid) in &mut infos {
        let mut owned: Vec<PodInfo> = pods
            .iter()
            .filter(|p| owned_by(&p.metadata, uid))
            .map(|p| {
                let summary = pods::summarize(p);
                PodInfo {
                    name: p.metadata.name.clone().unwrap_or_default(),
                    created: created(&p.metadata),
                    status: summary.status,
                    ready: summary.ready,
                    restarts: summary.restarts,
                }
            })
            .collect();
        owned.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        info.pods = owned;
    }
    infos.into_iter().map(|(info, _)| info).collect()
}

/// The AnalysisRuns `owner_uid` owns among `runs`, in Argo's order.
pub(super) fn analysis_run_infos(owner_uid: &str, runs: &[Value]) -> Vec<AnalysisRunInfo> {
    let mut infos: Vec<AnalysisRunInfo> = runs
        .iter()
        .filter_map(|run| {
            let meta = meta_of(run);
            if !owned_by(&meta, owner_uid) {
                return None;
            }
            // Display only: a status this version cannot read shows as an unknown phase.
            let status: AnalysisRunStatus =
                run.get("status").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default();
            let mut info = AnalysisRunInfo {
                name: meta.name.clone().unwrap_or_default(),
                created: created(&meta),
                revision: revision_of(&meta),
                status: status.phase.map(|p| p.as_str().to_string()).unwrap_or_default(),
                successful: 0,
                failed: 0,
                inconclusive: 0,
                error: 0,
                jobs: Vec::new(),
            };
            for result in &status.metric_results {
                info.successful += result.successful;
                info.failed += result.failed;
                info.inconclusive += result.inconclusive;
                info.error += result.error;
                for m in &result.measurements {
                    if let Some(job) = m.metadata.get(JOB_NAME) {
                        info.jobs.push(JobInfo {
                            name: job.clone(),
                            started: m.started_at,
                            status: m.phase.as_str().to_string(),
                        });
                    }
                }
            }
            Some(info)
        })
        .collect();
    infos.sort_by(|a, b| {
        b.revision.cmp(&a.revision).then_with(|| a.created.cmp(&b.created)).then_with(|| b.name.cmp(&a.name))
    });
    infos
}

/// The view of one Experiment (its ReplicaSets with their pods, and its AnalysisRuns).
pub(super) fn experiment_info(exp: &Value, replica_sets: &[ReplicaSet], pods: &[Pod], runs: &[Value]) -> ExperimentInfo {
    let meta = meta_of(exp);
    let uid = meta.uid.clone().unwrap_or_default();
    let text = |k: &str| exp.pointer(k).and_then(Value::as_str).unwrap_or("").to_string();
    ExperimentInfo {
        name: meta.name.clone().unwrap_or_default(),
        created: created(&meta),
        revision: revision_of(&meta),
        status: text("/status/phase"),
        message: text("/status/message"),
        replica_sets: replica_set_infos(&uid, None, replica_sets, pods),
        analysis_runs: analysis_run_infos(&uid, runs),
    }
}

fn experiment_infos(owner_uid: &str, objects: &Objects) -> Vec<ExperimentInfo> {
    let mut infos: Vec<ExperimentInfo> = objects
        .experiments
        .iter()
        .filter(|exp| owned_by(&meta_of(exp), owner_uid))
        .map(|exp| experiment_info(exp, &objects.replica_sets, &objects.pods, &objects.analysis_runs))
        .collect();
    infos.sort_by(|a, b| {
        b.revision.cmp(&a.revision).then_with(|| a.created.cmp(&b.created)).then_with(|| a.name.cmp(&b.name))
    });
    infos
}

/// Argo's `Images`: images of ReplicaSets with pods and the roles of those ReplicaSets;
/// experiment ReplicaSets add `Σ:<template>`. Sorted by image. An image's tags keep Argo's
/// role order (`canary, stable, active, preview, ping, pong`) until a second ReplicaSet
/// runs it; merged tags are sorted.
pub(super) fn images(replica_sets: &[ReplicaSetInfo], experiments: &[ExperimentInfo]) -> Vec<(String, Vec<String>)> {
    const ORDER: [Tag; 6] = [Tag::Canary, Tag::Stable, Tag::Active, Tag::Preview, Tag::Ping, Tag::Pong];
    let mut images: Vec<(String, Vec<String>)> = Vec::new();
    let mut merge = |image: &str, tags: Vec<String>| match images.iter_mut().find(|(i, _)| i == image) {
        Some((_, existing)) => {
            let all: BTreeSet<String> = existing.drain(..).chain(tags).collect();
            *existing = all.into_iter().collect();
        }
        None => images.push((image.to_string(), tags)),
    };
    for rs in replica_sets.iter().filter(|rs| rs.replicas > 0) {
        let tags: Vec<String> =
            ORDER.iter().filter(|t| rs.tags.contains(t)).map(|t| t.as_str().to_string()).collect();
        for image in &rs.images {
            merge(image, tags.clone());
        }
    }
    for rs in experiments.iter().flat_map(|e| &e.replica_sets).filter(|rs| rs.replicas > 0) {
        let tags: Vec<String> = if rs.template.is_empty() { Vec::new() } else { vec![format!("Σ:{}", rs.template)] };
        for image in &rs.images {
            merge(image, tags.clone());
        }
    }
    images.sort_by(|a, b| a.0.cmp(&b.0));
    images
}

/// Builds the view of `objects.rollout` and what it owns.
pub fn rollout_info(objects: &Objects) -> RolloutInfo {
    let ro = rollout_lenient(&objects.rollout).rollout;
    let uid = ro.metadata.uid.clone().unwrap_or_default();
    let replica_sets = replica_set_infos(&uid, Some(&ro), &objects.replica_sets, &objects.pods);
    let experiments = experiment_infos(&uid, objects);
    let analysis_runs = analysis_run_infos(&uid, &objects.analysis_runs);
    let (status, message) = client_phase(&ro);
    let strategy = strategy(&ro);
    let (set_weight, actual_weight) = match strategy {
        Strategy::Canary => {
            let set_weight = current_set_weight(&ro.spec, &ro.status);
            (Some(set_weight), Some(actual_weight(&ro, set_weight, &replica_sets)))
        }
        Strategy::BlueGreen | Strategy::Unknown => (None, None),
    };
    RolloutInfo {
        name: ro.metadata.name.clone().unwrap_or_default(),
        namespace: ro.metadata.namespace.clone().unwrap_or_default(),
        created: created(&ro.metadata),
        status,
        message,
        strategy,
        step: step(&ro),
        set_weight,
        actual_weight,
        images: images(&replica_sets, &experiments),
        desired: ro.spec.replicas(),
        current: ro.status.replicas,
        updated: ro.status.updated_replicas,
        ready: ro.status.ready_replicas,
        available: ro.status.available_replicas,
        replica_sets,
        experiments,
        analysis_runs,
    }
}

/// The traffic the canary really gets: past the last step all of it; with a router what the
/// router was told; without one the canary's share of the available pods.
fn actual_weight(ro: &Rollout, set_weight: i32, replica_sets: &[ReplicaSetInfo]) -> i32 {
    if !at_a_step(ro) {
        return ro.spec.max_traffic_weight();
    }
    let available = ro.status.available_replicas;
    if available <= 0 {
        return 0;
    }
    if ro.spec.has_traffic_routing() {
        return ro.status.canary.weights.as_ref().map_or(set_weight, |w| w.canary.weight);
    }
    replica_sets
        .iter()
        .rfind(|rs| rs.tags.contains(&Tag::Canary))
        .map_or(0, |rs| rs.available * ro.spec.max_traffic_weight() / available)
}

/// Revisions shown in the tree, newest first (ReplicaSets, experiments and runs).
pub fn revisions(info: &RolloutInfo) -> Vec<i64> {
    let all: BTreeSet<i64> = info
        .replica_sets
        .iter()
        .map(|r| r.revision)
        .chain(info.experiments.iter().map(|e| e.revision))
        .chain(info.analysis_runs.iter().map(|a| a.revision))
        .collect();
    all.into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(spec: Value, status: Value) -> Rollout {
        rollout_lenient(&json!({"metadata": {"name": "r", "generation": 2}, "spec": spec, "status": status})).rollout
    }

    #[test]
    fn an_unobserved_spec_change_reads_as_progressing() {
        let ro = rollout(json!({}), json!({"observedGeneration": "1", "phase": "Healthy"}));
        assert_eq!(client_phase(&ro), (RolloutPhase::Progressing, "waiting for rollout spec update to be observed".into()));
        let mut workload = ro.clone();
        workload.status.observed_generation = "9".into();
        workload.metadata.annotations = Some([(rollouts_core::rollout::workload::WORKLOAD_GENERATION.to_string(), "3".to_string())].into());
        workload.status.workload_observed_generation = "2".into();
        assert_eq!(
            client_phase(&workload),
            (RolloutPhase::Progressing, "waiting for rollout spec update to be observed for the reference workload".into())
        );
        workload.status.workload_observed_generation = "3".into();
        assert_ne!(client_phase(&workload).1, "waiting for rollout spec update to be observed for the reference workload");
    }

    #[test]
    fn a_promote_the_controller_has_not_seen_reads_as_unpausing() {
        let ro = rollout(json!({}), json!({"observedGeneration": "2", "controllerPause": true, "phase": "Paused", "message": "CanaryPauseStep"}));
        assert_eq!(client_phase(&ro), (RolloutPhase::Progressing, "waiting for rollout to unpause".into()));
    }

    #[test]
    fn the_controllers_phase_is_shown_otherwise() {
        let ro = rollout(json!({}), json!({"observedGeneration": "2", "phase": "Degraded", "message": "RolloutAborted: x"}));
        assert_eq!(client_phase(&ro), (RolloutPhase::Degraded, "RolloutAborted: x".into()));
        // An old controller wrote a hash there: treated as observed.
        let ro = rollout(json!({}), json!({"observedGeneration": "7d4b9c", "phase": "Healthy"}));
        assert_eq!(client_phase(&ro).0, RolloutPhase::Healthy);
    }

    #[test]
    fn without_a_phase_in_the_status_the_client_computes_it() {
        let ro = rollout(json!({"paused": true}), json!({"observedGeneration": "2"}));
        assert_eq!(client_phase(&ro), (RolloutPhase::Paused, "manually paused".into()));
    }

    #[test]
    fn step_is_shown_only_for_a_canary_with_steps_and_an_index() {
        let steps = json!({"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}});
        assert_eq!(step(&rollout(steps.clone(), json!({"currentStepIndex": 1}))).as_deref(), Some("1/2"));
        assert_eq!(step(&rollout(steps, json!({}))), None);
        assert_eq!(step(&rollout(json!({"strategy": {"blueGreen": {"activeService": "a"}}}), json!({}))), None);
    }
}
