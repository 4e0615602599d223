//! Watch events older than the controller's own writes, and counts no cluster reports.
//!
//! A shell may step once per watch event, each event carrying the object as it was when
//! it changed; such an event can predate a ReplicaSet patch the core already made. It must
//! not undo that patch in the state, or the next decision starts from a spec that no
//! longer exists (the canary surge property found a second update over a paused one
//! going 1 pod above `replicas + maxSurge` that way).

mod common;

use std::sync::Arc;
use k8s_openapi::api::apps::v1::ReplicaSet;
use rollouts_core::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use rollouts_core::time::Seconds;
use rollouts_core::{observe, step, Action, Event, Object, State, Timestamp};
use serde_json::Value;

/// Paused at 50 % with 4 replicas: canary 2, stable 2 (maxSurge 1, maxUnavailable 1).
const PAUSED_AT_HALF: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: web}
    spec:
      replicas: 4
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: web, image: "web:1"}]}
      strategy:
        canary:
          steps: [{setWeight: 50}, {pause: {}}]
events:
  - {at: 1m, setImage: {rollout: web, container: web, image: "web:2"}}
until: 2m
"#;

/// A controller that has seen every object of the paused rollout, the rollout last;
/// the objects, and the time.
fn paused_controller() -> (State, Vec<Object>, Timestamp) {
    let sim = simulate(&parse_scenario(PAUSED_AT_HALF).unwrap()).unwrap();
    let now = SIMULATION_EPOCH.plus(Seconds(sim.outcome.t));
    let objects = sim.final_objects["web"].clone();
    let state = common::restart_controller(&objects, now).0;
    (state, objects, now)
}

fn rollout(objects: &[Object]) -> Value {
    objects
        .iter()
        .find_map(|o| match o {
            Object::Rollout(v) => Some((**v).clone()),
            _ => None,
        })
        .unwrap()
}

fn replica_set(objects: &[Object], name: &str) -> ReplicaSet {
    objects
        .iter()
        .find_map(|o| match o {
            Object::ReplicaSet(rs) if rs.metadata.name.as_deref() == Some(name) => Some((**rs).clone()),
            _ => None,
        })
        .unwrap()
}

fn spec_replicas(state: &State, name: &str) -> Option<i32> {
    state.replica_sets[name].spec.as_ref().and_then(|s| s.replicas)
}

/// `promote --full` at the pause: the canary grows by the one pod of surge. Returns the
/// state after it, the scaled ReplicaSet's name, its new size and the patch.
fn promote_full(state: State, objects: &[Object], now: Timestamp) -> (State, String, i32, Action) {
    let mut ro = rollout(objects);
    ro["status"]["promoteFull"] = Value::Bool(true);
    let (state, actions) = step(state, Event::Applied(Object::Rollout(ro.into())), now);
    let scale = actions.iter().find_map(|a| match a {
        Action::PatchReplicaSet { name, patch } => patch.replicas.map(|r| (name.clone(), r, a.clone())),
        _ => None,
    });
    let Some((name, replicas, action)) = scale else { panic!("promote --full scales a ReplicaSet: {actions:#?}") };
    (state, name, replicas, action)
}

#[test]
fn a_watch_event_older_than_our_scale_does_not_undo_it() {
    let (state, objects, now) = paused_controller();
    let (state, canary, scaled_to, _) = promote_full(state, &objects, now);
    let before = replica_set(&objects, &canary);
    let old_size = before.spec.as_ref().and_then(|s| s.replicas).unwrap();
    assert_ne!(old_size, scaled_to);
    assert_eq!(state.replica_sets[&canary].metadata.generation, before.metadata.generation.map(|g| g + 1));

    // The canary's last event from before the patch, with a newer status (one more pod).
    let mut late = before.clone();
    if let Some(status) = late.status.as_mut() {
        status.replicas += 1;
    }
    let mut observed = state.clone();
    let _ = observe(&mut observed, Event::Applied(Object::ReplicaSet(Arc::new(late.clone()))), now);
    assert_eq!(spec_replicas(&observed, &canary), Some(scaled_to), "the stale spec replaced our write");
    assert_eq!(observed.replica_sets[&canary].status, late.status, "the newer status is taken");
    // Stepped, it neither scales that ReplicaSet again nor grows another one past the surge
    // (4 replicas, maxSurge 1) that the stale spec would leave room for.
    let (state, actions) = step(state, Event::Applied(Object::ReplicaSet(Arc::new(late.clone()))), now);
    let rescaled: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, Action::PatchReplicaSet { name, patch } if *name == canary && patch.replicas.is_some()))
        .collect();
    assert!(rescaled.is_empty(), "a stale event made the controller scale again: {rescaled:#?}");
    let total: i32 = state.replica_sets.keys().filter_map(|name| spec_replicas(&state, name)).sum();
    assert!(total <= 4 + 1, "past the surge: {total} pods asked for after {actions:#?}");

    // The event of the patch itself (generation bumped by the API server) is taken whole.
    let mut current = before;
    current.metadata.generation = current.metadata.generation.map(|g| g + 1);
    current.spec.as_mut().unwrap().replicas = Some(scaled_to);
    current.metadata.labels.get_or_insert_with(Default::default).insert("seen".into(), "yes".into());
    let mut state = state;
    let _ = observe(&mut state, Event::Applied(Object::ReplicaSet(Arc::new(current.clone()))), now);
    assert_eq!(state.replica_sets[&canary].metadata.labels, current.metadata.labels);
}

#[test]
fn after_a_failed_action_the_re_read_object_replaces_our_write() {
    let (state, objects, now) = paused_controller();
    let (state, canary, _, patch) = promote_full(state, &objects, now);
    let (state, _) = step(state, Event::ActionFailed { action: Box::new(patch), error: "boom".into() }, now);
    let before = replica_set(&objects, &canary);
    // Observed (a step would go on to retry the write at once).
    let mut state = state;
    let _ = observe(&mut state, Event::Applied(Object::ReplicaSet(Arc::new(before.clone()))), now);
    assert_eq!(spec_replicas(&state, &canary), before.spec.as_ref().and_then(|s| s.replicas));
}

#[test]
fn another_object_of_the_same_name_is_taken_whole() {
    let (state, objects, now) = paused_controller();
    let (state, canary, _, _) = promote_full(state, &objects, now);
    let mut other = replica_set(&objects, &canary);
    other.metadata.uid = Some("a-new-object".into());
    other.metadata.generation = Some(1);
    let mut state = state;
    let _ = observe(&mut state, Event::Applied(Object::ReplicaSet(Arc::new(other.clone()))), now);
    assert_eq!(state.replica_sets[&canary].metadata.uid, other.metadata.uid);
    assert_eq!(spec_replicas(&state, &canary), other.spec.as_ref().and_then(|s| s.replicas));
}

/// Counts no API server would report (negative, or summing past `i32::MAX`) are read as
/// 0 or saturate: `step` stays total.
#[test]
fn absurd_replica_counts_neither_panic_nor_go_negative() {
    let (mut state, objects, now) = paused_controller();
    let rss = objects.iter().filter_map(|o| match o {
        Object::ReplicaSet(rs) => Some((**rs).clone()),
        _ => None,
    });
    for (i, mut rs) in rss.enumerate() {
        let status = rs.status.get_or_insert_with(Default::default);
        status.replicas = i32::MAX;
        status.ready_replicas = Some(i32::MAX);
        status.available_replicas = Some(if i == 0 { i32::MIN } else { i32::MAX });
        state = step(state, Event::Applied(Object::ReplicaSet(Arc::new(rs))), now).0;
    }
    let (state, _) = step(state, Event::Tick, now);
    let status = &state.rollout.as_ref().unwrap().status;
    assert_eq!(status.replicas, i32::MAX);
    assert!(status.available_replicas >= 0);
}
