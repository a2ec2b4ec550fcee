#!/bin/sh
# The kafka-storage.sh command of the Kafka distribution, from the jars in /opt/kafka/libs.
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.StorageTool "$@"
