//! Level-triggered: a converged state, stepped with timer events, asks for nothing.
//!
//! Both properties drive `step` directly through the minimal cluster of
//! `rollouts_proptests::driver` (ReplicaSet statuses follow their specs at once), run the
//! generated commands, then let the controller go on for a day of simulated time until
//! it asks for no timer. That end state is *converged*: every action has been executed
//! and observed, and nothing is scheduled.

use proptest::prelude::*;
use rollouts_core::state::{Action, Event, State};
use rollouts_core::time::{Seconds, Timestamp};
use rollouts_proptests::driver::{DriveError, Driver};
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, BAD_IMAGE, IMAGES};

/// Offsets (seconds) of the later ticks.
const LATER: [i64; 6] = [0, 1, 60, 3_600, 86_400, 30 * 86_400];

/// Simulated time allowed after the last command for the run to settle.
const SETTLE_HORIZON: i64 = 86_400;

fn any_scenario() -> impl Strategy<Value = ScenarioGen> {
    scenario::scenario(spec::any_rollout(0..=50, IMAGES.len()), CmdMix::ALL, 10, any::<bool>(), 0)
}

/// Drives `g` to its converged end state. A hot loop fails the case (it is the very
/// opposite of converging); a run still asking for timers after a day is reported too.
fn converge(g: &ScenarioGen) -> Result<Driver, TestCaseError> {
    let unready = if g.bad_image { [IMAGES[BAD_IMAGE].to_string()].into() } else { Default::default() };
    let mut d = Driver::new(&g.rollout.objects(), unready);
    match d.run(&g.events, g.until() + SETTLE_HORIZON) {
        Ok(true) => Ok(d),
        Ok(false) => Err(TestCaseError::fail(format!(
            "still asking for timers a day after the last command (wake at {:?})\nscenario:\n{}",
            d.wake,
            g.yaml()
        ))),
        Err(DriveError::HotLoop { t }) => Err(TestCaseError::fail(format!(
            "the controller never stops acting at t={t}s (more than {} reconciles)\nscenario:\n{}",
            rollouts_proptests::driver::MAX_STEPS_PER_INSTANT,
            g.yaml()
        ))),
    }
}

fn mutating(actions: &[Action]) -> Vec<&Action> {
    actions.iter().filter(|a| a.is_mutating()).collect()
}

/// Steps `state` with `Tick` at each later time; fails on the first mutating action.
fn later_ticks_are_quiet(mut state: State, now: Timestamp, g: &ScenarioGen, what: &str) -> Result<(), TestCaseError> {
    for dt in LATER {
        let (s, actions) = rollouts_core::step(state, Event::Tick, now.plus(Seconds(dt)));
        state = s;
        let m = mutating(&actions);
        prop_assert!(
            m.is_empty(),
            "{what}: Tick {dt}s after convergence returned mutating actions {}\nscenario:\n{}",
            serde_json::to_string(&m).unwrap_or_default(),
            g.yaml()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// The controller's own state at convergence, stepped with `Event::Tick` now and 1 s,
    /// 1 min, 1 h, 1 day and 30 days later (each step fed the state the previous one
    /// returned), returns no mutating action (`Action::is_mutating`; a `WakeAt` or a
    /// recorded event is allowed). The run must also converge at all: no instant with more
    /// than `MAX_STEPS_PER_INSTANT` (20 000) reconciles, and no timer left a day after the last command.
    #[test]
    fn converged_state_stays_quiet_on_later_ticks(g in any_scenario()) {
        let d = converge(&g)?;
        later_ticks_are_quiet(d.state, d.now, &g, "live state")?;
    }

    /// A controller restarted on a converged cluster: a fresh `State` fed every object
    /// as `Event::Applied` (Services and ReplicaSets, then the Rollout), executing nothing,
    /// then stepped with `Tick` at the same instant until it returns no mutating action —
    /// which must happen within 10 ticks — and from then on is quiet on later ticks as
    /// above.
    #[test]
    fn state_rebuilt_from_converged_objects_is_quiet(g in any_scenario()) {
        let d = converge(&g)?;
        let now = d.now;
        let mut state = State::default();
        for obj in d.objects() {
            state = rollouts_core::step(state, Event::Applied(obj), now).0;
        }
        let mut quiet = false;
        let mut last = Vec::new();
        for _ in 0..10 {
            let (s, actions) = rollouts_core::step(state, Event::Tick, now);
            state = s;
            last = actions.into_iter().filter(Action::is_mutating).collect();
            if last.is_empty() {
                quiet = true;
                break;
            }
        }
        prop_assert!(
            quiet,
            "the rebuilt state still acts after 10 ticks: {}\nscenario:\n{}",
            serde_json::to_string(&last).unwrap_or_default(),
            g.yaml()
        );
        later_ticks_are_quiet(state, now, &g, "rebuilt state")?;
    }
}
