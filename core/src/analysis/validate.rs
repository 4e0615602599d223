//! Metric validation (Argo's `ValidateMetrics`) and dry-run / retention rule matching.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{DryRun, MeasurementRetention, Metric};

/// Validates a run's metrics. `Err` is Argo's message (`metrics[0]: no provider specified`).
pub fn validate_metrics(metrics: &[Metric]) -> Result<(), String> {
    let _ = metrics;
    Ok(())
}

/// The names of the metrics run in dry-run mode. A rule that matches no metric is an
/// error (`dryRun[0]: Rule didn't match any metric name(s)`).
pub fn dry_run_metrics(rules: &[DryRun], metrics: &[Metric]) -> Result<BTreeSet<String>, String> {
    let _ = (rules, metrics);
    Ok(BTreeSet::new())
}

/// Measurement history limit per metric name, for metrics a retention rule matches.
pub fn retention_limits(rules: &[MeasurementRetention], metrics: &[Metric]) -> Result<BTreeMap<String, i32>, String> {
    let _ = (rules, metrics);
    Ok(BTreeMap::new())
}
