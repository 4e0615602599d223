//! `step` is total: no input makes it panic.
//!
//! (A panic inside `step` fails the test by itself; no `catch_unwind` is needed.)

use proptest::prelude::*;
use rollouts_core::state::Event;
use rollouts_core::time::Timestamp;
use rollouts_proptests::arbitrary;
use rollouts_proptests::driver::{Delivery, Driver, Pods};
use rollouts_proptests::findings;
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, IMAGES};

fn events() -> impl Strategy<Value = Vec<(Event, Timestamp)>> {
    prop::collection::vec((arbitrary::event(arbitrary::any_timestamp()), arbitrary::any_timestamp()), 1..8)
}

fn driven_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::any_rollout(0..=20, IMAGES.len()), mix, 6, any::<bool>(), 120)
}

proptest! {
    #![proptest_config(rollouts_proptests::config())]

    /// From an arbitrary `State` (arbitrary or mutated Rollout JSON with a random
    /// status, ReplicaSets with negative and huge counts, odd annotations and times,
    /// Services, Pods), a sequence of arbitrary events (arbitrary Rollout JSON, valid
    /// rollouts with fields replaced by random JSON, ReplicaSets, Services, Pods,
    /// deletions, ticks, failed actions) at arbitrary times (including `i64::MIN`,
    /// `i64::MAX`, before 1970 and after 9999) never panics.
    #[test]
    fn step_never_panics_on_arbitrary_input(state in arbitrary::state(), evs in events()) {
        let mut state = state;
        for (event, now) in evs {
            state = rollouts_core::step(state, event, now).0;
        }
    }

    /// The same from the realistic states of a driven run (statuses, conditions, pause
    /// conditions and timers the controller wrote itself): after the run, arbitrary
    /// events at arbitrary times never panic.
    #[test]
    fn step_never_panics_after_a_real_run(g in driven_scenario(), evs in events()) {
        let unready = if g.bad_image { [IMAGES[spec::BAD_IMAGE].to_string()].into() } else { Default::default() };
        let mut d = Driver::with(&g.rollout.objects(), unready, Pods::Simulated { startup: g.pod_startup }, Delivery::Snapshot);
        let _ = d.run(&g.events, g.until());
        let mut state = d.state;
        for (event, now) in evs {
            state = rollouts_core::step(state, event, now).0;
        }
    }
}
