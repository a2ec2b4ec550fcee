# Shared settings of the local stack, sourced by bootstrap and stack. Every value can be overridden
# from the environment; services read the same STINT_* names (see README, "Configuration").
KAFKA_VERSION=${STINT_KAFKA_VERSION:-4.1.1}
STINT_HOME=${STINT_HOME:-$HOME/.stint}
STINT_CACHE=${STINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stint}
KAFKA_LIBS=$STINT_CACHE/kafka-$KAFKA_VERSION/libs
STINT_KAFKA_PORT=${STINT_KAFKA_PORT:-19092}
STINT_KAFKA_CONTROLLER_PORT=${STINT_KAFKA_CONTROLLER_PORT:-19093}
STINT_REDIS_PORT=${STINT_REDIS_PORT:-16379}
STINT_PARTITIONS=${STINT_PARTITIONS:-6}
STINT_STACK_TIMEOUT=${STINT_STACK_TIMEOUT:-90}
STINT_KAFKA_HEAP=${STINT_KAFKA_HEAP:-768m}
# The Kubernetes manifest validator (deploy/local/k8s-validate.txt), installed by bootstrap.
K8S_VALIDATE_VENV=$STINT_CACHE/k8s-validate-1.37.0
