"""e2e: the README's live path, as a newcomer runs it. The five services start the way `make up`
starts them (deploy/local/services up), the README's kcat command publishes one listen stamped
now for a fresh user, a Prediction for that user must arrive on `predictions` within 30 s (read
with the README's `stint tail predictions --follow`), and `deploy/local/services down` stops
every service with exit 0.

The stack under test is shared with other tests, so the services get a private STINT_HOME and
HTTP ports, and, through the per-service settings file that deploy/local/services passes with -F
($STINT_HOME/services/<name>.conf), consumer groups, a Redis prefix and topics of their own
(<tag>.<topic>). The README's commands run as written, with only the broker address, the topic
name and the user id replaced."""
import json
import os
import queue
import random
import re
import shutil
import socket
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
README_BROKERS = "127.0.0.1:19092"
README_USER = "user_000001"
DEADLINE_S = 30

FAILS = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILS.append(what)
    return cond


def readme_section(title):
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no section '{title}'"
    return m.group(1)


def readme_commands():
    """The publish command (a whole ```sh block) and the tail command line of the README."""
    sec = readme_section("Publishing listens and reading predictions")
    blocks = re.findall(r"```sh\n(.*?)```", sec, re.S)
    publish = [b for b in blocks if "kcat" in b and "-t listens.raw" in b]
    tail = [line.split("|")[0].split("#")[0].strip() for b in blocks for line in b.splitlines()
            if line.startswith("build/bin/stint tail predictions --follow")]
    assert publish, "README: no ```sh block with the kcat command for listens.raw"
    assert tail, "README: no `build/bin/stint tail predictions --follow` line"
    return publish[0], tail[0]


def free_port_block(n):
    """A base port with n free consecutive ports after it."""
    for _ in range(200):
        base = random.randrange(30000, 60000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def stack_topics():
    out = []
    with open(os.path.join(SRC, "deploy", "topics.conf"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if line:
                out.append((line[0], len(line) > 1 and line[1] == "compact"))
    return out


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


def clean_env():
    """The environment without the STINT_* settings that would outrank the per-service files."""
    return {k: v for k, v in os.environ.items()
            if not re.match(r"^STINT_(KAFKA_GROUP|REDIS_PREFIX|HTTP_PORT|MODEL_DIR|HOME|\w*_TOPIC)$", k)}


def main():
    from confluent_kafka.admin import AdminClient, NewTopic

    tag = f"live-{os.getpid()}-{int(time.time() * 1000) % 100000000}"
    home = tempfile.mkdtemp(prefix="stint-live-")
    user = f"user_{tag}"
    topics = stack_topics()
    names = {t for t, _ in topics}
    http_base = free_port_block(len(SERVICES))
    env = clean_env()
    env.update(STINT_HOME=home, STINT_BIN_DIR=BIN, STINT_SERVICES_HTTP_BASE=str(http_base),
               STINT_KAFKA_BROKERS=BROKERS, STINT_REDIS_PORT=REDIS_PORT)
    services = os.path.join(SRC, "deploy", "local", "services")
    admin = AdminClient({"bootstrap.servers": BROKERS})
    up = False
    try:
        publish, tail = readme_commands()
        check("$(date -u +%Y-%m-%dT%H:%M:%SZ)" in publish and README_BROKERS in publish
              and README_USER in publish,
              "README's kcat command stamps the listen now, on the local stack, for user_000001")

        fs = admin.create_topics([NewTopic(f"{tag}.{t}", 3, 1,
                                           config={"cleanup.policy": "compact"} if compact else {})
                                  for t, compact in topics])
        for f in fs.values():
            f.result(30)
        os.makedirs(os.path.join(home, "services"))
        for name in SERVICES:
            with open(os.path.join(home, "services", f"{name}.conf"), "w", encoding="utf-8") as f:
                f.write(service_conf(name, tag, names))

        r = subprocess.run([services, "up"], env=env, capture_output=True, text=True, timeout=120)
        up = True
        sys.stdout.write(r.stdout + r.stderr)
        if not check(r.returncode == 0, "deploy/local/services up: exit 0"):
            return
        r = subprocess.run([services, "status"], env=env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and r.stdout.count(" up (pid ") == len(SERVICES),
              "deploy/local/services status: all five up and ready")
        ports = sorted(int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", r.stdout))
        check(ports == list(range(http_base, http_base + len(SERVICES))),
              f"HTTP ports are STINT_SERVICES_HTTP_BASE and the four after it: {ports}")

        cmd = (publish.replace(README_BROKERS, BROKERS)
               .replace("-t listens.raw", f"-t {tag}.listens.raw")
               .replace(README_USER, user))
        published_s = time.time()
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + cmd], env=env,
                           capture_output=True, text=True, timeout=30)
        if not check(r.returncode == 0, "README's kcat command: exit 0"):
            sys.stderr.write(f"{cmd}\n{r.stdout}{r.stderr}")
            return

        argv = tail.split()
        argv[0] = os.path.join(BIN, "stint")
        argv[argv.index("predictions")] = f"{tag}.predictions"
        reader = subprocess.Popen(argv + ["-b", BROKERS], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in reader.stdout], daemon=True).start()
        pred = None
        try:
            while pred is None and time.time() < published_s + DEADLINE_S:
                try:
                    rec = json.loads(lines.get(timeout=0.5))
                except queue.Empty:
                    continue
                if rec.get("user_id") == user:
                    pred = rec
        finally:
            reader.terminate()
            reader.wait(10)
        waited = time.time() - published_s
        if check(pred is not None, f"a Prediction for {user} within {DEADLINE_S} s "
                                   f"({waited:.1f} s)"):
            print(f"prediction: {json.dumps(pred)}")
            start_s = pred["session_start_ms"] / 1000
            check(abs(start_s - published_s) <= 5,
                  f"the session starts at the listen's timestamp, now ({start_s - published_s:+.1f} s)")
            check(pred["predictor"] in ("MODEL", "BASELINE") and pred["predicted_length_s"] >= 0,
                  f"predictor={pred['predictor']} predicted_length_s={pred['predicted_length_s']}")
        else:
            for name in ("sessionizer", "predictor"):
                with open(os.path.join(home, "services", f"{name}.log"), encoding="utf-8",
                          errors="replace") as f:
                    print(f"-- last lines of {name}.log\n" + "".join(f.readlines()[-8:]))
    finally:
        if up:
            r = subprocess.run([services, "down"], env=env, capture_output=True, text=True,
                               timeout=120)
            sys.stdout.write(r.stdout + r.stderr)
            check(r.returncode == 0, "deploy/local/services down: exit 0")
            check(r.stdout.count("stopped (exit 0)") == len(SERVICES),
                  "each service logged its exit 0")
            left = [n for n in SERVICES if os.path.exists(os.path.join(home, "services", f"{n}.pid"))]
            check(not left, f"no pid file left ({left})")
        cleanup(admin, tag, home, topics)


def cleanup(admin, tag, home, topics):
    keys = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--scan", "--pattern", f"{tag}:*"],
                          capture_output=True, text=True).stdout.split()
    for i in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-p", REDIS_PORT, "UNLINK", *keys[i:i + 500]],
                       capture_output=True)
    if FAILS:
        print(f"kept {home} for inspection")
        return
    shutil.rmtree(home, ignore_errors=True)
    if os.environ.get("STINT_KEEP_TEST_TOPICS"):
        return
    for f in admin.delete_topics([f"{tag}.{t}" for t, _ in topics], operation_timeout=30).values():
        try:
            f.result()
        except Exception:  # a topic that was never created
            pass


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
