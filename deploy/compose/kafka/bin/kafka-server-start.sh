#!/bin/sh
# Starts the broker with the given server.properties (as the distribution's script does).
exec "$(dirname "$0")/kafka-run-class.sh" -server kafka.Kafka "$@"
