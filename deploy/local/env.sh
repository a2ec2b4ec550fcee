# Shared settings of the local stack, sourced by bootstrap and stack. Every value can be overridden
# from the environment; services read the same STINT_* names (see README, "Configuration").
KAFKA_VERSION=${STINT_KAFKA_VERSION:-4.1.1}
STINT_HOME=${STINT_HOME:-$HOME/.stint}
STINT_CACHE=${STINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stint}
KAFKA_LIBS=$STINT_CACHE/kafka-$KAFKA_VERSION/libs
# librdkafka 2.12.1 built from source by bootstrap (deploy/local/build-librdkafka); CMake looks for it
# at the same path (cmake/StintDeps.cmake).
STINT_RDKAFKA_PREFIX=${STINT_RDKAFKA_PREFIX:-$STINT_CACHE/librdkafka}
STINT_KAFKA_PORT=${STINT_KAFKA_PORT:-19092}
STINT_KAFKA_CONTROLLER_PORT=${STINT_KAFKA_CONTROLLER_PORT:-19093}
STINT_REDIS_PORT=${STINT_REDIS_PORT:-16379}
STINT_PARTITIONS=${STINT_PARTITIONS:-6}
STINT_STACK_TIMEOUT=${STINT_STACK_TIMEOUT:-90}
STINT_KAFKA_HEAP=${STINT_KAFKA_HEAP:-768m}
# The schema registry: Apicurio Registry built from Maven Central by bootstrap (deploy/local/registry),
# serving the Confluent-compatible API under /apis/ccompat/v7.
REGISTRY_VERSION=2.4.2.Final
REGISTRY_APP=$STINT_CACHE/apicurio-registry-$REGISTRY_VERSION/quarkus-app
STINT_REGISTRY_PORT=${STINT_REGISTRY_PORT:-18081}
STINT_REGISTRY_HEAP=${STINT_REGISTRY_HEAP:-256m}
# What the services and the stint commands of the local stack use (their built-in default is this
# URL on the default port). Set empty for the static ids of schemas/ids.conf.
STINT_SCHEMA_REGISTRY_URL=${STINT_SCHEMA_REGISTRY_URL-http://127.0.0.1:$STINT_REGISTRY_PORT/apis/ccompat/v7}
# Ids 1..this are taken by placeholders in a new registry, so registry ids never equal static ones.
STINT_REGISTRY_RESERVED_IDS=${STINT_REGISTRY_RESERVED_IDS:-100}
# A Redis Cluster beside the single Redis (deploy/local/stack, STINT_REDIS_CLUSTER=1): 3 primaries
# and 3 replicas on 127.0.0.1, ports STINT_REDIS_CLUSTER_PORT..+5, their cluster bus ports 10000
# higher (17000..17005 and 27000..27005 by default, clear of every port above, of the services'
# 19201..19205 and of deploy/compose/test's 26379..29105). STINT_REDIS_CLUSTER_NODES is the seed
# list for cluster clients, the three first ports; exported only when the cluster is on, so a
# default stack's processes see the same environment as before.
STINT_REDIS_CLUSTER=${STINT_REDIS_CLUSTER:-0}
STINT_REDIS_CLUSTER_PORT=${STINT_REDIS_CLUSTER_PORT:-17000}
STINT_REDIS_CLUSTER_NODES=${STINT_REDIS_CLUSTER_NODES:-127.0.0.1:$STINT_REDIS_CLUSTER_PORT,127.0.0.1:$((STINT_REDIS_CLUSTER_PORT + 1)),127.0.0.1:$((STINT_REDIS_CLUSTER_PORT + 2))}
[ "$STINT_REDIS_CLUSTER" = 1 ] && export STINT_REDIS_CLUSTER_NODES
# The Kubernetes manifest validator (deploy/local/k8s-validate.txt), installed by bootstrap.
K8S_VALIDATE_VENV=$STINT_CACHE/k8s-validate-1.37.0

# The pid of a program just started with `setsid nohup PROGRAM ... &`, found by a fixed string of
# its command line: $! is setsid's own pid when setsid had to fork (its caller led a process
# group, as under job control), and that process exits at once. Prints the newest such process
# that is the program itself (not setsid or nohup still on the way to it, nor a child it forked
# that still shows the same command line, as a shell script's subshells do), or the fallback ($!)
# when none shows up within 5 s.
stint_started_pid() {
    local fallback=$1 marker=$2 re i pid cmd ppid
    re=$(printf '%s' "$marker" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
    for i in $(seq 50); do
        for pid in $(pgrep -f -- "$re" | sort -rn); do
            cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
            case $cmd in setsid\ * | nohup\ * | '') continue ;; esac
            ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
            case $(tr '\0' ' ' 2>/dev/null <"/proc/$ppid/cmdline") in
                setsid\ * | nohup\ *) ;;
                *"$marker"*) continue ;;
            esac
            case $cmd in *"$marker"*) echo "$pid"; return 0 ;; esac
        done
        sleep 0.1
    done
    echo "$fallback"
}
