//! Steps the benchmark's paused 10-step rollout with timer ticks, for profilers.
#![allow(clippy::disallowed_methods)] // reads its fixture from disk

use rollouts_core::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use rollouts_core::time::Seconds;
use rollouts_core::{step, Event, Object, State};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "fixtures/bench/ten-steps.yaml".into());
    let runs: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let text = std::fs::read_to_string(&path).expect("scenario");
    let sim = simulate(&parse_scenario(&text).expect("parses")).expect("simulates");
    let now = SIMULATION_EPOCH.plus(Seconds(sim.outcome.t));
    let (name, objects) = sim.final_objects.iter().next().expect("a rollout");
    let mut state = State::default();
    let (rollouts, rest): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| matches!(o, Object::Rollout(_)));
    for o in rest.into_iter().chain(rollouts) {
        state = step(state, Event::Applied(o.clone()), now).0;
    }
    let mut actions = 0;
    for _ in 0..runs {
        let (s, a) = step(state, Event::Tick, now);
        state = s;
        actions += a.len();
    }
    println!("{name}: {actions}");
}
