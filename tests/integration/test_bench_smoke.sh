#!/bin/bash
# test_bench_smoke.sh - the benchmarks that start a service on the local stack still do the work
# they report figures for, on small inputs (no figure is checked, never a time): every prediction
# bench-predictor counts is the model's, bench-sessionizer's listens reach the sessionizer and
# make sessions, bench-enricher's listens come out enriched. Two of them once measured the wrong
# thing unnoticed: input encoded with the static schema ids the stack's registry reserves (every
# record dead-lettered), and OPENED events too short for the model (the baseline answered).
set -euo pipefail
: "${STINT_BIN_DIR:?}"
bench=$STINT_BIN_DIR/../bench
fail() { echo "FAIL: $*" >&2; exit 1; }

# rate 500/s for 2 s, a backlog of 5,000 sessions of 500 users
out=$(timeout 240 "$bench/bench-predictor" 500 2 5000 500 2>"${TMPDIR:-/tmp}/bench-smoke-pred.err") ||
    fail "bench-predictor exited $?: $out $(tail -5 "${TMPDIR:-/tmp}/bench-smoke-pred.err")"
line=$(grep -E '^predictor throughput: [0-9]+ of the [0-9]+ predictions by the model' <<<"$out") ||
    fail "bench-predictor: no count of the model's predictions: $out"
read -r by_model total < <(sed -E 's/^predictor throughput: ([0-9]+) of the ([0-9]+) .*/\1 \2/' <<<"$line")
[ "$total" -eq 5000 ] && [ "$by_model" -eq "$total" ] ||
    fail "bench-predictor: $by_model of $total predictions by the model, want 5000 of 5000"

# 20,000 listens of 2,000 users on 2 partitions (when all of it comes out between two of its
# polls, the bench says it cannot time it, and the work is still checked)
out=$(timeout 240 "$bench/bench-sessionizer" 20000 2000 2 2>/dev/null) || fail "bench-sessionizer exited $?: $out"
grep -qE '^sessionizer: [0-9]+ listens in .* [1-9][0-9]* OPENED \+ [1-9][0-9]* CLOSED events out' <<<"$out" ||
    fail "bench-sessionizer: no sessions out: $out"

# 20,000 listens of 2,000 tracks (as above)
out=$(timeout 240 "$bench/bench-enricher" 20000 2000 2>"${TMPDIR:-/tmp}/bench-smoke-enr.err") || fail "bench-enricher exited $?: $out"
grep -qE 'bench-enricher: [1-9][0-9]* records enriched .* exit=0' <<<"$out" ||
    fail "bench-enricher: nothing enriched: $out $(cat "${TMPDIR:-/tmp}/bench-smoke-enr.err")"
echo "ok: bench-predictor $by_model of $total by the model; bench-sessionizer and bench-enricher did their work"
