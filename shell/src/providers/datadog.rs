//! `datadog`: not measured yet (a helper is writing it).

use rollouts_core::api::DatadogMetric;

use super::{Ctx, Measured, Provider};

impl Provider for DatadogMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider DatadogMetric is not supported by this controller yet".to_string())
    }
}
