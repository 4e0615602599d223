//! `skywalking`: not measured yet (a helper is writing it).

use rollouts_core::api::SkyWalkingMetric;

use super::{Ctx, Measured, Provider};

impl Provider for SkyWalkingMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider SkyWalkingMetric is not supported by this controller yet".to_string())
    }
}
