//! Abort is always reachable mid-update and returns the rollout to its stable ReplicaSet.

use proptest::prelude::*;
use rollouts_core::sim::Entry;
use rollouts_proptests::fenceposts;
use rollouts_proptests::scenario::{Cmd, ScenarioGen, Timed};
use rollouts_proptests::spec::{self, BlueGreenGen, CanaryGen, RolloutGen, StepGen, StrategyGen, IMAGES};

/// Seconds simulated after the abort.
const AFTER_ABORT: i64 = 600;

/// Images of ready pods the rollout starts on (the bad image may be set later).
const READY_IMAGES: usize = IMAGES.len() - 1;

/// Commands between the update and the abort: `scale`, and `setImage` to an image other
/// than the stable one (an update on top of the update). No `promote` (it could finish
/// the update), no `pause` (a user-paused rollout scales nothing, in Argo too), no
/// `restart` (evictions go on, 30 s apart, for longer than the wait).
fn interference(initial: usize) -> impl Strategy<Value = Cmd> {
    prop_oneof![
        spec::replica_count(0..=50).prop_map(Cmd::Scale),
        (1..IMAGES.len()).prop_map(move |off| Cmd::SetImage((initial + off) % IMAGES.len())),
    ]
}

/// A scenario: the rollout settles on a ready image, gets a new image (maybe one whose
/// pods never become ready) 60–120 s in, 0–3 interfering commands, then `abort` 1–120 s
/// later, then 10 minutes of nothing.
fn abort_scenario(rollout: impl Strategy<Value = RolloutGen>) -> impl Strategy<Value = ScenarioGen> {
    (rollout, 1..=5i64, any::<bool>(), 60..=120i64, 1..IMAGES.len(), 1..=120i64).prop_flat_map(
        |(rollout, pod_startup, bad_image, update_at, offset, abort_gap)| {
            let initial = rollout.common.image;
            let new_image = (initial + offset) % IMAGES.len();
            prop::collection::vec((1..=60i64, interference(initial)), 0..=3).prop_map(move |cmds| {
                let mut at = update_at;
                let mut events = vec![Timed { at, cmd: Cmd::SetImage(new_image) }];
                for (gap, cmd) in cmds {
                    at += gap;
                    events.push(Timed { at, cmd });
                }
                events.push(Timed { at: at + abort_gap, cmd: Cmd::Abort });
                ScenarioGen { rollout: rollout.clone(), pod_startup, bad_image, events, tail: AFTER_ABORT }
            })
        },
    )
}

/// A basic canary whose steps hold an indefinite pause somewhere, so that without a
/// promote the update is still in progress when the abort comes.
fn canary_mid_update() -> impl Strategy<Value = RolloutGen> {
    (spec::common(0..=50, READY_IMAGES), spec::canary_strategy(), any::<prop::sample::Index>()).prop_map(
        |(common, mut canary, at): (_, CanaryGen, prop::sample::Index)| {
            let i = at.index(canary.steps.len() + 1);
            canary.steps.insert(i, StepGen::Pause);
            RolloutGen { common, strategy: StrategyGen::Canary(canary) }
        },
    )
}

/// A blue-green rollout that waits for a promote before switching the active Service.
fn blue_green_mid_update() -> impl Strategy<Value = RolloutGen> {
    (spec::common(0..=50, READY_IMAGES), spec::blue_green_strategy(50)).prop_map(|(common, bg): (_, BlueGreenGen)| {
        RolloutGen {
            common,
            strategy: StrategyGen::BlueGreen(BlueGreenGen { auto_promotion_enabled: Some(false), ..bg }),
        }
    })
}

/// Whether Argo's basic-canary rules (argo-features.md §3 D.4, D.8) allow no scaling
/// move at all in entry `e` with `r` replicas: an older ReplicaSet (neither stable nor
/// the aborted canary) still has pods, so the canary is not scaled down before it
/// (D.4 (c)); `Σdesired ≥ R + maxSurge`, so there is no room to grow the stable (D.4 (a));
/// and `Σavailable ≤ R − maxUnavailable`, so there is no budget to drain the older one
/// (D.8). This happens when an update on top of an update (an intermediate ReplicaSet
/// still serving) is aborted while the canary's pods never become ready and hold the
/// surge.
fn argo_cannot_move(e: &Entry, r: i32, canary: &CanaryGen) -> bool {
    let (surge, max_unavailable) = fenceposts::canary(canary, r);
    let older_has_pods =
        e.replica_sets.iter().any(|rs| rs.hash != e.stable_hash && rs.hash != e.canary_hash && rs.desired > 0);
    let desired: i64 = e.replica_sets.iter().map(|rs| i64::from(rs.desired)).sum();
    let available: i64 = e.replica_sets.iter().map(|rs| i64::from(rs.available)).sum();
    older_has_pods && desired >= i64::from(r) + surge && available <= i64::from(r) - max_unavailable
}

fn describe(e: &Entry) -> String {
    let rss: Vec<String> = e
        .replica_sets
        .iter()
        .map(|r| format!("r{} {} {} {}/{}/{}", r.revision, r.hash, r.role, r.desired, r.ready, r.available))
        .collect();
    format!(
        "t={} phase={} msg={:?} aborted={} actualWeight={} stable={} [{}]",
        e.t,
        e.phase,
        e.message,
        e.aborted,
        e.actual_weight,
        e.stable_hash,
        rss.join(", ")
    )
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// Basic canary: after `abort` on an update in progress and 10 minutes in which the
    /// stable pods do become ready, the final entry is `Degraded` with `aborted: true`
    /// and a `RolloutAborted` message, and either
    /// * the stable ReplicaSet has `desired == available == R` (the replicas in effect)
    ///   and every other ReplicaSet has `desired == 0`; or
    /// * the rollout is in a state where Argo's own basic-canary rules allow no move
    ///   ([`argo_cannot_move`]) — an abort Argo cannot complete either.
    #[test]
    fn canary_abort_returns_to_stable(g in abort_scenario(canary_mid_update())) {
        let Some(sim) = g.simulate()? else { return Ok(()) };
        let e = sim.timeline.last().expect("the rollout has entries");
        let r = g.replicas_at(g.until());
        let ctx = || format!("{}\nscenario:\n{}", describe(e), g.yaml());
        prop_assert_eq!(e.phase.as_str(), "Degraded", "{}", ctx());
        prop_assert!(e.aborted && e.message.starts_with("RolloutAborted"), "{}", ctx());
        let canary = g.rollout.canary().expect("a canary");
        if argo_cannot_move(e, r, canary) {
            return Ok(());
        }
        let stable: Vec<_> = e.replica_sets.iter().filter(|rs| rs.hash == e.stable_hash).collect();
        prop_assert_eq!(stable.len(), 1, "one stable ReplicaSet: {}", ctx());
        prop_assert!(stable[0].desired == r && stable[0].available == r, "stable not at {r}: {}", ctx());
        for rs in e.replica_sets.iter().filter(|rs| rs.hash != e.stable_hash) {
            prop_assert_eq!(rs.desired, 0, "{} still desired: {}", rs.name, ctx());
        }
    }

    /// Blue-green (no auto-promotion, so the update waits): after `abort` and 10 minutes,
    /// the final entry is `Degraded` with `aborted: true`, `actualWeight` 0, the active
    /// Service selects the stable hash (the ReplicaSet with role `active` is the stable
    /// one), and the stable ReplicaSet has `desired == available == R`.
    #[test]
    fn blue_green_abort_returns_active_to_stable(g in abort_scenario(blue_green_mid_update())) {
        let Some(sim) = g.simulate()? else { return Ok(()) };
        let e = sim.timeline.last().expect("the rollout has entries");
        let r = g.replicas_at(g.until());
        let ctx = || format!("{}\nscenario:\n{}", describe(e), g.yaml());
        prop_assert_eq!(e.phase.as_str(), "Degraded", "{}", ctx());
        prop_assert!(e.aborted && e.message.starts_with("RolloutAborted"), "{}", ctx());
        prop_assert_eq!(e.actual_weight, 0, "{}", ctx());
        let active: Vec<_> = e.replica_sets.iter().filter(|rs| rs.role == "active").collect();
        prop_assert!(active.len() == 1 && active[0].hash == e.stable_hash, "active is not stable: {}", ctx());
        prop_assert!(active[0].desired == r && active[0].available == r, "stable not at {r}: {}", ctx());
    }
}
