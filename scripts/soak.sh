#!/usr/bin/env bash
# The fault soak (not run in CI): 50 seeded kill -9s of the controller (10 rounds of the
# faults walkthrough, 5 kills each), then the fault-proxy walkthrough again and again, each with
# a new seed, for SOAK_MINUTES (default 30), on the local plane of the e2e tests.
#
#   scripts/soak.sh                 # 50 kills + 30 minutes of API faults
#   SOAK_KILLS=10 SOAK_MINUTES=5 FAULT_PROXY_SHARE=0.3 scripts/soak.sh
#
# Prints per run the seed and the test's FAULTS line, then: rollouts completed, divergences
# (failed runs: goal 0, each with its FAULT_SEED to replay), faults injected, reconcile retries,
# p50/p99 reconcile latency (every reconcile of every controller the runs started), peak
# controller RSS. Logs: target/soak/.
set -uo pipefail
cd "$(dirname "$0")/.."
kills=${SOAK_KILLS:-50}
minutes=${SOAK_MINUTES:-30}
out=target/soak
mkdir -p "$out"
export SOAK_LATENCY_FILE=$PWD/$out/reconcile-micros.txt
: >"$SOAK_LATENCY_FILE"
cargo test -p rollouts --test faults --no-run -q || exit 1

completed=0 divergences=0 injected=0 retries=0 peak=0
run() { # NAME TEST VAR=VALUE...
    local log=$out/$1.log test=$2
    shift 2
    if env "$@" timeout 1800 cargo test -q -p rollouts --test faults -- --include-ignored --exact --nocapture "$test" >"$log" 2>&1; then
        # A walkthrough per run; the kills run one per round of 5 kills.
        local rounds
        rounds=$(grep -h -o '^FAULTS kills=[0-9]* rounds=[0-9]*' "$log" | grep -o '[0-9]*$')
        completed=$((completed + ${rounds:-1}))
    else
        divergences=$((divergences + 1))
        echo "FAILED: $(grep -m1 -o 'FAULT_SEED=[0-9]*' "$log") (log: $log)"
    fi
    grep -h '^FAULTS' "$log" || true
    local line
    line=$(grep -h '^FAULTS' "$log" | tail -n1)
    [[ $line =~ injected=([0-9]+) ]] && injected=$((injected + BASH_REMATCH[1]))
    [[ $line =~ reconcile_retries=([0-9]+) ]] && retries=$((retries + BASH_REMATCH[1]))
    [[ $line =~ peak_rss_kib=([0-9]+) ]] && ((BASH_REMATCH[1] > peak)) && peak=${BASH_REMATCH[1]}
}

seed=${FAULT_SEED:-$(date +%s%N)}
echo "kills: $kills (FAULT_SEED=$seed)"
run kills controller_killed_at_seeded_random_points FAULT_SEED="$seed" FAULT_KILLS="$kills"
deadline=$((SECONDS + minutes * 60))
i=0
while ((SECONDS < deadline)); do
    i=$((i + 1))
    seed=$(date +%s%N)
    echo "proxy run $i (FAULT_SEED=$seed)"
    run "proxy-$i" api_faults_through_a_fault_proxy FAULT_SEED="$seed"
done
run restart apiserver_restart_mid_rollout
quantile() { # Q (percent): the reconcile duration in ms below which Q % of them fall
    sort -n "$SOAK_LATENCY_FILE" | awk -v q="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } i = int(NR * q / 100 + 0.999999); if (i < 1) i = 1; printf "%.1f ms", v[i] / 1000 }'
}
echo "rollouts completed: $completed  divergences: $divergences  faults injected: $injected  reconcile retries: $retries"
echo "reconciles: $(wc -l <"$SOAK_LATENCY_FILE")  p50: $(quantile 50)  p99: $(quantile 99)  peak controller RSS: $((peak / 1024)) MiB"
((divergences == 0))
