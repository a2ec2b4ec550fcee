"""predictor_env.py - shared fixture of the predictor e2e tests: a generated dataset and its
sessions, bundles, the SessionEvent stream (stint-session-events), a running stint-predictor,
/metrics reads, and the Python consumer of tools/python/stint_consumer.py."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC = os.environ.get("STINT_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("STINT_BIN_DIR") or os.path.join(SRC, "build", "bin")
BROKERS = os.environ.get("STINT_KAFKA_BROKERS", "127.0.0.1:" + os.environ.get("STINT_KAFKA_PORT", "19092"))
REDIS_PORT = os.environ.get("STINT_REDIS_PORT", "16379")
sys.path.insert(0, os.path.join(SRC, "tools", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "support"))
from ports import free_port  # noqa: E402
import stint_consumer  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(f"{' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}\n")
    return r


class Env:
    def __init__(self, name, users, days):
        self.tmp = tempfile.mkdtemp(prefix=f"stint-{name}-")
        self.tag = f"{name}-{os.getpid()}-{int(time.time() * 1000) % 100000000}"
        self.data = os.path.join(self.tmp, "data")
        self.sessions = os.path.join(self.tmp, "sessions.tsv")
        self.profiles = os.path.join(self.data, "userid-profile.tsv")
        self.topics = {k: f"{self.tag}.{k}" for k in ("sessions", "predictions", "outcomes", "dlq")}
        self.proc = None
        self.port = None
        assert run([os.path.join(BIN, "stint"), "gen", "--out", self.data, "--users", str(users),
                    "--days", str(days)]).returncode == 0
        assert run([os.path.join(BIN, "stint"), "sessions", "--data", self.data, "--catalog",
                    os.path.join(self.data, "tracks.jsonl"), "--out", self.sessions,
                    "--quiet"]).returncode == 0
        self.session_ids = set()
        with open(self.sessions, encoding="utf-8") as f:
            for line in f:
                user, start = line.split("\t")[:2]
                self.session_ids.add(f"{user}:{int(start) * 1000}")

    def train(self, out, epochs, seed, *extra):
        """A bundle via `stint train` (extra: more arguments, e.g. --preset gbt)."""
        r = run([os.path.join(BIN, "stint"), "train", "--sessions", self.sessions, "--profiles",
                 self.profiles, "--out", out, "--epochs", str(epochs), "--seed", str(seed), *extra])
        assert r.returncode == 0 and os.path.exists(os.path.join(out, "metadata.json")), \
            "training failed"

    def produce(self, rate=0, background=False, registry=None, copies=0):
        args = [os.path.join(BIN, "stint-session-events"), "produce", "--sessions", self.sessions,
                "--profiles", self.profiles, "--topic", self.topics["sessions"], "--brokers",
                BROKERS, "--create", f"{self.topics['predictions']},{self.topics['outcomes']}",
                "--rate", str(rate), "--copies", str(copies)] + \
            (["--registry", registry] if registry else [])
        if background:
            return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        r = run(args)
        assert r.returncode == 0, "producing the session events failed"
        return dict(kv.split("=") for kv in r.stdout.split())

    def create_topics(self, partitions=3):
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": BROKERS})
        fs = admin.create_topics([NewTopic(self.topics[k], partitions, 1)
                                  for k in ("sessions", "predictions", "outcomes")])
        for f in fs.values():
            f.result(30)

    def wait_assigned(self, timeout_s=30):
        """Waits until the predictor's consumer owns its partitions (its log says so)."""
        deadline = time.monotonic() + timeout_s
        path = os.path.join(self.tmp, "predictor.log")
        while time.monotonic() < deadline:
            with open(path, encoding="utf-8", errors="replace") as f:
                if "partitions_assigned" in f.read():
                    return True
            time.sleep(0.1)
        return False

    def start_predictor(self, model_dir, *extra):
        self.port = free_port()
        self.log = open(os.path.join(self.tmp, "predictor.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "stint-predictor"), "-b", BROKERS, "--redis.port", REDIS_PORT,
             "--in.topic", self.topics["sessions"], "--predictions.topic",
             self.topics["predictions"], "--outcomes.topic", self.topics["outcomes"],
             "--dlq.topic", self.topics["dlq"], "--model.dir", model_dir, "--redis.prefix",
             self.tag, "-G", self.tag, "--http.port", str(self.port), "--batch.timeout_ms", "20",
             *extra], stdout=self.log, stderr=subprocess.STDOUT)

    def metrics_text(self):
        """The predictor's /metrics, or "" when it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def metrics(self):
        text = self.metrics_text()
        out = {}
        for line in text.splitlines():
            m = re.match(r"^(stint_predictor_\w+(?:\{[^}]*\})?) (\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def wait_outcomes(self, n, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.metrics().get("stint_predictor_outcomes_total", 0) >= n:
                return True
            time.sleep(0.3)
        return False

    def stop_predictor(self):
        """SIGTERM; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -1

    def read(self, topic_key, want, registry=None):
        schemas = stint_consumer.SchemaSource(os.path.join(SRC, "schemas"),
                                              registry or stint_consumer.registry_url_from_env())
        return stint_consumer.consume(self.topics[topic_key], BROKERS, schemas, want, 20.0,
                                      group=f"{self.tag}-reader-{topic_key}")

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        # The test's Redis keys (all under its unique prefix).
        keys = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--scan", "--pattern",
                               f"{self.tag}:*"], capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-p", REDIS_PORT, "UNLINK", *keys[i:i + 500]],
                           capture_output=True)
        if not FAILS:
            shutil.rmtree(self.tmp, ignore_errors=True)
            # The test's topics too (kept with the directory when something failed).
            try:
                from confluent_kafka.admin import AdminClient
                admin = AdminClient({"bootstrap.servers": BROKERS})
                for f in admin.delete_topics(list(self.topics.values()),
                                             operation_timeout=30).values():
                    try:
                        f.result()
                    except Exception:  # a topic the test never created
                        pass
            except ImportError:
                pass
        else:
            print(f"kept {self.tmp} for inspection")
