"""live_env.py - shared fixture of the live e2e tests: the five services started the way `make up`
starts them (deploy/local/services), isolated on the shared test stack by a private STINT_HOME and
HTTP ports and, through the per-service settings file the script passes with -F
($STINT_HOME/services/<name>.conf), consumer groups, a Redis prefix and topics of their own
(<tag>.<topic>); and readers of the private topics through `stint tail --follow`."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("STINT_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("STINT_BIN_DIR") or os.path.join(SRC, "build", "bin")
BROKERS = os.environ.get("STINT_KAFKA_BROKERS", "127.0.0.1:" + os.environ.get("STINT_KAFKA_PORT", "19092"))
REDIS_PORT = os.environ.get("STINT_REDIS_PORT", "16379")
SERVICES = ("ingest", "enricher", "sessionizer", "clusterer", "predictor")
SERVICES_SCRIPT = os.path.join(SRC, "deploy", "local", "services")

sys.path.insert(0, os.path.join(SRC, "tests", "support"))
from ports import free_port_block  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def stack_topics():
    """(name, compacted) of every stack topic, from deploy/topics.conf."""
    out = []
    with open(os.path.join(SRC, "deploy", "topics.conf"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                out.append((line[0], len(line) > 1 and line[1] == "compact"))
    return out


def clean_env():
    """The environment without the STINT_* settings that would outrank the per-service files."""
    return {k: v for k, v in os.environ.items()
            if not re.match(r"^STINT_(KAFKA_GROUP|REDIS_PREFIX|HTTP_PORT|MODEL_DIR|HOME|\w*_TOPIC)$", k)}


def service_conf(name, tag, topics):
    """Settings that isolate one service: its own group, Redis prefix, and every topic setting
    that names a stack topic (read from the service's own --dump-config) moved to <tag>.<topic>."""
    r = subprocess.run([os.path.join(BIN, f"stint-{name}"), "--dump-config"], capture_output=True,
                       text=True, env=clean_env())
    assert r.returncode == 0, f"stint-{name} --dump-config: {r.stderr}"
    lines = [f"kafka.group={tag}-stint-{name}", f"redis.prefix={tag}"]
    moved = 0
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+\.topic)=(\S*)", line)
        if m and m.group(2) in topics:
            lines.append(f"{m.group(1)}={tag}.{m.group(2)}")
            moved += 1
    assert moved > 0, f"stint-{name}: no topic settings found in --dump-config"
    return "\n".join(lines) + "\n"


class LiveServices:
    """The five services on private topics. start() creates the topics, writes the .conf files
    (isolation settings plus extra[name], a list of key=value lines) and runs `services up`;
    stop() runs `services down` and checks every exit; cleanup() removes the Redis keys, the
    topics and STINT_HOME (both kept when a check failed)."""

    def __init__(self, prefix, extra=None):
        self.tag = f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 100000000}"
        self.home = tempfile.mkdtemp(prefix=f"stint-{prefix}-")
        self.topics = stack_topics()
        self.extra = extra or {}
        self.http_base = free_port_block(len(SERVICES))
        self.env = clean_env()
        self.env.update(STINT_HOME=self.home, STINT_BIN_DIR=BIN,
                        STINT_SERVICES_HTTP_BASE=str(self.http_base),
                        STINT_KAFKA_BROKERS=BROKERS, STINT_REDIS_PORT=REDIS_PORT)
        self.up = False
        self.admin = None

    def topic(self, name):
        return f"{self.tag}.{name}"

    def start(self):
        """Returns True when all five are up and ready (each step checked)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        self.admin = AdminClient({"bootstrap.servers": BROKERS})
        fs = self.admin.create_topics([NewTopic(self.topic(t), 3, 1,
                                                config={"cleanup.policy": "compact"} if compact else {})
                                       for t, compact in self.topics])
        for f in fs.values():
            f.result(30)
        names = {t for t, _ in self.topics}
        os.makedirs(os.path.join(self.home, "services"))
        for name in SERVICES:
            with open(os.path.join(self.home, "services", f"{name}.conf"), "w", encoding="utf-8") as f:
                f.write(service_conf(name, self.tag, names))
                f.writelines(line + "\n" for line in self.extra.get(name, ()))

        r = subprocess.run([SERVICES_SCRIPT, "up"], env=self.env, capture_output=True, text=True,
                           timeout=120)
        self.up = True
        sys.stdout.write(r.stdout + r.stderr)
        if not check(r.returncode == 0, "deploy/local/services up: exit 0"):
            return False
        r = subprocess.run([SERVICES_SCRIPT, "status"], env=self.env, capture_output=True,
                           text=True, timeout=60)
        ok = check(r.returncode == 0 and r.stdout.count(" up (pid ") == len(SERVICES),
                   "deploy/local/services status: all five up and ready")
        ports = sorted(int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", r.stdout))
        check(ports == list(range(self.http_base, self.http_base + len(SERVICES))),
              f"HTTP ports are STINT_SERVICES_HTTP_BASE and the four after it: {ports}")
        return ok

    def stop(self):
        if not self.up:
            return
        self.up = False
        r = subprocess.run([SERVICES_SCRIPT, "down"], env=self.env, capture_output=True, text=True,
                           timeout=120)
        sys.stdout.write(r.stdout + r.stderr)
        check(r.returncode == 0, "deploy/local/services down: exit 0")
        check(r.stdout.count("stopped (exit 0)") == len(SERVICES), "each service logged its exit 0")
        left = [n for n in SERVICES if os.path.exists(os.path.join(self.home, "services", f"{n}.pid"))]
        check(not left, f"no pid file left ({left})")

    def print_logs(self, names, n=8):
        for name in names:
            try:
                with open(os.path.join(self.home, "services", f"{name}.log"), encoding="utf-8",
                          errors="replace") as f:
                    print(f"-- last lines of {name}.log\n" + "".join(f.readlines()[-n:]), end="")
            except OSError as e:
                print(f"-- {name}.log: {e}")

    def cleanup(self):
        keys = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--scan", "--pattern", f"{self.tag}:*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-p", REDIS_PORT, "UNLINK", *keys[i:i + 500]],
                           capture_output=True)
        if FAILS:
            print(f"kept {self.home} for inspection")
            return
        shutil.rmtree(self.home, ignore_errors=True)
        if os.environ.get("STINT_KEEP_TEST_TOPICS") or self.admin is None:
            return
        for f in self.admin.delete_topics([self.topic(t) for t, _ in self.topics],
                                          operation_timeout=30).values():
            try:
                f.result()
            except Exception:  # a topic that was never created
                pass


class TopicReader:
    """A `stint tail <topic> --follow` (or the argv given) in the background: every record, as
    JSON, is appended to .records; wait_for() polls them."""

    def __init__(self, topic, env, argv=None):
        argv = list(argv) if argv else [os.path.join(BIN, "stint"), "tail", topic, "--follow"]
        self.records = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(argv + ["-b", BROKERS], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.records.append(rec)

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def wait_for(self, cond, deadline_s):
        """Waits until cond(records) is true or time.time() passes deadline_s; returns cond's
        last value."""
        while True:
            got = cond(self.snapshot())
            if got or time.time() >= deadline_s:
                return got
            time.sleep(0.1)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
