//! Benchmarks: one `step` of a mid-update rollout with 10 steps and 5 ReplicaSets, the
//! seed walkthrough simulated end to end, and 1,000 canary rollouts updated at once
//! (`fixtures/bench/thousand-canary-rollouts.yaml`) simulated to the end.
#![allow(clippy::disallowed_methods)] // benchmarks read their fixture from disk

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

/// The allocator the `rollouts` binary runs the core with (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use rollouts_core::sim::{parse_scenario, simulate, SIMULATION_EPOCH};
use rollouts_core::time::Seconds;
use rollouts_core::{step, Event, Object, State};

/// A canary with 10 steps, updated four times (5 ReplicaSets), stopped while paused in
/// the middle of the fifth revision's steps.
const TEN_STEPS: &str = include_str!("../../fixtures/bench/ten-steps.yaml");

fn paused_state() -> (State, rollouts_core::Timestamp) {
    let sim = simulate(&parse_scenario(TEN_STEPS).expect("parses")).expect("simulates");
    let now = SIMULATION_EPOCH.plus(Seconds(sim.outcome.t));
    let objects = &sim.final_objects["bench"];
    let mut state = State::default();
    let (rollouts, rest): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| matches!(o, Object::Rollout(_)));
    for o in rest.into_iter().chain(rollouts) {
        state = step(state, Event::Applied(o.clone()), now).0;
    }
    assert_eq!(state.replica_sets.len(), 5, "the benchmark state has 5 ReplicaSets");
    (state, now)
}

fn bench(c: &mut Criterion) {
    let (state, now) = paused_state();
    c.bench_function("step: tick, 10 steps, 5 ReplicaSets", |b| {
        b.iter_batched(|| state.clone(), |s| step(s, Event::Tick, now), BatchSize::SmallInput)
    });
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/scenarios/seed-canary-walkthrough.yaml"))
        .expect("seed fixture");
    c.bench_function("simulate: seed walkthrough end to end", |b| {
        b.iter(|| simulate(&parse_scenario(&seed).expect("parses")).expect("simulates"))
    });
}

fn bench_many(c: &mut Criterion) {
    let thousand = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/bench/thousand-canary-rollouts.yaml"
    ))
    .expect("bench fixture");
    let thousand = parse_scenario(&thousand).expect("parses");
    c.bench_function("simulate: 1000 rollouts", |b| b.iter(|| simulate(&thousand).expect("simulates")));
}

criterion_group!(benches, bench);
criterion_group! {
    name = many;
    // Seconds per iteration: ten samples are enough to see a change.
    config = Criterion::default().sample_size(10);
    targets = bench_many
}
criterion_main!(benches, many);
