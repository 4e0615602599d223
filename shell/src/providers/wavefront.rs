//! `wavefront`: not measured yet (a helper is writing it).

use rollouts_core::api::WavefrontMetric;

use super::{Ctx, Measured, Provider};

impl Provider for WavefrontMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider WavefrontMetric is not supported by this controller yet".to_string())
    }
}
