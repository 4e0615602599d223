//! The simulated cluster's traffic-router objects: Ingresses and Gateway API routes.

use super::cluster::Cluster;
use crate::state::Action;

impl Cluster {
    /// Carries out a traffic-router action of the controller of `rollout`; whether it
    /// changed anything.
    pub(super) fn execute_router(&mut self, _rollout: &str, _action: Action) -> bool {
        // Filled in with the simulator's router objects (issue 10, in progress).
        false
    }
}
