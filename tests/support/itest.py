"""Helpers of the Python integration tests that run stint services: where the source, the
programs and Kafka are (STINT_SOURCE_DIR, STINT_BIN_DIR, STINT_KAFKA_BROKERS as ctest sets them),
one HTTP GET of a service's /healthz, /readyz or /metrics that never raises, the HTTP port a
service started with --http.port 0 logs, its stop by SIGTERM, and a checklist that prints each
check."""
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

SRC = os.environ.get("STINT_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("STINT_BIN_DIR") or os.path.join(SRC, "build", "bin")
BROKERS = os.environ.get("STINT_KAFKA_BROKERS",
                         "127.0.0.1:" + os.environ.get("STINT_KAFKA_PORT", "19092"))


def get(port, path):
    """(status, body) of GET http://127.0.0.1:<port><path>; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError as e:
        return 0, str(e)


def logged_http_port(log_path, timeout_s=20):
    """The HTTP port of the service whose log is log_path, from its "starting ... http=" line
    (--http.port 0: a free one), or None when it has not logged one within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                m = re.search(r" starting .*http=127\.0\.0\.1:(\d+)", f.read())
        except OSError:
            m = None
        if m or time.monotonic() >= deadline:
            return int(m.group(1)) if m else None
        time.sleep(0.2)


def stop_service(proc, timeout_s=30):
    """SIGTERM to a service (a Popen); its exit code, or "timeout" when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "timeout"


class Checklist:
    """check(ok, what) prints "ok" or "FAIL" and the check; failed lists the failed ones."""

    def __init__(self):
        self.failed = []

    def check(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        if not ok:
            self.failed.append(what)
        return ok
