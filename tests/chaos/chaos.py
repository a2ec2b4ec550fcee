#!/usr/bin/env python3
"""make chaos: the whole pipeline under faults, compared with a clean run and with `stint sessions`.

On a private local stack (its own STINT_HOME and ports, started with deploy/local/stack and
stopped at the end: the stack's Kafka and Redis are killed here, so no other test may share them):

1. `stint gen` a small dataset (--users, --days, --seed), `stint train` a small bundle (k-means),
   `stint sessions` offline on the same files.
2. A clean run: the five services (one instance each) on run-unique topics, consumer groups and
   Redis prefix; the profiles first, until the clusterer has stored them all (the sessionizer joins
   a profile into OPENED as it is when it reads it, so a clusterer that a fault holds back would
   change predictions through the data rather than through a fault); `stint replay --max`, then SENTINELS listens per partition two days after the data
   (the partition clocks move on, so every real session closes), until every offline session is
   CLOSED and has its PredictionOutcome; SIGTERM (exit 0 each); everything read back.
3. A chaos run of the same data on other topics, groups and prefix, with two instances of the
   sessionizer and of the predictor in their groups, the replay paced (--speed) to last about
   --replay-s seconds, and meanwhile, one after the other in a seeded random order with a few
   seconds between them:
     - SIGKILL of every service (one instance of each), restarted after 0-2 s;
     - SIGKILL of redis-server, twice, restarted at once (`stack restart redis`, AOF as shipped);
     - SIGKILL of the Kafka broker, twice, restarted at once;
     - SIGSTOP of the clusterer (alone in its group) past its session timeout (6 s here), then
       SIGCONT: it comes back after the group gave its partitions up;
     - zombies: SIGSTOP of one of the two sessionizers, and of one of the two predictors, past the
       session timeout while it holds partitions (the other takes them over and works on), then
       SIGCONT: whatever the resumed one still writes must change nothing.
   Then the same sentinels and wait, SIGTERM of every instance (each exit 0), read back.
4. Checks (any failure fails the run, exit 1):
     - each run's CLOSED sessions, and the consumer's final view of `sessions`, equal `stint
       sessions` offline; a session closed twice closes the same way (byte-identical copies);
     - chaos equals clean: the final view of `predictions` (upsert by session_id, retracted
       dropped; revision and made_at_ms, which depend on batch boundaries and the wall clock,
       left out), the PredictionOutcomes (copies identical), the last ClusterAssignment per user,
       the dead-letter and late topics (as sets), and the Redis state under the run's prefix
       (every key and value, with the Kafka positions that differ by construction normalised:
       see redis_state; deadline-set entries of users with no open session, which the store's
       rule allows, are set aside as a note, and every open session must have its entry:
       deadline_check);
     - self-check: the same comparison on copies of the chaos run's results with planted faults
       (a CLOSED session dropped, an outcome's actual length changed, a cluster changed, a Redis
       value changed, a prediction dropped) must fail for each one; a checker that cannot fail
       fails the run.

Usage: tests/chaos/chaos.py [--seed 1] [--users 60] [--days 90] [--replay-s 100] [--keep]
Environment: STINT_BIN_DIR (default build/bin). Exit 0 when every check held."""
import argparse
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "support"))
from ports import free_ports  # noqa: E402
BIN = os.environ.get("STINT_BIN_DIR") or os.path.join(SRC, "build", "bin")
STACK = os.path.join(SRC, "deploy", "local", "stack")
SERVICES = ("ingest", "enricher", "sessionizer", "clusterer", "predictor")
TWO = ("sessionizer", "predictor")  # two instances each in the chaos run (the zombies)
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
PAUSE_S = SESSION_TIMEOUT_MS / 1000 + 5  # past the session timeout and the rebalance
CATCH_UP_S = 300


def log(msg):
    print(f"chaos: {msg}", flush=True)


class Stack:
    """A private deploy/local/stack: STINT_HOME in a temp dir, free ports."""

    def __init__(self, tmp):
        kafka, controller, redis, registry = free_ports(4)
        self.env = dict(os.environ, STINT_HOME=os.path.join(tmp, "stack"),
                        STINT_KAFKA_PORT=str(kafka), STINT_KAFKA_CONTROLLER_PORT=str(controller),
                        STINT_REDIS_PORT=str(redis), STINT_REGISTRY_PORT=str(registry),
                        STINT_KAFKA_BROKERS=f"127.0.0.1:{kafka}",
                        STINT_SCHEMA_REGISTRY_URL=f"http://127.0.0.1:{registry}/apis/ccompat/v7",
                        STINT_PARTITIONS=str(PARTITIONS), OPENBLAS_NUM_THREADS="1")
        self.home = self.env["STINT_HOME"]
        self.up = False

    def run(self, *args, timeout=300):
        r = subprocess.run([STACK, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"stack {' '.join(args)}: exit {r.returncode}: "
                               f"{(r.stdout + r.stderr).strip()[-1500:]}")
        return r

    def start(self):
        self.up = True
        self.run("up")

    def stop(self):
        if self.up:
            subprocess.run([STACK, "down"], env=self.env, capture_output=True, timeout=300)
            self.up = False

    def pid(self, server):
        marker = {"kafka": "server.properties", "redis": "redis-server"}[server]
        try:
            with open(os.path.join(self.home, server, f"{server}.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return pid if marker.encode() in f.read() else None
        except (OSError, ValueError):
            return None

    def hard_kill(self, server):
        """SIGKILL the server's process, wait until it is gone, start it again."""
        pid = self.pid(server)
        if pid is None:
            raise RuntimeError(f"{server} is not running")
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
        self.run("restart", server)


STACK_ENV = None  # set before the imports below, which read the stack's address from os.environ


def import_helpers(env):
    """live_env and friends read STINT_KAFKA_BROKERS / STINT_REDIS_PORT when imported."""
    for k in ("STINT_KAFKA_BROKERS", "STINT_REDIS_PORT", "STINT_SCHEMA_REGISTRY_URL"):
        os.environ[k] = env[k]
    sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
    sys.path.insert(0, os.path.join(SRC, "deploy", "compose"))
    global live_env, corr, stream_check, full_pipeline
    from importlib.machinery import SourceFileLoader
    full_pipeline = SourceFileLoader("full_pipeline", os.path.join(SRC, "bench", "full_pipeline")).load_module()
    import live_env  # noqa: E402
    import test_live_corrections as corr  # noqa: E402
    import stream_check  # noqa: E402


class Run:
    """One pass of the pipeline over the dataset on run-unique topics, groups and prefix."""

    def __init__(self, name, stack, data, bundle, tmp, instances):
        self.name = name
        self.stack = stack
        self.data = data
        self.bundle = bundle
        self.tag = f"chaos{name}{os.getpid()}"
        self.home = os.path.join(tmp, name)
        os.makedirs(os.path.join(self.home, "services"))
        self.instances = instances  # svc -> count
        self.env = dict(stack.env, STINT_HOME=self.home)
        self.procs = {}  # (svc, i) -> Popen
        self.ports = {}
        self.exits = []  # (instance, exit code) of every stop
        self.faults = []  # (t, what)
        self.zombies = []  # instances that resumed after the group had moved on
        self.readers = {}
        RUNS.append(self)

    def t(self, topic):
        return f"{self.tag}.{topic}"

    def setup(self):
        topics = live_env.stack_topics()
        r = subprocess.run(["java", "-cp", os.path.join(kafka_libs(), "*"),
                            os.path.join(SRC, "deploy", "local", "CreateTopics.java"),
                            self.env["STINT_KAFKA_BROKERS"], str(PARTITIONS),
                            *[self.t(n) + (":compact" if c else "") for n, c in topics]],
                           capture_output=True, text=True, timeout=180, env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"creating topics: {r.stderr.strip()[-1000:]}")
        names = {n for n, _ in topics}
        for svc in SERVICES:
            with open(self.conf(svc), "w", encoding="utf-8") as f:
                f.write(live_env.service_conf(svc, self.tag, names))
                f.write(f"session.timeout.ms={SESSION_TIMEOUT_MS}\n")
        r = subprocess.run([os.path.join(BIN, "stint"), "catalog", "import", "--redis.prefix",
                            self.tag, os.path.join(self.data, "tracks.jsonl")],
                           capture_output=True, text=True, env=self.env, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"stint catalog import: {r.stderr.strip()[-1000:]}")
        for ports, key in zip(free_ports(sum(self.instances.values())),
                              [(s, i) for s in SERVICES for i in range(self.instances[s])]):
            self.ports[key] = ports
        self.readers = {t: live_env.TopicReader(self.t(t), self.env)
                        for t in ("sessions", "predictions.outcomes", "sessions.dlq")}

    def conf(self, svc):
        return os.path.join(self.home, "services", f"{svc}.conf")

    def start(self, key):
        svc, i = key
        argv = [os.path.join(BIN, f"stint-{svc}"), "--http.port", str(self.ports[key]),
                "-F", self.conf(svc)]
        if svc in ("clusterer", "predictor"):
            argv += ["--model.dir", self.bundle]
        logf = open(os.path.join(self.home, "services", f"{svc}-{i}.log"), "ab")
        self.procs[key] = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=self.env,
                                           start_new_session=True)
        logf.close()

    def ready(self, key, timeout_s=60):
        """Until the instance's group has assigned it its partitions: /readyz 200, or 503 for the
        lag only (a restarted instance mid-run is behind; it is not waited for)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.procs[key].poll() is not None:
                raise RuntimeError(f"{key} exited {self.procs[key].returncode} at start-up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[key]}/readyz",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                if e.read().decode(errors="replace").startswith("not ready: lag="):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{key} not ready within {timeout_s} s")

    def start_all(self):
        for key in self.ports:
            self.start(key)
        for key in self.ports:
            self.ready(key)

    def check_alive(self):
        for key, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"stint-{key[0]} #{key[1]} died: exit {p.returncode} (see "
                                   f"{self.home}/services/{key[0]}-{key[1]}.log)")

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for key, p in self.procs.items():
            try:
                self.exits.append((key, p.wait(90)))
            except subprocess.TimeoutExpired:
                p.kill()
                self.exits.append((key, "no exit within 90 s"))

    def profiles(self):
        """The profiles first, and wait until the clusterer has stored every one: the sessionizer
        joins them into OPENED as they are when it reads them (docs/sessionizer.md), so a clusterer
        held back by a fault would change predictions through the data, not through a fault."""
        r = subprocess.run([os.path.join(BIN, "stint"), "replay", "--data", self.data, "--topic",
                            self.t("listens.raw"), "--profiles-topic", self.t("users.profiles"),
                            "--until", "1971-01-01T00:00:00Z", "--progress", "never"],
                           capture_output=True, text=True, env=self.env, timeout=120)
        m = re.search(r"profiles_sent=(\d+)", r.stdout)
        if r.returncode != 0 or not m:
            raise RuntimeError(f"stint replay (profiles): exit {r.returncode}: {r.stdout}{r.stderr}")
        want = int(m.group(1))
        redis = full_pipeline.Redis(self.env["STINT_REDIS_PORT"])
        deadline = time.time() + 60
        while len(redis.scan(full_pipeline.redis_glob_escape(self.tag) + ":u:{*}:clu:prof")) < want:
            if time.time() > deadline:
                raise RuntimeError(f"the clusterer did not store {want} profiles within 60 s")
            time.sleep(0.2)

    def replay(self, speed):
        argv = [os.path.join(BIN, "stint"), "replay", "--data", self.data, "--topic",
                self.t("listens.raw"), "--profiles-topic", "", "--progress", "never",
                "--bad-lines-logged", "0"]
        argv += ["--speed", str(speed)] if speed else ["--max"]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env)

    # -- faults (chaos run)
    def fault(self, what, fn):
        t = time.monotonic() - self.t0
        fn()
        self.faults.append((t, what))
        log(f"{self.name} t={t:5.1f}s {what}")

    def kill_service(self, svc, rng):
        key = (svc, 0)
        self.procs[key].kill()
        self.procs[key].wait()
        time.sleep(rng.uniform(0, 2))
        self.start(key)
        self.ready(key, 120)

    @staticmethod
    def holds_partitions(path):
        """Whether the instance's last assignment event (its log) gave it partitions."""
        last = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.search(r"partitions_(assigned|revoked) count=(\d+)", line)
                if m:
                    last = m.groups()
        return last is not None and last[0] == "assigned" and int(last[1]) > 0

    def pause(self, key):
        """SIGSTOP past the session timeout, SIGCONT; then the instance must find that the group
        took its partitions away (its log says the assignment was lost), or the zombie case did
        not happen and the run fails."""
        p = self.procs[key]
        path = os.path.join(self.home, "services", f"{key[0]}-{key[1]}.log")
        deadline = time.time() + 90  # after a broker restart the group takes a while to settle
        while not self.holds_partitions(path):
            if time.time() > deadline:
                raise RuntimeError(f"stint-{key[0]} #{key[1]} held no partitions for 90 s")
            time.sleep(0.2)
        start = os.path.getsize(path)
        p.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_S)
        p.send_signal(signal.SIGCONT)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(start)
                if re.search(r"partitions_revoked .*ASSIGNMENT_LOST", f.read()):
                    self.zombies.append(key)
                    return
            time.sleep(0.2)
        raise RuntimeError(f"stint-{key[0]} #{key[1]} resumed after {PAUSE_S:.0f} s without "
                           f"losing its partitions: the zombie case did not happen")

    def chaos(self, rng):
        faults = [(f"SIGKILL stint-{s}", lambda s=s: self.kill_service(s, rng)) for s in SERVICES]
        faults += [("SIGKILL redis-server, restart", lambda: self.stack.hard_kill("redis"))] * 2
        faults += [("SIGKILL kafka broker, restart", lambda: self.stack.hard_kill("kafka"))] * 2
        faults += [(f"SIGSTOP stint-clusterer {PAUSE_S:.0f} s (alone in its group)",
                    lambda: self.pause(("clusterer", 0)))]
        faults += [(f"zombie: SIGSTOP stint-{s} #1 {PAUSE_S:.0f} s (its partitions move to #0)",
                    lambda s=s: self.pause((s, 1))) for s in TWO]
        rng.shuffle(faults)
        for what, fn in faults:
            time.sleep(rng.uniform(1, 4))
            self.fault(what, fn)

    def go(self, speed, rng, sentinel_at, offline):
        self.start_all()
        self.profiles()
        self.t0 = time.monotonic()
        rp = self.replay(speed)
        if rng is not None:
            self.chaos(rng)
        out, _ = rp.communicate(timeout=900)
        self.replay_s = time.monotonic() - self.t0
        if rp.returncode != 0:
            raise RuntimeError(f"stint replay: exit {rp.returncode}: {out[-1500:]}")
        log(f"{self.name}: replay done in {self.replay_s:.1f} s; faults "
            f"{len(self.faults)}, last at t={max([t for t, _ in self.faults] or [0]):.1f}s")
        self.check_alive()
        corr.publish(types.SimpleNamespace(topic=self.t),
                     [(u, sentinel_at, "Sentinel") for u in SENTINELS])
        deadline = time.time() + CATCH_UP_S
        while time.time() < deadline:
            self.check_alive()
            refused = ahead_users(self.readers["sessions.dlq"].snapshot())
            want = {k for k in offline if k[0] not in refused}
            closed = stream_check.closed_sessions(self.readers["sessions"].snapshot(), SENTINELS)[0]
            outs = {o["session_id"] for o in self.readers["predictions.outcomes"].snapshot()}
            if set(closed) >= want and len(outs) >= len(want):
                break
            time.sleep(0.5)
        # Every group has read everything (the sessionizer: its read position; the others: their
        # committed offsets), so the clusterer's and the predictor's states are final too.
        for svc in SERVICES:
            argv = [os.path.join(BIN, "stint"), "lag", "-G", f"{self.tag}-stint-{svc}", "--wait",
                    "--timeout", str(max(10, int(deadline - time.time()))), "--total"]
            if svc == "sessionizer":
                argv += ["--sessionizer", "--redis.prefix", self.tag]
            r = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=CATCH_UP_S)
            if r.returncode != 0:
                raise RuntimeError(f"stint lag: {svc} not caught up (exit {r.returncode}): "
                                   f"{(r.stdout + r.stderr).strip()[-500:]}")
        self.caught_up_s = time.monotonic() - self.t0
        time.sleep(3)  # anything that should not come would come now
        self.stop_all()
        for r in self.readers.values():
            r.close()
        log(f"{self.name}: caught up at t={self.caught_up_s:.1f}s; stopped: "
            + ", ".join(f"{k[0]}#{k[1]}={c}" for k, c in self.exits))

    def collect(self):
        """Everything the checks compare, read back from Kafka and Redis."""
        res = {"exits": [(f"{k[0]}#{k[1]}", c) for k, c in self.exits]}
        for topic in ("listens.enriched", "sessions", "predictions", "predictions.outcomes",
                      "users.clusters",
                      "listens.dlq", "listens.enriched.dlq", "sessions.late", "sessions.dlq",
                      "predictions.dlq", "users.clusters.dlq"):
            r = subprocess.run([os.path.join(BIN, "stint"), "tail", self.t(topic)],
                               capture_output=True, text=True, env=self.env, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"stint tail {topic}: {r.stderr.strip()[-500:]}")
            res[topic] = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        res["redis"] = redis_state(self.env["STINT_REDIS_PORT"], self.tag)
        return res


def kafka_libs():
    r = subprocess.run(["bash", "-c", '. "$0"; echo "$KAFKA_LIBS"',
                        os.path.join(SRC, "deploy", "local", "env.sh")],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def redis_state(port, tag):
    """{key without the run's prefix: (type, value)} of every key under the prefix (pipelined, with
    bench/full_pipeline's RESP client): strings as bytes, hashes as sorted (field, value) pairs,
    zsets as [member, score, ...], sets sorted, lists as they are."""
    r = full_pipeline.Redis(port)
    keys = sorted(r.scan(full_pipeline.redis_glob_escape(tag) + ":*"))
    kinds = r.pipeline([("TYPE", k) for k in keys])
    read = {b"string": lambda k: ("GET", k), b"hash": lambda k: ("HGETALL", k),
            b"zset": lambda k: ("ZRANGE", k, 0, -1, "WITHSCORES"), b"set": lambda k: ("SMEMBERS", k),
            b"list": lambda k: ("LRANGE", k, 0, -1)}
    vals = r.pipeline([read.get(t, lambda k: ("TYPE", k))(k) for k, t in zip(keys, kinds)])
    out = {}
    for k, t, v in zip(keys, kinds, vals):
        if t == b"hash":
            v = sorted(zip(v[::2], v[1::2]))
        elif t == b"set":
            v = sorted(v)
        out[k.decode(errors="replace")[len(tag) + 1:]] = (t.decode(), v)
    return out


class Blob:
    """A reader of the sessionizer's state blob (st_sessionizer_state.c: LEB128 varints, zigzag
    for signed, fixed 8-byte little-endian hashes)."""

    def __init__(self, b):
        self.b, self.i = b, 0

    def uv(self):
        v, shift = 0, 0
        while True:
            c = self.b[self.i]
            self.i += 1
            v |= (c & 0x7f) << shift
            if not c & 0x80:
                return v
            shift += 7

    def zz(self):
        u = self.uv()
        return -(u >> 1) - 1 if u & 1 else u >> 1

    def u64(self):
        v = int.from_bytes(self.b[self.i:self.i + 8], "little")
        self.i += 8
        return v


def sz_view(value):
    """A sessionizer state (u:{user}:sz: position text, newline, blob version 2) without the
    Kafka offsets of listens.enriched in it: the position's offset and `seen`, and the
    announcements' revision and offset (a revision is a distance in offsets)."""
    text, _, blob = value.partition(b"\n")
    pos = text.split()
    if len(blob) < 2 or blob[0] != 2 or len(pos) < 5:
        return ("not a version 2 state", value)
    r = Blob(blob)
    flags = blob[1]
    r.i = 2
    st = {"pos": (pos[0], pos[1], pos[2], pos[4]), "flags": flags}
    if flags & 1:
        st["pos_time_identity"] = (r.zz(), r.u64())
        r.zz()  # the position's offset
    if flags & 4:
        st["open"] = (r.zz(), r.zz(), r.zz(), r.u64(), r.uv(), r.uv())
    st["history"] = (r.uv(), r.zz(), r.zz(), r.zz())
    n = r.uv()
    st["recent"] = [r.zz() for _ in range(n)]
    if flags & 1:
        r.zz()  # seen
    nd = r.uv()
    st["detail"] = [(r.zz(), r.uv(), r.uv()) for _ in range(nd)]
    na = r.uv()
    ann = []
    for _ in range(na):
        ann.append((r.zz(), r.u64()))
        r.uv()  # revision
        r.zz()  # offset
    st["announced"] = ann
    if r.i != len(blob):
        return ("trailing bytes", value)
    return st


def norm_redis(state):
    """The Redis state with what differs by construction between two runs made equal: the Kafka
    offsets of topics written by another service (a crash re-produces records at new offsets, so
    the positions in `listens.enriched`, `sessions` ... of the chaos run are further on) and the
    run's topic names. Offsets are in the idempotency markers (hash fields a:<topic>:<partition>,
    tokens <topic>:<partition>=<offset> of the predictor's string, and the revision of its open
    predictions), the sessionizer's state (sz_view) and its commit points st:{p<n>} (positions
    only); and the wall-clock time an open prediction was made (for its TTL).""" 
    out = {}
    for k, (kind, v) in state.items():
        if re.match(r"(st|rd):\{p\d+\}$", k):
            v = "(positions)"
        elif k.endswith(":sz"):
            v = sz_view(v)
        elif k.endswith(":pred:s"):
            first, _, body = v.partition(b"\n")
            # open predictions: "L <made_s> <start_ms> <revision> ...": made_s is wall time
            body = re.sub(rb"(?m)^L \d+ (-?\d+) -?\d+ ", rb"L (made) \1 (revision) ", body)
            v = (re.sub(rb"=\d+", b"=(offset)", first), body)
        elif kind == "hash":
            v = [(f, b"(offset)" if f.startswith(b"a:") else x) for f, x in v]
        out[k] = (kind, re.sub(r"chaos(clean|chaos)\d+\.", "<tag>.", repr(v)))
    return out


DEADLINES = re.compile(r"dl:\{p\d+\}$")


def open_users(state):
    """The users whose stored sessionizer state has an open session."""
    out = set()
    for k, (_, v) in state.items():
        m = re.match(r"u:\{(.*)\}:sz$", k)
        if m:
            st = sz_view(v)
            if isinstance(st, dict) and "open" in st:
                out.add(m.group(1))
    return out


def deadline_check(state):
    """The sessionizer store's rule (sessionizer/sz_store.c, put_states): every user whose state
    has an open session is in a partition's deadline set; entries of users with none are allowed
    (a write the compare-and-set refused still did its ZADD: a replay, or an instance that lost
    its partitions and had not noticed). Returns (open users missing, [(key, user, deadline)] of
    those extra entries)."""
    opened, listed, stale = open_users(state), set(), []
    for k, (_, v) in state.items():
        if DEADLINES.search(k):
            for user, score in zip(v[::2], v[1::2]):
                u = user.decode(errors="replace")
                listed.add(u)
                if u not in opened:
                    stale.append((k, u, int(float(score))))
    return sorted(opened - listed), sorted(stale)


def without_stale_deadlines(state):
    """(the state without deadline entries of users with no open session, the open users missing
    from the deadline sets, those entries): deadline_check's answer, applied."""
    missing, stale = deadline_check(state)
    drop = {(k, u) for k, u, _ in stale}
    out = {}
    for k, (kind, v) in state.items():
        if DEADLINES.search(k):
            v = [x for pair in zip(v[::2], v[1::2])
                 if (k, pair[0].decode(errors="replace")) not in drop for x in pair]
            if not v:
                continue  # Redis has no empty sets
        out[k] = (kind, v)
    return out, missing, stale


SENTINELS = []
RUNS = []  # every Run, so that an error on the way kills what they started


# --- the checks --------------------------------------------------------------------------------

def ahead_users(dead_letters):
    """Users with a listen the sessionizer refused as ahead_of_stream_time: its documented limit
    (docs/sessionizer.md, Clocks: after a partition-wide silence longer than clock.ahead_max_s,
    the listens of the first clock.quorum - 1 users to come back are refused until the quorum is
    back), which makes their sessions differ from offline, the same way in every run."""
    return {str(corr.val(d.get("original_key"))) for d in dead_letters
            if d.get("error_code") == "ahead_of_stream_time"}


def offline_checks(res, offline, fails, notes):
    refused = ahead_users(res["sessions.dlq"]) - set(SENTINELS)
    if refused:
        notes.add(f"{len(refused)} users with listens refused as ahead_of_stream_time "
                  f"({sorted(refused)[:5]}): their sessions are left out of the comparison with "
                  f"offline (the chaos run must still equal the clean run for them)")
        offline = {k: v for k, v in offline.items() if k[0] not in refused}
    evs = [e for e in res["sessions"] if e["user_id"] not in set(SENTINELS) | refused]
    closed, twice = stream_check.closed_sessions(evs, SENTINELS)
    if twice:
        fails.append(f"sessions closed twice differently: {sorted(twice)[:3]}")
    missing = sorted(set(offline) - set(closed))
    extra = sorted(set(closed) - set(offline))
    differ = sorted(k for k in set(offline) & set(closed) if offline[k] != closed[k])
    if missing or extra or differ:
        fails.append(f"CLOSED != offline: {len(missing)} missing {missing[:3]}, {len(extra)} "
                     f"extra {extra[:3]}, {len(differ)} different {differ[:3]}")
    final = {}
    for _, (op, cl) in corr.session_view(evs).items():
        if op is not None and cl is not None:
            final[(cl["user_id"], cl["start_ms"] // 1000)] = (
                f"{corr.val(cl['length_s']):.3f}", corr.val(cl["track_count"]))
    if final != offline:
        fails.append(f"final view of sessions != offline ({len(final)} vs {len(offline)})")


def canon(rec, drop=()):
    return json.dumps({k: v for k, v in rec.items() if k not in drop}, sort_keys=True)


def by_id(records, field, fails, what):
    """{id: canonical record}; copies must be identical."""
    out = {}
    for r in records:
        c = canon(r)
        if out.setdefault(r[field], c) != c:
            fails.append(f"{what}: two different records for {r[field]}")
    return out


def compare(clean, chaos, offline, notes=None):
    """The failures of the chaos run measured against the clean run and offline; what is worth
    knowing but no failure goes to notes (a set)."""
    fails = []
    notes = set() if notes is None else notes
    for name, res in (("clean", clean), ("chaos", chaos)):
        sub = []
        offline_checks(res, offline, sub, notes)
        fails += [f"{name}: {f}" for f in sub]
        bad = [(k, c) for k, c in res["exits"] if c != 0]
        if bad:
            fails.append(f"{name}: SIGTERM exits not 0: {bad}")
    views = []
    for res in (clean, chaos):
        view = corr.prediction_view([p for p in res["predictions"] if p["user_id"] not in SENTINELS])
        views.append({s: canon(p, ("revision", "made_at_ms")) for s, p in view.items()})
    if views[0] != views[1]:
        diff = sorted(set(views[0].items()) ^ set(views[1].items()))
        fails.append(f"predictions (final view) differ from the clean run: {len(diff)} records, "
                     f"e.g. {diff[:2]}")
    outs = [by_id(r["predictions.outcomes"], "session_id", fails, f"{n} outcomes")
            for n, r in (("clean", clean), ("chaos", chaos))]
    if outs[0] != outs[1]:
        diff = sorted(set(outs[0].items()) ^ set(outs[1].items()))
        fails.append(f"outcomes differ from the clean run: {len(diff)} records, e.g. {diff[:2]}")
    last = []
    for res in (clean, chaos):
        m = {}
        for c in res["users.clusters"]:
            m[c["user_id"]] = canon(c)
        last.append(m)
    if last[0] != last[1]:
        diff = sorted(set(last[0].items()) ^ set(last[1].items()))
        fails.append(f"cluster assignments differ from the clean run: {diff[:2]}")
    for topic in ("listens.dlq", "listens.enriched.dlq", "sessions.late", "sessions.dlq",
                  "predictions.dlq", "users.clusters.dlq"):
        # a DeadLetter's source offset and failure time differ between runs by construction
        drop = ("source_offset", "failed_at_ms")
        a = {re.sub(r"chaos(clean|chaos)\d+\.", "<tag>.", canon(r, drop)) for r in clean[topic]}
        b = {re.sub(r"chaos(clean|chaos)\d+\.", "<tag>.", canon(r, drop)) for r in chaos[topic]}
        extra = b - a
        if topic == "sessions.late" and not a - b:
            # Copies of listens the sessionizer counted before: a crash of ingest or the enricher
            # re-sends what it had not committed, and when the partition's stream time has moved
            # on by more than the grace in the meantime (a replay, a backlog) the copy is late.
            # The sessions above are exact either way; what is checked here is that every extra
            # late record is such a copy (its event_id twice on listens.enriched).
            seen = {}
            for e in chaos["listens.enriched"]:
                seen[e["event_id"]] = seen.get(e["event_id"], 0) + 1
            copies = {x for x in extra if seen.get(json.loads(x)["event_id"], 0) >= 2}
            if copies:
                notes.add(f"sessions.late: {len(copies)} copies of counted listens (an upstream "
                          f"crash re-sent them after the partition's stream time had moved on)")
            extra -= copies
        if extra or a - b:
            fails.append(f"{topic}: {len(a)} distinct records in the clean run, {len(b)} in "
                         f"the chaos run; e.g. {sorted(extra or (a - b))[:2]}")
    (ca, miss_a, stale_a), (cb, miss_b, stale_b) = without_stale_deadlines(clean["redis"]), \
        without_stale_deadlines(chaos["redis"])
    for name, missing in (("clean", miss_a), ("chaos", miss_b)):
        if missing:
            fails.append(f"{name} run: users with an open session missing from the deadline "
                         f"sets: {missing[:3]}")
    if stale_a or stale_b:
        notes.add(f"deadline sets: {len(stale_a)} + {len(stale_b)} entries (clean + chaos) of users "
                  f"with no open session, left by a write the compare-and-set refused (harmless by "
                  f"design, sessionizer/sz_store.c put_states), e.g. {(stale_a + stale_b)[:2]}")
    ra, rb = norm_redis(ca), norm_redis(cb)
    if ra != rb:
        only = sorted(set(ra) ^ set(rb))
        differ = sorted(k for k in set(ra) & set(rb) if ra[k] != rb[k])
        fails.append(f"Redis state differs from the clean run: {len(only)} keys in one run only "
                     f"{only[:3]}, {len(differ)} values differ {differ[:3]}"
                     + (f": {ra[differ[0]]} vs {rb[differ[0]]}" if differ else ""))
    return fails


def self_check(clean, chaos, offline):
    """Planted faults that the checker must catch."""
    def dropped_closed(res):
        i = next(i for i, e in enumerate(res["sessions"])
                 if e["kind"] == "CLOSED" and e["user_id"] not in SENTINELS)
        sid = res["sessions"][i]["session_id"]
        res["sessions"] = [e for e in res["sessions"]
                           if not (e["kind"] == "CLOSED" and e["session_id"] == sid)]

    def changed_outcome(res):
        sid = res["predictions.outcomes"][0]["session_id"]
        res["predictions.outcomes"] = [dict(o, actual_length_s=o["actual_length_s"] + 1.0)
                                       if o["session_id"] == sid else o
                                       for o in res["predictions.outcomes"]]

    def changed_cluster(res):
        c = res["users.clusters"][-1]
        res["users.clusters"] = res["users.clusters"][:-1] + [dict(c, cluster=(c["cluster"] or 0) + 1)]

    def changed_redis(res):
        k = sorted(k for k in res["redis"] if k.endswith(":clu:prof"))[0]
        kind, v = res["redis"][k]
        res["redis"] = dict(res["redis"])
        res["redis"][k] = (kind, [(f, x + b"1" if f == b"n" else x) for f, x in v])

    def dropped_prediction(res):
        p = next(p for p in res["predictions"] if p["user_id"] not in SENTINELS)
        res["predictions"] = [q for q in res["predictions"] if q["session_id"] != p["session_id"]]

    def uncounted_late(res):
        e = dict(next(e for e in res["listens.enriched"] if e["user_id"] not in SENTINELS))
        e["event_id"], e["listened_at_ms"] = "0000000000000000", e["listened_at_ms"] - 1000
        res["sessions.late"] = res["sessions.late"] + [e]

    ok = True
    for name, plant in (("a late listen that was not a copy", uncounted_late),
                        ("a CLOSED session dropped", dropped_closed),
                        ("an outcome's actual length changed", changed_outcome),
                        ("a cluster assignment changed", changed_cluster),
                        ("a user's session count in Redis changed", changed_redis),
                        ("a prediction dropped", dropped_prediction)):
        planted = dict(chaos)  # each plant replaces what it changes, never edits it in place
        plant(planted)
        caught = compare(clean, planted, offline)
        print(f"{'ok  ' if caught else 'FAIL'}  self-check: {name}: "
              f"{'caught (' + caught[0][:100] + ')' if caught else 'NOT caught'}", flush=True)
        ok = ok and bool(caught)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=int(os.environ.get("STINT_CHAOS_SEED", "1")))
    ap.add_argument("--users", type=int, default=60)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--replay-s", type=float, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and the stack's data")
    ap.add_argument("--recheck", metavar="DIR",
                    help="only the checks, on the results.pickle a kept run left in DIR")
    a = ap.parse_args()
    if a.recheck:
        import_helpers(dict(os.environ, STINT_KAFKA_BROKERS="", STINT_REDIS_PORT="",
                            STINT_SCHEMA_REGISTRY_URL=""))
        with open(os.path.join(a.recheck, "results.pickle"), "rb") as f:
            sentinels, offline, clean_res, chaos_res = pickle.load(f)
        SENTINELS.extend(sentinels)
        notes = set()
        fails = compare(clean_res, chaos_res, offline, notes)
        for n in sorted(notes):
            print(f"note  {n}", flush=True)
        for f in fails:
            print(f"FAIL  {f}", flush=True)
        return 0 if not fails and self_check(clean_res, chaos_res, offline) else 1
    for b in ("stint", *(f"stint-{s}" for s in SERVICES)):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"chaos: {BIN}/{b} is not built (make build, or set STINT_BIN_DIR)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the stack is stopped below
    tmp = tempfile.mkdtemp(prefix="stint-chaos-")
    stack = Stack(tmp)
    import_helpers(stack.env)
    ok = False
    try:
        t0 = time.time()
        log(f"seed {a.seed}; private stack in {stack.home} (Kafka {stack.env['STINT_KAFKA_BROKERS']}"
            f", Redis {stack.env['STINT_REDIS_PORT']})")
        stack.start()
        data, bundle = os.path.join(tmp, "data"), os.path.join(tmp, "bundle")
        stint = os.path.join(BIN, "stint")
        subprocess.run([stint, "gen", "--users", str(a.users), "--days", str(a.days), "--seed",
                        str(a.seed), "--out", data], check=True, capture_output=True, env=stack.env)
        subprocess.run([stint, "train", "--data", data, "--catalog",
                        os.path.join(data, "tracks.jsonl"), "--epochs", "2", "--cluster", "kmeans",
                        "--k", "3", "--seed", str(a.seed), "--out", bundle], check=True,
                       capture_output=True, env=stack.env)
        offline = stream_check.dataset_sessions(data, tmp)
        SENTINELS.extend(stream_check.sentinel_users(PARTITIONS))
        sentinel_at = stream_check.last_listen_s(data) + stream_check.SENTINEL_AFTER_S
        with open(os.path.join(data, "userid-timestamp-artid-artname-traid-traname.tsv"),
                  encoding="utf-8", errors="replace") as f:
            n_listens = sum(1 for _ in f)
        log(f"{n_listens} listens, {len(offline)} sessions offline; bundle trained "
            f"({time.time() - t0:.0f} s)")

        clean = Run("clean", stack, data, bundle, tmp, {s: 1 for s in SERVICES})
        clean.setup()
        clean.go(0, None, sentinel_at, offline)
        clean_res = clean.collect()

        chaos = Run("chaos", stack, data, bundle, tmp, {s: 2 if s in TWO else 1 for s in SERVICES})
        chaos.setup()
        speed = a.days * 86400 / a.replay_s
        chaos.go(speed, random.Random(a.seed), sentinel_at, offline)
        chaos_res = chaos.collect()

        with open(os.path.join(tmp, "results.pickle"), "wb") as f:
            pickle.dump((SENTINELS, offline, clean_res, chaos_res), f)
        notes = set()
        fails = compare(clean_res, chaos_res, offline, notes)
        for n in sorted(notes):
            print(f"note  {n}", flush=True)
        n_closed = len(stream_check.closed_sessions(chaos_res["sessions"], SENTINELS)[0])
        print(f"chaos run: {len(chaos.faults)} faults, {len(chaos.zombies)} instances resumed "
              f"after losing their partitions; {len(chaos_res['sessions'])} session events "
              f"({n_closed} sessions), {len(chaos_res['predictions'])} predictions, "
              f"{len(chaos_res['predictions.outcomes'])} outcomes, "
              f"{len(chaos_res['users.clusters'])} cluster assignments, "
              f"{len(chaos_res['redis'])} Redis keys", flush=True)
        for f in fails:
            print(f"FAIL  {f}", flush=True)
        if not fails:
            print("ok    chaos run == clean run == stint sessions offline (sessions, predictions, "
                  "outcomes, clusters, dead letters, Redis state)", flush=True)
        checker_ok = self_check(clean_res, chaos_res, offline)
        ok = not fails and checker_ok
        log(f"{'passed' if ok else 'FAILED'} in {time.time() - t0:.0f} s (seed {a.seed})")
    finally:
        for run in RUNS:
            for p in run.procs.values():
                if p.poll() is None:
                    p.kill()
            for r in run.readers.values():
                r.close()
        stack.stop()
        if a.keep or not ok:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
