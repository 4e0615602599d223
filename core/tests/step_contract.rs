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
    let (state, actions) = step(State::default(), Event::Applied(Object::Rollout(manifest.into())), Timestamp(1000));
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
            let (s, _) = step(State::default(), Event::Applied(Object::Rollout(input.clone().into())), now);
            let _ = step(s, Event::Tick, now);
        }
    }
}

/// A canary whose analysis step measures a web metric whose answer takes an hour.
const SLOW_MEASUREMENT: &str = r#"
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: slow}
    spec:
      metrics:
        - name: slow
          successCondition: result == true
          provider: {web: {url: "http://127.0.0.1:9/ok"}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo}
    spec:
      replicas: 2
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "app:1"}]}
      strategy:
        canary:
          steps:
            - setWeight: 50
            - analysis: {templates: [{templateName: slow}]}
metrics:
  slow:
    - {value: true, after: 1h}
events:
  - {at: 1m, setImage: {rollout: demo, container: app, image: "app:2"}}
until: 10m
"#;

#[test]
fn a_restarted_controller_asks_again_for_the_measurements_in_flight_on_resync() {
    let sim = run(SLOW_MEASUREMENT);
    let now = end_time(&sim);
    let objects = &sim.final_objects["demo"];
    let (state, actions) = restart_controller(objects, now);
    let measures = |actions: &[Action]| actions.iter().filter(|a| matches!(a, Action::Measure { .. })).count();
    assert_eq!(measures(&actions), 0, "the measurement is in flight, not due: {actions:#?}");
    let mut state = state;
    let resumed = rollouts_core::step_batch(&mut state, [Event::Resync], now);
    let asked: Vec<(&str, &str, i32)> = resumed
        .iter()
        .filter_map(|a| match a {
            Action::Measure { run, metric, index, .. } => Some((run.as_str(), metric.as_str(), *index)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{resumed:#?}");
    assert_eq!((asked[0].1, asked[0].2), ("slow", 1));
    assert!(state.analysis_runs.contains_key(asked[0].0));
}

#[test]
fn a_batch_of_failed_actions_alone_is_not_reconciled() {
    // A measurement in flight: every reconcile asks to be woken when its answer is due.
    let sim = run(SLOW_MEASUREMENT);
    let now = end_time(&sim);
    let (state, _) = restart_controller(&sim.final_objects["demo"], now);
    let failed = Event::ActionFailed {
        action: Box::new(Action::DeleteReplicaSet { name: "gone".into() }),
        error: "conflict".into(),
    };
    let mut quiet = state.clone();
    assert!(rollouts_core::step_batch(&mut quiet, [failed.clone(), failed.clone()], now).is_empty());
    assert!(rollouts_core::step_batch(&mut quiet, [], now).is_empty());
    // With any other event in the batch, the reconcile runs once: the same actions as
    // stepping the batch's last event alone on the same state.
    let mut batched = state.clone();
    let with_tick = rollouts_core::step_batch(&mut batched, [failed, Event::Tick], now);
    let (_, single) = step(state, Event::Tick, now);
    assert!(!single.is_empty(), "a reconcile of this state says something");
    assert_eq!(with_tick, single);
}

/// A rollout of a controller instance (`--instance-id`) labels its AnalysisRuns with that
/// instance, as Argo does: that controller watches only its instance's runs.
#[test]
fn analysis_runs_carry_the_rollouts_controller_instance_id() {
    let sim = run(r#"
name: instance-id on runs
objects:
  - apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata: {name: pass, labels: {argo-rollouts.argoproj.io/controller-instance-id: blue}}
    spec:
      metrics:
        - name: pass
          successCondition: result == 1
          provider: {prometheus: {address: "http://prometheus.example.com:9090", query: vector(1)}}
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata: {name: demo, labels: {argo-rollouts.argoproj.io/controller-instance-id: blue}}
    spec:
      replicas: 1
      selector: {matchLabels: {app: demo}}
      template:
        metadata: {labels: {app: demo}}
        spec: {containers: [{name: app, image: "example/app:1"}]}
      strategy: {canary: {steps: [{setWeight: 50}, {analysis: {templates: [{templateName: pass}]}}]}}
metrics:
  pass: [{value: 1}]
events:
  - {at: 10s, setImage: {rollout: demo, container: app, image: "example/app:2"}}
"#);
    let runs: Vec<&serde_json::Value> =
        sim.objects.iter().filter(|(k, _)| k.starts_with("AnalysisRun/")).map(|(_, v)| v).collect();
    assert_eq!(runs.len(), 1, "{:?}", sim.objects.keys().collect::<Vec<_>>());
    assert_eq!(runs[0]["metadata"]["labels"]["argo-rollouts.argoproj.io/controller-instance-id"], "blue");
}
