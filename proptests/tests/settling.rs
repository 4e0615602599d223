//! The controller settles: at every instant of a simulation it stops acting after a
//! bounded number of reconciles.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollouts_core::sim::{simulate, SimError};
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, IMAGES};

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    scenario::scenario(spec::any_rollout(0..=50, IMAGES.len()), CmdMix::ALL, 10, any::<bool>(), 600)
}

/// Canaries with `experiment` steps (weighted ones behind the Gateway API), the simulator
/// running their Experiments and scripted analyses.
fn experiment_scenario() -> impl Strategy<Value = ScenarioGen> {
    scenario::scenario(spec::experiment_canary_rollout(0..=10, IMAGES.len()), CmdMix::ALL, 6, any::<bool>(), 600)
}

fn settles(g: &ScenarioGen) -> Result<(), TestCaseError> {
    match simulate(&g.scenario()) {
        Err(SimError::HotLoop { at, .. }) => {
            prop_assert!(false, "the controller did not settle at {at}\nscenario:\n{}", g.yaml());
        }
        Err(e) => prop_assert!(false, "simulation failed: {e}\nscenario:\n{}", g.yaml()),
        Ok(_) => {}
    }
    Ok(())
}

proptest! {
    // A failing case costs seconds (5 000 reconciles), so shrinking is bounded in time.
    #![proptest_config(ProptestConfig { max_shrink_iters: 512, max_shrink_time: 60_000, ..rollouts_proptests::config() })]

    /// With every command (including `pause`), canary or blue-green, pods ready or never
    /// ready: `simulate` never fails with `HotLoop`, i.e. at no instant does the
    /// controller need more than 5 000 reconciles to stop acting. (A level-triggered
    /// controller whose actions are observed converges; a hot loop means two reconciles
    /// keep undoing each other.)
    #[test]
    fn controller_settles_at_every_instant(g in any_scenario()) {
        settles(&g)?;
    }

    /// The same with `experiment` steps: the rollout's controller, the Experiment
    /// controller and the analysis workers together stop acting at every instant, whatever
    /// the Experiments' analyses end in (Successful, Failed, Error, Inconclusive) and
    /// whatever the user does meanwhile.
    #[test]
    fn controller_settles_with_experiments(g in experiment_scenario()) {
        settles(&g)?;
    }
}
