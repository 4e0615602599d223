//! `argoproj.io/v1alpha1` Rollout: the spec, with Argo's field names and defaults.
//!
//! Every spec type rejects unknown fields, so a typo such as `setWieght` is reported with
//! its path instead of being dropped. Embedded Kubernetes types (pod template, selector)
//! are checked separately by [`crate::api::parse`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::intstr::IntOrString;
use super::status::RolloutStatus;
use super::traffic::{
    GatewayApiTrafficRouting, ManagedRoute, NginxTrafficRouting, SetHeaderRoute, SetMirrorRoute,
};
use crate::time::{parse_duration, Seconds, Timestamp};

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The API group and version of every Rollouts kind.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

/// A Rollout object: metadata, spec and status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// `argoproj.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `Rollout`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user asked for.
    #[serde(default)]
    pub spec: RolloutSpec,
    /// What the controller observed and decided.
    #[serde(default)]
    pub status: RolloutStatus,
}

/// `spec` of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// Desired pods; nil means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pod selector; required unless `workloadRef` supplies one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    /// Take the template from another object (parsed; not supported by this controller yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<ObjectRef>,
    /// Seconds a pod must be ready before it counts as available.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: i32,
    /// Rollbacks to a recent revision are fast-tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindowSpec>,
    /// Exactly one of `canary` / `blueGreen`.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Old, scaled-down ReplicaSets to keep (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// User pause: no scaling, no service switching, no step progress.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Seconds without progress before the rollout is Degraded (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort the update when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub progress_deadline_abort: bool,
    /// Restart every pod created before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub restart_at: Option<Timestamp>,
    /// How many AnalysisRuns and Experiments to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
}

/// Defaults, as in Argo's `utils/defaults`.
pub mod defaults {
    /// `spec.replicas` when unset.
    pub const REPLICAS: i32 = 1;
    /// `spec.revisionHistoryLimit` when unset.
    pub const REVISION_HISTORY_LIMIT: i32 = 10;
    /// `spec.progressDeadlineSeconds` when unset.
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
    /// `maxSurge` / `maxUnavailable` when unset: the bare string "25", read as 25 %.
    pub const MAX_SURGE: &str = "25";
    /// See [`MAX_SURGE`].
    pub const MAX_UNAVAILABLE: &str = "25";
    /// Blue-green `scaleDownDelaySeconds` (and traffic-routed canary's) when unset.
    pub const SCALE_DOWN_DELAY_SECONDS: i32 = 30;
    /// `abortScaleDownDelaySeconds` when unset.
    pub const ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
    /// `successfulRunHistoryLimit` / `unsuccessfulRunHistoryLimit` when unset.
    pub const RUN_HISTORY_LIMIT: i32 = 5;
    /// `maxTrafficWeight` when unset.
    pub const MAX_TRAFFIC_WEIGHT: i32 = 100;
}

impl RolloutSpec {
    /// `spec.replicas`, defaulting to 1.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(defaults::REPLICAS)
    }
    /// `spec.revisionHistoryLimit`, defaulting to 10.
    pub fn revision_history_limit(&self) -> i32 {
        self.revision_history_limit.unwrap_or(defaults::REVISION_HISTORY_LIMIT)
    }
    /// `spec.progressDeadlineSeconds`, defaulting to 600.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds.unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS)
    }
    /// The canary strategy, if that is the one chosen.
    pub fn canary(&self) -> Option<&CanaryStrategy> {
        self.strategy.canary.as_ref()
    }
    /// The blue-green strategy, if that is the one chosen.
    pub fn blue_green(&self) -> Option<&BlueGreenStrategy> {
        self.strategy.blue_green.as_ref()
    }
    /// The canary steps (empty for blue-green or a canary without steps).
    pub fn steps(&self) -> &[CanaryStep] {
        self.canary().map(|c| c.steps.as_slice()).unwrap_or(&[])
    }
    /// Whether the canary uses a traffic router.
    pub fn has_traffic_routing(&self) -> bool {
        self.canary().is_some_and(|c| c.traffic_routing.is_some())
    }
    /// `trafficRouting.maxTrafficWeight`, defaulting to 100.
    pub fn max_traffic_weight(&self) -> i32 {
        self.canary()
            .and_then(|c| c.traffic_routing.as_ref())
            .and_then(|t| t.max_traffic_weight)
            .unwrap_or(defaults::MAX_TRAFFIC_WEIGHT)
    }
}

/// `workloadRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Kind of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `never`, `onsuccess` or `progressively`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scale_down: String,
}

/// `rollbackWindow`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackWindowSpec {
    /// Rollbacks to one of the last `revisions` revisions skip the steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revisions: i32,
}

/// `spec.analysis`: history limits for runs and experiments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisRunStrategy {
    /// Successful runs kept (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_run_history_limit: Option<i32>,
    /// Failed, errored or inconclusive runs kept (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// `spec.strategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutStrategy {
    /// Blue-green: a preview and an active Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Canary: weighted steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

/// `spec.strategy.blueGreen`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreenStrategy {
    /// Service switched to the new ReplicaSet on promotion.
    #[serde(default)]
    pub active_service: String,
    /// Service switched to the new ReplicaSet as soon as it exists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview_service: String,
    /// Replicas of the new ReplicaSet before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Default true; false pauses before the switch until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Pause this long before promoting automatically.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub auto_promotion_seconds: i32,
    /// Restart concurrency (default 25 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Delay before the previous active ReplicaSet is scaled down (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many old ReplicaSets may wait for their scale-down delay at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Analysis run before the active switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Inject a pod anti-affinity against the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Analysis run after the active switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels/annotations for preview pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels/annotations for active pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Delay before the preview ReplicaSet is scaled down after an abort (default 30; 0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

impl BlueGreenStrategy {
    /// `autoPromotionEnabled`, default true.
    pub fn auto_promotion_enabled(&self) -> bool {
        self.auto_promotion_enabled.unwrap_or(true)
    }
    /// `scaleDownDelaySeconds`, default 30.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds.unwrap_or(defaults::SCALE_DOWN_DELAY_SECONDS)
    }
    /// `abortScaleDownDelaySeconds`, default 30.
    pub fn abort_scale_down_delay_seconds(&self) -> i32 {
        self.abort_scale_down_delay_seconds
            .unwrap_or(defaults::ABORT_SCALE_DOWN_DELAY_SECONDS)
    }
}

/// `antiAffinity`: exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AntiAffinity {
    /// A weighted, preferred anti-affinity term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution: Option<PreferredAntiAffinity>,
    /// A required anti-affinity term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<RequiredAntiAffinity>,
}

/// `preferredDuringSchedulingIgnoredDuringExecution` of [`AntiAffinity`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredAntiAffinity {
    /// 1..=100.
    pub weight: i32,
}

/// `requiredDuringSchedulingIgnoredDuringExecution` of [`AntiAffinity`] (no fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RequiredAntiAffinity {}

/// Extra labels and annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateMetadata {
    /// Labels to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec.strategy.canary`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStrategy {
    /// Service whose selector gets the canary hash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub canary_service: String,
    /// Service whose selector gets the stable hash.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stable_service: String,
    /// The plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<CanaryStep>,
    /// Traffic router configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Pods that may be unavailable during the update (default 25 %, rounded down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pods above `replicas` during the update (default 25 %, rounded up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Background analysis for the whole update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Inject a pod anti-affinity against the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels/annotations for canary pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels/annotations for stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// Traffic-routed only: delay before the previous stable is scaled down (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// How many old ReplicaSets may wait for their scale-down delay at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Traffic-routed only: delay before the canary is scaled down after an abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Traffic-routed only: shrink the stable as traffic moves.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dynamic_stable_scale: bool,
    /// Ping-pong services (ALB / Istio / plugins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_pong: Option<PingPongSpec>,
    /// Traffic-routed only: minimum pods in a non-empty ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pods_per_replica_set: Option<i32>,
    /// How many canary pods must be available for a step to count as reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_progress_threshold: Option<ReplicaProgressThreshold>,
}

impl CanaryStrategy {
    /// `maxSurge`, defaulting to the string "25" (25 %).
    pub fn max_surge(&self) -> IntOrString {
        self.max_surge
            .clone()
            .unwrap_or_else(|| IntOrString::String(defaults::MAX_SURGE.into()))
    }
    /// `maxUnavailable`, defaulting to the string "25" (25 %).
    pub fn max_unavailable(&self) -> IntOrString {
        self.max_unavailable
            .clone()
            .unwrap_or_else(|| IntOrString::String(defaults::MAX_UNAVAILABLE.into()))
    }
}

/// `replicaProgressThreshold`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaProgressThreshold {
    /// Whether `value` counts pods or a percentage of the desired pods. Any other
    /// spelling is refused when the Rollout is decoded (an `InvalidSpec` naming the field).
    #[serde(rename = "type")]
    pub kind: ProgressType,
    /// The threshold; a negative value means the default (every desired pod available).
    pub value: i32,
}

/// Argo's `ProgressType`: how a `replicaProgressThreshold` value counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProgressType {
    /// `Percent`: a percentage of the desired pods.
    #[default]
    Percent,
    /// `Pods`: a number of pods.
    Pods,
}

/// `pingPong`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingPongSpec {
    /// The ping service.
    pub ping_service: String,
    /// The pong service.
    pub pong_service: String,
}

/// One canary step. Exactly one field must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    /// Canary weight (percent of `maxTrafficWeight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Pause, with an optional duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Run an Experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<RolloutExperimentStep>,
    /// Run an AnalysisRun and wait for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Scale the canary independently of traffic (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Header-based route (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror route (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Step plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub plugin: Option<serde_json::Value>,
}

/// The kind of a [`CanaryStep`], for exhaustive matching.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepKind<'a> {
    /// `setWeight`.
    SetWeight(i32),
    /// `pause`.
    Pause(&'a RolloutPause),
    /// `experiment`.
    Experiment(&'a RolloutExperimentStep),
    /// `analysis`.
    Analysis(&'a RolloutAnalysis),
    /// `setCanaryScale`.
    SetCanaryScale(&'a SetCanaryScale),
    /// `setHeaderRoute`.
    SetHeaderRoute(&'a SetHeaderRoute),
    /// `setMirrorRoute`.
    SetMirrorRoute(&'a SetMirrorRoute),
    /// `plugin`.
    Plugin(&'a serde_json::Value),
    /// No field set (invalid).
    Empty,
}

impl CanaryStep {
    /// The step's kind, taking the first field set in Argo's order.
    pub fn kind(&self) -> StepKind<'_> {
        if let Some(w) = self.set_weight {
            StepKind::SetWeight(w)
        } else if let Some(p) = &self.pause {
            StepKind::Pause(p)
        } else if let Some(e) = &self.experiment {
            StepKind::Experiment(e)
        } else if let Some(a) = &self.analysis {
            StepKind::Analysis(a)
        } else if let Some(s) = &self.set_canary_scale {
            StepKind::SetCanaryScale(s)
        } else if let Some(h) = &self.set_header_route {
            StepKind::SetHeaderRoute(h)
        } else if let Some(m) = &self.set_mirror_route {
            StepKind::SetMirrorRoute(m)
        } else if let Some(p) = &self.plugin {
            StepKind::Plugin(p)
        } else {
            StepKind::Empty
        }
    }

    /// How Argo names the step in events (`setWeight: 20`, `pause`, `pause: 10s`, ...).
    pub fn describe(&self) -> String {
        match self.kind() {
            StepKind::SetWeight(w) => format!("setWeight: {w}"),
            StepKind::Pause(p) => match &p.duration {
                None => "pause".to_string(),
                Some(IntOrString::Int(n)) => format!("pause: {n}"),
                Some(IntOrString::String(s)) => format!("pause: {s}"),
            },
            StepKind::Experiment(_) => "experiment".to_string(),
            StepKind::Analysis(_) => "analysis".to_string(),
            StepKind::SetCanaryScale(s) => {
                if s.match_traffic_weight {
                    "setCanaryScale{matchTrafficWeight: true}".to_string()
                } else if let Some(w) = s.weight {
                    format!("setCanaryScale{{weight: {w}}}")
                } else if let Some(r) = s.replicas {
                    format!("setCanaryScale{{replicas: {r}}}")
                } else {
                    "setCanaryScale".to_string()
                }
            }
            StepKind::SetHeaderRoute(h) => format!("setHeaderRoute: {}", h.name),
            StepKind::SetMirrorRoute(m) => format!("setMirrorRoute: {}", m.name),
            StepKind::Plugin(v) => format!(
                "plugin: {}",
                v.get("name").and_then(|n| n.as_str()).unwrap_or_default()
            ),
            StepKind::Empty => String::new(),
        }
    }
}

/// `pause`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPause {
    /// Seconds (integer or bare-number string) or a Go duration (`30s`, `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

impl RolloutPause {
    /// The pause length; `Ok(None)` for an indefinite pause, `Err` for an unparsable string.
    pub fn duration_seconds(&self) -> Result<Option<Seconds>, crate::time::DurationError> {
        match &self.duration {
            None => Ok(None),
            Some(IntOrString::Int(n)) => Ok(Some(Seconds(i64::from(*n)))),
            Some(IntOrString::String(s)) => parse_duration(s).map(Some),
        }
    }
}

/// `setCanaryScale`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetCanaryScale {
    /// Canary replicas as a percentage of `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Canary replicas as a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Cancel earlier setCanaryScale steps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub match_traffic_weight: bool,
}

/// `analysis` (step, pre/post-promotion).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutAnalysis {
    /// Templates merged into one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<RolloutAnalysisTemplate>,
    /// Arguments passed to the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
    /// Metrics run in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Measurement retention per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Labels and annotations for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
}

/// `strategy.canary.analysis`: [`RolloutAnalysis`] plus `startingStep`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutAnalysisBackground {
    /// Templates merged into one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<RolloutAnalysisTemplate>,
    /// Arguments passed to the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
    /// Metrics run in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Measurement retention per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Labels and annotations for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
    /// Do not start the run before this step index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i32>,
}

/// A template reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutAnalysisTemplate {
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate).
    #[serde(default)]
    pub template_name: String,
    /// Look the name up as a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_scope: bool,
}

/// An argument passed to an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisRunArgument {
    /// Argument name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// `valueFrom` of a rollout argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgumentValueFrom {
    /// `Stable` or `Latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// `fieldRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldRef {
    /// e.g. `metadata.labels['env']`.
    pub field_path: String,
}

/// `dryRun` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRun {
    /// Metric name (a regular expression in Argo).
    pub metric_name: String,
}

/// `measurementRetention` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasurementRetention {
    /// Metric name (a regular expression in Argo).
    pub metric_name: String,
    /// Measurements kept.
    pub limit: i32,
}

/// `experiment` step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutExperimentStep {
    /// ReplicaSets the experiment runs.
    #[serde(default)]
    pub templates: Vec<RolloutExperimentTemplate>,
    /// How long the experiment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Analyses run with the experiment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<RolloutExperimentStepAnalysisTemplateRef>,
    /// Metrics run in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Labels and annotations for the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
    /// Seconds between the end of the Experiment and scaling its ReplicaSets to zero
    /// (the Experiment's default, 30, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
}

/// A template of an experiment step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutExperimentTemplate {
    /// Template name.
    pub name: String,
    /// `canary` or `stable`.
    pub spec_ref: String,
    /// Replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Extra labels/annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Selector override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Traffic weight for this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// A Service for the template's pods (also created when `weight` is set); its name
    /// defaults to the template ReplicaSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<super::experiment::TemplateService>,
}

/// An analysis of an experiment step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutExperimentStepAnalysisTemplateRef {
    /// Name of this analysis.
    pub name: String,
    /// Template to instantiate.
    pub template_name: String,
    /// Look the name up as a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_scope: bool,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
    /// Block the experiment until this analysis completes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required_for_completion: bool,
}

/// `trafficRouting`. NGINX, the Gateway API, Istio, SMI and ALB are driven; the other routers' blocks are
/// kept as JSON so that their manifests load (and are refused by validation, naming the
/// field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutTrafficRouting {
    /// Istio (VirtualServices, and a DestinationRule for subset-level routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<super::IstioTrafficRouting>,
    /// NGINX Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxTrafficRouting>,
    /// Gateway API, natively (the `argoproj-labs/gatewayAPI` plugin's configuration).
    #[serde(rename = "gatewayAPI", default, skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiTrafficRouting>,
    /// AWS ALB (the forward-action annotations of Ingresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb: Option<super::AlbTrafficRouting>,
    /// SMI TrafficSplit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<super::SmiTrafficRouting>,
    /// Ambassador.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambassador: Option<super::AmbassadorTrafficRouting>,
    /// AWS App Mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_mesh: Option<super::AppMeshTrafficRouting>,
    /// Traefik.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traefik: Option<super::TraefikTrafficRouting>,
    /// APISIX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apisix: Option<super::ApisixTrafficRouting>,
    /// Traffic router plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub plugins: Option<serde_json::Value>,
    /// Managed header/mirror routes, in precedence order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_routes: Vec<ManagedRoute>,
    /// Total weight (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<i32>,
}
