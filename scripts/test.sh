#!/usr/bin/env bash
# The full test suite: unit tests, table tests, property tests, golden timelines,
# the dependency rule, and the benchmarks compiled (not run). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
fi

# Property tests run at least 256 cases each; PROPTEST_CASES raises it.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

cargo test --workspace --locked
cargo bench --workspace --locked --no-run
