"""What the producer and the consumer share: librdkafka's log kept off stderr unless asked for,
and the up-front metadata check that turns an unreachable broker or a missing topic into one
exception instead of librdkafka's endless retries."""
import logging

from confluent_kafka import KafkaError, KafkaException

from .errors import BrokerUnreachable, KafkaFailure, UnknownTopic

LOG = logging.getLogger("stint_client.librdkafka")
LOG.addHandler(logging.NullHandler())
LOG.propagate = False


def base_config(brokers, config):
    """librdkafka settings: the brokers, librdkafka's log routed to LOG (silent unless the caller
    adds a handler), errors left to the metadata check; config overrides."""
    conf = {"bootstrap.servers": brokers, "logger": LOG, "error_cb": lambda err: None}
    conf.update(config or {})
    return conf


def topic_partitions(client, topic, brokers, timeout_s):
    """The topic's partition ids. Asks for the whole cluster's metadata, not the topic's: a
    metadata request naming a topic may create it on a broker that auto-creates topics."""
    try:
        md = client.list_topics(timeout=timeout_s)
    except KafkaException as e:
        err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
        if err is not None and err.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT,
                                              KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE):
            raise BrokerUnreachable(f"no Kafka broker answered at {brokers} within "
                                    f"{timeout_s:g} s") from None
        raise KafkaFailure(f"metadata request to {brokers} failed: {err.str() if err else e}") \
            from None
    t = md.topics.get(topic)
    if t is None or (t.error is not None and t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise UnknownTopic(f"topic {topic!r} does not exist on {brokers}")
    if t.error is not None:
        raise KafkaFailure(f"topic {topic!r}: {t.error.str()}")
    return sorted(t.partitions)
