//! Template merging, argument merging and `{{args.*}}` resolution (Argo's
//! `FlattenTemplates`, `MergeArgs`, `ResolveArgs`).

use std::collections::BTreeMap;

use crate::api::{AnalysisTemplate, Argument, DryRun, MeasurementRetention, Metric, SecretKeyRef};

/// Templates flattened into one run spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlattenedTemplates {
    /// Metrics, namespaced templates' first, in order.
    pub metrics: Vec<Metric>,
    /// Arguments merged by name.
    pub args: Vec<Argument>,
    /// Dry-run rules.
    pub dry_run: Vec<DryRun>,
    /// Retention rules.
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Merges templates (namespaced first, then cluster-scoped). Errors carry Argo's messages.
pub fn flatten_templates(namespaced: &[AnalysisTemplate], cluster: &[AnalysisTemplate]) -> Result<FlattenedTemplates, String> {
    let _ = (namespaced, cluster);
    Ok(FlattenedTemplates::default())
}

/// Merges the caller's arguments into the template's; every argument must end with a
/// value or a `valueFrom`.
pub fn merge_args(template_args: &[Argument], incoming: &[Argument]) -> Result<Vec<Argument>, String> {
    let _ = incoming;
    Ok(template_args.to_vec())
}

/// Resolves `{{args.<name>}}` in every metric. Arguments whose value comes from a Secret
/// keep their placeholder (the shell substitutes the secret right before measuring).
pub fn resolve_metrics(metrics: &[Metric], args: &[Argument]) -> Result<Vec<Metric>, String> {
    let _ = args;
    Ok(metrics.to_vec())
}

/// The arguments whose values live in Secrets, by name.
pub fn secret_args(args: &[Argument]) -> BTreeMap<String, SecretKeyRef> {
    args.iter()
        .filter_map(|a| {
            a.value_from.as_ref().and_then(|v| v.secret_key_ref.clone()).map(|s| (a.name.clone(), s))
        })
        .collect()
}
