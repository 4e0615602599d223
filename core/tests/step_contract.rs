//! The core contract: level-triggered, restart-safe, total, deterministic.
#![allow(clippy::disallowed_methods)] // tests may read files and the environment

use rollouts_core::api::{ConditionType, Rollout};
use rollouts_core::sim::{parse_scenario, simulate, Simulation};
use rollouts_core::{step, Action, Event, Object, State, Timestamp};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../fixtures/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn run(text: &str) -> Simulation {
    simulate(&parse_scenario(text).unwrap()).unwrap()
}

/// Feeds a rollout's objects into a fresh controller, the rollout last (as after a
/// restart, once the caches are synced). Returns the state and every action.
fn restart_controller(objects: &[Object], now: Timestamp) -> (State, Vec<Action>) {
    let mut state = State::default();
    let mut actions = Vec::new();
    let (rollouts, rest): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| matches!(o, Object::Rollout(_)));
    for o in rest.into_iter().chain(rollouts) {
        let (s, a) = step(state, Event::Applied(o.clone()), now);
        state = s;
        actions.extend(a);
    }
    (state, actions)
}

fn end_time(sim: &Simulation) -> Timestamp {
    rollouts_core::sim::SIMULATION_EPOCH.plus(rollouts_core::time::Seconds(sim.outcome.t))
}

#[test]
fn a_restarted_controller_finds_nothing_to_do_on_a_finished_rollout() {
    let sim = run(&fixture("seed-canary-walkthrough.yaml"));
    let now = end_time(&sim);
    let (state, actions) = restart_controller(&sim.final_objects["rollouts-demo"], now);
    let mutating: Vec<_> = actions.iter().filter(|a| a.is_mutating()).collect();
    assert!(mutating.is_empty(), "restart mutated: {mutating:#?}");
    // A converged state stepped with timers, even much later, stays quiet.
    let mut state = state;
    for later in [1, 60, 3600, 86_400 * 30] {
        let (s, a) = step(state, Event::Tick, now.plus(rollouts_core::time::Seconds(later)));
        state = s;
        assert!(a.iter().all(|a| !a.is_mutating()), "tick at +{later}s mutated: {a:#?}");
    }
}

#[test]
fn a_controller_restarted_mid_rollout_carries_on_where_it_was() {
    let text = fixture("seed-canary-walkthrough.yaml");
    // Stop while paused at step 1 of 8 (the first promote is at 3m).
    let cut = text.replace("expect:", "until: 2m\nexpect_ignored:");
    let cut = cut.split("expect_ignored:").next().unwrap().to_string();
    let sim = run(&cut);
    let now = end_time(&sim);
    let (_, actions) = restart_controller(&sim.final_objects["rollouts-demo"], now);
    let mutating: Vec<_> = actions.iter().filter(|a| a.is_mutating()).collect();
    assert!(mutating.is_empty(), "restart mutated a paused rollout: {mutating:#?}");
    let last = &sim.final_state["rollouts-demo"];
    assert_eq!((last.phase.as_str(), last.current_step_index), ("Paused", Some(1)));
}

#[test]
fn an_unknown_field_becomes_an_invalid_spec_condition_naming_it() {
    let manifest = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "typo", "generation": 3},
        "spec": {"replicas": 2, "strategy": {"canary": {"steps": [{"setWieght": 20}]}}}
    });
    let (state, actions) = step(State::default(), Event::Applied(Object::Rollout(manifest)), Timestamp(1000));
    let ro: &Rollout = state.rollout.as_ref().unwrap();
    let cond = ro.status.conditions.iter().find(|c| c.kind == ConditionType::InvalidSpec).expect("InvalidSpec set");
    assert_eq!(
        cond.message,
        "The Rollout \"typo\" is invalid: spec.strategy.canary.steps[0].setWieght: unknown field"
    );
    assert_eq!(ro.status.phase.map(|p| p.as_str()), Some("Degraded"));
    assert_eq!(ro.status.observed_generation, "3");
    assert!(matches!(&actions[..], [Action::PatchRolloutStatus { .. }]), "{actions:#?}");
    // The same input again changes nothing.
    let (_, again) = step(state, Event::Tick, Timestamp(2000));
    assert!(again.is_empty(), "{again:#?}");
}

#[test]
fn step_is_deterministic() {
    let sim = run(&fixture("seed-canary-walkthrough.yaml"));
    let objects = &sim.final_objects["rollouts-demo"];
    let a = restart_controller(objects, Timestamp(5));
    let b = restart_controller(objects, Timestamp(5));
    assert_eq!(serde_json::to_string(&a.0).unwrap(), serde_json::to_string(&b.0).unwrap());
    assert_eq!(serde_json::to_string(&a.1).unwrap(), serde_json::to_string(&b.1).unwrap());
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        serde_json::json!(null),
        serde_json::json!([1, 2, 3]),
        serde_json::json!({"metadata": "x"}),
        serde_json::json!({"metadata": {"name": "a"}, "spec": {"replicas": -5, "strategy": {"canary": {"maxSurge": "abc"}}}}),
        serde_json::json!({"metadata": {"name": "a"}, "spec": {"strategy": {"canary": {}, "blueGreen": {}}}}),
    ];
    for input in inputs {
        for now in [Timestamp(i64::MIN), Timestamp(0), Timestamp(i64::MAX)] {
            let (s, _) = step(State::default(), Event::Applied(Object::Rollout(input.clone())), now);
            let _ = step(s, Event::Tick, now);
        }
    }
}
