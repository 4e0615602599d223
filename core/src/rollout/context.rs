//! The reconcile context: the rollout, its ReplicaSets classified as new / stable / other,
//! the status being computed, and the actions emitted so far.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::pause::PauseCtx;
use crate::api::{keys, Rollout, RolloutStatus};
use crate::objects::{total_replicas, ReplicaSetExt};
use crate::replicas::RsCounts;
use crate::state::{Action, EventType, ReplicaSetPatch, SpecHashes, State, WakeReason};
use crate::time::{Seconds, Timestamp};

/// One reconcile in progress.
pub(super) struct Ctx<'s> {
    pub now: Timestamp,
    /// The rollout, taken out of `state.rollout` for the reconcile and updated by our own
    /// metadata and status writes; [`Ctx::finish`] puts it back.
    pub ro: Rollout,
    /// The working state: our writes are applied to it as they are emitted.
    pub state: &'s mut State,
    /// Name of the ReplicaSet matching the current template.
    pub new_rs: Option<String>,
    /// Name of the ReplicaSet whose hash is `status.stableRS`.
    pub stable_rs: Option<String>,
    /// All ReplicaSets but the new one.
    pub older_rs: Vec<String>,
    /// The highest revision among `older_rs` (0 without one); only the new ReplicaSet's
    /// revision is written during a reconcile, so it holds until the next `classify`.
    pub max_old_revision: i64,
    /// All ReplicaSets but the new and the stable one.
    pub other_rs: Vec<String>,
    /// The hash of the current template.
    pub template_hash: String,
    /// The hash of the canary steps (`status.currentStepHash`).
    pub steps_hash: String,
    /// `spec.selector` rendered for `status.selector`.
    pub selector: String,
    /// The status being built (Argo's `newStatus`).
    pub new_status: RolloutStatus,
    pub pause: PauseCtx,
    pub actions: Vec<Action>,
    wake: Option<(Timestamp, WakeReason)>,
    /// Set when the update restarted this reconcile (template or steps changed).
    pub update_reset: bool,
    /// The Experiment the rollout follows: the one `status.canary.currentExperiment`
    /// names, then the one the experiment step keeps (Argo's `currentEx`).
    pub current_experiment: Option<String>,
}

impl<'s> Ctx<'s> {
    /// Starts a reconcile of `ro`, which the caller took out of `state.rollout`:
    /// [`Ctx::finish`] puts it back with this reconcile's writes. `hashes` come from the
    /// [`crate::state::SpecDigests`] entry of `ro`'s spec.
    pub fn new(state: &'s mut State, ro: Rollout, hashes: SpecHashes, now: Timestamp) -> Self {
        let SpecHashes {
            template_hash,
            steps_hash,
            selector,
        } = hashes;
        let mut ctx = Ctx {
            now,
            new_status: RolloutStatus {
                restarted_at: ro.status.restarted_at,
                canary: crate::api::CanaryStatus {
                    weights: ro.status.canary.weights.clone(),
                    stable_ping_pong: ro.status.canary.stable_ping_pong.clone(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ro,
            state,
            new_rs: None,
            stable_rs: None,
            older_rs: Vec::new(),
            max_old_revision: 0,
            other_rs: Vec::new(),
            template_hash,
            steps_hash,
            selector,
            pause: PauseCtx::default(),
            actions: Vec::new(),
            wake: None,
            update_reset: false,
            current_experiment: None,
        };
        ctx.current_experiment = super::experiment::current_experiment_of(&ctx.ro, &ctx.state.experiments);
        ctx.classify();
        if ctx.is_fully_promoted() && ctx.pause.is_aborted(&ctx.ro.status) {
            ctx.pause.remove_abort();
        }
        ctx
    }

    /// Sorts the ReplicaSets into new / stable / other.
    pub fn classify(&mut self) {
        let mut all: Vec<(Timestamp, &str, &ReplicaSet)> = self
            .state
            .replica_sets
            .values()
            .map(|rs| (rs.created(), rs.name(), &**rs))
            .collect();
        all.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let default_template = PodTemplateSpec::default();
        let template = self.ro.spec.template.as_ref().unwrap_or(&default_template);
        let new_rs = all
            .iter()
            .find(|(_, _, rs)| rs.pod_hash() == self.template_hash)
            .or_else(|| {
                all.iter().find(|(_, _, rs)| {
                    super::ephemeral::template_without_injected(rs)
                        .is_some_and(|t| super::replicasets::templates_equal(&t, template, &self.ro))
                })
            })
            .map(|(_, name, _)| *name);
        let stable_hash = self.ro.status.stable_rs.as_str();
        let stable_rs = if stable_hash.is_empty() {
            None
        } else {
            all.iter()
                .find(|(_, _, rs)| rs.pod_hash() == stable_hash)
                .map(|(_, name, _)| *name)
        };
        let older: Vec<String> = all
            .iter()
            .filter(|(_, n, _)| Some(*n) != new_rs)
            .map(|(_, n, _)| n.to_string())
            .collect();
        let max_old_revision = all
            .iter()
            .filter(|(_, n, _)| Some(*n) != new_rs)
            .filter_map(|(_, _, rs)| rs.revision())
            .max()
            .unwrap_or(0);
        let other: Vec<String> = older
            .iter()
            .filter(|n| Some(n.as_str()) != stable_rs)
            .cloned()
            .collect();
        let (new_rs, stable_rs) = (new_rs.map(str::to_string), stable_rs.map(str::to_string));
        self.older_rs = older;
        self.max_old_revision = max_old_revision;
        self.other_rs = other;
        self.new_rs = new_rs;
        self.stable_rs = stable_rs;
    }

    pub fn rs(&self, name: &str) -> Option<&ReplicaSet> {
        self.state.replica_sets.get(name).map(|rs| &**rs)
    }

    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new_rs.as_deref().and_then(|n| self.rs(n))
    }

    pub fn stable_rs(&self) -> Option<&ReplicaSet> {
        self.stable_rs.as_deref().and_then(|n| self.rs(n))
    }

    /// The hash of the new ReplicaSet, or the template hash when it does not exist yet.
    pub fn new_hash(&self) -> String {
        self.new_rs().map(|rs| rs.pod_hash().to_string()).unwrap_or_else(|| self.template_hash.clone())
    }

    pub fn all_rs(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.state.replica_sets.values().map(|rs| &**rs)
    }

    pub fn counts(&self, name: Option<&str>) -> Option<RsCounts> {
        name.and_then(|n| self.rs(n)).map(|rs| RsCounts {
            spec: rs.spec_replicas(),
            status_replicas: rs.status_replicas(),
            available: rs.available(),
        })
    }

    pub fn other_counts(&self) -> Vec<RsCounts> {
        self.other_rs.iter().filter_map(|n| self.counts(Some(n))).collect()
    }

    pub fn stable_is_new(&self) -> bool {
        self.stable_rs.is_some() && self.stable_rs == self.new_rs
    }

    pub fn replicas(&self) -> i32 {
        self.ro.spec.replicas()
    }

    pub fn name(&self) -> &str {
        self.ro.metadata.name.as_deref().unwrap_or("")
    }

    /// `status.stableRS == status.currentPodHash` (Argo's `IsFullyPromoted`).
    pub fn is_fully_promoted(&self) -> bool {
        self.ro.status.stable_rs == self.ro.status.current_pod_hash
    }

    /// Why progress is halted: a user pause or an inconclusive analysis.
    pub fn halt_progress(&self) -> bool {
        self.ro.spec.paused
            || self
                .ro
                .status
                .pause_conditions
                .iter()
                .any(|c| c.reason == crate::api::PauseReason::InconclusiveAnalysisRun)
    }

    /// The rollout's revision annotation as a number.
    pub fn rollout_revision(&self) -> i64 {
        self.ro
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::REVISION))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }

    pub fn event(&mut self, reason: &str, message: String) {
        self.actions.push(Action::RecordEvent { kind: EventType::Normal, reason: reason.to_string(), message });
    }

    pub fn warning(&mut self, reason: &str, message: String) {
        self.actions.push(Action::RecordEvent { kind: EventType::Warning, reason: reason.to_string(), message });
    }

    /// Asks to be woken at `at` (the earliest request wins).
    pub fn wake_at(&mut self, at: Timestamp, reason: WakeReason) {
        if at <= self.now {
            return;
        }
        match self.wake {
            Some((t, _)) if t <= at => {}
            _ => self.wake = Some((at, reason)),
        }
    }

    /// Applies and emits a ReplicaSet patch.
    ///
    /// A patch that changes the spec bumps the working copy's `metadata.generation`, as
    /// the API server will: watch events sent before the write carry a lower generation
    /// and then cannot undo it (see `observe_replica_set`).
    pub fn patch_rs(&mut self, name: &str, patch: ReplicaSetPatch) {
        if let Some(rs) = self.state.replica_sets.get_mut(name) {
            let rs = std::sync::Arc::make_mut(rs);
            if apply_rs_patch(rs, &patch) {
                if let Some(g) = rs.metadata.generation.as_mut() {
                    *g = g.saturating_add(1);
                }
            }
        }
        self.actions.push(Action::PatchReplicaSet { name: name.to_string(), patch });
    }

    /// Argo's `scaleReplicaSetAndRecordEvent`: sets `spec.replicas` and the
    /// `desired-replicas` annotation; returns whether the size changed.
    pub fn scale_rs(&mut self, name: &str, new_scale: i32) -> bool {
        let replicas = self.replicas();
        let Some(rs) = self.rs(name) else { return false };
        let old = rs.spec_replicas();
        let desired = replicas.to_string();
        let annotation_ok = rs.annotation(keys::DESIRED_REPLICAS) == Some(desired.as_str());
        if old == new_scale && annotation_ok {
            return false;
        }
        let revision = rs.revision().unwrap_or(0);
        let has_deadline = rs.has_scale_down_deadline();
        let mut patch = ReplicaSetPatch { replicas: Some(new_scale), ..Default::default() };
        if !annotation_ok {
            patch.annotations.insert(keys::DESIRED_REPLICAS.to_string(), Some(desired));
        }
        if new_scale == 0 && has_deadline && !self.should_delay_scale_down_on_abort() {
            patch.annotations.insert(keys::SCALE_DOWN_DEADLINE.to_string(), None);
        }
        self.patch_rs(name, patch);
        if old != new_scale {
            let direction = if old < new_scale { "up" } else { "down" };
            self.event(
                "ScalingReplicaSet",
                format!("Scaled {direction} ReplicaSet {name} (revision {revision}) from {old} to {new_scale}"),
            );
            true
        } else {
            false
        }
    }

    /// Adds `scale-down-deadline = now + delay`; a zero delay removes the annotation.
    pub fn add_scale_down_delay(&mut self, name: &str, delay: Seconds) {
        if delay.0 == 0 {
            self.remove_scale_down_delay(name);
            return;
        }
        let deadline = self.now.plus(delay);
        let mut patch = ReplicaSetPatch::default();
        patch.annotations.insert(keys::SCALE_DOWN_DEADLINE.to_string(), Some(deadline.to_rfc3339()));
        self.patch_rs(name, patch);
        self.wake_at(deadline, WakeReason::ScaleDownDeadline);
    }

    pub fn remove_scale_down_delay(&mut self, name: &str) {
        if !self.rs(name).is_some_and(|rs| rs.has_scale_down_deadline()) {
            return;
        }
        let mut patch = ReplicaSetPatch::default();
        patch.annotations.insert(keys::SCALE_DOWN_DEADLINE.to_string(), None);
        self.patch_rs(name, patch);
    }

    /// The parsed `scale-down-deadline` of a ReplicaSet.
    pub fn scale_down_deadline(&self, name: &str) -> Option<Timestamp> {
        self.rs(name)?.annotation(keys::SCALE_DOWN_DEADLINE).and_then(Timestamp::parse_rfc3339)
    }

    /// Argo's `shouldDelayScaleDownOnAbort`.
    pub fn should_delay_scale_down_on_abort(&self) -> bool {
        if !self.pause.is_aborted(&self.ro.status) || self.stable_rs.is_none() {
            return false;
        }
        if let Some(c) = self.ro.spec.canary() {
            if c.traffic_routing.is_none() {
                return false;
            }
        }
        let (delay, explicitly_set) = self.abort_scale_down_delay();
        if delay.is_none() {
            return false;
        }
        let dynamic = self.ro.spec.canary().is_some_and(|c| c.dynamic_stable_scale);
        !dynamic || explicitly_set
    }

    /// `abortScaleDownDelaySeconds` (None when 0: never scale down) and whether it was set.
    pub fn abort_scale_down_delay(&self) -> (Option<Seconds>, bool) {
        let set = self
            .ro
            .spec
            .blue_green()
            .and_then(|b| b.abort_scale_down_delay_seconds)
            .or_else(|| self.ro.spec.canary().and_then(|c| c.abort_scale_down_delay_seconds));
        let secs = set.unwrap_or(crate::api::defaults::ABORT_SCALE_DOWN_DELAY_SECONDS);
        (if secs == 0 { None } else { Some(Seconds(i64::from(secs))) }, set.is_some())
    }

    /// Argo's `reconcileNewReplicaSet`: scales the new ReplicaSet to `count`, except that
    /// after an abort it is kept until its scale-down deadline (added once the stable can
    /// take all the traffic again); whether it scaled.
    pub fn reconcile_new_replica_set(&mut self, new: &str, mut count: i32) -> bool {
        if self.should_delay_scale_down_on_abort() {
            let (delay, _) = self.abort_scale_down_delay();
            match self.scale_down_deadline(new) {
                Some(deadline) if deadline > self.now => {
                    self.wake_at(deadline, WakeReason::ScaleDownDeadline);
                    return false;
                }
                Some(_) => count = 0,
                None => {
                    if let Some(delay) = delay {
                        // Annotate only once the stable can take all the traffic again.
                        let stable_ready = self.stable_rs().is_some_and(|s| s.available() >= self.replicas());
                        if stable_ready {
                            self.add_scale_down_delay(new, delay);
                        }
                    }
                    return false;
                }
            }
        }
        let old_scale = self.rs(new).map_or(0, |rs| rs.spec_replicas());
        let scaled = self.scale_rs(new, count);
        self.scale_down_workload_progressively(new, old_scale, count);
        scaled
    }

    /// `workloadRef.scaleDown: progressively`, while the first revision takes over from the
    /// Deployment: the Deployment keeps what the rollout does not serve yet
    /// (`spec.replicas − status.readyReplicas`), 0 once the rollout is Healthy. Argo's
    /// `reconcileNewReplicaSet`, which reads the status of the previous reconcile.
    fn scale_down_workload_progressively(&mut self, new: &str, old_scale: i32, count: i32) {
        if self.ro.spec.workload_ref.as_ref().is_none_or(|w| w.scale_down != "progressively") {
            return;
        }
        if self.rs(new).and_then(|rs| rs.revision()) != Some(1) {
            return;
        }
        if self.ro.status.phase == Some(crate::api::RolloutPhase::Healthy) {
            self.scale_deployment(0);
        } else if let Some(replicas) = self.ro.spec.replicas {
            let ready = self.ro.status.ready_replicas;
            if ready > 0 || old_scale > count {
                self.scale_deployment(replicas - ready);
            }
        }
    }

    /// Scales the Deployment the `workloadRef` names to `replicas` (never below 0), unless it
    /// already has that many.
    pub fn scale_deployment(&mut self, replicas: i32) {
        let replicas = replicas.max(0);
        let Some((name, current)) = super::workload::deployment_replicas(self.state, &self.ro) else { return };
        if current == replicas {
            return;
        }
        if let Some(d) = self.state.workloads.get_mut(&super::workload::workload_key("Deployment", &name)) {
            if let Some(spec) = d.get_mut("spec").and_then(serde_json::Value::as_object_mut) {
                spec.insert("replicas".into(), serde_json::json!(replicas));
            }
        }
        self.actions.push(Action::ScaleDeployment { name, replicas });
    }

    /// The scale-down delay (blue-green `scaleDownDelaySeconds`, default 30, or the
    /// traffic-routed canary's): the size an old ReplicaSet keeps now (`keep` until its
    /// deadline, then 0), adding its deadline when it has none. `annotated` counts the
    /// ReplicaSets waiting so far, newest first, against `scaleDownDelayRevisionLimit`.
    /// Argo's `scaleDownDelayHelper`.
    pub fn scale_down_delay_helper(&mut self, name: &str, annotated: &mut i32, keep: i32) -> i32 {
        let Some(rs) = self.rs(name) else { return 0 };
        let (spec, has_deadline) = (rs.spec_replicas(), rs.has_scale_down_deadline());
        let limit = self.scale_down_revision_limit();
        let delay = Seconds(i64::from(self.scale_down_delay_seconds()));
        if !has_deadline && spec > 0 {
            // Divergence from Argo (upstream issue #1992): there, a delay of 0 leaves the old
            // ReplicaSet up forever; here it is scaled down at once.
            if *annotated < limit && delay.0 > 0 {
                *annotated += 1;
                self.add_scale_down_delay(name, delay);
                return spec;
            }
            return 0;
        }
        if has_deadline {
            *annotated += 1;
            if *annotated <= limit {
                if let Some(deadline) = self.scale_down_deadline(name).filter(|d| *d > self.now) {
                    self.wake_at(deadline, WakeReason::ScaleDownDeadline);
                    return keep;
                }
            }
        }
        0
    }

    /// `scaleDownDelaySeconds`: blue-green's (default 30), or a traffic-routed canary's
    /// (default 30); 0 for a basic canary.
    pub fn scale_down_delay_seconds(&self) -> i32 {
        if let Some(bg) = self.ro.spec.blue_green() {
            return bg.scale_down_delay_seconds();
        }
        match self.ro.spec.canary() {
            Some(c) if c.traffic_routing.is_some() => {
                c.scale_down_delay_seconds.unwrap_or(crate::api::defaults::SCALE_DOWN_DELAY_SECONDS)
            }
            _ => 0,
        }
    }

    /// `scaleDownDelayRevisionLimit` (unlimited by default).
    pub fn scale_down_revision_limit(&self) -> i32 {
        self.ro
            .spec
            .blue_green()
            .and_then(|b| b.scale_down_delay_revision_limit)
            .or_else(|| self.ro.spec.canary().and_then(|c| c.scale_down_delay_revision_limit))
            .unwrap_or(i32::MAX)
    }

    /// Emits the wake-up, if any, and returns the actions.
    pub fn finish(mut self) -> Vec<Action> {
        if let Some((at, reason)) = self.wake.take() {
            self.actions.push(Action::WakeAt { at, reason });
        }
        self.state.rollout = Some(self.ro);
        self.actions
    }

    /// Applies a merge patch to the Rollout's metadata annotations and emits it.
    pub fn set_rollout_revision(&mut self, revision: &str) {
        let current = self.ro.metadata.annotations.as_ref().and_then(|a| a.get(keys::REVISION)).cloned();
        if current.as_deref() == Some(revision) {
            return;
        }
        self.ro
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(keys::REVISION.to_string(), revision.to_string());
        self.actions.push(Action::PatchRollout {
            patch: serde_json::json!({"metadata": {"annotations": {keys::REVISION: revision}}}),
        });
        self.event("RolloutUpdated", format!("Rollout updated to revision {revision}"));
    }

    /// Dispatches to the strategy.
    pub fn run(&mut self) {
        if self.check_paused_conditions() {
            return;
        }
        if self.is_scaling_event() {
            self.sync_replicas_only();
            return;
        }
        if self.ro.spec.blue_green().is_some() {
            self.rollout_blue_green();
        } else {
            self.rollout_canary();
        }
    }

    /// Argo's `isScalingEvent`: the active new or stable ReplicaSet was last scaled for
    /// another `spec.replicas`. (Other ReplicaSets are not looked at: an intermediate one
    /// still referenced by the status could otherwise hold the rollout in this mode.)
    fn is_scaling_event(&mut self) -> bool {
        self.sync_replica_set_revision();
        let replicas = self.replicas().to_string();
        [self.new_rs(), self.stable_rs()].into_iter().flatten().filter(|rs| rs.spec_replicas() > 0).any(|rs| {
            rs.annotation(keys::DESIRED_REPLICAS).is_some_and(|d| d.parse::<i32>().is_ok() && d != replicas)
        })
    }

    /// Argo's `syncReplicasOnly`.
    fn sync_replicas_only(&mut self) {
        let mut new_status = self.ro.status.clone();
        if self.ro.spec.blue_green().is_some() {
            self.reconcile_blue_green_replica_sets();
            let active = new_status.blue_green.active_selector.clone();
            match self.all_rs().find(|rs| !active.is_empty() && rs.pod_hash() == active) {
                Some(rs) => {
                    new_status.hpa_replicas = rs.status_replicas();
                    new_status.available_replicas = rs.available();
                }
                None => {
                    new_status.hpa_replicas = total_replicas(self.all_rs().map(|r| r.status_replicas()));
                    new_status.available_replicas = total_replicas(self.all_rs().map(|r| r.available()));
                }
            }
        } else {
            self.reconcile_canary_replica_sets();
            // A timed pause keeps its wake-up while the rollout is being scaled.
            self.pause_step_wake();
            new_status.available_replicas = total_replicas(self.all_rs().map(|r| r.available()));
            new_status.hpa_replicas = total_replicas(self.all_rs().map(|r| r.status_replicas()));
        }
        self.persist_status(new_status);
    }
}

/// Applies a patch to the working copy of a ReplicaSet; whether its spec changed (and so
/// its generation, which the caller bumps).
pub(crate) fn apply_rs_patch(rs: &mut ReplicaSet, patch: &ReplicaSetPatch) -> bool {
    fn set(field: &mut Option<i32>, value: i32) -> bool {
        let changed = *field != Some(value);
        *field = Some(value);
        changed
    }
    let mut spec_changed = false;
    if let Some(r) = patch.replicas {
        spec_changed |= set(&mut rs.spec.get_or_insert_with(Default::default).replicas, r);
    }
    if let Some(m) = patch.min_ready_seconds {
        spec_changed |= set(&mut rs.spec.get_or_insert_with(Default::default).min_ready_seconds, m);
    }
    if let Some(aff) = &patch.affinity {
        let spec = rs.spec.get_or_insert_with(Default::default);
        let template = spec.template.get_or_insert_with(Default::default);
        let pod = template.spec.get_or_insert_with(Default::default);
        if pod.affinity.as_ref() != aff.as_deref() {
            pod.affinity = aff.as_deref().cloned();
            spec_changed = true;
        }
    }
    if !patch.template_metadata.is_empty() {
        let spec = rs.spec.get_or_insert_with(Default::default);
        let meta = spec.template.get_or_insert_with(Default::default).metadata.get_or_insert_with(Default::default);
        spec_changed |= patch.template_metadata.apply(&mut meta.labels, &mut meta.annotations);
    }
    if !patch.annotations.is_empty() {
        let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &patch.annotations {
            match v {
                Some(v) => {
                    ann.insert(k.clone(), v.clone());
                }
                None => {
                    ann.remove(k);
                }
            }
        }
    }
    spec_changed
}
