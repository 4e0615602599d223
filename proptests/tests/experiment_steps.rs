//! Canary `experiment` steps: rollouts whose steps sometimes run Experiments (weighted
//! ones behind the Gateway API), driven step by step with the Experiments run by the
//! core's Experiment machine and their analyses ending in scripted phases
//! (`rollouts_proptests::experiments`). A reported case reproduces with this driver; the
//! simulator runs the same generated scenarios in `settling.rs` and `determinism.rs`.

use proptest::prelude::*;
use rollouts_core::api::AnalysisPhase;
use rollouts_core::state::{Action, Event, State};
use rollouts_core::time::Seconds;
use rollouts_proptests::driver::{DriveError, Delivery, Driver, Pods};
use rollouts_proptests::findings;
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, BAD_IMAGE, IMAGES};
use serde_json::Value;

fn experiment_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::experiment_canary_rollout(0..=10, IMAGES.len()), mix, 6, any::<bool>(), 600)
}

fn unready(g: &ScenarioGen) -> std::collections::BTreeSet<String> {
    if g.bad_image {
        [IMAGES[BAD_IMAGE].to_string()].into()
    } else {
        Default::default()
    }
}

fn completes_an_experiment_step(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(a, Action::RecordEvent { reason, message, .. }
            if reason == "RolloutStepCompleted" && message.ends_with("(experiment)"))
    })
}

/// The weights of the stored Rollout: (canary, stable, additional).
fn weights(ro: &Value) -> Option<(i64, i64, Vec<i64>)> {
    let w = ro.pointer("/status/canary/weights")?;
    let n = |p: &str| w.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let additional = w
        .get("additional")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|d| d.get("weight").and_then(Value::as_i64).unwrap_or(0)).collect())
        .unwrap_or_default();
    Some((n("/canary/weight"), n("/stable/weight"), additional))
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// The rollout never completes an experiment step whose Experiment did not succeed:
    /// whenever a reconcile records `RolloutStepCompleted … (experiment)`, the Experiment
    /// the rollout was following (`status.canary.currentExperiment`, as that reconcile saw
    /// it) is `Successful` — never a Failed, Error, Inconclusive or still running one.
    #[test]
    fn an_experiment_step_completes_only_when_its_experiment_succeeded(g in experiment_scenario()) {
        let objects = g.rollout.objects();
        let mut d = Driver::with(&objects, unready(&g), Pods::Simulated { startup: g.pod_startup }, Delivery::Snapshot).record();
        let _ = d.run(&g.events, g.until());
        for c in d.calls.take().unwrap_or_default() {
            if !completes_an_experiment_step(&c.actions) {
                continue;
            }
            let mut seen = c.state.clone();
            let _ = rollouts_core::observe(&mut seen, c.event.clone(), c.now);
            let name = seen.rollout.as_ref().map(|r| r.status.canary.current_experiment.clone()).unwrap_or_default();
            let phase = seen.experiments.get(&name).and_then(|e| e.status.phase);
            prop_assert_eq!(
                phase,
                Some(AnalysisPhase::Successful),
                "experiment step completed at t={}s following {:?}\nscenario:\n{}",
                c.now.since(rollouts_proptests::driver::EPOCH).0,
                name,
                g.yaml()
            );
        }
    }

    /// Behind a router, the weights the status records stay percentages and add up: canary,
    /// stable and every experiment destination in `0..=100`, their sum 100 whenever the
    /// canary and the experiments leave the stable anything.
    #[test]
    fn weights_with_experiment_destinations_add_up(g in experiment_scenario()) {
        let mut d = Driver::with(&g.rollout.objects(), unready(&g), Pods::Simulated { startup: g.pod_startup }, Delivery::Coalesced);
        let mut failure: Option<String> = None;
        let _ = d.run_observed(&g.events, g.until(), |d| {
            let Some((canary, stable, additional)) = d.rollout().and_then(weights) else { return };
            let all = std::iter::once(canary).chain(std::iter::once(stable)).chain(additional.iter().copied());
            let taken = canary + additional.iter().sum::<i64>();
            let ok = all.clone().all(|w| (0..=100).contains(&w)) && (taken > 100 || canary + stable + additional.iter().sum::<i64>() == 100);
            if !ok && failure.is_none() {
                failure = Some(format!("t={}s: canary {canary}, stable {stable}, additional {additional:?}", d.t()));
            }
        });
        prop_assert!(failure.is_none(), "{}\nscenario:\n{}", failure.unwrap_or_default(), g.yaml());
    }

    /// Level-triggered with Experiments too: driven to rest (instant pods), the controller's
    /// state stepped with later ticks asks for nothing, and a controller restarted on the
    /// cluster's objects (the Experiments included) is quiet within 10 ticks.
    #[test]
    fn experiment_rollouts_converge_and_stay_quiet(g in experiment_scenario()) {
        let mut d = Driver::new(&g.rollout.objects(), unready(&g));
        match d.run(&g.events, g.until() + 86_400) {
            Ok(true) => {}
            Ok(false) => return Err(TestCaseError::fail(format!("still asking for timers a day later\nscenario:\n{}", g.yaml()))),
            Err(DriveError::HotLoop { t }) => return Err(TestCaseError::fail(format!("hot loop at t={t}s\nscenario:\n{}", g.yaml()))),
        }
        let now = d.now;
        let mut state = d.state.clone();
        for dt in [0, 1, 60, 3_600, 86_400] {
            let (s, actions) = rollouts_core::step(state, Event::Tick, now.plus(Seconds(dt)));
            state = s;
            let m: Vec<&Action> = actions.iter().filter(|a| a.is_mutating()).collect();
            prop_assert!(m.is_empty(), "tick +{dt}s: {}\nscenario:\n{}", serde_json::to_string(&m).unwrap_or_default(), g.yaml());
        }
        let mut rebuilt = State::default();
        for obj in d.objects() {
            rebuilt = rollouts_core::step(rebuilt, Event::Applied(obj), now).0;
        }
        let mut quiet = false;
        for _ in 0..10 {
            let (s, actions) = rollouts_core::step(rebuilt, Event::Tick, now);
            rebuilt = s;
            if actions.iter().all(|a| !a.is_mutating()) {
                quiet = true;
                break;
            }
        }
        prop_assert!(quiet, "the rebuilt state still acts after 10 ticks\nscenario:\n{}", g.yaml());
    }
}
