//! Golden tests of the simulator: see `tests/timelines.rs`. Snapshots live in
//! `tests/snapshots/`; review changes with `cargo insta review` (or accept them with
//! `INSTA_UPDATE=always cargo test -p rollouts-snapshots`).
