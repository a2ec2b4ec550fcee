#!/bin/sh
# The kafka-topics.sh command of the Kafka distribution, from the jars in /opt/kafka/libs.
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.TopicCommand "$@"
