#!/usr/bin/env bash
# test_redis_cluster_stack.sh - the Redis Cluster of deploy/local/stack (STINT_REDIS_CLUSTER=1):
# formed with 3 primaries and one replica each, cluster_state ok on every node, a key written
# through `redis-cli -c` read back from another node, a second start doing nothing, a stop and
# start coming back from nodes.conf (same node ids, key kept in the AOF), and a failover: a
# primary SIGKILLed (stack kill), its replica promoted and the cluster ok again, the key (written
# with WAIT 1) still there, the killed node started again (stack start) rejoining as a replica.
# It runs a cluster of its own (STINT_HOME in a temp dir, base port STINT_TEST_REDIS_CLUSTER_PORT,
# default 17100, or the next free block of ten), never the shared stack's: it kills a primary,
# which would swap roles under any other test using that cluster. About 15 s.
set -euo pipefail
: "${STINT_SOURCE_DIR:?}"
stack=$STINT_SOURCE_DIR/deploy/local/stack
tmp=$(mktemp -d)
export STINT_HOME=$tmp/home
unset STINT_REDIS_CLUSTER STINT_REDIS_CLUSTER_NODES
passed=0 failed=0
t0=$SECONDS

check() { # check DESCRIPTION GOT WANT
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        printf 'FAIL %s\n  got:  %s\n  want: %s\n' "$1" "$2" "$3"
    fi
}
fatal() { echo "FATAL $*"; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=${STINT_TEST_REDIS_CLUSTER_PORT:-17100}
for _ in $(seq 10); do
    busy=0
    for p in $(seq "$base" $((base + 5))) $(seq $((base + 10000)) $((base + 10005))); do
        if listening "$p"; then busy=1; break; fi
    done
    [ $busy = 0 ] && break
    base=$((base + 10))
done
[ $busy = 0 ] || fatal "no free block of 6 ports (and bus ports) from ${STINT_TEST_REDIS_CLUSTER_PORT:-17100}"
export STINT_REDIS_CLUSTER_PORT=$base
ports=$(seq "$base" $((base + 5)))
trap '"$stack" stop redis-cluster >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

cli() { local port=$1; shift; redis-cli -h 127.0.0.1 -p "$port" "$@" | tr -d '\r'; }
# CLUSTER NODES as "port role master-id id" lines, sorted by port.
nodes() {
    cli "$1" CLUSTER NODES | awk '{ p = $2; sub(/@.*/, "", p); sub(/.*:/, "", p)
        r = $3 ~ /master/ ? "master" : "replica"; if ($3 ~ /fail/) r = r ",fail"
        print p, r, $4, $1 }' | sort -n
}
all_ok() {
    local p
    for p in $ports; do
        [ -n "${1:-}" ] && [ "$p" = "$1" ] && continue
        cli "$p" CLUSTER INFO | grep -qx 'cluster_state:ok' || return 1
        cli "$p" CLUSTER INFO | grep -qx 'cluster_slots_ok:16384' || return 1
    done
}
# wait_until SECONDS COMMAND...: polls every 0.1 s.
wait_until() {
    local limit=$1 start=$SECONDS
    shift
    until "$@"; do
        [ $((SECONDS - start)) -lt "$limit" ] || return 1
        sleep 0.1
    done
}

# ---- formed ----
s=$SECONDS
"$stack" start redis-cluster >"$tmp/start.out" 2>&1 || { cat "$tmp/start.out"; fatal "stack start redis-cluster failed"; }
echo "cluster formed in $((SECONDS - s))s on 127.0.0.1:$base..$((base + 5))"
check "created at the first start" "$(grep -c 'redis cluster created' "$tmp/start.out")" 1
for p in $ports; do
    check "node $p: cluster_state ok, all slots ok" "$(cli "$p" CLUSTER INFO | grep -E '^cluster_(state|slots_ok|known_nodes):' | tr '\n' ' ')" \
        "cluster_state:ok cluster_slots_ok:16384 cluster_known_nodes:6 "
    check "node $p: appendonly yes" "$(cli "$p" CONFIG GET appendonly | tail -n 1)" yes
    check "node $p: appendfsync always" "$(cli "$p" CONFIG GET appendfsync | tail -n 1)" always
    check "node $p: bound to 127.0.0.1 only" "$(cli "$p" CONFIG GET bind | tail -n 1)" 127.0.0.1
done
nodes "$base" >"$tmp/nodes1"
check "3 primaries" "$(grep -c ' master ' "$tmp/nodes1")" 3
check "3 replicas" "$(grep -c ' replica ' "$tmp/nodes1")" 3
check "one replica per primary" \
    "$(awk '$2 == "master" { m[$4] = 1 } $2 == "replica" { r[$3]++ } END { for (id in m) printf "%d", r[id] }' "$tmp/nodes1")" 111
check "redis-cluster-nodes: the primaries" "$("$stack" redis-cluster-nodes | tr '\n' ' ')" \
    "$(awk '$2 == "master" { printf "127.0.0.1:%s ", $1 }' "$tmp/nodes1")"
check "STINT_REDIS_CLUSTER_NODES: the seed list" \
    "$(STINT_REDIS_CLUSTER=1 bash -c '. "$1"; echo "$STINT_REDIS_CLUSTER_NODES"' - "$STINT_SOURCE_DIR/deploy/local/env.sh")" \
    "127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
check "a second start does nothing" "$("$stack" start redis-cluster)" \
    "stack: redis cluster already up on 127.0.0.1:$base..$((base + 5))"
check "status" "$(STINT_REDIS_CLUSTER=1 "$stack" status | grep 'redis cluster' | sed 's/, primaries.*//')" \
    "stack: redis cluster up on 127.0.0.1:$base..$((base + 5)), cluster_state:ok"

# ---- a key through redirections, acknowledged by a replica ----
key='stint:test:{cluster-stack}:k'
slot=$(cli "$base" CLUSTER KEYSLOT "$key")
# The primary that serves the slot, from CLUSTER NODES' slot ranges.
owner=$(cli "$base" CLUSTER NODES | awk -v s="$slot" '$3 ~ /master/ {
    for (i = 9; i <= NF; i++) { n = split($i, r, "-"); lo = r[1]; hi = n > 1 ? r[2] : r[1]
        if (s >= lo + 0 && s <= hi + 0) { p = $2; sub(/@.*/, "", p); sub(/.*:/, "", p); print p } } }')
[ -n "$owner" ] || fatal "no primary serves slot $slot"
other=$base
[ "$other" = "$owner" ] && other=$((base + 1))
# One connection, so WAIT follows the SET to the node the redirection led to.
ack=$(printf 'SET %s cluster-value\nWAIT 1 5000\n' "$key" | redis-cli -c -h 127.0.0.1 -p "$other" | tr -d '\r' | grep -v '^-> Redirected' | tr '\n' ' ')
check "SET through -c, WAIT 1 acknowledged by 1 replica" "$ack" "OK 1 "
check "read back through -c from node $other" "$(redis-cli -c -h 127.0.0.1 -p "$other" GET "$key" | tr -d '\r')" cluster-value

# ---- stop and start: back from nodes.conf, not created again ----
"$stack" stop redis-cluster >/dev/null
check "stopped" "$(for p in $ports; do listening "$p" && echo "$p"; done | wc -l)" 0
s=$SECONDS
"$stack" start redis-cluster >"$tmp/start2.out" 2>&1 || { cat "$tmp/start2.out"; fatal "second start failed"; }
echo "cluster back from nodes.conf in $((SECONDS - s))s"
check "not created again" "$(grep -c 'created' "$tmp/start2.out" || true)" 0
check "same node ids and roles" "$(nodes "$base")" "$(cat "$tmp/nodes1")"
check "key kept" "$(redis-cli -c -h 127.0.0.1 -p "$other" GET "$key" | tr -d '\r')" cluster-value

# ---- failover ----
owner_id=$(awk -v p="$owner" '$1 == p { print $4 }' "$tmp/nodes1")
replica=$(awk -v id="$owner_id" '$3 == id { print $1 }' "$tmp/nodes1")
[ -n "$replica" ] || fatal "primary $owner has no replica"
"$stack" kill "redis-cluster:$owner" >/dev/null
s=$SECONDS
promoted() { [ "$(cli "$replica" ROLE | head -n 1)" = master ] && all_ok "$owner"; }
if wait_until 20 promoted; then
    echo "replica $replica promoted and cluster ok in $((SECONDS - s))s after SIGKILL of $owner"
    check "replica promoted" yes yes
else
    check "replica $replica promoted within 20 s" "$(cli "$replica" ROLE | head -n 1); $(cli "$replica" CLUSTER INFO | head -n 1)" "master; cluster_state:ok"
fi
check "key after failover" "$(redis-cli -c -h 127.0.0.1 -p "$other" GET "$key" | tr -d '\r')" cluster-value
check "redis-cluster-nodes: the new primary" "$("$stack" redis-cluster-nodes | grep -c "^127.0.0.1:$replica\$")" 1
check "status: 5 of 6" "$(STINT_REDIS_CLUSTER=1 "$stack" status | grep 'redis cluster' | sed 's/, cluster_state.*//')" \
    "stack: redis cluster: 5 of 6 nodes up (down: $owner)"

s=$SECONDS
"$stack" start "redis-cluster:$owner" >"$tmp/start3.out" 2>&1 || { cat "$tmp/start3.out"; fatal "restarting node $owner failed"; }
rejoined() { [ "$(cli "$owner" ROLE | head -n 2 | tr '\n' ' ')" = "slave 127.0.0.1 " ] \
    && cli "$owner" INFO replication | grep -qx "master_port:$replica" \
    && cli "$owner" INFO replication | grep -qx 'master_link_status:up'; }
if wait_until 20 rejoined; then
    echo "node $owner back as a replica of $replica in $((SECONDS - s))s"
    check "rejoined as a replica" yes yes
else
    check "node $owner a replica of $replica within 20 s" "$(cli "$owner" INFO replication | grep -E '^(role|master_port|master_link_status):' | tr '\n' ' ')" \
        "role:slave master_port:$replica master_link_status:up "
fi
check "all nodes ok again" "$(all_ok && echo ok)" ok
check "the key on the rejoined replica" "$(printf 'READONLY\nGET %s\n' "$key" | redis-cli -h 127.0.0.1 -p "$owner" | tr -d '\r' | tail -n 1)" cluster-value

"$stack" stop redis-cluster >/dev/null
check "stopped at the end" "$(for p in $ports; do listening "$p" && echo "$p"; done | wc -l)" 0
echo "$passed passed, $failed failed ($((SECONDS - t0))s)"
[ "$failed" = 0 ]
