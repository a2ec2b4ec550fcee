"""Helpers of the Python integration tests that run stint services: where the source, the
programs and Kafka are (STINT_SOURCE_DIR, STINT_BIN_DIR, STINT_KAFKA_BROKERS as ctest sets them),
one HTTP GET of a service's /healthz, /readyz or /metrics that never raises, and a checklist that
prints each check."""
import os
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


class Checklist:
    """check(ok, what) prints "ok" or "FAIL" and the check; failed lists the failed ones."""

    def __init__(self):
        self.failed = []

    def check(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        if not ok:
            self.failed.append(what)
        return ok
