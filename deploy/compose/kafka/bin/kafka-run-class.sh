#!/bin/bash
# Runs one Java class of the Kafka jars, with the upstream scripts' heap, GC and log4j settings:
#   kafka-run-class.sh [-server] CLASS [ARGS...]
# -server: the broker (its own log4j2.yaml, G1 tuned for pauses, 1 GB heap unless KAFKA_HEAP_OPTS).
# Otherwise a command-line tool (warnings only, 256 MB heap unless KAFKA_HEAP_OPTS), on the
# client compiler and the serial collector: a tool lives a few seconds, and starting its JVM that
# way takes about half the time (the compose topic job runs kafka-topics.sh once per topic, the
# healthcheck runs kafka-broker-api-versions.sh every 10 s).
set -euo pipefail
base=/opt/kafka
log4j=$base/config/tools-log4j2.yaml
heap=${KAFKA_HEAP_OPTS:--Xmx256M}
perf=${KAFKA_JVM_PERFORMANCE_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true}
if [ "${1:-}" = -server ]; then
    shift
    log4j=$base/config/log4j2.yaml
    heap=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
    perf=${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
fi
class=${1:?usage: kafka-run-class.sh [-server] CLASS [ARGS...]}
shift
# shellcheck disable=SC2086  # the *_OPTS variables are lists of JVM flags
exec java $heap $perf ${KAFKA_OPTS:-} ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$log4j} \
    -cp "$base/libs/*" "$class" "$@"
