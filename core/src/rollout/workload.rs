//! `workloadRef` (Argo's rule set Q, `rollout/templateref.go`): a Rollout whose pod template
//! (and selector, when it has none) comes from a Deployment, ReplicaSet or PodTemplate.
//!
//! The template is resolved from the referent at the start of every reconcile and put back
//! afterwards, so the stored Rollout stays what the user wrote (Argo's resolved template is
//! never written either). A template change in the referent is then an update like any
//! other. The referent's `metadata.generation` is recorded in the Rollout's
//! `rollout.argoproj.io/workload-generation` annotation and in
//! `status.workloadObservedGeneration`.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::api::{ObjectRef, Rollout};
use crate::state::State;

/// The annotation that records the referent's generation on the Rollout.
pub const WORKLOAD_GENERATION: &str = "rollout.argoproj.io/workload-generation";

/// What a reconcile borrowed from the referent, to be put back.
#[derive(Debug, Default)]
pub(super) struct Borrowed {
    template: Option<PodTemplateSpec>,
    selector: Option<LabelSelector>,
}

/// The referent's key in [`State::workloads`]: `<Kind>/<name>`.
pub fn workload_key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// Where a supported kind keeps its template and selector.
fn paths(r: &ObjectRef) -> Result<(&'static str, Option<&'static str>), String> {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, r.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet") => Ok(("/spec/template", Some("/spec/selector"))),
        ("", "PodTemplate") => Ok(("/template", None)),
        (g, k) => Err(format!("workload of type {g}/{k} is not supported")),
    }
}

/// The referent a Rollout names, when it has been observed.
pub fn referent<'s>(state: &'s State, r: &ObjectRef) -> Option<&'s Value> {
    state.workloads.get(&workload_key(&r.kind, &r.name))
}

/// The referent's `metadata.generation` as Argo writes it (a decimal string).
fn generation(workload: &Value) -> String {
    workload.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0).to_string()
}

/// Resolves the rollout's template (and selector, when it has none) from its referent, in
/// place. The error is Argo's, for the `InvalidSpec` condition.
pub(super) fn resolve(state: &mut State) -> Result<Option<Borrowed>, String> {
    let Some(ro) = state.rollout.as_ref() else { return Ok(None) };
    let Some(r) = ro.spec.workload_ref.clone() else {
        return Ok(None);
    };
    if ro.spec.template.as_ref().is_some_and(|t| t != &PodTemplateSpec::default()) {
        return Err("template must be empty for workload reference rollout".to_string());
    }
    let (template_path, selector_path) = paths(&r)?;
    let Some(workload) = referent(state, &r) else {
        let resource = match r.kind.as_str() {
            "PodTemplate" => "podtemplates".to_string(),
            other => format!("{}s.apps", other.to_ascii_lowercase()),
        };
        return Err(format!("{resource} \"{}\" not found", r.name));
    };
    let template: Option<PodTemplateSpec> = match workload.pointer(template_path) {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| format!("the template of {} {}: {e}", r.kind, r.name))?),
        None => None,
    };
    let selector: Option<LabelSelector> = match selector_path.and_then(|p| workload.pointer(p)) {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| format!("the selector of {} {}: {e}", r.kind, r.name))?),
        None => None,
    };
    let Some(ro) = state.rollout.as_mut() else { return Ok(None) };
    let borrowed = Borrowed { template: ro.spec.template.clone(), selector: ro.spec.selector.clone() };
    if template.is_some() {
        ro.spec.template = template;
    }
    if ro.spec.selector.is_none() {
        ro.spec.selector = selector;
    }
    Ok(Some(borrowed))
}

/// Puts back what [`resolve`] replaced.
pub(super) fn restore(state: &mut State, borrowed: Option<Borrowed>) {
    if let (Some(b), Some(ro)) = (borrowed, state.rollout.as_mut()) {
        ro.spec.template = b.template;
        ro.spec.selector = b.selector;
    }
}

/// The referent's generation, when the rollout has one and it is observed.
pub fn observed_generation(state: &State, ro: &Rollout) -> Option<String> {
    let r = ro.spec.workload_ref.as_ref()?;
    referent(state, r).map(generation)
}

/// The referent's generation when the Rollout's annotation does not record it yet.
pub fn new_generation(state: &State, ro: &Rollout) -> Option<String> {
    let generation = observed_generation(state, ro)?;
    let current = ro.metadata.annotations.as_ref().and_then(|a| a.get(WORKLOAD_GENERATION));
    (current != Some(&generation)).then_some(generation)
}

/// The Deployment's `spec.replicas`, when the referent is an observed Deployment.
pub fn deployment_replicas(state: &State, ro: &Rollout) -> Option<(String, i32)> {
    let r = ro.spec.workload_ref.as_ref().filter(|r| r.kind == "Deployment")?;
    let d = referent(state, r)?;
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64).map_or(1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    Some((r.name.clone(), replicas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(api_version: &str, kind: &str) -> ObjectRef {
        ObjectRef { api_version: api_version.into(), kind: kind.into(), name: "web".into(), scale_down: String::new() }
    }

    #[test]
    fn deployments_replicasets_and_podtemplates_are_the_supported_kinds() {
        assert_eq!(paths(&reference("apps/v1", "Deployment")), Ok(("/spec/template", Some("/spec/selector"))));
        assert_eq!(paths(&reference("apps/v1", "ReplicaSet")), Ok(("/spec/template", Some("/spec/selector"))));
        assert_eq!(paths(&reference("v1", "PodTemplate")), Ok(("/template", None)));
        assert_eq!(paths(&reference("batch/v1", "Job")), Err("workload of type batch/Job is not supported".to_string()));
        assert_eq!(paths(&reference("v1", "Deployment")), Err("workload of type /Deployment is not supported".to_string()));
    }
}
