//! Metric validation (Argo's `ValidateMetrics`).
