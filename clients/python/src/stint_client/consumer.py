"""RecordConsumer: a stint topic's records as dicts (Avro through the schema registry, JSON as
is), and LatestBySession: the upsert view of predictions and outcomes."""
import datetime
import json
import os
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, \
    TopicPartition

from ._kafka import base_config, topic_partitions
from .errors import BadArgument, DecodeError, KafkaFailure, RegistryError, UnknownTopic
from .producer import DEFAULT_BROKERS

DEFAULT_REGISTRY_URL = "http://127.0.0.1:18081/apis/ccompat/v7"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_FATAL_CODES = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED,
                KafkaError._AUTHENTICATION, KafkaError._SSL}


def registry_url_from_env():
    """The registry the services use: STINT_SCHEMA_REGISTRY_URL, the local stack's when unset."""
    return os.environ.get("STINT_SCHEMA_REGISTRY_URL") or DEFAULT_REGISTRY_URL


def _plain(v):
    """fastavro's logical types back to what is on the wire: timestamp-millis (every stint *_ms
    field) as epoch milliseconds, so records read the same as `stint tail` prints them."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return (v - _EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    return v


class _Avro:
    """confluent-kafka's schema registry client and AvroDeserializer (writer schema by the id in
    the Confluent wire header, GET /schemas/ids/{id}), made on the first Avro record."""

    def __init__(self, url):
        self.url = url
        self._deser = None

    def decode(self, topic, value):
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.schema_registry.error import SchemaRegistryError
        from confluent_kafka.serialization import MessageField, SerializationContext

        schema_id = int.from_bytes(value[1:5], "big")
        try:
            if self._deser is None:
                client = SchemaRegistryClient({"url": self.url, "timeout": 10, "max.retries": 1})
                self._deser = AvroDeserializer(client, from_dict=lambda d, ctx: _plain(d))
            return self._deser(value, SerializationContext(topic, MessageField.VALUE))
        except SchemaRegistryError as e:
            raise RegistryError(f"schema registry {self.url}: schema id {schema_id}: "
                                f"{e.error_message} (HTTP {e.http_status_code})") from None
        except Exception as e:  # httpx's transport errors are not OSErrors
            if isinstance(e, OSError) or type(e).__module__.startswith(("httpx", "httpcore")):
                raise RegistryError(f"schema registry unreachable at {self.url} "
                                    f"({type(e).__name__}: {e})") from None
            raise DecodeError(f"{topic}: schema id {schema_id}: cannot decode the record "
                              f"({type(e).__name__}: {e})") from None


def decode_value(topic, value, avro):
    """One record value: Confluent-framed Avro (byte 0 is 0, then a 4-byte schema id) through
    the registry, else JSON (listens.raw), else the text itself, as `stint tail` does."""
    if value is None:
        return None
    if len(value) >= 5 and value[0] == 0:
        return avro.decode(topic, value)
    try:
        return json.loads(value)
    except ValueError:
        return value.decode("utf-8", "replace")


class RecordConsumer:
    """Iterates over a topic's records as dicts (meta=True: {topic, partition, offset, key,
    value}, the shape of `stint tail --meta`).

    - from_beginning: start at the beginning of every partition, else at its end (new records).
    - group: a consumer group id; offsets are then committed and a later run with the same group
      resumes where this one stopped (from_beginning applies to a group without offsets). With
      no group the client reads every partition without joining a group (nothing committed).
    - stop: idle_timeout_s (no record for that long), max_records, or until_end (the end of
      every partition as it was when reached); none of them: follow forever.

    The constructor checks the broker and the topic (BrokerUnreachable, UnknownTopic); Avro
    records need the registry (RegistryError on the first record when it is unreachable)."""

    def __init__(self, topic, brokers=DEFAULT_BROKERS, registry_url=None, from_beginning=False,
                 group=None, idle_timeout_s=None, max_records=None, until_end=False, meta=False,
                 config=None, connect_timeout_s=10.0):
        self.topic = topic
        self.meta = meta
        self.idle_timeout_s = idle_timeout_s
        self.max_records = max_records
        self.until_end = until_end
        self._avro = _Avro((registry_url or registry_url_from_env()).rstrip("/"))
        conf = base_config(brokers, {
            "group.id": group or f"stint-client-{os.getpid()}",
            "enable.auto.commit": bool(group),
            # a group's offset is stored once its record was decoded and handed over (the
            # caller came back for the next): a record that failed to decode, or that the
            # caller never got past, is read again by the group's next run
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.partition.eof": True,
        })
        conf.update(config or {})
        conf["enable.auto.offset.store"] = False  # the client stores offsets (above)
        try:
            self._c = Consumer(conf)
        except KafkaException as e:
            raise BadArgument(f"Kafka settings: {e.args[0].str()}") from None
        try:
            self.partitions = topic_partitions(self._c, topic, brokers, connect_timeout_s)
        except Exception:
            self._c.close()
            raise
        if group:
            self._c.subscribe([topic])
        else:
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            self._c.assign([TopicPartition(topic, p, start) for p in self.partitions])
        self._closed = False
        self._group = bool(group)

    def __iter__(self):
        eof = set()
        n = 0
        last = time.monotonic()
        handed = None  # the record last handed over: its offset is stored when the caller is back
        while not self._closed:
            if handed is not None:
                if self._group:
                    self._c.store_offsets(message=handed)
                handed = None
            if self.max_records is not None and n >= self.max_records:
                return
            if self.idle_timeout_s is not None and time.monotonic() - last >= self.idle_timeout_s:
                return
            m = self._c.poll(0.2)
            if m is None:
                continue
            if m.error():
                code = m.error().code()
                if code == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    if self.until_end and eof >= set(self.partitions):
                        return
                    continue
                if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise UnknownTopic(f"topic {self.topic!r} disappeared")
                if m.error().fatal() or code in _FATAL_CODES:
                    raise KafkaFailure(f"{self.topic}: {m.error().str()}")
                continue  # a broker gone or restarting: librdkafka reconnects on its own
            eof.discard(m.partition())
            last = time.monotonic()
            value = decode_value(m.topic(), m.value(), self._avro)
            n += 1
            handed = m
            if self.meta:
                key = m.key().decode("utf-8", "replace") if m.key() is not None else None
                yield {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                       "key": key, "value": value}
            else:
                yield value

    def close(self):
        if not self._closed:
            self._closed = True
            self._c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class LatestBySession:
    """The upsert view a user keeps of `predictions` (and of `predictions.outcomes`):

    - per session_id, the record with the highest `revision` wins (a record without one, as a
      PredictionOutcome, counts as revision 0; of equal revisions the later read wins, so a
      re-emitted copy changes nothing);
    - a winning record with `retracted` true deletes the session: it is kept as a tombstone (so
      an older revision read later cannot bring the session back) but not returned.

    add(rec) returns True when rec changed the view; current() is {session_id: record} without
    the retracted ones."""

    def __init__(self):
        self._by = {}

    def add(self, rec):
        sid = rec["session_id"]
        old = self._by.get(sid)
        if old is not None and old.get("revision", 0) > rec.get("revision", 0):
            return False
        self._by[sid] = rec
        return old != rec

    def current(self):
        return {sid: r for sid, r in self._by.items() if not r.get("retracted", False)}
