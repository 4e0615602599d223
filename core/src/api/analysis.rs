//! `argoproj.io/v1alpha1` AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun, with
//! every metric field and every provider's spec, as Argo Rollouts names them.
//!
//! Spec types reject unknown fields (a typo in a metric is an error naming it); status
//! types accept them.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::intstr::IntOrString;
use super::rollout::{DryRun, FieldRef, MeasurementRetention, PodTemplateMetadata};
use crate::time::Timestamp;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// An AnalysisTemplate (namespaced) or ClusterAnalysisTemplate (cluster-scoped); both
/// share the spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplate {
    /// `argoproj.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `AnalysisTemplate` or `ClusterAnalysisTemplate`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The template.
    #[serde(default)]
    pub spec: AnalysisTemplateSpec,
}

/// `spec` of an AnalysisTemplate / ClusterAnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplateSpec {
    /// Metrics to measure.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Parameters; one without a value must be supplied by the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Metrics (regular expressions) whose results do not affect the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Per-metric measurement history limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// Other templates merged into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<AnalysisTemplateRef>,
}

/// A nested template reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisTemplateRef {
    /// Template name.
    #[serde(default)]
    pub template_name: String,
    /// A ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_scope: bool,
}

/// A template or run argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Argument {
    /// Name, referenced as `{{args.<name>}}`.
    pub name: String,
    /// Value. Numbers and booleans are accepted and kept as their text (`value: 9090`, as
    /// Argo's documentation writes it).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "scalar_as_string")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<IntOrString>"))]
    pub value: Option<String>,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

fn scalar_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!("expected a string, found {other}"))),
    }
}

/// `valueFrom` of a template or run argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueFrom {
    /// A key of a Secret in the run's namespace (resolved by the shell, never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field of the Rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A Secret key.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// A metric: what to measure, when, and how to judge the result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// Unique within the run.
    pub name: String,
    /// Time between measurements (`30s`, `5m`); empty means a single measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Wait after the run starts before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Measurements to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Expression on `result` that makes a measurement Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Expression on `result` that makes a measurement Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated (default 0; -1 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Consecutive errors tolerated (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Consecutive successes that make the metric Successful (default 0: disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
    /// Where to measure.
    #[serde(default)]
    pub provider: MetricProvider,
}

/// Exactly one provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricProvider {
    /// Prometheus query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// Kayenta canary judgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kayenta: Option<KayentaMetric>,
    /// HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// Datadog query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<DatadogMetric>,
    /// Wavefront query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wavefront: Option<WavefrontMetric>,
    /// New Relic NRQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_relic: Option<NewRelicMetric>,
    /// A Kubernetes Job: success is exit code 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// AWS CloudWatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch: Option<CloudWatchMetric>,
    /// Graphite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphite: Option<GraphiteMetric>,
    /// InfluxDB Flux query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub influxdb: Option<InfluxdbMetric>,
    /// Apache SkyWalking GraphQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skywalking: Option<SkyWalkingMetric>,
    /// Metric provider plugins, by plugin name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<BTreeMap<String, Value>>,
}

/// The provider kinds, in Argo's selection order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ProviderKind {
    /// `prometheus`.
    Prometheus,
    /// `job`.
    Job,
    /// `kayenta`.
    Kayenta,
    /// `web`.
    Web,
    /// `datadog`.
    Datadog,
    /// `wavefront`.
    Wavefront,
    /// `newRelic`.
    NewRelic,
    /// `cloudWatch`.
    CloudWatch,
    /// `graphite`.
    Graphite,
    /// `influxdb`.
    Influxdb,
    /// `skywalking`.
    SkyWalking,
    /// `plugin`.
    Plugin,
}

impl MetricProvider {
    /// The providers set, in Argo's selection order (validation requires exactly one;
    /// each plugin entry counts as one).
    pub fn kinds(&self) -> Vec<ProviderKind> {
        let mut k = Vec::new();
        let set = [
            (self.prometheus.is_some(), ProviderKind::Prometheus),
            (self.job.is_some(), ProviderKind::Job),
            (self.kayenta.is_some(), ProviderKind::Kayenta),
            (self.web.is_some(), ProviderKind::Web),
            (self.datadog.is_some(), ProviderKind::Datadog),
            (self.wavefront.is_some(), ProviderKind::Wavefront),
            (self.new_relic.is_some(), ProviderKind::NewRelic),
            (self.cloud_watch.is_some(), ProviderKind::CloudWatch),
            (self.graphite.is_some(), ProviderKind::Graphite),
            (self.influxdb.is_some(), ProviderKind::Influxdb),
            (self.skywalking.is_some(), ProviderKind::SkyWalking),
        ];
        for (on, kind) in set {
            if on {
                k.push(kind);
            }
        }
        for _ in self.plugin.iter().flatten() {
            k.push(ProviderKind::Plugin);
        }
        k
    }
}

/// A header for web and Prometheus requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WebMetricHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// `prometheus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusMetric {
    /// Server URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// PromQL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    /// Request timeout in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
    /// SigV4, OAuth2 or basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub authentication: Option<Value>,
    /// A range query instead of an instant one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_query: Option<PrometheusRangeQueryArgs>,
}

/// `prometheus.rangeQuery`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PrometheusRangeQueryArgs {
    /// Start (expression, e.g. `now() - duration("1h")`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End (expression).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
    /// Step (`1m`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
}

/// `web`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebMetric {
    /// `GET` (default), `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// URL.
    #[serde(default)]
    pub url: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
    /// Request body as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request body as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<Value>,
    /// Timeout (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Kubernetes JSONPath applied to the JSON response (default `{$}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// OAuth2 authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub authentication: Option<Value>,
}

/// `job`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobMetric {
    /// Labels and annotations copied onto the Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// The Job spec.
    #[serde(default)]
    pub spec: JobSpec,
}

/// `datadog`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatadogMetric {
    /// `v1` or `v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Query window (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// One query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Named queries (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<BTreeMap<String, String>>,
    /// Formula over the named queries (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// Aggregation (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<String>,
    /// Secret with the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub secret_ref: Option<Value>,
    /// Request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

/// `wavefront`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WavefrontMetric {
    /// Server address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Query.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
}

/// `newRelic`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRelicMetric {
    /// Secret with the credentials (default `newrelic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// NRQL.
    #[serde(default)]
    pub query: String,
    /// Timeout in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// `kayenta`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KayentaMetric {
    /// Kayenta URL.
    #[serde(default)]
    pub address: String,
    /// Application.
    #[serde(default)]
    pub application: String,
    /// Canary config name.
    #[serde(default)]
    pub canary_config_name: String,
    /// Metrics account.
    #[serde(default)]
    pub metrics_account_name: String,
    /// Configuration account.
    #[serde(default)]
    pub configuration_account_name: String,
    /// Storage account.
    #[serde(default)]
    pub storage_account_name: String,
    /// Score thresholds.
    #[serde(default)]
    pub threshold: KayentaThreshold,
    /// Scopes.
    #[serde(default)]
    pub scopes: Vec<KayentaScope>,
    /// Use the run's start as the scope start.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lookback: bool,
}

/// `kayenta.threshold`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KayentaThreshold {
    /// Score to pass.
    #[serde(default)]
    pub pass: i64,
    /// Score to be inconclusive.
    #[serde(default)]
    pub marginal: i64,
}

/// `kayenta.scopes[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KayentaScope {
    /// Scope name.
    pub name: String,
    /// Control scope.
    #[serde(default)]
    pub control_scope: KayentaScopeDetail,
    /// Experiment scope.
    #[serde(default)]
    pub experiment_scope: KayentaScopeDetail,
}

/// A Kayenta scope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KayentaScopeDetail {
    /// Scope.
    #[serde(default)]
    pub scope: String,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// Step (seconds).
    #[serde(default)]
    pub step: i64,
    /// Start (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End (RFC 3339).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// `cloudWatch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudWatchMetric {
    /// Query window (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// GetMetricData queries.
    #[serde(default)]
    pub metric_data_queries: Vec<CloudWatchMetricDataQuery>,
}

/// `cloudWatch.metricDataQueries[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudWatchMetricDataQuery {
    /// Query id.
    pub id: String,
    /// Math expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("type" = "object", "x-kubernetes-preserve-unknown-fields" = true)))]
    pub metric_stat: Option<Value>,
    /// Period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<IntOrString>,
    /// Return this query's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_data: Option<bool>,
}

/// `graphite`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GraphiteMetric {
    /// Server address.
    #[serde(default)]
    pub address: String,
    /// Query.
    #[serde(default)]
    pub query: String,
}

/// `influxdb`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InfluxdbMetric {
    /// Secret with the credentials (default `influxdb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Flux query.
    #[serde(default)]
    pub query: String,
}

/// `skywalking`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SkyWalkingMetric {
    /// Server address.
    #[serde(default)]
    pub address: String,
    /// GraphQL query.
    #[serde(default)]
    pub query: String,
    /// Query window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// An AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisRun {
    /// `argoproj.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `AnalysisRun`.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to measure.
    #[serde(default)]
    pub spec: AnalysisRunSpec,
    /// Measurements and phases.
    #[serde(default)]
    pub status: AnalysisRunStatus,
}

/// `spec` of an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisRunSpec {
    /// Metrics (arguments still as placeholders).
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Stop measuring.
    #[serde(default, skip_serializing_if = "is_false")]
    pub terminate: bool,
    /// Dry-run metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    /// Measurement retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
    /// When to delete the completed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<TtlStrategy>,
}

/// `ttlStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TtlStrategy {
    /// After any completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_completion: Option<i32>,
    /// After a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_failure: Option<i32>,
    /// After a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_success: Option<i32>,
}

/// Phase of a run, a metric or a measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AnalysisPhase {
    /// Not started.
    #[default]
    Pending,
    /// In progress.
    Running,
    /// Passed.
    Successful,
    /// Did not pass.
    Failed,
    /// Could not be measured.
    Error,
    /// Neither passed nor failed.
    Inconclusive,
}

impl AnalysisPhase {
    /// Argo's `Completed()`.
    pub fn completed(self) -> bool {
        matches!(
            self,
            AnalysisPhase::Successful | AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
        )
    }

    /// The phase as Argo spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Inconclusive => "Inconclusive",
        }
    }
}

/// `status` of an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Run phase (absent before the first assessment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// One per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
    /// First assessment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub started_at: Option<Timestamp>,
    /// Completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub completed_at: Option<Timestamp>,
    /// Totals over non-dry-run metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_summary: Option<RunSummary>,
    /// Totals over dry-run metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
}

/// Metric counts by phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Metrics.
    #[serde(default)]
    pub count: i32,
    /// Successful metrics.
    #[serde(default)]
    pub successful: i32,
    /// Failed metrics.
    #[serde(default)]
    pub failed: i32,
    /// Inconclusive metrics.
    #[serde(default)]
    pub inconclusive: i32,
    /// Errored metrics.
    #[serde(default)]
    pub error: i32,
}

/// One metric's results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Metric name.
    pub name: String,
    /// Metric phase.
    pub phase: AnalysisPhase,
    /// The most recent measurements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// Message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Successful + failed + inconclusive.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: i32,
    /// Successful measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub successful: i32,
    /// Failed measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Inconclusive measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inconclusive: i32,
    /// Errored measurements.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub error: i32,
    /// Errors in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_error: i32,
    /// Successes in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_success: i32,
    /// A dry-run metric.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// Provider metadata (e.g. `ResolvedPrometheusQuery`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Phase.
    pub phase: AnalysisPhase,
    /// Message (errors).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub finished_at: Option<Timestamp>,
    /// The value, rendered as a string.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Provider metadata (e.g. `job-name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// When to look at an in-flight measurement again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>"))]
    pub resume_at: Option<Timestamp>,
}
