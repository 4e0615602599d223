//! Helpers the core's integration tests share (`mod common;` in each).

use rollouts_core::{step, Action, Event, Object, State, Timestamp};

/// A fresh controller fed `objects` at `now`, the Rollout last (as after a restart, once the
/// caches are synced): its state and every action it took.
pub fn restart_controller(objects: &[Object], now: Timestamp) -> (State, Vec<Action>) {
    let (rollouts, rest): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| matches!(o, Object::Rollout(_)));
    let mut state = State::default();
    let mut actions = Vec::new();
    for o in rest.into_iter().chain(rollouts) {
        let (s, a) = step(state, Event::Applied(o.clone()), now);
        state = s;
        actions.extend(a);
    }
    (state, actions)
}
