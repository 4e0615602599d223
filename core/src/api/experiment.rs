//! `argoproj.io/v1alpha1` Experiment: templates run side by side for a while, judged by
//! analyses (pkg/apis/rollouts/v1alpha1/experiment_types.go).
//!
//! Spec types reject unknown fields; status types accept them. Go's empty-string phases
//! and statuses read as `None`.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::analysis::{AnalysisPhase, Argument};
use super::rollout::{DryRun, MeasurementRetention, PodTemplateMetadata};
use super::status::ConditionStatus;
use crate::time::Timestamp;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `experiment.argoproj.io/name`: on an Experiment's ReplicaSets and Services.
pub const EXPERIMENT_NAME_ANNOTATION: &str = "experiment.argoproj.io/name";
/// `experiment.argoproj.io/template-name`: on an Experiment's ReplicaSets and Services.
pub const EXPERIMENT_TEMPLATE_NAME_ANNOTATION: &str = "experiment.argoproj.io/template-name";
/// Default `spec.progressDeadlineSeconds`.
pub const DEFAULT_EXPERIMENT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default `spec.scaleDownDelaySeconds`.
pub const DEFAULT_EXPERIMENT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

/// An Experiment object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    /// `argoproj.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `Experiment`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user asked for.
    #[serde(default)]
    pub spec: ExperimentSpec,
    /// What the controller observed and decided.
    #[serde(default)]
    pub status: ExperimentStatus,
}

/// `spec` of an Experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The ReplicaSets to run.
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
    /// How long to run once every template is available (a Go duration, or seconds);
    /// unset: until terminated or decided by the analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Seconds a template may take to become available (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Stop the experiment: scale every template down, terminate the analyses.
    #[serde(default, skip_serializing_if = "is_false")]
    pub terminate: bool,
    /// Analyses run against the templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<ExperimentAnalysisTemplateRef>,
    /// Seconds between the end of the experiment and scaling its ReplicaSets to zero
    /// (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Metrics of every analysis run in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Measurement history limits for every analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Labels and annotations of every AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<PodTemplateMetadata>,
}

impl ExperimentSpec {
    /// `progressDeadlineSeconds`, defaulted.
    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds.unwrap_or(DEFAULT_EXPERIMENT_PROGRESS_DEADLINE_SECONDS)
    }

    /// `scaleDownDelaySeconds`, defaulted.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        self.scale_down_delay_seconds.unwrap_or(DEFAULT_EXPERIMENT_SCALE_DOWN_DELAY_SECONDS)
    }
}

/// One template of an Experiment: a ReplicaSet (and optionally a Service).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateSpec {
    /// Unique name within the experiment.
    #[serde(default)]
    pub name: String,
    /// Pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `minReadySeconds` of the ReplicaSet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ready_seconds: i32,
    /// Pod selector (required, non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pod template.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// Create a Service for the template's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

impl TemplateSpec {
    /// `replicas`, defaulted.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// `service` of a template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateService {
    /// Service name (default: the ReplicaSet's name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// An analysis of an Experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentAnalysisTemplateRef {
    /// Name of the analysis (the AnalysisRun is `<experiment>-<name>`).
    pub name: String,
    /// The (Cluster)AnalysisTemplate to instantiate.
    pub template_name: String,
    /// Look the template up as a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_scope: bool,
    /// Arguments; values may use `{{templates.<t>.podTemplateHash}}`,
    /// `{{templates.<t>.replicaset.name}}`, `{{experiment.availableAt}}` and
    /// `{{experiment.finishedAt}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// The experiment completes when every required analysis has succeeded.
    #[serde(default, skip_serializing_if = "is_false")]
    pub required_for_completion: bool,
}

/// `status` of an Experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// Phase (absent before the first reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "empty_as_none")]
    pub phase: Option<AnalysisPhase>,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// One per template, in the order they were first reconciled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub template_statuses: Vec<TemplateStatus>,
    /// When every template first became available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub available_at: Option<Timestamp>,
    /// Conditions (`InvalidSpec`, `Progressing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ExperimentCondition>,
    /// One per analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_runs: Vec<ExperimentAnalysisRunStatus>,
}

/// The status of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TemplateStatusCode {
    /// Not yet available.
    Progressing,
    /// Available, running for the duration.
    Running,
    /// Ran to completion.
    Successful,
    /// Did not become available within the progress deadline.
    Failed,
    /// Its objects could not be created or scaled.
    Error,
}

impl TemplateStatusCode {
    /// Argo's `Completed()`: Successful, Failed or Error.
    pub fn completed(self) -> bool {
        match self {
            TemplateStatusCode::Successful | TemplateStatusCode::Failed | TemplateStatusCode::Error => true,
            TemplateStatusCode::Progressing | TemplateStatusCode::Running => false,
        }
    }

    /// The status as Argo spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatusCode::Progressing => "Progressing",
            TemplateStatusCode::Running => "Running",
            TemplateStatusCode::Successful => "Successful",
            TemplateStatusCode::Failed => "Failed",
            TemplateStatusCode::Error => "Error",
        }
    }
}

/// `status.templateStatuses[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// Template name.
    pub name: String,
    /// Pods of the ReplicaSet.
    #[serde(default)]
    pub replicas: i32,
    /// Pods of the ReplicaSet (an experiment's ReplicaSet is always up to date).
    #[serde(default)]
    pub updated_replicas: i32,
    /// Ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Available pods.
    #[serde(default)]
    pub available_replicas: i32,
    /// Hash collisions seen (included in the pod-template hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Status (absent before the first assessment).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "empty_as_none")]
    pub status: Option<TemplateStatusCode>,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Last change of the replica counts (or of the ReplicaSet's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub last_transition_time: Option<Timestamp>,
    /// The template's Service, while it exists.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The pod-template hash the Service selects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_template_hash: String,
}

/// `status.analysisRuns[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisRunStatus {
    /// Analysis name.
    pub name: String,
    /// The AnalysisRun's name, once created.
    #[serde(default)]
    pub analysis_run: String,
    /// The run's phase (written as `""` before it has one, as Argo does: the field is
    /// required).
    #[serde(default, serialize_with = "none_as_empty", deserialize_with = "empty_as_none")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub phase: Option<AnalysisPhase>,
    /// The run's message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Condition types of an Experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ExperimentConditionType {
    /// The spec is invalid.
    InvalidSpec,
    /// Completed (declared by Argo, never set).
    Completed,
    /// Progressing (`ReplicaSetUpdated`, `NewReplicaSetAvailable`, `ExperimentCompleted`).
    Progressing,
    /// Running (declared by Argo, never set).
    Running,
    /// ReplicaFailure (declared by Argo, never set).
    ReplicaFailure,
}

/// `status.conditions[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExperimentCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub kind: ExperimentConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Last time the condition was written.
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

/// Reads Go's empty string (and `null`) as `None`.
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Writes `None` as Go's empty string.
fn none_as_empty<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => v.serialize(s),
        None => s.serialize_str(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_phases_read_as_none_and_round_trip() {
        let status: ExperimentStatus = serde_json::from_value(serde_json::json!({
            "phase": "",
            "templateStatuses": [{"name": "a", "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0,
                                  "availableReplicas": 0, "status": ""}],
            "analysisRuns": [{"name": "x", "analysisRun": "e-x", "phase": ""}],
        }))
        .unwrap();
        assert_eq!(status.phase, None);
        assert_eq!(status.template_statuses[0].status, None);
        assert_eq!(status.analysis_runs[0].phase, None);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["analysisRuns"][0]["phase"], "", "the run phase is a required field");
        assert_eq!(serde_json::from_value::<ExperimentStatus>(json).unwrap(), status);
    }

    #[test]
    fn spec_rejects_unknown_fields_and_defaults() {
        let err = crate::api::parse::from_value_strict::<Experiment>(&serde_json::json!({
            "spec": {"templates": [{"name": "a", "replicaz": 2}]}
        }))
        .unwrap_err();
        assert_eq!(err.path, "spec.templates[0].replicaz");
        let ex: Experiment = serde_json::from_value(serde_json::json!({"spec": {"templates": [{"name": "a"}]}})).unwrap();
        assert_eq!(ex.spec.progress_deadline_seconds(), 600);
        assert_eq!(ex.spec.scale_down_delay_seconds(), 30);
        assert_eq!(ex.spec.templates[0].replicas(), 1);
    }
}
