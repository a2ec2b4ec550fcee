"""ListenProducer: listens to `listens.raw`, as stint-ingest expects them."""
import datetime
import json

from confluent_kafka import KafkaException, Producer

from ._kafka import base_config, topic_partitions
from .errors import BadArgument, KafkaFailure

DEFAULT_BROKERS = "127.0.0.1:19092"
MAX_USER_ID_BYTES = 128  # the bound every stint service keys its state by
MAX_FIELD_BYTES = 1024
MAX_MESSAGE_BYTES = 65536


def _timestamp(ts):
    """ISO-8601 text or epoch milliseconds, the two forms listens.raw takes."""
    if isinstance(ts, datetime.datetime):
        if ts.tzinfo is None:
            raise BadArgument("timestamp: a datetime needs a timezone (e.g. timezone.utc)")
        ts = ts.astimezone(datetime.timezone.utc)
        if ts.microsecond:  # sub-second: epoch milliseconds keep it
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            return (ts - epoch) // datetime.timedelta(milliseconds=1)
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(ts, bool) or not isinstance(ts, (int, str)):
        raise BadArgument("timestamp: an aware datetime, epoch milliseconds (int) or ISO-8601 text")
    if isinstance(ts, str):
        ts = ts.strip()
        if not ts:
            raise BadArgument("timestamp is empty")
        if ts.lstrip("-").isdigit():
            return int(ts)
    return ts


def listen_json(user_id, timestamp, artist, track, artist_mbid=None, track_mbid=None):
    """The listens.raw value of one listen (a compact JSON object, bytes). Checks what stint-ingest
    would send to listens.dlq: an empty or over-long field."""
    rec = {"user_id": user_id, "timestamp": _timestamp(timestamp), "artist_name": artist,
           "track_name": track}
    if artist_mbid:
        rec["artist_mbid"] = artist_mbid
    if track_mbid:
        rec["track_mbid"] = track_mbid
    for k, v in rec.items():
        if k == "timestamp":
            continue
        if not isinstance(v, str) or not v.strip():
            raise BadArgument(f"{k} must be a non-empty string")
        rec[k] = v = v.strip()
        limit = MAX_USER_ID_BYTES if k == "user_id" else MAX_FIELD_BYTES
        if len(v.encode("utf-8")) > limit:
            raise BadArgument(f"{k} is longer than {limit} bytes")
    out = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(out) > MAX_MESSAGE_BYTES:
        raise BadArgument(f"the listen is longer than {MAX_MESSAGE_BYTES} bytes")
    return out


class ListenProducer:
    """Publishes listens to listens.raw, keyed by user id, with the partitioner stint's own
    producers use (murmur2_random, the Java client's), so a user's listens land in the partition
    where `stint replay` and the services put them and ingest keeps them in order.

    The constructor checks that a broker answers and that the topic exists (BrokerUnreachable,
    UnknownTopic). send() queues one listen; flush() waits for every queued listen and returns
    the delivery reports [{"user_id", "topic", "partition", "offset"}], raising KafkaFailure when
    any listen was not delivered. Use it as a context manager to flush on exit."""

    def __init__(self, brokers=DEFAULT_BROKERS, topic="listens.raw", config=None,
                 connect_timeout_s=10.0):
        self.topic = topic
        self.brokers = brokers
        conf = base_config(brokers, {"partitioner": "murmur2_random", "acks": "all",
                                     "enable.idempotence": True, "linger.ms": 5,
                                     "message.timeout.ms": 30000})
        conf.update(config or {})
        try:
            self._p = Producer(conf)
        except KafkaException as e:
            raise BadArgument(f"Kafka settings: {e.args[0].str()}") from None
        self.partitions = topic_partitions(self._p, topic, brokers, connect_timeout_s)
        self._reports = []
        self._failed = []

    def _delivered(self, err, msg):
        user = msg.key().decode("utf-8", "replace") if msg.key() else None
        if err is not None:
            self._failed.append(f"{user}: {err.str()}")
        else:
            self._reports.append({"user_id": user, "topic": msg.topic(),
                                  "partition": msg.partition(), "offset": msg.offset()})

    def send(self, user_id, timestamp, artist, track, artist_mbid=None, track_mbid=None):
        """Queues one listen. timestamp: an aware datetime, epoch ms (int) or ISO-8601 text."""
        value = listen_json(user_id, timestamp, artist, track, artist_mbid, track_mbid)
        self.send_raw(user_id.strip(), value)

    def send_raw(self, user_id, value):
        """Queues a prepared value (bytes or str) keyed by user_id."""
        while True:
            try:
                self._p.produce(self.topic, value=value, key=user_id.encode("utf-8"),
                                on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._p.poll(0.1)
        self._p.poll(0)

    def flush(self, timeout_s=60.0):
        left = self._p.flush(timeout_s)
        reports, failed = self._reports, self._failed
        self._reports, self._failed = [], []
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise KafkaFailure(f"{len(failed)} listen(s) not delivered to {self.topic}: "
                               f"{failed[0]}{more}")
        if left:
            raise KafkaFailure(f"{left} listen(s) still undelivered to {self.topic} after "
                               f"{timeout_s:g} s")
        return reports

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.flush()
        return False
