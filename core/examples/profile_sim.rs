//! Parses and simulates the seed walkthrough (or the scenario given) many times, for
//! profilers (`valgrind --tool=callgrind`).
#![allow(clippy::disallowed_methods)] // reads its fixture from disk

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "fixtures/scenarios/seed-canary-walkthrough.yaml".into());
    let runs: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(20);
    let text = std::fs::read_to_string(&path).expect("scenario");
    let mut entries = 0;
    for _ in 0..runs {
        // Parsed every time, as the `simulate: seed walkthrough end to end` benchmark does.
        let scenario = rollouts_core::sim::parse_scenario(&text).expect("parses");
        entries += rollouts_core::sim::simulate(&scenario).expect("simulates").timeline.len();
    }
    println!("{entries}");
}
