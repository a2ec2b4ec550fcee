"""e2e: the Python client package (clients/python, `stint-client`) as a user installs it: a fresh
venv of the system interpreter, `pip install clients/python` from PyPI (downloads cached in
~/.cache/stint/pip, so a rerun downloads nothing; without PyPI and without that cache the test
fails and says so), then, against the shared local stack:

- the errors a user meets first, each one line on stderr, no traceback, the documented exit code:
  bad arguments (2), an unreachable broker (3), an unknown topic (4), for produce and consume;
- the five services on private topics (tests/e2e/live_env.py, the sessionizer with a 5 s gap
  so sessions close within seconds); listens published with `stint-client produce` (JSON lines on
  stdin) and with the library (ListenProducer.send) read back from listens.raw with
  `stint-client consume`; each user's listens.raw partition is the partition stint-ingest put
  that user's Listens in (murmur2_random, as stint's producers);
- a Prediction and a PredictionOutcome per user; `stint-client consume --meta` of predictions and
  predictions.outcomes (Avro decoded with confluent-kafka's AvroDeserializer and the registry)
  equals `stint tail --meta` of the same topics, record for record; `--latest` prints the upsert
  view; the library's LatestBySession keeps the highest revision and drops retracted sessions;
- an unreachable schema registry while decoding Avro: exit 5, one line; with --group, the next run
  reads the record that failed again (nothing committed past it).

Prints the venv and pip install times (cold: empty cache; warm: a rerun)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from live_env import BIN, BROKERS, FAILS, SRC, LiveServices, TopicReader, check

SYSTEM_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PIP_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "stint", "pip")
WHEELHOUSE = os.path.join(os.path.expanduser("~"), ".cache", "stint", "python-client-wheels")
GAP_S = 5
GRACE_MS = 10000
DEADLINE_S = 90  # from publishing to every Prediction and Outcome (expected ~20 s)
USERS = 6


def murmur2_partition(key, partitions):
    """The Java client's partitioner (librdkafka's murmur2_random for a non-empty key)."""
    data = key.encode("utf-8")
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = data[4 * n4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def iso(sec):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))


def pip(venv, args, env):
    return subprocess.run([os.path.join(venv, "bin", "pip"), *args], capture_output=True,
                          text=True, env=env)


def install(tmp):
    """A venv with clients/python installed; returns its bin directory, None when pip failed.

    pip's own HTTP cache does not keep PyPI's files on every machine (none is written here), so
    the downloads are kept as wheels in WHEELHOUSE: the install runs offline from it (--no-index,
    build backend included), and only when that fails (first run, or changed requirements) does
    `pip wheel` fetch them from PyPI first."""
    src = os.path.join(tmp, "stint-client-src")  # a copy: pip builds in the tree it is given
    shutil.copytree(os.path.join(SRC, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = os.path.join(tmp, "venv")
    t0 = time.monotonic()
    r = subprocess.run([SYSTEM_PY, "-m", "venv", venv], capture_output=True, text=True)
    if not check(r.returncode == 0, f"{SYSTEM_PY} -m venv: exit 0"):
        print(r.stdout + r.stderr)
        return None
    t1 = time.monotonic()
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CACHE_DIR=PIP_CACHE)
    for k in ("PYTHONPATH", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_NO_INDEX"):
        env.pop(k, None)
    offline = ["install", "--no-index", "--find-links", WHEELHOUSE, src]
    r = pip(venv, offline, env) if os.path.isdir(WHEELHOUSE) else None
    warm = r is not None and r.returncode == 0
    if not warm:
        os.makedirs(WHEELHOUSE, exist_ok=True)
        online = ["--timeout", "15", "--retries", "2"]
        r = pip(venv, ["wheel", *online, "-w", WHEELHOUSE, src], env)
        if r.returncode == 0:
            r = pip(venv, ["download", *online, "-d", WHEELHOUSE, "setuptools>=61"], env)
        for f in os.listdir(WHEELHOUSE):  # the package itself is always built from src
            if f.startswith("stint_client-"):
                os.remove(os.path.join(WHEELHOUSE, f))
        if r.returncode == 0:
            r = pip(venv, offline, env)
    t2 = time.monotonic()
    if not check(r.returncode == 0, "pip install clients/python in a fresh venv: exit 0"):
        last = [line for line in r.stderr.splitlines() if line.strip()][-5:]
        print(f"pip install clients/python needs PyPI (https://pypi.org) unless {WHEELHOUSE} "
              "holds every wheel already; is PyPI reachable?\n" + "\n".join(last))
        return None
    ck = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                         "import confluent_kafka, fastavro, stint_client; "
                         "print(confluent_kafka.version()[0], fastavro.__version__)"],
                        capture_output=True, text=True, env=env)
    print(f"timing: venv {t1 - t0:.1f} s, pip install {t2 - t1:.1f} s "
          f"({'warm: offline from' if warm else 'cold: PyPI into'} {WHEELHOUSE}); "
          f"confluent-kafka, fastavro: {ck.stdout.strip()}")
    check(ck.returncode == 0, "the venv imports stint_client, confluent_kafka and fastavro")
    return os.path.join(venv, "bin")


def client(vbin, args, env, stdin=None, timeout=60):
    return subprocess.run([os.path.join(vbin, "stint-client"), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=timeout)


def one_line_error(r, code, what):
    lines = r.stderr.splitlines()
    ok = (r.returncode == code and len(lines) == 1 and "Traceback" not in r.stderr
          and lines[0].startswith("stint-client") and ": error: " in lines[0] and not r.stdout)
    check(ok, f"{what}: exit {r.returncode} (want {code}), stderr {lines!r}")


def error_paths(vbin, env):
    one_line_error(client(vbin, ["consume", "--timeout", "abc"], env), 2, "consume --timeout abc")
    one_line_error(client(vbin, ["produce", "--user", "u"], env), 2, "produce --user without a track")
    one_line_error(client(vbin, ["frob"], env), 2, "an unknown command")
    one_line_error(client(vbin, ["produce"], env, stdin='{"user_id": "u"}\n'), 2,
                   "produce: a stdin listen without timestamp, artist, track")
    nowhere = ["-b", "127.0.0.1:1", "--connect-timeout", "3"]
    one_line_error(client(vbin, ["consume", *nowhere, "--timeout", "1"], env), 3,
                   "consume, broker unreachable")
    one_line_error(client(vbin, ["produce", *nowhere, "--user", "u", "--artist", "a", "--track",
                                 "t"], env), 3, "produce, broker unreachable")
    missing = f"stint-client-no-such-topic-{os.getpid()}"
    one_line_error(client(vbin, ["consume", "-b", BROKERS, "--topic", missing, "--timeout", "1"],
                          env), 4, "consume, unknown topic")
    one_line_error(client(vbin, ["produce", "-b", BROKERS, "--topic", missing, "--user", "u",
                                 "--artist", "a", "--track", "t"], env), 4,
                   "produce, unknown topic")


def lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def tail_meta(topic, env):
    """`stint tail <topic> --meta` to the end of the topic, sorted by (partition, offset)."""
    r = subprocess.run([os.path.join(BIN, "stint"), "tail", topic, "--meta", "-b", BROKERS],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 0, f"stint tail {topic} --meta: exit 0")
    return sorted(lines(r.stdout), key=lambda m: (m["partition"], m["offset"]))


def consume_meta(vbin, topic, env, *extra):
    r = client(vbin, ["consume", "-b", BROKERS, "--topic", topic, "--from-beginning",
                      "--until-end", "--meta", *extra], env)
    check(r.returncode == 0 and not r.stderr,
          f"stint-client consume --topic {topic} --meta: exit {r.returncode} {r.stderr.strip()}")
    return sorted(lines(r.stdout), key=lambda m: (m["partition"], m["offset"]))


LIBRARY_SEND = """
import datetime, json, sys
from stint_client import ListenProducer
brokers, topic, user, t1, t2 = sys.argv[1:6]
with ListenProducer(brokers, topic) as p:
    for t in (t1, t2):
        p.send(user, datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc), "Deep Dish",
               f"track {t}")
    for r in p.flush():
        print(json.dumps(r))
"""

LIBRARY_UPSERT = """
from stint_client import LatestBySession
v = LatestBySession()
recs = [{"session_id": "a", "revision": 1, "x": 1}, {"session_id": "a", "revision": 3, "x": 3},
        {"session_id": "a", "revision": 2, "x": 2}, {"session_id": "b", "revision": 1},
        {"session_id": "b", "revision": 2, "retracted": True}, {"session_id": "b", "revision": 1},
        {"session_id": "c"}]
changed = [v.add(r) for r in recs]
assert changed == [True, True, False, True, True, False, True], changed
assert v.current() == {"a": recs[1], "c": recs[6]}, v.current()
print("ok")
"""


def main():
    tmp = tempfile.mkdtemp(prefix="stint-pyclient-")
    live = None
    readers = []
    try:
        vbin = install(tmp)
        if vbin is None:
            return
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        error_paths(vbin, env)
        r = subprocess.run([os.path.join(vbin, "python"), "-c", LIBRARY_UPSERT],
                           capture_output=True, text=True, env=env)
        check(r.returncode == 0 and r.stdout.strip() == "ok",
              f"LatestBySession: highest revision wins, retracted dropped {r.stderr.strip()}")

        live = LiveServices("pyclient", extra={"sessionizer": [f"session.gap_s={GAP_S}",
                                                               f"session.grace_ms={GRACE_MS}",
                                                               "idle.lag_ms=0"]})
        if not live.start():
            return
        env = dict(live.env)
        env.pop("PYTHONPATH", None)
        raw, preds_t, outs_t = (live.topic(t) for t in ("listens.raw", "predictions",
                                                         "predictions.outcomes"))
        preds = TopicReader(preds_t, live.env)
        outs = TopicReader(outs_t, live.env)
        readers = [preds, outs]

        users = [f"pyc{i}_{live.tag}" for i in range(USERS)]
        now = int(time.time())
        sent = []
        for u in users[:-1]:
            for t in (now - 3, now - 1):
                sent.append({"user_id": u, "timestamp": iso(t), "artist_name": "Deep Dish",
                             "track_name": f"track {t}"})
        published_s = time.time()
        r = client(vbin, ["produce", "-b", BROKERS, "--topic", raw], env,
                   stdin="".join(json.dumps(x) + "\n" for x in sent))
        reports = lines(r.stdout) if r.returncode == 0 else []
        check(r.returncode == 0 and len(reports) == len(sent),
              f"stint-client produce: {len(reports)} delivery reports for {len(sent)} listens "
              f"{r.stderr.strip()}")
        r = subprocess.run([os.path.join(vbin, "python"), "-c", LIBRARY_SEND, BROKERS, raw,
                            users[-1], str(now - 3), str(now - 1)],
                           capture_output=True, text=True, env=env, timeout=60)
        lib_reports = lines(r.stdout) if r.returncode == 0 else []
        check(r.returncode == 0 and len(lib_reports) == 2,
              f"ListenProducer.send: 2 delivery reports {r.stderr.strip()[-300:]}")
        reports += lib_reports
        sent += [{"user_id": users[-1], "timestamp": iso(t), "artist_name": "Deep Dish",
                  "track_name": f"track {t}"} for t in (now - 3, now - 1)]

        back = consume_meta(vbin, raw, env)
        check(sorted(json.dumps(m["value"], sort_keys=True) for m in back)
              == sorted(json.dumps(x, sort_keys=True) for x in sent)
              and all(m["key"] == m["value"]["user_id"] for m in back),
              f"listens.raw read back with stint-client: {len(back)} listens, as sent, keyed by "
              f"user id")
        check(back == tail_meta(raw, live.env), "stint-client consume --meta of listens.raw == "
                                                "stint tail --meta")
        raw_part = {}
        for rep in reports:
            raw_part.setdefault(rep["user_id"], set()).add(rep["partition"])
        check(all(len(p) == 1 for p in raw_part.values()) and set(raw_part) == set(users),
              f"each user's listens in one partition of listens.raw: {raw_part}")
        want = {u: {murmur2_partition(u, 3)} for u in users}
        check(raw_part == want, f"each user's partition is murmur2(user id) % 3: {want}")

        deadline = published_s + DEADLINE_S
        got_p = preds.wait_for(lambda recs: {x.get("user_id") for x in recs} >= set(users), deadline)
        got_o = outs.wait_for(lambda recs: {x.get("user_id") for x in recs} >= set(users), deadline)
        check(got_p, f"a Prediction for each of the {USERS} users "
                     f"({time.time() - published_s:.1f} s after publishing)")
        check(got_o, f"a PredictionOutcome for each of the {USERS} users "
                     f"({time.time() - published_s:.1f} s after publishing)")
        if not (got_p and got_o):
            live.print_logs(("ingest", "sessionizer", "predictor"))

        ingest_part = {}
        for m in tail_meta(live.topic("listens"), live.env):
            ingest_part.setdefault(m["key"], set()).add(m["partition"])
        check(ingest_part == raw_part,
              f"each user's listens.raw partition is where stint-ingest put its Listens "
              f"(murmur2_random): {ingest_part} vs {raw_part}")

        for topic in (preds_t, outs_t):
            mine, theirs = consume_meta(vbin, topic, env), tail_meta(topic, live.env)
            check(mine and mine == theirs,
                  f"stint-client consume --meta == stint tail --meta on {topic}: "
                  f"{len(mine)} vs {len(theirs)} records")
            if mine != theirs:
                print(f"first client record: {json.dumps(mine[:1])}\n"
                      f"first tail record:   {json.dumps(theirs[:1])}")
        mine = [m["value"] for m in consume_meta(vbin, preds_t, env)]
        check(all(isinstance(p["session_start_ms"], int) and p["predictor"] in ("MODEL", "BASELINE")
                  for p in mine), "Avro Predictions decoded: timestamps as epoch ms, enums as text")
        r = client(vbin, ["consume", "-b", BROKERS, "--topic", preds_t, "--from-beginning",
                          "--until-end", "--latest"], env)
        latest = lines(r.stdout) if r.returncode == 0 else []
        live_ids = {p["session_id"] for p in mine if not p["retracted"]}
        check(r.returncode == 0 and sorted(p["session_id"] for p in latest) == sorted(live_ids)
              and {p["user_id"] for p in latest} == set(users),
              f"--latest: one Prediction per session ({len(latest)} for {len(live_ids)})")

        r = client(vbin, ["consume", "-b", BROKERS, "--topic", preds_t, "--from-beginning",
                          "--until-end", "--registry", "http://127.0.0.1:1/apis/ccompat/v7"], env)
        one_line_error(r, 5, "consume of Avro records, schema registry unreachable")
        # A group whose run failed on a record (the registry unreachable) reads it again next
        # time: nothing is committed past a record that was not handed over.
        group = f"stint-client-test-{os.getpid()}"
        r = client(vbin, ["consume", "-b", BROKERS, "--topic", preds_t, "--group", group,
                          "--from-beginning", "--until-end", "--registry",
                          "http://127.0.0.1:1/apis/ccompat/v7"], env)
        one_line_error(r, 5, "consume --group, schema registry unreachable")
        r = client(vbin, ["consume", "-b", BROKERS, "--topic", preds_t, "--group", group,
                          "--from-beginning", "--until-end"], env)
        again = lines(r.stdout) if r.returncode == 0 else []
        check(r.returncode == 0 and len(again) == len(mine),
              f"consume --group after a failed run: every record ({len(again)} of {len(mine)}), "
              f"none skipped")
    finally:
        for rd in readers:
            rd.close()
        if live is not None:
            live.stop()
            live.cleanup()
        if not FAILS:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} for inspection")


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
