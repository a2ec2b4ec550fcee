#!/bin/bash
# test_train_inputs.sh - the input checks of `stint train` and `stint evaluate`, with the real
# binary on tiny generated data (no servers, a few seconds): --config as inline JSON, @FILE or a
# plain FILE; a bad spec value refused (exit 2) in one line naming the key, the value and what it
# allows; too little data refused (exit 2) with what to change, writing no bundle and no table;
# the one-line warning when the test split has under 50 users.
set -euo pipefail
: "${STINT_BIN_DIR:?}"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
stint() { "$STINT_BIN_DIR/stint" "$@"; }

stint gen --users 2 --days 30 --seed 1 --out "$tmp/tiny" >/dev/null 2>&1
stint gen --users 10 --days 40 --seed 1 --out "$tmp/small" >/dev/null 2>&1
tiny=(--data "$tmp/tiny" --catalog "$tmp/tiny/tracks.jsonl")
small=(--data "$tmp/small" --catalog "$tmp/small/tracks.jsonl")

# run NAME CMD...: stdout in $tmp/NAME.out, stderr without log lines in $tmp/NAME.err, exit in $rc
run() {
    local name=$1
    shift
    set +e
    stint "$@" >"$tmp/$name.out" 2>"$tmp/$name.log"
    rc=$?
    set -e
    grep -v -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* (info|warn|error|debug) |^train model=' \
        "$tmp/$name.log" >"$tmp/$name.err" || true
}
# expect_err NAME RC TEXT: exit RC and stderr (log lines aside) exactly the one line TEXT
expect_err() {
    local name=$1 want_rc=$2 text=$3
    [ "$rc" = "$want_rc" ] || { cat "$tmp/$name.log" >&2; fail "$name: exit $rc, want $want_rc"; }
    [ "$(cat "$tmp/$name.err")" = "$text" ] ||
        fail "$name: stderr is '$(cat "$tmp/$name.err")', want '$text'"
}
spec_of() { python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["spec"]
print(" ".join("%s=%s" % (k, s[k]) for k in sys.argv[2:]))' "$1/metadata.json" "${@:2}"; }

# --config: inline JSON (leading blanks allowed), @FILE, and a plain FILE path as before
echo '{"units": 8, "cell": "gru"}' >"$tmp/spec.json"
i=0
for config in '{"units": 8, "cell": "gru"}' ' {"units":8,"cell":"gru"}' "@$tmp/spec.json" \
    "$tmp/spec.json"; do
    i=$((i + 1))
    run config$i train "${small[@]}" --epochs 1 --config "$config" --out "$tmp/b$i"
    [ $rc = 0 ] || { cat "$tmp/config$i.log" >&2; fail "--config '$config': exit $rc"; }
    [ "$(spec_of "$tmp/b$i" units cell)" = "units=8 cell=gru" ] ||
        fail "--config '$config': spec $(spec_of "$tmp/b$i" units cell)"
done
# flags apply after the config
run flags train "${small[@]}" --epochs 1 --config '{"units": 8}' --units 12 --out "$tmp/bf"
[ $rc = 0 ] && [ "$(spec_of "$tmp/bf" units)" = "units=12" ] || fail "--units after --config"

# bad spec values: one line, exit 2, no bundle
run c1 train "${small[@]}" --config '{"units": 8}x' --out "$tmp/x"
expect_err c1 2 "stint train: --config: bundle spec: JSON line 1 column 13: end of file expected near 'x'"
run c2 train "${small[@]}" --config "@$tmp/nope.json" --out "$tmp/x"
expect_err c2 2 "stint train: --config $tmp/nope.json: No such file or directory (give inline JSON starting with {, @FILE or a FILE path)"
run c3 train "${small[@]}" --config '{"units": 0}' --out "$tmp/x"
expect_err c3 2 'stint train: --config: bundle spec: units="0" is not an integer from 1 to 4096'
run c4 train "${small[@]}" --units 0 --out "$tmp/x"
expect_err c4 2 'stint train: --units: bundle spec: units="0" is not an integer from 1 to 4096'
run c5 train "${small[@]}" --cell rnn --out "$tmp/x"
expect_err c5 2 'stint train: --cell: bundle spec: cell="rnn" is not lstm or gru'
run c6 train "${small[@]}" --dropout 1 --out "$tmp/x"
expect_err c6 2 'stint train: --dropout: bundle spec: dropout="1" is not a number >= 0 and < 1'
run c7 train "${small[@]}" --min-cluster-users 0 --out "$tmp/x"
expect_err c7 2 'stint train: --min-cluster-users: bundle spec: min_cluster_users="0" is not an integer >= 1'
echo '{"window": 64}' >"$tmp/bad.json"
run c8 train "${small[@]}" --config "$tmp/bad.json" --out "$tmp/x"
expect_err c8 2 "stint train: --config $tmp/bad.json: bundle spec: window=\"64\" is not an integer from 1 to 63 (an OPENED carries at most 64 sessions, the W + 1 the model reads)"
run c9 train "${small[@]}" --config '{"unit": 8}' --out "$tmp/x"
[ $rc = 2 ] && grep -q '^stint train: --config: bundle spec: unknown key "unit" (keys: name, kind, window, cell, layers, units, ' "$tmp/c9.err" ||
    fail "unknown key: exit $rc, $(cat "$tmp/c9.err")"
run c10 train "${small[@]}" --config '{"units": 8' --out "$tmp/x"
[ $rc = 2 ] && grep -q '^stint train: --config: bundle spec: JSON line 1 column ' "$tmp/c10.err" ||
    fail "bad JSON: exit $rc, $(cat "$tmp/c10.err")"
[ ! -e "$tmp/x" ] || fail "a refused spec wrote $tmp/x"

# too little data: exit 2, one line saying what to change, no bundle, no table, no report
run d1 train "${tiny[@]}" --epochs 1 --out "$tmp/x"
expect_err d1 2 'stint train: too little data: 2 users have training sessions, at least 5 are needed; use data with more users'
run d2 evaluate "${tiny[@]}" --split date --epochs 1 --out "$tmp/x"
expect_err d2 2 'stint evaluate: too little data: 2 users have training sessions, at least 5 are needed; use data with more users'
[ ! -s "$tmp/d2.out" ] || fail "evaluate on 2 users printed: $(cat "$tmp/d2.out")"
run d3 evaluate "${small[@]}" --epochs 1 --out "$tmp/x"
expect_err d3 2 'stint evaluate: too little data: the split left 7 test rows (1 user), and scoring needs at least 30: the user split makes round(0.1 x 10 users) = 1 test user; use more users, a larger --test-frac, or --split date'
[ ! -s "$tmp/d3.out" ] || fail "evaluate on 7 test rows printed: $(cat "$tmp/d3.out")"
run d4 train "${small[@]}" --epochs 1 --val-frac 0 --out "$tmp/x"
expect_err d4 2 'stint train: too little data: the split left no validation rows, and early stopping needs at least 1: --val-frac 0 asks for none; give it a share > 0'
run d5 train "${small[@]}" --epochs 1 --test-frac 0 --out "$tmp/x"
expect_err d5 2 'stint train: too little data: the split left 0 test rows (0 users), and scoring needs at least 1: --test-frac 0 asks for none; give it a share > 0'
[ ! -e "$tmp/x" ] || fail "too little data, yet $tmp/x was written"

# enough data, a small test split: the table (and the bundle) with one warning line
run e1 evaluate "${small[@]}" --split date --epochs 1 --out "$tmp/report"
expect_err e1 0 'stint evaluate: warning: the test split has 9 users (35 rows), under 50: its figures are rough; use more users or compare several --seed'
grep -q '^baseline: per-user mean .*|        35 |' "$tmp/e1.out" || fail "no table: $(cat "$tmp/e1.out")"
[ -s "$tmp/report/index.html" ] || fail "no report"
run e2 train "${small[@]}" --epochs 1 --out "$tmp/bundle"
expect_err e2 0 'stint train: warning: the test split has 1 user (7 rows), under 50: its figures are rough; use more users or compare several --seed'
[ -s "$tmp/bundle/metadata.json" ] || fail "no bundle"
echo "ok: --config inline/@FILE/FILE, spec messages, too little data refused, small-split warning"
