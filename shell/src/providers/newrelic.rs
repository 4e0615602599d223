//! `newrelic`: not measured yet (a helper is writing it).

use rollouts_core::api::NewRelicMetric;

use super::{Ctx, Measured, Provider};

impl Provider for NewRelicMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider NewRelicMetric is not supported by this controller yet".to_string())
    }
}
