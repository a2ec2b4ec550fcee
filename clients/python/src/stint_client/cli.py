"""stint-client: publish listens, read stint topics as JSON lines.

Exit codes: 0 ok, 2 bad arguments, 3 Kafka broker unreachable, 4 unknown topic, 5 schema
registry unreachable (or unknown schema id), 6 Kafka failure (a listen not delivered, a consumer
error), 7 a record that cannot be decoded, 130 interrupted. Every error is one line on stderr."""
import argparse
import json
import logging
import os
import sys

from .errors import BadArgument, KafkaFailure, StintClientError

PROG = "stint-client"

EPILOG = """exit codes: 0 ok, 2 bad arguments, 3 Kafka broker unreachable, 4 unknown topic,
5 schema registry unreachable or unknown schema id, 6 Kafka failure (listen not delivered,
consumer error), 7 undecodable record, 130 interrupted"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return v
    return parse


def _kafka_props(pairs):
    conf = {}
    for p in pairs or ():
        if "=" not in p:
            raise BadArgument(f"-X {p}: expected PROP=VALUE")
        k, v = p.split("=", 1)
        conf[k] = v
    return conf


def _parser():
    ap = _Parser(prog=PROG, description="Publish listens to stint and read its topics "
                 "(predictions, predictions.outcomes, ...) as JSON lines.", epilog=EPILOG)
    sub = ap.add_subparsers(dest="cmd", metavar="{produce,consume}", parser_class=_Parser)
    sub.required = True

    common = _Parser(add_help=False)
    common.add_argument("-b", "--brokers", default=os.environ.get("STINT_KAFKA_BROKERS",
                                                                  "127.0.0.1:19092"),
                        help="Kafka bootstrap servers (STINT_KAFKA_BROKERS, default %(default)s)")
    common.add_argument("-X", dest="props", action="append", metavar="PROP=VALUE",
                        help="a librdkafka property (repeatable)")
    common.add_argument("--connect-timeout", type=_positive(float), default=10.0, metavar="S",
                        help="seconds to wait for a broker (default %(default)s)")
    common.add_argument("-v", "--verbose", action="store_true", help="librdkafka's log to stderr")

    p = sub.add_parser("produce", parents=[common], epilog=EPILOG,
                       help="publish listens to listens.raw",
                       description="Publish listens, keyed by user id, with the murmur2_random "
                       "partitioner stint uses. One listen from the options, or, without "
                       "--user, JSON objects on stdin, one a line ({\"user_id\", \"timestamp\", "
                       "\"artist_name\", \"track_name\"[, \"artist_mbid\", \"track_mbid\"]}). "
                       "Prints one delivery report a listen: {user_id, topic, partition, offset}.")
    p.add_argument("-t", "--topic", default="listens.raw", help="default %(default)s")
    p.add_argument("--user", help="user id (at most 128 bytes)")
    p.add_argument("--timestamp", help="ISO-8601 (2009-05-04T23:08:57Z) or epoch ms; "
                   "default: now")
    p.add_argument("--artist", help="artist name")
    p.add_argument("--track", help="track name")
    p.add_argument("--artist-mbid")
    p.add_argument("--track-mbid")

    c = sub.add_parser("consume", parents=[common], epilog=EPILOG,
                       help="print a topic's records as JSON lines",
                       description="Print a topic's records as JSON lines: Avro (Prediction, "
                       "PredictionOutcome, ...) decoded with the writer schema from the schema "
                       "registry, JSON (listens.raw) as is. Stops after --timeout seconds without "
                       "a record, after --max records, or at the end of the topic (--until-end); "
                       "otherwise follows the topic until interrupted.")
    c.add_argument("-t", "--topic", default="predictions", help="default %(default)s")
    c.add_argument("--registry", default=None,
                   help="schema registry URL with its API path (STINT_SCHEMA_REGISTRY_URL, "
                   "default http://127.0.0.1:18081/apis/ccompat/v7)")
    c.add_argument("--from-beginning", action="store_true",
                   help="start at the beginning of the topic (default: new records only)")
    c.add_argument("--group", help="consumer group: commit offsets, resume there next time")
    c.add_argument("--timeout", type=_positive(float), metavar="S",
                   help="stop after S seconds without a record")
    c.add_argument("-n", "--max", type=_positive(int), metavar="N", help="stop after N records")
    c.add_argument("--until-end", action="store_true",
                   help="stop at the end of every partition")
    c.add_argument("--meta", action="store_true",
                   help="print {topic, partition, offset, key, value} (as stint tail --meta)")
    c.add_argument("--latest", action="store_true",
                   help="print, when stopping, the upsert view instead of every record: per "
                   "session_id the record with the highest revision, retracted sessions dropped")
    return ap


def _dump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _produce(a, out):
    from .producer import ListenProducer, listen_json

    if a.user is None and (a.artist or a.track or a.timestamp):
        raise BadArgument("--artist/--track/--timestamp need --user")
    if a.user is not None and not (a.artist and a.track):
        raise BadArgument("--user needs --artist and --track")
    producer = ListenProducer(a.brokers, a.topic, _kafka_props(a.props), a.connect_timeout)
    if a.user is not None:
        import datetime
        ts = a.timestamp or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        producer.send(a.user, ts, a.artist, a.track, a.artist_mbid, a.track_mbid)
    else:
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
                known = ("user_id", "timestamp", "artist_name", "track_name", "artist_mbid",
                         "track_mbid")
                extra = set(rec) - set(known)
                if extra:
                    raise ValueError(f"unknown field(s) {sorted(extra)}")
                missing = [k for k in known[:4] if k not in rec]
                if missing:
                    raise ValueError(f"missing {missing}")
                value = listen_json(*(rec.get(k) for k in known))
            except (ValueError, BadArgument) as e:
                # the listens of the lines before it are sent (stdin is a stream): delivered
                # and printed first, so the caller knows what to send again
                try:
                    sent = producer.flush()
                except KafkaFailure as kf:
                    raise BadArgument(f"stdin line {n}: {e}; and of the listens before it, "
                                      f"{kf}") from None
                for r in sent:
                    out.write(_dump(r) + "\n")
                raise BadArgument(f"stdin line {n}: {e} (the {len(sent)} listen(s) before it "
                                  f"were sent)") from None
            producer.send_raw(rec["user_id"].strip(), value)
    for r in producer.flush():
        out.write(_dump(r) + "\n")
    return 0


def _consume(a, out):
    from .consumer import LatestBySession, RecordConsumer

    view = LatestBySession() if a.latest else None
    with RecordConsumer(a.topic, a.brokers, a.registry, a.from_beginning, a.group, a.timeout,
                        a.max, a.until_end, a.meta, _kafka_props(a.props),
                        a.connect_timeout) as c:
        try:
            for rec in c:
                if view is None:
                    out.write(_dump(rec) + "\n")
                    out.flush()
                    continue
                value = rec["value"] if a.meta else rec
                if not isinstance(value, dict) or "session_id" not in value:
                    raise BadArgument(f"--latest: a record of {a.topic} has no session_id")
                view.add(value)
        finally:
            if view is not None:
                for value in view.current().values():
                    out.write(_dump(value) + "\n")
    return 0


def main(argv=None):
    a = _parser().parse_args(argv)
    if a.verbose:
        from ._kafka import LOG
        LOG.addHandler(logging.StreamHandler(sys.stderr))
        LOG.setLevel(logging.DEBUG)
    try:
        return (_produce if a.cmd == "produce" else _consume)(a, sys.stdout)
    except StintClientError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # | head: stop quietly, and keep Python's exit flush quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
