//! `cloudwatch`: not measured yet (a helper is writing it).

use rollouts_core::api::CloudWatchMetric;

use super::{Ctx, Measured, Provider};

impl Provider for CloudWatchMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider CloudWatchMetric is not supported by this controller yet".to_string())
    }
}
