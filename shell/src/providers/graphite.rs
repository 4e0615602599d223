//! `graphite`: not measured yet (a helper is writing it).

use rollouts_core::api::GraphiteMetric;

use super::{Ctx, Measured, Provider};

impl Provider for GraphiteMetric {
    async fn measure(&self, _ctx: &Ctx<'_>) -> Measured {
        Err("metric provider GraphiteMetric is not supported by this controller yet".to_string())
    }
}
