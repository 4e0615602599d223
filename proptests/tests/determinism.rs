//! Determinism: the simulator and `step` are pure functions of their inputs.

use proptest::prelude::*;
use rollouts_core::sim::{parse_scenario, simulate};
use rollouts_proptests::driver::{Delivery, Driver, Pods};
use rollouts_proptests::findings;
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, IMAGES};

/// JSON text, for byte comparison.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serializes")
}

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::any_rollout(0..=50, IMAGES.len()), mix, 10, any::<bool>(), 600)
}

/// Scenarios with at most 20 replicas and 6 commands: every call is recorded and made
/// twice, with pods starting one by one.
fn smaller_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::any_rollout(0..=20, IMAGES.len()), mix, 6, any::<bool>(), 600)
}

/// Canaries with `experiment` steps, their Experiments and analyses run by the simulator.
fn experiment_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::experiment_canary_rollout(0..=10, IMAGES.len()), mix, 6, any::<bool>(), 600)
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// The same with `experiment` steps: Experiments, their ReplicaSets and analysis runs
    /// are part of the JSON compared.
    #[test]
    fn simulating_experiments_twice_gives_identical_json(g in experiment_scenario()) {
        let sc = g.scenario();
        let a = simulate(&sc).map(|s| json(&s));
        let b = simulate(&sc.clone()).map(|s| json(&s));
        prop_assert_eq!(a, b, "scenario:\n{}", g.yaml());
    }

    /// The same scenario simulated twice gives byte-identical JSON (the whole
    /// `Simulation`: timeline, final entries, outcome), or the same error.
    #[test]
    fn simulating_twice_gives_identical_json(g in any_scenario()) {
        let sc = g.scenario();
        let a = simulate(&sc).map(|s| json(&s));
        let b = simulate(&sc.clone()).map(|s| json(&s));
        prop_assert_eq!(a, b, "scenario:\n{}", g.yaml());
    }

    /// `step` on equal inputs gives equal outputs: every call a driven run makes (the
    /// step-level driver, with pods that start over time and watch events delivered as
    /// snapshots, as the simulator does) is made again on a clone of its inputs, and the
    /// new state and the actions equal those of the first call, as values and as JSON
    /// bytes.
    #[test]
    fn step_on_equal_inputs_gives_equal_outputs(g in smaller_scenario()) {
        let unready = if g.bad_image { [IMAGES[spec::BAD_IMAGE].to_string()].into() } else { Default::default() };
        let mut d = Driver::with(&g.rollout.objects(), unready, Pods::Simulated { startup: g.pod_startup }, Delivery::Snapshot).record();
        let _ = d.run(&g.events, g.until());
        for c in d.calls.take().unwrap_or_default() {
            let (state, actions) = rollouts_core::step(c.state, c.event, c.now);
            prop_assert_eq!(&state, &c.state_after);
            prop_assert_eq!(&actions, &c.actions);
            prop_assert_eq!(json(&state), json(&c.state_after));
            prop_assert_eq!(json(&actions), json(&c.actions));
        }
    }
}

proptest! {
    #![proptest_config(rollouts_proptests::config())]

    /// The YAML a failing case is reported as parses back to the same scenario, so a
    /// reported counterexample reproduces with `rollouts simulate`.
    #[test]
    fn generated_scenarios_round_trip_through_yaml(g in any_scenario()) {
        let yaml = g.yaml();
        let parsed = parse_scenario(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(parsed, g.scenario());
    }
}
