//! `influxdb`: not measured yet (a helper is writing it).

use rollouts_core::api::InfluxdbMetric;

use super::{Ctx, Measured, Provider};

impl Provider for InfluxdbMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider InfluxdbMetric is not supported by this controller yet".to_string())
    }
}
