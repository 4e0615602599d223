//! Traffic routers: one decision, many translations.
//!
//! The rollout machine decides a [`TrafficPlan`] once per reconcile (Argo's rule set E:
//! the canary weight, the additional destinations, the header and mirror routes in
//! force). Each router module only translates a plan and the live object it manages into
//! the object it wants, and emits the create or merge patch that gets there (nothing when
//! the live object already is what it wants). Routers hold no state and decide nothing of
//! their own; the simulator and the controller execute the same actions.

pub mod alb;
pub mod ambassador;
pub mod apisix;
pub mod appmesh;
pub mod gateway_api;
pub mod istio;
pub mod nginx;
pub mod smi;
pub mod traefik;

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{SetHeaderRoute, SetMirrorRoute, WeightDestination};

/// What the traffic routers must carry out in this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficPlan {
    /// The Rollout's name.
    pub rollout: String,
    /// The Rollout's uid (for owner references of the objects the routers create).
    pub rollout_uid: String,
    /// `canaryService`.
    pub canary_service: String,
    /// `stableService`.
    pub stable_service: String,
    /// The canary's weight, out of `max_weight`.
    pub weight: i32,
    /// `maxTrafficWeight` (default 100).
    pub max_weight: i32,
    /// Whether `maxTrafficWeight` was set (NGINX then writes `canary-weight-total`).
    pub max_weight_set: bool,
    /// Experiment destinations: the weighted templates of the running Experiment, each
    /// through its Service.
    pub additional: Vec<WeightDestination>,
    /// The port of each additional destination's Service, by Service name (for routers
    /// that write a backend reference).
    pub additional_ports: BTreeMap<String, i32>,
    /// Every Service an Experiment of the rollout may have put in a router's objects:
    /// those not in `additional` are taken out again.
    pub experiment_services: BTreeSet<String>,
    /// The header routes in force, in `managedRoutes` order.
    pub header_routes: Vec<SetHeaderRoute>,
    /// The mirror routes in force, in `managedRoutes` order.
    pub mirror_routes: Vec<SetMirrorRoute>,
    /// Every managed route's name (`trafficRouting.managedRoutes`).
    pub managed_routes: Vec<String>,
    /// The pod-template hash the canary's traffic goes to (Istio's canary subset).
    pub canary_hash: String,
    /// The stable ReplicaSet's pod-template hash (Istio's stable subset).
    pub stable_hash: String,
    /// With `pingPong`: which of the ping and pong Services is the stable one now.
    pub ping_pong: Option<PingPongServices>,
}

/// The ping and pong Services by role (`status.canary.stablePingPong` names the stable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingPongServices {
    /// The one pointed at the stable ReplicaSet.
    pub stable: String,
    /// The other one, pointed at the new ReplicaSet during an update.
    pub canary: String,
}

impl TrafficPlan {
    /// The (stable, canary) Services a router sends traffic to (Argo's
    /// `GetStableAndCanaryServices`): the ping and pong Services with `pingPong` when the
    /// router prefers them (ALB) or when neither `stableService` nor `canaryService` is
    /// set (Istio, plugins); else the stable and canary Services.
    pub fn services(&self, ping_pong_preferred: bool) -> (&str, &str) {
        match &self.ping_pong {
            Some(pp) if ping_pong_preferred || (self.stable_service.is_empty() && self.canary_service.is_empty()) => {
                (&pp.stable, &pp.canary)
            }
            Some(_) | None => (&self.stable_service, &self.canary_service),
        }
    }

    /// The stable Service's weight: what neither the canary nor an additional destination
    /// gets (never below 0).
    pub fn stable_weight(&self) -> i32 {
        let additional: i32 = self.additional.iter().map(|d| d.weight).sum();
        (self.max_weight - self.weight - additional).max(0)
    }
}

/// Why a router cannot carry out a plan. These are checked by validation before anything
/// moves (an `InvalidSpec` condition naming the field); a router meeting one anyway (an
/// object changed between validation and the router) leaves its object alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// A referenced object does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Anything else, worded as Argo (or the Gateway API plugin) words it.
    #[error("{0}")]
    Invalid(String),
}
