//! `status` of a Rollout, field for field as Argo Rollouts writes it.
//!
//! Status types accept unknown fields (another controller version may have written them);
//! only the spec is strict.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `status` of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Set by the user (CLI `abort`) or by the controller on a failed analysis.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort: bool,
    /// Controller-added pauses; clearing them resumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_conditions: Vec<PauseCondition>,
    /// The controller has paused the rollout at least once for the current pause.
    #[serde(default, skip_serializing_if = "is_false")]
    pub controller_pause: bool,
    /// When the controller reconciled the abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub aborted_at: Option<Timestamp>,
    /// Hash of the current pod template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_pod_hash: String,
    /// Hash of the current step list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_step_hash: String,
    /// Pods of all owned ReplicaSets.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicas: i32,
    /// Pods of the new ReplicaSet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_replicas: i32,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ready_replicas: i32,
    /// Available pods.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub available_replicas: i32,
    /// Canary step index; `len(steps)` when all are done; absent without steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Hash collision counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// `metadata.generation` observed, as a string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub observed_generation: String,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RolloutCondition>,
    /// Canary-only status.
    #[serde(default, skip_serializing_if = "CanaryStatus::is_empty")]
    pub canary: CanaryStatus,
    /// Blue-green-only status.
    #[serde(default, skip_serializing_if = "BlueGreenStatus::is_empty")]
    pub blue_green: BlueGreenStatus,
    /// Pods receiving active traffic (scale subresource).
    #[serde(rename = "HPAReplicas", default, skip_serializing_if = "is_zero")]
    pub hpa_replicas: i32,
    /// Label selector of the pods receiving active traffic (scale subresource).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Hash of the stable ReplicaSet.
    #[serde(rename = "stableRS", default, skip_serializing_if = "String::is_empty")]
    pub stable_rs: String,
    /// Last completed restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub restarted_at: Option<Timestamp>,
    /// Full promotion requested.
    #[serde(default, skip_serializing_if = "is_false")]
    pub promote_full: bool,
    /// Healthy / Progressing / Paused / Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// Why the rollout is in its phase.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Timing of the current update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<RolloutDurationStatus>,
    /// Written by Argo for workloadRef; kept so a status round-trips.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_observed_generation: String,
}

impl RolloutStatus {
    /// The RFC 7386 merge patch turning `old` into `self`, field by field: a field that
    /// changed is written (objects diffed recursively), a field that became empty (left out
    /// of the JSON, as its `skip_serializing_if` says) is `null`, listed after the others.
    /// The same patch as diffing the two serialized statuses, without serializing the
    /// fields that did not change. `None` when nothing changed.
    pub fn merge_patch_from(&self, old: &RolloutStatus) -> Option<serde_json::Map<String, serde_json::Value>> {
        if self == old {
            return None;
        }
        let mut patch = FieldPatch::default();
        // Destructured without `..`: a new field does not compile until it is listed here.
        let RolloutStatus {
            abort,
            pause_conditions,
            controller_pause,
            aborted_at,
            current_pod_hash,
            current_step_hash,
            replicas,
            updated_replicas,
            ready_replicas,
            available_replicas,
            current_step_index,
            collision_count,
            observed_generation,
            conditions,
            canary,
            blue_green,
            hpa_replicas,
            selector,
            stable_rs,
            restarted_at,
            promote_full,
            phase,
            message,
            duration,
            workload_observed_generation,
        } = self;
        patch.field("abort", &old.abort, abort);
        patch.field("pauseConditions", &old.pause_conditions, pause_conditions);
        patch.field("controllerPause", &old.controller_pause, controller_pause);
        patch.field("abortedAt", &old.aborted_at, aborted_at);
        patch.field("currentPodHash", &old.current_pod_hash, current_pod_hash);
        patch.field("currentStepHash", &old.current_step_hash, current_step_hash);
        patch.field("replicas", &old.replicas, replicas);
        patch.field("updatedReplicas", &old.updated_replicas, updated_replicas);
        patch.field("readyReplicas", &old.ready_replicas, ready_replicas);
        patch.field("availableReplicas", &old.available_replicas, available_replicas);
        patch.field("currentStepIndex", &old.current_step_index, current_step_index);
        patch.field("collisionCount", &old.collision_count, collision_count);
        patch.field("observedGeneration", &old.observed_generation, observed_generation);
        patch.field("conditions", &old.conditions, conditions);
        patch.field("canary", &old.canary, canary);
        patch.field("blueGreen", &old.blue_green, blue_green);
        patch.field("HPAReplicas", &old.hpa_replicas, hpa_replicas);
        patch.field("selector", &old.selector, selector);
        patch.field("stableRS", &old.stable_rs, stable_rs);
        patch.field("restartedAt", &old.restarted_at, restarted_at);
        patch.field("promoteFull", &old.promote_full, promote_full);
        patch.field("phase", &old.phase, phase);
        patch.field("message", &old.message, message);
        patch.field("duration", &old.duration, duration);
        patch.field("workloadObservedGeneration", &old.workload_observed_generation, workload_observed_generation);
        patch.finish()
    }
}

/// A merge patch built one status field at a time.
#[derive(Default)]
struct FieldPatch {
    written: serde_json::Map<String, serde_json::Value>,
    removed: Vec<&'static str>,
}

impl FieldPatch {
    fn field<T: Omitted + PartialEq + Serialize>(&mut self, key: &'static str, old: &T, new: &T) {
        if old == new {
            return;
        }
        let value = |v: &T| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        match (old.omitted(), new.omitted()) {
            (_, true) => self.removed.push(key),
            (true, false) => {
                self.written.insert(key.to_string(), value(new));
            }
            (false, false) => {
                // Only objects are diffed member by member; anything else is replaced.
                let new = value(new);
                let diff = if new.is_object() { crate::api::merge::merge_diff(&value(old), &new) } else { Some(new) };
                if let Some(d) = diff {
                    self.written.insert(key.to_string(), d);
                }
            }
        }
    }

    fn finish(mut self) -> Option<serde_json::Map<String, serde_json::Value>> {
        for key in self.removed {
            self.written.insert(key.to_string(), serde_json::Value::Null);
        }
        (!self.written.is_empty()).then_some(self.written)
    }
}

/// Whether a status field is left out of its JSON: the field's `skip_serializing_if`.
trait Omitted {
    fn omitted(&self) -> bool;
}

impl Omitted for bool {
    fn omitted(&self) -> bool {
        is_false(self)
    }
}

impl Omitted for i32 {
    fn omitted(&self) -> bool {
        is_zero(self)
    }
}

impl Omitted for String {
    fn omitted(&self) -> bool {
        self.is_empty()
    }
}

impl<T> Omitted for Vec<T> {
    fn omitted(&self) -> bool {
        self.is_empty()
    }
}

impl<T> Omitted for Option<T> {
    fn omitted(&self) -> bool {
        self.is_none()
    }
}

impl Omitted for CanaryStatus {
    fn omitted(&self) -> bool {
        self.is_empty()
    }
}

impl Omitted for BlueGreenStatus {
    fn omitted(&self) -> bool {
        self.is_empty()
    }
}

/// The rollout phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum RolloutPhase {
    /// Done and available.
    Healthy,
    /// Moving towards the desired state.
    Progressing,
    /// Waiting for a promote or a timer.
    Paused,
    /// Aborted, timed out or invalid.
    Degraded,
}

impl RolloutPhase {
    /// The phase as Argo spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutPhase::Healthy => "Healthy",
            RolloutPhase::Progressing => "Progressing",
            RolloutPhase::Paused => "Paused",
            RolloutPhase::Degraded => "Degraded",
        }
    }
}

/// Why the controller paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PauseReason {
    /// An AnalysisRun ended Inconclusive.
    #[serde(rename = "InconclusiveAnalysisRun")]
    InconclusiveAnalysisRun,
    /// An Experiment ended Inconclusive.
    #[serde(rename = "InconclusiveExperiment")]
    InconclusiveExperiment,
    /// A canary `pause` step.
    #[serde(rename = "CanaryPauseStep")]
    CanaryPauseStep,
    /// A blue-green pause before promotion.
    #[serde(rename = "BlueGreenPause")]
    BlueGreenPause,
}

impl PauseReason {
    /// The reason as Argo spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::InconclusiveAnalysisRun => "InconclusiveAnalysisRun",
            PauseReason::InconclusiveExperiment => "InconclusiveExperiment",
            PauseReason::CanaryPauseStep => "CanaryPauseStep",
            PauseReason::BlueGreenPause => "BlueGreenPause",
        }
    }
}

/// A controller pause and when it began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// Why.
    pub reason: PauseReason,
    /// Since when.
    #[cfg_attr(feature = "schema", schemars(with = "k8s_openapi::apimachinery::pkg::apis::meta::v1::Time"))]
    pub start_time: Timestamp,
}

/// A status condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Last time the condition was written with progress.
    #[cfg_attr(feature = "schema", schemars(with = "k8s_openapi::apimachinery::pkg::apis::meta::v1::Time"))]
    pub last_update_time: Timestamp,
    /// Last time the status changed.
    #[cfg_attr(feature = "schema", schemars(with = "k8s_openapi::apimachinery::pkg::apis::meta::v1::Time"))]
    pub last_transition_time: Timestamp,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl RolloutCondition {
    /// Whether the condition carries `reason`. The field stays a string, so that a status
    /// written by another controller (with reasons this version does not set) still decodes.
    pub fn has_reason(&self, reason: ConditionReason) -> bool {
        self.reason == reason.as_str()
    }
}

/// The condition reasons the core writes and tests, spelled as Argo spells them
/// (utils/conditions/conditions.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionReason {
    /// `InvalidSpec`: the spec (or a referenced object) is invalid.
    InvalidSpec,
    /// `ReplicaSetCreateError`: creating the new ReplicaSet failed.
    ReplicaSetCreateError,
    /// `FoundNewReplicaSet`: the new ReplicaSet already existed.
    FoundNewReplicaSet,
    /// `NewReplicaSetCreated`: the new ReplicaSet was created.
    NewReplicaSetCreated,
    /// `ReplicaSetUpdated`: the update made progress.
    ReplicaSetUpdated,
    /// `ReplicaSetNotAvailable`: a promoted rollout lost availability.
    ReplicaSetNotAvailable,
    /// `NewReplicaSetAvailable`: the update finished and every pod is available.
    NewReplicaSetAvailable,
    /// `ProgressDeadlineExceeded`: no progress within `progressDeadlineSeconds`.
    ProgressDeadlineExceeded,
    /// `RolloutAborted`: the update was aborted.
    RolloutAborted,
    /// `RolloutPaused`: the rollout is paused.
    RolloutPaused,
    /// `RolloutResumed`: the rollout was resumed.
    RolloutResumed,
    /// `RolloutRetry`: an aborted update is retried.
    RolloutRetry,
    /// `RolloutHealthy`: the Healthy condition's reason, true or false.
    RolloutHealthy,
    /// `AvailableReason`: the Available condition's reason, true or false.
    Available,
    /// `RolloutCompleted`: the Completed condition's reason, true or false.
    RolloutCompleted,
}

impl ConditionReason {
    /// Argo's spelling, as written to `status.conditions[].reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionReason::InvalidSpec => "InvalidSpec",
            ConditionReason::ReplicaSetCreateError => "ReplicaSetCreateError",
            ConditionReason::FoundNewReplicaSet => "FoundNewReplicaSet",
            ConditionReason::NewReplicaSetCreated => "NewReplicaSetCreated",
            ConditionReason::ReplicaSetUpdated => "ReplicaSetUpdated",
            ConditionReason::ReplicaSetNotAvailable => "ReplicaSetNotAvailable",
            ConditionReason::NewReplicaSetAvailable => "NewReplicaSetAvailable",
            ConditionReason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            ConditionReason::RolloutAborted => "RolloutAborted",
            ConditionReason::RolloutPaused => "RolloutPaused",
            ConditionReason::RolloutResumed => "RolloutResumed",
            ConditionReason::RolloutRetry => "RolloutRetry",
            ConditionReason::RolloutHealthy => "RolloutHealthy",
            ConditionReason::Available => "AvailableReason",
            ConditionReason::RolloutCompleted => "RolloutCompleted",
        }
    }
}

impl std::fmt::Display for ConditionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rollout condition types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ConditionType {
    /// The spec is invalid.
    InvalidSpec,
    /// Enough pods are available.
    Available,
    /// The update is progressing (or timed out / aborted).
    Progressing,
    /// A ReplicaSet reports a failure to create or delete pods.
    ReplicaFailure,
    /// The rollout is paused.
    Paused,
    /// The update finished: stable == current.
    Completed,
    /// Completed and every pod is available.
    Healthy,
}

/// Condition status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ConditionStatus {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Cannot tell.
    Unknown,
}

/// Canary-only status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The current step's AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The current Experiment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_experiment: String,
    /// Traffic weights set on the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// `ping` or `pong`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stable_ping_pong: String,
}

impl CanaryStatus {
    /// Whether nothing is set (so it is omitted, as Go's omitempty does for a struct... almost).
    pub fn is_empty(&self) -> bool {
        self == &CanaryStatus::default()
    }
}

/// Blue-green-only status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Hash in the preview Service selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview_selector: String,
    /// Hash in the active Service selector.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub active_selector: String,
    /// The preview ReplicaSet may be scaled to full.
    #[serde(default, skip_serializing_if = "is_false")]
    pub scale_up_preview_check_point: bool,
    /// Pre-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// Post-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

impl BlueGreenStatus {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &BlueGreenStatus::default()
    }
}

/// Name, phase and message of a current AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// Run name.
    pub name: String,
    /// Run phase; empty (left out) until the run has one. An API server 1.20 turns an
    /// empty string in a merge patch into null and refuses it ("must be of type string"),
    /// so it is never sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Run message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Weights set on the traffic router.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Canary destination.
    pub canary: WeightDestination,
    /// Stable destination.
    pub stable: WeightDestination,
    /// Experiment destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional: Vec<WeightDestination>,
    /// Whether the router confirmed the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// One weighted destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Weight.
    #[serde(default)]
    pub weight: i32,
    /// Service receiving it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// Pod template hash receiving it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_template_hash: String,
}

/// `status.duration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RolloutDurationStatus {
    /// When the current update started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub rollout_started_at: Option<Timestamp>,
    /// When the current manual wait began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub manual_pause_started_at: Option<Timestamp>,
    /// Seconds spent waiting for people.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_manual_pause_duration_seconds: i32,
    /// When the update finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub finished_at: Option<Timestamp>,
    /// How it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<CompletionStatus>,
}

/// How an update finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum CompletionStatus {
    /// Promoted through its steps.
    Promoted,
    /// `promote --full`.
    FastPromoted,
    /// Aborted.
    Aborted,
    /// Replaced by a newer update.
    Superseded,
    /// Rolled back to an earlier revision through the steps.
    RolledBack,
    /// Rolled back fast (to stable or within the rollback window).
    FastRolledBack,
}

#[cfg(test)]
mod tests;
