#!/usr/bin/env bash
# Mutation testing of the core (not in CI): how many of cargo-mutants' mutants of the replica
# arithmetic, the rollout state machine and the AnalysisRun machine the core's own tests
# (its lib tests and core/tests) catch. Each mutant costs a rebuild of the core, about 20 s
# on 2 cores, so the three areas in full take hours; a round-robin shard is a uniform sample.
#
#   scripts/mutants.sh                               # the three areas, every mutant
#   scripts/mutants.sh --file core/src/replicas.rs   # one file
#   scripts/mutants.sh --shard 0/8                   # every 8th mutant of the three areas
#   scripts/mutants.sh --iterate                     # only what the last run did not catch
#   scripts/mutants.sh --summary [DIR]               # the table of an earlier run (DIR/mutants.out)
#
# Every argument goes to `cargo mutants` as is; without `--file`/`-f` the three areas are
# mutated. MUTANTS_TIMEOUT_MULTIPLIER (default 5) times the baseline test run is the
# per-mutant test timeout (at least 30 s): an infinite loop is reported as a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

# label|path prefix; the table has one row per area.
AREAS=(
    "replicas.rs|core/src/replicas.rs"
    "rollout/|core/src/rollout/"
    "analysis/run.rs|core/src/analysis/run.rs"
)

summary() {
    local out="$1/mutants.out"
    if [[ ! -d "$out" ]]; then
        echo "no cargo-mutants results in $out" >&2
        return 1
    fi
    count() { grep -c "^$2" "$out/$1.txt" 2>/dev/null || true; }
    echo
    echo "Mutation score (caught share = caught / (caught + missed); unviable mutants do not"
    echo "compile and are left out of it, timeouts too):"
    printf '%-18s %8s %7s %7s %9s %9s %8s\n' area mutants caught missed unviable timeouts caught%
    local area label prefix caught missed unviable timeouts
    for area in "${AREAS[@]}"; do
        label="${area%%|*}"
        prefix="${area#*|}"
        caught=$(count caught "$prefix")
        missed=$(count missed "$prefix")
        unviable=$(count unviable "$prefix")
        timeouts=$(count timeout "$prefix")
        if ((caught + missed == 0)); then
            share="-"
        else
            share=$(awk -v c="$caught" -v m="$missed" 'BEGIN { printf "%.1f", 100 * c / (c + m) }')
        fi
        printf '%-18s %8d %7d %7d %9d %9d %8s\n' "$label" \
            $((caught + missed + unviable + timeouts)) "$caught" "$missed" "$unviable" "$timeouts" "$share"
    done
    if [[ -s "$out/missed.txt" ]]; then
        echo
        echo "Missed (no test failed with these):"
        sed 's/^/  /' "$out/missed.txt"
    fi
}

if [[ "${1:-}" == "--summary" ]]; then
    summary "${2:-.}"
    exit
fi

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install --locked cargo-mutants
fi

args=("$@")
files=(--file core/src/replicas.rs --file 'core/src/rollout/**' --file core/src/analysis/run.rs)
out_dir=.
sharded=false
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
    -f | --file | --file=*) files=() ;;
    -o | --output) out_dir="${args[i + 1]:-.}" ;;
    --output=*) out_dir="${args[i]#--output=}" ;;
    --shard | --shard=*) sharded=true ;;
    esac
done
# A shard of consecutive mutants would be whole functions; every k-th is a uniform sample.
sharding=()
if $sharded && [[ " ${args[*]} " != *" --sharding"* ]]; then
    sharding=(--sharding round-robin)
fi

# One warm build directory for all runs: dependencies are compiled once, and the `mutants`
# profile (no debug info) keeps each mutant's rebuild and link short.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/mutants}"
test_args=(-p rollouts-core --profile mutants --locked --lib --tests)

# Our own baseline: the unmutated tests must pass, and their time sets the timeout, so
# cargo-mutants can skip its baseline (a second full build of the core in its scratch copy).
echo "Baseline: cargo test ${test_args[*]}"
cargo test "${test_args[@]}" --no-run --quiet
start=$(date +%s.%N)
cargo test "${test_args[@]}" --quiet >/dev/null
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
timeout=$(awk -v t="$elapsed" -v m="${MUTANTS_TIMEOUT_MULTIPLIER:-5}" \
    'BEGIN { x = t * m; if (x < 30) x = 30; printf "%d", x + 0.999 }')
echo "Baseline tests took ${elapsed}s: test timeout ${timeout}s per mutant"

status=0
cargo mutants --package rollouts-core "${files[@]}" --exclude '*_tests.rs' \
    --profile mutants --jobs 1 --baseline skip --timeout "$timeout" \
    --cargo-arg=--locked "${sharding[@]}" "${args[@]}" -- --lib --tests || status=$?
# cargo-mutants exits 2 when mutants were missed and 3 on timeouts: still a result.
summary "$out_dir"
exit "$status"
