#!/usr/bin/env python3
"""Checks the record schemas in schemas/ against the project's rules: standard Avro (parsed by
fastavro when it is installed), namespace io.stint, a doc on every record, enum and field,
nullable fields as ["null", T] with "default": null, timestamps as timestamp-millis longs, and an
ids.conf that gives every top-level schema one unique id. Prints "N passed, N failed"."""
import glob
import json
import os
import sys

SRC = os.environ.get("STINT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMAS = os.path.join(SRC, "schemas")
EXPECTED = {"Listen", "EnrichedListen", "SessionEvent", "UserProfile", "ClusterAssignment",
            "Prediction", "PredictionOutcome", "DeadLetter"}
passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL " + what)


def walk_named(t, where):
    """Checks docs of nested named types."""
    if isinstance(t, list):
        for b in t:
            walk_named(b, where)
    elif isinstance(t, dict):
        if t.get("type") in ("enum", "record", "fixed"):
            check(bool(t.get("doc")), "%s: type %s has no doc" % (where, t.get("name")))
        if t.get("type") == "array":
            walk_named(t["items"], where)
        if t.get("type") == "map":
            walk_named(t["values"], where)


def is_timestamp(t):
    return isinstance(t, dict) and t.get("type") == "long" and t.get("logicalType") == "timestamp-millis"


def check_schema(path):
    name = os.path.basename(path)
    with open(path) as f:
        s = json.load(f)
    check(s.get("type") == "record", name + ": top level is a record")
    check(s.get("namespace") == "io.stint", name + ": namespace io.stint")
    check(bool(s.get("doc")), name + ": record doc")
    for fld in s.get("fields", []):
        where = "%s: field %s" % (name, fld["name"])
        t = fld["type"]
        check(bool(fld.get("doc")), where + " has a doc")
        walk_named(t, where)
        if isinstance(t, list):
            check(t[0] == "null" and len(t) == 2, where + ' is ["null", T]')
            check("default" in fld and fld["default"] is None, where + " defaults to null")
        base = t[1] if isinstance(t, list) else t
        if isinstance(base, dict) and base.get("type") == "array":
            base = base["items"]  # an array of timestamps: its items are
        if fld["name"].endswith("_ms") and fld["name"] != "duration_ms":
            check(is_timestamp(base), where + " is a timestamp-millis long")
    return s


def main():
    files = sorted(glob.glob(os.path.join(SCHEMAS, "*.avsc")))
    names = {}
    for path in files:
        s = check_schema(path)
        names[os.path.basename(path)] = s["name"]
    check(set(names.values()) == EXPECTED, "the record set is %s" % sorted(names.values()))

    ids = {}
    with open(os.path.join(SCHEMAS, "ids.conf")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            sid, file = line.split()
            check(int(sid) not in ids, "ids.conf: id %s once" % sid)
            # deploy/local/stack reserves registry ids 1..STINT_REGISTRY_RESERVED_IDS (100) so that
            # no registry id is a static one; a static id above that range would break this.
            check(1 <= int(sid) <= 100, "ids.conf: id %s within 1..100" % sid)
            ids[int(sid)] = file
            check(os.path.exists(os.path.join(SCHEMAS, file)), "ids.conf: %s exists" % file)
    for file in names:
        check(file in ids.values(), "ids.conf gives %s an id" % file)

    try:
        import fastavro
    except ImportError:
        fastavro = None
        print("note: fastavro is not installed; standard-Avro parsing not checked")
    if fastavro:
        import io
        for path in files:
            with open(path) as f:
                parsed = fastavro.parse_schema(json.load(f))
            # Every field but the required ones takes its default; write and read one record.
            record = {}
            for fld in json.load(open(path))["fields"]:
                if "default" not in fld:
                    t = fld["type"]
                    base = t.get("type") if isinstance(t, dict) else t
                    record[fld["name"]] = {"string": "x", "long": 1, "int": 1, "double": 1.0,
                                           "boolean": True, "bytes": b"x",
                                           "enum": (t.get("symbols") or [None])[0]
                                           if isinstance(t, dict) else None}[base]
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, parsed, record)
            buf.seek(0)
            back = fastavro.schemaless_reader(buf, parsed)
            def plain(v):  # fastavro reads timestamp-millis as datetime
                return round(v.timestamp() * 1000) if hasattr(v, "timestamp") else v
            check(all(plain(back[k]) == v for k, v in record.items()),
                  os.path.basename(path) + ": fastavro round trip")

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
