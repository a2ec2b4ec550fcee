#!/bin/bash
# test_deploy_scripts.sh - the container helper scripts without Docker: deploy/docker/create-topics
# (run by the compose topic job and the Kubernetes Job) against a stand-in kafka-topics.sh that
# records its arguments, and deploy/docker/train-bundle against a stand-in `stint` that writes
# a bundle directory: a new bundle becomes current through the symlink, old ones are pruned, a
# failed training leaves the current bundle alone. And deploy/local/services (make up / make down)
# against stand-in services that answer /readyz and log "stopped exit=N" as the real ones do.
set -euo pipefail
: "${STINT_SOURCE_DIR:?}"
tmp=$(mktemp -d)
sv=$STINT_SOURCE_DIR/deploy/local/services
trap 'STINT_HOME=$tmp/home STINT_BIN_DIR=$tmp/svcbin "$sv" down >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
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

# ---- deploy/local/services ----
mkdir -p "$tmp/svcbin" "$tmp/home/services"
cat >"$tmp/svcbin/fake" <<'SH'
#!/bin/bash
# Stand-in service: logs its arguments, serves /readyz and /healthz on --http.port, and on SIGTERM
# logs "stopped exit=N" and exits N (1 for the service named in FAKE_FAIL_EXIT); the one named in
# FAKE_DIE exits at once.
name=${0##*/stint-}
echo "args: $*"
[ "$name" != "${FAKE_DIE:-}" ] || { echo "fake start-up failure"; exit 1; }
www=$(mktemp -d)
: >"$www/readyz"
: >"$www/healthz"
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$2" >/dev/null 2>&1 &
child=$!
code=0
[ "$name" != "${FAKE_FAIL_EXIT:-}" ] || code=1
trap 'kill $child; wait $child 2>/dev/null; rm -rf "$www"; echo "stopped exit=$code"; exit $code' TERM
wait $child
SH
for n in ingest enricher sessionizer clusterer predictor; do
    cp "$tmp/svcbin/fake" "$tmp/svcbin/stint-$n"
    chmod +x "$tmp/svcbin/stint-$n"
done
base=$(python3 "$STINT_SOURCE_DIR/tests/support/ports.py" 5)
export STINT_HOME=$tmp/home STINT_BIN_DIR=$tmp/svcbin STINT_SERVICES_HTTP_BASE=$base
h=$tmp/home/services
echo 'kafka.group=g' >"$h/enricher.conf"
rc=0
out=$("$sv" up) || rc=$?
check "services up: exit 0" "$rc" 0
check "services up: five started" "$(grep -c ' up (pid ' <<<"$out")" 5
check "pid files" "$(ls "$h"/*.pid | wc -l | tr -d ' ')" 5
check "predictor on base + 4" "$(grep -c "predictor up (pid [0-9]*) on http://127.0.0.1:$((base + 4))/metrics" <<<"$out")" 1
check "predictor gets --model.dir (default: the demo's bundle)" \
    "$(grep -c -- "--model.dir $tmp/home/demo/bundle" "$h/predictor.log")" 1
check "clusterer gets --model.dir" "$(grep -c -- "--model.dir" "$h/clusterer.log")" 1
check "ingest gets no --model.dir" "$(grep -c -- "--model.dir" "$h/ingest.log" || true)" 0
check "a service's .conf is passed with -F" "$(grep -c -- "-F $h/enricher.conf" "$h/enricher.log")" 1
pid_before=$(cat "$h/ingest.pid")
out=$("$sv" up)
check "up again: every service already running" "$(grep -c 'already running' <<<"$out")" 5
check "up again: same pid" "$(cat "$h/ingest.pid")" "$pid_before"
rc=0
out=$("$sv" status) || rc=$?
check "status: exit 0 when all are ready" "$rc" 0
check "status: five ready" "$(grep -c ', ready) on http' <<<"$out" || true)" 5
rc=0
out=$("$sv" down) || rc=$?
check "down: exit 0" "$rc" 0
check "down: each stopped with exit 0" "$(grep -c 'stopped (exit 0)' <<<"$out")" 5
check "down: no pid file left" "$(find "$h" -name '*.pid' | wc -l | tr -d ' ')" 0
check "down: the service is gone" "$(kill -0 "$pid_before" 2>/dev/null && echo running || echo gone)" gone
out=$("$sv" down)
check "down again: nothing to do" "$out" "services: no service running"
rc=0
"$sv" status >/dev/null || rc=$?
check "status: exit 1 when down" "$rc" 1

FAKE_FAIL_EXIT=predictor "$sv" up >/dev/null
check "the previous log is kept" "$(grep -c 'stopped exit=0' "$h/predictor.log.1")" 1
rc=0
"$sv" down >/dev/null 2>"$tmp/err" || rc=$?
check "down: fails when a service did not exit 0" "$rc" 1
check "down: names it" "$(grep -c 'predictor stopped with exit 1' "$tmp/err")" 1
rc=0
FAKE_DIE=sessionizer STINT_SERVICES_TIMEOUT=10 "$sv" up >/dev/null 2>"$tmp/err" || rc=$?
check "up: fails when a service exits during start-up" "$rc" 1
check "up: names it and shows its log" \
    "$(grep -c -e 'sessionizer exited during start-up' -e 'fake start-up failure' "$tmp/err")" 2
"$sv" down >/dev/null
rc=0
"$sv" bogus >/dev/null 2>&1 || rc=$?
check "services: usage error" "$rc" 2
unset STINT_HOME STINT_BIN_DIR STINT_SERVICES_HTTP_BASE

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
