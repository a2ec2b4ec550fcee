#!/bin/bash
# test_evaluate.sh - `stint evaluate` / `stint train` end to end on a small generated dataset,
# sessionized in-process (--data DIR --catalog FILE): every row present, identical test rows
# everywhere, the report files, the same seed giving the same table digit for digit (train times
# aside), the same predictions.csv and report whether trained on 2 threads or 1 (--jobs); the
# --data path and `stint sessions` + --sessions giving the identical data set (hash) and the
# identical table; --until on both paths; --only keeping its rows as they were; and the leak test
# on the --data path: changing the test users' test-period listens changes no training artefact.
set -euo pipefail
: "${STINT_BIN_DIR:?}" "${STINT_SOURCE_DIR:?}"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
stint() { "$STINT_BIN_DIR/stint" "$@"; }

# --truth: what the generator drew, for tools/oracle-ceiling below (the other files are the same)
stint gen --users 50 --days 60 --seed 5 --truth --out "$tmp/data" >/dev/null
data=(--data "$tmp/data" --catalog "$tmp/data/tracks.jsonl")
run() { # run OUT_DIR SOURCE_ARGS...
    local out=$1
    shift
    stint evaluate "$@" --epochs 2 --seed 3 --out "$out" 2>"$out.log" >"$out.out" ||
        { cat "$out.log" >&2; fail "evaluate $*"; }
}
hash_of() { grep -o 'dataset_loaded .*hash=[0-9a-f]*' "$1" | grep -o 'hash=[0-9a-f]*$'; }
table() { grep ' | ' "$1" | sed 's/|[^|]*$//'; }

run "$tmp/r1" "${data[@]}" --jobs 2
# a split other than the default: the printed train command makes the same one (train's early
# stopping must see evaluate's validation rows)
stint evaluate "${data[@]}" --only GBT --split date --test-frac 0.3 --val-frac 0.15 --seed 3 \
    --out "$tmp/rsplit" 2>"$tmp/rsplit.log" >"$tmp/rsplit.out" ||
    { cat "$tmp/rsplit.log" >&2; fail "evaluate --split date"; }
grep -qF -- '--split date --test-frac 0.3 --val-frac 0.15 --seed 3 --out BUNDLE_DIR' "$tmp/rsplit.out" ||
    fail "the printed stint train command does not repeat the split: $(grep 'stint train' "$tmp/rsplit.out")"
run "$tmp/r2" "${data[@]}" --jobs 1
for f in index.html predictions.csv pred_actual.svg residuals.svg loss_0.svg loss_3.svg loss_6.svg elbow.svg \
    silhouette.svg clusters.svg; do
    [ -s "$tmp/r1/$f" ] || fail "missing report file $f"
done
grep -q 'epoch=1/2 loss=' "$tmp/r1.log" || fail "no training progress lines"
grep -q 'dataset_loaded data=.* profiles=[^ ]*/data ' "$tmp/r1.log" ||
    fail "profiles not read from the data directory: $(grep dataset_loaded "$tmp/r1.log")"
diff <(table "$tmp/r1.out") <(table "$tmp/r2.out") || fail "tables differ between --jobs 2 and --jobs 1"
cmp "$tmp/r1/predictions.csv" "$tmp/r2/predictions.csv" || fail "predictions differ (--jobs 2 / --jobs 1)"
# the report too, but for the train times and the command line
report() { grep -v '<th>command</th>' "$1/index.html" | sed 's|<td class="n">[0-9.]* s</td>|T|g'; }
diff <(report "$tmp/r1") <(report "$tmp/r2") || fail "index.html differs between --jobs 2 and --jobs 1"
for f in "$tmp"/r1/*.svg; do
    cmp "$f" "$tmp/r2/${f##*/}" || fail "${f##*/} differs between --jobs 2 and --jobs 1"
done
# the bootstrap intervals: one line per row, identical between identical runs
intervals() { grep -E '^  .* vs mean [0-9.]+ \[[0-9.]+, [0-9.]+\] .* vs median ' "$1"; }
[ "$(intervals "$tmp/r1.out" | wc -l)" -eq 11 ] || fail "not 11 interval lines: $(cat "$tmp/r1.out")"
diff <(intervals "$tmp/r1.out") <(intervals "$tmp/r2.out") || fail "intervals differ between identical runs"
grep -qE 'baseline: per-user median .* vs median 1\.000 \[1\.000, 1\.000\] \(itself\)' "$tmp/r1.out" ||
    fail "the per-user median against itself is not 1 [1, 1]"
# every row against the best one (chosen on validation): the best row's own ratio is 1 [1, 1]
best=$(sed -n 's/.*best row by validation MAE: //p' "$tmp/r1.out")
[ -n "$best" ] || fail "no best row named"
grep -qF "  $best " "$tmp/r1.out" &&
    grep -F "  $best " "$tmp/r1.out" | grep -qE 'vs best 1\.000 \[1\.000, 1\.000\] \(itself\)' ||
    fail "the best row ($best) against itself is not 1 [1, 1]"
[ "$(grep -cE 'vs best [0-9.]+ \[[0-9.]+, [0-9.]+\]' "$tmp/r1.out")" -eq 11 ] ||
    fail "not every row has an interval against the best row"
grep -qF 'MAE / best row [95 % CI]' "$tmp/r1/index.html" || fail "index.html lacks the vs-best column"
# the best row's `stint train` command, run as printed: it trains exactly that configuration
cmdline=$(sed -n '/^best row by validation MAE (split seed 3): /{n;p}' "$tmp/r1.out")
[[ $cmdline == "  stint train --data $tmp/data --catalog $tmp/data/tracks.jsonl --seed 3 --out BUNDLE_DIR --config '{"* ]] ||
    fail "no stint train command for the best row: $(tail -5 "$tmp/r1.out")"
eval "${cmdline/BUNDLE_DIR/$tmp/best}" >"$tmp/best.out" 2>"$tmp/best.log" ||
    { cat "$tmp/best.log" >&2; fail "the printed stint train command failed"; }
python3 - "$tmp/best/metadata.json" "$best" "${cmdline#*--config }" <<'PY' || fail "the bundle is not the best row's configuration"
import json, shlex, sys
meta = json.load(open(sys.argv[1]))
config = json.loads(shlex.split(sys.argv[3])[0])
assert "threads" not in config, config  # train's own default: the usable CPUs
assert {k: v for k, v in meta["spec"].items() if k != "threads"} == config, (meta["spec"], config)
assert meta["spec"]["name"] == sys.argv[2], (meta["spec"]["name"], sys.argv[2])
PY
grep -qF 'To train it for serving: <code>stint train --data' "$tmp/r1/index.html" ||
    fail "index.html lacks the best row's stint train command"
# the report: a real table with the best row marked (by validation MAE), the header block, the
# figures' markers
for s in '<table class="main">' '<tr class="best">' 'beats the per-user median?' \
    'lowest <b>validation</b> MAE' '--data '"$tmp/data" 'stint evaluate --data' 'test users' \
    'bootstrap over the' 'Feature importances of "GBT xgboost' '<td>log1p_length_s_lag1</td>'; do
    grep -qF -- "$s" "$tmp/r1/index.html" || fail "index.html lacks: $s"
done
grep -q 'kept: epoch [0-9]' "$tmp/r1/loss_0.svg" || fail "loss chart without the kept epoch"
grep -q 'chosen k = 5' "$tmp/r1/elbow.svg" || fail "elbow without the chosen k"
grep -q 'log scale' "$tmp/r1/pred_actual.svg" || fail "predicted vs actual not on log axes"
# --seeds: the first seed's table is the --seed run's, then a summary over the seeds
stint evaluate "${data[@]}" --epochs 2 --seeds 3,5 --out "$tmp/rs" 2>"$tmp/rs.log" >"$tmp/rs.out" ||
    { cat "$tmp/rs.log" >&2; fail "evaluate --seeds 3,5"; }
diff <(table "$tmp/r1.out") <(sed -n '/== split seed 3/,/== split seed 5/p' "$tmp/rs.out" | table /dev/stdin) ||
    fail "--seeds 3,5: seed 3's table differs from --seed 3's"
grep -q '== split seed 5 (2 of 2) ==' "$tmp/rs.out" || fail "--seeds: seed 5 not run"
grep -q 'over 2 split seeds' "$tmp/rs.out" || fail "--seeds: no summary"
grep -qF 'Over 2 split seeds' "$tmp/rs/index.html" || fail "--seeds: no summary in index.html"
# every seed's split is checked before anything is trained or written: seed 1's passes, seed 2's
# has too few test rows (round(0.03 x 50) = 2 test users here), so no table and no report at all
rc=0
stint evaluate "${data[@]}" --epochs 1 --only GBT --test-frac 0.03 --seeds 1,2 --out "$tmp/rbad" \
    2>"$tmp/rbad.log" >"$tmp/rbad.out" || rc=$?
[ $rc = 2 ] || fail "--seeds 1,2 with too few test rows in seed 2: exit $rc, want 2"
grep -q 'split seed 2: .*scoring needs at least' "$tmp/rbad.log" || fail "--seeds: seed 2's refusal: $(cat "$tmp/rbad.log")"
! grep -q ' | ' "$tmp/rbad.out" || fail "--seeds: a table was printed before seed 2 was refused"
[ ! -e "$tmp/rbad" ] || fail "--seeds: report files written before seed 2 was refused"
# --seeds with --split date: the cut does not depend on the seed, so it is refused
rc=0
stint evaluate "${data[@]}" --epochs 1 --split date --seeds 1,2 --out "$tmp/rdate" 2>"$tmp/rdate.log" >/dev/null || rc=$?
[ $rc = 2 ] && grep -q -- '--seeds with --split date' "$tmp/rdate.log" ||
    fail "--seeds with --split date: exit $rc, $(cat "$tmp/rdate.log")"
# --model-seeds: each configuration trained twice on the same split; the first training is the
# configuration's own (the same table as without), the spread is printed, and different model
# seeds give different networks (a nonzero sd somewhere); on 3 threads the same as on 1
stint evaluate "${data[@]}" --epochs 2 --seed 3 --model-seeds 2 --jobs 3 --out "$tmp/rm" \
    2>"$tmp/rm.log" >"$tmp/rm.out" || { cat "$tmp/rm.log" >&2; fail "evaluate --model-seeds 2"; }
stint evaluate "${data[@]}" --epochs 2 --seed 3 --model-seeds 2 --jobs 1 --out "$tmp/rm1" \
    2>"$tmp/rm1.log" >"$tmp/rm1.out" || { cat "$tmp/rm1.log" >&2; fail "evaluate --model-seeds 2 --jobs 1"; }
results() { grep -v '^report: ' "$1" | sed 's/| *[0-9.]* s$/|/'; }
diff <(results "$tmp/rm.out") <(results "$tmp/rm1.out") ||
    fail "--model-seeds 2: --jobs 3 and --jobs 1 print different results"
diff <(table "$tmp/r1.out") <(table "$tmp/rm.out") ||
    fail "--model-seeds 2: the first model seed's table differs from the plain run's"
grep -q 'MAE (s) over 2 model seeds' "$tmp/rm.out" || fail "--model-seeds: no spread block"
spread=$(grep -E '^  .* test +[0-9.]+ \+- +[0-9.]+ +val +[0-9.]+ \+- +[0-9.]+' "$tmp/rm.out")
[ "$(wc -l <<<"$spread")" -eq 7 ] || fail "--model-seeds: not one spread line per configuration: $spread"
grep -qE 'test +[0-9.]+ \+- +[0-9]*[1-9][0-9]*\.[0-9]|test +[0-9.]+ \+- +0\.[1-9]' <<<"$spread" ||
    fail "--model-seeds: every sd is 0 (the model seed is not used): $spread"
[ "$(grep -c '(best)' <<<"$spread")" -eq 1 ] || fail "--model-seeds: not one best row"
grep -qF 'Seed spread: 2 model seeds' "$tmp/rm/index.html" || fail "--model-seeds: no spread in index.html"
# predictions.csv and val_predictions.csv: the first model seed's columns as without
# --model-seeds, then one column per further seed; every spread line (mean +- sd of the test and
# validation MAE) is recomputed from them
python3 - "$tmp/r1" "$tmp/rm" "$tmp/rm.out" <<'PY' || fail "--model-seeds: predictions files do not give the printed spread"
import csv, re, statistics, sys
def read(path):
    rows = list(csv.reader(open(path)))
    return rows[0], rows[1:]
out = open(sys.argv[3]).read()
n_val = int(re.search(r"train \d+ / val (\d+) / test (\d+) rows", out).group(1))
spread = {m.group(1).strip(): [float(m.group(i)) for i in (2, 3, 4, 5)] for m in re.finditer(
    r"^  (.*?)  test +([0-9.]+) \+- +([0-9.]+) +val +([0-9.]+) \+- +([0-9.]+)", out, re.M)}
for role, name in (("test", "predictions.csv"), ("val", "val_predictions.csv")):
    h1, d1 = read("%s/%s" % (sys.argv[1], name))
    hm, dm = read("%s/%s" % (sys.argv[2], name))
    assert hm[:len(h1)] == h1 and [r[:len(h1)] for r in dm] == d1, name + ": first seed differs"
    assert hm[len(h1):] == ["%s / model seed 2" % c for c in spread], (name, hm[len(h1):])
    if role == "val":
        assert len(dm) == n_val, (len(dm), n_val)
    for c, (tm, tsd, vm, vsd) in spread.items():
        maes = [sum(abs(float(r[hm.index(k)]) - float(r[2])) for r in dm) / len(dm)
                for k in (c, c + " / model seed 2")]
        m, sd = statistics.mean(maes), statistics.stdev(maes)
        want = (tm, tsd) if role == "test" else (vm, vsd)
        assert abs(m - want[0]) < 0.06 and abs(sd - want[1]) < 0.06, (c, role, maes, want)
PY
# tools/report-ensembles on it: ensembles chosen on validation, compared on test with every row
"$STINT_SOURCE_DIR/tools/report-ensembles" "$tmp/rm" --bootstrap 200 >"$tmp/ens.out" ||
    fail "tools/report-ensembles failed"
grep -q '^best ensemble on validation: ' "$tmp/ens.out" && grep -q '; validation prefers ' "$tmp/ens.out" ||
    fail "report-ensembles: no choice: $(cat "$tmp/ens.out")"
# one interval per configuration and the per-user median, for the best ensemble and for the best
# servable one when that is another
n=$(grep -cE '^  / .* [0-9.]+ \[[0-9.]+, [0-9.]+\] ' "$tmp/ens.out")
[ "$n" -eq 8 ] || [ "$n" -eq 16 ] || fail "report-ensembles: $n intervals: $(cat "$tmp/ens.out")"
grep -qE '^  to serve it: .* with "members": 2 in its --config$' "$tmp/ens.out" ||
    fail "report-ensembles: no servable ensemble named: $(cat "$tmp/ens.out")"
# stint train --members 2 ships the seed ensemble of those two model seeds: its test MAE is that
# of the geometric mean of the report's two LSTM(32) columns
stint train "${data[@]}" --seed 3 --epochs 2 --threads 1 --members 2 --out "$tmp/members" \
    >/dev/null 2>"$tmp/members.log" || { cat "$tmp/members.log" >&2; fail "train --members 2"; }
[ -s "$tmp/members/net_0_m1.stm" ] || fail "train --members 2: no second member's file"
python3 - "$tmp/rm/predictions.csv" "$tmp/members/metadata.json" <<'PY' || fail "train --members 2 is not the report's seed ensemble"
import csv, json, math, sys
rows = list(csv.reader(open(sys.argv[1])))
c = [rows[0].index(n) for n in ("seq LSTM(32) W16 log-L1", "seq LSTM(32) W16 log-L1 / model seed 2")]
mae = sum(abs(math.expm1(sum(math.log1p(float(r[i])) for i in c) / 2) - float(r[2]))
          for r in rows[1:]) / (len(rows) - 1)
got = json.load(open(sys.argv[2]))["metrics"]["test_mae_s"]
assert abs(got - mae) < 0.01, (got, mae)
PY
rc=0
"$STINT_SOURCE_DIR/tools/report-ensembles" "$tmp/nothing" 2>"$tmp/ens.err" || rc=$?
[ $rc -eq 2 ] && grep -q 'val_predictions.csv' "$tmp/ens.err" || fail "report-ensembles without a report: exit $rc"
# tools/oracle-ceiling: the generator's truth against the same test rows: five oracles, then
# every column of predictions.csv with its ratio to the Kalman oracle and an interval
"$STINT_SOURCE_DIR/tools/oracle-ceiling" "$tmp/data" "$tmp/rm" --bootstrap 200 >"$tmp/oracle.out" ||
    fail "tools/oracle-ceiling failed"
n_cols=$(($(head -n 1 "$tmp/rm/predictions.csv" | python3 -c 'import csv, sys; print(len(next(csv.reader(sys.stdin))))') - 3))
n=$(grep -cE '^oracle: ' "$tmp/oracle.out")
[ "$n" -eq 5 ] || fail "oracle-ceiling: $n oracle rows: $(cat "$tmp/oracle.out")"
n=$(grep -cE '^[^o].* \| +[0-9.]+ \| [0-9.]+ \[[0-9.]+, [0-9.]+\] ' "$tmp/oracle.out")
[ "$n" -eq "$n_cols" ] || fail "oracle-ceiling: $n of $n_cols columns compared: $(cat "$tmp/oracle.out")"
# a report of other data, and data without the truth: exit 2, named
stint gen --users 5 --days 20 --seed 9 --truth --out "$tmp/other" >/dev/null
rc=0
"$STINT_SOURCE_DIR/tools/oracle-ceiling" "$tmp/other" "$tmp/rm" 2>"$tmp/oracle.err" || rc=$?
[ $rc -eq 2 ] && grep -q 'not the data set of this report' "$tmp/oracle.err" ||
    fail "oracle-ceiling on another data set: exit $rc: $(cat "$tmp/oracle.err")"
rm "$tmp/other/gen-truth.tsv"
rc=0
"$STINT_SOURCE_DIR/tools/oracle-ceiling" "$tmp/other" "$tmp/rm" 2>"$tmp/oracle.err" || rc=$?
[ $rc -eq 2 ] && grep -q 'stint gen --truth' "$tmp/oracle.err" ||
    fail "oracle-ceiling without a truth file: exit $rc: $(cat "$tmp/oracle.err")"

# the same data set and table through `stint sessions` + --sessions
stint sessions "${data[@]}" --out "$tmp/sessions.tsv" --quiet >/dev/null 2>&1 || fail "stint sessions"
run "$tmp/r3" --sessions "$tmp/sessions.tsv" --profiles "$tmp/data"
h1=$(hash_of "$tmp/r1.log")
h3=$(hash_of "$tmp/r3.log")
[ -n "$h1" ] && [ "$h1" = "$h3" ] || fail "dataset hash --data '$h1' != --sessions '$h3'"
diff <(table "$tmp/r1.out") <(table "$tmp/r3.out") || fail "tables differ between --data and --sessions"
cmp "$tmp/r1/predictions.csv" "$tmp/r3/predictions.csv" || fail "predictions differ (--data/--sessions)"

for row in "seq LSTM(32) W16 log-L1" "seed parity: LSTM(250) k-means 5 mixed" "GBT xgboost W16 log-L1 depth 6" \
    "baseline: per-user mean" "baseline: per-user median" "baseline: last session" \
    "baseline: global median"; do
    grep -qF "$row" "$tmp/r1.out" || fail "row missing: $row"
done
# every row on the same number of test rows, equal to the CSV's rows
n_csv=$(($(wc -l <"$tmp/r1/predictions.csv") - 1))
counts=$(grep -E '^(seq|seed|GBT|baseline)' "$tmp/r1.out" | grep ' s$\| -$' | awk -F'|' '{print $6+0}' | sort -u)
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

# --until: only sessions that started before the time, the same on both paths
until_s=$(sort -t$'\t' -k2,2n "$tmp/sessions.tsv" | awk -F'\t' 'NR == 1000 {print $2}')
until_iso=$(date -u -d "@$until_s" +%Y-%m-%dT%H:%M:%SZ)
n_before=$(awk -F'\t' -v t="$until_s" '$2 < t' "$tmp/sessions.tsv" | wc -l)
for src in data sessions; do
    if [ $src = data ]; then args=("${data[@]}"); else args=(--sessions "$tmp/sessions.tsv" --profiles "$tmp/data"); fi
    stint train "${args[@]}" --until "$until_iso" --epochs 1 --out "$tmp/until_$src" \
        >/dev/null 2>"$tmp/until_$src.log" || { cat "$tmp/until_$src.log" >&2; fail "train --until ($src)"; }
    n=$(grep -o 'dataset_loaded .* sessions=[0-9]* users' "$tmp/until_$src.log" | grep -o 'sessions=[0-9]* users' | grep -o '[0-9]*')
    [ "$n" = "$n_before" ] || fail "--until $until_iso ($src): $n sessions, expected $n_before"
done
hu1=$(hash_of "$tmp/until_data.log")
hu2=$(hash_of "$tmp/until_sessions.log")
[ "$hu1" = "$hu2" ] || fail "--until: dataset hash --data '$hu1' != --sessions '$hu2'"
[ "$hu1" != "$h1" ] || fail "--until did not change the data set"

# stint train: a bundle with metadata and test metrics
stint train "${data[@]}" --epochs 2 --seed 3 --cluster kmeans --k 3 --out "$tmp/bundle" \
    >"$tmp/train.out" 2>/dev/null || fail "train"
grep -q '"test_mae_s"' "$tmp/bundle/metadata.json" || fail "no metrics in metadata.json"
# the predictor's first-session baseline: the median TRAIN session length, a positive number
python3 -c 'import json, sys; g = json.load(open(sys.argv[1]))["metrics"].get("global_median_s")
sys.exit(0 if isinstance(g, (int, float)) and g > 0 else 1)' "$tmp/bundle/metadata.json" ||
    fail "metadata.json has no positive metrics.global_median_s"
[ -s "$tmp/bundle/net_0.stm" ] && [ -s "$tmp/bundle/clusters.stm" ] || fail "bundle files"

# leak test on the --data path: the test users' test-period sessions change (a copy of a listen
# inserted between two listens <= 600 s apart: more tracks, same session boundaries and starts),
# and no training artefact may move. Test users and their cut come from predictions.csv.
cp -r "$tmp/data" "$tmp/data2"
python3 - "$tmp/r1/predictions.csv" "$tmp/data2/userid-timestamp-artid-artname-traid-traname.tsv" <<'PY' || fail "perturbing the test period"
import csv, sys
from datetime import datetime, timezone
cut = {}
for r in list(csv.DictReader(open(sys.argv[1]))):
    cut[r["user"]] = min(cut.get(r["user"], 1 << 62), int(r["session_start"]))
path = sys.argv[2]
lines = open(path, encoding="utf-8", errors="surrogateescape").read().split("\n")
def ts_of(line):
    f = line.split("\t")
    if len(f) != 6 or f[0] not in cut or not f[3].strip() or not f[5].strip():
        return None
    if any(len(x) > 200 or not all(32 <= ord(c) < 127 for c in x) for x in f):
        return None
    try:
        return int(datetime.strptime(f[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None
listens = {}
for i, line in enumerate(lines):
    t = ts_of(line)
    if t is not None and t >= cut[line.split("\t")[0]]:
        listens.setdefault(line.split("\t")[0], []).append((t, i))
extra = {}
for user, ls in listens.items():
    ls.sort()
    for (ta, ia), (tb, _) in zip(ls, ls[1:]):
        if 2 <= tb - ta <= 600:
            f = lines[ia].split("\t")
            f[1] = datetime.fromtimestamp(ta + (tb - ta) // 2, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            extra.setdefault(ia, []).append("\t".join(f))
out = []
for i, line in enumerate(lines):
    out.append(line)
    out.extend(extra.get(i, []))
open(path, "w", encoding="utf-8", errors="surrogateescape").write("\n".join(out))
n = sum(len(v) for v in extra.values())
print("inserted %d listens for %d test users" % (n, len(cut)), file=sys.stderr)
sys.exit(0 if n > 0 else 1)
PY
leak_train() { # leak_train DATA_DIR OUT ARGS...
    local dir=$1 out=$2
    shift 2
    stint train --data "$dir" --catalog "$dir/tracks.jsonl" --epochs 2 --seed 3 "$@" --out "$out" \
        >/dev/null 2>"$out.log" || { cat "$out.log" >&2; fail "train for the leak test"; }
}
for cfg in "kmeans:--cluster kmeans --k 3" "parity:--preset seed" "gbt:--preset gbt"; do
    name=${cfg%%:*}
    read -r -a args <<<"${cfg#*:}"
    leak_train "$tmp/data" "$tmp/leak_a_$name" "${args[@]}"
    leak_train "$tmp/data2" "$tmp/leak_b_$name" "${args[@]}"
    ha=$(hash_of "$tmp/leak_a_$name.log")
    hb=$(hash_of "$tmp/leak_b_$name.log")
    [ "$ha" != "$hb" ] || fail "leak test ($name): the perturbation did not change the data set"
    diff <(cd "$tmp/leak_a_$name" && ls) <(cd "$tmp/leak_b_$name" && ls) ||
        fail "leak test ($name): different bundle files"
    for f in "$tmp/leak_a_$name"/*; do
        b=$(basename "$f")
        [ "$b" = metadata.json ] && continue
        cmp -s "$f" "$tmp/leak_b_$name/$b" || fail "leak test ($name): $b changed with the test period"
    done
done

# --only: the chosen configurations (and every baseline), each row as in the full run
main_rows() { sed -n '/^configuration  *|/,/^$/p' "$1" | grep ' | ' | sed 's/|[^|]*$//' |
    grep -e '^seq LSTM(32) W16 log-L1 ' -e '^GBT' -e '^baseline'; }
run "$tmp/only" "${data[@]}" --only "LSTM(32) W16 log-L1, GBT"
[ "$(table "$tmp/only.out" | grep -vc -e '^configuration' -e '^---')" -eq 6 ] ||
    fail "--only: not 2 configurations + 4 baselines: $(table "$tmp/only.out")"
[ "$(main_rows "$tmp/only.out" | wc -l)" -eq 6 ] || fail "--only: rows missing"
diff <(main_rows "$tmp/only.out") <(main_rows "$tmp/r1.out") || fail "--only: rows differ from the full run's"
# a path with a quote and a space: the report's command line and the train command quote it for
# the shell (the --sessions source, the TSV written above)
mkdir "$tmp/it's here"
cp "$tmp/sessions.tsv" "$tmp/it's here/s.tsv"
run "$tmp/quoted" --sessions "$tmp/it's here/s.tsv" --profiles "$tmp/data" --only "GBT"
quoted="'$tmp/it'\\''s here/s.tsv'"
grep -qF -- "--sessions $quoted" "$tmp/quoted/index.html" || fail "index.html: path not shell-quoted"
grep -qF -- "  stint train --sessions $quoted --profiles $tmp/data --seed 3 --out BUNDLE_DIR" \
    "$tmp/quoted.out" || fail "train command: path not shell-quoted: $(tail -3 "$tmp/quoted.out")"

# usage errors exit 2
set +e
msg=$(stint evaluate --only "LSTM(32),nope" "${data[@]}" 2>&1 >/dev/null)
[ $? -eq 2 ] || fail "--only naming no configuration should exit 2"
grep -qF -- '--only: "nope" is in no configuration name of preset default (seq LSTM(32) W16 log-L1;' <<<"$msg" ||
    fail "--only: unclear error: $msg"
stint evaluate --preset nope "${data[@]}" 2>/dev/null
[ $? -eq 2 ] || fail "bad preset should exit 2"
stint evaluate --seeds 3,x "${data[@]}" 2>/dev/null
[ $? -eq 2 ] || fail "bad --seeds should exit 2"
stint evaluate --jobs 65 "${data[@]}" 2>/dev/null
[ $? -eq 2 ] || fail "--jobs 65 should exit 2"
stint train "${data[@]}" 2>/dev/null
[ $? -eq 2 ] || fail "train without --out should exit 2"
stint train "${data[@]}" --sessions "$tmp/sessions.tsv" --out "$tmp/x" 2>/dev/null
[ $? -eq 2 ] || fail "two sources should exit 2"
stint evaluate "${data[@]}" --until 2009-13-01 --out "$tmp/x" 2>/dev/null
[ $? -eq 2 ] || fail "a bad --until should exit 2"
stint evaluate --data "$tmp/nonexistent" --out "$tmp/x" 2>/dev/null
[ $? -eq 1 ] || fail "a missing data directory should exit 1"
echo "ok: $n_csv test rows, identical runs, --data == --sessions ($h1), leak test passed"
