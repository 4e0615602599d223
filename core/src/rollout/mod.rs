//! The rollout machine: `step(state, event, now) -> (state, actions)`.
//!
//! One call of [`step`] is one reconcile of one Rollout, in the order Argo Rollouts'
//! controller reconciles (validation, pause conditions, scaling events, then the
//! strategy). A reconcile makes at most one scaling move for a canary; the shell (or the
//! simulator) executes the actions, and the watch events they cause bring the next
//! reconcile.

mod analysis;
mod bluegreen;
mod canary;
mod context;
mod ephemeral;
mod experiment;
mod pause;
pub mod phase;
mod references;
mod replicasets;
mod restart;
pub(crate) mod runs;
pub use analysis::RunError;
pub use experiment::ExperimentStepError;
pub use runs::JOB_RUN_UID;
pub use traffic::STABLE_SERVICE_SETTLE;
mod services;
mod status;
mod traffic;
pub mod workload;
pub mod validation;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use crate::api::parse::from_value_strict;
use crate::api::{
    AnalysisRun, AnalysisTemplate, ConditionReason, ConditionStatus, ConditionType, Rollout,
    RolloutSpec, RolloutStatus, SpecError,
};
use crate::state::{Action, Event, EventType, Object, ObjectKind, State};
use crate::time::Timestamp;
use context::Ctx;

pub use references::{references, References, RouteRef};
pub use replicasets::templates_equal;
pub use ephemeral::{configures_ephemeral_metadata, template_without_injected};
pub(crate) use context::apply_rs_patch;

/// Advances one rollout: applies `event` to `state`, reconciles, and returns the new state
/// with the actions the shell must execute, in order.
///
/// `step` is total and deterministic: it never panics, never reads a clock (`now` is the
/// caller's), and the same inputs give the same outputs.
#[must_use]
pub fn step(mut state: State, event: Event, now: Timestamp) -> (State, Vec<Action>) {
    let actions = step_batch(&mut state, [event], now);
    (state, actions)
}

/// Observes a batch of events that arrived together, then reconciles once (rule 5 of the
/// run-loop contract): what the controller's workers, `rollouts replay`, the simulator and
/// the property-test driver all do with what their watches delivered.
///
/// The batch writes the Rollout's status once at most: every status patch it decides is
/// composed into one, placed where the last of them was (see
/// [`status::coalesce_status_patches`]).
///
/// A batch holding nothing but [`Event::ActionFailed`] is not reconciled: the shell re-reads
/// the objects of the failed action, and reconciling before those arrive would retry
/// blindly from the optimistic copies. An empty batch does nothing.
pub fn step_batch(state: &mut State, events: impl IntoIterator<Item = Event>, now: Timestamp) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut reconcile_after = false;
    for event in events {
        reconcile_after |= !matches!(event, Event::ActionFailed { .. });
        apply_event(state, event, now, &mut actions);
    }
    if reconcile_after {
        actions.extend(reconcile_settled(state, now));
    }
    status::coalesce_status_patches(actions)
}

/// Reconciles of one batch at most (see [`reconcile_settled`]). Like Argo's, a reconcile
/// often does one thing and persists it: a step completes, *then* the next reconcile enters
/// the pause that follows, *then* the next one sets that pause's conditions (three in a row
/// on every canary step). Each waited for the watch to deliver the previous status write
/// and cost a write of its own.
const MAX_SETTLING_ROUNDS: usize = 4;

/// [`reconcile`], again on its own result while a round decided nothing but the Rollout's
/// status (and its events): what the reconciles triggered by the echoes of those status
/// writes would decide, decided now, and written once (see
/// [`status::coalesce_status_patches`]). A round that changes anything else ends it: the
/// next round waits for that change to be observed, as before. Only the last round's
/// wake-up is kept: it is the one computed from the state that is left.
fn reconcile_settled(state: &mut State, now: Timestamp) -> Vec<Action> {
    let mut actions = Vec::new();
    for _ in 0..MAX_SETTLING_ROUNDS {
        let round = reconcile(state, now);
        let status_only = round.iter().any(|a| matches!(a, Action::PatchRolloutStatus { .. }))
            && round.iter().all(|a| matches!(a, Action::PatchRolloutStatus { .. } | Action::RecordEvent { .. } | Action::WakeAt { .. }));
        actions.retain(|a| !matches!(a, Action::WakeAt { .. }));
        actions.extend(round);
        if !status_only {
            break;
        }
    }
    actions
}

/// Applies an event to the state without reconciling, returning the actions the event
/// itself calls for (a measurement answer's status patch, a failed create's condition).
///
/// A shell that receives several watch events for one rollout at once may `observe` them
/// all and [`reconcile`] once, like a work queue coalescing keys: the reconcile then sees
/// the newest version of every object, never an intermediate one. The result is the same
/// as stepping the last of them, minus the intermediate reconciles.
#[must_use]
pub fn observe(state: &mut State, event: Event, now: Timestamp) -> Vec<Action> {
    let mut actions = Vec::new();
    apply_event(state, event, now, &mut actions);
    actions
}

fn apply_event(state: &mut State, event: Event, now: Timestamp, actions: &mut Vec<Action>) {
    match event {
        Event::Applied(Object::Rollout(value)) => {
            if !observe_status_only(state, &value) {
                let (rollout, error) = decode_rollout(&value);
                state.digests.decoded_generation = if error.is_none() { rollout.metadata.generation } else { None };
                state.rollout = Some(rollout);
                state.spec_error = error;
            }
        }
        Event::Applied(Object::ReplicaSet(rs)) => observe_replica_set(state, rs),
        Event::Applied(Object::Service(svc)) => {
            if let Some(name) = svc.metadata.name.clone() {
                state.services.insert(name, svc);
            }
        }
        Event::Applied(Object::Pod(pod)) => {
            if let Some(name) = pod.metadata.name.clone() {
                state.pods.insert(name, pod);
            }
        }
        Event::Applied(Object::AnalysisRun(value)) => {
            // A run this version cannot decode is left out: the rollout then creates its own.
            if let Ok(run) = from_value_strict::<AnalysisRun>(&value) {
                if let Some(name) = run.metadata.name.clone() {
                    state.analysis_runs.insert(name, run);
                }
            }
        }
        Event::Applied(Object::Experiment(value)) => {
            // An Experiment this version cannot decode is left out.
            if let Ok(ex) = from_value_strict::<crate::api::Experiment>(&value) {
                if let Some(name) = ex.metadata.name.clone() {
                    state.experiments.insert(name, ex);
                }
            }
        }
        Event::Applied(Object::AnalysisTemplate(value)) => {
            if let Some(name) = object_name(&value) {
                state.analysis_templates.insert(name, from_value_strict::<AnalysisTemplate>(&value));
            }
        }
        Event::Applied(Object::ClusterAnalysisTemplate(value)) => {
            if let Some(name) = object_name(&value) {
                state.cluster_analysis_templates.insert(name, from_value_strict::<AnalysisTemplate>(&value));
            }
        }
        Event::Applied(Object::Job(job)) => {
            if let Some(name) = job.metadata.name.clone() {
                state.jobs.insert(name, *job);
            }
        }
        Event::Applied(Object::Ingress(ingress)) => {
            if let Some(name) = ingress.metadata.name.clone() {
                state.ingresses.insert(name, *ingress);
            }
        }
        Event::Applied(Object::Workload(value)) => {
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(name) = object_name(&value) {
                state.workloads.insert(workload::workload_key(&kind, &name), value);
            }
        }
        Event::Applied(Object::Route(value)) => {
            let kind = crate::api::RouteKind::of_object(&value);
            if let (Some(kind), Some(name)) = (kind, object_name(&value)) {
                state.routes.insert(crate::state::route_key(kind, &name), value);
            }
        }
        Event::Measured { run, metric, index, answer } => {
            let updated = state
                .analysis_runs
                .get(&run)
                .and_then(|r| crate::analysis::run::record_answer(r, &metric, index, &answer, now).map(|s| (r.status.clone(), s)));
            if let Some((old, new)) = updated {
                actions.extend(runs::status_patch(&run, &old, &new));
                if let Some(r) = state.analysis_runs.get_mut(&run) {
                    r.status = new;
                }
            }
        }
        Event::Deleted { kind, name } => match kind {
            ObjectKind::Rollout => {
                state.rollout = None;
                state.spec_error = None;
            }
            ObjectKind::ReplicaSet => {
                state.workloads.remove(&workload::workload_key("ReplicaSet", &name));
                state.replica_sets.remove(&name);
            }
            ObjectKind::Deployment => {
                state.workloads.remove(&workload::workload_key("Deployment", &name));
            }
            ObjectKind::PodTemplate => {
                state.workloads.remove(&workload::workload_key("PodTemplate", &name));
            }
            ObjectKind::Service => {
                state.services.remove(&name);
            }
            ObjectKind::Pod => {
                state.pods.remove(&name);
            }
            ObjectKind::AnalysisRun => {
                state.analysis_runs.remove(&name);
            }
            ObjectKind::AnalysisTemplate => {
                state.analysis_templates.remove(&name);
            }
            ObjectKind::Experiment => {
                state.experiments.remove(&name);
            }
            ObjectKind::ClusterAnalysisTemplate => {
                state.cluster_analysis_templates.remove(&name);
            }
            ObjectKind::Job => {
                state.jobs.remove(&name);
            }
            ObjectKind::Ingress => {
                state.ingresses.remove(&name);
            }
            ObjectKind::HttpRoute
            | ObjectKind::GrpcRoute
            | ObjectKind::TcpRoute
            | ObjectKind::VirtualService
            | ObjectKind::DestinationRule
            | ObjectKind::TrafficSplit
            | ObjectKind::TraefikService
            | ObjectKind::Mapping
            | ObjectKind::ApisixRoute
            | ObjectKind::AppMeshVirtualService
            | ObjectKind::VirtualRouter
            | ObjectKind::VirtualNode => {
                if let Some(kind) = kind.route_kind() {
                    state.routes.remove(&crate::state::route_key(kind, &name));
                }
            }
        },
        Event::Tick => {}
        Event::Resync => actions.extend(resume_measurements(state)),
        Event::ActionFailed { action, error } => {
            // The shell re-lists the object; `step` does not reconcile before that, which
            // would retry blindly.
            actions.extend(action_failed(state, &action, &error, now));
        }
    }
}

/// Records an observed ReplicaSet.
///
/// A watch event can be older than a write the core has already made: the shell may
/// deliver the events of a batch one `step` each, every event carrying the object as it
/// was when it changed, while the working copy already holds the controller's later
/// patch. Taking such an event whole would undo the patch in the state, and the next
/// decision would be taken from a spec that no longer exists (scaling a ReplicaSet back
/// up, or growing another one into surge the cluster does not have). Argo is protected
/// from this by `Update`, whose resourceVersion precondition refuses a write computed from
/// a stale copy; our patches carry no precondition, so stale observations are recognised
/// instead: the API server bumps `metadata.generation` on every spec change and so does
/// `Ctx::patch_rs` on the working copy, hence an observation of the same object (same
/// uid, when both are known) with a *lower* generation predates our write. Its status is
/// still the newest one seen (watch events arrive in order) and is taken; its spec and
/// metadata are not. Observations without a generation are always taken whole.
fn observe_replica_set(state: &mut State, observed: std::sync::Arc<ReplicaSet>) {
    let Some(name) = observed.metadata.name.clone() else { return };
    let stale = state.replica_sets.get(&name).is_some_and(|held| {
        let same_object = match (&held.metadata.uid, &observed.metadata.uid) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let older = match (held.metadata.generation, observed.metadata.generation) {
            (Some(held), Some(seen)) => seen < held,
            _ => false,
        };
        same_object && older
    });
    if !stale {
        state.replica_sets.insert(name, observed);
        return;
    }
    if let Some(held) = state.replica_sets.get_mut(&name).map(std::sync::Arc::make_mut) {
        held.status.clone_from(&observed.status);
        if held.metadata.uid.is_none() {
            held.metadata.uid.clone_from(&observed.metadata.uid);
        }
        if observed.metadata.deletion_timestamp.is_some() {
            held.metadata.deletion_timestamp.clone_from(&observed.metadata.deletion_timestamp);
        }
    }
}

/// After a failed action the shell re-reads the objects of the failed and of the skipped
/// actions, which were applied to the working copies but never happened: every generation
/// ahead of its ReplicaSet's `status.observedGeneration` (the ones the core bumped itself,
/// and at worst a real one the next observation restores) is taken back, so that those
/// re-reads replace the copies (see [`observe_replica_set`]).
fn forget_own_generations(state: &mut State) {
    for rs in state.replica_sets.values_mut() {
        let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
        if rs.metadata.generation > observed {
            std::sync::Arc::make_mut(rs).metadata.generation = observed;
        }
    }
}

/// The measurements in flight when the previous controller stopped: their answers went with
/// it, so they are asked for again (Job metrics excepted: their Jobs carry on by themselves
/// and are watched).
fn resume_measurements(state: &State) -> Vec<Action> {
    let mut out = runs::awaited_jobs(state);
    for run in state.analysis_runs.values() {
        for req in crate::analysis::run::in_flight_requests(run).into_iter().filter(|r| r.provider.job.is_none()) {
            out.push(Action::Measure {
                run: run.metadata.name.clone().unwrap_or_default(),
                metric: req.metric,
                index: req.index,
                provider: Box::new(req.provider),
                secrets: req.secrets,
                context: req.context,
            });
        }
    }
    out
}

fn object_name(value: &Value) -> Option<String> {
    value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).map(str::to_string)
}

/// A Rollout whose `metadata.generation` is the one already decoded has the same spec
/// (the API server bumps the generation with every spec change): only its metadata and
/// status are decoded, so observing a status write costs the same whatever the number of
/// steps. Returns false (decode it all) when that does not apply (see
/// `SpecDigests::decoded_generation`).
fn observe_status_only(state: &mut State, value: &Value) -> bool {
    let Some(ro) = state.rollout.as_mut() else { return false };
    let generation = value.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64);
    if state.spec_error.is_some() || generation.is_none() || state.digests.decoded_generation != generation {
        return false;
    }
    let Some((metadata, status)) = metadata_and_status(value) else { return false };
    ro.metadata = metadata;
    ro.status = status;
    true
}

/// The metadata and status of a Rollout manifest whose spec is already known; `None` when
/// either does not decode (then the whole manifest is decoded, for the error). Metadata is
/// read as the API server writes it (its schema is fixed, unknown fields pruned), the
/// status leniently, as in a whole Rollout (see `from_value_strict`).
pub(crate) fn metadata_and_status(value: &Value) -> Option<(ObjectMeta, RolloutStatus)> {
    let metadata = ObjectMeta::deserialize(value.get("metadata")?).ok()?;
    let status = match value.get("status") {
        None => RolloutStatus::default(),
        Some(s) => RolloutStatus::deserialize(s).ok()?,
    };
    Some((metadata, status))
}

/// Decodes a Rollout strictly; on failure keeps its metadata and status so the error can
/// be reported in a condition.
pub fn decode_rollout(value: &Value) -> (Rollout, Option<SpecError>) {
    match from_value_strict::<Rollout>(value) {
        Ok(r) => (r, None),
        Err(e) => {
            let metadata = value
                .get("metadata")
                .and_then(|m| serde_json::from_value(m.clone()).ok())
                .unwrap_or_default();
            let status = value
                .get("status")
                .and_then(|s| serde_json::from_value::<RolloutStatus>(s.clone()).ok())
                .unwrap_or_default();
            let rollout = Rollout {
                api_version: crate::api::API_VERSION.to_string(),
                kind: "Rollout".to_string(),
                metadata,
                spec: RolloutSpec::default(),
                status,
            };
            (rollout, Some(e))
        }
    }
}

fn action_failed(state: &mut State, action: &Action, error: &str, now: Timestamp) -> Vec<Action> {
    forget_own_generations(state);
    // The Rollout's spec may hold an optimistic write that never happened (a defaulted
    // `spec.replicas`): its re-read must be decoded whole, not taken as the same generation.
    state.digests.decoded_generation = None;
    let mut out = Vec::new();
    // A run's status says a job measurement runs (that write goes first) but its Job may
    // never have been created: nothing else would create it.
    out.extend(runs::awaited_jobs(state));
    if let Action::CreateReplicaSet { replica_set } = action {
        let name = replica_set.metadata.name.clone().unwrap_or_default();
        // The optimistic copy never existed.
        state.replica_sets.remove(&name);
        let msg = format!("Failed to create new replica set {name:?}: {error}");
        out.push(Action::RecordEvent {
            kind: EventType::Warning,
            reason: ConditionReason::ReplicaSetCreateError.as_str().into(),
            message: msg.clone(),
        });
        if let Some(ro) = state.rollout.as_mut() {
            let old = ro.status.clone();
            let mut new = old.clone();
            status::set_condition(
                &mut new,
                status::condition(
                    ConditionType::Progressing,
                    ConditionStatus::False,
                    ConditionReason::ReplicaSetCreateError,
                    &msg,
                    now,
                ),
            );
            let (phase, message) = phase::calculate_phase(&ro.spec, &new);
            new.phase = Some(phase);
            new.message = message;
            if let Some(a) = status::status_patch(&old, &new) {
                out.push(a);
                ro.status = new;
            }
        }
    }
    out
}

/// One reconcile (see [`observe`]): the rollout's AnalysisRuns advance first (in Argo a separate
/// controller does that), then the rollout itself; one wake-up for both.
#[must_use]
pub fn reconcile(state: &mut State, now: Timestamp) -> Vec<Action> {
    let (mut actions, run_wake) = runs::advance_runs(state, now);
    let mut wake = run_wake.map(|at| (at, crate::state::WakeReason::Analysis));
    for a in reconcile_rollout(state, now) {
        // One wake-up for the runs and the rollout: the earliest; everything else in order.
        if let Action::WakeAt { at, reason } = a {
            if wake.is_none_or(|(w, _)| at < w) {
                wake = Some((at, reason));
            }
        } else {
            actions.push(a);
        }
    }
    if let Some((at, reason)) = wake {
        actions.push(Action::WakeAt { at, reason });
    }
    actions
}

/// One reconcile of the rollout in `state`, its `workloadRef` resolved for the reconcile.
fn reconcile_rollout(state: &mut State, now: Timestamp) -> Vec<Action> {
    if state.rollout.as_ref().is_none_or(|ro| ro.spec.workload_ref.is_none() || state.spec_error.is_some()) {
        return reconcile_resolved(state, now);
    }
    let borrowed = match workload::resolve(state) {
        Ok(b) => b,
        Err(message) => {
            let Some(ro) = state.rollout.clone() else { return Vec::new() };
            return status::invalid_spec(state, &ro, &message, now);
        }
    };
    let mut actions = Vec::new();
    if let Some(generation) = state.rollout.as_ref().and_then(|ro| workload::new_generation(state, ro)) {
        // Argo's resolver writes the referent's generation on the Rollout; the status's
        // `workloadObservedGeneration` follows it.
        let patch = serde_json::json!({"metadata": {"annotations": {workload::WORKLOAD_GENERATION: generation}}});
        if let Some(ro) = state.rollout.as_mut() {
            ro.metadata.annotations.get_or_insert_with(Default::default).insert(workload::WORKLOAD_GENERATION.to_string(), generation);
        }
        actions.push(Action::PatchRollout { patch });
    }
    actions.extend(reconcile_resolved(state, now));
    workload::restore(state, borrowed);
    actions
}

fn reconcile_resolved(state: &mut State, now: Timestamp) -> Vec<Action> {
    let Some(ro) = state.rollout.as_ref() else {
        return Vec::new();
    };
    if ro.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    if let Some(err) = &state.spec_error {
        let (ro, msg) = (ro.clone(), err.to_string());
        return status::invalid_spec(state, &ro, &msg, now);
    }
    if ro.spec.replicas.is_none() {
        // HPA needs spec.replicas; Argo writes the default into the spec.
        if let Some(r) = state.rollout.as_mut() {
            r.spec.replicas = Some(crate::api::defaults::REPLICAS);
        }
        return vec![Action::PatchRollout {
            patch: serde_json::json!({"spec": {"replicas": crate::api::defaults::REPLICAS}}),
        }];
    }
    // A `workloadRef`'s template changes with the referent, not with the Rollout's
    // generation: its resolved spec is compared whole.
    let generation = if ro.spec.workload_ref.is_some() { None } else { ro.metadata.generation };
    let digest = state.digests.of(&ro.spec, generation, ro.status.collision_count);
    let hashes = digest.hashes.clone();
    let valid = digest
        .validation
        .clone()
        .and_then(|()| validation::validate_references(ro, state));
    if let Err(e) = valid {
        let ro = ro.clone();
        return status::invalid_spec(state, &ro, &e.to_string(), now);
    }
    // The reconcile works on the rollout itself, not a copy: `Ctx::finish` puts it back.
    let Some(ro) = state.rollout.take() else {
        return Vec::new();
    };
    let mut ctx = Ctx::new(state, ro, hashes, now);
    ctx.run();
    ctx.finish()
}

/// A fresh controller fed `objects`, the Rollout last, all at `now`, as after a restart: the
/// state it ends with and every action it took (for the tests of this module).
#[cfg(test)]
pub(crate) fn restarted(
    objects: &[crate::state::Object],
    now: crate::Timestamp,
) -> (crate::state::State, Vec<crate::state::Action>) {
    use crate::state::{Event, Object, State};
    let (rollouts, rest): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| matches!(o, Object::Rollout(_)));
    let mut state = State::default();
    let mut actions = Vec::new();
    for o in rest.into_iter().chain(rollouts) {
        let (s, a) = crate::step(state, Event::Applied(o.clone()), now);
        state = s;
        actions.extend(a);
    }
    (state, actions)
}
