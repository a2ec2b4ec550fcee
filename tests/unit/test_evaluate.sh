#!/bin/bash
# test_evaluate.sh - `stint evaluate` end to end on a small generated dataset (sessions from the
# test helper sessionize.py): every row present, identical test rows everywhere, the report files,
# and the same seed giving the same table digit for digit (train times aside) and the same
# predictions.csv. Also `stint train` writes a bundle with metadata.
set -euo pipefail
: "${STINT_BIN_DIR:?}" "${STINT_SOURCE_DIR:?}"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$STINT_BIN_DIR/stint" gen --users 50 --days 60 --seed 5 --out "$tmp/data" >/dev/null
python3 "$STINT_SOURCE_DIR/tests/support/sessionize.py" "$tmp/data" "$tmp/data/tracks.jsonl" \
    "$tmp/sessions.tsv"
run() {
    "$STINT_BIN_DIR/stint" evaluate --sessions "$tmp/sessions.tsv" --profiles "$tmp/data" \
        --epochs 2 --seed 3 --out "$1" 2>"$1.log" >"$1.out" || { cat "$1.log" >&2; fail "evaluate"; }
}
run "$tmp/r1"
run "$tmp/r2"
for f in index.html predictions.csv pred_actual.svg loss_0.svg loss_3.svg elbow.svg silhouette.svg \
    clusters.svg; do
    [ -s "$tmp/r1/$f" ] || fail "missing report file $f"
done
grep -q 'epoch=1/2 loss=' "$tmp/r1.log" || fail "no training progress lines"
table() { grep ' | ' "$1" | sed 's/|[^|]*$//'; }
diff <(table "$tmp/r1.out") <(table "$tmp/r2.out") || fail "tables differ between identical runs"
cmp "$tmp/r1/predictions.csv" "$tmp/r2/predictions.csv" || fail "predictions differ"
for row in "seq LSTM(32) W16 log-L1" "seed parity: LSTM(250) k-means 5 mixed" \
    "baseline: per-user mean" "baseline: per-user median" "baseline: last session" \
    "baseline: global median"; do
    grep -qF "$row" "$tmp/r1.out" || fail "row missing: $row"
done
# every row on the same number of test rows, equal to the CSV's rows
n_csv=$(($(wc -l <"$tmp/r1/predictions.csv") - 1))
counts=$(grep -E '^(seq|seed|baseline)' "$tmp/r1.out" | grep ' s$\| -$' | awk -F'|' '{print $6+0}' | sort -u)
[ "$counts" = "$n_csv" ] || fail "test rows per row: '$counts' vs csv $n_csv"
# every MAE in the table can be recomputed from predictions.csv
python3 - "$tmp/r1/predictions.csv" "$tmp/r1.out" <<'PY' || fail "table MAE != MAE recomputed from predictions.csv"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head, data = rows[0], rows[1:]
table = {}
for line in open(sys.argv[2]):
    parts = [p.strip() for p in line.split("|")]
    if len(parts) == 7 and parts[0] in head and parts[0] not in table:
        table[parts[0]] = float(parts[1])  # the main table comes first
assert len(table) == len(head) - 3, (sorted(table), head)
for i, name in enumerate(head[3:], 3):
    mae = sum(abs(float(r[i]) - float(r[2])) for r in data) / len(data)
    if abs(mae - table[name]) > 0.051:
        print("%s: table %.1f, csv %.3f" % (name, table[name], mae), file=sys.stderr)
        sys.exit(1)
PY
# stint train: a bundle with metadata and test metrics
"$STINT_BIN_DIR/stint" train --sessions "$tmp/sessions.tsv" --profiles "$tmp/data" --epochs 2 \
    --cluster kmeans --k 3 --out "$tmp/bundle" >"$tmp/train.out" 2>/dev/null || fail "train"
grep -q '"test_mae_s"' "$tmp/bundle/metadata.json" || fail "no metrics in metadata.json"
[ -s "$tmp/bundle/net_0.stm" ] && [ -s "$tmp/bundle/clusters.stm" ] || fail "bundle files"
# usage errors exit 2
set +e
"$STINT_BIN_DIR/stint" evaluate --preset nope --sessions "$tmp/sessions.tsv" 2>/dev/null
[ $? -eq 2 ] || fail "bad preset should exit 2"
"$STINT_BIN_DIR/stint" train --sessions "$tmp/sessions.tsv" 2>/dev/null
[ $? -eq 2 ] || fail "train without --out should exit 2"
echo "ok: $n_csv test rows, identical runs"
