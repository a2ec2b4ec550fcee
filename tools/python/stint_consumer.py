#!/usr/bin/env python3
"""stint_consumer.py - read a stint topic as a user's own consumer would: a real Kafka client
(confluent-kafka), the Confluent wire format (byte 0 = 0, 4-byte big-endian schema id, Avro
binary), and the writer schema looked up by id: from the schema registry (GET /schemas/ids/<id>)
named by STINT_SCHEMA_REGISTRY_URL (default: the local stack's, as for the services), or from
schemas/ids.conf when that variable is set empty (stint's static-id fallback).

The Avro binary decoder is the few dozen lines below (records, enums, arrays, maps, unions,
fixed and every primitive), so nothing beyond confluent-kafka is needed.

    stint_consumer.py --topic predictions [--brokers 127.0.0.1:19092] [--max N] [--timeout S]

prints one JSON object per record. As a module: SchemaSource, decode_message, consume.

For users this is superseded by the pip-installable client in clients/python (`stint-client`,
producer and consumer, current confluent-kafka from PyPI, one-line errors); this script stays as
the tests' dependency-free reader on Debian's python3-confluent-kafka."""
import argparse
import json
import os
import struct
import sys
import urllib.request


LOCAL_REGISTRY_URL = "http://127.0.0.1:18081/apis/ccompat/v7"


def registry_url_from_env():
    """The registry the services use: STINT_SCHEMA_REGISTRY_URL (SCHEMA_REGISTRY_URL as an older
    name), the local stack's when neither is set; None (static ids) when it is set empty."""
    url = os.environ.get("STINT_SCHEMA_REGISTRY_URL", os.environ.get("SCHEMA_REGISTRY_URL"))
    if url is None:
        url = LOCAL_REGISTRY_URL
    return url or None


class SchemaSource:
    """Writer schemas by id: the registry at url, else ids.conf in schemas_dir."""

    def __init__(self, schemas_dir, url=None):
        self.url = url.rstrip("/") if url else None
        self.schemas_dir = schemas_dir
        self.cache = {}
        self.static = {}
        if not self.url:
            with open(os.path.join(schemas_dir, "ids.conf"), encoding="utf-8") as f:
                for line in f:
                    line = line.split("#", 1)[0].strip()
                    if line:
                        sid, name = line.split(None, 1)
                        self.static[int(sid)] = os.path.join(schemas_dir, name)

    def get(self, schema_id):
        if schema_id not in self.cache:
            if self.url:
                with urllib.request.urlopen(f"{self.url}/schemas/ids/{schema_id}", timeout=10) as r:
                    text = json.load(r)["schema"]
            else:
                if schema_id not in self.static:
                    raise ValueError(f"unknown schema id {schema_id}")
                with open(self.static[schema_id], encoding="utf-8") as f:
                    text = f.read()
            self.cache[schema_id] = json.loads(text)
        return self.cache[schema_id]


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated Avro body")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def long(self):
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)  # zigzag
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")


def _decode(schema, r, named):
    if isinstance(schema, list):  # union: branch index, then the branch
        return _decode(schema[r.long()], r, named)
    if isinstance(schema, dict):
        t = schema["type"]
        if t == "record":
            named[schema["name"]] = schema
            return {f["name"]: _decode(f["type"], r, named) for f in schema["fields"]}
        if t == "enum":
            named[schema["name"]] = schema
            return schema["symbols"][r.long()]
        if t in ("array", "map"):
            out = [] if t == "array" else {}
            while True:
                n = r.long()
                if n == 0:
                    return out
                if n < 0:
                    n = -n
                    r.long()  # block size in bytes
                for _ in range(n):
                    if t == "array":
                        out.append(_decode(schema["items"], r, named))
                    else:
                        k = r.take(r.long()).decode("utf-8")
                        out[k] = _decode(schema["values"], r, named)
        if t == "fixed":
            named[schema["name"]] = schema
            return r.take(schema["size"])
        return _decode(t, r, named)  # a primitive with a logicalType
    if schema == "null":
        return None
    if schema == "boolean":
        return r.take(1) != b"\x00"
    if schema in ("int", "long"):
        return r.long()
    if schema == "float":
        return struct.unpack("<f", r.take(4))[0]
    if schema == "double":
        return struct.unpack("<d", r.take(8))[0]
    if schema == "bytes":
        return r.take(r.long())
    if schema == "string":
        return r.take(r.long()).decode("utf-8")
    name = schema.split(".")[-1]
    if name in named:
        return _decode(named[name], r, named)
    raise ValueError(f"unsupported schema {schema!r}")


def decode_message(value, schemas):
    """One wire-format message -> (schema id, dict)."""
    if len(value) < 5 or value[0] != 0:
        raise ValueError("not Confluent wire format")
    schema_id = struct.unpack(">i", value[1:5])[0]
    r = _Reader(value[5:])
    rec = _decode(schemas.get(schema_id), r, {})
    if r.pos != len(r.data):
        raise ValueError("trailing bytes after the record")
    return schema_id, rec


def consume(topic, brokers, schemas, want=None, timeout_s=60.0, group=None):
    """Reads topic from the beginning until want records (or timeout_s of no progress / end of
    every partition when want is None); returns a list of (key, schema id, dict)."""
    from confluent_kafka import Consumer, KafkaError

    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group or f"stint-consumer-{os.getpid()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    c.subscribe([topic])
    out, eof, assigned = [], set(), None
    import time
    last = time.monotonic()
    try:
        while time.monotonic() - last < timeout_s:
            if want is not None and len(out) >= want:
                break
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    assigned = assigned or c.assignment()
                    if want is None and assigned and len(eof) >= len(assigned):
                        break
                    continue
                raise RuntimeError(str(m.error()))
            last = time.monotonic()
            sid, rec = decode_message(m.value(), schemas)
            out.append((m.key().decode("utf-8") if m.key() else None, sid, rec))
    finally:
        c.close()
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="print a stint topic's records as JSON lines")
    ap.add_argument("--topic", default="predictions")
    ap.add_argument("--brokers", default=os.environ.get("STINT_KAFKA_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--schemas", default=os.path.join(here, "..", "..", "schemas"))
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    schemas = SchemaSource(a.schemas, registry_url_from_env())
    for _, _, rec in consume(a.topic, a.brokers, schemas, a.max, a.timeout):
        print(json.dumps(rec, default=lambda b: b.decode("latin-1")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
