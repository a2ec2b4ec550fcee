#!/bin/bash
# test_train_inputs.sh - the input checks of `stint train` and `stint evaluate`, with the real
# binary on tiny generated data (no servers, a few seconds): --config as inline JSON, @FILE or a
# plain FILE; a bad spec value refused (exit 2) in one line naming the key, the value and what it
# allows.
set -euo pipefail
: "${STINT_BIN_DIR:?}"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
stint() { "$STINT_BIN_DIR/stint" "$@"; }

stint gen --users 10 --days 40 --seed 1 --out "$tmp/small" >/dev/null 2>&1
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

echo "ok: --config inline/@FILE/FILE, spec messages"
