//! Serde round trip: `State`, `Event` and `Action` values survive JSON unchanged.
//!
//! Timestamps are drawn from what Kubernetes `Time` can hold (1970-01-01 to
//! 9999-12-31, whole seconds): `Timestamp` serializes as RFC 3339, so instants outside
//! that range are not representable by design.

use proptest::prelude::*;
use rollouts_core::state::{Action, Event, State};
use rollouts_proptests::arbitrary;
use rollouts_proptests::driver::{Delivery, Driver, Pods};
use rollouts_proptests::findings;
use rollouts_proptests::scenario::{self, CmdMix, ScenarioGen};
use rollouts_proptests::spec::{self, BAD_IMAGE, IMAGES};

fn round_trip<T>(v: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(v).map_err(|e| TestCaseError::fail(format!("serialize: {e}")))?;
    let back: T = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("deserialize: {e}\n{text}")))?;
    prop_assert_eq!(&back, v, "JSON: {}", text);
    Ok(())
}

fn driven_scenario() -> impl Strategy<Value = ScenarioGen> {
    let mix = findings::without_known_hot_loops(CmdMix::ALL);
    scenario::scenario(spec::any_rollout(0..=20, IMAGES.len()), mix, 8, any::<bool>(), 300)
}

proptest! {
    #![proptest_config(rollouts_proptests::config())]

    /// A random `State` (a decoded generated or mutated rollout with a random status,
    /// ReplicaSets with random counts and annotations, Services, Pods) serializes to JSON
    /// and back to an equal value.
    #[test]
    fn random_states_round_trip(s in arbitrary::state()) {
        round_trip::<State>(&s)?;
    }

    /// A random `Event` (every variant: `Applied` of each kind including arbitrary
    /// Rollout JSON, `Deleted`, `Tick`, `ActionFailed`) round-trips.
    #[test]
    fn random_events_round_trip(e in arbitrary::event(arbitrary::k8s_timestamp())) {
        round_trip::<Event>(&e)?;
    }

    /// A random `Action` (every variant, including a ReplicaSet patch that sets, removes
    /// or leaves the pod anti-affinity) round-trips.
    #[test]
    fn random_actions_round_trip(a in arbitrary::action(arbitrary::k8s_timestamp())) {
        round_trip::<Action>(&a)?;
    }
}

proptest! {
    #![proptest_config(rollouts_proptests::config_expensive())]

    /// Every state, event and action of a driven run (real statuses, conditions, pause
    /// conditions, annotations) round-trips.
    #[test]
    fn states_events_and_actions_of_a_run_round_trip(g in driven_scenario()) {
        let unready = if g.bad_image { [IMAGES[BAD_IMAGE].to_string()].into() } else { Default::default() };
        let mut d = Driver::with(&g.rollout.objects(), unready, Pods::Simulated { startup: g.pod_startup }, Delivery::Snapshot).record();
        let _ = d.run(&g.events, g.until());
        for c in d.calls.take().unwrap_or_default() {
            round_trip::<State>(&c.state)?;
            round_trip::<Event>(&c.event)?;
            for a in &c.actions {
                round_trip::<Action>(a)?;
            }
        }
        round_trip::<State>(&d.state)?;
    }
}
