//! Service selector management: stable / canary services for a canary, preview / active
//! services for blue-green.

use std::collections::BTreeMap;

use super::context::Ctx;
use crate::api::keys;
use crate::objects::{service_managed_by, service_selected_hash, ReplicaSetExt};
use crate::state::Action;

impl Ctx<'_> {
    /// Points `service` at `hash` (and marks it managed by this rollout); no-op when it
    /// already does. Argo's `switchServiceSelector`.
    pub(super) fn switch_service_selector(&mut self, service: &str, hash: &str) {
        let rollout = self.name().to_string();
        let Some(svc) = self.state.services.get_mut(service).map(std::sync::Arc::make_mut) else { return };
        let old = service_selected_hash(svc).to_string();
        let managed = service_managed_by(svc).is_some();
        if old == hash && managed {
            return;
        }
        svc.spec
            .get_or_insert_with(Default::default)
            .selector
            .get_or_insert_with(BTreeMap::new)
            .insert(keys::POD_TEMPLATE_HASH.to_string(), hash.to_string());
        if !managed {
            svc.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(keys::MANAGED_BY_ROLLOUTS.to_string(), rollout.clone());
        }
        self.actions.push(Action::SetServiceSelector {
            service: service.to_string(),
            hash: hash.to_string(),
            managed_by: (!managed).then_some(rollout),
        });
        self.event("SwitchService", format!("Switched selector for service '{service}' from '{old}' to '{hash}'"));
    }

    /// Argo's `ensureSVCTargets`: switch only when the target ReplicaSet can take traffic
    /// (fully available when adopting an unmanaged service, at least one pod otherwise).
    pub(super) fn ensure_service_targets(&mut self, service: &str, rs_name: Option<String>, check_availability: bool) {
        let Some(rs_name) = rs_name else { return };
        if service.is_empty() {
            return;
        }
        let Some(rs) = self.rs(&rs_name) else { return };
        let desired = rs.pod_hash().to_string();
        let spec = rs.spec_replicas();
        let available = rs.available();
        let Some(svc) = self.state.services.get(service) else { return };
        if service_selected_hash(svc) == desired {
            return;
        }
        if service_managed_by(svc).is_none() && check_availability {
            let fully_available = spec != 0 && available != 0 && spec <= available;
            if !fully_available {
                return;
            }
        }
        if check_availability && available <= 0 {
            return;
        }
        self.switch_service_selector(service, &desired);
    }

    /// Argo's `reconcilePingAndPongService`: until the update is fully promoted, the ping or
    /// pong Service that is not the stable one follows the new ReplicaSet, at once (no
    /// availability check: the router sends it no traffic before the weights say so).
    pub(super) fn reconcile_ping_pong_service(&mut self) {
        if self.is_fully_promoted() {
            return;
        }
        let Some(pp) = self.ping_pong_services() else { return };
        self.ensure_service_targets(&pp.canary, self.new_rs.clone(), false);
    }

    /// Argo's `reconcileStableAndCanaryService`.
    pub(super) fn reconcile_stable_and_canary_service(&mut self) {
        let Some(canary) = self.ro.spec.canary() else {
            return;
        };
        let (stable_service, canary_service) =
            (canary.stable_service.clone(), canary.canary_service.clone());
        let routed = canary.traffic_routing.is_some();
        self.ensure_service_targets(&stable_service, self.stable_rs.clone(), true);
        if self.pause.is_aborted(&self.ro.status) {
            if !routed {
                // A basic canary's canary service goes back to the stable pods on abort.
                self.ensure_service_targets(&canary_service, self.stable_rs.clone(), true);
            }
            // Behind a router, traffic routing points it back once the weight is 0. (Argo
            // first points it at the new pods here, then back at the stable ones there,
            // one patch each on every reconcile.)
            return;
        }
        if self.dynamically_rolling_back_to().is_some() {
            // The stable may be undersized: the canary service moves once it is full.
            return;
        }
        self.ensure_service_targets(&canary_service, self.new_rs.clone(), true);
    }

    /// Argo's `reconcilePreviewService`: the preview service follows the new ReplicaSet.
    pub(super) fn reconcile_preview_service(&mut self) {
        let Some(preview_service) = self.ro.spec.blue_green().map(|b| b.preview_service.clone())
        else {
            return;
        };
        if preview_service.is_empty() || self.halt_progress() {
            return;
        }
        let hash = self.new_hash();
        self.switch_service_selector(&preview_service, &hash);
    }
}
