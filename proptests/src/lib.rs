//! Generators and a small test driver for the property tests in `tests/`.
//!
//! * [`spec`]: random Rollout specs (basic canary, blue-green) with the Services they
//!   reference, as manifests.
//! * [`scenario`]: random user commands at random times, assembled into a simulator
//!   [`Scenario`](rollouts_core::sim::Scenario), plus the replica count in effect at a time.
//! * [`fenceposts`]: Argo's `maxSurge` / `maxUnavailable` resolution, written again from
//!   the reference (not taken from the core), so the bounds are checked against an
//!   independent model.
//! * [`driver`]: the simulator's cluster ([`rollouts_core::sim::Cluster`]) with its own run
//!   loop that drives [`rollouts_core::step`] directly (pods that start at once or over
//!   time; watch events delivered one `step` each, coalesced, or as the latest object),
//!   for properties about single steps, converged states and delivery orders the
//!   simulator does not use.
//! * [`experiments`]: the Experiments of a driven rollout's `experiment` steps, run by the
//!   core's Experiment machine beside the driver's cluster, with scripted analysis outcomes.
//! * [`arbitrary`]: arbitrary JSON, mutated manifests and malformed objects for the
//!   no-panic property.
//! * [`findings`]: known failures that would otherwise dominate unrelated properties'
//!   runtime, detected at run time.
//!
//! Every test reads its case count from `PROPTEST_CASES` (default 256) through [`config`].

pub mod arbitrary;
pub mod driver;
pub mod experiments;
pub mod fenceposts;
pub mod findings;
pub mod scenario;
pub mod spec;

use proptest::test_runner::Config;

/// Cases per property when `PROPTEST_CASES` is not set.
pub const DEFAULT_CASES: u32 = 256;

/// The proptest configuration every property uses: `PROPTEST_CASES` cases (default 256).
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_CASES);
    Config::with_cases(cases)
}

/// The same, with shrinking bounded (1 000 iterations, 60 s) for properties whose cases
/// are expensive (a whole simulation each).
pub fn config_expensive() -> Config {
    Config { max_shrink_iters: 1_000, max_shrink_time: 60_000, ..config() }
}
