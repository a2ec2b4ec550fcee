"""integration: /healthz tells the truth within seconds. stint-ingest (a batch loop without timer
ticks) and stint-enricher (with a 1 s tick, the path that used to skip the probes) run idle on
their own topics; Redis is stopped, then started again; then Kafka. Each service's /healthz must
turn 503 naming the server that is down within 10 s of the stop, and 200 again within 30 s of
the restart; both then stop with SIGTERM and exit 0. Stops and restarts the shared local stack's
servers (ctest runs tests one at a time)."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.environ.get("STINT_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("STINT_BIN_DIR") or os.path.join(SRC, "build", "bin")
BROKERS = os.environ.get("STINT_KAFKA_BROKERS",
                         "127.0.0.1:" + os.environ.get("STINT_KAFKA_PORT", "19092"))
REDIS_PORT = os.environ.get("STINT_REDIS_PORT", "16379")
STACK = os.path.join(SRC, "deploy", "local", "stack")

FAILS = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILS.append(what)


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError as e:
        return 0, str(e)


def wait_health(ports, want_status, want_text, timeout_s):
    """Seconds until every port answers want_status with want_text in the body, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        answers = [healthz(p) for p in ports.values()]
        if all(status == want_status and want_text in body for status, body in answers):
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def stack(*args):
    r = subprocess.run([STACK, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    return r.returncode


def main():
    from confluent_kafka.admin import AdminClient, NewTopic

    tag = f"it-hz-{os.getpid()}-{int(time.time())}"
    topics = {k: f"{tag}.{k}" for k in ("raw", "listens", "enriched", "ldlq", "edlq")}
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        f.result(30)
    tmp = tempfile.mkdtemp(prefix="stint-healthz-")
    common = ["-b", BROKERS, "--redis.port", REDIS_PORT, "--redis.prefix", tag, "--http.port", "0"]
    args = {
        "ingest": ["--in.topic", topics["raw"], "--out.topic", topics["listens"], "--dlq.topic",
                   topics["ldlq"]],
        "enricher": ["--in.topic", topics["listens"], "--out.topic", topics["enriched"],
                     "--dlq.topic", topics["edlq"]],
    }
    procs, ports, logs = {}, {}, {}
    try:
        for name, extra in args.items():
            logs[name] = os.path.join(tmp, f"{name}.log")
            group = ["-G", f"{tag}-{name}"]
            argv = [os.path.join(BIN, f"stint-{name}")] + common + group + extra
            procs[name] = subprocess.Popen(argv, stdout=open(logs[name], "w"),
                                           stderr=subprocess.STDOUT)
        for name in procs:
            deadline = time.monotonic() + 20
            while name not in ports and time.monotonic() < deadline:
                with open(logs[name], encoding="utf-8", errors="replace") as f:
                    m = re.search(r" starting .*http=127\.0\.0\.1:(\d+)", f.read())
                if m:
                    ports[name] = int(m.group(1))
                time.sleep(0.1)
        check(len(ports) == 2, f"both services started: {sorted(ports)}")
        if len(ports) != 2:
            return 1
        t = wait_health(ports, 200, "kafka=ok redis=ok", 30)
        check(t is not None, "healthy at start")

        check(stack("stop", "redis") == 0, "redis stopped")
        t = wait_health(ports, 503, "redis=down", 10)
        check(t is not None, f"/healthz 503 redis=down within 10 s of the stop "
                             f"({t if t is None else round(t, 1)} s)")
        check(stack("up") == 0, "stack up again")
        t = wait_health(ports, 200, "kafka=ok redis=ok", 30)
        check(t is not None, f"healthy again within 30 s ({t if t is None else round(t, 1)} s)")

        check(stack("stop", "kafka") == 0, "kafka stopped")
        t = wait_health(ports, 503, "kafka=down", 10)
        check(t is not None, f"/healthz 503 kafka=down within 10 s of the stop "
                             f"({t if t is None else round(t, 1)} s)")
        check(stack("up") == 0, "stack up again")
        t = wait_health(ports, 200, "kafka=ok redis=ok", 60)
        check(t is not None, f"healthy again within 60 s ({t if t is None else round(t, 1)} s)")
        for name, p in procs.items():
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            check(rc == 0, f"{name}: SIGTERM -> exit {rc}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        if stack("status") != 0:
            stack("up")
        try:
            admin.delete_topics(list(topics.values()))
        except Exception:  # noqa: BLE001 - cleanup only
            pass
        if FAILS:
            for name, path in logs.items():
                with open(path, encoding="utf-8", errors="replace") as f:
                    print(f"--- {name} log (last 15 lines)\n" + "".join(f.readlines()[-15:]))
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
