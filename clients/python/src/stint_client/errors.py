"""Errors of stint_client. Each carries the exit code the `stint-client` command exits with."""


class StintClientError(Exception):
    """Base class; str(e) is a one-line message."""

    exit_code = 1


class BadArgument(StintClientError, ValueError):
    """A listen or a setting the client refuses (exit 2): before anything is sent, except for
    a bad stdin line of `produce`, whose earlier lines were sent (and printed) first."""

    exit_code = 2


class BrokerUnreachable(StintClientError):
    """No Kafka broker answered within the connect timeout (exit 3)."""

    exit_code = 3


class UnknownTopic(StintClientError):
    """The topic does not exist on the cluster (exit 4). stint's brokers do not create topics
    on first use."""

    exit_code = 4


class RegistryError(StintClientError):
    """The schema registry is unreachable, or does not know a record's schema id (exit 5)."""

    exit_code = 5


class KafkaFailure(StintClientError):
    """A listen was not delivered, or the consumer failed after it started (exit 6)."""

    exit_code = 6


class DecodeError(StintClientError):
    """A record is neither Confluent-framed Avro nor JSON the client can decode (exit 7)."""

    exit_code = 7
