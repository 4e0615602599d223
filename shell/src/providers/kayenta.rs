//! `kayenta`: not measured yet (a helper is writing it).

use rollouts_core::api::KayentaMetric;

use super::{Ctx, Measured, Provider};

impl Provider for KayentaMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider KayentaMetric is not supported by this controller yet".to_string())
    }
}
