//! The controller settles: at every instant of a simulation it stops acting after a
//! bounded number of reconciles.

use proptest::prelude::*;
use rollouts_core::sim::{simulate, SimError};
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, IMAGES};

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    scenario::scenario(spec::any_rollout(0..=50, IMAGES.len()), CmdMix::ALL, 10, any::<bool>(), 600)
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
        match simulate(&g.scenario()) {
            Err(SimError::HotLoop { at, .. }) => {
                prop_assert!(false, "the controller did not settle at {at}\nscenario:\n{}", g.yaml());
            }
            Err(e) => prop_assert!(false, "simulation failed: {e}\nscenario:\n{}", g.yaml()),
            Ok(_) => {}
        }
    }
}
