#!/bin/sh
# The kafka-broker-api-versions.sh command of the Kafka distribution, from the jars in /opt/kafka/libs.
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
