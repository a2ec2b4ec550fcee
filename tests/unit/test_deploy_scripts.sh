#!/bin/bash
# test_deploy_scripts.sh - the container helper scripts without Docker: deploy/docker/create-topics
# (run by the compose topic job and the Kubernetes Job) against a stand-in kafka-topics.sh that
# records its arguments, and deploy/docker/train-bundle against a stand-in `stint` that writes
# a bundle directory: a new bundle becomes current through the symlink, old ones are pruned, a
# failed training leaves the current bundle alone.
set -euo pipefail
: "${STINT_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # check DESCRIPTION GOT WANT
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        printf 'FAIL %s\n  got:  %s\n  want: %s\n' "$1" "$2" "$3"
    fi
}
ct=$STINT_SOURCE_DIR/deploy/docker/create-topics
tb=$STINT_SOURCE_DIR/deploy/docker/train-bundle

# ---- create-topics ----
cat >"$tmp/kafka-topics.sh" <<'SH'
#!/bin/sh
case " $* " in *" --list "*) exit 0 ;; esac
echo "$*" >>"$KT_LOG"
SH
chmod +x "$tmp/kafka-topics.sh"
export KAFKA_TOPICS_SH=$tmp/kafka-topics.sh KT_LOG=$tmp/kt.log
out=$(sh "$ct" kafka:9092 6 1 "$STINT_SOURCE_DIR/deploy/topics.conf")
want_n=$(grep -c -v -E '^\s*(#|$)' "$STINT_SOURCE_DIR/deploy/topics.conf")
check "one kafka-topics.sh --create per topic" "$(grep -c -- '--create --if-not-exists' "$tmp/kt.log")" "$want_n"
check "summary line" "$out" "create-topics: $want_n topics present on kafka:9092 (6 partitions, replication 1)"
check "listens.raw created" \
    "$(grep -- '--topic listens.raw ' "$tmp/kt.log")" \
    "--bootstrap-server kafka:9092 --create --if-not-exists --topic listens.raw --partitions 6 --replication-factor 1"
compacted=$(grep -- 'cleanup.policy=compact' "$tmp/kt.log" | sed 's/.*--topic \([^ ]*\).*/\1/' | sort | tr '\n' ' ')
want_c=$(awk '$2 == "compact" { print $1 }' "$STINT_SOURCE_DIR/deploy/topics.conf" | sort | tr '\n' ' ')
check "compacted topics as in topics.conf" "$compacted" "$want_c"
check "compacted topics exist" "$([ -n "$want_c" ] && echo yes)" "yes"

: >"$tmp/kt.log"
printf 'security.protocol=SASL_SSL\n' >"$tmp/client.properties"
printf '# c\n\none.topic\ntwo.topic compact\n' >"$tmp/t.conf"
KAFKA_COMMAND_CONFIG=$tmp/client.properties sh "$ct" b:9093 3 3 "$tmp/t.conf" >/dev/null
check "KAFKA_COMMAND_CONFIG passed on" "$(grep -c -- "--command-config $tmp/client.properties" "$tmp/kt.log")" 2
check "compact on two.topic only" "$(grep -- 'cleanup.policy=compact' "$tmp/kt.log" | grep -c -- '--topic two.topic')" 1
: >"$tmp/kt.log"
KAFKA_COMMAND_CONFIG=$tmp/absent sh "$ct" b:9093 3 3 "$tmp/t.conf" >/dev/null
check "absent command config not passed" "$(grep -c -- '--command-config' "$tmp/kt.log" || true)" 0

printf 'good.topic\nbad.topic delete\n' >"$tmp/bad.conf"
rc=0
sh "$ct" b:9093 3 3 "$tmp/bad.conf" >/dev/null 2>"$tmp/err" || rc=$?
check "a bad policy is refused" "$rc" 1
check "the error names the line" "$(grep -c 'bad line: bad.topic delete' "$tmp/err")" 1
rc=0
sh "$ct" b:9093 3 >/dev/null 2>&1 || rc=$?
check "usage error" "$rc" 2

# ---- train-bundle ----
mkdir -p "$tmp/bin"
cat >"$tmp/bin/stint" <<'SH'
#!/bin/sh
# Stand-in for `stint train ... --out DIR`: writes DIR/metadata.json, or fails on STINT_FAKE_FAIL.
[ "$1" = train ] || exit 3
while [ $# -gt 0 ]; do
    [ "$1" = --out ] && out=$2
    shift
done
[ -z "${STINT_FAKE_FAIL:-}" ] || exit 1
mkdir -p "$out" && echo '{"model_version":"x"}' >"$out/metadata.json"
SH
chmod +x "$tmp/bin/stint"
models=$tmp/models
mkdir -p "$models"
for i in 1 2 3 4; do
    # Distinct UTC-second names: pre-create older bundles instead of sleeping.
    mkdir -p "$models/bundle-2020010${i}T000000Z"
done
PATH=$tmp/bin:$PATH bash "$tb" --keep 2 "$models" --from-topic sessions >/dev/null
cur=$(readlink "$models/current")
new=no
[[ $cur =~ ^bundle-[0-9]{8}T[0-9]{6}Z$ && $cur != bundle-2020* ]] && new=yes
check "current is a relative link to a new bundle ($cur)" "$new" yes
check "the new bundle has its metadata" "$([ -f "$models/current/metadata.json" ] && echo yes)" yes
check "only the newest 2 bundles kept" "$(find "$models" -mindepth 1 -maxdepth 1 -type d | wc -l | tr -d ' ')" 2
check "the older kept one is the newest old one" "$([ -d "$models/bundle-20200104T000000Z" ] && echo yes)" yes
check "no partial bundle left" "$(find "$models" -name '*.partial' | wc -l | tr -d ' ')" 0

rc=0
STINT_FAKE_FAIL=1 PATH=$tmp/bin:$PATH bash "$tb" "$models" --from-topic sessions >/dev/null 2>&1 || rc=$?
check "a failed training fails" "$rc" 1
check "a failed training keeps the current bundle" "$(readlink "$models/current")" "$cur"
check "a failed training leaves no partial bundle" "$(find "$models" -name '*.partial' | wc -l | tr -d ' ')" 0
rc=0
bash "$tb" --keep 0 "$models" >/dev/null 2>&1 || rc=$?
check "--keep 0 is refused" "$rc" 2

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
