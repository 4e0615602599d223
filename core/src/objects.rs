//! Read access to the Kubernetes objects the core looks at, with Kubernetes' defaults.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

use crate::api::keys;
use crate::time::Timestamp;

/// Converts a core timestamp into a Kubernetes `Time`.
pub fn to_kube_time(t: Timestamp) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.unix()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// Converts a Kubernetes `Time` into a core timestamp (whole seconds).
pub fn from_kube_time(t: &Time) -> Timestamp {
    Timestamp::from_unix(t.0.as_second())
}

/// The sum of replica counts, saturating at the `i32` bounds: counts are observed data,
/// and `step` must not overflow whatever a ReplicaSet's status claims.
pub fn total_replicas(counts: impl IntoIterator<Item = i32>) -> i32 {
    let sum = counts.into_iter().fold(0i64, |acc, c| acc.saturating_add(i64::from(c)));
    i32::try_from(sum).unwrap_or(if sum < 0 { i32::MIN } else { i32::MAX })
}

/// Read access to a ReplicaSet.
pub trait ReplicaSetExt {
    /// Object name.
    fn name(&self) -> &str;
    /// `spec.replicas` (Kubernetes defaults a missing value to 1; negative reads as 0).
    fn spec_replicas(&self) -> i32;
    /// `status.replicas` (negative reads as 0).
    fn status_replicas(&self) -> i32;
    /// `status.readyReplicas` (negative reads as 0).
    fn ready(&self) -> i32;
    /// `status.availableReplicas` (negative reads as 0).
    fn available(&self) -> i32;
    /// The `rollouts-pod-template-hash` label, or "".
    fn pod_hash(&self) -> &str;
    /// An annotation.
    fn annotation(&self, key: &str) -> Option<&str>;
    /// The `rollout.argoproj.io/revision` annotation as a number.
    fn revision(&self) -> Option<i64>;
    /// Creation time (the epoch when unset).
    fn created(&self) -> Timestamp;
    /// Whether deletion has started.
    fn is_deleting(&self) -> bool;
    /// Whether it has a non-empty `scale-down-deadline` annotation.
    fn has_scale_down_deadline(&self) -> bool;
    /// `metadata.generation` > `status.observedGeneration`.
    fn generation_unobserved(&self) -> bool;
}

impl ReplicaSetExt for ReplicaSet {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
    // The API server refuses negative counts; one that comes in anyway (a hand-made
    // object, a corrupt trace) reads as 0, so the replica arithmetic never sees it.
    fn spec_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
    }
    fn status_replicas(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.replicas).max(0)
    }
    fn ready(&self) -> i32 {
        self.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0).max(0)
    }
    fn available(&self) -> i32 {
        self.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0).max(0)
    }
    fn pod_hash(&self) -> &str {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(keys::POD_TEMPLATE_HASH))
            .map(String::as_str)
            .unwrap_or("")
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
    }
    fn revision(&self) -> Option<i64> {
        self.annotation(keys::REVISION).and_then(|r| r.parse().ok())
    }
    fn created(&self) -> Timestamp {
        self.metadata.creation_timestamp.as_ref().map(from_kube_time).unwrap_or_default()
    }
    fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
    fn has_scale_down_deadline(&self) -> bool {
        self.annotation(keys::SCALE_DOWN_DEADLINE).is_some_and(|v| !v.is_empty())
    }
    fn generation_unobserved(&self) -> bool {
        let generation = self.metadata.generation.unwrap_or(0);
        let observed = self.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
        generation > observed
    }
}

/// The `rollouts-pod-template-hash` a Service selects, or "".
pub fn service_selected_hash(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.get(keys::POD_TEMPLATE_HASH))
        .map(String::as_str)
        .unwrap_or("")
}

/// The Service's selector (empty when unset).
pub fn service_selector(svc: &Service) -> BTreeMap<String, String> {
    svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default()
}

/// Whether the Service carries the `managed-by-rollouts` annotation.
pub fn service_managed_by(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::MANAGED_BY_ROLLOUTS))
        .map(String::as_str)
}

/// The pod's owning ReplicaSet name.
pub fn pod_owner(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "ReplicaSet")
        .map(|o| o.name.as_str())
}

/// Whether the pod's `Ready` condition is `True`, and since when.
pub fn pod_ready_since(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref().map(from_kube_time).unwrap_or_default())
}

/// Renders a label selector the way `metav1.FormatLabelSelector` does (`a=b,c in (d)`).
pub fn format_label_selector(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    for req in sel.match_expressions.iter().flatten() {
        let values = req.values.clone().unwrap_or_default().join(",");
        parts.push(match req.operator.as_str() {
            "In" => format!("{} in ({values})", req.key),
            "NotIn" => format!("{} notin ({values})", req.key),
            "Exists" => req.key.clone(),
            "DoesNotExist" => format!("!{}", req.key),
            other => format!("{} {other} ({values})", req.key),
        });
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}
