//! Weights on the simulator's timeline stay percentages.

use proptest::prelude::*;
use rollouts_proptests::findings;
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, IMAGES};

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::any_rollout(0..=50, IMAGES.len()), mix, 10, any::<bool>(), 600)
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// For canary and blue-green rollouts, with any commands and pods that may never become
    /// ready: every timeline entry has `setWeight` (when present) and `actualWeight` in
    /// `0..=100`; and a blue-green entry has no `setWeight` while its `actualWeight` is
    /// exactly 0 or 100.
    #[test]
    fn weights_stay_within_0_and_100(g in any_scenario()) {
        let Some(sim) = g.simulate()? else { return Ok(()) };
        let blue_green = g.rollout.canary().is_none();
        for e in &sim.timeline {
            if let Some(w) = e.set_weight {
                prop_assert!((0..=100).contains(&w), "setWeight {w} at t={}\nscenario:\n{}", e.t, g.yaml());
            }
            prop_assert!((0..=100).contains(&e.actual_weight), "actualWeight {} at t={}\nscenario:\n{}", e.actual_weight, e.t, g.yaml());
            if blue_green {
                prop_assert!(e.set_weight.is_none(), "blue-green setWeight {:?} at t={}", e.set_weight, e.t);
                prop_assert!(e.actual_weight == 0 || e.actual_weight == 100, "blue-green actualWeight {} at t={}\nscenario:\n{}", e.actual_weight, e.t, g.yaml());
            }
        }
    }
}
