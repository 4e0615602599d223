//! `spec.restartAt`: evict every pod created before that time, within the
//! unavailability budget (Argo's `RolloutPodRestarter`).

use super::context::Ctx;
use crate::objects::{from_kube_time, pod_owner, pod_ready_since, total_replicas, ReplicaSetExt};
use crate::replicas;
use crate::state::{Action, WakeReason};
use crate::time::Seconds;

/// How long to wait before looking at pods again while a restart is in progress.
const RESTART_RETRY: Seconds = Seconds(30);

impl Ctx<'_> {
    /// Evicts pods that predate `spec.restartAt`; returns whether any was evicted (the
    /// canary reconcile then ends early). Records `status.restartedAt` once none remain.
    pub(super) fn restart_pods(&mut self) -> bool {
        let Some(restart_at) = self.ro.spec.restart_at else { return false };
        if self.ro.status.restarted_at == Some(restart_at) {
            return false;
        }
        if self.now <= restart_at {
            self.wake_at(restart_at.plus(Seconds(1)), WakeReason::Restart);
            return false;
        }
        let min_ready = i64::from(self.ro.spec.min_ready_seconds);
        let owned: Vec<_> = self
            .state
            .pods
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| pod_owner(p).is_some_and(|o| self.state.replica_sets.contains_key(o)))
            .cloned()
            .collect();
        let available = owned
            .iter()
            .filter(|p| pod_ready_since(p).is_some_and(|since| self.now.since(since).0 >= min_ready))
            .count() as i32;
        let max_unavailable = match self.ro.spec.blue_green() {
            Some(bg) => {
                let mu = bg.max_unavailable.clone().unwrap_or(crate::api::IntOrString::String("25".into()));
                mu.scaled_value(self.replicas(), false).unwrap_or(0).min(self.replicas())
            }
            None => replicas::canary_fenceposts(&self.ro.spec).map(|(_, u)| u).unwrap_or(0),
        };
        let concurrent = max_unavailable.max(1);
        let total_desired: i32 = total_replicas(self.all_rs().map(|rs| rs.spec_replicas()));
        let mut can_restart = available - (self.replicas().max(total_desired) - concurrent);
        let mut needs_restart: Vec<_> = owned
            .iter()
            .filter(|p| p.metadata.creation_timestamp.as_ref().map(from_kube_time).is_some_and(|c| c < restart_at))
            .collect();
        if needs_restart.is_empty() {
            self.new_status.restarted_at = Some(restart_at);
            return false;
        }
        needs_restart.sort_by_key(|p| p.metadata.name.clone());
        let mut evicted = false;
        for pod in needs_restart {
            if can_restart <= 0 {
                break;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            self.state.pods.remove(&name);
            self.actions.push(Action::EvictPod { name: name.clone() });
            self.event("RolloutRestarted", format!("Evicted pod {name} (restartAt {restart_at})"));
            can_restart -= 1;
            evicted = true;
        }
        self.wake_at(self.now.plus(RESTART_RETRY), WakeReason::Restart);
        evicted
    }
}
